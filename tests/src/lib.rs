//! Helpers for the end-to-end tests: start the real `outpost-server` binary
//! on an ephemeral loopback port over SQLite or a fresh PostgreSQL database,
//! run its CLI against the same data, and talk to it over HTTP.
//!
//! PostgreSQL: `OUTPOST_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`)
//! names a server where the tests may create and drop databases.
//!
//! Agent binary: `OUTPOST_TEST_AGENT` (default: the workspace's own build)
//! puts another agent build, such as the static musl one, through the
//! tests that run the agent.

use anyhow::{bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The workspace's target directory holding the built binaries.
pub fn bin(name: &str) -> PathBuf {
    // Another agent build (e.g. the static musl one) can be put through the
    // same tests: OUTPOST_TEST_AGENT=path/to/outpost-agent.
    if name == "outpost-agent" {
        if let Some(path) = std::env::var_os("OUTPOST_TEST_AGENT") {
            return PathBuf::from(path);
        }
    }
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .map(Path::to_path_buf)
        .unwrap_or_default();
    dir.join(name)
}

pub fn pg_admin_url() -> String {
    std::env::var("OUTPOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A PostgreSQL database made for one test and dropped afterwards.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> Result<PgDatabase> {
        use sqlx::Connection;
        let admin = pg_admin_url();
        let name = format!(
            "outpost_t_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .with_context(|| format!("PostgreSQL at {admin} is needed for this test"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin.clone());
        Ok(PgDatabase {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop from a separate thread with its own runtime: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            }
        })
        .join();
    }
}

/// A running `outpost-server serve` with an admin token.
pub struct Server {
    pub base: String,
    /// The SSH relay's address.
    pub ssh: String,
    pub admin_token: String,
    pub backend: Backend,
    pub http: reqwest::Client,
    child: Child,
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDatabase>,
    /// The config file every subcommand is given, if any.
    pub config: Option<PathBuf>,
}

impl Server {
    /// The server process's id (for CPU figures in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn start(backend: Backend) -> Result<Server> {
        Server::start_with_config(backend, None).await
    }

    /// Start with a config file holding `toml` (e.g. an `[sla]` section).
    pub async fn start_with_config(backend: Backend, toml: Option<&str>) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let config = match toml {
            Some(text) => {
                let path = dir.path().join("outpost.toml");
                std::fs::write(&path, text)?;
                Some(path)
            }
            None => None,
        };
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await?),
        };
        let mut s = Server {
            base: String::new(),
            ssh: String::new(),
            admin_token: String::new(),
            backend,
            // Tests may run the server with a self-signed certificate; the
            // agent's own pinning is what they check, not this client's.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .danger_accept_invalid_certs(true)
                .build()?,
            child: Command::new("true").spawn()?,
            dir,
            pg,
            config,
        };
        let boot = s.cli(&["admin", "bootstrap"])?;
        if !boot.status.success() {
            bail!(
                "bootstrap failed: {}",
                String::from_utf8_lossy(&boot.stderr)
            );
        }
        s.admin_token = String::from_utf8_lossy(&boot.stdout)
            .lines()
            .find(|l| l.starts_with("opt_"))
            .context("bootstrap printed no token")?
            .to_string();
        let (base, ssh, child) = s.launch("server.log")?;
        (s.base, s.ssh, s.child) = (base, ssh, child);
        Ok(s)
    }

    /// Start another `serve` process on the same data (a replica; PostgreSQL).
    /// Returns its base URL and the process, which the caller must stop.
    pub fn start_replica(&self) -> Result<(String, Replica)> {
        let (base, _ssh, child) = self.launch("replica.log")?;
        Ok((base, Replica(child)))
    }

    /// Start another replica logging to `log` (in the test directory);
    /// returns its base URL, its relay's address and the process.
    pub fn start_replica_named(&self, log: &str) -> Result<(String, String, Replica)> {
        let (base, ssh, child) = self.launch(log)?;
        Ok((base, ssh, Replica(child)))
    }

    /// The data flags every subcommand takes.
    pub fn data_args(&self) -> Vec<String> {
        let mut a = vec![
            "--data-dir".to_string(),
            self.dir.path().join("data").display().to_string(),
        ];
        if let Some(pg) = &self.pg {
            a.extend(["--database-url".to_string(), pg.url.clone()]);
        }
        if let Some(c) = &self.config {
            a.extend(["--config".to_string(), c.display().to_string()]);
        }
        a
    }

    /// Start `serve` on an ephemeral port with this server's data, logging to
    /// `log` in the test directory; returns its base URL once it listens.
    fn launch(&self, log: &str) -> Result<(String, String, Child)> {
        self.launch_on(log, "127.0.0.1:0", "127.0.0.1:0")
    }

    /// [`Server::launch`] on given HTTP and SSH addresses.
    fn launch_on(&self, log: &str, http: &str, ssh: &str) -> Result<(String, String, Child)> {
        let log = self.dir.path().join(log);
        let mut child = Command::new(bin("outpost-server"))
            .args(["serve", "--listen", http, "--ssh-listen", ssh])
            .args(self.data_args())
            .env(
                "OUTPOST_LOG",
                std::env::var("OUTPOST_TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("OUTPOST_DATABASE_URL")
            .env_remove("OUTPOST_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context(
                "cannot start outpost-server; was it built (cargo test --workspace builds it)?",
            )?;
        let base = match wait_for_listen(&log, &mut child) {
            Ok(base) => base,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let ssh = text
            .find("ssh_listen=")
            .map(|i| {
                text[i + 11..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect::<String>()
            })
            .unwrap_or_default();
        Ok((base, ssh, child))
    }

    /// Run a CLI subcommand on this server's data.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(bin("outpost-server"))
            .args(args)
            .args(self.data_args())
            .env_remove("OUTPOST_DATABASE_URL")
            .env_remove("OUTPOST_CONFIG")
            .env("OUTPOST_LOG", "warn")
            .output()?)
    }

    /// `admin verify` must pass: every history chain intact.
    pub fn verify_intact(&self) -> Result<()> {
        let out = self.cli(&["admin", "verify"])?;
        if !out.status.success() {
            bail!(
                "admin verify failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(())
    }

    /// A raw request; returns status and JSON body (Null if none or not JSON).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &str)>,
    ) -> Result<(StatusCode, Value)> {
        let mut rq = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        if let Some((ctype, b)) = body {
            rq = rq.header("content-type", ctype).body(b.to_string());
        }
        let resp = rq.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let b = body.map(|v| v.to_string());
        self.raw(
            method,
            path,
            Some(token),
            b.as_deref().map(|b| ("application/json", b)),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Result<(StatusCode, Value)> {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// POST that must succeed; returns the body.
    pub async fn post_ok(&self, path: &str, token: &str, body: Value) -> Result<Value> {
        let (st, v) = self.post(path, token, body).await?;
        if !st.is_success() {
            bail!("POST {path} -> {st}: {v}");
        }
        Ok(v)
    }

    /// Create a user with a token. Returns (id, token).
    pub async fn user(
        &self,
        username: &str,
        role: &str,
        level: Option<i64>,
        org: Option<i64>,
    ) -> Result<(i64, String)> {
        let u = self
            .post_ok(
                "/api/v1/users",
                &self.admin_token,
                serde_json::json!({
                    "username": username, "display_name": username, "role": role,
                    "manager_level": level, "organization_id": org,
                    "email": format!("{username}@example.com"), "mobile": mobile_for(username),
                }),
            )
            .await?;
        let id = u["id"].as_i64().context("user id")?;
        let t = self
            .post_ok(
                &format!("/api/v1/users/{id}/tokens"),
                &self.admin_token,
                serde_json::json!({ "name": "test" }),
            )
            .await?;
        Ok((id, t["token"].as_str().context("token")?.to_string()))
    }

    /// Stop the server process.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's log so far (the restarted process's, after a restart).
    pub fn log_text(&self) -> String {
        let restarted = self.dir.path().join("server-restarted.log");
        let log = if restarted.exists() {
            restarted
        } else {
            self.dir.path().join("server.log")
        };
        std::fs::read_to_string(log).unwrap_or_default()
    }

    /// Kill the server and start it again on the same HTTP and SSH
    /// addresses (agents configured with them find it again).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let http = self
            .base
            .rsplit("://")
            .next()
            .context("base URL")?
            .to_string();
        let ssh = self.ssh.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.launch_on("server-restarted.log", &http, &ssh) {
                Ok((_, _, child)) => {
                    self.child = child;
                    return Ok(());
                }
                // The old sockets may linger a moment.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart: retrying: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// OpenSSH's `sshd`, started on a loopback port with its own host key and
/// config, letting the current user in with the keys in `authorized_keys`
/// (in its directory). Killed when dropped.
pub struct Sshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The host public key line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    child: Child,
}

pub const SSHD: &str = "/usr/sbin/sshd";

impl Sshd {
    /// None (and a SKIPPED line) if OpenSSH's server is not installed.
    pub fn start() -> Result<Option<Sshd>> {
        if !Path::new(SSHD).exists() {
            eprintln!("SKIPPED: {SSHD} is not installed (apt-get install openssh-server)");
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("host_ed25519");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()?;
        if !made.status.success() {
            bail!("ssh-keygen: {}", String::from_utf8_lossy(&made.stderr));
        }
        let host_key = std::fs::read_to_string(dir.path().join("host_ed25519.pub"))?
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, "")?;
        // sshd started by root needs its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port()?;
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 LogLevel VERBOSE\n",
                key = key.display(),
                pid = dir.path().join("sshd.pid").display(),
                authorized = authorized.display(),
            ),
        )?;
        let log = dir.path().join("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting sshd")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "sshd did not listen on {port}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(Sshd {
            port,
            dir,
            host_key,
            child,
        }))
    }

    /// Lets the holder of `public_key` log in.
    pub fn authorize(&self, public_key: &str) -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))?;
        writeln!(f, "{}", public_key.trim())?;
        Ok(())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A distinct mobile number per test user ("+49 170 555" and 4 digits).
