//! Service reports (SPEC.md 9): what the service did for one customer
//! organisation in a period, for the customer.
//!
//! - Cases opened and closed, by priority; SLA compliance of the cases
//!   opened in the period (their response and resolution clocks, evaluated
//!   as the manager dashboard does: [`crate::dashboard::case_results`]) with
//!   the mean working times to respond and resolve; breaches and
//!   escalations ([`crate::dashboard::events_of`]); spares shipped.
//! - Preventive inspections performed in the period, with findings and
//!   follow-up cases, and those due by its end and not yet performed.
//! - Upgrades that ended on the organisation's devices in the period
//!   (campaign, versions, outcome, the case a failure opened).
//! - Rendered as HTML ([`html`]) and, from the same HTML, as PDF by headless
//!   Chromium ([`pdf`]); downloadable on demand and e-mailed on a
//!   per-organisation schedule ([`schedule`]).
//!
//! Staff may read any organisation's report; a customer its own (another
//! organisation answers 404).

pub mod html;
pub mod pdf;
pub mod schedule;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::auth::{Action, Principal};
use crate::cases::{Priority, SlaEventKind};
use crate::clock::{from_micros, to_micros, Clock};
use crate::dashboard::{Period, Tally};
use crate::error::{Error, Result};
use crate::sla::settings::SlaSettings;
use crate::store::Store;

/// `[reports]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsSpec {
    /// The Chromium (or Chrome) binary that prints reports to PDF. Default:
    /// the first of `chromium`, `chromium-browser`, `google-chrome` on the
    /// PATH.
    pub chromium: Option<PathBuf>,
    /// Longest a PDF may take, in seconds. Default 60.
    pub pdf_timeout_secs: Option<u64>,
}

/// The `[reports]` settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub chromium: Option<PathBuf>,
    pub pdf_timeout: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            chromium: None,
            pdf_timeout: std::time::Duration::from_secs(60),
        }
    }
}

impl ReportsSpec {
    /// Validates the section; errors name the key.
    pub fn build(&self) -> std::result::Result<Settings, String> {
        if let Some(p) = &self.chromium {
            if p.as_os_str().is_empty() {
                return Err("reports.chromium: must not be empty".into());
            }
        }
        let pdf_timeout = match self.pdf_timeout_secs {
            None => 60,
            Some(n) if (1..=600).contains(&n) => n,
            Some(n) => return Err(format!("reports.pdf_timeout_secs: {n} is outside 1..=600")),
        };
        Ok(Settings {
            chromium: self.chromium.clone(),
            pdf_timeout: std::time::Duration::from_secs(pdf_timeout),
        })
    }
}

/// Cases of one priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriorityCount {
    pub priority: Priority,
    pub count: i64,
}

/// One SLA clock over the cases opened in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClockSummary {
    pub met: i64,
    pub missed: i64,
    /// Still running within the target.
    pub pending: i64,
    /// Met out of met and missed, in percent (none before any is decided).
    pub percent: Option<f64>,
    /// Mean working time until the clock stopped, in seconds.
    pub mean_secs: Option<i64>,
}

