//! The vendor plug-in contract and the handling of a plug-in process.
//!
//! A plug-in is an executable (`[[jobs.plugins]] command`, with `args`). It
//! gets one JSON object on standard input ([`Contract`]; stdin is closed
//! after it) and prints one JSON object per line on standard output
//! ([`StepLine`]):
//!
//! ```json
//! {"step": "transfer", "status": "ok", "detail": "copied 123 bytes"}
//! {"step": "post_check", "status": "ok", "detail": "", "version": "17.9.4"}
//! ```
//!
//! Steps: `pre_check`, `transfer`, `verify`, `set_boot`, `reload`,
//! `post_check`, `rollback`; statuses `started`, `ok`, `failed`. Unknown
//! fields, steps or statuses are refused like any other garbage.
//!
//! The agent runs the plug-in in a process group of its own and kills the
//! whole group when it overruns its time, prints something that is not a
//! step line (or a line over [`MAX_LINE`] bytes, or more than
//! [`MAX_LINES`] lines). Standard error is kept (its last [`STDERR_TAIL`]
//! bytes) for the report when the plug-in fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The contract's version.
pub const CONTRACT_VERSION: u32 = 1;
/// Longest stdout line accepted.
pub const MAX_LINE: usize = 64 * 1024;
/// Most stdout lines accepted.
pub const MAX_LINES: usize = 1000;
/// Bytes of stderr kept for reports.
pub const STDERR_TAIL: usize = 2048;
/// How long output may keep coming after the plug-in exited (a child it
/// left behind holding standard output) before its group is killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(5);

/// What the plug-in reads on standard input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// [`CONTRACT_VERSION`].
    pub contract: u32,
    /// The job ([`outpost_protocol::UpgradeJob::id`]).
    pub job_id: i64,
    /// The device to upgrade.
    pub device: ContractDevice,
    /// The verified image.
    pub image: ContractImage,
    /// The version to reach.
    pub target_version: String,
    /// The plug-in's time limit, in seconds.
    pub timeout_secs: u64,
    /// `[[jobs.plugins]] options`, as JSON.
    pub options: serde_json::Value,
}

/// The device in a [`Contract`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractDevice {
    /// The agent's target name.
    pub name: String,
    /// Its SNMP address as configured (`host:port`).
    pub address: String,
    /// Vendor as the server knows it.
    pub vendor: String,
    /// Model as the server knows it.
    pub model: String,
    /// A reference to the credentials (the agent's target name), never a
    /// secret.
    pub credentials: String,
    /// The version the device runs, when known.
    pub current_version: Option<String>,
}

/// The image in a [`Contract`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractImage {
    /// Absolute path of the verified image.
    pub path: PathBuf,
    /// Its lowercase hex SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A plug-in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    PreCheck,
    Transfer,
    Verify,
    SetBoot,
    Reload,
    PostCheck,
    Rollback,
}

impl Step {
    /// The step's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::PreCheck => "pre_check",
            Step::Transfer => "transfer",
            Step::Verify => "verify",
            Step::SetBoot => "set_boot",
            Step::Reload => "reload",
            Step::PostCheck => "post_check",
            Step::Rollback => "rollback",
        }
    }
}

/// A step's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Started,
    Ok,
    Failed,
}

/// One line of a plug-in's standard output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLine {
    pub step: Step,
    pub status: Status,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// How a plug-in run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginEnd {
    /// Exit 0 and no failed step.
    Done {
        /// A `reload ok` was printed.
        reloaded: bool,
        /// The version of the last `post_check ok`, if any.
        post_check_version: Option<String>,
    },
    /// A failed step, a crash, garbage or the timeout; the detail says which.
    Failed(String),
    /// A `rollback ok` after a failure.
    RolledBack(String),
}

/// The program to run and its limit.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub command: &'a Path,
    pub args: &'a [String],
    pub timeout: Duration,
}

/// At most `max` characters of `text`, with `…` when clipped.
pub fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn kill_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        // The group is the plug-in's own (process_group(0)): its pid.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Why reading stdout stopped early.
enum Stop {
    Garbage(String),
    Io(String),
}

