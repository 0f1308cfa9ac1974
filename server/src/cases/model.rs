//! The case vocabulary: priority, channel, type, visibility and the kinds of
//! activity a case history holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

use super::status::Status;
use crate::error::Error;

/// Generates `as_str`, `ALL` and `FromStr` for a fieldless snake_case enum.
macro_rules! text_enum {
    ($t:ident, $field:literal, { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($s => Ok($t::$v),)+
                    _ => Err(Error::invalid($field, format!(
                        "unknown value {s:?}; expected one of: {}",
                        [$($s),+].join(", ")))),
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

/// SPEC.md 3: P1 system down ... P4 question.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

text_enum!(Priority, "priority", { P1 => "P1", P2 => "P2", P3 => "P3", P4 => "P4" });

impl Priority {
    pub fn level(self) -> i64 {
        match self {
            Priority::P1 => 1,
            Priority::P2 => 2,
            Priority::P3 => 3,
            Priority::P4 => 4,
        }
    }
    pub fn from_level(n: i64) -> Result<Priority, Error> {
        match n {
            1 => Ok(Priority::P1),
            2 => Ok(Priority::P2),
            3 => Ok(Priority::P3),
            4 => Ok(Priority::P4),
            _ => Err(Error::Corrupt(format!("priority level {n}"))),
        }
    }
}

/// How the case reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Email,
    Web,
    Fax,
    Agent,
}

text_enum!(Channel, "channel", {
    Phone => "phone", Email => "email", Web => "web", Fax => "fax", Agent => "agent",
});

/// Classification of the case (SPEC.md 2.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseType {
    HardwareFault,
    SoftwareFault,
    NetworkFault,
    Configuration,
    Installation,
    Question,
    Upgrade,
    Inspection,
    Other,
}

text_enum!(CaseType, "case_type", {
    HardwareFault => "hardware_fault", SoftwareFault => "software_fault",
    NetworkFault => "network_fault", Configuration => "configuration",
    Installation => "installation", Question => "question", Upgrade => "upgrade",
    Inspection => "inspection", Other => "other",
});

/// Who may read an activity: everyone on the case, or staff only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Internal,
}

text_enum!(Visibility, "visibility", { Public => "public", Internal => "internal" });

/// Direction of a recorded phone call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

/// Which SLA deadline came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlaEventKind {
    /// The engineer has not responded yet: the dispatcher should remind them.
    ResponseReminder,
    /// Still no response at the reassign point: reassign the case.
    ReassignPrompt,
    /// Still no response at the reassign point: reassigned automatically.
    Reassigned,
    /// The response target passed without a response.
    ResponseBreached,
    /// The resolution target passed.
    ResolutionBreached,
    /// Time without diagnosis reached a manager level of the escalation matrix.
    Escalated,
}

/// What an agent's fault event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultChange {
    Raised,
    /// Raised again while the case for it is still open.
    Returned,
    Cleared,
}

/// One reading an agent attached to a fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FaultEvidence {
    pub name: String,
    pub value: String,
    pub observed_at: DateTime<Utc>,
}

/// Who opened or is named by an activity, resolved for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserRef {
    pub id: i64,
    pub name: String,
}

