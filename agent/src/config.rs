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
//! `Debug` form is redacted, so a logged config never shows them. Each may
//! also be read from a file (`{ file = "PATH" }`) or an environment variable
//! (`{ env = "NAME" }`) instead of being written in the file.
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

pub mod jobs;
pub mod tunnel;
pub mod update;
pub use self::jobs::{Confirm, JobsConfig, PluginConfig};
pub use self::tunnel::{HostPort, TunnelConfig, TunnelTarget};
pub use self::update::UpdateConfig;

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
    /// Host health sampling (`[host]`).
    #[serde(default)]
    pub host: HostConfig,
    /// The on-disk spool (`[spool]`).
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Fault detection rules (`[detect]`).
    #[serde(default)]
    pub detect: DetectConfig,
    /// The agent's own Prometheus metrics (`[metrics]`).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The reverse SSH tunnel to the server's relay (`[tunnel]`,
    /// `[[tunnel.targets]]`); off without targets.
    #[serde(default)]
    pub tunnel: TunnelConfig,
    /// Self-update (`[update]`); off when absent.
    #[serde(default)]
    pub update: UpdateConfig,
    /// Upgrade jobs on devices (`[jobs]`, `[[jobs.plugins]]`); off when
    /// absent.
    #[serde(default)]
    pub jobs: JobsConfig,
}

/// `[host]`: health sampling of the agent's own host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Whether to sample the host at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time between two samples, e.g. `"30s"`.
    #[serde(default = "default_host_interval", deserialize_with = "human_duration")]
    pub interval: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_host_interval(),
        }
    }
}

/// `[spool]`: the durable queue of messages for the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool; `<identity_dir>/spool` when absent.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Upper bound of the spool on disk, in bytes (at least 65536).
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: default_spool_max_bytes(),
        }
    }
}

/// `[detect]`: how readings become faults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// File keeping open faults across restarts;
    /// `<identity_dir>/detector.json` when absent.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Consecutive failed polls before a device is unreachable.
    #[serde(default = "default_unreachable_after")]
    pub unreachable_after: u32,
    /// How long a polled link must stay down (admin up, oper down) before
    /// it is a fault, and up again before it clears.
    #[serde(
        default = "default_link_hold_down",
        deserialize_with = "human_duration"
    )]
    pub link_hold_down: Duration,
    /// The same for a link reported down by a linkDown trap.
    #[serde(default = "zero_duration", deserialize_with = "human_duration")]
    pub trap_link_hold_down: Duration,
    /// How long a failed sensor, power supply or fan must stay failed.
    #[serde(
        default = "default_link_hold_down",
        deserialize_with = "human_duration"
    )]
    pub sensor_hold_down: Duration,
    /// A fault that clears and returns within this window stays one fault
    /// (counted as a flap); its clear is sent once it has stayed clear
    /// this long.
    #[serde(default = "default_flap_window", deserialize_with = "human_duration")]
    pub flap_window: Duration,
    /// Host CPU use (percent) that is a fault when held for `cpu_for`.
    #[serde(default = "default_cpu_percent")]
    pub cpu_percent: f64,
    /// See `cpu_percent`.
    #[serde(default = "default_cpu_for", deserialize_with = "human_duration")]
    pub cpu_for: Duration,
    /// Host memory use (percent) that is a fault when held for `memory_for`.
    #[serde(default = "default_memory_percent")]
    pub memory_percent: f64,
    /// See `memory_percent`.
    #[serde(default = "default_usage_for", deserialize_with = "human_duration")]
    pub memory_for: Duration,
    /// Use of any host file system (percent) that is a fault when held for
    /// `disk_for`.
    #[serde(default = "default_disk_percent")]
    pub disk_percent: f64,
    /// See `disk_percent`.
    #[serde(default = "default_usage_for", deserialize_with = "human_duration")]
    pub disk_for: Duration,
    /// Thresholds on ENTITY-SENSOR-MIB readings (`[[detect.sensor_thresholds]]`).
    #[serde(default)]
    pub sensor_thresholds: Vec<SensorThreshold>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        // The same defaults as an empty `[detect]` table.
        toml::from_str("").unwrap_or_else(|_| Self {
            state_file: None,
            unreachable_after: default_unreachable_after(),
            link_hold_down: default_link_hold_down(),
            trap_link_hold_down: Duration::ZERO,
            sensor_hold_down: default_link_hold_down(),
            flap_window: default_flap_window(),
            cpu_percent: default_cpu_percent(),
            cpu_for: default_cpu_for(),
            memory_percent: default_memory_percent(),
            memory_for: default_usage_for(),
            disk_percent: default_disk_percent(),
            disk_for: default_usage_for(),
            sensor_thresholds: Vec::new(),
        })
    }
}

