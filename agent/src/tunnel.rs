//! The remote-login tunnel: a reverse SSH connection from the agent to the
//! server's relay, through which engineers reach devices behind the
//! customer's jump host. The customer opens no inbound port: the agent
//! dials out.
//!
//! # Protocol (the contract with the relay)
//!
//! 1. TCP to `tunnel.relay` (default: the host of `server.url`, port 2222),
//!    then SSH (russh client). The relay's host key must equal the pinned
//!    one, compared as OpenSSH `algorithm base64` (comment ignored): the
//!    identity's `ssh_host_key` (learned at enrolment), else
//!    `tunnel.host_key`. With neither, the agent does not connect and says
//!    so once; a different key is refused and logged with both SHA256
//!    fingerprints. A host certificate is accepted only if its key is the
//!    pinned key.
//! 2. User name: the agent id; `publickey` authentication with the agent's
//!    ed25519 identity key (the same key signs the HTTPS uplink).
//! 3. Global request `tcpip-forward` for address
//!    [`tunnel::FORWARD_ADDRESS`], port 0; the relay binds the tunnel to the
//!    authenticated agent and answers with the flow-credit version
//!    ([`tunnel::FLOW_CREDIT_VERSION`]) in place of a bound port. A relay
//!    that answers anything else (an older server) is left, with an error
//!    that says so.
//! 4. The relay opens a `forwarded-tcpip` channel per engineer connection,
//!    with the *connected address* = a target name and *connected port* =
//!    the port asked for. The agent accepts it only if the name is in
//!    `[[tunnel.targets]]` and the port in that target's `ports`, and only
//!    once it has connected to `address:port` (10 s timeout); otherwise the
//!    channel is refused (`administratively prohibited` or `connect
//!    failed`) and a warning logged. Data on an accepted channel follows
//!    the flow credit of [`outpost_protocol::tunnel`] both ways. Every other channel type (session,
//!    x11, auth-agent, direct-tcpip, streamlocal, unknown) is refused;
//!    russh itself answers unknown global requests with a failure (only
//!    keepalives succeed, and announced host keys are ignored).
//!
//! # Design
//!
//! [`run`] is one task on the daemon's single-threaded runtime: it connects,
//! holds the connection, and reconnects with exponential back-off (1 s to
//! 60 s, with random jitter between half and all of the delay; reset once a
//! connection stayed up 60 s). The first failure in a row is a warning, the
//! following ones debug lines, with one warning per minute. russh runs the
//! SSH session in a task of its own (spawned on the same runtime); its
//! keepalives (`tunnel.keepalive`, 3 unanswered = disconnect) detect a dead
//! relay, and there is no inactivity timeout.
//!
//! Each accepted channel is one more task that splices the channel and the
//! TCP stream in both directions: an EOF from either side is passed on as
//! a half-close, and the channel is closed when both directions have
//! finished (or at once when either side fails or the relay closes it).
//! Bytes are counted each way into the metrics and logged with the target,
//! the originator and the duration when the channel closes.
//!
//! The targets are read from a [`watch`] channel for every new channel, so
//! a SIGHUP reload that changes only the targets applies to new channels
//! and leaves open ones alone; a change of `relay`, `keepalive` or
//! `host_key` reconnects, and removing every target closes the tunnel.
//!
//! ## Memory and back-pressure
//!
//! One connection carries every channel, so no channel may hold up the
//! others. russh re-opens the SSH window as soon as data *arrives* and
//! hands it to a bounded queue per channel ([`CHANNEL_BUFFER`] messages)
//! whose fullness stops the whole connection, keepalive replies included.
//! So each channel is read at once into its own queue
//! ([`flow::start`]), which the flow credit bounds to
//! [`tunnel::WINDOW`] bytes: the relay sends no more until the agent has
//! written what it holds to the target and returned credit. A target that
//! stops reading so stops its own channel only, for as long as it likes
//! (the relay's idle timeout ends a session where nothing moves); the
//! other channels go on. Target-to-relay data uses one [`READ_CHUNK`]
//! buffer per channel and waits for the relay's credit. At most
//! [`MAX_CHANNELS`] channels are open at once, so the queues hold at most
//! `MAX_CHANNELS` x `WINDOW` bytes.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use russh::client::{self, ChannelOpenHandle, DisconnectReason, Msg, Session};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use outpost_protocol::tunnel::{self, flow};

