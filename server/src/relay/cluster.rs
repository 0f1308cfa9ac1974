//! Several replicas as one relay.
//!
//! Every `serve` process registers itself in `replicas` (its id, the
//! address its relay is reached at by the others) and records each agent
//! tunnel it holds in `relay_tunnels`. An engineer's request for a device
//! whose agent has no tunnel on this replica is relayed to the replica that
//! holds it:
//!
//! * **The internal channel is SSH**, replica to replica, on the relay's
//!   own port. Both ends prove the one relay host key all replicas share
//!   (stored once in `meta`): the caller authenticates as
//!   `outpost-replica/<its id>` with that key, and checks that the callee
//!   presents it. Nobody without the host key (that is, without the
//!   database) can use it, and the traffic is encrypted like any other.
//! * The caller checks the grant, records the session and attempt, and
//!   supervises the session as for a local tunnel; it opens a
//!   `direct-tcpip` channel to the holder naming `agent/<id>/<target>`.
//!   The holder opens the `forwarded-tcpip` channel on the agent's tunnel
//!   and bridges the two. Both hops carry the tunnel's flow credit, so a
//!   session whose engineer stops reading stops only itself, on every hop.
//! * Connections between replicas are kept and reused, one per pair.
//!
//! **Liveness.** Each replica refreshes its row every
//! `relay.replica_heartbeat`. A replica not heard of for
//! `relay.replica_timeout` is dead: the first live replica to notice ends
//! its live sessions (on the record and on their cases), forgets its
//! tunnels, and removes it. A replica that finds itself removed (it was
//! cut off from the database for too long) cuts its own sessions, which
//! nobody supervised meanwhile, and records its tunnels again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outpost_protocol::tunnel::flow::{self, Event, FlowRx, FlowTx};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::server::{ChannelOpenHandle, Msg as ServerMsg};
use russh::{client, Channel, ChannelId, ChannelMsg, ChannelOpenFailure};
use tokio::sync::watch;

use super::{lock, Relay, AUTHOR};
use crate::cases::model::{ActivityBody, UserRef, Visibility};
use crate::clock::from_micros;
use crate::store::Dialect;

/// The user name prefix a replica logs in to another with.
pub const PEER_USER: &str = "outpost-replica/";

/// The `direct-tcpip` host a replica asks another for: the agent's tunnel
/// and the target behind it.
const PEER_TARGET: &str = "agent/";

const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// After one direction of a bridged channel ended, how long the other may
/// go on alone once the far side closed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// This replica's view of the others.
#[derive(Default)]
pub(super) struct Cluster {
    /// Where the other replicas reach this one (set when the relay
    /// listens).
    advertise: std::sync::Mutex<Option<String>>,
    /// Kept connections to other replicas, by replica id.
    peers: tokio::sync::Mutex<HashMap<String, Arc<client::Handle<PeerClient>>>>,
}

/// The client side of a connection to another replica: it must present the
/// shared host key.
struct PeerClient {
    expected: PublicKey,
}

impl client::Handler for PeerClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key == &self.expected,
            PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

/// `agent/<id>/<target>` for a relayed channel.
pub(super) fn peer_target(agent_id: i64, target: &str) -> String {
    format!("{PEER_TARGET}{agent_id}/{target}")
}

/// The agent id and target of a relayed channel's host.
pub(super) fn parse_peer_target(host: &str) -> Option<(i64, &str)> {
    let rest = host.strip_prefix(PEER_TARGET)?;
    let (id, target) = rest.split_once('/')?;
    let id = id.parse().ok()?;
    (!target.is_empty()).then_some((id, target))
}

impl Relay {
    /// This replica's id (in `replicas`, `relay_tunnels` and
    /// `remote_sessions.replica`).
    pub fn replica_id(&self) -> &str {
        &self.inner.replica
    }

    /// Decides where the others reach this replica, from the listening
    /// address unless `relay.advertise` says.
    pub(super) fn set_advertise(&self, local: std::net::SocketAddr) {
        let addr = match &self.inner.settings.advertise {
            Some(a) => Some(a.clone()),
            None if local.ip().is_unspecified() => {
                tracing::warn!(listen = %local, "relay: listening on an unspecified address without relay.advertise: other replicas cannot relay to the tunnels this one holds");
                None
            }
            None => Some(local.to_string()),
        };
        *lock(&self.inner.cluster.advertise) = addr;
    }

