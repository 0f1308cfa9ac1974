//! Releases: signed artifacts the server catalogues and agents install.
//!
//! A release is signed offline (`outpost-server admin sign-release`) with an
//! ed25519 key; whoever installs it checks the signature against the public
//! keys it trusts (several, for rotation). What is signed is the
//! [`ReleaseManifest`]'s [`canonical bytes`](ReleaseManifest::canonical_bytes):
//! name, version, target, SHA-256 and size of the artifact, one per line,
//! and nothing else. No timestamp, no validity period: a signature is good or
//! bad whatever the clock of the machine checking it says.
//!
//! Keys and signatures travel as text: a public key is
//! `ed25519:<hex of the 32 bytes>`, a signature is the hex of its 64
//! bytes. This crate only frames the bytes; each binary verifies with its
//! own ed25519 implementation.
//!
//! The update contract between agent and server:
//! - `POST /api/v1/agent/update` (signed like every agent request) with an
//!   [`UpdateQuery`] answers an [`UpdateOffer`];
//! - `GET /api/v1/agent/releases/{id}/artifact` (signed, empty body) serves
//!   the artifact, honouring `Range: bytes=N-` so a partial download resumes;
//! - the outcome comes back as an [`crate::AgentMessage::Update`] carrying
//!   an [`UpdateReport`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Path of the update query endpoint.
pub const UPDATE_PATH: &str = "/api/v1/agent/update";

/// Prefix of a public key's text form.
pub const KEY_PREFIX: &str = "ed25519:";

/// What a release signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    /// `outpost-agent` for the agent; a product name for firmware.
    pub name: String,
    /// The version the artifact installs.
    pub version: String,
    /// A Rust target triple for the agent (`x86_64-unknown-linux-gnu`), or
    /// `vendor/model` for firmware.
    pub target: String,
    /// Lowercase hex SHA-256 of the artifact.
    pub sha256: String,
    /// Size of the artifact in bytes.
    pub size: u64,
}

impl ReleaseManifest {
    /// Checks every field: non-empty printable text without line breaks or
    /// `=`-free keys to confuse, a 64-hex SHA-256, a size above zero.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value, max) in [
            ("name", &self.name, 100),
            ("version", &self.version, 64),
            ("target", &self.target, 100),
        ] {
            if value.is_empty() {
                return Err(format!("{field}: must not be empty"));
            }
            if value.len() > max {
                return Err(format!("{field}: at most {max} characters"));
            }
            if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!(
                    "{field}: {value:?} must not contain spaces or control characters"
                ));
            }
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "sha256: {:?} is not 64 lowercase hex digits",
                self.sha256
            ));
        }
        if self.size == 0 {
            return Err("size: an artifact cannot be empty".into());
        }
        Ok(())
    }

    /// The signed bytes:
    /// `outpost-release-v1\nname=…\nversion=…\ntarget=…\nsha256=…\nsize=…\n`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        format!(
            "outpost-release-v1\nname={}\nversion={}\ntarget={}\nsha256={}\nsize={}\n",
            self.name, self.version, self.target, self.sha256, self.size
        )
        .into_bytes()
    }
}

/// Decodes `ed25519:<hex>` into the 32 key bytes.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    let digits = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(|| {
        format!("{text:?} is not a release key (expected {KEY_PREFIX}<64 hex digits>)")
    })?;
    let bytes = hex::decode(digits).map_err(|e| format!("{text:?}: not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{text:?}: {} bytes, an ed25519 key has 32", b.len()))
}

/// The text form of a public key.
pub fn format_public_key(bytes: &[u8; 32]) -> String {
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// Decodes a hex signature into its 64 bytes.
pub fn parse_signature(text: &str) -> Result<[u8; 64], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("signature: not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("signature: {} bytes, an ed25519 one has 64", b.len()))
}

/// The agent asks which release it should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateQuery {
    /// Protocol version of the sender.
    pub protocol_version: u32,
    /// The agent's target triple.
    pub target: String,
    /// The version it runs.
    pub current_version: String,
}

/// The server's answer to an [`UpdateQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    /// The release the agent should run; `None`: nothing published for its
    /// target.
    pub release: Option<OfferedRelease>,
}

