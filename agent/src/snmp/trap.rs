//! The trap and inform receiver: SNMP notifications (v2c and v3) arriving
//! on a configurable UDP port, turned into our own [`Trap`] type.
//!
//! This module owns:
//! * [`TrapReceiver`]: binds the `[traps]` listen address
//!   ([`TrapConfig`]) and yields each accepted notification from
//!   [`TrapReceiver::next`]. Informs are acknowledged before they are
//!   yielded.
//! * The policy: v2c only with a configured community; v3 only from a
//!   configured user at its configured security level or above (its auth
//!   digest verified, its contents decrypted); SNMPv1 and non-notification
//!   PDUs refused; datagrams longer than `max_datagram` or not SNMP dropped.
//!   Every drop is counted by reason in [`TrapStats`] (for `/metrics`) and
//!   logged at most once per source address and reason per minute, so a
//!   storm does not flood the log. Secrets (communities, passwords) are
//!   never logged.
//! * The SNMPv3 engine identity of the receiver (engine ID and boot
//!   counter, kept in `state_file`), which v3 inform senders discover.
//!
//! How: a public UDP socket receives every datagram and [`filter`]
//! classifies it, attributing each drop to its sender. Datagrams that pass
//! go through a per-sender loopback [`relay`] to async-snmp's notification
//! receiver (the engine), which does the USM processing proper (time
//! windows, replay), answers informs and discovery probes, and yields the
//! notification; the relay carries its answers back to the sender. Only
//! this module and [`super::backend`] name `async-snmp`.

pub mod config;
pub mod filter;
mod ratelimit;
mod relay;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_snmp::notification::{
    InformAckOutcome, Notification, NotificationAcceptance, NotificationEnvelope,
    NotificationReceiver, ReceivedNotification,
};
use async_snmp::{AuthoritativeEngine, PersistedAuthoritativeEngine, Version};
use chrono::{DateTime, Utc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use self::config::TrapConfig;
use self::filter::{Filter, Verdict};
use self::ratelimit::LogLimiter;
use self::relay::{AbortOnDrop, Relays};
use super::value::Value;

/// Rejections are logged at most once per source, reason and this window.
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Accepted notifications waiting for [`TrapReceiver::next`]; when full,
/// the engine stops reading and the kernel's socket buffer absorbs bursts.
const QUEUE: usize = 1024;

/// The SNMP version a notification arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapVersion {
    /// SNMPv2c (community).
    V2c,
    /// SNMPv3 (USM user).
    V3,
}

/// Whether the sender asked for an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// An unconfirmed SNMPv2-Trap.
    Trap,
    /// An InformRequest; it has been acknowledged.
    Inform,
}

/// One accepted notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// Where the datagram came from (UDP does not prove it).
    pub source: SocketAddr,
    /// v2c or v3.
    pub version: TrapVersion,
    /// The community (v2c) or USM user name (v3) it was accepted under.
    pub principal: String,
    /// Trap or inform.
    pub kind: TrapKind,
    /// `sysUpTime.0` of the sender, in hundredths of a second.
    pub uptime: Option<u32>,
    /// `snmpTrapOID.0`, dotted numeric (linkDown is `1.3.6.1.6.3.1.1.5.3`).
    pub trap_oid: String,
    /// The other bindings in order: dotted OID and the value as text
    /// (numbers in decimal, OIDs dotted, printable strings as they are,
    /// other strings as `0x` and hex).
    pub varbinds: Vec<(String, String)>,
    /// When the receiver accepted it.
    pub received_at: DateTime<Utc>,
}

/// Why the receiver cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrapError {
    /// The listen address cannot be bound.
    #[error("cannot listen for traps on {address}: {reason}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The system's message.
        reason: String,
    },
    /// The SNMPv3 users or engine state are unusable.
    #[error("trap receiver: {0}")]
    Setup(String),
    /// The SNMPv3 engine state could not be kept (`state_file`).
    #[error("trap receiver stopped: {0}")]
    Engine(String),
    /// The receiver's tasks have ended.
    #[error("the trap receiver has stopped")]
    Closed,
}

