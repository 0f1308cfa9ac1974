//! The SLA engine: keeps every open case's deadlines as durable timers and
//! records each deadline on the case when it comes due.
//!
//! - After any change to a case, its id arrives on a channel. The engine, off
//!   the request path, works out the case's policy and calendar (see
//!   [`Registry`]), rebuilds its timeline from the history, evaluates the
//!   clocks, and syncs the case's timers. Deadlines ahead are scheduled or
//!   moved; ones that no longer apply (the engineer responded, the case was
//!   resolved) are cancelled.
//! - When a timer fires, the engine re-evaluates the case. If the deadline
//!   still applies, it appends an internal `sla_event` entry to the history.
//!   The entry carries the timer id, so a retried firing records nothing twice.
//! - Every sync records the history seq it saw on the case (`sla_seq`). A
//!   case whose history moved past it (the server stopped before syncing it;
//!   a contract or device it depends on was edited) is *stale*; the engine
//!   finds stale cases by an index lookup at start-up and, when idle, every
//!   [`STALE_SWEEP`], and syncs them.
//! - At start-up the engine compares the [`fingerprint`] of the SLA settings
//!   and of its own timer schema with the one of the last completed full
//!   resync (table `meta`). Only when it differs (first start, configuration
//!   or version changed) are all open cases resynced, in the background, in
//!   batches, resuming where a stopped run left off; the server serves and
//!   fires meanwhile. Timers already in the table fire regardless; those that
//!   came due while the server was down fire at once, marked late.
//!
//! Syncs run one at a time in one task (changes first, then background
//! batches), so two syncs of a case never interleave within a process.
//!
//! Notifications (e-mail, SMS) build on these entries; they are not here yet.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

use super::calendar::Calendar;
use super::clock::{evaluate, Change, Deadline, Timeline};
use super::policy::{ClockKind, Policy, ReassignMode};
use super::registry::Registry;
use super::settings::SlaSettings;
use super::timers::{Handler, Settings, TimerService};
use crate::cases::{ActivityBody, Cases, SlaEventKind, Visibility};
use crate::error::{Error, Result};
use crate::store::timers::TimerRow;

/// The author name on entries the engine writes.
pub const AUTHOR: &str = "Outpost SLA";

/// The meaning of the engine's timers (their kinds and what a sync
/// schedules). Bump it when that changes: the next start then resyncs every
/// open case once.
pub const TIMER_SCHEMA: u32 = 1;

/// Where the engine keeps the fingerprint of its last full resync, and the
/// progress of one under way.
pub const RESYNC_KEY: &str = "sla.resync";

/// Cases per background batch; the change feed is served between batches.
const BATCH: i64 = 200;

/// How often the idle engine looks for stale cases.
pub const STALE_SWEEP: Duration = Duration::from_secs(60);

/// Stale cases younger than this are left to the change feed.
const STALE_GRACE: chrono::Duration = chrono::Duration::seconds(10);

#[derive(Clone)]
pub struct Engine {
    cases: Cases,
    registry: Arc<SlaSettings>,
    timers: TimerService,
    /// The engine's own change feed, to resync a case after writing to it.
    feed: mpsc::UnboundedSender<i64>,
}

fn owner(case_id: i64) -> String {
    format!("case:{case_id}")
}

fn timer_kind(d: &Deadline) -> (String, DateTime<Utc>) {
    match d {
        Deadline::Reminder { index, due_at } => (format!("reminder:{index}"), *due_at),
        Deadline::Reassign { due_at } => ("reassign".into(), *due_at),
        Deadline::ResponseDue { due_at } => ("response_due".into(), *due_at),
        Deadline::ResolutionDue { due_at } => ("resolution_due".into(), *due_at),
        Deadline::Escalation { level, due_at } => (format!("escalation:{level}"), *due_at),
    }
}

/// The timers a case's clocks want at `now`: (kind, due), passed ones included.
pub fn wanted_timers(
    policy: &Policy,
    calendar: &Calendar,
    timeline: &Timeline,
    now: DateTime<Utc>,
) -> Vec<(String, DateTime<Utc>)> {
    evaluate(policy, calendar, timeline, now)
        .upcoming
        .iter()
        .map(timer_kind)
        .collect()
}

