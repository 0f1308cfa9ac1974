//! Firmware/software upgrade jobs on the devices the agent polls.
//!
//! The server hands out jobs (`POST /api/v1/agent/jobs`, see
//! [`outpost_protocol::job`]); each names a device (one of the agent's SNMP
//! targets), its vendor and model, and a signed release. The [`Runner`]
//! carries one job through its states, each change a [`JobReport`] spooled
//! like a fault (durable, at least once, a fresh idempotency key each):
//!
//! 1. **Prepare**: the device must be a configured target and a
//!    `[[jobs.plugins]]` entry must serve its vendor/model (`no_plugin`
//!    otherwise). The offer is checked *before* anything is downloaded:
//!    manifest valid, `target` = `vendor/model` of the job (ignoring case),
//!    key trusted, signature over the canonical bytes valid (`refused`).
//!    The device is asked over SNMP what it runs: already the target →
//!    `skipped`; an older target without `allow_downgrade` → `refused`.
//! 2. **downloading → downloaded**: [`crate::download`] into
//!    `<dir>/images/<job id>-<sha256>.part` (per job, so two jobs with the
//!    same image never delete each other's), resumed after breaks, retried
//!    with back-off until `install_timeout_secs` after the job's start
//!    (`download`), size and SHA-256 checked (`refused`).
//! 3. **installing**: the plug-in ([`plugin`]) with the contract; each of
//!    its lines is a report (`reload ok` → `rebooting`, `post_check` →
//!    `verifying`). Its failure, crash, garbage or timeout → `failed`
//!    (`plugin`); a `rollback ok` → `rolled_back`.
//! 4. **Confirm**: `confirm = "snmp"`: the device is polled every 2 s
//!    ([`confirm`]); its first answer → `verifying`; the target version
//!    seen → `succeeded`; nothing by the reload time plus
//!    `reboot_timeout_secs` → `not_returned`, another version until then →
//!    `wrong_version`. `confirm = "plugin"`: success iff a `post_check ok`
//!    carried the target version.
//!
//! Every job's state is kept in `<dir>/state/<id>.json` (atomic writes),
//! after its report is spooled: a job the server repeats is never run
//! twice, and a restarted agent resumes a job where it was (a download
//! continues, a confirmation keeps its deadline). A plug-in cannot be
//! resumed: a job whose plug-in ran when the agent stopped ends `failed`
//! ("the agent restarted while the plug-in ran"), since the device's state
//! is unknown. Images are deleted once a job ends.

pub mod confirm;
pub mod plugin;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use outpost_protocol::release::compare_versions;
use outpost_protocol::{JobFailure, JobReport, JobState, UpgradeJob, PROTOCOL_VERSION};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::{AgentConfig, Confirm, PluginConfig, SnmpTarget};
use crate::download::{download, Problem};
use crate::fsutil::write_atomic;
use crate::uplink::Uplink;

use self::plugin::{Contract, ContractDevice, ContractImage, PluginEnd, Status, Step, StepLine};

/// Time between two SNMP looks while confirming.
pub const CONFIRM_EVERY: Duration = Duration::from_secs(2);
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Where the reports go (the daemon spools them).
pub type Reporter = Arc<dyn Fn(JobReport) -> Result<()> + Send + Sync>;

/// A job's persisted state (`<dir>/state/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The job as the server sent it.
    pub job: UpgradeJob,
    /// Its state as last reported.
    pub state: JobState,
    /// When the agent started it (the install timeout counts from here).
    pub started_at: DateTime<Utc>,
    /// The plug-in was started and has not been seen to end.
    #[serde(default)]
    pub plugin_running: bool,
    /// The plug-in ended well and the device is being confirmed over SNMP.
    #[serde(default)]
    pub confirming: bool,
    /// When the device was reloaded (or the plug-in ended, without a
    /// reload): the reboot timeout counts from here.
    #[serde(default)]
    pub reload_at: Option<DateTime<Utc>>,
    /// The device answered since its reload.
    #[serde(default)]
    pub answered: bool,
    /// The version last seen while confirming.
    #[serde(default)]
    pub seen_version: Option<String>,
}

