//! How soon 1,000 agents know of a new release, and what telling them costs
//! the server.
//!
//! Simulated agents (enrolled identities signing like the real agent, in
//! this process) send heartbeats every `INTERVAL` seconds, each starting at
//! a random moment of the interval. A release is published; the answer to
//! a heartbeat carries `hints.release`, the newest release id, so each agent
//! learns of it with its next heartbeat. The program prints, from the
//! moment the upload returned: when the first, half, 95% and all agents
//! knew. Then, in the same run, the same agents instead ask the self-update
//! endpoint (`POST /api/v1/agent/update`) at the same pace, the way an agent
//! without hints would have to poll to learn as fast: the server's CPU time
//! per second for each way is the comparison.
//!
//! ```sh
//! cargo build --release -p outpost-server -p outpost-tests --bin outpost-server --bin release-bench
//! target/release/release-bench [AGENTS] [INTERVAL_SECS]
//! ```

use anyhow::Result;
use chrono::Utc;
use outpost_protocol::{AgentMessage, Heartbeat, PROTOCOL_VERSION};
use outpost_tests::releases::{generate_key, publish, sign};
use outpost_tests::sim_agent::SimAgent;
use outpost_tests::{clk_tck, Backend, Server, World};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / clk_tck()
}

fn heartbeat(a: &SimAgent) -> String {
    json!({ "messages": [AgentMessage::Heartbeat(Heartbeat {
        protocol_version: PROTOCOL_VERSION,
        agent_id: a.id,
        sent_at: Utc::now(),
        agent_version: "0.1.0".into(),
        uptime_secs: 1,
        spool_depth: 0,
        clock_skew_secs: None,
    })] })
    .to_string()
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let interval: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("release.key");
    let public = generate_key(&key)?;
    let s = Arc::new(
        Server::start_with_config(
            Backend::Sqlite,
            Some(&format!(
                "[agents]\nheartbeat_interval = \"{interval}s\"\n\n[releases]\ntrusted_keys = [{public:?}]\n"
            )),
        )
        .await?,
    );
    let w = World::build(&s).await?;
    let started = Instant::now();
    let mut fleet = Vec::with_capacity(agents);
    for i in 0..agents {
        fleet.push(Arc::new(
            SimAgent::enroll(&s, &w.dispatcher, w.org_a, &format!("bench-{i}")).await?,
        ));
    }
    println!(
        "{agents} agents enrolled in {:.1} s; heartbeat every {interval} s",
        started.elapsed().as_secs_f64()
    );

    // Phase 1: heartbeats with hints.
    let published = Arc::new(std::sync::Mutex::new(None::<(i64, Instant)>));
    let learned = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for a in &fleet {
        let (a, s, published, learned, requests, errors, stop) = (
            a.clone(),
            s.clone(),
            published.clone(),
            learned.clone(),
            requests.clone(),
            errors.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let phase = rand::random::<u64>() % (interval * 1000);
            tokio::time::sleep(Duration::from_millis(phase)).await;
            let mut knew = false;
            let mut tick = tokio::time::interval(Duration::from_secs(interval));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let answer = a.post(&s, "/api/v1/agent/messages", &heartbeat(&a)).await;
                requests.fetch_add(1, Ordering::Relaxed);
                let Ok((st, v)) = answer else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if !st.is_success() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let release = v["hints"]["release"].as_i64();
                let now = Instant::now();
                if let Some((id, at)) = *published.lock().unwrap_or_else(|e| e.into_inner()) {
                    if !knew && release == Some(id) {
                        knew = true;
                        learned
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(now.duration_since(at));
                    }
                }
            }
        }));
    }
    // Let the fleet settle into its rhythm, then measure a quiet stretch.
    tokio::time::sleep(Duration::from_secs(interval * 2)).await;
    let (cpu0, req0, t0) = (
        cpu_secs(s.pid()),
        requests.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(interval * 3)).await;
    let hint_cpu = (cpu_secs(s.pid()) - cpu0) / t0.elapsed().as_secs_f64();
    let hint_rate = (requests.load(Ordering::Relaxed) - req0) as f64 / t0.elapsed().as_secs_f64();

    let artifact = dir.path().join("fw.bin");
    std::fs::write(
        &artifact,
        b"outpost-simulated-firmware\nmodel=X100\nversion=2.0\nboots=yes\n",
    )?;
    let body = sign(&key, &artifact, "firmware", "2.0", "Acme/X100")?;
    let id = publish(&s, &body, &artifact).await?;
    let at = Instant::now();
    *published.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, at));
    let deadline = at + Duration::from_secs(interval * 4 + 10);
    while learned.lock().unwrap_or_else(|e| e.into_inner()).len() < agents
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut times = learned.lock().unwrap_or_else(|e| e.into_inner()).clone();
    times.sort();
    let pick = |q: f64| -> String {
        if times.is_empty() {
            return "-".into();
        }
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        format!("{:.2} s", times[i].as_secs_f64())
    };
    println!(
        "release {id} published; agents knowing: {} of {agents}: first {}, 50% {}, 95% {}, all {}",
        times.len(),
        pick(0.0),
        pick(0.5),
        pick(0.95),
        pick(1.0)
    );
    println!(
        "heartbeats with hints: {hint_rate:.0} requests/s, server CPU {:.1}% of a core ({:.0} µs per request); errors {}",
        hint_cpu * 100.0,
        hint_cpu / hint_rate.max(1.0) * 1e6,
        errors.load(Ordering::Relaxed)
    );

    // Phase 2: the same pace of update queries instead (no hints).
    let requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    let query = json!({ "protocol_version": PROTOCOL_VERSION, "target": "x86_64-unknown-linux-gnu",
                        "current_version": "0.1.0" })
    .to_string();
    for a in &fleet {
        let (a, s, requests, stop, query) = (
            a.clone(),
            s.clone(),
            requests.clone(),
            stop.clone(),
            query.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let phase = rand::random::<u64>() % (interval * 1000);
            tokio::time::sleep(Duration::from_millis(phase)).await;
            let mut tick = tokio::time::interval(Duration::from_secs(interval));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if a.post(&s, "/api/v1/agent/update", &query).await.is_ok() {
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(interval * 2)).await;
    let (cpu0, req0, t0) = (
        cpu_secs(s.pid()),
        requests.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(interval * 3)).await;
    let poll_cpu = (cpu_secs(s.pid()) - cpu0) / t0.elapsed().as_secs_f64();
    let poll_rate = (requests.load(Ordering::Relaxed) - req0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "update queries instead: {poll_rate:.0} requests/s, server CPU {:.1}% of a core ({:.0} µs per request) — on top of the heartbeats an agent sends anyway",
        poll_cpu * 100.0,
        poll_cpu / poll_rate.max(1.0) * 1e6
    );
    Ok(())
}
