//! SQL for agents: enrolment tokens, enrolled agents, processed message keys,
//! devices reported by inventory, the LLDP topology, and the open case of a
//! fault (see `migrations/*/0005_agents.sql`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::directory::{DeviceRow, DEVICE_COLS};
use super::{map_db_err, read, write, Dialect, Store};
use crate::clock::{from_micros, to_micros};
use crate::directory::Device;
use crate::error::{Error, Result};

/// An enrolled agent as stored.
#[derive(Debug, Clone, FromRow)]
pub struct AgentRow {
    pub id: i64,
    pub uuid: String,
    pub organization_id: i64,
    pub site_id: Option<i64>,
    pub public_key: String,
    pub fingerprint: String,
    pub hostname: String,
    pub agent_version: String,
    pub os: String,
    pub arch: String,
    pub heartbeat_secs: i64,
    pub enrolled_at: i64,
    pub last_seen_at: Option<i64>,
    pub spool_depth: Option<i64>,
    pub lost_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The replica holding its remote-login tunnel (read by the lookups
    /// that list agents; absent elsewhere).
    #[sqlx(default)]
    pub tunnel_replica: Option<String>,
    /// The agent's clock minus the server's at its last heartbeat, seconds.
    pub clock_skew_secs: Option<i64>,
}

const AGENT_COLS: &str = "id, uuid, organization_id, site_id, public_key, fingerprint, hostname, agent_version, os, arch, heartbeat_secs, enrolled_at, last_seen_at, spool_depth, lost_at, revoked_at, clock_skew_secs";

/// The replica holding an agent's tunnel (the newest, if several).
const TUNNEL_REPLICA: &str = "(SELECT t.replica FROM relay_tunnels t WHERE t.agent_id = agents.id
     ORDER BY t.connected_at DESC LIMIT 1) AS tunnel_replica";

/// What enrolment records about a new agent.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub uuid: String,
    pub public_key: String,
    pub fingerprint: String,
    pub hostname: String,
    pub agent_version: String,
    pub os: String,
    pub arch: String,
    pub heartbeat_secs: i64,
}

/// An enrolment token to store (its hash only).
#[derive(Debug, Clone)]
pub struct NewEnrollmentToken {
    pub token_hash: String,
    pub organization_id: i64,
    pub site_id: Option<i64>,
    pub note: Option<String>,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A stored enrolment token: id, organisation, site, expiry, use.
type TokenRow = (i64, i64, Option<i64>, i64, Option<i64>);

/// Why an enrolment token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Used,
    Expired,
}

/// What an inventory report says about one device.
#[derive(Debug, Clone)]
pub struct ReportedDevice {
    pub target: String,
    pub name: String,
    pub device_type: &'static str,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub firmware_version: Option<String>,
    pub software_version: Option<String>,
    pub sys_object_id: String,
}

/// One LLDP link as stored, with the reporting agent's host name.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct LinkRow {
    pub agent_id: i64,
    pub device: String,
    pub local_port: String,
    pub remote_chassis_id: Option<String>,
    pub remote_sys_name: Option<String>,
    pub remote_port: String,
    pub remote_port_descr: Option<String>,
    #[schema(value_type = i64)]
    pub collected_at: i64,
}