/// A job's terminal outcome, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub state: JobState,
    pub failure: Option<JobFailure>,
    pub detail: String,
}

/// Carries jobs out.
pub struct Runner {
    /// `[jobs] dir`.
    pub dir: PathBuf,
    /// The release keys trusted.
    pub keys: Vec<[u8; 32]>,
    pub agent_id: Uuid,
    pub reporter: Reporter,
}

/// Sleeps until `deadline` at most `step`; `false` when it has passed.
async fn sleep_before(deadline: DateTime<Utc>, step: Duration) -> bool {
    let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    if left.is_zero() {
        return false;
    }
    tokio::time::sleep(step.min(left)).await;
    true
}

/// Position of a state on the way to success (ends last).
fn rank(state: JobState) -> u8 {
    match state {
        JobState::Scheduled => 0,
        JobState::Downloading => 1,
        JobState::Downloaded => 2,
        JobState::Installing => 3,
        JobState::Rebooting => 4,
        JobState::Verifying => 5,
        _ => 6,
    }
}

fn human(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

impl Runner {
    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn record_path(&self, id: i64) -> PathBuf {
        self.state_dir().join(format!("{id}.json"))
    }

    /// The image file of a job.
    pub fn image_path(&self, job: &UpgradeJob) -> PathBuf {
        self.dir
            .join("images")
            .join(format!("{}-{}.part", job.id, job.release.manifest.sha256))
    }

    /// The record of job `id`, if the agent has seen it.
    pub fn load(&self, id: i64) -> Result<Option<Record>> {
        let path = self.record_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is damaged; remove it to forget the job", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save(&self, record: &Record) -> Result<()> {
        let dir = self.state_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = self.record_path(record.job.id);
        write_atomic(&path, &serde_json::to_vec_pretty(record)?, Some(0o600))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Every job recorded and not over: to resume after a restart.
    pub fn unfinished(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(self.state_dir()) else {
            return Vec::new();
        };
        let mut records: Vec<Record> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let bytes = std::fs::read(e.path()).ok()?;
                match serde_json::from_slice::<Record>(&bytes) {
                    Ok(r) => Some(r),
                    Err(err) => {
                        tracing::error!(file = %e.path().display(), error = %err, "damaged job state; ignored");
                        None
                    }
                }
            })
            .filter(|r| !r.state.is_terminal())
            .collect();
        records.sort_by_key(|r| r.job.id);
        records
    }

    /// Reports a step and records the state it leaves the job in (report
    /// first: a crash in between repeats a report, never loses one).
    fn step(
        &self,
        record: &mut Record,
        state: JobState,
        step: &str,
        detail: &str,
        version: Option<String>,
        failure: Option<JobFailure>,
    ) -> Result<()> {
        let state = if record.state == state || record.state.may_follow(state) {
            state
        } else {
            // A plug-in step of an earlier phase (e.g. a transfer line after
            // the reload): reported, the state stays.
            record.state
        };
        tracing::info!(job = record.job.id, device = %record.job.device, %state, step, detail, "upgrade job");
        (self.reporter)(JobReport {
            protocol_version: PROTOCOL_VERSION,
            idempotency_key: Uuid::new_v4(),
            agent_id: self.agent_id,
            job_id: record.job.id,
            state,
            step: Some(step.to_owned()),
            detail: detail.to_owned(),
            version,
            failure,
            at: Utc::now(),
        })
        .context("spooling a job report")?;
        record.state = state;
        self.save(record)
    }

    fn finish(
        &self,
        record: &mut Record,
        state: JobState,
        step: &str,
        failure: Option<JobFailure>,
        detail: &str,
        version: Option<String>,
    ) -> Result<Ended> {
        record.plugin_running = false;
        record.confirming = false;
        self.step(record, state, step, detail, version, failure)?;
        let image = self.image_path(&record.job);
        match std::fs::remove_file(&image) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(image = %image.display(), error = %e, "cannot delete the job's image")
            }
        }
        Ok(Ended {
            state,
            failure,
            detail: detail.to_owned(),
        })
    }

    /// Ends a job `failed` for `failure` ([`Runner::finish`] without a
    /// version).
    fn fail(
        &self,
        record: &mut Record,
        step: &str,
        failure: JobFailure,
        detail: &str,
    ) -> Result<Ended> {
        self.finish(record, JobState::Failed, step, Some(failure), detail, None)
    }

    /// Carries `job` out (or resumes it) to its end. Returns `None` when
    /// the job had already ended (a repeat from the server). An `Err` is a
    /// local problem (the spool or the state directory): the job stays
    /// where it was and is resumed later.
    pub async fn run(
        &self,
        uplink: &Uplink,
        config: &AgentConfig,
        job: UpgradeJob,
    ) -> Result<Option<Ended>> {
        let mut record = match self.load(job.id)? {
            Some(record) if record.state.is_terminal() => return Ok(None),
            Some(record) => record,
            None => Record {
                job,
                state: JobState::Scheduled,
                started_at: Utc::now(),
                plugin_running: false,
                confirming: false,
                reload_at: None,
                answered: false,
                seen_version: None,
            },
        };
        let job = record.job.clone();
        let target = config.snmp.targets.iter().find(|t| t.name == job.device);
        let plugin = config.jobs.plugin_for(&job.vendor, &job.model);
        if record.plugin_running
            || (rank(record.state) >= rank(JobState::Installing) && !record.confirming)
        {
            return self
                .fail(
                    &mut record,
                    "plugin",
                    JobFailure::Plugin,
                    "the agent restarted while the plug-in ran; the device's state is unknown",
                )
                .map(Some);
        }
        let Some(target) = target else {
            let detail = format!(
                "device {:?} ({}/{}) is not one of this agent's SNMP targets",
                job.device, job.vendor, job.model
            );
            return self
                .fail(&mut record, "plugin", JobFailure::NoPlugin, &detail)
                .map(Some);
        };
        let Some(plugin) = plugin else {
            let detail = format!(
                "no [[jobs.plugins]] entry serves vendor {:?} model {:?} (device {:?})",
                job.vendor, job.model, job.device
            );
            return self
                .fail(&mut record, "plugin", JobFailure::NoPlugin, &detail)
                .map(Some);
        };
        if record.confirming {
            return self.confirm(&mut record, target).await.map(Some);
        }
        // Prepare: check the offer before anything is downloaded.
        if let Err(why) = self.check_offer(&job) {
            return self
                .fail(&mut record, "signature", JobFailure::Refused, &why)
                .map(Some);
        }
        let target_version = job.release.manifest.version.clone();
        let observed = confirm::observe(target).await;
        let current = match &observed {
            Ok(seen) if seen.runs(&target_version) => {
                let detail = format!("the device already runs {target_version}");
                return self
                    .finish(
                        &mut record,
                        JobState::Skipped,
                        "pre_check",
                        None,
                        &detail,
                        Some(target_version),
                    )
                    .map(Some);
            }
            Ok(seen) => seen.version().or_else(|| job.current_version.clone()),
            Err(err) => {
                tracing::warn!(job = job.id, device = %job.device, error = %err, "cannot ask the device its version; using the server's");
                job.current_version.clone()
            }
        };
        if let Some(current) = &current {
            if *current == target_version {
                let detail = format!("the device already runs {target_version}");
                return self
                    .finish(
                        &mut record,
                        JobState::Skipped,
                        "pre_check",
                        None,
                        &detail,
                        Some(target_version),
                    )
                    .map(Some);
            }
            if compare_versions(&target_version, current).is_lt() && !job.release.allow_downgrade {
                let detail = format!(
                    "{target_version} is older than the {current} the device runs; the release does not allow a downgrade"
                );
                return self
                    .fail(&mut record, "signature", JobFailure::Refused, &detail)
                    .map(Some);
            }
        }
        // Download.
        let deadline = record.started_at
            + chrono::Duration::seconds(
                i64::try_from(job.install_timeout_secs)
                    .unwrap_or(i64::MAX / 2)
                    .min(i64::MAX / 2),
            );
        let image = self.image_path(&job);
        if rank(record.state) < rank(JobState::Downloaded) || !image.exists() {
            self.step(
                &mut record,
                JobState::Downloading,
                "download",
                &format!(
                    "{} {} ({} bytes)",
                    job.release.manifest.name, target_version, job.release.manifest.size
                ),
                None,
                None,
            )?;
            let dir = self.dir.join("images");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let mut wait = RETRY_MIN;
            loop {
                let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                let result = if left.is_zero() {
                    Err(Problem::Retry(anyhow::anyhow!("no time left")))
                } else {
                    download(uplink, &job.release, &image, left).await
                };
                match result {
                    Ok(()) => break,
                    Err(Problem::Refuse(why)) => {
                        return self
                            .fail(&mut record, "download", JobFailure::Refused, &why)
                            .map(Some);
                    }
                    Err(Problem::Retry(err)) => {
                        if !sleep_before(deadline, wait).await {
                            let detail = format!(
                                "the artifact could not be fetched within {}: {err:#}",
                                human(job.install_timeout_secs)
                            );
                            return self
                                .fail(&mut record, "download", JobFailure::Download, &detail)
                                .map(Some);
                        }
                        tracing::warn!(job = job.id, error = %format!("{err:#}"), retry_in = ?wait, "job download failed; retrying");
                        wait = (wait * 2).min(RETRY_MAX);
                    }
                }
            }
            self.step(
                &mut record,
                JobState::Downloaded,
                "download",
                "size and SHA-256 match the signed manifest",
                None,
                None,
            )?;
        }
        // Install.
        let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            let detail = format!(
                "no time left for the plug-in within the install timeout of {}",
                human(job.install_timeout_secs)
            );
            return self
                .fail(&mut record, "plugin", JobFailure::Plugin, &detail)
                .map(Some);
        }
        let timeout = plugin.timeout.min(left).max(Duration::from_secs(1));
        let image = std::fs::canonicalize(&image).unwrap_or(image);
        let contract = Contract {
            contract: plugin::CONTRACT_VERSION,
            job_id: job.id,
            device: ContractDevice {
                name: target.name.clone(),
                address: target.address.clone(),
                vendor: job.vendor.clone(),
                model: job.model.clone(),
                credentials: target.name.clone(),
                current_version: current.clone(),
            },
            image: ContractImage {
                path: image,
                sha256: job.release.manifest.sha256.clone(),
                size: job.release.manifest.size,
            },
            target_version: target_version.clone(),
            timeout_secs: timeout.as_secs(),
            options: serde_json::to_value(&plugin.options).unwrap_or_default(),
        };
        record.plugin_running = true;
        self.step(
            &mut record,
            JobState::Installing,
            "plugin",
            &format!("running {}", plugin.command.display()),
            None,
            None,
        )?;
        let end = self
            .run_plugin(&mut record, plugin, &contract, timeout)
            .await?;
        record.plugin_running = false;
        match end {
            PluginEnd::Failed(detail) => self
                .fail(&mut record, "plugin", JobFailure::Plugin, &detail)
                .map(Some),
            PluginEnd::RolledBack(detail) => self
                .finish(&mut record, JobState::RolledBack, "rollback", Some(JobFailure::Plugin), &detail, None)
                .map(Some),
            PluginEnd::Done {
                reloaded,
                post_check_version,
            } => match plugin.confirm {
                Confirm::Plugin => match post_check_version {
                    Some(v) if v == target_version => self
                        .finish(&mut record, JobState::Succeeded, "post_check", None, &format!("the plug-in confirmed {v}"), Some(v))
                        .map(Some),
                    Some(v) => {
                        let detail = format!("the device runs {v}, not {target_version} (the plug-in's post_check)");
                        self.finish(&mut record, JobState::Failed, "post_check", Some(JobFailure::WrongVersion), &detail, Some(v))
                            .map(Some)
                    }
                    None => self
                        .fail(
                            &mut record,
                            "post_check",
                            JobFailure::Plugin,
                            "confirm = \"plugin\" but the plug-in reported no post_check ok with a version",
                        )
                        .map(Some),
                },
                Confirm::Snmp => {
                    record.confirming = true;
                    if record.reload_at.is_none() || !reloaded {
                        record.reload_at = Some(Utc::now());
                    }
                    self.save(&record)?;
                    self.confirm(&mut record, target).await.map(Some)
                }
            },
        }
    }

    /// Checks the offer of a job: manifest, target, key, signature.
    fn check_offer(&self, job: &UpgradeJob) -> Result<(), String> {
        let m = &job.release.manifest;
        m.validate()
            .map_err(|e| format!("the manifest is invalid: {e}"))?;
        let expected = format!("{}/{}", job.vendor, job.model);
        if !m.target.eq_ignore_ascii_case(&expected) {
            return Err(format!(
                "the release is for {:?}, the device is a {expected:?}",
                m.target
            ));
        }
        crate::update::verify(&self.keys, &job.release)
    }

    async fn run_plugin(
        &self,
        record: &mut Record,
        plugin: &PluginConfig,
        contract: &Contract,
        timeout: Duration,
    ) -> Result<PluginEnd> {
        let mut failure: Option<anyhow::Error> = None;
        let end = plugin::run(
            &plugin::Invocation {
                command: &plugin.command,
                args: &plugin.args,
                timeout,
            },
            contract,
            |line: &StepLine| {
                if failure.is_some() {
                    return;
                }
                let state = match (line.step, line.status) {
                    (Step::Reload, Status::Ok) => {
                        record.reload_at = Some(Utc::now());
                        JobState::Rebooting
                    }
                    (Step::PostCheck, _) => JobState::Verifying,
                    (Step::Rollback, _) => record.state,
                    _ => JobState::Installing,
                };
                let status = match line.status {
                    Status::Started => "started",
                    Status::Ok => "ok",
                    Status::Failed => "failed",
                };
                let detail = if line.detail.is_empty() {
                    status.to_owned()
                } else {
                    format!("{status}: {}", plugin::clip(&line.detail, 2000))
                };
                if let Err(err) = self.step(
                    record,
                    state,
                    line.step.as_str(),
                    &detail,
                    line.version.clone(),
                    None,
                ) {
                    failure = Some(err);
                }
            },
        )
        .await;
        match failure {
            // The plug-in ran to its end, but its steps could not all be
            // recorded: the job ends as if the agent had restarted.
            Some(err) => Err(err),
            None => Ok(end),
        }
    }

    /// Polls the device until it runs the target or the deadline passes.
    async fn confirm(&self, record: &mut Record, target: &SnmpTarget) -> Result<Ended> {
        let job = record.job.clone();
        let target_version = job.release.manifest.version.clone();
        let reload_at = record.reload_at.unwrap_or_else(Utc::now);
        let deadline = reload_at
            + chrono::Duration::seconds(
                i64::try_from(job.reboot_timeout_secs)
                    .unwrap_or(i64::MAX / 2)
                    .min(i64::MAX / 2),
            );
        // Until the device answers, only a reported reload leaves the job
        // in `rebooting`.
        let reloaded = record.state == JobState::Rebooting;
        if rank(record.state) < rank(JobState::Rebooting) {
            // No reload: straight to verifying.
            self.step(
                record,
                JobState::Verifying,
                "confirm",
                "asking the device over SNMP",
                None,
                None,
            )?;
        }
        loop {
            match confirm::observe(target).await {
                Ok(seen) => {
                    if !record.answered {
                        record.answered = true;
                        if record.state == JobState::Verifying {
                            // Reported when confirming began (no reload).
                            self.save(record)?;
                        } else {
                            self.step(
                                record,
                                JobState::Verifying,
                                "confirm",
                                "the device answers again",
                                seen.version(),
                                None,
                            )?;
                        }
                    }
                    if seen.runs(&target_version) {
                        return self.finish(
                            record,
                            JobState::Succeeded,
                            "confirm",
                            None,
                            &format!("the device runs {target_version}"),
                            Some(target_version),
                        );
                    }
                    if seen.version() != record.seen_version {
                        record.seen_version = seen.version();
                        self.save(record)?;
                    }
                }
                Err(err) => {
                    tracing::debug!(job = job.id, error = %err, "the device does not answer yet")
                }
            }
            if !sleep_before(deadline, CONFIRM_EVERY).await {
                break;
            }
        }
        if record.answered {
            let seen = record
                .seen_version
                .clone()
                .unwrap_or_else(|| "an unknown version".into());
            let detail = format!(
                "the device runs {seen}, not {target_version}, {} after its reload",
                human(job.reboot_timeout_secs)
            );
            self.finish(
                record,
                JobState::Failed,
                "confirm",
                Some(JobFailure::WrongVersion),
                &detail,
                record.seen_version.clone(),
            )
        } else {
            let detail = format!(
                "the device did not answer within {} after its {}",
                human(job.reboot_timeout_secs),
                if reloaded {
                    "reload"
                } else {
                    "upgrade (no reload was reported)"
                }
            );
            self.fail(record, "confirm", JobFailure::NotReturned, &detail)
        }
    }
}

