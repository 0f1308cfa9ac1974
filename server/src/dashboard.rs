//! The manager dashboard (issue 6, item 5): what the console's `/dashboard`
//! shows, computed here so that the page and its CSV downloads agree.
//!
//! - **Open cases** by priority and age (wall-clock time since opening), as
//!   of now, counted by the database.
//! - **SLA events** in a period: breaches, escalations, reminders and
//!   reassignments as recorded in the case histories (`sla_event` entries).
//! - **Compliance** of the cases opened in a period, per contract, engineer
//!   (the current assignee), vendor and case type: each case's response and
//!   resolution clocks are evaluated now by the SLA clock
//!   ([`crate::sla::clock::clock_states`]) on its contract's policy and business
//!   calendar, so targets and the mean times to respond and resolve count
//!   working time, pauses excluded. The cases are read in two queries, and at
//!   most [`MAX_CASES`] of them are evaluated.
//!
//! Only callers who may read reports ([`Action::ReadReports`]) see any of it.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::{Action, Principal};
use crate::cases::{ActivityBody, Priority, SlaEventKind};
use crate::clock::{from_micros, to_micros};
use crate::error::{Error, Result};
use crate::sla::calendar::Calendar;
use crate::sla::clock::{clock_states, ClockState};
use crate::sla::policy::Policy;
use crate::sla::registry::Registry;
use crate::store::dashboard::DashboardCase;
use crate::store::Store;

/// Most cases whose clocks one dashboard evaluates (the oldest of the period).
pub const MAX_CASES: usize = 5_000;
/// Most SLA events one dashboard reads.
pub const MAX_EVENTS: usize = 10_000;
/// The longest period that may be chosen.
pub const MAX_DAYS: i64 = 366;
/// The default compliance period: the last this many days.
pub const COMPLIANCE_DAYS: u64 = 30;

// ------------------------------------------------------------------ periods

/// A run of whole days, UTC, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// Monday to Sunday of the ISO week of `today`.
    pub fn iso_week(today: NaiveDate) -> Period {
        let week = today.week(Weekday::Mon);
        Period {
            from: week.first_day(),
            to: week.last_day(),
        }
    }

    /// The last `n` days, `today` included.
    pub fn last_days(today: NaiveDate, n: u64) -> Period {
        Period {
            from: today
                .checked_sub_days(Days::new(n.saturating_sub(1)))
                .unwrap_or(today),
            to: today,
        }
    }

    /// The first instant in the period.
    pub fn start(self) -> DateTime<Utc> {
        self.from.and_time(NaiveTime::MIN).and_utc()
    }

    /// The first instant after the period.
    pub fn end(self) -> DateTime<Utc> {
        self.to
            .checked_add_days(Days::new(1))
            .unwrap_or(self.to)
            .and_time(NaiveTime::MIN)
            .and_utc()
    }

    pub fn days(self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// Every day of the period, in order.
    pub fn each_day(self) -> impl Iterator<Item = NaiveDate> {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }

    /// `from=..&to=..` for a link.
    pub fn query(self) -> String {
        format!("from={}&to={}", self.from, self.to)
    }
}

/// The periods a dashboard covers: one chosen for everything, or by
/// default the current ISO week for the SLA events and the last
/// [`COMPLIANCE_DAYS`] days for compliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    pub events: Period,
    pub compliance: Period,
    /// The reader chose the period (else the defaults apply).
    pub chosen: bool,
}

fn date_param(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => {
            let d = crate::validate::date(field, v)?;
            if !(1970..=9999).contains(&d.year()) {
                return Err(Error::invalid(field, "must be between 1970 and 9999"));
            }
            Ok(Some(d))
        }
    }
}

impl Periods {
    /// The periods for `?from=YYYY-MM-DD&to=YYYY-MM-DD` (both optional:
    /// without `to`, up to today; without `from`, the 30 days up to `to`).
    pub fn choose(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<Periods> {
        let period = match (date_param("from", from)?, date_param("to", to)?) {
            (None, None) => {
                return Ok(Periods {
                    events: Period::iso_week(today),
                    compliance: Period::last_days(today, COMPLIANCE_DAYS),
                    chosen: false,
                })
            }
            (Some(from), None) => Period {
                from,
                to: today.max(from),
            },
            (None, Some(to)) => Period::last_days(to, COMPLIANCE_DAYS),
            (Some(from), Some(to)) => Period { from, to },
        };
        if period.to < period.from {
            return Err(Error::invalid("to", "must not be before from"));
        }
        if period.days() > MAX_DAYS {
            return Err(Error::invalid(
                "to",
                format!("the period may be at most {MAX_DAYS} days"),
            ));
        }
        Ok(Periods {
            events: period,
            compliance: period,
            chosen: true,
        })
    }
}

// ------------------------------------------------------------- open by age

/// How long an open case has been open (wall-clock time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgeBucket {
    UnderAnHour,
    OneToFourHours,
    FourToTwentyFourHours,
    OneToThreeDays,
    OverThreeDays,
}

