//! The one place that names the SNMP crate (`async-snmp`, pinned in
//! Cargo.toml): builds a client for a configured target, runs GET and
//! GETBULK walks through it, and translates its values and errors into ours
//! ([`super::value`], [`SnmpError`]). Swapping the crate means rewriting
//! this file only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_snmp::{
    Auth, Client, EngineCache, ErrorKind, ErrorStatus, Retry, UdpClient, UdpTransport, UsmConfig,
    WalkOptions,
};

use super::error::SnmpError;
use super::value::{Oid, Value, VarBind};
use super::Session;
use crate::config::{AuthProtocol, Credentials, PrivProtocol, SnmpTarget};

/// A walk that yields more bindings than this is cut off with an error, so
/// a broken or hostile device cannot make the agent's memory grow without
/// bound.
const MAX_WALK_RESULTS: usize = 100_000;

/// The least time allowed for resolving a target's host name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `host` (a name or an IP address) to its first address.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addresses = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| {
            format!(
                "resolving {host:?} took longer than {}",
                humantime::format_duration(timeout)
            )
        })?
        .map_err(|err| format!("cannot resolve {host:?}: {err}"))?;
    addresses
        .next()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

/// An SNMP session to one target over its own UDP socket.
pub struct AsyncSnmpSession {
    client: UdpClient,
    /// The socket `client` sends through; kept as long as the session.
    _transport: UdpTransport,
    /// SNMPv3 engines this session discovered; tells a wrong password
    /// (engine found, never authenticated) from an absent device.
    engines: Arc<EngineCache>,
    /// The resolved address.
    peer: SocketAddr,
    /// Whether any request of this session got a valid response.
    answered: AtomicBool,
    /// Whether the session encrypts (v3 authPriv).
    encrypts: bool,
    /// `name (address)`, for error messages.
    label: String,
    timeout: Duration,
    retries: u32,
    max_repetitions: u32,
    /// Whether the session speaks SNMPv3 (else v2c).
    v3: bool,
}

