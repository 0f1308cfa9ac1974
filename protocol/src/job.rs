//! Firmware and software upgrade jobs: the server asks the agent that looks
//! after a device to install a signed release on it, and the agent reports
//! every step back.
//!
//! The contract:
//! - `POST /api/v1/agent/jobs` ([`JOBS_PATH`], signed like every agent
//!   request) with a [`JobQuery`] answers a [`JobList`]: the jobs the agent
//!   should carry out now (each device's job once its campaign's wave and
//!   maintenance window open it). Asking again returns the same jobs until
//!   the agent reports them started; the agent keys its own state by
//!   [`UpgradeJob::id`], so a repeated job is never run twice.
//! - The artifact comes from the same signed `GET` as a self-update
//!   ([`crate::OfferedRelease::artifact_path`], with `Range` to resume).
//! - Each state change and plug-in step goes back as an
//!   [`crate::AgentMessage::Job`] carrying a [`JobReport`], through the
//!   agent's durable spool (at least once; the server counts each
//!   idempotency key once).
//! - The answer to a heartbeat carries [`Hints`]: the newest release id and
//!   whether jobs wait, so an agent learns of both within one heartbeat
//!   instead of at its next scheduled check.
//!
//! A job's states ([`JobState`]) run
//! `scheduled → downloading → downloaded → installing → rebooting →
//! verifying → succeeded`, and may end `failed`, `rolled_back` or `skipped`
//! from any state before the end. [`JobState::may_follow`] is the one
//! transition rule; both sides apply it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::OfferedRelease;

/// Path of the job query endpoint.
pub const JOBS_PATH: &str = "/api/v1/agent/jobs";

/// The agent asks for its jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQuery {
    /// Protocol version of the sender.
    pub protocol_version: u32,
}

/// The server's answer to a [`JobQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList {
    /// The jobs to carry out now, oldest first.
    pub jobs: Vec<UpgradeJob>,
}

/// Install a release on one device the agent looks after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeJob {
    /// The job's id on the server; one device in one campaign.
    pub id: i64,
    /// The campaign it belongs to.
    pub campaign_id: i64,
    /// The campaign's name, for logs.
    pub campaign: String,
    /// The device: the agent's target name (as in its SNMP configuration and
    /// in [`crate::DeviceInventory::target`]).
    pub device: String,
    /// The device's vendor as the server knows it (picks the plug-in).
    pub vendor: String,
    /// The device's model as the server knows it (picks the plug-in).
    pub model: String,
    /// The version the server last saw the device run.
    #[serde(default)]
    pub current_version: Option<String>,
    /// The release to install: its signed manifest (`target` is
    /// `vendor/model`, `version` the version to reach) and artifact path.
    pub release: OfferedRelease,
    /// Longest the agent may take from the start of the download to the
    /// device's reload (download, verification, the plug-in's steps).
    pub install_timeout_secs: u64,
    /// Longest the device may take, from its reload, to answer again running
    /// the target version. Past it the device "did not come back".
    pub reboot_timeout_secs: u64,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Planned; waiting for its wave, the maintenance window, or the agent.
    Scheduled,
    /// The agent is fetching the artifact.
    Downloading,
    /// The artifact is complete and its signature and checksum hold.
    Downloaded,
    /// The vendor plug-in runs (pre-check, transfer, verify, set boot).
    Installing,
    /// The plug-in reloaded the device; waiting for it to come back.
    Rebooting,
    /// The device answers; the agent checks the version it runs.
    Verifying,
    /// The device runs the target version.
    Succeeded,
    /// The job failed (see the report's [`JobFailure`]).
    Failed,
    /// The plug-in put the previous version back after a failure.
    RolledBack,
    /// Not attempted (campaign aborted, device already on the version,
    /// no agent or plug-in for it).
    Skipped,
}

impl JobState {
    /// Every state, in order.
    pub const ALL: [JobState; 10] = [
        JobState::Scheduled,
        JobState::Downloading,
        JobState::Downloaded,
        JobState::Installing,
        JobState::Rebooting,
        JobState::Verifying,
        JobState::Succeeded,
        JobState::Failed,
        JobState::RolledBack,
        JobState::Skipped,
    ];

