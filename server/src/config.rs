//! Server configuration: one TOML file, every key optional, validated at start.
//!
//! Precedence, highest first: command-line flag, environment variable
//! (`OUTPOST_DATABASE_URL`, `OUTPOST_LISTEN`, `OUTPOST_DATA_DIR`), config file,
//! built-in default. With nothing at all the server keeps an embedded SQLite
//! database in `./outpost-data/` and listens on `127.0.0.1:8080`.
//!
//! Secrets (`database.url`, `notify.email.password`, `notify.sms.headers`
//! values, `notify.webhooks[].secret`) may be read from a file or an
//! environment variable instead of the file (`outpost_protocol::secret`).
//! Errors name the key; `config check` adds the line where the file has it.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The file as written by a person. Unknown keys are refused so a typo is
/// reported instead of silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub sla: SlaSection,
    #[serde(default)]
    pub notify: crate::notify::settings::NotifySpec,
    #[serde(default)]
    pub agents: crate::agents::AgentSpec,
    #[serde(default)]
    pub relay: crate::relay::RelaySpec,
    #[serde(default)]
    pub rma: crate::rma::RmaSpec,
    #[serde(default)]
    pub reports: crate::reports::ReportsSpec,
    #[serde(default)]
    pub mail: crate::mail::settings::MailSpec,
    #[serde(default)]
    pub releases: crate::releases::ReleaseSpec,
}

/// SLA policies and business calendars (see `sla::policy`, `sla::calendar`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSection {
    /// Time zone of calendars when a case's site has none. Default UTC.
    pub timezone: Option<String>,
    /// Name of the policy for contracts that name none. Default: built-in (SPEC.md 4).
    pub default_policy: Option<String>,
    #[serde(default)]
    pub policies: Vec<crate::sla::policy::PolicySpec>,
    #[serde(default)]
    pub calendars: Vec<crate::sla::calendar::CalendarSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address the HTTP API listens on.
    pub listen: Option<String>,
    /// Directory for the embedded database and other state.
    pub data_dir: Option<PathBuf>,
    /// Public base URL, used in links the server prints.
    pub public_url: Option<String>,
    /// PEM certificate chain (leaf first): with `tls_key`, the server speaks
    /// HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://PATH` or `postgres://...`. Default: SQLite in the data dir.
    /// A secret (it may hold a password): inline, `{ file = "PATH" }` or
    /// `{ env = "NAME" }`.
    #[serde(default, deserialize_with = "outpost_protocol::secret::option")]
    pub url: Option<String>,
    /// Pool size (PostgreSQL; SQLite readers). Default 16.
    pub max_connections: Option<u32>,
}

/// Overrides given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub ssh_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

impl Database {
    /// The URL with any password blanked, for logs.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite { path } => format!("SQLite at {}", path.display()),
            Database::Postgres { url } => format!("PostgreSQL at {}", redact_url(url)),
        }
    }
}

/// The resolved configuration every subcommand runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub max_connections: u32,
    pub public_url: Option<String>,
    /// The server's own TLS certificate and key, if it terminates TLS.
    pub tls: Option<crate::tls::Tls>,
    /// The file the configuration was read from, if any.
    pub source: Option<PathBuf>,
    /// SLA policies and calendars, validated.
    pub sla: crate::sla::registry::Registry,
    /// The `[sla]` section as written (the base of API-managed settings).
    pub sla_section: SlaSection,
    /// Notification channels and retry policy, validated.
    pub notify: crate::notify::Settings,
    /// Agent heartbeats, enrolment and fault handling, validated.
    pub agents: crate::agents::Settings,
    /// The SSH relay for remote login, validated.
    pub relay: crate::relay::RelaySettings,
    pub rma: crate::rma::Settings,
    /// Service reports: the Chromium that prints them to PDF.
    pub reports: crate::reports::Settings,
    /// Inbound e-mail: limits, unknown senders, IMAP mailboxes, validated.
    pub mail: crate::mail::Settings,
    /// The release catalog's trusted signing keys, validated.
    pub releases: crate::releases::Settings,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "outpost-data";

