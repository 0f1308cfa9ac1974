//! SLA clocks, computed from a case's timeline: a pure function of the
//! policy, the business calendar, the case's status and priority changes, and
//! "now". Nothing here reads the wall clock or the database.
//!
//! - The **response** clock runs from opening until the case first reaches
//!   `responded` (or is resolved first), and pauses in the statuses the policy
//!   names.
//! - The **resolution** clock runs from opening until `resolved`, stops while
//!   resolved or closed, resumes on reopening, and pauses likewise.
//! - **Escalation** by time without diagnosis uses the resolution clock's
//!   elapsed working time against the policy's matrix, until the case is
//!   diagnosed (a diagnosis entry; reopening the case clears it) or resolved.
//!
//! Elapsed and paused time are kept across priority and policy changes: the
//! deadline is recomputed from the new target and the time already used, never
//! restarted.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::calendar::Calendar;
use super::policy::{ClockKind, Policy, Span};
use crate::cases::{Priority, Status};

/// What changed a case, as far as its clocks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Status(Status),
    Priority(Priority),
    /// The cause was found (a diagnosis entry): escalation stops.
    Diagnosed,
}

/// A case's history reduced to what the clocks need, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub opened_at: DateTime<Utc>,
    pub priority: Priority,
    pub changes: Vec<(DateTime<Utc>, Change)>,
}

/// One clock at the evaluation instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClockState {
    pub kind: ClockKind,
    /// The target for the current priority, if the policy sets one.
    pub target: Option<Span>,
    /// Working time counted so far (pauses excluded).
    pub elapsed_secs: i64,
    /// Working time spent paused.
    pub paused_secs: i64,
    /// Running now (neither stopped nor paused).
    pub running: bool,
    pub paused: bool,
    /// When the clock stopped for good (response given; case resolved).
    pub stopped_at: Option<DateTime<Utc>>,
    /// When the target will be reached, if the clock is running.
    pub due_at: Option<DateTime<Utc>>,
    /// The target was exceeded (now, or before the clock stopped).
    pub breached: bool,
}

