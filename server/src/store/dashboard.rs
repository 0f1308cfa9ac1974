//! SQL for the manager dashboard: open cases counted by priority and age,
//! and the cases opened in a period with what their SLA clocks need (the
//! contract's policy, calendar and coverage, the site's time zone, and the
//! clock-relevant history entries), read in two queries however many cases
//! there are. The SLA events come from [`Store::sla_events`].

use sqlx::FromRow;

use super::{read, Store};
use crate::error::Result;

/// A case opened in the dashboard's period, with what its clocks run on.
#[derive(Debug, Clone, FromRow)]
pub struct DashboardCase {
    pub id: i64,
    pub number: String,
    pub priority: i64,
    pub case_type: String,
    pub vendor: Option<String>,
    pub created_at: i64,
    pub assignee_name: Option<String>,
    pub contract_number: Option<String>,
    pub sla_policy: Option<String>,
    pub calendar: Option<String>,
    pub coverage: Option<String>,
    /// The time zone of the case's device's site.
    pub timezone: Option<String>,
}

/// The history entries the SLA clocks read (see `sla::engine::timeline_of`).
const CLOCK_KINDS: &str = "('opened', 'status_changed', 'priority_changed', 'diagnosed')";

impl Store {
    /// Open cases (not resolved or closed) counted by priority and age
    /// bucket: `cutoffs` are instants (microseconds), newest first; a case
    /// created after `cutoffs[0]` is in bucket 0, after `cutoffs[1]` in
    /// bucket 1, and so on; older than the last, in bucket `cutoffs.len()`.
    /// Rows: (priority, bucket, count).
    pub async fn open_cases_by_age(&self, cutoffs: &[i64]) -> Result<Vec<(i64, i64, i64)>> {
        Ok(read!(self, |p, _d| {
            let mut qb = sqlx::QueryBuilder::new("SELECT priority, CAST(CASE");
            for (i, c) in cutoffs.iter().enumerate() {
                qb.push(" WHEN created_at > ")
                    .push_bind(*c)
                    .push(format!(" THEN {i}"));
            }
            qb.push(format!(
                " ELSE {} END AS BIGINT) AS bucket, COUNT(*) FROM cases
                 WHERE status NOT IN ('resolved', 'closed')
                 GROUP BY priority, bucket ORDER BY priority, bucket",
                cutoffs.len()
            ));
            qb.build_query_as::<(i64, i64, i64)>().fetch_all(p).await?
        }))
    }

    /// Cases created in `[from, to)` (microseconds), of one organisation
    /// if `org` is given, oldest first, at most `limit`.
    pub async fn dashboard_cases(
        &self,
        from: i64,
        to: i64,
        org: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DashboardCase>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT c.id, c.number, c.priority, c.case_type, c.vendor, c.created_at,
                        u.display_name AS assignee_name, k.number AS contract_number,
                        k.sla_policy, k.calendar, k.coverage, s.timezone
                 FROM cases c
                 LEFT JOIN users u ON u.id = c.assignee_id
                 LEFT JOIN contracts k ON k.id = c.contract_id
                 LEFT JOIN devices d ON d.id = c.device_id
                 LEFT JOIN sites s ON s.id = d.site_id
                 WHERE c.created_at >= $1 AND c.created_at < $2
                   AND ($4 IS NULL OR c.organization_id = $4)
                 ORDER BY c.created_at, c.id LIMIT $3",
            )
            .bind(from)
            .bind(to)
            .bind(limit)
            .bind(org)
            .fetch_all(p)
            .await?
        }))
    }

    /// The clock-relevant history entries of the cases created in
    /// `[from, to)` up to and including the case `(last_created, last_id)`
    /// (the last one [`Store::dashboard_cases`] returned): (case id, entry
    /// time, body), by case and then in history order.
    pub async fn dashboard_clock_entries(
        &self,
        from: i64,
        to: i64,
        org: Option<i64>,
        last_created: i64,
        last_id: i64,
    ) -> Result<Vec<(i64, i64, String)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT a.case_id, a.at, a.body FROM activities a
                 JOIN cases c ON c.id = a.case_id
                 WHERE c.created_at >= $1 AND c.created_at < $2
                   AND (c.created_at < $3 OR (c.created_at = $3 AND c.id <= $4))
                   AND a.kind IN {CLOCK_KINDS}
                   AND ($5 IS NULL OR c.organization_id = $5)
                 ORDER BY a.case_id, a.seq"
            ))
            .bind(from)
            .bind(to)
            .bind(last_created)
            .bind(last_id)
            .bind(org)
            .fetch_all(p)
            .await?
        }))
    }
}
