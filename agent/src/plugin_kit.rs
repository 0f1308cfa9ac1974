//! What the plug-ins shipped with the agent share (`outpost-plugin-script`,
//! `outpost-plugin-snmpsim`): reading the contract from standard input,
//! printing step lines, and running a program with a time limit.
//!
//! The contract itself is [`crate::jobs::plugin`]'s.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use crate::jobs::plugin::{Contract, Status, Step, StepLine};

/// Reads the contract (one JSON object) from standard input.
pub fn read_contract() -> Result<Contract, String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the contract from standard input: {e}"))?;
    let contract: Contract = serde_json::from_str(text.trim())
        .map_err(|e| format!("the contract on standard input is not valid: {e}"))?;
    if contract.contract != crate::jobs::plugin::CONTRACT_VERSION {
        return Err(format!(
            "contract version {} is not supported (this plug-in speaks {})",
            contract.contract,
            crate::jobs::plugin::CONTRACT_VERSION
        ));
    }
    Ok(contract)
}

/// Prints one step line (and flushes it, so the agent sees it at once).
pub fn emit(step: Step, status: Status, detail: &str, version: Option<&str>) {
    let line = StepLine {
        step,
        status,
        detail: detail.to_owned(),
        version: version.map(str::to_owned),
    };
    let text = serde_json::to_string(&line).unwrap_or_else(|_| {
        format!(
            "{{\"step\":\"{}\",\"status\":\"failed\",\"detail\":\"cannot encode\"}}",
            step.as_str()
        )
    });
    let mut out = std::io::stdout().lock();
    // Nobody to tell if stdout is gone.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Runs `step`: prints `started`, then `ok` with the detail `f` returns,
/// or `failed` with its error. Returns the error for the caller to stop.
pub fn step(step: Step, f: impl FnOnce() -> Result<String, String>) -> Result<(), String> {
    emit(step, Status::Started, "", None);
    match f() {
        Ok(detail) => {
            emit(step, Status::Ok, &detail, None);
            Ok(())
        }
        Err(why) => {
            emit(step, Status::Failed, &why, None);
            Err(why)
        }
    }
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    crate::download::sha256_file(path).map_err(|e| format!("{e:#}"))
}

/// What a program run with [`run_bounded`] did.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The last 2 KiB of its standard error.
    pub stderr_tail: String,
}

/// Runs `command` with `input` on its stdin, killed (with its process
/// group) after `timeout`.
pub fn run_bounded(command: &mut Command, input: &[u8], timeout: Duration) -> Result<Ran, String> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
    let pid = child.id();
    let input = input.to_vec();
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(16 * 1024 * 1024).read_to_end(&mut out);
        }
        out
    });
    let mut stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 4096];
        if let Some(s) = stderr.as_mut() {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2048 {
                    tail.drain(..tail.len() - 2048);
                }
            }
        }
        String::from_utf8_lossy(&tail).trim().to_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(pid);
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{:?} timed out after {}",
                    command.get_program(),
                    humantime::format_duration(timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {:?}: {e}", command.get_program())),
        }
    };
    // Children it left behind holding the pipes go with its group.
    kill_group(pid);
    let _ = writer.join();
    let stdout = reader.join().unwrap_or_default();
    let stderr_tail = err_reader.join().unwrap_or_default();
    Ok(Ran {
        status,
        stdout,
        stderr_tail,
    })
}

fn kill_group(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        use nix::sys::signal::{killpg, Signal};
        let _ = killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// `status N` or `signal N`, for messages.
pub fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("ended with {status}"),
    }
}