/// `[[detect.sensor_thresholds]]`: a reading of matching sensors beyond
/// `above` or `below` for `for` is a `threshold` fault.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SensorThresholdTable")]
pub struct SensorThreshold {
    /// Matches sensors whose entity name contains this (case-insensitive);
    /// every sensor when absent.
    pub name: Option<String>,
    /// Matches sensors of this entPhySensorType (`celsius`, `voltsDC`,
    /// `rpm`, ... as the MIB names them, or the number).
    pub sensor_type: Option<i64>,
    /// Fault when the value (in the sensor's unit) is above this.
    pub above: Option<f64>,
    /// Fault when the value is below this.
    pub below: Option<f64>,
    /// How long the value must stay beyond the bound.
    pub hold: Duration,
    /// Severity of the fault.
    pub severity: outpost_protocol::Severity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorThresholdTable {
    name: Option<String>,
    sensor_type: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    #[serde(
        default = "default_link_hold_down",
        deserialize_with = "human_duration",
        rename = "for"
    )]
    hold: Duration,
    #[serde(default = "default_threshold_severity")]
    severity: outpost_protocol::Severity,
}

impl TryFrom<SensorThresholdTable> for SensorThreshold {
    type Error = String;

    fn try_from(t: SensorThresholdTable) -> Result<Self, String> {
        if t.above.is_none() && t.below.is_none() {
            return Err("a sensor threshold needs `above` or `below`".into());
        }
        let sensor_type = match t.sensor_type {
            None => None,
            Some(name) => Some(sensor_type_number(&name).ok_or_else(|| {
                format!("unknown sensor_type {name:?}; use an entPhySensorType name such as \"celsius\", \"voltsDC\", \"rpm\"")
            })?),
        };
        Ok(SensorThreshold {
            name: t.name,
            sensor_type,
            above: t.above,
            below: t.below,
            hold: t.hold,
            severity: t.severity,
        })
    }
}

/// entPhySensorType by its MIB name (or number).
fn sensor_type_number(name: &str) -> Option<i64> {
    const NAMES: [&str; 12] = [
        "other",
        "unknown",
        "voltsAC",
        "voltsDC",
        "amperes",
        "watts",
        "hertz",
        "celsius",
        "percentRH",
        "rpm",
        "cmm",
        "truthvalue",
    ];
    if let Ok(n) = name.parse::<i64>() {
        return (1..=12).contains(&n).then_some(n);
    }
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| i as i64 + 1)
}

/// `[metrics]`: the agent's own health in Prometheus text format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `/metrics` on, e.g. `"127.0.0.1:9101"`; off when
    /// absent.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
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

