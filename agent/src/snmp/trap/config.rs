//! `[traps]` in `agent.toml`: where the trap and inform receiver listens,
//! which v2c communities and v3 users it accepts, and its limits.
//!
//! ```toml
//! [traps]
//! listen = "127.0.0.1:10162"
//! communities = ["public"]
//!
//! [[traps.users]]
//! user = "trapuser"
//! security_level = "authPriv"
//! auth_protocol = "SHA-256"
//! auth_password = "authpass123"
//! priv_protocol = "AES-256"
//! priv_password = "privpass123"
//! ```
//!
//! Validation happens while the table is decoded, so errors carry the line
//! of `[traps]` (or of the `[[traps.users]]` entry at fault).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{AuthProtocol, PrivProtocol, Secret, SecurityLevel, V3Credentials};

/// Default listen address: unprivileged, loopback only. Devices sending to
/// the standard port 162 need `listen = "0.0.0.0:162"` (and the privilege to
/// bind it).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10162";

/// Default and greatest datagram size accepted: 64 KiB, capped at the
/// largest UDP payload over IPv4 (65,507 bytes).
pub const DEFAULT_MAX_DATAGRAM: usize = 65_536;

/// The smallest `max_datagram` allowed (an SNMP engine must accept 484-byte
/// messages, RFC 3417).
pub const MIN_MAX_DATAGRAM: usize = 484;

/// The receiver's settings, validated (`[traps]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TrapTable")]
pub struct TrapConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// v2c communities accepted; a v2c notification with any other
    /// community is dropped and counted. Empty: v2c is refused.
    pub communities: Vec<Secret>,
    /// SNMPv3 (USM) users accepted, each at its configured security level
    /// or above.
    pub users: Vec<V3Credentials>,
    /// Datagrams longer than this are dropped as malformed.
    pub max_datagram: usize,
    /// This receiver's SNMPv3 engine ID (the one v3 informs are addressed
    /// to), as bytes. `None`: taken from `state_file`, else generated.
    pub engine_id: Option<Vec<u8>>,
    /// Where the engine ID and boot counter are kept across restarts
    /// (RFC 3414 requires the counter to grow). `None`: the engine ID is
    /// new at every start (v3 senders of informs discover it anyway).
    pub state_file: Option<PathBuf>,
}

impl Default for TrapConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            communities: Vec::new(),
            users: Vec::new(),
            max_datagram: DEFAULT_MAX_DATAGRAM,
            engine_id: None,
            state_file: None,
        }
    }
}

/// `[traps]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrapTable {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    communities: Vec<Secret>,
    #[serde(default)]
    users: Vec<TrapUser>,
    #[serde(default = "default_max_datagram")]
    max_datagram: usize,
    #[serde(default)]
    engine_id: Option<String>,
    #[serde(default)]
    state_file: Option<PathBuf>,
}

/// One `[[traps.users]]` entry, validated into [`V3Credentials`].
#[derive(Deserialize)]
#[serde(try_from = "UserTable")]
struct TrapUser(V3Credentials);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserTable {
    user: String,
    security_level: SecurityLevel,
    auth_protocol: AuthProtocol,
    auth_password: Secret,
    priv_protocol: Option<PrivProtocol>,
    priv_password: Option<Secret>,
}

impl TryFrom<UserTable> for TrapUser {
    type Error = String;

    fn try_from(t: UserTable) -> Result<Self, String> {
        if t.user.is_empty() || t.user.len() > 32 || t.user.chars().any(char::is_control) {
            return Err(format!(
                "traps user {:?}: `user` must be 1 to 32 characters without control characters",
                t.user
            ));
        }
        let at = format!("traps user {:?}", t.user);
        password(&at, "auth_password", &t.auth_password)?;
        let privacy = match t.security_level {
            SecurityLevel::AuthNoPriv => {
                if t.priv_protocol.is_some() || t.priv_password.is_some() {
                    return Err(format!(
                        "{at}: `priv_protocol` and `priv_password` need security_level \"authPriv\""
                    ));
                }
                None
            }
            SecurityLevel::AuthPriv => {
                let need = |key: &str| format!("{at}: security_level \"authPriv\" needs `{key}`");
                let protocol = t.priv_protocol.ok_or_else(|| need("priv_protocol"))?;
                let secret = t.priv_password.ok_or_else(|| need("priv_password"))?;
                if protocol == PrivProtocol::Des {
                    return Err(format!(
                        "{at}: priv_protocol \"DES\" is not supported for traps; use \"AES\" or stronger"
                    ));
                }
                password(&at, "priv_password", &secret)?;
                Some((protocol, secret))
            }
        };
        Ok(TrapUser(V3Credentials {
            user: t.user,
            auth: (t.auth_protocol, t.auth_password),
            privacy,
        }))
    }
}

impl TryFrom<TrapTable> for TrapConfig {
    type Error = String;

    fn try_from(t: TrapTable) -> Result<Self, String> {
        let listen = match &t.listen {
            None => default_listen(),
            Some(text) => text.parse().map_err(|_| {
                format!("traps.listen: {text:?} is not an address such as \"0.0.0.0:162\"")
            })?,
        };
        if t.communities.is_empty() && t.users.is_empty() {
            return Err(
                "[traps] accepts nothing: list v2c `communities` or add [[traps.users]]".to_owned(),
            );
        }
        if t.communities.iter().any(|c| c.expose().is_empty()) {
            return Err("traps.communities: a community is empty".to_owned());
        }
        if !(MIN_MAX_DATAGRAM..=DEFAULT_MAX_DATAGRAM).contains(&t.max_datagram) {
            return Err(format!(
                "traps.max_datagram must be between {MIN_MAX_DATAGRAM} and {DEFAULT_MAX_DATAGRAM}, got {}",
                t.max_datagram
            ));
        }
        let mut names = HashSet::new();
        for user in &t.users {
            if !names.insert(user.0.user.as_str()) {
                return Err(format!(
                    "traps.users: the user {:?} is listed more than once",
                    user.0.user
                ));
            }
        }
        let engine_id = t.engine_id.as_deref().map(parse_engine_id).transpose()?;
        Ok(TrapConfig {
            listen,
            communities: t.communities,
            users: t.users.into_iter().map(|u| u.0).collect(),
            max_datagram: t.max_datagram,
            engine_id,
            state_file: t.state_file,
        })
    }
}

/// USM derives keys from passwords of at least 8 characters (RFC 3414).
fn password(at: &str, key: &str, secret: &Secret) -> Result<(), String> {
    if secret.expose().len() < 8 {
        return Err(format!("{at}: `{key}` must be at least 8 characters"));
    }
    Ok(())
}

/// An engine ID written in hex (`"0x8000..."` or `"8000..."`, 5 to 32
/// octets, RFC 3411).
pub fn parse_engine_id(text: &str) -> Result<Vec<u8>, String> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let bad = || {
        format!("traps.engine_id: {text:?} must be 5 to 32 octets in hex, e.g. \"0x80001f8880c0ffee01\"")
    };
    if !hex.len().is_multiple_of(2) || !(10..=64).contains(&hex.len()) {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10162))
}

fn default_max_datagram() -> usize {
    DEFAULT_MAX_DATAGRAM
}