impl Config {
    /// Resolve the configuration from flags, environment and file.
    pub fn load(ov: &Overrides) -> anyhow::Result<Config> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = ov
            .config
            .clone()
            .or_else(|| env("OUTPOST_CONFIG").map(PathBuf::from));
        let file = match &path {
            Some(p) => {
                let text = read_text(p)?;
                parse_text(&text)
                    .with_context(|| format!("config file {} is invalid", p.display()))?
            }
            None => FileConfig::default(),
        };
        Self::resolve(ov, file, path, env)
    }

    /// `config check FILE`: the file alone, validated as `serve` validates
    /// it (certificates and secret files read), without the flags and the
    /// `OUTPOST_*` variables that would override its keys. Errors name the
    /// key and, where it is in the file, its line.
    pub fn check_file(path: &Path) -> Result<Config, CheckError> {
        let at = |line: Option<(usize, usize)>, message: String| CheckError {
            path: path.to_path_buf(),
            problem: ParseError { line, message },
        };
        let text = read_text(path).map_err(|e| at(None, format!("{e:#}")))?;
        let file = parse_text(&text).map_err(|e| at(e.line, e.message))?;
        let ov = Overrides {
            config: Some(path.to_path_buf()),
            ..Overrides::default()
        };
        Self::resolve(&ov, file, Some(path.to_path_buf()), |_| None).map_err(|e| {
            let message = format!("{e:#}");
            at(locate_key(&text, &message), message)
        })
    }

    /// Flags over `env` over the file over defaults, then every section
    /// validated.
    fn resolve(
        ov: &Overrides,
        file: FileConfig,
        path: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let listen_text = ov
            .listen
            .clone()
            .or_else(|| env("OUTPOST_LISTEN"))
            .or(file.server.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("server.listen: {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        let data_dir = ov
            .data_dir
            .clone()
            .or_else(|| env("OUTPOST_DATA_DIR").map(PathBuf::from))
            .or(file.server.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let url = ov
            .database_url
            .clone()
            .or_else(|| env("OUTPOST_DATABASE_URL"))
            .or(file.database.url);
        let database = match url {
            None => Database::Sqlite {
                path: data_dir.join("outpost.db"),
            },
            Some(u) => parse_database_url(&u)?,
        };
        let max_connections = file.database.max_connections.unwrap_or(16);
        if max_connections == 0 || max_connections > 1000 {
            bail!("database.max_connections: {max_connections} is out of range 1..=1000");
        }
        let sla = crate::sla::registry::Registry::from_config(
            file.sla.timezone.as_deref(),
            file.sla.default_policy.as_deref(),
            &file.sla.policies,
            &file.sla.calendars,
        )
        .map_err(anyhow::Error::msg)?;
        let notify = file
            .notify
            .build(file.server.public_url.clone())
            .map_err(anyhow::Error::msg)?;
        let mut agents = file.agents.build().map_err(anyhow::Error::msg)?;
        let relay = file
            .relay
            .build(ov.ssh_listen.clone().or_else(|| env("OUTPOST_SSH_LISTEN")))
            .map_err(anyhow::Error::msg)?;
        let rma = file.rma.build().map_err(anyhow::Error::msg)?;
        let reports = file.reports.build().map_err(anyhow::Error::msg)?;
        let mail = file
            .mail
            .build(notify.email.as_ref().map(|e| e.from.as_str()))
            .map_err(anyhow::Error::msg)?;
        let releases = file.releases.build().map_err(anyhow::Error::msg)?;
        let tls = match (&file.server.tls_cert, &file.server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(crate::tls::Tls::load(cert, key)?),
            (Some(_), None) => bail!("server.tls_cert is set but server.tls_key is not"),
            (None, Some(_)) => bail!("server.tls_key is set but server.tls_cert is not"),
        };
        if let Some(tls) = &tls {
            if agents.tls_pin.is_some() {
                bail!("agents.server_tls_pin: leave it unset when server.tls_cert is set (the pin is taken from the key)");
            }
            agents.tls_pin = Some(tls.pin.clone());
        }
        Ok(Config {
            tls,
            relay,
            rma,
            reports,
            mail,
            releases,
            sla,
            sla_section: file.sla.clone(),
            notify,
            agents,
            listen,
            data_dir,
            database,
            max_connections,
            public_url: file.server.public_url,
            source: path,
        })
    }

    /// Base URL for links: the configured public URL or the listen address.
    pub fn base_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{}://{}", self.scheme(), self.listen))
    }

    /// `https` when the server terminates TLS itself, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

fn read_text(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))
}

