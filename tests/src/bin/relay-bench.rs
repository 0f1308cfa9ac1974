//! Remote-login relay benchmark (issue 5): throughput and connect latency of
//! the stock OpenSSH client through Outpost's relay and agent tunnel, beside
//! OpenSSH itself as the jump host, and the server's memory per idle agent
//! tunnel.
//!
//! One run, every peer started by this program on loopback:
//! 1. **Throughput.** `--bytes` of pseudo-random data (one 1 MiB block
//!    from a xorshift generator, written again and again by a thread) fed
//!    to `ssh ... 'cat > /dev/null'` on a test `sshd`: (a) directly;
//!    (b) with that sshd as the jump host (`ssh -J root@localhost:P -p P
//!    root@127.0.0.1`: the sshd forwards to itself; OpenSSH refuses the
//!    same name twice as a "jumphost loop"); (c) through Outpost
//!    (`ssh -J eng1@relay -p P root@sw-A100`: the real `outpost-server`'s
//!    relay, the real `outpost-agent`'s reverse tunnel, the same sshd).
//!    The runs alternate between the paths, `--runs` each; the time is the
//!    whole `ssh` command (connection set-up included). CPU per path, from
//!    `/proc/PID/stat`: the ssh clients (ssh and its ProxyJump ssh, sampled
//!    every 20 ms), the sshd (its listener with the session processes it
//!    reaped), and for (c) the server and the agent.
//! 2. **Connect latency.** `ssh ... true` through each path, `--connects`
//!    times, alternating; median and p90 of the whole command.
//! 3. **Idle tunnels.** A fresh server (`[agents] heartbeat_interval =
//!    "1h"`, so no agent is declared lost during the run); `--tunnels`
//!    agents enrolled through the API with the agent's own
//!    `outpost_agent::enroll::enroll`, then their tunnels held from this
//!    process with `outpost_agent::tunnel::run` (the agent's code) on a
//!    multi-thread runtime. The server's VmRSS after the enrolments (and
//!    `--settle` seconds) against its VmRSS once its `/metrics` shows every
//!    tunnel up (and `--settle` seconds); also its threads, and the time to
//!    bring the tunnels up. The first round brings them up in two halves
//!    (the second half's growth is the cost of one more tunnel with warm
//!    pools); the tunnels are then closed and, `--rounds` times, brought up
//!    again all at once (does the memory come back, does it keep growing?).
//!
//! The sshd's sessions get `SHLVL=1` (`SetEnv`, then SIGHUP), so that bash
//! does not source the login user's `~/.bashrc` for every command (on the
//! benchmark machine it runs `pyenv init`, about 250 ms). Nothing is
//! asserted except that every transfer completed; SIGINT or SIGTERM stops
//! every process the program started.
//!
//! Build everything it runs in release mode first:
//!   cargo build --release -p outpost-server -p outpost-agent -p outpost-tests
//!   ./target/release/relay-bench

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use outpost_tests::{
    bin, clk_tck, enroll_agent, keygen, wait_until, AgentProcess, Backend, Server, Sshd, World,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Outpost remote-login relay: throughput, connect latency, memory per tunnel")]
struct Args {
    /// Bytes pushed through each throughput run (e.g. 1GiB, 256MiB, 1000000).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    bytes: u64,
    /// Throughput runs per path (alternating between the paths).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// `ssh ... true` runs per path for the connect latency.
    #[arg(long, default_value_t = 20)]
    connects: usize,
    /// Idle agent tunnels held for the memory figure.
    #[arg(long, default_value_t = 1000)]
    tunnels: usize,
    /// Seconds the server is left alone before each memory reading.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Times the tunnels are brought up and closed again: the first round
    /// in two halves, the others all at once (each round's baseline is the
    /// previous round's reading after closing).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Enrolments in flight at once.
    #[arg(long, default_value_t = 8)]
    enroll_concurrency: usize,
    /// Parts to run (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,latency,tunnels"
    )]
    only: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Throughput,
    Latency,
    Tunnels,
}

/// `1GiB`, `256MiB`, `64KiB`, `1G`, `1000000`: binary multiples.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1GiB or 256MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("unknown unit in {text:?} (B, KiB, MiB, GiB)")),
    };
    number
        .checked_mul(1 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is out of range"))
}

/// Set on SIGINT or SIGTERM: every wait gives up, so that the error
/// unwinds through the guards and every child process is stopped.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, giving up early if interrupted.
async fn pause(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        check_interrupted()?;
        tokio::time::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        )
        .await;
    }
    check_interrupted()
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// A child process killed when dropped.
struct Guard(Option<Child>);

impl Guard {
    fn spawn(cmd: &mut Command) -> Result<Guard> {
        Ok(Guard(Some(cmd.spawn().context("starting ssh")?)))
    }

