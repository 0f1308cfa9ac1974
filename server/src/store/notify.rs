//! SQL for the notification outbox, deliveries, alerts and surveys (see
//! `migrations/*/0003_notify.sql` for the three durable steps).
//!
//! Claims work like timers: one statement picks the earliest claimable rows
//! and sets their lease (PostgreSQL skips rows another replica is claiming).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::cases::EntryRow;
use super::{map_db_err, read, write, Dialect, Store};
use crate::clock::{from_micros, to_micros};
use crate::error::Result;

/// An outbox row: entry `seq` of case `case_id` may notify someone.
#[derive(Debug, Clone, FromRow)]
pub struct OutboxItem {
    pub id: i64,
    pub case_id: i64,
    pub seq: i64,
    pub attempts: i64,
}

/// One message to write, as the notifier planned it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub reason: String,
    pub channel: &'static str,
    pub recipient_id: Option<i64>,
    pub recipient: String,
    pub address: String,
    pub subject: String,
    pub body: String,
    pub not_before: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub user_id: i64,
    pub level: Option<i64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewSurvey {
    pub token_hash: String,
    pub email: String,
    pub engineer_id: Option<i64>,
    pub expires_at: DateTime<Utc>,
}

/// Everything one outbox row expands into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expansion {
    pub deliveries: Vec<NewDelivery>,
    pub alerts: Vec<NewAlert>,
    pub survey: Option<NewSurvey>,
}

/// A delivery as stored.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub case_id: i64,
    pub seq: i64,
    pub reason: String,
    pub channel: String,
    pub recipient_id: Option<i64>,
    pub recipient: String,
    pub address: String,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub not_before: i64,
    pub created_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

const DELIVERY_COLS: &str = "id, case_id, seq, reason, channel, recipient_id, recipient, address, subject, body, status, not_before, created_at, attempts, last_error, sent_at";

/// An escalation alert as listed.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub case_number: String,
    pub case_summary: String,
    /// The history entry that raised it.
    pub seq: i64,
    pub user_id: i64,
    /// Manager level, for escalations.
    pub level: Option<i64>,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct AlertRow {
    id: i64,
    case_number: String,
    case_summary: String,
    seq: i64,
    user_id: i64,
    level: Option<i64>,
    message: String,
    created_at: i64,
    acknowledged_at: Option<i64>,
}

impl From<AlertRow> for Alert {
    fn from(r: AlertRow) -> Alert {
        Alert {
            id: r.id,
            case_number: r.case_number,
            case_summary: r.case_summary,
            seq: r.seq,
            user_id: r.user_id,
            level: r.level,
            message: r.message,
            created_at: from_micros(r.created_at),
            acknowledged_at: r.acknowledged_at.map(from_micros),
        }
    }
}

const ALERT_SELECT: &str =
    "SELECT a.id, c.number AS case_number, c.summary AS case_summary, a.seq, a.user_id,
        a.level, a.message, a.created_at, a.acknowledged_at
    FROM alerts a JOIN cases c ON c.id = a.case_id";

/// A survey as stored.
#[derive(Debug, Clone, FromRow)]
pub struct SurveyRow {
    pub id: i64,
    pub case_id: i64,
    pub seq: i64,
    pub email: String,
    pub engineer_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub answered_at: Option<i64>,
    pub rating: Option<i64>,
    pub comment: Option<String>,
}

const SURVEY_COLS: &str =
    "id, case_id, seq, email, engineer_id, created_at, expires_at, answered_at, rating, comment";

/// One answered survey, for reports.
#[derive(Debug, Clone, FromRow)]
pub struct SurveyAnswer {
    pub engineer_id: Option<i64>,
    pub engineer_name: Option<String>,
    pub rating: i64,
    pub answered_at: i64,
}

