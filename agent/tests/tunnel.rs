//! The remote-login tunnel ([`outpost_agent::tunnel::run`]) against a small
//! relay written here with the russh server: it accepts only the agent's
//! key for the agent's id, accepts `tcpip-forward` and hands each
//! connection's handle to the test, which then opens channels as the real
//! relay would. Targets are a plain TCP echo service on loopback.
//!
//! Each test runs on a current-thread runtime, like the daemon.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use outpost_agent::config::{HostPort, TunnelConfig, TunnelTarget};
use outpost_agent::identity::{generate_key, Identity};
use outpost_agent::metrics::Metrics;
use outpost_agent::tunnel;
use outpost_protocol::tunnel::{self as tunnel_protocol, flow};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, Msg, Session, VerifiedPublicKey};
use russh::{Channel, Disconnect};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Generous bound for anything the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// A `tcpip-forward` the relay accepted: the connection's handle.
struct Forward {
    address: String,
    port: u32,
    handle: server::Handle,
}

/// What the relay saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    auth_attempts: AtomicUsize,
    auth_refused: AtomicUsize,
}

struct Relay {
    addr: SocketAddr,
    /// `algorithm base64` of its host key.
    host_key: String,
    seen: Arc<Seen>,
    forwards: mpsc::UnboundedReceiver<Forward>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct RelayHandler {
    /// The answer to `tcpip-forward` (the flow-credit version it speaks).
    answer: u32,
    user: String,
    agent_key: PublicKey,
    seen: Arc<Seen>,
    forwards: mpsc::UnboundedSender<Forward>,
}

impl server::Handler for RelayHandler {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.seen.auth_attempts.fetch_add(1, Ordering::SeqCst);
        if user == self.user && key.public_key.key_data() == self.agent_key.key_data() {
            Ok(Auth::Accept)
        } else {
            self.seen.auth_refused.fetch_add(1, Ordering::SeqCst);
            Ok(Auth::reject())
        }
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let _ = self.forwards.send(Forward {
            address: address.to_owned(),
            port: *port,
            handle: session.handle(),
        });
        *port = self.answer;
        Ok(true)
    }
}

fn keypair(seed: [u8; 32]) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random");
    seed
}

fn openssh_text(key: &PublicKey) -> String {
    let text = key.to_openssh().expect("encode");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The agent's side: its identity and key.
struct AgentId {
    identity: Identity,
    key: SigningKey,
}

impl AgentId {
    fn new(relay_host_key: Option<String>) -> Self {
        let key = generate_key().expect("key");
        let identity = Identity {
            agent_id: Uuid::new_v4(),
            server_url: "http://127.0.0.1:1".into(),
            server_tls_pin_sha256: None,
            ssh_host_key: relay_host_key,
            heartbeat_interval_secs: 60,
            public_key: outpost_agent::identity::openssh_public_key(&key, "test"),
            enrolled_at: chrono::Utc::now(),
        };
        AgentId { identity, key }
    }

    fn public_key(&self) -> PublicKey {
        keypair(self.key.to_bytes()).public_key().clone()
    }
}

/// Starts a relay that accepts `agent`'s key for `agent`'s id.
async fn start_relay(agent: &AgentId) -> Relay {
    start_relay_answering(
        agent,
        russh::Limits::default(),
        tunnel_protocol::FLOW_CREDIT_VERSION,
    )
    .await
}

/// The same, rekeying after `limits` and answering `tcpip-forward` with
/// `answer`.
async fn start_relay_answering(agent: &AgentId, limits: russh::Limits, answer: u32) -> Relay {
    let host = keypair(random_seed());
    let host_key = openssh_text(host.public_key());
    let config = Arc::new(server::Config {
        keys: vec![host],
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::ZERO),
        limits,
        ..server::Config::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let (tx, forwards) = mpsc::unbounded_channel();
    let handler = RelayHandler {
        answer,
        user: agent.identity.agent_id.to_string(),
        agent_key: agent.public_key(),
        seen: Arc::clone(&seen),
        forwards: tx,
    };
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            handler.seen.connections.fetch_add(1, Ordering::SeqCst);
            let (config, handler) = (Arc::clone(&config), handler.clone());
            tokio::spawn(async move {
                if let Ok(session) = server::run_stream(config, tcp, handler).await {
                    let _ = session.await;
                }
            });
        }
    });
    Relay {
        addr,
        host_key,
        seen,
        forwards,
        task,
    }
}

