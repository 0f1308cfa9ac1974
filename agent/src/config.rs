//! The agent's configuration file (`agent.toml`): its TOML shape, defaults
//! and validation.
//!
//! Parsing is strict: every table refuses unknown keys, so a typo fails with
//! the TOML parser's message naming the key, the line and the column. Checks
//! that look at several keys together (a v3 target needs a user, an authPriv
//! target a privacy password, ...) run while the target's table is decoded,
//! so their errors carry the line too. Names must be unique across targets;
//! that check names the duplicated target.
//!
//! Secrets (communities and passwords) are wrapped in [`Secret`], whose
//! `Debug` form is redacted, so a logged config never shows them.
//!
//! ```toml
//! [server]
//! url = "https://support.example.com"
//!
//! [snmp]
//! concurrency = 16
//! interval = "30s"
//!
//! [[snmp.targets]]
//! name = "sw1"
//! address = "192.0.2.10:161"
//! version = "v2c"
//! community = "public"
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Default port of an SNMP agent.
pub const SNMP_PORT: u16 = 161;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// How to reach the Outpost server (`[server]`).
    pub server: ServerConfig,
    /// SNMP polling (`[snmp]`, `[[snmp.targets]]`); empty when absent.
    #[serde(default)]
    pub snmp: SnmpConfig,
    /// The trap and inform receiver (`[traps]`); off when absent.
    pub traps: Option<crate::snmp::trap::TrapConfig>,
}

/// `[server]`: the uplink to the Outpost server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Base URL of the server, `https://...` (`http://` only for loopback
    /// tests and demos; the uplink enforces that).
    pub url: String,
    /// Directory holding the identity issued at enrolment.
    #[serde(default = "default_identity_dir")]
    pub identity_dir: PathBuf,
    /// File holding a one-time enrolment token, if enrolment is pending.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `[snmp]`: device polling settings and the devices themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpConfig {
    /// How many targets are polled at the same time (1 to 1024).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Time between two polls of a target, e.g. `"30s"`.
    #[serde(default = "default_interval", deserialize_with = "human_duration")]
    pub interval: Duration,
    /// The devices to poll (`[[snmp.targets]]`).
    #[serde(default)]
    pub targets: Vec<SnmpTarget>,
}

impl Default for SnmpConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            interval: default_interval(),
            targets: Vec::new(),
        }
    }
}

/// One SNMP device to poll, validated (`[[snmp.targets]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TargetTable")]
pub struct SnmpTarget {
    /// The device's name on this agent: the device part of its fault keys.
    pub name: String,
    /// The address as written in the file, for display.
    pub address: String,
    /// Host name or IP address (without IPv6 brackets).
    pub host: String,
    /// UDP port (161 when the address has none).
    pub port: u16,
    /// Protocol version and credentials.
    pub credentials: Credentials,
    /// How long to wait for each response.
    pub timeout: Duration,
    /// How many times to resend a request that got no response.
    pub retries: u32,
    /// GETBULK max-repetitions for table walks.
    pub max_repetitions: u32,
}

impl SnmpTarget {
    /// `v2c` or `v3`, for display.
    pub fn version_label(&self) -> &'static str {
        match self.credentials {
            Credentials::V2c { .. } => "v2c",
            Credentials::V3(_) => "v3",
        }
    }
}

/// SNMP version and its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// SNMPv2c with a community string.
    V2c {
        /// The community.
        community: Secret,
    },
    /// SNMPv3 with the user-based security model.
    V3(V3Credentials),
}

/// An SNMPv3 (USM) user and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Credentials {
    /// The USM user name.
    pub user: String,
    /// Authentication protocol and password.
    pub auth: (AuthProtocol, Secret),
    /// Privacy protocol and password; `None` for authNoPriv.
    pub privacy: Option<(PrivProtocol, Secret)>,
}

/// SNMP version, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnmpVersion {
    /// `"v2c"`.
    V2c,
    /// `"v3"`.
    V3,
}

/// SNMPv3 security level, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SecurityLevel {
    /// `"authNoPriv"`: authenticated, not encrypted.
    #[serde(rename = "authNoPriv")]
    AuthNoPriv,
    /// `"authPriv"`: authenticated and encrypted.
    #[serde(rename = "authPriv")]
    AuthPriv,
}

