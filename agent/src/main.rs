//! `outpost-agent`: the Outpost agent that runs on customer hosts.
//!
//! This file is the command-line interface; the work is done in the modules
//! it calls. Commands available now:
//!
//! * `outpost-agent facts`: print the host's facts (`HostFacts`) as JSON.
//! * `outpost-agent health`: take one health sample (`HealthSample`) and
//!   print it as JSON.
//! * `outpost-agent check --config FILE`: validate the configuration, poll
//!   each SNMP target once and print a table; fails if any target fails.
//! * `outpost-agent enroll --server URL --token TOKEN [--identity-dir DIR]
//!   [--tls-pin HEX] [--config FILE] [--force]`: generate a key pair, enrol with the server
//!   and store the identity.
//! * `outpost-agent run --config FILE`: run the daemon.
//!
//! `facts` and `health` print pretty JSON, in exactly the wire format of
//! `outpost-protocol`. Errors go to standard error as one line
//! (`outpost-agent: error: ...` with its causes) and exit with status 1;
//! command-line mistakes exit with status 2 and a usage message.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use outpost_agent::config::AgentConfig;
use outpost_agent::{check, collect, daemon, enroll};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use serde::Serialize;

/// Outpost agent: host and device health, fault detection, remote login,
/// upgrades.
#[derive(Debug, Parser)]
#[command(name = "outpost-agent", version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The agent's subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print this host's facts (OS, CPU, memory, disks, boot time) as JSON.
    Facts,
    /// Take one health sample (CPU, load, memory, disks, temperatures,
    /// uptime) and print it as JSON.
    Health,
    /// Validate the configuration file and poll each SNMP target once,
    /// printing one line per target; exits with status 1 if any fails.
    Check {
        /// The agent's configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Enrol with the server: generate a key pair locally, exchange the
    /// one-time token for an identity and store it.
    Enroll {
        /// The server's base URL (https://, or http:// to loopback only).
        #[arg(long, value_name = "URL")]
        server: String,
        /// The one-time enrolment token (default: the file named by
        /// `server.token_file` of --config).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "OUTPOST_ENROLL_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        /// Trust exactly the server key with this pin (hex SHA-256 of its
        /// SubjectPublicKeyInfo, shown with the token): for a server with a
        /// self-signed certificate.
        #[arg(long, value_name = "HEX")]
        tls_pin: Option<String>,
        /// Where to store the identity (default: `server.identity_dir` of
        /// --config, else /var/lib/outpost-agent).
        #[arg(long, value_name = "DIR")]
        identity_dir: Option<PathBuf>,
        /// The agent's configuration file, for its `server.identity_dir`.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
    /// Run the agent daemon.
    Run {
        /// The agent's configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs its work; one-shot commands only problems. The SNMP
    // library's own logs (every timeout as an error) stay off unless asked for.
    let default = if matches!(cli.command, Command::Run { .. }) {
        "info"
    } else {
        "warn"
    };
    let mut filter = std::env::var("OUTPOST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    if !filter.contains("async_snmp") {
        filter.push_str(",async_snmp=off");
    }
    // `Targets` (level, or target=level, comma-separated) rather than
    // EnvFilter: it needs no regex engine, which keeps the agent's code, and
    // so its resident memory, smaller.
    let targets: tracing_subscriber::filter::Targets = filter.parse().unwrap_or_else(|_| {
        format!("{default},async_snmp=off")
            .parse()
            .unwrap_or_default()
    });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .with(targets)
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the context chain on one line, without a backtrace.
            eprintln!("outpost-agent: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand.
fn run(command: Command) -> Result<()> {
    match command {
        Command::Facts => {
            let facts = collect::host::collect_facts(Utc::now).context("collecting host facts")?;
            print_json(&facts)
        }
        Command::Health => {
            let sample = collect::host::collect_health(Utc::now)
                .context("collecting a host health sample")?;
            print_json(&sample)
        }
        Command::Check { config } => check_command(&config),
        Command::Enroll {
            server,
            token,
            tls_pin,
            identity_dir,
            config,
            force,
        } => {
            let config = match config {
                Some(path) => Some(AgentConfig::load(&path).context("invalid configuration")?),
                None => None,
            };
            let dir = match (identity_dir, &config) {
                (Some(dir), _) => dir,
                (None, Some(config)) => config.server.identity_dir.clone(),
                (None, None) => PathBuf::from("/var/lib/outpost-agent"),
            };
            let token = match (
                token,
                config.as_ref().and_then(|c| c.server.token_file.as_ref()),
            ) {
                (Some(token), _) => token,
                (None, Some(file)) => std::fs::read_to_string(file)
                    .with_context(|| format!("reading the token file {}", file.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => bail!("give --token, or --config with server.token_file"),
            };
            let identity = runtime()?.block_on(enroll::enroll(
                &server,
                &token,
                tls_pin.as_deref(),
                &dir,
                force,
            ))?;
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "enrolled as agent {} with {}; identity stored in {}",
                identity.agent_id,
                identity.server_url,
                dir.display()
            )
            .context("writing to standard output")
        }
        Command::Run { config } => runtime()?.block_on(daemon::run(&config)),
    }
}

/// A single-threaded runtime: the agent's work is I/O-bound and small.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .context("starting the async runtime")
}

/// `check`: load the config, poll every target once, print the table.
fn check_command(path: &std::path::Path) -> Result<()> {
    let config = AgentConfig::load(path).context("invalid configuration")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcomes = runtime.block_on(check::run(&config));
    let table = check::render(&outcomes);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(table.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to standard output")?;
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if failed > 0 {
        bail!("{failed} of {} SNMP targets failed", outcomes.len());
    }
    Ok(())
}

/// Writes `value` to standard output as pretty JSON followed by a newline.
fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding the output as JSON")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_subcommands() {
        let cli = Cli::try_parse_from(["outpost-agent", "facts"]).expect("parse facts");
        assert!(matches!(cli.command, Command::Facts));
        let cli = Cli::try_parse_from(["outpost-agent", "health"]).expect("parse health");
        assert!(matches!(cli.command, Command::Health));
        let cli = Cli::try_parse_from(["outpost-agent", "check", "--config", "a.toml"])
            .expect("parse check");
        assert!(
            matches!(cli.command, Command::Check { config } if config == std::path::Path::new("a.toml"))
        );
        assert!(Cli::try_parse_from(["outpost-agent", "check"]).is_err());
        assert!(Cli::try_parse_from(["outpost-agent", "reboot"]).is_err());
        assert!(Cli::try_parse_from(["outpost-agent"]).is_err());
    }
}