/// A community or password: shown as `***` in `Debug` output. In the file
/// it is written inline, or as `{ file = "PATH" }` or `{ env = "NAME" }`
/// ([`outpost_protocol::secret`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        outpost_protocol::secret::string(deserializer).map(Secret)
    }
}

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
        let mut config: AgentConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        if config.tunnel.relay.is_none() {
            config.tunnel.relay = tunnel::default_relay(&config.server.url);
        }
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
        if self.host.interval < Duration::from_secs(1) {
            return Err(invalid("host.interval must be at least 1s".to_owned()));
        }
        if self.spool.max_bytes < 65536 {
            return Err(invalid(format!(
                "spool.max_bytes must be at least 65536, got {}",
                self.spool.max_bytes
            )));
        }
        let d = &self.detect;
        if d.unreachable_after == 0 {
            return Err(invalid(
                "detect.unreachable_after must be at least 1".to_owned(),
            ));
        }
        for (key, value) in [
            ("cpu_percent", d.cpu_percent),
            ("memory_percent", d.memory_percent),
            ("disk_percent", d.disk_percent),
        ] {
            if !(value > 0.0 && value <= 100.0) {
                return Err(invalid(format!(
                    "detect.{key} must be above 0 and at most 100, got {value}"
                )));
            }
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
        self.update.validate().map_err(invalid)?;
        self.jobs.validate(&self.update).map_err(invalid)?;
        let t = &self.tunnel;
        if t.keepalive < Duration::from_secs(1) || t.keepalive > Duration::from_secs(3600) {
            return Err(invalid(format!(
                "tunnel.keepalive must be between 1s and 1h, got {}",
                humantime::format_duration(t.keepalive)
            )));
        }
        if t.enabled() && t.relay.is_none() {
            return Err(invalid(format!(
                "tunnel.relay is needed: server.url {url:?} has no host to default to"
            )));
        }
        let mut names = HashSet::new();
        for target in &t.targets {
            if !names.insert(target.name.as_str()) {
                return Err(invalid(format!(
                    "tunnel.targets: the name {:?} is used by more than one target",
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

fn default_true() -> bool {
    true
}

fn default_host_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_spool_max_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_unreachable_after() -> u32 {
    3
}

fn default_link_hold_down() -> Duration {
    Duration::from_secs(60)
}

fn zero_duration() -> Duration {
    Duration::ZERO
}

fn default_flap_window() -> Duration {
    Duration::from_secs(600)
}

fn default_cpu_percent() -> f64 {
    95.0
}

fn default_cpu_for() -> Duration {
    Duration::from_secs(600)
}

fn default_memory_percent() -> f64 {
    95.0
}

fn default_disk_percent() -> f64 {
    90.0
}

fn default_usage_for() -> Duration {
    Duration::from_secs(300)
}

fn default_threshold_severity() -> outpost_protocol::Severity {
    outpost_protocol::Severity::Warning
}

impl AgentConfig {
    /// The self-update directory: `update.dir`, or `<identity_dir>/update`.
    pub fn update_dir(&self) -> PathBuf {
        self.update
            .dir
            .clone()
            .unwrap_or_else(|| self.server.identity_dir.join("update"))
    }

    /// The upgrade jobs' directory: `jobs.dir`, or `<identity_dir>/jobs`.
    pub fn jobs_dir(&self) -> PathBuf {
        self.jobs
            .dir
            .clone()
            .unwrap_or_else(|| self.server.identity_dir.join("jobs"))
    }

    /// The spool directory: `spool.dir`, or `<identity_dir>/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool
            .dir
            .clone()
            .unwrap_or_else(|| self.server.identity_dir.join("spool"))
    }

    /// The detector's state file: `detect.state_file`, or
    /// `<identity_dir>/detector.json`.
    pub fn detector_state_file(&self) -> PathBuf {
        self.detect
            .state_file
            .clone()
            .unwrap_or_else(|| self.server.identity_dir.join("detector.json"))
    }
}

/// Where the identity is kept unless `server.identity_dir` says otherwise:
/// the Debian package's state directory.
pub const DEFAULT_IDENTITY_DIR: &str = "/var/lib/outpost/agent";

fn default_identity_dir() -> PathBuf {
    PathBuf::from(DEFAULT_IDENTITY_DIR)
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