/// SNMPv3 authentication protocol, named as net-snmp names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthProtocol {
    /// `"MD5"` (weak; only for old devices).
    #[serde(rename = "MD5")]
    Md5,
    /// `"SHA"` (SHA-1), also accepted as `"SHA-1"`.
    #[serde(rename = "SHA", alias = "SHA-1")]
    Sha1,
    /// `"SHA-224"`.
    #[serde(rename = "SHA-224")]
    Sha224,
    /// `"SHA-256"`.
    #[serde(rename = "SHA-256")]
    Sha256,
    /// `"SHA-384"`.
    #[serde(rename = "SHA-384")]
    Sha384,
    /// `"SHA-512"`.
    #[serde(rename = "SHA-512")]
    Sha512,
}

/// SNMPv3 privacy protocol, named as net-snmp names them: `AES-192` and
/// `AES-256` extend short keys the Blumenthal way (net-snmp's default), the
/// `-C` forms the Reeder way used by Cisco.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PrivProtocol {
    /// `"DES"` (weak; only for old devices).
    #[serde(rename = "DES")]
    Des,
    /// `"AES"` (AES-128), also accepted as `"AES-128"`.
    #[serde(rename = "AES", alias = "AES-128")]
    Aes128,
    /// `"AES-192"`.
    #[serde(rename = "AES-192")]
    Aes192,
    /// `"AES-256"`.
    #[serde(rename = "AES-256")]
    Aes256,
    /// `"AES-192-C"`.
    #[serde(rename = "AES-192-C")]
    Aes192Cisco,
    /// `"AES-256-C"`.
    #[serde(rename = "AES-256-C")]
    Aes256Cisco,
}

/// A community or password: shown as `***` in `Debug` output.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema; the message
    /// names the key, line and column.
    #[error("{}{message}", file_prefix(.path))]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but breaks a rule spanning several entries.
    #[error("{}{message}", file_prefix(.path))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

impl AgentConfig {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|err| err.in_file(path))
    }

    /// Parses and validates configuration text. Errors carry an empty path;
    /// [`AgentConfig::load`] fills it in.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: AgentConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks rules that span several entries.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
        };
        let url = &self.server.url;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid(format!(
                "server.url must start with https:// (or http:// for loopback tests), got {url:?}"
            )));
        }
        if !(1..=1024).contains(&self.snmp.concurrency) {
            return Err(invalid(format!(
                "snmp.concurrency must be between 1 and 1024, got {}",
                self.snmp.concurrency
            )));
        }
        if self.snmp.interval < Duration::from_secs(1) {
            return Err(invalid(format!(
                "snmp.interval must be at least 1s, got {}",
                humantime::format_duration(self.snmp.interval)
            )));
        }
        let mut names = HashSet::new();
        for target in &self.snmp.targets {
            if !names.insert(target.name.as_str()) {
                return Err(invalid(format!(
                    "snmp.targets: the name {:?} is used by more than one target",
                    target.name
                )));
            }
        }
        Ok(())
    }
}

/// `"FILE: "`, or nothing for text parsed without a file.
fn file_prefix(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}: ", path.display())
    }
}

impl ConfigError {
    fn in_file(self, file: &Path) -> Self {
        match self {
            Self::Parse { message, .. } => Self::Parse {
                path: file.to_owned(),
                message,
            },
            Self::Invalid { message, .. } => Self::Invalid {
                path: file.to_owned(),
                message,
            },
            read @ Self::Read { .. } => read,
        }
    }
}

/// `[[snmp.targets]]` as written, before the keys are checked together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetTable {
    name: String,
    address: String,
    version: SnmpVersion,
    community: Option<Secret>,
    user: Option<String>,
    security_level: Option<SecurityLevel>,
    auth_protocol: Option<AuthProtocol>,
    auth_password: Option<Secret>,
    priv_protocol: Option<PrivProtocol>,
    priv_password: Option<Secret>,
    #[serde(default = "default_timeout", deserialize_with = "human_duration")]
    timeout: Duration,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_max_repetitions")]
    max_repetitions: u32,
}

impl TryFrom<TargetTable> for SnmpTarget {
    type Error = String;