impl AgeBucket {
    pub const ALL: [AgeBucket; 5] = [
        AgeBucket::UnderAnHour,
        AgeBucket::OneToFourHours,
        AgeBucket::FourToTwentyFourHours,
        AgeBucket::OneToThreeDays,
        AgeBucket::OverThreeDays,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AgeBucket::UnderAnHour => "<1h",
            AgeBucket::OneToFourHours => "1-4h",
            AgeBucket::FourToTwentyFourHours => "4-24h",
            AgeBucket::OneToThreeDays => "1-3d",
            AgeBucket::OverThreeDays => ">3d",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            AgeBucket::UnderAnHour => "under an hour",
            AgeBucket::OneToFourHours => "1 to 4 hours",
            AgeBucket::FourToTwentyFourHours => "4 to 24 hours",
            AgeBucket::OneToThreeDays => "1 to 3 days",
            AgeBucket::OverThreeDays => "over 3 days",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The age at which a case moves on to the next bucket.
    fn upper(self) -> Option<Duration> {
        match self {
            AgeBucket::UnderAnHour => Some(Duration::hours(1)),
            AgeBucket::OneToFourHours => Some(Duration::hours(4)),
            AgeBucket::FourToTwentyFourHours => Some(Duration::hours(24)),
            AgeBucket::OneToThreeDays => Some(Duration::days(3)),
            AgeBucket::OverThreeDays => None,
        }
    }

    /// The bucket of a case open for `age`.
    pub fn of(age: Duration) -> AgeBucket {
        Self::ALL
            .into_iter()
            .find(|b| match b.upper() {
                Some(upper) => age < upper,
                None => true,
            })
            .unwrap_or(AgeBucket::OverThreeDays)
    }

    /// For the store: a case created after `cutoffs(now)[i]` is in bucket
    /// `i` (the same rule as [`AgeBucket::of`]), else in the last.
    pub fn cutoffs(now: DateTime<Utc>) -> Vec<i64> {
        Self::ALL
            .iter()
            .filter_map(|b| b.upper())
            .map(|u| to_micros(now - u))
            .collect()
    }
}

/// Open cases counted by priority and age.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenByAge {
    /// `[priority level - 1][bucket]`.
    counts: [[i64; 5]; 4],
}

impl OpenByAge {
    /// From the store's (priority, bucket, count) rows; out-of-range rows
    /// are ignored.
    pub fn from_rows(rows: &[(i64, i64, i64)]) -> OpenByAge {
        let mut out = OpenByAge::default();
        for &(priority, bucket, count) in rows {
            let (Ok(p), Ok(b)) = (usize::try_from(priority - 1), usize::try_from(bucket)) else {
                continue;
            };
            if let Some(cell) = out.counts.get_mut(p).and_then(|r| r.get_mut(b)) {
                *cell += count;
            }
        }
        out
    }

    pub fn get(&self, p: Priority, b: AgeBucket) -> i64 {
        self.counts[(p.level() - 1) as usize][b.index()]
    }

    pub fn priority_total(&self, p: Priority) -> i64 {
        AgeBucket::ALL.iter().map(|b| self.get(p, *b)).sum()
    }

    pub fn bucket_total(&self, b: AgeBucket) -> i64 {
        Priority::ALL.iter().map(|p| self.get(*p, b)).sum()
    }

    pub fn total(&self) -> i64 {
        Priority::ALL.iter().map(|p| self.priority_total(*p)).sum()
    }
}

// --------------------------------------------------------------- SLA events

/// One SLA event recorded on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaEvent {
    pub case_number: String,
    pub organization: Option<String>,
    pub at: DateTime<Utc>,
    pub kind: SlaEventKind,
    pub level: Option<u8>,
    pub due_at: DateTime<Utc>,
    pub late: bool,
}

impl SlaEvent {
    /// A breach or an escalation (what the dashboard lists one by one).
    pub fn is_breach_or_escalation(&self) -> bool {
        matches!(
            self.kind,
            SlaEventKind::ResponseBreached
                | SlaEventKind::ResolutionBreached
                | SlaEventKind::Escalated
        )
    }
}

