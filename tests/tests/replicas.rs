//! Three `serve` replicas on the machine's PostgreSQL behind HAProxy (HTTP
//! and SSH, as in a deployment), two real agents holding their tunnels
//! through it, and replicas killed one at a time (SIGKILL) under load:
//! cases opened all the while, SLA timers coming due, live SSH sessions.
//!
//! Afterwards every case acknowledged is there exactly once, every SLA
//! timer of every case fired exactly once, the dead replicas' sessions are
//! ended on the record and on their cases, the agents are back on a
//! surviving replica, and the stock OpenSSH client reaches both devices
//! through every surviving replica: directly where the tunnel lives, and
//! relayed between replicas where it does not.

use anyhow::{bail, ensure, Context, Result};
use outpost_tests::{
    echo_service, enroll_agent_via, keygen, wait_until, AgentProcess, Backend, Haproxy, Server,
    World, FAST_SLA,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The engineer's OpenSSH setup: key, config, known_hosts pinning the
/// relay's one host key under every replica's and the balancer's address.
struct Engineer {
    config: PathBuf,
    user: String,
}

impl Engineer {
    fn new(dir: &Path, user: &str, relays: &[&str], host_key: &str) -> Result<(Engineer, String)> {
        let key = dir.join("engineer");
        let public = keygen(&key)?;
        let known: String = relays
            .iter()
            .map(|r| {
                let (host, port) = r.rsplit_once(':').unwrap_or((r, "22"));
                format!("[{host}]:{port} {host_key}\n")
            })
            .collect();
        let kh = dir.join("known_hosts");
        std::fs::write(&kh, known)?;
        let config = dir.join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
                 GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  \
                 ConnectTimeout 10\n  LogLevel ERROR\n",
                key.display(),
                kh.display()
            ),
        )?;
        Ok((
            Engineer {
                config,
                user: user.to_string(),
            },
            public,
        ))
    }

    /// `ssh -W device:port engineer@relay`, running.
    fn forward(&self, relay: &str, device: &str, port: u16) -> Result<Child> {
        let (host, relay_port) = relay.rsplit_once(':').context("relay address")?;
        Ok(Command::new("ssh")
            .arg("-F")
            .arg(&self.config)
            .args(["-p", relay_port, "-W", &format!("{device}:{port}")])
            .arg(format!("{}@{host}", self.user))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?)
    }

    /// One round trip through `relay` to the device's echo service.
    fn echo(&self, relay: &str, device: &str, port: u16) -> Result<()> {
        let line = format!("hello {device} via {relay}");
        let mut child = self.forward(relay, device, port)?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(format!("{line}\n").as_bytes())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output()?;
        let got = String::from_utf8_lossy(&out.stdout);
        ensure!(
            got.trim() == line,
            "{device} via {relay}: got {got:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// A live `ssh -W` session that echoes lines on demand.
struct Live {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    name: &'static str,
}

impl Live {
    fn start(
        eng: &Engineer,
        relay: &str,
        device: &str,
        port: u16,
        name: &'static str,
    ) -> Result<Live> {
        let mut child = eng.forward(relay, device, port)?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut live = Live {
            child,
            stdin,
            lines,
            name,
        };
        live.ping("up")?;
        Ok(live)
    }

    fn ping(&mut self, what: &str) -> Result<()> {
        let line = format!("{} {what}", self.name);
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let got = self
            .lines
            .recv_timeout(Duration::from_secs(15))
            .with_context(|| format!("{}: no echo of {what:?}", self.name))?;
        ensure!(got == line, "{}: echoed {got:?}", self.name);
        Ok(())
    }

    /// Waits (at most 20 s) for ssh to end, as its connection is cut.
    fn wait_cut(&mut self) -> Result<()> {
        let since = Instant::now();
        while self.child.try_wait()?.is_none() {
            if since.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                bail!("{}: the session was not cut", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three server processes, killable one at a time.
struct Replicas {
    server: Server,
    others: Vec<outpost_tests::Replica>,
    /// Per process: HTTP base and relay address.
    addrs: Vec<(String, String)>,
    alive: Vec<bool>,
}

impl Replicas {
    fn kill(&mut self, i: usize) {
        match i {
            0 => self.server.stop(),
            n => self.others[n - 1].kill(),
        }
        self.alive[i] = false;
    }

    fn by_relay(&self, ssh: &str) -> Option<usize> {
        self.addrs.iter().position(|(_, s)| s == ssh)
    }

    /// A surviving replica's HTTP base.
    fn base(&self) -> &str {
        self.alive
            .iter()
            .position(|a| *a)
            .map(|i| self.addrs[i].0.as_str())
            .unwrap_or_default()
    }

    fn alive_relays(&self) -> Vec<String> {
        (0..3)
            .filter(|i| self.alive[*i])
            .map(|i| self.addrs[i].1.clone())
            .collect()
    }
}

async fn get(http: &reqwest::Client, base: &str, path: &str, token: &str) -> Result<Value> {
    let reply = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "GET {path}: {status} {body}");
    Ok(body)
}

/// Replica id -> its relay address, for the live replicas on the record.
async fn replica_map(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
) -> Result<HashMap<String, String>> {
    let v = get(http, base, "/api/v1/replicas", admin).await?;
    Ok(v.as_array()
        .context("replicas")?
        .iter()
        .filter(|r| r["alive"] == true)
        .filter_map(|r| {
            Some((
                r["id"].as_str()?.to_string(),
                r["ssh_address"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// Which process holds each agent's tunnel (by agent uuid), once all of
/// `agents` have one on a live replica.
async fn tunnel_holders(
    http: &reqwest::Client,
    rs: &Replicas,
    admin: &str,
    agents: &[&str],
) -> Result<HashMap<String, usize>> {
    let mut found = HashMap::new();
    wait_until("every agent's tunnel on a live replica", 60, async || {
        let Ok(map) = replica_map(http, rs.base(), admin).await else {
            return Ok(false);
        };
        let Ok(list) = get(http, rs.base(), "/api/v1/agents", admin).await else {
            return Ok(false);
        };
        found.clear();
        for a in list.as_array().into_iter().flatten() {
            let (Some(uuid), Some(replica)) =
                (a["agent_id"].as_str(), a["tunnel_replica"].as_str())
            else {
                continue;
            };
            if let Some(i) = map.get(replica).and_then(|ssh| rs.by_relay(ssh)) {
                if rs.alive[i] {
                    found.insert(uuid.to_string(), i);
                }
            }
        }
        Ok(agents.iter().all(|a| found.contains_key(*a)))
    })
    .await?;
    Ok(found)
}

/// A case's SLA events: their names (with the level of escalations),
/// sorted, and whether a timer fired twice.
fn sla_events(history: &Value) -> (Vec<String>, bool) {
    let mut names = Vec::new();
    let mut timers = std::collections::HashSet::new();
    let mut twice = false;
    for e in history.as_array().into_iter().flatten() {
        if e["kind"] == "sla_event" {
            names.push(format!(
                "{}{}",
                e["event"].as_str().unwrap_or_default(),
                e["level"]
                    .as_i64()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default()
            ));
            twice |= !timers.insert(e["timer_id"].as_i64().unwrap_or(-1));
        }
    }
    names.sort();
    (names, twice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_lose_one_at_a_time_under_load() -> Result<()> {
    let config = format!(
        "{FAST_SLA}\n[relay]\nreplica_heartbeat = \"1s\"\nreplica_timeout = \"4s\"\nkeepalive = \"2s\"\n"
    );
    let server = Server::start_with_config(Backend::Postgres, Some(&config)).await?;
    let (b2, s2, r2) = server.start_replica_named("replica-2.log")?;
    let (b3, s3, r3) = server.start_replica_named("replica-3.log")?;
    let addrs = vec![
        (server.base.clone(), server.ssh.clone()),
        (b2, s2),
        (b3, s3),
    ];
    let lb = Haproxy::start(
        &addrs.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        &addrs.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(),
    )?;
    let w = World::build(&server).await?;
    let admin = server.admin_token.clone();
    let mut rs = Replicas {
        server,
        others: vec![r2, r3],
        addrs,
        alive: vec![true; 3],
    };
    // Each request on a connection of its own, so the balancer spreads them.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()?;
    wait_until("three replicas on the record", 20, async || {
        Ok(replica_map(&http, rs.base(), &admin).await?.len() == 3)
    })
    .await?;

    // The engineer, with a key and both cases' devices to reach.
    let dir = tempfile::tempdir()?;
    let me = get(&http, rs.base(), "/api/v1/me", &w.engineer.1).await?;
    let username = me["username"].as_str().context("username")?.to_string();

    // Two agents (one per customer) with their tunnels through the balancer.
    let mut agents = Vec::new();
    let mut devices = Vec::new();
    for (name, org, device) in [("a", w.org_a, w.device_a), ("b", w.org_b, w.device_b)] {
        let port = echo_service()?;
        let cfg = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[server]\nurl = \"{}\"\nidentity_dir = \"{}\"\n\n[host]\nenabled = false\n\n\
                 [tunnel]\nrelay = \"{}\"\nkeepalive = \"2s\"\n\n\
                 [[tunnel.targets]]\nname = \"sw1\"\naddress = \"127.0.0.1\"\nports = [{port}]\n",
                lb.http,
                dir.path().join(format!("{name}-identity")).display(),
                lb.ssh
            ),
        )?;
        enroll_agent_via(&rs.server, &lb.http, &w.dispatcher, org, &cfg).await?;
        let identity: Value = serde_json::from_str(&std::fs::read_to_string(
            dir.path().join(format!("{name}-identity/identity.json")),
        )?)?;
        let uuid = identity["agent_id"]
            .as_str()
            .context("agent id")?
            .to_string();
        let host_key = identity["ssh_host_key"]
            .as_str()
            .context("host key")?
            .to_string();
        let process = AgentProcess::start(&cfg, &dir.path().join(format!("agent-{name}.log")))?;
        let (st, v) = rs
            .server
            .call(
                Method::PUT,
                &format!("/api/v1/devices/{device}/agent"),
                &w.dispatcher,
                Some(json!({ "agent_id": uuid, "target": "sw1" })),
            )
            .await?;
        ensure!(st.is_success(), "bind: {st} {v}");
        let d = get(
            &http,
            rs.base(),
            &format!("/api/v1/devices/{device}"),
            &admin,
        )
        .await?;
        devices.push((d["name"].as_str().context("device name")?.to_string(), port));
        agents.push((uuid, host_key, process));
    }
    let relays: Vec<&str> = rs
        .addrs
        .iter()
        .map(|a| a.1.as_str())
        .chain([lb.ssh.as_str()])
        .collect();
    let (eng, public) = Engineer::new(dir.path(), &username, &relays, &agents[0].1)?;
    rs.server
        .post_ok(
            &format!("/api/v1/users/{}/ssh-keys", w.engineer.0),
            &w.engineer.1,
            json!({ "public_key": public }),
        )
        .await?;
    let eng = Arc::new(eng);
    let mut cases = Vec::new();
    for org_b in [false, true] {
        let number = w.open_case(&rs.server, org_b, "reach the switch").await?;
        rs.server
            .post_ok(
                &format!("/api/v1/cases/{number}/assign"),
                &w.dispatcher,
                json!({ "assignee_id": w.engineer.0 }),
            )
            .await?;
        cases.push(number);
    }
    let uuids: Vec<String> = agents.iter().map(|a| a.0.clone()).collect();
    let uuid_refs: Vec<&str> = uuids.iter().map(String::as_str).collect();
    let holders = tunnel_holders(&http, &rs, &admin, &uuid_refs).await?;

    // Every replica reaches both devices: at least four of these six are
    // relayed from one replica to another.
    let reach_all = |relays: Vec<String>| {
        let eng = Arc::clone(&eng);
        let devices = devices.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for relay in &relays {
                for (device, port) in &devices {
                    eng.echo(relay, device, *port)?;
                }
            }
            Ok(())
        })
    };
    reach_all(rs.alive_relays()).await??;

    // Load: cases opened through the balancer all the while.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, acknowledged, failed) = (stop.clone(), acknowledged.clone(), failed.clone());
        let (http, base, token) = (http.clone(), lb.http.clone(), w.dispatcher.clone());
        let (dev_a, dev_b) = (w.device_a, w.device_b);
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let reply = http
                    .post(format!("{base}/api/v1/cases"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "caller": { "name": "Load", "phone": "+49 40 1234567" },
                        "summary": format!("replica load {i}"), "details": "load", "priority": "P2",
                        "device_id": if i.is_multiple_of(2) { dev_a } else { dev_b },
                    }))
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if let Some(n) = v["number"].as_str() {
                            acknowledged.lock().unwrap().push(n.to_string());
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Round 1: kill the replica holding agent a's tunnel, with three live
    // sessions: one on it, one relayed to it, one elsewhere.
    let (dev_a, port_a) = devices[0].clone();
    let (dev_b, port_b) = devices[1].clone();
    let k1 = holders[&uuids[0]];
    let other = (0..3).find(|i| *i != k1).context("another replica")?;
    let mut on_k1 = Live::start(&eng, &rs.addrs[k1].1, &dev_a, port_a, "on-k1")?;
    let mut relayed_to_k1 = Live::start(&eng, &rs.addrs[other].1, &dev_a, port_a, "relayed")?;
    let survivor_b = (0..3)
        .find(|i| *i != k1 && holders[&uuids[1]] != k1)
        .map(|i| {
            (
                i,
                Live::start(&eng, &rs.addrs[i].1, &dev_b, port_b, "survivor"),
            )
        });
    let mut survivor = match survivor_b {
        Some((_, live)) => Some(live?),
        None => None,
    };
    rs.kill(k1);
    on_k1.wait_cut()?;
    relayed_to_k1.wait_cut()?;
    if let Some(live) = survivor.as_mut() {
        live.ping("after the first kill")?;
    }
    let dead_1 = rs.addrs[k1].1.clone();
    wait_until("the dead replica swept", 30, async || {
        let map = replica_map(&http, rs.base(), &admin).await?;
        Ok(map.len() == 2 && !map.values().any(|s| *s == dead_1))
    })
    .await?;
    let holders = tunnel_holders(&http, &rs, &admin, &uuid_refs).await?;
    reach_all(rs.alive_relays()).await??;
    reach_all(vec![lb.ssh.clone()]).await??;

    // Round 2: kill the replica holding agent b's tunnel (or any other).
    let k2 = holders[&uuids[1]];
    let mut on_k2 = Live::start(&eng, &rs.addrs[k2].1, &dev_b, port_b, "on-k2")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rs.kill(k2);
    on_k2.wait_cut()?;
    drop(survivor);
    let dead_2 = rs.addrs[k2].1.clone();
    wait_until("the second dead replica swept", 30, async || {
        let map = replica_map(&http, rs.base(), &admin).await?;
        Ok(map.len() == 1 && !map.values().any(|s| *s == dead_2))
    })
    .await?;
    tunnel_holders(&http, &rs, &admin, &uuid_refs).await?;
    reach_all(rs.alive_relays()).await??;
    reach_all(vec![lb.ssh.clone()]).await??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    load.await?;
    let acknowledged = acknowledged.lock().unwrap().clone();
    ensure!(
        acknowledged.len() >= 50,
        "load too thin: {} cases",
        acknowledged.len()
    );

    // Every acknowledged case is there, once.
    let base = rs.base().to_string();
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/cases?q=replica%20load&limit=200&cursor={c}"),
            None => "/api/v1/cases?q=replica%20load&limit=200".to_string(),
        };
        let page = get(&http, &base, &path, &admin).await?;
        for c in page["items"].as_array().into_iter().flatten() {
            *found
                .entry(c["number"].as_str().unwrap_or_default().to_string())
                .or_insert(0) += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    for n in &acknowledged {
        ensure!(
            found.get(n) == Some(&1),
            "case {n}: found {:?} times",
            found.get(n)
        );
    }
    ensure!(found.values().all(|n| *n == 1), "a case number twice");

    // Every SLA timer of every case fired exactly once (a case whose
    // replica died before its deadlines were scheduled is picked up by a
    // survivor's sweep of stale cases, within about a minute).
    let reference = {
        let first = &acknowledged[0];
        let mut events = (Vec::new(), false);
        wait_until("the first case's deadlines", 30, async || {
            let h = get(
                &http,
                &base,
                &format!("/api/v1/cases/{first}/activities"),
                &admin,
            )
            .await?;
            events = sla_events(&h);
            Ok(events.0.len() >= 6)
        })
        .await?;
        ensure!(!events.1, "a timer fired twice: {events:?}");
        events.0
    };
    for n in &acknowledged {
        let mut events = (Vec::new(), false);
        wait_until(&format!("case {n}'s deadlines"), 120, async || {
            let h = get(
                &http,
                &base,
                &format!("/api/v1/cases/{n}/activities"),
                &admin,
            )
            .await?;
            events = sla_events(&h);
            ensure!(!events.1, "case {n}: a timer fired twice: {events:?}");
            ensure!(
                events.0.len() <= reference.len(),
                "case {n}: more SLA events than {reference:?}: {events:?}"
            );
            Ok(events.0 == reference)
        })
        .await
        .with_context(|| format!("case {n}: {events:?} (expected {reference:?})"))?;
    }

    // The dead replicas' sessions are ended on the record and on the case.
    let sessions = get(&http, &base, "/api/v1/remote-sessions", &admin).await?;
    let sessions = sessions.as_array().context("sessions")?;
    ensure!(
        sessions.iter().all(|s| s["live"] == false),
        "a session left live: {sessions:?}"
    );
    ensure!(
        sessions.iter().any(|s| s["end_reason"]
            .as_str()
            .is_some_and(|r| r.contains("stopped responding"))),
        "no session ended by the sweep: {sessions:?}"
    );
    let history = get(
        &http,
        &base,
        &format!("/api/v1/cases/{}/activities", cases[0]),
        &admin,
    )
    .await?;
    ensure!(
        history
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "remote_session"
                && e["phase"] == "ended"
                && e["end_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("stopped responding"))),
        "the case does not say the session ended with its replica: {history}"
    );
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "{} cases acknowledged, {failed} requests failed while replicas died",
        acknowledged.len()
    );
    rs.server.verify_intact()?;
    Ok(())
}
