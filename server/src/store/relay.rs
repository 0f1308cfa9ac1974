//! SQL for the remote-login relay: its host key, who may reach which device
//! (open cases, assignees and escalated experts), sessions and attempts.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{read, write, Store};
use crate::clock::to_micros;
use crate::error::Result;

/// An open case that lets a user reach a device through an agent.
#[derive(Debug, Clone, FromRow)]
pub struct GrantRow {
    pub case_id: i64,
    pub case_number: String,
    pub device_id: i64,
    pub device_name: String,
    pub organization_id: i64,
    pub agent_id: Option<i64>,
    pub agent_target: Option<String>,
    /// `assignee` or `expert`.
    pub role: String,
    /// The contract wants a customer's approval for remote login.
    pub approval_required: bool,
    /// A live approval covers this engineer on this case.
    pub approved: bool,
}

/// A new session, as the relay records it when it starts.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub case_id: i64,
    pub device_id: i64,
    pub user_id: i64,
    pub agent_id: i64,
    pub source: &'a str,
    pub target: &'a str,
    pub port: u32,
    pub replica: &'a str,
    pub started_at: DateTime<Utc>,
}

/// An attempt to reach a device, allowed or not.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub at: DateTime<Utc>,
    pub username: &'a str,
    pub user_id: Option<i64>,
    pub source: &'a str,
    pub target: &'a str,
    pub port: u32,
    pub allowed: bool,
    pub reason: &'a str,
    pub case_id: Option<i64>,
    pub session_id: Option<i64>,
}

/// A session as listed.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: i64,
    pub case_id: i64,
    pub case_number: String,
    pub device_id: i64,
    pub device_name: String,
    pub user_id: i64,
    pub username: String,
    pub agent_id: i64,
    pub organization_id: i64,
    pub source: String,
    pub target: String,
    pub port: i64,
    pub replica: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub bytes_to_device: i64,
    pub bytes_from_device: i64,
    pub end_reason: Option<String>,
}

/// A live session of this replica and whether it may go on.
#[derive(Debug, Clone, FromRow)]
pub struct LiveCheck {
    pub id: i64,
    pub case_open: bool,
    pub still_on_case: bool,
    /// No approval needed, or a live one covers the session.
    pub approved: bool,
    pub killed: bool,
}

const SESSION_SELECT: &str = "SELECT s.id, s.case_id, c.number AS case_number, s.device_id,
        d.name AS device_name, s.user_id, u.username, s.agent_id, d.organization_id, s.source,
        s.target, s.port, s.replica, s.started_at, s.ended_at, s.bytes_to_device,
        s.bytes_from_device, s.end_reason
     FROM remote_sessions s
     JOIN cases c ON c.id = s.case_id
     JOIN devices d ON d.id = s.device_id
     JOIN users u ON u.id = s.user_id";

