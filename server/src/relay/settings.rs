//! The `[relay]` config section and its validation.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::sla::policy::Span;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:2222";

/// `[relay]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySpec {
    /// Run the SSH relay. Default true.
    pub enabled: Option<bool>,
    /// Address the relay listens on (flag --ssh-listen, env
    /// OUTPOST_SSH_LISTEN). Default 127.0.0.1:2222.
    pub listen: Option<String>,
    /// Live sessions one engineer may hold at once. Default 8.
    pub max_sessions_per_engineer: Option<u32>,
    /// A session with no data either way for this long is cut. Default 30m.
    pub idle_timeout: Option<Span>,
    /// Authentication attempts per connection. Default 6.
    pub max_auth_attempts: Option<u32>,
    /// Every rejected authentication takes this long (so a rejection tells
    /// nothing by its timing). Default 1s.
    pub auth_rejection_time: Option<Span>,
    /// Tunnels one agent may hold at once (a reconnecting agent's newest
    /// tunnel wins; the oldest beyond this is closed). Default 2.
    pub max_tunnels_per_agent: Option<u32>,
    /// SSH keepalive towards agents and engineers. Default 30s; 3 missed
    /// close the connection.
    pub keepalive: Option<Span>,
    /// How far (MiB) an engineer who reads nothing back may send ahead of
    /// the device before the session is cut. Default 64, at least 8.
    pub max_session_buffer_mib: Option<u32>,
    /// CAs whose OpenSSH user certificates log engineers in (besides the
    /// keys registered on users): OpenSSH public key lines.
    #[serde(default)]
    pub trusted_user_ca_keys: Vec<String>,
    /// Where the other server replicas reach this replica's relay
    /// (`host:port`), to be relayed to agent tunnels it holds. Default: the
    /// listen address, unless that is unspecified (0.0.0.0, ::), when it
    /// must be set for replicas to relay to this one.
    pub advertise: Option<String>,
    /// How often this replica records that it is alive. Default 5s.
    pub replica_heartbeat: Option<Span>,
    /// A replica not heard of for this long is dead: the others end its
    /// sessions and forget its tunnels. Default 30s, at least three
    /// heartbeats.
    pub replica_timeout: Option<Span>,
}

/// The relay settings in force.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub max_sessions_per_engineer: u32,
    pub idle_timeout: Duration,
    pub max_auth_attempts: u32,
    pub auth_rejection_time: Duration,
    pub max_tunnels_per_agent: u32,
    pub keepalive: Duration,
    /// Bytes (see `max_session_buffer_mib`).
    pub max_session_buffer: u64,
    pub trusted_cas: super::certs::TrustedCas,
    /// `host:port` other replicas reach this one at; `None`: derived from
    /// the listening address when the relay starts.
    pub advertise: Option<String>,
    pub replica_heartbeat: Duration,
    pub replica_timeout: Duration,
}

