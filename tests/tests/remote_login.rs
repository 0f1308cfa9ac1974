//! Remote login end to end: the stock OpenSSH client (`ssh -J`, `ssh -W`)
//! through the real server's relay and a real agent's reverse tunnel to a
//! real `sshd` and to a plain TCP service, only while a case grants it.

use anyhow::{bail, Context, Result};
use outpost_tests::{
    echo_service, enroll_agent, keygen, wait_until, AgentProcess, Backend, Server, Sshd, World,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The engineer's OpenSSH client setup: a config with their key and a
/// known_hosts that pins the relay's and the device's host keys.
struct Client {
    config: PathBuf,
    relay: String,
}

impl Client {
    fn new(dir: &Path, name: &str, key: &Path, known_hosts: &str, relay: &str) -> Result<Client> {
        let kh = dir.join(format!("{name}_known_hosts"));
        std::fs::write(&kh, known_hosts)?;
        let config = dir.join(format!("{name}_ssh_config"));
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
        Ok(Client {
            config,
            relay: relay.to_string(),
        })
    }

    fn relay_host_port(&self) -> (&str, &str) {
        self.relay.rsplit_once(':').unwrap_or((&self.relay, "22"))
    }

    /// `ssh -W target:port user@relay`, feeding `input`; its output.
    fn forward(&self, user: &str, target: &str, port: u16, input: &str) -> Result<Output> {
        let mut child = self.forward_child(user, target, port)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        wait_output(child, Duration::from_secs(30))
    }

    fn forward_child(&self, user: &str, target: &str, port: u16) -> Result<Child> {
        let (host, relay_port) = self.relay_host_port();
        Ok(Command::new("ssh")
            .arg("-F")
            .arg(&self.config)
            .args(["-p", relay_port, "-W", &format!("{target}:{port}")])
            .arg(format!("{user}@{host}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?)
    }

    /// `ssh -J user@relay -p port login@device command`.
    fn jump(&self, user: &str, device: &str, port: u16, login: &str, cmd: &str) -> Result<Output> {
        let child = Command::new("ssh")
            .arg("-F")
            .arg(&self.config)
            .args(["-J", &format!("{user}@{}", self.relay)])
            .args(["-p", &port.to_string()])
            .arg(format!("{login}@{device}"))
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        wait_output(child, Duration::from_secs(30))
    }
}

fn wait_output(mut child: Child, limit: Duration) -> Result<Output> {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!(
                "ssh did not finish in {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn whoami() -> Result<String> {
    let out = Command::new("id").arg("-un").output()?;
    Ok(text(&out.stdout).trim().to_string())
}

fn agent_config(dir: &Path, base: &str, relay: &str, name: &str, ports: &[u16]) -> Result<PathBuf> {
    let config = dir.join(format!("{name}.toml"));
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    std::fs::write(
        &config,
        format!(
            "[server]\nurl = \"{base}\"\nidentity_dir = \"{}\"\n\n[host]\nenabled = false\n\n\
             [tunnel]\nrelay = \"{relay}\"\nkeepalive = \"5s\"\n\n\
             [[tunnel.targets]]\nname = \"sw1\"\naddress = \"127.0.0.1\"\nports = [{}]\n",
            dir.join(format!("{name}-identity")).display(),
            ports.join(", ")
        ),
    )?;
    Ok(config)
}

fn identity(dir: &Path, name: &str) -> Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        dir.join(format!("{name}-identity")).join("identity.json"),
    )?)?)
}

async fn tunnels_up(s: &Server, n: usize) -> Result<()> {
    wait_until("agent tunnels on the relay", 30, async || {
        // Errors (a pooled connection to a restarted server) mean "not yet".
        let Ok(reply) = s.http.get(format!("{}/metrics", s.base)).send().await else {
            return Ok(false);
        };
        let text = reply.text().await.unwrap_or_default();
        Ok(text
            .lines()
            .any(|l| l == format!("outpost_relay_tunnels {n}")))
    })
    .await
}

async fn last_attempt(s: &Server, w: &World) -> Result<Value> {
    let (_, v) = s
        .get("/api/v1/remote-attempts?limit=1", &w.dispatcher)
        .await?;
    v.get(0).cloned().context("an attempt was logged")
}

/// A server, the world, an agent with the device behind it (target `sw1`
/// on `ports`), and the engineer's OpenSSH client setup.
struct Setup {
    s: Server,
    w: World,
    dir: tempfile::TempDir,
    engineer: String,
    device: String,
    other: String,
    agent: AgentProcess,
    eng: Client,
    known: String,
}

async fn setup(config: Option<&str>, sshd: Option<&Sshd>, ports: &[u16]) -> Result<Setup> {
    let s = Server::start_with_config(Backend::Sqlite, config).await?;
    let w = World::build(&s).await?;
    let dir = tempfile::tempdir()?;

    // The engineer's key, registered on their user (and let into the device).
    let key = dir.path().join("engineer");
    let public = keygen(&key)?;
    s.post_ok(
        &format!("/api/v1/users/{}/ssh-keys", w.engineer.0),
        &w.engineer.1,
        json!({ "public_key": public }),
    )
    .await?;
    if let Some(sshd) = sshd {
        sshd.authorize(&public)?;
    }
    let (_, me) = s.get("/api/v1/me", &w.engineer.1).await?;
    let engineer = me["username"].as_str().context("username")?.to_string();

    // The customer's agent, enrolled, with the device behind it.
    let agent_config = agent_config(dir.path(), &s.base, &s.ssh, "a", ports)?;
    enroll_agent(&s, &w.dispatcher, w.org_a, &agent_config).await?;
    let id = identity(dir.path(), "a")?;
    let relay_key = id["ssh_host_key"]
        .as_str()
        .context("ssh_host_key at enrolment")?
        .to_string();
    let agent_uuid = id["agent_id"].as_str().context("agent_id")?.to_string();
    let agent = AgentProcess::start(&agent_config, &dir.path().join("agent-a.log"))?;
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/v1/devices/{}/agent", w.device_a),
            &w.dispatcher,
            Some(json!({ "agent_id": agent_uuid, "target": "sw1" })),
        )
        .await?;
    anyhow::ensure!(st.is_success(), "bind device: {st} {v}");
    let (_, device) = s
        .get(&format!("/api/v1/devices/{}", w.device_a), &w.dispatcher)
        .await?;
    let device = device["name"].as_str().context("device name")?.to_string();
    let (_, other) = s
        .get(&format!("/api/v1/devices/{}", w.device_b), &w.dispatcher)
        .await?;
    let other = other["name"].as_str().context("device name")?.to_string();
    tunnels_up(&s, 1).await.with_context(|| agent.log_text())?;

    let (host, port) = s.ssh.rsplit_once(':').context("relay address")?;
    let mut known = format!("[{host}]:{port} {relay_key}\n");
    if let Some(sshd) = sshd {
        known.push_str(&format!("[{device}]:{} {}\n", sshd.port, sshd.host_key));
    }
    let eng = Client::new(dir.path(), "eng", &key, &known, &s.ssh)?;
    Ok(Setup {
        s,
        w,
        dir,
        engineer,
        device,
        other,
        agent,
        eng,
        known,
    })
}

