//! Who is calling and what they may do.
//!
//! API tokens are 32 random bytes shown once; only their SHA-256 is stored.
//! [`Principal`] is the authenticated caller; [`Action`] names everything that
//! needs permission, and [`Principal::may`] is the one table that decides.
//! Data scoping (a customer sees only its own organisation) is enforced where
//! data is read, through [`Principal::organization_scope`].

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use utoipa::ToSchema;

use crate::cases::model::text_enum;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Dispatcher,
    Engineer,
    Expert,
    RmaAdmin,
    /// One of the five manager levels (SPEC.md 1); the level is on the user.
    Manager,
    /// A customer user, bound to one organisation.
    Customer,
}

text_enum!(Role, "role", {
    Admin => "admin", Dispatcher => "dispatcher", Engineer => "engineer", Expert => "expert",
    RmaAdmin => "rma_admin", Manager => "manager", Customer => "customer",
});

impl Role {
    pub fn is_staff(self) -> bool {
        self != Role::Customer
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub manager_level: Option<i64>,
    /// Set for customer users: the only organisation they may see.
    pub organization_id: Option<i64>,
}

/// Everything that needs a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ManageUsers,
    WriteDirectory,
    ReadDirectory,
    CreateCase,
    ReadCase,
    AddPublicNote,
    AddInternalNote,
    RecordCall,
    RecordFieldVisit,
    ChangeStatus,
    ChangePriority,
    Classify,
    Assign,
    TakeOver,
    ReadInternal,
    /// File the fault analysis report of a case.
    WriteFaultReport,
    /// End a live remote-login session (customers: on their own devices).
    KillRemoteSession,
    /// Escalate a case to an expert (who may then reach its device).
    EscalateToExpert,
    /// Read reports over all cases: the SLA and survey reports, the
    /// manager dashboard (staff, as for internal notes).
    ReadReports,
    /// Create parts and warehouses, change stock, and move spare shipments
    /// (approve, refuse, pick, ship, deliver, return, receive, repair,
    /// scrap, close, cancel).
    ManageSpares,
    /// See parts, warehouses, stock and shipments.
    ReadSpares,
    /// Ask for a spare for a case's device.
    RequestSpare,
    /// See the server's own state: its replicas, their tunnels and
    /// sessions (admins).
    ReadOperations,
    /// Search the knowledge base and read its articles (staff).
    ReadKnowledge,
    /// Draft, edit and submit knowledge-base articles.
    WriteKnowledge,
    /// Publish or return an article in review (someone other than its
    /// author or submitter).
    ReviewKnowledge,
    /// Read (and download) an organisation's service report: staff, and a
    /// customer for its own organisation.
    ReadServiceReport,
    /// Set an organisation's service-report schedule.
    ManageReportSchedules,
    /// Hand raw e-mail to the server (the mail gateway's token).
    IngestMail,
    /// See kept e-mail: the held, refused and malformed messages and their
    /// raw bytes.
    ReadMail,
    /// Add releases to the catalog and upload their artifacts.
    PublishReleases,
    /// See the release catalog, download artifacts, see agents' updates.
    ReadReleases,
    /// Create upgrade campaigns and start, pause, resume or abort them.
    ManageCampaigns,
    /// See upgrade campaigns, their jobs and recorded steps.
    ReadCampaigns,
}

impl Principal {
    /// The permission table. Customers pass some checks here but are further
    /// limited by [`Principal::organization_scope`] and, for status changes,
    /// by `cases::customer_may_set`.
    pub fn may(&self, action: Action) -> bool {
        use Action::*;
        use Role::*;
        match (self.role, action) {
            // Taking a case over makes you its assignee: engineers and experts only.
            (r, TakeOver) => matches!(r, Engineer | Expert),
            (Admin, _) => true,
            (_, PublishReleases) => false,
            (r, ReadReleases) => r.is_staff(),
            (r, ManageCampaigns) => r == Manager,
            (r, ReadCampaigns) => r.is_staff(),
            (r, ManageSpares) => r == RmaAdmin,
            (r, ReadSpares) => r.is_staff(),
            (r, RequestSpare) => matches!(r, Dispatcher | Engineer | Expert | Manager | RmaAdmin),
            // A customer may cut remote access to its own equipment.
            (r, KillRemoteSession) => matches!(r, Dispatcher | Manager | Customer),
            (r, EscalateToExpert) => matches!(r, Dispatcher | Engineer | Expert | Manager),
            (
                Customer,
                CreateCase | ReadCase | AddPublicNote | ReadDirectory | ChangeStatus
                | ReadServiceReport,
            ) => true,
            (Customer, _) => false,
            (_, ManageUsers | ReadOperations) => false,
            (_, ReadKnowledge | ReadServiceReport) => true,
            (r, WriteKnowledge) => matches!(r, Dispatcher | Engineer | Expert | Manager),
            (r, ReviewKnowledge) => matches!(r, Expert | Manager),
            (r, ManageReportSchedules) => r == Manager,
            (Dispatcher, IngestMail | ReadMail) => true,
            (_, IngestMail | ReadMail) => false,
            (Dispatcher, WriteDirectory) => true,
            (_, WriteDirectory) => false,
            (
                _,
                ReadDirectory | CreateCase | ReadCase | AddPublicNote | AddInternalNote
                | ReadInternal | ReadReports,
            ) => true,
            (RmaAdmin, RecordCall) => true,
            (RmaAdmin, _) => false,
            (
                Dispatcher | Engineer | Expert | Manager,
                RecordCall | ChangeStatus | ChangePriority | Classify | WriteFaultReport,
            ) => true,
            (Dispatcher | Engineer | Expert, RecordFieldVisit) => true,
            (Manager, RecordFieldVisit) => false,
            (Dispatcher | Manager, Assign) => true,
            (Engineer | Expert, Assign) => false,
        }
    }

