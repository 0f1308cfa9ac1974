//! `[tunnel]` and `[[tunnel.targets]]`: the reverse SSH tunnel to the
//! server's relay (see [`crate::tunnel`]).
//!
//! Each key is checked while its table is decoded, so errors carry the
//! line; unique target names are checked in [`super::AgentConfig`]'s
//! validation, and the default relay (the host of `server.url`, port
//! [`DEFAULT_RELAY_PORT`]) is filled in after parsing.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::human_duration;

/// Port of the relay when `tunnel.relay` is absent.
pub const DEFAULT_RELAY_PORT: u16 = 2222;

/// The target port when a `[[tunnel.targets]]` table has no `ports`.
pub const DEFAULT_TARGET_PORT: u16 = 22;

/// `[tunnel]`: the reverse SSH tunnel. It runs only when at least one
/// target is configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// The relay's `host:port`. After [`super::AgentConfig::parse`] this is
    /// the host of `server.url` with port 2222 when the file has none
    /// (`None` only if that URL has no host).
    #[serde(default)]
    pub relay: Option<HostPort>,
    /// SSH keepalive interval; three unanswered keepalives drop the
    /// connection, which is then re-established.
    #[serde(default = "default_keepalive", deserialize_with = "human_duration")]
    pub keepalive: Duration,
    /// The relay's host key (`ssh-ed25519 AAAA...`, comment dropped), used
    /// only when the identity has none.
    #[serde(default, deserialize_with = "openssh_public_key")]
    pub host_key: Option<String>,
    /// The devices engineers may reach through the tunnel.
    #[serde(default)]
    pub targets: Vec<TunnelTarget>,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        Self {
            relay: None,
            keepalive: default_keepalive(),
            host_key: None,
            targets: Vec::new(),
        }
    }
}

impl TunnelConfig {
    /// Whether the tunnel should run (at least one target).
    pub fn enabled(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The target named `name`, if configured.
    pub fn target(&self, name: &str) -> Option<&TunnelTarget> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// A host name or IP address and a port, e.g. the relay's address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (1..=65535).
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl TryFrom<String> for HostPort {
    type Error = String;

    /// Parses `host:port` or `[v6]:port`.
    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("relay must be \"host:port\" (or \"[v6]:port\"), got {text:?}");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':').ok_or_else(bad)?)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(bad());
            }
            (host, port)
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad)?;
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

/// One device reachable through the tunnel (`[[tunnel.targets]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TunnelTargetTable")]
pub struct TunnelTarget {
    /// The name the server routes by (the device's target name).
    pub name: String,
    /// Host name or IP address the agent connects to (no port, no
    /// brackets).
    pub address: String,
    /// The ports engineers may reach on it.
    pub ports: Vec<u16>,
}

impl TunnelTarget {
    /// Whether `port` is one of the target's allowed ports.
    pub fn allows(&self, port: u32) -> bool {
        self.ports.iter().any(|p| u32::from(*p) == port)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TunnelTargetTable {
    name: String,
    address: String,
    #[serde(default = "default_ports")]
    ports: Vec<i64>,
}

impl TryFrom<TunnelTargetTable> for TunnelTarget {
    type Error = String;

    fn try_from(t: TunnelTargetTable) -> Result<Self, String> {
        let name = t.name;
        if name.trim().is_empty() {
            return Err("tunnel target name must not be empty".to_owned());
        }
        if name.chars().any(char::is_control) {
            return Err(format!(
                "tunnel target name {name:?} must not contain control characters"
            ));
        }
        let at = format!("tunnel target {name:?}");
        let address = t
            .address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(&t.address)
            .to_owned();
        if address.is_empty() {
            return Err(format!("{at}: address must not be empty"));
        }
        if address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(format!(
                "{at}: address {:?} must be a host name or IP address",
                t.address
            ));
        }
        if address.contains(':') && address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "{at}: address {:?} must be a host name or IP address without a port (ports go in `ports`)",
                t.address
            ));
        }
        if t.ports.is_empty() {
            return Err(format!("{at}: `ports` must list at least one port"));
        }
        let mut ports = Vec::with_capacity(t.ports.len());
        for port in t.ports {
            let port = u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{at}: port {port} is not between 1 and 65535"))?;
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        Ok(TunnelTarget {
            name,
            address,
            ports,
        })
    }
}

/// Reads an OpenSSH public key line, keeping `algorithm base64` (the
/// comment is dropped).
fn openssh_public_key<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    normalize_public_key(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `algorithm base64` of an OpenSSH public key line, checked to be a key.
pub fn normalize_public_key(text: &str) -> Result<String, String> {
    let normalized = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    russh::keys::PublicKey::from_openssh(&normalized).map_err(|err| {
        format!(
            "host_key must be an OpenSSH public key line such as \"ssh-ed25519 AAAA...\" ({err})"
        )
    })?;
    Ok(normalized)
}

/// The default relay: the host of `server_url`, port 2222.
pub(super) fn default_relay(server_url: &str) -> Option<HostPort> {
    let url = reqwest::Url::parse(server_url).ok()?;
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(HostPort {
        host: host.to_owned(),
        port: DEFAULT_RELAY_PORT,
    })
}

fn default_keepalive() -> Duration {
    Duration::from_secs(30)
}

fn default_ports() -> Vec<i64> {
    vec![i64::from(DEFAULT_TARGET_PORT)]
}
