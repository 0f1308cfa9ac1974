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
}
