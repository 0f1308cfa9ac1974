//! The remote-login relay: an SSH server (russh) that agents hold reverse
//! tunnels to and engineers reach devices through, with the stock OpenSSH
//! client (`ssh -J alice@relay:2222 admin@core-sw-1`).
//!
//! * **Agents** log in as their agent id with their enrolled ed25519 key and
//!   send `tcpip-forward` with the address that says they speak the
//!   tunnel's per-channel flow credit ([`outpost_protocol::tunnel`]); the
//!   relay keeps the connection as that agent's tunnel. Which devices a
//!   tunnel reaches is the server's record (`devices.agent_id`,
//!   `agent_target`), never what the agent says.
//! * **Engineers** log in as their user name with an SSH key registered on
//!   their user. Their `direct-tcpip` request names a device (or a case
//!   number) and a port. It is allowed only while they hold a grant: an
//!   open case on that device on which they are the assignee or an
//!   escalated expert ([`grants`]). The relay then opens a `forwarded-tcpip`
//!   channel on the agent's tunnel, naming the device's agent target, and
//!   splices the two channels ([`splice`]).
//! * Every attempt, allowed or refused, is stored (`remote_attempts`); every
//!   session is a row in `remote_sessions` and two case activities (started,
//!   ended: bytes each way and why it ended).
//! * A supervisor re-checks the grant of every live session of this process
//!   twice a second (one query) and cuts those whose case closed or
//!   resolved, whose engineer left the case, or that someone killed through
//!   the API (from any replica).
//! * Every other channel type, and any request an agent makes beyond its
//!   tunnel, is refused.

pub mod access;
pub mod certs;
pub mod cluster;
pub mod grants;
pub mod settings;
pub mod splice;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use outpost_protocol::tunnel::{self, flow};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::sync::watch;

use crate::cases::model::{ActivityBody, UserRef, Visibility};
use crate::cases::Cases;
pub use settings::{RelaySettings, RelaySpec};

/// The `meta` key of the relay's host key (one for all replicas).
pub const HOST_KEY_META: &str = "relay_host_key";

/// Author of the relay's case entries.
const AUTHOR: &str = "relay";

/// The relay service, shared by every connection.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    cases: Cases,
    settings: RelaySettings,
    /// This process, in `remote_sessions.replica`.
    replica: String,
    host_key: PrivateKey,
    tunnels: Mutex<HashMap<i64, Vec<Tunnel>>>,
    sessions: Mutex<HashMap<i64, LiveSession>>,
    next_conn: AtomicU64,
    cluster: cluster::Cluster,
}

struct Tunnel {
    conn: u64,
    handle: russh::server::Handle,
}

struct LiveSession {
    user_id: i64,
    kill: watch::Sender<Option<String>>,
}

