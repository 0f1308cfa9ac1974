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
//! - At start-up every open case is resynced once, so timers missing from an
//!   older version, or lost, are rebuilt. Timers that came due while the
//!   server was down fire then, marked late.
//!
//! Notifications (e-mail, SMS) and automatic reassignment build on these
//! entries; they are not here yet.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

use super::clock::{evaluate, Change, Deadline, Timeline};
use super::policy::{ClockKind, ReassignMode};
use super::registry::Registry;
use super::timers::{Handler, Settings, TimerService};
use crate::cases::{ActivityBody, Cases, SlaEventKind, Visibility};
use crate::error::{Error, Result};
use crate::store::timers::TimerRow;

/// The author name on entries the engine writes.
pub const AUTHOR: &str = "Outpost SLA";

#[derive(Clone)]
pub struct Engine {
    cases: Cases,
    registry: Arc<Registry>,
    timers: TimerService,
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

impl Engine {
    /// Start the engine: returns the sender that `Cases` reports changes on,
    /// after spawning the scheduler and the timer runner (both stop with `stop`).
    pub fn start(
        cases: Cases,
        registry: Arc<Registry>,
        settings: Settings,
        stop: watch::Receiver<bool>,
        others: Option<Handler>,
    ) -> mpsc::UnboundedSender<i64> {
        let (tx, mut rx) = mpsc::unbounded_channel::<i64>();
        let engine = Engine {
            timers: TimerService::new(cases.store.clone(), cases.clock.clone(), settings),
            cases,
            registry,
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
        let scheduler = engine.clone();
        let mut stop_sched = stop;
        tokio::spawn(async move {
            if let Err(e) = scheduler.resync_open().await {
                tracing::warn!(error = %e, "cannot resync SLA timers at start-up");
            }
            loop {
                let first = tokio::select! {
                    id = rx.recv() => id,
                    _ = stop_sched.changed() => None,
                };
                let Some(first) = first else { break };
                // Coalesce a burst of changes into one sync per case.
                let mut ids = std::collections::BTreeSet::from([first]);
                while let Ok(id) = rx.try_recv() {
                    ids.insert(id);
                }
                for id in ids {
                    if let Err(e) = scheduler.sync(id).await {
                        tracing::warn!(case = id, error = %e, "cannot schedule SLA timers");
                    }
                }
            }
        });
        tx
    }

    async fn resync_open(&self) -> Result<()> {
        let mut after = 0;
        loop {
            let ids = self.cases.store.open_case_ids_after(after, 500).await?;
            let Some(last) = ids.last() else {
                return Ok(());
            };
            after = *last;
            for id in ids {
                self.sync(id).await?;
            }
        }
    }

    async fn load(&self, case_id: i64) -> Result<Option<CaseClocks>> {
        load(&self.cases.store, &self.registry, case_id).await
    }

    /// Bring one case's timers in line with its clocks.
    pub async fn sync(&self, case_id: i64) -> Result<()> {
        let owner = owner(case_id);
        let Some(CaseClocks {
            timeline,
            policy,
            calendar,
            ..
        }) = self.load(case_id).await?
        else {
            self.timers.cancel(&owner, None).await?;
            return Ok(());
        };
        let now = self.cases.clock.now();
        let eval = evaluate(&policy, &calendar, &timeline, now);
        let wanted: Vec<(String, DateTime<Utc>)> = eval.upcoming.iter().map(timer_kind).collect();
        let pending = self.cases.store.pending_timers(&owner).await?;
        for (kind, _) in &pending {
            if !wanted.iter().any(|(k, _)| k == kind) {
                // The clock stopped or the policy no longer has this deadline.
                self.timers.cancel(&owner, Some(kind)).await?;
            }
        }
        for (kind, due) in wanted {
            // A pending timer already due (missed while down, or about to
            // fire) keeps its due time, so lateness is judged against it.
            if pending.iter().any(|(k, d)| *k == kind && *d <= now) {
                continue;
            }
            // Scheduling a fired timer changes nothing: each fires once.
            self.timers.schedule(&owner, &kind, due, "{}").await?;
        }
        Ok(())
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
                    return Ok(());
                }
            }
        }
        self.cases
            .record_system(&row.number, AUTHOR, Visibility::Internal, &body)
            .await?;
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

/// Load what a case's clocks need: its history reduced to a timeline, and the
/// policy and calendar that apply (see [`Registry`]).
pub async fn load(
    store: &crate::store::Store,
    registry: &Registry,
    case_id: i64,
) -> Result<Option<CaseClocks>> {
    let Some(row) = store.case_by_id(case_id).await? else {
        return Ok(None);
    };
    let mut timeline: Option<Timeline> = None;
    let mut recorded_timers = Vec::new();
    for e in store.entries(row.id).await? {
        let at = crate::clock::from_micros(e.at);
        let Ok(body) = serde_json::from_str::<ActivityBody>(&e.body) else {
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
            (ActivityBody::SlaEvent { timer_id, .. }, _) => recorded_timers.push(timer_id),
            _ => {}
        }
    }
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
    let policy = registry
        .policy(contract.as_ref().and_then(|c| c.sla_policy.as_deref()))
        .clone();
    let calendar = registry
        .calendar(
            &[
                contract.as_ref().and_then(|c| c.calendar.as_deref()),
                policy.calendar.as_deref(),
            ],
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
