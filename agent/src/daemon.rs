//! The `run` command: the agent daemon.
//!
//! Tasks on one single-threaded tokio runtime:
//!
//! * **heartbeat** every `heartbeat_interval_secs` (from enrolment), sent
//!   directly (not spooled), with the spool depth;
//! * **poll**: every `snmp.interval`, all targets with bounded concurrency
//!   ([`poll_targets_each`]), each poll → [`Detector`] as it completes →
//!   fault events → spool; the detector state saved once per round; inventory
//!   (host facts and each device) when it changed, and LLDP topology when it
//!   changed → spool;
//! * **host**: a health sample every `host.interval` → detector;
//! * **tick**: the detector's timers (hold-downs, flap windows) every second;
//! * **sender**: drains the spool in batches of at most `MAX_BATCH`, with
//!   exponential back-off (1 s to 60 s) while the server is unreachable;
//! * **metrics** on `[metrics] listen`, if set;
//! * **tunnel**: the reverse SSH tunnel to the server's relay
//!   ([`crate::tunnel`]), idle while `[[tunnel.targets]]` is empty;
//! * **update** (with `[update] enabled`): asks for a release every
//!   `check_interval` ([`crate::update`]); once one is installed the daemon
//!   stops as on SIGTERM and hands over to it under the update guard. A
//!   binary on trial marks itself healthy when the server accepts its first
//!   heartbeat, which carries its version and the clock skew. A heartbeat
//!   answer whose hints name another newest release than the last one seen
//!   wakes the check at once;
//! * **jobs** (with `[jobs] enabled`, not in a binary on trial): resumes the
//!   upgrade jobs a previous process left, then asks for jobs
//!   (`POST /api/v1/agent/jobs`) every `jobs.poll_interval`, and at once
//!   when a heartbeat answer's hints say jobs wait; each job runs in a task
//!   of its own ([`crate::jobs`]), its reports spooled like faults.
//!
//! Fault events are appended to the spool (fsynced) *before* the detector
//! state that produced them is saved, so a crash between the two can only
//! repeat an event, never lose one.
//!
//! SIGHUP reloads the configuration (targets, intervals, thresholds; the
//! server, identity and spool stay); a bad file is logged and the old
//! configuration kept. The tunnel takes new `[[tunnel.targets]]` for new
//! channels (open ones stay) and reconnects if `relay`, `keepalive` or
//! `host_key` changed. SIGTERM or ctrl-c stop the daemon cleanly.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use outpost_protocol::{
    AgentMessage, DeviceInventory, FaultEvent, Heartbeat, HostFacts, Inventory, JobList, JobQuery,
    LldpLink, OutcomeStatus, Topology, JOBS_PATH, MAX_BATCH, PROTOCOL_VERSION,
};
use tokio::sync::{watch, Notify};

use crate::collect::host;
use crate::config::{AgentConfig, TunnelConfig};
use crate::detect::{Detector, Observation};
use crate::identity::Identity;
use crate::jobs::{Reporter, Runner, Scheduler};
use crate::metrics::{self, Metrics};
use crate::snmp::poll::poll_targets_each;
use crate::spool::{RecordKind, Spool, SpoolOptions};
use crate::update::{Checked, Pending, Updater};
use crate::uplink::Uplink;

/// Most payload bytes in one batch sent to the server (whose agent endpoint takes
/// bodies up to 16 MiB; a single record is always sent, even if larger).
const MAX_BATCH_BYTES: usize = 768 * 1024;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

