//! The relay's API side: live and past sessions, killing one, the attempt
//! log, and binding a device to the agent that reaches it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Relay;
use crate::auth::{Action, Principal, Role};
use crate::cases::Cases;
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::store::relay::{AttemptRow, SessionRow};

/// A remote-login session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteSession {
    pub id: i64,
    pub case_number: String,
    pub device_id: i64,
    pub device_name: String,
    pub user_id: i64,
    pub username: String,
    /// The engineer's address as the relay saw it.
    pub source: String,
    /// What the engineer asked for (device name or case number) and the port.
    pub target: String,
    pub port: i64,
    pub live: bool,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub bytes_to_device: i64,
    pub bytes_from_device: i64,
    pub end_reason: Option<String>,
}

impl From<SessionRow> for RemoteSession {
    fn from(r: SessionRow) -> Self {
        RemoteSession {
            id: r.id,
            case_number: r.case_number,
            device_id: r.device_id,
            device_name: r.device_name,
            user_id: r.user_id,
            username: r.username,
            source: r.source,
            target: r.target,
            port: r.port,
            live: r.ended_at.is_none(),
            started_at: from_micros(r.started_at),
            ended_at: r.ended_at.map(from_micros),
            bytes_to_device: r.bytes_to_device,
            bytes_from_device: r.bytes_from_device,
            end_reason: r.end_reason,
        }
    }
}

/// One attempt to reach a device through the relay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteAttempt {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub username: String,
    pub user_id: Option<i64>,
    pub source: String,
    pub target: String,
    pub port: i64,
    pub allowed: bool,
    pub reason: String,
    pub case_id: Option<i64>,
    pub session_id: Option<i64>,
}

impl From<AttemptRow> for RemoteAttempt {
    fn from(r: AttemptRow) -> Self {
        RemoteAttempt {
            id: r.id,
            at: from_micros(r.at),
            username: r.username,
            user_id: r.user_id,
            source: r.source,
            target: r.target,
            port: r.port,
            allowed: r.allowed,
            reason: r.reason,
            case_id: r.case_id,
            session_id: r.session_id,
        }
    }
}

/// Binding a device to the agent that reaches it, under the name the agent
/// knows it by (a `[[tunnel.targets]]` or SNMP target name).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceAgent {
    /// The agent's id (UUID), as in `GET /agents`.
    pub agent_id: String,
    pub target: String,
}

/// Sessions, newest first (customers: on their own devices).
pub async fn sessions(
    cases: &Cases,
    who: &Principal,
    live: bool,
    case_number: Option<&str>,
) -> Result<Vec<RemoteSession>> {
    who.require(Action::ReadCase)?;
    let case_id = match case_number {
        Some(n) => Some(cases.get(who, n).await?.id),
        None => None,
    };
    let rows = cases
        .store
        .remote_sessions(live, case_id, who.organization_scope(), 500)
        .await?;
    Ok(rows.into_iter().map(RemoteSession::from).collect())
}

/// Ends a live session, on whichever replica holds it (within a second).
pub async fn kill(
    cases: &Cases,
    relay: Option<&Relay>,
    who: &Principal,
    id: i64,
) -> Result<RemoteSession> {
    who.require(Action::KillRemoteSession)?;
    let not_found = || Error::not_found(format!("remote session {id}"));
    let row = cases
        .store
        .remote_session(id)
        .await?
        .ok_or_else(not_found)?;
    if let Some(org) = who.organization_scope() {
        if org != row.organization_id {
            return Err(not_found());
        }
    }
    if row.ended_at.is_some() {
        return Err(Error::conflict(format!(
            "remote session {id} has ended already"
        )));
    }
    cases
        .store
        .request_session_kill(id, Some(who.user_id), cases.clock.now())
        .await?;
    if let Some(relay) = relay {
        relay.kill_local(id, &format!("killed by {}", who.username));
    }
    tracing::info!(session = id, by = %who.username, "relay: session kill requested");
    Ok(RemoteSession::from(row))
}

/// The latest attempts (staff only: they name engineers and addresses).
pub async fn attempts(cases: &Cases, who: &Principal, limit: i64) -> Result<Vec<RemoteAttempt>> {
    if who.role == Role::Customer {
        return Err(Error::forbidden(
            "customers may not read the relay's attempt log",
        ));
    }
    who.require(Action::ReadInternal)?;
    let rows = cases.store.remote_attempts(limit.clamp(1, 1000)).await?;
    Ok(rows.into_iter().map(RemoteAttempt::from).collect())
}

/// A server replica on the record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Replica {
    pub id: String,
    /// Where the other replicas reach its relay (none: they cannot).
    pub ssh_address: Option<String>,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub seen_at: DateTime<Utc>,
    /// Heard of within `relay.replica_timeout` (a dead one is swept by the
    /// others at their next heartbeat).
    pub alive: bool,
    /// The replica that answered this request.
    pub this: bool,
    /// Agent tunnels it holds.
    pub tunnels: i64,
    /// Live remote-login sessions it carries.
    pub sessions: i64,
}

/// The replicas sharing this database (admins).
pub async fn replicas(
    cases: &Cases,
    relay: Option<&Relay>,
    who: &Principal,
) -> Result<Vec<Replica>> {
    who.require(Action::ReadOperations)?;
    let timeout = relay
        .map(|r| r.inner.settings.replica_timeout)
        .unwrap_or(std::time::Duration::from_secs(30));
    let alive_since =
        cases.clock.now() - chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX);
    let me = relay.map(|r| r.replica_id().to_string());
    let rows = cases.store.replicas().await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let seen_at = from_micros(r.seen_at);
            Replica {
                this: me.as_deref() == Some(r.id.as_str()),
                alive: seen_at >= alive_since,
                id: r.id,
                ssh_address: r.ssh_address,
                version: r.version,
                started_at: from_micros(r.started_at),
                seen_at,
                tunnels: r.tunnels,
                sessions: r.sessions,
            }
        })
        .collect())
}

/// Binds a device to the agent of the same customer that reaches it.
pub async fn bind_device(
    cases: &Cases,
    who: &Principal,
    device_id: i64,
    req: &DeviceAgent,
) -> Result<crate::directory::Device> {
    who.require(Action::WriteDirectory)?;
    let target = crate::validate::text("target", &req.target, 253)?;
    let store = &cases.store;
    let device = store
        .device(device_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("device {device_id}")))?;
    let agent = store
        .agent_by_uuid(req.agent_id.trim())
        .await?
        .ok_or_else(|| {
            Error::invalid("agent_id", format!("agent {} does not exist", req.agent_id))
        })?;
    if agent.organization_id != device.organization_id {
        return Err(Error::invalid(
            "agent_id",
            "the agent belongs to another customer than the device",
        ));
    }
    if agent.revoked_at.is_some() {
        return Err(Error::invalid("agent_id", "the agent is revoked"));
    }
    store.bind_device_agent(device_id, agent.id, &target).await
}