/// What every open case's timers were computed from: the timer schema, the
/// server version (its calendar and tz code) and the effective SLA settings.
pub fn fingerprint(registry: &Registry) -> Result<String> {
    let settings = registry
        .fingerprint()
        .map_err(|e| Error::invalid("sla", e))?;
    Ok(format!(
        "timers v{TIMER_SCHEMA}; outpost {}; sla {settings}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Where a full resync must start, given the stored `sla.resync` value:
/// `None` when the last completed one had this fingerprint.
fn resync_from(stored: Option<&str>, fingerprint: &str) -> Option<i64> {
    match stored
        .and_then(|v| v.strip_prefix(fingerprint))
        .and_then(|v| v.strip_prefix('\t'))
    {
        Some("done") => None,
        Some(rest) => Some(
            rest.strip_prefix("after ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        ),
        None => Some(0),
    }
}

/// Background work of the scheduler task.
struct Background {
    fingerprint: String,
    /// A full resync under way: the last case id done.
    full_after: Option<i64>,
    full_started: Instant,
    /// A sweep for stale cases under way: the last case id done, and the
    /// update time below which a stale case is the sweep's business.
    stale_after: Option<i64>,
    stale_before: DateTime<Utc>,
    next_sweep: Instant,
    /// After a database error, background work rests until then.
    rest_until: Instant,
}

impl Engine {
    /// Start the engine: decides whether a full resync is due (see the module
    /// doc), spawns the scheduler and the timer runner (both stop with
    /// `stop`), and returns the sender that `Cases` reports changes on.
    pub async fn start(
        cases: Cases,
        registry: Arc<SlaSettings>,
        settings: Settings,
        stop: watch::Receiver<bool>,
        others: Option<Handler>,
    ) -> Result<mpsc::UnboundedSender<i64>> {
        let fingerprint = fingerprint(&registry.current())?;
        let stored = cases.store.meta(RESYNC_KEY).await?;
        let full_after = resync_from(stored.as_deref(), &fingerprint);
        match full_after {
            None => tracing::info!(
                "SLA settings unchanged since the last full resync; syncing stale cases only"
            ),
            Some(0) => tracing::info!(
                "SLA settings new or changed: resyncing every open case in the background"
            ),
            Some(after) => tracing::info!(after, "resuming the background resync of open cases"),
        }
        let (tx, rx) = mpsc::unbounded_channel::<i64>();
        let now = cases.clock.now();
        let engine = Engine {
            timers: TimerService::new(cases.store.clone(), cases.clock.clone(), settings),
            cases,
            registry,
            feed: tx.clone(),
        };
        let runner = engine.clone();
        // One timer table, one runner: case deadlines are the engine's, other
        // owners (e.g. `agent:<id>`) go to `others`.
        let handler: Handler = Arc::new(move |t| {
            let e = runner.clone();
            match (&others, t.owner.starts_with("case:")) {
                (Some(h), false) => h(t),
                _ => Box::pin(async move { e.fire(t).await.map_err(|err| err.to_string()) }),
            }
        });
        tokio::spawn(engine.timers.clone().run(handler, stop.clone()));
        let background = Background {
            fingerprint,
            full_after,
            full_started: Instant::now(),
            // At start-up every stale case is the sweep's, however recent.
            stale_after: Some(0),
            stale_before: now + chrono::Duration::days(1),
            next_sweep: Instant::now() + STALE_SWEEP,
            rest_until: Instant::now(),
        };
        tokio::spawn(engine.schedule(rx, stop, background));
        Ok(tx)
    }

    /// The scheduler task: changes reported on the feed first (a burst is
    /// coalesced into one sync per case), background batches when there are
    /// none.
    async fn schedule(
        self,
        mut rx: mpsc::UnboundedReceiver<i64>,
        mut stop: watch::Receiver<bool>,
        mut bg: Background,
    ) {
        let mut settings = self.registry.subscribe();
        // Set when the wait below saw the settings change (which marks the
        // change seen, so `has_changed` would miss it).
        let mut settings_changed = false;
        loop {
            if *stop.borrow() {
                break;
            }
            if std::mem::take(&mut settings_changed) || settings.has_changed().unwrap_or(false) {
                settings.borrow_and_update();
                match fingerprint(&self.registry.current()) {
                    Ok(f) if f != bg.fingerprint => {
                        tracing::info!(
                            "SLA settings changed: resyncing every open case in the background"
                        );
                        bg.fingerprint = f;
                        bg.full_after = Some(0);
                        bg.full_started = Instant::now();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot fingerprint the SLA settings"),
                }
            }
            let mut ids = std::collections::BTreeSet::new();
            while let Ok(id) = rx.try_recv() {
                ids.insert(id);
            }
            if ids.is_empty() {
                match self.background_step(&mut bg).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "SLA background resync failed; retrying shortly");
                        bg.rest_until = Instant::now() + Duration::from_secs(5);
                    }
                }
                // Work under way waits only for a rest after an error.
                let busy = bg.full_after.is_some() || bg.stale_after.is_some();
                let wake = if busy {
                    bg.rest_until
                } else {
                    bg.next_sweep.max(bg.rest_until)
                };
                let idle = wake
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10));
                tokio::select! {
                    _ = settings.changed() => {
                        settings_changed = true;
                        continue;
                    }
                    id = rx.recv() => match id {
                        Some(id) => { ids.insert(id); }
                        None => break,
                    },
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(idle) => continue,
                }
                while let Ok(id) = rx.try_recv() {
                    ids.insert(id);
                }
            }
            for id in ids {
                if let Err(e) = self.sync(id).await {
                    tracing::warn!(case = id, error = %e, "cannot schedule SLA timers");
                }
            }
        }
    }

    /// One batch of background work, if any is due: `Ok(true)` if it did some.
    async fn background_step(&self, bg: &mut Background) -> Result<bool> {
        let store = &self.cases.store;
        if Instant::now() < bg.rest_until {
            return Ok(false);
        }
        if bg.stale_after.is_none() && Instant::now() >= bg.next_sweep {
            // Another replica may have changed the settings through the API.
            self.registry.reload_if_changed().await?;
            bg.stale_after = Some(0);
            bg.stale_before = self.cases.clock.now() - STALE_GRACE;
        }
        if let Some(after) = bg.stale_after {
            let ids = store
                .stale_sla_case_ids_after(after, bg.stale_before, BATCH)
                .await?;
            if let Some(last) = ids.last().copied() {
                self.sync_all(&ids).await;
                bg.stale_after = Some(last);
                return Ok(true);
            }
            bg.stale_after = None;
            bg.next_sweep = Instant::now() + STALE_SWEEP;
        }
        if let Some(after) = bg.full_after {
            let ids = store.open_case_ids_after(after, BATCH).await?;
            let now = self.cases.clock.now();
            let Some(last) = ids.last().copied() else {
                store
                    .set_meta(RESYNC_KEY, &format!("{}\tdone", bg.fingerprint), now)
                    .await?;
                bg.full_after = None;
                tracing::info!(
                    secs = bg.full_started.elapsed().as_secs_f64(),
                    "SLA resync of every open case done"
                );
                return Ok(false);
            };
            self.sync_all(&ids).await;
            store
                .set_meta(
                    RESYNC_KEY,
                    &format!("{}\tafter {last}", bg.fingerprint),
                    now,
                )
                .await?;
            bg.full_after = Some(last);
            return Ok(true);
        }
        Ok(false)
    }

    /// Sync each case; a case that fails is logged and stays stale.
    async fn sync_all(&self, ids: &[i64]) {
        for id in ids {
            if let Err(e) = self.sync(*id).await {
                tracing::warn!(case = id, error = %e, "cannot resync SLA timers");
            }
        }
    }

    async fn load(&self, case_id: i64) -> Result<Option<CaseClocks>> {
        load(&self.cases.store, &self.registry.current(), case_id).await
    }

    /// Bring one case's timers in line with its clocks, writing only what
    /// differs, and record the history seq they now reflect.
    pub async fn sync(&self, case_id: i64) -> Result<()> {
        let owner = owner(case_id);
        let store = &self.cases.store;
        let Some(CaseClocks {
            row,
            timeline,
            policy,
            calendar,
            ..
        }) = self.load(case_id).await?
        else {
            self.timers.cancel(&owner, None).await?;
            if let Some(row) = store.case_by_id(case_id).await? {
                store.mark_sla_synced(row.id, row.last_seq).await?;
            }
            return Ok(());
        };
        let now = self.cases.clock.now();
        let wanted = wanted_timers(&policy, &calendar, &timeline, now);
        let existing = store.owner_timers(&owner).await?;
        for (kind, _, fired) in &existing {
            if !fired && !wanted.iter().any(|(k, _)| k == kind) {
                // The clock stopped or the policy no longer has this deadline.
                self.timers.cancel(&owner, Some(kind)).await?;
            }
        }
        for (kind, due) in wanted {
            // A fired timer stays fired: each fires once. A pending timer
            // already due (missed while down, or about to fire) keeps its
            // due time, so lateness is judged against it.
            let keep = existing
                .iter()
                .any(|(k, d, fired)| *k == kind && (*fired || *d <= now || *d == due));
            if !keep {
                self.timers.schedule(&owner, &kind, due, "{}").await?;
            }
        }
        // The row was read before the history, so the timers reflect at
        // least this seq.
        store.mark_sla_synced(row.id, row.last_seq).await
    }

    /// A timer came due: record it on the case if it still applies.
    async fn fire(&self, t: TimerRow) -> Result<()> {
        let Some(case_id) = t
            .owner
            .strip_prefix("case:")
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return Ok(()); // not ours
        };
        let Some(CaseClocks {
            row,
            timeline,
            policy,
            calendar,
            recorded_timers,
        }) = self.load(case_id).await?
        else {
            return Ok(());
        };
        let now = self.cases.clock.now();
        let eval = evaluate(&policy, &calendar, &timeline, now);
        let (event, level, clock) = match t.kind.split_once(':') {
            Some(("reminder", _)) => (SlaEventKind::ResponseReminder, None, ClockKind::Response),
            Some(("escalation", l)) => (
                SlaEventKind::Escalated,
                l.parse::<u8>().ok(),
                ClockKind::Resolution,
            ),
            _ => match t.kind.as_str() {
                "reassign" => (SlaEventKind::ReassignPrompt, None, ClockKind::Response),
                "response_due" => (SlaEventKind::ResponseBreached, None, ClockKind::Response),
                "resolution_due" => (
                    SlaEventKind::ResolutionBreached,
                    None,
                    ClockKind::Resolution,
                ),
                _ => return Ok(()),
            },
        };
        // Stopped clocks (responded, resolved) make their deadlines moot.
        let state = match clock {
            ClockKind::Response => &eval.response,
            ClockKind::Resolution => &eval.resolution,
        };
        if state.stopped_at.is_some() {
            return Ok(());
        }
        // A diagnosed case escalates no further.
        if event == SlaEventKind::Escalated && eval.diagnosed_at.is_some() {
            return Ok(());
        }
        let due = t.due();
        let late = now - due > chrono::Duration::seconds(1);
        let body = ActivityBody::SlaEvent {
            event,
            level,
            due_at: due,
            late,
            timer_id: t.id,
        };
        // Idempotent by timer id: a retried firing finds its entry.
        if recorded_timers.contains(&t.id) {
            return Ok(());
        }
        // Automatic reassignment: to the next engineer, round-robin; if there
        // is nobody else (or the case changed meanwhile), the prompt is recorded.
        if event == SlaEventKind::ReassignPrompt && policy.reassign == ReassignMode::Automatic {
            if let Some(to) = self.cases.next_engineer(row.assignee_id).await? {
                let reassigned = ActivityBody::SlaEvent {
                    event: SlaEventKind::Reassigned,
                    level,
                    due_at: due,
                    late,
                    timer_id: t.id,
                };
                let reason = format!(
                    "no response by the reassign point; {} is to respond at once",
                    to.name
                );
                if self
                    .cases
                    .reassign_system(&row.number, AUTHOR, to, &reason, &reassigned)
                    .await?
                {
                    let _ = self.feed.send(case_id);
                    return Ok(());
                }
            }
        }
        self.cases
            .record_system(&row.number, AUTHOR, Visibility::Internal, &body)
            .await?;
        // The history moved on: sync again (usually a no-op, but it keeps the
        // case from looking stale, and a reassignment may matter to a policy).
        let _ = self.feed.send(case_id);
        Ok(())
    }
}