pub fn kind_label(kind: SlaEventKind) -> &'static str {
    match kind {
        SlaEventKind::ResponseReminder => "Response reminder",
        SlaEventKind::ReassignPrompt => "Reassign prompt",
        SlaEventKind::Reassigned => "Reassigned",
        SlaEventKind::ResponseBreached => "Response breached",
        SlaEventKind::ResolutionBreached => "Resolution breached",
        SlaEventKind::Escalated => "Escalated",
    }
}

/// How many events of one kind (escalations: of one level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCount {
    pub kind: SlaEventKind,
    pub level: Option<u8>,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    pub period: Period,
    /// Every kind, breaches and escalations (levels 1 to 5) first, zeros
    /// included.
    pub counts: Vec<EventCount>,
    /// Distinct cases with a response or resolution breach.
    pub cases_breached: usize,
    /// The breaches and escalations, newest first.
    pub items: Vec<SlaEvent>,
    /// More than [`MAX_EVENTS`] events were recorded in the period.
    pub truncated: bool,
}

impl Events {
    pub fn count(&self, kind: SlaEventKind) -> i64 {
        self.counts
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.count)
            .sum()
    }
}

/// Counts and the list of breaches and escalations, from the events of a
/// period (in any order).
pub fn summarise_events(period: Period, events: Vec<SlaEvent>, truncated: bool) -> Events {
    use SlaEventKind::*;
    let mut counts: Vec<EventCount> = [(ResponseBreached, None), (ResolutionBreached, None)]
        .into_iter()
        .chain((1..=5).map(|l| (Escalated, Some(l))))
        .chain([
            (ResponseReminder, None),
            (ReassignPrompt, None),
            (Reassigned, None),
        ])
        .map(|(kind, level)| EventCount {
            kind,
            level,
            count: 0,
        })
        .collect();
    let mut breached = std::collections::BTreeSet::new();
    for e in &events {
        let level = if e.kind == Escalated { e.level } else { None };
        match counts
            .iter_mut()
            .find(|c| c.kind == e.kind && c.level == level)
        {
            Some(c) => c.count += 1,
            None => counts.push(EventCount {
                kind: e.kind,
                level,
                count: 1,
            }),
        }
        if matches!(e.kind, ResponseBreached | ResolutionBreached) {
            breached.insert(e.case_number.as_str());
        }
    }
    let cases_breached = breached.len();
    let mut items: Vec<SlaEvent> = events
        .into_iter()
        .filter(SlaEvent::is_breach_or_escalation)
        .collect();
    items.sort_by(|a, b| {
        b.at.cmp(&a.at)
            .then_with(|| a.case_number.cmp(&b.case_number))
    });
    Events {
        period,
        counts,
        cases_breached,
        items,
        truncated,
    }
}

// --------------------------------------------------------------- compliance

/// How a case did against one clock's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped within the target.
    Met,
    /// The target was exceeded (whether the clock has stopped or not).
    Missed,
    /// Still running (or paused) within the target.
    Pending,
    /// The policy sets no target for the case's priority.
    NoTarget,
}

impl Outcome {
    pub fn of(c: &ClockState) -> Outcome {
        if c.target.is_none() {
            Outcome::NoTarget
        } else if c.breached {
            Outcome::Missed
        } else if c.stopped_at.is_some() {
            Outcome::Met
        } else {
            Outcome::Pending
        }
    }
}

/// Outcomes of one clock over a group of cases, and the working time the
/// stopped clocks took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub met: i64,
    pub missed: i64,
    pub pending: i64,
    pub no_target: i64,
    stopped: i64,
    stopped_secs: i64,
}

impl Tally {
    pub fn add(&mut self, outcome: Outcome, stopped_secs: Option<i64>) {
        match outcome {
            Outcome::Met => self.met += 1,
            Outcome::Missed => self.missed += 1,
            Outcome::Pending => self.pending += 1,
            Outcome::NoTarget => self.no_target += 1,
        }
        if let Some(s) = stopped_secs {
            self.stopped += 1;
            self.stopped_secs += s.max(0);
        }
    }

    /// Met out of met and missed, in percent; none before any is decided.
    pub fn percent(&self) -> Option<f64> {
        let decided = self.met + self.missed;
        (decided > 0).then(|| self.met as f64 * 100.0 / decided as f64)
    }

