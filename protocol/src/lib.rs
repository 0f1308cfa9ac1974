//! Wire types shared by the Outpost agent and the Outpost server.
//!
//! Everything the agent sends to the server (enrolment, heartbeats, inventory,
//! host health and faults) is defined here once, as plain serde types encoded
//! as JSON, so that both binaries agree on one source. Neither binary is a
//! dependency of this crate. Besides the wire types, [`secret`] is the one
//! form of a secret both binaries' configuration files accept (inline, from
//! a file, or from the environment).
//!
//! # Versioning and compatibility
//!
//! Every top-level message carries a `protocol_version` field; the current
//! version is [`PROTOCOL_VERSION`]. The rules are:
//!
//! * **Additive changes keep the version.** A new field is added as optional:
//!   either an `Option<_>` or a field marked `#[serde(default)]`, so that a
//!   message from an older peer, which lacks the field, still decodes. Unknown
//!   fields are ignored on decode (no type here uses `deny_unknown_fields`),
//!   so an older server accepts a message from a newer agent that carries
//!   extra fields.
//! * **Breaking changes bump the version.** Removing or renaming a field,
//!   changing its type or meaning, or adding an enum variant an older peer
//!   would reject, requires a new [`PROTOCOL_VERSION`].
//! * **Unknown versions are rejected.** The server calls [`check_version`] on
//!   the `protocol_version` of every message and refuses anything it does not
//!   speak, rather than guessing.
//!
//! All instants are UTC ([`chrono::DateTime<Utc>`](chrono::DateTime)),
//! encoded as RFC 3339 strings. Enum values are encoded in `snake_case`.

#![warn(missing_docs)]

mod enroll;
mod fault;
mod health;
mod heartbeat;
mod inventory;
pub mod job;
mod message;
pub mod release;
pub mod secret;
mod topology;
pub mod tunnel;
mod uplink;

#[cfg(test)]
mod samples;

use std::fmt;

pub use enroll::{parse_tls_pin, EnrollRequest, EnrollResponse};
pub use fault::{
    Evidence, FaultEvent, FaultKey, FaultKeyError, FaultRule, FaultTransition, Severity,
};
pub use health::{DiskUsage, HealthSample, Temperature};
pub use heartbeat::Heartbeat;
pub use inventory::{
    DeviceInventory, DiskFacts, HostFacts, Inventory, ModuleInventory, PhysicalClass,
};
pub use job::{Hints, JobFailure, JobList, JobQuery, JobReport, JobState, UpgradeJob, JOBS_PATH};
pub use message::AgentMessage;
pub use release::{
    OfferedRelease, ReleaseManifest, UpdateOffer, UpdateOutcome, UpdateQuery, UpdateReport,
};
pub use topology::{LldpLink, Topology};
#[cfg(feature = "sha2")]
pub use uplink::signing_input;
pub use uplink::{
    signing_input_hashed, AgentAuth, Batch, BatchResult, Outcome, OutcomeStatus, AUTH_SCHEME,
    MAX_BATCH, MAX_SKEW_SECS,
};

/// The protocol version this build speaks.
///
/// Sent in the `protocol_version` field of every top-level message and checked
/// by the receiver with [`check_version`]. See the crate documentation for the
/// compatibility rule.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message declared a protocol version this build does not speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionError {
    /// The version the message declared.
    pub received: u32,
    /// The version this build supports ([`PROTOCOL_VERSION`]).
    pub supported: u32,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported protocol version {} (this build speaks version {})",
            self.received, self.supported
        )
    }
}

impl std::error::Error for VersionError {}

/// Checks that a message's `protocol_version` is one this build speaks.
///
/// Returns [`VersionError`] for any version other than [`PROTOCOL_VERSION`],
/// including 0 (which a missing or zeroed field would produce).
pub fn check_version(version: u32) -> Result<(), VersionError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(VersionError {
            received: version,
            supported: PROTOCOL_VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_version_accepts_current() {
        assert_eq!(check_version(PROTOCOL_VERSION), Ok(()));
    }

    #[test]
    fn check_version_rejects_other_versions() {
        for bad in [0, 2, u32::MAX] {
            let err = check_version(bad).expect_err("version must be rejected");
            assert_eq!(err.received, bad);
            assert_eq!(err.supported, PROTOCOL_VERSION);
            let text = err.to_string();
            assert!(text.contains(&bad.to_string()), "{text}");
            assert!(text.contains("unsupported protocol version"), "{text}");
        }
    }
}