/// A problem in a config file, with its line and column where known: the
/// TOML parser's (unknown keys, bad values, unreadable secret files), or
/// the key's that a later check names.
#[derive(Debug)]
pub struct ParseError {
    pub line: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some((line, column)) => write!(f, "line {line}, column {column}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// Decodes the file's text; every table refuses unknown keys.
pub fn parse_text(text: &str) -> Result<FileConfig, ParseError> {
    toml::from_str(text).map_err(|e: toml::de::Error| ParseError {
        line: e.span().map(|span| line_col(text, span.start)),
        message: e.message().trim_end().to_string(),
    })
}

/// What `config check` reports for a file that is not fit to serve:
/// `FILE: line L, column C: message`.
#[derive(Debug)]
pub struct CheckError {
    pub path: PathBuf,
    pub problem: ParseError,
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for CheckError {}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where the key an error message starts with (`notify.email.port: ...`,
/// `sla.policies[1].targets.P1: ...`) is in the file: the deepest part of
/// that path the file spells out. `None` when the message names no key the
/// file holds (a default, or a key set by a flag or variable).
fn locate_key(text: &str, message: &str) -> Option<(usize, usize)> {
    let path: String = message
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
        .collect();
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item = doc.as_item();
    let mut found = None;
    'path: for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indices) = segment.split_once('[').unwrap_or((segment, ""));
        let Some(next) = item.get(name) else { break };
        item = next;
        found = item.span().or(found);
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            let Ok(i) = index.trim_end_matches(']').parse::<usize>() else {
                break 'path;
            };
            let Some(next) = item.get(i) else {
                break 'path;
            };
            item = next;
            found = item.span().or(found);
        }
    }
    found.map(|span| line_col(text, span.start))
}

/// Accepts `postgres://`, `postgresql://`, `sqlite://PATH` and `sqlite:PATH`.
pub fn parse_database_url(u: &str) -> anyhow::Result<Database> {
    if u.starts_with("postgres://") || u.starts_with("postgresql://") {
        return Ok(Database::Postgres { url: u.to_string() });
    }
    if let Some(rest) = u
        .strip_prefix("sqlite://")
        .or_else(|| u.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() {
            bail!("database.url: {u:?} names no SQLite file");
        }
        return Ok(Database::Sqlite {
            path: PathBuf::from(path),
        });
    }
    bail!(
        "database.url: {:?} must start with postgres:// or sqlite://",
        redact_url(u)
    )
}

/// Blank the password in a URL for logging.
pub fn redact_url(u: &str) -> String {
    match (u.find("://"), u.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &u[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &u[..s + 3], &creds[..c], &u[at..]),
                None => u.to_string(),
            }
        }
        _ => u.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(matches!(
            parse_database_url("postgres://u@h/db"),
            Ok(Database::Postgres { .. })
        ));
        assert_eq!(
            parse_database_url("sqlite:///tmp/x.db").ok(),
            Some(Database::Sqlite {
                path: "/tmp/x.db".into()
            })
        );
        assert!(parse_database_url("mysql://x").is_err());
        assert!(parse_database_url("sqlite://").is_err());
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn sample_config_parses() {
        let text = include_str!("../../packaging/outpost-server.toml");
        let c = toml::from_str::<FileConfig>(text).map_err(|e| e.to_string());
        if let Ok(c) = &c {
            assert!(c.rma.build().is_ok(), "the sample [rma] section is valid");
            assert!(c.rma.cutoff.is_some() && c.rma.repair_working_hours.is_some());
        }
        assert_eq!(
            c.map(|c| c.server.listen),
            Ok(Some(DEFAULT_LISTEN.to_string()))
        );
    }

    #[test]
    fn tls_needs_both_files_and_a_pin_only_without_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let load = |text: &str| {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, text).expect("write");
            Config::load(&Overrides {
                config: Some(path),
                ..Overrides::default()
            })
            .map(|c| c.agents.tls_pin)
            .map_err(|e| format!("{e:#}"))
        };
        let err = load("[server]\ntls_cert = \"/nonexistent.pem\"\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("server.tls_key is not"), "{err}");
        let err =
            load("[server]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"\n")
                .err()
                .unwrap_or_default();
        assert!(
            err.contains("server.tls_cert: cannot read /nonexistent.pem"),
            "{err}"
        );
        let err = load("[agents]\nserver_tls_pin = \"abc\"\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("agents.server_tls_pin"), "{err}");
        let pin = "AB".repeat(32);
        assert_eq!(
            load(&format!("[agents]\nserver_tls_pin = \"{pin}\"\n")),
            Ok(Some("ab".repeat(32)))
        );
    }

    /// `config check` on `text` in a file: its report.
    fn check(text: &str) -> Result<String, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outpost.toml");
        std::fs::write(&path, text).expect("write");
        Config::check_file(&path)
            .map(|_| "ok".to_string())
            .map_err(|e| e.to_string().replace(&path.display().to_string(), "FILE"))
    }

    #[test]
    fn check_names_key_and_line() {
        assert_eq!(check("").as_deref(), Ok("ok"));
        assert_eq!(
            check(include_str!("../../packaging/outpost-server.toml")).as_deref(),
            Ok("ok")
        );
        // Unknown keys: the parser's place, one line.
        let err = check("[server]\nlisten = \"127.0.0.1:1\"\n\n[relay]\nenabeld = true\n")
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("FILE: line 5, column 1: unknown field `enabeld`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        // Values found wrong after decoding: the key's line.
        for (text, expected) in [
            (
                "[notify.email]\nhost = \"h\"\nfrom = \"a@example.com\"\nusername = \"u\"\n",
                "FILE: line 1, column 1: notify.email: username and password go together",
            ),
            (
                "[database]\n\nmax_connections = 0\n",
                "FILE: line 3, column 19: database.max_connections: 0 is out of range",
            ),
            (
                "[notify]\nmax_attempts = 3\n\n[[notify.webhooks]]\nurl = \"https://h.example\"\nsecret = \"0123456789abcdef\"\n\n[[notify.webhooks]]\nurl = \"https://h.example\"\nsecret = \"short\"\n",
                "FILE: line 10, column 10: notify.webhooks[1].secret: use at least 16 characters",
            ),
            (
                "[server]\ntls_cert = \"/nonexistent.pem\"\n",
                "FILE: line 2, column 12: server.tls_cert is set but server.tls_key is not",
            ),
            (
                "[sla]\ndefault_policy = \"gold\"\n",
                "FILE: line 2, column 18: sla.default_policy: no policy named \"gold\"",
            ),
        ] {
            let err = check(text).err().unwrap_or_default();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
        let err = check("[server]\nlisten = \"nowhere\"\n")
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("FILE: line 2, column 10: server.listen: \"nowhere\""),
            "{err}"
        );
        let err = check("[relay]\nmax_session_buffer_mib = 1\n")
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("FILE: line 2, column 26: relay.max_session_buffer_mib"),
            "{err}"
        );
        assert_eq!(
            check("[server]\nlisten = 1\n").err().unwrap_or_default(),
            "FILE: line 2, column 10: invalid type: integer `1`, expected a string"
        );
    }

    #[test]
    fn secrets_come_from_files_and_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("smtp-password");
        std::fs::write(&password, "from a file\n").expect("write");
        let text = format!(
            "[database]\nurl = {{ env = \"OUTPOST_TEST_DB_URL_4711\" }}\n\n[notify.email]\nhost = \"smtp.example.com\"\nusername = \"u\"\npassword = {{ file = {:?} }}\nfrom = \"a@example.com\"\n\n[notify.sms]\nurl = \"https://sms.example.com\"\nheaders = {{ Authorization = {{ file = {:?} }}, X-Plain = \"p\" }}\n\n[[notify.webhooks]]\nurl = \"https://h.example.com\"\nsecret = {{ env = \"OUTPOST_TEST_HOOK_4711\" }}\n",
            password.display().to_string(),
            password.display().to_string()
        );
        let err = check(&text).err().unwrap_or_default();
        assert!(
            err.starts_with("FILE: line 2, column 7: the environment variable OUTPOST_TEST_DB_URL_4711 is not set"),
            "{err}"
        );
        std::env::set_var(
            "OUTPOST_TEST_DB_URL_4711",
            "postgres://u:pw@db.example/outpost",
        );
        std::env::set_var("OUTPOST_TEST_HOOK_4711", "sixteen-chars-or-more");
        let parsed = parse_text(&text).map_err(|e| e.to_string());
        std::env::remove_var("OUTPOST_TEST_DB_URL_4711");
        std::env::remove_var("OUTPOST_TEST_HOOK_4711");
        let file = parsed.expect("valid");
        assert_eq!(
            file.database.url.as_deref(),
            Some("postgres://u:pw@db.example/outpost")
        );
        let email = file.notify.email.expect("email");
        assert_eq!(email.password.as_deref(), Some("from a file"));
        let sms = file.notify.sms.expect("sms");
        assert_eq!(
            sms.headers.get("Authorization").map(String::as_str),
            Some("from a file")
        );
        assert_eq!(sms.headers.get("X-Plain").map(String::as_str), Some("p"));
        assert_eq!(file.notify.webhooks[0].secret, "sixteen-chars-or-more");

        std::fs::remove_file(&password).expect("remove");
        let text = format!(
            "[notify.email]\nhost = \"h\"\nfrom = \"a@example.com\"\nusername = \"u\"\npassword = {{ file = {:?} }}\n",
            password.display().to_string()
        );
        let err = check(&text).err().unwrap_or_default();
        assert!(
            err.starts_with("FILE: line 5, column 12: cannot read the secret file")
                && err.contains("smtp-password"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = toml::from_str::<FileConfig>("[server]\nlisten_addr = \"x\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("listen_addr"), "{err}");
    }
}