/// A case with the timeline, policy and calendar its clocks run on.
pub struct CaseClocks {
    pub row: crate::store::CaseRow,
    pub timeline: Timeline,
    pub policy: super::policy::Policy,
    pub calendar: super::calendar::Calendar,
    /// Timers whose events the history already holds.
    pub recorded_timers: Vec<i64>,
}

/// A case's history (entry time in microseconds, JSON body; oldest first)
/// reduced to the timeline its clocks run on (none without an opening
/// entry), and the timers whose SLA events it already records.
pub fn timeline_of<'a>(
    entries: impl IntoIterator<Item = (i64, &'a str)>,
) -> (Option<Timeline>, Vec<i64>) {
    let mut timeline: Option<Timeline> = None;
    let mut recorded_timers = Vec::new();
    for (at, body) in entries {
        let at = crate::clock::from_micros(at);
        let Ok(body) = serde_json::from_str::<ActivityBody>(body) else {
            continue;
        };
        match (body, timeline.as_mut()) {
            (ActivityBody::Opened { priority, .. }, None) => {
                timeline = Some(Timeline {
                    opened_at: at,
                    priority,
                    changes: Vec::new(),
                });
            }
            (ActivityBody::StatusChanged { to, .. }, Some(t)) => {
                t.changes.push((at, Change::Status(to)))
            }
            (ActivityBody::PriorityChanged { to, .. }, Some(t)) => {
                t.changes.push((at, Change::Priority(to)))
            }
            (ActivityBody::Diagnosed { .. }, Some(t)) => t.changes.push((at, Change::Diagnosed)),
            (ActivityBody::SlaEvent { timer_id, .. }, _) => recorded_timers.push(timer_id),
            _ => {}
        }
    }
    (timeline, recorded_timers)
}