/// Counters of the receiver, for the agent's `/metrics`. Shared; read with
/// [`TrapStats::snapshot`].
#[derive(Debug, Default)]
pub struct TrapStats {
    accepted: AtomicU64,
    informs_acknowledged: AtomicU64,
    bad_community: AtomicU64,
    auth_failed: AtomicU64,
    malformed: AtomicU64,
    unsupported: AtomicU64,
}

/// The receiver's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrapCounts {
    /// Notifications accepted and delivered.
    pub accepted: u64,
    /// Of those, informs whose acknowledgement was sent.
    pub informs_acknowledged: u64,
    /// v2c datagrams dropped for a community not configured.
    pub bad_community: u64,
    /// v3 datagrams dropped by the user-based security model: unknown
    /// user, security level too low, wrong digest, undecryptable.
    pub auth_failed: u64,
    /// Datagrams dropped as not SNMP, truncated or oversize.
    pub malformed: u64,
    /// Valid SNMP refused: SNMPv1, or a PDU that is not a notification.
    pub unsupported: u64,
}

impl TrapStats {
    /// The counters now.
    pub fn snapshot(&self) -> TrapCounts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TrapCounts {
            accepted: read(&self.accepted),
            informs_acknowledged: read(&self.informs_acknowledged),
            bad_community: read(&self.bad_community),
            auth_failed: read(&self.auth_failed),
            malformed: read(&self.malformed),
            unsupported: read(&self.unsupported),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A running receiver. Dropping it stops it and closes its sockets.
pub struct TrapReceiver {
    queue: mpsc::Receiver<Result<Trap, TrapError>>,
    stats: Arc<TrapStats>,
    local_addr: SocketAddr,
    engine_id: Vec<u8>,
    _tasks: [AbortOnDrop; 2],
}

impl TrapReceiver {
    /// Binds the listen address and starts receiving. Needs a Tokio
    /// runtime.
    pub async fn bind(config: &TrapConfig) -> Result<TrapReceiver, TrapError> {
        let max_datagram = config.max_datagram.min(async_snmp::MAX_UDP_PAYLOAD);
        let filter = Arc::new(
            Filter::new(
                max_datagram,
                config
                    .communities
                    .iter()
                    .map(|c| c.expose().as_bytes().to_vec()),
                &config.users,
            )
            .map_err(TrapError::Setup)?,
        );
        let relays = Relays::default();
        let engine = build_engine(config, Arc::clone(&filter), relays.clone()).await?;
        let engine_addr = engine.local_addr();
        let engine_id = engine.engine_id().to_vec();
        let public =
            Arc::new(
                UdpSocket::bind(config.listen)
                    .await
                    .map_err(|err| TrapError::Bind {
                        address: config.listen,
                        reason: err.to_string(),
                    })?,
            );
        let local_addr = public.local_addr().map_err(|err| TrapError::Bind {
            address: config.listen,
            reason: err.to_string(),
        })?;
        let stats = Arc::new(TrapStats::default());
        let (sender, queue) = mpsc::channel(QUEUE);
        let receiving = tokio::spawn(receive(
            public,
            filter,
            relays.clone(),
            engine_addr,
            Arc::clone(&stats),
        ));
        let delivering = tokio::spawn(deliver(engine, relays, Arc::clone(&stats), sender));
        tracing::info!(
            listen = %local_addr,
            communities = config.communities.len(),
            users = config.users.len(),
            engine_id = %hex(&engine_id),
            "trap receiver listening"
        );
        Ok(TrapReceiver {
            queue,
            stats,
            local_addr,
            engine_id,
            _tasks: [AbortOnDrop(receiving), AbortOnDrop(delivering)],
        })
    }

    /// The next accepted notification. Informs have been acknowledged.
    /// Errors only when the receiver has stopped for good.
    pub async fn next(&mut self) -> Result<Trap, TrapError> {
        self.queue.recv().await.unwrap_or(Err(TrapError::Closed))
    }

    /// The address actually bound (the port, when configured as 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The receiver's SNMPv3 engine ID (what v3 inform senders address).
    pub fn engine_id(&self) -> &[u8] {
        &self.engine_id
    }

    /// The counters, shared with the running receiver.
    pub fn stats(&self) -> Arc<TrapStats> {
        Arc::clone(&self.stats)
    }
}

/// Builds async-snmp's notification receiver on a private loopback port,
/// with the configured users and the receiver's engine identity.
async fn build_engine(
    config: &TrapConfig,
    filter: Arc<Filter>,
    relays: Relays,
) -> Result<NotificationReceiver, TrapError> {
    let mut builder = NotificationReceiver::builder().bind("127.0.0.1:0");
    if !config.communities.is_empty() {
        builder = builder.communities(
            config
                .communities
                .iter()
                .map(|c| c.expose().as_bytes().to_vec()),
        );
    }
    for user in &config.users {
        let (auth_protocol, auth_password) = &user.auth;
        let auth_protocol = filter::auth_protocol_of(*auth_protocol);
        builder = builder
            .usm_user(user.user.clone().into_bytes(), |usm| match &user.privacy {
                None => usm.auth(auth_protocol, auth_password.expose()),
                Some((priv_protocol, priv_password)) => usm.auth_priv(
                    auth_protocol,
                    auth_password.expose(),
                    filter::priv_protocol_of(*priv_protocol),
                    priv_password.expose(),
                ),
            })
            .map_err(|err| TrapError::Setup(format!("traps user {:?}: {err}", user.user)))?;
    }
    if !config.users.is_empty() {
        builder = builder.authoritative_engine(authoritative_engine(config)?);
    }
    // The filter has already judged every datagram the engine sees; this
    // second look refuses anything that reached the engine's port other
    // than through a relay, and re-checks the principal.
    builder = builder.acceptance_policy(move |envelope: &NotificationEnvelope<'_>| {
        if relays.source_of(envelope.source).is_none() {
            return NotificationAcceptance::Reject;
        }
        let allowed = match (envelope.version, envelope.community, envelope.username) {
            (Version::V2c, Some(community), _) => filter.community_allowed(community.as_bytes()),
            (Version::V3, _, Some(user)) => {
                match (filter.user_level(user), envelope.security_level) {
                    (Some(least), Some(level)) => level >= least,
                    _ => false,
                }
            }
            _ => false,
        };
        if allowed {
            NotificationAcceptance::Accept
        } else {
            NotificationAcceptance::Reject
        }
    });
    builder
        .build()
        .await
        .map_err(|err| TrapError::Setup(format!("cannot start the SNMP engine: {err}")))
}

/// The receiver's SNMPv3 engine: its ID (configured, kept in the state
/// file, or generated) and boot counter (incremented and saved at every
/// start when there is a state file).
fn authoritative_engine(config: &TrapConfig) -> Result<AuthoritativeEngine, TrapError> {
    let setup = |err: String| TrapError::Setup(err);
    let Some(path) = &config.state_file else {
        let engine_id = match &config.engine_id {
            Some(id) => id.clone(),
            None => generate_engine_id()?,
        };
        return AuthoritativeEngine::install(engine_id, |_: &PersistedAuthoritativeEngine| {
            Ok::<(), Infallible>(())
        })
        .map_err(|err| setup(format!("invalid engine ID: {err}")));
    };
    let saved = read_state(path)?;
    let save = save_state(path.clone());
    let engine = match (saved, &config.engine_id) {
        (Some(saved), configured) if configured.as_ref().is_none_or(|id| *id == saved.0) => {
            let previous = PersistedAuthoritativeEngine::new(saved.0, saved.1)
                .map_err(|err| setup(format!("{}: {err}", path.display())))?;
            AuthoritativeEngine::restart(previous, save)
        }
        (_, configured) => {
            let engine_id = match configured {
                Some(id) => id.clone(),
                None => generate_engine_id()?,
            };
            AuthoritativeEngine::install(engine_id, save)
        }
    };
    engine.map_err(|err| setup(format!("engine state {}: {err}", path.display())))
}

fn generate_engine_id() -> Result<Vec<u8>, TrapError> {
    async_snmp::generate_engine_id()
        .map(|id| id.to_vec())
        .map_err(|err| TrapError::Setup(format!("cannot generate an engine ID: {err}")))
}

/// Reads `ENGINE_ID_HEX BOOTS` from the state file; `None` when absent.
fn read_state(path: &Path) -> Result<Option<(Vec<u8>, u32)>, TrapError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(TrapError::Setup(format!(
                "cannot read {}: {err}",
                path.display()
            )))
        }
    };
    let invalid = || {
        TrapError::Setup(format!(
            "{}: expected \"ENGINE_ID_HEX BOOTS\"; delete the file to start a new engine",
            path.display()
        ))
    };
    let mut words = text.split_whitespace();
    let id = words
        .next()
        .and_then(|id| config::parse_engine_id(id).ok())
        .ok_or_else(invalid)?;
    let boots = words
        .next()
        .and_then(|boots| boots.parse().ok())
        .ok_or_else(invalid)?;
    Ok(Some((id, boots)))
}