    /// Mean working time of the stopped clocks (time to respond, to resolve).
    pub fn mean_secs(&self) -> Option<i64> {
        (self.stopped > 0).then(|| self.stopped_secs / self.stopped)
    }
}

/// One evaluated case, reduced to what the compliance tables group by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub number: String,
    pub priority: Priority,
    pub opened_at: DateTime<Utc>,
    pub contract: Option<String>,
    pub engineer: Option<String>,
    pub vendor: Option<String>,
    pub case_type: String,
    pub response: Outcome,
    pub resolution: Outcome,
    /// Working time to respond, once responded.
    pub response_secs: Option<i64>,
    /// Working time to resolve, once resolved.
    pub resolution_secs: Option<i64>,
}

impl CaseResult {
    /// From the case's clocks (see [`clock_states`]).
    pub fn new(
        case: &DashboardCase,
        priority: Priority,
        response: &ClockState,
        resolution: &ClockState,
    ) -> CaseResult {
        let stopped = |c: &ClockState| c.stopped_at.map(|_| c.elapsed_secs);
        CaseResult {
            number: case.number.clone(),
            priority,
            opened_at: from_micros(case.created_at),
            contract: case.contract_number.clone(),
            engineer: case.assignee_name.clone(),
            vendor: case.vendor.clone(),
            case_type: case.case_type.clone(),
            response: Outcome::of(response),
            resolution: Outcome::of(resolution),
            response_secs: stopped(response),
            resolution_secs: stopped(resolution),
        }
    }
}

/// Compliance of a group of cases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub cases: i64,
    pub response: Tally,
    pub resolution: Tally,
}

impl Group {
    fn add(&mut self, r: &CaseResult) {
        self.cases += 1;
        self.response.add(r.response, r.response_secs);
        self.resolution.add(r.resolution, r.resolution_secs);
    }
}

/// Groups by `key` (cases without one under `none`), by name, with `none`
/// last.
pub fn group_by<'a>(
    results: &'a [CaseResult],
    key: impl Fn(&'a CaseResult) -> Option<&'a str>,
    none: &str,
) -> Vec<Group> {
    let mut named: std::collections::BTreeMap<&str, Group> = Default::default();
    let mut other = Group {
        name: none.to_string(),
        ..Default::default()
    };
    for r in results {
        match key(r) {
            Some(k) => named
                .entry(k)
                .or_insert_with(|| Group {
                    name: k.to_string(),
                    ..Default::default()
                })
                .add(r),
            None => other.add(r),
        }
    }
    let mut out: Vec<Group> = named.into_values().collect();
    if other.cases > 0 {
        out.push(other);
    }
    out
}

/// All the cases as one group.
pub fn overall(results: &[CaseResult]) -> Group {
    let mut g = Group {
        name: "All cases".into(),
        ..Default::default()
    };
    for r in results {
        g.add(r);
    }
    g
}