/// Load what a case's clocks need: its history reduced to a timeline, and the
/// policy and calendar that apply (see [`Registry`]).
pub async fn load(
    store: &crate::store::Store,
    registry: &Registry,
    case_id: i64,
) -> Result<Option<CaseClocks>> {
    match store.case_by_id(case_id).await? {
        Some(row) => load_row(store, registry, row).await,
        None => Ok(None),
    }
}

/// [`load`] for a case row the caller has read already.
pub async fn load_row(
    store: &crate::store::Store,
    registry: &Registry,
    row: crate::store::cases::CaseRow,
) -> Result<Option<CaseClocks>> {
    let entries = store.entries(row.id).await?;
    let (timeline, recorded_timers) = timeline_of(entries.iter().map(|e| (e.at, e.body.as_str())));
    let Some(timeline) = timeline else {
        return Ok(None);
    };
    let contract = match row.contract_id {
        Some(id) => store.contracts(None, Some(id)).await?.pop(),
        None => None,
    };
    let mut tz = None;
    if let Some(device) = row.device_id {
        if let Some(site) = store.device(device).await?.and_then(|d| d.site_id) {
            tz = store
                .site(site)
                .await?
                .and_then(|s| s.timezone)
                .and_then(|z| z.parse().ok());
        }
    }
    let (policy, calendar) = registry
        .for_case(
            contract.as_ref().and_then(|c| c.sla_policy.as_deref()),
            contract.as_ref().and_then(|c| c.calendar.as_deref()),
            contract.as_ref().map(|c| c.coverage),
            tz,
        )
        .map_err(|e| Error::invalid("calendar", e))?;
    Ok(Some(CaseClocks {
        row,
        timeline,
        policy,
        calendar,
        recorded_timers,
    }))
}

#[cfg(test)]
mod tests {
    use super::resync_from;

    #[test]
    fn a_full_resync_runs_unless_done_for_these_settings() {
        assert_eq!(resync_from(None, "fp"), Some(0));
        assert_eq!(resync_from(Some("fp\tdone"), "fp"), None);
        assert_eq!(resync_from(Some("old\tdone"), "fp"), Some(0));
        assert_eq!(resync_from(Some("fpx\tdone"), "fp"), Some(0));
        assert_eq!(resync_from(Some("fp\tafter 42"), "fp"), Some(42));
        assert_eq!(resync_from(Some("old\tafter 42"), "fp"), Some(0));
        assert_eq!(resync_from(Some("fp\tafter x"), "fp"), Some(0));
    }
}