pub fn mobile_for(username: &str) -> String {
    let n = username
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("+49 170 555{:04}", n % 10_000)
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The directory of the peer scripts (`tests/peers`).
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// A peer process started from `tests/peers` (a real SMTP server, an HTTP
/// receiver) that writes one JSON line per message it receives to its log.
/// Stopped when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    script: String,
}

impl Peer {
    /// Start `python3 tests/peers/<script> PORT LOG` and wait for "ready".
    pub fn start(script: &str, port: u16, log: &Path) -> Result<Peer> {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(peers_dir().join(script))
            .arg(port.to_string())
            .arg(log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start python3 {script}"))?;
        let out = child.stdout.take().context("peer stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("{script} did not start (is aiosmtpd installed? .ci/run installs it): {line:?}");
        }
        Ok(Peer {
            child,
            port,
            log: log.to_path_buf(),
            script: script.to_string(),
        })
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Value> {
        read_jsonl(&self.log)
    }

    /// Stop the peer (it can be started again on the same port and log).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again after `stop`.
    pub fn restart(&mut self) -> Result<()> {
        let again = Peer::start(&self.script, self.port, &self.log)?;
        *self = again;
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The JSON lines of a file (missing file: none).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A second server process; stopped when dropped.
pub struct Replica(Child);

impl Replica {
    /// Kill it at once (SIGKILL: nothing is cleaned up).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP echo service on loopback, on threads of its own (a test's
/// runtime may block while it waits for ssh); returns its port.
pub fn echo_service() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut reader) = stream.try_clone() else {
                    return;
                };
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
                let _ = writer.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Ok(port)
}

/// A new ed25519 key pair at `path` (no passphrase) made by `ssh-keygen`;
/// returns the public key line.
pub fn keygen(path: &Path) -> Result<String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "engineer@test", "-f"])
        .arg(path)
        .output()
        .context("running ssh-keygen")?;
    if !out.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(std::fs::read_to_string(path.with_extension("pub"))?
        .trim()
        .to_string())
}

