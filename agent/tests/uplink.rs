//! The agent against a small server written here that implements the
//! uplink contract (`outpost_protocol::uplink`): enrolment, signature
//! checks with ed25519-dalek, clock-skew answers, per-message outcomes with
//! dedup by idempotency key; and that can be "down" (503).
//!
//! Scenario: enrol; the server goes down; the agent detects faults (SNMP
//! targets nobody answers) and spools them; it is killed with SIGKILL and
//! restarted; the server comes back: every fault arrives, once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use ed25519_dalek::{Signature, VerifyingKey};
use outpost_protocol::{
    signing_input, AgentAuth, AgentMessage, Batch, BatchResult, EnrollRequest, EnrollResponse,
    FaultEvent, FaultTransition, Hints, JobFailure, JobList, JobReport, JobState, Outcome,
    OutcomeStatus, UpgradeJob, JOBS_PATH, MAX_SKEW_SECS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

const TOKEN: &str = "otk_test_token";

#[derive(Default)]
struct State {
    down: bool,
    /// Seconds the server's clock is ahead of the real one.
    clock_ahead: i64,
    agent_id: Uuid,
    key: Option<VerifyingKey>,
    seen: HashSet<Uuid>,
    faults: Vec<FaultEvent>,
    duplicates: usize,
    heartbeats: usize,
    inventories: usize,
    clock_skew_answers: usize,
    refused: Vec<String>,
    /// What `POST /api/v1/agent/jobs` answers.
    jobs: Vec<UpgradeJob>,
    job_queries: usize,
    job_reports: Vec<JobReport>,
    /// `jobs` of the hints in heartbeat answers.
    hint_jobs: u32,
    /// `release` of the hints in heartbeat answers.
    hint_release: Option<i64>,
    update_queries: usize,
}

type Shared = Arc<Mutex<State>>;

fn state(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.lock().expect("state lock")
}

async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _ = handle(stream, shared).await;
        });
    }
}

async fn handle(mut stream: TcpStream, shared: Shared) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + length];
    let (status, json) = route(&shared, &method, &path, &headers, body);
    let server_now = Utc::now() + chrono::TimeDelta::seconds(state(&shared).clock_ahead);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nDate: {}\r\nConnection: close\r\n\r\n{json}",
        json.len(),
        server_now.format("%a, %d %b %Y %H:%M:%S GMT"),
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn error(status: &str, code: &str) -> (String, String) {
    (
        status.to_owned(),
        serde_json::json!({ "code": code, "message": code }).to_string(),
    )
}