/// Opens a case on the world's device A and assigns it to the engineer.
async fn assigned_case(s: &Server, w: &World) -> Result<String> {
    let number = w.open_case(s, false, "switch port flapping").await?;
    s.post_ok(
        &format!("/api/v1/cases/{number}/assign"),
        &w.dispatcher,
        json!({ "assignee_id": w.engineer.0 }),
    )
    .await?;
    Ok(number)
}

async fn live_sessions(s: &Server, w: &World) -> Result<usize> {
    let (_, v) = s
        .get("/api/v1/remote-sessions?live=true", &w.dispatcher)
        .await?;
    Ok(v.as_array().map(|a| a.len()).unwrap_or(0))
}

/// Waits (at most 10 s) for an ssh process to end, as its session is cut.
fn wait_cut(child: &mut Child, what: &str) -> Result<Duration> {
    let since = Instant::now();
    while child.try_wait()?.is_none() {
        if since.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            bail!("{what}: the session was not cut");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(since.elapsed())
}

#[tokio::test]
async fn ssh_through_the_relay_only_while_a_case_grants_it() -> Result<()> {
    let Some(sshd) = Sshd::start()? else {
        return Ok(());
    };
    let echo = echo_service()?;
    let login = whoami()?;
    let Setup {
        mut s,
        w,
        dir,
        engineer,
        device,
        other,
        mut agent,
        eng,
        known,
    } = setup(None, Some(&sshd), &[sshd.port, echo]).await?;

    // No case: refused, and the refusal is logged.
    let out = eng
        .forward(&engineer, &device, echo, "ping\n")
        .with_context(|| s.log_text())?;
    assert!(
        !out.status.success(),
        "no case, no access: {}",
        text(&out.stdout)
    );
    let a = last_attempt(&s, &w).await?;
    assert_eq!(a["allowed"], false, "{a}");
    assert!(
        a["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no open case"),
        "{a}"
    );

    // A case on the device assigned to the engineer: allowed, to a plain TCP
    // service and, with ssh -J, to the device's sshd.
    let number = assigned_case(&s, &w).await?;
    let out = eng.forward(&engineer, &device, echo, "ping\n")?;
    assert_eq!(text(&out.stdout), "ping\n", "{}", text(&out.stderr));
    let out = eng.forward(&engineer, &number, echo, "by case number\n")?;
    assert_eq!(
        text(&out.stdout),
        "by case number\n",
        "{}",
        text(&out.stderr)
    );
    let out = eng.jump(
        &engineer,
        &device,
        sshd.port,
        &login,
        "echo hello-from-the-device",
    )?;
    assert_eq!(
        text(&out.stdout).trim(),
        "hello-from-the-device",
        "{}\n{}",
        text(&out.stderr),
        sshd.log_text()
    );
    // A port the agent does not allow is refused by the agent.
    let out = eng.forward(&engineer, &device, 9, "x")?;
    assert!(!out.status.success());

    // Another engineer, a device of another customer: refused.
    let key2 = dir.path().join("engineer2");
    let public2 = keygen(&key2)?;
    s.post_ok(
        &format!("/api/v1/users/{}/ssh-keys", w.engineer2.0),
        &w.engineer2.1,
        json!({ "public_key": public2 }),
    )
    .await?;
    let (_, me2) = s.get("/api/v1/me", &w.engineer2.1).await?;
    let engineer2 = me2["username"].as_str().context("username")?.to_string();
    let eng2 = Client::new(dir.path(), "eng2", &key2, &known, &s.ssh)?;
    let out = eng2.forward(&engineer2, &device, echo, "ping\n")?;
    assert!(!out.status.success(), "not their case");
    let out = eng.forward(&engineer, &other, echo, "ping\n")?;
    assert!(!out.status.success(), "another customer's device");
    // A key registered to someone else does not log in as the engineer.
    let out = eng2.forward(&engineer, &device, echo, "ping\n")?;
    assert!(!out.status.success(), "wrong key for the user");

    // A live session is cut when its case is resolved.
    let mut live = eng.forward_child(&engineer, &device, echo)?;
    wait_until("a live session", 20, async || {
        Ok(live_sessions(&s, &w).await? == 1)
    })
    .await?;
    for step in ["responded", "resolved"] {
        s.post_ok(
            &format!("/api/v1/cases/{number}/status"),
            &w.engineer.1,
            json!({ "status": step, "reason": "fixed" }),
        )
        .await?;
    }
    let took = wait_cut(&mut live, "case resolved")?;
    eprintln!("session cut {took:?} after: case resolved");
    let (_, sessions) = s
        .get(
            &format!("/api/v1/remote-sessions?case={number}"),
            &w.dispatcher,
        )
        .await?;
    let cut = sessions
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["end_reason"] == "case resolved or closed")
        })
        .cloned()
        .context(format!("a session cut for the case: {sessions}"))?;
    assert_eq!(cut["live"], false);
    let (_, history) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.dispatcher)
        .await?;
    let remote: Vec<&Value> = history
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == "remote_session").collect())
        .unwrap_or_default();
    assert!(
        remote.len() >= 8,
        "a started and an ended entry per session: {}",
        remote.len()
    );
    assert!(
        remote.iter().any(|e| e["bytes_to_device"] == 5
            && e["bytes_from_device"] == 5
            && e["engineer"]["id"] == w.engineer.0
            && e["end_reason"] == "closed"),
        "bytes each way recorded: {history}"
    );
    // And no new session while the case is resolved.
    let out = eng.forward(&engineer, &device, echo, "ping\n")?;
    assert!(!out.status.success(), "resolved case, no access");

    // Reopened, after a server restart: the agent reconnects by itself.
    s.post_ok(
        &format!("/api/v1/cases/{number}/status"),
        &w.engineer.1,
        json!({ "status": "reopened", "reason": "came back" }),
    )
    .await?;
    s.restart()?;
    tunnels_up(&s, 1).await.with_context(|| agent.log_text())?;
    let out = eng.forward(&engineer, &device, echo, "again\n")?;
    assert_eq!(text(&out.stdout), "again\n", "{}", text(&out.stderr));

    // Where the contract asks for it, a customer user's approval is needed;
    // revoking it cuts the live session.
    let (_, case) = s
        .get(&format!("/api/v1/cases/{number}"), &w.dispatcher)
        .await?;
    let contract = case["contract_id"]
        .as_i64()
        .context("the case's contract")?;
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/contracts/{contract}"),
            &w.dispatcher,
            Some(json!({ "remote_access_approval": true })),
        )
        .await?;
    assert!(st.is_success(), "{st} {v}");
    let out = eng.forward(&engineer, &device, echo, "ping\n")?;
    assert!(!out.status.success(), "approval required");
    let a = last_attempt(&s, &w).await?;
    assert!(
        a["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("approval"),
        "{a}"
    );
    let (st, _) = s
        .post(
            &format!("/api/v1/cases/{number}/remote-approvals"),
            &w.engineer.1,
            json!({ "reason": "self-service", "valid_for": "1h" }),
        )
        .await?;
    assert_eq!(st, 403, "engineers do not approve their own access");
    let approval = s
        .post_ok(
            &format!("/api/v1/cases/{number}/remote-approvals"),
            &w.customer_a,
            json!({ "user_id": w.engineer.0, "reason": "core switch outage", "valid_for": "1h" }),
        )
        .await?;
    let out = eng.forward(&engineer, &device, echo, "approved\n")?;
    assert_eq!(text(&out.stdout), "approved\n", "{}", text(&out.stderr));
    let mut live = eng.forward_child(&engineer, &device, echo)?;
    wait_until("a live approved session", 20, async || {
        Ok(live_sessions(&s, &w).await? == 1)
    })
    .await?;
    s.post_ok(
        &format!("/api/v1/remote-approvals/{}/revoke", approval["id"]),
        &w.customer_a,
        json!({}),
    )
    .await?;
    let took = wait_cut(&mut live, "approval revoked")?;
    eprintln!("session cut {took:?} after: approval revoked");

    // A dispatcher kills a live session through the API.
    s.post_ok(
        &format!("/api/v1/cases/{number}/remote-approvals"),
        &w.customer_a,
        json!({ "reason": "again", "valid_for": "1h" }),
    )
    .await?;
    let mut live = eng.forward_child(&engineer, &device, echo)?;
    let mut id = 0;
    wait_until("a live session to kill", 20, async || {
        let (_, v) = s
            .get("/api/v1/remote-sessions?live=true", &w.dispatcher)
            .await?;
        id = v[0]["id"].as_i64().unwrap_or(0);
        Ok(id > 0)
    })
    .await?;
    let (st, _) = s
        .post(
            &format!("/api/v1/remote-sessions/{id}/kill"),
            &w.engineer2.1,
            json!({}),
        )
        .await?;
    assert_eq!(st, 403, "engineers do not kill sessions");
    let (st, v) = s
        .post(
            &format!("/api/v1/remote-sessions/{id}/kill"),
            &w.dispatcher,
            json!({}),
        )
        .await?;
    assert_eq!(st, 202, "{v}");
    wait_cut(&mut live, "killed through the API")?;

    // Another customer's agent claiming the same target name gets nothing:
    // routing follows the server's record of which agent reaches the device.
    let config_b = agent_config(dir.path(), &s.base, &s.ssh, "b", &[echo])?;
    enroll_agent(&s, &w.dispatcher, w.org_b, &config_b).await?;
    let _agent_b = AgentProcess::start(&config_b, &dir.path().join("agent-b.log"))?;
    tunnels_up(&s, 2).await?;
    agent.kill();
    tunnels_up(&s, 1).await?;
    let out = eng.forward(&engineer, &device, echo, "ping\n")?;
    assert!(
        !out.status.success(),
        "agent A is gone; agent B must not be used"
    );
    let a = last_attempt(&s, &w).await?;
    assert!(
        a["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no tunnel"),
        "{a}"
    );
    Ok(())
}

