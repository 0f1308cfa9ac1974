//! The `outpost-server` command line. Every subcommand takes the same
//! `--config`, `--data-dir` and `--database-url`, so `admin ...` works on the
//! very data `serve` uses; `config check FILE` validates a file alone.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::auth::{generate_token, hash_token, Role};
use crate::cases::Cases;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Database, Overrides};
use crate::directory::NewUser;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "outpost-server",
    version,
    about = "Outpost case server: cases, SLAs, directory and REST API"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Common {
    /// TOML configuration file (env OUTPOST_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database (env OUTPOST_DATA_DIR; default ./outpost-data).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// postgres://... or sqlite://PATH (env OUTPOST_DATABASE_URL; default SQLite in the data dir).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Seed a realistic demo customer (once), print its users' tokens, and serve.
    Demo(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate,
    /// Administration on the server's data.
    #[command(subcommand)]
    Admin(Admin),
    /// Write a consistent copy of the embedded database to FILE while the
    /// server runs (SQLite; for PostgreSQL use pg_dump, see the README).
    Backup {
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Put the backup FILE in place of the embedded database (SQLite; the
    /// server must be stopped). The replaced database is kept beside it.
    Restore {
        file: PathBuf,
        /// Replace a database that holds data.
        #[arg(long)]
        force: bool,
    },
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read one e-mail message on standard input and hand it to the server
    /// (for an MTA's pipe transport). Exit 0: the server has it; 75: try
    /// again later; 65: never (too large). See the README, "Mail".
    Mailgate(crate::mail::gate::GateArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE as `serve` would, without starting anything: print
    /// "FILE: ok", or the error naming the key and its line and exit 1.
    /// Flags and OUTPOST_* variables that override keys are not applied.
    Check { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (env OUTPOST_LISTEN; default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Address the SSH relay listens on (env OUTPOST_SSH_LISTEN; default
    /// 127.0.0.1:2222).
    #[arg(long)]
    pub ssh_listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Create the first admin user and print its API token (shown once).
    Bootstrap {
        #[arg(long, default_value = "admin")]
        username: String,
        #[arg(long, default_value = "Administrator")]
        display_name: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Check every case's history chain; exit 1 naming each case and entry
    /// that was altered or removed.
    Verify,
    /// Issue a new API token for an existing user (e.g. a lost admin token).
    Token {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Set a user's web-console password, read from the first line of
    /// standard input (e.g. a forgotten admin password).
    Password {
        #[arg(long)]
        username: String,
    },
    /// Release signing keys (kept offline, away from the server).
    #[command(subcommand)]
    ReleaseKey(ReleaseKeyCommand),
    /// Sign a release artifact with a key from `admin release-key generate`
    /// and print the body of `POST /api/v1/releases` (JSON). Needs no
    /// database: run it where the key is.
    SignRelease {
        /// The private key file.
        #[arg(long)]
        key: PathBuf,
        /// The artifact to sign.
        #[arg(long)]
        file: PathBuf,
        /// `agent` or `firmware`.
        #[arg(long, default_value = "agent")]
        kind: String,
        /// Product name (`outpost-agent` for the agent).
        #[arg(long, default_value = "outpost-agent")]
        name: String,
        #[arg(long)]
        version: String,
        /// Target triple (agent) or vendor/model (firmware).
        #[arg(long)]
        target: String,
        /// Release notes.
        #[arg(long, default_value = "")]
        notes: String,
        /// Offer it to agents running a newer version (a deliberate downgrade).
        #[arg(long)]
        allow_downgrade: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseKeyCommand {
    /// Make a new ed25519 signing key: the private key goes to FILE (mode
    /// 0600, refused if FILE exists), the public key (`ed25519:<hex>`, for
    /// `[releases] trusted_keys` and the agents' `[update] trusted_keys`) is
    /// printed.
    Generate { file: PathBuf },
    /// Print the public key of the private key in FILE.
    Public { file: PathBuf },
}

/// The demo users' web-console password (set only where none is).
const DEMO_PASSWORD: &str = "outpost-demo";

/// Parse arguments and run; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("outpost-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("outpost-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("OUTPOST_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

fn overrides(c: &Common, listen: Option<String>, ssh_listen: Option<String>) -> Overrides {
    Overrides {
        config: c.config.clone(),
        listen,
        ssh_listen,
        data_dir: c.data_dir.clone(),
        database_url: c.database_url.clone(),
    }
}

async fn open(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.database, config.max_connections)
        .await
        .with_context(|| format!("cannot open the database ({})", config.database.describe()))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::Mailgate(a) => return Ok(crate::mail::gate::run(a).await),
        Command::Serve(a) => {
            let config = Config::load(&overrides(&cli.common, a.listen, a.ssh_listen))?;
            let _lock = serve_lock(&config)?;
            let store = open(&config).await?;
            let listener = bind(&config).await?;
            serve(config, listener, store, clock).await?;
        }
        Command::Demo(a) => {
            let mut config = Config::load(&overrides(&cli.common, a.listen, a.ssh_listen))?;
            let _lock = serve_lock(&config)?;
            let store = open(&config).await?;
            let listener = bind(&config).await?;
            config.listen = listener.local_addr()?;
            let users = crate::demo::seed(&store, clock.clone()).await?;
            // Web-console passwords, for demo users that have none yet
            // (hashed once, and only if one is needed).
            let mut hash = None;
            for (user, _, _) in &users {
                if let Some(u) = store.user_by_name(user).await? {
                    if store.password_hash(u.id).await?.is_none() {
                        if hash.is_none() {
                            hash = Some(crate::password::hash(DEMO_PASSWORD)?);
                        }
                        store
                            .set_password_hash(u.id, hash.as_deref(), clock.now())
                            .await?;
                    }
                }
            }
            println!("Outpost demo at {}", config.base_url());
            println!(
                "Web console: {}/login (each demo user's password, unless changed: {DEMO_PASSWORD})",
                config.base_url()
            );
            println!("API tokens for the demo users (new ones each start; older demo tokens are revoked):");
            for (user, role, token) in &users {
                println!("  {user:<12} {role:<28} {token}");
            }
            println!(
                "Try: curl -H 'Authorization: Bearer <token>' {}/api/v1/cases",
                config.base_url()
            );
            serve(config, listener, store, clock).await?;
        }
        Command::Migrate => {
            let config = Config::load(&overrides(&cli.common, None, None))?;
            open(&config).await?;
            println!("schema is up to date ({})", config.database.describe());
        }
        Command::Admin(Admin::ReleaseKey(cmd)) => {
            return crate::releases::signing::key_command(cmd);
        }
        Command::Admin(cmd @ Admin::SignRelease { .. }) => {
            return crate::releases::signing::sign_command(cmd);
        }
        Command::Admin(cmd) => {
            let config = Config::load(&overrides(&cli.common, None, None))?;
            let store = open(&config).await?;
            return admin(cmd, store, clock).await;
        }
        Command::Backup { file, force } => {
            let config = Config::load(&overrides(&cli.common, None, None))?;
            if let Database::Postgres { .. } = config.database {
                bail!("the database is PostgreSQL: back it up with pg_dump (README, \"Backup and restore\")");
            }
            let store = open(&config).await?;
            let info = crate::backup::backup(&store, &file, force).await?;
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            println!(
                "backup written to {} ({size} bytes, {} cases, schema {}, integrity ok)",
                file.display(),
                info.cases,
                info.schema_version
            );
        }
        Command::Config(ConfigCommand::Check { file }) => {
            return Ok(match Config::check_file(&file) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            });
        }
        Command::Restore { file, force } => {
            let config = Config::load(&overrides(&cli.common, None, None))?;
            let Database::Sqlite { path } = &config.database else {
                bail!("the database is PostgreSQL: restore it with pg_restore (README, \"Backup and restore\")");
            };
            let now = clock.now().format("%Y%m%dT%H%M%SZ").to_string();
            let done = crate::backup::restore(&file, path, force, &now).await?;
            if let Some(kept) = &done.kept {
                println!("the replaced database is kept as {}", kept.display());
            }
            println!(
                "restored {} ({} cases, schema {}) to {}",
                file.display(),
                done.info.cases,
                done.info.schema_version,
                path.display()
            );
            // Bring the schema up to date, and check every history chain.
            let store = open(&config).await?;
            return admin(Admin::Verify, store, clock).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn admin(cmd: Admin, store: Store, clock: Arc<dyn Clock>) -> anyhow::Result<ExitCode> {
    match cmd {
        Admin::Bootstrap {
            username,
            display_name,
            email,
        } => {
            if !store
                .users(Some(Role::Admin.as_str()), None)
                .await?
                .is_empty()
            {
                bail!("an admin already exists; create further users through the API, or issue a token with `admin token`");
            }
            let user = NewUser {
                username,
                display_name,
                email,
                mobile: None,
                role: Role::Admin,
                manager_level: None,
                organization_id: None,
                quiet_hours: None,
                timezone: None,
            }
            .validate()?;
            let user = store.insert_user(&user, clock.now()).await?;
            let token = generate_token();
            store
                .insert_token(user.id, "bootstrap", &hash_token(&token), clock.now())
                .await?;
            println!("created admin user {:?} (id {})", user.username, user.id);
            println!("API token (shown once, keep it safe):\n{token}");
        }
        Admin::Token { username, name } => {
            let user = store
                .user_by_name(&username)
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            let name = crate::validate::text("name", &name, 100)?;
            let token = generate_token();
            store
                .insert_token(user.id, &name, &hash_token(&token), clock.now())
                .await?;
            println!("{token}");
        }
        Admin::Password { username } => {
            let user = store
                .user_by_name(&username)
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']);
            crate::password::check_policy(password, &user.username)?;
            let hash = crate::password::hash(password)?;
            store
                .set_password_hash(user.id, Some(&hash), clock.now())
                .await?;
            println!("password set for {:?}", user.username);
        }
        Admin::Verify => {
            let cases = Cases::new(store, clock);
            let (checked, findings) = cases.verify_all().await?;
            if findings.is_empty() {
                println!("verified {checked} cases: every history chain is intact");
            } else {
                for f in &findings {
                    println!("TAMPERED {f}");
                }
                let affected: std::collections::BTreeSet<_> =
                    findings.iter().map(|f| &f.case_number).collect();
                println!(
                    "verified {checked} cases: {} problem(s) in {} case(s)",
                    findings.len(),
                    affected.len()
                );
                return Ok(ExitCode::from(1));
            }
        }
        Admin::ReleaseKey(_) | Admin::SignRelease { .. } => {
            bail!("release keys and signatures need no database (handled before it is opened)")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// On the embedded database, only one server at a time (and no restore
/// under it).
fn serve_lock(config: &Config) -> anyhow::Result<Option<crate::backup::ServeLock>> {
    match &config.database {
        Database::Sqlite { path } => crate::backup::ServeLock::acquire(path).map(Some),
        Database::Postgres { .. } => Ok(None),
    }
}

async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))
}

/// Serve HTTP until SIGINT or SIGTERM, then finish in-flight requests.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    store: Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let scheme = config.scheme();
    let ssh_listener = if config.relay.enabled {
        Some(
            tokio::net::TcpListener::bind(config.relay.listen)
                .await
                .with_context(|| {
                    format!(
                        "the SSH relay cannot listen on {} (relay.listen, --ssh-listen)",
                        config.relay.listen
                    )
                })?,
        )
    } else {
        None
    };
    let ssh_addr = match &ssh_listener {
        Some(l) => l.local_addr()?.to_string(),
        None => "off".to_string(),
    };
    tracing::info!(
        listen = %addr,
        scheme = %scheme,
        ssh_listen = %ssh_addr,
        tls_pin = %config.agents.tls_pin.as_deref().unwrap_or("none"),
        database = %config.database.describe(),
        data_dir = %config.data_dir.display(),
        config = %config.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none (defaults)".into()),
        "outpost-server ready: API at {scheme}://{addr}/api/v1, OpenAPI at {scheme}://{addr}/api/v1/openapi.json"
    );
    // The SLA engine schedules every open case's deadlines and records them
    // as they come due; it stops with the server.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let cases = Cases::new(store.clone(), clock);
    let registry =
        crate::sla::settings::SlaSettings::load(store.clone(), config.sla_section.clone()).await?;
    // Timers that are not SLA deadlines go, by their owner, to the
    // services filled in below (they need the fed case service).
    let routes = TimerRoutes::default();
    let others = routes.handler();
    let feed = crate::sla::engine::Engine::start(
        cases.clone(),
        registry.clone(),
        crate::sla::timers::Settings::default(),
        stopped,
        Some(others),
    )
    .await
    .context("cannot start the SLA engine")?;
    let cases = cases.with_change_feed(feed);
    let mut agent_settings = config.agents.clone();
    agent_settings.public_url = Some(
        config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}")),
    );
    // The SSH relay: agents' reverse tunnels and engineers' remote logins.
    let mut relay_task = None;
    let relay = match ssh_listener {
        Some(l) => {
            let relay = crate::relay::Relay::new(cases.clone(), config.relay.clone())
                .await
                .context("cannot start the SSH relay")?;
            agent_settings.ssh_host_key = Some(relay.host_public_key());
            relay_task = Some(tokio::spawn(relay.clone().serve(l, stop.subscribe())));
            Some(relay)
        }
        None => None,
    };
    let agents = crate::agents::Agents::new(cases.clone(), agent_settings);
    let _ = routes.agents.set(agents.clone());
    // Campaigns move on from where they were (deadlines passed, windows
    // opened) while no replica ran.
    {
        let upgrades = agents.upgrades.clone();
        tokio::spawn(async move {
            if let Err(e) = upgrades.evaluate_all().await {
                tracing::warn!(error = %e, "cannot evaluate the upgrade campaigns at start-up");
            }
        });
    }
    // The notifier sends what the outbox queues (e-mail, SMS, webhooks).
    let mut notify = config.notify.clone();
    // Links in messages (survey) need an address people can reach.
    notify
        .public_url
        .get_or_insert_with(|| format!("{scheme}://{addr}"));
    let notifier =
        crate::notify::Notifier::new(cases.clone(), notify.clone(), registry.current().timezone)
            .map_err(anyhow::Error::msg)?;
    notifier.start(stop.subscribe());
    let rma = crate::rma::Rma::new(cases.clone(), registry.clone(), config.rma.clone());
    let _ = routes.rma.set(rma.clone());
    let reports = crate::reports::Reports::new(
        store.clone(),
        cases.clock.clone(),
        registry.clone(),
        config.reports.clone(),
    )
    .with_mail(&notify)
    .map_err(anyhow::Error::msg)?;
    let _ = routes.reports.set(reports.clone());
    // Inbound e-mail: the gateway endpoint and the IMAP pollers.
    let mail = crate::mail::Mail::new(cases.clone(), config.mail.clone());
    let _pollers = crate::mail::imap::start(&mail, &stop.subscribe());
    let releases = crate::releases::Releases::new(
        cases.store.clone(),
        cases.clock.clone(),
        config.releases.clone(),
    );
    let state = crate::http::AppState::with_cases(cases, registry);
    let _ = routes.field.set(state.field.clone());
    let state = state
        .with_agents(agents)
        .with_releases(releases)
        .with_rma(rma)
        .with_reports(reports)
        .with_mail(mail)
        .with_relay(relay.clone())
        .with_secure_cookies(config.tls.is_some());
    let app = crate::http::router(state);
    let served = match &config.tls {
        Some(tls) => axum::serve(crate::tls::TlsListener::new(listener, tls)?, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("HTTPS server failed"),
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("HTTP server failed"),
    };
    let _ = stop.send(true);
    if let Some(task) = relay_task {
        // Let the relay record the end of its live sessions.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    served?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Where the timer runner sends timers that are not SLA deadlines, by the
/// prefix of their owner: `shipment:` (spare deadlines), `field:` (on-site
/// and repair promises), `report:` (service-report schedules), `campaign:`
/// (upgrade campaigns' job deadlines and maintenance windows), anything
/// else to the agents service (heartbeat watches). Each service is set once
/// it exists; a timer firing before then fails and is retried.
#[derive(Clone, Default)]
struct TimerRoutes {
    agents: Arc<std::sync::OnceLock<crate::agents::Agents>>,
    rma: Arc<std::sync::OnceLock<crate::rma::Rma>>,
    reports: Arc<std::sync::OnceLock<crate::reports::Reports>>,
    field: Arc<std::sync::OnceLock<crate::field::Field>>,
}

impl TimerRoutes {
    fn handler(&self) -> crate::sla::timers::Handler {
        let routes = self.clone();
        Arc::new(move |t| {
            let routes = routes.clone();
            Box::pin(async move { routes.fire(&t).await })
        })
    }

    async fn fire(&self, t: &crate::store::timers::TimerRow) -> Result<(), String> {
        fn ready<'a, T>(cell: &'a std::sync::OnceLock<T>, what: &str) -> Result<&'a T, String> {
            cell.get()
                .ok_or_else(|| format!("the {what} service is starting"))
        }
        match t.owner.split_once(':').map(|(prefix, _)| prefix) {
            Some("shipment") => ready(&self.rma, "RMA")?
                .fire(t)
                .await
                .map_err(|e| e.to_string()),
            Some("field") => ready(&self.field, "field")?
                .fire(t)
                .await
                .map_err(|e| e.to_string()),
            Some("report") => ready(&self.reports, "reports")?.fire(t).await,
            Some("campaign") => ready(&self.agents, "agents")?
                .upgrades
                .fire(t)
                .await
                .map_err(|e| e.to_string()),
            _ => ready(&self.agents, "agents")?
                .lost_timer(&t.owner)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
