//! The case status machine: one enum, one transition function.
//!
//! ```text
//!  new ──assign──▶ assigned ──▶ responded ──▶ diagnosing ◀──▶ waiting_{customer,vendor,parts}
//!   │                 │             │             │                 │
//!   └────────────────┴─────────────┴─────────────┴────────────────┴──▶ resolved ──▶ closed
//!                                                                          │           │
//!                                                  reopened ◀──────────────┴───────────┘
//! ```
//! `assigned` is reached only through an assignment (the assign/take-over
//! actions), never by asking for the status directly.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Opened, nobody assigned yet.
    New,
    /// An engineer is assigned and must contact the customer.
    Assigned,
    /// The engineer has contacted the customer (the response clock stops).
    Responded,
    /// Work on finding the cause.
    Diagnosing,
    /// Waiting for the customer (information, access, a test).
    WaitingCustomer,
    /// Waiting for the vendor (OEM escalation).
    WaitingVendor,
    /// Waiting for spare parts.
    WaitingParts,
    /// Fixed or answered; the customer may confirm (close) or reopen.
    Resolved,
    /// Finished.
    Closed,
    /// Resolved or closed, then found not fixed.
    Reopened,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::New,
        Status::Assigned,
        Status::Responded,
        Status::Diagnosing,
        Status::WaitingCustomer,
        Status::WaitingVendor,
        Status::WaitingParts,
        Status::Resolved,
        Status::Closed,
        Status::Reopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Assigned => "assigned",
            Status::Responded => "responded",
            Status::Diagnosing => "diagnosing",
            Status::WaitingCustomer => "waiting_customer",
            Status::WaitingVendor => "waiting_vendor",
            Status::WaitingParts => "waiting_parts",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Reopened => "reopened",
        }
    }

    /// Open means: not resolved and not closed.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    fn is_waiting(self) -> bool {
        matches!(
            self,
            Status::WaitingCustomer | Status::WaitingVendor | Status::WaitingParts
        )
    }

    /// The one transition function. `via_assignment` is true when the change
    /// comes from assigning an engineer (the only way into `assigned`).
    pub fn transition(self, to: Status, via_assignment: bool) -> Result<Status, Error> {
        use Status::*;
        let refuse = |reason: &str| Error::IllegalTransition {
            from: self.as_str().into(),
            to: to.as_str().into(),
            reason: reason.into(),
        };
        if to == Assigned && !via_assignment {
            return Err(refuse("a case becomes assigned by assigning an engineer (POST .../assign or .../take-over)"));
        }
        if self == to {
            return Err(refuse("the case already has this status"));
        }
        let ok = match (self, to) {
            (New | Reopened, Assigned) => true,
            (New, Resolved) => true, // answered on first contact
            (Assigned, Responded | Resolved) => true,
            (Responded, Diagnosing | Resolved) => true,
            (Responded, w) if w.is_waiting() => true,
            (Diagnosing, Resolved) => true,
            (Diagnosing, w) if w.is_waiting() => true,
            (w, Diagnosing | Resolved) if w.is_waiting() => true,
            (a, b) if a.is_waiting() && b.is_waiting() => true,
            (Reopened, Diagnosing | Resolved) => true,
            (Reopened, w) if w.is_waiting() => true,
            (Resolved, Closed | Reopened) => true,
            (Closed, Reopened) => true,
            _ => false,
        };
        if ok {
            Ok(to)
        } else {
            let why = match self {
                Closed => "a closed case can only be reopened",
                Resolved => "a resolved case can only be closed or reopened",
                New => "assign an engineer first (or resolve on first contact)",
                Assigned => "the engineer must respond to the customer first",
                _ => "not a step of the case workflow",
            };
            Err(refuse(why))
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid("status", format!("unknown status {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    /// The complete table of legal moves (excluding assignment).
    fn legal(from: Status, to: Status) -> bool {
        let waiting = [WaitingCustomer, WaitingVendor, WaitingParts];
        let w = |s: Status| waiting.contains(&s);
        match from {
            New => to == Resolved,
            Assigned => matches!(to, Responded | Resolved),
            Responded | Diagnosing | Reopened => {
                matches!(to, Diagnosing | Resolved) && from != to || w(to)
            }
            f if w(f) => (matches!(to, Diagnosing | Resolved) || w(to)) && to != f,
            Resolved => matches!(to, Closed | Reopened),
            Closed => to == Reopened,
            _ => false,
        }
    }

    #[test]
    fn every_pair_follows_the_table() {
        for from in Status::ALL {
            for to in Status::ALL {
                let got = from.transition(to, false);
                assert_eq!(got.is_ok(), legal(from, to), "{from} -> {to}: {got:?}");
                let via = from.transition(to, true);
                if to == Assigned {
                    assert_eq!(
                        via.is_ok(),
                        matches!(from, New | Reopened),
                        "{from} -> assigned"
                    );
                }
            }
        }
    }

    #[test]
    fn round_trips_and_rejects_unknown() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().ok(), Some(s));
        }
        assert!("open".parse::<Status>().is_err());
    }
}