impl AsyncSnmpSession {
    /// Opens a session to `target`: resolves its address and binds a local
    /// UDP socket. SNMPv3 engine discovery happens on the first request.
    pub async fn connect(target: &SnmpTarget) -> Result<Self, SnmpError> {
        let label = format!("{} ({})", target.name, target.address);
        let network = |reason: String| SnmpError::Network {
            target: label.clone(),
            reason,
        };
        let auth: Auth = match &target.credentials {
            Credentials::V2c { community } => Auth::v2c(community.expose()),
            Credentials::V3(v3) => {
                let user = UsmConfig::new(v3.user.clone().into_bytes());
                let (auth_protocol, auth_password) = &v3.auth;
                let config = match &v3.privacy {
                    None => user.auth(auth_protocol_of(*auth_protocol), auth_password.expose()),
                    Some((priv_protocol, priv_password)) => user.auth_priv(
                        auth_protocol_of(*auth_protocol),
                        auth_password.expose(),
                        priv_protocol_of(*priv_protocol),
                        priv_password.expose(),
                    ),
                }
                .map_err(|err| SnmpError::Authentication {
                    target: label.clone(),
                    reason: format!("unusable v3 settings: {err}"),
                })?;
                config.into()
            }
        };
        let retry =
            Retry::fixed(target.retries, Duration::ZERO).map_err(|err| SnmpError::Protocol {
                target: label.clone(),
                reason: format!("invalid retries: {err}"),
            })?;
        let peer = resolve(
            &target.host,
            target.port,
            target.timeout.max(RESOLVE_TIMEOUT),
        )
        .await
        .map_err(&network)?;
        // Advertise (as SNMPv3 msgMaxSize) the largest UDP payload, as
        // net-snmp's tools do: with the crate's default of 1472, net-snmp
        // answers a multi-column GETBULK that does not fit with genErr.
        let transport = UdpTransport::builder()
            .bind(if peer.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })
            .max_message_size(async_snmp::MAX_UDP_PAYLOAD)
            .build()
            .await
            .map_err(|err| network(format!("cannot open a UDP socket: {err}")))?;
        let engines = Arc::new(EngineCache::new());
        let client = Client::builder(peer, auth)
            .request_timeout(target.timeout)
            .retry(retry)
            .walk_options(WalkOptions {
                result_limit: Some(MAX_WALK_RESULTS),
                ..WalkOptions::default()
            })
            .engine_cache(Arc::clone(&engines))
            .strict_source(true)
            .build_with(&transport)
            .await
            .map_err(|err| network(err.to_string()))?;
        Ok(Self {
            client,
            _transport: transport,
            engines,
            peer,
            answered: AtomicBool::new(false),
            encrypts: matches!(&target.credentials, Credentials::V3(v3) if v3.privacy.is_some()),
            label,
            timeout: target.timeout,
            retries: target.retries,
            max_repetitions: target.max_repetitions,
            v3: matches!(target.credentials, Credentials::V3(_)),
        })
    }

    /// Translates a crate error into ours. `malformed_before` is the
    /// socket's count of undecodable datagrams before the exchange began: a
    /// timeout during which garbage arrived is reported as malformed.
    fn error(&self, err: &async_snmp::Error, malformed_before: u64) -> SnmpError {
        let target = self.label.clone();
        let source = err.exchange_source();
        let reason = source.to_string();
        match source.kind() {
            ErrorKind::Timeout => {
                let garbage = self.client.stats().malformed_datagrams - malformed_before;
                if garbage > 0 {
                    SnmpError::Malformed {
                        target,
                        reason: format!(
                            "{garbage} undecodable datagram(s) and no valid response within {} ({} retries)",
                            humantime::format_duration(self.timeout),
                            self.retries
                        ),
                    }
                } else if let Some(reason) = self.v3_diagnosis() {
                    SnmpError::Authentication {
                        target,
                        reason: reason.to_owned(),
                    }
                } else {
                    SnmpError::Timeout {
                        target,
                        timeout: self.timeout,
                        retries: self.retries,
                        credential: if self.v3 { "v3 settings" } else { "community" },
                    }
                }
            }
            ErrorKind::Auth => SnmpError::Authentication {
                target,
                reason: "the response failed authentication (wrong auth password or protocol?)"
                    .to_owned(),
            },
            ErrorKind::Report => {
                let lower = reason.to_lowercase();
                let hint = if lower.contains("wrong digest") {
                    Some("wrong auth password or auth protocol")
                } else if lower.contains("unknown user") {
                    Some("unknown user name")
                } else if lower.contains("decryption") {
                    Some("wrong privacy password or privacy protocol")
                } else if lower.contains("security level") {
                    Some("the device does not allow this security level for the user")
                } else {
                    None
                };
                match hint {
                    Some(hint) => SnmpError::Authentication {
                        target,
                        reason: format!("{hint} ({reason})"),
                    },
                    None => SnmpError::Protocol { target, reason },
                }
            }
            ErrorKind::Privacy => SnmpError::Authentication { target, reason },
            ErrorKind::Snmp => {
                let (status, try_smaller) = match source {
                    async_snmp::Error::Snmp { status, .. } => (
                        status.to_string(),
                        matches!(status, ErrorStatus::TooBig | ErrorStatus::GenErr),
                    ),
                    _ => (reason, false),
                };
                SnmpError::Status {
                    target,
                    status,
                    try_smaller,
                }
            }
            ErrorKind::Decode
            | ErrorKind::MalformedResponse
            | ErrorKind::ResponseShape
            | ErrorKind::InvalidMessage => SnmpError::Malformed { target, reason },
            ErrorKind::Network | ErrorKind::Closed | ErrorKind::ConstructionTimeout => {
                SnmpError::Network { target, reason }
            }
            _ => SnmpError::Protocol { target, reason },
        }
    }
}

impl AsyncSnmpSession {
    /// Records that the device answered validly.
    fn note_answer<T>(&self, result: &Result<T, SnmpError>) {
        if result.is_ok() {
            self.answered.store(true, Ordering::Relaxed);
        }
    }

    /// Why a v3 session that timed out probably failed, when the engine
    /// state says the device is there: its engine was discovered but never
    /// authenticated us (auth password, user or protocols are wrong), or it
    /// authenticated us but never answered an encrypted request (privacy
    /// password or protocol are wrong). The device's error Reports are not
    /// authenticated, so the SNMP library ignores them as spoofable; this is
    /// the safe way to still tell the operator what is wrong.
    fn v3_diagnosis(&self) -> Option<&'static str> {
        if !self.v3 || self.answered.load(Ordering::Relaxed) {
            return None;
        }
        let engine = self.engines.get(&self.peer)?;
        if engine.authenticated_time().is_none() {
            Some("the device answers SNMPv3 but accepted none of our requests: wrong user name, auth password or auth protocol (or privacy settings)")
        } else if self.encrypts {
            Some("the device authenticated us but answered none of our encrypted requests: wrong privacy password or privacy protocol")
        } else {
            None
        }
    }
}

