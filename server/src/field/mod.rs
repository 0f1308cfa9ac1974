//! Field service (SPEC.md 4 and 9, issue 8): on-site visits scheduled on a
//! case and the contract's field promises as clocks; preventive inspections
//! in [`inspections`].
//!
//! A visit goes scheduled -> checked_in -> checked_out -> signed_off, or
//! scheduled -> cancelled, through [`VisitState::transition`] only. Each
//! step writes the visit, the parts it takes from stock (conditional
//! updates with their stock-ledger rows) and a `visit` history entry on the
//! case in one transaction (`Cases::field_step`).
//!
//! The promises: when the first visit of a case is scheduled and the case's
//! contract has `onsite_within` / `repair_within`, their deadlines are
//! counted from the case's opening on the case's business calendar (the
//! same one its SLA clocks use), with a warning at three quarters of the
//! time. They are durable timers (owner `field:<case id>`: onsite_warn,
//! onsite_due, repair_warn, repair_due). The first check-in meets the
//! on-site promise; a check-out with `repaired` meets the repair promise (a
//! missed repair promise asks for backup equipment, which a check-out
//! records). Each handler re-reads the promise row under the case lock and
//! writes nothing when the promise is met, the case is resolved or closed,
//! or the event is already recorded (a flag on the row), so a retried or
//! stale firing writes nothing twice.

pub mod inspections;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::auth::{Action, Principal};
use crate::cases::model::{text_enum, PartUsed};
use crate::cases::visits::FieldDecision;
use crate::cases::{ActivityBody, Cases, Status, UserRef, Visibility};
use crate::clock::{from_micros, to_micros};
use crate::error::{Error, Result};
use crate::sla::calendar::Calendar;
use crate::sla::settings::SlaSettings;
use crate::store::cases::CaseRow;
use crate::store::field::{PromiseRow, StockUse, VisitFilter, VisitRow, VisitTarget};
use crate::store::timers::TimerRow;
use crate::validate::{ident, opt_text};

/// The author of the server's own field entries (promise warnings, misses).
pub const AUTHOR: &str = "Outpost field service";

// ------------------------------------------------------------------ states

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    Scheduled,
    CheckedIn,
    CheckedOut,
    SignedOff,
    Cancelled,
}

text_enum!(VisitState, "state", {
    Scheduled => "scheduled", CheckedIn => "checked_in", CheckedOut => "checked_out",
    SignedOff => "signed_off", Cancelled => "cancelled",
});

impl VisitState {
    /// The one transition function: every move not listed is refused.
    pub fn transition(self, to: VisitState) -> Result<VisitState> {
        use VisitState::*;
        match (self, to) {
            (Scheduled, CheckedIn)
            | (Scheduled, Cancelled)
            | (CheckedIn, CheckedOut)
            | (CheckedOut, SignedOff) => Ok(to),
            _ => Err(Error::conflict(format!(
                "a {self} visit cannot become {to}{}",
                match self {
                    Scheduled => "; check in first",
                    CheckedIn => "; check out first",
                    CheckedOut => "; only sign-off is left",
                    SignedOff | Cancelled => "; it is finished",
                }
            ))),
        }
    }
}

/// The step words of `POST /visits/{id}/{step}` and the state each leads to.
pub fn step_state(step: &str) -> Result<VisitState> {
    Ok(match step {
        "check-in" => VisitState::CheckedIn,
        "check-out" => VisitState::CheckedOut,
        "sign-off" => VisitState::SignedOff,
        "cancel" => VisitState::Cancelled,
        other => {
            return Err(Error::invalid(
                "step",
                format!(
                "unknown step {other:?}; expected one of: check-in, check-out, sign-off, cancel"
            ),
            ))
        }
    })
}

