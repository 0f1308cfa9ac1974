//! Agents: enrolment, request authentication, and what the server does with
//! each message an agent sends (heartbeat, inventory, topology, fault).
//!
//! - Enrolment consumes a one-time, expiring token created by an admin or
//!   dispatcher for a customer (and site) and records the agent's ed25519
//!   public key; the agent is that customer's from then on.
//! - Every later request is signed with that key (`outpost_protocol::uplink`);
//!   a revoked agent is refused at once, a skewed clock gets `clock_skew`.
//! - Faults become cases ([`faults`]): one open case per fault key, notes on
//!   return and recovery, idempotent by the event's key.
//! - A durable timer per agent (`agent:<id>`/`lost`), re-armed by every
//!   heartbeat, raises the `agent_lost` fault when heartbeats stop.

pub mod faults;
pub mod inventory;
pub mod topology;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use outpost_protocol::{
    AgentAuth, AgentMessage, BatchResult, EnrollRequest, EnrollResponse, Outcome, OutcomeStatus,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use crate::auth::{generate_token, hash_token, Action, Principal};
use crate::cases::Cases;
use crate::error::{Error, Result};
use crate::sla::policy::Span;
use crate::store::agents::{AgentRow, NewAgent, TokenProblem};

/// The `[agents]` config section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// How often agents send a heartbeat. Default 60s.
    pub heartbeat_interval: Option<Span>,
    /// Missed heartbeats before an agent is lost (a fault). Default 3.
    pub lost_after: Option<u32>,
    /// Validity of a new enrolment token. Default 24h.
    pub enrollment_token_ttl: Option<Span>,
    /// Rules whose cases resolve by themselves when the fault clears.
    /// Default: cold_start, host_reboot, agent_lost.
    pub auto_resolve: Option<Vec<String>>,
    /// The pin agents trust when TLS ends in front of the server (a proxy or
    /// load balancer): hex SHA-256 of its key's SubjectPublicKeyInfo. With
    /// `server.tls_cert` the pin is computed from the key and this is unset.
    pub server_tls_pin: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub heartbeat_interval: Duration,
    pub lost_after: u32,
    pub enrollment_token_ttl: Duration,
    pub auto_resolve: Vec<outpost_protocol::FaultRule>,
    /// The relay's SSH host key, handed to agents at enrolment.
    pub ssh_host_key: Option<String>,
    /// The pin of the TLS key agents connect to, handed to them at enrolment.
    pub tls_pin: Option<String>,
    /// The URL agents enrol with (for the command shown with a token).
    pub public_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        use outpost_protocol::FaultRule as R;
        Settings {
            heartbeat_interval: Duration::from_secs(60),
            lost_after: 3,
            enrollment_token_ttl: Duration::from_secs(24 * 3600),
            auto_resolve: vec![R::ColdStart, R::HostReboot, R::AgentLost],
            ssh_host_key: None,
            tls_pin: None,
            public_url: None,
        }
    }
}

impl AgentSpec {
    pub fn build(self) -> std::result::Result<Settings, String> {
        let d = Settings::default();
        let auto_resolve = match self.auto_resolve {
            None => d.auto_resolve,
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.parse().map_err(|_| {
                        format!(
                            "agents.auto_resolve[{i}]: {r:?} is not a rule ({})",
                            outpost_protocol::FaultRule::ALL
                                .iter()
                                .map(|r| r.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                })
                .collect::<std::result::Result<_, _>>()?,
        };
        let s = Settings {
            heartbeat_interval: self
                .heartbeat_interval
                .map(|s| s.0)
                .unwrap_or(d.heartbeat_interval),
            lost_after: self.lost_after.unwrap_or(d.lost_after),
            enrollment_token_ttl: self
                .enrollment_token_ttl
                .map(|s| s.0)
                .unwrap_or(d.enrollment_token_ttl),
            auto_resolve,
            ssh_host_key: None,
            tls_pin: match self.server_tls_pin {
                None => None,
                Some(pin) => Some(
                    outpost_protocol::parse_tls_pin(&pin)
                        .map_err(|e| format!("agents.server_tls_pin: {e}"))?,
                ),
            },
            public_url: None,
        };
        if s.heartbeat_interval < Duration::from_secs(1) {
            return Err("agents.heartbeat_interval: at least 1s".into());
        }
        if s.lost_after == 0 {
            return Err("agents.lost_after: at least 1".into());
        }
        Ok(s)
    }
}

/// The request for an enrolment token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentToken {
    pub organization_id: i64,
    #[serde(default)]
    pub site_id: Option<i64>,
    /// Where it is meant to be used, for the record.
    #[serde(default)]
    pub note: Option<String>,
    /// Validity, e.g. "24h" (default from `[agents]`; at most 30 days).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub valid_for: Option<Span>,
}

/// A fresh enrolment token: shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentToken {
    pub id: i64,
    pub token: String,
    pub organization_id: i64,
    pub site_id: Option<i64>,
    pub expires_at: DateTime<Utc>,
    /// The pin of the server's TLS key, which the agent must be told when
    /// the certificate is not signed by a CA it trusts (self-signed).
    pub server_tls_pin_sha256: Option<String>,
    /// The command to run on the customer host.
    pub enroll_command: String,
}

