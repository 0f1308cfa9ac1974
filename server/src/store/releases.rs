//! SQL for the release catalog: releases, their artifacts in chunks, and
//! the self-update outcomes agents report.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{map_db_err, read, write, Store};
use crate::clock::to_micros;
use crate::error::Result;

/// A release as stored. Instants are microseconds.
#[derive(Debug, Clone, FromRow)]
pub struct ReleaseRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub version: String,
    pub target: String,
    pub sha256: String,
    pub size: i64,
    pub notes: String,
    pub signature: String,
    pub public_key: String,
    pub allow_downgrade: bool,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub published_at: Option<i64>,
}

/// A reported self-update outcome.
#[derive(Debug, Clone, FromRow)]
pub struct AgentUpdateRow {
    pub id: i64,
    pub agent_id: i64,
    pub release_id: Option<i64>,
    pub from_version: String,
    pub to_version: String,
    pub outcome: String,
    pub detail: String,
    pub reported_at: i64,
    pub received_at: i64,
}

const RELEASE_COLS: &str = "id, kind, name, version, target, sha256, size, notes, signature, public_key, allow_downgrade, created_by, created_at, published_at";

impl Store {
    /// Insert a release (not yet published); a second one of the same kind,
    /// target and version is a conflict.
    pub async fn insert_release(&self, r: &ReleaseRow) -> Result<i64> {
        write!(self, |p, _d| {
            sqlx::query_scalar(
                "INSERT INTO releases (kind, name, version, target, sha256, size, notes, signature,
                    public_key, allow_downgrade, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            )
            .bind(&r.kind)
            .bind(&r.name)
            .bind(&r.version)
            .bind(&r.target)
            .bind(&r.sha256)
            .bind(r.size)
            .bind(&r.notes)
            .bind(&r.signature)
            .bind(&r.public_key)
            .bind(r.allow_downgrade)
            .bind(r.created_by)
            .bind(r.created_at)
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "a release of this kind, target and version"))
        })
    }

    pub async fn release(&self, id: i64) -> Result<Option<ReleaseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {RELEASE_COLS} FROM releases WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Releases, newest first, optionally of one kind and target.
    pub async fn releases(
        &self,
        kind: Option<&str>,
        target: Option<&str>,
    ) -> Result<Vec<ReleaseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {RELEASE_COLS} FROM releases
                 WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR target = $2)
                 ORDER BY id DESC LIMIT 1000"
            ))
            .bind(kind)
            .bind(target)
            .fetch_all(p)
            .await?
        }))
    }

    /// The agent release most recently published for `target`.
    pub async fn latest_agent_release(&self, target: &str) -> Result<Option<ReleaseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {RELEASE_COLS} FROM releases
                 WHERE kind = 'agent' AND target = $1 AND published_at IS NOT NULL
                 ORDER BY published_at DESC, id DESC LIMIT 1"
            ))
            .bind(target)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Forget the chunks of an unpublished release (before an upload).
    pub async fn clear_release_chunks(&self, id: i64) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "DELETE FROM release_chunks WHERE release_id = $1
                   AND EXISTS (SELECT 1 FROM releases WHERE id = $1 AND published_at IS NULL)",
            )
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn put_release_chunk(&self, id: i64, seq: i64, data: &[u8]) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query("INSERT INTO release_chunks (release_id, seq, data) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(seq)
                .bind(data)
                .execute(p)
                .await
                .map_err(|e| map_db_err(e, "an upload of this release"))?;
        });
        Ok(())
    }

    /// Mark a release published; `false` if it already was.
    pub async fn publish_release(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        write!(self, |p, _d| {
            Ok(sqlx::query(
                "UPDATE releases SET published_at = $1 WHERE id = $2 AND published_at IS NULL",
            )
            .bind(to_micros(now))
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// One chunk of an artifact.
    pub async fn release_chunk(&self, id: i64, seq: i64) -> Result<Option<Vec<u8>>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar("SELECT data FROM release_chunks WHERE release_id = $1 AND seq = $2")
                .bind(id)
                .bind(seq)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Record an agent's update report; `false` if its key was seen before.
    pub async fn insert_agent_update(&self, key: &str, row: &AgentUpdateRow) -> Result<bool> {
        write!(self, |p, _d| {
            Ok(sqlx::query(
                "INSERT INTO agent_updates (agent_id, release_id, idempotency_key, from_version,
                    to_version, outcome, detail, reported_at, received_at)
                 VALUES ($1, (SELECT id FROM releases WHERE id = $2), $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(row.agent_id)
            .bind(row.release_id)
            .bind(key)
            .bind(&row.from_version)
            .bind(&row.to_version)
            .bind(&row.outcome)
            .bind(&row.detail)
            .bind(row.reported_at)
            .bind(row.received_at)
            .execute(p)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// An agent's reported updates, newest first.
    pub async fn agent_updates(&self, agent_id: i64) -> Result<Vec<AgentUpdateRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, agent_id, release_id, from_version, to_version, outcome, detail,
                    reported_at, received_at
                 FROM agent_updates WHERE agent_id = $1 ORDER BY id DESC LIMIT 200",
            )
            .bind(agent_id)
            .fetch_all(p)
            .await?
        }))
    }
}