    /// Waits (polling every millisecond) until the child exits or `limit`;
    /// with `cpu`, samples the CPU time of the child and its descendants
    /// every 20 ms.
    fn wait(&mut self, limit: Duration, mut cpu: Option<&mut TreeCpu>) -> Result<ExitStatus> {
        let child = self.0.as_mut().context("no child")?;
        let root = child.id();
        let deadline = Instant::now() + limit;
        let mut next_sample = Instant::now();
        loop {
            if let Some(cpu) = cpu.as_deref_mut() {
                if Instant::now() >= next_sample {
                    cpu.sample(root);
                    next_sample += Duration::from_millis(20);
                }
            }
            if let Some(status) = child.try_wait()? {
                self.0 = None;
                return Ok(status);
            }
            check_interrupted()?;
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.0 = None;
                bail!("did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The CPU time of a process tree that ends during the measurement: the
/// last reading of each process's own time (so a process that exits loses
/// at most one sampling interval). Used for the ssh client and the
/// ProxyJump `ssh -W` it starts, which is not always reaped by its parent
/// (then its time never reaches this program's children's time).
#[derive(Debug, Default)]
struct TreeCpu {
    seen: HashMap<u32, u64>,
}

impl TreeCpu {
    fn sample(&mut self, pid: u32) {
        if let Some((_, own, _)) = read_stat(pid) {
            let e = self.seen.entry(pid).or_default();
            *e = (*e).max(own);
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            self.sample(child);
        }
    }

    fn ticks(&self) -> u64 {
        self.seen.values().sum()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------- /proc

/// `(ppid, utime + stime, cutime + cstime)` from `/proc/PID/stat`; the
/// last is the CPU time of the children the process has reaped (and of
/// theirs).
fn read_stat(pid: u32) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15,
    // cutime 16, cstime 17.
    let num = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
    Some((
        u32::try_from(num(1)?).ok()?,
        num(11)? + num(12)?,
        num(13)? + num(14)?,
    ))
}

/// The process's own CPU time, ticks.
fn cpu_ticks(pid: u32) -> u64 {
    read_stat(pid).map(|(_, own, _)| own).unwrap_or(0)
}

/// The process's CPU time with that of the children it has reaped, ticks.
fn cpu_ticks_with_children(pid: u32) -> u64 {
    read_stat(pid)
        .map(|(_, own, children)| own + children)
        .unwrap_or(0)
}

/// A numeric field of `/proc/PID/status` (`VmRSS:` in KiB, `Threads:`).
fn status_field(pid: u32, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The process's threads by name, with counts (`tokio-rt-worker x2, ...`).
fn thread_names(pid: u32) -> String {
    let mut names: Vec<(String, usize)> = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string();
            match names.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => names.push((name, 1)),
            }
        }
    }
    names.sort();
    names
        .iter()
        .map(|(n, c)| format!("{n} x{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The live child of this process whose command name is `comm`, the
/// youngest if several.
fn child_pid(comm: &str) -> Option<u32> {
    let me = std::process::id();
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some((ppid, _, _)) = read_stat(pid) else {
            continue;
        };
        if ppid == me
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        {
            found = found.max(Some(pid));
        }
    }
    found
}

// ---------------------------------------------------------------- ssh

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path3 {
    Direct,
    OpenSshJump,
    Outpost,
}

const PATHS: [Path3; 3] = [Path3::Direct, Path3::OpenSshJump, Path3::Outpost];

/// The paths, starting with the `i`-th (mod 3).
fn rotated(i: usize) -> [Path3; 3] {
    let mut p = PATHS;
    p.rotate_left(i % PATHS.len());
    p
}

impl Path3 {
    fn label(self) -> &'static str {
        match self {
            Path3::Direct => "direct (ssh to sshd)",
            Path3::OpenSshJump => "OpenSSH jump (ssh -J sshd)",
            Path3::Outpost => "Outpost (ssh -J relay, agent tunnel)",
        }
    }
}

/// Everything phases 1 and 2 need: the sshd, the server with a world, the
/// agent process holding its tunnel, an open case assigned to the engineer,
/// and an OpenSSH client configuration pinning every host key. Dropping it
/// stops every process.
struct Rig {
    // Field order is drop order: the agent first, then the server, the sshd.
    agent: AgentProcess,
    server: Server,
    sshd: Sshd,
    world: World,
    dir: tempfile::TempDir,
    config: PathBuf,
    login: String,
    engineer: String,
    device: String,
    case: String,
    server_pid: u32,
    agent_pid: u32,
    sshd_pid: u32,
}

/// CPU ticks of the processes on the paths, cumulative.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    /// The sshd listener and every session process it reaped.
    sshd: u64,
    server: u64,
    agent: u64,
}

impl Cpu {
    /// Seconds used since `before`: sshd, server, agent.
    fn since(&self, before: &Cpu, tck: f64) -> [f64; 3] {
        [
            self.sshd.saturating_sub(before.sshd) as f64 / tck,
            self.server.saturating_sub(before.server) as f64 / tck,
            self.agent.saturating_sub(before.agent) as f64 / tck,
        ]
    }
}

/// Root's `~/.bashrc` on the benchmark machine runs `pyenv init` (about
/// 250 ms), and Debian's bash sources it for every command sshd starts
/// (when SHLVL is unset or 0). Make the sshd set `SHLVL=1` in its sessions
/// and reload it (SIGHUP: it re-executes itself with its config), so that
/// the latency measured is the paths', not a shell profile's. Returns the
/// sshd's pid.
fn skip_shell_profile(sshd: &Sshd) -> Result<u32> {
    let dir = sshd.dir.path();
    let pid: u32 = std::fs::read_to_string(dir.join("sshd.pid"))
        .context("the sshd's pid file")?
        .trim()
        .parse()
        .context("the sshd's pid file")?;
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("sshd_config"))?;
    writeln!(config, "SetEnv SHLVL=1")?;
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    ensure!(hup.success(), "kill -HUP {pid} (sshd) failed");
    std::thread::sleep(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", sshd.port)).is_err() {
        if Instant::now() > deadline {
            bail!(
                "sshd did not listen again after SIGHUP: {}",
                sshd.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(pid)
}

impl Rig {
    async fn start() -> Result<Rig> {
        let sshd =
            Sshd::start()?.context("OpenSSH's sshd is needed (apt-get install openssh-server)")?;
        let sshd_pid = skip_shell_profile(&sshd)?;
        let server = Server::start_with_config(
            Backend::Sqlite,
            Some("[agents]\nheartbeat_interval = \"1h\"\n"),
        )
        .await?;
        let server_pid = child_pid("outpost-server").context("the server's pid")?;
        let world = World::build(&server).await?;
        let dir = tempfile::tempdir()?;
        let login = {
            let out = Command::new("id").arg("-un").output()?;
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };

        // The engineer's key: registered on their user and let into the sshd.
        let key = dir.path().join("engineer");
        let public = keygen(&key)?;
        server
            .post_ok(
                &format!("/api/v1/users/{}/ssh-keys", world.engineer.0),
                &world.engineer.1,
                json!({ "public_key": public }),
            )
            .await?;
        sshd.authorize(&public)?;
        let (_, me) = server.get("/api/v1/me", &world.engineer.1).await?;
        let engineer = me["username"].as_str().context("username")?.to_string();

        // The agent, enrolled, with the sshd as its one target.
        let agent_config = dir.path().join("agent.toml");
        std::fs::write(
            &agent_config,
            format!(
                "[server]\nurl = \"{}\"\nidentity_dir = \"{}\"\n\n[host]\nenabled = false\n\n\
                 [tunnel]\nrelay = \"{}\"\n\n\
                 [[tunnel.targets]]\nname = \"sw1\"\naddress = \"127.0.0.1\"\nports = [{}]\n",
                server.base,
                dir.path().join("agent-identity").display(),
                server.ssh,
                sshd.port
            ),
        )?;
        enroll_agent(&server, &world.dispatcher, world.org_a, &agent_config).await?;
        let identity: Value = serde_json::from_str(&std::fs::read_to_string(
            dir.path().join("agent-identity").join("identity.json"),
        )?)?;
        let relay_key = identity["ssh_host_key"]
            .as_str()
            .context("ssh_host_key at enrolment")?
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let agent_uuid = identity["agent_id"].as_str().context("agent_id")?;
        let agent = AgentProcess::start(&agent_config, &dir.path().join("agent.log"))?;
        let agent_pid = child_pid("outpost-agent").context("the agent's pid")?;
        let (st, v) = server
            .call(
                Method::PUT,
                &format!("/api/v1/devices/{}/agent", world.device_a),
                &world.dispatcher,
                Some(json!({ "agent_id": agent_uuid, "target": "sw1" })),
            )
            .await?;
        ensure!(st.is_success(), "binding the device to the agent: {st} {v}");
        let (_, device) = server
            .get(
                &format!("/api/v1/devices/{}", world.device_a),
                &world.dispatcher,
            )
            .await?;
        let device = device["name"].as_str().context("device name")?.to_string();
        wait_for_tunnels(&server, 1, Duration::from_secs(30))
            .await
            .with_context(|| agent.log_text())?;

        // An open case on the device, assigned to the engineer: the grant.
        let case = world.open_case(&server, false, "relay benchmark").await?;
        server
            .post_ok(
                &format!("/api/v1/cases/{case}/assign"),
                &world.dispatcher,
                json!({ "assignee_id": world.engineer.0 }),
            )
            .await?;

        // The client: the engineer's key; known_hosts pins the sshd (by
        // address and by device name) and the relay.
        let (relay_host, relay_port) = server.ssh.rsplit_once(':').context("relay address")?;
        let known = dir.path().join("known_hosts");
        std::fs::write(
            &known,
            format!(
                "[127.0.0.1]:{port} {key}\n[localhost]:{port} {key}\n[{device}]:{port} {key}\n[{relay_host}]:{relay_port} {relay_key}\n",
                port = sshd.port,
                key = sshd.host_key,
            ),
        )?;
        let config = dir.path().join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
                 GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  \
                 BatchMode yes\n  ConnectTimeout 10\n  Compression no\n  ControlMaster no\n  \
                 ControlPath none\n  LogLevel ERROR\n",
                key.display(),
                known.display()
            ),
        )?;
        let rig = Rig {
            agent,
            server,
            sshd,
            world,
            dir,
            config,
            login,
            engineer,
            device,
            case,
            server_pid,
            agent_pid,
            sshd_pid,
        };
        let out = rig
            .ssh(Path3::Direct, &[], "echo $SHLVL")
            .stdin(Stdio::null())
            .output()?;
        let shlvl = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if shlvl != "2" {
            eprintln!(
                "warning: the sshd's sessions did not get SHLVL=1 (remote SHLVL {shlvl:?}); \
                 the login shell's profile is part of every figure"
            );
        }
        Ok(rig)
    }

    /// A table row: the agent's and the server's resident memory now.
    fn memory(&self, when: &str) -> String {
        let kib = |pid: u32, field: &str| {
            status_field(pid, field).map_or_else(|| "?".to_string(), |k| k.to_string())
        };
        format!(
            "| {when} | {} ({}) | {} ({}) |",
            kib(self.agent_pid, "VmRSS:"),
            kib(self.agent_pid, "VmHWM:"),
            kib(self.server_pid, "VmRSS:"),
            kib(self.server_pid, "VmHWM:")
        )
    }

    fn cpu(&self) -> Cpu {
        Cpu {
            sshd: cpu_ticks_with_children(self.sshd_pid),
            server: cpu_ticks(self.server_pid),
            agent: cpu_ticks(self.agent_pid),
        }
    }

    /// The `ssh` command for `path` running `remote` (extra options first).
    fn ssh(&self, path: Path3, extra: &[&str], remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F").arg(&self.config).args(extra);
        let port = self.sshd.port.to_string();
        match path {
            Path3::Direct => {
                c.args(["-p", &port])
                    .arg(format!("{}@127.0.0.1", self.login));
            }
            Path3::OpenSshJump => {
                // The jump host by another name: OpenSSH refuses a jump host
                // equal to the destination ("jumphost loop").
                c.args(["-J", &format!("{}@localhost:{port}", self.login)])
                    .args(["-p", &port])
                    .arg(format!("{}@127.0.0.1", self.login));
            }
            Path3::Outpost => {
                c.args(["-J", &format!("{}@{}", self.engineer, self.server.ssh)])
                    .args(["-p", &port])
                    .arg(format!("{}@{}", self.login, self.device));
            }
        }
        c.arg(remote);
        c
    }

    fn stderr_file(&self) -> Result<(PathBuf, std::fs::File)> {
        let path = self.dir.path().join("ssh.stderr");
        Ok((path.clone(), std::fs::File::create(&path)?))
    }

    /// Pushes `bytes` through `ssh ... 'cat > /dev/null'`; the wall time
    /// and the client side's CPU ticks (ssh and its ProxyJump ssh).
    fn push(&self, path: Path3, bytes: u64, block: &Arc<Vec<u8>>) -> Result<(Duration, u64)> {
        let (errors, stderr) = self.stderr_file()?;
        let limit = Duration::from_secs(60 + bytes / (4 << 20));
        let started = Instant::now();
        let mut child = Guard::spawn(
            self.ssh(path, &[], "cat > /dev/null")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(stderr),
        )?;
        let mut stdin = child
            .0
            .as_mut()
            .and_then(|c| c.stdin.take())
            .context("ssh stdin")?;
        let block = Arc::clone(block);
        let feeder = std::thread::spawn(move || -> std::io::Result<u64> {
            let mut left = bytes;
            while left > 0 {
                let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
                stdin.write_all(&block[..n])?;
                left -= n as u64;
            }
            Ok(bytes)
        });
        let mut cpu = TreeCpu::default();
        let status = child
            .wait(limit, Some(&mut cpu))
            .with_context(|| format!("{}: ssh", path.label()))?;
        let elapsed = started.elapsed();
        let fed = feeder.join();
        if !status.success() {
            bail!(
                "{}: ssh exited with {status}: {}",
                path.label(),
                std::fs::read_to_string(&errors).unwrap_or_default()
            );
        }
        match fed {
            Ok(Ok(n)) if n == bytes => Ok((elapsed, cpu.ticks())),
            Ok(Ok(n)) => bail!("{}: fed {n} of {bytes} bytes", path.label()),
            Ok(Err(err)) => bail!("{}: feeding ssh: {err}", path.label()),
            Err(_) => bail!("{}: the feeder thread panicked", path.label()),
        }
    }

    /// `ssh ... true`: the wall time of the whole command.
    fn connect(&self, path: Path3) -> Result<Duration> {
        let (errors, stderr) = self.stderr_file()?;
        let started = Instant::now();
        let mut child = Guard::spawn(
            self.ssh(path, &[], "true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr),
        )?;
        let status = child.wait(Duration::from_secs(30), None)?;
        let elapsed = started.elapsed();
        if !status.success() {
            bail!(
                "{}: ssh true exited with {status}: {}",
                path.label(),
                std::fs::read_to_string(&errors).unwrap_or_default()
            );
        }
        Ok(elapsed)
    }

    /// The ciphers each SSH connection of `path` negotiated (`ssh -v`).
    fn ciphers(&self, path: Path3) -> Result<Vec<String>> {
        let out = self
            .ssh(path, &["-v", "-o", "LogLevel=DEBUG1"], "true")
            .stdin(Stdio::null())
            .output()?;
        Ok(String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("kex: client->server cipher:"))
            .map(|l| {
                l.split("cipher: ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or("?")
                    .to_string()
            })
            .collect())
    }

    /// The bytes the relay recorded towards the device for the newest
    /// session of the case, once it has ended.
    async fn last_session_bytes(&self) -> Result<u64> {
        let mut bytes = 0;
        wait_until("the relay to record the session's end", 20, async || {
            let (_, v) = self
                .server
                .get(
                    &format!("/api/v1/remote-sessions?case={}", self.case),
                    &self.world.dispatcher,
                )
                .await?;
            let newest = &v[0];
            if newest["ended_at"].is_null() {
                return Ok(false);
            }
            bytes = newest["bytes_to_device"].as_u64().unwrap_or(0);
            Ok(true)
        })
        .await?;
        Ok(bytes)
    }
}

/// The value of `name` in the server's `/metrics` (unlabelled), if present.
async fn server_metric(s: &Server, name: &str) -> Option<f64> {
    let reply = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .ok()?;
    let text = reply.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn wait_for_tunnels(s: &Server, n: usize, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let now = server_metric(s, "outpost_relay_tunnels").await;
        if now == Some(n as f64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("outpost_relay_tunnels is {now:?}, not {n}, after {limit:?}");
        }
        pause(Duration::from_millis(100)).await?;
    }
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// Nearest-rank percentile.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// One 1 MiB block of xorshift64 output.
fn random_block() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = Vec::with_capacity(1 << 20);
    while block.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block.extend_from_slice(&x.to_le_bytes());
    }
    block
}

/// Warning and error lines of a log, with their count.
fn problems(log: &str) -> (usize, Vec<String>) {
    let lines: Vec<String> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_string)
        .collect();
    (lines.len(), lines)
}

fn print_problems(name: &str, log: &str) {
    let (n, lines) = problems(log);
    println!(
        "{name} log: {} lines, {n} warnings or errors",
        log.lines().count()
    );
    // Distinct messages (the part after the level), with counts.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for l in &lines {
        let key: String = l
            .split_once("WARN")
            .or_else(|| l.split_once("ERROR"))
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| l.clone())
            .chars()
            .take(160)
            .collect();
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => *c += 1,
            None => seen.push((key, 1)),
        }
    }
    for (k, c) in seen.iter().take(10) {
        println!("  {c} x {k}");
    }
}

