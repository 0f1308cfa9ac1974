//! Preventive inspections (SPEC.md 9): schedules per contract (optionally
//! one site), every `interval_days` from `first_due`, each with a checklist;
//! an inspection records every checklist item (ok, finding, n/a), the
//! findings, and the follow-up cases opened from findings. Recording the
//! inspection due on a date moves the schedule on by its interval, once
//! (a conditional update), so the due and overdue lists are one indexed
//! query on `next_due`: due when it is within the horizon, overdue when it
//! is before today (UTC).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

use super::Field;
use crate::auth::{Action, Principal};
use crate::cases::model::text_enum;
use crate::cases::{Caller, NewCase, Priority, UserRef};
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::store::field::{InspectionRow, ScheduleRow};
use crate::validate::{date, opt_text, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    Ok,
    Finding,
    /// Not applicable.
    NA,
}

text_enum!(ItemResult, "result", { Ok => "ok", Finding => "finding", NA => "n_a" });

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    pub id: i64,
    pub contract_number: String,
    pub organization_id: i64,
    pub site_id: Option<i64>,
    pub site_name: Option<String>,
    pub name: String,
    pub interval_days: i64,
    pub first_due: NaiveDate,
    /// The next inspection's due date.
    pub next_due: NaiveDate,
    /// `next_due` is before today.
    pub overdue: bool,
    pub checklist: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InspectionItem {
    pub item: String,
    pub result: ItemResult,
    pub note: Option<String>,
    /// The case opened for this finding.
    pub follow_up_case: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Inspection {
    pub id: i64,
    pub schedule_id: i64,
    pub schedule_name: String,
    pub contract_number: String,
    pub due_on: NaiveDate,
    pub performed_at: DateTime<Utc>,
    pub engineer: UserRef,
    pub items: Vec<InspectionItem>,
    pub findings: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    pub contract_id: i64,
    /// One site of the contract's customer; none: all of them.
    #[serde(default)]
    pub site_id: Option<i64>,
    /// e.g. "Quarterly inspection, Hamburg".
    pub name: String,
    /// e.g. 91 for quarterly; 1 to 3660.
    pub interval_days: i64,
    /// ISO date of the first inspection, within the contract's term.
    pub first_due: String,
    /// The checklist items, e.g. "Fans and filters clean".
    pub checklist: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemAnswer {
    /// A checklist item, as written in the schedule.
    pub item: String,
    pub result: ItemResult,
    /// Required for a finding.
    #[serde(default)]
    pub note: Option<String>,
    /// Open a follow-up case for this finding.
    #[serde(default)]
    pub open_case: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInspection {
    /// The engineer or expert who inspected.
    pub engineer_id: i64,
    /// Default now; not in the future.
    #[serde(default)]
    pub performed_at: Option<DateTime<Utc>>,
    /// Every checklist item, once.
    pub items: Vec<ItemAnswer>,
    #[serde(default)]
    pub findings: Option<String>,
}

fn parse_day(field: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::Corrupt(format!("{field} holds {s:?}, not an ISO date")))
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn schedule_view(r: ScheduleRow, today: NaiveDate) -> Result<Schedule> {
    let next_due = parse_day("inspection_schedules.next_due", &r.next_due)?;
    Ok(Schedule {
        checklist: serde_json::from_str(&r.checklist)
            .map_err(|_| Error::Corrupt(format!("schedule {} has a bad checklist", r.id)))?,
        first_due: parse_day("inspection_schedules.first_due", &r.first_due)?,
        overdue: next_due < today,
        next_due,
        id: r.id,
        contract_number: r.contract_number,
        organization_id: r.organization_id,
        site_id: r.site_id,
        site_name: r.site_name,
        name: r.name,
        interval_days: r.interval_days,
        created_at: from_micros(r.created_at),
    })
}

pub(crate) fn inspection_view(r: InspectionRow) -> Result<Inspection> {
    Ok(Inspection {
        items: serde_json::from_str(&r.items)
            .map_err(|_| Error::Corrupt(format!("inspection {} has bad items", r.id)))?,
        due_on: parse_day("inspections.due_on", &r.due_on)?,
        id: r.id,
        schedule_id: r.schedule_id,
        schedule_name: r.schedule_name,
        contract_number: r.contract_number,
        performed_at: from_micros(r.performed_at),
        engineer: UserRef {
            id: r.engineer_id,
            name: r.engineer_name,
        },
        findings: r.findings,
    })
}

impl Field {
    fn today(&self) -> NaiveDate {
        self.cases.clock.now().date_naive()
    }

    /// Add an inspection schedule to a contract (dispatchers, admins).
    pub async fn create_schedule(&self, who: &Principal, req: &NewSchedule) -> Result<Schedule> {
        who.require(Action::WriteDirectory)?;
        let name = text("name", &req.name, 200)?;
        if !(1..=3660).contains(&req.interval_days) {
            return Err(Error::invalid(
                "interval_days",
                format!("{} is not between 1 and 3660 days", req.interval_days),
            ));
        }
        let first_due = date("first_due", &req.first_due)?;
        if req.checklist.is_empty() {
            return Err(Error::invalid("checklist", "needs at least one item"));
        }
        if req.checklist.len() > 200 {
            return Err(Error::invalid("checklist", "more than 200 items"));
        }
        let mut items: Vec<String> = Vec::new();
        for (i, it) in req.checklist.iter().enumerate() {
            let it = text(&format!("checklist[{i}]"), it, 500)?;
            if items.contains(&it) {
                return Err(Error::invalid(
                    format!("checklist[{i}]"),
                    format!("{it:?} is listed twice"),
                ));
            }
            items.push(it);
        }
        let contract = self
            .store()
            .contracts(None, Some(req.contract_id))
            .await?
            .pop()
            .ok_or_else(|| {
                Error::invalid(
                    "contract_id",
                    format!("no contract with id {}", req.contract_id),
                )
            })?;
        if first_due < contract.starts_on || first_due > contract.ends_on {
            return Err(Error::invalid(
                "first_due",
                format!(
                    "{first_due} is outside contract {}'s term ({} to {})",
                    contract.number, contract.starts_on, contract.ends_on
                ),
            ));
        }
        if let Some(site_id) = req.site_id {
            let site = self.store().site(site_id).await?;
            if site.map(|s| s.organization_id) != Some(contract.organization_id) {
                return Err(Error::invalid(
                    "site_id",
                    format!(
                        "site {site_id} is not a site of contract {}'s customer",
                        contract.number
                    ),
                ));
            }
        }
        let checklist =
            serde_json::to_string(&items).map_err(|e| Error::Internal(e.to_string()))?;
        let id = self
            .store()
            .insert_schedule(
                contract.id,
                req.site_id,
                &name,
                req.interval_days,
                &day(first_due),
                &checklist,
                self.cases.clock.now(),
            )
            .await?;
        self.schedule(who, id).await
    }

    pub async fn schedule(&self, who: &Principal, id: i64) -> Result<Schedule> {
        who.require(Action::ReadInternal)?;
        let row = self
            .store()
            .schedule(id)
            .await?
            .filter(|r| who.sees_organization(Some(r.organization_id)))
            .ok_or_else(|| Error::not_found(format!("inspection schedule {id}")))?;
        schedule_view(row, self.today())
    }

    /// Schedules by next due date; with `within_days`, only those due
    /// within that many days from today (overdue ones included).
    pub async fn schedules(
        &self,
        who: &Principal,
        within_days: Option<i64>,
    ) -> Result<Vec<Schedule>> {
        who.require(Action::ReadInternal)?;
        let today = self.today();
        let due_by = match within_days {
            Some(d) if !(0..=3660).contains(&d) => {
                return Err(Error::invalid(
                    "within_days",
                    format!("{d} is not between 0 and 3660"),
                ))
            }
            Some(d) => Some(day(today + Duration::days(d))),
            None => None,
        };
        self.store()
            .schedules(due_by.as_deref(), who.organization_scope(), 1000)
            .await?
            .into_iter()
            .map(|r| schedule_view(r, today))
            .collect()
    }

    /// Record the inspection now due under a schedule (dispatchers,
    /// engineers, experts, admins); findings marked `open_case` open a
    /// follow-up case on the contract.
    pub async fn record(
        &self,
        who: &Principal,
        schedule_id: i64,
        req: &NewInspection,
    ) -> Result<Inspection> {
        who.require(Action::RecordFieldVisit)?;
        let schedule = self.schedule(who, schedule_id).await?;
        let engineer = self
            .cases
            .field_engineer(req.engineer_id, "engineer_id")
            .await?;
        let now = self.cases.clock.now();
        let performed_at = req.performed_at.unwrap_or(now);
        if performed_at > now {
            return Err(Error::invalid("performed_at", "is in the future"));
        }
        if performed_at < schedule.created_at {
            return Err(Error::invalid(
                "performed_at",
                "is before the schedule was created",
            ));
        }
        let findings = opt_text("findings", &req.findings, 20_000)?;
        let mut items = Vec::with_capacity(req.items.len());
        let mut open = Vec::new();
        for (i, a) in req.items.iter().enumerate() {
            let f = |k: &str| format!("items[{i}].{k}");
            let item = a.item.trim().to_string();
            if !schedule.checklist.contains(&item) {
                return Err(Error::invalid(
                    f("item"),
                    format!("{item:?} is not on the schedule's checklist"),
                ));
            }
            if items.iter().any(|x: &InspectionItem| x.item == item) {
                return Err(Error::invalid(
                    f("item"),
                    format!("{item:?} is answered twice"),
                ));
            }
            let note = opt_text(&f("note"), &a.note, 4000)?;
            if a.result == ItemResult::Finding && note.is_none() {
                return Err(Error::invalid(f("note"), "describe the finding"));
            }
            if a.open_case && a.result != ItemResult::Finding {
                return Err(Error::invalid(
                    f("open_case"),
                    "a follow-up case is opened for a finding only",
                ));
            }
            if a.open_case {
                open.push(items.len());
            }
            items.push(InspectionItem {
                item,
                result: a.result,
                note,
                follow_up_case: None,
            });
        }
        if let Some(missing) = schedule
            .checklist
            .iter()
            .find(|c| !items.iter().any(|x| &x.item == *c))
        {
            return Err(Error::invalid(
                "items",
                format!("checklist item {missing:?} is not answered"),
            ));
        }
        if !open.is_empty() {
            who.require(Action::CreateCase)?;
        }
        let due_on = schedule.next_due;
        let next = due_on + Duration::days(schedule.interval_days);
        let json = |items: &Vec<InspectionItem>| {
            serde_json::to_string(items).map_err(|e| Error::Internal(e.to_string()))
        };
        let id = self
            .store()
            .insert_inspection(
                schedule.id,
                &day(due_on),
                &day(next),
                performed_at,
                engineer.id,
                &json(&items)?,
                findings.as_deref(),
                now,
            )
            .await?;
        if !open.is_empty() {
            for i in open {
                let it = &items[i];
                let mut summary = format!("Inspection finding: {}", it.item);
                if summary.chars().count() > 200 {
                    summary = summary.chars().take(199).collect::<String>() + "…";
                }
                let case = self
                    .cases
                    .open(
                        who,
                        &NewCase {
                            caller: Caller {
                                name: engineer.name.clone(),
                                company: None,
                                phone: None,
                                email: None,
                                contract: None,
                            },
                            summary,
                            details: format!(
                                "{} (inspection {id}, {}, due {due_on}): {}",
                                schedule.name,
                                schedule.contract_number,
                                it.note.clone().unwrap_or_default()
                            ),
                            priority: Priority::P3,
                            case_type: None,
                            vendor: None,
                            channel: None,
                            organization_id: Some(schedule.organization_id),
                            device_id: None,
                            contract: Some(schedule.contract_number.clone()),
                            assignee_id: None,
                        },
                    )
                    .await?;
                items[i].follow_up_case = Some(case.number);
            }
            self.store()
                .set_inspection_items(id, &json(&items)?)
                .await?;
        }
        self.inspection(who, id).await
    }

    pub async fn inspection(&self, who: &Principal, id: i64) -> Result<Inspection> {
        who.require(Action::ReadInternal)?;
        let row = self
            .store()
            .inspection(id)
            .await?
            .filter(|r| who.sees_organization(Some(r.organization_id)))
            .ok_or_else(|| Error::not_found(format!("inspection {id}")))?;
        inspection_view(row)
    }

    /// Inspections done, newest first, optionally of one schedule.
    pub async fn inspections(
        &self,
        who: &Principal,
        schedule_id: Option<i64>,
    ) -> Result<Vec<Inspection>> {
        who.require(Action::ReadInternal)?;
        self.store()
            .inspections(schedule_id, who.organization_scope(), 1000)
            .await?
            .into_iter()
            .map(inspection_view)
            .collect()
    }
}
