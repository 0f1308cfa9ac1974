//! `[update]`: the agent's self-update (see [`crate::update`]).
//!
//! Off unless `enabled = true`; when on, `trusted_keys` must name at least
//! one release key: an empty list is an error, never "verification off".

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::human_duration;

/// `[update]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Whether the agent asks the server for releases and installs them.
    #[serde(default)]
    pub enabled: bool,
    /// Release signing keys the agent trusts (`ed25519:<hex>`, printed by
    /// `outpost-server admin release-key generate`); several while a key is
    /// rotated.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Time between two questions to the server. Default 1h.
    #[serde(
        default = "default_check_interval",
        deserialize_with = "human_duration"
    )]
    pub check_interval: Duration,
    /// How long a new binary has to report healthy (an accepted heartbeat)
    /// before the previous one is put back. Default 2m.
    #[serde(
        default = "default_health_deadline",
        deserialize_with = "human_duration"
    )]
    pub health_deadline: Duration,
    /// The binary to replace; default: the running executable. With the
    /// Debian package, `/var/lib/outpost/agent/bin/outpost-agent` (see
    /// packaging/README.md): `/usr/bin` belongs to dpkg and is read-only
    /// for the service.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// Where downloads and the update state live; default
    /// `<identity_dir>/update`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            trusted_keys: Vec::new(),
            check_interval: default_check_interval(),
            health_deadline: default_health_deadline(),
            binary: None,
            dir: None,
        }
    }
}

fn default_check_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_health_deadline() -> Duration {
    Duration::from_secs(120)
}

impl UpdateConfig {
    /// The decoded trusted keys; errors name the key.
    pub fn keys(&self) -> Result<Vec<[u8; 32]>, String> {
        let mut keys = Vec::new();
        for (i, text) in self.trusted_keys.iter().enumerate() {
            let key = outpost_protocol::release::parse_public_key(text)
                .map_err(|e| format!("update.trusted_keys[{i}]: {e}"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&key)
                .map_err(|_| format!("update.trusted_keys[{i}]: not an ed25519 public key"))?;
            keys.push(key);
        }
        Ok(keys)
    }

    /// Checks the section.
    pub fn validate(&self) -> Result<(), String> {
        let keys = self.keys()?;
        if self.enabled && keys.is_empty() {
            return Err("update.trusted_keys is empty: self-update needs at least one trusted release key (an empty list never turns verification off)".into());
        }
        if self.check_interval < Duration::from_secs(1) {
            return Err("update.check_interval must be at least 1s".into());
        }
        if self.health_deadline < Duration::from_secs(1)
            || self.health_deadline > Duration::from_secs(3600)
        {
            return Err("update.health_deadline must be between 1s and 1h".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::AgentConfig;

    fn config(update: &str) -> Result<AgentConfig, String> {
        AgentConfig::parse(&format!(
            "[server]\nurl = \"http://127.0.0.1:1\"\n\n[update]\n{update}"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn enabled_without_keys_is_an_error_never_verification_off() {
        let err = config("enabled = true\n").unwrap_err();
        assert!(err.contains("update.trusted_keys is empty"), "{err}");
        let err = config("enabled = true\ntrusted_keys = []\n").unwrap_err();
        assert!(err.contains("never turns verification off"), "{err}");
        // Off, no keys needed.
        assert!(config("enabled = false\n").is_ok());
    }

    #[test]
    fn keys_and_durations_are_checked() {
        let good = format!("ed25519:{}", "11".repeat(32));
        let ok = config(&format!("enabled = true\ntrusted_keys = [\"{good}\"]\n")).unwrap();
        assert_eq!(ok.update.keys().unwrap().len(), 1);
        let err = config(&format!(
            "enabled = true\ntrusted_keys = [\"{good}\", \"ssh-ed25519 AAAA\"]\n"
        ))
        .unwrap_err();
        assert!(err.contains("update.trusted_keys[1]"), "{err}");
        let err = config(&format!(
            "enabled = true\ntrusted_keys = [\"{good}\"]\nhealth_deadline = \"0s\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("update.health_deadline"), "{err}");
        let err = config("enabled = true\ntrusted_key = []\n").unwrap_err();
        assert!(err.contains("trusted_key"), "{err}");
    }
}