// ---------------------------------------------------------------- phases

async fn throughput(rig: &Rig, args: &Args, tck: f64) -> Result<()> {
    let block = Arc::new(random_block());
    println!(
        "\n## Throughput: {} MiB per run through `ssh ... 'cat > /dev/null'`, {} runs per path\n",
        args.bytes as f64 / MIB,
        args.runs
    );
    for path in PATHS {
        println!(
            "ciphers (one per SSH connection), {}: {}",
            path.label(),
            rig.ciphers(path)?.join(", ")
        );
    }
    // Warm-up (page cache, the first forks): one small push per path.
    for path in PATHS {
        rig.push(path, 1 << 20, &block)?;
    }
    let gib = args.bytes as f64 / GIB;
    let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
    // CPU seconds per GiB: client, sshd, server, agent, total.
    let mut cpu: HashMap<&str, Vec<[f64; 5]>> = HashMap::new();
    let mut outpost_runs = Vec::new();
    for run in 0..args.runs {
        // Each round starts with another path, so none always follows the
        // same one (the previous session's end is still being recorded).
        for path in rotated(run) {
            let before = rig.cpu();
            let (elapsed, client) = rig.push(path, args.bytes, &block)?;
            // sshd reaps its session processes; their time joins its own.
            std::thread::sleep(Duration::from_millis(300));
            let [sshd, server, agent] = rig.cpu().since(&before, tck);
            let used = [client as f64 / tck, sshd, server, agent];
            let rate = args.bytes as f64 / MIB / elapsed.as_secs_f64();
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            eprintln!(
                "run {}: {:<40} {:7.1} MiB/s {:6.2} s  CPU s: client {:.2} sshd {:.2} server {:.2} agent {:.2}  load {}",
                run + 1,
                path.label(),
                rate,
                elapsed.as_secs_f64(),
                used[0],
                used[1],
                used[2],
                used[3],
                load.split_whitespace().next().unwrap_or("?")
            );
            if path == Path3::Outpost {
                let recorded = rig.last_session_bytes().await?;
                ensure!(
                    recorded >= args.bytes,
                    "the relay recorded {recorded} bytes to the device, fewer than the {} sent",
                    args.bytes
                );
                outpost_runs.push((elapsed.as_secs_f64(), used[2], used[3], recorded));
            }
            rates.entry(path.label()).or_default().push(rate);
            cpu.entry(path.label()).or_default().push([
                used[0] / gib,
                used[1] / gib,
                used[2] / gib,
                used[3] / gib,
                used.iter().sum::<f64>() / gib,
            ]);
        }
    }
    println!();
    println!(
        "| path | MiB/s per run | median MiB/s | CPU s per GiB (medians): ssh client | sshd | outpost-server | outpost-agent | total |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for path in PATHS {
        let r = rates.get(path.label()).cloned().unwrap_or_default();
        let c = cpu.get(path.label()).cloned().unwrap_or_default();
        let col = |i: usize| median(&c.iter().map(|x| x[i]).collect::<Vec<_>>());
        let dash = |v: f64| {
            if path == Path3::Outpost {
                format!("{v:.2}")
            } else {
                "-".into()
            }
        };
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.2} | {} | {} | {:.2} |",
            path.label(),
            r.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            median(&r),
            col(0),
            col(1),
            dash(col(2)),
            dash(col(3)),
            col(4)
        );
    }
    let jump = median(rates.get(Path3::OpenSshJump.label()).map_or(&[][..], |v| v));
    let outpost = median(rates.get(Path3::Outpost.label()).map_or(&[][..], |v| v));
    println!(
        "\nOutpost / OpenSSH jump (medians): {:.2} (target: at least 0.80)",
        outpost / jump
    );
    println!(
        "\n| Outpost run | wall s | server CPU s | agent CPU s | bytes the relay recorded to the device |"
    );
    println!("|---|---|---|---|---|");
    for (i, (wall, server, agent, recorded)) in outpost_runs.iter().enumerate() {
        println!(
            "| {} | {wall:.2} | {server:.2} | {agent:.2} | {recorded} |",
            i + 1
        );
    }
    Ok(())
}

