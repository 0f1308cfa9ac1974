//! SQL for users, API tokens and SSH keys.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{map_db_err, parse_enum, read, write, Store};
use crate::auth::Principal;
use crate::clock::{from_micros, to_micros};
use crate::directory::{NewUser, ParsedSshKey, SshKey, User};
use crate::error::Result;

#[derive(FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    email: Option<String>,
    mobile: Option<String>,
    role: String,
    manager_level: Option<i64>,
    organization_id: Option<i64>,
    quiet_hours: Option<String>,
    timezone: Option<String>,
    active: bool,
    created_at: i64,
}

impl UserRow {
    fn into_view(self) -> Result<User> {
        Ok(User {
            id: self.id,
            username: self.username,
            display_name: self.display_name,
            email: self.email,
            mobile: self.mobile,
            role: parse_enum("users.role", &self.role)?,
            manager_level: self.manager_level,
            organization_id: self.organization_id,
            quiet_hours: self.quiet_hours,
            timezone: self.timezone,
            active: self.active,
            created_at: from_micros(self.created_at),
        })
    }
}

#[derive(FromRow)]
struct KeyRow {
    id: i64,
    user_id: i64,
    public_key: String,
    fingerprint: String,
    comment: Option<String>,
    created_at: i64,
}

impl From<KeyRow> for SshKey {
    fn from(r: KeyRow) -> Self {
        SshKey {
            id: r.id,
            user_id: r.user_id,
            public_key: r.public_key,
            fingerprint: r.fingerprint,
            comment: r.comment,
            created_at: from_micros(r.created_at),
        }
    }
}