    /// The state's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Downloading => "downloading",
            JobState::Downloaded => "downloaded",
            JobState::Installing => "installing",
            JobState::Rebooting => "rebooting",
            JobState::Verifying => "verifying",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::RolledBack => "rolled_back",
            JobState::Skipped => "skipped",
        }
    }

    /// The state named `text`, if any.
    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the job is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::RolledBack | JobState::Skipped
        )
    }

    /// Position on the way to success (for ordering reports).
    fn rank(self) -> u8 {
        match self {
            JobState::Scheduled => 0,
            JobState::Downloading => 1,
            JobState::Downloaded => 2,
            JobState::Installing => 3,
            JobState::Rebooting => 4,
            JobState::Verifying => 5,
            _ => 6,
        }
    }

    /// Whether a job in state `self` may go to `next`: forward along the
    /// way (steps may be skipped: a software upgrade needs no reboot), or
    /// to an end from any state that is not one. Staying in the same
    /// non-terminal state is allowed (a further step of the same phase).
    pub fn may_follow(self, next: JobState) -> bool {
        if self.is_terminal() {
            return false;
        }
        if next.is_terminal() {
            // Only the agent's confirmation makes a success: never straight
            // from scheduled.
            return next != JobState::Succeeded || self.rank() >= JobState::Installing.rank();
        }
        next.rank() >= self.rank()
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed, for the server's follow-up (a device that did not
/// come back opens a P2 case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobFailure {
    /// Signature, checksum, size, key or target did not hold: not installed.
    Refused,
    /// The artifact could not be fetched within the install timeout.
    Download,
    /// No plug-in is configured for the device's vendor and model, or the
    /// agent does not know the device.
    NoPlugin,
    /// The plug-in reported a failed step, crashed, printed something that
    /// is not a step, or overran its time.
    Plugin,
    /// After its reload the device did not answer within the reboot
    /// timeout.
    NotReturned,
    /// The device answers but runs another version than the target.
    WrongVersion,
    /// The server gave up waiting for the agent (set by the server only).
    Timeout,
}

impl JobFailure {
    /// The failure's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobFailure::Refused => "refused",
            JobFailure::Download => "download",
            JobFailure::NoPlugin => "no_plugin",
            JobFailure::Plugin => "plugin",
            JobFailure::NotReturned => "not_returned",
            JobFailure::WrongVersion => "wrong_version",
            JobFailure::Timeout => "timeout",
        }
    }
}

/// One step of a job, sent as [`crate::AgentMessage::Job`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// Protocol version of the sender.
    pub protocol_version: u32,
    /// Makes a resent report count once.
    pub idempotency_key: Uuid,
    /// The reporting agent.
    pub agent_id: Uuid,
    /// The job ([`UpgradeJob::id`]).
    pub job_id: i64,
    /// The job's state after this step.
    pub state: JobState,
    /// The step: the agent's own (`download`, `signature`, `confirm`) or the
    /// plug-in's (`pre_check`, `transfer`, `verify`, `set_boot`, `reload`,
    /// `post_check`, `rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What happened, in words.
    #[serde(default)]
    pub detail: String,
    /// The version the device was seen running, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why, when `state` is `failed` or `rolled_back`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// When (agent clock).
    pub at: DateTime<Utc>,
}

/// What the answer to a heartbeat tells the agent besides its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hints {
    /// The id of the newest published release of any kind. When it changes
    /// the agent checks for a self-update at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<i64>,
    /// Upgrade jobs wait for this agent: it asks for them at once.
    #[serde(default)]
    pub jobs: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn states_round_trip_by_name() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).expect("serialize");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(JobState::parse("proceeding"), None);
    }

    #[test]
    fn transitions() {
        assert!(Scheduled.may_follow(Downloading));
        assert!(Downloading.may_follow(Downloading));
        assert!(Downloaded.may_follow(Installing));
        assert!(Installing.may_follow(Rebooting));
        assert!(Installing.may_follow(Verifying));
        assert!(Verifying.may_follow(Succeeded));
        assert!(Installing.may_follow(Succeeded));
        assert!(Scheduled.may_follow(Failed));
        assert!(Scheduled.may_follow(Skipped));
        assert!(Rebooting.may_follow(RolledBack));
        // Never backwards, never out of an end, never straight to success.
        assert!(!Rebooting.may_follow(Downloading));
        assert!(!Succeeded.may_follow(Failed));
        assert!(!Failed.may_follow(Succeeded));
        assert!(!Skipped.may_follow(Scheduled));
        assert!(!Scheduled.may_follow(Succeeded));
        assert!(!Downloaded.may_follow(Succeeded));
    }

    #[test]
    fn report_decodes_without_optional_fields() {
        let text = r#"{"protocol_version":1,"idempotency_key":"6f1c1f2e-5d43-4d1b-9b55-0b0f3c0b9a11",
            "agent_id":"6f1c1f2e-5d43-4d1b-9b55-0b0f3c0b9a12","job_id":7,"state":"downloading",
            "at":"2026-11-25T10:00:00Z"}"#;
        let r: JobReport = serde_json::from_str(text).expect("decode");
        assert_eq!(r.state, Downloading);
        assert_eq!(r.step, None);
        assert_eq!(r.failure, None);
    }
}
