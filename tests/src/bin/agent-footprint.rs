//! Agent footprint (issue 4, benchmark a): resident memory and CPU of the real
//! `outpost-agent`, idle and while polling SNMP targets, beside
//! `prometheus-node-exporter` and `zabbix-agent2` started in the same run.
//!
//! One run:
//! 1. starts the real `outpost-server` (SQLite in a temporary directory),
//!    bootstraps an admin, creates an organisation and an enrolment token
//!    through the API;
//! 2. starts `--snmpd` net-snmp `snmpd` processes on loopback, each listening
//!    on several UDP ports, so that `--targets` target addresses exist (each
//!    port of one process answers with that process's data);
//! 3. enrols and runs `outpost-agent` with `[host]` on, the trap receiver on
//!    and no SNMP targets, beside `prometheus-node-exporter` and
//!    `zabbix-agent2` (own config, loopback port, no server): the **idle**
//!    phase, `--idle` seconds, nobody scraped;
//! 4. writes the targets into the agent's configuration and sends SIGHUP:
//!    the **load** phase, `--poll` seconds, the agent polling every
//!    `--interval`, node_exporter scraped and zabbix-agent2 asked for a few
//!    passive items every `--scrape` seconds.
//!
//! Every `--sample-ms` it reads VmRSS and the thread count from
//! `/proc/PID/status` and utime+stime from `/proc/PID/stat` of each process
//! (and of its live descendants), then prints one table. Nothing is asserted.
//!
//! Build everything it runs in release mode first:
//!   cargo build --release -p outpost-server -p outpost-agent -p outpost-tests
//!   ./target/release/agent-footprint

use anyhow::{bail, Context, Result};
use clap::Parser;
use outpost_tests::{bin, clk_tck, free_port, free_udp_port, Backend, Server};
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Outpost agent footprint beside node_exporter and zabbix-agent2")]
struct Args {
    /// Measure without the agent's reverse SSH tunnel to the server's relay
    /// (by default the tunnel is up through both phases).
    #[arg(long)]
    no_tunnel: bool,
    /// SNMP targets the agent polls in the load phase.
    #[arg(long, default_value_t = 50)]
    targets: usize,
    /// snmpd processes answering them (targets are spread over their ports).
    #[arg(long, default_value_t = 5)]
    snmpd: usize,
    /// The agent's polling interval, seconds.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Length of the idle phase (no targets, nobody scraped), seconds.
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// Length of the load phase (polling, scraping), seconds.
    #[arg(long, default_value_t = 180)]
    poll: u64,
    /// Scrape node_exporter and query zabbix-agent2 every this many seconds.
    #[arg(long, default_value_t = 15)]
    scrape: u64,
    /// Time between two samples of /proc, milliseconds.
    #[arg(long, default_value_t = 1000)]
    sample_ms: u64,
    /// The agent binary to measure (default: outpost-agent next to this program).
    #[arg(long, value_name = "FILE")]
    agent: Option<PathBuf>,
}

/// A program the run needs, and the Debian package that has it.
struct Needed {
    path: &'static str,
    package: &'static str,
}

const NEEDED: [Needed; 4] = [
    Needed {
        path: "/usr/sbin/snmpd",
        package: "snmpd",
    },
    Needed {
        path: "/usr/bin/snmpget",
        package: "snmp",
    },
    Needed {
        path: "/usr/bin/prometheus-node-exporter",
        package: "prometheus-node-exporter",
    },
    Needed {
        path: "/usr/sbin/zabbix_agent2",
        package: "zabbix-agent2",
    },
];

/// A child process killed when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One reading of a process tree.
#[derive(Clone, Copy, Default)]
struct Reading {
    rss_kib: u64,
    ticks: u64,
    threads: u64,
    processes: u64,
}

/// The readings of one measured row (a process tree, or several).
struct Row {
    name: String,
    pids: Vec<u32>,
    samples: Vec<(Instant, Reading)>,
}