struct Shared {
    config_path: PathBuf,
    config: RwLock<Arc<AgentConfig>>,
    identity: Identity,
    uplink: Arc<Uplink>,
    /// Lock order: detector, then spool.
    detector: Mutex<Detector>,
    spool: Mutex<Spool>,
    state_file: PathBuf,
    hostname: String,
    metrics: Arc<Metrics>,
    spooled: Notify,
    started: Instant,
    /// The `[tunnel]` section the tunnel task follows.
    tunnel: watch::Sender<Arc<TunnelConfig>>,
    /// Self-update, when `[update]` is on.
    updater: Option<Updater>,
    /// A release installed by the update task: the daemon stops and hands
    /// over to it ([`crate::update::guard`]).
    installed: Mutex<Option<Pending>>,
    /// Poked when `installed` is set.
    hand_over: Notify,
    /// Wakes the update task (a heartbeat hint named a new release).
    update_wake: Notify,
    /// Wakes the jobs task (a heartbeat hint said jobs wait).
    jobs_wake: Notify,
    /// The upgrade jobs in flight, once the jobs task runs.
    upgrading: std::sync::OnceLock<crate::jobs::InFlight>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here (every
    // mutation is complete before it can panic), so carry on.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn config(&self) -> Arc<AgentConfig> {
        Arc::clone(
            &self
                .config
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Feeds observations to the detector, spools the events, then saves
    /// the detector's state.
    fn detect(&self, observations: Vec<Observation>) {
        let mut detector = lock(&self.detector);
        let mut events = Vec::new();
        for observation in observations {
            events.extend(detector.observe(observation));
        }
        events.extend(detector.tick(Utc::now()));
        self.commit(&mut detector, events);
    }

    /// Feeds one observation to the detector and spools the events it
    /// causes at once, but leaves saving the detector's state to the next
    /// [`Shared::detect`] or tick (the poller calls `detect` after each
    /// round). Events are still spooled before any save of the state that
    /// produced them, so a crash can only repeat an event, never lose one.
    fn observe(&self, observation: Observation) {
        let mut detector = lock(&self.detector);
        let events = detector.observe(observation);
        if !events.is_empty() {
            self.commit(&mut detector, events);
        }
    }

    fn commit(&self, detector: &mut Detector, events: Vec<FaultEvent>) {
        if !events.is_empty() {
            for event in &events {
                tracing::info!(
                    fault = %event.fault_key,
                    transition = ?event.transition,
                    severity = ?event.severity,
                    summary = %event.summary,
                    "fault"
                );
            }
            let messages: Vec<AgentMessage> = events.into_iter().map(AgentMessage::Fault).collect();
            if let Err(err) = self.spool_messages(&messages, RecordKind::Fault) {
                // Keep the detector state unsaved: after a restart the
                // faults are detected again rather than lost.
                tracing::error!(error = %err, "cannot spool fault events");
                return;
            }
        }
        self.metrics
            .faults_open
            .store(detector.open_faults() as u64, Ordering::Relaxed);
        if detector.is_dirty() {
            if let Err(err) = detector.save(&self.state_file) {
                tracing::error!(error = %format!("{err:#}"), "cannot save the detector state");
            }
        }
    }

    fn spool_messages(&self, messages: &[AgentMessage], kind: RecordKind) -> Result<()> {
        let encoded: Vec<Vec<u8>> = messages
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()
            .context("encoding messages")?;
        let records: Vec<(RecordKind, &[u8])> = encoded.iter().map(|e| (kind, &e[..])).collect();
        let mut spool = lock(&self.spool);
        spool.append(&records).context("appending to the spool")?;
        self.update_spool_metrics(&spool);
        drop(spool);
        self.spooled.notify_one();
        Ok(())
    }

    fn update_spool_metrics(&self, spool: &Spool) {
        self.metrics
            .spool_records
            .store(spool.len(), Ordering::Relaxed);
        self.metrics
            .spool_bytes
            .store(spool.disk_bytes(), Ordering::Relaxed);
    }
}

/// Runs the daemon until SIGTERM or ctrl-c.
pub async fn run(config_path: &Path) -> Result<()> {
    let config = AgentConfig::load(config_path).context("invalid configuration")?;
    let (identity, key) = Identity::load(&config.server.identity_dir)?;
    if identity.server_url.trim_end_matches('/') != config.server.url.trim_end_matches('/') {
        tracing::warn!(
            enrolled = %identity.server_url,
            configured = %config.server.url,
            "server.url differs from the server the agent enrolled with; using the configured one"
        );
    }
    // The same key authenticates the tunnel to the relay.
    let tunnel_key = key.clone();
    let uplink = Arc::new(Uplink::new(
        &config.server.url,
        identity.server_tls_pin_sha256.as_deref(),
        identity.agent_id,
        key,
    )?);
    // Upgrade jobs: their keys and directory are fixed for the process.
    let jobs = if config.jobs.enabled && std::env::var_os(crate::update::TRIAL_ENV).is_none() {
        let keys = config
            .jobs
            .keys(&config.update)
            .map_err(anyhow::Error::msg)
            .context("[jobs]")?;
        Some((config.jobs_dir(), keys))
    } else {
        None
    };
    // An update a previous process left is finished first (before the spool
    // is opened): reported, or (a trial nobody watched) watched by this
    // process, which then becomes the binary that stays.
    let updater = Updater::new(&config, config_path, identity.agent_id).context("[update]")?;
    let update_reports = match &updater {
        Some(u) => u.on_start().unwrap_or_else(|err| {
            tracing::error!(error = %format!("{err:#}"), "cannot finish the last self-update");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let spool_dir = config.spool_dir();
    let spool = Spool::open(
        &spool_dir,
        SpoolOptions::with_max_bytes(config.spool.max_bytes),
    )
    .with_context(|| format!("opening the spool in {}", spool_dir.display()))?;
    let state_file = config.detector_state_file();
    let detector = Detector::load(&state_file, config.detect.clone(), identity.agent_id)?;
    let hostname = host::hostname().replace('/', "_");
    let metrics = Arc::new(Metrics::default());
    let (tunnel_tx, tunnel_rx) = watch::channel(Arc::new(config.tunnel.clone()));
    let shared = Arc::new(Shared {
        config_path: config_path.to_owned(),
        config: RwLock::new(Arc::new(config.clone())),
        identity,
        uplink,
        detector: Mutex::new(detector),
        spool: Mutex::new(spool),
        state_file,
        hostname,
        metrics: Arc::clone(&metrics),
        spooled: Notify::new(),
        started: Instant::now(),
        tunnel: tunnel_tx,
        updater,
        installed: Mutex::new(None),
        hand_over: Notify::new(),
        update_wake: Notify::new(),
        jobs_wake: Notify::new(),
        upgrading: std::sync::OnceLock::new(),
    });
    if !update_reports.is_empty() {
        let messages: Vec<AgentMessage> = update_reports
            .into_iter()
            .map(AgentMessage::Update)
            .collect();
        // Spooled like faults: kept until the server has them.
        shared
            .spool_messages(&messages, RecordKind::Fault)
            .context("spooling the self-update report")?;
    }
    {
        let open_faults = lock(&shared.detector).open_faults();
        let spool = lock(&shared.spool);
        shared.update_spool_metrics(&spool);
        tracing::info!(
            agent_id = %shared.identity.agent_id,
            server = %config.server.url,
            spooled = spool.len(),
            open_faults,
            targets = config.snmp.targets.len(),
            tunnel_targets = config.tunnel.targets.len(),
            "outpost-agent running"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listen) = config.metrics.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("metrics.listen {listen}"))?;
        tasks.spawn(abort_on_stop(
            stop_rx.clone(),
            metrics::serve(listener, metrics),
        ));
    }
    tasks.spawn(sender(Arc::clone(&shared), stop_rx.clone()));
    tasks.spawn(heartbeat(Arc::clone(&shared), stop_rx.clone()));
    tasks.spawn(poller(Arc::clone(&shared), stop_rx.clone()));
    tasks.spawn(host_sampler(Arc::clone(&shared), stop_rx.clone()));
    tasks.spawn(ticker(Arc::clone(&shared), stop_rx.clone()));
    if shared.updater.is_some() && std::env::var_os(crate::update::TRIAL_ENV).is_none() {
        tasks.spawn(updater_task(Arc::clone(&shared), stop_rx.clone()));
    }
    if let Some((dir, keys)) = jobs {
        // Weak: job tasks must not keep the spool open past the daemon.
        let weak = Arc::downgrade(&shared);
        let reporter: Reporter = Arc::new(move |report| {
            let shared = weak
                .upgrade()
                .context("the agent is stopping; the report is not spooled")?;
            shared.spool_messages(&[AgentMessage::Job(report)], RecordKind::Fault)
        });
        let scheduler = Scheduler::new(
            Runner {
                dir,
                keys,
                agent_id: shared.identity.agent_id,
                reporter,
            },
            Arc::clone(&shared.uplink),
            config.jobs.concurrency,
        );
        let _ = shared.upgrading.set(scheduler.in_flight());
        tasks.spawn(jobs_task(Arc::clone(&shared), scheduler, stop_rx.clone()));
    }
    tasks.spawn(crate::tunnel::run(
        tunnel_rx,
        shared.identity.clone(),
        tunnel_key,
        Arc::clone(&shared.metrics),
        stop_rx.clone(),
    ));
    if let Some(traps) = &config.traps {
        let receiver = crate::snmp::trap::TrapReceiver::bind(traps)
            .await
            .context("[traps]")?;
        tracing::info!(listen = %receiver.local_addr(), "receiving SNMP traps and informs");
        tasks.spawn(trap_listener(
            Arc::clone(&shared),
            receiver,
            stop_rx.clone(),
        ));
    }

    signals(&shared).await?;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    {
        let mut detector = lock(&shared.detector);
        if detector.is_dirty() {
            detector.save(&shared.state_file)?;
        }
    }
    let installed = lock(&shared.installed).take();
    if let (Some(pending), Some(updater)) = (installed, shared.updater.clone()) {
        // Close the spool and everything else before the new binary opens them.
        drop(shared);
        match crate::update::guard::hand_over(&updater, &pending)? {}
    }
    Ok(())
}

/// Asks the server for a release every `update.check_interval` (first a few
/// seconds after start); installs it and asks the daemon to hand over.
async fn updater_task(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Some(updater) = shared.updater.clone() else {
        return;
    };
    let mut wait = Duration::from_secs(2);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.update_wake.notified() => {
                tracing::info!("a new release was published; checking for a self-update now");
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = shared.config().update.check_interval;
        let mut reports = Vec::new();
        let checked = tokio::select! {
            c = updater.check(&shared.uplink, &mut reports) => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        if !reports.is_empty() {
            let messages: Vec<AgentMessage> =
                reports.into_iter().map(AgentMessage::Update).collect();
            if let Err(err) = shared.spool_messages(&messages, RecordKind::Fault) {
                tracing::error!(error = %format!("{err:#}"), "cannot spool a self-update report");
            }
        }
        match checked {
            Ok(Checked::Nothing) => {}
            Ok(Checked::Installed(pending)) => {
                *lock(&shared.installed) = Some(pending);
                shared.hand_over.notify_one();
                return;
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "self-update check failed; retrying later");
            }
        }
    }
}

/// Resumes unfinished upgrade jobs, then asks the server for jobs every
/// `jobs.poll_interval` (first a few seconds after start), and at once when
/// a heartbeat hint says jobs wait.
async fn jobs_task(shared: Arc<Shared>, scheduler: Scheduler, mut stop: watch::Receiver<bool>) {
    scheduler.resume(shared.config());
    let mut wait = Duration::from_secs(2);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.jobs_wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let config = shared.config();
        wait = config.jobs.poll_interval;
        if !config.jobs.enabled {
            // Turned off by a reload: running jobs finish, no new ones.
            continue;
        }
        let query = JobQuery {
            protocol_version: PROTOCOL_VERSION,
        };
        let asked = tokio::select! {
            asked = shared.uplink.post_json::<JobList>(JOBS_PATH, &query) => asked,
            _ = stop.wait_for(|s| *s) => return,
        };
        match asked {
            Ok(list) => {
                if !list.jobs.is_empty() {
                    tracing::info!(jobs = list.jobs.len(), "upgrade jobs from the server");
                }
                scheduler.offer(list.jobs, config);
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask the server for upgrade jobs; retrying later")
            }
        }
    }
}

/// The target a trap came from: the first configured target whose address
/// has the sender's IP (UDP source ports are ephemeral), else `trap-<ip>`.
fn trap_device(config: &AgentConfig, source: std::net::SocketAddr) -> String {
    use std::net::ToSocketAddrs;
    config
        .snmp
        .targets
        .iter()
        .find(|t| {
            // "host:port", "[v6]:port", or a bare host (port 161).
            let resolved = t
                .address
                .to_socket_addrs()
                .or_else(|_| (t.address.as_str(), 161).to_socket_addrs());
            resolved
                .map(|mut a| a.any(|a| a.ip() == source.ip()))
                .unwrap_or(false)
        })
        .map(|t| t.name.clone())
        .unwrap_or_else(|| format!("trap-{}", source.ip()).replace([':', '/'], "_"))
}

/// Feeds accepted traps and informs to the detector.
async fn trap_listener(
    shared: Arc<Shared>,
    mut receiver: crate::snmp::trap::TrapReceiver,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let trap = tokio::select! {
            t = receiver.next() => t,
            _ = stop.wait_for(|s| *s) => return,
        };
        match trap {
            Ok(t) => {
                let device = trap_device(&shared.config(), t.source);
                tracing::debug!(device, trap = %t.trap_oid, source = %t.source, "trap received");
                shared.detect(vec![Observation::Trap {
                    device,
                    trap_oid: t.trap_oid,
                    varbinds: t.varbinds,
                    at: t.received_at,
                }]);
            }
            Err(e) => {
                tracing::error!(error = %e, "the trap receiver stopped");
                return;
            }
        }
    }
}

/// Waits for SIGTERM or ctrl-c, reloading the configuration on SIGHUP.
async fn signals(shared: &Shared) -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        loop {
            tokio::select! {
                _ = hup.recv() => reload(shared),
                _ = term.recv() => return Ok(()),
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = shared.hand_over.notified() => {
                    tracing::info!("stopping to hand over to the new release");
                    return Ok(());
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for ctrl-c"),
            _ = shared.hand_over.notified() => Ok(()),
        }
    }
}

fn reload(shared: &Shared) {
    let config = match AgentConfig::load(&shared.config_path) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "SIGHUP: the configuration is invalid; keeping the old one");
            return;
        }
    };
    let old = shared.config();
    if config.server.url != old.server.url
        || config.server.identity_dir != old.server.identity_dir
        || config.spool_dir() != old.spool_dir()
        || config.spool.max_bytes != old.spool.max_bytes
        || config.metrics.listen != old.metrics.listen
        || config.detector_state_file() != old.detector_state_file()
        || config.jobs.enabled != old.jobs.enabled
        || config.jobs_dir() != old.jobs_dir()
        || config.jobs.trusted_keys != old.jobs.trusted_keys
        || config.jobs.concurrency != old.jobs.concurrency
    {
        tracing::warn!("SIGHUP: changes to [server], [spool], [metrics] and detect.state_file take effect at the next start, and so do jobs.enabled, dir, trusted_keys and concurrency");
    }
    let targets: HashSet<String> = config.snmp.targets.iter().map(|t| t.name.clone()).collect();
    {
        let mut detector = lock(&shared.detector);
        detector.set_config(config.detect.clone());
        let events = detector.retain_devices(&targets, &shared.hostname, Utc::now());
        shared.commit(&mut detector, events);
    }
    // The tunnel picks up its section itself (see `crate::tunnel::run`).
    shared.tunnel.send_if_modified(|current| {
        let changed = **current != config.tunnel;
        if changed {
            *current = Arc::new(config.tunnel.clone());
        }
        changed
    });
    tracing::info!(
        targets = targets.len(),
        tunnel_targets = config.tunnel.targets.len(),
        "SIGHUP: configuration reloaded"
    );
    *shared
        .config
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
}

