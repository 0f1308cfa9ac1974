//! SQL for the replica registry: the `serve` processes sharing this
//! database (heartbeats, the sweep of dead ones) and which replica holds
//! each agent's remote-login tunnel.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{read, write, Store};
use crate::clock::to_micros;
use crate::error::Result;

/// A replica as listed.
#[derive(Debug, Clone, FromRow)]
pub struct ReplicaRow {
    pub id: String,
    pub ssh_address: Option<String>,
    pub version: String,
    pub started_at: i64,
    pub seen_at: i64,
    /// Agent tunnels it holds.
    pub tunnels: i64,
    /// Live remote-login sessions it carries.
    pub sessions: i64,
}

/// A live session left by a dead replica, with what its case entry needs.
#[derive(Debug, Clone, FromRow)]
pub struct OrphanSession {
    pub id: i64,
    pub case_number: String,
    pub device_name: String,
    pub user_id: i64,
    pub user_name: String,
    pub source: String,
    pub port: i64,
    pub started_at: i64,
    pub bytes_to_device: i64,
    pub bytes_from_device: i64,
}

/// Another replica holding an agent's tunnel.
#[derive(Debug, Clone, FromRow)]
pub struct TunnelHolder {
    pub replica: String,
    pub ssh_address: String,
}

impl Store {
    /// Refreshes this replica's heartbeat, registering it if its row is
    /// missing; `false` when it had to register (first start, or the
    /// others swept it as dead).
    pub async fn replica_heartbeat(
        &self,
        id: &str,
        ssh_address: Option<&str>,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let updated = write!(self, |p, _d| {
            sqlx::query("UPDATE replicas SET seen_at = $2, ssh_address = $3 WHERE id = $1")
                .bind(id)
                .bind(to_micros(now))
                .bind(ssh_address)
                .execute(p)
                .await?
                .rows_affected()
        });
        if updated == 1 {
            return Ok(true);
        }
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO replicas (id, ssh_address, version, started_at, seen_at)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (id) DO UPDATE SET seen_at = $4, ssh_address = $2",
            )
            .bind(id)
            .bind(ssh_address)
            .bind(version)
            .bind(to_micros(now))
            .execute(p)
            .await?;
        });
        Ok(false)
    }

    /// Every registered replica, with its tunnels and live sessions.
    pub async fn replicas(&self) -> Result<Vec<ReplicaRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT r.id, r.ssh_address, r.version, r.started_at, r.seen_at,
                        (SELECT COUNT(*) FROM relay_tunnels t WHERE t.replica = r.id) AS tunnels,
                        (SELECT COUNT(*) FROM remote_sessions s
                         WHERE s.replica = r.id AND s.ended_at IS NULL) AS sessions
                 FROM replicas r ORDER BY r.started_at, r.id",
            )
            .fetch_all(p)
            .await?
        }))
    }

    /// Replicas other than `me` not seen since `before` (dead).
    pub async fn dead_replicas(&self, me: &str, before: DateTime<Utc>) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = read!(self, |p, _d| {
            sqlx::query_as("SELECT id FROM replicas WHERE id <> $1 AND seen_at < $2")
                .bind(me)
                .bind(to_micros(before))
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Replica names on live sessions that no registered replica owns
    /// (left by a process that stopped before replicas were registered,
    /// or swept already).
    pub async fn unregistered_session_replicas(&self, me: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT DISTINCT s.replica FROM remote_sessions s
                 WHERE s.ended_at IS NULL AND s.replica <> $1
                   AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = s.replica)",
            )
            .bind(me)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The live sessions a replica carried.
    pub async fn live_sessions_of_replica(&self, replica: &str) -> Result<Vec<OrphanSession>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT s.id, c.number AS case_number, d.name AS device_name, s.user_id,
                        u.display_name AS user_name, s.source, s.port, s.started_at,
                        s.bytes_to_device, s.bytes_from_device
                 FROM remote_sessions s
                 JOIN cases c ON c.id = s.case_id
                 JOIN devices d ON d.id = s.device_id
                 JOIN users u ON u.id = s.user_id
                 WHERE s.replica = $1 AND s.ended_at IS NULL
                 ORDER BY s.id",
            )
            .bind(replica)
            .fetch_all(p)
            .await?
        }))
    }

    /// Forgets a dead replica and the tunnels it held (its sessions are
    /// ended one by one first, each with its case entry).
    pub async fn forget_replica(&self, id: &str) -> Result<()> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM relay_tunnels WHERE replica = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM replicas WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records a tunnel this replica now holds.
    pub async fn add_relay_tunnel(
        &self,
        replica: &str,
        conn: i64,
        agent_id: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO relay_tunnels (replica, conn, agent_id, connected_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (replica, conn) DO UPDATE SET agent_id = $3, connected_at = $4",
            )
            .bind(replica)
            .bind(conn)
            .bind(agent_id)
            .bind(to_micros(now))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Forgets a tunnel this replica no longer holds.
    pub async fn remove_relay_tunnel(&self, replica: &str, conn: i64) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query("DELETE FROM relay_tunnels WHERE replica = $1 AND conn = $2")
                .bind(replica)
                .bind(conn)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Replicas other than `me`, seen since `alive_since` and reachable,
    /// holding a tunnel of the agent: the newest tunnel first.
    pub async fn tunnel_holders(
        &self,
        agent_id: i64,
        me: &str,
        alive_since: DateTime<Utc>,
    ) -> Result<Vec<TunnelHolder>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT r.id AS replica, r.ssh_address
                 FROM relay_tunnels t JOIN replicas r ON r.id = t.replica
                 WHERE t.agent_id = $1 AND r.id <> $2 AND r.seen_at >= $3
                   AND r.ssh_address IS NOT NULL
                 GROUP BY r.id, r.ssh_address
                 ORDER BY MAX(t.connected_at) DESC",
            )
            .bind(agent_id)
            .bind(me)
            .bind(to_micros(alive_since))
            .fetch_all(p)
            .await?
        }))
    }
}
