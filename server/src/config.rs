//! Server configuration: one TOML file, every key optional, validated at start.
//!
//! Precedence, highest first: command-line flag, environment variable
//! (`OUTPOST_DATABASE_URL`, `OUTPOST_LISTEN`, `OUTPOST_DATA_DIR`), config file,
//! built-in default. With nothing at all the server keeps an embedded SQLite
//! database in `./outpost-data/` and listens on `127.0.0.1:8080`.

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
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
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

fn read_file(p: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config file {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is invalid", p.display()))
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

    #[test]
    fn unknown_key_is_refused() {
        let err = toml::from_str::<FileConfig>("[server]\nlisten_addr = \"x\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("listen_addr"), "{err}");
    }
}
