//! Firmware and software upgrade campaigns (SPEC.md 8, issue 7).
//!
//! A campaign rolls one published firmware release (target `vendor/model`)
//! out to a selection of devices: by organisation, current version, or
//! explicit ids. The selected devices are planned into waves (percentages
//! or explicit groups) when the campaign is created; devices that cannot
//! take the release (no agent looks after them, already on the version,
//! newer without `allow_downgrade`, in another campaign) are recorded as
//! `skipped`, so the plan shows every selected device.
//!
//! Each device's job goes through the states of [`JobState`], reported by
//! the agent that looks after it (`AgentMessage::Job`) and applied only
//! along [`JobState::may_follow`]. Every report, timeout and operator
//! action is an `upgrade_events` row (append-only).
//!
//! The engine ([`Upgrades::evaluate`]) runs after every report, every
//! operator action and on the campaign's durable timer (`campaign:<id>`),
//! which is re-armed for the earliest job deadline or window change:
//! - jobs past their deadline fail (`timeout`): no job stays in progress
//!   for ever, even when its agent is gone;
//! - more failures than the error threshold allows stop the campaign;
//! - a wave that can no longer reach its success threshold pauses it;
//! - a wave whose jobs all ended at or above the threshold opens the next,
//!   or completes the campaign;
//! - the current wave's scheduled jobs are offered to agents while the
//!   maintenance window is open, and withdrawn while it is shut.
//!
//! A failed or rolled-back job opens a case on its device (P2 when the
//! device did not come back after its reload, P3 otherwise), once: the case
//! carries the fault key `upgrade/<job id>`.

pub mod plan;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outpost_protocol::release::compare_versions;
use outpost_protocol::{
    JobFailure, JobList, JobReport, JobState, OfferedRelease, Outcome, OutcomeStatus,
    ReleaseManifest, UpgradeJob,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Action, Principal};
use crate::cases::Cases;
use crate::cases::{ActivityBody, CaseType, Channel, Priority, Status, Visibility};
use crate::clock::{from_micros, to_micros};
use crate::error::{Error, Result};
use crate::sla::policy::Span;
use crate::store::agents::AgentRow;
use crate::store::cases::CaseInsert;
use crate::store::timers::TimerRow;
use crate::store::upgrades::{CampaignRow, EventInsert, EventRow, JobChange, JobInsert, JobRow};
use window::Window;

/// Slack the server gives an agent beyond a job's own timeout of `secs`
/// before it gives up on it (the agent's report may be on its way): a
/// quarter of the timeout, at least 5 s, at most a minute.
fn grace(secs: i64) -> i64 {
    (secs / 4).clamp(5, 60) * 1_000_000
}
/// Owner prefix of the campaigns' timers.
pub const TIMER_PREFIX: &str = "campaign:";

/// A selection of devices: the release's vendor and model, narrowed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Only devices of these organisations.
    #[serde(default)]
    pub organizations: Option<Vec<i64>>,
    /// Only devices running one of these versions.
    #[serde(default)]
    pub versions: Option<Vec<String>>,
    /// Only these devices (ids).
    #[serde(default)]
    pub devices: Option<Vec<i64>>,
}

/// A device named in an explicit wave: its id or its name.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DeviceRef {
    Id(i64),
    Name(String),
}

/// One wave: a share of the eligible devices, or an explicit group.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    /// Percent of the eligible devices (all waves' percentages sum to 100).
    #[serde(default)]
    pub percent: Option<u32>,
    /// These devices.
    #[serde(default)]
    pub devices: Option<Vec<DeviceRef>>,
}

/// A maintenance window.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Five-field cron pattern of the opening instants, e.g. `0 22 * * 1-5`.
    pub cron: String,
    /// How long it stays open, e.g. `4h`.
    pub duration: Span,
    /// Time zone of the pattern (tz database name). Default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// A new campaign.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    /// A published firmware release.
    pub release_id: i64,
    #[serde(default)]
    pub selection: Selection,
    /// Default: one wave of 100%.
    #[serde(default)]
    pub waves: Option<Vec<WaveSpec>>,
    /// Default: always open.
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// Percent of a wave that must succeed for the next to start; below it
    /// the campaign pauses. Default 100.
    #[serde(default)]
    pub success_threshold: Option<u8>,
    /// Percent of all planned devices whose failure stops the campaign.
    /// Default 20.
    #[serde(default)]
    pub error_threshold: Option<u8>,
    /// From the start of a job's download to the device's reload. Default 30m.
    #[serde(default)]
    pub install_timeout: Option<Span>,
    /// From the reload to the device answering on the target version.
    /// Default 15m.
    #[serde(default)]
    pub reboot_timeout: Option<Span>,
    /// Start at once (else the campaign is a draft until started).
    #[serde(default)]
    pub start: bool,
}

/// An operator's action on a campaign.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignAction {
    /// Why (recorded with the action).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A maintenance window as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WindowView {
    pub cron: String,
    pub duration: String,
    pub time_zone: String,
    pub open_now: bool,
    /// When the open window closes, or when the shut one opens next.
    pub next_change: Option<DateTime<Utc>>,
}

/// A wave's tally.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WaveView {
    pub wave: i64,
    pub devices: usize,
    pub scheduled: usize,
    pub in_progress: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// One device's job as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    pub campaign_id: i64,
    pub device_id: i64,
    pub device: String,
    pub organization_id: i64,
    /// 0 for devices skipped at planning.
    pub wave: i64,
    pub state: String,
    /// Handed to the agent and not started yet.
    pub offered: bool,
    pub step: Option<String>,
    pub detail: String,
    pub failure: Option<String>,
    pub from_version: Option<String>,
    /// The version last seen during the job.
    pub version: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the current state times out.
    pub deadline: Option<DateTime<Utc>>,
    /// The case opened for a failure.
    pub case_number: Option<String>,
}

/// A campaign as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignView {
    pub id: i64,
    pub name: String,
    pub release_id: i64,
    pub release_version: String,
    pub target: String,
    /// draft, running, paused, stopped, aborted or completed.
    pub state: String,
    pub reason: Option<String>,
    pub current_wave: i64,
    pub wave_count: i64,
    pub success_threshold: i64,
    pub error_threshold: i64,
    pub install_timeout: String,
    pub reboot_timeout: String,
    pub window: Option<WindowView>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Jobs per state.
    pub counts: BTreeMap<String, usize>,
    pub waves: Vec<WaveView>,
    pub jobs: Vec<JobView>,
}