#[tokio::test]
async fn relay_limits_sessions_per_engineer_and_idle_time() -> Result<()> {
    let echo = echo_service()?;
    // (The agent and the directory must live as long as the test.)
    let Setup {
        s,
        w,
        engineer,
        device,
        eng,
        agent: _agent,
        dir: _dir,
        ..
    } = setup(
        Some("[relay]\nmax_sessions_per_engineer = 1\nidle_timeout = \"2s\"\n"),
        None,
        &[echo],
    )
    .await?;
    assigned_case(&s, &w).await?;
    let mut first = eng.forward_child(&engineer, &device, echo)?;
    wait_until("a live session", 20, async || {
        Ok(live_sessions(&s, &w).await? == 1)
    })
    .await
    .with_context(|| s.log_text())?;
    // A second session at once is one too many.
    let out = eng.forward(&engineer, &device, echo, "second\n")?;
    assert!(!out.status.success(), "over the per-engineer limit");
    let a = last_attempt(&s, &w).await?;
    assert!(
        a["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("max_sessions_per_engineer"),
        "{a}"
    );
    // Nothing moves: the idle timeout ends the first session.
    wait_cut(&mut first, "idle")?;
    let (_, sessions) = s.get("/api/v1/remote-sessions", &w.dispatcher).await?;
    assert_eq!(sessions[0]["end_reason"], "idle for 2s", "{sessions}");
    // And a new one is allowed again.
    let out = eng.forward(&engineer, &device, echo, "third\n")?;
    assert_eq!(text(&out.stdout), "third\n", "{}", text(&out.stderr));
    Ok(())
}

/// A certificate to try: name, signing CA, principal, validity, options,
/// and whether it must log in.
type CertCase<'a> = (&'a str, &'a Path, &'a str, &'a str, &'a [&'a str], bool);

/// `ssh-keygen -s CA`: signs `key`'s public half into `<key>-cert.pub`.
fn sign(ca: &Path, key: &Path, principal: &str, validity: &str, options: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q")
        .arg("-s")
        .arg(ca)
        .args(["-I", "test-cert", "-n", principal, "-V", validity]);
    for o in options {
        cmd.args(["-O", o]);
    }
    let out = cmd.arg(key.with_extension("pub")).output()?;
    if !out.status.success() {
        bail!("ssh-keygen -s: {}", text(&out.stderr));
    }
    Ok(())
}

#[tokio::test]
async fn engineers_log_in_with_certificates_from_a_trusted_ca() -> Result<()> {
    let echo = echo_service()?;
    let cas = tempfile::tempdir()?;
    let ca = cas.path().join("ca");
    let ca_public = keygen(&ca)?;
    let rogue = cas.path().join("rogue");
    keygen(&rogue)?;
    let Setup {
        s,
        w,
        engineer,
        device,
        known,
        agent: _agent,
        dir,
        ..
    } = setup(
        Some(&format!(
            "[relay]\ntrusted_user_ca_keys = [\"{ca_public}\"]\n"
        )),
        None,
        &[echo],
    )
    .await?;
    assigned_case(&s, &w).await?;
    // Keys that are not registered on any user: only their certificates
    // can log them in.
    let cases: [CertCase; 8] = [
        ("good", &ca, engineer.as_str(), "-5m:+1h", &[], true),
        (
            "from-here",
            &ca,
            engineer.as_str(),
            "-5m:+1h",
            &["source-address=127.0.0.0/8"],
            true,
        ),
        (
            "other-principal",
            &ca,
            "someone-else",
            "-5m:+1h",
            &[],
            false,
        ),
        ("expired", &ca, engineer.as_str(), "-2h:-1h", &[], false),
        (
            "forced-command",
            &ca,
            engineer.as_str(),
            "-5m:+1h",
            &["force-command=true"],
            false,
        ),
        (
            "elsewhere",
            &ca,
            engineer.as_str(),
            "-5m:+1h",
            &["source-address=10.0.0.0/8"],
            false,
        ),
        (
            "no-forwarding",
            &ca,
            engineer.as_str(),
            "-5m:+1h",
            &["no-port-forwarding"],
            false,
        ),
        ("rogue-ca", &rogue, engineer.as_str(), "-5m:+1h", &[], false),
    ];
    for (name, signer, principal, validity, options, allowed) in cases {
        let key = dir.path().join(format!("cert-{name}"));
        keygen(&key)?;
        sign(signer, &key, principal, validity, options)?;
        let client = Client::new(dir.path(), name, &key, &known, &s.ssh)?;
        let out = client.forward(&engineer, &device, echo, "cert\n")?;
        if allowed {
            assert_eq!(
                text(&out.stdout),
                "cert\n",
                "{name}: {}\n{}",
                text(&out.stderr),
                s.log_text()
            );
        } else {
            assert!(!out.status.success(), "{name} must be refused");
        }
    }
    let log = s.log_text();
    for why in [
        // (An expired certificate is refused by russh before it reaches
        // the relay's checks.)
        "is not valid for user",
        "force-command",
        "may not be used from",
        "does not permit port forwarding",
        "is signed by a CA the relay does not trust",
    ] {
        assert!(log.contains(why), "the log says why ({why}):\n{log}");
    }
    Ok(())
}

/// The bytes session A sends: a pattern that shows loss, duplication and
/// reordering.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ ((i / 251) % 256) as u8)
        .collect()
}

#[tokio::test]
async fn a_session_that_stops_reading_never_stalls_another_on_the_same_tunnel() -> Result<()> {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let echo = echo_service()?;
    let Setup {
        s,
        w,
        engineer,
        device,
        eng,
        agent,
        dir: _dir,
        ..
    } = setup(None, None, &[echo]).await?;
    assigned_case(&s, &w).await?;

    // Session A sends far more than every buffer on the way holds, and
    // reads nothing back: the echo's answers pile up towards the engineer.
    const SENT: usize = 48 << 20;
    let mut slow = eng.forward_child(&engineer, &device, echo)?;
    let mut stdin = slow.stdin.take().context("stdin")?;
    let mut stdout = slow.stdout.take().context("stdout")?;
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = Arc::clone(&written);
        std::thread::spawn(move || -> std::io::Result<()> {
            let data = pattern(SENT);
            for chunk in data.chunks(64 << 10) {
                stdin.write_all(chunk)?;
                written.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            Ok(())
        })
    };
    // Wait until everything is sent or the writer is blocked (no progress
    // for a second): either way the tunnel's share of A is full.
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = written.load(Ordering::Relaxed);
        if now == last || now >= SENT {
            break;
        }
        if Instant::now() > deadline {
            bail!("session A kept sending for a minute ({now} bytes written)");
        }
        last = now;
    }
    assert!(slow.try_wait()?.is_none(), "session A is still open");

    // Session B, through the same agent tunnel, works meanwhile: round trips,
    // and a transfer larger than any one window.
    for i in 0..5 {
        let line = format!("ping {i}\n");
        let out = eng
            .forward(&engineer, &device, echo, &line)
            .with_context(|| s.log_text())?;
        assert_eq!(text(&out.stdout), line, "{}", text(&out.stderr));
    }
    let bulk = pattern(3 << 20);
    let mut fast = eng.forward_child(&engineer, &device, echo)?;
    let mut fast_in = fast.stdin.take().context("stdin")?;
    let feeder = std::thread::spawn(move || fast_in.write_all(&bulk));
    // (Its output is read while it runs: more than a pipe holds.)
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(fast.wait_with_output()));
    let out = output
        .recv_timeout(Duration::from_secs(60))
        .context("session B's bulk echo did not finish")??;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("feeder panicked"))??;
    assert!(
        out.stdout == pattern(3 << 20),
        "session B's bulk echo differs"
    );
    // And A was never cut: it is still open, and when it reads again every
    // byte comes back, in order.
    assert!(
        slow.try_wait()?.is_none(),
        "session A was cut: {}",
        s.log_text()
    );
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(SENT);
        stdout.read_to_end(&mut got).map(|_| got)
    });
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let status = wait_output(slow, Duration::from_secs(60))?;
    assert_eq!(got.len(), SENT, "{}", text(&status.stderr));
    assert!(got == pattern(SENT), "session A's echo differs");
    drop(agent);
    Ok(())
}