/// An agent as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    pub id: i64,
    /// The agent's identity (in every message it sends).
    pub agent_id: String,
    pub organization_id: i64,
    pub site_id: Option<i64>,
    pub hostname: String,
    pub agent_version: String,
    pub os: String,
    pub arch: String,
    /// SHA256 fingerprint of its public key.
    pub fingerprint: String,
    pub enrolled_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Messages waiting in its spool at the last heartbeat.
    pub spool_depth: Option<i64>,
    /// `online`, `lost` or `revoked`.
    pub state: String,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The server replica holding its remote-login tunnel (none: no
    /// tunnel up).
    pub tunnel_replica: Option<String>,
    /// The agent's clock minus the server's at its last heartbeat, in
    /// seconds (as the agent measured it from the server's `Date` header,
    /// else from the heartbeat's send time). Release signatures do not
    /// depend on it.
    pub clock_skew_secs: Option<i64>,
}

impl AgentView {
    fn from_row(r: AgentRow) -> AgentView {
        let state = if r.revoked_at.is_some() {
            "revoked"
        } else if r.lost_at.is_some() {
            "lost"
        } else {
            "online"
        };
        AgentView {
            id: r.id,
            agent_id: r.uuid,
            organization_id: r.organization_id,
            site_id: r.site_id,
            hostname: r.hostname,
            agent_version: r.agent_version,
            os: r.os,
            arch: r.arch,
            fingerprint: r.fingerprint,
            enrolled_at: crate::clock::from_micros(r.enrolled_at),
            last_seen_at: r.last_seen_at.map(crate::clock::from_micros),
            spool_depth: r.spool_depth,
            state: state.into(),
            revoked_at: r.revoked_at.map(crate::clock::from_micros),
            tunnel_replica: r.tunnel_replica,
            clock_skew_secs: r.clock_skew_secs,
        }
    }
}

/// Why a signed request was refused.
#[derive(Debug)]
pub enum AuthFailure {
    /// The timestamp is too far from the server's clock.
    ClockSkew {
        server_now: DateTime<Utc>,
    },
    Refused(String),
}

#[derive(Clone)]
pub struct Agents {
    pub cases: Cases,
    /// Upgrade campaigns: the jobs agents carry out and report.
    pub upgrades: crate::upgrades::Upgrades,
    pub settings: std::sync::Arc<Settings>,
}

/// Decode an `ssh-ed25519` OpenSSH public key to its 32 key bytes.
pub fn ed25519_key(line: &str) -> Result<(VerifyingKey, crate::directory::ParsedSshKey)> {
    let parsed = crate::directory::parse_ssh_key(line)?;
    let mut parts = parsed.key.split_whitespace();
    if parts.next() != Some("ssh-ed25519") {
        return Err(Error::invalid("public_key", "agents use ssh-ed25519 keys"));
    }
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(parts.next().unwrap_or_default())
        .map_err(|_| Error::invalid("public_key", "key data is not base64"))?;
    // string "ssh-ed25519" (4 + 11 bytes), then string key (4 + 32 bytes)
    let key: [u8; 32] = blob
        .get(19..51)
        .filter(|_| blob.len() == 51 && blob.get(15..19) == Some(&[0, 0, 0, 32][..]))
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| Error::invalid("public_key", "not a 32-byte ed25519 key"))?;
    let vk = VerifyingKey::from_bytes(&key)
        .map_err(|_| Error::invalid("public_key", "not a valid ed25519 point"))?;
    Ok((vk, parsed))
}

