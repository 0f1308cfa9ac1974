//! [`SnmpError`]: why talking to one SNMP device failed, in words an
//! operator can act on. The backend maps the SNMP crate's errors into it;
//! nothing above the backend sees the crate's error type.

use std::time::Duration;

/// Why an SNMP exchange with a target failed. Every variant names the target
/// (its configured name and address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnmpError {
    /// No (valid) response arrived in time, after all retries.
    #[error("{target}: no response within {} ({retries} retries); check the address, port, firewall and {credential}", humantime::format_duration(*timeout))]
    Timeout {
        /// `name (address)`.
        target: String,
        /// Per-request timeout.
        timeout: Duration,
        /// Retries made.
        retries: u32,
        /// What else to check: `community` for v2c, which silently ignores
        /// a wrong one, or `v3 settings`.
        credential: &'static str,
    },
    /// SNMPv3 authentication or privacy failed: wrong password, unknown
    /// user, wrong protocol.
    #[error("{target}: SNMPv3 authentication failed: {reason}")]
    Authentication {
        /// `name (address)`.
        target: String,
        /// What the device or the local check reported.
        reason: String,
    },
    /// The responses could not be decoded.
    #[error("{target}: malformed response: {reason}")]
    Malformed {
        /// `name (address)`.
        target: String,
        /// What was wrong.
        reason: String,
    },
    /// The device answered a request with an error status (`tooBig`,
    /// `genErr`, `noAccess`, ...).
    #[error("{target}: the device answered with error status {status}")]
    Status {
        /// `name (address)`.
        target: String,
        /// The error status, as the MIB names it.
        status: String,
        /// `tooBig` or `genErr`: a smaller request may succeed (some agents
        /// answer an over-long GETBULK response with `genErr`).
        try_smaller: bool,
    },
    /// The device broke the protocol
    /// (e.g. a walk going backwards).
    #[error("{target}: {reason}")]
    Protocol {
        /// `name (address)`.
        target: String,
        /// The error status or violation.
        reason: String,
    },
    /// Sending or receiving failed locally (unresolvable name, no route,
    /// socket error).
    #[error("{target}: network error: {reason}")]
    Network {
        /// `name (address)`.
        target: String,
        /// The system's message.
        reason: String,
    },
}

impl SnmpError {
    /// A short word for tables and metrics: `timeout`, `auth`, `malformed`,
    /// `protocol` or `network`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Authentication { .. } => "auth",
            Self::Malformed { .. } => "malformed",
            Self::Status { .. } | Self::Protocol { .. } => "protocol",
            Self::Network { .. } => "network",
        }
    }

    /// Whether the device did not answer at all (as opposed to answering
    /// wrongly): the condition behind "device unreachable".
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Network { .. })
    }
}