/// HAProxy in TCP mode in front of server replicas, as in a deployment:
/// one frontend for HTTP and one for the SSH relay, round robin, with
/// health checks that take a dead replica out within a second. Stopped when
/// dropped.
pub struct Haproxy {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// `127.0.0.1:PORT`.
    pub ssh: String,
    pub dir: tempfile::TempDir,
}

impl Haproxy {
    /// In front of `http` (base URLs) and `ssh` (addresses) backends.
    pub fn start(http: &[&str], ssh: &[&str]) -> Result<Haproxy> {
        let dir = tempfile::tempdir()?;
        let (http_port, ssh_port) = (free_port()?, free_port()?);
        let servers = |list: &[&str], strip: bool| -> String {
            list.iter()
                .enumerate()
                .map(|(i, a)| {
                    let addr = if strip {
                        a.trim_start_matches("http://")
                    } else {
                        a
                    };
                    format!("    server r{i} {addr} check inter 300ms fall 2 rise 1\n")
                })
                .collect()
        };
        let config = format!(
            "global\n    maxconn 2000\n\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1h\n    \
             timeout server 1h\n    retries 3\n    option redispatch\n\n\
             frontend http\n    bind 127.0.0.1:{http_port}\n    default_backend http\n\n\
             backend http\n    balance roundrobin\n{}\n\
             frontend ssh\n    bind 127.0.0.1:{ssh_port}\n    default_backend ssh\n\n\
             backend ssh\n    balance roundrobin\n{}",
            servers(http, true),
            servers(ssh, false),
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config)?;
        let check = Command::new("haproxy")
            .args(["-c", "-q", "-f"])
            .arg(&path)
            .output()
            .context("cannot run haproxy (.ci/run installs it)")?;
        if !check.status.success() {
            bail!(
                "haproxy refused the config: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("haproxy.log"))?)
            .spawn()
            .context("cannot start haproxy")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", ssh_port)).is_err() {
            if Instant::now() > deadline {
                bail!("haproxy did not listen within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Haproxy {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            ssh: format!("127.0.0.1:{ssh_port}"),
            dir,
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_listen(log: &Path, child: &mut Child) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(i) = text.find("listen=") {
            let addr: String = text[i + 7..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            let scheme = if text.contains("scheme=\"https\"") || text.contains("scheme=https") {
                "https"
            } else {
                "http"
            };
            return Ok(format!("{scheme}://{addr}"));
        }
        if let Some(status) = child.try_wait()? {
            bail!("outpost-server exited ({status}) before listening:\n{text}");
        }
        if Instant::now() > deadline {
            bail!("outpost-server did not start within 60 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small world built through the API: two customer organisations with a
/// device and a contract each, one user per role, a customer user per org.
pub struct World {
    pub org_a: i64,
    pub org_b: i64,
    pub device_a: i64,
    pub device_b: i64,
    pub admin: String,
    pub dispatcher: String,
    pub engineer: (i64, String),
    pub engineer2: (i64, String),
    pub expert: (i64, String),
    pub rma: String,
    pub managers: Vec<String>,
    pub customer_a: String,
    pub customer_b: String,
}

impl World {
    pub async fn build(s: &Server) -> Result<World> {
        let admin = s.admin_token.clone();
        let mut orgs = Vec::new();
        let mut devices = Vec::new();
        for (i, code) in ["A100", "B200"].iter().enumerate() {
            let o = s
                .post_ok("/api/v1/organizations", &admin, serde_json::json!({
                    "customer_code": code, "name": format!("Customer {code}"), "phone": format!("+49 40 555{i}0000")
                }))
                .await?;
            let oid = o["id"].as_i64().context("org id")?;
            let d = s
                .post_ok("/api/v1/devices", &admin, serde_json::json!({
                    "organization_id": oid, "name": format!("sw-{code}"), "device_type": "switch",
                    "vendor": if i == 0 { "Cisco" } else { "Huawei" }, "model": "X1", "serial": format!("SN{code}"),
                    "warranty_end": "2099-12-31"
                }))
                .await?;
            let did = d["id"].as_i64().context("device id")?;
            s.post_ok("/api/v1/contracts", &admin, serde_json::json!({
                "organization_id": oid, "number": format!("K-{code}"), "starts_on": "2020-01-01",
                "ends_on": "2099-12-31", "coverage": "24x7", "device_ids": [did]
            }))
            .await?;
            orgs.push(oid);
            devices.push(did);
        }
        let (_, dispatcher) = s.user("disp", "dispatcher", None, None).await?;
        let engineer = s.user("eng1", "engineer", None, None).await?;
        let engineer2 = s.user("eng2", "engineer", None, None).await?;
        let expert = s.user("exp1", "expert", None, None).await?;
        let (_, rma) = s.user("rma1", "rma_admin", None, None).await?;
        let mut managers = Vec::new();
        for l in 1..=5 {
            managers.push(
                s.user(&format!("mgr{l}"), "manager", Some(l), None)
                    .await?
                    .1,
            );
        }
        let (_, customer_a) = s.user("cust_a", "customer", None, Some(orgs[0])).await?;
        let (_, customer_b) = s.user("cust_b", "customer", None, Some(orgs[1])).await?;
        Ok(World {
            org_a: orgs[0],
            org_b: orgs[1],
            device_a: devices[0],
            device_b: devices[1],
            admin,
            dispatcher,
            engineer,
            engineer2,
            expert,
            rma,
            managers,
            customer_a,
            customer_b,
        })
    }

    /// File a fault analysis report as the engineer (P1/P2 cases need one to close).
    pub async fn fault_report(&self, s: &Server, number: &str) -> Result<()> {
        s.post_ok(
            &format!("/api/v1/cases/{number}/fault-report"),
            &self.engineer.1,
            serde_json::json!({ "cause": "test cause", "actions": "test actions", "prevention": "test prevention" }),
        )
        .await?;
        Ok(())
    }

    /// Open a case for organisation A (or B) as the dispatcher; returns its number.
    pub async fn open_case(&self, s: &Server, org_b: bool, summary: &str) -> Result<String> {
        let v = s
            .post_ok(
                "/api/v1/cases",
                &self.dispatcher,
                serde_json::json!({
                    "caller": { "name": "Caller", "phone": "+49 40 1234567" },
                    "summary": summary, "details": "details", "priority": "P2",
                    "device_id": if org_b { self.device_b } else { self.device_a },
                }),
            )
            .await?;
        Ok(v["number"].as_str().context("number")?.to_string())
    }
}

/// Clock ticks per second, the unit of CPU times in `/proc/PID/stat`
/// (`getconf CLK_TCK`; 100 if it cannot say).
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `outpost-agent run --config FILE`, logging to a file; killed (-9) when
/// dropped, and can be killed and started again to test crash recovery.
pub struct AgentProcess {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    /// The binary to run (a copy, for self-update tests).
    binary: PathBuf,
    /// Run in its own process group, killed as a group (self-update starts
    /// a child of the agent on trial).
    group: bool,
}

impl AgentProcess {
    pub fn start(config: &Path, log: &Path) -> Result<AgentProcess> {
        let mut a = AgentProcess {
            child: None,
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            binary: bin("outpost-agent"),
            group: false,
        };
        a.spawn()?;
        Ok(a)
    }

    /// Runs `binary` (e.g. a copy the agent may replace by self-update) in
    /// a process group of its own, so the binary it starts on trial is
    /// killed with it.
    pub fn start_binary(binary: &Path, config: &Path, log: &Path) -> Result<AgentProcess> {
        let mut a = AgentProcess {
            child: None,
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            binary: binary.to_path_buf(),
            group: true,
        };
        a.spawn()?;
        Ok(a)
    }

    /// The agent's process id (kept across its self-update `exec`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start it (again), appending to the same log.
    pub fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(&self.binary);
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .env("OUTPOST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        if self.group {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        self.child = Some(
            command
                .spawn()
                .context("cannot start outpost-agent (cargo test --workspace builds it)")?,
        );
        Ok(())
    }

    /// kill -9 (of its process group, when it has one).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.group {
                if let Ok(pid) = i32::try_from(c.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies the agent binary `src` to `dst` with `version` stamped into its
/// version slot (`outpost_agent::version`): the same program, reporting
/// another version, as a release pipeline would stamp it.
pub fn stamp_agent_version(src: &Path, dst: &Path, version: &str) -> Result<()> {
    let mut bytes = std::fs::read(src)?;
    let marker = outpost_agent::version::MARKER;
    let len = outpost_agent::version::LEN;
    // The slot: the marker, then NUL-padded version text (the marker text
    // alone may also appear elsewhere).
    let slots: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i + marker.len())
        .filter(|&at| {
            bytes.get(at..at + len).is_some_and(|v| {
                let end = v.iter().position(|&b| b == 0).unwrap_or(len);
                end > 0
                    && v[..end].iter().all(|b| b.is_ascii_graphic())
                    && v[end..].iter().all(|&b| b == 0)
            })
        })
        .collect();
    anyhow::ensure!(
        slots.len() == 1,
        "expected one version slot in {}, found {}",
        src.display(),
        slots.len()
    );
    let at = slots[0];
    anyhow::ensure!(
        version.len() <= outpost_agent::version::LEN,
        "version too long"
    );
    let slot = &mut bytes[at..at + outpost_agent::version::LEN];
    slot.fill(0);
    slot[..version.len()].copy_from_slice(version.as_bytes());
    std::fs::write(dst, &bytes)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Enrol an agent for `organization_id` with a fresh one-time token, created
/// with `token` (a dispatcher's or admin's): `outpost-agent enroll --config`.
pub async fn enroll_agent(
    s: &Server,
    token: &str,
    organization_id: i64,
    config: &Path,
) -> Result<String> {
    enroll_agent_via(s, &s.base, token, organization_id, config).await
}

/// [`enroll_agent`] through `server` (a load balancer in front of `s`).
pub async fn enroll_agent_via(
    s: &Server,
    server: &str,
    token: &str,
    organization_id: i64,
    config: &Path,
) -> Result<String> {
    let t = s
        .post_ok(
            "/api/v1/enrollment-tokens",
            token,
            serde_json::json!({ "organization_id": organization_id }),
        )
        .await?;
    let one_time = t["token"].as_str().context("token")?.to_string();
    let out = Command::new(bin("outpost-agent"))
        .args([
            "enroll", "--server", server, "--token", &one_time, "--config",
        ])
        .arg(config)
        .output()?;
    if !out.status.success() {
        bail!("enroll: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(one_time)
}

/// A server config whose default SLA policy counts in seconds (P2: response
/// 3 s, reminders at 1 and 2 s, reassign at 2 s, escalation at 4 and 5 s), so
/// deadlines come due while a test waits.
pub const FAST_SLA: &str = r#"
[sla]
default_policy = "fast"

[[sla.policies]]
name = "fast"
[sla.policies.targets.P2]
response = "3s"
reminders = ["1s", "2s"]
reassign_at = "2s"
resolution = "off"
escalation = [{ after = "4s", level = 1 }, { after = "5s", level = 2 }]
"#;

/// Poll `f` every 200 ms until it holds, for at most `secs` seconds.
pub async fn wait_until<F>(what: &str, secs: u64, mut f: F) -> Result<()>
where
    F: AsyncFnMut() -> Result<bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("timed out after {secs} s waiting for {what}")
}

/// The README's `outpost-server demo`, on an ephemeral port and a fresh data
/// directory: its address and the API token it printed for each demo user.
/// Killed when dropped.
pub struct Demo {
    pub url: String,
    pub tokens: std::collections::HashMap<String, String>,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Demo {
    pub fn start() -> Result<Demo> {
        use std::io::BufRead;
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(bin("outpost-server"))
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--ssh-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .env_remove("OUTPOST_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("server.log"))?)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut url = String::new();
        let mut tokens = std::collections::HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Some(line) = lines.next().transpose()? else {
                break;
            };
            if let Some(u) = line.strip_prefix("Outpost demo at ") {
                url = u.trim().to_string();
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let (Some(user), Some(tok)) = (parts.first(), parts.last()) {
                if tok.starts_with("opt_") {
                    tokens.insert(user.to_string(), tok.to_string());
                }
            }
            if line.starts_with("Try:") {
                break;
            }
        }
        if url.is_empty() {
            bail!("the demo printed no address");
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Demo {
            url,
            tokens,
            child,
            dir,
        })
    }

    pub fn token(&self, user: &str) -> Result<String> {
        self.tokens
            .get(user)
            .cloned()
            .with_context(|| format!("the demo printed no token for {user}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server and keeps its data directory.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's ChromeDriver (`chromium-driver`, installed by `.ci/run`) on a
/// loopback port, driving headless Debian Chromium. Stopped when dropped.
pub struct ChromeDriver {
    child: Child,
    pub url: String,
    profiles: tempfile::TempDir,
}

impl ChromeDriver {
    pub async fn start() -> Result<ChromeDriver> {
        for tool in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
            if !Path::new(tool).exists() {
                bail!("{tool} is missing: install chromium and chromium-driver (.ci/run does)");
            }
        }
        let port = free_port()?;
        let profiles = tempfile::tempdir()?;
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(
                profiles.path().join("chromedriver.log"),
            )?)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let status = format!("{url}/status");
        wait_until("chromedriver to answer", 30, async || {
            Ok(http.get(&status).send().await.is_ok())
        })
        .await?;
        Ok(ChromeDriver {
            child,
            url,
            profiles,
        })
    }

    /// A new browser (its own profile, so its own cookies), at a laptop's
    /// window size.
    pub async fn browser(&self, name: &str) -> Result<fantoccini::Client> {
        let profile = self.profiles.path().join(name);
        std::fs::create_dir_all(&profile)?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1366,900", "--no-first-run", "--lang=en-GB",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = fantoccini::ClientBuilder::rustls()?
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("a chromium session through chromedriver")?;
        Ok(client)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Release signing and publishing through the real CLI and API: a key made
/// by `admin release-key generate`, manifests signed by `admin
/// sign-release`, artifacts uploaded with `PUT`.
pub mod releases {
    use super::{bin, Server};
    use anyhow::{bail, Context, Result};
    use reqwest::StatusCode;
    use serde_json::Value;
    use std::path::Path;
    use std::process::Command;

    /// `admin release-key generate FILE`: the public key printed.
    pub fn generate_key(file: &Path) -> Result<String> {
        let out = Command::new(bin("outpost-server"))
            .args(["admin", "release-key", "generate"])
            .arg(file)
            .output()?;
        if !out.status.success() {
            bail!(
                "release-key generate: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// `admin sign-release`: the `POST /api/v1/releases` body. Agent
    /// releases are named `outpost-agent`, firmware `fw`.
    pub fn sign(key: &Path, file: &Path, kind: &str, version: &str, target: &str) -> Result<Value> {
        let name = if kind == "agent" {
            "outpost-agent"
        } else {
            "fw"
        };
        let out = Command::new(bin("outpost-server"))
            .args(["admin", "sign-release", "--key"])
            .arg(key)
            .arg("--file")
            .arg(file)
            .args([
                "--kind",
                kind,
                "--name",
                name,
                "--version",
                version,
                "--target",
                target,
            ])
            .args(["--notes", "test release"])
            .output()?;
        if !out.status.success() {
            bail!("sign-release: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// `PUT` an artifact's bytes.
    pub async fn upload(s: &Server, id: i64, bytes: Vec<u8>) -> Result<(StatusCode, Value)> {
        let resp = s
            .http
            .put(format!("{}/api/v1/releases/{id}/artifact", s.base))
            .bearer_auth(&s.admin_token)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .with_context(|| s.log_text())?;
        let status = resp.status();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// Creates and uploads a release; its id.
    pub async fn publish(s: &Server, body: &Value, artifact: &Path) -> Result<i64> {
        let created = s
            .post_ok("/api/v1/releases", &s.admin_token, body.clone())
            .await?;
        let id = created["id"].as_i64().context("id")?;
        let (st, v) = upload(s, id, std::fs::read(artifact)?).await?;
        anyhow::ensure!(st == StatusCode::OK, "upload -> {st}: {v}");
        anyhow::ensure!(v["state"] == "published", "{v}");
        Ok(id)
    }
}

/// An agent simulated in the test process: an enrolled identity that signs
/// its requests exactly as `outpost_protocol::uplink` specifies.
pub mod sim_agent {
    use super::Server;
    use anyhow::{Context, Result};
    use base64::Engine;
    use chrono::Utc;
    use ed25519_dalek::{Signer, SigningKey};
    use outpost_protocol::{AgentAuth, AgentMessage, PROTOCOL_VERSION};
    use reqwest::StatusCode;
    use serde_json::{json, Value};
    use uuid::Uuid;

    /// An enrolled simulated agent.
    pub struct SimAgent {
        pub key: SigningKey,
        pub id: Uuid,
    }

    fn openssh_public(key: &SigningKey) -> String {
        let mut blob = Vec::new();
        for part in [&b"ssh-ed25519"[..], key.verifying_key().as_bytes()] {
            blob.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
            blob.extend_from_slice(part);
        }
        format!(
            "ssh-ed25519 {} test@agent",
            base64::engine::general_purpose::STANDARD.encode(blob)
        )
    }

    impl SimAgent {
        /// Enrols with a fresh token of `org` (made with `token`, a
        /// dispatcher's or admin's).
        pub async fn enroll(s: &Server, token: &str, org: i64, host: &str) -> Result<SimAgent> {
            let t = s
                .post_ok(
                    "/api/v1/enrollment-tokens",
                    token,
                    json!({ "organization_id": org, "note": host }),
                )
                .await?;
            let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            let (st, v) = s
                .raw(
                    reqwest::Method::POST,
                    "/api/v1/agent/enroll",
                    None,
                    Some((
                        "application/json",
                        &json!({
                            "protocol_version": PROTOCOL_VERSION,
                            "token": t["token"].as_str().context("token")?,
                            "public_key": openssh_public(&key),
                            "hostname": host, "agent_version": "0.1.0", "os": "linux", "arch": "x86_64"
                        })
                        .to_string(),
                    )),
                )
                .await?;
            anyhow::ensure!(st == 200, "enroll: {st} {v}");
            Ok(SimAgent {
                key,
                id: v["agent_id"].as_str().context("agent_id")?.parse()?,
            })
        }

        /// A signed `POST` of `body` to `path`: status and JSON answer.
        pub async fn post(
            &self,
            s: &Server,
            path: &str,
            body: &str,
        ) -> Result<(StatusCode, Value)> {
            let ts = Utc::now().timestamp();
            let input = outpost_protocol::signing_input("POST", path, self.id, ts, body.as_bytes());
            let auth = AgentAuth {
                agent_id: self.id,
                timestamp: ts,
                signature: self.key.sign(&input).to_bytes().to_vec(),
            };
            let resp = s
                .http
                .post(format!("{}{path}", s.base))
                .header("authorization", auth.to_header())
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await?;
            let st = resp.status();
            let text = resp.text().await?;
            Ok((st, serde_json::from_str(&text).unwrap_or(Value::Null)))
        }

        /// Sends messages as one batch; the whole answer (results, hints).
        pub async fn send(&self, s: &Server, msgs: &[AgentMessage]) -> Result<Value> {
            let body = json!({ "messages": msgs }).to_string();
            let (st, v) = self.post(s, "/api/v1/agent/messages", &body).await?;
            anyhow::ensure!(st == 200, "messages: {st} {v}");
            Ok(v)
        }
    }
}

/// A signed-in web console session (the sign-in form with its CSRF token
/// and cookie), redirects not followed.
pub mod console {
    use anyhow::{Context, Result};
    use reqwest::{header, redirect, StatusCode};

    pub struct Session {
        pub http: reqwest::Client,
        pub base: String,
        /// `outpost_session=…`, for the `Cookie` header.
        pub cookie: String,
    }

    /// The `name=value` of cookie `name` the response sets.
    pub fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
        resp.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
    }

    /// The value of the hidden `csrf` field in a page.
    pub fn csrf_field(html: &str) -> Option<String> {
        let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        Some(html[at..].split('"').next()?.to_string())
    }

    /// Signs `user` in with `password` at the console of `base`.
    pub async fn sign_in(base: &str, user: &str, password: &str) -> Result<Session> {
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()?;
        let resp = http.get(format!("{base}/login")).send().await?;
        let login_cookie = cookie(&resp, "outpost_login").context("login cookie")?;
        let csrf = csrf_field(&resp.text().await?).context("csrf")?;
        let resp = http
            .post(format!("{base}/login"))
            .header(header::COOKIE, login_cookie)
            .form(&[("username", user), ("password", password), ("csrf", &csrf)])
            .send()
            .await?;
        let cookie = cookie(&resp, "outpost_session").context("session cookie")?;
        Ok(Session {
            http,
            base: base.to_string(),
            cookie,
        })
    }

    impl Session {
        /// A page: its status and text.
        pub async fn get(&self, path: &str) -> Result<(StatusCode, String)> {
            let resp = self
                .http
                .get(format!("{}{path}", self.base))
                .header(header::COOKIE, &self.cookie)
                .send()
                .await?;
            Ok((resp.status(), resp.text().await?))
        }

        /// A form posted: the status and the `Location` it redirects to.
        pub async fn post(
            &self,
            path: &str,
            form: &[(&str, &str)],
        ) -> Result<(StatusCode, String)> {
            let resp = self
                .http
                .post(format!("{}{path}", self.base))
                .header(header::COOKIE, &self.cookie)
                .form(form)
                .send()
                .await?;
            let to = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            Ok((resp.status(), to))
        }
    }
}
