//! From an agent's fault events to cases.
//!
//! - Raised, and no open case tracks the fault key: open one (channel agent,
//!   linked to the device, its contract and customer, with the evidence). The
//!   database allows one open case per (agent, fault key), so two replicas
//!   racing open one; the loser notes the event on the winner's case.
//! - Raised while a case is open for the key: a `returned` entry on it.
//! - Cleared: a `cleared` entry (the recovery note); the case resolves by
//!   itself if the rule is in `agents.auto_resolve`.
//! - Every event is applied once: its idempotency key is recorded, and the
//!   case history is checked for it (covering a crash between the two).

use chrono::{DateTime, Utc};
use outpost_protocol::{
    FaultEvent, FaultKey, FaultRule, FaultTransition, Outcome, OutcomeStatus, Severity,
};

use super::Agents;
use crate::cases::{
    ActivityBody, CaseType, Channel, FaultChange, FaultEvidence, Priority, Status, Visibility,
};
use crate::error::{Error, Result};
use crate::store::agents::AgentRow;
use crate::store::cases::CaseInsert;

/// Priority of a new case from the fault's severity.
pub fn priority(s: Severity) -> Priority {
    match s {
        Severity::Critical => Priority::P1,
        Severity::Major => Priority::P2,
        Severity::Minor => Priority::P3,
        Severity::Warning => Priority::P4,
    }
}

fn case_type(rule: FaultRule) -> CaseType {
    match rule {
        FaultRule::DeviceUnreachable | FaultRule::LinkDown | FaultRule::AgentLost => {
            CaseType::NetworkFault
        }
        FaultRule::SensorFailure | FaultRule::PowerSupplyFailure => CaseType::HardwareFault,
        FaultRule::ColdStart | FaultRule::HostReboot | FaultRule::Threshold => CaseType::Other,
    }
}

fn author(agent: &AgentRow) -> String {
    format!("Outpost agent on {}", agent.hostname)
}

fn evidence(ev: &FaultEvent) -> Vec<FaultEvidence> {
    ev.evidence
        .iter()
        .take(200)
        .map(|e| FaultEvidence {
            name: e.name.chars().take(200).collect(),
            value: e.value.chars().take(2000).collect(),
            observed_at: e.observed_at,
        })
        .collect()
}

fn entry(agent: &AgentRow, ev: &FaultEvent, change: FaultChange) -> ActivityBody {
    ActivityBody::Fault {
        transition: change,
        fault_key: ev.fault_key.as_string(),
        rule: ev.fault_key.rule.as_str().into(),
        severity: format!("{:?}", ev.severity).to_lowercase(),
        summary: ev.summary.chars().take(500).collect(),
        observed_at: ev.observed_at,
        evidence: evidence(ev),
        agent: agent.hostname.clone(),
        idempotency_key: ev.idempotency_key.to_string(),
    }
}

/// Whether the case's history already holds this event.
async fn recorded(a: &Agents, case_id: i64, key: &str) -> Result<bool> {
    Ok(a.cases.store.entries(case_id).await?.iter().any(|e| {
        e.kind == "fault"
            && matches!(
                serde_json::from_str::<ActivityBody>(&e.body),
                Ok(ActivityBody::Fault { idempotency_key, .. }) if idempotency_key == key
            )
    }))
}

async fn done(a: &Agents, agent: &AgentRow, key: &str, case_id: Option<i64>) -> Result<()> {
    a.cases
        .store
        .record_agent_event(key, agent.id, case_id, a.now())
        .await
}

