//! The agent's SNMP polling against `snmpbulkwalk`, in the same run, on the
//! same simulated devices: wall time to poll every device once, and CPU time
//! per polled varbind.
//!
//! One run of this program:
//! 1. generates D devices (IF-MIB with ifXTable, ENTITY-MIB with sensors and
//!    states, HOST-RESOURCES, LLDP, system group) as `.snmprec` files in a
//!    temporary directory and serves them from one or more `snmpsimd`
//!    processes (snmpsim is single-threaded, so several share the load),
//!    and/or starts K net-snmp `snmpd` instances with their own configs
//!    (the host's own MIB data; D targets spread over them);
//! 2. polls every target with the agent's own `poll_targets` (the code the
//!    daemon runs), measuring wall time and this process's user+system CPU
//!    time (getrusage RUSAGE_SELF);
//! 3. runs the peer, `xargs -P <concurrency>` over `snmpget` of the system
//!    group and `snmpbulkwalk -v2c -Cr<max-repetitions> -On` of the same
//!    tables (or columns) the agent walks, measuring wall time and the
//!    children's user+system CPU (RUSAGE_CHILDREN);
//! 4. prints one row per tool and run, the simulator's own CPU (to show when
//!    it, not the poller, is the bottleneck), and the ratios against the
//!    targets of issue 4.
//!
//! Varbinds are counted the same way for both tools: values of the polled
//! objects, exceptions and the bindings a GETBULK returns past the end of a
//! walked column not included. The agent's count comes from an untimed
//! warm-up pass through a counting wrapper around the agent's own session;
//! the timed passes use `poll_targets` unchanged.
//!
//! Needs `snmpd` and `snmp` (net-snmp) and `snmpsim` from Debian. Build in
//! release mode and run:
//!   cargo build --release -p outpost-tests --bin agent-poll-bench
//!   ./target/release/agent-poll-bench

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use nix::sys::resource::{getrusage, UsageWho};
use outpost_agent::config::{AgentConfig, SnmpTarget};
use outpost_agent::snmp::oids::{
    entity, entity_sensor, entity_state, host_resources as hr, if_table, if_x_table, lldp, system,
};
use outpost_agent::snmp::poll::{poll_device, poll_targets};
use outpost_agent::snmp::{AsyncSnmpSession, Session, SnmpError, VarBind};
use outpost_tests::free_udp_port;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(about = "Outpost agent SNMP polling beside snmpbulkwalk (xargs -P) on the same devices")]
struct Args {
    /// Devices (SNMP targets) polled per run.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// What to poll: snmpsim (generated devices), snmpd (net-snmp
    /// instances serving this host's MIB), comma-separated.
    #[arg(long, default_value = "snmpsim,snmpd", value_delimiter = ',')]
    backends: Vec<BackendKind>,
    /// snmpsimd processes (each single-threaded), targets spread over them.
    #[arg(long, default_value_t = 2)]
    snmpsim_processes: usize,
    /// snmpsim's cap on varbinds per response (its own default is 64).
    #[arg(long, default_value_t = 64)]
    snmpsim_max_varbinds: u32,
    /// net-snmp snmpd instances, targets spread over them.
    #[arg(long, default_value_t = 8)]
    snmpd_instances: usize,
    /// Interfaces per generated device.
    #[arg(long, default_value_t = 48)]
    interfaces: u32,
    /// Targets polled at the same time, by both tools.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// GETBULK max-repetitions, for both tools (the agent's default is 25).
    #[arg(long, default_value_t = 25)]
    max_repetitions: u32,
    /// Request timeout in seconds, for both tools.
    #[arg(long, default_value_t = 5)]
    timeout: u32,
    /// Timed runs per backend; each polls every device once with each tool.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// What each snmpbulkwalk walks: a whole table (one process per table,
    /// the peer's cheapest way) or one column (exactly the agent's cells).
    #[arg(long, value_enum, default_value_t = PeerWalk::Table)]
    peer_walk: PeerWalk,
    /// Keep the temporary directory (data files, logs, job lists).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    Snmpsim,
    Snmpd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PeerWalk {
    Table,
    Column,
}

/// The tables the agent's poll walks, with the columns it asks for. The
/// generated devices hold exactly these columns, so a table walk by
/// snmpbulkwalk returns the same cells as the agent's column walk.
use outpost_agent::snmp::poll::TABLES as WALKS;

/// The system group scalars the agent reads with one GET.
const SYSTEM_GET: [&[u32]; 4] = [
    system::SYS_DESCR,
    system::SYS_OBJECT_ID,
    system::SYS_UP_TIME,
    system::SYS_NAME,
];

fn dotted(arcs: &[u32]) -> String {
    arcs.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

// ---------------------------------------------------------------------------
// Tools on the machine

/// Finds `program` on PATH (and in /usr/sbin, where Debian puts snmpd), or
/// says which package provides it.
fn require(program: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]);
    for dir in dirs {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "`{program}` not found (PATH and /usr/sbin): install it with \
         `apt-get install -y --no-install-recommends {package}`"
    )
}

struct Tools {
    snmpd: Option<PathBuf>,
    snmpsimd: Option<PathBuf>,
    snmpget: PathBuf,
    snmpbulkwalk: PathBuf,
    xargs: PathBuf,
}

