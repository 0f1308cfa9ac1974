//! SQL for durable timers (see `migrations/*/0002_timers.sql`).
//!
//! Claiming is one statement that selects the earliest due rows and sets
//! their lease; on PostgreSQL it skips rows another replica is claiming at the
//! same moment (`FOR UPDATE SKIP LOCKED`), on SQLite the single writer
//! serialises it. A row is claimable when it is not fired, is due, and has no
//! live lease.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{read, write, Dialect, Store};
use crate::clock::{from_micros, to_micros};
use crate::error::Result;

/// One timer as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TimerRow {
    pub id: i64,
    pub owner: String,
    pub kind: String,
    pub due_at: i64,
    pub payload: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub fired_at: Option<i64>,
    pub late: bool,
}

impl TimerRow {
    pub fn due(&self) -> DateTime<Utc> {
        from_micros(self.due_at)
    }
}

/// A timer for [`Store::import_timers`].
#[derive(Debug, Clone)]
pub struct ImportTimer {
    pub owner: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    /// Already fired at this instant (on time, as far as the import knows).
    pub fired_at: Option<DateTime<Utc>>,
}

const TIMER_COLS: &str = "id, owner, kind, due_at, payload, attempts, last_error, fired_at, late";

impl Store {
    /// Create a timer, or move it if it has not fired yet. A fired timer is
    /// left alone: each (owner, kind) fires once.
    pub async fn schedule_timer(
        &self,
        owner: &str,
        kind: &str,
        due_at: DateTime<Utc>,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO timers (owner, kind, due_at, payload, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, kind) DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload
                 WHERE timers.fired_at IS NULL",
            )
            .bind(owner)
            .bind(kind)
            .bind(to_micros(due_at))
            .bind(payload)
            .bind(to_micros(now))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Create a timer or set it to fire (again) at `due_at`, even if it has
    /// fired before: for deadlines that recur, such as an agent's heartbeat
    /// watch. Its handler must tolerate a stale firing.
    pub async fn rearm_timer(
        &self,
        owner: &str,
        kind: &str,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO timers (owner, kind, due_at, payload, created_at) VALUES ($1, $2, $3, '{}', $4)
                 ON CONFLICT (owner, kind) DO UPDATE SET due_at = excluded.due_at, fired_at = NULL,
                    claimed_until = NULL, attempts = 0, last_error = NULL, late = FALSE",
            )
            .bind(owner)
            .bind(kind)
            .bind(to_micros(due_at))
            .bind(to_micros(now))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Cancel a pending timer; `kind = None` cancels all of the owner's.
    pub async fn cancel_timers(&self, owner: &str, kind: Option<&str>) -> Result<u64> {
        Ok(write!(self, |p, _d| {
            sqlx::query("DELETE FROM timers WHERE owner = $1 AND ($2 IS NULL OR kind = $2) AND fired_at IS NULL")
                .bind(owner)
                .bind(kind)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }

    /// An owner's timers that have not fired: (kind, due).
    pub async fn pending_timers(&self, owner: &str) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows: Vec<(String, i64)> = read!(self, |p, _d| {
            sqlx::query_as("SELECT kind, due_at FROM timers WHERE owner = $1 AND fired_at IS NULL ORDER BY kind")
                .bind(owner)
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(|(k, d)| (k, from_micros(d))).collect())
    }

    pub async fn timer(&self, owner: &str, kind: &str) -> Result<Option<TimerRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {TIMER_COLS} FROM timers WHERE owner = $1 AND kind = $2"
            ))
            .bind(owner)
            .bind(kind)
            .fetch_optional(p)
            .await?
        }))
    }

    /// When the next pending timer becomes claimable (its due time, or the
    /// end of a live lease), if there is one. Two index lookups, never a scan:
    /// the earliest due timer without a live lease (`timers_pending`, walked in
    /// due order past the few leased ones), and the earliest lease to run out
    /// (`timers_leased`). The second may be earlier than that timer's true
    /// claimable instant (a leased timer moved later); the runner then just
    /// looks once more.
    pub async fn next_timer_at(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let now = to_micros(now);
        let (due, lease): (Option<i64>, Option<i64>) = read!(self, |p, _d| {
            let due = sqlx::query_scalar(
                "SELECT due_at FROM timers WHERE fired_at IS NULL
                 AND (claimed_until IS NULL OR claimed_until <= $1) ORDER BY due_at LIMIT 1",
            )
            .bind(now)
            .fetch_optional(p)
            .await?;
            let lease = sqlx::query_scalar(
                "SELECT MIN(claimed_until) FROM timers WHERE fired_at IS NULL
                 AND claimed_until IS NOT NULL AND claimed_until > $1",
            )
            .bind(now)
            .fetch_one(p)
            .await?;
            (due, lease)
        });
        Ok(match (due, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(from_micros))
    }

    /// An owner's timers, fired or not: (kind, due, fired).
    pub async fn owner_timers(&self, owner: &str) -> Result<Vec<(String, DateTime<Utc>, bool)>> {
        let rows: Vec<(String, i64, Option<i64>)> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT kind, due_at, fired_at FROM timers WHERE owner = $1 ORDER BY kind",
            )
            .bind(owner)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(k, d, f)| (k, from_micros(d), f.is_some()))
            .collect())
    }

    /// Bulk import in one transaction (benchmarks, loads from another
    /// system): the timers must not exist yet.
    pub async fn import_timers(&self, rows: &[ImportTimer], now: DateTime<Utc>) -> Result<()> {
        let now = to_micros(now);
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            for chunk in rows.chunks(2000) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO timers (owner, kind, due_at, created_at, fired_at) ",
                );
                qb.push_values(chunk, |mut b, t| {
                    b.push_bind(t.owner.as_str())
                        .push_bind(t.kind.as_str())
                        .push_bind(to_micros(t.due_at))
                        .push_bind(now)
                        .push_bind(t.fired_at.map(to_micros));
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Timers due in `[from, to)`: (due, fired), for measuring lateness.
    /// Reads the whole table (fired timers leave the pending index).
    pub async fn timer_firings(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>> {
        let rows: Vec<(i64, Option<i64>)> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT due_at, fired_at FROM timers WHERE due_at >= $1 AND due_at < $2 ORDER BY due_at",
            )
            .bind(to_micros(from))
            .bind(to_micros(to))
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(d, f)| (from_micros(d), f.map(from_micros)))
            .collect())
    }

    /// What a polling job (the design we compare against) asks every period:
    /// every pending deadline due by `now`, earliest first, at most `limit`.
    pub async fn overdue_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<TimerRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {TIMER_COLS} FROM timers WHERE fired_at IS NULL AND due_at <= $1
                 ORDER BY due_at LIMIT $2"
            ))
            .bind(to_micros(now))
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Claim up to `limit` due timers, earliest first, until `lease_until`.
    pub async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<TimerRow>> {
        let now = to_micros(now);
        Ok(write!(self, |p, d| {
            let skip = match d {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            };
            sqlx::query_as(&format!(
                "UPDATE timers SET claimed_until = $1, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM timers WHERE fired_at IS NULL AND due_at <= $2
                              AND (claimed_until IS NULL OR claimed_until <= $2)
                              ORDER BY due_at, id LIMIT $3{skip})
                 RETURNING {TIMER_COLS}"
            ))
            .bind(to_micros(lease_until))
            .bind(now)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Record that a claimed timer fired.
    pub async fn complete_timer(&self, id: i64, fired_at: DateTime<Utc>, late: bool) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "UPDATE timers SET fired_at = $1, late = $2, claimed_until = NULL WHERE id = $3",
            )
            .bind(to_micros(fired_at))
            .bind(late)
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Record a failed attempt; the timer becomes claimable again at `retry_at`.
    pub async fn fail_timer(&self, id: i64, retry_at: DateTime<Utc>, error: &str) -> Result<()> {
        let error: String = error.chars().take(2000).collect();
        write!(self, |p, _d| {
            sqlx::query("UPDATE timers SET claimed_until = $1, last_error = $2 WHERE id = $3 AND fired_at IS NULL")
                .bind(to_micros(retry_at))
                .bind(&error)
                .bind(id)
                .execute(p)
                .await?;
        });
        Ok(())
    }
}
