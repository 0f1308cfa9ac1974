//! Who may reach which device: a grant is an open case on the device on
//! which the engineer is the assignee or an escalated expert.
//!
//! The engineer names the device (case-insensitively) or the case number.
//! A name shared by devices of several cases they hold is refused as
//! ambiguous (connect by case number then); devices of other customers are
//! never considered, because only cases the engineer holds are.

use crate::store::relay::GrantRow;
use crate::store::Store;

/// A live grant, resolved to the agent tunnel that reaches the device.
#[derive(Debug, Clone)]
pub struct Grant {
    pub case_id: i64,
    pub case_number: String,
    pub device_id: i64,
    pub device_name: String,
    pub agent_id: i64,
    /// The name the agent knows the device by.
    pub agent_target: String,
    /// `assignee` or `expert`.
    pub role: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no open case assigned or escalated to this engineer names {0:?}")]
    NoGrant(String),
    #[error(
        "{0:?} names devices on several of this engineer's cases ({1}); connect by case number"
    )]
    Ambiguous(String, String),
    #[error("case {0} needs a customer's approval for remote login (none is live)")]
    NotApproved(String),
    #[error("device {0} of case {1} is not reached through an agent")]
    NoAgent(String, String),
    #[error("looking up grants failed: {0}")]
    Store(String),
}

/// The grant `user_id` holds for `target` (a device name or case number).
pub async fn resolve(
    store: &Store,
    user_id: i64,
    target: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Grant, Refusal> {
    let target = target.trim();
    if target.is_empty() || target.len() > 253 {
        return Err(Refusal::NoGrant(target.chars().take(64).collect()));
    }
    let rows = store
        .remote_grants(user_id, target, now)
        .await
        .map_err(|e| Refusal::Store(e.to_string()))?;
    choose(target, rows)
}

/// Picks the grant among the matching open cases (pure, for tests).
pub fn choose(target: &str, rows: Vec<GrantRow>) -> Result<Grant, Refusal> {
    let mut devices: Vec<i64> = rows.iter().map(|r| r.device_id).collect();
    devices.sort_unstable();
    devices.dedup();
    if devices.len() > 1 {
        let cases: Vec<&str> = rows.iter().map(|r| r.case_number.as_str()).collect();
        return Err(Refusal::Ambiguous(target.to_string(), cases.join(", ")));
    }
    // Of several cases on the device, one the customer approved (or that
    // needs no approval) grants access.
    let mut rows = rows;
    rows.sort_by_key(|r| (r.approval_required && !r.approved, r.case_id));
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| Refusal::NoGrant(target.to_string()))?;
    if row.approval_required && !row.approved {
        return Err(Refusal::NotApproved(row.case_number));
    }
    match (row.agent_id, row.agent_target) {
        (Some(agent_id), Some(agent_target)) => Ok(Grant {
            case_id: row.case_id,
            case_number: row.case_number,
            device_id: row.device_id,
            device_name: row.device_name,
            agent_id,
            agent_target,
            role: row.role,
        }),
        _ => Err(Refusal::NoAgent(row.device_name, row.case_number)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: i64, device: i64, agent: Option<i64>) -> GrantRow {
        GrantRow {
            case_id: case,
            case_number: format!("C-2026-{case:06}"),
            device_id: device,
            device_name: "core-sw-1".into(),
            organization_id: 1,
            agent_id: agent,
            agent_target: agent.map(|_| "sw1".into()),
            role: "assignee".into(),
            approval_required: false,
            approved: false,
        }
    }

    #[test]
    fn one_device_several_cases_is_fine_several_devices_is_not() {
        let g = choose("core-sw-1", vec![row(1, 7, Some(3)), row(2, 7, Some(3))]).expect("grant");
        assert_eq!(
            (g.case_id, g.agent_id, g.agent_target.as_str()),
            (1, 3, "sw1")
        );
        assert!(matches!(
            choose("core-sw-1", vec![row(1, 7, Some(3)), row(2, 8, Some(3))]),
            Err(Refusal::Ambiguous(..))
        ));
        assert!(matches!(choose("x", vec![]), Err(Refusal::NoGrant(_))));
        assert!(matches!(
            choose("core-sw-1", vec![row(1, 7, None)]),
            Err(Refusal::NoAgent(..))
        ));
        let mut needs = row(1, 7, Some(3));
        needs.approval_required = true;
        assert!(matches!(
            choose("core-sw-1", vec![needs.clone()]),
            Err(Refusal::NotApproved(_))
        ));
        // Another open case on the same device that needs no approval grants.
        let g = choose("core-sw-1", vec![needs.clone(), row(2, 7, Some(3))]).expect("grant");
        assert_eq!(g.case_id, 2);
        needs.approved = true;
        assert_eq!(choose("core-sw-1", vec![needs]).map(|g| g.case_id), Ok(1));
    }
}