impl Relay {
    /// The next accepted `tcpip-forward`, i.e. the agent's next connection.
    async fn next_forward(&mut self) -> Forward {
        let forward = tokio::time::timeout(PATIENCE, self.forwards.recv())
            .await
            .expect("the agent connects and asks for forwarding")
            .expect("relay running");
        assert_eq!(forward.address, tunnel_protocol::FORWARD_ADDRESS);
        assert_eq!(forward.port, 0);
        forward
    }
}

/// A TCP echo service on loopback that half-closes after its peer's EOF.
async fn start_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    port
}

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

fn target(name: &str, ports: &[u16]) -> TunnelTarget {
    TunnelTarget {
        name: name.into(),
        address: "127.0.0.1".into(),
        ports: ports.to_vec(),
    }
}

fn tunnel_config(
    relay: SocketAddr,
    host_key: Option<String>,
    targets: Vec<TunnelTarget>,
) -> TunnelConfig {
    TunnelConfig {
        relay: Some(HostPort {
            host: relay.ip().to_string(),
            port: relay.port(),
        }),
        keepalive: Duration::from_secs(30),
        host_key,
        targets,
    }
}

/// The tunnel running as a task, as the daemon runs it.
struct Running {
    config: watch::Sender<Arc<TunnelConfig>>,
    stop: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    task: JoinHandle<()>,
}

fn start_tunnel(agent: &AgentId, config: TunnelConfig) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_test_writer()
        .try_init();
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let (stop, stop_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let task = tokio::spawn(tunnel::run(
        config_rx,
        agent.identity.clone(),
        agent.key.clone(),
        Arc::clone(&metrics),
        stop_rx,
    ));
    Running {
        config: config_tx,
        stop,
        metrics,
        task,
    }
}