/// A release offered to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedRelease {
    /// The release's id on the server (for the artifact path and reports).
    pub id: i64,
    /// What the signature covers.
    pub manifest: ReleaseManifest,
    /// Hex ed25519 signature over the manifest's canonical bytes.
    pub signature: String,
    /// The key that made it (`ed25519:<hex>`); must be one the agent trusts.
    pub public_key: String,
    /// Install it even if its version is older than the running one. Set only
    /// when the release was published as a deliberate downgrade.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Path (under the server URL) of the artifact, for a signed GET.
    pub artifact_path: String,
}

/// What became of an update attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// The new binary runs and reported healthy.
    Succeeded,
    /// Not installed: bad signature, checksum, size, untrusted key, downgrade.
    Refused,
    /// Installed but not healthy in time: the previous binary is back.
    RolledBack,
    /// Could not be carried out (download or disk error); retried later.
    Failed,
}

/// An update attempt's outcome, sent as [`crate::AgentMessage::Update`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// Protocol version of the sender.
    pub protocol_version: u32,
    /// Makes a resent report count once.
    pub idempotency_key: Uuid,
    /// The reporting agent.
    pub agent_id: Uuid,
    /// The release concerned.
    pub release_id: i64,
    /// The version before the attempt.
    pub from_version: String,
    /// The release's version.
    pub to_version: String,
    /// See [`UpdateOutcome`].
    pub outcome: UpdateOutcome,
    /// Why, for anything but success.
    #[serde(default)]
    pub detail: String,
    /// When (agent clock).
    pub at: DateTime<Utc>,
}

/// Compares two dotted versions (`1.2.10` > `1.2.9`); a pre-release suffix
/// (`1.2.0-rc1`) sorts before the release. Non-numeric parts compare as text.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (Vec<&str>, Option<&str>) {
        let v = v.trim_start_matches('v');
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (v, None),
        };
        (core.split('.').collect(), pre)
    }
    let (ca, pa) = split(a);
    let (cb, pb) = split(b);
    for i in 0..ca.len().max(cb.len()) {
        let x = ca.get(i).copied().unwrap_or("0");
        let y = cb.get(i).copied().unwrap_or("0");
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    match (pa, pb) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    fn manifest() -> ReleaseManifest {
        ReleaseManifest {
            name: "outpost-agent".into(),
            version: "0.2.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            sha256: "ab".repeat(32),
            size: 1234,
        }
    }

    #[test]
    fn canonical_bytes_are_fixed() {
        assert_eq!(
            String::from_utf8(manifest().canonical_bytes()).unwrap(),
            format!(
                "outpost-release-v1\nname=outpost-agent\nversion=0.2.0\ntarget=x86_64-unknown-linux-gnu\nsha256={}\nsize=1234\n",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn manifests_that_could_forge_lines_are_refused() {
        assert!(manifest().validate().is_ok());
        let mut m = manifest();
        m.version = "0.2.0\nsize=1".into();
        assert!(m.validate().unwrap_err().contains("version"));
        let mut m = manifest();
        m.sha256 = "AB".repeat(32);
        assert!(m.validate().unwrap_err().contains("sha256"));
        let mut m = manifest();
        m.size = 0;
        assert!(m.validate().unwrap_err().contains("size"));
    }

    #[test]
    fn keys_and_signatures_round_trip() {
        let key = [7u8; 32];
        assert_eq!(parse_public_key(&format_public_key(&key)).unwrap(), key);
        assert!(parse_public_key("ssh-ed25519 AAAA").is_err());
        assert!(parse_public_key("ed25519:AAAA")
            .unwrap_err()
            .contains("2 bytes"));
        assert_eq!(parse_signature(&"01".repeat(64)).unwrap(), [1u8; 64]);
        assert!(parse_signature("zz").is_err());
        assert!(parse_signature("0102").unwrap_err().contains("2 bytes"));
    }

    #[test]
    fn versions_order() {
        assert_eq!(compare_versions("0.2.0", "0.1.9"), Greater);
        assert_eq!(compare_versions("1.2.10", "1.2.9"), Greater);
        assert_eq!(compare_versions("1.2", "1.2.0"), Equal);
        assert_eq!(compare_versions("1.2.0-rc1", "1.2.0"), Less);
        assert_eq!(compare_versions("v1.0.0", "1.0.0"), Equal);
        assert_eq!(compare_versions("0.1.0", "0.2.0"), Less);
    }
}