impl Store {
    /// Wait until a commit queues outbox rows (or `timeout` passes).
    pub async fn outbox_wait(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.outbox_signal.notified()).await;
    }

    /// Wake whoever waits in [`Store::outbox_wait`] (new deliveries due).
    pub fn outbox_poke(&self) {
        self.outbox_signal.notify_one();
    }

    /// Claim up to `limit` outbox rows not yet expanded, oldest first.
    pub async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        Ok(write!(self, |p, d| {
            let skip = match d {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            };
            sqlx::query_as(&format!(
                "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL
                              AND (claimed_until IS NULL OR claimed_until <= $2)
                              ORDER BY id LIMIT $3{skip})
                 RETURNING id, case_id, seq, attempts"
            ))
            .bind(to_micros(lease_until))
            .bind(to_micros(now))
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// One history entry.
    pub async fn entry(&self, case_id: i64, seq: i64) -> Result<Option<EntryRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, seq, kind, visibility, author_id, author_name, at, body, prev_hash, hash
                 FROM activities WHERE case_id = $1 AND seq = $2",
            )
            .bind(case_id)
            .bind(seq)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Write what an outbox row expands into and mark it done, in one
    /// transaction. Rows already written by an earlier attempt are kept.
    pub async fn expand_outbox(
        &self,
        item: &OutboxItem,
        x: &Expansion,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            for d in &x.deliveries {
                sqlx::query(
                    "INSERT INTO deliveries (case_id, seq, reason, channel, recipient_id, recipient, address,
                        subject, body, not_before, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (case_id, seq, reason, channel, address) DO NOTHING",
                )
                .bind(item.case_id)
                .bind(item.seq)
                .bind(&d.reason)
                .bind(d.channel)
                .bind(d.recipient_id)
                .bind(&d.recipient)
                .bind(&d.address)
                .bind(&d.subject)
                .bind(&d.body)
                .bind(to_micros(d.not_before))
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "delivery"))?;
            }
            for a in &x.alerts {
                sqlx::query(
                    "INSERT INTO alerts (case_id, seq, user_id, level, message, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id, seq, user_id) DO NOTHING",
                )
                .bind(item.case_id)
                .bind(item.seq)
                .bind(a.user_id)
                .bind(a.level)
                .bind(&a.message)
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "alert"))?;
            }
            if let Some(s) = &x.survey {
                sqlx::query(
                    "INSERT INTO surveys (case_id, seq, token_hash, email, engineer_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (case_id, seq) DO NOTHING",
                )
                .bind(item.case_id)
                .bind(item.seq)
                .bind(&s.token_hash)
                .bind(&s.email)
                .bind(s.engineer_id)
                .bind(to_micros(now))
                .bind(to_micros(s.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "survey"))?;
            }
            sqlx::query("UPDATE outbox SET done_at = $1, claimed_until = NULL WHERE id = $2")
                .bind(to_micros(now))
                .bind(item.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// An expansion failed: try again at `retry_at`.
    pub async fn fail_outbox(&self, id: i64, retry_at: DateTime<Utc>, error: &str) -> Result<()> {
        let error: String = error.chars().take(2000).collect();
        write!(self, |p, _d| {
            sqlx::query("UPDATE outbox SET claimed_until = $1, last_error = $2 WHERE id = $3")
                .bind(to_micros(retry_at))
                .bind(&error)
                .bind(id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// When the next outbox row or delivery becomes claimable, if any.
    pub async fn next_notify_at(&self) -> Result<Option<DateTime<Utc>>> {
        let (a, b): (Option<i64>, Option<i64>) = read!(self, |p, d| {
            let greatest = match d {
                Dialect::Sqlite => "MAX",
                Dialect::Postgres => "GREATEST",
            };
            let a = sqlx::query_scalar(
                "SELECT MIN(COALESCE(claimed_until, 0)) FROM outbox WHERE done_at IS NULL",
            )
            .fetch_one(p)
            .await?;
            let b = sqlx::query_scalar(&format!(
                "SELECT MIN({greatest}(not_before, COALESCE(claimed_until, not_before)))
                 FROM deliveries WHERE status = 'pending'"
            ))
            .fetch_one(p)
            .await?;
            (a, b)
        });
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(from_micros))
    }

    /// Claim up to `limit` due deliveries, earliest first.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        Ok(write!(self, |p, d| {
            let skip = match d {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            };
            sqlx::query_as(&format!(
                "UPDATE deliveries SET claimed_until = $1, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND not_before <= $2
                              AND (claimed_until IS NULL OR claimed_until <= $2)
                              ORDER BY not_before, id LIMIT $3{skip})
                 RETURNING {DELIVERY_COLS}"
            ))
            .bind(to_micros(lease_until))
            .bind(to_micros(now))
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Record the outcome of a claimed delivery: `sent`, `failed` or
    /// `cancelled`, or (`pending` with `retry_at`) another attempt later.
    pub async fn finish_delivery(
        &self,
        id: i64,
        status: &str,
        at: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
        error: Option<&str>,
    ) -> Result<()> {
        let error: Option<String> = error.map(|e| e.chars().take(2000).collect());
        write!(self, |p, _d| {
            sqlx::query(
                "UPDATE deliveries SET status = $1, claimed_until = $2, last_error = COALESCE($3, last_error),
                    sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END
                 WHERE id = $5",
            )
            .bind(status)
            .bind(retry_at.map(to_micros))
            .bind(error)
            .bind(to_micros(at))
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn deliveries_for_case(&self, case_id: i64) -> Result<Vec<DeliveryRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {DELIVERY_COLS} FROM deliveries WHERE case_id = $1 ORDER BY id"
            ))
            .bind(case_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// Deliveries by channel and status, for `/metrics`.
    pub async fn delivery_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT channel, status, COUNT(*) FROM deliveries GROUP BY channel, status ORDER BY 1, 2",
            )
            .fetch_all(p)
            .await?
        }))
    }

    /// Alerts for one user (or everyone's with `user = None`), newest first.
    pub async fn alerts(
        &self,
        user: Option<i64>,
        include_acknowledged: bool,
        limit: i64,
    ) -> Result<Vec<Alert>> {
        let rows: Vec<AlertRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{ALERT_SELECT} WHERE ($1 IS NULL OR a.user_id = $1)
                   AND ($2 OR a.acknowledged_at IS NULL)
                 ORDER BY a.id DESC LIMIT $3"
            ))
            .bind(user)
            .bind(include_acknowledged)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(Alert::from).collect())
    }

    pub async fn alert(&self, id: i64) -> Result<Option<Alert>> {
        let row: Option<AlertRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!("{ALERT_SELECT} WHERE a.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(Alert::from))
    }

    /// Acknowledge an alert; false if it was already acknowledged.
    pub async fn acknowledge_alert(&self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        Ok(write!(self, |p, _d| {
            sqlx::query(
                "UPDATE alerts SET acknowledged_at = $1 WHERE id = $2 AND acknowledged_at IS NULL",
            )
            .bind(to_micros(at))
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
                == 1
        }))
    }

    pub async fn survey_by_token(&self, token_hash: &str) -> Result<Option<SurveyRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {SURVEY_COLS} FROM surveys WHERE token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(p)
            .await?
        }))
    }

    pub async fn survey_for(&self, case_id: i64, seq: i64) -> Result<Option<SurveyRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {SURVEY_COLS} FROM surveys WHERE case_id = $1 AND seq = $2"
            ))
            .bind(case_id)
            .bind(seq)
            .fetch_optional(p)
            .await?
        }))
    }

    /// The survey of a closing (case and closing seq): the one e-mailed, if
    /// the notifier made it, else a new one made now (for the portal).
    pub async fn survey_for_closing(
        &self,
        case_id: i64,
        seq: i64,
        token_hash: &str,
        email: &str,
        engineer_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<SurveyRow> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO surveys (case_id, seq, token_hash, email, engineer_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (case_id, seq) DO NOTHING",
            )
            .bind(case_id)
            .bind(seq)
            .bind(token_hash)
            .bind(email)
            .bind(engineer_id)
            .bind(to_micros(now))
            .execute(p)
            .await
            .map_err(|e| map_db_err(e, "survey"))?
            .rows_affected()
        });
        self.survey_for(case_id, seq)
            .await?
            .ok_or_else(|| crate::error::Error::not_found("survey"))
    }

    /// Store an answer once: false if the survey was answered already. Its
    /// pending reminder is cancelled in the same transaction.
    pub async fn answer_survey(
        &self,
        id: i64,
        rating: i64,
        comment: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE surveys SET answered_at = $1, rating = $2, comment = $3
                 WHERE id = $4 AND answered_at IS NULL",
            )
            .bind(to_micros(at))
            .bind(rating)
            .bind(comment)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if done {
                sqlx::query(
                    "UPDATE deliveries SET status = 'cancelled', last_error = 'answered'
                     WHERE status = 'pending' AND reason = 'survey_reminder'
                       AND (case_id, seq) IN (SELECT case_id, seq FROM surveys WHERE id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    /// Answered surveys in `[from, to)`, with the engineer's name.
    pub async fn survey_answers(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        organization: Option<i64>,
    ) -> Result<Vec<SurveyAnswer>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT s.engineer_id, u.display_name AS engineer_name, s.rating, s.answered_at
                 FROM surveys s JOIN cases c ON c.id = s.case_id
                 LEFT JOIN users u ON u.id = s.engineer_id
                 WHERE s.answered_at IS NOT NULL AND s.answered_at >= $1 AND s.answered_at < $2
                   AND ($3 IS NULL OR c.organization_id = $3)
                 ORDER BY s.answered_at",
            )
            .bind(to_micros(from))
            .bind(to_micros(to))
            .bind(organization)
            .fetch_all(p)
            .await?
        }))
    }

    /// Surveys sent in `[from, to)` (answered or not).
    pub async fn surveys_sent(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        organization: Option<i64>,
    ) -> Result<i64> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM surveys s JOIN cases c ON c.id = s.case_id
                 WHERE s.created_at >= $1 AND s.created_at < $2
                   AND ($3 IS NULL OR c.organization_id = $3)",
            )
            .bind(to_micros(from))
            .bind(to_micros(to))
            .bind(organization)
            .fetch_one(p)
            .await?
        }))
    }
}