/// What happened. Stored as JSON in the `body` column; the `kind` column holds
/// the tag. New kinds are added by later features; old ones never change shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActivityBody {
    /// The case was opened.
    Opened {
        summary: String,
        priority: Priority,
        channel: Channel,
        case_type: CaseType,
    },
    /// A free-text note. `corrects` names the seq of an earlier entry this one
    /// corrects (history is never edited; corrections are new entries).
    Note {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corrects: Option<i64>,
    },
    /// A phone call with the customer or the vendor.
    Call {
        direction: CallDirection,
        party: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_secs: Option<i64>,
        summary: String,
    },
    StatusChanged {
        from: Status,
        to: Status,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    PriorityChanged {
        from: Priority,
        to: Priority,
        reason: String,
    },
    /// Assignment by a dispatcher or manager (also reassignment).
    Assigned {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<UserRef>,
        to: UserRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An engineer took the case over (SPEC.md 2.12).
    TakenOver {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<UserRef>,
        to: UserRef,
    },
    /// Type or vendor changed.
    Classified {
        case_type: CaseType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vendor: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_case_type: Option<CaseType>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_vendor: Option<String>,
    },
    /// An SLA deadline came due (written by the server, not a person).
    SlaEvent {
        event: SlaEventKind,
        /// The manager level, for escalations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<u8>,
        due_at: DateTime<Utc>,
        /// Fired more than a second after it was due (e.g. the server was down).
        late: bool,
        /// The timer that fired; makes recording idempotent.
        timer_id: i64,
    },
    /// An on-site visit and what was done.
    FieldVisit {
        engineer: String,
        arrived_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        left_at: Option<DateTime<Utc>>,
        work_done: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_signoff: Option<String>,
    },
    /// Fault analysis report (required to close a P1/P2 case); e-mailed to
    /// the customer contact.
    FaultReport {
        cause: String,
        actions: String,
        prevention: String,
    },
    /// The customer contact answered the satisfaction survey.
    SurveyAnswered {
        rating: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A notification could not be delivered after every attempt.
    NotificationFailed {
        channel: String,
        recipient: String,
        address: String,
        /// The rule that sent it (assigned, escalation:2, survey, ...).
        reason: String,
        attempts: i64,
        error: String,
    },
    /// An agent reported a fault on the case's device (raised, returned
    /// while the case is open, or cleared).
    Fault {
        transition: FaultChange,
        /// `device/rule/instance`.
        fault_key: String,
        rule: String,
        severity: String,
        summary: String,
        observed_at: DateTime<Utc>,
        #[serde(default)]
        evidence: Vec<FaultEvidence>,
        /// The agent's host name.
        agent: String,
        /// The event's idempotency key; makes recording idempotent.
        idempotency_key: String,
    },
    /// The cause was found: escalation by time without diagnosis stops
    /// (until the case is reopened).
    Diagnosed { summary: String },
    /// A manager or dispatcher acknowledged an alert.
    AlertAcknowledged {
        alert_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<i64>,
    },
    /// An engineer reached the case's device through the remote-login
    /// relay: one entry when the session starts, one when it ends.
    RemoteSession {
        session_id: i64,
        /// `started` or `ended`.
        phase: String,
        engineer: UserRef,
        /// The engineer's address as the relay saw it.
        source: String,
        /// The device, and the port reached on it.
        device: String,
        port: u32,
        started_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ended_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes_to_device: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes_from_device: Option<u64>,
        /// Why it ended (closed by the engineer, case closed, idle, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_reason: Option<String>,
    },
    /// The case was escalated to an expert, who may now work on it (and
    /// reach its device through the relay) beside the assignee.
    ExpertAdded { expert: UserRef, reason: String },
    /// A customer user approved (or someone revoked) remote login on the
    /// case's device, where the contract asks for approval.
    RemoteApproval {
        approval_id: i64,
        /// `approved` or `revoked`.
        action: String,
        /// The engineer it covers; none: whoever holds the case.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engineer: Option<UserRef>,
        reason: String,
        expires_at: DateTime<Utc>,
    },
    /// A spare shipment on the case moved (`state` is the state it moved
    /// to), or one of its deadlines passed (`state` is `ship_overdue`,
    /// `return_reminder`, `return_overdue` or `repair_overdue`, with the
    /// timer that fired).
    /// The device's entitlement when the case opened (SPEC.md 9): the
    /// contract that covers it and its warranty. A case out of coverage is
    /// flagged, not refused; `reasons` say why.
    Entitlement {
        covered: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contract: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_warranty: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warranty_end: Option<chrono::NaiveDate>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasons: Vec<String>,
    },
    Shipment {
        shipment_id: i64,
        part_number: String,
        quantity: i64,
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warehouse: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carrier: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracking_number: Option<String>,
        /// The spare's serial (shipped) or the faulty unit's (returned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The deadline this step set, or the one that passed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<DateTime<Utc>>,
        /// For deadline entries: the timer that fired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timer_id: Option<i64>,
    },
    /// A scheduled field visit moved (`step`: scheduled, checked_in,
    /// checked_out, signed_off, cancelled), or one of the contract's
    /// field promises came due (`step`: onsite_warning, onsite_missed,
    /// repair_warning, repair_missed, with the timer that fired).
    Visit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit_id: Option<i64>,
        step: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engineer: Option<UserRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// When the step happened (check-in, check-out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        work_done: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parts_used: Vec<PartUsed>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repaired: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backup_equipment: Option<String>,
        /// The customer's name signing the visit off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signoff: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The promise deadline this step met, or the one that passed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<DateTime<Utc>>,
        /// For promise entries: the timer that fired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timer_id: Option<i64>,
    },
}

/// A spare part taken from stock on a field visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartUsed {
    pub part_number: String,
    pub warehouse_id: i64,
    /// At least 1.
    pub quantity: i64,
    /// The spare unit's serial, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

impl ActivityBody {
    pub fn kind(&self) -> &'static str {
        match self {
            ActivityBody::Opened { .. } => "opened",
            ActivityBody::Note { .. } => "note",
            ActivityBody::Call { .. } => "call",
            ActivityBody::StatusChanged { .. } => "status_changed",
            ActivityBody::PriorityChanged { .. } => "priority_changed",
            ActivityBody::Assigned { .. } => "assigned",
            ActivityBody::TakenOver { .. } => "taken_over",
            ActivityBody::Classified { .. } => "classified",
            ActivityBody::FieldVisit { .. } => "field_visit",
            ActivityBody::SlaEvent { .. } => "sla_event",
            ActivityBody::FaultReport { .. } => "fault_report",
            ActivityBody::SurveyAnswered { .. } => "survey_answered",
            ActivityBody::NotificationFailed { .. } => "notification_failed",
            ActivityBody::AlertAcknowledged { .. } => "alert_acknowledged",
            ActivityBody::Fault { .. } => "fault",
            ActivityBody::Diagnosed { .. } => "diagnosed",
            ActivityBody::RemoteSession { .. } => "remote_session",
            ActivityBody::ExpertAdded { .. } => "expert_added",
            ActivityBody::RemoteApproval { .. } => "remote_approval",
            ActivityBody::Shipment { .. } => "shipment",
            ActivityBody::Entitlement { .. } => "entitlement",
            ActivityBody::Visit { .. } => "visit",
        }
    }
}

/// A case as the domain sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: i64,
    pub number: String,
    pub organization_id: Option<i64>,
    pub contract_id: Option<i64>,
    pub device_id: Option<i64>,
    pub caller: Caller,
    pub summary: String,
    pub details: String,
    pub priority: Priority,
    pub status: Status,
    pub case_type: CaseType,
    pub vendor: Option<String>,
    pub channel: Channel,
    pub assignee_id: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_seq: i64,
    pub head_hash: String,
}

/// Caller information (SPEC.md 2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Caller {
    pub name: String,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The contract ID the caller quoted.
    #[serde(default)]
    pub contract: Option<String>,
}

/// One entry of a case history as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub case_id: i64,
    pub seq: i64,
    pub visibility: Visibility,
    pub author_id: Option<i64>,
    pub author_name: String,
    pub at: DateTime<Utc>,
    /// The JSON text of an [`ActivityBody`], exactly as hashed.
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}
