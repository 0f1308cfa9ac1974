//! A private snmpsim (`snmpsimd`, Debian package `snmpsim`) on a free
//! loopback UDP port, serving copies of the `.snmprec` fixtures in
//! `tests/fixtures/snmpsim/` from its own temporary data directory (see
//! PEERS.md). Stopped (by its PID) when dropped.
//!
//! Shared by the agent's tests (`agent/tests/snmpsim.rs`) and the end-to-end
//! tests (`tests/tests/agent_snmpsim.rs`, through `#[path]`), so it needs
//! nothing but std and `tempfile`, and reports failures by panicking.
//!
//! * The v2c community of a fixture is its file name without `.snmprec`.
//! * Changing a device's state ([`Snmpsim::set`]) rewrites its copy
//!   atomically. snmpsim notices a changed data file by its modification
//!   time in whole seconds, so the rewrite moves the time forward by at
//!   least a second: the very next request sees the new values.

#![allow(dead_code)] // Each test uses a different part of this module.

use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The names the simulator goes by: Debian's 0.4 `snmpsimd`, and
/// `snmpsim-command-responder` of the newer releases on PyPI.
const EXECUTABLES: [&str; 2] = ["snmpsimd", "snmpsim-command-responder"];

/// What snmpsimd logs once it listens.
const LISTENING: &str = "Listening at UDP/IPv4 endpoint";

/// The committed fixtures.
pub fn fixtures_dir() -> PathBuf {
    // Both crates (`agent/`, `tests/`) sit at the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/snmpsim")
}

/// A running snmpsimd.
pub struct Snmpsim {
    child: Child,
    /// Its UDP port on 127.0.0.1.
    pub port: u16,
    /// Its temporary directory: `data/` (the fixtures), `cache/` (its
    /// indexes) and `snmpsimd.log`.
    pub dir: tempfile::TempDir,
}

fn find_executable() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from("/usr/bin"));
    EXECUTABLES
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    socket.local_addr().expect("local address").port()
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("chmod {}: {err}", path.display()));
}

/// snmpsimd's output in `dir` (it logs to stdout or stderr by version).
fn log_text(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("{}{}", read("snmpsimd.log"), read("snmpsimd.err"))
}

/// Waits (at most 20 s) for snmpsimd to listen; its log if it does not.
fn wait_until_listening(child: &mut Child, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = log_text(dir);
        if log.contains(LISTENING) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("snmpsimd exited ({status}):\n{log}"));
        }
        if Instant::now() > deadline {
            return Err(format!("snmpsimd did not listen within 20 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Snmpsim {
    /// Starts snmpsimd serving copies of the named fixtures (`core-sw` for
    /// `core-sw.snmprec`), or returns `None` (after saying why) when it is
    /// not installed, so the test can skip.
    pub fn start(fixtures: &[&str]) -> Option<Snmpsim> {
        let files: Vec<(&str, &str)> = fixtures.iter().map(|f| (*f, *f)).collect();
        Snmpsim::start_copies(&files)
    }

    /// Like [`Snmpsim::start`], serving fixture `fixture` under each
    /// `name` (its own data file and community): several devices of one
    /// kind, made distinct with [`Snmpsim::set`] (a serial number, say).
    pub fn start_copies(files: &[(&str, &str)]) -> Option<Snmpsim> {
        let Some(exe) = find_executable() else {
            eprintln!(
                "SKIPPED: snmpsimd is not installed (apt-get install snmpsim; .ci/run installs it)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::create_dir_all(&cache).expect("cache dir");
        for (name, fixture) in files {
            let from = fixtures_dir().join(format!("{fixture}.snmprec"));
            let to = data.join(format!("{name}.snmprec"));
            std::fs::copy(&from, &to)
                .unwrap_or_else(|err| panic!("copy {}: {err}", from.display()));
            set_mode(&to, 0o644);
        }
        // As root, snmpsimd drops to nobody before it reads the data or
        // writes its indexes: open the way for that user.
        let root = running_as_root();
        if root {
            set_mode(dir.path(), 0o755);
            set_mode(&data, 0o755);
            set_mode(&cache, 0o777);
        }
        // A port free a moment ago may be taken by the time snmpsimd binds
        // it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_udp_port();
            let log = dir.path().join("snmpsimd.log");
            let mut command = Command::new(&exe);
            command
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!("--cache-dir={}", cache.display()))
                .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"));
            if root {
                command.args(["--process-user=nobody", "--process-group=nogroup"]);
            }
            let mut child = command
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).expect("snmpsimd log"))
                .stderr(std::fs::File::create(dir.path().join("snmpsimd.err")).expect("log"))
                .spawn()
                .unwrap_or_else(|err| panic!("start {}: {err}", exe.display()));
            match wait_until_listening(&mut child, dir.path()) {
                Ok(()) => return Some(Snmpsim { child, port, dir }),
                Err(log) => {
                    last_log = log;
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("snmpsimd did not start:\n{last_log}");
    }

    /// snmpsimd's output so far.
    pub fn log_text(&self) -> String {
        log_text(self.dir.path())
    }

    /// `host:port` of the simulator.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The simulator's copy of fixture `name`.
    pub fn data_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("data").join(format!("{name}.snmprec"))
    }

    /// Sets the value of `oid` (numeric, no leading dot; its line must
    /// exist) in the simulator's copy of fixture `name`.
    pub fn set(&self, name: &str, oid: &str, tag: &str, value: &str) {
        let path = self.data_file(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
        let prefix = format!("{oid}|");
        let mut found = false;
        let mut rewritten = String::with_capacity(text.len());
        for line in text.lines() {
            if line.starts_with(&prefix) {
                found = true;
                rewritten.push_str(&format!("{oid}|{tag}|{value}"));
            } else {
                rewritten.push_str(line);
            }
            rewritten.push('\n');
        }
        assert!(found, "{oid} is not in {}", path.display());
        self.replace(&path, &rewritten);
    }

    /// Replaces `path` atomically (write, fsync, rename), with a
    /// modification time at least a second after the old one.
    fn replace(&self, path: &Path, text: &str) {
        let old = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mtime = SystemTime::now().max(old + Duration::from_secs(1));
        let tmp = path.with_extension("rewrite");
        let mut file = std::fs::File::create(&tmp).expect("create the rewritten fixture");
        file.write_all(text.as_bytes()).expect("write the fixture");
        file.set_modified(mtime).expect("set the fixture's mtime");
        file.sync_all().expect("fsync the fixture");
        drop(file);
        set_mode(&tmp, 0o644);
        std::fs::rename(&tmp, path).expect("rename the rewritten fixture");
    }
}

impl Drop for Snmpsim {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