// ------------------------------------------------------------------- views

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Visit {
    pub id: i64,
    pub case_number: String,
    pub engineer: UserRef,
    pub scheduled_at: DateTime<Utc>,
    /// Where: the case device's site address unless given.
    pub address: String,
    pub notes: Option<String>,
    pub state: VisitState,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub checked_out_at: Option<DateTime<Utc>>,
    pub work_done: Option<String>,
    /// The fault was repaired on this visit.
    pub repaired: bool,
    /// Backup equipment left with the customer.
    pub backup_equipment: Option<String>,
    pub parts_used: Vec<PartUsed>,
    pub signed_off_at: Option<DateTime<Utc>>,
    /// The customer's name who signed the visit off.
    pub signoff_name: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One of a case's field promises.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Promise {
    pub due_at: DateTime<Utc>,
    /// When the warning goes out (three quarters of the promised time).
    pub warn_at: Option<DateTime<Utc>>,
    /// When it was met (first check-in; a check-out with `repaired`).
    pub met_at: Option<DateTime<Utc>>,
    pub warned: bool,
    /// The deadline passed before it was met.
    pub missed: bool,
}

/// A case's field promises: none without a scheduled visit or without
/// the promise in the case's contract.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Promises {
    pub onsite: Option<Promise>,
    pub repair: Option<Promise>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaseVisits {
    pub visits: Vec<Visit>,
    pub promises: Promises,
}