/// Statistics of a row over one phase.
struct PhaseStats {
    rss_mean_mib: f64,
    rss_max_mib: f64,
    cpu_percent: f64,
    threads_max: u64,
    processes_max: u64,
}

impl Row {
    fn stats(&self, from: Instant, to: Instant, clk_tck: f64) -> Option<PhaseStats> {
        let inside: Vec<&Reading> = self
            .samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, r)| r)
            .collect();
        let (first, last) = (inside.first()?, inside.last()?);
        let (t0, t1) = (
            self.samples.iter().find(|(t, _)| *t >= from)?.0,
            self.samples.iter().rev().find(|(t, _)| *t <= to)?.0,
        );
        let secs = t1.duration_since(t0).as_secs_f64().max(1e-9);
        let mib = |kib: u64| kib as f64 / 1024.0;
        Some(PhaseStats {
            rss_mean_mib: inside.iter().map(|r| mib(r.rss_kib)).sum::<f64>() / inside.len() as f64,
            rss_max_mib: inside.iter().map(|r| mib(r.rss_kib)).fold(0.0, f64::max),
            cpu_percent: last.ticks.saturating_sub(first.ticks) as f64 / clk_tck / secs * 100.0,
            threads_max: inside.iter().map(|r| r.threads).max().unwrap_or(0),
            processes_max: inside.iter().map(|r| r.processes).max().unwrap_or(0),
        })
    }
}

/// `(ppid, utime + stime)` from `/proc/PID/stat`.
fn read_stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `(VmRSS KiB, Threads)` from `/proc/PID/status`.
fn read_status(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// A status field (in KiB) of one process, e.g. `VmHWM:`.
fn status_kib(pid: u32, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// Every live process's parent.
fn parents() -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                if let Some((ppid, _)) = read_stat(pid) {
                    map.insert(pid, ppid);
                }
            }
        }
    }
    map
}

/// The sum over the trees rooted at `roots` (the roots and their live
/// descendants). Exited processes count for nothing.
fn read_trees(roots: &[u32], parents: &HashMap<u32, u32>) -> Reading {
    let mut total = Reading::default();
    for (&pid, _) in parents.iter() {
        let mut p = pid;
        let mut inside = false;
        for _ in 0..64 {
            if roots.contains(&p) {
                inside = true;
                break;
            }
            match parents.get(&p) {
                Some(&pp) if pp != 0 && pp != p => p = pp,
                _ => break,
            }
        }
        if !inside {
            continue;
        }
        if let (Some((_, ticks)), Some((rss, threads))) = (read_stat(pid), read_status(pid)) {
            total.rss_kib += rss;
            total.ticks += ticks;
            total.threads += threads;
            total.processes += 1;
        }
    }
    total
}

fn sample(rows: &mut [Row]) {
    let parents = parents();
    let now = Instant::now();
    for row in rows {
        let reading = read_trees(&row.pids, &parents);
        row.samples.push((now, reading));
    }
}