/// One recorded step.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub job_id: Option<i64>,
    pub device: Option<String>,
    /// agent, server or user.
    pub source: String,
    pub user_id: Option<i64>,
    pub state: Option<String>,
    pub step: Option<String>,
    pub detail: String,
    pub failure: Option<String>,
    pub version: Option<String>,
    /// When it happened (the agent's clock for its reports).
    pub reported_at: DateTime<Utc>,
    /// When the server recorded it.
    pub at: DateTime<Utc>,
}

/// A release that applies to a device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplicableUpgrade {
    pub device_id: i64,
    pub device: String,
    pub organization_id: i64,
    pub vendor: String,
    pub model: String,
    pub current_version: Option<String>,
    pub release_id: i64,
    pub release: String,
    pub version: String,
    pub notes: String,
    pub published_at: Option<DateTime<Utc>>,
}

/// A device's upgrades: what applies, and its jobs so far.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceUpgrades {
    pub device_id: i64,
    pub applicable: Vec<ApplicableUpgrade>,
    pub jobs: Vec<JobView>,
}

fn job_view(j: JobRow) -> JobView {
    JobView {
        id: j.id,
        campaign_id: j.campaign_id,
        device_id: j.device_id,
        device: j.device_name,
        organization_id: j.organization_id,
        wave: j.wave,
        state: j.state,
        offered: j.offered,
        step: j.step,
        detail: j.detail,
        failure: j.failure,
        from_version: j.from_version,
        version: j.version,
        started_at: j.started_at.map(from_micros),
        finished_at: j.finished_at.map(from_micros),
        deadline: j.deadline.map(from_micros),
        case_number: j.case_number,
    }
}

fn event_view(e: EventRow) -> EventView {
    EventView {
        id: e.id,
        job_id: e.job_id,
        device: e.device_name,
        source: e.source,
        user_id: e.user_id,
        state: e.state,
        step: e.step,
        detail: e.detail,
        failure: e.failure,
        version: e.version,
        reported_at: from_micros(e.reported_at),
        at: from_micros(e.at),
    }
}

fn state_of(j: &JobRow) -> Result<JobState> {
    JobState::parse(&j.state)
        .ok_or_else(|| Error::Corrupt(format!("job {}: state {:?}", j.id, j.state)))
}

fn is_failure(s: JobState) -> bool {
    matches!(s, JobState::Failed | JobState::RolledBack)
}

fn clip(s: &str, n: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(n)
        .collect()
}

fn secs_text(secs: i64) -> String {
    Span::secs(u64::try_from(secs).unwrap_or(0)).to_string()
}

/// A vendor's name reduced for matching: lowercase letters and digits of
/// its words, without the company-form words, so `Cisco`, `cisco` and
/// `Cisco Systems, Inc.` (ENTITY-MIB's manufacturer name) are one vendor.
pub fn vendor_key(vendor: &str) -> String {
    const NOISE: &[&str] = &[
        "inc",
        "incorporated",
        "ltd",
        "limited",
        "llc",
        "co",
        "corp",
        "corporation",
        "company",
        "systems",
        "networks",
        "technologies",
        "technology",
        "gmbh",
        "ag",
        "sa",
        "the",
    ];
    vendor
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !NOISE.contains(w))
        .collect()
}

/// Splits a firmware target `vendor/model`.
fn vendor_model(target: &str) -> Result<(&str, &str)> {
    target
        .split_once('/')
        .filter(|(v, m)| !v.is_empty() && !m.is_empty())
        .ok_or_else(|| {
            Error::invalid(
                "release_id",
                format!("the release's target {target:?} is not vendor/model"),
            )
        })
}

