//! SQL for service reports: case counts of one organisation in a period,
//! the spares shipped to it, and the report schedules and their runs.

use sqlx::FromRow;

use super::{map_db_err, read, write, Store};
use crate::error::Result;

/// A spare shipped in a report's period.
#[derive(Debug, Clone, FromRow)]
pub struct ShippedRow {
    pub case_number: String,
    pub part_number: String,
    pub description: String,
    pub quantity: i64,
    pub shipped_at: i64,
    pub state: String,
}

/// An upgrade job on one of the organisation's devices that ended in a
/// report's period.
#[derive(Debug, Clone, FromRow)]
pub struct UpgradeRow {
    pub device: String,
    pub campaign: String,
    pub from_version: Option<String>,
    pub to_version: String,
    pub state: String,
    pub finished_at: i64,
    pub case_number: Option<String>,
}

/// An organisation's report schedule.
#[derive(Debug, Clone, FromRow)]
pub struct ScheduleRow {
    pub organization_id: i64,
    pub frequency: String,
    /// JSON array of e-mail addresses.
    pub recipients: String,
    pub next_run_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// (priority, count) of the organisation's cases created in `[from, to)`.
    pub async fn report_opened(&self, org: i64, from: i64, to: i64) -> Result<Vec<(i64, i64)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT priority, COUNT(*) FROM cases
                 WHERE organization_id = $1 AND created_at >= $2 AND created_at < $3
                 GROUP BY priority ORDER BY priority",
            )
            .bind(org)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await?
        }))
    }

    /// (priority, count) of the organisation's cases closed in `[from, to)`.
    pub async fn report_closed(&self, org: i64, from: i64, to: i64) -> Result<Vec<(i64, i64)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT priority, COUNT(*) FROM cases
                 WHERE organization_id = $1 AND closed_at >= $2 AND closed_at < $3
                 GROUP BY priority ORDER BY priority",
            )
            .bind(org)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await?
        }))
    }

    /// Spares shipped in `[from, to)` on the organisation's cases, in order.
    pub async fn report_shipped(&self, org: i64, from: i64, to: i64) -> Result<Vec<ShippedRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT c.number AS case_number, pt.part_number, pt.description, s.quantity,
                        s.shipped_at, s.state
                 FROM shipments s
                 JOIN cases c ON c.id = s.case_id
                 JOIN parts pt ON pt.id = s.part_id
                 WHERE c.organization_id = $1 AND s.shipped_at >= $2 AND s.shipped_at < $3
                 ORDER BY s.shipped_at, s.id LIMIT 1000",
            )
            .bind(org)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await?
        }))
    }

    /// Upgrade jobs on the organisation's devices that ended in `[from,
    /// to)` (skipped ones left out), in order.
    pub async fn report_upgrades(&self, org: i64, from: i64, to: i64) -> Result<Vec<UpgradeRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT d.name AS device, k.name AS campaign, j.from_version,
                        r.version AS to_version, j.state, j.finished_at, c.number AS case_number
                 FROM upgrade_jobs j
                 JOIN devices d ON d.id = j.device_id
                 JOIN campaigns k ON k.id = j.campaign_id
                 JOIN releases r ON r.id = k.release_id
                 LEFT JOIN cases c ON c.id = j.case_id
                 WHERE d.organization_id = $1 AND j.state <> 'skipped'
                   AND j.finished_at >= $2 AND j.finished_at < $3
                 ORDER BY j.finished_at, j.id LIMIT 1000",
            )
            .bind(org)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn report_schedule(&self, org: i64) -> Result<Option<ScheduleRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT organization_id, frequency, recipients, next_run_at, updated_at
                 FROM report_schedules WHERE organization_id = $1",
            )
            .bind(org)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Create or replace the organisation's schedule.
    pub async fn put_report_schedule(
        &self,
        org: i64,
        frequency: &str,
        recipients: &str,
        next_run_at: i64,
        by: Option<i64>,
        now: i64,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO report_schedules (organization_id, frequency, recipients, next_run_at, updated_by, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (organization_id) DO UPDATE SET frequency = excluded.frequency,
                     recipients = excluded.recipients, next_run_at = excluded.next_run_at,
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(frequency)
            .bind(recipients)
            .bind(next_run_at)
            .bind(by)
            .bind(now)
            .execute(p)
            .await
            .map_err(|e| map_db_err(e, "report schedule"))?;
        });
        Ok(())
    }

    /// Move a schedule's next run, if it still runs at `expected`.
    pub async fn advance_report_schedule(
        &self,
        org: i64,
        expected: i64,
        next: i64,
    ) -> Result<bool> {
        write!(self, |p, _d| {
            Ok(sqlx::query(
                "UPDATE report_schedules SET next_run_at = $3
                 WHERE organization_id = $1 AND next_run_at = $2",
            )
            .bind(org)
            .bind(expected)
            .bind(next)
            .execute(p)
            .await?
            .rows_affected()
                == 1)
        })
    }

    pub async fn delete_report_schedule(&self, org: i64) -> Result<bool> {
        write!(self, |p, _d| {
            Ok(
                sqlx::query("DELETE FROM report_schedules WHERE organization_id = $1")
                    .bind(org)
                    .execute(p)
                    .await?
                    .rows_affected()
                    == 1,
            )
        })
    }

    /// Whether the report of this organisation and period was sent.
    pub async fn report_sent(&self, org: i64, from: &str, to: &str) -> Result<bool> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as::<_, (i64,)>(
                "SELECT id FROM report_runs
                 WHERE organization_id = $1 AND period_from = $2 AND period_to = $3",
            )
            .bind(org)
            .bind(from)
            .bind(to)
            .fetch_optional(p)
            .await?
            .is_some()
        }))
    }

    /// Record a sent report (a repeat is a no-op).
    pub async fn record_report_run(
        &self,
        org: i64,
        from: &str,
        to: &str,
        recipients: &str,
        pdf_bytes: i64,
        now: i64,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO report_runs (organization_id, period_from, period_to, recipients, pdf_bytes, sent_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (organization_id, period_from, period_to) DO NOTHING",
            )
            .bind(org)
            .bind(from)
            .bind(to)
            .bind(recipients)
            .bind(pdf_bytes)
            .bind(now)
            .execute(p)
            .await?;
        });
        Ok(())
    }
}