/// A free TCP port on 127.0.0.1 in 1024..=32767 (zabbix-agent2's ListenPort range).
fn free_low_port() -> Result<u16> {
    for _ in 0..200 {
        let port = 20_000 + (rand::random::<u16>() % 12_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free TCP port in 20000..32000")
}

fn wait_tcp(port: u16, what: &str, proc_: &mut Proc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = proc_.exited() {
            bail!("{what} exited ({status}) before listening on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on 127.0.0.1:{port} within 20 s")
}

/// Starts one snmpd answering on every port of `ports`.
fn start_snmpd(dir: &Path, index: usize, ports: &[u16]) -> Result<Proc> {
    let dir = dir.join(format!("snmpd{index}"));
    std::fs::create_dir_all(dir.join("persist"))?;
    let addresses: Vec<String> = ports.iter().map(|p| format!("udp:127.0.0.1:{p}")).collect();
    let conf = dir.join("snmpd.conf");
    std::fs::write(
        &conf,
        format!(
            "agentAddress {}\nview all included .1\nrocommunity public 127.0.0.1 -V all\nsysName footprint-snmpd-{index}\n",
            addresses.join(",")
        ),
    )?;
    let child = Command::new("/usr/sbin/snmpd")
        .args(["-f", "-C", "-c"])
        .arg(&conf)
        .arg("-Lf")
        .arg(dir.join("snmpd.log"))
        .arg("-p")
        .arg(dir.join("snmpd.pid"))
        .env("MIBS", "")
        .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting /usr/sbin/snmpd")?;
    let mut proc_ = Proc { child };
    for port in ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = Command::new("snmpget")
                .args(["-v2c", "-c", "public", "-r0", "-t1", "-On"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("1.3.6.1.2.1.1.5.0")
                .env("MIBS", "")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if let Some(status) = proc_.exited() {
                bail!("snmpd {index} exited ({status}); see {}", dir.display());
            }
            if Instant::now() > deadline {
                bail!("snmpd {index} did not answer on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(proc_)
}

fn agent_config(
    dir: &Path,
    server: &str,
    interval: u64,
    trap_port: u16,
    metrics_port: u16,
    targets: &[u16],
    relay: Option<&str>,
) -> String {
    let mut text = format!(
        r#"[server]
url = "{server}"
identity_dir = "{id}"

[snmp]
interval = "{interval}s"
concurrency = 16

[host]
enabled = true
interval = "30s"

[traps]
listen = "127.0.0.1:{trap_port}"
communities = ["public"]

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        id = dir.join("identity").display(),
    );
    for (i, port) in targets.iter().enumerate() {
        text.push_str(&format!(
            "\n[[snmp.targets]]\nname = \"dev{i:03}\"\naddress = \"127.0.0.1:{port}\"\nversion = \"v2c\"\ncommunity = \"public\"\n"
        ));
    }
    if let Some(relay) = relay {
        text.push_str(&format!(
            "\n[tunnel]\nrelay = \"{relay}\"\n\n[[tunnel.targets]]\nname = \"host\"\naddress = \"127.0.0.1\"\nports = [22]\n"
        ));
    }
    text
}

/// Asks zabbix-agent2 for one passive item (ZBXD header, 8-byte length, key).
fn zabbix_get(port: u16, key: &str) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = b"ZBXD\x01".to_vec();
    request.extend_from_slice(&(key.len() as u64).to_le_bytes());
    request.extend_from_slice(key.as_bytes());
    stream.write_all(&request)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    if answer.len() < 13 || &answer[..4] != b"ZBXD" {
        bail!("zabbix-agent2: unexpected answer to {key}");
    }
    Ok(String::from_utf8_lossy(&answer[13..]).into_owned())
}

const ZABBIX_ITEMS: [&str; 5] = [
    "agent.ping",
    "system.cpu.load[all,avg1]",
    "vm.memory.size[available]",
    "vfs.fs.size[/,pused]",
    "system.uptime",
];

/// The value of an agent metric line `name{labels} value`, summed over labels.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn metric_with(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

/// Runs one phase: samples every `sample_ms`; scrapes peers every `scrape`
/// seconds when `scrape` is set. Returns the phase's (start, end) and the
/// number of scrapes.
async fn phase(
    rows: &mut [Row],
    secs: u64,
    sample_ms: u64,
    scrape: Option<(u64, u16, u16, &reqwest::Client)>,
    procs: &mut [(&str, &mut Proc)],
) -> Result<(Instant, Instant, usize, usize)> {
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut next_scrape = start;
    let mut scrapes = 0;
    let mut scrape_errors = 0;
    sample(rows);
    while Instant::now() < end {
        if let Some((every, node_port, zabbix_port, http)) = scrape {
            if Instant::now() >= next_scrape {
                next_scrape += Duration::from_secs(every.max(1));
                scrapes += 1;
                let node = http
                    .get(format!("http://127.0.0.1:{node_port}/metrics"))
                    .send()
                    .await
                    .and_then(|r| r.error_for_status());
                match node {
                    Ok(response) => {
                        if response.bytes().await.is_err() {
                            scrape_errors += 1;
                        }
                    }
                    Err(_) => scrape_errors += 1,
                }
                let zabbix = tokio::task::spawn_blocking(move || {
                    ZABBIX_ITEMS
                        .iter()
                        .map(|k| zabbix_get(zabbix_port, k).map(|_| ()))
                        .collect::<Result<Vec<()>>>()
                })
                .await;
                if !matches!(zabbix, Ok(Ok(_))) {
                    scrape_errors += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(sample_ms)).await;
        sample(rows);
        for (name, p) in procs.iter_mut() {
            if let Some(status) = p.exited() {
                bail!("{name} exited ({status}) during the run");
            }
        }
    }
    Ok((start, Instant::now(), scrapes, scrape_errors))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.targets == 0 || args.snmpd == 0 {
        bail!("--targets and --snmpd must be at least 1");
    }
    let missing: Vec<&Needed> = NEEDED
        .iter()
        .filter(|n| !Path::new(n.path).exists())
        .collect();
    if !missing.is_empty() {
        for n in &missing {
            eprintln!(
                "agent-footprint: {} is missing: install the Debian package `{}` (apt-get install {})",
                n.path, n.package, n.package
            );
        }
        bail!("missing programs; see above");
    }
    let agent_bin = args.agent.clone().unwrap_or_else(|| bin("outpost-agent"));
    for b in [agent_bin.clone(), bin("outpost-server")] {
        if !b.exists() {
            bail!(
                "{} is missing: cargo build --release -p outpost-server -p outpost-agent -p outpost-tests",
                b.display()
            );
        }
    }
    let clk_tck = clk_tck();
    let dir = tempfile::tempdir()?;

    // The server, an organisation and an enrolment token, through the API.
    let server = Server::start(Backend::Sqlite).await?;
    let org = server
        .post_ok(
            "/api/v1/organizations",
            &server.admin_token,
            json!({ "customer_code": "FP100", "name": "Footprint", "phone": "+49 40 5550000" }),
        )
        .await?;
    let org_id = org["id"].as_i64().context("organisation id")?;
    let token = server
        .post_ok(
            "/api/v1/enrollment-tokens",
            &server.admin_token,
            json!({ "organization_id": org_id }),
        )
        .await?;
    let token = token["token"]
        .as_str()
        .context("enrolment token")?
        .to_owned();

    // snmpd processes, their ports spread round-robin over the targets.
    let per = args.targets.div_ceil(args.snmpd);
    let mut target_ports = Vec::with_capacity(args.targets);
    let mut snmpds = Vec::new();
    let mut remaining = args.targets;
    for index in 0..args.snmpd {
        let n = per.min(remaining);
        if n == 0 {
            break;
        }
        remaining -= n;
        let ports: Vec<u16> = (0..n).map(|_| free_udp_port()).collect::<Result<_>>()?;
        snmpds.push(start_snmpd(dir.path(), index, &ports)?);
        target_ports.extend(ports);
    }

    // The agent's tunnel to the relay, unless asked not to.
    let relay = (!args.no_tunnel).then_some(server.ssh.as_str());
    // The agent: enrol, then run with no targets.
    let trap_port = free_udp_port()?;
    let metrics_port = free_port()?;
    let config = dir.path().join("agent.toml");
    let write_config = |targets: &[u16]| {
        std::fs::write(
            &config,
            agent_config(
                dir.path(),
                &server.base,
                args.interval,
                trap_port,
                metrics_port,
                targets,
                relay,
            ),
        )
    };
    write_config(&[])?;
    let enrolled = Command::new(&agent_bin)
        .args([
            "enroll",
            "--server",
            &server.base,
            "--token",
            &token,
            "--config",
        ])
        .arg(&config)
        .output()
        .context("running outpost-agent enroll")?;
    if !enrolled.status.success() {
        bail!(
            "outpost-agent enroll failed: {}",
            String::from_utf8_lossy(&enrolled.stderr)
        );
    }
    let agent_log = dir.path().join("agent.log");
    let mut agent = Proc {
        child: Command::new(&agent_bin)
            .args(["run", "--config"])
            .arg(&config)
            .env("OUTPOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log)?)
            .spawn()
            .context("starting outpost-agent run")?,
    };
    wait_tcp(metrics_port, "outpost-agent", &mut agent)?;

    // node_exporter: default collectors, on a loopback port.
    let node_port = free_port()?;
    let mut node = Proc {
        child: Command::new("/usr/bin/prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("node_exporter.log"))?)
            .spawn()
            .context("starting prometheus-node-exporter")?,
    };
    wait_tcp(node_port, "prometheus-node-exporter", &mut node)?;

    // zabbix-agent2: its own config, passive checks on a loopback port, no server.
    let zabbix_port = free_low_port()?;
    let zdir = dir.path().join("zabbix");
    std::fs::create_dir_all(&zdir)?;
    let zconf = zdir.join("zabbix_agent2.conf");
    std::fs::write(
        &zconf,
        format!(
            "LogType=file\nLogFile={log}\nPidFile={pid}\nServer=127.0.0.1\nServerActive=\nListenIP=127.0.0.1\nListenPort={zabbix_port}\nHostname=footprint\nControlSocket={sock}\n",
            log = zdir.join("zabbix_agent2.log").display(),
            pid = zdir.join("zabbix_agent2.pid").display(),
            sock = zdir.join("agent.sock").display(),
        ),
    )?;
    let mut zabbix = Proc {
        child: Command::new("/usr/sbin/zabbix_agent2")
            .arg("-c")
            .arg(&zconf)
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(zdir.join("stderr.log"))?)
            .spawn()
            .context("starting zabbix_agent2")?,
    };
    wait_tcp(zabbix_port, "zabbix_agent2", &mut zabbix)?;

    let user = Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "agent-footprint: {} targets on {} snmpd processes ({} UDP ports each at most; \
         the ports of one snmpd answer with the same data), interval {} s, \
         idle {} s, load {} s, scrape every {} s, sample every {} ms; all processes run as {user}",
        args.targets,
        snmpds.len(),
        per,
        args.interval,
        args.idle,
        args.poll,
        args.scrape,
        args.sample_ms
    );
    println!("agent binary: {}", agent_bin.display());

    let mut rows = vec![
        Row {
            name: "outpost-agent".into(),
            pids: vec![agent.pid()],
            samples: Vec::new(),
        },
        Row {
            name: "prometheus-node-exporter".into(),
            pids: vec![node.pid()],
            samples: Vec::new(),
        },
        Row {
            name: "zabbix-agent2".into(),
            pids: vec![zabbix.pid()],
            samples: Vec::new(),
        },
        Row {
            name: format!("snmpd x{} (the peers)", snmpds.len()),
            pids: snmpds.iter().map(Proc::pid).collect(),
            samples: Vec::new(),
        },
        Row {
            name: "outpost-server".into(),
            pids: Vec::new(),
            samples: Vec::new(),
        },
    ];
    // The server's pid: the only outpost-server child of this process.
    let me = std::process::id();
    if let Some((pid, _)) = parents().into_iter().find(|(pid, ppid)| {
        *ppid == me
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim().starts_with("outpost-server"))
    }) {
        rows[4].pids.push(pid);
    }

    // Idle: no targets, nobody scraped.
    eprintln!("idle phase: {} s", args.idle);
    let (idle_from, idle_to, _, _) = {
        let mut procs: [(&str, &mut Proc); 3] = [
            ("outpost-agent", &mut agent),
            ("prometheus-node-exporter", &mut node),
            ("zabbix-agent2", &mut zabbix),
        ];
        phase(&mut rows, args.idle, args.sample_ms, None, &mut procs).await?
    };
    let agent_hwm_idle = status_kib(agent.pid(), "VmHWM:");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let metrics_idle = http.get(&metrics_url).send().await?.text().await?;

    // Load: the targets in, SIGHUP; peers scraped.
    write_config(&target_ports)?;
    let hup = Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()?;
    if !hup.success() {
        bail!("kill -HUP {} failed", agent.pid());
    }
    eprintln!("load phase: {} s", args.poll);
    let (load_from, load_to, scrapes, scrape_errors) = {
        let mut procs: [(&str, &mut Proc); 3] = [
            ("outpost-agent", &mut agent),
            ("prometheus-node-exporter", &mut node),
            ("zabbix-agent2", &mut zabbix),
        ];
        phase(
            &mut rows,
            args.poll,
            args.sample_ms,
            Some((args.scrape, node_port, zabbix_port, &http)),
            &mut procs,
        )
        .await?
    };
    let agent_hwm = status_kib(agent.pid(), "VmHWM:");
    let metrics_load = http.get(&metrics_url).send().await?.text().await?;

    let polls_ok =
        metric_with(&metrics_load, "outpost_agent_polls_total{result=\"ok\"}").saturating_sub(
            metric_with(&metrics_idle, "outpost_agent_polls_total{result=\"ok\"}"),
        );
    let polls_failed =
        metric_with(&metrics_load, "outpost_agent_polls_total{result=\"error\"}").saturating_sub(
            metric_with(&metrics_idle, "outpost_agent_polls_total{result=\"error\"}"),
        );
    let (_, agents) = server.get("/api/v1/agents", &server.admin_token).await?;
    let state = agents[0]["state"].as_str().unwrap_or("?").to_owned();

    println!();
    println!(
        "| process | idle RSS mean MiB | idle RSS max MiB | idle CPU % | load RSS mean MiB | load RSS max MiB | load CPU % | threads (max) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let idle = row.stats(idle_from, idle_to, clk_tck);
        let load = row.stats(load_from, load_to, clk_tck);
        let f = |s: &Option<PhaseStats>, g: fn(&PhaseStats) -> f64, digits: usize| {
            s.as_ref()
                .map(|s| format!("{:.*}", digits, g(s)))
                .unwrap_or_else(|| "-".into())
        };
        let threads = load
            .as_ref()
            .or(idle.as_ref())
            .map(|s| {
                if s.processes_max > 1 {
                    format!("{} in {} processes", s.threads_max, s.processes_max)
                } else {
                    s.threads_max.to_string()
                }
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            f(&idle, |s| s.rss_mean_mib, 1),
            f(&idle, |s| s.rss_max_mib, 1),
            f(&idle, |s| s.cpu_percent, 2),
            f(&load, |s| s.rss_mean_mib, 1),
            f(&load, |s| s.rss_max_mib, 1),
            f(&load, |s| s.cpu_percent, 2),
            threads,
        );
    }
    println!();
    let mib = |k: Option<u64>| {
        k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "outpost-agent VmHWM (peak RSS): {} after the idle phase, {} at the end",
        mib(agent_hwm_idle),
        mib(agent_hwm)
    );
    println!(
        "load phase: {polls_ok} polls ok, {polls_failed} failed ({:.1} rounds of {} targets); \
         {scrapes} scrapes of node_exporter and zabbix-agent2 ({} items each), {scrape_errors} failed; \
         agent state on the server: {state}; spool records: {}",
        polls_ok as f64 / args.targets as f64,
        args.targets,
        ZABBIX_ITEMS.len(),
        metric(&metrics_load, "outpost_agent_spool_records"),
    );
    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    println!(
        "agent log: {} lines, {} warnings or errors",
        log.lines().count(),
        problems.len()
    );
    for line in problems.iter().take(5) {
        println!("  {line}");
    }
    Ok(())
}
