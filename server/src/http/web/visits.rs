//! Field service in the console: the case workspace's visits panel (the
//! case's visits, the contract's on-site and repair promises counting down,
//! the schedule form and each visit's next step), and the inspections page
//! (schedules due within a horizon, overdue ones marked; recent
//! inspections). Every form calls the same `Field` method as its REST
//! endpoint.

use axum::extract::{Path, Query, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::cases::opt;
use super::layout::{countdown, table_wrap, time, time_opt, Nav, Page, WebForm, WebResult};
use super::{WebAuth, WebError};
use crate::auth::Action;
use crate::cases::CaseView;
use crate::directory::User;
use crate::error::Error;
use crate::field::{CaseVisits, NewVisit, Promise, VisitState, VisitStepRequest};
use crate::http::AppState;

/// What the panel needs, loaded by the workspace.
pub struct Panel {
    visits: CaseVisits,
    /// Engineers to schedule (when the caller may schedule on this case).
    engineers: Vec<User>,
}

pub async fn load(s: &AppState, who: &WebAuth, case: &CaseView) -> Result<Option<Panel>, Error> {
    let p = &who.principal;
    let visits = s.field.case_visits(p, &case.number).await?;
    let engineers = if p.may(Action::RecordFieldVisit) && case.status.is_open() {
        super::cases::engineers(s).await?
    } else {
        Vec::new()
    };
    if visits.visits.is_empty() && engineers.is_empty() {
        return Ok(None);
    }
    Ok(Some(Panel { visits, engineers }))
}

fn promise(label: &str, p: &Option<Promise>, now: DateTime<Utc>) -> Markup {
    html! {
        @if let Some(p) = p {
            div.small {
                (label) " by " (time(p.due_at))
                @match p.met_at {
                    Some(m) => { " " span.tag.ok { "met " (time(m)) } },
                    None => { " " (countdown(p.due_at, now)) },
                }
                @if p.missed { " " span.tag.bad { "missed" } }
            }
        }
    }
}

fn step_word(to: VisitState) -> &'static str {
    match to {
        VisitState::CheckedIn => "check-in",
        VisitState::CheckedOut => "check-out",
        VisitState::SignedOff => "sign-off",
        VisitState::Cancelled => "cancel",
        VisitState::Scheduled => "schedule",
    }
}

fn next(state: VisitState) -> &'static [VisitState] {
    use VisitState::*;
    match state {
        Scheduled => &[CheckedIn, Cancelled],
        CheckedIn => &[CheckedOut],
        CheckedOut => &[SignedOff],
        SignedOff | Cancelled => &[],
    }
}