/// Deadlines of the running clocks, for the timer service, each at the
/// instant the clock reaches (or reached) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Deadline {
    /// Prompt the dispatcher to remind the engineer (index into the reminders).
    Reminder {
        index: usize,
        due_at: DateTime<Utc>,
    },
    Reassign {
        due_at: DateTime<Utc>,
    },
    ResponseDue {
        due_at: DateTime<Utc>,
    },
    ResolutionDue {
        due_at: DateTime<Utc>,
    },
    Escalation {
        level: u8,
        due_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Evaluation {
    pub priority: Priority,
    pub response: ClockState,
    pub resolution: ClockState,
    /// The manager level reached so far (at the diagnosis, once diagnosed).
    pub escalation_level: Option<u8>,
    /// When the case was diagnosed (since its last reopening), if it was.
    pub diagnosed_at: Option<DateTime<Utc>>,
    /// Deadlines of running clocks, passed ones included at their true instant.
    pub upcoming: Vec<Deadline>,
}

/// Segments of a clock: (from, to, status during it); `to` is `now` for the last.
fn segments(t: &Timeline, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>, Status)> {
    let mut out = Vec::new();
    let mut status = Status::New;
    let mut from = t.opened_at;
    // Changes after `now` have not happened yet; out-of-order timestamps are
    // clamped so segments never run backwards.
    for (at, c) in t.changes.iter().filter(|(at, _)| *at <= now) {
        if let Change::Status(s) = c {
            let at = (*at).clamp(from, now.max(from));
            out.push((from, at, status));
            status = *s;
            from = at;
        }
    }
    out.push((from, now.max(from), status));
    out
}

fn current_priority(t: &Timeline, now: DateTime<Utc>) -> Priority {
    t.changes
        .iter()
        .filter(|(at, _)| *at <= now)
        .fold(t.priority, |p, (_, c)| match c {
            Change::Priority(q) => *q,
            _ => p,
        })
}

/// A stretch of time during which a clock ran: (from, to, elapsed before it).
type Run = (DateTime<Utc>, DateTime<Utc>, Duration);

fn clock(
    kind: ClockKind,
    policy: &Policy,
    cal: &Calendar,
    t: &Timeline,
    target: Option<Span>,
    now: DateTime<Utc>,
) -> (ClockState, Vec<Run>) {
    let mut runs: Vec<Run> = Vec::new();
    let mut elapsed = Duration::zero();
    let mut paused = Duration::zero();
    let mut stopped_at = None;
    let mut responded = false;
    let mut last_status = Status::New;
    for (from, to, status) in segments(t, now) {
        last_status = status;
        let stopped = match kind {
            ClockKind::Response => {
                responded |= matches!(
                    status,
                    Status::Responded | Status::Resolved | Status::Closed
                );
                responded
            }
            ClockKind::Resolution => matches!(status, Status::Resolved | Status::Closed),
        };
        if stopped {
            stopped_at.get_or_insert(from);
            if kind == ClockKind::Response {
                break;
            }
            continue;
        }
        if kind == ClockKind::Resolution {
            stopped_at = None; // reopened
        }
        let work = cal.working_between(from, to);
        if policy.pauses(kind, status) {
            paused += work;
        } else {
            runs.push((from, to, elapsed));
            elapsed += work;
        }
    }
    let is_paused = stopped_at.is_none() && policy.pauses(kind, last_status);
    let running = stopped_at.is_none() && !is_paused;
    let target_d = target.map(Span::to_chrono);
    let due_at = match (running, target_d) {
        (true, Some(d)) if d > elapsed => cal.add_working(now, d - elapsed).ok(),
        (true, Some(_)) => Some(now),
        _ => None,
    };
    let state = ClockState {
        kind,
        target,
        elapsed_secs: elapsed.num_seconds(),
        paused_secs: paused.num_seconds(),
        running,
        paused: is_paused,
        stopped_at,
        due_at,
        breached: target_d.is_some_and(|d| elapsed > d),
    };
    (state, runs)
}

/// The instant a running clock reaches `offset` of working time: ahead of
/// `now` if not yet reached, else the moment it was crossed (so a deadline
/// found late, e.g. after downtime, keeps its true due time).
fn crossing(
    cal: &Calendar,
    c: &ClockState,
    runs: &[Run],
    offset: Span,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !c.running {
        return None;
    }
    let offset = offset.to_chrono();
    let elapsed = Duration::seconds(c.elapsed_secs);
    if offset > elapsed {
        return cal.add_working(now, offset - elapsed).ok();
    }
    for (from, to, before) in runs {
        let after = *before + cal.working_between(*from, *to);
        if offset <= after {
            return cal
                .add_working(*from, offset - *before)
                .ok()
                .map(|t| t.min(*to));
        }
    }
    Some(now)
}

/// When the case was diagnosed, as of `now`: the first diagnosis after the
/// last reopening.
fn diagnosed_at(t: &Timeline, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut at = None;
    for (when, c) in t.changes.iter().filter(|(when, _)| *when <= now) {
        match c {
            Change::Diagnosed => {
                at.get_or_insert(*when);
            }
            Change::Status(Status::Reopened) => at = None,
            _ => {}
        }
    }
    at
}

/// The priority and the response and resolution clocks at `now`, with the
/// runs each clock counted.
type Clocks = (Priority, (ClockState, Vec<Run>), (ClockState, Vec<Run>));

fn clocks(policy: &Policy, cal: &Calendar, t: &Timeline, now: DateTime<Utc>) -> Clocks {
    let priority = current_priority(t, now);
    let targets = policy.targets(priority);
    let response = clock(
        ClockKind::Response,
        policy,
        cal,
        t,
        targets.map(|x| x.response),
        now,
    );
    let resolution = clock(
        ClockKind::Resolution,
        policy,
        cal,
        t,
        targets.and_then(|x| x.resolution),
        now,
    );
    (priority, response, resolution)
}

/// The priority and the response and resolution clocks at `now`, as in
/// [`evaluate`], without the deadlines ahead or the escalation level: what
/// reports over many cases need, at a fraction of the calendar arithmetic.
pub fn clock_states(
    policy: &Policy,
    cal: &Calendar,
    t: &Timeline,
    now: DateTime<Utc>,
) -> (Priority, ClockState, ClockState) {
    let (priority, (response, _), (resolution, _)) = clocks(policy, cal, t, now);
    (priority, response, resolution)
}

/// Evaluate every clock of a case at `now`.
pub fn evaluate(policy: &Policy, cal: &Calendar, t: &Timeline, now: DateTime<Utc>) -> Evaluation {
    let diagnosed = diagnosed_at(t, now);
    let (priority, (response, response_runs), (resolution, resolution_runs)) =
        clocks(policy, cal, t, now);
    let targets = policy.targets(priority);
    let mut upcoming = Vec::new();
    // Instants at which the response clock reaches `offset`, if still ahead.
    let at_response = |offset: Span| crossing(cal, &response, &response_runs, offset, now);
    let at_resolution = |offset: Span| crossing(cal, &resolution, &resolution_runs, offset, now);
    if let Some(tg) = targets {
        for (index, r) in tg.reminders.iter().enumerate() {
            if let Some(due_at) = at_response(*r) {
                upcoming.push(Deadline::Reminder { index, due_at });
            }
        }
        if let Some(due_at) = tg.reassign_at.and_then(at_response) {
            upcoming.push(Deadline::Reassign { due_at });
        }
        if let Some(due_at) = at_response(tg.response) {
            upcoming.push(Deadline::ResponseDue { due_at });
        }
        if let Some(due_at) = tg.resolution.and_then(at_resolution) {
            upcoming.push(Deadline::ResolutionDue { due_at });
        }
        for e in tg.escalation.iter().filter(|_| diagnosed.is_none()) {
            if let Some(due_at) = at_resolution(e.after) {
                upcoming.push(Deadline::Escalation {
                    level: e.level,
                    due_at,
                });
            }
        }
    }
    upcoming.sort_by_key(|d| match d {
        Deadline::Reminder { due_at, .. }
        | Deadline::Reassign { due_at }
        | Deadline::ResponseDue { due_at }
        | Deadline::ResolutionDue { due_at }
        | Deadline::Escalation { due_at, .. } => *due_at,
    });
    // Once diagnosed, the level stays where it was at the diagnosis.
    let escalation_elapsed = match diagnosed {
        Some(d) => {
            clock(ClockKind::Resolution, policy, cal, t, None, d)
                .0
                .elapsed_secs
        }
        None => resolution.elapsed_secs,
    };
    let escalation_level = policy.escalation_level(
        priority,
        Span(std::time::Duration::from_secs(
            escalation_elapsed.max(0) as u64
        )),
    );
    Evaluation {
        priority,
        response,
        resolution,
        escalation_level,
        diagnosed_at: diagnosed,
        upcoming,
    }
}

#[cfg(test)]
mod diagnosis_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn diagnosis_stops_escalation_and_reopening_resumes_it() {
        let policy = Policy::default();
        let cal = Calendar::preset("24x7", chrono_tz::UTC).unwrap();
        let open = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
        let mut t = Timeline {
            opened_at: open,
            priority: Priority::P1,
            changes: vec![],
        };
        let h = |n: i64| open + Duration::hours(n);
        // Undiagnosed P1 after 2 h: level 1 reached, level 2 ahead at 4 h.
        let e = evaluate(&policy, &cal, &t, h(2));
        assert_eq!(e.escalation_level, Some(1));
        assert!(e.upcoming.contains(&Deadline::Escalation {
            level: 2,
            due_at: h(4)
        }));
        // Diagnosed at 2 h: no escalation ahead, level frozen at 1 even at 30 h.
        t.changes.push((h(2), Change::Diagnosed));
        let e = evaluate(&policy, &cal, &t, h(30));
        assert_eq!(e.diagnosed_at, Some(h(2)));
        assert_eq!(e.escalation_level, Some(1));
        assert!(!e
            .upcoming
            .iter()
            .any(|d| matches!(d, Deadline::Escalation { .. })));
        // The resolution clock still runs (its own deadline is not escalation).
        assert!(e.resolution.running);
        // Resolved, then reopened at 40 h: undiagnosed again, escalation resumes.
        t.changes.push((h(35), Change::Status(Status::Resolved)));
        t.changes.push((h(40), Change::Status(Status::Reopened)));
        let e = evaluate(&policy, &cal, &t, h(40));
        assert_eq!(e.diagnosed_at, None);
        assert!(e
            .upcoming
            .iter()
            .any(|d| matches!(d, Deadline::Escalation { .. })));
        // The clocks alone are the same as in the full evaluation.
        for at in [h(0), h(2), h(30), h(36), h(41)] {
            let e = evaluate(&policy, &cal, &t, at);
            assert_eq!(
                clock_states(&policy, &cal, &t, at),
                (e.priority, e.response, e.resolution)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

    fn always() -> Calendar {
        Calendar::preset("24x7", chrono_tz::UTC).expect("preset")
    }

    fn st(at: DateTime<Utc>, s: Status) -> (DateTime<Utc>, Change) {
        (at, Change::Status(s))
    }

    #[test]
    fn fresh_p1_case_has_the_spec_deadlines() {
        let t0 = utc(2026, 3, 2, 10, 0);
        let t = Timeline {
            opened_at: t0,
            priority: Priority::P1,
            changes: vec![],
        };
        let e = evaluate(
            &Policy::default(),
            &always(),
            &t,
            t0 + Duration::minutes(20),
        );
        assert_eq!(e.response.elapsed_secs, 20 * 60);
        assert_eq!(e.response.due_at, Some(t0 + Duration::minutes(30)));
        assert!(e.response.running && !e.response.breached);
        let expect = [
            Deadline::Reminder {
                index: 0,
                due_at: t0 + Duration::minutes(30),
            },
            Deadline::ResponseDue {
                due_at: t0 + Duration::minutes(30),
            },
            Deadline::Reminder {
                index: 1,
                due_at: t0 + Duration::minutes(45),
            },
            Deadline::Reassign {
                due_at: t0 + Duration::minutes(45),
            },
            Deadline::Escalation {
                level: 1,
                due_at: t0 + Duration::hours(1),
            },
            Deadline::Escalation {
                level: 2,
                due_at: t0 + Duration::hours(4),
            },
        ];
        for d in expect {
            assert!(e.upcoming.contains(&d), "{d:?} in {:?}", e.upcoming);
        }
        assert!(e.upcoming.contains(&Deadline::ResolutionDue {
            due_at: t0 + Duration::hours(24)
        }));
        assert!(e.upcoming.contains(&Deadline::Escalation {
            level: 5,
            due_at: t0 + Duration::hours(72)
        }));
        assert_eq!(e.escalation_level, None);
    }

    #[test]
    fn responding_stops_the_response_clock_and_waiting_on_the_customer_pauses() {
        let t0 = utc(2026, 3, 2, 10, 0);
        let t = Timeline {
            opened_at: t0,
            priority: Priority::P2,
            changes: vec![
                st(t0 + Duration::minutes(5), Status::Assigned),
                st(t0 + Duration::minutes(20), Status::Responded),
                st(t0 + Duration::hours(1), Status::WaitingCustomer),
                st(t0 + Duration::hours(3), Status::Diagnosing),
            ],
        };
        let e = evaluate(&Policy::default(), &always(), &t, t0 + Duration::hours(4));
        assert_eq!(e.response.elapsed_secs, 20 * 60);
        assert_eq!(e.response.stopped_at, Some(t0 + Duration::minutes(20)));
        assert!(!e.response.breached && !e.response.running);
        assert_eq!(
            (e.resolution.elapsed_secs, e.resolution.paused_secs),
            (2 * 3600, 2 * 3600)
        );
        // 2h of the 48h used: due 46h from now.
        assert_eq!(
            e.resolution.due_at,
            Some(t0 + Duration::hours(4) + Duration::hours(46))
        );
        assert!(!e
            .upcoming
            .iter()
            .any(|d| matches!(d, Deadline::Reminder { .. } | Deadline::ResponseDue { .. })));
        // While waiting, the resolution clock is paused and has no deadline.
        let w = evaluate(&Policy::default(), &always(), &t, t0 + Duration::hours(2));
        assert!(w.resolution.paused && w.resolution.due_at.is_none());
        // Waiting on parts does not pause by default.
        let mut parts = t.clone();
        parts.changes[2] = st(t0 + Duration::hours(1), Status::WaitingParts);
        let p = evaluate(
            &Policy::default(),
            &always(),
            &parts,
            t0 + Duration::hours(4),
        );
        assert_eq!(p.resolution.elapsed_secs, 4 * 3600);
    }

    #[test]
    fn priority_changes_keep_elapsed_time() {
        let t0 = utc(2026, 3, 2, 10, 0);
        let raised = |after: i64| Timeline {
            opened_at: t0,
            priority: Priority::P3,
            changes: vec![(
                t0 + Duration::minutes(after),
                Change::Priority(Priority::P1),
            )],
        };
        // P3 (1h) raised to P1 (30m) after 20 minutes: due at 30m, not 20m + 30m.
        let e = evaluate(
            &Policy::default(),
            &always(),
            &raised(20),
            t0 + Duration::minutes(25),
        );
        assert_eq!(e.priority, Priority::P1);
        assert_eq!(e.response.due_at, Some(t0 + Duration::minutes(30)));
        // Raised after 40 minutes: already over the new target.
        let e = evaluate(
            &Policy::default(),
            &always(),
            &raised(40),
            t0 + Duration::minutes(41),
        );
        assert!(e.response.breached);
        assert_eq!(e.response.due_at, Some(t0 + Duration::minutes(41)));
    }

    #[test]
    fn resolution_stops_while_resolved_and_resumes_on_reopen() {
        let t0 = utc(2026, 3, 2, 10, 0);
        let t = Timeline {
            opened_at: t0,
            priority: Priority::P1,
            changes: vec![
                st(t0 + Duration::minutes(10), Status::Resolved),
                st(t0 + Duration::hours(10), Status::Reopened),
            ],
        };
        let before = evaluate(&Policy::default(), &always(), &t, t0 + Duration::hours(5));
        assert_eq!(
            before.resolution.stopped_at,
            Some(t0 + Duration::minutes(10))
        );
        assert!(!before.resolution.running && before.upcoming.is_empty());
        let after = evaluate(&Policy::default(), &always(), &t, t0 + Duration::hours(11));
        assert_eq!(after.resolution.elapsed_secs, 70 * 60);
        assert!(after.resolution.running && after.resolution.stopped_at.is_none());
        assert_eq!(
            after.escalation_level,
            Some(1),
            "70 minutes without diagnosis on P1"
        );
    }

    #[test]
    fn working_hours_calendar_counts_only_opening_hours() {
        // 5x8 in Berlin: opened Friday 16:30 local (15:30 UTC in March), P3 (1h).
        let cal = Calendar::preset("5x8", chrono_tz::Europe::Berlin).expect("preset");
        let t0 = utc(2026, 3, 6, 15, 30);
        let t = Timeline {
            opened_at: t0,
            priority: Priority::P3,
            changes: vec![],
        };
        let e = evaluate(&Policy::default(), &cal, &t, t0);
        // 30 minutes on Friday, 30 on Monday: Monday 09:30 local = 08:30 UTC.
        assert_eq!(e.response.due_at, Some(utc(2026, 3, 9, 8, 30)));
        let sat = evaluate(&Policy::default(), &cal, &t, utc(2026, 3, 7, 12, 0));
        assert_eq!(
            sat.response.elapsed_secs,
            30 * 60,
            "the weekend does not count"
        );
    }

    #[test]
    fn passed_deadlines_keep_their_true_instants() {
        // Evaluated long after: nobody responded; the resolution clock paused
        // 30 minutes while waiting on the customer (after responding late).
        let t0 = utc(2026, 3, 2, 10, 0);
        let t = Timeline {
            opened_at: t0,
            priority: Priority::P1,
            changes: vec![
                st(t0 + Duration::minutes(50), Status::Assigned),
                st(t0 + Duration::minutes(55), Status::Responded),
                st(t0 + Duration::minutes(55), Status::WaitingCustomer),
                st(t0 + Duration::minutes(85), Status::Diagnosing),
            ],
        };
        let e = evaluate(&Policy::default(), &always(), &t, t0 + Duration::hours(5));
        // The response clock stopped at 55 min: its deadlines are moot.
        assert!(!e
            .upcoming
            .iter()
            .any(|d| matches!(d, Deadline::Reminder { .. } | Deadline::ResponseDue { .. })));
        // One working hour of the resolution clock was reached at 1h30
        // (55 min before the pause, 5 min after it), not at 1h or at now.
        assert!(
            e.upcoming.contains(&Deadline::Escalation {
                level: 1,
                due_at: t0 + Duration::minutes(90)
            }),
            "{:?}",
            e.upcoming
        );
        assert!(e.upcoming.contains(&Deadline::Escalation {
            level: 2,
            due_at: t0 + Duration::minutes(270)
        }));
        let silent = Timeline {
            opened_at: t0,
            priority: Priority::P1,
            changes: vec![],
        };
        let e = evaluate(
            &Policy::default(),
            &always(),
            &silent,
            t0 + Duration::hours(2),
        );
        assert!(e.upcoming.contains(&Deadline::Reminder {
            index: 0,
            due_at: t0 + Duration::minutes(30)
        }));
        assert!(e.upcoming.contains(&Deadline::ResponseDue {
            due_at: t0 + Duration::minutes(30)
        }));
    }
}