/// Runs the plug-in with `contract` on its stdin; every accepted step line
/// goes to `on_line` as it comes.
pub async fn run(
    invocation: &Invocation<'_>,
    contract: &Contract,
    mut on_line: impl FnMut(&StepLine),
) -> PluginEnd {
    let name = invocation.command.display().to_string();
    let input = match serde_json::to_vec(contract) {
        Ok(json) => json,
        Err(e) => return PluginEnd::Failed(format!("cannot encode the contract: {e}")),
    };
    let mut command = tokio::process::Command::new(invocation.command);
    command
        .args(invocation.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return PluginEnd::Failed(format!("cannot start the plug-in {name}: {e}")),
    };
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            // A plug-in that does not read its input is its own business.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.write_all(b"\n").await;
        });
    }
    let stderr_tail = child.stderr.take().map(|mut stderr| {
        tokio::spawn(async move {
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            String::from_utf8_lossy(&tail).trim().to_owned()
        })
    });
    let Some(mut stdout) = child.stdout.take() else {
        kill_group(pid);
        return PluginEnd::Failed("internal error: no stdout pipe".into());
    };

    let mut reloaded = false;
    let mut post_check_version = None;
    let mut first_failure: Option<String> = None;
    let mut rollback: Option<String> = None;
    let mut lines = 0usize;
    let mut exit: Option<std::process::ExitStatus> = None;

    let reading = async {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 8192];
        let mut eof = false;
        let mut exit_seen_at: Option<tokio::time::Instant> = None;
        loop {
            let read = if exit.is_some() {
                // The plug-in is gone; a child of it may still hold stdout.
                let until = exit_seen_at
                    .get_or_insert_with(|| tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                tokio::time::timeout_at(*until, stdout.read(&mut buf))
                    .await
                    .ok()
            } else {
                tokio::select! {
                    r = stdout.read(&mut buf), if !eof => Some(r),
                    status = child.wait() => {
                        match status {
                            Ok(status) => exit = Some(status),
                            Err(e) => return Err(Stop::Io(format!("waiting for the plug-in: {e}"))),
                        }
                        if eof {
                            return Ok(());
                        }
                        continue;
                    }
                }
            };
            let n = match read {
                None => {
                    // Output still held open after the exit: stop reading.
                    kill_group(pid);
                    return Ok(());
                }
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(Stop::Io(format!("reading the plug-in's output: {e}"))),
            };
            if n == 0 {
                eof = true;
                if !pending.iter().all(u8::is_ascii_whitespace) {
                    let text = String::from_utf8_lossy(&pending).into_owned();
                    return Err(Stop::Garbage(format!(
                        "the plug-in printed an unterminated line: {:?}",
                        clip(&text, 200)
                    )));
                }
                if exit.is_some() {
                    return Ok(());
                }
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(at) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=at).collect();
                if line.len() > MAX_LINE {
                    return Err(Stop::Garbage(format!(
                        "the plug-in printed a line of {} bytes (at most {MAX_LINE})",
                        line.len()
                    )));
                }
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if text.trim().is_empty() {
                    continue;
                }
                lines += 1;
                if lines > MAX_LINES {
                    return Err(Stop::Garbage(format!(
                        "the plug-in printed more than {MAX_LINES} lines"
                    )));
                }
                // A JSON object only (serde would also take an array).
                let object =
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text.trim())
                        .map(serde_json::Value::Object);
                let parsed: StepLine = object.and_then(serde_json::from_value).map_err(|e| {
                    Stop::Garbage(format!(
                        "the plug-in printed something that is not a step line ({e}): {:?}",
                        clip(&text, 200)
                    ))
                })?;
                match (parsed.step, parsed.status) {
                    (Step::Reload, Status::Ok) => reloaded = true,
                    (Step::PostCheck, Status::Ok) => post_check_version = parsed.version.clone(),
                    (Step::Rollback, Status::Ok) => {
                        rollback = Some(format!("rolled back: {}", parsed.detail))
                    }
                    (step, Status::Failed) if first_failure.is_none() => {
                        first_failure = Some(if parsed.detail.is_empty() {
                            format!("{} failed", step.as_str())
                        } else {
                            format!("{} failed: {}", step.as_str(), clip(&parsed.detail, 500))
                        });
                    }
                    _ => {}
                }
                on_line(&parsed);
            }
            if pending.len() > MAX_LINE {
                return Err(Stop::Garbage(format!(
                    "the plug-in printed a line of more than {MAX_LINE} bytes"
                )));
            }
        }
    };
    let outcome = tokio::time::timeout(invocation.timeout, reading).await;
    let stderr = |tail: Option<tokio::task::JoinHandle<String>>| async move {
        match tail {
            Some(handle) => match tokio::time::timeout(Duration::from_secs(2), handle).await {
                Ok(Ok(text)) if !text.is_empty() => format!("; stderr: {text}"),
                _ => String::new(),
            },
            None => String::new(),
        }
    };
    match outcome {
        Err(_) => {
            let detail = format!(
                "the plug-in {name} timed out after {}",
                humantime::format_duration(invocation.timeout)
            );
            kill_group(pid);
            let _ = child.wait().await;
            PluginEnd::Failed(format!("{detail}{}", stderr(stderr_tail).await))
        }
        Ok(Err(Stop::Garbage(detail))) | Ok(Err(Stop::Io(detail))) => {
            kill_group(pid);
            let _ = child.wait().await;
            PluginEnd::Failed(format!("{detail}{}", stderr(stderr_tail).await))
        }
        Ok(Ok(())) => {
            let status = match exit {
                Some(status) => status,
                None => match child.wait().await {
                    Ok(status) => status,
                    Err(e) => return PluginEnd::Failed(format!("waiting for the plug-in: {e}")),
                },
            };
            if let Some(done) = rollback {
                let why = first_failure.unwrap_or_default();
                return PluginEnd::RolledBack(if why.is_empty() {
                    done
                } else {
                    format!("{why}; {done}")
                });
            }
            if let Some(failure) = first_failure {
                return PluginEnd::Failed(format!("{failure}{}", stderr(stderr_tail).await));
            }
            if !status.success() {
                return PluginEnd::Failed(format!(
                    "the plug-in {name} {}{}",
                    describe_exit(status),
                    stderr(stderr_tail).await
                ));
            }
            PluginEnd::Done {
                reloaded,
                post_check_version,
            }
        }
    }
}