fn latency(rig: &Rig, args: &Args) -> Result<()> {
    println!(
        "\n## Connect latency: `ssh ... true`, {} runs per path\n",
        args.connects
    );
    for path in PATHS {
        rig.connect(path)?;
    }
    let mut ms: HashMap<&str, Vec<f64>> = HashMap::new();
    for i in 0..args.connects {
        for path in rotated(i) {
            // Each connection on its own: the previous session's end
            // (recorded on the case by the relay, sshd's clean-up) is done.
            std::thread::sleep(Duration::from_millis(300));
            let t = rig.connect(path)?;
            ms.entry(path.label())
                .or_default()
                .push(t.as_secs_f64() * 1000.0);
        }
    }
    println!("| path | median ms | p90 ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    for path in PATHS {
        let v = ms.get(path.label()).cloned().unwrap_or_default();
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            path.label(),
            median(&v),
            percentile(&v, 0.9),
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max)
        );
    }
    let jump = median(ms.get(Path3::OpenSshJump.label()).map_or(&[][..], |v| v));
    let outpost = median(ms.get(Path3::Outpost.label()).map_or(&[][..], |v| v));
    println!(
        "\nOutpost - OpenSSH jump (medians): {:+.1} ms (target: at most +10 ms)",
        outpost - jump
    );
    Ok(())
}