impl Running {
    fn get(&self, f: impl Fn(&Metrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.metrics).load(Ordering::SeqCst)
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the tunnel stops when asked")
            .expect("the tunnel task does not panic");
    }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a forwarded-tcpip channel as the relay does for an engineer.
async fn open(forward: &Forward, name: &str, port: u16) -> Result<Channel<Msg>, russh::Error> {
    tokio::time::timeout(
        PATIENCE,
        forward
            .handle
            .channel_open_forwarded_tcpip(name, u32::from(port), "198.51.100.7", 50123),
    )
    .await
    .expect("the agent answers a channel open")
}

/// Sends `payload` through the channel and reads it back (from an echo
/// target), with the flow credit the real relay uses, then half-closes and
/// expects the agent's EOF.
async fn round_trip(channel: Channel<Msg>, payload: &[u8]) {
    let (mut rx, tx) = flow::start(channel);
    let send = async {
        tx.send(payload.to_vec()).await.expect("send");
        tx.eof().await.expect("eof");
    };
    let receive = async {
        let mut echoed = Vec::with_capacity(payload.len());
        let mut eof = false;
        loop {
            match tokio::time::timeout(PATIENCE, rx.recv())
                .await
                .expect("echo")
            {
                flow::Event::Data(data) => {
                    assert!(!eof, "data after EOF");
                    echoed.extend_from_slice(&data);
                    tx.passed_on(data.len()).await.expect("credit");
                }
                flow::Event::Eof => {
                    eof = true;
                    break;
                }
                flow::Event::Closed => break,
                flow::Event::Violation(why) => panic!("the agent broke the flow credit: {why}"),
            }
        }
        assert!(eof, "the agent passes on the target's EOF");
        echoed
    };
    let ((), echoed) = tokio::join!(send, receive);
    // Both directions are done: close, as the relay does.
    tx.close().await;
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the echo differs from what was sent");
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn channels_reach_allowed_targets_only() {
    let echo = start_echo().await;
    let dead = closed_port().await;
    let agent = AgentId::new(None);
    let mut relay = start_relay(&agent).await;
    // The host key from the configuration (the identity has none).
    let running = start_tunnel(
        &agent,
        tunnel_config(
            relay.addr,
            Some(relay.host_key.clone()),
            vec![target("echo", &[echo]), target("dead", &[dead])],
        ),
    );
    let forward = relay.next_forward().await;
    wait_until("the tunnel is up", || running.get(|m| &m.tunnel_up) == 1).await;
    assert_eq!(running.get(|m| &m.tunnel_connects), 1);

    // (a) Data round-trips, in both directions, with half-closes.
    let big = payload(300 * 1024);
    round_trip(open(&forward, "echo", echo).await.expect("accepted"), &big).await;
    round_trip(
        open(&forward, "echo", echo).await.expect("accepted"),
        b"show version\n",
    )
    .await;
    let sent = (big.len() + 13) as u64;
    wait_until("the bytes are counted", || {
        running.get(|m| &m.tunnel_bytes_from_target) == sent
    })
    .await;
    assert_eq!(running.get(|m| &m.tunnel_bytes_to_target), sent);
    assert_eq!(running.get(|m| &m.tunnel_channels_accepted), 2);

    // (b) Names not on the allow-list and ports not allowed are refused,
    // and so is an allowed target that does not answer.
    assert!(open(&forward, "elsewhere", echo).await.is_err());
    assert!(open(&forward, "echo", 22).await.is_err());
    assert!(open(&forward, "echo", dead).await.is_err());
    assert!(open(&forward, "dead", dead).await.is_err());
    assert_eq!(running.get(|m| &m.tunnel_channels_refused), 3);
    assert_eq!(running.get(|m| &m.tunnel_channels_failed), 1);

    // Several channels at once.
    let (a, b) = tokio::join!(open(&forward, "echo", echo), open(&forward, "echo", echo));
    let (a, b) = (a.expect("a"), b.expect("b"));
    let medium = payload(70_000);
    tokio::join!(round_trip(a, b"first"), round_trip(b, &medium));

    let text = running.metrics.render();
    assert!(text.contains("outpost_agent_tunnel_up 1"), "{text}");
    assert!(
        text.contains("outpost_agent_tunnel_channels_total{result=\"accepted\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("outpost_agent_tunnel_channels_total{result=\"refused\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("outpost_agent_tunnel_channels_total{result=\"failed\"} 1"),
        "{text}"
    );
    assert_eq!(relay.seen.auth_refused.load(Ordering::SeqCst), 0);

    running.stop().await;
}

#[tokio::test]
async fn data_flows_across_rekeying() {
    let echo = start_echo().await;
    // The relay asks for a new key exchange every 32 KiB each way, so a
    // 1 MiB round trip crosses dozens of them, in both directions.
    let (relay, running, forward) = tunnel_with(
        russh::Limits::new(32 * 1024, 32 * 1024, PATIENCE),
        tunnel_protocol::FLOW_CREDIT_VERSION,
        vec![target("echo", &[echo])],
    )
    .await;
    wait_until("the tunnel is up", || running.get(|m| &m.tunnel_up) == 1).await;
    let big = payload(1024 * 1024);
    round_trip(open(&forward, "echo", echo).await.expect("accepted"), &big).await;
    round_trip(
        open(&forward, "echo", echo).await.expect("accepted"),
        b"after",
    )
    .await;
    // Still the first connection: rekeying never cost the tunnel.
    assert_eq!(running.get(|m| &m.tunnel_connects), 1);
    assert_eq!(relay.seen.connections.load(Ordering::SeqCst), 1);
    running.stop().await;
}

#[tokio::test]
async fn other_channel_types_are_refused() {
    let echo = start_echo().await;
    let relay_agent = AgentId::new(None);
    let mut relay = start_relay(&relay_agent).await;
    // The host key from the identity, as after enrolment.
    let agent = AgentId {
        identity: Identity {
            ssh_host_key: Some(format!("{} relay@test", relay.host_key)),
            ..relay_agent.identity.clone()
        },
        key: relay_agent.key.clone(),
    };
    let running = start_tunnel(
        &agent,
        tunnel_config(relay.addr, None, vec![target("echo", &[echo])]),
    );
    let forward = relay.next_forward().await;

    // (e) A session channel, direct-tcpip (even to an allowed target),
    // agent forwarding, X11 and streamlocal are all refused.
    assert!(forward.handle.channel_open_session().await.is_err());
    assert!(forward
        .handle
        .channel_open_direct_tcpip("127.0.0.1", u32::from(echo), "198.51.100.7", 1)
        .await
        .is_err());
    assert!(forward.handle.channel_open_agent().await.is_err());
    assert!(forward
        .handle
        .channel_open_x11("198.51.100.7", 6010)
        .await
        .is_err());
    assert!(forward
        .handle
        .channel_open_direct_streamlocal("/run/snmpd.sock")
        .await
        .is_err());
    assert_eq!(running.get(|m| &m.tunnel_channels_refused), 5);
    assert_eq!(running.get(|m| &m.tunnel_channels_accepted), 0);

    // The connection is still up and forwarding works.
    round_trip(
        open(&forward, "echo", echo).await.expect("accepted"),
        b"still up",
    )
    .await;
    assert_eq!(running.get(|m| &m.tunnel_connects), 1);
    running.stop().await;
}

#[tokio::test]
async fn a_wrong_host_key_is_refused() {
    let agent = AgentId::new(None);
    let relay = start_relay(&agent).await;
    let impostor = openssh_text(keypair(random_seed()).public_key());
    let agent = AgentId {
        identity: Identity {
            ssh_host_key: Some(impostor),
            ..agent.identity
        },
        key: agent.key,
    };
    // The configuration's key is the right one, but the identity's wins.
    let running = start_tunnel(
        &agent,
        tunnel_config(
            relay.addr,
            Some(relay.host_key.clone()),
            vec![target("echo", &[22])],
        ),
    );
    // (c) The agent connects, refuses the key, backs off and tries again,
    // never authenticating.
    wait_until("the agent tried twice", || {
        relay.seen.connections.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(relay.seen.auth_attempts.load(Ordering::SeqCst), 0);
    assert_eq!(running.get(|m| &m.tunnel_connects), 0);
    assert_eq!(running.get(|m| &m.tunnel_up), 0);
    running.stop().await;
}

#[tokio::test]
async fn the_agent_reconnects_after_the_relay_drops_it() {
    let echo = start_echo().await;
    let agent = AgentId::new(None);
    let mut relay = start_relay(&agent).await;
    let agent = AgentId {
        identity: Identity {
            ssh_host_key: Some(relay.host_key.clone()),
            ..agent.identity
        },
        key: agent.key,
    };
    let running = start_tunnel(
        &agent,
        tunnel_config(relay.addr, None, vec![target("echo", &[echo])]),
    );
    let first = relay.next_forward().await;
    round_trip(
        open(&first, "echo", echo).await.expect("accepted"),
        b"before",
    )
    .await;

    // (d) The relay drops the connection; the agent comes back by itself.
    first
        .handle
        .disconnect(
            Disconnect::ByApplication,
            "relay restarting".into(),
            String::new(),
        )
        .await
        .expect("disconnect");
    let second = relay.next_forward().await;
    assert!(relay.seen.connections.load(Ordering::SeqCst) >= 2);
    wait_until("the agent counts the second connection", || {
        running.get(|m| &m.tunnel_connects) == 2
    })
    .await;
    assert_eq!(running.get(|m| &m.tunnel_up), 1);
    round_trip(
        open(&second, "echo", echo).await.expect("accepted"),
        b"after",
    )
    .await;
    running.stop().await;
}

#[tokio::test]
async fn a_reload_changes_the_targets_of_new_channels_only() {
    let echo = start_echo().await;
    let agent = AgentId::new(None);
    let mut relay = start_relay(&agent).await;
    let config = tunnel_config(
        relay.addr,
        Some(relay.host_key.clone()),
        vec![target("old", &[echo])],
    );
    let running = start_tunnel(&agent, config.clone());
    let forward = relay.next_forward().await;

    // A channel open across the reload keeps working.
    let open_before = open(&forward, "old", echo).await.expect("accepted");
    running.config.send_replace(Arc::new(TunnelConfig {
        targets: vec![target("new", &[echo])],
        ..config.clone()
    }));
    // The handler reads the targets for each new channel: no delay.
    let accepted = open(&forward, "new", echo)
        .await
        .expect("the new target is allowed");
    tokio::join!(
        round_trip(open_before, b"opened before the reload"),
        round_trip(accepted, b"opened after the reload"),
    );
    assert!(open(&forward, "old", echo).await.is_err());
    // Same connection throughout.
    assert_eq!(running.get(|m| &m.tunnel_connects), 1);

    // Another keepalive: the tunnel reconnects at once.
    let config = TunnelConfig {
        keepalive: Duration::from_secs(20),
        targets: vec![target("new", &[echo])],
        ..config
    };
    running.config.send_replace(Arc::new(config.clone()));
    let forward = relay.next_forward().await;
    wait_until("the agent counts the new connection", || {
        running.get(|m| &m.tunnel_connects) == 2
    })
    .await;
    round_trip(
        open(&forward, "new", echo).await.expect("accepted"),
        b"again",
    )
    .await;

    // No targets: the tunnel closes and stays closed.
    running.config.send_replace(Arc::new(TunnelConfig {
        targets: Vec::new(),
        ..config
    }));
    wait_until("the tunnel is down", || running.get(|m| &m.tunnel_up) == 0).await;
    assert!(relay.forwards.try_recv().is_err());
    running.stop().await;
}

#[tokio::test]
async fn without_a_host_key_the_agent_waits_for_one() {
    let echo = start_echo().await;
    let agent = AgentId::new(None);
    let mut relay = start_relay(&agent).await;
    let config = tunnel_config(relay.addr, None, vec![target("echo", &[echo])]);
    let running = start_tunnel(&agent, config.clone());
    // Neither the identity nor the configuration knows the relay's key:
    // the agent does not connect (it logs an error and waits).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(relay.seen.connections.load(Ordering::SeqCst), 0);
    // A reload that sets tunnel.host_key brings the tunnel up.
    running.config.send_replace(Arc::new(TunnelConfig {
        host_key: Some(relay.host_key.clone()),
        ..config
    }));
    let forward = relay.next_forward().await;
    round_trip(
        open(&forward, "echo", echo).await.expect("accepted"),
        b"hello",
    )
    .await;
    running.stop().await;
}

/// A TCP target that accepts and reads nothing until told to; then it
/// reads everything and reports the byte count.
async fn start_sink() -> (u16, watch::Sender<bool>, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let port = listener.local_addr().expect("addr").port();
    let (read_now, read_rx) = watch::channel(false);
    let (counts_tx, counts) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut read_rx = read_rx.clone();
            let counts_tx = counts_tx.clone();
            tokio::spawn(async move {
                let _ = read_rx.wait_for(|go| *go).await;
                let mut sink = tokio::io::sink();
                let n = tokio::io::copy(&mut stream, &mut sink).await.unwrap_or(0);
                let _ = counts_tx.send(n as usize);
            });
        }
    });
    (port, read_now, counts)
}

/// A relay, the agent's tunnel to it with `targets`, and its connection.
async fn tunnel_to(targets: Vec<TunnelTarget>) -> (Relay, Running, Forward) {
    tunnel_with(
        russh::Limits::default(),
        tunnel_protocol::FLOW_CREDIT_VERSION,
        targets,
    )
    .await
}

/// The same, the relay rekeying after `limits` and answering the
/// forwarding request with `answer`.
async fn tunnel_with(
    limits: russh::Limits,
    answer: u32,
    targets: Vec<TunnelTarget>,
) -> (Relay, Running, Forward) {
    let agent = AgentId::new(None);
    let mut relay = start_relay_answering(&agent, limits, answer).await;
    let running = start_tunnel(
        &agent,
        tunnel_config(relay.addr, Some(relay.host_key.clone()), targets),
    );
    let forward = relay.next_forward().await;
    (relay, running, forward)
}

#[tokio::test]
async fn a_target_that_stops_reading_holds_up_its_own_channel_only() {
    let echo = start_echo().await;
    let (sink, read_now, mut sunk) = start_sink().await;
    let (_relay, running, forward) =
        tunnel_to(vec![target("echo", &[echo]), target("sink", &[sink])]).await;
    // Channel A: far more than the window and every socket buffer, to a
    // target that reads nothing yet.
    const SENT: usize = 32 << 20;
    let (_a_rx, a_tx) = flow::start(open(&forward, "sink", sink).await.expect("accepted"));
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let chunk = payload(64 << 10);
            while sent.load(Ordering::SeqCst) < SENT {
                a_tx.send(chunk.clone()).await.expect("send to the sink");
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            a_tx.eof().await.expect("eof");
            a_tx
        })
    };
    // Wait until A is held back: no progress for half a second.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sent.load(Ordering::SeqCst);
        assert!(now < SENT, "channel A was never held back");
        if now == last {
            break;
        }
        last = now;
    }
    // Channel B, on the same connection, carries more than a window both
    // ways meanwhile.
    let big = payload(4 << 20);
    round_trip(open(&forward, "echo", echo).await.expect("accepted"), &big).await;
    assert_eq!(sent.load(Ordering::SeqCst), last, "A stays held back");
    // When the sink reads, A delivers every byte: nothing was cut or lost.
    read_now.send(true).expect("sink");
    let a_tx = tokio::time::timeout(PATIENCE, sender)
        .await
        .expect("A finishes once the target reads")
        .expect("sender");
    let got = tokio::time::timeout(PATIENCE, sunk.recv())
        .await
        .expect("the sink finishes")
        .expect("count");
    assert_eq!(got, SENT);
    a_tx.close().await;
    assert_eq!(running.get(|m| &m.tunnel_connects), 1);
    running.stop().await;
}