/// `exited with status N` or `was killed by signal N`.
fn describe_exit(status: std::process::ExitStatus) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn contract() -> Contract {
        Contract {
            contract: CONTRACT_VERSION,
            job_id: 42,
            device: ContractDevice {
                name: "sw-1".into(),
                address: "127.0.0.1:16100".into(),
                vendor: "Cisco".into(),
                model: "C9300-48P".into(),
                credentials: "sw-1".into(),
                current_version: Some("17.6.1".into()),
            },
            image: ContractImage {
                path: "/nonexistent/image".into(),
                sha256: "ab".repeat(32),
                size: 3,
            },
            target_version: "17.9.4".into(),
            timeout_secs: 60,
            options: serde_json::json!({}),
        }
    }

    fn script(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("plugin.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    async fn run_script(
        body: &str,
        timeout: Duration,
    ) -> (PluginEnd, Vec<StepLine>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = script(dir.path(), body);
        let mut seen = Vec::new();
        let end = run(
            &Invocation {
                command: &path,
                args: &[],
                timeout,
            },
            &contract(),
            |line| seen.push(line.clone()),
        )
        .await;
        (end, seen, dir)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    const GOOD: &str = r#"
read contract
case "$contract" in *'"job_id":42'*) ;; *) echo "no contract: $contract" >&2; exit 3;; esac
for s in pre_check transfer verify set_boot; do
  echo "{\"step\":\"$s\",\"status\":\"started\"}"
  echo "{\"step\":\"$s\",\"status\":\"ok\",\"detail\":\"$s done\"}"