/// A persistence callback writing the engine state atomically.
fn save_state(
    path: PathBuf,
) -> impl FnMut(&PersistedAuthoritativeEngine) -> std::io::Result<()> + Send + 'static {
    move |state| {
        let temporary = path.with_extension("tmp");
        let text = format!("0x{} {}\n", hex(state.engine_id()), state.engine_boots());
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &path)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the public socket: filters each datagram, relays the good ones to
/// the engine, counts and (rate-limited) logs the others.
async fn receive(
    public: Arc<UdpSocket>,
    filter: Arc<Filter>,
    relays: Relays,
    engine: SocketAddr,
    stats: Arc<TrapStats>,
) {
    // Larger than any UDP payload, so nothing is silently truncated.
    let mut buf = vec![0u8; 65_536];
    let mut limiter = LogLimiter::new(LOG_WINDOW);
    let receiver = public
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |address| address.to_string());
    loop {
        let (len, source) = match public.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(err) => {
                tracing::warn!(%err, "trap socket receive error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let data = &buf[..len];
        let verdict = filter.classify(data);
        let (counter, reason, detail) = match verdict {
            Verdict::Forward => {
                if let Err(err) = relays.forward(&public, engine, source, data).await {
                    tracing::warn!(%source, %err, "could not pass a notification to the SNMP engine");
                }
                continue;
            }
            Verdict::Malformed(detail) => (&stats.malformed, "malformed", detail),
            Verdict::BadCommunity => (
                &stats.bad_community,
                "unknown community",
                "v2c notification with a community that is not configured".to_owned(),
            ),
            Verdict::AuthFailed(detail) => (&stats.auth_failed, "authentication failed", detail),
            Verdict::Unsupported(detail) => (&stats.unsupported, "unsupported", detail),
        };
        bump(counter);
        if let Some(suppressed) = limiter.admit(source.ip(), reason, Instant::now()) {
            tracing::warn!(
                receiver = %receiver,
                %source,
                reason,
                suppressed_last_minute = suppressed,
                "trap rejected: {detail}"
            );
        }
    }
}

/// Takes accepted notifications from the engine, maps them back to their
/// senders and queues them for [`TrapReceiver::next`].
async fn deliver(
    engine: NotificationReceiver,
    relays: Relays,
    stats: Arc<TrapStats>,
    queue: mpsc::Sender<Result<Trap, TrapError>>,
) {
    loop {
        let received = match engine.recv().await {
            Ok(received) => received,
            Err(err) if err.kind() == async_snmp::ErrorKind::AuthoritativeEnginePersistence => {
                tracing::error!(%err, "trap receiver: cannot save the SNMPv3 engine state");
                let _ = queue.send(Err(TrapError::Engine(err.to_string()))).await;
                return;
            }
            Err(err) => {
                tracing::warn!(%err, "trap engine receive error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(source) = relays.source_of(received.source) else {
            // Its relay was closed meanwhile: the sender is not known.
            continue;
        };
        match &received.inform_ack {
            Some(InformAckOutcome::Sent) => bump(&stats.informs_acknowledged),
            Some(InformAckOutcome::SuppressedBySize) => {
                tracing::warn!(%source, "inform accepted but its acknowledgement is too large to send");
            }
            Some(InformAckOutcome::Failed(err)) => {
                tracing::warn!(%source, %err, "inform accepted but its acknowledgement failed");
            }
            None => {}
        }
        let Some(trap) = trap_of(&received, source) else {
            continue;
        };
        bump(&stats.accepted);
        if queue.send(Ok(trap)).await.is_err() {
            return;
        }
    }
}

/// Our [`Trap`] from the engine's notification; `None` for SNMPv1 (which
/// the filter never lets through).
fn trap_of(received: &ReceivedNotification, source: SocketAddr) -> Option<Trap> {
    let (version, principal, kind) = match &received.notification {
        Notification::TrapV2c { community, .. } => (
            TrapVersion::V2c,
            community.as_bytes().to_vec(),
            TrapKind::Trap,
        ),
        Notification::InformV2c { community, .. } => (
            TrapVersion::V2c,
            community.as_bytes().to_vec(),
            TrapKind::Inform,
        ),
        Notification::TrapV3 { username, .. } => {
            (TrapVersion::V3, username.to_vec(), TrapKind::Trap)
        }
        Notification::InformV3 { username, .. } => {
            (TrapVersion::V3, username.to_vec(), TrapKind::Inform)
        }
        Notification::TrapV1 { .. } => return None,
    };
    let notification = &received.notification;
    let trap_oid = notification
        .trap_oid()
        .map(|oid| super::value::Oid::new(oid.arcs()).to_string())
        .unwrap_or_default();
    let varbinds = notification
        .varbinds()
        .iter()
        .map(|vb| {
            let ours = super::backend::varbind_of(vb);
            (ours.oid.to_string(), value_text(&ours.value))
        })
        .collect();
    Some(Trap {
        source,
        version,
        principal: String::from_utf8_lossy(&principal).into_owned(),
        kind,
        uptime: Some(notification.uptime()),
        trap_oid,
        varbinds,
        received_at: Utc::now(),
    })
}

/// A value as text for evidence: see [`Trap::varbinds`].
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Integer(v) => v.to_string(),
        Value::OctetString(bytes) => match std::str::from_utf8(bytes) {
            Ok(text)
                if !text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t') =>
            {
                text.to_owned()
            }
            _ => format!("0x{}", hex(bytes)),
        },
        Value::ObjectIdentifier(oid) => oid.to_string(),
        Value::IpAddress([a, b, c, d]) => format!("{a}.{b}.{c}.{d}"),
        Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => v.to_string(),
        Value::Counter64(v) => v.to_string(),
        Value::Opaque(bytes) => format!("0x{}", hex(bytes)),
        Value::Null => String::new(),
        Value::NoSuchObject => "noSuchObject".to_owned(),
        Value::NoSuchInstance => "noSuchInstance".to_owned(),
        Value::EndOfMibView => "endOfMibView".to_owned(),
        Value::Other => "(unsupported type)".to_owned(),
    }
}

#[cfg(test)]
mod tests;