/// Cases opened on each day of the period, by priority (`[P1, P2, P3, P4]`).
pub fn opened_per_day(period: Period, results: &[CaseResult]) -> Vec<(NaiveDate, [i64; 4])> {
    let mut days: Vec<(NaiveDate, [i64; 4])> = period.each_day().map(|d| (d, [0; 4])).collect();
    for r in results {
        let day = r.opened_at.date_naive();
        if let Ok(i) = days.binary_search_by(|(d, _)| d.cmp(&day)) {
            days[i].1[(r.priority.level() - 1) as usize] += 1;
        }
    }
    days
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compliance {
    pub period: Period,
    /// Cases evaluated.
    pub cases: usize,
    /// More than [`MAX_CASES`] cases were opened in the period; the oldest
    /// were evaluated.
    pub truncated: bool,
    /// Cases that could not be evaluated (no opening entry, or a contract
    /// naming a calendar that cannot be built).
    pub unevaluated: usize,
    pub overall: Group,
    pub by_contract: Vec<Group>,
    pub by_engineer: Vec<Group>,
    pub by_vendor: Vec<Group>,
    pub by_type: Vec<Group>,
    pub per_day: Vec<(NaiveDate, [i64; 4])>,
}

/// The tables from evaluated cases.
pub fn compliance_of(
    period: Period,
    results: &[CaseResult],
    truncated: bool,
    unevaluated: usize,
) -> Compliance {
    Compliance {
        period,
        cases: results.len(),
        truncated,
        unevaluated,
        overall: overall(results),
        by_contract: group_by(results, |r| r.contract.as_deref(), "(no contract)"),
        by_engineer: group_by(results, |r| r.engineer.as_deref(), "(unassigned)"),
        by_vendor: group_by(results, |r| r.vendor.as_deref(), "(no vendor)"),
        by_type: group_by(results, |r| Some(r.case_type.as_str()), "(none)"),
        per_day: opened_per_day(period, results),
    }
}

// ------------------------------------------------------------------ loading

/// Open cases by priority and age, as of `now`.
pub async fn open_cases(store: &Store, who: &Principal, now: DateTime<Utc>) -> Result<OpenByAge> {
    who.require(Action::ReadReports)?;
    let rows = store.open_cases_by_age(&AgeBucket::cutoffs(now)).await?;
    Ok(OpenByAge::from_rows(&rows))
}

/// The SLA events recorded in `period`.
pub async fn sla_events(store: &Store, who: &Principal, period: Period) -> Result<Events> {
    who.require(Action::ReadReports)?;
    events_of(store, period, None).await
}

/// The SLA events recorded in `period` on the cases of `org` (all cases
/// when `None`); the caller has checked who may see them.
pub async fn events_of(store: &Store, period: Period, org: Option<i64>) -> Result<Events> {
    let rows = store
        .sla_events(
            to_micros(period.start()),
            to_micros(period.end()),
            org,
            MAX_EVENTS as i64 + 1,
        )
        .await?;
    let truncated = rows.len() > MAX_EVENTS;
    let events = rows
        .into_iter()
        .take(MAX_EVENTS)
        .filter_map(|(case_number, organization, at, body)| {
            match serde_json::from_str(&body).ok()? {
                ActivityBody::SlaEvent {
                    event,
                    level,
                    due_at,
                    late,
                    ..
                } => Some(SlaEvent {
                    case_number,
                    organization,
                    at: from_micros(at),
                    kind: event,
                    level,
                    due_at,
                    late,
                }),
                _ => None,
            }
        })
        .collect();
    Ok(summarise_events(period, events, truncated))
}

/// Compliance of the cases opened in `period`, their clocks evaluated at
/// `now`.
pub async fn compliance(
    store: &Store,
    registry: Arc<Registry>,
    who: &Principal,
    period: Period,
    now: DateTime<Utc>,
) -> Result<Compliance> {
    who.require(Action::ReadReports)?;
    let (results, truncated, unevaluated) =
        case_results(store, registry, period, now, None).await?;
    Ok(compliance_of(period, &results, truncated, unevaluated))
}

/// The evaluated cases opened in `period` (of `org` when given), their
/// clocks evaluated at `now`; whether more than [`MAX_CASES`] were opened;
/// how many could not be evaluated. The caller has checked who may see them.
pub async fn case_results(
    store: &Store,
    registry: Arc<Registry>,
    period: Period,
    now: DateTime<Utc>,
    org: Option<i64>,
) -> Result<(Vec<CaseResult>, bool, usize)> {
    let (from, to) = (to_micros(period.start()), to_micros(period.end()));
    let mut cases = store
        .dashboard_cases(from, to, org, MAX_CASES as i64 + 1)
        .await?;
    let truncated = cases.len() > MAX_CASES;
    cases.truncate(MAX_CASES);
    let Some(last) = cases.last() else {
        return Ok((Vec::new(), false, 0));
    };
    let entries = store
        .dashboard_clock_entries(from, to, org, last.created_at, last.id)
        .await?;
    // Calendar arithmetic for thousands of cases: off the async workers.
    tokio::task::spawn_blocking(move || {
        let (results, unevaluated) = evaluate_cases(&registry, &cases, entries, now);
        (results, truncated, unevaluated)
    })
    .await
    .map_err(|e| Error::Corrupt(format!("the compliance evaluation failed: {e}")))
}

/// Each case's clocks at `now`, from its clock-relevant history entries
/// ((case id, time, body), in history order per case); also how many cases
/// could not be evaluated.
fn evaluate_cases(
    registry: &Registry,
    cases: &[DashboardCase],
    entries: Vec<(i64, i64, String)>,
    now: DateTime<Utc>,
) -> (Vec<CaseResult>, usize) {
    let mut by_case: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for (case_id, at, body) in entries {
        by_case.entry(case_id).or_default().push((at, body));
    }
    // Cases share a handful of contracts: build each policy and calendar once.
    type Key<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let mut clocks: HashMap<Key<'_>, Option<(Policy, Calendar)>> = HashMap::new();
    let mut results = Vec::with_capacity(cases.len());
    let mut unevaluated = 0;
    for case in cases {
        let history = by_case.get(&case.id).map(Vec::as_slice).unwrap_or_default();
        let (timeline, _) =
            crate::sla::engine::timeline_of(history.iter().map(|(at, body)| (*at, body.as_str())));
        let key = (
            case.sla_policy.as_deref(),
            case.calendar.as_deref(),
            case.coverage.as_deref(),
            case.timezone.as_deref(),
        );
        let pc = clocks.entry(key).or_insert_with(|| {
            registry
                .for_case(
                    case.sla_policy.as_deref(),
                    case.calendar.as_deref(),
                    case.coverage.as_deref().and_then(|c| c.parse().ok()),
                    case.timezone.as_deref().and_then(|z| z.parse().ok()),
                )
                .ok()
        });
        let (Some(timeline), Some((policy, calendar))) = (timeline, pc.as_ref()) else {
            unevaluated += 1;
            continue;
        };
        let (priority, response, resolution) = clock_states(policy, calendar, &timeline, now);
        results.push(CaseResult::new(case, priority, &response, &resolution));
    }
    (results, unevaluated)
}

/// Everything the dashboard shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub now: DateTime<Utc>,
    pub periods: Periods,
    pub open: OpenByAge,
    pub events: Events,
    pub compliance: Compliance,
}