use crate::config::tunnel::normalize_public_key;
use crate::config::{HostPort, TunnelConfig, TunnelTarget};
use crate::identity::Identity;
use crate::metrics::Metrics;

/// Shortest wait before reconnecting.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait before reconnecting.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A connection that stayed up this long resets the back-off.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Repeated failures are logged as a warning at most this often.
const LOUD_EVERY: Duration = Duration::from_secs(60);
/// TCP connection to the relay.
const RELAY_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// SSH handshake, authentication and the forwarding request together.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP connection to a target.
pub const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After both directions of a channel ended, how long to wait for the
/// relay's close before closing the channel ourselves; and after the relay
/// closed a channel, how long a target may take to accept what arrived
/// before the close. (When the client
/// closes first, russh 0.65 keeps the channel's queue handle until the
/// connection ends: a small leak per channel that a prompt relay avoids.)
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Disconnecting politely when the daemon stops.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);
/// Most channels open at once; more are refused.
/// The ciphers the agent offers the relay, preferred first (the client's
/// order decides). On CPUs with AES instructions ring's AES-256-GCM seals
/// several times faster than its ChaCha20-Poly1305 (BENCHMARKS.md, "Remote
/// login relay"), and both ends of this hop are ours; elsewhere ChaCha20
/// stays first.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_256_CTR,
];

pub const MAX_CHANNELS: usize = 64;
/// russh's per-channel queue of incoming messages (see the module
/// documentation).
pub const CHANNEL_BUFFER: usize = 32;
/// Buffer for reading from a target.
pub const READ_CHUNK: usize = 16 * 1024;