// ---------------------------------------------------------------- requests

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVisit {
    /// An active engineer or expert.
    pub engineer_id: i64,
    /// Not before the case was opened.
    pub scheduled_at: DateTime<Utc>,
    /// Default: the address of the case device's site.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// The fields of a visit step; each step takes the ones it needs and
/// refuses the others.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitStepRequest {
    /// check-in, check-out: when it happened (default now); not in the
    /// future; a check-out not before the check-in.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// check-out (required).
    #[serde(default)]
    pub work_done: Option<String>,
    /// check-out: spare parts taken from stock.
    #[serde(default)]
    pub parts_used: Vec<PartUsed>,
    /// check-out: the fault is repaired (meets the repair promise).
    #[serde(default)]
    pub repaired: Option<bool>,
    /// check-out: backup equipment left with the customer.
    #[serde(default)]
    pub backup_equipment: Option<String>,
    /// sign-off (required): the customer's name.
    #[serde(default)]
    pub name: Option<String>,
    /// cancel (required).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VisitQuery {
    pub engineer_id: Option<i64>,
    pub state: Option<VisitState>,
    /// Scheduled at or after.
    pub from: Option<DateTime<Utc>>,
    /// Scheduled before.
    pub to: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

// ----------------------------------------------------------------- service

/// The field service; cheap to clone.
#[derive(Clone)]
pub struct Field {
    pub(crate) cases: Cases,
    sla: Arc<SlaSettings>,
}

fn owner(case_id: i64) -> String {
    format!("field:{case_id}")
}

fn visit_view(r: VisitRow) -> Result<Visit> {
    let t = |v: Option<i64>| v.map(from_micros);
    Ok(Visit {
        state: crate::store::parse_enum("field_visits.state", &r.state)?,
        parts_used: serde_json::from_str(&r.parts_used).map_err(|_| {
            Error::Corrupt(format!("visit {} has parts_used {:?}", r.id, r.parts_used))
        })?,
        id: r.id,
        case_number: r.case_number,
        engineer: UserRef {
            id: r.engineer_id,
            name: r.engineer_name,
        },
        scheduled_at: from_micros(r.scheduled_at),
        address: r.address,
        notes: r.notes,
        checked_in_at: t(r.checked_in_at),
        checked_out_at: t(r.checked_out_at),
        work_done: r.work_done,
        repaired: r.repaired,
        backup_equipment: r.backup_equipment,
        signed_off_at: t(r.signed_off_at),
        signoff_name: r.signoff_name,
        cancelled_at: t(r.cancelled_at),
        cancel_reason: r.cancel_reason,
        created_at: from_micros(r.created_at),
        updated_at: from_micros(r.updated_at),
    })
}

fn promises_view(p: Option<PromiseRow>) -> Promises {
    let Some(p) = p else {
        return Promises::default();
    };
    let one = |due: Option<i64>, warn: Option<i64>, met: Option<i64>, warned, missed| {
        due.map(|d| Promise {
            due_at: from_micros(d),
            warn_at: warn.map(from_micros),
            met_at: met.map(from_micros),
            warned,
            missed,
        })
    };
    Promises {
        onsite: one(
            p.onsite_due,
            p.onsite_warn,
            p.onsite_met_at,
            p.onsite_warned,
            p.onsite_missed,
        ),
        repair: one(
            p.repair_due,
            p.repair_warn,
            p.repair_met_at,
            p.repair_warned,
            p.repair_missed,
        ),
    }
}

/// An empty `visit` entry body for `step`.
fn body(visit: Option<&VisitRow>, step: &str) -> ActivityBody {
    ActivityBody::Visit {
        visit_id: visit.map(|v| v.id),
        step: step.into(),
        engineer: visit.map(|v| UserRef {
            id: v.engineer_id,
            name: v.engineer_name.clone(),
        }),
        scheduled_at: None,
        address: None,
        at: None,
        work_done: None,
        parts_used: Vec::new(),
        repaired: None,
        backup_equipment: None,
        signoff: None,
        reason: None,
        due_at: None,
        timer_id: None,
    }
}

/// A field the step does not take.
fn refuse<T>(field: &str, value: &Option<T>, step: VisitState) -> Result<()> {
    if value.is_some() {
        return Err(Error::invalid(
            field,
            format!("is not taken when the visit becomes {step}"),
        ));
    }
    Ok(())
}

fn case_open(case: &CaseRow) -> Result<bool> {
    let status: Status = crate::store::parse_enum("cases.status", &case.status)?;
    Ok(status.is_open())
}

impl Field {
    pub fn new(cases: Cases, sla: Arc<SlaSettings>) -> Field {
        Field { cases, sla }
    }

    fn store(&self) -> &crate::store::Store {
        &self.cases.store
    }

    /// The case's business calendar (as its SLA clocks use) and its
    /// contract's promises, as working-time durations.
    async fn promise_terms(
        &self,
        case: &CaseRow,
    ) -> Result<(Calendar, Option<Duration>, Option<Duration>)> {
        let contract = match case.contract_id {
            Some(id) => self.store().contracts(None, Some(id)).await?.pop(),
            None => None,
        };
        let mut tz = None;
        if let Some(device) = case.device_id {
            if let Some(site) = self.store().device(device).await?.and_then(|d| d.site_id) {
                tz = self
                    .store()
                    .site(site)
                    .await?
                    .and_then(|s| s.timezone)
                    .and_then(|z| z.parse().ok());
            }
        }
        let reg = self.sla.current();
        let (_, calendar) = reg
            .for_case(
                contract.as_ref().and_then(|c| c.sla_policy.as_deref()),
                contract.as_ref().and_then(|c| c.calendar.as_deref()),
                contract.as_ref().map(|c| c.coverage),
                tz,
            )
            .map_err(|e| Error::invalid("calendar", e))?;
        let onsite = contract
            .as_ref()
            .and_then(|c| c.onsite_within)
            .map(|s| s.to_chrono());
        let repair = contract
            .as_ref()
            .and_then(|c| c.repair_within)
            .map(|s| s.to_chrono());
        Ok((calendar, onsite, repair))
    }

    /// The promise row a case gets with its first visit (none when its
    /// contract promises nothing).
    async fn new_promise(&self, case: &CaseRow, now: DateTime<Utc>) -> Result<Option<PromiseRow>> {
        let (cal, onsite, repair) = self.promise_terms(case).await?;
        if onsite.is_none() && repair.is_none() {
            return Ok(None);
        }
        let opened = from_micros(case.created_at);
        let at = |d: Option<Duration>, num: i32, den: i32| -> Result<Option<i64>> {
            match d {
                Some(d) => {
                    let part = d * num / den;
                    let t = cal
                        .add_working(opened, part)
                        .map_err(|e| Error::invalid("calendar", e.to_string()))?;
                    Ok(Some(to_micros(t)))
                }
                None => Ok(None),
            }
        };
        Ok(Some(PromiseRow {
            case_id: case.id,
            onsite_due: at(onsite, 1, 1)?,
            onsite_warn: at(onsite, 3, 4)?,
            repair_due: at(repair, 1, 1)?,
            repair_warn: at(repair, 3, 4)?,
            updated_at: to_micros(now),
            ..PromiseRow::default()
        }))
    }

    async fn arm(&self, p: &PromiseRow) -> Result<()> {
        let now = self.cases.clock.now();
        let owner = owner(p.case_id);
        for (kind, due, done) in [
            ("onsite_warn", p.onsite_warn, p.onsite_met_at.is_some()),
            ("onsite_due", p.onsite_due, p.onsite_met_at.is_some()),
            ("repair_warn", p.repair_warn, p.repair_met_at.is_some()),
            ("repair_due", p.repair_due, p.repair_met_at.is_some()),
        ] {
            if let (Some(d), false) = (due, done) {
                self.store()
                    .schedule_timer(&owner, kind, from_micros(d), "{}", now)
                    .await?;
            }
        }
        Ok(())
    }

    /// The case's visits and promises (whoever may read the case).
    pub async fn case_visits(&self, who: &Principal, number: &str) -> Result<CaseVisits> {
        let case = self.cases.get(who, number).await?;
        let rows = self
            .store()
            .visits(&VisitFilter {
                case_id: Some(case.id),
                limit: 1000,
                ..VisitFilter::default()
            })
            .await?;
        Ok(CaseVisits {
            visits: rows.into_iter().map(visit_view).collect::<Result<_>>()?,
            promises: promises_view(self.store().field_promise(case.id).await?),
        })
    }

    /// Visits across cases, by scheduled time (staff): an engineer's agenda.
    pub async fn visits(&self, who: &Principal, q: &VisitQuery) -> Result<Vec<Visit>> {
        who.require(Action::ReadInternal)?;
        if let (Some(f), Some(t)) = (q.from, q.to) {
            if t < f {
                return Err(Error::invalid("to", "is before from"));
            }
        }
        let rows = self
            .store()
            .visits(&VisitFilter {
                engineer_id: q.engineer_id,
                state: q.state.map(|s| s.as_str().to_string()),
                from: q.from.map(to_micros),
                to: q.to.map(to_micros),
                organization_id: who.organization_scope(),
                limit: q.limit.unwrap_or(100).clamp(1, 1000),
                ..VisitFilter::default()
            })
            .await?;
        rows.into_iter().map(visit_view).collect()
    }

    /// Schedule a visit on a case (dispatchers, engineers, experts, admins).
    pub async fn schedule_visit(
        &self,
        who: &Principal,
        number: &str,
        req: &NewVisit,
    ) -> Result<Visit> {
        who.require(Action::RecordFieldVisit)?;
        let engineer = self
            .cases
            .field_engineer(req.engineer_id, "engineer_id")
            .await?;
        let notes = opt_text("notes", &req.notes, 4000)?;
        let given = opt_text("address", &req.address, 500)?;
        let case = self.cases.get(who, number).await?;
        if !case_open(&case)? {
            return Err(Error::conflict(format!(
                "case {number} is {}; reopen it to schedule a visit",
                case.status
            )));
        }
        let opened = from_micros(case.created_at);
        if req.scheduled_at < opened {
            return Err(Error::invalid(
                "scheduled_at",
                format!(
                    "{} is before case {number} was opened ({})",
                    req.scheduled_at.to_rfc3339(),
                    opened.to_rfc3339()
                ),
            ));
        }
        let now = self.cases.clock.now();
        if req.scheduled_at > now + Duration::days(366) {
            return Err(Error::invalid("scheduled_at", "is more than a year ahead"));
        }
        let address = match given {
            Some(a) => a,
            None => self.site_address(&case).await?.ok_or_else(|| {
                Error::invalid(
                    "address",
                    format!("case {number}'s device has no site with an address; give one"),
                )
            })?,
        };
        let promise = self.new_promise(&case, now).await?;
        let created = AtomicBool::new(false);
        let new = VisitRow {
            engineer_id: engineer.id,
            engineer_name: engineer.name.clone(),
            scheduled_at: to_micros(req.scheduled_at),
            address: address.clone(),
            notes: notes.clone(),
            state: VisitState::Scheduled.as_str().into(),
            created_by: Some(who.user_id),
            created_at: to_micros(now),
            updated_at: to_micros(now),
            parts_used: "[]".into(),
            ..VisitRow::default()
        };
        let row = self
            .cases
            .field_step(
                Some(who),
                "",
                number,
                VisitTarget::New(Box::new(new)),
                |_case, visit, existing, _now| {
                    // The first visit starts the promises; later ones keep them.
                    let promise = match existing {
                        Some(_) => None,
                        None => promise.clone(),
                    };
                    created.store(promise.is_some(), Ordering::Relaxed);
                    let onsite_due = existing
                        .and_then(|p| p.onsite_due.filter(|_| p.onsite_met_at.is_none()))
                        .or(promise.as_ref().and_then(|p| p.onsite_due));
                    let mut b = body(visit, "scheduled");
                    if let ActivityBody::Visit {
                        scheduled_at,
                        address: a,
                        reason,
                        due_at,
                        ..
                    } = &mut b
                    {
                        *scheduled_at = Some(req.scheduled_at);
                        *a = Some(address.clone());
                        *reason = notes.clone();
                        *due_at = onsite_due.map(from_micros);
                    }
                    Ok((None, promise, Vec::new(), vec![(Visibility::Public, b)]) as FieldDecision)
                },
            )
            .await?
            .ok_or_else(|| Error::Corrupt("the new visit vanished".into()))?;
        if created.load(Ordering::Relaxed) {
            if let Some(p) = self.store().field_promise(row.case_id).await? {
                self.arm(&p).await?;
            }
        }
        visit_view(row)
    }

    async fn site_address(&self, case: &CaseRow) -> Result<Option<String>> {
        let Some(device) = case.device_id else {
            return Ok(None);
        };
        let Some(site) = self.store().device(device).await?.and_then(|d| d.site_id) else {
            return Ok(None);
        };
        Ok(self.store().site(site).await?.and_then(|s| s.address))
    }

    /// Resolve and check the parts a check-out takes from stock.
    async fn parts(&self, parts: &[PartUsed]) -> Result<(Vec<PartUsed>, Vec<StockUse>)> {
        if parts.len() > 100 {
            return Err(Error::invalid("parts_used", "more than 100 entries"));
        }
        let mut used = Vec::new();
        let mut uses = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let f = |k: &str| format!("parts_used[{i}].{k}");
            if p.quantity < 1 {
                return Err(Error::invalid(
                    f("quantity"),
                    format!("{} is not a positive number of units", p.quantity),
                ));
            }
            if p.quantity > 10_000 {
                return Err(Error::invalid(f("quantity"), "is more than 10000 units"));
            }
            let number = ident(&f("part_number"), &p.part_number, 100)?;
            let part = self.store().part_by_number(&number).await?.ok_or_else(|| {
                Error::invalid(f("part_number"), format!("no part numbered {number:?}"))
            })?;
            let wh = self
                .store()
                .warehouse(p.warehouse_id)
                .await?
                .ok_or_else(|| {
                    Error::invalid(
                        f("warehouse_id"),
                        format!("no warehouse with id {}", p.warehouse_id),
                    )
                })?;
            let serial = match &p.serial {
                Some(s) => Some(ident(&f("serial"), s, 100)?),
                None => None,
            };
            if serial.is_some() && p.quantity != 1 {
                return Err(Error::invalid(
                    f("serial"),
                    "names one unit; give quantity 1 per serial",
                ));
            }
            uses.push(StockUse {
                part_id: part.id,
                part_number: part.part_number.clone(),
                warehouse_id: wh.id,
                quantity: p.quantity,
                serial: serial.clone(),
            });
            used.push(PartUsed {
                part_number: part.part_number,
                warehouse_id: wh.id,
                quantity: p.quantity,
                serial,
            });
        }
        Ok((used, uses))
    }

    /// Move a visit one step (`POST /visits/{id}/{step}`).
    pub async fn step(
        &self,
        who: &Principal,
        id: i64,
        to: VisitState,
        req: &VisitStepRequest,
    ) -> Result<Visit> {
        use VisitState::*;
        who.require(Action::RecordFieldVisit)?;
        let current = self
            .store()
            .visit(id)
            .await?
            .filter(|r| who.sees_organization(r.organization_id))
            .ok_or_else(|| Error::not_found(format!("visit {id}")))?;
        let work_done = opt_text("work_done", &req.work_done, 20_000)?;
        let backup = opt_text("backup_equipment", &req.backup_equipment, 500)?;
        let name = opt_text("name", &req.name, 200)?;
        let reason = opt_text("reason", &req.reason, 2000)?;
        if to != CheckedOut {
            refuse("work_done", &work_done, to)?;
            refuse("backup_equipment", &backup, to)?;
            refuse("repaired", &req.repaired, to)?;
            if !req.parts_used.is_empty() {
                return Err(Error::invalid(
                    "parts_used",
                    format!("is not taken when the visit becomes {to}"),
                ));
            }
        }
        if to != SignedOff {
            refuse("name", &name, to)?;
        }
        if to != Cancelled {
            refuse("reason", &reason, to)?;
        }
        if !matches!(to, CheckedIn | CheckedOut) {
            refuse("at", &req.at, to)?;
        }
        match to {
            CheckedOut if work_done.is_none() => {
                return Err(Error::invalid(
                    "work_done",
                    "say what was done to check out",
                ))
            }
            SignedOff if name.is_none() => {
                return Err(Error::invalid(
                    "name",
                    "the name of the customer signing off is required",
                ))
            }
            Cancelled if reason.is_none() => {
                return Err(Error::invalid("reason", "say why the visit is cancelled"))
            }
            _ => {}
        }
        let (used, uses) = self.parts(&req.parts_used).await?;
        let used_json = serde_json::to_string(&used).map_err(|e| Error::Internal(e.to_string()))?;
        let (met_onsite, met_repair) = (AtomicBool::new(false), AtomicBool::new(false));
        let number = current.case_number.clone();
        let row = self
            .cases
            .field_step(
                Some(who),
                "",
                &number,
                VisitTarget::Existing(id),
                |case, visit, promise, now| {
                    let cur = visit.ok_or_else(|| Error::not_found(format!("visit {id}")))?;
                    let from: VisitState =
                        crate::store::parse_enum("field_visits.state", &cur.state)?;
                    from.transition(to)?;
                    let at = req.at.unwrap_or(now);
                    if at > now {
                        return Err(Error::invalid(
                            "at",
                            format!("{} is in the future", at.to_rfc3339()),
                        ));
                    }
                    let mut v = cur.clone();
                    v.state = to.as_str().into();
                    v.updated_at = to_micros(now);
                    let mut p = promise.cloned();
                    let mut b = body(Some(&v), to.as_str());
                    let mut due = None;
                    let mut stock = Vec::new();
                    match to {
                        CheckedIn => {
                            if at < from_micros(case.created_at) {
                                return Err(Error::invalid(
                                    "at",
                                    format!(
                                        "{} is before case {} was opened",
                                        at.to_rfc3339(),
                                        case.number
                                    ),
                                ));
                            }
                            v.checked_in_at = Some(to_micros(at));
                            if let Some(p) = p.as_mut() {
                                if p.onsite_met_at.is_none() && p.onsite_due.is_some() {
                                    p.onsite_met_at = Some(to_micros(at));
                                    p.updated_at = to_micros(now);
                                    due = p.onsite_due.map(from_micros);
                                    met_onsite.store(true, Ordering::Relaxed);
                                }
                            }
                        }
                        CheckedOut => {
                            let checked_in = cur.checked_in_at.unwrap_or(cur.scheduled_at);
                            if to_micros(at) < checked_in {
                                return Err(Error::invalid(
                                    "at",
                                    format!(
                                        "{} is before the check-in ({})",
                                        at.to_rfc3339(),
                                        from_micros(checked_in).to_rfc3339()
                                    ),
                                ));
                            }
                            v.checked_out_at = Some(to_micros(at));
                            v.work_done = work_done.clone();
                            v.repaired = req.repaired.unwrap_or(false);
                            v.backup_equipment = backup.clone();
                            v.parts_used = used_json.clone();
                            stock = uses.clone();
                            if v.repaired {
                                if let Some(p) = p.as_mut() {
                                    if p.repair_met_at.is_none() && p.repair_due.is_some() {
                                        p.repair_met_at = Some(to_micros(at));
                                        p.updated_at = to_micros(now);
                                        due = p.repair_due.map(from_micros);
                                        met_repair.store(true, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                        SignedOff => {
                            v.signed_off_at = Some(to_micros(now));
                            v.signoff_name = name.clone();
                        }
                        Cancelled => {
                            v.cancelled_at = Some(to_micros(now));
                            v.cancel_reason = reason.clone();
                        }
                        Scheduled => {}
                    }
                    let (m_onsite, m_repair) = (
                        met_onsite.load(Ordering::Relaxed),
                        met_repair.load(Ordering::Relaxed),
                    );
                    if let ActivityBody::Visit {
                        at: a,
                        work_done: w,
                        parts_used,
                        repaired,
                        backup_equipment,
                        signoff,
                        reason: r,
                        due_at,
                        ..
                    } = &mut b
                    {
                        *a = matches!(to, CheckedIn | CheckedOut).then_some(at);
                        *w = v.work_done.clone().filter(|_| to == CheckedOut);
                        *parts_used = if to == CheckedOut {
                            used.clone()
                        } else {
                            Vec::new()
                        };
                        *repaired = (to == CheckedOut).then_some(v.repaired);
                        *backup_equipment = v.backup_equipment.clone().filter(|_| to == CheckedOut);
                        *signoff = name.clone();
                        *r = reason.clone();
                        *due_at = due.filter(|_| m_onsite || m_repair);
                    }
                    let p = p.filter(|_| m_onsite || m_repair);
                    Ok((Some(v), p, stock, vec![(Visibility::Public, b)]) as FieldDecision)
                },
            )
            .await?
            .ok_or_else(|| Error::Corrupt(format!("visit {id} vanished")))?;
        let (m_onsite, m_repair) = (
            met_onsite.load(Ordering::Relaxed),
            met_repair.load(Ordering::Relaxed),
        );
        let owner = owner(row.case_id);
        if m_onsite {
            self.store()
                .cancel_timers(&owner, Some("onsite_warn"))
                .await?;
            self.store()
                .cancel_timers(&owner, Some("onsite_due"))
                .await?;
        }
        if m_repair {
            self.store()
                .cancel_timers(&owner, Some("repair_warn"))
                .await?;
            self.store()
                .cancel_timers(&owner, Some("repair_due"))
                .await?;
        }
        visit_view(row)
    }

    /// A `field:<case id>` timer came due: record the warning or the missed
    /// promise once, if the promise is still not met and the case open.
    pub async fn fire(&self, t: &TimerRow) -> Result<()> {
        let Some(case_id) = t
            .owner
            .strip_prefix("field:")
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return Ok(());
        };
        let Some(case) = self.store().case_by_id(case_id).await? else {
            return Ok(());
        };
        let kind = t.kind.clone();
        let timer_id = t.id;
        let due = t.due();
        self.cases
            .field_step(
                None,
                AUTHOR,
                &case.number,
                VisitTarget::None,
                |case, _visit, promise, now| {
                    let none = || Ok((None, None, Vec::new(), Vec::new()));
                    let Some(cur) = promise else {
                        return none();
                    };
                    if !case_open(case)? {
                        return none();
                    }
                    let mut p = cur.clone();
                    let (step, deadline, vis) = match kind.as_str() {
                        "onsite_warn" if p.onsite_met_at.is_none() && !p.onsite_warned => {
                            p.onsite_warned = true;
                            ("onsite_warning", p.onsite_due, Visibility::Internal)
                        }
                        "onsite_due" if p.onsite_met_at.is_none() && !p.onsite_missed => {
                            p.onsite_missed = true;
                            ("onsite_missed", p.onsite_due, Visibility::Public)
                        }
                        "repair_warn" if p.repair_met_at.is_none() && !p.repair_warned => {
                            p.repair_warned = true;
                            ("repair_warning", p.repair_due, Visibility::Internal)
                        }
                        "repair_due" if p.repair_met_at.is_none() && !p.repair_missed => {
                            p.repair_missed = true;
                            ("repair_missed", p.repair_due, Visibility::Public)
                        }
                        _ => return none(),
                    };
                    p.updated_at = to_micros(now);
                    let mut b = body(None, step);
                    if let ActivityBody::Visit {
                        due_at,
                        timer_id: tid,
                        reason,
                        ..
                    } = &mut b
                    {
                        *due_at = Some(deadline.map(from_micros).unwrap_or(due));
                        *tid = Some(timer_id);
                        *reason = Some(
                            match step {
                                "onsite_warning" => {
                                    "no engineer on site yet; the on-site promise is near"
                                }
                                "onsite_missed" => {
                                    "the on-site promise passed with no engineer on site"
                                }
                                "repair_warning" => "not repaired yet; the repair promise is near",
                                _ => {
                                    "the repair promise passed unrepaired: provide backup equipment"
                                }
                            }
                            .into(),
                        );
                    }
                    Ok((None, Some(p), Vec::new(), vec![(vis, b)]))
                },
            )
            .await?;
        Ok(())
    }
}
