//! Real peers for the agent's integration tests: a private net-snmp `snmpd`
//! on a free loopback port with its own configuration in a temporary
//! directory (see PEERS.md), stopped when dropped.

#![allow(dead_code)] // Each test file uses a different part of this module.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost_agent::config::{AgentConfig, SnmpTarget};

/// Where Debian installs the SNMP daemon.
pub const SNMPD: &str = "/usr/sbin/snmpd";

/// The v3 users the test `snmpd` knows; passwords are `authpass123` and
/// `privpass123`.
const SNMPD_CONF: &str = r#"
view   all   included   .1
rocommunity  public  127.0.0.1  -V all
createUser  v3user  SHA  "authpass123"  AES  "privpass123"
rouser      v3user  priv  -V all
createUser  v3sha256  SHA-256  "authpass123"  AES-256  "privpass123"
rouser      v3sha256  priv  -V all
createUser  v3auth  SHA-512  "authpass123"
rouser      v3auth  auth  -V all
"#;

/// A running `snmpd`, killed (by its PID) on drop.
pub struct Snmpd {
    child: Child,
    /// Its UDP port on 127.0.0.1.
    pub port: u16,
    /// Its temporary directory (config, log, persistent state).
    pub dir: tempfile::TempDir,
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    socket.local_addr().expect("local address").port()
}

impl Snmpd {
    /// Starts `snmpd`, or returns `None` (after saying why) when it is not
    /// installed, so the test can skip.
    pub fn start() -> Option<Snmpd> {
        if !Path::new(SNMPD).exists() {
            eprintln!("SKIPPED: {SNMPD} is not installed (apt-get install snmpd)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_udp_port();
        let conf = dir.path().join("snmpd.conf");
        std::fs::write(
            &conf,
            format!("agentAddress udp:127.0.0.1:{port}\n{SNMPD_CONF}"),
        )
        .expect("write snmpd.conf");
        let persist = dir.path().join("persist");
        std::fs::create_dir_all(&persist).expect("persistent dir");
        let child = Command::new(SNMPD)
            .arg("-f")
            .arg("-C")
            .arg("-c")
            .arg(&conf)
            .arg("-Lf")
            .arg(dir.path().join("snmpd.log"))
            .arg("-p")
            .arg(dir.path().join("snmpd.pid"))
            .env("MIBS", "")
            .env("SNMP_PERSISTENT_DIR", &persist)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start snmpd");
        let snmpd = Snmpd { child, port, dir };
        snmpd.wait_until_answering();
        Some(snmpd)
    }

    /// Polls with `snmpget` until the daemon answers (at most 10 s).
    fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answered = Command::new("snmpget")
                .args(["-v2c", "-c", "public", "-r0", "-t1", "-On"])
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("1.3.6.1.2.1.1.5.0")
                .env("MIBS", "")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if answered {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "snmpd did not answer within 10 s; log: {}",
                std::fs::read_to_string(self.dir.path().join("snmpd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `host:port` of the daemon.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The path of a new file in the daemon's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `[[snmp.targets]]` table for `address`, with `extra` keys.
pub fn target_table(name: &str, address: &str, extra: &str) -> String {
    format!("[[snmp.targets]]\nname = \"{name}\"\naddress = \"{address}\"\n{extra}\n")
}

/// v2c with community `public`.
pub const V2C: &str = "version = \"v2c\"\ncommunity = \"public\"\n";

/// v3 authPriv with user `v3user` (SHA, AES-128).
pub const V3_SHA_AES: &str = "version = \"v3\"\nuser = \"v3user\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"SHA\"\nauth_password = \"authpass123\"\npriv_protocol = \"AES\"\npriv_password = \"privpass123\"\n";

/// v3 authPriv with user `v3sha256` (SHA-256, AES-256).
pub const V3_SHA256_AES256: &str = "version = \"v3\"\nuser = \"v3sha256\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"SHA-256\"\nauth_password = \"authpass123\"\npriv_protocol = \"AES-256\"\npriv_password = \"privpass123\"\n";

/// v3 authNoPriv with user `v3auth` (SHA-512).
pub const V3_SHA512_AUTH: &str = "version = \"v3\"\nuser = \"v3auth\"\nsecurity_level = \"authNoPriv\"\nauth_protocol = \"SHA-512\"\nauth_password = \"authpass123\"\n";

/// A whole configuration file around the given target tables.
pub fn config_text(targets: &str) -> String {
    format!("[server]\nurl = \"http://127.0.0.1:9\"\n\n[snmp]\nconcurrency = 4\n\n{targets}")
}

/// One target, parsed and validated the way the agent does.
pub fn target(name: &str, address: &str, extra: &str) -> SnmpTarget {
    let config = AgentConfig::parse(&config_text(&target_table(name, address, extra)))
        .expect("test target config is valid");
    config.snmp.targets.into_iter().next().expect("one target")
}