impl RelaySpec {
    /// Validates the section; `listen` (from flag or env) wins over the file.
    pub fn build(&self, listen: Option<String>) -> Result<RelaySettings, String> {
        let text = listen
            .or_else(|| self.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = text
            .parse()
            .map_err(|_| format!("relay.listen: {text:?} is not an address like 127.0.0.1:2222"))?;
        let range = |key: &str, v: Option<u32>, default: u32, max: u32| match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(format!("relay.{key}: {n} is out of range 1..={max}")),
        };
        let span = |key: &str, v: Option<Span>, default: Duration, min: Duration| match v {
            None => Ok(default),
            Some(s) if s.0 >= min => Ok(s.0),
            Some(s) => Err(format!(
                "relay.{key}: {} is shorter than {}",
                humantime::format_duration(s.0),
                humantime::format_duration(min)
            )),
        };
        let replica_heartbeat = span(
            "replica_heartbeat",
            self.replica_heartbeat,
            Duration::from_secs(5),
            Duration::from_secs(1),
        )?;
        let replica_timeout = match self.replica_timeout {
            None => (replica_heartbeat * 6).max(Duration::from_secs(30)),
            Some(t) if t.0 >= replica_heartbeat * 3 => t.0,
            Some(t) => {
                return Err(format!(
                    "relay.replica_timeout: {} is shorter than three heartbeats ({})",
                    humantime::format_duration(t.0),
                    humantime::format_duration(replica_heartbeat * 3)
                ))
            }
        };
        let advertise = match &self.advertise {
            None => None,
            Some(text) => Some(check_advertise(text)?),
        };
        Ok(RelaySettings {
            advertise,
            replica_heartbeat,
            replica_timeout,
            enabled: self.enabled.unwrap_or(true),
            listen,
            max_sessions_per_engineer: range(
                "max_sessions_per_engineer",
                self.max_sessions_per_engineer,
                8,
                1000,
            )?,
            idle_timeout: span(
                "idle_timeout",
                self.idle_timeout,
                Duration::from_secs(1800),
                Duration::from_secs(1),
            )?,
            max_auth_attempts: range("max_auth_attempts", self.max_auth_attempts, 6, 100)?,
            auth_rejection_time: match self.auth_rejection_time {
                None => Duration::from_secs(1),
                Some(s) if s.0 <= Duration::from_secs(10) => s.0,
                Some(_) => return Err("relay.auth_rejection_time: at most 10s".into()),
            },
            max_tunnels_per_agent: range(
                "max_tunnels_per_agent",
                self.max_tunnels_per_agent,
                2,
                100,
            )?,
            keepalive: span(
                "keepalive",
                self.keepalive,
                Duration::from_secs(30),
                Duration::from_secs(1),
            )?,
            max_session_buffer: match self.max_session_buffer_mib {
                None => 64 << 20,
                Some(n) if (8..=4096).contains(&n) => u64::from(n) << 20,
                Some(n) => {
                    return Err(format!(
                        "relay.max_session_buffer_mib: {n} is out of range 8..=4096"
                    ))
                }
            },
            trusted_cas: super::certs::TrustedCas::parse(&self.trusted_user_ca_keys)?,
        })
    }
}

/// `host:port` with a port, and a host that is not an unspecified address.
fn check_advertise(text: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("relay.advertise: {text:?} {why}"));
    let Some((host, port)) = text.rsplit_once(':') else {
        return bad("is not host:port");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return bad("has no usable host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return bad("has no port in 1..=65535"),
    }
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return bad("is an unspecified address; name this replica's own address");
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let s = RelaySpec::default().build(None).expect("defaults");
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert!(s.enabled);
        let flag = RelaySpec::default()
            .build(Some("127.0.0.1:0".into()))
            .expect("flag");
        assert_eq!(flag.listen.port(), 0);
        let bad = RelaySpec {
            listen: Some("nowhere".into()),
            ..RelaySpec::default()
        };
        assert!(bad
            .build(None)
            .err()
            .unwrap_or_default()
            .contains("relay.listen"));
        let bad = RelaySpec {
            max_tunnels_per_agent: Some(0),
            ..RelaySpec::default()
        };
        assert!(bad
            .build(None)
            .err()
            .unwrap_or_default()
            .contains("relay.max_tunnels_per_agent"));
        assert_eq!(s.max_session_buffer, 64 << 20);
        assert_eq!(s.replica_heartbeat, Duration::from_secs(5));
        assert_eq!(s.replica_timeout, Duration::from_secs(30));
        for (bad, needle) in [
            ("0.0.0.0:2222", "unspecified"),
            ("relay-1", "host:port"),
            ("relay-1:0", "port"),
            (":2222", "host"),
        ] {
            let spec = RelaySpec {
                advertise: Some(bad.into()),
                ..RelaySpec::default()
            };
            let err = spec.build(None).err().unwrap_or_default();
            assert!(
                err.contains("relay.advertise") && err.contains(needle),
                "{bad}: {err}"
            );
        }
        let ok = RelaySpec {
            advertise: Some("[fd00::7]:2222".into()),
            replica_heartbeat: Some(Span(Duration::from_secs(2))),
            replica_timeout: Some(Span(Duration::from_secs(6))),
            ..RelaySpec::default()
        }
        .build(None)
        .expect("advertise");
        assert_eq!(ok.advertise.as_deref(), Some("[fd00::7]:2222"));
        let short = RelaySpec {
            replica_heartbeat: Some(Span(Duration::from_secs(2))),
            replica_timeout: Some(Span(Duration::from_secs(5))),
            ..RelaySpec::default()
        };
        assert!(short
            .build(None)
            .err()
            .unwrap_or_default()
            .contains("relay.replica_timeout"));
        for bad in [0, 7, 4097] {
            let spec = RelaySpec {
                max_session_buffer_mib: Some(bad),
                ..RelaySpec::default()
            };
            assert!(spec
                .build(None)
                .err()
                .unwrap_or_default()
                .contains("relay.max_session_buffer_mib"));
        }
    }
}