/// The campaign service.
#[derive(Clone)]
pub struct Upgrades {
    cases: Cases,
    /// One evaluation at a time in this process (replicas are kept apart by
    /// the conditional updates).
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Upgrades {
    pub fn new(cases: Cases) -> Upgrades {
        Upgrades {
            cases,
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.cases.clock.now()
    }

    fn window_of(c: &CampaignRow) -> Option<Window> {
        let cron = c.window_cron.as_deref()?;
        let secs = u64::try_from(c.window_secs.unwrap_or(0)).unwrap_or(0);
        Window::parse(
            cron,
            std::time::Duration::from_secs(secs),
            c.window_tz.as_deref().unwrap_or("UTC"),
        )
        .ok()
    }

    // ------------------------------------------------------------ creation

    /// Create a campaign: validate, select, plan the waves; start it if asked.
    pub async fn create(&self, who: &Principal, req: &NewCampaign) -> Result<CampaignView> {
        who.require(Action::ManageCampaigns)?;
        let store = &self.cases.store;
        let name = crate::validate::text("name", &req.name, 200)?;
        let release = store.release(req.release_id).await?.ok_or_else(|| {
            Error::invalid("release_id", format!("no release {}", req.release_id))
        })?;
        if release.kind != "firmware" {
            return Err(Error::invalid(
                "release_id",
                format!(
                    "release {} is an agent release; campaigns roll out firmware (agents update themselves)",
                    release.id
                ),
            ));
        }
        if release.published_at.is_none() {
            return Err(Error::invalid(
                "release_id",
                format!(
                    "release {} is not published yet: upload its artifact first",
                    release.id
                ),
            ));
        }
        let (vendor, model) = vendor_model(&release.target)?;
        let success = req.success_threshold.unwrap_or(100);
        if success > 100 {
            return Err(Error::invalid(
                "success_threshold",
                "is a percentage (0 to 100)",
            ));
        }
        let errors = req.error_threshold.unwrap_or(20);
        if errors > 100 {
            return Err(Error::invalid(
                "error_threshold",
                "is a percentage (0 to 100)",
            ));
        }
        let timeout = |field: &str, v: Option<Span>, default: u64| -> Result<i64> {
            let secs = v.map(|s| s.0.as_secs()).unwrap_or(default);
            if !(10..=7 * 86400).contains(&secs) {
                return Err(Error::invalid(field, "must be between 10s and 7d"));
            }
            Ok(secs as i64)
        };
        let install = timeout("install_timeout", req.install_timeout, 1800)?;
        let reboot = timeout("reboot_timeout", req.reboot_timeout, 900)?;
        let window = match &req.window {
            None => None,
            Some(w) => {
                let tz = w.time_zone.clone().unwrap_or_else(|| "UTC".into());
                let parsed = Window::parse(&w.cron, w.duration.0, &tz)
                    .map_err(|(field, msg)| Error::invalid(format!("window.{field}"), msg))?;
                Some((parsed.pattern.clone(), w.duration.0.as_secs() as i64, tz))
            }
        };

        // The selection.
        let sel = &req.selection;
        if let Some(orgs) = &sel.organizations {
            if orgs.is_empty() {
                return Err(Error::invalid(
                    "selection.organizations",
                    "is empty: leave it out to select every organisation",
                ));
            }
            for (i, o) in orgs.iter().enumerate() {
                if store.organization(*o).await?.is_none() {
                    return Err(Error::invalid(
                        format!("selection.organizations[{i}]"),
                        format!("organization {o} does not exist"),
                    ));
                }
            }
        }
        if let Some(vs) = &sel.versions {
            if vs.is_empty() {
                return Err(Error::invalid(
                    "selection.versions",
                    "is empty: leave it out to select every version",
                ));
            }
            for (i, v) in vs.iter().enumerate() {
                crate::validate::text(&format!("selection.versions[{i}]"), v, 64)?;
            }
        }
        let all: Vec<_> = store
            .upgrade_candidates(model)
            .await?
            .into_iter()
            .filter(|d| vendor_key(&d.vendor) == vendor_key(vendor))
            .collect();
        if let Some(ids) = &sel.devices {
            if ids.is_empty() {
                return Err(Error::invalid(
                    "selection.devices",
                    "is empty: leave it out to select by organisation and version",
                ));
            }
            for (i, id) in ids.iter().enumerate() {
                if !all.iter().any(|d| d.id == *id) {
                    let what = match store.device(*id).await? {
                        None => format!("device {id} does not exist"),
                        Some(_) => format!("device {id} is not a {vendor} {model}"),
                    };
                    return Err(Error::invalid(format!("selection.devices[{i}]"), what));
                }
            }
        }
        let selected: Vec<_> = all
            .into_iter()
            .filter(|d| {
                sel.organizations
                    .as_ref()
                    .is_none_or(|o| o.contains(&d.organization_id))
                    && sel.devices.as_ref().is_none_or(|ids| ids.contains(&d.id))
                    && sel.versions.as_ref().is_none_or(|vs| {
                        d.version()
                            .is_some_and(|cur| vs.iter().any(|v| v.trim() == cur))
                    })
            })
            .collect();
        if selected.is_empty() {
            let mut what = format!("matches no device: no {vendor} {model}");
            if let Some(o) = &sel.organizations {
                what.push_str(&format!(" of organisations {o:?}"));
            }
            if let Some(v) = &sel.versions {
                what.push_str(&format!(" running {}", v.join(" or ")));
            }
            return Err(Error::invalid("selection", what));
        }
        let busy: HashMap<i64, i64> = store.devices_in_campaigns().await?.into_iter().collect();
        let mut eligible = Vec::new();
        let mut skipped = Vec::new();
        for d in selected {
            let current = d.version().map(str::to_string);
            let reason = if d.agent_id.is_none() || d.agent_target.is_none() {
                Some("no agent looks after it".to_string())
            } else if let Some(c) = busy.get(&d.id) {
                Some(format!("it is in campaign {c}, still under way"))
            } else {
                match &current {
                    Some(cur) => match compare_versions(&release.version, cur) {
                        std::cmp::Ordering::Equal => Some(format!("it already runs {cur}")),
                        std::cmp::Ordering::Less if !release.allow_downgrade => Some(format!(
                            "it runs {cur}, newer than {}; the release does not allow a downgrade",
                            release.version
                        )),
                        _ => None,
                    },
                    None => None,
                }
            };
            match reason {
                Some(r) => skipped.push((d, r)),
                None => eligible.push(d),
            }
        }
        if eligible.is_empty() {
            let reasons: Vec<String> = skipped
                .iter()
                .take(10)
                .map(|(d, r)| format!("{}: {r}", d.name))
                .collect();
            return Err(Error::invalid(
                "selection",
                format!(
                    "none of the {} selected devices can take release {}: {}",
                    skipped.len(),
                    release.version,
                    reasons.join("; ")
                ),
            ));
        }

        // The waves.
        let specs = req.waves.clone().unwrap_or_else(|| {
            vec![WaveSpec {
                percent: Some(100),
                devices: None,
            }]
        });
        if specs.is_empty() {
            return Err(Error::invalid(
                "waves",
                "is empty: leave it out for one wave of 100%",
            ));
        }
        if specs.len() > 20 {
            return Err(Error::invalid("waves", "at most 20 waves"));
        }
        let by_percent = specs
            .iter()
            .all(|w| w.percent.is_some() && w.devices.is_none());
        let by_group = specs
            .iter()
            .all(|w| w.devices.is_some() && w.percent.is_none());
        let waves: Vec<i64> = if by_percent {
            let percents: Vec<u32> = specs.iter().filter_map(|w| w.percent).collect();
            for (i, p) in percents.iter().enumerate() {
                if *p == 0 || *p > 100 {
                    return Err(Error::invalid(
                        format!("waves[{i}].percent"),
                        "must be between 1 and 100",
                    ));
                }
            }
            let sum: u32 = percents.iter().sum();
            if sum != 100 {
                return Err(Error::invalid(
                    "waves",
                    format!("the percentages sum to {sum}, not 100"),
                ));
            }
            plan::by_percent(eligible.len(), &percents)
        } else if by_group {
            let mut wave_of: HashMap<i64, i64> = HashMap::new();
            for (i, w) in specs.iter().enumerate() {
                let refs = w.devices.as_deref().unwrap_or_default();
                if refs.is_empty() {
                    return Err(Error::invalid(format!("waves[{i}].devices"), "is empty"));
                }
                for (k, r) in refs.iter().enumerate() {
                    let field = format!("waves[{i}].devices[{k}]");
                    let found = eligible.iter().find(|d| match r {
                        DeviceRef::Id(id) => d.id == *id,
                        DeviceRef::Name(n) => d.name == *n,
                    });
                    let Some(d) = found else {
                        let why = skipped
                            .iter()
                            .find(|(d, _)| match r {
                                DeviceRef::Id(id) => d.id == *id,
                                DeviceRef::Name(n) => d.name == *n,
                            })
                            .map(|(_, why)| format!("is skipped: {why}"))
                            .unwrap_or_else(|| "is not among the selected devices".into());
                        return Err(Error::invalid(field, why));
                    };
                    if wave_of.insert(d.id, i as i64 + 1).is_some() {
                        return Err(Error::invalid(field, format!("{} is in two waves", d.name)));
                    }
                }
            }
            let missing: Vec<&str> = eligible
                .iter()
                .filter(|d| !wave_of.contains_key(&d.id))
                .map(|d| d.name.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(Error::invalid(
                    "waves",
                    format!(
                        "selected devices in no wave: {} (add them to a wave or narrow the selection)",
                        missing.join(", ")
                    ),
                ));
            }
            eligible.iter().map(|d| wave_of[&d.id]).collect()
        } else {
            return Err(Error::invalid(
                "waves",
                "every wave needs either percent or devices, and all waves the same kind",
            ));
        };
        let wave_count = waves.iter().copied().max().unwrap_or(1);
        let mut jobs: Vec<JobInsert> = eligible
            .iter()
            .zip(&waves)
            .map(|(d, w)| JobInsert {
                device_id: d.id,
                agent_id: d.agent_id,
                wave: *w,
                state: "scheduled",
                detail: String::new(),
                from_version: d.version().map(str::to_string),
            })
            .collect();
        jobs.extend(skipped.iter().map(|(d, why)| JobInsert {
            device_id: d.id,
            agent_id: d.agent_id,
            wave: 0,
            state: "skipped",
            detail: why.clone(),
            from_version: d.version().map(str::to_string),
        }));
        let now = self.now();
        let row = CampaignRow {
            id: 0,
            name,
            release_id: release.id,
            state: "draft".into(),
            selection: serde_json::to_string(&req.selection).unwrap_or_default(),
            wave_plan: serde_json::to_string(&specs).unwrap_or_default(),
            wave_count,
            current_wave: 0,
            accepted_wave: 0,
            success_threshold: i64::from(success),
            error_threshold: i64::from(errors),
            install_timeout_secs: install,
            reboot_timeout_secs: reboot,
            window_cron: window.as_ref().map(|w| w.0.clone()),
            window_secs: window.as_ref().map(|w| w.1),
            window_tz: window.as_ref().map(|w| w.2.clone()),
            reason: None,
            created_by: Some(who.user_id),
            created_at: to_micros(now),
            started_at: None,
            finished_at: None,
            updated_at: to_micros(now),
        };
        let event = EventInsert {
            source: "user",
            user_id: Some(who.user_id),
            state: Some("draft".into()),
            detail: format!(
                "created by {}: release {} {} to {} devices in {} waves ({} skipped)",
                who.username,
                release.name,
                release.version,
                eligible.len(),
                wave_count,
                skipped.len()
            ),
            reported_at: to_micros(now),
            ..Default::default()
        };
        let id = store.insert_campaign(&row, &jobs, &event).await?;
        tracing::info!(
            campaign = id,
            devices = eligible.len(),
            waves = wave_count,
            "upgrade campaign created"
        );
        if req.start {
            return self.act(who, id, "start", &CampaignAction::default()).await;
        }
        self.view(id).await
    }

    // ------------------------------------------------------------ reading

    async fn view(&self, id: i64) -> Result<CampaignView> {
        let c = self
            .cases
            .store
            .campaign(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("campaign {id}")))?;
        self.view_of(c).await
    }

    /// The view of a campaign row: its release, jobs and tallies.
    async fn view_of(&self, c: CampaignRow) -> Result<CampaignView> {
        let store = &self.cases.store;
        let id = c.id;
        let release = store
            .release(c.release_id)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("campaign {id}: no release {}", c.release_id)))?;
        let jobs = store.campaign_jobs(id).await?;
        let mut counts = BTreeMap::new();
        let mut waves: BTreeMap<i64, WaveView> = BTreeMap::new();
        for j in &jobs {
            *counts.entry(j.state.clone()).or_insert(0) += 1;
            if j.wave == 0 {
                continue;
            }
            let w = waves.entry(j.wave).or_insert_with(|| WaveView {
                wave: j.wave,
                ..Default::default()
            });
            w.devices += 1;
            match state_of(j)? {
                JobState::Scheduled => w.scheduled += 1,
                JobState::Succeeded => w.succeeded += 1,
                JobState::Failed | JobState::RolledBack => w.failed += 1,
                JobState::Skipped => w.skipped += 1,
                _ => w.in_progress += 1,
            }
        }
        let now = self.now();
        let window = Self::window_of(&c).map(|w| WindowView {
            cron: w.pattern.clone(),
            duration: secs_text(c.window_secs.unwrap_or(0)),
            time_zone: w.tz.name().to_string(),
            open_now: w.open_until(now).is_some(),
            next_change: w.next_change(now),
        });
        Ok(CampaignView {
            id: c.id,
            name: c.name,
            release_id: c.release_id,
            release_version: release.version,
            target: release.target,
            state: c.state,
            reason: c.reason,
            current_wave: c.current_wave,
            wave_count: c.wave_count,
            success_threshold: c.success_threshold,
            error_threshold: c.error_threshold,
            install_timeout: secs_text(c.install_timeout_secs),
            reboot_timeout: secs_text(c.reboot_timeout_secs),
            window,
            created_at: from_micros(c.created_at),
            started_at: c.started_at.map(from_micros),
            finished_at: c.finished_at.map(from_micros),
            counts,
            waves: waves.into_values().collect(),
            jobs: jobs.into_iter().map(job_view).collect(),
        })
    }

    pub async fn get(&self, who: &Principal, id: i64) -> Result<CampaignView> {
        who.require(Action::ReadCampaigns)?;
        self.view(id).await
    }

    /// Campaigns, newest first (without their jobs).
    pub async fn list(&self, who: &Principal, state: Option<&str>) -> Result<Vec<CampaignView>> {
        who.require(Action::ReadCampaigns)?;
        if let Some(s) = state {
            if ![
                "draft",
                "running",
                "paused",
                "stopped",
                "aborted",
                "completed",
            ]
            .contains(&s)
            {
                return Err(Error::invalid(
                    "state",
                    format!("{s:?} is not draft, running, paused, stopped, aborted or completed"),
                ));
            }
        }
        let mut out = Vec::new();
        for c in self.cases.store.campaigns(state).await? {
            let mut v = self.view_of(c).await?;
            v.jobs.clear();
            out.push(v);
        }
        Ok(out)
    }

    /// A campaign's recorded steps (or one job's), in order.
    pub async fn events(
        &self,
        who: &Principal,
        id: i64,
        job: Option<i64>,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<EventView>> {
        who.require(Action::ReadCampaigns)?;
        if self.cases.store.campaign(id).await?.is_none() {
            return Err(Error::not_found(format!("campaign {id}")));
        }
        let limit = limit.unwrap_or(500).clamp(1, 5000);
        Ok(self
            .cases
            .store
            .upgrade_events(id, job, after.unwrap_or(0), limit)
            .await?
            .into_iter()
            .map(event_view)
            .collect())
    }

    /// Releases that apply to the caller's equipment (customers: their own
    /// organisation's; staff: every organisation, or one): newer than what
    /// each device runs, or any when the version is unknown.
    pub async fn applicable(
        &self,
        who: &Principal,
        organization: Option<i64>,
        device: Option<i64>,
    ) -> Result<Vec<ApplicableUpgrade>> {
        who.require(Action::ReadDirectory)?;
        let org = who.organization_scope().or(organization);
        let rows = self.cases.store.applicable_releases(org, device).await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                r.release_target.split_once('/').is_some_and(|(v, m)| {
                    vendor_key(v) == vendor_key(&r.vendor) && m.eq_ignore_ascii_case(&r.model)
                })
            })
            .filter_map(|r| {
                let current = r.software_version.clone().or(r.firmware_version.clone());
                let newer = current.as_deref().is_none_or(|cur| {
                    compare_versions(&r.release_version, cur) == std::cmp::Ordering::Greater
                });
                newer.then(|| ApplicableUpgrade {
                    device_id: r.device_id,
                    device: r.device_name,
                    organization_id: r.organization_id,
                    vendor: r.vendor,
                    model: r.model,
                    current_version: current,
                    release_id: r.release_id,
                    release: r.release_name,
                    version: r.release_version,
                    notes: r.notes,
                    published_at: r.published_at.map(from_micros),
                })
            })
            .collect())
    }

    /// One device's applicable releases and upgrade jobs (customers: their
    /// own devices).
    pub async fn device(&self, who: &Principal, device: i64) -> Result<DeviceUpgrades> {
        who.require(Action::ReadDirectory)?;
        let d = self
            .cases
            .store
            .device(device)
            .await?
            .filter(|d| who.sees_organization(Some(d.organization_id)))
            .ok_or_else(|| Error::not_found(format!("device {device}")))?;
        let applicable = self.applicable(who, None, Some(d.id)).await?;
        let jobs = self
            .cases
            .store
            .device_jobs(d.id)
            .await?
            .into_iter()
            .map(job_view)
            .collect();
        Ok(DeviceUpgrades {
            device_id: d.id,
            applicable,
            jobs,
        })
    }

    // ------------------------------------------------------------ actions

    /// `start`, `pause`, `resume` or `abort`.
    pub async fn act(
        &self,
        who: &Principal,
        id: i64,
        action: &str,
        req: &CampaignAction,
    ) -> Result<CampaignView> {
        who.require(Action::ManageCampaigns)?;
        let reason = crate::validate::opt_text("reason", &req.reason, 500)?;
        let store = &self.cases.store;
        let now = self.now();
        {
            let _gate = self.gate.lock().await;
            let c = store
                .campaign(id)
                .await?
                .ok_or_else(|| Error::not_found(format!("campaign {id}")))?;
            let wave = c.current_wave;
            let (to, to_wave, accepted) = match (action, c.state.as_str()) {
                ("start", "draft") => ("running", 1, 0),
                ("pause", "running") => ("paused", wave, c.accepted_wave),
                // Resuming a wave that paused below its success threshold
                // accepts it: the next wave starts once it is over.
                ("resume", "paused") => ("running", wave, wave),
                ("abort", "draft" | "running" | "paused") => ("aborted", wave, c.accepted_wave),
                ("start" | "pause" | "resume" | "abort", state) => {
                    return Err(Error::conflict(format!(
                        "campaign {id} is {state}: it cannot {action}"
                    )))
                }
                _ => {
                    return Err(Error::not_found(format!(
                        "campaign action {action:?} (start, pause, resume, abort)"
                    )))
                }
            };
            let said = match &reason {
                Some(r) => format!("{action} by {}: {r}", who.username),
                None => format!("{action} by {}", who.username),
            };
            let event = EventInsert {
                source: "user",
                user_id: Some(who.user_id),
                state: Some(to.into()),
                detail: said.clone(),
                reported_at: to_micros(now),
                ..Default::default()
            };
            let keep_reason = matches!(to, "paused" | "aborted").then_some(said.as_str());
            if !store
                .change_campaign(
                    id,
                    (&c.state, wave),
                    (to, to_wave),
                    accepted,
                    keep_reason,
                    &event,
                    now,
                )
                .await?
            {
                return Err(Error::conflict(format!(
                    "campaign {id} changed meanwhile; look again"
                )));
            }
            match to {
                "paused" => {
                    store.withdraw_offers(id, now).await?;
                }
                "aborted" => {
                    self.skip_scheduled(id, &format!("campaign aborted by {}", who.username))
                        .await?;
                }
                _ => {}
            }
            tracing::info!(campaign = id, action, "upgrade campaign action");
        }
        self.evaluate(id).await?;
        self.view(id).await
    }

    /// Every job of the campaign not started yet ends `skipped`.
    async fn skip_scheduled(&self, id: i64, why: &str) -> Result<()> {
        let store = &self.cases.store;
        let now = self.now();
        for j in store.campaign_jobs(id).await? {
            if j.state != "scheduled" {
                continue;
            }
            let change = JobChange {
                expect: "scheduled".into(),
                state: "skipped".into(),
                step: None,
                detail: why.into(),
                failure: None,
                version: None,
                deadline: None,
                reloaded_at: None,
                started_at: None,
                finished_at: Some(to_micros(now)),
            };
            let event = EventInsert {
                job_id: Some(j.id),
                source: "server",
                state: Some("skipped".into()),
                detail: why.into(),
                reported_at: to_micros(now),
                ..Default::default()
            };
            store.change_job(&j, Some(&change), &event, now).await?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ the agent's side

    /// The jobs an agent is to carry out now.
    pub async fn jobs_for(&self, agent: &AgentRow) -> Result<JobList> {
        let store = &self.cases.store;
        let mut jobs = Vec::new();
        let mut releases = HashMap::new();
        for o in store.agent_offers(agent.id).await? {
            let release = match releases.get(&o.release_id) {
                Some(r) => r,
                None => {
                    let r = store.release(o.release_id).await?.ok_or_else(|| {
                        Error::Corrupt(format!("job {}: no release {}", o.id, o.release_id))
                    })?;
                    releases.entry(o.release_id).or_insert(r)
                }
            };
            // The release's spelling of vendor and model, which the campaign
            // matched to the device's: the agent checks the signed target
            // against them and picks its plug-in by them.
            let (vendor, model) = release
                .target
                .split_once('/')
                .map(|(v, m)| (v.to_string(), m.to_string()))
                .unwrap_or((o.vendor, o.model));
            jobs.push(UpgradeJob {
                id: o.id,
                campaign_id: o.campaign_id,
                campaign: o.campaign,
                device: o.device,
                vendor,
                model,
                current_version: o.from_version,
                release: OfferedRelease {
                    id: release.id,
                    manifest: ReleaseManifest {
                        name: release.name.clone(),
                        version: release.version.clone(),
                        target: release.target.clone(),
                        sha256: release.sha256.clone(),
                        size: u64::try_from(release.size).unwrap_or(0),
                    },
                    signature: release.signature.clone(),
                    public_key: release.public_key.clone(),
                    allow_downgrade: release.allow_downgrade,
                    artifact_path: format!("/api/v1/agent/releases/{}/artifact", release.id),
                },
                install_timeout_secs: u64::try_from(o.install_timeout_secs).unwrap_or(0),
                reboot_timeout_secs: u64::try_from(o.reboot_timeout_secs).unwrap_or(0),
            });
        }
        Ok(JobList { jobs })
    }

    /// What the heartbeat's answer hints: the newest release, waiting jobs.
    pub async fn hints(&self, agent: &AgentRow) -> Result<outpost_protocol::Hints> {
        let store = &self.cases.store;
        Ok(outpost_protocol::Hints {
            release: store.newest_release_id().await?,
            jobs: u32::try_from(store.agent_offer_count(agent.id).await?).unwrap_or(u32::MAX),
        })
    }

    /// Apply an agent's job report: record it, move the job if the step
    /// follows, open a case on failure, and let the campaign go on.
    pub async fn report(&self, agent: &AgentRow, r: &JobReport) -> Result<Outcome> {
        let store = &self.cases.store;
        let now = self.now();
        let job = store
            .upgrade_job(r.job_id)
            .await?
            .filter(|j| j.agent_id == Some(agent.id))
            .ok_or_else(|| {
                Error::invalid(
                    "job_id",
                    format!("job {} is not one of this agent's", r.job_id),
                )
            })?;
        let current = state_of(&job)?;
        let detail = clip(&r.detail, 4000);
        let step = r.step.as_deref().map(|s| clip(s, 40));
        let version = r.version.as_deref().map(|s| clip(s, 100));
        let failure = r.failure.map(|f| f.as_str().to_string());
        if is_failure(r.state) && r.failure.is_none() {
            return Err(Error::invalid(
                "failure",
                "a failed job must say why (failure)",
            ));
        }
        let event = EventInsert {
            job_id: Some(job.id),
            source: "agent",
            user_id: None,
            state: Some(r.state.as_str().into()),
            step: step.clone(),
            detail: detail.clone(),
            failure: failure.clone(),
            version: version.clone(),
            idempotency_key: Some(r.idempotency_key.to_string()),
            reported_at: to_micros(r.at),
        };
        if !current.may_follow(r.state) {
            // Recorded, not applied: the job ended (a server timeout) or the
            // report is out of order.
            let seen = store.change_job(&job, None, &event, now).await?;
            return Ok(Outcome {
                status: if seen.is_none() {
                    OutcomeStatus::Duplicate
                } else {
                    OutcomeStatus::Accepted
                },
                detail: Some(format!(
                    "job {} is {current}; the {} report was recorded, not applied",
                    job.id, r.state
                )),
            });
        }
        let c = store
            .campaign(job.campaign_id)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("job {}: no campaign", job.id)))?;
        let started = job.started_at.unwrap_or(to_micros(now));
        let install_end =
            started + c.install_timeout_secs * 1_000_000 + grace(c.install_timeout_secs);
        let reboot = c.reboot_timeout_secs * 1_000_000 + grace(c.reboot_timeout_secs);
        let mut reloaded_at = None;
        let deadline = match r.state {
            JobState::Scheduled => job.deadline,
            JobState::Downloading | JobState::Downloaded | JobState::Installing => {
                Some(install_end)
            }
            JobState::Rebooting => {
                let at = job.reloaded_at.unwrap_or(to_micros(now));
                reloaded_at = Some(at);
                Some(at + reboot)
            }
            JobState::Verifying => Some(job.reloaded_at.unwrap_or(to_micros(now)) + reboot),
            _ => None,
        };
        let change = JobChange {
            expect: job.state.clone(),
            state: r.state.as_str().into(),
            step,
            detail,
            failure,
            version,
            deadline,
            reloaded_at,
            started_at: Some(started),
            finished_at: r.state.is_terminal().then_some(to_micros(now)),
        };
        let applied = store.change_job(&job, Some(&change), &event, now).await?;
        match applied {
            None => {
                return Ok(Outcome {
                    status: OutcomeStatus::Duplicate,
                    detail: None,
                })
            }
            Some(false) => {
                return Ok(Outcome {
                    status: OutcomeStatus::Accepted,
                    detail: Some(format!("job {} changed meanwhile; recorded", job.id)),
                })
            }
            Some(true) => {}
        }
        let mut said = format!("job {} {}", job.id, r.state);
        if is_failure(r.state) {
            let p2 = r.failure == Some(JobFailure::NotReturned);
            match self.open_case(&c, &job, r.state, &change, p2).await {
                Ok(number) => said.push_str(&format!("; case {number}")),
                Err(e) => {
                    tracing::error!(job = job.id, error = %e, "cannot open the case of a failed upgrade");
                }
            }
        }
        if let Err(e) = self.evaluate(c.id).await {
            tracing::warn!(campaign = c.id, error = %e, "campaign evaluation failed; the timer retries");
        }
        Ok(Outcome {
            status: OutcomeStatus::Accepted,
            detail: Some(said),
        })
    }

    /// Open (once) the case of a failed job and link it.
    async fn open_case(
        &self,
        c: &CampaignRow,
        job: &JobRow,
        state: JobState,
        change: &JobChange,
        p2: bool,
    ) -> Result<String> {
        let store = &self.cases.store;
        let now = self.now();
        let Some(agent_id) = job.agent_id else {
            return Err(Error::Corrupt(format!("job {} has no agent", job.id)));
        };
        let key = format!("upgrade/{}", job.id);
        if let Some((id, number)) = store.open_fault_case(agent_id, &key).await? {
            store.set_job_case(job.id, id).await?;
            return Ok(number);
        }
        let device = store.device(job.device_id).await?;
        let contract_id = match &device {
            Some(d) => {
                store
                    .active_contract_for_device(d.id, now.date_naive())
                    .await?
            }
            None => None,
        };
        let release = store.release(c.release_id).await?;
        let version = release.as_ref().map(|r| r.version.as_str()).unwrap_or("?");
        let priority = if p2 { Priority::P2 } else { Priority::P3 };
        let what = match (state, change.failure.as_deref()) {
            (JobState::RolledBack, _) => "rolled back".to_string(),
            (_, Some("not_returned")) => "did not come back after its reload".to_string(),
            (_, Some(f)) => format!("failed ({f})"),
            _ => "failed".to_string(),
        };
        let summary: String = format!(
            "Upgrade of {} to {version} {what} (campaign {})",
            job.device_name, c.name
        )
        .chars()
        .take(200)
        .collect();
        let steps = store
            .upgrade_events(c.id, Some(job.id), 0, 200)
            .await?
            .into_iter()
            .map(|e| {
                format!(
                    "{} {} {}{} {}",
                    from_micros(e.reported_at).format("%Y-%m-%d %H:%M:%S"),
                    e.source,
                    e.state.unwrap_or_default(),
                    e.step.map(|s| format!(" [{s}]")).unwrap_or_default(),
                    e.detail
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let details = format!(
            "Upgrade job {} of campaign {} ({}): device {} from {} to {version}.\nOutcome: {} — {}\n\nSteps:\n{steps}\n",
            job.id,
            c.id,
            c.name,
            job.device_name,
            job.from_version.as_deref().unwrap_or("an unknown version"),
            change.state,
            change.detail,
        );
        let author = "Outpost upgrades".to_string();
        let insert = CaseInsert {
            organization_id: Some(job.organization_id),
            contract_id,
            device_id: Some(job.device_id),
            caller_name: author.clone(),
            caller_company: None,
            caller_phone: None,
            caller_email: None,
            caller_contract: None,
            summary: summary.clone(),
            details: details.chars().take(20_000).collect(),
            priority: priority.level(),
            status: Status::New.as_str().into(),
            case_type: CaseType::Upgrade.as_str().into(),
            vendor: device.as_ref().map(|d| d.vendor.clone()),
            channel: Channel::Agent.as_str().into(),
            assignee_id: None,
            created_by: None,
            created_at: now,
            agent_id: Some(agent_id),
            fault_key: Some(key.clone()),
        };
        let opened = ActivityBody::Opened {
            summary,
            priority,
            channel: Channel::Agent,
            case_type: CaseType::Upgrade,
        };
        let (id, number) = match self
            .cases
            .open_system(&author, &insert, &[(Visibility::Public, opened)])
            .await
        {
            Ok(x) => x,
            // Another replica opened it first.
            Err(Error::Conflict(_)) => store
                .open_fault_case(agent_id, &key)
                .await?
                .ok_or_else(|| Error::conflict(format!("the case of job {}", job.id)))?,
            Err(e) => return Err(e),
        };
        store.set_job_case(job.id, id).await?;
        tracing::info!(case = %number, job = job.id, "failed upgrade opened a case");
        Ok(number)
    }

    // ------------------------------------------------------------ the engine

    /// The campaign's timer fired.
    pub async fn fire(&self, t: &TimerRow) -> Result<()> {
        let id: i64 = t
            .owner
            .strip_prefix(TIMER_PREFIX)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Corrupt(format!("timer owner {:?}", t.owner)))?;
        self.evaluate(id).await
    }

    /// Evaluate every campaign under way (at start-up: catch up on what
    /// passed while no replica ran).
    pub async fn evaluate_all(&self) -> Result<()> {
        for id in self.cases.store.live_campaign_ids().await? {
            self.evaluate(id).await?;
        }
        Ok(())
    }

    /// Move the campaign on as far as it goes now, then arm its timer.
    pub async fn evaluate(&self, id: i64) -> Result<()> {
        let _gate = self.gate.lock().await;
        // Each round may open a wave whose jobs all ended already.
        for _ in 0..25 {
            if !self.step(id).await? {
                break;
            }
        }
        self.arm(id).await
    }

    /// One round; true if the campaign changed (look again).
    async fn step(&self, id: i64) -> Result<bool> {
        let store = &self.cases.store;
        let now = self.now();
        let Some(c) = store.campaign(id).await? else {
            return Ok(false);
        };
        for j in store.expired_jobs(id, now).await? {
            self.time_out(&c, &j).await?;
        }
        if c.state != "running" {
            return Ok(false);
        }
        let jobs = store.campaign_jobs(id).await?;
        let planned: Vec<&JobRow> = jobs.iter().filter(|j| j.wave > 0).collect();
        let mut failed_total = 0;
        for j in &planned {
            if is_failure(state_of(j)?) {
                failed_total += 1;
            }
        }
        let threshold = |v: i64| u8::try_from(v.clamp(0, 100)).unwrap_or(100);
        if plan::over_errors(planned.len(), failed_total, threshold(c.error_threshold)) {
            let why = format!(
                "{failed_total} of {} devices failed, over the error threshold of {}%",
                planned.len(),
                c.error_threshold
            );
            let changed = self
                .move_on(&c, ("stopped", c.current_wave), Some(&why), &why)
                .await?;
            if changed {
                self.skip_scheduled(id, &format!("campaign stopped: {why}"))
                    .await?;
                tracing::warn!(campaign = id, "{why}; campaign stopped");
            }
            return Ok(changed);
        }
        let w = c.current_wave.max(1);
        let wave: Vec<&JobRow> = planned.iter().copied().filter(|j| j.wave == w).collect();
        let n = wave.len();
        let mut ok = 0;
        let mut bad = 0;
        let mut done = 0;
        for j in &wave {
            let s = state_of(j)?;
            if s == JobState::Succeeded {
                ok += 1;
            }
            if is_failure(s) {
                bad += 1;
            }
            if s.is_terminal() {
                done += 1;
            }
        }
        let success = threshold(c.success_threshold);
        let accepted = c.accepted_wave == w;
        if !accepted && plan::unreachable(n, bad, success) {
            let why = format!(
                "wave {w}: {bad} of {n} devices failed; the success threshold of {success}% needs {} to succeed",
                plan::required(n, success)
            );
            let changed = self
                .move_on(&c, ("paused", c.current_wave), Some(&why), &why)
                .await?;
            if changed {
                store.withdraw_offers(id, now).await?;
                tracing::warn!(campaign = id, "{why}; campaign paused");
            }
            return Ok(changed);
        }
        if done == n {
            if ok >= plan::required(n, success) || accepted {
                let (to, to_wave, said) = if w >= c.wave_count {
                    (
                        "completed",
                        w,
                        format!("wave {w} done ({ok} of {n} succeeded); campaign completed"),
                    )
                } else {
                    (
                        "running",
                        w + 1,
                        format!(
                            "wave {w} done ({ok} of {n} succeeded); wave {} starts",
                            w + 1
                        ),
                    )
                };
                let changed = self.move_on(&c, (to, to_wave), None, &said).await?;
                if changed {
                    tracing::info!(campaign = id, "{said}");
                }
                return Ok(changed);
            }
            return Ok(false);
        }
        let open = Self::window_of(&c).is_none_or(|win| win.open_until(now).is_some());
        if open {
            let by =
                to_micros(now) + c.install_timeout_secs * 1_000_000 + grace(c.install_timeout_secs);
            let offered = store.offer_wave(id, w, by, now).await?;
            if offered > 0 {
                tracing::info!(
                    campaign = id,
                    wave = w,
                    jobs = offered,
                    "upgrade jobs offered to agents"
                );
            }
        } else {
            store.withdraw_offers(id, now).await?;
        }
        Ok(false)
    }

    /// The engine moves a running campaign to `to` (state, wave), with why
    /// (kept as its reason when given) recorded as a server event. False:
    /// someone else changed it first.
    async fn move_on(
        &self,
        c: &CampaignRow,
        to: (&str, i64),
        reason: Option<&str>,
        said: &str,
    ) -> Result<bool> {
        let now = self.now();
        let event = EventInsert {
            source: "server",
            state: Some(to.0.into()),
            detail: said.into(),
            reported_at: to_micros(now),
            ..Default::default()
        };
        self.cases
            .store
            .change_campaign(
                c.id,
                ("running", c.current_wave),
                to,
                c.accepted_wave,
                reason,
                &event,
                now,
            )
            .await
    }

    /// A job past its deadline fails; the server says why.
    async fn time_out(&self, c: &CampaignRow, j: &JobRow) -> Result<()> {
        let store = &self.cases.store;
        let now = self.now();
        let state = state_of(j)?;
        let (detail, p2) = match state {
            JobState::Scheduled => (
                format!(
                    "the agent did not start the job within {} of its offer",
                    secs_text(c.install_timeout_secs)
                ),
                false,
            ),
            JobState::Rebooting | JobState::Verifying => (
                format!(
                    "no word of the device within {} of its reload (agent or device gone)",
                    secs_text(c.reboot_timeout_secs)
                ),
                true,
            ),
            s => (
                format!(
                    "no word from the agent within {} while {s}",
                    secs_text(c.install_timeout_secs)
                ),
                false,
            ),
        };
        let change = JobChange {
            expect: j.state.clone(),
            state: "failed".into(),
            step: j.step.clone(),
            detail: detail.clone(),
            failure: Some(JobFailure::Timeout.as_str().into()),
            version: None,
            deadline: None,
            reloaded_at: None,
            started_at: None,
            finished_at: Some(to_micros(now)),
        };
        let event = EventInsert {
            job_id: Some(j.id),
            source: "server",
            state: Some("failed".into()),
            step: j.step.clone(),
            detail,
            failure: change.failure.clone(),
            reported_at: to_micros(now),
            ..Default::default()
        };
        if store.change_job(j, Some(&change), &event, now).await? == Some(true) {
            tracing::warn!(job = j.id, campaign = c.id, "upgrade job timed out");
            if let Err(e) = self.open_case(c, j, JobState::Failed, &change, p2).await {
                tracing::error!(job = j.id, error = %e, "cannot open the case of a timed-out upgrade");
            }
        }
        Ok(())
    }

    /// Arm the campaign's timer for the next instant anything can happen
    /// without a report: a job deadline or a window change.
    async fn arm(&self, id: i64) -> Result<()> {
        let store = &self.cases.store;
        let now = self.now();
        let owner = format!("{TIMER_PREFIX}{id}");
        let Some(c) = store.campaign(id).await? else {
            return Ok(());
        };
        let deadline = store.next_job_deadline(id).await?.map(from_micros);
        let window = Self::window_of(&c)
            .filter(|_| c.state == "running")
            .and_then(|w| w.next_change(now));
        let next = match (deadline, window) {
            (Some(d), Some(w)) => Some(d.min(w)),
            (d, w) => d.or(w),
        };
        match next {
            Some(t) => {
                // Never in the past (a deadline just passed fires at once).
                store.rearm_timer(&owner, "tick", t.max(now), now).await?;
            }
            None => {
                store.cancel_timers(&owner, None).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::vendor_key;

    #[test]
    fn vendor_spellings_match() {
        assert_eq!(vendor_key("Cisco Systems, Inc."), "cisco");
        assert_eq!(vendor_key("cisco"), "cisco");
        assert_eq!(vendor_key("Juniper Networks, Inc."), "juniper");
        assert_eq!(vendor_key("Palo Alto Networks"), "paloalto");
        assert_eq!(vendor_key("PaloAlto"), "paloalto");
        assert_eq!(vendor_key("Huawei Technologies Co., Ltd."), "huawei");
        assert_ne!(vendor_key("Arista"), vendor_key("Cisco"));
    }
}
