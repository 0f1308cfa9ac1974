//! SQL for the web console: logins, browser sessions, and incoming calls.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{read, write, Store};
use crate::auth::Principal;
use crate::clock::to_micros;
use crate::error::Result;

#[derive(FromRow)]
struct SessionRow {
    id: i64,
    username: String,
    display_name: String,
    role: String,
    manager_level: Option<i64>,
    organization_id: Option<i64>,
    csrf: String,
}

/// A live browser session: who, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub principal: Principal,
    pub csrf: String,
}

impl Store {
    /// The user id and password hash of an active user who has a password.
    pub async fn password_login(&self, username: &str) -> Result<Option<(i64, String)>> {
        let row: Option<(i64, String)> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, password_hash FROM users
                 WHERE username = $1 AND active AND password_hash IS NOT NULL",
            )
            .bind(username)
            .fetch_optional(p)
            .await?
        });
        Ok(row)
    }

    pub async fn insert_web_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf)
            .bind(to_micros(now))
            .bind(to_micros(expires))
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// The live session with this token hash: not ended, not expired, its
    /// user active.
    pub async fn web_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>> {
        let row: Option<SessionRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT u.id, u.username, u.display_name, u.role, u.manager_level,
                        u.organization_id, s.csrf
                 FROM web_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2
                   AND u.active",
            )
            .bind(token_hash)
            .bind(to_micros(now))
            .fetch_optional(p)
            .await?
        });
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(WebSession {
            principal: Principal {
                user_id: r.id,
                username: r.username,
                display_name: r.display_name,
                role: super::parse_enum("users.role", &r.role)?,
                manager_level: r.manager_level,
                organization_id: r.organization_id,
            },
            csrf: r.csrf,
        }))
    }

    /// Ends a session (logout); true if it was live.
    pub async fn end_web_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = write!(self, |p, _d| {
            sqlx::query(
                "UPDATE web_sessions SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL",
            )
            .bind(to_micros(now))
            .bind(token_hash)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// Records an incoming call; its id.
    pub async fn insert_call(
        &self,
        caller: &str,
        received_at: DateTime<Utc>,
        recorded_by: i64,
        organization_id: Option<i64>,
    ) -> Result<i64> {
        let id: i64 = write!(self, |p, _d| {
            sqlx::query_scalar(
                "INSERT INTO calls (caller, received_at, recorded_by, organization_id)
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(caller)
            .bind(to_micros(received_at))
            .bind(recorded_by)
            .bind(organization_id)
            .fetch_one(p)
            .await?
        });
        Ok(id)
    }

    /// Calls after `after` (by id) received since `since`, oldest first; and
    /// the newest call's id (0 with none).
    pub async fn calls_after(
        &self,
        after: i64,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<(Vec<CallRecord>, i64)> {
        let rows: Vec<CallRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT c.id, c.caller, c.received_at, c.organization_id, o.name AS organization_name
                 FROM calls c LEFT JOIN organizations o ON o.id = c.organization_id
                 WHERE c.id > $1 AND c.received_at >= $2 ORDER BY c.id LIMIT $3",
            )
            .bind(after)
            .bind(to_micros(since))
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        let last: i64 = read!(self, |p, _d| {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM calls")
                .fetch_one(p)
                .await?
        });
        Ok((rows.into_iter().map(CallRecord::from).collect(), last))
    }

    /// The latest calls, newest first.
    pub async fn recent_calls(&self, limit: i64) -> Result<Vec<CallRecord>> {
        let rows: Vec<CallRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT c.id, c.caller, c.received_at, c.organization_id, o.name AS organization_name
                 FROM calls c LEFT JOIN organizations o ON o.id = c.organization_id
                 ORDER BY c.id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(CallRecord::from).collect())
    }

    /// One call.
    pub async fn call(&self, id: i64) -> Result<Option<CallRecord>> {
        let row: Option<CallRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT c.id, c.caller, c.received_at, c.organization_id, o.name AS organization_name
                 FROM calls c LEFT JOIN organizations o ON o.id = c.organization_id
                 WHERE c.id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(CallRecord::from))
    }
}

#[derive(FromRow)]
struct CallRow {
    id: i64,
    caller: String,
    received_at: i64,
    organization_id: Option<i64>,
    organization_name: Option<String>,
}

/// An incoming call as recorded.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub id: i64,
    pub caller: String,
    pub received_at: DateTime<Utc>,
    /// The organisation it matched, when exactly one did.
    pub organization_id: Option<i64>,
    pub organization_name: Option<String>,
}

impl From<CallRow> for CallRecord {
    fn from(r: CallRow) -> CallRecord {
        CallRecord {
            id: r.id,
            caller: r.caller,
            received_at: crate::clock::from_micros(r.received_at),
            organization_id: r.organization_id,
            organization_name: r.organization_name,
        }
    }
}
