//! `outpost-plugin-script`: the generic upgrade plug-in for hosts, where
//! the release's image is an executable installer (a `#!` script or an
//! ELF binary).
//!
//! Speaks the agent's plug-in contract (`outpost_agent::jobs::plugin`):
//! the contract as one JSON object on standard input, one step line per
//! step on standard output. Steps:
//!
//! * `pre_check`: the image starts with `#!` or is ELF and has the
//!   contract's size; the options are valid (only `version_command`, an
//!   array of strings, is known).
//! * `transfer`: copies the image into a private (0700) work directory.
//! * `verify`: the copy's SHA-256 equals the contract's.
//! * `set_boot`: nothing to set for software.
//! * `reload`: runs the installer with the contract on its standard input
//!   and `OUTPOST_TARGET_VERSION`, `OUTPOST_DEVICE`,
//!   `OUTPOST_DEVICE_ADDRESS` in its environment, within the contract's
//!   `timeout_secs`; a non-zero exit fails the step with the tail of its
//!   standard error.
//! * `post_check`: with `options.version_command` (an argv array), runs it
//!   and reports its trimmed standard output as `version`; ok iff it equals
//!   the target. Without it: ok, without a version.
//!
//! The work directory is removed at the end. Exit status 0 when every step
//! was ok, 1 otherwise.
//!
//! ```toml
//! [[jobs.plugins]]
//! vendor = "Linux"
//! model = "*"
//! command = "/usr/lib/outpost-agent/plugins/outpost-plugin-script"
//! confirm = "plugin"
//! options = { version_command = ["/opt/app/bin/app", "--version"] }
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use outpost_agent::plugin_kit::{self, emit, step, Contract, Status, Step};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("outpost-plugin-script: {why}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    version_command: Option<Vec<String>>,
}

fn options(contract: &Contract) -> Result<Options, String> {
    let mut options = Options {
        version_command: None,
    };
    let map = match &contract.options {
        serde_json::Value::Null => return Ok(options),
        serde_json::Value::Object(map) => map,
        other => return Err(format!("options must be a table, got {other}")),
    };
    for (key, value) in map {
        match key.as_str() {
            "version_command" => {
                let argv: Vec<String> = value
                    .as_array()
                    .and_then(|items| {
                        items
                            .iter()
                            .map(|v| v.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .filter(|argv| !argv.is_empty())
                    .ok_or_else(|| {
                        format!("options.version_command must be a non-empty array of strings (an argv), got {value}")
                    })?;
                options.version_command = Some(argv);
            }
            other => {
                return Err(format!(
                    "options.{other} is not an option of this plug-in (known: version_command)"
                ))
            }
        }
    }
    Ok(options)
}

/// A private work directory, removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn work_dir(job_id: i64) -> Result<WorkDir, String> {
    let path = std::env::temp_dir().join(format!(
        "outpost-plugin-script-{job_id}-{}",
        std::process::id()
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(&path)
        .map_err(|e| format!("cannot create the work directory {}: {e}", path.display()))?;
    Ok(WorkDir(path))
}

fn image_kind(path: &Path) -> Result<&'static str, String> {
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open the image {}: {e}", path.display()))?;
    let n = file
        .read(&mut head)
        .map_err(|e| format!("cannot read the image {}: {e}", path.display()))?;
    if n >= 2 && &head[..2] == b"#!" {
        Ok("a script")
    } else if n == 4 && &head == b"\x7fELF" {
        Ok("an ELF executable")
    } else {
        Err(format!(
            "the image {} is neither a #! script nor an ELF executable",
            path.display()
        ))
    }
}

fn run() -> Result<(), String> {
    let contract = match plugin_kit::read_contract() {
        Ok(c) => c,
        Err(why) => {
            emit(Step::PreCheck, Status::Failed, &why, None);
            return Err(why);
        }
    };
    let timeout = Duration::from_secs(contract.timeout_secs.max(1));
    let mut opts = None;
    step(Step::PreCheck, || {
        let o = options(&contract)?;
        let kind = image_kind(&contract.image.path)?;
        let size = std::fs::metadata(&contract.image.path)
            .map_err(|e| format!("{}: {e}", contract.image.path.display()))?
            .len();
        if size != contract.image.size {
            return Err(format!(
                "the image has {size} bytes, the contract says {}",
                contract.image.size
            ));
        }
        opts = Some(o);
        Ok(format!("the image is {kind} of {size} bytes"))
    })?;
    let opts = opts.ok_or("internal error: no options")?;
    let work = work_dir(contract.job_id)?;
    let installer = work.0.join("installer");
    step(Step::Transfer, || {
        std::fs::copy(&contract.image.path, &installer)
            .map_err(|e| format!("cannot copy the image into {}: {e}", work.0.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&installer, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("chmod {}: {e}", installer.display()))?;
        }
        Ok(format!("copied into {}", work.0.display()))
    })?;
    step(Step::Verify, || {
        let digest = plugin_kit::sha256_file(&installer)?;
        if digest != contract.image.sha256 {
            return Err(format!(
                "the copy's SHA-256 is {digest}, the contract's {}",
                contract.image.sha256
            ));
        }
        Ok("SHA-256 of the copy matches".into())
    })?;
    step(Step::SetBoot, || Ok("nothing to set for software".into()))?;
    step(Step::Reload, || {
        let input = serde_json::to_vec(&contract).map_err(|e| e.to_string())?;
        let mut command = Command::new(&installer);
        command
            .current_dir(&work.0)
            .env("OUTPOST_TARGET_VERSION", &contract.target_version)
            .env("OUTPOST_DEVICE", &contract.device.name)
            .env("OUTPOST_DEVICE_ADDRESS", &contract.device.address);
        let ran = plugin_kit::run_bounded(&mut command, &input, timeout)?;
        if !ran.status.success() {
            return Err(format!(
                "the installer {}{}",
                plugin_kit::describe(ran.status),
                if ran.stderr_tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ran.stderr_tail)
                }
            ));
        }
        Ok(format!(
            "the installer ran to completion for {}",
            contract.target_version
        ))
    })?;
    emit(Step::PostCheck, Status::Started, "", None);
    let Some(argv) = &opts.version_command else {
        emit(
            Step::PostCheck,
            Status::Ok,
            "no version_command: the version is not checked here",
            None,
        );
        return Ok(());
    };
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    let ran = match plugin_kit::run_bounded(&mut command, b"", timeout) {
        Ok(ran) => ran,
        Err(why) => {
            emit(Step::PostCheck, Status::Failed, &why, None);
            return Err(why);
        }
    };
    let version = String::from_utf8_lossy(&ran.stdout).trim().to_owned();
    if !ran.status.success() {
        let why = format!(
            "the version command {} {}: {}",
            argv.join(" "),
            plugin_kit::describe(ran.status),
            ran.stderr_tail
        );
        emit(Step::PostCheck, Status::Failed, &why, None);
        return Err(why);
    }
    if version == contract.target_version {
        emit(
            Step::PostCheck,
            Status::Ok,
            &format!("{} says {version}", argv[0]),
            Some(&version),
        );
        Ok(())
    } else {
        let why = format!(
            "{} says {version:?}, not {}",
            argv[0], contract.target_version
        );
        emit(Step::PostCheck, Status::Failed, &why, Some(&version));
        Err(why)
    }
}