impl Store {
    pub async fn insert_enrollment_token(&self, t: &NewEnrollmentToken) -> Result<i64> {
        Ok(write!(self, |p, _d| {
            sqlx::query_scalar(
                "INSERT INTO enrollment_tokens (token_hash, organization_id, site_id, note, created_by, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&t.token_hash)
            .bind(t.organization_id)
            .bind(t.site_id)
            .bind(&t.note)
            .bind(t.created_by)
            .bind(to_micros(t.created_at))
            .bind(to_micros(t.expires_at))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "organization_id"))?
        }))
    }

    /// Consume an enrolment token and record the agent, in one transaction.
    pub async fn enroll_agent(
        &self,
        token_hash: &str,
        a: &NewAgent,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<AgentRow, TokenProblem>> {
        write!(self, |p, d| {
            let mut tx = p.begin().await?;
            let lock = match d {
                Dialect::Postgres => " FOR UPDATE",
                Dialect::Sqlite => "",
            };
            let tok: Option<TokenRow> = sqlx::query_as(&format!(
                "SELECT id, organization_id, site_id, expires_at, used_at FROM enrollment_tokens
                 WHERE token_hash = $1{lock}"
            ))
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((tok_id, org, site, expires_at, used_at)) = tok else {
                return Ok(Err(TokenProblem::Unknown));
            };
            if used_at.is_some() {
                return Ok(Err(TokenProblem::Used));
            }
            if expires_at <= to_micros(now) {
                return Ok(Err(TokenProblem::Expired));
            }
            let row: AgentRow = sqlx::query_as(&format!(
                "INSERT INTO agents (uuid, organization_id, site_id, public_key, fingerprint, hostname,
                    agent_version, os, arch, heartbeat_secs, enrolled_at, last_seen_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {AGENT_COLS}"
            ))
            .bind(&a.uuid)
            .bind(org)
            .bind(site)
            .bind(&a.public_key)
            .bind(&a.fingerprint)
            .bind(&a.hostname)
            .bind(&a.agent_version)
            .bind(&a.os)
            .bind(&a.arch)
            .bind(a.heartbeat_secs)
            .bind(to_micros(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "public_key"))?;
            sqlx::query("UPDATE enrollment_tokens SET used_at = $1, agent_id = $2 WHERE id = $3")
                .bind(to_micros(now))
                .bind(row.id)
                .bind(tok_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(row))
        })
    }

    pub async fn agent_by_uuid(&self, uuid: &str) -> Result<Option<AgentRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("SELECT {AGENT_COLS} FROM agents WHERE uuid = $1"))
                .bind(uuid)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn agent(&self, id: i64) -> Result<Option<AgentRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {AGENT_COLS}, {TUNNEL_REPLICA} FROM agents WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(p)
            .await?
        }))
    }

    pub async fn agents(&self, organization: Option<i64>) -> Result<Vec<AgentRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {AGENT_COLS}, {TUNNEL_REPLICA} FROM agents
                 WHERE ($1 IS NULL OR organization_id = $1) ORDER BY id"
            ))
            .bind(organization)
            .fetch_all(p)
            .await?
        }))
    }

    /// Revoke an agent at once; false if it was revoked already.
    pub async fn revoke_agent(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        Ok(write!(self, |p, _d| {
            sqlx::query("UPDATE agents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_micros(now))
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Record a sign of life; returns whether the agent had been marked lost.
    pub async fn touch_agent(
        &self,
        id: i64,
        now: DateTime<Utc>,
        spool_depth: Option<i64>,
        version: Option<&str>,
        clock_skew_secs: Option<i64>,
    ) -> Result<bool> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let lost: Option<Option<i64>> =
                sqlx::query_scalar("SELECT lost_at FROM agents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            sqlx::query(
                "UPDATE agents SET last_seen_at = $1, spool_depth = COALESCE($2, spool_depth),
                    agent_version = COALESCE($3, agent_version), lost_at = NULL,
                    clock_skew_secs = COALESCE($5, clock_skew_secs) WHERE id = $4",
            )
            .bind(to_micros(now))
            .bind(spool_depth)
            .bind(version)
            .bind(id)
            .bind(clock_skew_secs)
            .execute(&mut *tx)
            .await?;
            if lost.flatten().is_some() {
                sqlx::query("UPDATE devices SET stale_since = NULL WHERE agent_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(lost.flatten().is_some())
        })
    }

    /// Mark an agent lost if it has not been seen since `cutoff`, and its
    /// devices stale, in one transaction; true if this call marked it.
    pub async fn mark_agent_lost(
        &self,
        id: i64,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let marked = sqlx::query(
                "UPDATE agents SET lost_at = $1
                 WHERE id = $2 AND lost_at IS NULL AND revoked_at IS NULL
                   AND (last_seen_at IS NULL OR last_seen_at <= $3)",
            )
            .bind(to_micros(now))
            .bind(id)
            .bind(to_micros(cutoff))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if marked {
                // Its devices' readings are no longer current.
                sqlx::query(
                    "UPDATE devices SET stale_since = $1 WHERE agent_id = $2 AND stale_since IS NULL",
                )
                .bind(to_micros(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(marked)
        })
    }

    /// Whether a message with this idempotency key was applied.
    pub async fn agent_event_seen(&self, key: &str) -> Result<bool> {
        let n: i64 = read!(self, |p, _d| {
            sqlx::query_scalar("SELECT COUNT(*) FROM agent_events WHERE idempotency_key = $1")
                .bind(key)
                .fetch_one(p)
                .await?
        });
        Ok(n > 0)
    }

    pub async fn record_agent_event(
        &self,
        key: &str,
        agent_id: i64,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO agent_events (idempotency_key, agent_id, received_at, case_id)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(key)
            .bind(agent_id)
            .bind(to_micros(now))
            .bind(case_id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// The open case (not resolved or closed) tracking a fault, if any.
    /// (id, number).
    pub async fn open_fault_case(
        &self,
        agent_id: i64,
        fault_key: &str,
    ) -> Result<Option<(i64, String)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, number FROM cases WHERE agent_id = $1 AND fault_key = $2
                   AND status NOT IN ('resolved', 'closed')",
            )
            .bind(agent_id)
            .bind(fault_key)
            .fetch_optional(p)
            .await?
        }))
    }

    /// The device an agent reports under `target`, if known.
    pub async fn device_by_target(&self, agent_id: i64, target: &str) -> Result<Option<Device>> {
        let row: Option<DeviceRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {DEVICE_COLS} FROM devices WHERE agent_id = $1 AND agent_target = $2
                 ORDER BY id LIMIT 1"
            ))
            .bind(agent_id)
            .bind(target)
            .fetch_optional(p)
            .await?
        });
        row.map(DeviceRow::into_view).transpose()
    }

    /// Create or update a device from an agent's inventory: matched by serial
    /// within the agent's organisation (any vendor spelling), else created.
    /// Returns the device and whether it was created.
    pub async fn upsert_reported_device(
        &self,
        agent_id: i64,
        organization_id: i64,
        site_id: Option<i64>,
        d: &ReportedDevice,
        now: DateTime<Utc>,
    ) -> Result<(Device, bool)> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM devices WHERE organization_id = $1 AND serial = $2 ORDER BY id LIMIT 1",
            )
            .bind(organization_id)
            .bind(&d.serial)
            .fetch_optional(&mut *tx)
            .await?;
            let (row, created): (DeviceRow, bool) = match existing {
                Some(id) => (
                    sqlx::query_as(&format!(
                        "UPDATE devices SET agent_id = $1, agent_target = $2, model = $3,
                            firmware_version = COALESCE($4, firmware_version),
                            software_version = COALESCE($5, software_version),
                            sys_object_id = $6, last_seen_at = $7, stale_since = NULL
                         WHERE id = $8 RETURNING {DEVICE_COLS}"
                    ))
                    .bind(agent_id)
                    .bind(&d.target)
                    .bind(&d.model)
                    .bind(&d.firmware_version)
                    .bind(&d.software_version)
                    .bind(&d.sys_object_id)
                    .bind(to_micros(now))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?,
                    false,
                ),
                None => (
                    sqlx::query_as(&format!(
                        "INSERT INTO devices (organization_id, site_id, name, device_type, vendor, model, serial,
                            firmware_version, software_version, sys_object_id, agent_id, agent_target,
                            last_seen_at, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
                         RETURNING {DEVICE_COLS}"
                    ))
                    .bind(organization_id)
                    .bind(site_id)
                    .bind(&d.name)
                    .bind(d.device_type)
                    .bind(&d.vendor)
                    .bind(&d.model)
                    .bind(&d.serial)
                    .bind(&d.firmware_version)
                    .bind(&d.software_version)
                    .bind(&d.sys_object_id)
                    .bind(agent_id)
                    .bind(&d.target)
                    .bind(to_micros(now))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| map_db_err(e, "serial"))?,
                    true,
                ),
            };
            tx.commit().await?;
            Ok((row.into_view()?, created))
        })
    }

    /// Replace an agent's LLDP links.
    pub async fn replace_topology(
        &self,
        agent_id: i64,
        links: &[outpost_protocol::LldpLink],
        at: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM topology_links WHERE agent_id = $1")
                .bind(agent_id)
                .execute(&mut *tx)
                .await?;
            for l in links {
                sqlx::query(
                    "INSERT INTO topology_links (agent_id, device, local_port, remote_chassis_id,
                        remote_sys_name, remote_port, remote_port_descr, collected_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(agent_id)
                .bind(&l.device)
                .bind(&l.local_port)
                .bind(&l.remote_chassis_id)
                .bind(&l.remote_sys_name)
                .bind(&l.remote_port)
                .bind(&l.remote_port_descr)
                .bind(to_micros(at))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<(), Error>(())
        })?;
        Ok(())
    }

    /// Every LLDP link reported by the organisation's agents.
    pub async fn topology_links(&self, organization_id: i64) -> Result<Vec<LinkRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT l.agent_id, l.device, l.local_port, l.remote_chassis_id, l.remote_sys_name,
                        l.remote_port, l.remote_port_descr, l.collected_at
                 FROM topology_links l JOIN agents a ON a.id = l.agent_id
                 WHERE a.organization_id = $1 AND a.revoked_at IS NULL
                 ORDER BY l.device, l.local_port",
            )
            .bind(organization_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// Open fault cases per device of an organisation (for colouring).
    pub async fn open_fault_counts(&self, organization_id: i64) -> Result<Vec<(i64, i64)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT device_id, COUNT(*) FROM cases
                 WHERE organization_id = $1 AND device_id IS NOT NULL
                   AND status NOT IN ('resolved', 'closed')
                 GROUP BY device_id",
            )
            .bind(organization_id)
            .fetch_all(p)
            .await?
        }))
    }
}

/// When the agent was last heard of, as an instant.
pub fn seen(row: &AgentRow) -> Option<DateTime<Utc>> {
    row.last_seen_at.map(from_micros)
}
