//! Enrolment: how a freshly installed agent obtains its identity.
//!
//! The agent presents a one-time enrolment token created by an administrator
//! together with the public half of a key pair it generated locally; the
//! server answers with the agent's id and what the agent needs to trust the
//! server from then on.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Sent once by a new agent to register itself with the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// Protocol version of the sender; see [`crate::check_version`].
    pub protocol_version: u32,
    /// One-time enrolment token issued by an administrator; consumed by a
    /// successful enrolment and never valid twice.
    pub token: String,
    /// The agent's ed25519 public key in OpenSSH format
    /// (`ssh-ed25519 AAAA... comment`); identifies the agent from now on,
    /// both on the HTTPS uplink and on the SSH relay.
    pub public_key: String,
    /// Host name of the machine the agent runs on.
    pub hostname: String,
    /// Version of the agent software (its crate version, e.g. `0.1.0`).
    pub agent_version: String,
    /// Operating system family, as Rust's `std::env::consts::OS` (e.g. `linux`).
    pub os: String,
    /// CPU architecture, as Rust's `std::env::consts::ARCH` (e.g. `x86_64`).
    pub arch: String,
}

/// The server's answer to a successful [`EnrollRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Identity assigned to the agent; sent in every later message.
    pub agent_id: Uuid,
    /// Lowercase hex SHA-256 of the DER-encoded SubjectPublicKeyInfo of the
    /// server's TLS certificate, for the agent to pin; `None` when the server
    /// relies on ordinary certificate validation only.
    #[serde(default)]
    pub server_tls_pin_sha256: Option<String>,
    /// The relay's SSH host public key in OpenSSH format, for the agent's
    /// reverse tunnel to verify; `None` when the relay is not enabled.
    #[serde(default)]
    pub ssh_host_key: Option<String>,
    /// How often the agent should send a [`crate::Heartbeat`], in seconds.
    pub heartbeat_interval_secs: u32,
}

/// Normalises a TLS key pin as given by a person: 64 hex digits,
/// case-insensitive, `:` separators allowed (as `openssl` prints them).
/// Returns the lowercase form [`EnrollResponse::server_tls_pin_sha256`] uses.
pub fn parse_tls_pin(pin: &str) -> Result<String, String> {
    let clean: String = pin
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if clean.len() != 64 || !clean.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "TLS pin {pin:?} is not a hex SHA-256 (64 hex digits)"
        ));
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn pins_are_normalised_and_checked() {
        let pin = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        assert_eq!(parse_tls_pin(pin), Ok(pin.to_ascii_lowercase()));
        let colons = pin
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_tls_pin(&colons), Ok(pin.to_ascii_lowercase()));
        assert!(parse_tls_pin("abc").is_err());
        assert!(parse_tls_pin(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn enroll_request_round_trip() {
        let value = samples::enroll_request();
        let text = serde_json::to_string(&value).expect("serialize");
        let back: EnrollRequest = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, value);
    }

    #[test]
    fn enroll_response_round_trip() {
        for value in [
            samples::enroll_response(),
            samples::enroll_response_minimal(),
        ] {
            let text = serde_json::to_string(&value).expect("serialize");
            let back: EnrollResponse = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, value);
        }
    }

    #[test]
    fn enroll_response_optional_fields_may_be_absent() {
        let back: EnrollResponse = serde_json::from_value(serde_json::json!({
            "agent_id": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
            "heartbeat_interval_secs": 60,
        }))
        .expect("deserialize");
        assert_eq!(back.server_tls_pin_sha256, None);
        assert_eq!(back.ssh_host_key, None);
        assert_eq!(back.heartbeat_interval_secs, 60);
    }
}