/// The agent's clock minus ours: what the agent measured from our `Date`
/// header if it says, else its heartbeat's send time against our clock
/// (which includes the transit time, well under a second).
fn clock_skew(h: &outpost_protocol::Heartbeat, now: DateTime<Utc>) -> i64 {
    const BOUND: i64 = 100 * 365 * 86_400;
    h.clock_skew_secs
        .unwrap_or_else(|| (h.sent_at - now).num_seconds())
        .clamp(-BOUND, BOUND)
}

fn outcome(status: OutcomeStatus, detail: Option<String>) -> Outcome {
    Outcome { status, detail }
}

impl Agents {
    pub fn new(cases: Cases, settings: Settings) -> Agents {
        Agents {
            upgrades: crate::upgrades::Upgrades::new(cases.clone()),
            cases,
            settings: std::sync::Arc::new(settings),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.cases.clock.now()
    }

    /// Create a one-time enrolment token (admins and dispatchers).
    pub async fn create_token(
        &self,
        who: &Principal,
        req: &NewEnrollmentToken,
    ) -> Result<EnrollmentToken> {
        who.require(Action::WriteDirectory)?;
        let store = &self.cases.store;
        if store.organization(req.organization_id).await?.is_none() {
            return Err(Error::invalid(
                "organization_id",
                format!("organization {} does not exist", req.organization_id),
            ));
        }
        if let Some(site) = req.site_id {
            match store.site(site).await? {
                Some(s) if s.organization_id == req.organization_id => {}
                _ => {
                    return Err(Error::invalid(
                        "site_id",
                        format!(
                            "site {site} is not a site of organization {}",
                            req.organization_id
                        ),
                    ))
                }
            }
        }
        let ttl = req
            .valid_for
            .map(|s| s.0)
            .unwrap_or(self.settings.enrollment_token_ttl);
        if ttl.is_zero() || ttl > Duration::from_secs(30 * 86400) {
            return Err(Error::invalid("valid_for", "between 1s and 30 days"));
        }
        let note = crate::validate::opt_text("note", &req.note, 500)?;
        let token = generate_token();
        let now = self.now();
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let id = store
            .insert_enrollment_token(&crate::store::agents::NewEnrollmentToken {
                token_hash: hash_token(&token),
                organization_id: req.organization_id,
                site_id: req.site_id,
                note,
                created_by: who.user_id,
                created_at: now,
                expires_at,
            })
            .await?;
        let mut enroll_command = format!(
            "outpost-agent enroll --server {} --token {token}",
            self.settings
                .public_url
                .as_deref()
                .unwrap_or("URL")
                .trim_end_matches('/')
        );
        if let Some(pin) = &self.settings.tls_pin {
            enroll_command.push_str(" --tls-pin ");
            enroll_command.push_str(pin);
        }
        Ok(EnrollmentToken {
            id,
            token,
            organization_id: req.organization_id,
            site_id: req.site_id,
            expires_at,
            server_tls_pin_sha256: self.settings.tls_pin.clone(),
            enroll_command,
        })
    }

    /// Exchange an enrolment token for an identity.
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse> {
        outpost_protocol::check_version(req.protocol_version)
            .map_err(|e| Error::invalid("protocol_version", e))?;
        let (_, parsed) = ed25519_key(&req.public_key)?;
        let text = |f: &str, v: &str, max: usize| crate::validate::text(f, v, max);
        let uuid = uuid::Uuid::new_v4();
        let agent = NewAgent {
            uuid: uuid.to_string(),
            public_key: parsed.key,
            fingerprint: parsed.fingerprint,
            hostname: text("hostname", &req.hostname, 253)?,
            agent_version: text("agent_version", &req.agent_version, 64)?,
            os: text("os", &req.os, 64)?,
            arch: text("arch", &req.arch, 64)?,
            heartbeat_secs: i64::try_from(self.settings.heartbeat_interval.as_secs()).unwrap_or(60),
        };
        if req.token.len() > 200 {
            return Err(Error::Unauthorized("enrolment token unknown".into()));
        }
        let now = self.now();
        let row = match self
            .cases
            .store
            .enroll_agent(&hash_token(&req.token), &agent, now)
            .await?
        {
            Ok(row) => row,
            Err(TokenProblem::Unknown) => {
                return Err(Error::Unauthorized("enrolment token unknown".into()))
            }
            Err(TokenProblem::Used) => {
                return Err(Error::Unauthorized(
                    "enrolment token was used already; ask for a new one".into(),
                ))
            }
            Err(TokenProblem::Expired) => {
                return Err(Error::Unauthorized(
                    "enrolment token has expired; ask for a new one".into(),
                ))
            }
        };
        tracing::info!(agent = %row.uuid, host = %row.hostname, organization = row.organization_id, "agent enrolled");
        self.arm_lost_timer(&row, now).await?;
        Ok(EnrollResponse {
            agent_id: uuid,
            server_tls_pin_sha256: self.settings.tls_pin.clone(),
            ssh_host_key: self.settings.ssh_host_key.clone(),
            heartbeat_interval_secs: u32::try_from(row.heartbeat_secs).unwrap_or(60),
        })
    }

    /// Check a signed request: the agent exists, is not revoked, the clock is
    /// close enough, and the signature holds over exactly these bytes.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> std::result::Result<AgentRow, AuthFailure> {
        let refuse = |m: &str| AuthFailure::Refused(m.to_string());
        let header = header.ok_or_else(|| refuse("missing Authorization: Outpost-Agent ..."))?;
        let auth = AgentAuth::parse(header).map_err(AuthFailure::Refused)?;
        let row = self
            .cases
            .store
            .agent_by_uuid(&auth.agent_id.to_string())
            .await
            .map_err(|e| AuthFailure::Refused(format!("cannot check the agent: {e}")))?
            .ok_or_else(|| refuse("unknown agent; enrol it again"))?;
        if row.revoked_at.is_some() {
            return Err(refuse("this agent's identity is revoked"));
        }
        let (key, _) = ed25519_key(&row.public_key).map_err(|_| refuse("stored key unusable"))?;
        let signature =
            Signature::from_slice(&auth.signature).map_err(|_| refuse("bad signature"))?;
        let input = outpost_protocol::signing_input(
            method,
            path_and_query,
            auth.agent_id,
            auth.timestamp,
            body,
        );
        key.verify(&input, &signature)
            .map_err(|_| refuse("signature does not match"))?;
        let now = self.now();
        if (now.timestamp() - auth.timestamp).abs() > outpost_protocol::MAX_SKEW_SECS {
            return Err(AuthFailure::ClockSkew { server_now: now });
        }
        Ok(row)
    }