/// POST JSON with a bearer token; the body of a 2xx answer.
async fn post_json(http: &reqwest::Client, url: &str, token: &str, body: Value) -> Result<Value> {
    let resp = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("POST {url} -> {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

async fn tunnels(args: &Args, tck: f64) -> Result<()> {
    use outpost_agent::config::{HostPort, TunnelConfig, TunnelTarget};
    use outpost_agent::identity::Identity;
    use outpost_agent::metrics::Metrics;
    use std::sync::atomic::Ordering;
    use tokio::sync::watch;

    let n = args.tunnels;
    println!("\n## Idle tunnels: {n} agents holding a tunnel to a fresh server\n");
    let server = Server::start_with_config(
        Backend::Sqlite,
        Some("[agents]\nheartbeat_interval = \"1h\"\n"),
    )
    .await?;
    let pid = child_pid("outpost-server").context("the server's pid")?;
    let dir = tempfile::tempdir()?;
    let org = server
        .post_ok(
            "/api/v1/organizations",
            &server.admin_token,
            json!({ "customer_code": "RB100", "name": "Relay bench", "phone": "+49 40 5550000" }),
        )
        .await?;
    let org_id = org["id"].as_i64().context("organisation id")?;

    // Enrol: a one-time token each, then the agent's own enrolment code.
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.enroll_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, base, token) = (
            server.http.clone(),
            server.base.clone(),
            server.admin_token.clone(),
        );
        let dir = dir.path().join(format!("agent-{i}"));
        let gate = Arc::clone(&gate);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let t = post_json(
                &http,
                &format!("{base}/api/v1/enrollment-tokens"),
                &token,
                json!({ "organization_id": org_id }),
            )
            .await?;
            let one_time = t["token"].as_str().context("enrolment token")?;
            outpost_agent::enroll::enroll(&base, one_time, None, &dir, false).await?;
            anyhow::Ok(dir)
        });
    }
    let mut dirs = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        dirs.push(done??);
    }
    let enrol_secs = started.elapsed().as_secs_f64();
    eprintln!("enrolled {n} agents in {enrol_secs:.1} s");
    let mut identities = Vec::with_capacity(n);
    for d in &dirs {
        identities.push(Identity::load(d)?);
    }

    eprintln!("settling {} s before the baseline", args.settle);
    pause(Duration::from_secs(args.settle)).await?;
    let me = std::process::id();
    let mut rss_before = status_field(pid, "VmRSS:").context("server VmRSS")?;

    let (relay_host, relay_port) = server.ssh.rsplit_once(':').context("relay address")?;
    let tunnel_config = Arc::new(TunnelConfig {
        relay: Some(HostPort {
            host: relay_host.to_string(),
            port: relay_port.parse().context("relay port")?,
        }),
        targets: vec![TunnelTarget {
            name: "dev".into(),
            address: "127.0.0.1".into(),
            ports: vec![22],
        }],
        ..TunnelConfig::default()
    });
    let (_config_tx, config_rx) = watch::channel(tunnel_config);
    println!(
        "| round | tunnels brought up | bring-up s | server CPU s (bring-up) | VmRSS KiB ({} s later) | KiB per tunnel (from round start) | threads | server CPU s ({} s idle) |",
        args.settle, args.settle
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for round in 1..=args.rounds.max(1) {
        // Round 1 in two halves (the second half's slope is the cost of one
        // more tunnel once pools and caches are warm); later rounds all at
        // once, after the previous round's tunnels closed.
        let steps: Vec<usize> = if round == 1 && n >= 2 {
            vec![n / 2, n]
        } else {
            vec![n]
        };
        let my_rss0 = status_field(me, "VmRSS:").unwrap_or(0);
        let (stop_tx, stop_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let mut running = tokio::task::JoinSet::new();
        let mut from = 0;
        let mut rss_prev = rss_before;
        println!(
            "| {round} | (before) | | | {rss_before} | | {} | |",
            status_field(pid, "Threads:").unwrap_or(0)
        );
        for step in steps {
            let cpu0 = cpu_ticks(pid);
            let started = Instant::now();
            // The agent's own tunnel code, all of this step's at once.
            for (identity, key) in identities.get(from..step).unwrap_or_default() {
                running.spawn(outpost_agent::tunnel::run(
                    config_rx.clone(),
                    identity.clone(),
                    key.clone(),
                    Arc::clone(&metrics),
                    stop_rx.clone(),
                ));
            }
            let limit = Duration::from_secs(120 + n as u64 / 5);
            let up = wait_for_tunnels(&server, step, limit).await;
            let up_secs = started.elapsed().as_secs_f64();
            let up_cpu = (cpu_ticks(pid) - cpu0) as f64 / tck;
            if let Err(err) = up {
                print_problems("server", &server.log_text());
                let _ = stop_tx.send(true);
                return Err(err.context(format!(
                    "round {round}: {} tunnel connections made by the agents",
                    metrics.tunnel_connects.load(Ordering::Relaxed)
                )));
            }
            eprintln!(
                "round {round}: {} tunnels up in {up_secs:.1} s ({step} in all); settling {} s",
                step - from,
                args.settle
            );
            let cpu1 = cpu_ticks(pid);
            pause(Duration::from_secs(args.settle)).await?;
            let idle_cpu = (cpu_ticks(pid) - cpu1) as f64 / tck;
            let rss = status_field(pid, "VmRSS:").context("server VmRSS")?;
            let threads = status_field(pid, "Threads:").unwrap_or(0);
            println!(
                "| {round} | {} ({step} in all) | {up_secs:.1} | {up_cpu:.2} | {rss} | {:.1} (this step: {:.1}) | {threads} | {idle_cpu:.2} |",
                step - from,
                (rss as f64 - rss_before as f64) / step as f64,
                (rss as f64 - rss_prev as f64) / (step - from) as f64,
            );
            rss_prev = rss;
            from = step;
        }
        let still = server_metric(&server, "outpost_relay_tunnels").await;
        let hwm = status_field(pid, "VmHWM:").unwrap_or(0);
        let anon = status_field(pid, "RssAnon:").unwrap_or(0);
        let locked = status_field(pid, "VmLck:").unwrap_or(0);
        let thread_names = thread_names(pid);
        let my_rss1 = status_field(me, "VmRSS:").unwrap_or(0);
        let connects = metrics.tunnel_connects.load(Ordering::Relaxed);

        // Close them all; what the server gives back.
        let _ = stop_tx.send(true);
        let closing = Instant::now();
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while running.join_next().await.is_some() {}
        })
        .await;
        running.abort_all();
        let down = wait_for_tunnels(&server, 0, Duration::from_secs(30)).await;
        let down_secs = closing.elapsed().as_secs_f64();
        pause(Duration::from_secs(args.settle)).await?;
        let rss_after = status_field(pid, "VmRSS:").unwrap_or(0);
        let threads_after = status_field(pid, "Threads:").unwrap_or(0);
        println!("| {round} | (all closed) | | | {rss_after} | | {threads_after} | |");
        notes.push(format!(
            "round {round}: tunnels on the relay after settling: {still:?}; connections the agents made: \
             {connects} (more than {n} means reconnects); closing: {} in {down_secs:.1} s; server with all up: VmHWM {hwm} KiB, RssAnon {anon} KiB, VmLck {locked} KiB, threads: {thread_names}; \
             this process (the agents' side, one runtime): VmRSS {my_rss0} -> {my_rss1} KiB, {:.1} KiB per tunnel",
            if down.is_ok() { "all gone" } else { "NOT all gone" },
            (my_rss1 as f64 - my_rss0 as f64) / n as f64
        ));
        rss_before = rss_after;
    }
    println!("\nenrolment of {n} agents: {enrol_secs:.1} s; target: under 50 KB per tunnel");
    for note in notes {
        println!("{note}");
    }
    print_problems("server", &server.log_text());
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    // On a worker thread: the main thread blocks while it waits for ssh.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("relay-bench: interrupted; stopping every process it started");
        INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    for b in ["outpost-server", "outpost-agent"] {
        if !bin(b).exists() {
            bail!(
                "{} is missing: cargo build --release -p outpost-server -p outpost-agent -p outpost-tests",
                bin(b).display()
            );
        }
    }
    let tck = clk_tck();
    println!(
        "relay-bench: binaries from {}; {} CPUs; load average {}",
        bin("").display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if args.only.contains(&Part::Throughput) || args.only.contains(&Part::Latency) {
        let rig = Rig::start().await?;
        let mut memory = vec![rig.memory("tunnel up, no session yet")];
        if args.only.contains(&Part::Throughput) {
            throughput(&rig, &args, tck).await?;
            memory.push(rig.memory("after the throughput runs"));
        }
        if args.only.contains(&Part::Latency) {
            latency(&rig, &args)?;
            memory.push(rig.memory("after the connect runs"));
        }
        println!("\n| when | outpost-agent VmRSS KiB (VmHWM) | outpost-server VmRSS KiB (VmHWM) |");
        println!("|---|---|---|");
        for line in memory {
            println!("{line}");
        }
        println!();
        print_problems("server", &rig.server.log_text());
        print_problems("agent", &rig.agent.log_text());
    }
    if args.only.contains(&Part::Tunnels) {
        tunnels(&args, tck).await?;
    }
    Ok(())
}