impl Tools {
    fn find(backends: &[BackendKind]) -> Result<Self> {
        let snmpd = if backends.contains(&BackendKind::Snmpd) {
            Some(require("snmpd", "snmpd")?)
        } else {
            None
        };
        let snmpsimd = if backends.contains(&BackendKind::Snmpsim) {
            Some(require("snmpsimd", "snmpsim")?)
        } else {
            None
        };
        Ok(Self {
            snmpd,
            snmpsimd,
            snmpget: require("snmpget", "snmp")?,
            snmpbulkwalk: require("snmpbulkwalk", "snmp")?,
            xargs: require("xargs", "findutils")?,
        })
    }
}

// ---------------------------------------------------------------------------
// CPU accounting

/// User+system CPU time of this process (`RUSAGE_SELF`) or of its reaped
/// children (`RUSAGE_CHILDREN`).
fn cpu_time(who: UsageWho) -> Result<Duration> {
    let usage = getrusage(who).context("getrusage")?;
    let micros = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(tv.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec()).unwrap_or(0))
    };
    Ok(micros(usage.user_time()) + micros(usage.system_time()))
}

/// Clock ticks per second, for /proc/<pid>/stat.
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

/// User+system CPU time of a running process, from /proc/<pid>/stat.
fn process_cpu(pid: u32, ticks: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count
    // from after the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / ticks))
}

// ---------------------------------------------------------------------------
// Peers' processes

