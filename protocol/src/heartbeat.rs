//! Heartbeats: the agent's periodic sign of life.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Sent by an enrolled agent every `heartbeat_interval_secs` (see
/// [`crate::EnrollResponse`]); a missing heartbeat is how the server notices a
/// lost agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Protocol version of the sender; see [`crate::check_version`].
    pub protocol_version: u32,
    /// The agent's identity, from [`crate::EnrollResponse::agent_id`].
    pub agent_id: Uuid,
    /// When the agent sent this heartbeat (agent clock, UTC).
    pub sent_at: DateTime<Utc>,
    /// Version of the agent software.
    pub agent_version: String,
    /// Seconds since the agent process started (not the host's uptime).
    pub uptime_secs: u64,
    /// Number of messages waiting in the agent's on-disk spool for delivery.
    pub spool_depth: u64,
    /// The agent's clock minus the server's, in seconds, as the agent last
    /// measured it from the `Date` header of a server answer (`None` before
    /// any answer). Signatures on releases never depend on it; the server
    /// shows it so a wrong device clock is seen before it bites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_secs: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn heartbeat_round_trip() {
        let value = samples::heartbeat();
        let text = serde_json::to_string(&value).expect("serialize");
        let back: Heartbeat = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, value);
    }
}