    /// Registers this replica (before it accepts anything), sweeps dead
    /// replicas, and on SQLite (one process) ends whatever a previous run
    /// left live.
    pub(super) async fn register(&self) -> anyhow::Result<()> {
        let store = &self.inner.cases.store;
        let now = self.inner.cases.clock.now();
        let advertise = lock(&self.inner.cluster.advertise).clone();
        store
            .replica_heartbeat(
                &self.inner.replica,
                advertise.as_deref(),
                env!("CARGO_PKG_VERSION"),
                now,
            )
            .await
            .context("registering this replica")?;
        // On SQLite this is the only process: every other replica on the
        // record is a previous run.
        let everyone = store.dialect() == Dialect::Sqlite;
        self.sweep(everyone).await;
        Ok(())
    }

    /// Every heartbeat: refresh this replica's row, then sweep.
    pub(super) async fn heartbeat(self, mut stop: watch::Receiver<bool>) {
        let every = self.inner.settings.replica_heartbeat;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            let store = &self.inner.cases.store;
            let advertise = lock(&self.inner.cluster.advertise).clone();
            match store
                .replica_heartbeat(
                    &self.inner.replica,
                    advertise.as_deref(),
                    env!("CARGO_PKG_VERSION"),
                    self.inner.cases.clock.now(),
                )
                .await
            {
                Ok(true) => {}
                Ok(false) => self.presumed_dead().await,
                Err(err) => {
                    tracing::warn!(error = %err, "relay: recording this replica's heartbeat failed");
                    continue;
                }
            }
            self.sweep(false).await;
        }
    }

    /// This replica's row was gone: the others took it for dead, ended its
    /// sessions on the record and forgot its tunnels. Cut the sessions
    /// (nobody supervised them) and record the tunnels again.
    async fn presumed_dead(&self) {
        tracing::warn!(
            replica = %self.inner.replica,
            "relay: the other replicas took this one for dead (no heartbeat within relay.replica_timeout); cutting its sessions and recording its tunnels again"
        );
        let live: Vec<watch::Sender<Option<String>>> = lock(&self.inner.sessions)
            .values()
            .map(|s| s.kill.clone())
            .collect();
        for kill in live {
            let _ = kill.send(Some("this replica lost the database for too long".into()));
        }
        let tunnels: Vec<(i64, u64)> = lock(&self.inner.tunnels)
            .iter()
            .flat_map(|(agent, list)| list.iter().map(move |t| (*agent, t.conn)))
            .collect();
        for (agent, conn) in tunnels {
            self.record_tunnel(agent, conn).await;
        }
    }

    /// Ends the sessions of dead replicas (all others if `everyone`) and
    /// forgets them.
    async fn sweep(&self, everyone: bool) {
        let store = &self.inner.cases.store;
        let me = &self.inner.replica;
        let now = self.inner.cases.clock.now();
        let before = if everyone {
            now + chrono::Duration::days(365 * 100)
        } else {
            now - chrono::TimeDelta::from_std(self.inner.settings.replica_timeout)
                .unwrap_or(chrono::TimeDelta::MAX)
        };
        let mut dead = match store.dead_replicas(me, before).await {
            Ok(d) => d,
            Err(err) => {
                tracing::warn!(error = %err, "relay: looking for dead replicas failed");
                return;
            }
        };
        // Sessions of replicas that are not registered at all (a run that
        // predates registration, or a sweep cut short).
        match store.unregistered_session_replicas(me).await {
            Ok(more) => dead.extend(more),
            Err(err) => {
                tracing::warn!(error = %err, "relay: looking for unregistered sessions failed")
            }
        }
        for replica in dead {
            let reason = if everyone {
                "server stopped".to_string()
            } else {
                format!(
                    "replica {} stopped responding",
                    replica.get(..8).unwrap_or(&replica)
                )
            };
            let ended = self.end_sessions_of(&replica, &reason).await;
            if let Err(err) = store.forget_replica(&replica).await {
                tracing::warn!(error = %err, replica = %replica, "relay: forgetting a dead replica failed");
                continue;
            }
            tracing::info!(replica = %replica, sessions = ended, "relay: swept a dead replica: its sessions ended, its tunnels forgotten");
            self.inner.cluster.peers.lock().await.remove(&replica);
        }
    }

    /// Ends another replica's live sessions, each with its case entry
    /// (once: only the sweeper whose update ends the row records it).
    async fn end_sessions_of(&self, replica: &str, reason: &str) -> usize {
        let inner = &self.inner;
        let store = &inner.cases.store;
        let rows = match store.live_sessions_of_replica(replica).await {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(error = %err, "relay: listing a dead replica's sessions failed");
                return 0;
            }
        };
        let mut ended = 0;
        for row in rows {
            let now = inner.cases.clock.now();
            let to_device = u64::try_from(row.bytes_to_device).unwrap_or(0);
            let from_device = u64::try_from(row.bytes_from_device).unwrap_or(0);
            match store
                .end_remote_session(row.id, now, to_device, from_device, reason)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, session = row.id, "relay: ending a dead replica's session failed");
                    continue;
                }
            }
            ended += 1;
            let body = ActivityBody::RemoteSession {
                session_id: row.id,
                phase: "ended".into(),
                engineer: UserRef {
                    id: row.user_id,
                    name: row.user_name.clone(),
                },
                source: row.source.clone(),
                device: row.device_name.clone(),
                port: u32::try_from(row.port).unwrap_or(0),
                started_at: from_micros(row.started_at),
                ended_at: Some(now),
                bytes_to_device: Some(to_device),
                bytes_from_device: Some(from_device),
                end_reason: Some(reason.to_string()),
            };
            if let Err(err) = inner
                .cases
                .record_system(&row.case_number, AUTHOR, Visibility::Public, &body)
                .await
            {
                tracing::warn!(error = %err, case = %row.case_number, "relay: recording the end of a dead replica's session failed");
            }
        }
        ended
    }

    /// Records a tunnel this replica holds (logged, not fatal: the tunnel
    /// still serves this replica's engineers).
    pub(super) async fn record_tunnel(&self, agent_id: i64, conn: u64) {
        let inner = &self.inner;
        if let Err(err) = inner
            .cases
            .store
            .add_relay_tunnel(
                &inner.replica,
                i64::try_from(conn).unwrap_or(i64::MAX),
                agent_id,
                inner.cases.clock.now(),
            )
            .await
        {
            tracing::warn!(error = %err, agent = agent_id, "relay: recording a tunnel failed; other replicas cannot relay to it");
        }
    }

    /// Forgets a tunnel this replica no longer holds.
    pub(super) async fn forget_tunnel(&self, conn: u64) {
        let inner = &self.inner;
        if let Err(err) = inner
            .cases
            .store
            .remove_relay_tunnel(&inner.replica, i64::try_from(conn).unwrap_or(i64::MAX))
            .await
        {
            tracing::warn!(error = %err, "relay: forgetting a tunnel failed");
        }
    }

    /// On a clean stop: this replica's row and tunnels go (its sessions
    /// were ended by the caller).
    pub(super) async fn deregister(&self) {
        if let Err(err) = self
            .inner
            .cases
            .store
            .forget_replica(&self.inner.replica)
            .await
        {
            tracing::warn!(error = %err, "relay: removing this replica from the record failed");
        }
        let peers: Vec<Arc<client::Handle<PeerClient>>> = self
            .inner
            .cluster
            .peers
            .lock()
            .await
            .drain()
            .map(|(_, h)| h)
            .collect();
        for peer in peers {
            let _ = peer
                .disconnect(russh::Disconnect::ByApplication, "replica stopping", "")
                .await;
        }
    }

    /// Opens a channel to `target:port` behind the agent's tunnel on
    /// another replica. `Err` says why none could.
    pub(super) async fn peer_channel(
        &self,
        agent_id: i64,
        target: &str,
        port: u32,
        originator: &(String, u32),
    ) -> Result<Channel<client::Msg>, String> {
        let inner = &self.inner;
        let now = inner.cases.clock.now();
        let alive_since = now
            - chrono::TimeDelta::from_std(inner.settings.replica_timeout)
                .unwrap_or(chrono::TimeDelta::MAX);
        let holders = inner
            .cases
            .store
            .tunnel_holders(agent_id, &inner.replica, alive_since)
            .await
            .map_err(|e| format!("looking up the agent's tunnel failed: {e}"))?;
        if holders.is_empty() {
            return Err("the agent has no tunnel to any replica".into());
        }
        let host = peer_target(agent_id, target);
        let mut why = Vec::new();
        for holder in holders {
            // A kept connection may have died with its replica: one fresh
            // try after a failure on a kept one.
            for fresh in [false, true] {
                let handle = match self.peer(&holder.replica, &holder.ssh_address, fresh).await {
                    Ok(h) => h,
                    Err(err) => {
                        why.push(format!("replica at {}: {err:#}", holder.ssh_address));
                        break;
                    }
                };
                match handle
                    .channel_open_direct_tcpip(
                        host.clone(),
                        port,
                        originator.0.clone(),
                        originator.1,
                    )
                    .await
                {
                    Ok(channel) => return Ok(channel),
                    Err(russh::Error::ChannelOpenFailure(f)) => {
                        why.push(format!("replica at {}: {f:?}", holder.ssh_address));
                        break;
                    }
                    Err(err) => {
                        self.inner
                            .cluster
                            .peers
                            .lock()
                            .await
                            .remove(&holder.replica);
                        if fresh {
                            why.push(format!("replica at {}: {err}", holder.ssh_address));
                        }
                    }
                }
            }
        }
        Err(format!(
            "no replica holding the agent's tunnel could reach it ({})",
            why.join("; ")
        ))
    }

    /// The kept connection to a replica, or a new one.
    async fn peer(
        &self,
        replica: &str,
        address: &str,
        fresh: bool,
    ) -> anyhow::Result<Arc<client::Handle<PeerClient>>> {
        let mut peers = self.inner.cluster.peers.lock().await;
        if !fresh {
            if let Some(h) = peers.get(replica).filter(|h| !h.is_closed()) {
                return Ok(Arc::clone(h));
            }
        }
        peers.remove(replica);
        let handle = tokio::time::timeout(PEER_CONNECT_TIMEOUT, self.connect_peer(address))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {PEER_CONNECT_TIMEOUT:?}"))??;
        let handle = Arc::new(handle);
        peers.insert(replica.to_string(), Arc::clone(&handle));
        Ok(handle)
    }

    async fn connect_peer(&self, address: &str) -> anyhow::Result<client::Handle<PeerClient>> {
        let inner = &self.inner;
        let config = Arc::new(client::Config {
            keepalive_interval: Some(inner.settings.keepalive),
            keepalive_max: 3,
            inactivity_timeout: None,
            ..client::Config::default()
        });
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        let _ = tcp.set_nodelay(true);
        let client = PeerClient {
            expected: inner.host_key.public_key().clone(),
        };
        let mut handle = client::connect_stream(config, tcp, client)
            .await
            .context("the SSH handshake (does it hold the shared relay host key?)")?;
        let auth = handle
            .authenticate_publickey(
                format!("{PEER_USER}{}", inner.replica),
                PrivateKeyWithHashAlg::new(Arc::new(inner.host_key.clone()), None),
            )
            .await
            .context("authenticating")?;
        anyhow::ensure!(auth.success(), "it refused this replica's key");
        Ok(handle)
    }

    /// Another replica asks for a channel to a target behind an agent
    /// tunnel this replica holds: open it on the tunnel and bridge.
    pub(super) async fn serve_peer(
        self,
        from: String,
        channel: Channel<ServerMsg>,
        host: String,
        port: u32,
        originator: (String, u32),
        reply: ChannelOpenHandle,
    ) {
        let Some((agent_id, target)) = parse_peer_target(&host) else {
            tracing::warn!(replica = %from, host = %host, "relay: refused a replica's channel: not agent/<id>/<target>");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        };
        let Some(tunnel) = self.tunnel(agent_id) else {
            tracing::info!(replica = %from, agent = agent_id, "relay: a replica asked for a tunnel this one no longer holds");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        };
        let device = match tunnel
            .channel_open_forwarded_tcpip(target.to_string(), port, originator.0, originator.1)
            .await
        {
            Ok(c) => c,
            Err(err) => {
                tracing::info!(replica = %from, agent = agent_id, target = %target, port, error = %err, "relay: the agent refused a relayed channel");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return;
            }
        };
        // The device may speak first: read it at once.
        let device = flow::start(device);
        reply.accept().await;
        let peer = flow::start(channel);
        metrics::counter!("outpost_relay_bridged_total").increment(1);
        let end = bridge(peer, device).await;
        tracing::debug!(replica = %from, agent = agent_id, target = %target, port, end = %end, "relay: relayed channel ended");
    }
}