#[tokio::test]
async fn a_relay_that_overruns_its_credit_loses_that_channel_only() {
    let echo = start_echo().await;
    let (sink, _read_now, _sunk) = start_sink().await;
    let (_relay, running, forward) =
        tunnel_to(vec![target("echo", &[echo]), target("sink", &[sink])]).await;
    // A relay that ignores the credit: raw data, far beyond the window,
    // to a target that reads nothing.
    let channel = open(&forward, "sink", sink).await.expect("accepted");
    let (mut rx, tx) = channel.split();
    let flood = tokio::spawn(async move {
        let chunk = payload(64 << 10);
        for _ in 0..512 {
            if tx.data(&chunk[..]).await.is_err() {
                break;
            }
        }
        tx
    });
    // The agent closes that channel.
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.wait().await {
                Some(russh::ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the agent closes an overrun channel");
    flood.abort();
    // The connection and the other channels go on.
    round_trip(
        open(&forward, "echo", echo).await.expect("accepted"),
        &payload(2 << 20),
    )
    .await;
    assert_eq!(running.get(|m| &m.tunnel_connects), 1);
    running.stop().await;
}

#[tokio::test]
async fn a_relay_without_flow_credit_is_left() {
    let echo = start_echo().await;
    // An older relay: it answers the forwarding request with port 0.
    let (mut relay, running, first) =
        tunnel_with(russh::Limits::default(), 0, vec![target("echo", &[echo])]).await;
    // The agent leaves, and tries again later.
    let _second = relay.next_forward().await;
    assert!(
        open(&first, "echo", echo).await.is_err(),
        "the first connection is gone"
    );
    assert_eq!(running.get(|m| &m.tunnel_up), 0);
    assert_eq!(running.get(|m| &m.tunnel_connects), 0);
    running.stop().await;
}