impl Store {
    /// The relay's host key (OpenSSH private key text), stored once for all
    /// replicas: `candidate` is kept if none is stored yet.
    pub async fn relay_host_key(&self, candidate: &str, now: DateTime<Utc>) -> Result<String> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO meta (key, value, updated_at) VALUES ($3, $1, $2)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(candidate)
            .bind(to_micros(now))
            .bind(crate::relay::HOST_KEY_META)
            .execute(p)
            .await?;
        });
        Ok(self
            .meta(crate::relay::HOST_KEY_META)
            .await?
            .unwrap_or_else(|| candidate.to_string()))
    }

    /// The active user owning an SSH key with this fingerprint, if the user
    /// name matches: (user id, display name).
    pub async fn ssh_key_owner(
        &self,
        username: &str,
        fingerprint: &str,
    ) -> Result<Option<(i64, String, String)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT u.id, u.display_name, u.role FROM ssh_keys k JOIN users u ON u.id = k.user_id
                 WHERE k.fingerprint = $1 AND u.username = $2 AND u.active",
            )
            .bind(fingerprint)
            .bind(username)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Open cases on which `user_id` is the assignee or an escalated expert
    /// and whose device is named `target` (case-insensitively), or whose
    /// number is `target`.
    pub async fn remote_grants(
        &self,
        user_id: i64,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<GrantRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT c.id AS case_id, c.number AS case_number, d.id AS device_id,
                        d.name AS device_name, d.organization_id, d.agent_id, d.agent_target,
                        CASE WHEN c.assignee_id = $1 THEN 'assignee' ELSE 'expert' END AS role,
                        COALESCE(k.remote_access_approval, FALSE) AS approval_required,
                        EXISTS (SELECT 1 FROM remote_approvals a
                                WHERE a.case_id = c.id AND (a.user_id IS NULL OR a.user_id = $1)
                                  AND a.revoked_at IS NULL AND a.expires_at > $3) AS approved
                 FROM cases c JOIN devices d ON d.id = c.device_id
                 LEFT JOIN contracts k ON k.id = c.contract_id
                 WHERE c.status NOT IN ('resolved', 'closed')
                   AND (c.assignee_id = $1
                        OR EXISTS (SELECT 1 FROM case_experts e
                                   WHERE e.case_id = c.id AND e.user_id = $1))
                   AND (c.number = $2 OR lower(d.name) = lower($2))
                 ORDER BY c.id",
            )
            .bind(user_id)
            .bind(target)
            .bind(to_micros(now))
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn insert_remote_session(&self, s: &NewSession<'_>) -> Result<i64> {
        Ok(write!(self, |p, _d| {
            sqlx::query_scalar(
                "INSERT INTO remote_sessions (case_id, device_id, user_id, agent_id, source, target,
                    port, replica, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(s.case_id)
            .bind(s.device_id)
            .bind(s.user_id)
            .bind(s.agent_id)
            .bind(s.source)
            .bind(s.target)
            .bind(i64::from(s.port))
            .bind(s.replica)
            .bind(to_micros(s.started_at))
            .fetch_one(p)
            .await?
        }))
    }

    /// Records the end of a session (once: an ended session stays as it is).
    pub async fn end_remote_session(
        &self,
        id: i64,
        ended_at: DateTime<Utc>,
        to_device: u64,
        from_device: u64,
        reason: &str,
    ) -> Result<bool> {
        let n = write!(self, |p, _d| {
            sqlx::query(
                "UPDATE remote_sessions SET ended_at = $1, bytes_to_device = $2,
                    bytes_from_device = $3, end_reason = $4
                 WHERE id = $5 AND ended_at IS NULL",
            )
            .bind(to_micros(ended_at))
            .bind(i64::try_from(to_device).unwrap_or(i64::MAX))
            .bind(i64::try_from(from_device).unwrap_or(i64::MAX))
            .bind(reason)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Ends the sessions still live on `replica` (every replica if `None`),
    /// with `reason`; returns how many.
    pub async fn end_live_sessions(
        &self,
        replica: Option<&str>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(write!(self, |p, _d| {
            sqlx::query(
                "UPDATE remote_sessions SET ended_at = $1, end_reason = $3
                 WHERE ($2 IS NULL OR replica = $2) AND ended_at IS NULL",
            )
            .bind(to_micros(now))
            .bind(replica)
            .bind(reason)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    pub async fn insert_remote_attempt(&self, a: &Attempt<'_>) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO remote_attempts (at, username, user_id, source, target, port, allowed,
                    reason, case_id, session_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(to_micros(a.at))
            .bind(a.username)
            .bind(a.user_id)
            .bind(a.source)
            .bind(a.target)
            .bind(i64::from(a.port))
            .bind(a.allowed)
            .bind(a.reason)
            .bind(a.case_id)
            .bind(a.session_id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Whether each live session of `replica` may go on.
    pub async fn check_live_sessions(
        &self,
        replica: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<LiveCheck>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT s.id,
                        c.status NOT IN ('resolved', 'closed') AS case_open,
                        (c.assignee_id = s.user_id
                         OR EXISTS (SELECT 1 FROM case_experts e
                                    WHERE e.case_id = c.id AND e.user_id = s.user_id)) AS still_on_case,
                        (NOT COALESCE(k.remote_access_approval, FALSE)
                         OR EXISTS (SELECT 1 FROM remote_approvals a
                                    WHERE a.case_id = c.id
                                      AND (a.user_id IS NULL OR a.user_id = s.user_id)
                                      AND a.revoked_at IS NULL AND a.expires_at > $2)) AS approved,
                        s.kill_requested_at IS NOT NULL AS killed
                 FROM remote_sessions s JOIN cases c ON c.id = s.case_id
                 LEFT JOIN contracts k ON k.id = c.contract_id
                 WHERE s.replica = $1 AND s.ended_at IS NULL",
            )
            .bind(replica)
            .bind(to_micros(now))
            .fetch_all(p)
            .await?
        }))
    }

    /// Sessions, newest first: live ones only if `live`; of one case if given.
    pub async fn remote_sessions(
        &self,
        live: bool,
        case_id: Option<i64>,
        organization_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<SessionRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{SESSION_SELECT}
                 WHERE ($1 = FALSE OR s.ended_at IS NULL)
                   AND ($2 IS NULL OR s.case_id = $2)
                   AND ($3 IS NULL OR d.organization_id = $3)
                 ORDER BY s.id DESC LIMIT $4"
            ))
            .bind(live)
            .bind(case_id)
            .bind(organization_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn remote_session(&self, id: i64) -> Result<Option<SessionRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{SESSION_SELECT} WHERE s.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Live sessions of a user, on every replica.
    pub async fn live_sessions_of(&self, user_id: i64) -> Result<i64> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM remote_sessions WHERE user_id = $1 AND ended_at IS NULL",
            )
            .bind(user_id)
            .fetch_one(p)
            .await?
        }))
    }

    /// Asks the replica holding a live session to end it.
    pub async fn request_session_kill(
        &self,
        id: i64,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = write!(self, |p, _d| {
            sqlx::query(
                "UPDATE remote_sessions SET kill_requested_at = $1, kill_requested_by = $2
                 WHERE id = $3 AND ended_at IS NULL AND kill_requested_at IS NULL",
            )
            .bind(to_micros(now))
            .bind(by)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Escalates a case to an expert (idempotent).
    pub async fn add_case_expert(
        &self,
        case_id: i64,
        user_id: i64,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = write!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO case_experts (case_id, user_id, added_by, added_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (case_id, user_id) DO NOTHING",
            )
            .bind(case_id)
            .bind(user_id)
            .bind(by)
            .bind(to_micros(now))
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records which agent reaches a device, and under which target name.
    pub async fn bind_device_agent(
        &self,
        device_id: i64,
        agent_id: i64,
        target: &str,
    ) -> Result<crate::directory::Device> {
        let row: Option<super::directory::DeviceRow> = write!(self, |p, _d| {
            sqlx::query_as(&format!(
                "UPDATE devices SET agent_id = $1, agent_target = $2 WHERE id = $3
                 RETURNING {}",
                super::directory::DEVICE_COLS
            ))
            .bind(agent_id)
            .bind(target)
            .bind(device_id)
            .fetch_optional(p)
            .await?
        });
        row.ok_or_else(|| crate::error::Error::not_found(format!("device {device_id}")))?
            .into_view()
    }

    /// Recent attempts, newest first.
    pub async fn remote_attempts(&self, limit: i64) -> Result<Vec<AttemptRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, at, username, user_id, source, target, port, allowed, reason, case_id,
                        session_id
                 FROM remote_attempts ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }
}

/// A customer's approval of remote login on a case.
#[derive(Debug, Clone, FromRow)]
pub struct ApprovalRow {
    pub id: i64,
    pub case_id: i64,
    pub case_number: String,
    pub organization_id: Option<i64>,
    pub user_id: Option<i64>,
    pub approved_by: i64,
    pub approver: String,
    pub reason: String,
    pub approved_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

const APPROVAL_SELECT: &str = "SELECT a.id, a.case_id, c.number AS case_number, c.organization_id,
        a.user_id, a.approved_by, u.display_name AS approver, a.reason, a.approved_at,
        a.expires_at, a.revoked_at
     FROM remote_approvals a JOIN cases c ON c.id = a.case_id JOIN users u ON u.id = a.approved_by";

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_remote_approval(
        &self,
        case_id: i64,
        user_id: Option<i64>,
        approved_by: i64,
        reason: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(write!(self, |p, _d| {
            sqlx::query_scalar(
                "INSERT INTO remote_approvals (case_id, user_id, approved_by, reason, approved_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(case_id)
            .bind(user_id)
            .bind(approved_by)
            .bind(reason)
            .bind(to_micros(now))
            .bind(to_micros(expires_at))
            .fetch_one(p)
            .await?
        }))
    }

    pub async fn remote_approvals(&self, case_id: i64) -> Result<Vec<ApprovalRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{APPROVAL_SELECT} WHERE a.case_id = $1 ORDER BY a.id DESC"
            ))
            .bind(case_id)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn remote_approval(&self, id: i64) -> Result<Option<ApprovalRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{APPROVAL_SELECT} WHERE a.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Revokes an approval (once).
    pub async fn revoke_remote_approval(
        &self,
        id: i64,
        by: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = write!(self, |p, _d| {
            sqlx::query(
                "UPDATE remote_approvals SET revoked_at = $1, revoked_by = $2
                 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(to_micros(now))
            .bind(by)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}

/// An attempt as listed.
#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub id: i64,
    pub at: i64,
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
