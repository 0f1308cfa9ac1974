//! `[jobs]` and `[[jobs.plugins]]`: firmware/software upgrade jobs (see
//! [`crate::jobs`]).
//!
//! Off unless `enabled = true`. Releases are verified against
//! `jobs.trusted_keys`, or `[update] trusted_keys` when that list is empty;
//! both empty while enabled is an error, never "verification off". Each
//! plug-in entry is checked while its table is decoded (so errors carry the
//! line): vendor and model patterns, an absolute `command` that exists and
//! is executable, a timeout.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::human_duration;

/// `[jobs]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Whether the agent asks the server for upgrade jobs and runs them.
    #[serde(default)]
    pub enabled: bool,
    /// Time between two questions to the server (a heartbeat hint that jobs
    /// wait asks at once). Default 5m.
    #[serde(default = "default_poll_interval", deserialize_with = "human_duration")]
    pub poll_interval: Duration,
    /// Where job states and images live; default `<identity_dir>/jobs`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Release keys (`ed25519:<hex>`) firmware releases must be signed
    /// with; empty: those of `[update]`.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Jobs run at once (never two on one device). Default 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The vendor plug-ins; the first entry matching a device wins.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            poll_interval: default_poll_interval(),
            dir: None,
            trusted_keys: Vec::new(),
            concurrency: default_concurrency(),
            plugins: Vec::new(),
        }
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_concurrency() -> usize {
    4
}

/// How a job's success is confirmed once its plug-in is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirm {
    /// The agent polls the device over SNMP for the target version.
    Snmp,
    /// The plug-in's `post_check` step reports the version.
    Plugin,
}

/// One `[[jobs.plugins]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "PluginTable")]
pub struct PluginConfig {
    /// Vendor pattern: a name (case-insensitive) or `*`.
    pub vendor: String,
    /// Model pattern: a name, a prefix ending in `*`, or `*`
    /// (case-insensitive).
    pub model: String,
    /// The plug-in's executable (absolute path).
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The plug-in's own limit (the job's `install_timeout_secs` bounds it
    /// too).
    pub timeout: Duration,
    /// How success is confirmed.
    pub confirm: Confirm,
    /// Passed to the plug-in as the contract's `options`.
    pub options: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginTable {
    vendor: String,
    model: String,
    command: PathBuf,
    #[serde(default)]
    args: Vec<String>,
    #[serde(
        default = "default_plugin_timeout",
        deserialize_with = "human_duration"
    )]
    timeout: Duration,
    #[serde(default = "default_confirm")]
    confirm: Confirm,
    #[serde(default)]
    options: toml::Table,
}

fn default_plugin_timeout() -> Duration {
    Duration::from_secs(20 * 60)
}

fn default_confirm() -> Confirm {
    Confirm::Snmp
}

/// Whether `pattern` (`*`, `PREFIX*` when `prefix_ok`, or a name) matches
/// `value`, ignoring case.
fn pattern_matches(pattern: &str, value: &str, prefix_ok: bool) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix_ok => value
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
        _ => pattern.eq_ignore_ascii_case(value),
    }
}

impl PluginConfig {
    /// Whether this entry serves a device of `vendor` and `model`.
    pub fn matches(&self, vendor: &str, model: &str) -> bool {
        pattern_matches(&self.vendor, vendor, false) && pattern_matches(&self.model, model, true)
    }

    /// `vendor/model`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.vendor, self.model)
    }
}

impl TryFrom<PluginTable> for PluginConfig {
    type Error = String;

    fn try_from(t: PluginTable) -> Result<Self, String> {
        let at = format!(
            "jobs.plugins entry {:?}",
            format!("{}/{}", t.vendor, t.model)
        );
        if t.vendor.trim().is_empty() {
            return Err(format!("{at}: `vendor` must not be empty (\"*\" for any)"));
        }
        if t.vendor != "*" && t.vendor.contains('*') {
            return Err(format!(
                "{at}: `vendor` {:?} must be a name or \"*\" (no patterns)",
                t.vendor
            ));
        }
        if t.model.trim().is_empty() {
            return Err(format!("{at}: `model` must not be empty (\"*\" for any)"));
        }
        if t.model.trim_end_matches('*').contains('*') || t.model.ends_with("**") {
            return Err(format!(
                "{at}: `model` {:?} may hold `*` only once, at its end (\"C9300*\")",
                t.model
            ));
        }
        check_command(&t.command).map_err(|why| format!("{at}: `command` {why}"))?;
        if t.timeout < Duration::from_secs(1) || t.timeout > Duration::from_secs(24 * 3600) {
            return Err(format!("{at}: `timeout` must be between 1s and 24h"));
        }
        Ok(PluginConfig {
            vendor: t.vendor,
            model: t.model,
            command: t.command,
            args: t.args,
            timeout: t.timeout,
            confirm: t.confirm,
            options: t.options,
        })
    }
}