fn route(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> (String, String) {
    let mut s = state(shared);
    if s.down {
        return error("503 Service Unavailable", "down");
    }
    match (method, path) {
        ("POST", "/api/v1/agent/enroll") => {
            let Ok(request) = serde_json::from_slice::<EnrollRequest>(body) else {
                return error("400 Bad Request", "bad_request");
            };
            if request.token != TOKEN {
                return error("401 Unauthorized", "invalid_token");
            }
            let blob = request
                .public_key
                .split_whitespace()
                .nth(1)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .unwrap_or_default();
            let Some(key) = blob
                .len()
                .checked_sub(32)
                .and_then(|start| <[u8; 32]>::try_from(&blob[start..]).ok())
                .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
            else {
                return error("400 Bad Request", "bad_key");
            };
            s.key = Some(key);
            s.agent_id = Uuid::new_v4();
            let response = EnrollResponse {
                agent_id: s.agent_id,
                server_tls_pin_sha256: None,
                ssh_host_key: None,
                heartbeat_interval_secs: 1,
            };
            (
                "200 OK".into(),
                serde_json::to_string(&response).expect("json"),
            )
        }
        ("POST", outpost_protocol::release::UPDATE_PATH) => {
            if let Err(refusal) = authenticate(&mut s, method, path, headers, body) {
                return refusal;
            }
            s.update_queries += 1;
            let offer = outpost_protocol::UpdateOffer { release: None };
            (
                "200 OK".into(),
                serde_json::to_string(&offer).expect("json"),
            )
        }
        ("POST", JOBS_PATH) => {
            if let Err(refusal) = authenticate(&mut s, method, path, headers, body) {
                return refusal;
            }
            s.job_queries += 1;
            let list = JobList {
                jobs: s.jobs.clone(),
            };
            ("200 OK".into(), serde_json::to_string(&list).expect("json"))
        }
        ("POST", "/api/v1/agent/messages") => {
            let Some(auth) = headers
                .get("authorization")
                .and_then(|h| AgentAuth::parse(h).ok())
            else {
                s.refused.push("no auth".into());
                return error("401 Unauthorized", "unauthorized");
            };
            let server_now = Utc::now().timestamp() + s.clock_ahead;
            if (auth.timestamp - server_now).abs() > MAX_SKEW_SECS {
                s.clock_skew_answers += 1;
                return error("401 Unauthorized", "clock_skew");
            }
            let input = signing_input(method, path, auth.agent_id, auth.timestamp, body);
            let valid = auth.agent_id == s.agent_id
                && s.key.is_some_and(|key| {
                    <[u8; 64]>::try_from(&auth.signature[..])
                        .map(|sig| {
                            key.verify_strict(&input, &Signature::from_bytes(&sig))
                                .is_ok()
                        })
                        .unwrap_or(false)
                });
            if !valid {
                s.refused.push("bad signature".into());
                return error("401 Unauthorized", "bad_signature");
            }
            let Ok(batch) = serde_json::from_slice::<Batch>(body) else {
                return error("400 Bad Request", "bad_batch");
            };
            let mut results = Vec::new();
            let mut hints = None;
            for message in batch.messages {
                let status = match message {
                    AgentMessage::Fault(event) => {
                        if s.seen.insert(event.idempotency_key) {
                            s.faults.push(event);
                            OutcomeStatus::Accepted
                        } else {
                            s.duplicates += 1;
                            OutcomeStatus::Duplicate
                        }
                    }
                    AgentMessage::Heartbeat(_) => {
                        s.heartbeats += 1;
                        hints = Some(Hints {
                            release: s.hint_release,
                            jobs: s.hint_jobs,
                        });
                        OutcomeStatus::Accepted
                    }
                    AgentMessage::Job(report) => {
                        if s.seen.insert(report.idempotency_key) {
                            s.job_reports.push(report);
                            OutcomeStatus::Accepted
                        } else {
                            OutcomeStatus::Duplicate
                        }
                    }
                    AgentMessage::Inventory(_) => {
                        s.inventories += 1;
                        OutcomeStatus::Accepted
                    }
                    AgentMessage::Topology(_) | AgentMessage::Update(_) => OutcomeStatus::Accepted,
                };
                results.push(Outcome {
                    status,
                    detail: None,
                });
            }
            (
                "200 OK".into(),
                serde_json::to_string(&BatchResult { results, hints }).expect("json"),
            )
        }
        _ => error("404 Not Found", "not_found"),
    }
}

/// Checks a signed request as the server does (the agent's key, clock
/// skew); the error answer if it fails.
fn authenticate(
    s: &mut State,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> Result<(), (String, String)> {
    let Some(auth) = headers
        .get("authorization")
        .and_then(|h| AgentAuth::parse(h).ok())
    else {
        s.refused.push("no auth".into());
        return Err(error("401 Unauthorized", "unauthorized"));
    };
    let server_now = Utc::now().timestamp() + s.clock_ahead;
    if (auth.timestamp - server_now).abs() > MAX_SKEW_SECS {
        s.clock_skew_answers += 1;
        return Err(error("401 Unauthorized", "clock_skew"));
    }
    let input = signing_input(method, path, auth.agent_id, auth.timestamp, body);
    let valid = auth.agent_id == s.agent_id
        && s.key.is_some_and(|key| {
            <[u8; 64]>::try_from(&auth.signature[..])
                .map(|sig| {
                    key.verify_strict(&input, &Signature::from_bytes(&sig))
                        .is_ok()
                })
                .unwrap_or(false)
        });
    if !valid {
        s.refused.push("bad signature".into());
        return Err(error("401 Unauthorized", "bad_signature"));
    }
    Ok(())
}

fn agent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outpost-agent"));
    command.env("OUTPOST_LOG", "info,async_snmp=off");
    command
}

fn start_agent(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    agent()
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the agent")
}

/// Raised faults in the detector's state file.
fn raised_in_state(path: &Path) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return 0;
    };
    value["faults"]
        .as_array()
        .map(|faults| {
            faults
                .iter()
                .filter(|f| !f[1]["raised_at"].is_null())
                .count()
        })
        .unwrap_or(0)
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn metrics(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_survive_a_server_outage_and_kill_9_and_arrive_once() {
    let shared: Shared = Arc::new(Mutex::new(State {
        clock_ahead: 3600,
        ..State::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, Arc::clone(&shared)));
    let server = format!("http://{addr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let identity_dir = dir.path().join("identity");

    // Enrol (the CLI), and refuse to enrol again without --force.
    let out = agent()
        .args([
            "enroll",
            "--server",
            &server,
            "--token",
            TOKEN,
            "--identity-dir",
        ])
        .arg(&identity_dir)
        .output()
        .expect("enroll");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as agent"));
    let again = agent()
        .args([
            "enroll",
            "--server",
            &server,
            "--token",
            TOKEN,
            "--identity-dir",
        ])
        .arg(&identity_dir)
        .output()
        .expect("enroll again");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    // Plain http to a non-loopback server is refused before any request.
    let remote = agent()
        .args([
            "enroll",
            "--server",
            "http://192.0.2.1",
            "--token",
            TOKEN,
            "--identity-dir",
        ])
        .arg(dir.path().join("other"))
        .output()
        .expect("enroll remote");
    assert!(String::from_utf8_lossy(&remote.stderr).contains("loopback"));

    // Ten SNMP targets nobody answers: ten device_unreachable faults.
    let targets = 10;
    let metrics_port = free_tcp_port();
    let mut config = format!(
        r#"
[server]
url = "{server}"
identity_dir = "{}"

[snmp]
interval = "1s"

[host]
enabled = false

[detect]
unreachable_after = 2

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        identity_dir.display()
    );
    for i in 0..targets {
        config.push_str(&format!(
            "\n[[snmp.targets]]\nname = \"dev{i}\"\naddress = \"127.0.0.1:{}\"\nversion = \"v2c\"\ncommunity = \"public\"\ntimeout = \"50ms\"\nretries = 0\n",
            free_udp_port()
        ));
    }
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = dir.path().join("agent.log");
    let state_file = identity_dir.join("detector.json");

    // The server is down while the faults happen.
    state(&shared).down = true;
    let mut child = start_agent(&config_path, &log);
    wait_for(
        "the faults to be detected and spooled",
        Duration::from_secs(60),
        || raised_in_state(&state_file) == targets,
    )
    .await;
    let text = metrics(metrics_port).await;
    assert!(text.contains("outpost_agent_up 0"), "{text}");
    assert!(!text.contains("outpost_agent_spool_records 0\n"), "{text}");

    // kill -9, restart, and only then bring the server back.
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let mut child = start_agent(&config_path, &log);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    state(&shared).down = false;

    wait_for("every fault to arrive", Duration::from_secs(60), || {
        let s = state(&shared);
        s.faults
            .iter()
            .filter(|f| f.transition == FaultTransition::Raised)
            .map(|f| f.fault_key.clone())
            .collect::<HashSet<_>>()
            .len()
            == targets
    })
    .await;
    let started = Instant::now();
    loop {
        let text = metrics(metrics_port).await;
        if text.contains("outpost_agent_spool_records 0\n") && text.contains("outpost_agent_up 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "spool never drained: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGTERM stops it cleanly.
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");

    let s = state(&shared);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut raises: HashMap<String, usize> = HashMap::new();
    for fault in s
        .faults
        .iter()
        .filter(|f| f.transition == FaultTransition::Raised)
    {
        *raises.entry(fault.fault_key.as_string()).or_default() += 1;
        assert_eq!(fault.agent_id, s.agent_id);
    }
    assert_eq!(raises.len(), targets, "{raises:?}");
    assert!(
        raises.values().all(|n| *n == 1),
        "each fault raised once: {raises:?}\n{log_text}"
    );
    assert!(raises.keys().all(|k| k.contains("/device_unreachable/")));
    assert!(s.refused.is_empty(), "{:?}", s.refused);
    assert!(
        s.clock_skew_answers >= 1,
        "the skewed server clock was noticed"
    );
    assert!(s.heartbeats >= 1);
    assert!(s.inventories >= 1);
}

/// An upgrade job for a device this agent does not poll.
fn foreign_job() -> UpgradeJob {
    let manifest = outpost_protocol::ReleaseManifest {
        name: "ios-xe".into(),
        version: "17.12.1".into(),
        target: "Cisco/C9300-48P".into(),
        sha256: "ab".repeat(32),
        size: 10,
    };
    UpgradeJob {
        id: 77,
        campaign_id: 1,
        campaign: "wave 1".into(),
        device: "edge-9".into(),
        vendor: "Cisco".into(),
        model: "C9300-48P".into(),
        current_version: None,
        release: outpost_protocol::OfferedRelease {
            id: 3,
            manifest,
            signature: "00".repeat(64),
            public_key: format!("ed25519:{}", "00".repeat(32)),
            allow_downgrade: false,
            artifact_path: "/api/v1/agent/releases/3/artifact".into(),
        },
        install_timeout_secs: 60,
        reboot_timeout_secs: 60,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_asked_for_on_a_heartbeat_hint_and_reported_through_the_spool_once() {
    let shared: Shared = Arc::new(Mutex::new(State {
        jobs: vec![foreign_job()],
        ..State::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, Arc::clone(&shared)));
    let server = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let identity_dir = dir.path().join("identity");
    let out = agent()
        .args([
            "enroll",
            "--server",
            &server,
            "--token",
            TOKEN,
            "--identity-dir",
        ])
        .arg(&identity_dir)
        .output()
        .expect("enroll");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Jobs asked for every hour only: any further question comes from a hint.
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let config = format!(
        r#"
[server]
url = "{server}"
identity_dir = "{}"

[host]
enabled = false

[jobs]
enabled = true
poll_interval = "1h"
trusted_keys = ["{}"]

[[jobs.plugins]]
vendor = "*"
model = "*"
command = "{}"
"#,
        identity_dir.display(),
        outpost_protocol::release::format_public_key(&key.verifying_key().to_bytes()),
        env!("CARGO_BIN_EXE_outpost-plugin-script"),
    );
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = dir.path().join("agent.log");
    let mut child = start_agent(&config_path, &log);

    // The first question (shortly after start) hands out the job, which
    // fails (the device is not one of the agent's targets) and is reported.
    wait_for("the job's report", Duration::from_secs(30), || {
        !state(&shared).job_reports.is_empty()
    })
    .await;
    let queries = state(&shared).job_queries;
    assert_eq!(queries, 1);
    // Heartbeats now say jobs wait: the agent asks again at once, twice.
    state(&shared).hint_jobs = 1;
    wait_for("questions woken by hints", Duration::from_secs(30), || {
        state(&shared).job_queries >= queries + 2
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("reap");
    let s = state(&shared);
    // The job was handed out on every question but carried out once.
    assert_eq!(s.job_reports.len(), 1, "{:?}", s.job_reports);
    let report = &s.job_reports[0];
    assert_eq!(report.job_id, 77);
    assert_eq!(report.state, JobState::Failed);
    assert_eq!(report.failure, Some(JobFailure::NoPlugin));
    assert!(report.detail.contains("edge-9"), "{}", report.detail);
    assert_eq!(report.agent_id, s.agent_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_release_in_a_heartbeat_hint_wakes_the_update_check() {
    let shared: Shared = Arc::new(Mutex::new(State {
        hint_release: Some(1),
        ..State::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, Arc::clone(&shared)));
    let server = format!("http://{addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let identity_dir = dir.path().join("identity");
    let out = agent()
        .args([
            "enroll",
            "--server",
            &server,
            "--token",
            TOKEN,
            "--identity-dir",
        ])
        .arg(&identity_dir)
        .output()
        .expect("enroll");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    // Checks every hour only: any further check comes from a hint.
    let config = format!(
        "[server]\nurl = \"{server}\"\nidentity_dir = \"{}\"\n\n[host]\nenabled = false\n\n[update]\nenabled = true\ncheck_interval = \"1h\"\ntrusted_keys = [\"{}\"]\n",
        identity_dir.display(),
        outpost_protocol::release::format_public_key(&key.verifying_key().to_bytes()),
    );
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut child = start_agent(&config_path, &dir.path().join("agent.log"));

    wait_for("the first update check", Duration::from_secs(30), || {
        state(&shared).update_queries == 1
    })
    .await;
    // The same release in every hint: no further check.
    let heartbeats = state(&shared).heartbeats;
    wait_for("more heartbeats", Duration::from_secs(30), || {
        state(&shared).heartbeats >= heartbeats + 3
    })
    .await;
    assert_eq!(state(&shared).update_queries, 1);
    // A new release published: checked at once.
    state(&shared).hint_release = Some(2);
    wait_for(
        "the update check woken by the hint",
        Duration::from_secs(30),
        || state(&shared).update_queries == 2,
    )
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("reap");
}