    pub fn require(&self, action: Action) -> Result<(), Error> {
        if self.may(action) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "role {} may not {}",
                self.role,
                action_words(action)
            )))
        }
    }

    /// `Some(org)` when the caller may only see one organisation's data.
    pub fn organization_scope(&self) -> Option<i64> {
        if self.role == Role::Customer {
            // A customer user always has an organisation (a CHECK constraint);
            // -1 matches nothing should that ever be violated.
            Some(self.organization_id.unwrap_or(-1))
        } else {
            None
        }
    }

    /// Whether the caller may see data of `org`.
    pub fn sees_organization(&self, org: Option<i64>) -> bool {
        match self.organization_scope() {
            None => true,
            Some(own) => org == Some(own),
        }
    }
}

fn action_words(a: Action) -> &'static str {
    match a {
        Action::ManageUsers => "manage users",
        Action::WriteDirectory => "change the customer directory",
        Action::ReadDirectory => "read the customer directory",
        Action::CreateCase => "open cases",
        Action::ReadCase => "read cases",
        Action::AddPublicNote => "add notes",
        Action::AddInternalNote => "add internal notes",
        Action::RecordCall => "record calls",
        Action::RecordFieldVisit => "record field visits",
        Action::ChangeStatus => "change case status",
        Action::ChangePriority => "change priority",
        Action::Classify => "classify cases",
        Action::Assign => "assign cases",
        Action::TakeOver => "take cases over",
        Action::ReadInternal => "read internal notes",
        Action::WriteFaultReport => "file fault analysis reports",
        Action::KillRemoteSession => "end remote-login sessions",
        Action::EscalateToExpert => "escalate cases to experts",
        Action::ReadReports => "read reports",
        Action::ManageSpares => "manage spare parts and shipments",
        Action::ReadSpares => "see spare parts and shipments",
        Action::PublishReleases => "publish releases",
        Action::ReadReleases => "read the release catalog",
        Action::ManageCampaigns => "manage upgrade campaigns",
        Action::ReadCampaigns => "read upgrade campaigns",
        Action::RequestSpare => "request spare parts",
        Action::ReadOperations => "see the server's replicas",
        Action::ReadKnowledge => "read the knowledge base",
        Action::WriteKnowledge => "write knowledge-base articles",
        Action::ReviewKnowledge => "review knowledge-base articles",
        Action::ReadServiceReport => "read service reports",
        Action::ManageReportSchedules => "schedule service reports",
        Action::IngestMail => "hand e-mail to the server",
        Action::ReadMail => "read kept e-mail",
    }
}

/// Prefix that makes Outpost tokens recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "opt_";

/// A fresh random API token.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role) -> Principal {
        Principal {
            user_id: 1,
            username: "u".into(),
            display_name: "U".into(),
            role,
            manager_level: (role == Role::Manager).then_some(1),
            organization_id: (role == Role::Customer).then_some(7),
        }
    }

    #[test]
    fn only_admin_manages_users_and_customers_stay_in_their_lane() {
        for r in Role::ALL {
            assert_eq!(p(*r).may(Action::ManageUsers), *r == Role::Admin);
        }
        let c = p(Role::Customer);
        assert!(!c.may(Action::AddInternalNote));
        assert!(!c.may(Action::ReadInternal));
        assert!(!c.may(Action::Assign));
        assert!(c.sees_organization(Some(7)));
        assert!(!c.sees_organization(Some(8)));
        assert!(!c.sees_organization(None));
    }

    #[test]
    fn reports_are_for_staff() {
        for r in Role::ALL {
            assert_eq!(p(*r).may(Action::ReadReports), r.is_staff(), "{r}");
        }
    }

    #[test]
    fn knowledge_is_for_staff_and_reviewed_by_experts_and_managers() {
        for r in Role::ALL {
            assert_eq!(p(*r).may(Action::ReadKnowledge), r.is_staff(), "{r}");
            assert_eq!(
                p(*r).may(Action::ReviewKnowledge),
                matches!(r, Role::Admin | Role::Expert | Role::Manager),
                "{r}"
            );
            assert_eq!(
                p(*r).may(Action::WriteKnowledge),
                !matches!(r, Role::Customer | Role::RmaAdmin),
                "{r}"
            );
            assert!(p(*r).may(Action::ReadServiceReport), "{r}");
        }
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}
