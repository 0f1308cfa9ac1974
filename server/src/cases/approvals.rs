//! Customer approval of remote login: where a case's contract asks for it, an
//! engineer reaches the device through the relay only while a customer user
//! has approved it for that case (with a reason, for a limited time; no one
//! approves themselves). Revoking an approval cuts live sessions within a
//! second (the relay's supervisor re-checks).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use super::{ActivityBody, Cases, UserRef, Visibility};
use crate::auth::{Principal, Role};
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::sla::policy::Span;
use crate::store::relay::ApprovalRow;
use crate::validate::text;

const DEFAULT_VALIDITY: Duration = Duration::from_secs(8 * 3600);
const MAX_VALIDITY: Duration = Duration::from_secs(7 * 86400);

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApproval {
    /// The engineer it covers; omitted: whoever holds the case (the
    /// assignee and escalated experts).
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Why access is granted (required).
    pub reason: String,
    /// How long, e.g. "4h" (default 8h, at most 7 days).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub valid_for: Option<Span>,
}

/// An approval as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub id: i64,
    pub case_number: String,
    pub user_id: Option<i64>,
    pub approved_by: i64,
    pub approver: String,
    pub reason: String,
    pub approved_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Not revoked and not expired.
    pub live: bool,
}

fn view(r: ApprovalRow, now: DateTime<Utc>) -> Approval {
    let expires_at = from_micros(r.expires_at);
    Approval {
        id: r.id,
        case_number: r.case_number,
        user_id: r.user_id,
        approved_by: r.approved_by,
        approver: r.approver,
        reason: r.reason,
        approved_at: from_micros(r.approved_at),
        live: r.revoked_at.is_none() && expires_at > now,
        expires_at,
        revoked_at: r.revoked_at.map(from_micros),
    }
}

impl Cases {
    /// A customer user approves remote login on one of their cases.
    pub async fn approve_remote(
        &self,
        who: &Principal,
        number: &str,
        req: &NewApproval,
    ) -> Result<Approval> {
        if who.role != Role::Customer {
            return Err(Error::forbidden(
                "remote login is approved by a user of the customer",
            ));
        }
        let reason = text("reason", &req.reason, 2000)?;
        let valid_for = req.valid_for.map(|s| s.0).unwrap_or(DEFAULT_VALIDITY);
        if valid_for < Duration::from_secs(60) || valid_for > MAX_VALIDITY {
            return Err(Error::invalid("valid_for", "between 1 minute and 7 days"));
        }
        let engineer: Option<UserRef> = match req.user_id {
            Some(id) if id == who.user_id => {
                return Err(Error::invalid(
                    "user_id",
                    "no one approves their own access",
                ))
            }
            Some(id) => Some(self.assignable(id, "user_id").await?),
            None => None,
        };
        let case = self.get(who, number).await?.to_case()?;
        if !case.status.is_open() {
            return Err(Error::conflict(format!(
                "case {} is {}: remote login ends with the case",
                case.number, case.status
            )));
        }
        let now = self.clock.now();
        let expires_at =
            now + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::MAX);
        let id = self
            .store
            .insert_remote_approval(case.id, req.user_id, who.user_id, &reason, now, expires_at)
            .await?;
        self.change(who, number, |_, _| {
            Ok(vec![(
                Visibility::Public,
                ActivityBody::RemoteApproval {
                    approval_id: id,
                    action: "approved".into(),
                    engineer: engineer.clone(),
                    reason: reason.clone(),
                    expires_at,
                },
            )])
        })
        .await?;
        let row = self
            .store
            .remote_approval(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("approval {id}")))?;
        Ok(view(row, now))
    }

    /// The approvals of a case, newest first.
    pub async fn remote_approvals(&self, who: &Principal, number: &str) -> Result<Vec<Approval>> {
        let case = self.get(who, number).await?;
        let now = self.clock.now();
        Ok(self
            .store
            .remote_approvals(case.id)
            .await?
            .into_iter()
            .map(|r| view(r, now))
            .collect())
    }

    /// Revokes an approval: by the customer's users, dispatchers or admins.
    pub async fn revoke_remote_approval(&self, who: &Principal, id: i64) -> Result<Approval> {
        if !matches!(who.role, Role::Customer | Role::Dispatcher | Role::Admin) {
            return Err(Error::forbidden(
                "approvals are revoked by the customer, a dispatcher or an admin",
            ));
        }
        let not_found = || Error::not_found(format!("approval {id}"));
        let row = self
            .store
            .remote_approval(id)
            .await?
            .ok_or_else(not_found)?;
        if !who.sees_organization(row.organization_id) {
            return Err(not_found());
        }
        let now = self.clock.now();
        if !self
            .store
            .revoke_remote_approval(id, who.user_id, now)
            .await?
        {
            return Err(Error::conflict(format!(
                "approval {id} was revoked already"
            )));
        }
        let engineer = match row.user_id {
            Some(uid) => self.store.user(uid).await?.map(|u| UserRef {
                id: u.id,
                name: u.display_name,
            }),
            None => None,
        };
        self.change(who, &row.case_number, |_, _| {
            Ok(vec![(
                Visibility::Public,
                ActivityBody::RemoteApproval {
                    approval_id: id,
                    action: "revoked".into(),
                    engineer: engineer.clone(),
                    reason: row.reason.clone(),
                    expires_at: from_micros(row.expires_at),
                },
            )])
        })
        .await?;
        let row = self
            .store
            .remote_approval(id)
            .await?
            .ok_or_else(not_found)?;
        Ok(view(row, now))
    }
}