/// The agent's channel to a device, read at once with flow credit: on this
/// replica's tunnel, or relayed by the replica holding the tunnel.
enum DeviceFlow {
    Local((flow::FlowRx, flow::FlowTx<Msg>)),
    Peer((flow::FlowRx, flow::FlowTx<russh::client::Msg>)),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    /// Loads (or creates, once for all replicas) the host key.
    pub async fn new(cases: Cases, settings: RelaySettings) -> anyhow::Result<Relay> {
        let store = &cases.store;
        let stored = match store.meta(HOST_KEY_META).await? {
            Some(text) => text,
            None => {
                let seed: [u8; 32] = rand::random();
                let candidate = PrivateKey::from(
                    russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed),
                );
                let text = candidate
                    .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                    .context("encoding the relay host key")?;
                // Another replica may have stored one meanwhile: theirs wins.
                store
                    .relay_host_key(&text, cases.clock.now())
                    .await
                    .context("storing the relay host key")?
            }
        };
        let host_key =
            PrivateKey::from_openssh(stored.as_bytes()).context("the stored relay host key")?;
        Ok(Relay {
            inner: Arc::new(Inner {
                cases,
                settings,
                replica: uuid::Uuid::new_v4().to_string(),
                host_key,
                tunnels: Mutex::default(),
                sessions: Mutex::default(),
                next_conn: AtomicU64::new(1),
                cluster: cluster::Cluster::default(),
            }),
        })
    }

    /// The host public key in OpenSSH format (for agents and known_hosts).
    pub fn host_public_key(&self) -> String {
        self.inner
            .host_key
            .public_key()
            .to_openssh()
            .unwrap_or_default()
    }

    /// Agents with a tunnel on this process.
    pub fn tunnel_count(&self) -> usize {
        lock(&self.inner.tunnels).len()
    }

    /// Live sessions on this process.
    pub fn session_count(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// Serves SSH on `listener` until `stop` turns true.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // Registered before anything is accepted; dead replicas' sessions
        // (on SQLite: every session a previous run left live) are ended.
        self.set_advertise(listener.local_addr().context("the relay's address")?);
        self.register().await?;
        let s = &self.inner.settings;
        let config = Arc::new(russh::server::Config {
            server_id: russh::SshId::Standard(
                format!("SSH-2.0-Outpost_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            auth_rejection_time: s.auth_rejection_time,
            // OpenSSH asks "none" first to learn the methods: answer at once.
            auth_rejection_time_initial: Some(std::time::Duration::ZERO),
            keys: vec![self.inner.host_key.clone()],
            max_auth_attempts: usize::try_from(s.max_auth_attempts).unwrap_or(6),
            inactivity_timeout: None,
            keepalive_interval: Some(s.keepalive),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let supervisor = tokio::spawn(self.clone().supervise(stop.clone()));
        let heartbeat = tokio::spawn(self.clone().heartbeat(stop.clone()));
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(err) => {
                            tracing::warn!(error = %err, "relay: accepting a connection failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = socket.set_nodelay(true);
                    let handler = Conn {
                        relay: self.clone(),
                        id: self.inner.next_conn.fetch_add(1, Ordering::Relaxed),
                        peer,
                        who: None,
                        offered: None,
                    };
                    let config = Arc::clone(&config);
                    // The handshake's future is large (kilobytes): it runs
                    // in a task of its own that ends with it, and the
                    // connection's life is awaited by a small one (a
                    // tunnel can be idle for days).
                    tokio::spawn(async move {
                        match russh::server::run_stream(config, socket, handler).await {
                            Ok(session) => {
                                tokio::spawn(async move {
                                    if let Err(err) = session.await {
                                        tracing::debug!(peer = %peer, error = %err, "relay connection ended");
                                    }
                                });
                            }
                            Err(err) => tracing::debug!(peer = %peer, error = %err, "relay handshake failed"),
                        }
                    });
                }
            }
        }
        supervisor.abort();
        heartbeat.abort();
        // End this process's sessions on the record.
        let live: Vec<watch::Sender<Option<String>>> = lock(&self.inner.sessions)
            .values()
            .map(|s| s.kill.clone())
            .collect();
        for kill in live {
            let _ = kill.send(Some("relay stopped".into()));
        }
        let tunnels: Vec<russh::server::Handle> = lock(&self.inner.tunnels)
            .values()
            .flatten()
            .map(|t| t.handle.clone())
            .collect();
        for handle in tunnels {
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    "server stopping".into(),
                    String::new(),
                )
                .await;
        }
        let now = self.inner.cases.clock.now();
        if let Err(err) = self
            .inner
            .cases
            .store
            .end_live_sessions(Some(&self.inner.replica), "relay stopped", now)
            .await
        {
            tracing::warn!(error = %err, "relay: recording the end of live sessions failed");
        }
        self.deregister().await;
        Ok(())
    }

    /// Twice a second: cut every live session whose grant ended or that was
    /// killed through the API.
    async fn supervise(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if lock(&self.inner.sessions).is_empty() {
                continue;
            }
            let checks = match self
                .inner
                .cases
                .store
                .check_live_sessions(&self.inner.replica, self.inner.cases.clock.now())
                .await
            {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(error = %err, "relay: checking live sessions failed");
                    continue;
                }
            };
            let sessions = lock(&self.inner.sessions);
            for c in checks {
                let reason = if c.killed {
                    "killed through the API"
                } else if !c.case_open {
                    "case resolved or closed"
                } else if !c.still_on_case {
                    "engineer no longer on the case"
                } else if !c.approved {
                    "customer approval expired or revoked"
                } else {
                    continue;
                };
                if let Some(s) = sessions.get(&c.id) {
                    let _ = s.kill.send_if_modified(|r| {
                        if r.is_none() {
                            *r = Some(reason.to_string());
                            true
                        } else {
                            false
                        }
                    });
                }
            }
        }
    }

    fn add_tunnel(&self, agent_id: i64, conn: u64, handle: russh::server::Handle) {
        let max = usize::try_from(self.inner.settings.max_tunnels_per_agent).unwrap_or(2);
        let dropped: Vec<Tunnel> = {
            let mut tunnels = lock(&self.inner.tunnels);
            let list = tunnels.entry(agent_id).or_default();
            list.retain(|t| t.conn != conn);
            list.push(Tunnel { conn, handle });
            let excess = list.len().saturating_sub(max);
            list.drain(..excess).collect()
        };
        for old in dropped {
            tracing::info!(
                agent = agent_id,
                "relay: closing an agent's oldest tunnel (limit reached)"
            );
            tokio::spawn(async move {
                let _ = old
                    .handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "a newer tunnel replaced this one".into(),
                        String::new(),
                    )
                    .await;
            });
        }
        metrics::gauge!("outpost_relay_tunnels").set(self.tunnel_count() as f64);
    }

    fn remove_tunnel(&self, agent_id: i64, conn: u64) {
        let mut tunnels = lock(&self.inner.tunnels);
        if let Some(list) = tunnels.get_mut(&agent_id) {
            list.retain(|t| t.conn != conn);
            if list.is_empty() {
                tunnels.remove(&agent_id);
            }
        }
        let n = tunnels.len();
        drop(tunnels);
        metrics::gauge!("outpost_relay_tunnels").set(n as f64);
    }

    /// The newest tunnel of an agent on this process.
    fn tunnel(&self, agent_id: i64) -> Option<russh::server::Handle> {
        lock(&self.inner.tunnels)
            .get(&agent_id)
            .and_then(|l| l.last())
            .map(|t| t.handle.clone())
    }

    /// Ends a live session on this process (API kill on this replica).
    pub fn kill_local(&self, session_id: i64, reason: &str) -> bool {
        match lock(&self.inner.sessions).get(&session_id) {
            Some(s) => s.kill.send(Some(reason.to_string())).is_ok(),
            None => false,
        }
    }

    /// This process's live sessions of a user (when the database cannot
    /// say for every replica).
    fn live_sessions_of(&self, user_id: i64) -> i64 {
        let n = lock(&self.inner.sessions)
            .values()
            .filter(|s| s.user_id == user_id)
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

/// Who a connection authenticated as.
#[derive(Debug, Clone)]
enum Who {
    Agent {
        id: i64,
        uuid: String,
    },
    Engineer {
        id: i64,
        username: String,
        name: String,
    },
    /// Another server replica (it proved the shared relay host key).
    Replica {
        id: String,
    },
}

/// One SSH connection.
struct Conn {
    relay: Relay,
    id: u64,
    peer: SocketAddr,
    who: Option<Who>,
    /// What the last offered key identified (user, key fingerprint, owner),
    /// so the signed request that follows needs no second lookup.
    offered: Option<(String, String, Who)>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(Who::Agent { id, uuid }) = &self.who {
            tracing::info!(agent = %uuid, peer = %self.peer, "relay: agent tunnel closed");
            self.relay.remove_tunnel(*id, self.id);
            let (relay, conn) = (self.relay.clone(), self.id);
            tokio::spawn(async move { relay.forget_tunnel(conn).await });
        }
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl Conn {
    /// Who owns `key` under `user`, if anyone may log in with it.
    async fn identify(&self, user: &str, key: &PublicKey) -> Option<Who> {
        let store = &self.relay.inner.cases.store;
        if let Some(replica) = user.strip_prefix(cluster::PEER_USER) {
            let ours = self.relay.inner.host_key.public_key();
            return (key == ours && !replica.is_empty()).then(|| Who::Replica {
                id: replica.to_string(),
            });
        }
        let fp = fingerprint(key);
        if let Ok(uuid) = uuid::Uuid::parse_str(user) {
            return match store.agent_by_uuid(&uuid.to_string()).await {
                Ok(Some(a)) if a.revoked_at.is_none() && a.fingerprint == fp => Some(Who::Agent {
                    id: a.id,
                    uuid: a.uuid,
                }),
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(error = %err, "relay: looking up an agent failed");
                    None
                }
            };
        }
        match store.ssh_key_owner(user, &fp).await {
            Ok(Some((id, name, _role))) => Some(Who::Engineer {
                id,
                username: user.to_string(),
                name,
            }),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "relay: looking up an SSH key failed");
                None
            }
        }
    }
}