/// Runs the tunnel until `shutdown` turns true (or its sender is dropped).
///
/// `config` is the current `[tunnel]` section; the tunnel is off while it
/// has no targets. `identity` gives the agent id (the SSH user name) and
/// the relay's pinned host key; `key` is the agent's identity key.
pub async fn run(
    mut config: watch::Receiver<Arc<TunnelConfig>>,
    identity: Identity,
    key: SigningKey,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let key = Arc::new(PrivateKey::from(Ed25519Keypair::from_seed(&key.to_bytes())));
    let user = identity.agent_id.to_string();
    let channels = Arc::new(Semaphore::new(MAX_CHANNELS));
    let mut backoff = BACKOFF_MIN;
    let mut failures = Failures::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let current = Arc::clone(&config.borrow_and_update());
        let (relay, host_key) = match ready(&current, &identity) {
            Ok(ready) => ready,
            Err(idle) => {
                idle.log();
                // Nothing to do until the configuration changes.
                tokio::select! {
                    () = changed(&mut config) => {
                        backoff = BACKOFF_MIN;
                        continue;
                    }
                    () = stopped(&mut shutdown) => return,
                }
            }
        };
        let events = Arc::new(Mutex::new(Events::default()));
        let agent = Agent {
            config: config.clone(),
            pinned: host_key.clone(),
            metrics: Arc::clone(&metrics),
            channels: Arc::clone(&channels),
            events: Arc::clone(&events),
        };
        let attempt = tokio::select! {
            attempt = connect(&current, &relay, &user, &key, agent, &events) => attempt,
            () = stopped(&mut shutdown) => return,
        };
        match attempt {
            Ok(mut handle) => {
                failures = Failures::default();
                metrics.tunnel_up.store(1, Ordering::Relaxed);
                metrics.tunnel_connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    relay = %relay,
                    targets = current.targets.len(),
                    "tunnel connected"
                );
                let started = Instant::now();
                let ended = hold(
                    &mut handle,
                    (&current, &host_key, &identity),
                    &mut config,
                    &mut shutdown,
                )
                .await;
                metrics.tunnel_up.store(0, Ordering::Relaxed);
                let reason = match &ended {
                    Ended::Dropped(reason) => reason.clone(),
                    Ended::Stopped => "the agent is stopping".to_owned(),
                    Ended::Reconfigured => "the [tunnel] configuration changed".to_owned(),
                };
                let remote = lock(&events).remote_disconnect.take();
                tracing::info!(
                    relay = %relay,
                    up = %humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                    reason = %reason,
                    relay_said = remote.as_deref(),
                    "tunnel disconnected"
                );
                match ended {
                    Ended::Stopped => return,
                    Ended::Reconfigured => {
                        backoff = BACKOFF_MIN;
                        continue;
                    }
                    Ended::Dropped(_) => {}
                }
                if started.elapsed() >= STABLE_AFTER {
                    backoff = BACKOFF_MIN;
                }
            }
            Err(failure) => failures.report(&relay, &failure, backoff),
        }
        tokio::select! {
            () = tokio::time::sleep(jittered(backoff)) => {}
            // A reload (a new host key, another relay) is worth trying at once.
            () = changed(&mut config) => {}
            () = stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Why the tunnel does not try to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Idle {
    NoTargets,
    NoRelay,
    NoHostKey,
    BadHostKey(String),
}

impl Idle {
    fn log(&self) {
        match self {
            Idle::NoTargets => tracing::debug!("tunnel off: no [[tunnel.targets]]"),
            Idle::NoRelay => tracing::error!(
                "tunnel off: no relay address; set tunnel.relay = \"host:port\""
            ),
            Idle::NoHostKey => tracing::error!(
                "tunnel off: the relay's SSH host key is unknown (identity.json has no ssh_host_key); re-enrol the agent or set tunnel.host_key"
            ),
            Idle::BadHostKey(why) => tracing::error!(
                error = %why,
                "tunnel off: the relay's SSH host key in identity.json is invalid; re-enrol the agent"
            ),
        }
    }
}

/// The relay's address and pinned host key, or why not to connect.
fn ready(config: &TunnelConfig, identity: &Identity) -> Result<(HostPort, String), Idle> {
    if !config.enabled() {
        return Err(Idle::NoTargets);
    }
    let relay = config.relay.clone().ok_or(Idle::NoRelay)?;
    let host_key = pinned_host_key(identity, config)?;
    Ok((relay, host_key))
}

/// The pinned relay host key (`algorithm base64`): the identity's, else
/// the configuration's.
fn pinned_host_key(identity: &Identity, config: &TunnelConfig) -> Result<String, Idle> {
    match (&identity.ssh_host_key, &config.host_key) {
        (Some(key), _) => normalize_public_key(key).map_err(Idle::BadHostKey),
        (None, Some(key)) => Ok(key.clone()),
        (None, None) => Err(Idle::NoHostKey),
    }
}

/// Waits until `shutdown` turns true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Waits for the next change of `config`; forever if its sender is gone.
async fn changed(config: &mut watch::Receiver<Arc<TunnelConfig>>) {
    if config.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Between half and all of `backoff`, at random.
fn jittered(backoff: Duration) -> Duration {
    let mut bytes = [0u8; 4];
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    let half = backoff / 2;
    half + half.mul_f64(fraction)
}

/// Failed connection attempts in a row, for quiet logging: the first is a
/// warning, the following ones debug lines, with one warning per minute.
#[derive(Debug, Default)]
struct Failures {
    count: u32,
    last_loud: Option<Instant>,
}

impl Failures {
    fn report(&mut self, relay: &HostPort, failure: &Failure, retry_in: Duration) {
        self.count += 1;
        let loud = self.last_loud.is_none_or(|at| at.elapsed() >= LOUD_EVERY);
        if loud {
            self.last_loud = Some(Instant::now());
        }
        let failures = self.count;
        match (failure, loud) {
            (Failure::HostKey(mismatch), true) => tracing::error!(
                relay = %relay,
                expected = %mismatch.expected,
                presented = %mismatch.presented,
                failures,
                "tunnel: the relay's SSH host key is not the pinned one; refused (re-enrol the agent if the relay's key really changed)"
            ),
            (failure, true) => tracing::warn!(
                relay = %relay,
                error = %failure,
                failures,
                retry_in = ?retry_in,
                "tunnel: cannot connect to the relay"
            ),
            (failure, false) => tracing::debug!(
                relay = %relay,
                error = %failure,
                failures,
                retry_in = ?retry_in,
                "tunnel: cannot connect to the relay"
            ),
        }
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum Failure {
    Tcp(io::Error),
    Timeout(&'static str),
    HostKey(HostKeyMismatch),
    Ssh(russh::Error),
    AuthRefused,
    ForwardRefused,
    /// The relay answered the forwarding request with something other
    /// than the flow-credit version.
    NoFlowCredit(u32),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Tcp(err) => write!(f, "TCP: {err}"),
            Failure::Timeout(step) => write!(f, "timed out during {step}"),
            Failure::HostKey(m) => write!(
                f,
                "host key {} is not the pinned {}",
                m.presented, m.expected
            ),
            Failure::Ssh(err) => write!(f, "SSH: {err}"),
            Failure::AuthRefused => f.write_str("the relay refused the agent's key"),
            Failure::ForwardRefused => f.write_str("the relay refused the tcpip-forward request"),
            Failure::NoFlowCredit(answer) => write!(
                f,
                "the relay does not speak the tunnel's flow credit (it answered {answer}, \
                 not {}): the server is older than this agent; upgrade it",
                tunnel::FLOW_CREDIT_VERSION
            ),
        }
    }
}

/// SHA256 fingerprints of the pinned and the presented host key.
#[derive(Debug, Clone)]
struct HostKeyMismatch {
    expected: String,
    presented: String,
}

/// What the session's handler tells the connection loop.
#[derive(Debug, Default)]
struct Events {
    host_key_mismatch: Option<HostKeyMismatch>,
    remote_disconnect: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One connection: TCP, SSH handshake with host key check, authentication,
/// and the forwarding request.
async fn connect(
    config: &TunnelConfig,
    relay: &HostPort,
    user: &str,
    key: &Arc<PrivateKey>,
    agent: Agent,
    events: &Mutex<Events>,
) -> Result<client::Handle<Agent>, Failure> {
    let tcp = tokio::time::timeout(
        RELAY_CONNECT_TIMEOUT,
        TcpStream::connect((relay.host.as_str(), relay.port)),
    )
    .await
    .map_err(|_| Failure::Timeout("the TCP connection"))?
    .map_err(Failure::Tcp)?;
    // Interactive sessions go through the tunnel.
    let _ = tcp.set_nodelay(true);
    let ssh = Arc::new(client::Config {
        keepalive_interval: Some(config.keepalive),
        keepalive_max: 3,
        inactivity_timeout: None,
        channel_buffer_size: CHANNEL_BUFFER,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(CIPHERS),
            ..russh::Preferred::default()
        },
        ..client::Config::default()
    });
    let handshake = async {
        let mut handle =
            client::connect_stream(ssh, tcp, agent)
                .await
                .map_err(|err| match lock(events).host_key_mismatch.take() {
                    Some(mismatch) => Failure::HostKey(mismatch),
                    None => Failure::Ssh(err),
                })?;
        let auth = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::clone(key), None))
            .await
            .map_err(Failure::Ssh)?;
        if !auth.success() {
            return Err(Failure::AuthRefused);
        }
        let answer = handle
            .tcpip_forward(tunnel::FORWARD_ADDRESS, 0)
            .await
            .map_err(|err| match err {
                russh::Error::RequestDenied => Failure::ForwardRefused,
                err => Failure::Ssh(err),
            })?;
        if answer != tunnel::FLOW_CREDIT_VERSION {
            disconnect(&mut handle, "the relay does not speak the flow credit").await;
            return Err(Failure::NoFlowCredit(answer));
        }
        Ok(handle)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| Failure::Timeout("the SSH handshake"))?
}

/// How a held connection ended.
enum Ended {
    /// The connection dropped (the reason).
    Dropped(String),
    /// The daemon is stopping.
    Stopped,
    /// The relay, keepalive or host key changed, or the targets are gone.
    Reconfigured,
}

/// Holds a connection until it drops, the daemon stops, or a reload needs
/// another connection. `connected_with` is the configuration, pinned host
/// key and identity the connection was made with.
async fn hold(
    handle: &mut client::Handle<Agent>,
    connected_with: (&TunnelConfig, &str, &Identity),
    config: &mut watch::Receiver<Arc<TunnelConfig>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let (old, pinned, identity) = connected_with;
    loop {
        tokio::select! {
            result = &mut *handle => {
                return Ended::Dropped(match result {
                    Ok(()) => "the relay closed the connection".to_owned(),
                    Err(err) => err.to_string(),
                });
            }
            () = stopped(shutdown) => {
                disconnect(handle, "the agent is stopping").await;
                return Ended::Stopped;
            }
            () = changed(config) => {
                let new = Arc::clone(&config.borrow_and_update());
                if !new.enabled() {
                    tracing::info!("tunnel: no more targets; closing the tunnel");
                    disconnect(handle, "no more targets").await;
                    return Ended::Reconfigured;
                }
                if new.relay != old.relay
                    || new.keepalive != old.keepalive
                    || pinned_host_key(identity, &new).ok().as_deref() != Some(pinned)
                {
                    tracing::info!("tunnel: [tunnel] relay, keepalive or host_key changed; reconnecting");
                    disconnect(handle, "reconfigured").await;
                    return Ended::Reconfigured;
                }
                tracing::info!(
                    targets = new.targets.len(),
                    "tunnel: targets updated; open channels stay"
                );
            }
        }
    }
}

async fn disconnect(handle: &mut client::Handle<Agent>, why: &str) {
    let _ = handle.disconnect(Disconnect::ByApplication, why, "").await;
    let _ = tokio::time::timeout(DISCONNECT_GRACE, &mut *handle).await;
}

/// The russh client handler of one connection.
struct Agent {
    config: watch::Receiver<Arc<TunnelConfig>>,
    /// The pinned host key, `algorithm base64`.
    pinned: String,
    metrics: Arc<Metrics>,
    channels: Arc<Semaphore>,
    events: Arc<Mutex<Events>>,
}

impl Agent {
    fn refuse_kind(&self, kind: &str) {
        self.metrics
            .tunnel_channels_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            kind,
            "tunnel: refused a channel of a type the agent never accepts"
        );
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `algorithm base64` of a public key.
fn openssh_text(key: &PublicKey) -> Option<String> {
    let text = key.to_openssh().ok()?;
    Some(
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

impl client::Handler for Agent {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        if openssh_text(&presented).as_deref() == Some(self.pinned.as_str()) {
            return Ok(true);
        }
        let expected = PublicKey::from_openssh(&self.pinned)
            .map(|key| fingerprint(&key))
            .unwrap_or_else(|_| "(invalid)".to_owned());
        lock(&self.events).host_key_mismatch = Some(HostKeyMismatch {
            expected,
            presented: fingerprint(&presented),
        });
        Ok(false)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let originator = if originator_address.contains(':') {
            format!("[{originator_address}]:{originator_port}")
        } else {
            format!("{originator_address}:{originator_port}")
        };
        let target = self.config.borrow().target(connected_address).cloned();
        let refused = |why: &str| {
            self.metrics
                .tunnel_channels_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target = ?connected_address,
                port = connected_port,
                originator = ?originator,
                "tunnel: refused a channel: {why}"
            );
        };
        let Some(target) = target else {
            refused("the target is not in tunnel.targets");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let port = match u16::try_from(connected_port) {
            Ok(port) if target.allows(connected_port) => port,
            _ => {
                refused("the port is not in the target's ports");
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
                return Ok(());
            }
        };
        let Ok(permit) = Arc::clone(&self.channels).try_acquire_owned() else {
            refused("too many open channels");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        // Connecting takes up to 10 s: not in the session's loop.
        tokio::spawn(forward(
            channel,
            reply,
            target,
            port,
            originator,
            Arc::clone(&self.metrics),
            permit,
        ));
        Ok(())
    }

    // russh accepts the following channel types by default: refuse each.

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_kind("session");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_kind("direct-tcpip");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_kind("direct-streamlocal@openssh.com");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_kind("forwarded-streamlocal@openssh.com");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_kind("auth-agent@openssh.com");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_kind("x11");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn should_accept_unknown_server_channel(
        &mut self,
        _id: ChannelId,
        channel_type: &str,
    ) -> bool {
        // russh then answers "unknown channel type".
        self.refuse_kind(&format!("{channel_type:?}"));
        false
    }

    async fn server_channel_open_unknown(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Not reached (unknown types are refused above); refuse anyway.
        reply.reject(ChannelOpenFailure::UnknownChannelType).await;
        Ok(())
    }

    async fn openssh_ext_host_keys_announced(
        &mut self,
        keys: Vec<PublicKey>,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Only the pinned key is trusted; announced keys are not used.
        tracing::debug!(
            keys = keys.len(),
            "tunnel: the relay announced host keys; ignored"
        );
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                lock(&self.events).remote_disconnect =
                    Some(format!("{:?}: {}", info.reason_code, info.message));
                Ok(())
            }
            DisconnectReason::Error(err) => Err(err),
        }
    }
}

/// Connects to the target, then accepts the channel and splices it.
async fn forward(
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    target: TunnelTarget,
    port: u16,
    originator: String,
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
) {
    let connected = tokio::time::timeout(
        TARGET_CONNECT_TIMEOUT,
        TcpStream::connect((target.address.as_str(), port)),
    )
    .await;
    let stream = match connected {
        Ok(Ok(stream)) => stream,
        failed => {
            let error = match failed {
                Ok(Err(err)) => err.to_string(),
                _ => format!("no answer within {}s", TARGET_CONNECT_TIMEOUT.as_secs()),
            };
            metrics
                .tunnel_channels_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target = %target.name,
                address = %target.address,
                port,
                originator = ?originator,
                error = %error,
                "tunnel: refused a channel: cannot connect to the target"
            );
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    reply.accept().await;
    metrics
        .tunnel_channels_accepted
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(target = %target.name, port, originator = ?originator, "tunnel: channel open");
    let started = Instant::now();
    let counts = Counts::default();
    let end = splice(channel, stream, &counts, &metrics).await;
    tracing::info!(
        target = %target.name,
        port,
        originator = ?originator,
        bytes_to_target = counts.to_target.load(Ordering::Relaxed),
        bytes_from_target = counts.from_target.load(Ordering::Relaxed),
        duration = %humantime::format_duration(millis(started.elapsed())),
        end = %end,
        "tunnel: channel closed"
    );
}

/// Bytes carried by one channel.
#[derive(Debug, Default)]
struct Counts {
    to_target: AtomicU64,
    from_target: AtomicU64,
}

/// How the relay-to-target direction ended.
enum Down {
    /// The relay sent EOF; the target's write side is shut down.
    Eof,
    /// The relay closed the channel (or the connection went away).
    Closed,
    /// The relay broke the flow credit.
    Violation(String),
    /// Writing to the target failed.
    Failed(io::Error),
}

/// How the target-to-relay direction ended.
enum Up {
    /// The target closed its side; EOF sent on the channel.
    Eof,
    /// Reading from the target failed.
    Failed(io::Error),
    /// The channel cannot take data any more.
    ChannelGone,
}

/// Copies the channel to the target and back until both directions are
/// done or one fails; returns how it ended, for the log.
async fn splice(
    channel: Channel<Msg>,
    stream: TcpStream,
    counts: &Counts,
    metrics: &Metrics,
) -> String {
    let (rx, tx) = flow::start(channel);
    let (tcp_read, tcp_write) = stream.into_split();
    let down = downstream(rx, &tx, tcp_write, counts, metrics);
    let up = upstream(tcp_read, &tx, counts, metrics);
    tokio::pin!(down, up);
    let mut down_eof = false;
    let mut up_eof = false;
    // The channel after the relay's EOF: still read, for its close.
    let mut rx_after_eof: Option<flow::FlowRx> = None;
    let end = loop {
        tokio::select! {
            (ended, rx) = &mut down, if !down_eof => match ended {
                Down::Eof => {
                    down_eof = true;
                    rx_after_eof = Some(rx);
                    if up_eof {
                        break None;
                    }
                }
                Down::Closed => break Some("closed by the relay".to_owned()),
                Down::Violation(why) => break Some(format!("the relay broke the flow credit: {why}")),
                Down::Failed(err) => break Some(format!("writing to the target: {err}")),
            },
            ended = &mut up, if !up_eof => match ended {
                Up::Eof => {
                    up_eof = true;
                    if down_eof {
                        break None;
                    }
                }
                Up::Failed(err) => break Some(format!("reading from the target: {err}")),
                Up::ChannelGone => break Some("closed by the relay".to_owned()),
            },
            event = next_event(&mut rx_after_eof), if rx_after_eof.is_some() => match event {
                flow::Event::Closed => break Some("closed by the relay".to_owned()),
                flow::Event::Violation(why) => break Some(format!("the relay broke the flow credit: {why}")),
                // Anything after EOF is dropped.
                flow::Event::Data(_) | flow::Event::Eof => {}
            },
        }
    };
    let end = match end {
        Some(end) => end,
        None => {
            // Both directions finished: let the relay close first if it
            // does so promptly (see CLOSE_GRACE), then close.
            if let Some(rx) = rx_after_eof.as_mut() {
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    while !matches!(
                        rx.recv().await,
                        flow::Event::Closed | flow::Event::Violation(_)
                    ) {}
                })
                .await;
            }
            "both sides finished".to_owned()
        }
    };
    tx.close().await;
    end
}

async fn next_event(rx: &mut Option<flow::FlowRx>) -> flow::Event {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// `duration` to the millisecond, for logs.
fn millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Relay to target: data is written as the target takes it, and its
/// credit returned once written. Returns the channel's receiving half so
/// that the caller can keep reading it after EOF.
async fn downstream(
    mut rx: flow::FlowRx,
    tx: &flow::FlowTx<Msg>,
    mut tcp: OwnedWriteHalf,
    counts: &Counts,
    metrics: &Metrics,
) -> (Down, flow::FlowRx) {
    // A target that takes nothing must not keep the channel once the relay
    // closed it.
    let mut closed = rx.ended();
    let ended = loop {
        match rx.recv().await {
            flow::Event::Data(data) => {
                let written = tokio::select! {
                    written = tcp.write_all(&data) => written,
                    () = closed.grace_passed(CLOSE_GRACE) => break Down::Closed,
                };
                if let Err(err) = written {
                    break Down::Failed(err);
                }
                let n = data.len();
                counts.to_target.fetch_add(n as u64, Ordering::Relaxed);
                metrics
                    .tunnel_bytes_to_target
                    .fetch_add(n as u64, Ordering::Relaxed);
                if tx.passed_on(n).await.is_err() {
                    break Down::Closed;
                }
            }
            flow::Event::Eof => {
                // Half-close: the target reads EOF and may still answer.
                let _ = tcp.shutdown().await;
                break Down::Eof;
            }
            flow::Event::Closed => break Down::Closed,
            flow::Event::Violation(why) => break Down::Violation(why),
        }
    };
    (ended, rx)
}

/// Target to relay; each chunk waits for the relay's credit.
async fn upstream(
    mut tcp: OwnedReadHalf,
    tx: &flow::FlowTx<Msg>,
    counts: &Counts,
    metrics: &Metrics,
) -> Up {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match tcp.read(&mut buf).await {
            Ok(0) => {
                let _ = tx.eof().await;
                return Up::Eof;
            }
            Ok(n) => n,
            Err(err) => return Up::Failed(err),
        };
        let Some(chunk) = buf.get(..n) else {
            return Up::Failed(io::Error::other("read past the buffer"));
        };
        if tx.send(chunk.to_vec()).await.is_err() {
            return Up::ChannelGone;
        }
        let n = n as u64;
        counts.from_target.fetch_add(n, Ordering::Relaxed);
        metrics
            .tunnel_bytes_from_target
            .fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(ssh_host_key: Option<&str>) -> Identity {
        Identity {
            agent_id: uuid::Uuid::nil(),
            server_url: "https://support.example.com".into(),
            server_tls_pin_sha256: None,
            ssh_host_key: ssh_host_key.map(str::to_owned),
            heartbeat_interval_secs: 60,
            public_key: String::new(),
            enrolled_at: chrono::Utc::now(),
        }
    }

    fn tunnel(host_key: Option<&str>, targets: usize) -> TunnelConfig {
        TunnelConfig {
            relay: Some(HostPort {
                host: "relay.example.com".into(),
                port: 2222,
            }),
            host_key: host_key.map(str::to_owned),
            targets: (0..targets)
                .map(|i| TunnelTarget {
                    name: format!("t{i}"),
                    address: "192.0.2.1".into(),
                    ports: vec![22],
                })
                .collect(),
            ..TunnelConfig::default()
        }
    }

    fn public_key_text(seed: u8) -> String {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
        openssh_text(key.public_key()).expect("encode")
    }

    #[test]
    fn the_identity_host_key_wins_over_the_config() {
        let (key_a, key_b) = (public_key_text(1), public_key_text(2));
        let with_comment = format!("{key_a} relay@example");
        assert_eq!(
            ready(&tunnel(Some(&key_b), 1), &identity(Some(&with_comment))),
            Ok((
                HostPort {
                    host: "relay.example.com".into(),
                    port: 2222
                },
                key_a.clone()
            ))
        );
        assert_eq!(
            pinned_host_key(&identity(None), &tunnel(Some(&key_b), 1)),
            Ok(key_b.clone())
        );
        assert_eq!(
            pinned_host_key(&identity(None), &tunnel(None, 1)),
            Err(Idle::NoHostKey)
        );
        assert!(matches!(
            pinned_host_key(&identity(Some("ssh-ed25519 nonsense")), &tunnel(None, 1)),
            Err(Idle::BadHostKey(_))
        ));
        assert_eq!(
            ready(&tunnel(Some(&key_b), 0), &identity(None)),
            Err(Idle::NoTargets)
        );
    }

    #[test]
    fn jitter_stays_between_half_and_all() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(8));
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn failures_are_loud_once_per_minute() {
        let relay = HostPort {
            host: "r".into(),
            port: 1,
        };
        let mut failures = Failures::default();
        failures.report(&relay, &Failure::AuthRefused, BACKOFF_MIN);
        let first = failures.last_loud.expect("first failure is loud");
        failures.report(&relay, &Failure::AuthRefused, BACKOFF_MIN);
        assert_eq!(failures.last_loud, Some(first));
        assert_eq!(failures.count, 2);
    }
}