done
echo '{"step":"reload","status":"ok"}'
echo '{"step":"post_check","status":"ok","version":"17.9.4"}'
"#;

    #[test]
    fn a_good_run_reports_every_step() {
        let (end, seen, _dir) = rt().block_on(run_script(GOOD, Duration::from_secs(30)));
        assert_eq!(
            end,
            PluginEnd::Done {
                reloaded: true,
                post_check_version: Some("17.9.4".into())
            }
        );
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[1].detail, "pre_check done");
        assert_eq!(seen[9].step, Step::PostCheck);
    }

    #[test]
    fn a_crash_reports_the_exit_status_and_stderr_tail() {
        let (end, seen, _dir) = rt().block_on(run_script(
            "echo '{\"step\":\"pre_check\",\"status\":\"ok\"}'\nhead -c 5000 /dev/zero | tr '\\0' x >&2\necho ' the device said no' >&2\nexit 7\n",
            Duration::from_secs(30),
        ));
        let PluginEnd::Failed(detail) = end else {
            panic!("{end:?}")
        };
        assert!(detail.contains("exited with status 7"), "{detail}");
        assert!(detail.ends_with("the device said no"), "{detail}");
        assert!(
            detail.len() < STDERR_TAIL + 200,
            "tail only: {}",
            detail.len()
        );
        assert_eq!(seen.len(), 1);
        let (end, _, _dir) = rt().block_on(run_script("kill -9 $$\n", Duration::from_secs(30)));
        assert!(
            matches!(&end, PluginEnd::Failed(d) if d.contains("killed by signal 9")),
            "{end:?}"
        );
    }

    #[test]
    fn garbage_kills_the_plugin_and_quotes_it() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-running");
        let body = format!(
            "echo '{{\"step\":\"pre_check\",\"status\":\"ok\"}}'\necho 'Password: hunter2 lots of noise'\nsleep 30\ntouch {}\n",
            marker.display()
        );
        let (end, seen, _d) = rt().block_on(run_script(&body, Duration::from_secs(60)));
        let PluginEnd::Failed(detail) = end else {
            panic!("{end:?}")
        };
        assert!(detail.contains("not a step line"), "{detail}");
        assert!(detail.contains("lots of noise"), "{detail}");
        assert_eq!(seen.len(), 1);
        assert!(!marker.exists());
        // Too long a line, too many lines.
        let (end, _, _d) = rt().block_on(run_script(
            "head -c 70000 /dev/zero | tr '\\0' x\necho\n",
            Duration::from_secs(30),
        ));
        assert!(
            matches!(&end, PluginEnd::Failed(d) if d.contains("bytes")),
            "{end:?}"
        );
        let (end, _, _d) = rt().block_on(run_script(
            "i=0; while [ $i -lt 1001 ]; do echo '{\"step\":\"transfer\",\"status\":\"started\"}'; i=$((i+1)); done\n",
            Duration::from_secs(30),
        ));
        assert!(
            matches!(&end, PluginEnd::Failed(d) if d.contains("more than 1000 lines")),
            "{end:?}"
        );
    }

    #[test]
    fn unknown_steps_and_statuses_are_garbage() {
        for line in [
            r#"{"step":"format_disk","status":"ok"}"#,
            r#"{"step":"reload","status":"maybe"}"#,
            r#"{"step":"reload","status":"ok","extra":1}"#,
            r#"["reload","ok"]"#,
        ] {
            let (end, seen, _d) = rt().block_on(run_script(
                &format!("echo '{line}'\n"),
                Duration::from_secs(30),
            ));
            assert!(
                matches!(&end, PluginEnd::Failed(d) if d.contains("not a step line")),
                "{line}: {end:?}"
            );
            assert!(seen.is_empty());
        }
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        // A grandchild in the same group, holding stdout, outliving the limit.
        let body = format!(
            "echo '{{\"step\":\"transfer\",\"status\":\"started\"}}'\n(sleep 3; touch {}) &\nsleep 30\n",
            marker.display()
        );
        let (end, seen, _d) = rt().block_on(run_script(&body, Duration::from_secs(1)));
        assert!(
            matches!(&end, PluginEnd::Failed(d) if d.contains("timed out after 1s")),
            "{end:?}"
        );
        assert_eq!(seen.len(), 1);
        // Wait (with a deadline) well past the grandchild's sleep: it must
        // have been killed with the group.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            assert!(!marker.exists(), "the grandchild outlived the kill");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    #[test]
    fn a_failed_step_fails_unless_rolled_back() {
        let (end, _, _d) = rt().block_on(run_script(
            "echo '{\"step\":\"verify\",\"status\":\"failed\",\"detail\":\"checksum on flash differs\"}'\n",
            Duration::from_secs(30),
        ));
        assert_eq!(
            end,
            PluginEnd::Failed("verify failed: checksum on flash differs".into())
        );
        let (end, seen, _d) = rt().block_on(run_script(
            "echo '{\"step\":\"reload\",\"status\":\"ok\"}'\necho '{\"step\":\"post_check\",\"status\":\"failed\",\"detail\":\"boots old image\"}'\necho '{\"step\":\"rollback\",\"status\":\"started\"}'\necho '{\"step\":\"rollback\",\"status\":\"ok\",\"detail\":\"17.6.1 back\"}'\nexit 1\n",
            Duration::from_secs(30),
        ));
        assert_eq!(
            end,
            PluginEnd::RolledBack(
                "post_check failed: boots old image; rolled back: 17.6.1 back".into()
            )
        );
        assert_eq!(seen.len(), 4);
        // A rollback that fails is a failure.
        let (end, _, _d) = rt().block_on(run_script(
            "echo '{\"step\":\"set_boot\",\"status\":\"failed\"}'\necho '{\"step\":\"rollback\",\"status\":\"failed\"}'\n",
            Duration::from_secs(30),
        ));
        assert_eq!(end, PluginEnd::Failed("set_boot failed".into()));
    }

    #[test]
    fn a_missing_program_is_a_failure() {
        let end = rt().block_on(run(
            &Invocation {
                command: Path::new("/nonexistent/plugin"),
                args: &[],
                timeout: Duration::from_secs(5),
            },
            &contract(),
            |_| {},
        ));
        assert!(
            matches!(&end, PluginEnd::Failed(d) if d.contains("cannot start")),
            "{end:?}"
        );
    }
}