    /// Decode and apply a batch in order; one outcome per message. A message
    /// that does not decode is rejected alone, never the whole batch.
    pub async fn receive_json(&self, agent: &AgentRow, body: &[u8]) -> Result<BatchResult> {
        #[derive(Deserialize)]
        struct Envelope {
            messages: Vec<serde_json::Value>,
        }
        let env: Envelope = serde_json::from_slice(body)
            .map_err(|e| Error::invalid("messages", format!("not a batch: {e}")))?;
        let decoded = env
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_path_to_error::deserialize::<_, AgentMessage>(v)
                    .map_err(|e| format!("messages[{i}].{}: {}", e.path(), e.inner()))
            })
            .collect();
        self.receive(agent, decoded).await
    }

    /// Apply decoded messages in order; one outcome per message.
    pub async fn receive(
        &self,
        agent: &AgentRow,
        messages: Vec<std::result::Result<AgentMessage, String>>,
    ) -> Result<BatchResult> {
        if messages.len() > outpost_protocol::MAX_BATCH {
            return Err(Error::invalid(
                "messages",
                format!("at most {} per batch", outpost_protocol::MAX_BATCH),
            ));
        }
        let mut results = Vec::with_capacity(messages.len());
        for m in &messages {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(agent = %agent.hostname, error = %e, "agent message rejected");
                    results.push(outcome(OutcomeStatus::Rejected, Some(e.clone())));
                    continue;
                }
            };
            if let Err(e) = outpost_protocol::check_version(m.protocol_version()) {
                results.push(outcome(OutcomeStatus::Rejected, Some(e.to_string())));
                continue;
            }
            if m.agent_id().to_string() != agent.uuid {
                results.push(outcome(
                    OutcomeStatus::Rejected,
                    Some("agent_id is not the signing agent".into()),
                ));
                continue;
            }
            let r = match m {
                AgentMessage::Heartbeat(h) => self.heartbeat(agent, h).await,
                AgentMessage::Inventory(i) => inventory::apply(self, agent, i).await,
                AgentMessage::Topology(t) => self
                    .cases
                    .store
                    .replace_topology(agent.id, &t.links, t.collected_at)
                    .await
                    .map(|_| {
                        outcome(
                            OutcomeStatus::Accepted,
                            Some(format!("{} links", t.links.len())),
                        )
                    }),
                AgentMessage::Fault(f) => faults::apply(self, agent, f).await,
                AgentMessage::Update(u) => {
                    crate::releases::record_update(&self.cases.store, self.now(), agent, u).await
                }
                AgentMessage::Job(j) => self.upgrades.report(agent, j).await,
            };
            match r {
                Ok(o) => results.push(o),
                // Bad content will never apply: reject it. Anything else
                // (database down) fails the batch so the agent retries.
                Err(Error::Invalid { field, message }) => results.push(outcome(
                    OutcomeStatus::Rejected,
                    Some(format!("{field}: {message}")),
                )),
                Err(e) => return Err(e),
            }
        }
        // A heartbeat's answer says what waits for the agent.
        let hints = if messages
            .iter()
            .any(|m| matches!(m, Ok(AgentMessage::Heartbeat(_))))
        {
            Some(self.upgrades.hints(agent).await?)
        } else {
            None
        };
        Ok(BatchResult { results, hints })
    }

    async fn heartbeat(
        &self,
        agent: &AgentRow,
        h: &outpost_protocol::Heartbeat,
    ) -> Result<Outcome> {
        let now = self.now();
        let was_lost = self
            .cases
            .store
            .touch_agent(
                agent.id,
                now,
                i64::try_from(h.spool_depth).ok(),
                Some(&h.agent_version)
                    .filter(|v| !v.is_empty() && v.len() <= 64)
                    .map(String::as_str),
                Some(clock_skew(h, now)),
            )
            .await?;
        self.arm_lost_timer(agent, now).await?;
        if was_lost {
            faults::agent_back(self, agent, now).await?;
        }
        Ok(outcome(OutcomeStatus::Accepted, None))
    }

    /// (Re)arm the agent-lost deadline: `lost_after` heartbeats from now.
    async fn arm_lost_timer(&self, agent: &AgentRow, now: DateTime<Utc>) -> Result<()> {
        let due = now + self.lost_window(agent);
        self.cases
            .store
            .rearm_timer(&format!("agent:{}", agent.id), "lost", due, now)
            .await
    }

    fn lost_window(&self, agent: &AgentRow) -> chrono::Duration {
        let secs = agent.heartbeat_secs.max(1) * i64::from(self.settings.lost_after);
        chrono::Duration::seconds(secs)
    }

    /// The agent-lost timer fired: if still unheard of, raise `agent_lost`.
    pub async fn lost_timer(&self, owner: &str) -> Result<()> {
        let Some(id) = owner
            .strip_prefix("agent:")
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return Ok(());
        };
        let Some(agent) = self.cases.store.agent(id).await? else {
            return Ok(());
        };
        let now = self.now();
        let cutoff = now - self.lost_window(&agent) + chrono::Duration::milliseconds(500);
        if self.cases.store.mark_agent_lost(id, cutoff, now).await? {
            tracing::warn!(agent = %agent.uuid, host = %agent.hostname, "agent lost: no heartbeat");
            faults::agent_lost(self, &agent, now).await?;
        }
        Ok(())
    }

    pub async fn list(&self, who: &Principal, organization: Option<i64>) -> Result<Vec<AgentView>> {
        who.require(Action::ReadDirectory)?;
        let org = match who.organization_scope() {
            Some(own) => Some(own),
            None => organization,
        };
        Ok(self
            .cases
            .store
            .agents(org)
            .await?
            .into_iter()
            .map(AgentView::from_row)
            .collect())
    }

    pub async fn get(&self, who: &Principal, id: i64) -> Result<AgentView> {
        who.require(Action::ReadDirectory)?;
        let row = self
            .cases
            .store
            .agent(id)
            .await?
            .filter(|a| who.sees_organization(Some(a.organization_id)))
            .ok_or_else(|| Error::not_found(format!("agent {id}")))?;
        Ok(AgentView::from_row(row))
    }

    /// Revoke an agent's identity: every request from it is refused at once.
    pub async fn revoke(&self, who: &Principal, id: i64) -> Result<AgentView> {
        who.require(Action::WriteDirectory)?;
        let now = self.now();
        self.get(who, id).await?;
        if self.cases.store.revoke_agent(id, now).await? {
            self.cases
                .store
                .cancel_timers(&format!("agent:{id}"), None)
                .await?;
            tracing::warn!(agent = id, by = %who.username, "agent revoked");
        }
        self.get(who, id).await
    }
}
