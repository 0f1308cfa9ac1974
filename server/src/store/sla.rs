//! SQL for SLA policies and calendars managed through the API
//! (`migrations/*/0006_sla_settings.sql`).

use chrono::{DateTime, Utc};

use super::{read, write, Store};
use crate::clock::to_micros;
use crate::error::Result;

impl Store {
    /// Every stored (kind, name, spec JSON), by kind and name.
    pub async fn sla_settings(&self) -> Result<Vec<(String, String, String)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as("SELECT kind, name, spec FROM sla_settings ORDER BY kind, name")
                .fetch_all(p)
                .await?
        }))
    }

    pub async fn put_sla_setting(
        &self,
        kind: &str,
        name: &str,
        spec: &str,
        by: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO sla_settings (kind, name, spec, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec,
                    updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(kind)
            .bind(name)
            .bind(spec)
            .bind(to_micros(now))
            .bind(by)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn delete_sla_setting(&self, kind: &str, name: &str) -> Result<bool> {
        Ok(write!(self, |p, _d| {
            sqlx::query("DELETE FROM sla_settings WHERE kind = $1 AND name = $2")
                .bind(kind)
                .bind(name)
                .execute(p)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Contracts naming a policy (`column` = `sla_policy`) or calendar.
    pub async fn contracts_naming(&self, column: &str, name: &str) -> Result<Vec<String>> {
        let column = match column {
            "sla_policy" => "sla_policy",
            _ => "calendar",
        };
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(&format!(
                "SELECT number FROM contracts WHERE {column} = $1 ORDER BY number LIMIT 20"
            ))
            .bind(name)
            .fetch_all(p)
            .await?
        }))
    }
}
