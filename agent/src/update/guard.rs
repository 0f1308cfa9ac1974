//! The hand-over to a new binary, and the rollback when it is not healthy.
//!
//! Runs in the process that installed the release (its daemon tasks
//! stopped), or in a process that found a trial nobody watched. It starts
//! the new binary as a child on trial, waits for its `healthy` file (written
//! once the server accepted a heartbeat from it, carrying its version) up to
//! `health_deadline` — measured on the monotonic clock, so a wrong or
//! jumping wall clock changes nothing — then stops the child and `exec`s
//! the binary that is to stay: the new one if it proved healthy, else the
//! previous one, put back first. `exec` keeps the PID, so a service manager
//! sees one service throughout.

use std::convert::Infallible;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Pending, Phase, Updater, HEALTHY, TRIAL_ENV};
use crate::fsutil::sync_dir;

/// How often the guard looks at the child.
const POLL: Duration = Duration::from_millis(200);
/// How long a stopped child has to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Watches the trial of `pending` and ends by `exec`ing the binary that
/// stays. Returns only if that fails.
pub fn hand_over(u: &Updater, pending: &Pending) -> Result<Infallible> {
    let healthy_file = u.dir.join(HEALTHY);
    let _ = std::fs::remove_file(&healthy_file);
    tracing::info!(binary = %pending.binary.display(), to = %pending.to_version,
        deadline = ?u.health_deadline, "starting the new binary on trial");
    let verdict = match Command::new(&pending.binary)
        .arg("run")
        .arg("--config")
        .arg(&u.config_path)
        .env(TRIAL_ENV, "1")
        .spawn()
    {
        Ok(child) => watch(child, &healthy_file, &pending.to_version, u.health_deadline),
        Err(e) => Err(format!("the new binary does not start: {e}")),
    };
    let _ = std::fs::remove_file(&healthy_file);
    let mut done = pending.clone();
    match verdict {
        Ok(()) => {
            tracing::info!(to = %pending.to_version, "the new binary reported healthy; switching to it");
            done.phase = Phase::Healthy;
        }
        Err(detail) => {
            tracing::error!(to = %pending.to_version, %detail, "the new binary is not healthy; restoring the previous one");
            restore(pending).context("restoring the previous binary")?;
            done.phase = Phase::RolledBack { detail };
        }
    }
    u.save_pending(&done)?;
    let err = exec_run(&pending.binary, &u.config_path);
    Err(err).with_context(|| format!("cannot start {}", pending.binary.display()))
}

/// Waits until the child is healthy (`Ok`), exits, or the deadline passes;
/// in every case the child is stopped before returning.
fn watch(
    mut child: Child,
    healthy_file: &Path,
    version: &str,
    deadline: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let verdict = loop {
        if let Ok(text) = std::fs::read_to_string(healthy_file) {
            if text.trim() == version {
                break Ok(());
            }
            break Err(format!(
                "the new binary reports version {:?}, not {version:?}",
                text.trim()
            ));
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                break Err(format!(
                    "the new binary exited ({status}) before reporting healthy"
                ))
            }
            Ok(None) => {}
            Err(e) => break Err(format!("cannot watch the new binary: {e}")),
        }
        if started.elapsed() >= deadline {
            break Err(format!(
                "the new binary did not report healthy within {}",
                humantime::format_duration(deadline)
            ));
        }
        std::thread::sleep(POLL);
    };
    stop(&mut child);
    verdict
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`].
fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // Our own child, not yet reaped: its PID cannot have been reused.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let started = Instant::now();
        while started.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Puts `<binary>.previous` back in place of the binary (copy, then one
/// rename).
fn restore(pending: &Pending) -> Result<()> {
    let bin = &pending.binary;
    let dir = bin
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(".outpost-agent.restore.tmp");
    std::fs::copy(&pending.previous, &tmp).with_context(|| {
        format!(
            "cannot copy {} to {}",
            pending.previous.display(),
            tmp.display()
        )
    })?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, bin).with_context(|| format!("cannot replace {}", bin.display()))?;
    sync_dir(dir)?;
    Ok(())
}

/// Replaces this process with `binary run --config CONFIG` (no trial mark).
fn exec_run(binary: &Path, config: &Path) -> std::io::Error {
    let mut command = Command::new(binary);
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .env_remove(TRIAL_ENV);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.exec()
    }
    #[cfg(not(unix))]
    {
        match command.status() {
            Ok(status) => std::process::exit(status.code().unwrap_or(1)),
            Err(e) => e,
        }
    }
}