/// Runs jobs with bounded concurrency, one per device at a time, each job
/// once.
pub struct Scheduler {
    runner: Arc<Runner>,
    uplink: Arc<Uplink>,
    permits: Arc<Semaphore>,
    /// Ids and devices of the jobs in flight.
    active: InFlight,
}

/// Ids and devices of the jobs in flight, shared with the poller: a device
/// under an upgrade is in planned downtime, its failed polls no fault.
pub type InFlight = Arc<Mutex<(HashSet<i64>, HashSet<String>)>>;

/// Whether `device` has a job in flight.
pub fn upgrading(in_flight: &InFlight, device: &str) -> bool {
    lock(in_flight).1.contains(device)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
    /// The jobs in flight (for [`upgrading`]).
    pub fn in_flight(&self) -> InFlight {
        Arc::clone(&self.active)
    }

    pub fn new(runner: Runner, uplink: Arc<Uplink>, concurrency: usize) -> Scheduler {
        Scheduler {
            runner: Arc::new(runner),
            uplink,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            active: Arc::new(Mutex::new((HashSet::new(), HashSet::new()))),
        }
    }

    /// The runner.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Starts every job in `jobs` that is not over, not running, and whose
    /// device is free; the others wait for the next offer. `config` is the
    /// configuration in force (targets and plug-ins).
    pub fn offer(&self, jobs: Vec<UpgradeJob>, config: Arc<AgentConfig>) {
        for job in jobs {
            match self.runner.load(job.id) {
                Ok(Some(record)) if record.state.is_terminal() => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::error!(job = job.id, error = %format!("{err:#}"), "cannot read the job's state");
                    continue;
                }
            }
            {
                let mut active = lock(&self.active);
                if active.0.contains(&job.id) || active.1.contains(&job.device) {
                    continue;
                }
                active.0.insert(job.id);
                active.1.insert(job.device.clone());
            }
            let runner = Arc::clone(&self.runner);
            let uplink = Arc::clone(&self.uplink);
            let permits = Arc::clone(&self.permits);
            let active = Arc::clone(&self.active);
            let config = Arc::clone(&config);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.ok();
                let (id, device) = (job.id, job.device.clone());
                match runner.run(&uplink, &config, job).await {
                    Ok(Some(ended)) => {
                        tracing::info!(job = id, device, state = %ended.state, detail = ended.detail, "upgrade job ended")
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(job = id, device, error = %format!("{err:#}"), "upgrade job interrupted; resumed later")
                    }
                }
                let mut active = lock(&active);
                active.0.remove(&id);
                active.1.remove(&device);
            });
        }
    }

    /// Resumes the jobs a previous process left unfinished.
    pub fn resume(&self, config: Arc<AgentConfig>) {
        let jobs: Vec<UpgradeJob> = self
            .runner
            .unfinished()
            .into_iter()
            .map(|r| r.job)
            .collect();
        if !jobs.is_empty() {
            tracing::info!(jobs = jobs.len(), "resuming upgrade jobs");
        }
        self.offer(jobs, config);
    }
}