impl Session for AsyncSnmpSession {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, oids: &[&[u32]]) -> Result<Vec<VarBind>, SnmpError> {
        let oids: Vec<async_snmp::Oid> = oids
            .iter()
            .map(|arcs| async_snmp::Oid::from_slice(arcs))
            .collect();
        let malformed_before = self.client.stats().malformed_datagrams;
        let result = match self.client.get_many(&oids).await {
            Ok(response) => Ok(response.varbinds.iter().map(varbind_of).collect()),
            Err(err) => Err(self.error(&err, malformed_before)),
        };
        self.note_answer(&result);
        result
    }

    async fn get_bulk(
        &self,
        oids: &[&[u32]],
        max_repetitions: u32,
    ) -> Result<Vec<VarBind>, SnmpError> {
        let oids: Vec<async_snmp::Oid> = oids
            .iter()
            .map(|arcs| async_snmp::Oid::from_slice(arcs))
            .collect();
        let malformed_before = self.client.stats().malformed_datagrams;
        let result = match self.client.get_bulk(&oids, 0, max_repetitions).await {
            Ok(varbinds) => Ok(varbinds.iter().map(varbind_of).collect()),
            Err(err) => Err(self.error(&err, malformed_before)),
        };
        self.note_answer(&result);
        result
    }

    fn max_repetitions(&self) -> u32 {
        self.max_repetitions
    }

    async fn bulk_walk(&self, root: &[u32]) -> Result<Vec<VarBind>, SnmpError> {
        let malformed_before = self.client.stats().malformed_datagrams;
        let walk = self
            .client
            .bulk_walk(async_snmp::Oid::from_slice(root), self.max_repetitions)
            .map_err(|err| self.error(&err, malformed_before))?;
        let result = match walk.collect().await {
            Ok(varbinds) => Ok(varbinds.iter().map(varbind_of).collect()),
            Err(err) => Err(self.error(&err, malformed_before)),
        };
        self.note_answer(&result);
        result
    }
}

pub(crate) fn auth_protocol_of(protocol: AuthProtocol) -> async_snmp::AuthProtocol {
    match protocol {
        AuthProtocol::Md5 => async_snmp::AuthProtocol::Md5,
        AuthProtocol::Sha1 => async_snmp::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => async_snmp::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => async_snmp::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => async_snmp::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => async_snmp::AuthProtocol::Sha512,
    }
}

pub(crate) fn priv_protocol_of(protocol: PrivProtocol) -> async_snmp::PrivProtocol {
    match protocol {
        PrivProtocol::Des => async_snmp::PrivProtocol::Des,
        PrivProtocol::Aes128 => async_snmp::PrivProtocol::Aes128,
        PrivProtocol::Aes192 => async_snmp::PrivProtocol::Aes192Blumenthal,
        PrivProtocol::Aes256 => async_snmp::PrivProtocol::Aes256Blumenthal,
        PrivProtocol::Aes192Cisco => async_snmp::PrivProtocol::Aes192Reeder,
        PrivProtocol::Aes256Cisco => async_snmp::PrivProtocol::Aes256Reeder,
    }
}

/// Converts one crate binding into ours.
pub(super) fn varbind_of(vb: &async_snmp::VarBind) -> VarBind {
    VarBind {
        oid: Oid::new(vb.oid.arcs()),
        value: value_of(&vb.value),
    }
}

fn value_of(value: &async_snmp::Value) -> Value {
    use async_snmp::Value as V;
    match value {
        V::Integer(v) => Value::Integer(i64::from(*v)),
        V::OctetString(bytes) => Value::OctetString(bytes.to_vec()),
        V::ObjectIdentifier(oid) => Value::ObjectIdentifier(Oid::new(oid.arcs())),
        V::IpAddress(addr) => Value::IpAddress(*addr),
        V::Counter32(v) => Value::Counter32(*v),
        V::Gauge32(v) | V::UInteger32(v) => Value::Gauge32(*v),
        V::TimeTicks(v) => Value::TimeTicks(*v),
        V::Counter64(v) => Value::Counter64(*v),
        V::Opaque(bytes) => Value::Opaque(bytes.to_vec()),
        V::Null => Value::Null,
        V::NoSuchObject => Value::NoSuchObject,
        V::NoSuchInstance => Value::NoSuchInstance,
        V::EndOfMibView => Value::EndOfMibView,
        _ => Value::Other,
    }
}
