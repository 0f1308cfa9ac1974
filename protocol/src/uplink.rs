//! The uplink: how an enrolled agent talks to the server over HTTPS.
//!
//! - `POST /api/v1/agent/enroll` takes an [`crate::EnrollRequest`] (no
//!   authentication: the one-time token is the credential).
//! - `POST /api/v1/agent/messages` takes a [`Batch`] of [`crate::AgentMessage`]s
//!   and answers a [`BatchResult`] with one [`Outcome`] per message, in order.
//!   `accepted` and `duplicate` mean the server has it (the agent may drop it
//!   from its spool); `rejected` means it never will (malformed, unknown
//!   device): the agent logs and drops it. Any other HTTP answer, or none,
//!   means nothing was taken: retry the whole batch later.
//!
//! Every request after enrolment is signed with the agent's ed25519 key:
//!
//! ```text
//! Authorization: Outpost-Agent <agent_id>:<unix seconds>:<hex signature>
//! ```
//!
//! over the bytes of [`signing_input`]. The server refuses a timestamp more
//! than [`MAX_SKEW_SECS`] away from its own clock with HTTP 401, code
//! `clock_skew`, and its time in the `Date` header, so an agent with a wrong
//! clock can correct its offset and retry.

use serde::{Deserialize, Serialize};
#[cfg(feature = "sha2")]
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AgentMessage;

/// The `Authorization` scheme of signed agent requests.
pub const AUTH_SCHEME: &str = "Outpost-Agent";

/// Largest accepted distance between the agent's timestamp and the server's
/// clock, in seconds.
pub const MAX_SKEW_SECS: i64 = 300;

/// Most messages in one [`Batch`].
pub const MAX_BATCH: usize = 500;

/// Messages from one agent, delivered together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// In the order they were recorded.
    pub messages: Vec<AgentMessage>,
}

/// What became of each message of a [`Batch`], in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// One per message.
    pub results: Vec<Outcome>,
    /// Set in the answer to a batch holding a heartbeat: what waits for the
    /// agent (see [`crate::Hints`]). Older servers leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<crate::Hints>,
}

/// What the server did with one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `accepted`, `duplicate` or `rejected`.
    pub status: OutcomeStatus,
    /// Why it was rejected; the case number a fault went to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// See [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Applied now.
    Accepted,
    /// Applied before (same idempotency key): nothing done again.
    Duplicate,
    /// Will never be applied; do not resend.
    Rejected,
}

/// The bytes an agent signs for one request:
/// `outpost-agent-v1\n<METHOD>\n<path and query>\n<agent_id>\n<unix seconds>\n<hex SHA-256 of the body>`.
#[cfg(feature = "sha2")]
pub fn signing_input(
    method: &str,
    path_and_query: &str,
    agent_id: Uuid,
    timestamp: i64,
    body: &[u8],
) -> Vec<u8> {
    let digest = hex::encode(Sha256::digest(body));
    signing_input_hashed(method, path_and_query, agent_id, timestamp, &digest)
}

/// [`signing_input`] for a body already hashed: `body_sha256` is the
/// lowercase hex SHA-256 of the body.
pub fn signing_input_hashed(
    method: &str,
    path_and_query: &str,
    agent_id: Uuid,
    timestamp: i64,
    body_sha256: &str,
) -> Vec<u8> {
    let digest = body_sha256;
    format!(
        "outpost-agent-v1\n{}\n{path_and_query}\n{agent_id}\n{timestamp}\n{digest}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// The parts of an `Authorization: Outpost-Agent ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAuth {
    /// Who signed.
    pub agent_id: Uuid,
    /// Unix seconds, agent clock (corrected by its offset).
    pub timestamp: i64,
    /// The 64-byte ed25519 signature.
    pub signature: Vec<u8>,
}

impl AgentAuth {
    /// The header value, `Outpost-Agent <id>:<ts>:<hex sig>`.
    pub fn to_header(&self) -> String {
        format!(
            "{AUTH_SCHEME} {}:{}:{}",
            self.agent_id,
            self.timestamp,
            hex::encode(&self.signature)
        )
    }

    /// Parse a header value; the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<AgentAuth, String> {
        let rest = value
            .strip_prefix(AUTH_SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| {
                format!("expected \"{AUTH_SCHEME} <agent_id>:<timestamp>:<signature>\"")
            })?;
        let mut parts = rest.trim().splitn(3, ':');
        let (Some(id), Some(ts), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("expected <agent_id>:<timestamp>:<signature>".into());
        };
        let agent_id = Uuid::parse_str(id).map_err(|_| format!("agent id {id:?} is not a UUID"))?;
        let timestamp = ts
            .parse::<i64>()
            .map_err(|_| format!("timestamp {ts:?} is not Unix seconds"))?;
        let signature = hex::decode(sig).map_err(|_| "signature is not hex".to_string())?;
        if signature.len() != 64 {
            return Err(format!("signature is {} bytes, not 64", signature.len()));
        }
        Ok(AgentAuth {
            agent_id,
            timestamp,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_errors() {
        let a = AgentAuth {
            agent_id: Uuid::nil(),
            timestamp: 1_700_000_000,
            signature: vec![7; 64],
        };
        assert_eq!(AgentAuth::parse(&a.to_header()), Ok(a));
        for bad in [
            "Bearer x",
            "Outpost-Agent nope",
            "Outpost-Agent 00000000-0000-0000-0000-000000000000:x:00",
            "Outpost-Agent 00000000-0000-0000-0000-000000000000:1:0011",
        ] {
            assert!(AgentAuth::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signing_input_is_fixed() {
        let s = signing_input(
            "post",
            "/api/v1/agent/messages",
            Uuid::nil(),
            1_700_000_000,
            b"{}",
        );
        assert_eq!(
            String::from_utf8(s).unwrap_or_default(),
            "outpost-agent-v1\nPOST\n/api/v1/agent/messages\n00000000-0000-0000-0000-000000000000\n1700000000\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn outcome_json() {
        let o = Outcome {
            status: OutcomeStatus::Duplicate,
            detail: None,
        };
        assert_eq!(
            serde_json::to_string(&o).unwrap_or_default(),
            r#"{"status":"duplicate"}"#
        );
    }
}