pub fn render(who: &WebAuth, case: &CaseView, panel: &Panel, now: DateTime<Utc>) -> Markup {
    let p = &who.principal;
    let act = p.may(Action::RecordFieldVisit);
    let pr = &panel.visits.promises;
    html! {
        section.card aria-labelledby="visits" {
            h2 #visits { "Field visits" }
            @if pr.onsite.is_some() || pr.repair.is_some() {
                (promise("Engineer on site", &pr.onsite, now))
                (promise("Repaired (else backup equipment)", &pr.repair, now))
            }
            @if panel.visits.visits.is_empty() {
                p.muted { "No visit scheduled on this case." }
            } @else {
                (table_wrap(None, html! {
                    table {
                        thead { tr {
                            th scope="col" { "Visit" } th scope="col" { "Engineer" } th scope="col" { "State" }
                            th scope="col" { "On site" } th scope="col" { "Work" }
                            @if act { th scope="col" { "Next step" } }
                        } }
                        tbody {
                            @for v in &panel.visits.visits {
                                tr {
                                    td { "#" (v.id) br; span.small { (time(v.scheduled_at)) } br; span.small { (v.address) } }
                                    td { (v.engineer.name) }
                                    td { span.status { (v.state.as_str().replace('_', " ")) } }
                                    td {
                                        @if let Some(at) = v.checked_in_at { "in " (time(at)) }
                                        @if let Some(at) = v.checked_out_at { br; "out " (time_opt(Some(at))) }
                                        @if let Some(n) = &v.signoff_name { br; span.small { "signed off by " (n) } }
                                    }
                                    td {
                                        @if let Some(w) = &v.work_done { (w) }
                                        @if v.repaired { " " span.tag.ok { "repaired" } }
                                        @for part in &v.parts_used { br; span.small { (part.quantity) " x " (part.part_number) @if let Some(s) = &part.serial { " (" (s) ")" } } }
                                        @if let Some(b) = &v.backup_equipment { br; span.small { "backup: " (b) } }
                                        @if let Some(r) = &v.cancel_reason { span.small { "cancelled: " (r) } }
                                    }
                                    @if act {
                                        td {
                                            @for to in next(v.state) {
                                                @let word = step_word(*to);
                                                form.row method="post" action={"/cases/" (case.number) "/visits/" (v.id) "/" (word)} {
                                                    input type="hidden" name="csrf" value=(who.csrf);
                                                    @if *to == VisitState::CheckedOut {
                                                        label for={"work-" (v.id)} { "Work done" }
                                                        input id={"work-" (v.id)} name="work_done" required size="16";
                                                        label for={"repaired-" (v.id)} {
                                                            input id={"repaired-" (v.id)} type="checkbox" name="repaired" value="true";
                                                            " repaired"
                                                        }
                                                    }
                                                    @if *to == VisitState::SignedOff {
                                                        label for={"signoff-" (v.id)} { "Customer's name" }
                                                        input id={"signoff-" (v.id)} name="name" required size="12";
                                                    }
                                                    @if *to == VisitState::Cancelled {
                                                        label for={"cancel-" (v.id)} { "Reason" }
                                                        input id={"cancel-" (v.id)} name="reason" required size="12";
                                                    }
                                                    button type="submit" class=[(*to == VisitState::Cancelled).then_some("secondary")] { (word) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
            @if !panel.engineers.is_empty() {
                details.action {
                    summary { "Schedule a visit" }
                    form method="post" action={"/cases/" (case.number) "/visit"} {
                        input type="hidden" name="csrf" value=(who.csrf);
                        label for="visit-engineer" { "Engineer" }
                        select #visit-engineer name="engineer_id" required {
                            @for e in &panel.engineers { option value=(e.id) { (e.display_name) } }
                        }
                        label for="visit-at" { "When (UTC)" }
                        input #visit-at name="scheduled_at" type="datetime-local" required;
                        label for="visit-address" { "Address (default: the device's site)" }
                        input #visit-address name="address";
                        button type="submit" { "Schedule" }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct VisitForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    engineer_id: Option<String>,
    #[serde(default)]
    scheduled_at: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    work_done: Option<String>,
    #[serde(default)]
    repaired: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A `datetime-local` value (UTC), with or without seconds.
fn local_time(field: &str, s: &Option<String>) -> Result<DateTime<Utc>, Error> {
    let v = opt(s).ok_or_else(|| Error::invalid(field, "must not be empty"))?;
    NaiveDateTime::parse_from_str(&v, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(&v, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| t.and_utc())
        .map_err(|_| Error::invalid(field, format!("{v:?} is not a date and time")))
}

/// `POST /cases/{number}/visit`: schedule a visit.
pub async fn schedule(
    State(s): State<AppState>,
    who: WebAuth,
    Path(case): Path<String>,
    WebForm(f): WebForm<VisitForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let result = async {
        let id = opt(&f.engineer_id).ok_or_else(|| Error::invalid("engineer_id", "choose one"))?;
        let req = NewVisit {
            engineer_id: id
                .parse()
                .map_err(|_| Error::invalid("engineer_id", format!("{id:?} is not a number")))?,
            scheduled_at: local_time("scheduled_at", &f.scheduled_at)?,
            address: opt(&f.address),
            notes: None,
        };
        s.field.schedule_visit(&who.principal, &case, &req).await
    }
    .await;
    super::cases::after_action(&s, &who, &case, "visit", result.map(|_| ())).await
}

/// `POST /cases/{number}/visits/{id}/{step}`: move a visit on.
pub async fn step(
    State(s): State<AppState>,
    who: WebAuth,
    Path((case, id, step)): Path<(String, i64, String)>,
    WebForm(f): WebForm<VisitForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let result = async {
        let to = crate::field::step_state(&step)?;
        let visits = s.field.case_visits(&who.principal, &case).await?;
        if !visits.visits.iter().any(|v| v.id == id) {
            return Err(Error::not_found(format!("visit {id} on case {case}")));
        }
        let req = VisitStepRequest {
            work_done: opt(&f.work_done),
            repaired: (to == VisitState::CheckedOut).then(|| opt(&f.repaired).is_some()),
            name: opt(&f.name),
            reason: opt(&f.reason),
            ..Default::default()
        };
        s.field.step(&who.principal, id, to, &req).await
    }
    .await;
    super::cases::after_action(&s, &who, &case, "visit", result.map(|_| ())).await
}

#[derive(Debug, Default, Deserialize)]
pub struct InspectionsQuery {
    #[serde(default)]
    within_days: Option<String>,
}

/// `GET /inspections`: schedules due within the horizon (default 30 days),
/// overdue first, and the latest inspections.
pub async fn page(
    State(s): State<AppState>,
    who: WebAuth,
    Query(q): Query<InspectionsQuery>,
) -> WebResult {
    let p = &who.principal;
    if !p.may(Action::ReadInternal) {
        return Err(WebError::from(Error::forbidden(
            "inspections are for staff".to_string(),
        )));
    }
    let (within, error) = match opt(&q.within_days).map(|d| d.parse::<i64>()) {
        None => (30, None),
        Some(Ok(d)) if (0..=3660).contains(&d) => (d, None),
        Some(_) => (
            30,
            Some("The horizon must be a number of days from 0 to 3660; showing 30.".to_string()),
        ),
    };
    let due = s.field.schedules(p, Some(within)).await?;
    let done = s.field.inspections(p, None).await?;
    let body = html! {
        section.card aria-labelledby="due" {
            h2 #due { "Inspections due within " (within) " days" }
            form.row method="get" action="/inspections" {
                label for="within" { "Days ahead" }
                input #within name="within_days" type="number" min="0" max="3660" value=(within);
                button type="submit" { "Show" }
            }
            @if due.is_empty() {
                p.muted { "Nothing due." }
            } @else {
                (table_wrap(None, html! {
                    table {
                        thead { tr {
                            th scope="col" { "Due" } th scope="col" { "Schedule" } th scope="col" { "Contract" }
                            th scope="col" { "Site" } th scope="col" { "Every" } th scope="col" { "Checklist" }
                        } }
                        tbody {
                            @for d in &due {
                                tr {
                                    td { (d.next_due) @if d.overdue { " " span.tag.bad { "overdue" } } }
                                    td { (d.name) }
                                    td { (d.contract_number) }
                                    td { (d.site_name.as_deref().unwrap_or("all sites")) }
                                    td { (d.interval_days) " days" }
                                    td { (d.checklist.len()) " items" }
                                }
                            }
                        }
                    }
                }))
            }
        }
        section.card aria-labelledby="done" {
            h2 #done { "Recent inspections" }
            @if done.is_empty() {
                p.muted { "None recorded yet." }
            } @else {
                (table_wrap(None, html! {
                    table {
                        thead { tr {
                            th scope="col" { "Done" } th scope="col" { "Schedule" } th scope="col" { "Due" }
                            th scope="col" { "Engineer" } th scope="col" { "Findings" }
                        } }
                        tbody {
                            @for i in done.iter().take(50) {
                                tr {
                                    td { (time(i.performed_at)) }
                                    td { (i.schedule_name) br; span.small { (i.contract_number) } }
                                    td { (i.due_on) }
                                    td { (i.engineer.name) }
                                    td {
                                        @if let Some(f) = &i.findings { (f) }
                                        @for it in i.items.iter().filter(|it| it.result == crate::field::inspections::ItemResult::Finding) {
                                            br; span.small { (it.item) ": " (it.note.as_deref().unwrap_or("")) }
                                            @if let Some(c) = &it.follow_up_case { " " a href={"/cases/" (c)} { (c) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
        }
    };
    Ok(Page::new(&who, "Inspections", Nav::Inspections)
        .error(error)
        .response(body))
}