/// A token as listed (the secret itself is never stored).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema, PartialEq)]
pub struct TokenInfo {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const USER_COLS: &str = "id, username, display_name, email, mobile, role, manager_level, organization_id, quiet_hours, timezone, active, created_at";

impl Store {
    pub async fn insert_user(&self, u: &NewUser, now: DateTime<Utc>) -> Result<User> {
        let row: UserRow = write!(self, |p, _d| {
            sqlx::query_as(&format!(
                "INSERT INTO users (username, display_name, email, mobile, role, manager_level, organization_id, active, created_at, quiet_hours, timezone)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {USER_COLS}"
            ))
            .bind(&u.username)
            .bind(&u.display_name)
            .bind(&u.email)
            .bind(&u.mobile)
            .bind(u.role.as_str())
            .bind(u.manager_level)
            .bind(u.organization_id)
            .bind(true)
            .bind(to_micros(now))
            .bind(&u.quiet_hours)
            .bind(&u.timezone)
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "username"))?
        });
        row.into_view()
    }

    pub async fn update_user(&self, id: i64, u: &NewUser, active: bool) -> Result<User> {
        let row: Option<UserRow> = write!(self, |p, _d| {
            sqlx::query_as(&format!(
                "UPDATE users SET display_name = $1, email = $2, mobile = $3, manager_level = $4, active = $5,
                    quiet_hours = $7, timezone = $8
                 WHERE id = $6 RETURNING {USER_COLS}"
            ))
            .bind(&u.display_name)
            .bind(&u.email)
            .bind(&u.mobile)
            .bind(u.manager_level)
            .bind(active)
            .bind(id)
            .bind(&u.quiet_hours)
            .bind(&u.timezone)
            .fetch_optional(p)
            .await
            .map_err(|e| map_db_err(e, "user"))?
        });
        row.map(UserRow::into_view)
            .transpose()?
            .ok_or_else(|| crate::error::Error::not_found(format!("user {id}")))
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        let row: Option<UserRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(UserRow::into_view).transpose()
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {USER_COLS} FROM users WHERE username = $1"
            ))
            .bind(username)
            .fetch_optional(p)
            .await?
        });
        row.map(UserRow::into_view).transpose()
    }

    /// Users, optionally of one role or one organisation.
    pub async fn users(&self, role: Option<&str>, org: Option<i64>) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {USER_COLS} FROM users WHERE ($1 IS NULL OR role = $1)
                 AND ($2 IS NULL OR organization_id = $2) ORDER BY username"
            ))
            .bind(role)
            .bind(org)
            .fetch_all(p)
            .await?
        });
        rows.into_iter().map(UserRow::into_view).collect()
    }

    pub async fn insert_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo> {
        let id: i64 = write!(self, |p, _d| {
            sqlx::query_scalar(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(user_id)
            .bind(name)
            .bind(token_hash)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "user_id"))?
        });
        Ok(TokenInfo {
            id,
            user_id,
            name: name.to_string(),
            created_at: now,
            revoked_at: None,
        })
    }

    pub async fn tokens(&self, user_id: i64) -> Result<Vec<TokenInfo>> {
        let rows: Vec<(i64, i64, String, i64, Option<i64>)> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, user_id, name, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id",
            )
            .bind(user_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, user_id, name, c, r)| TokenInfo {
                id,
                user_id,
                name,
                created_at: from_micros(c),
                revoked_at: r.map(from_micros),
            })
            .collect())
    }

    /// Revoke a token of `user_id` (by id) or all of that user's tokens named `name`.
    pub async fn revoke_tokens(
        &self,
        user_id: i64,
        id: Option<i64>,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(write!(self, |p, _d| {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL
                 AND ($3 IS NULL OR id = $3) AND ($4 IS NULL OR name = $4)",
            )
            .bind(to_micros(now))
            .bind(user_id)
            .bind(id)
            .bind(name)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// The active user holding a live token with this hash.
    pub async fn principal_for_token(&self, token_hash: &str) -> Result<Option<Principal>> {
        let row: Option<UserRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT u.id, u.username, u.display_name, u.email, u.mobile, u.role, u.manager_level,
                        u.organization_id, u.quiet_hours, u.timezone, u.active, u.created_at
                 FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.active",
            )
            .bind(token_hash)
            .fetch_optional(p)
            .await?
        });
        let Some(u) = row.map(UserRow::into_view).transpose()? else {
            return Ok(None);
        };
        Ok(Some(Principal {
            user_id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
            manager_level: u.manager_level,
            organization_id: u.organization_id,
        }))
    }

    /// Sets (or, with `None`, clears) a user's password hash.
    pub async fn set_password_hash(
        &self,
        user_id: i64,
        hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = write!(self, |p, _d| {
            sqlx::query(
                "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
            )
            .bind(hash)
            .bind(to_micros(now))
            .bind(user_id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// A user's password hash, if they have one.
    pub async fn password_hash(&self, user_id: i64) -> Result<Option<String>> {
        let hash: Option<Option<String>> = read!(self, |p, _d| {
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(p)
                .await?
        });
        Ok(hash.flatten())
    }

    pub async fn insert_ssh_key(
        &self,
        user_id: i64,
        k: &ParsedSshKey,
        now: DateTime<Utc>,
    ) -> Result<SshKey> {
        let row: KeyRow = write!(self, |p, _d| {
            sqlx::query_as(
                "INSERT INTO ssh_keys (user_id, public_key, fingerprint, comment, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id, user_id, public_key, fingerprint, comment, created_at",
            )
            .bind(user_id)
            .bind(&k.key)
            .bind(&k.fingerprint)
            .bind(&k.comment)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "public_key"))?
        });
        Ok(row.into())
    }

    pub async fn ssh_keys(&self, user_id: i64) -> Result<Vec<SshKey>> {
        let rows: Vec<KeyRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, user_id, public_key, fingerprint, comment, created_at FROM ssh_keys WHERE user_id = $1 ORDER BY id",
            )
            .bind(user_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn delete_ssh_key(&self, user_id: i64, key_id: i64) -> Result<bool> {
        Ok(write!(self, |p, _d| {
            sqlx::query("DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2")
                .bind(key_id)
                .bind(user_id)
                .execute(p)
                .await?
                .rows_affected()
                > 0
        }))
    }
}