/// Apply one fault event.
pub async fn apply(a: &Agents, agent: &AgentRow, ev: &FaultEvent) -> Result<Outcome> {
    let key = ev.idempotency_key.to_string();
    if a.cases.store.agent_event_seen(&key).await? {
        return Ok(Outcome {
            status: OutcomeStatus::Duplicate,
            detail: None,
        });
    }
    if ev.summary.trim().is_empty() {
        return Err(Error::invalid("summary", "must not be empty"));
    }
    let fault_key = ev.fault_key.as_string();
    let store = &a.cases.store;
    // Two tries: a racing replica may open the case between our look and insert.
    for _ in 0..2 {
        let open = store.open_fault_case(agent.id, &fault_key).await?;
        match (ev.transition, open) {
            (t, Some((case_id, number))) => {
                if recorded(a, case_id, &key).await? {
                    done(a, agent, &key, Some(case_id)).await?;
                    return Ok(Outcome {
                        status: OutcomeStatus::Duplicate,
                        detail: Some(number),
                    });
                }
                let change = match t {
                    FaultTransition::Raised => FaultChange::Returned,
                    FaultTransition::Cleared => FaultChange::Cleared,
                };
                a.cases
                    .record_system(
                        &number,
                        &author(agent),
                        Visibility::Public,
                        &entry(agent, ev, change),
                    )
                    .await?;
                if t == FaultTransition::Cleared
                    && a.settings.auto_resolve.contains(&ev.fault_key.rule)
                {
                    a.cases
                        .resolve_system(
                            &number,
                            &author(agent),
                            &format!(
                                "the fault cleared at {} (automatic for {})",
                                ev.observed_at.format("%Y-%m-%d %H:%M:%S UTC"),
                                ev.fault_key.rule
                            ),
                        )
                        .await?;
                }
                done(a, agent, &key, Some(case_id)).await?;
                return Ok(Outcome {
                    status: OutcomeStatus::Accepted,
                    detail: Some(number),
                });
            }
            (FaultTransition::Cleared, None) => {
                // Nothing open: the case was resolved by hand, or never opened.
                done(a, agent, &key, None).await?;
                return Ok(Outcome {
                    status: OutcomeStatus::Accepted,
                    detail: Some("no open case for this fault".into()),
                });
            }
            (FaultTransition::Raised, None) => match open_case(a, agent, ev).await {
                Ok((case_id, number)) => {
                    done(a, agent, &key, Some(case_id)).await?;
                    return Ok(Outcome {
                        status: OutcomeStatus::Accepted,
                        detail: Some(number),
                    });
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            },
        }
    }
    Err(Error::Conflict(format!(
        "fault {fault_key}: the open case changed twice while applying"
    )))
}

/// Open the case for a new fault: (id, number).
async fn open_case(a: &Agents, agent: &AgentRow, ev: &FaultEvent) -> Result<(i64, String)> {
    let store = &a.cases.store;
    let now = a.now();
    let device = store
        .device_by_target(agent.id, &ev.fault_key.device)
        .await?;
    let contract_id = match &device {
        Some(d) => {
            store
                .active_contract_for_device(d.id, now.date_naive())
                .await?
        }
        None => None,
    };
    let p = priority(ev.severity);
    let summary: String = ev.summary.trim().chars().take(200).collect();
    let mut details = format!(
        "Detected by the Outpost agent on {} (rule {}, severity {:?}) at {}.\nFault key: {}\n",
        agent.hostname,
        ev.fault_key.rule,
        ev.severity,
        ev.observed_at.format("%Y-%m-%d %H:%M:%S UTC"),
        ev.fault_key.as_string()
    );
    if device.is_none() {
        details.push_str(&format!(
            "The agent's target {:?} matches no device record yet (no inventory with a serial).\n",
            ev.fault_key.device
        ));
    }
    for e in evidence(ev) {
        details.push_str(&format!(
            "{} = {} ({})\n",
            e.name,
            e.value,
            e.observed_at.format("%H:%M:%S")
        ));
    }
    let ct = case_type(ev.fault_key.rule);
    let insert = CaseInsert {
        organization_id: Some(agent.organization_id),
        contract_id,
        device_id: device.as_ref().map(|d| d.id),
        caller_name: author(agent),
        caller_company: None,
        caller_phone: None,
        caller_email: None,
        caller_contract: None,
        summary: summary.clone(),
        details: details.chars().take(20_000).collect(),
        priority: p.level(),
        status: Status::New.as_str().into(),
        case_type: ct.as_str().into(),
        vendor: device.as_ref().map(|d| d.vendor.clone()),
        channel: Channel::Agent.as_str().into(),
        assignee_id: None,
        created_by: None,
        created_at: now,
        agent_id: Some(agent.id),
        fault_key: Some(ev.fault_key.as_string()),
    };
    let opened = ActivityBody::Opened {
        summary,
        priority: p,
        channel: Channel::Agent,
        case_type: ct,
    };
    let (id, number) = a
        .cases
        .open_system(
            &author(agent),
            &insert,
            &[
                (Visibility::Public, opened),
                (Visibility::Public, entry(agent, ev, FaultChange::Raised)),
            ],
        )
        .await?;
    tracing::info!(case = %number, fault = %ev.fault_key, agent = %agent.hostname, "agent fault opened a case");
    Ok((id, number))
}

fn lost_event(agent: &AgentRow, t: FaultTransition, at: DateTime<Utc>) -> Result<FaultEvent> {
    let key = FaultKey::new(agent.hostname.replace('/', "_"), FaultRule::AgentLost, "")
        .map_err(|e| Error::Corrupt(format!("agent host name as fault key: {e}")))?;
    let uuid = agent.uuid.parse().unwrap_or_else(|_| uuid::Uuid::nil());
    Ok(FaultEvent {
        protocol_version: outpost_protocol::PROTOCOL_VERSION,
        // One key per transition and time, so a retried handler finds it.
        idempotency_key: {
            use sha2::Digest;
            let d = sha2::Sha256::digest(
                format!("{}/agent_lost/{t:?}/{}", agent.uuid, at.timestamp_micros()).as_bytes(),
            );
            let mut b = [0u8; 16];
            b.copy_from_slice(&d[..16]);
            uuid::Uuid::from_bytes(b)
        },
        agent_id: uuid,
        fault_key: key,
        transition: t,
        severity: Severity::Major,
        observed_at: at,
        summary: match t {
            FaultTransition::Raised => format!(
                "Agent on {} stopped reporting (no heartbeat)",
                agent.hostname
            ),
            FaultTransition::Cleared => format!("Agent on {} is reporting again", agent.hostname),
        },
        evidence: vec![outpost_protocol::Evidence {
            name: "last_heartbeat".into(),
            value: agent
                .last_seen_at
                .map(|t| crate::clock::from_micros(t).to_rfc3339())
                .unwrap_or_else(|| "never".into()),
            observed_at: at,
        }],
    })
}

/// Heartbeats stopped: the server itself raises `agent_lost`.
pub async fn agent_lost(a: &Agents, agent: &AgentRow, at: DateTime<Utc>) -> Result<()> {
    apply(a, agent, &lost_event(agent, FaultTransition::Raised, at)?).await?;
    Ok(())
}

/// A lost agent is heard again: clear `agent_lost`.
pub async fn agent_back(a: &Agents, agent: &AgentRow, at: DateTime<Utc>) -> Result<()> {
    apply(a, agent, &lost_event(agent, FaultTransition::Cleared, at)?).await?;
    Ok(())
}