#[tokio::test]
async fn an_engineer_who_floods_without_reading_loses_only_their_session() -> Result<()> {
    let echo = echo_service()?;
    let Setup {
        s,
        w,
        engineer,
        device,
        eng,
        agent: _agent,
        dir: _dir,
        ..
    } = setup(Some("[relay]\nmax_session_buffer_mib = 8\n"), None, &[echo]).await?;
    assigned_case(&s, &w).await?;
    // 48 MiB into an echo, reading nothing back: past 8 MiB ahead of the
    // device, the relay cuts the session rather than hold more.
    let mut flood = eng.forward_child(&engineer, &device, echo)?;
    let mut stdin = flood.stdin.take().context("stdin")?;
    let stdout = flood.stdout.take();
    std::thread::spawn(move || {
        let chunk = pattern(64 << 10);
        for _ in 0..768 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    wait_until("the flooding session is cut", 60, async || {
        let (_, sessions) = s.get("/api/v1/remote-sessions", &w.dispatcher).await?;
        Ok(sessions[0]["end_reason"].is_string())
    })
    .await
    .with_context(|| s.log_text())?;
    // (ssh leaves once what it holds for its stdout has gone somewhere.)
    drop(stdout);
    wait_cut(&mut flood, "ssh after the cut")?;
    let (_, sessions) = s.get("/api/v1/remote-sessions", &w.dispatcher).await?;
    let reason = sessions[0]["end_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("more than the device took, while reading nothing back"),
        "{sessions}"
    );
    // The tunnel is fine: the next session works.
    let out = eng.forward(&engineer, &device, echo, "after\n")?;
    assert_eq!(text(&out.stdout), "after\n", "{}", text(&out.stderr));
    Ok(())
}