pub async fn load(
    store: &Store,
    registry: Arc<Registry>,
    who: &Principal,
    periods: Periods,
    now: DateTime<Utc>,
) -> Result<Dashboard> {
    who.require(Action::ReadReports)?;
    let (open, events, compliance) = tokio::try_join!(
        open_cases(store, who, now),
        sla_events(store, who, periods.events),
        compliance(store, registry, who, periods.compliance, now),
    )?;
    Ok(Dashboard {
        now,
        periods,
        open,
        events,
        compliance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::clock::{Change, Timeline};
    use crate::sla::policy::ClockKind;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn default_periods_are_this_week_and_the_last_30_days() {
        // 2026-03-05 is a Thursday.
        let p = Periods::choose(None, Some(""), day("2026-03-05")).expect("periods");
        assert!(!p.chosen);
        assert_eq!(p.events.from, day("2026-03-02"));
        assert_eq!(p.events.to, day("2026-03-08"));
        assert_eq!(p.compliance.from, day("2026-02-04"));
        assert_eq!(p.compliance.to, day("2026-03-05"));
        assert_eq!(p.compliance.days(), 30);
        assert_eq!(p.events.start(), at("2026-03-02T00:00:00Z"));
        assert_eq!(p.events.end(), at("2026-03-09T00:00:00Z"));
        assert_eq!(p.events.each_day().count(), 7);
        assert_eq!(p.events.query(), "from=2026-03-02&to=2026-03-08");
        // A Monday and a Sunday are in their own week.
        assert_eq!(Period::iso_week(day("2026-03-02")).from, day("2026-03-02"));
        assert_eq!(Period::iso_week(day("2026-03-08")).from, day("2026-03-02"));
    }

    #[test]
    fn a_chosen_period_applies_to_everything_and_is_checked() {
        let today = day("2026-03-05");
        let p = Periods::choose(Some("2026-01-01"), Some("2026-01-31"), today).expect("ok");
        assert!(p.chosen);
        assert_eq!(p.events, p.compliance);
        assert_eq!(p.events.days(), 31);
        let p = Periods::choose(Some("2026-03-01"), None, today).expect("ok");
        assert_eq!((p.events.from, p.events.to), (day("2026-03-01"), today));
        let p = Periods::choose(None, Some("2026-01-31"), today).expect("ok");
        assert_eq!(p.events.from, day("2026-01-02"));
        let err = |f: Option<&str>, t: Option<&str>| {
            Periods::choose(f, t, today)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(Some("2026-02-01"), Some("2026-01-01")).starts_with("to:"));
        assert!(err(Some("2024-01-01"), Some("2026-01-01")).contains("at most 366 days"));
        assert!(err(Some("yesterday"), None).starts_with("from:"));
        assert!(err(Some("0001-01-01"), None).starts_with("from:"));
        assert!(err(None, Some("+262000-01-01")).starts_with("to:"));
    }

    #[test]
    fn ages_fall_into_buckets_as_the_store_counts_them() {
        let h = Duration::hours;
        assert_eq!(AgeBucket::of(Duration::zero()), AgeBucket::UnderAnHour);
        assert_eq!(
            AgeBucket::of(h(1) - Duration::seconds(1)),
            AgeBucket::UnderAnHour
        );
        assert_eq!(AgeBucket::of(h(1)), AgeBucket::OneToFourHours);
        assert_eq!(AgeBucket::of(h(5)), AgeBucket::FourToTwentyFourHours);
        assert_eq!(AgeBucket::of(h(24)), AgeBucket::OneToThreeDays);
        assert_eq!(AgeBucket::of(h(71)), AgeBucket::OneToThreeDays);
        assert_eq!(AgeBucket::of(h(72)), AgeBucket::OverThreeDays);
        assert_eq!(AgeBucket::of(h(-1)), AgeBucket::UnderAnHour);
        // The store's rule: bucket i when created after cutoffs[i].
        let now = at("2026-03-05T12:00:00Z");
        let cutoffs = AgeBucket::cutoffs(now);
        assert_eq!(cutoffs.len(), AgeBucket::ALL.len() - 1);
        for minutes in [0, 59, 60, 61, 239, 240, 1439, 1440, 4319, 4320, 9000] {
            let created = to_micros(now - Duration::minutes(minutes));
            let store_bucket = cutoffs
                .iter()
                .position(|c| created > *c)
                .unwrap_or(cutoffs.len());
            assert_eq!(
                AgeBucket::ALL[store_bucket],
                AgeBucket::of(Duration::minutes(minutes)),
                "{minutes} min"
            );
        }
    }

    #[test]
    fn open_counts_add_up() {
        let o = OpenByAge::from_rows(&[(1, 0, 2), (1, 4, 1), (3, 2, 5), (9, 0, 7), (2, 7, 1)]);
        assert_eq!(o.get(Priority::P1, AgeBucket::UnderAnHour), 2);
        assert_eq!(o.get(Priority::P1, AgeBucket::OverThreeDays), 1);
        assert_eq!(o.priority_total(Priority::P1), 3);
        assert_eq!(o.bucket_total(AgeBucket::FourToTwentyFourHours), 5);
        assert_eq!(o.total(), 8);
    }

    fn event(number: &str, at_: &str, kind: SlaEventKind, level: Option<u8>) -> SlaEvent {
        SlaEvent {
            case_number: number.into(),
            organization: None,
            at: at(at_),
            kind,
            level,
            due_at: at(at_),
            late: false,
        }
    }

    #[test]
    fn events_are_counted_by_kind_and_level_and_listed_newest_first() {
        use SlaEventKind::*;
        let period = Period::iso_week(day("2026-03-05"));
        let e = summarise_events(
            period,
            vec![
                event("C-1", "2026-03-02T10:00:00Z", ResponseReminder, None),
                event("C-1", "2026-03-02T10:30:00Z", ResponseBreached, None),
                event("C-1", "2026-03-02T11:00:00Z", Escalated, Some(1)),
                event("C-2", "2026-03-03T11:00:00Z", Escalated, Some(2)),
                event("C-2", "2026-03-03T12:00:00Z", ResolutionBreached, None),
                event("C-1", "2026-03-04T12:00:00Z", ResolutionBreached, None),
                event("C-3", "2026-03-04T13:00:00Z", Escalated, Some(7)),
            ],
            false,
        );
        assert_eq!(e.count(ResponseBreached), 1);
        assert_eq!(e.count(ResolutionBreached), 2);
        assert_eq!(e.count(Escalated), 3);
        assert_eq!(e.count(ResponseReminder), 1);
        assert_eq!(e.count(Reassigned), 0);
        assert_eq!(e.cases_breached, 2);
        // Fixed rows first (zeros too), an unexpected level after them.
        assert_eq!(e.counts.len(), 11);
        assert_eq!(e.counts[2].level, Some(1));
        assert_eq!(e.counts[2].count, 1);
        assert_eq!(e.counts[10].level, Some(7));
        let listed: Vec<_> = e.items.iter().map(|i| i.at).collect();
        assert_eq!(listed.len(), 6);
        assert!(listed.windows(2).all(|w| w[0] >= w[1]));
        assert!(e.items.iter().all(|i| i.kind != ResponseReminder));
    }

    fn clock(target: bool, breached: bool, stopped: bool, elapsed: i64) -> ClockState {
        ClockState {
            kind: ClockKind::Response,
            target: target.then(|| "30m".parse().expect("span")),
            elapsed_secs: elapsed,
            paused_secs: 0,
            running: !stopped,
            paused: false,
            stopped_at: stopped.then(|| at("2026-03-02T10:00:00Z")),
            due_at: None,
            breached,
        }
    }

    #[test]
    fn outcomes_and_tallies() {
        assert_eq!(Outcome::of(&clock(true, false, true, 60)), Outcome::Met);
        assert_eq!(Outcome::of(&clock(true, true, true, 9000)), Outcome::Missed);
        assert_eq!(
            Outcome::of(&clock(true, true, false, 9000)),
            Outcome::Missed
        );
        assert_eq!(
            Outcome::of(&clock(true, false, false, 60)),
            Outcome::Pending
        );
        assert_eq!(
            Outcome::of(&clock(false, false, true, 60)),
            Outcome::NoTarget
        );
        let mut t = Tally::default();
        assert_eq!(t.percent(), None);
        assert_eq!(t.mean_secs(), None);
        t.add(Outcome::Met, Some(600));
        t.add(Outcome::Met, Some(1200));
        t.add(Outcome::Missed, Some(3000));
        t.add(Outcome::Pending, None);
        t.add(Outcome::NoTarget, Some(0));
        assert_eq!((t.met, t.missed, t.pending, t.no_target), (2, 1, 1, 1));
        assert_eq!(t.percent().map(|p| (p * 10.0).round()), Some(667.0));
        assert_eq!(t.mean_secs(), Some(1200));
    }

    fn result(contract: Option<&str>, engineer: Option<&str>, response: Outcome) -> CaseResult {
        CaseResult {
            number: "C-1".into(),
            priority: Priority::P2,
            opened_at: at("2026-03-03T09:30:00Z"),
            contract: contract.map(Into::into),
            engineer: engineer.map(Into::into),
            vendor: Some("Cisco".into()),
            case_type: "hardware_fault".into(),
            response,
            resolution: Outcome::Pending,
            response_secs: (response != Outcome::Pending).then_some(900),
            resolution_secs: None,
        }
    }

    #[test]
    fn groups_are_sorted_with_the_unnamed_last() {
        let rs = vec![
            result(Some("NW-2"), Some("Erik"), Outcome::Met),
            result(None, Some("Erik"), Outcome::Missed),
            result(Some("NW-1"), None, Outcome::Met),
            result(Some("NW-2"), Some("Emma"), Outcome::Missed),
        ];
        let c = compliance_of(Period::iso_week(day("2026-03-05")), &rs, false, 0);
        let names: Vec<_> = c.by_contract.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["NW-1", "NW-2", "(no contract)"]);
        assert_eq!(c.by_contract[1].cases, 2);
        assert_eq!(c.by_contract[1].response.percent(), Some(50.0));
        let names: Vec<_> = c.by_engineer.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["Emma", "Erik", "(unassigned)"]);
        assert_eq!(c.by_vendor.len(), 1);
        assert_eq!(c.by_type[0].name, "hardware_fault");
        assert_eq!(c.overall.cases, 4);
        assert_eq!(c.overall.response.percent(), Some(50.0));
        assert_eq!(c.overall.response.mean_secs(), Some(900));
        assert_eq!(c.per_day.len(), 7);
        assert_eq!(c.per_day[1], (day("2026-03-03"), [0, 4, 0, 0]));
        assert_eq!(c.per_day[0].1, [0; 4]);
    }

    #[test]
    fn a_case_result_reads_its_clocks() {
        let policy = Policy::default();
        let cal = Calendar::preset("24x7", chrono_tz::UTC).expect("preset");
        let open = at("2026-03-02T08:00:00Z");
        let t = Timeline {
            opened_at: open,
            priority: Priority::P2,
            changes: vec![(
                open + Duration::minutes(20),
                Change::Status(crate::cases::Status::Responded),
            )],
        };
        let (priority, response, resolution) =
            clock_states(&policy, &cal, &t, open + Duration::hours(2));
        let case = DashboardCase {
            id: 1,
            number: "C-2026-000001".into(),
            priority: 2,
            case_type: "network_fault".into(),
            vendor: None,
            created_at: to_micros(open),
            assignee_name: Some("Erik".into()),
            contract_number: Some("NW-1".into()),
            sla_policy: None,
            calendar: None,
            coverage: Some("24x7".into()),
            timezone: None,
        };
        let r = CaseResult::new(&case, priority, &response, &resolution);
        // SPEC.md 4: P2 must be answered within 30 minutes; 20 is in time.
        assert_eq!(r.response, Outcome::Met);
        assert_eq!(r.response_secs, Some(20 * 60));
        assert_eq!(r.resolution_secs, None);
        assert_eq!(r.priority, Priority::P2);
    }
}