/// A server process started by this program, stopped (by PID) on drop.
struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `server` answers an SNMP GET with `community`.
fn wait_ready(tools: &Tools, server: &mut Server, port: u16, community: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = server.child.try_wait().context("checking a server")? {
            bail!(
                "{} exited ({status}) before answering; its log:\n{}",
                server.name,
                server.log_tail()
            );
        }
        let ok = Command::new(&tools.snmpget)
            .args(["-v2c", "-c", community, "-t", "1", "-r", "0", "-On"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(dotted(system::SYS_NAME))
            .env("MIBS", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer on 127.0.0.1:{port} within 120 s; its log:\n{}",
                server.name,
                server.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A target for both tools: where it is and which community selects it.
#[derive(Clone)]
struct Target {
    name: String,
    port: u16,
    community: String,
}

/// The servers of one backend and the targets they serve.
struct Backend {
    label: &'static str,
    servers: Vec<Server>,
    targets: Vec<Target>,
    describe: String,
}

fn start_snmpsim(tools: &Tools, args: &Args, dir: &Path) -> Result<Backend> {
    let Some(snmpsimd) = &tools.snmpsimd else {
        bail!("snmpsimd not located");
    };
    let data = dir.join("snmpsim-data");
    std::fs::create_dir_all(&data).context("creating the data directory")?;
    let mut rng = StdRng::seed_from_u64(4);
    let mut records_per_device = 0;
    for i in 0..args.devices {
        let records = device_records(i, args.interfaces, &mut rng);
        records_per_device = records.len();
        let path = data.join(format!("{}.snmprec", device_name(i)));
        write_snmprec(&path, &records)?;
    }
    let root = running_as_root();
    // snmpsim refuses to run as root; it then runs as nobody, who must be
    // able to read the data and write its cache.
    if root {
        use std::os::unix::fs::PermissionsExt;
        for path in [dir, data.as_path()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod {}", path.display()))?;
        }
    }
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for p in 0..args.snmpsim_processes.max(1) {
        let cache = dir.join(format!("snmpsim-cache-{p}"));
        std::fs::create_dir_all(&cache).context("creating a cache directory")?;
        if root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777))
                .context("chmod cache")?;
        }
        let port = free_udp_port()?;
        let log = dir.join(format!("snmpsim-{p}.log"));
        let log_file = std::fs::File::create(&log).context("creating a log file")?;
        let mut command = Command::new(snmpsimd);
        command
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--cache-dir={}", cache.display()))
            .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
            .arg(format!("--max-varbinds={}", args.snmpsim_max_varbinds))
            // Per-request logging off: it would cost the simulator more
            // CPU than answering. Not `--v2c-arch`: its GETBULK handler
            // (snmpsim 0.4.5 on Python 3) divides max-varbinds by the
            // request width as a float and loops forever, at 100% CPU,
            // when the quotient is not whole (64 varbinds / 5 columns).
            .arg("--logging-method=null");
        if root {
            command.args(["--process-user=nobody", "--process-group=nogroup"]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting snmpsimd")?;
        servers.push(Server {
            name: format!("snmpsimd #{p}"),
            child,
            log,
        });
        ports.push(port);
    }
    for (server, port) in servers.iter_mut().zip(&ports) {
        wait_ready(tools, server, *port, &device_name(0))?;
    }
    let targets = (0..args.devices)
        .map(|i| Target {
            name: device_name(i),
            port: ports[i % ports.len()],
            community: device_name(i),
        })
        .collect();
    Ok(Backend {
        label: "snmpsim",
        describe: format!(
            "{} generated devices ({} records each: {} interfaces in ifTable/ifXTable, \
             ENTITY-MIB chassis, PSUs, fans, sensors and ports, sensor and state rows, \
             HOST-RESOURCES, LLDP) on {} snmpsimd process(es), \
             --max-varbinds={}",
            args.devices,
            records_per_device,
            args.interfaces,
            ports.len(),
            args.snmpsim_max_varbinds
        ),
        servers,
        targets,
    })
}

fn start_snmpd(tools: &Tools, args: &Args, dir: &Path) -> Result<Backend> {
    let Some(snmpd) = &tools.snmpd else {
        bail!("snmpd not located");
    };
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for k in 0..args.snmpd_instances.max(1) {
        let home = dir.join(format!("snmpd-{k}"));
        std::fs::create_dir_all(home.join("persist")).context("creating snmpd's directory")?;
        let port = free_udp_port()?;
        let conf = home.join("snmpd.conf");
        std::fs::write(
            &conf,
            format!(
                "agentAddress udp:127.0.0.1:{port}\n\
                 view all included .1\n\
                 rocommunity public 127.0.0.1 -V all\n"
            ),
        )
        .context("writing snmpd.conf")?;
        let log = home.join("snmpd.log");
        let child = Command::new(snmpd)
            .args(["-f", "-C", "-c"])
            .arg(&conf)
            .arg("-Lf")
            .arg(&log)
            .arg("-p")
            .arg(home.join("snmpd.pid"))
            .env("MIBS", "")
            .env("SNMP_PERSISTENT_DIR", home.join("persist"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting snmpd")?;
        servers.push(Server {
            name: format!("snmpd #{k}"),
            child,
            log,
        });
        ports.push(port);
    }
    for (server, port) in servers.iter_mut().zip(&ports) {
        wait_ready(tools, server, *port, "public")?;
    }
    let targets = (0..args.devices)
        .map(|i| Target {
            name: format!("snmpd-{i:04}"),
            port: ports[i % ports.len()],
            community: "public".to_owned(),
        })
        .collect();
    Ok(Backend {
        label: "snmpd",
        describe: format!(
            "{} targets spread over {} net-snmp snmpd instances, each serving this host's \
             own MIB (a few interfaces, HOST-RESOURCES; no ENTITY-MIB or LLDP rows)",
            args.devices,
            ports.len()
        ),
        servers,
        targets,
    })
}

// ---------------------------------------------------------------------------
// Generated devices

fn device_name(i: usize) -> String {
    format!("dev{i:04}")
}

/// One `.snmprec` line: OID, ASN.1 tag, value.
type Record = (Vec<u32>, &'static str, String);

/// One cell of a generated row: column, ASN.1 tag (2 INTEGER, 4 OCTET
/// STRING, 4x hex, 6 OID, 65 Counter32, 66 Gauge32, 67 TimeTicks, 70
/// Counter64), value.
type Cell = (u32, &'static str, String);

/// Adds the cells of one row (`entry.column.index`) to `out`.
fn row(out: &mut Vec<Record>, entry: &[u32], index: &[u32], cells: Vec<Cell>) {
    for (column, tag, value) in cells {
        out.push(([entry, &[column], index].concat(), tag, value));
    }
}

/// The records of one simulated 48-port access switch: the system group,
/// exactly the table columns the agent polls (see [`WALKS`]) and a sentinel
/// after the last walked subtree (snmpsim answers walks past its last OID
/// with repeated endOfMibView otherwise).
fn device_records(i: usize, interfaces: u32, rng: &mut StdRng) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let text = |value: &str| value.to_owned();
    let descr = format!(
        "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E8, \
         RELEASE SOFTWARE (fc2) bench device {i}"
    );
    let uptime = rng.gen_range(100_000..900_000_000u32).to_string();
    let system_cells = vec![
        (1, "4", descr),
        (2, "6", text("1.3.6.1.4.1.9.1.1208")),
        (3, "67", uptime),
        (4, "4", text("noc@example.net")),
        (5, "4", format!("sw-{i:04}.site.example.net")),
        (6, "4", format!("Building {} rack {}", i / 10, i % 10)),
        (7, "2", text("6")),
    ];
    row(&mut out, &[1, 3, 6, 1, 2, 1, 1], &[0], system_cells);

    for port in 1..=interfaces {
        let index = [10_100 + port];
        let down = rng.gen_bool(0.3);
        let admin = if rng.gen_bool(0.05) { "2" } else { "1" };
        let mut counter = || rng.gen_range(0..5_000u32).to_string();
        let cells = vec![
            (if_table::DESCR, "4", format!("GigabitEthernet1/0/{port}")),
            (if_table::TYPE, "2", text("6")),
            (if_table::ADMIN_STATUS, "2", text(admin)),
            (
                if_table::OPER_STATUS,
                "2",
                text(if down { "2" } else { "1" }),
            ),
            (if_table::IN_DISCARDS, "65", counter()),
            (if_table::IN_ERRORS, "65", counter()),
            (if_table::OUT_DISCARDS, "65", counter()),
            (if_table::OUT_ERRORS, "65", counter()),
        ];
        row(&mut out, if_table::ENTRY, &index, cells);
        let alias = if port % 3 == 0 {
            String::new()
        } else {
            format!("desk {}-{port:02}", i % 40)
        };
        let cells = vec![
            (if_x_table::NAME, "4", format!("Gi1/0/{port}")),
            (if_x_table::HC_IN_OCTETS, "70", rng.gen::<u64>().to_string()),
            (
                if_x_table::HC_OUT_OCTETS,
                "70",
                rng.gen::<u64>().to_string(),
            ),
            (
                if_x_table::HIGH_SPEED,
                "66",
                text(if down { "0" } else { "1000" }),
            ),
            (if_x_table::ALIAS, "4", alias),
        ];
        row(&mut out, if_x_table::ENTRY, &index, cells);
    }

    // ENTITY-MIB: chassis, 2 power supplies, 2 fans, 6 sensors, the ports;
    // (index, class, name, description). ENTITY-STATE-MIB: all enabled(3)
    // but one fan in ten disabled(2).
    let mut entities: Vec<(u32, u32, String, String)> = vec![
        (1001, 3, text("Switch 1"), text("WS-C2960X-48FPD-L chassis")),
        (
            1002,
            6,
            text("Switch 1 - Power Supply A"),
            text("FRU Power Supply"),
        ),
        (
            1003,
            6,
            text("Switch 1 - Power Supply B"),
            text("FRU Power Supply"),
        ),
        (1004, 7, text("Switch 1 - FAN 1"), text("Fan")),
        (1005, 7, text("Switch 1 - FAN 2"), text("Fan")),
    ];
    // (index, name, entPhySensorType, value, entPhySensorScale)
    let sensors: [(u32, &str, u32, i64, u32); 6] = [
        (1006, "Inlet Temp Sensor", 8, 28, 9),
        (1007, "Outlet Temp Sensor", 8, 41, 9),
        (1008, "Hotspot Temp Sensor", 8, 55, 9),
        (1009, "FAN 1 speed", 10, 7_200, 9),
        (1010, "FAN 2 speed", 10, 7_150, 9),
        (1011, "12V rail", 4, 12_050, 8),
    ];
    for (index, name, ..) in sensors {
        entities.push((index, 8, text(name), format!("{name} sensor")));
    }
    for port in 1..=interfaces {
        let name = format!("Gi1/0/{port}");
        entities.push((2000 + port, 10, name, text("Gigabit Ethernet Port")));
    }
    for (index, class, name, description) in entities {
        let chassis = class == 3;
        let only_chassis = |value: &str| text(if chassis { value } else { "" });
        let serial = match class {
            3 => format!("FOC{:08}", 20_000_000 + i),
            6 | 7 => format!("LIT{:06}{:02}", i, index % 100),
            _ => String::new(),
        };
        let cells = vec![
            (entity::DESCR, "4", description),
            (entity::CLASS, "2", class.to_string()),
            (entity::NAME, "4", name),
            (entity::HARDWARE_REV, "4", only_chassis("V07")),
            (entity::FIRMWARE_REV, "4", only_chassis("15.2(7r)E")),
            (entity::SOFTWARE_REV, "4", only_chassis("15.2(7)E8")),
            (entity::SERIAL, "4", serial),
            (entity::MFG_NAME, "4", only_chassis("Cisco Systems, Inc.")),
            (entity::MODEL, "4", only_chassis("WS-C2960X-48FPD-L")),
        ];
        row(&mut out, entity::ENTRY, &[index], cells);
        let oper = if class == 7 && rng.gen_bool(0.1) {
            "2"
        } else {
            "3"
        };
        let cells = vec![(entity_state::OPER, "2", text(oper))];
        row(&mut out, entity_state::ENTRY, &[index], cells);
    }
    for (index, _, sensor_type, value, scale) in sensors {
        let value = value + rng.gen_range(-3..=3);
        let cells = vec![
            (entity_sensor::TYPE, "2", sensor_type.to_string()),
            (entity_sensor::SCALE, "2", scale.to_string()),
            (entity_sensor::PRECISION, "2", text("0")),
            (entity_sensor::VALUE, "2", value.to_string()),
            (entity_sensor::OPER_STATUS, "2", text("1")),
        ];
        row(&mut out, entity_sensor::ENTRY, &[index], cells);
    }

    // HOST-RESOURCES: 2 processors, RAM, flash and virtual memory, 3
    // devices.
    for index in [768u32, 769] {
        let load = rng.gen_range(1..60u32).to_string();
        row(
            &mut out,
            hr::PROCESSOR_ENTRY,
            &[index],
            vec![(hr::PROCESSOR_LOAD, "2", load)],
        );
    }
    let storage = [
        (1u32, 2u32, "Physical memory", 1024u32, 524_288u32),
        (2, 4, "flash:", 4096, 31_250),
        (3, 3, "Virtual memory", 1024, 1_048_576),
    ];
    for (index, kind, description, unit, size) in storage {
        let cells = vec![
            (
                hr::STORAGE_TYPE,
                "6",
                format!("{}.{kind}", dotted(hr::STORAGE_TYPES)),
            ),
            (hr::STORAGE_DESCR, "4", text(description)),
            (hr::STORAGE_ALLOCATION_UNITS, "2", unit.to_string()),
            (hr::STORAGE_SIZE, "2", size.to_string()),
            (hr::STORAGE_USED, "2", rng.gen_range(0..size).to_string()),
        ];
        row(&mut out, hr::STORAGE_ENTRY, &[index], cells);
    }
    for (index, description) in [(768u32, "CPU core 0"), (769, "CPU core 1"), (1025, "eth0")] {
        let cells = vec![
            (hr::DEVICE_DESCR, "4", text(description)),
            (hr::DEVICE_STATUS, "2", text("2")),
        ];
        row(&mut out, hr::DEVICE_ENTRY, &[index], cells);
    }

    // LLDP: every local port, and 4 neighbours on the last ports.
    for port in 1..=interfaces {
        let cells = vec![
            (lldp::LOC_PORT_ID, "4", format!("Gi1/0/{port}")),
            (
                lldp::LOC_PORT_DESC,
                "4",
                format!("GigabitEthernet1/0/{port}"),
            ),
        ];
        row(&mut out, lldp::LOC_PORT_ENTRY, &[port], cells);
    }
    for n in 0..4u32.min(interfaces) {
        let port = interfaces - n;
        let mac = format!("00{:02x}bc{:04x}{:02x}", n + 0x10, i & 0xffff, port & 0xff);
        let cells = vec![
            (lldp::REM_CHASSIS_ID_SUBTYPE, "2", text("4")),
            (lldp::REM_CHASSIS_ID, "4x", mac),
            (lldp::REM_PORT_ID_SUBTYPE, "2", text("5")),
            (lldp::REM_PORT_ID, "4", format!("Te1/1/{}", n + 1)),
            (
                lldp::REM_PORT_DESC,
                "4",
                format!("TenGigabitEthernet1/1/{}", n + 1),
            ),
            (
                lldp::REM_SYS_NAME,
                "4",
                format!("core-{}.site.example.net", n % 2 + 1),
            ),
        ];
        row(&mut out, lldp::REM_ENTRY, &[0, port, 1], cells);
    }

    // Sentinel after the last walked subtree (entStateTable):
    // snmpEngineTime.0.
    out.push((vec![1, 3, 6, 1, 6, 3, 10, 2, 1, 3, 0], "2", text("1")));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn write_snmprec(path: &Path, records: &[Record]) -> Result<()> {
    let mut text = String::new();
    for (oid, tag, value) in records {
        let _ = writeln!(text, "{}|{tag}|{value}", dotted(oid));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

// ---------------------------------------------------------------------------
// The agent

fn agent_targets(args: &Args, targets: &[Target]) -> Result<Vec<SnmpTarget>> {
    let mut toml = String::from("[server]\nurl = \"http://127.0.0.1:1\"\n\n[snmp]\n");
    let _ = writeln!(toml, "concurrency = {}\n", args.concurrency);
    for target in targets {
        let _ = writeln!(
            toml,
            "[[snmp.targets]]\nname = \"{}\"\naddress = \"127.0.0.1:{}\"\nversion = \"v2c\"\n\
             community = \"{}\"\ntimeout = \"{}s\"\nretries = 1\nmax_repetitions = {}\n",
            target.name, target.port, target.community, args.timeout, args.max_repetitions
        );
    }
    let config = AgentConfig::parse(&toml).context("the generated agent config")?;
    Ok(config.snmp.targets)
}

/// Counts what the agent's session receives, around the agent's own
/// session: every binding, and the polled values (the GET's, and GETBULK
/// bindings inside the column they were asked for, not exceptions).
struct Counting<S> {
    inner: S,
    received: Arc<AtomicU64>,
    polled: Arc<AtomicU64>,
}

/// The column a GETBULK cursor walks: the table entry it lies under plus
/// the column arc.
fn column_of(cursor: &[u32]) -> Option<&[u32]> {
    WALKS.iter().find_map(|(_, entry, _)| {
        (cursor.len() > entry.len() && cursor.starts_with(entry)).then(|| &cursor[..=entry.len()])
    })
}

impl<S: Session> Session for Counting<S> {
    fn label(&self) -> &str {
        self.inner.label()
    }

    fn max_repetitions(&self) -> u32 {
        self.inner.max_repetitions()
    }

    async fn get(&self, oids: &[&[u32]]) -> Result<Vec<VarBind>, SnmpError> {
        let result = self.inner.get(oids).await;
        if let Ok(varbinds) = &result {
            self.received
                .fetch_add(varbinds.len() as u64, Ordering::Relaxed);
            let polled = varbinds
                .iter()
                .filter(|vb| !vb.value.is_exception())
                .count();
            self.polled.fetch_add(polled as u64, Ordering::Relaxed);
        }
        result
    }

    async fn get_bulk(
        &self,
        oids: &[&[u32]],
        max_repetitions: u32,
    ) -> Result<Vec<VarBind>, SnmpError> {
        let result = self.inner.get_bulk(oids, max_repetitions).await;
        if let Ok(varbinds) = &result {
            self.received
                .fetch_add(varbinds.len() as u64, Ordering::Relaxed);
            let width = oids.len().max(1);
            let polled = varbinds
                .iter()
                .enumerate()
                .filter(|(k, vb)| {
                    let column = oids.get(k % width).and_then(|cursor| column_of(cursor));
                    !vb.value.is_exception()
                        && column.is_some_and(|column| vb.oid.index_under(column).is_some())
                })
                .count();
            self.polled.fetch_add(polled as u64, Ordering::Relaxed);
        }
        result
    }

    async fn bulk_walk(&self, root: &[u32]) -> Result<Vec<VarBind>, SnmpError> {
        let result = self.inner.bulk_walk(root).await;
        if let Ok(varbinds) = &result {
            self.received
                .fetch_add(varbinds.len() as u64, Ordering::Relaxed);
            self.polled
                .fetch_add(varbinds.len() as u64, Ordering::Relaxed);
        }
        result
    }
}

struct AgentCount {
    received: u64,
    polled: u64,
    failed: usize,
}

/// The untimed warm-up pass: every target polled once through the counting
/// wrapper, with the same concurrency as `poll_targets`.
async fn agent_count(targets: &[SnmpTarget], concurrency: usize) -> AgentCount {
    let received = Arc::new(AtomicU64::new(0));
    let polled = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for target in targets {
        let target = target.clone();
        let permits = Arc::clone(&permits);
        let received = Arc::clone(&received);
        let polled = Arc::clone(&polled);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.ok();
            let session = AsyncSnmpSession::connect(&target).await?;
            let session = Counting {
                inner: session,
                received,
                polled,
            };
            poll_device(&session, &target, chrono::Utc::now).await
        });
    }
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        if !matches!(joined, Ok(Ok(_))) {
            failed += 1;
        }
    }
    AgentCount {
        received: received.load(Ordering::Relaxed),
        polled: polled.load(Ordering::Relaxed),
        failed,
    }
}

// ---------------------------------------------------------------------------
// The peer: xargs -P over snmpget and snmpbulkwalk

/// Writes the job list (one command line per job) for `xargs -L 1 env`.
fn peer_jobs(args: &Args, tools: &Tools, targets: &[Target], path: &Path) -> Result<usize> {
    let mut text = String::new();
    let mut jobs = 0;
    let common = |community: &str| format!("-v2c -c {community} -t {} -r 1 -On", args.timeout);
    for target in targets {
        let address = format!("127.0.0.1:{}", target.port);
        let system: Vec<String> = SYSTEM_GET.iter().map(|oid| dotted(oid)).collect();
        let _ = writeln!(
            text,
            "{} {} {address} {}",
            tools.snmpget.display(),
            common(&target.community),
            system.join(" ")
        );
        jobs += 1;
        for (_, entry, columns) in WALKS {
            let roots: Vec<String> = match args.peer_walk {
                PeerWalk::Table => vec![dotted(entry)],
                PeerWalk::Column => columns
                    .iter()
                    .map(|column| dotted(&[entry, &[*column]].concat()))
                    .collect(),
            };
            for root in roots {
                let _ = writeln!(
                    text,
                    "{} {} -Cr{} {address} {root}",
                    tools.snmpbulkwalk.display(),
                    common(&target.community),
                    args.max_repetitions
                );
                jobs += 1;
            }
        }
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(jobs)
}

/// Whether a line of `snmpget`/`snmpbulkwalk -On` output is a polled value:
/// it starts with the numeric OID, and is not an exception (a table the
/// device lacks).
fn is_value_line(line: &str) -> bool {
    line.starts_with('.') && !line.contains("= No Such") && !line.contains("= No more variables")
}

/// The untimed warm-up pass of the peer: every job run once, `concurrency`
/// at a time, each with its own output, counting the values printed. (In
/// the timed runs the jobs share one stdout, where their block-buffered
/// writes interleave mid-line, so lines cannot be counted there.)
fn peer_count(jobs: &Path, concurrency: usize) -> Result<(u64, usize)> {
    let text = std::fs::read_to_string(jobs).context("reading the job list")?;
    let lines: Vec<Vec<String>> = text
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .filter(|words: &Vec<String>| !words.is_empty())
        .collect();
    let next = AtomicU64::new(0);
    let values = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(words) = lines.get(i) else { break };
                let output = Command::new(&words[0])
                    .args(&words[1..])
                    .env("MIBS", "")
                    .stdin(Stdio::null())
                    .output();
                match output {
                    Ok(out) if out.status.success() => {
                        let printed = String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .filter(|line| is_value_line(line))
                            .count();
                        values.fetch_add(printed as u64, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    Ok((
        values.load(Ordering::Relaxed),
        usize::try_from(failed.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
    ))
}

struct PeerRun {
    wall: Duration,
    cpu: Duration,
    timeouts: usize,
    exit: String,
}

/// One timed run of the batch: `xargs -a JOBS -P N -L 1 env`, output
/// discarded (the peer still formats and writes it).
fn run_peer(tools: &Tools, args: &Args, jobs: &Path, stderr_path: &Path) -> Result<PeerRun> {
    let stderr = std::fs::File::create(stderr_path).context("creating the peer's stderr file")?;
    let cpu_before = cpu_time(UsageWho::RUSAGE_CHILDREN)?;
    let started = Instant::now();
    let status = Command::new(&tools.xargs)
        .arg("-a")
        .arg(jobs)
        .arg("-P")
        .arg(args.concurrency.to_string())
        .args(["-L", "1", "env"])
        .env("MIBS", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .status()
        .context("running xargs")?;
    let wall = started.elapsed();
    let cpu = cpu_time(UsageWho::RUSAGE_CHILDREN)? - cpu_before;
    let errors = std::fs::read_to_string(stderr_path).unwrap_or_default();
    Ok(PeerRun {
        wall,
        cpu,
        timeouts: errors.lines().filter(|l| l.contains("Timeout")).count(),
        exit: status.to_string(),
    })
}

// ---------------------------------------------------------------------------
// Measuring and reporting

struct Row {
    backend: &'static str,
    tool: &'static str,
    run: usize,
    devices: usize,
    varbinds: u64,
    wall: Duration,
    cpu: Duration,
    server_cpu: Duration,
    busiest_server: f64,
    failures: usize,
}

impl Row {
    fn us_per_varbind(&self) -> f64 {
        if self.varbinds == 0 {
            return f64::NAN;
        }
        self.cpu.as_secs_f64() * 1e6 / self.varbinds as f64
    }
}

fn servers_cpu(servers: &[Server], ticks: u64) -> Vec<Duration> {
    servers
        .iter()
        .map(|s| process_cpu(s.pid(), ticks).unwrap_or_default())
        .collect()
}

/// Servers' CPU between two readings: total, and the busiest one's share
/// of the wall time (1.0 = one core all the time).
fn server_load(before: &[Duration], after: &[Duration], wall: Duration) -> (Duration, f64) {
    let deltas: Vec<Duration> = before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b))
        .collect();
    let busiest = deltas.iter().max().copied().unwrap_or_default();
    (
        deltas.iter().sum(),
        busiest.as_secs_f64() / wall.as_secs_f64().max(1e-9),
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn print_row(row: &Row) {
    println!(
        "| {:<8} | {:<14} | {:>3} | {:>7} | {:>9} | {:>8.2} | {:>7.3} | {:>10.2} | {:>12.2} | {:>13.0}% | {:>8} |",
        row.backend,
        row.tool,
        row.run,
        row.devices,
        row.varbinds,
        row.wall.as_secs_f64(),
        row.cpu.as_secs_f64(),
        row.us_per_varbind(),
        row.server_cpu.as_secs_f64(),
        row.busiest_server * 100.0,
        row.failures,
    );
}

fn print_header() {
    println!(
        "| backend  | tool           | run | devices |  varbinds |   wall s |   CPU s | CPU µs/vb  | server CPU s | busiest server | failures |"
    );
    println!(
        "|----------|----------------|-----|---------|-----------|----------|---------|------------|--------------|----------------|----------|"
    );
}

fn bench_backend(
    args: &Args,
    tools: &Tools,
    backend: &Backend,
    dir: &Path,
    ticks: u64,
) -> Result<Vec<Row>> {
    let targets = agent_targets(args, &backend.targets)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    println!("\n## {}: {}", backend.label, backend.describe);
    // Untimed warm-up (snmpsim opens and indexes each file on first use),
    // counting what the agent polls.
    let count = runtime.block_on(agent_count(&targets, args.concurrency));
    println!(
        "agent (warm-up pass, counted): {} polled varbinds, {} bindings received \
         ({} past the end of a walked column), {} failed targets",
        count.polled,
        count.received,
        count.received - count.polled,
        count.failed
    );
    let jobs = dir.join(format!("{}-jobs.txt", backend.label));
    let job_count = peer_jobs(args, tools, &backend.targets, &jobs)?;
    let first_jobs: Vec<String> = std::fs::read_to_string(&jobs)
        .unwrap_or_default()
        .lines()
        .take(3)
        .map(str::to_owned)
        .collect();
    println!(
        "peer: MIBS= xargs -a JOBS -P {} -L 1 env   ({job_count} jobs: per device one snmpget of \
         the 4 system scalars and one snmpbulkwalk per {}), first jobs:",
        args.concurrency,
        match args.peer_walk {
            PeerWalk::Table => "table the agent walks (the whole table entry)",
            PeerWalk::Column => "column the agent walks",
        }
    );
    for job in &first_jobs {
        println!("    {job}");
    }
    let (peer_varbinds, peer_failed) = peer_count(&jobs, args.concurrency)?;
    println!(
        "peer (warm-up pass, each job's output counted): {peer_varbinds} polled varbinds, \
         {peer_failed} failed jobs"
    );
    println!(
        "agent: outpost_agent::snmp::poll::poll_targets, concurrency {}, max_repetitions {}, \
         one multi-column GETBULK walk per table ({} tables, {} columns) after a GET of the 4 \
         system scalars; current-thread tokio runtime (as `outpost-agent check`)",
        args.concurrency,
        args.max_repetitions,
        WALKS.len(),
        WALKS.iter().map(|(_, _, c)| c.len()).sum::<usize>()
    );

    let mut rows = Vec::new();
    println!("load average before the runs: {}", load_average());
    print_header();
    for run in 1..=args.runs {
        // The agent.
        let servers_before = servers_cpu(&backend.servers, ticks);
        let cpu_before = cpu_time(UsageWho::RUSAGE_SELF)?;
        let started = Instant::now();
        let outcomes = runtime.block_on(poll_targets(&targets, args.concurrency));
        let wall = started.elapsed();
        let cpu = cpu_time(UsageWho::RUSAGE_SELF)? - cpu_before;
        let (server_cpu, busiest) =
            server_load(&servers_before, &servers_cpu(&backend.servers, ticks), wall);
        let failures = outcomes
            .iter()
            .filter(|o| {
                o.result
                    .as_ref()
                    .map_or(true, |poll| !poll.warnings.is_empty())
            })
            .count();
        if let Some(failed) = outcomes.iter().find_map(|o| o.result.as_ref().err()) {
            println!("    (agent: first failure: {failed})");
        }
        let row = Row {
            backend: backend.label,
            tool: "outpost-agent",
            run,
            devices: targets.len(),
            varbinds: count.polled,
            wall,
            cpu,
            server_cpu,
            busiest_server: busiest,
            failures,
        };
        print_row(&row);
        rows.push(row);

        // The peer.
        let servers_before = servers_cpu(&backend.servers, ticks);
        let peer = run_peer(
            tools,
            args,
            &jobs,
            &dir.join(format!("{}-peer-{run}.stderr", backend.label)),
        )?;
        let (server_cpu, busiest) = server_load(
            &servers_before,
            &servers_cpu(&backend.servers, ticks),
            peer.wall,
        );
        let row = Row {
            backend: backend.label,
            tool: "snmpbulkwalk",
            run,
            devices: backend.targets.len(),
            varbinds: peer_varbinds,
            wall: peer.wall,
            cpu: peer.cpu,
            server_cpu,
            busiest_server: busiest,
            failures: peer.timeouts,
        };
        if peer.exit != "exit status: 0" {
            println!(
                "    (peer: xargs {}; {} timeouts)",
                peer.exit, peer.timeouts
            );
        }
        print_row(&row);
        rows.push(row);
    }
    println!("load average after the runs: {}", load_average());
    Ok(rows)
}

/// /proc/loadavg's 1, 5 and 15 minute averages: other work on the machine
/// slows the simulators and stretches every wall time.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn summarize(args: &Args, backend: &str, rows: &[Row]) {
    let pick = |tool: &str| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.backend == backend && r.tool == tool)
            .collect()
    };
    let agent = pick("outpost-agent");
    let peer = pick("snmpbulkwalk");
    if agent.is_empty() || peer.is_empty() {
        return;
    }
    let med = |rows: &[&Row], f: &dyn Fn(&Row) -> f64| median(rows.iter().map(|r| f(r)).collect());
    let wall_ratio = median(
        agent
            .iter()
            .zip(&peer)
            .map(|(a, p)| a.wall.as_secs_f64() / p.wall.as_secs_f64())
            .collect(),
    );
    let cpu_ratio = median(
        agent
            .iter()
            .zip(&peer)
            .map(|(a, p)| a.us_per_varbind() / p.us_per_varbind())
            .collect(),
    );
    let agent_busiest = med(&agent, &|r| r.busiest_server);
    let peer_busiest = med(&peer, &|r| r.busiest_server);
    println!(
        "\n{backend}, medians of {} runs: agent {:.2} s wall, {:.2} µs CPU/varbind; \
         snmpbulkwalk batch {:.2} s wall, {:.2} µs CPU/varbind",
        args.runs,
        med(&agent, &|r| r.wall.as_secs_f64()),
        med(&agent, &|r| r.us_per_varbind()),
        med(&peer, &|r| r.wall.as_secs_f64()),
        med(&peer, &|r| r.us_per_varbind()),
    );
    println!(
        "  CPU per varbind, agent / snmpbulkwalk: {cpu_ratio:.3} (target ≤ 0.333: {})",
        if cpu_ratio <= 1.0 / 3.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  wall time, agent / snmpbulkwalk batch: {wall_ratio:.3} (target ≤ 1: {})",
        if wall_ratio <= 1.0 { "met" } else { "NOT met" }
    );
    for (tool, busiest) in [("agent", agent_busiest), ("snmpbulkwalk", peer_busiest)] {
        if busiest > 0.85 {
            println!(
                "  during the {tool} runs the busiest {backend} process used {:.0}% of a core: \
                 the simulator, not the poller, bounds the wall time",
                busiest * 100.0
            );
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.devices == 0 || args.runs == 0 || args.concurrency == 0 {
        bail!("--devices, --runs and --concurrency must be at least 1");
    }
    let tools = Tools::find(&args.backends)?;
    let tempdir = tempfile::Builder::new()
        .prefix("agent-poll-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = tempdir.path().to_owned();
    let ticks = clock_ticks();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "agent-poll-bench: {} devices, concurrency {}, max-repetitions {}, {} run(s), \
         {cores} cores; temp dir {}",
        args.devices,
        args.concurrency,
        args.max_repetitions,
        args.runs,
        dir.display()
    );
    let mut all_rows = Vec::new();
    let mut summaries = BTreeMap::new();
    for kind in &args.backends {
        let backend = match kind {
            BackendKind::Snmpsim => start_snmpsim(&tools, &args, &dir)?,
            BackendKind::Snmpd => start_snmpd(&tools, &args, &dir)?,
        };
        let rows = bench_backend(&args, &tools, &backend, &dir, ticks)?;
        summaries.insert(backend.label, ());
        all_rows.extend(rows);
        // Stop this backend's servers before the next one starts.
        drop(backend);
    }
    for backend in summaries.keys() {
        summarize(&args, backend, &all_rows);
    }
    println!(
        "\nvarbinds: values of the polled objects (both tools alike: exceptions and \
         bindings past the end of a walked column not counted). CPU: the agent's is this \
         process's (RUSAGE_SELF) during poll_targets; the peer's is xargs and its \
         snmpget/snmpbulkwalk children (RUSAGE_CHILDREN). server CPU: the simulators' own, \
         from /proc. failures: agent targets failed or with warnings; peer timeouts."
    );
    std::io::stdout().flush().ok();
    if args.keep {
        let kept = tempdir.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}
