//! `outpost-agent`: the Outpost agent that runs on customer hosts.
//!
//! This file is the command-line interface; the work is done in the modules
//! it calls. Commands available now:
//!
//! * `outpost-agent facts`: print the host's facts (`HostFacts`) as JSON.
//! * `outpost-agent health`: take one health sample (`HealthSample`) and
//!   print it as JSON.
//! * `outpost-agent check --config FILE [--offline]`: validate the
//!   configuration, poll each SNMP target once and print a table; fails if
//!   any target fails. With `--offline`, only validate (`FILE: ok`).
//! * `outpost-agent enroll --server URL --token TOKEN [--identity-dir DIR]
//!   [--tls-pin HEX] [--config FILE] [--force]`: generate a key pair, enrol with the server
//!   and store the identity.
//! * `outpost-agent run --config FILE`: run the daemon.
//!
//! `facts` and `health` print pretty JSON, in exactly the wire format of
//! `outpost-protocol`. Errors go to standard error as one line
//! (`outpost-agent: error: ...` with its causes) and exit with status 1;
//! command-line mistakes exit with status 2 and a usage message.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use outpost_agent::config::AgentConfig;
use outpost_agent::{check, collect, daemon, enroll};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use serde::Serialize;

/// The agent's subcommands, with their arguments.
#[derive(Debug, PartialEq)]
enum Command {
    /// Print this host's facts as JSON.
    Facts,
    /// Take one health sample and print it as JSON.
    Health,
    /// Validate the configuration file and poll each SNMP target once.
    Check {
        /// The agent's configuration file.
        config: PathBuf,
        /// Only validate the file; reach no device.
        offline: bool,
    },
    /// Enrol with the server.
    Enroll {
        /// The server's base URL.
        server: String,
        /// The one-time enrolment token (`--token`, else the environment).
        token: Option<String>,
        /// The pin of the server's key.
        tls_pin: Option<String>,
        /// Where to store the identity.
        identity_dir: Option<PathBuf>,
        /// The agent's configuration file.
        config: Option<PathBuf>,
        /// Replace an existing identity.
        force: bool,
    },
    /// Run the agent daemon.
    Run {
        /// The agent's configuration file.
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    // Usage lines name the program as it was called, like most tools.
    let bin = args
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| NAME.to_owned());
    let command = match parse(&bin, args, std::env::var_os(TOKEN_ENV)) {
        Ok(Parsed::Command(command)) => command,
        Ok(Parsed::Print(text)) => {
            // Like `--help | head`: a closed standard output is not an error.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(UsageError(text)) => {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            return ExitCode::from(2);
        }
    };
    // The daemon logs its work; one-shot commands only problems. The SNMP
    // library's own logs (every timeout as an error) stay off unless asked for.
    let default = if matches!(command, Command::Run { .. }) {
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
    match run(command) {
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
        Command::Check { config, offline } => check_command(&config, offline),
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
                (None, None) => PathBuf::from(outpost_agent::config::DEFAULT_IDENTITY_DIR),
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

/// `check`: load the config, poll every target once, print the table;
/// `--offline`: only load it and say so.
fn check_command(path: &std::path::Path, offline: bool) -> Result<()> {
    let config = AgentConfig::load(path).context("invalid configuration")?;
    if offline {
        let mut stdout = std::io::stdout().lock();
        return writeln!(stdout, "{}: ok", path.display())
            .and_then(|()| stdout.flush())
            .context("writing to standard output");
    }
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

// The command line. A small parser written here rather than clap: the
// agent stays on customer hosts for years and most of its memory is its
// mapped code (BENCHMARKS.md, "Agent footprint"), of which clap was a good
// part. It accepts what clap did (`--config FILE`, `--config=FILE`,
// `-c FILE`, `-cFILE`, `-c=FILE`, `help [COMMAND]`) and prints help,
// version and mistakes in the same format.

/// The program's name, for `--version`.
const NAME: &str = "outpost-agent";
/// The environment variable read for `enroll --token` when it is not given.
const TOKEN_ENV: &str = "OUTPOST_ENROLL_TOKEN";
/// The first line of the top-level help.
const ABOUT: &str =
    "Outpost agent: host and device health, fault detection, remote login, upgrades";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Parsed {
    /// Run this subcommand.
    Command(Command),
    /// Print this text (help, version) to standard output and exit with 0.
    Print(String),
}

/// A command-line mistake: the whole text for standard error; the program
/// exits with status 2.
#[derive(Debug, PartialEq)]
struct UsageError(String);

/// One option of a subcommand.
struct Opt {
    /// Its long name, without `--`.
    long: &'static str,
    /// Its one-letter name, if any.
    short: Option<char>,
    /// The name of its value (`FILE`); `None` for a flag.
    value: Option<&'static str>,
}

impl Opt {
    /// The option as messages name it: `--config <FILE>`, `--force`.
    fn display(&self) -> String {
        match self.value {
            Some(value) => format!("--{} <{value}>", self.long),
            None => format!("--{}", self.long),
        }
    }
}

/// One subcommand: its name, help and options.
struct Sub {
    name: &'static str,
    /// One line, in the top-level help and first in its own.
    about: &'static str,
    /// Its usage, after the program's name.
    usage: &'static str,
    /// The "Options:" section of its help.
    options_help: &'static str,
    options: &'static [Opt],
}

/// `--config FILE` (`-c`).
const CONFIG: Opt = Opt {
    long: "config",
    short: Some('c'),
    value: Some("FILE"),
};
/// `run` takes only the configuration file.
const CONFIG_HELP: &str = "  -c, --config <FILE>  The agent's configuration file
  -h, --help           Print help
";

/// Every subcommand, in the order of the help.
const SUBCOMMANDS: &[Sub] = &[
    Sub {
        name: "facts",
        about: "Print this host's facts (OS, CPU, memory, disks, boot time) as JSON",
        usage: "facts",
        options_help: "  -h, --help  Print help\n",
        options: &[],
    },
    Sub {
        name: "health",
        about: "Take one health sample (CPU, load, memory, disks, temperatures, uptime) \
                and print it as JSON",
        usage: "health",
        options_help: "  -h, --help  Print help\n",
        options: &[],
    },
    Sub {
        name: "check",
        about: "Validate the configuration file and poll each SNMP target once, printing \
                one line per target; exits with status 1 if any fails",
        usage: "check [OPTIONS] --config <FILE>",
        options_help: "  -c, --config <FILE>  The agent's configuration file
      --offline        Only validate the file (prints \"FILE: ok\"); poll no device
  -h, --help           Print help
",
        options: &[
            CONFIG,
            Opt {
                long: "offline",
                short: None,
                value: None,
            },
        ],
    },
    Sub {
        name: "enroll",
        about: "Enrol with the server: generate a key pair locally, exchange the one-time \
                token for an identity and store it",
        usage: "enroll [OPTIONS] --server <URL>",
        options_help: "      --server <URL>        The server's base URL (https://, or http:// to loopback only)
      --token <TOKEN>       The one-time enrolment token (default: the file named by `server.token_file` of --config) [env: OUTPOST_ENROLL_TOKEN]
      --tls-pin <HEX>       Trust exactly the server key with this pin (hex SHA-256 of its SubjectPublicKeyInfo, shown with the token): for a server with a self-signed certificate
      --identity-dir <DIR>  Where to store the identity (default: `server.identity_dir` of --config, else /var/lib/outpost/agent)
  -c, --config <FILE>       The agent's configuration file, for its `server.identity_dir`
      --force               Replace an existing identity
  -h, --help                Print help
",
        options: &[
            Opt {
                long: "server",
                short: None,
                value: Some("URL"),
            },
            Opt {
                long: "token",
                short: None,
                value: Some("TOKEN"),
            },
            Opt {
                long: "tls-pin",
                short: None,
                value: Some("HEX"),
            },
            Opt {
                long: "identity-dir",
                short: None,
                value: Some("DIR"),
            },
            CONFIG,
            Opt {
                long: "force",
                short: None,
                value: None,
            },
        ],
    },
    Sub {
        name: "run",
        about: "Run the agent daemon",
        usage: "run --config <FILE>",
        options_help: CONFIG_HELP,
        options: &[CONFIG],
    },
];

/// The `help` subcommand's own help.
const HELP_ABOUT: &str = "Print this message or the help of the given subcommand(s)";

/// The top-level help (also printed, to standard error, without a command).
fn top_help(bin: &str) -> String {
    let mut text = format!("{ABOUT}\n\nUsage: {bin} <COMMAND>\n\nCommands:\n");
    for sub in SUBCOMMANDS {
        text.push_str(&format!("  {:<6}  {}\n", sub.name, sub.about));
    }
    text.push_str(&format!(
        "  help    {HELP_ABOUT}\n\nOptions:\n  -h, --help     Print help\n  -V, --version  Print version\n"
    ));
    text
}

/// A subcommand's help.
fn sub_help(bin: &str, sub: &Sub) -> String {
    format!(
        "{}\n\nUsage: {bin} {}\n\nOptions:\n{}",
        sub.about, sub.usage, sub.options_help
    )
}

/// A mistake, with the usage it was made against (`None`: no usage line).
fn usage_error(bin: &str, message: &str, usage: Option<&str>) -> UsageError {
    let usage = usage
        .map(|usage| format!("Usage: {bin} {usage}\n\n"))
        .unwrap_or_default();
    UsageError(format!(
        "error: {message}\n\n{usage}For more information, try '--help'.\n"
    ))
}

/// Parses the arguments after the program's name. `env_token` is the value
/// of `OUTPOST_ENROLL_TOKEN`, used when `enroll` has no `--token`.
fn parse(
    bin: &str,
    args: impl IntoIterator<Item = OsString>,
    env_token: Option<OsString>,
) -> Result<Parsed, UsageError> {
    let mut args = args.into_iter();
    let top_error = |message: &str| usage_error(bin, message, Some("<COMMAND>"));
    let Some(first) = args.next() else {
        return Err(UsageError(top_help(bin)));
    };
    let first = first.to_string_lossy().into_owned();
    let name = match first.as_str() {
        "-h" | "--help" => return Ok(Parsed::Print(top_help(bin))),
        "-V" | "--version" => {
            return Ok(Parsed::Print(format!(
                "{NAME} {}\n",
                outpost_agent::version::current()
            )))
        }
        "--" => match args.next() {
            Some(arg) => {
                let arg = arg.to_string_lossy();
                return Err(top_error(&format!("unexpected argument '{arg}' found")));
            }
            None => return Err(UsageError(top_help(bin))),
        },
        "help" => {
            let text = match args.next() {
                None => top_help(bin),
                Some(name) if name == "help" => format!(
                    "{HELP_ABOUT}\n\nUsage: {bin} help [COMMAND]...\n\n\
                     Arguments:\n  [COMMAND]...  Print help for the subcommand(s)\n"
                ),
                Some(name) => match SUBCOMMANDS.iter().find(|sub| name == sub.name) {
                    Some(sub) => sub_help(bin, sub),
                    None => {
                        let name = name.to_string_lossy();
                        return Err(top_error(&format!("unrecognized subcommand '{name}'")));
                    }
                },
            };
            if let Some(extra) = args.next() {
                let extra = extra.to_string_lossy();
                return Err(top_error(&format!("unrecognized subcommand '{extra}'")));
            }
            return Ok(Parsed::Print(text));
        }
        name => name,
    };
    let Some(sub) = SUBCOMMANDS.iter().find(|sub| sub.name == name) else {
        let message = if name.starts_with('-') && name.len() > 1 {
            format!("unexpected argument '{name}' found")
        } else {
            format!("unrecognized subcommand '{name}'")
        };
        return Err(top_error(&message));
    };
    let Some(mut values) = parse_options(bin, sub, args)? else {
        return Ok(Parsed::Print(sub_help(bin, sub)));
    };
    let error = |message: &str| usage_error(bin, message, Some(sub.usage));
    let required = |value: Option<OsString>, name: &str| {
        value.ok_or_else(|| {
            error(&format!(
                "the following required arguments were not provided:\n  {name}"
            ))
        })
    };
    let utf8 = |value: OsString| {
        value
            .into_string()
            .map_err(|_| error("invalid UTF-8 was detected in one or more arguments"))
    };
    // The value of the option `--long`, if given.
    let mut take = |long: &str| {
        let index = sub.options.iter().position(|opt| opt.long == long)?;
        values.get_mut(index)?.take()
    };
    let command = match sub.name {
        "facts" => Command::Facts,
        "health" => Command::Health,
        "check" => Command::Check {
            config: required(take("config"), "--config <FILE>")?.into(),
            offline: take("offline").is_some(),
        },
        "run" => Command::Run {
            config: required(take("config"), "--config <FILE>")?.into(),
        },
        _ => Command::Enroll {
            server: utf8(required(take("server"), "--server <URL>")?)?,
            token: take("token").or(env_token).map(utf8).transpose()?,
            tls_pin: take("tls-pin").map(utf8).transpose()?,
            identity_dir: take("identity-dir").map(PathBuf::from),
            config: take("config").map(PathBuf::from),
            force: take("force").is_some(),
        },
    };
    Ok(Parsed::Command(command))
}

/// One argument after a subcommand's name.
enum Arg {
    /// `-h`, `--help`.
    Help,
    /// `--`: what follows is not options.
    Dashes,
    /// The option `sub.options[index]`, with its value if given in the same
    /// argument (`--config=FILE`, `-cFILE`).
    Opt(usize, Option<OsString>),
}

/// What `arg` is among `sub`'s options; `Err` names an unknown one (or
/// gives a positional argument, which no subcommand takes).
fn classify(sub: &Sub, arg: &OsStr) -> Result<Arg, String> {
    let bytes = arg.as_encoded_bytes();
    if bytes == b"--" {
        Ok(Arg::Dashes)
    } else if let Some(rest) = bytes.strip_prefix(b"--") {
        let (name, inline) = match rest.iter().position(|&b| b == b'=') {
            Some(at) => (&rest[..at], Some(os_tail(arg, 2 + at + 1))),
            None => (rest, None),
        };
        if name == b"help" {
            return Ok(Arg::Help);
        }
        match sub.options.iter().position(|o| o.long.as_bytes() == name) {
            Some(index) => Ok(Arg::Opt(index, inline)),
            None => Err(format!("--{}", String::from_utf8_lossy(name))),
        }
    } else if is_option(arg) {
        // One letter; the rest of the argument, if any, is its value
        // (`-cFILE`, `-c=FILE`).
        let letter = arg.to_string_lossy().chars().nth(1).unwrap_or('-');
        if letter == 'h' {
            return Ok(Arg::Help);
        }
        let at = 1 + letter.len_utf8();
        match sub.options.iter().position(|o| o.short == Some(letter)) {
            Some(index) if at < bytes.len() => {
                let skip = if bytes[at] == b'=' { at + 1 } else { at };
                Ok(Arg::Opt(index, Some(os_tail(arg, skip))))
            }
            Some(index) => Ok(Arg::Opt(index, None)),
            None => Err(format!("-{letter}")),
        }
    } else {
        Err(arg.to_string_lossy().into_owned())
    }
}

/// The values of `sub`'s options in `args`, in the order of `sub.options`
/// (a flag's value is empty); `None` if help was asked for.
fn parse_options(
    bin: &str,
    sub: &Sub,
    args: impl Iterator<Item = OsString>,
) -> Result<Option<Vec<Option<OsString>>>, UsageError> {
    let error = |message: String| usage_error(bin, &message, Some(sub.usage));
    let unexpected = |arg: &str| error(format!("unexpected argument '{arg}' found"));
    let mut values: Vec<Option<OsString>> = sub.options.iter().map(|_| None).collect();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (index, inline) = match classify(sub, &arg).map_err(|arg| unexpected(&arg))? {
            Arg::Help => return Ok(None),
            // No subcommand takes positional arguments.
            Arg::Dashes => match args.next() {
                Some(extra) => return Err(unexpected(&extra.to_string_lossy())),
                None => break,
            },
            Arg::Opt(index, inline) => (index, inline),
        };
        let Some((opt, slot)) = sub.options.get(index).zip(values.get_mut(index)) else {
            break;
        };
        if slot.is_some() {
            return Err(error(format!(
                "the argument '{}' cannot be used multiple times",
                opt.display()
            )));
        }
        let value = match (opt.value, inline) {
            (None, None) => OsString::new(),
            (None, Some(value)) => {
                return Err(error(format!(
                    "unexpected value '{}' for '{}' found; no more were expected",
                    value.to_string_lossy(),
                    opt.display()
                )))
            }
            (Some(_), Some(value)) => value,
            // The next argument, unless it is an option itself (`-` is a
            // value); `--config=-x` gives a value that starts with `-`.
            (Some(_), None) => match args.next_if(|next| !is_option(next)) {
                Some(value) => value,
                None => {
                    // An unknown option is the mistake to name, as clap did.
                    if let Some(Err(next)) = args.peek().map(|next| classify(sub, next)) {
                        return Err(unexpected(&next));
                    }
                    let message = format!(
                        "a value is required for '{}' but none was supplied",
                        opt.display()
                    );
                    return Err(usage_error(bin, &message, None));
                }
            },
        };
        *slot = Some(value);
    }
    Ok(Some(values))
}

/// Whether `arg` is an option (`-x`, `--xyz`) rather than a value.
fn is_option(arg: &OsStr) -> bool {
    let bytes = arg.as_encoded_bytes();
    bytes.len() > 1 && bytes[0] == b'-'
}

/// `arg` from byte `start` on; `start` follows an ASCII character.
fn os_tail(arg: &OsStr, start: usize) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        OsStr::from_bytes(arg.as_bytes().get(start..).unwrap_or_default()).to_owned()
    }
    #[cfg(not(unix))]
    {
        // Only ASCII precedes `start`, so it is the same offset in the
        // lossy text.
        OsString::from(arg.to_string_lossy().get(start..).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` (after the program's name) without the environment.
    fn parse_with(args: &[&str], env_token: Option<&str>) -> Result<Parsed, UsageError> {
        parse(
            "outpost-agent",
            args.iter().map(OsString::from),
            env_token.map(OsString::from),
        )
    }

    fn command(args: &[&str]) -> Command {
        match parse_with(args, None) {
            Ok(Parsed::Command(command)) => command,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// The text of a usage error.
    fn mistake(args: &[&str]) -> String {
        match parse_with(args, None) {
            Err(UsageError(text)) => text,
            other => panic!("{args:?} should fail: {other:?}"),
        }
    }

    /// The text printed for help or version.
    fn printed(args: &[&str]) -> String {
        match parse_with(args, None) {
            Ok(Parsed::Print(text)) => text,
            other => panic!("{args:?} should print: {other:?}"),
        }
    }

    fn check(config: &str) -> Command {
        Command::Check {
            config: config.into(),
            offline: false,
        }
    }

    #[test]
    fn parses_subcommands() {
        assert_eq!(command(&["facts"]), Command::Facts);
        assert_eq!(command(&["health"]), Command::Health);
        assert_eq!(command(&["check", "--config", "a.toml"]), check("a.toml"));
        assert_eq!(
            command(&["check", "--offline", "-c", "a.toml"]),
            Command::Check {
                config: "a.toml".into(),
                offline: true
            }
        );
        assert_eq!(
            command(&["run", "-c", "a.toml"]),
            Command::Run {
                config: "a.toml".into()
            }
        );
        assert!(mistake(&["check"]).contains("--config <FILE>"));
        assert!(mistake(&["reboot"]).contains("unrecognized subcommand 'reboot'"));
        assert!(mistake(&[]).contains("Usage: outpost-agent <COMMAND>"));
    }

    #[test]
    fn takes_values_in_every_form() {
        for args in [
            &["check", "--config", "a.toml"][..],
            &["check", "--config=a.toml"],
            &["check", "-c", "a.toml"],
            &["check", "-ca.toml"],
            &["check", "-c=a.toml"],
        ] {
            assert_eq!(command(args), check("a.toml"), "{args:?}");
        }
        // `-` is a value; an option is not; `=` lets a value start with `-`.
        assert_eq!(command(&["check", "-c", "-"]), check("-"));
        assert_eq!(command(&["check", "--config=-x"]), check("-x"));
        assert_eq!(command(&["check", "--config="]), check(""));
        let text = mistake(&["check", "--config", "--help"]);
        assert!(
            text.contains("a value is required for '--config <FILE>'"),
            "{text}"
        );
        let text = mistake(&["check", "--config", "-x"]);
        assert!(text.contains("unexpected argument '-x' found"), "{text}");
        assert!(mistake(&["run", "-c"]).contains("a value is required for '--config <FILE>'"));
        assert_eq!(command(&["check", "-c", "a.toml", "--"]), check("a.toml"));
    }

    #[test]
    fn parses_enroll() {
        let enroll = command(&[
            "enroll",
            "--server",
            "https://s.example",
            "--token=T",
            "--tls-pin",
            "ab",
            "--identity-dir",
            "/id",
            "-c",
            "a.toml",
            "--force",
        ]);
        assert_eq!(
            enroll,
            Command::Enroll {
                server: "https://s.example".into(),
                token: Some("T".into()),
                tls_pin: Some("ab".into()),
                identity_dir: Some("/id".into()),
                config: Some("a.toml".into()),
                force: true,
            }
        );
        let minimal = command(&["enroll", "--server", "https://s.example"]);
        assert_eq!(
            minimal,
            Command::Enroll {
                server: "https://s.example".into(),
                token: None,
                tls_pin: None,
                identity_dir: None,
                config: None,
                force: false,
            }
        );
        let text = mistake(&["enroll", "--token", "T"]);
        assert!(text.contains("required arguments were not provided:\n  --server <URL>"));
        assert!(text.contains("Usage: outpost-agent enroll [OPTIONS] --server <URL>"));
    }

    #[test]
    fn enroll_token_comes_from_the_environment_unless_given() {
        let token = |args: &[&str]| match parse_with(args, Some("from-env")) {
            Ok(Parsed::Command(Command::Enroll { token, .. })) => token,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            token(&["enroll", "--server", "u"]).as_deref(),
            Some("from-env")
        );
        assert_eq!(
            token(&["enroll", "--server", "u", "--token", "T"]).as_deref(),
            Some("T")
        );
        // The environment does not stand in for other subcommands' options.
        assert!(parse_with(&["check"], Some("from-env")).is_err());
    }

    #[test]
    fn mistakes_name_the_argument() {
        for (args, expected) in [
            (
                &["check", "--bogus", "x"][..],
                "unexpected argument '--bogus' found",
            ),
            (
                &["check", "--bogus=x"],
                "unexpected argument '--bogus' found",
            ),
            (&["check", "-x"], "unexpected argument '-x' found"),
            (&["facts", "extra"], "unexpected argument 'extra' found"),
            (&["facts", "-V"], "unexpected argument '-V' found"),
            (&["facts", "--", "x"], "unexpected argument 'x' found"),
            (&["--bogus"], "unexpected argument '--bogus' found"),
            (&["--", "facts"], "unexpected argument 'facts' found"),
            (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
            (
                &["help", "frobnicate"],
                "unrecognized subcommand 'frobnicate'",
            ),
            (
                &["check", "-c", "a", "--config", "b"],
                "the argument '--config <FILE>' cannot be used multiple times",
            ),
            (
                &["enroll", "--server", "u", "--force", "--force"],
                "the argument '--force' cannot be used multiple times",
            ),
            (
                &["enroll", "--server", "u", "--force=yes"],
                "unexpected value 'yes' for '--force' found",
            ),
        ] {
            let text = mistake(args);
            assert!(text.starts_with("error: "), "{args:?}: {text}");
            assert!(text.contains(expected), "{args:?}: {text}");
            assert!(
                text.ends_with("For more information, try '--help'.\n"),
                "{args:?}: {text}"
            );
        }
    }

    #[test]
    fn prints_help_and_version() {
        let top = printed(&["--help"]);
        assert!(top.starts_with(ABOUT), "{top}");
        assert!(top.contains("Usage: outpost-agent <COMMAND>"), "{top}");
        for sub in SUBCOMMANDS {
            assert!(top.contains(&format!("  {:<6}  {}\n", sub.name, sub.about)));
        }
        assert_eq!(printed(&["-h"]), top);
        assert_eq!(printed(&["help"]), top);
        // Without a command, the same help is the usage error.
        assert_eq!(mistake(&[]), top);
        assert_eq!(
            printed(&["--version"]),
            format!("outpost-agent {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(printed(&["-V"]), printed(&["--version"]));
        let enroll = printed(&["enroll", "--help"]);
        assert!(
            enroll.contains("Usage: outpost-agent enroll [OPTIONS] --server <URL>"),
            "{enroll}"
        );
        assert!(enroll.contains("[env: OUTPOST_ENROLL_TOKEN]"), "{enroll}");
        assert_eq!(printed(&["enroll", "-h"]), enroll);
        assert_eq!(printed(&["help", "enroll"]), enroll);
        // Help wins over missing required options.
        assert!(printed(&["check", "-h"]).contains("-c, --config <FILE>"));
        assert!(printed(&["help", "help"]).contains("help [COMMAND]..."));
    }

    #[cfg(unix)]
    #[test]
    fn paths_need_not_be_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let path = OsStr::from_bytes(b"/etc/a\xff.toml");
        let mut joined = OsString::from("--config=");
        joined.push(path);
        for args in [
            vec![OsString::from("check"), OsString::from("-c"), path.into()],
            vec![OsString::from("check"), joined],
        ] {
            assert_eq!(
                parse("outpost-agent", args, None),
                Ok(Parsed::Command(Command::Check {
                    config: PathBuf::from(path),
                    offline: false,
                }))
            );
        }
        let server = vec![
            OsString::from("enroll"),
            OsString::from("--server"),
            path.into(),
        ];
        let Err(UsageError(text)) = parse("outpost-agent", server, None) else {
            panic!("a non-UTF-8 URL must fail");
        };
        assert!(text.contains("invalid UTF-8"), "{text}");
    }
}