/// An absolute path to an existing executable file.
fn check_command(command: &std::path::Path) -> Result<(), String> {
    if !command.is_absolute() {
        return Err(format!("{:?} must be an absolute path", command.display()));
    }
    let meta = std::fs::metadata(command).map_err(|e| format!("{}: {e}", command.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", command.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", command.display()));
        }
    }
    Ok(())
}

impl JobsConfig {
    /// The decoded `jobs.trusted_keys`, or those of `update` when empty;
    /// errors name the key.
    pub fn keys(&self, update: &super::UpdateConfig) -> Result<Vec<[u8; 32]>, String> {
        let mut keys = Vec::new();
        for (i, text) in self.trusted_keys.iter().enumerate() {
            let key = outpost_protocol::release::parse_public_key(text)
                .map_err(|e| format!("jobs.trusted_keys[{i}]: {e}"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&key)
                .map_err(|_| format!("jobs.trusted_keys[{i}]: not an ed25519 public key"))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return update.keys();
        }
        Ok(keys)
    }

    /// Checks the section (`update` gives the fallback keys).
    pub fn validate(&self, update: &super::UpdateConfig) -> Result<(), String> {
        let keys = self.keys(update)?;
        if self.enabled && keys.is_empty() {
            return Err("jobs.trusted_keys is empty and so is update.trusted_keys: upgrade jobs need at least one trusted release key (an empty list never turns verification off)".into());
        }
        if self.poll_interval < Duration::from_secs(1) {
            return Err("jobs.poll_interval must be at least 1s".into());
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(format!(
                "jobs.concurrency must be between 1 and 64, got {}",
                self.concurrency
            ));
        }
        Ok(())
    }

    /// The first plug-in entry serving `vendor`/`model`.
    pub fn plugin_for(&self, vendor: &str, model: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.matches(vendor, model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;

    fn key() -> String {
        // A valid point: the public key of the all-ones secret.
        let signing = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        outpost_protocol::release::format_public_key(&signing.verifying_key().to_bytes())
    }

    fn config(jobs: &str) -> Result<AgentConfig, String> {
        AgentConfig::parse(&format!(
            "[server]\nurl = \"http://127.0.0.1:1\"\n\n[jobs]\n{jobs}"
        ))
        .map_err(|e| e.to_string())
    }

    fn plugin(body: &str) -> String {
        format!(
            "enabled = true\ntrusted_keys = [\"{}\"]\n\n[[jobs.plugins]]\n{body}",
            key()
        )
    }

    #[test]
    fn defaults_and_keys() {
        let c = config("").unwrap();
        assert!(!c.jobs.enabled);
        assert_eq!(c.jobs.poll_interval, Duration::from_secs(300));
        assert_eq!(c.jobs.concurrency, 4);
        assert_eq!(c.jobs_dir(), PathBuf::from("/var/lib/outpost/agent/jobs"));
        let c = config(&format!("enabled = true\ntrusted_keys = [\"{}\"]\n", key())).unwrap();
        assert_eq!(c.jobs.keys(&c.update).unwrap().len(), 1);
        // The keys of [update] serve when the section has none.
        let c = AgentConfig::parse(&format!(
            "[server]\nurl = \"http://127.0.0.1:1\"\n[update]\ntrusted_keys = [\"{}\"]\n[jobs]\nenabled = true\n",
            key()
        ))
        .unwrap();
        assert_eq!(c.jobs.keys(&c.update).unwrap().len(), 1);
    }

    #[test]
    fn enabled_without_any_key_is_an_error_never_verification_off() {
        let err = config("enabled = true\n").unwrap_err();
        assert!(err.contains("jobs.trusted_keys is empty"), "{err}");
        assert!(err.contains("never turns verification off"), "{err}");
        let err = config("enabled = true\ntrusted_keys = [\"ed25519:00\"]\n").unwrap_err();
        assert!(err.contains("jobs.trusted_keys[0]"), "{err}");
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let err = config("enabled = true\npoll_intervall = \"5m\"\n").unwrap_err();
        assert!(err.contains("poll_intervall"), "{err}");
        let err = config(&format!(
            "trusted_keys = [\"{}\"]\nconcurrency = 0\n",
            key()
        ))
        .unwrap_err();
        assert!(err.contains("jobs.concurrency"), "{err}");
        let err = config("poll_interval = \"soon\"\n").unwrap_err();
        assert!(
            err.contains("poll_interval") || err.contains("soon"),
            "{err}"
        );
        let err = config(&plugin(
            "vendor = \"Cisco\"\nmodel = \"*\"\ncommand = \"/bin/sh\"\nconfirm = \"ping\"\n",
        ))
        .unwrap_err();
        assert!(err.contains("confirm") || err.contains("ping"), "{err}");
        let err = config(&plugin(
            "vendor = \"Cisco\"\nmodel = \"*\"\ncommand = \"/bin/sh\"\ntimout = \"1m\"\n",
        ))
        .unwrap_err();
        assert!(err.contains("timout"), "{err}");
    }

    #[test]
    fn plugin_commands_must_be_absolute_existing_executables() {
        let err = config(&plugin(
            "vendor = \"Cisco\"\nmodel = \"*\"\ncommand = \"sh\"\n",
        ))
        .unwrap_err();
        assert!(
            err.contains("`command`") && err.contains("absolute"),
            "{err}"
        );
        let err = config(&plugin(
            "vendor = \"Cisco\"\nmodel = \"*\"\ncommand = \"/nonexistent/plugin\"\n",
        ))
        .unwrap_err();
        assert!(
            err.contains("`command`") && err.contains("/nonexistent/plugin"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let err = config(&plugin(&format!(
            "vendor = \"Cisco\"\nmodel = \"*\"\ncommand = \"{}\"\n",
            file.display()
        )))
        .unwrap_err();
        assert!(err.contains("not executable"), "{err}");
        let err = config(&plugin(&format!(
            "vendor = \"Cisco\"\nmodel = \"*\"\ncommand = \"{}\"\n",
            dir.path().display()
        )))
        .unwrap_err();
        assert!(err.contains("not a file"), "{err}");
    }

    #[test]
    fn patterns_are_checked_and_match_the_first_entry() {
        let err = config(&plugin(
            "vendor = \"Cis*\"\nmodel = \"*\"\ncommand = \"/bin/sh\"\n",
        ))
        .unwrap_err();
        assert!(err.contains("`vendor`"), "{err}");
        let err = config(&plugin(
            "vendor = \"Cisco\"\nmodel = \"C9*00\"\ncommand = \"/bin/sh\"\n",
        ))
        .unwrap_err();
        assert!(err.contains("`model`"), "{err}");
        let c = config(&plugin(
            "vendor = \"cisco\"\nmodel = \"c9300*\"\ncommand = \"/bin/sh\"\nargs = [\"first\"]\noptions = { a = 1, b = { c = \"d\" } }\n\n[[jobs.plugins]]\nvendor = \"*\"\nmodel = \"*\"\ncommand = \"/bin/true\"\nconfirm = \"plugin\"\ntimeout = \"5m\"\n",
        ))
        .unwrap();
        let first = c.jobs.plugin_for("Cisco", "C9300-48P").unwrap();
        assert_eq!(first.args, ["first"]);
        assert_eq!(first.confirm, Confirm::Snmp);
        assert_eq!(first.timeout, Duration::from_secs(1200));
        assert_eq!(
            serde_json::to_value(&first.options).unwrap(),
            serde_json::json!({"a": 1, "b": {"c": "d"}})
        );
        let other = c.jobs.plugin_for("Cisco", "C9500").unwrap();
        assert_eq!(other.command, PathBuf::from("/bin/true"));
        assert_eq!(other.confirm, Confirm::Plugin);
        assert!(c
            .jobs
            .plugin_for("Juniper", "C9300")
            .unwrap()
            .command
            .ends_with("true"));
        let exact = config(&plugin(
            "vendor = \"Cisco\"\nmodel = \"C9300\"\ncommand = \"/bin/sh\"\n",
        ))
        .unwrap();
        assert!(exact.jobs.plugin_for("CISCO", "c9300").is_some());
        assert!(exact.jobs.plugin_for("Cisco", "C9300-48P").is_none());
        assert!(exact.jobs.plugin_for("Cisco Systems", "C9300").is_none());
    }
}