/// Bridges two channels with flow credit until one closes or both
/// half-closed; returns how it ended.
async fn bridge<A, B>(a: (FlowRx, FlowTx<A>), b: (FlowRx, FlowTx<B>)) -> String
where
    A: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
    B: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let (a_rx, a_tx) = a;
    let (b_rx, b_tx) = b;
    let end = {
        let a_to_b = leg(a_rx, &a_tx, &b_tx);
        let b_to_a = leg(b_rx, &b_tx, &a_tx);
        tokio::pin!(a_to_b, b_to_a);
        // A side that half-closed, still read for its close.
        let mut a_after: Option<FlowRx> = None;
        let mut b_after: Option<FlowRx> = None;
        loop {
            tokio::select! {
                (end, rx) = &mut a_to_b, if a_after.is_none() => match end {
                    Leg::Eof => a_after = Some(rx),
                    Leg::End(why) => break why,
                },
                (end, rx) = &mut b_to_a, if b_after.is_none() => match end {
                    Leg::Eof => b_after = Some(rx),
                    Leg::End(why) => break why,
                },
                event = next_event(&mut a_after), if a_after.is_some() => {
                    if matches!(event, Event::Closed | Event::Violation(_)) {
                        break "closed".to_string();
                    }
                }
                event = next_event(&mut b_after), if b_after.is_some() => {
                    if matches!(event, Event::Closed | Event::Violation(_)) {
                        break "closed".to_string();
                    }
                }
            }
            if a_after.is_some() && b_after.is_some() {
                break "both sides finished".to_string();
            }
        }
    };
    a_tx.close().await;
    b_tx.close().await;
    end
}