impl russh::server::Handler for Conn {
    type Error = anyhow::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // (Database futures are boxed: russh embeds each handler's future in
        // the connection's own, which lives as long as the tunnel.)
        let found = Box::pin(self.identify(user, offer.public_key)).await;
        self.offered = found
            .clone()
            .map(|who| (user.to_string(), fingerprint(offer.public_key), who));
        Ok(match found {
            Some(_) => Auth::Accept,
            // An offer does not say whether the key comes with a
            // certificate: when CAs are trusted, let the client prove the
            // key, and decide on the certificate after that.
            None if !self.relay.inner.settings.trusted_cas.is_empty() => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = fingerprint(key.public_key);
        let known = match self.offered.take() {
            Some((u, f, who)) if u == user && f == fp => Some(who),
            _ => Box::pin(self.identify(user, key.public_key)).await,
        };
        match known {
            Some(who) => {
                match &who {
                    Who::Agent { uuid, .. } => {
                        tracing::info!(agent = %uuid, peer = %self.peer, "relay: agent authenticated")
                    }
                    Who::Engineer { username, .. } => {
                        tracing::info!(user = %username, peer = %self.peer, "relay: engineer authenticated")
                    }
                    Who::Replica { id } => {
                        tracing::info!(replica = %id, peer = %self.peer, "relay: replica authenticated")
                    }
                }
                self.who = Some(who);
                Ok(Auth::Accept)
            }
            None => {
                metrics::counter!("outpost_relay_refusals_total", "reason" => "auth").increment(1);
                tracing::info!(user = %user, peer = %self.peer, key = %fp, "relay: authentication refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &russh::keys::Certificate,
    ) -> Result<Auth, Self::Error> {
        let inner = &self.relay.inner;
        let refuse = |why: String| {
            metrics::counter!("outpost_relay_refusals_total", "reason" => "auth").increment(1);
            tracing::info!(user = %user, peer = %self.peer, key_id = %certificate.key_id(), reason = %why, "relay: certificate refused");
            Ok(Auth::reject())
        };
        if inner.settings.trusted_cas.is_empty() {
            return refuse("no CA is trusted (relay.trusted_user_ca_keys)".into());
        }
        if let Err(why) = inner.settings.trusted_cas.check(
            certificate,
            user,
            self.peer.ip(),
            inner.cases.clock.now(),
        ) {
            return refuse(format!("the certificate {why}"));
        }
        match Box::pin(inner.cases.store.user_by_name(user)).await {
            Ok(Some(u)) if u.active => {
                tracing::info!(user = %user, peer = %self.peer, key_id = %certificate.key_id(), "relay: engineer authenticated by certificate");
                self.who = Some(Who::Engineer {
                    id: u.id,
                    username: u.username,
                    name: u.display_name,
                });
                Ok(Auth::Accept)
            }
            Ok(_) => refuse("no such active user".into()),
            Err(err) => refuse(format!("looking up the user failed: {err}")),
        }
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        match &self.who {
            Some(Who::Agent { uuid, .. }) if address != tunnel::FORWARD_ADDRESS => {
                tracing::warn!(agent = %uuid, peer = %self.peer, asked = %address, "relay: refused the agent's tunnel: it does not speak the tunnel's flow credit (an older agent); upgrade the agent");
                metrics::counter!("outpost_relay_refusals_total", "reason" => "tunnel_protocol")
                    .increment(1);
                Ok(false)
            }
            Some(Who::Agent { id, uuid }) => {
                tracing::info!(agent = %uuid, peer = %self.peer, "relay: agent tunnel up");
                self.relay.add_tunnel(*id, self.id, session.handle());
                Box::pin(self.relay.record_tunnel(*id, self.id)).await;
                metrics::counter!("outpost_relay_tunnel_connects_total").increment(1);
                // In place of a bound port: the flow-credit version.
                *port = tunnel::FLOW_CREDIT_VERSION;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Who::Replica { id }) = &self.who {
            let relay = self.relay.clone();
            tokio::spawn(relay.serve_peer(
                id.clone(),
                channel,
                host_to_connect.to_string(),
                port_to_connect,
                (originator_address.to_string(), originator_port),
                reply,
            ));
            return Ok(());
        }
        let Some(Who::Engineer { id, username, name }) = self.who.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let relay = self.relay.clone();
        let request = Request {
            user: UserRef { id, name },
            username,
            source: self.peer.to_string(),
            originator: (originator_address.to_string(), originator_port),
            target: host_to_connect.to_string(),
            port: port_to_connect,
        };
        tokio::spawn(async move {
            relay.open(request, channel, reply).await;
        });
        Ok(())
    }
}

/// Why a request was refused, and the SSH answer to give.
struct Refused {
    reason: String,
    case_id: Option<i64>,
    failure: ChannelOpenFailure,
}

/// An engineer's request for a device.
struct Request {
    user: UserRef,
    username: String,
    source: String,
    originator: (String, u32),
    target: String,
    port: u32,
}

impl Relay {
    /// Checks the grant, opens the agent's channel, records and splices.
    /// Checks the request and opens the agent's channel to the device.
    async fn connect(&self, rq: &Request) -> Result<(grants::Grant, DeviceFlow), Refused> {
        let refused = |reason: String, case_id: Option<i64>, failure| Refused {
            reason,
            case_id,
            failure,
        };
        if rq.port == 0 || rq.port > 65535 {
            return Err(refused(
                format!("port {} is not a TCP port", rq.port),
                None,
                ChannelOpenFailure::AdministrativelyProhibited,
            ));
        }
        let inner = &self.inner;
        let grant = grants::resolve(
            &inner.cases.store,
            rq.user.id,
            &rq.target,
            inner.cases.clock.now(),
        )
        .await
        .map_err(|r| {
            refused(
                r.to_string(),
                None,
                ChannelOpenFailure::AdministrativelyProhibited,
            )
        })?;
        let max = i64::from(inner.settings.max_sessions_per_engineer);
        let live = inner
            .cases
            .store
            .live_sessions_of(rq.user.id)
            .await
            .unwrap_or_else(|_| self.live_sessions_of(rq.user.id));
        if live >= max {
            return Err(refused(
                format!(
                    "{} already holds {max} sessions (relay.max_sessions_per_engineer)",
                    rq.username
                ),
                Some(grant.case_id),
                ChannelOpenFailure::ResourceShortage,
            ));
        }
        let refuse_connect = |reason: String| {
            refused(
                reason,
                Some(grant.case_id),
                ChannelOpenFailure::ConnectFailed,
            )
        };
        let Some(tunnel) = self.tunnel(grant.agent_id) else {
            // The tunnel lives on another replica (or nowhere).
            return match self
                .peer_channel(grant.agent_id, &grant.agent_target, rq.port, &rq.originator)
                .await
            {
                Ok(channel) => Ok((grant, DeviceFlow::Peer(flow::start(channel)))),
                Err(why) => Err(refuse_connect(format!(
                    "the agent for {} cannot be reached: {why}",
                    grant.device_name
                ))),
            };
        };
        match tunnel
            .channel_open_forwarded_tcpip(
                grant.agent_target.clone(),
                rq.port,
                rq.originator.0.clone(),
                rq.originator.1,
            )
            .await
        {
            // Read at once, before the session is recorded: the device
            // may speak first (an SSH banner).
            Ok(channel) => Ok((grant, DeviceFlow::Local(flow::start(channel)))),
            Err(err) => Err(refuse_connect(format!(
                "the agent refused or could not reach {}:{}: {err}",
                grant.agent_target, rq.port
            ))),
        }
    }

    /// Stores one attempt (a failure to store it is logged, not fatal: the
    /// log line of the attempt is already written).
    async fn record_attempt(
        &self,
        rq: &Request,
        allowed: bool,
        reason: &str,
        case_id: Option<i64>,
        session_id: Option<i64>,
    ) {
        let inner = &self.inner;
        if let Err(err) = inner
            .cases
            .store
            .insert_remote_attempt(&crate::store::relay::Attempt {
                at: inner.cases.clock.now(),
                username: &rq.username,
                user_id: Some(rq.user.id),
                source: &rq.source,
                target: &rq.target,
                port: rq.port,
                allowed,
                reason,
                case_id,
                session_id,
            })
            .await
        {
            tracing::warn!(error = %err, "relay: storing an attempt failed");
        }
    }

    /// Connects, records and splices one engineer's request.
    async fn open(&self, rq: Request, channel: Channel<Msg>, reply: ChannelOpenHandle) {
        let inner = &self.inner;
        let store = &inner.cases.store;
        let now = inner.cases.clock.now();
        let (grant, device_channel) = match self.connect(&rq).await {
            Ok(ok) => ok,
            Err(refused) => {
                metrics::counter!("outpost_relay_refusals_total", "reason" => "grant").increment(1);
                tracing::info!(user = %rq.username, source = %rq.source, target = %rq.target, port = rq.port, reason = %refused.reason, "relay: connection refused");
                self.record_attempt(&rq, false, &refused.reason, refused.case_id, None)
                    .await;
                reply.reject(refused.failure).await;
                return;
            }
        };
        let session_id = match store
            .insert_remote_session(&crate::store::relay::NewSession {
                case_id: grant.case_id,
                device_id: grant.device_id,
                user_id: rq.user.id,
                agent_id: grant.agent_id,
                source: &rq.source,
                target: &rq.target,
                port: rq.port,
                replica: &inner.replica,
                started_at: now,
            })
            .await
        {
            Ok(id) => id,
            Err(err) => {
                tracing::warn!(error = %err, "relay: recording a session failed; refusing it");
                match device_channel {
                    DeviceFlow::Local((_, tx)) => tx.close().await,
                    DeviceFlow::Peer((_, tx)) => tx.close().await,
                }
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return;
            }
        };
        self.record_attempt(
            &rq,
            true,
            &format!("{} on case {}", grant.role, grant.case_number),
            Some(grant.case_id),
            Some(session_id),
        )
        .await;
        let (kill_tx, kill_rx) = watch::channel(None);
        lock(&inner.sessions).insert(
            session_id,
            LiveSession {
                user_id: rq.user.id,
                kill: kill_tx,
            },
        );
        metrics::gauge!("outpost_relay_sessions").set(self.session_count() as f64);
        metrics::counter!("outpost_relay_sessions_total").increment(1);
        tracing::info!(session = session_id, user = %rq.username, source = %rq.source, device = %grant.device_name, port = rq.port, case = %grant.case_number, "relay: session started");
        let activity =
            |phase: &str, ended: Option<(chrono::DateTime<chrono::Utc>, u64, u64, String)>| {
                ActivityBody::RemoteSession {
                    session_id,
                    phase: phase.to_string(),
                    engineer: rq.user.clone(),
                    source: rq.source.clone(),
                    device: grant.device_name.clone(),
                    port: rq.port,
                    started_at: now,
                    ended_at: ended.as_ref().map(|e| e.0),
                    bytes_to_device: ended.as_ref().map(|e| e.1),
                    bytes_from_device: ended.as_ref().map(|e| e.2),
                    end_reason: ended.map(|e| e.3),
                }
            };
        if let Err(err) = inner
            .cases
            .record_system(
                &grant.case_number,
                AUTHOR,
                Visibility::Public,
                &activity("started", None),
            )
            .await
        {
            tracing::warn!(error = %err, case = %grant.case_number, "relay: recording the session start on the case failed");
        }
        reply.accept().await;
        let started = Instant::now();
        let (idle, max_buffer) = (
            inner.settings.idle_timeout,
            inner.settings.max_session_buffer,
        );
        let outcome = match device_channel {
            DeviceFlow::Local(device) => {
                splice::splice(channel, device, kill_rx, idle, max_buffer).await
            }
            DeviceFlow::Peer(device) => {
                splice::splice(channel, device, kill_rx, idle, max_buffer).await
            }
        };
        lock(&inner.sessions).remove(&session_id);
        metrics::gauge!("outpost_relay_sessions").set(self.session_count() as f64);
        metrics::counter!("outpost_relay_bytes_total", "direction" => "to_device")
            .increment(outcome.to_device);
        metrics::counter!("outpost_relay_bytes_total", "direction" => "from_device")
            .increment(outcome.from_device);
        let ended = inner.cases.clock.now();
        tracing::info!(session = session_id, user = %rq.username, device = %grant.device_name, to_device = outcome.to_device, from_device = outcome.from_device, secs = started.elapsed().as_secs_f64(), reason = %outcome.reason, "relay: session ended");
        if let Err(err) = store
            .end_remote_session(
                session_id,
                ended,
                outcome.to_device,
                outcome.from_device,
                &outcome.reason,
            )
            .await
        {
            tracing::warn!(error = %err, "relay: recording the session end failed");
        }
        if let Err(err) = inner
            .cases
            .record_system(
                &grant.case_number,
                AUTHOR,
                Visibility::Public,
                &activity(
                    "ended",
                    Some((
                        ended,
                        outcome.to_device,
                        outcome.from_device,
                        outcome.reason,
                    )),
                ),
            )
            .await
        {
            tracing::warn!(error = %err, case = %grant.case_number, "relay: recording the session end on the case failed");
        }
    }
}
