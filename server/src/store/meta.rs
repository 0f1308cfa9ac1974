//! SQL for `meta`: small named values the server keeps about itself (see
//! `migrations/*/0004_meta.sql`).

use chrono::{DateTime, Utc};

use super::{read, write, Store};
use crate::clock::to_micros;
use crate::error::Result;

impl Store {
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn set_meta(&self, key: &str, value: &str, now: DateTime<Utc>) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO meta (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(to_micros(now))
            .execute(p)
            .await?;
        });
        Ok(())
    }
}