async fn next_event(rx: &mut Option<FlowRx>) -> Event {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

enum Leg {
    /// The sender half-closed (passed on); the other way may go on.
    Eof,
    /// The bridge is over.
    End(String),
}

/// One direction: data from `rx` to `out`, each piece's credit returned on
/// `back` once `out` took it. Gives `rx` back for reading after EOF.
async fn leg<A, B>(mut rx: FlowRx, back: &FlowTx<A>, out: &FlowTx<B>) -> (Leg, FlowRx)
where
    A: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
    B: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let mut closed = rx.ended();
    let end = loop {
        match rx.recv().await {
            Event::Data(data) => {
                let n = data.len();
                tokio::select! {
                    sent = out.send(data) => if sent.is_err() {
                        break Leg::End("the far side closed".into());
                    },
                    () = closed.grace_passed(CLOSE_GRACE) => break Leg::End("closed".into()),
                }
                if back.passed_on(n).await.is_err() {
                    break Leg::End("closed".into());
                }
            }
            Event::Eof => {
                let _ = out.eof().await;
                break Leg::Eof;
            }
            Event::Closed => break Leg::End("closed".into()),
            Event::Violation(why) => break Leg::End(format!("flow credit broken: {why}")),
        }
    };
    (end, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_targets_round_trip_and_refuse_garbage() {
        let host = peer_target(42, "core-sw-1.example");
        assert_eq!(parse_peer_target(&host), Some((42, "core-sw-1.example")));
        assert_eq!(parse_peer_target("agent/7/fd00::1"), Some((7, "fd00::1")));
        for bad in [
            "",
            "agent/",
            "agent/x/sw1",
            "agent/7/",
            "agent/7",
            "device/7/sw1",
        ] {
            assert_eq!(parse_peer_target(bad), None, "{bad:?}");
        }
    }
}