impl From<&Tally> for ClockSummary {
    fn from(t: &Tally) -> ClockSummary {
        ClockSummary {
            met: t.met,
            missed: t.missed,
            pending: t.pending,
            percent: t.percent(),
            mean_secs: t.mean_secs(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriorityCompliance {
    pub priority: Priority,
    pub cases: i64,
    pub response: ClockSummary,
    pub resolution: ClockSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Compliance {
    /// Cases opened in the period whose clocks were evaluated.
    pub cases: i64,
    /// Cases that could not be evaluated (no policy or calendar).
    pub unevaluated: i64,
    pub response: ClockSummary,
    pub resolution: ClockSummary,
    pub by_priority: Vec<PriorityCompliance>,
}

/// A breach or escalation recorded in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlaIncident {
    pub case_number: String,
    pub at: DateTime<Utc>,
    /// response_breached, resolution_breached or escalated.
    pub event: SlaEventKind,
    /// The manager level (escalations).
    pub level: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpareShipped {
    pub case_number: String,
    pub part_number: String,
    pub description: String,
    pub quantity: i64,
    pub shipped_at: DateTime<Utc>,
    /// The shipment's state now.
    pub state: String,
}

/// A firmware or software upgrade that ended in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpgradeApplied {
    pub device: String,
    pub campaign: String,
    pub from_version: Option<String>,
    pub to_version: String,
    /// succeeded, failed or rolled_back.
    pub state: String,
    pub finished_at: DateTime<Utc>,
    /// The case a failure opened.
    pub case_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceReport {
    pub organization_id: i64,
    pub organization_name: String,
    /// First day of the period (UTC), included.
    pub from: NaiveDate,
    /// Last day of the period (UTC), included.
    pub to: NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub opened: Vec<PriorityCount>,
    pub closed: Vec<PriorityCount>,
    pub compliance: Compliance,
    /// Distinct cases with a response or resolution breach in the period.
    pub cases_breached: i64,
    pub escalations: i64,
    /// The breaches and escalations, newest first.
    pub incidents: Vec<SlaIncident>,
    pub spares: Vec<SpareShipped>,
    /// Upgrade jobs on the organisation's devices that ended in the period.
    pub upgrades: Vec<UpgradeApplied>,
    pub inspections: Inspections,
}

/// Preventive inspections: those performed in the period, and those due by
/// its end and not yet performed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Inspections {
    pub performed: Vec<InspectionDone>,
    pub outstanding: Vec<InspectionDue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InspectionDone {
    pub schedule_name: String,
    pub contract_number: String,
    pub due_on: NaiveDate,
    pub performed_at: DateTime<Utc>,
    pub engineer: String,
    /// Checklist items answered `finding`.
    pub findings: usize,
    /// Cases opened for findings.
    pub follow_up_cases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InspectionDue {
    pub schedule_name: String,
    pub contract_number: String,
    pub site_name: Option<String>,
    pub next_due: NaiveDate,
    /// Due before the report was made.
    pub overdue: bool,
}

/// The inspections section from the rows the store gave.
fn inspections(
    performed: Vec<crate::store::field::InspectionRow>,
    outstanding: Vec<crate::store::field::ScheduleRow>,
    today: NaiveDate,
) -> Result<Inspections> {
    use crate::field::inspections::{inspection_view, schedule_view, ItemResult};
    Ok(Inspections {
        performed: performed
            .into_iter()
            .map(|row| {
                let i = inspection_view(row)?;
                Ok(InspectionDone {
                    findings: i
                        .items
                        .iter()
                        .filter(|it| it.result == ItemResult::Finding)
                        .count(),
                    follow_up_cases: i
                        .items
                        .iter()
                        .filter_map(|it| it.follow_up_case.clone())
                        .collect(),
                    schedule_name: i.schedule_name,
                    contract_number: i.contract_number,
                    due_on: i.due_on,
                    performed_at: i.performed_at,
                    engineer: i.engineer.name,
                })
            })
            .collect::<Result<_>>()?,
        outstanding: outstanding
            .into_iter()
            .map(|row| {
                let s = schedule_view(row, today)?;
                Ok(InspectionDue {
                    schedule_name: s.name,
                    contract_number: s.contract_number,
                    site_name: s.site_name,
                    next_due: s.next_due,
                    overdue: s.overdue,
                })
            })
            .collect::<Result<_>>()?,
    })
}

fn by_priority(rows: &[(i64, i64)]) -> Vec<PriorityCount> {
    Priority::ALL
        .iter()
        .map(|p| PriorityCount {
            priority: *p,
            count: rows
                .iter()
                .filter(|(l, _)| *l == p.level())
                .map(|(_, n)| *n)
                .sum(),
        })
        .collect()
}

/// The period of a report request: both dates or neither (the last 30
/// days up to today); at most [`crate::dashboard::MAX_DAYS`].
pub fn period(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<Period> {
    let p = crate::dashboard::Periods::choose(from, to, today)?;
    Ok(p.compliance)
}

/// Builds service reports.
#[derive(Clone)]
pub struct Reports {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub sla: Arc<SlaSettings>,
    pub settings: Arc<Settings>,
    /// The notifier's channels (scheduled reports go out by e-mail).
    mail: Option<Arc<crate::notify::send::Senders>>,
    /// `[notify.email]` is configured.
    email_configured: bool,
}

impl Reports {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        sla: Arc<SlaSettings>,
        settings: Settings,
    ) -> Reports {
        Reports {
            store,
            clock,
            sla,
            settings: Arc::new(settings),
            mail: None,
            email_configured: false,
        }
    }

    /// Send scheduled reports over the notifier's channels.
    pub fn with_mail(
        mut self,
        notify: &crate::notify::Settings,
    ) -> std::result::Result<Reports, String> {
        self.mail = Some(Arc::new(crate::notify::send::Senders::new(notify)?));
        self.email_configured = notify.email.is_some();
        Ok(self)
    }

    /// The report of `org` for `period`, for `who`.
    pub async fn report(&self, who: &Principal, org: i64, period: Period) -> Result<ServiceReport> {
        who.require(Action::ReadServiceReport)?;
        if !who.sees_organization(Some(org)) {
            return Err(Error::not_found(format!("organization {org}")));
        }
        self.build(org, period).await
    }

    /// The report, without a caller (the scheduled e-mail).
    pub async fn build(&self, org: i64, period: Period) -> Result<ServiceReport> {
        let organization = self
            .store
            .organization(org)
            .await?
            .ok_or_else(|| Error::not_found(format!("organization {org}")))?;
        let now = self.clock.now();
        let (from, to) = (to_micros(period.start()), to_micros(period.end()));
        let period_end = period.to.format("%Y-%m-%d").to_string();
        let (
            opened,
            closed,
            shipped,
            upgrades,
            performed,
            outstanding,
            events,
            (results, _truncated, unevaluated),
        ) = tokio::try_join!(
            self.store.report_opened(org, from, to),
            self.store.report_closed(org, from, to),
            self.store.report_shipped(org, from, to),
            self.store.report_upgrades(org, from, to),
            self.store.inspections_performed(org, from, to),
            self.store.schedules(Some(&period_end), Some(org), 1000),
            crate::dashboard::events_of(&self.store, period, Some(org)),
            crate::dashboard::case_results(&self.store, self.sla.current(), period, now, Some(org)),
        )?;
        let overall = crate::dashboard::overall(&results);
        let groups = crate::dashboard::group_by(&results, |r| Some(r.priority.as_str()), "-");
        let per_priority: Vec<PriorityCompliance> = Priority::ALL
            .iter()
            .filter_map(|p| {
                groups
                    .iter()
                    .find(|g| g.name == p.as_str())
                    .map(|g| PriorityCompliance {
                        priority: *p,
                        cases: g.cases,
                        response: (&g.response).into(),
                        resolution: (&g.resolution).into(),
                    })
            })
            .collect();
        Ok(ServiceReport {
            organization_id: org,
            organization_name: organization.name,
            from: period.from,
            to: period.to,
            generated_at: now,
            opened: by_priority(&opened),
            closed: by_priority(&closed),
            compliance: Compliance {
                cases: overall.cases,
                unevaluated: unevaluated as i64,
                response: (&overall.response).into(),
                resolution: (&overall.resolution).into(),
                by_priority: per_priority,
            },
            cases_breached: events.cases_breached as i64,
            escalations: events.count(SlaEventKind::Escalated),
            incidents: events
                .items
                .iter()
                .map(|e| SlaIncident {
                    case_number: e.case_number.clone(),
                    at: e.at,
                    event: e.kind,
                    level: e.level,
                })
                .collect(),
            spares: shipped
                .into_iter()
                .map(|s| SpareShipped {
                    case_number: s.case_number,
                    part_number: s.part_number,
                    description: s.description,
                    quantity: s.quantity,
                    shipped_at: from_micros(s.shipped_at),
                    state: s.state,
                })
                .collect(),
            upgrades: upgrades
                .into_iter()
                .map(|u| UpgradeApplied {
                    device: u.device,
                    campaign: u.campaign,
                    from_version: u.from_version,
                    to_version: u.to_version,
                    state: u.state,
                    finished_at: from_micros(u.finished_at),
                    case_number: u.case_number,
                })
                .collect(),
            inspections: inspections(performed, outstanding, now.date_naive())?,
        })
    }

    /// The report as a PDF (headless Chromium printing [`html::document`]).
    pub async fn pdf(&self, report: &ServiceReport) -> Result<Vec<u8>> {
        let doc = html::document(report).into_string();
        pdf::print(&self.settings, &doc).await
    }
}