    fn try_from(t: TargetTable) -> Result<Self, String> {
        let name = t.name;
        if name.is_empty()
            || name
                .chars()
                .any(|c| c == '/' || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "target name {name:?} must be non-empty, without '/', spaces or control characters"
            ));
        }
        let at = format!("target {name:?}");
        let (host, port) =
            split_address(&t.address).map_err(|why| format!("{at}: address {why}"))?;
        if t.timeout < Duration::from_millis(10) || t.timeout > Duration::from_secs(60) {
            return Err(format!("{at}: timeout must be between 10ms and 60s"));
        }
        if t.retries > 10 {
            return Err(format!("{at}: retries must be at most 10"));
        }
        if !(1..=100).contains(&t.max_repetitions) {
            return Err(format!("{at}: max_repetitions must be between 1 and 100"));
        }
        let v3_keys = [
            ("user", t.user.is_some()),
            ("security_level", t.security_level.is_some()),
            ("auth_protocol", t.auth_protocol.is_some()),
            ("auth_password", t.auth_password.is_some()),
            ("priv_protocol", t.priv_protocol.is_some()),
            ("priv_password", t.priv_password.is_some()),
        ];
        let credentials = match t.version {
            SnmpVersion::V2c => {
                if let Some((key, _)) = v3_keys.iter().find(|(_, set)| *set) {
                    return Err(format!("{at}: `{key}` is for version \"v3\", not \"v2c\""));
                }
                let community = t
                    .community
                    .ok_or_else(|| format!("{at}: version \"v2c\" needs `community`"))?;
                if community.expose().is_empty() {
                    return Err(format!("{at}: `community` is empty"));
                }
                Credentials::V2c { community }
            }
            SnmpVersion::V3 => {
                if t.community.is_some() {
                    return Err(format!(
                        "{at}: `community` is for version \"v2c\", not \"v3\""
                    ));
                }
                let need = |key: &str| format!("{at}: version \"v3\" needs `{key}`");
                let user = t.user.ok_or_else(|| need("user"))?;
                if user.is_empty() {
                    return Err(format!("{at}: `user` is empty"));
                }
                let level = t.security_level.ok_or_else(|| need("security_level"))?;
                let auth_protocol = t.auth_protocol.ok_or_else(|| need("auth_protocol"))?;
                let auth_password = t.auth_password.ok_or_else(|| need("auth_password"))?;
                check_password(&at, "auth_password", &auth_password)?;
                let privacy = match level {
                    SecurityLevel::AuthNoPriv => {
                        for (key, set) in [
                            ("priv_protocol", t.priv_protocol.is_some()),
                            ("priv_password", t.priv_password.is_some()),
                        ] {
                            if set {
                                return Err(format!(
                                    "{at}: `{key}` needs security_level \"authPriv\""
                                ));
                            }
                        }
                        None
                    }
                    SecurityLevel::AuthPriv => {
                        let protocol = t.priv_protocol.ok_or_else(|| need("priv_protocol"))?;
                        let password = t.priv_password.ok_or_else(|| need("priv_password"))?;
                        check_password(&at, "priv_password", &password)?;
                        Some((protocol, password))
                    }
                };
                Credentials::V3(V3Credentials {
                    user,
                    auth: (auth_protocol, auth_password),
                    privacy,
                })
            }
        };
        Ok(SnmpTarget {
            name,
            address: t.address,
            host,
            port,
            credentials,
            timeout: t.timeout,
            retries: t.retries,
            max_repetitions: t.max_repetitions,
        })
    }
}

/// USM derives keys from passwords of at least 8 characters (RFC 3414).
fn check_password(at: &str, key: &str, password: &Secret) -> Result<(), String> {
    if password.expose().len() < 8 {
        return Err(format!("{at}: `{key}` must be at least 8 characters"));
    }
    Ok(())
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address
/// (several colons, no brackets) has no port.
fn split_address(address: &str) -> Result<(String, u16), String> {
    let parse_port = |port: &str| {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{address:?} has an invalid port {port:?}"))
    };
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{address:?} lacks the closing ']'"))?;
        let port = match after {
            "" => SNMP_PORT,
            _ => parse_port(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("{address:?}: expected ':port' after ']'"))?,
            )?,
        };
        (host, port)
    } else {
        match address.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, parse_port(port)?),
            _ => (address, SNMP_PORT),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{address:?} has no valid host"));
    }
    Ok((host.to_owned(), port))
}

/// Deserializes a duration written the humantime way (`"30s"`, `"1m 30s"`).
fn human_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({err}); write e.g. \"30s\""
        ))
    })
}

fn default_identity_dir() -> PathBuf {
    PathBuf::from("/var/lib/outpost-agent")
}

fn default_concurrency() -> usize {
    16
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_retries() -> u32 {
    1
}

fn default_max_repetitions() -> u32 {
    25
}

#[cfg(test)]
mod tests;