async fn abort_on_stop(
    mut stop: watch::Receiver<bool>,
    task: impl std::future::Future<Output = ()>,
) {
    tokio::select! {
        _ = task => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Sleeps for `duration`; `false` if asked to stop meanwhile.
async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

async fn sender(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        let peeked = {
            let mut spool = lock(&shared.spool);
            spool.peek(MAX_BATCH, MAX_BATCH_BYTES)
        };
        let peeked = match peeked {
            Ok(peeked) => peeked,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the spool");
                if !sleep_or_stop(BACKOFF_MAX, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        if peeked.records.is_empty() {
            tokio::select! {
                _ = shared.spooled.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        }
        let payloads: Vec<&[u8]> = peeked.records.iter().map(|r| &r.payload[..]).collect();
        let sent = tokio::select! {
            sent = shared.uplink.send_batch(&payloads) => sent,
            _ = stop.wait_for(|s| *s) => return,
        };
        match sent {
            Ok(result) => {
                shared.metrics.up.store(1, Ordering::Relaxed);
                backoff = BACKOFF_MIN;
                for (outcome, record) in result.results.iter().zip(&peeked.records) {
                    if outcome.status == OutcomeStatus::Rejected {
                        tracing::warn!(
                            detail = outcome.detail.as_deref().unwrap_or(""),
                            message = %String::from_utf8_lossy(&record.payload[..record.payload.len().min(300)]),
                            "the server rejected a message; dropped"
                        );
                    }
                }
                let mut spool = lock(&shared.spool);
                match spool.ack(&peeked.ack_first(result.results.len())) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::debug!("spool compacted while sending; the batch will be resent")
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot record the acknowledgement in the spool")
                    }
                }
                shared.update_spool_metrics(&spool);
            }
            Err(err) => {
                shared.metrics.up.store(0, Ordering::Relaxed);
                shared.metrics.uplink_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    error = %err,
                    retry_in = ?backoff,
                    spooled = peeked.records.len(),
                    "cannot deliver to the server; kept in the spool"
                );
                if !sleep_or_stop(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn heartbeat(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs(u64::from(shared.identity.heartbeat_interval_secs.max(1)));
    // The newest release id of the last hint, to notice a new one.
    let mut last_release: Option<i64> = None;
    loop {
        let heartbeat = Heartbeat {
            protocol_version: PROTOCOL_VERSION,
            agent_id: shared.identity.agent_id,
            sent_at: Utc::now(),
            agent_version: crate::version::current(),
            uptime_secs: shared.started.elapsed().as_secs(),
            spool_depth: lock(&shared.spool).len(),
            clock_skew_secs: shared.uplink.clock_skew_secs(),
        };
        let message = AgentMessage::Heartbeat(heartbeat);
        let sent = tokio::select! {
            sent = shared.uplink.send_message(&message) => sent,
            _ = stop.wait_for(|s| *s) => return,
        };
        match sent {
            Ok((outcome, _)) if outcome.status == OutcomeStatus::Rejected => {
                tracing::warn!(
                    detail = outcome.detail.as_deref().unwrap_or(""),
                    "the server rejected a heartbeat"
                );
            }
            Ok((_, hints)) => {
                shared.metrics.up.store(1, Ordering::Relaxed);
                if let Some(hints) = hints {
                    if hints.jobs > 0 {
                        shared.jobs_wake.notify_one();
                    }
                    if let Some(release) = hints.release {
                        if last_release.is_some_and(|last| last != release) {
                            shared.update_wake.notify_one();
                        }
                        last_release = Some(release);
                    }
                }
                // A binary on trial is healthy once the server takes its
                // heartbeat (which carries its version).
                if let Some(updater) = &shared.updater {
                    if let Err(err) = updater.mark_healthy() {
                        tracing::error!(error = %format!("{err:#}"), "cannot report health to the update guard");
                    }
                }
            }
            Err(err) => {
                shared.metrics.up.store(0, Ordering::Relaxed);
                shared.metrics.uplink_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %err, "heartbeat not delivered");
            }
        }
        if !sleep_or_stop(interval, &mut stop).await {
            return;
        }
    }
}

/// What was last sent to the server, to send inventory and topology only
/// when they change.
#[derive(Default)]
struct Reported {
    devices: HashMap<String, DeviceInventory>,
    links: HashMap<String, Vec<LldpLink>>,
    inventory: Option<(HostFacts, Vec<DeviceInventory>)>,
    topology: Option<Vec<LldpLink>>,
}

async fn poller(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut reported = Reported::default();
    loop {
        let config = shared.config();
        let started = Instant::now();
        let names: HashSet<&str> = config
            .snmp
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        reported
            .devices
            .retain(|name, _| names.contains(name.as_str()));
        reported
            .links
            .retain(|name, _| names.contains(name.as_str()));
        // Each poll goes to the detector as soon as it completes, so only the
        // polls in flight are held in memory, not a whole round's.
        let polled = poll_targets_each(
            &config.snmp.targets,
            config.snmp.concurrency,
            |_, outcome| {
                let device = outcome.target.name.clone();
                let observation = match outcome.result {
                    Ok(poll) => {
                        shared.metrics.polls_ok.fetch_add(1, Ordering::Relaxed);
                        for warning in &poll.warnings {
                            tracing::debug!(device, warning, "poll warning");
                        }
                        reported
                            .devices
                            .insert(device.clone(), poll.inventory.clone());
                        reported.links.insert(device.clone(), links(&device, &poll));
                        Observation::Poll {
                            device,
                            poll: Box::new(poll),
                        }
                    }
                    Err(err) => {
                        shared.metrics.polls_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(device, error = %err, "poll failed");
                        // Reloaded by an upgrade job: planned downtime, no
                        // fault (the job itself reports a device that does
                        // not come back).
                        if shared
                            .upgrading
                            .get()
                            .is_some_and(|f| crate::jobs::upgrading(f, &device))
                        {
                            return;
                        }
                        Observation::PollFailed {
                            device,
                            error: err.to_string(),
                            at: Utc::now(),
                        }
                    }
                };
                shared.observe(observation);
            },
        );
        tokio::select! {
            () = polled => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Timers due by now, and the detector's state saved once per round.
        shared.detect(Vec::new());
        report_inventory(&shared, &mut reported).await;
        let wait = config.snmp.interval.saturating_sub(started.elapsed());
        if !sleep_or_stop(wait, &mut stop).await {
            return;
        }
    }
}

fn links(device: &str, poll: &crate::snmp::DevicePoll) -> Vec<LldpLink> {
    poll.neighbours
        .iter()
        .map(|n| LldpLink {
            device: device.to_owned(),
            // As fault keys name it, so that the diagram can mark the
            // link a fault is on.
            local_port: n.port_name(&poll.interfaces),
            remote_chassis_id: n.remote_chassis_id.clone(),
            remote_sys_name: n.remote_sys_name.clone(),
            remote_port: n.remote_port_id.clone().unwrap_or_default(),
            remote_port_descr: n.remote_port_desc.clone(),
        })
        .collect()
}

/// Spools inventory and topology when they differ from what was sent.
async fn report_inventory(shared: &Shared, reported: &mut Reported) {
    let facts = match tokio::task::spawn_blocking(|| host::collect_facts(Utc::now)).await {
        Ok(Ok(facts)) => facts,
        Ok(Err(err)) => {
            tracing::warn!(error = %format!("{err:#}"), "cannot read host facts");
            return;
        }
        Err(err) => {
            tracing::error!(error = %err, "host facts task failed");
            return;
        }
    };
    let mut devices: Vec<DeviceInventory> = reported.devices.values().cloned().collect();
    devices.sort_by(|a, b| a.target.cmp(&b.target));
    // Free space changes all the time; it is no reason to resend.
    let mut stable = facts.clone();
    for disk in &mut stable.disks {
        disk.available_bytes = 0;
    }
    let now = Utc::now();
    if reported.inventory.as_ref() != Some(&(stable.clone(), devices.clone())) {
        let message = AgentMessage::Inventory(Inventory {
            protocol_version: PROTOCOL_VERSION,
            agent_id: shared.identity.agent_id,
            collected_at: now,
            host: facts,
            devices: devices.clone(),
        });
        match shared.spool_messages(&[message], RecordKind::Inventory) {
            Ok(()) => reported.inventory = Some((stable, devices)),
            Err(err) => tracing::error!(error = %format!("{err:#}"), "cannot spool the inventory"),
        }
    }
    let mut links: Vec<LldpLink> = reported.links.values().flatten().cloned().collect();
    links.sort_by(|a, b| (&a.device, &a.local_port).cmp(&(&b.device, &b.local_port)));
    let changed = match &reported.topology {
        Some(previous) => *previous != links,
        None => !links.is_empty(),
    };
    if changed {
        let message = AgentMessage::Topology(Topology {
            protocol_version: PROTOCOL_VERSION,
            agent_id: shared.identity.agent_id,
            collected_at: now,
            links: links.clone(),
        });
        match shared.spool_messages(&[message], RecordKind::Topology) {
            Ok(()) => reported.topology = Some(links),
            Err(err) => tracing::error!(error = %format!("{err:#}"), "cannot spool the topology"),
        }
    }
}

async fn host_sampler(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let config = shared.config();
        if config.host.enabled {
            match tokio::task::spawn_blocking(|| host::collect_health(Utc::now)).await {
                Ok(Ok(sample)) => shared.detect(vec![Observation::Host {
                    device: shared.hostname.clone(),
                    sample,
                }]),
                Ok(Err(err)) => {
                    tracing::warn!(error = %format!("{err:#}"), "cannot sample host health")
                }
                Err(err) => tracing::error!(error = %err, "host health task failed"),
            }
        }
        if !sleep_or_stop(config.host.interval, &mut stop).await {
            return;
        }
    }
}

async fn ticker(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    while sleep_or_stop(Duration::from_secs(1), &mut stop).await {
        let mut detector = lock(&shared.detector);
        let events = detector.tick(Utc::now());
        if !events.is_empty() {
            shared.commit(&mut detector, events);
        }
    }
}
