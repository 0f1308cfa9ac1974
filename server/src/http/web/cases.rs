//! Cases in the console: the list (staff's and a customer's own), the new
//! case form (pre-filled from the dossier; with a device picker for
//! customers), and the case workspace: the immutable timeline, the live SLA
//! clocks and every action, each a form that calls the same `Cases` method
//! the REST endpoint calls.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::console::case_table;
use super::layout::{
    countdown, priority_badge, span_words, status_badge, time, time_opt, Nav, Page, WebForm,
    WebResult,
};
use super::WebAuth;
use crate::auth::{Action, Role};
use crate::cases::{
    ActivityBody, ActivityView, Assignment, CallDirection, Caller, CaseQuery, CaseType, CaseView,
    Channel, Classification, NewCall, NewCase, NewNote, Priority, PriorityChange, Status,
    StatusChange, Visibility,
};
use crate::error::Error;
use crate::http::AppState;

// ---------------------------------------------------------------- form values

/// A form field's trimmed value, if not blank.
pub(super) fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn opt_id(field: &str, s: &Option<String>) -> Result<Option<i64>, Error> {
    opt(s)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| Error::invalid(field, format!("{v:?} is not a number")))
        })
        .transpose()
}

fn parse<T: std::str::FromStr<Err = Error>>(field: &str, s: &Option<String>) -> Result<T, Error> {
    opt(s)
        .ok_or_else(|| Error::invalid(field, "choose a value"))?
        .parse()
}

// ---------------------------------------------------------------- the list

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    mine: Option<String>,
    #[serde(default)]
    unassigned: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    /// `all`: resolved and closed cases too.
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /cases`: the caller's cases (customers: their organisation's).
pub async fn list(
    State(s): State<AppState>,
    who: WebAuth,
    Query(f): Query<ListQuery>,
) -> WebResult {
    let p = &who.principal;
    let mine = opt(&f.mine).is_some() && p.role.is_staff();
    let all = opt(&f.scope).as_deref() == Some("all");
    let q = CaseQuery {
        status: opt(&f.status),
        priority: opt(&f.priority),
        q: opt(&f.q),
        device_id: opt_id("device_id", &f.device_id)?,
        assignee_id: mine.then_some(p.user_id),
        unassigned: opt(&f.unassigned).map(|_| true),
        open: (!all && opt(&f.status).is_none()).then_some(true),
        cursor: opt(&f.cursor),
        limit: Some(50),
        ..Default::default()
    };
    let (page, error) = match s.cases.search(p, &q).await {
        Ok(page) => (Some(page), None),
        Err(e @ Error::Invalid { .. }) => (None, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let title = if p.role == Role::Customer {
        "Our cases"
    } else if mine {
        "My cases"
    } else {
        "Cases"
    };
    let next = page
        .as_ref()
        .and_then(|pg| pg.next_cursor.clone())
        .map(|c| {
            let mut href = format!("/cases?cursor={}", super::console::urlencode(&c));
            for (k, v) in [
                ("mine", &f.mine),
                ("status", &f.status),
                ("priority", &f.priority),
                ("q", &f.q),
                ("device_id", &f.device_id),
                ("scope", &f.scope),
                ("unassigned", &f.unassigned),
            ] {
                if let Some(v) = opt(v) {
                    href.push_str(&format!("&{k}={}", super::console::urlencode(&v)));
                }
            }
            href
        });
    let body = html! {
        form.row.card method="get" action="/cases" aria-label="Filter cases" {
            div { label for="f-q" { "Text" } input #f-q type="search" name="q" value=(opt(&f.q).unwrap_or_default()); }
            div { label for="f-priority" { "Priority" }
                select #f-priority name="priority" {
                    option value="" { "any" }
                    @for pr in Priority::ALL { option value=(pr.as_str()) selected[opt(&f.priority).as_deref() == Some(pr.as_str())] { (pr.as_str()) } }
                } }
            div { label for="f-scope" { "Which" }
                select #f-scope name="scope" {
                    option value="" selected[!all] { "open" }
                    option value="all" selected[all] { "all, closed too" }
                } }
            @if p.role.is_staff() {
                div { label { input type="checkbox" name="mine" value="1" checked[mine]; " assigned to me" } }
                div { label { input type="checkbox" name="unassigned" value="1" checked[opt(&f.unassigned).is_some()]; " unassigned" } }
            }
            button type="submit" { "Show" }
        }
        section.card {
            @if let Some(pg) = &page { (case_table(&pg.items)) }
            @if let Some(n) = next { p { a href=(n) { "Next page" } } }
            @if p.role == Role::Customer { p { a.button href="/cases/new" { "Report a problem" } } }
        }
    };
    Ok(Page::new(&who, title, Nav::Cases)
        .error(error)
        .response(body))
}

// ---------------------------------------------------------------- new case

#[derive(Debug, Default, Deserialize)]
pub struct NewCaseQuery {
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    contract: Option<String>,
    #[serde(default)]
    caller_phone: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
pub struct NewCaseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    contract: Option<String>,
    #[serde(default)]
    caller_name: Option<String>,
    #[serde(default)]
    caller_phone: Option<String>,
    #[serde(default)]
    caller_email: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    case_type: Option<String>,
    #[serde(default)]
    assignee_id: Option<String>,
}

/// `GET /cases/new`: staff come from a dossier (the customer is known);
/// customers report for their own organisation.
pub async fn new_form(
    State(s): State<AppState>,
    who: WebAuth,
    Query(q): Query<NewCaseQuery>,
) -> WebResult {
    let p = &who.principal;
    p.require(Action::CreateCase)?;
    let org = match p.organization_scope() {
        Some(own) => Some(own),
        None => opt_id("organization_id", &q.organization_id)?,
    };
    let Some(org) = org else {
        return Ok(Redirect::to("/console").into_response());
    };
    let mut form = NewCaseForm {
        organization_id: Some(org.to_string()),
        device_id: q.device_id.clone(),
        contract: q.contract.clone(),
        caller_phone: q.caller_phone.clone(),
        priority: Some("P3".into()),
        ..Default::default()
    };
    if p.role == Role::Customer {
        if let Some(u) = s.store.user(p.user_id).await? {
            form.caller_name = Some(u.display_name);
            form.caller_email = u.email;
            form.caller_phone = u.mobile;
        }
    }
    new_case_page(&s, &who, org, &form, None, StatusCode::OK).await
}

async fn new_case_page(
    s: &AppState,
    who: &WebAuth,
    org: i64,
    f: &NewCaseForm,
    error: Option<String>,
    status: StatusCode,
) -> WebResult {
    let p = &who.principal;
    let organization = s
        .store
        .organization(org)
        .await?
        .filter(|o| p.sees_organization(Some(o.id)))
        .ok_or_else(|| Error::not_found(format!("organization {org}")))?;
    let devices = s.store.devices(Some(org), 10_000).await?;
    let today = s.clock.now().date_naive();
    let contracts: Vec<_> = s
        .store
        .contracts(Some(org), None)
        .await?
        .into_iter()
        .filter(|c| c.active_on(today))
        .collect();
    let engineers = if p.may(Action::Assign) {
        engineers(s).await?
    } else {
        Vec::new()
    };
    let val = |v: &Option<String>| opt(v).unwrap_or_default();
    let chosen_device = opt(&f.device_id);
    let staff = p.role.is_staff();
    let body = html! {
        form.card method="post" action="/cases/new" {
            input type="hidden" name="csrf" value=(who.csrf);
            input type="hidden" name="organization_id" value=(org);
            p { "Customer: " strong { (organization.name) } " (" (organization.customer_code) ")" }
            div.grid {
                div {
                    h2 { "Caller" }
                    label for="caller_name" { "Name" }
                    input #caller_name name="caller_name" required value=(val(&f.caller_name)) autocomplete="name";
                    label for="caller_phone" { "Phone" }
                    input #caller_phone name="caller_phone" type="tel" value=(val(&f.caller_phone)) autocomplete="tel";
                    label for="caller_email" { "E-mail (for updates and the survey)" }
                    input #caller_email name="caller_email" type="email" value=(val(&f.caller_email)) autocomplete="email";
                }
                div {
                    h2 { "Problem" }
                    label for="device_id" { "Device" }
                    select #device_id name="device_id" {
                        option value="" { "no particular device" }
                        @for d in &devices {
                            option value=(d.id) selected[chosen_device.as_deref() == Some(d.id.to_string().as_str())] {
                                (d.name) " - " (d.vendor) " " (d.model) ", serial " (d.serial)
                            }
                        }
                    }
                    @if staff {
                        label for="contract" { "Contract" }
                        select #contract name="contract" {
                            option value="" { "the device's contract" }
                            @for c in &contracts {
                                option value=(c.number) selected[opt(&f.contract).as_deref() == Some(c.number.as_str())] { (c.number) " (" (c.coverage.as_str()) ")" }
                            }
                        }
                    }
                    label for="priority" { "Priority" }
                    select #priority name="priority" {
                        @for (pr, words) in [(Priority::P1, "P1 - system down"), (Priority::P2, "P2 - severely degraded"), (Priority::P3, "P3 - partly impaired"), (Priority::P4, "P4 - question or request")] {
                            option value=(pr.as_str()) selected[opt(&f.priority).as_deref() == Some(pr.as_str())] { (words) }
                        }
                    }
                    label for="case_type" { "Type" }
                    select #case_type name="case_type" {
                        option value="" { "decide later" }
                        @for t in CaseType::ALL { option value=(t.as_str()) selected[opt(&f.case_type).as_deref() == Some(t.as_str())] { (t.as_str().replace('_', " ")) } }
                    }
                }
            }
            label for="summary" { "Summary (one line)" }
            input #summary name="summary" required maxlength="200" value=(val(&f.summary));
            label for="details" { "Details" }
            textarea #details name="details" rows="5" { (val(&f.details)) }
            @if !engineers.is_empty() {
                label for="assignee_id" { "Assign to (optional)" }
                select #assignee_id name="assignee_id" {
                    option value="" { "nobody yet (the queue)" }
                    @for e in &engineers { option value=(e.id) selected[opt(&f.assignee_id) == Some(e.id.to_string())] { (e.display_name) " (" (e.role.as_str()) ")" } }
                }
            }
            button type="submit" { "Open the case" }
        }
    };
    let mut resp = Page::new(who, "New case", Nav::NewCase)
        .error(error)
        .response(body);
    *resp.status_mut() = status;
    Ok(resp)
}

pub(super) async fn engineers(s: &AppState) -> Result<Vec<crate::directory::User>, Error> {
    let mut out = s.store.users(Some("engineer"), None).await?;
    out.extend(s.store.users(Some("expert"), None).await?);
    out.retain(|u| u.active);
    out.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    Ok(out)
}

/// `POST /cases/new`.
pub async fn create(
    State(s): State<AppState>,
    who: WebAuth,
    WebForm(f): WebForm<NewCaseForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let p = &who.principal;
    let org = match p.organization_scope() {
        Some(own) => own,
        None => opt_id("organization_id", &f.organization_id)?
            .ok_or_else(|| Error::invalid("organization_id", "find the customer first"))?,
    };
    let req = (|| -> Result<NewCase, Error> {
        Ok(NewCase {
            caller: Caller {
                name: opt(&f.caller_name).unwrap_or_default(),
                company: None,
                phone: opt(&f.caller_phone),
                email: opt(&f.caller_email),
                contract: None,
            },
            summary: opt(&f.summary).unwrap_or_default(),
            details: opt(&f.details).unwrap_or_default(),
            priority: parse("priority", &f.priority)?,
            case_type: opt(&f.case_type).map(|t| t.parse()).transpose()?,
            vendor: None,
            channel: Some(if p.role == Role::Customer {
                Channel::Web
            } else {
                Channel::Phone
            }),
            organization_id: Some(org),
            device_id: opt_id("device_id", &f.device_id)?,
            contract: if p.role.is_staff() {
                opt(&f.contract)
            } else {
                None
            },
            assignee_id: opt_id("assignee_id", &f.assignee_id)?,
        })
    })();
    let result = match req {
        Ok(req) => s.cases.open(p, &req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(view) => {
            Ok(Redirect::to(&format!("/cases/{}?done=opened", view.number)).into_response())
        }
        Err(e @ (Error::Invalid { .. } | Error::Conflict(_))) => {
            new_case_page(
                &s,
                &who,
                org,
                &f,
                Some(e.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- workspace

#[derive(Debug, Default, Deserialize)]
pub struct CaseQueryString {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /cases/{number}`: the workspace.
pub async fn show(
    State(s): State<AppState>,
    who: WebAuth,
    Path(number): Path<String>,
    Query(q): Query<CaseQueryString>,
) -> WebResult {
    let notice = q.done.as_deref().map(|d| match d {
        "opened" => "The case is open.".to_string(),
        "note" => "The note is on the case.".to_string(),
        "call" => "The call is recorded.".to_string(),
        "status" => "The status changed.".to_string(),
        "priority" => "The priority changed.".to_string(),
        "assign" => "The case is assigned.".to_string(),
        "take-over" => "The case is yours now.".to_string(),
        "expert" => "The expert was brought in.".to_string(),
        "vendor" => "The vendor escalation is recorded.".to_string(),
        "report" => "The fault report is on the case.".to_string(),
        "diagnosis" => "The diagnosis is recorded.".to_string(),
        "survey" => "Thank you for your answer.".to_string(),
        "spare" => "The spare is requested.".to_string(),
        "shipment" => "The shipment moved on.".to_string(),
        _ => "Done.".to_string(),
    });
    workspace(&s, &who, &number, None, notice, StatusCode::OK).await
}

async fn workspace(
    s: &AppState,
    who: &WebAuth,
    number: &str,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> WebResult {
    let p = &who.principal;
    let row = s.cases.get(p, number).await?;
    let case = row.to_view()?;
    let history = s.cases.history(p, number).await?;
    let now = s.clock.now();
    let staff = p.role.is_staff();
    let sla = if p.may(Action::ReadInternal) {
        crate::sla::engine::load_row(&s.store, &s.sla.current(), row)
            .await?
            .map(|c| {
                (
                    c.policy.name.clone(),
                    crate::sla::clock::evaluate(&c.policy, &c.calendar, &c.timeline, now),
                )
            })
    } else {
        None
    };
    let related = match case.device_id {
        Some(d) => {
            let q = CaseQuery {
                device_id: Some(d),
                limit: Some(20),
                ..Default::default()
            };
            s.cases
                .search(p, &q)
                .await?
                .items
                .into_iter()
                .filter(|c| c.number != case.number)
                .collect()
        }
        None => Vec::new(),
    };
    let engineers = if staff && (p.may(Action::Assign) || p.may(Action::EscalateToExpert)) {
        engineers(s).await?
    } else {
        Vec::new()
    };
    let spares = super::spares::load(s, who, &case).await?;
    // The closest published articles (staff; the knowledge base is internal).
    let suggestions = if p.may(Action::ReadKnowledge) {
        Some(s.kb.suggestions(p, number).await?)
    } else {
        None
    };
    let may_draft =
        p.may(Action::WriteKnowledge) && matches!(case.status, Status::Resolved | Status::Closed);
    let visits = super::visits::load(s, who, &case).await?;
    // The coverage check made when the case opened (internal: staff only).
    let out_of_coverage = history.iter().rev().find_map(|a| match &a.body {
        ActivityBody::Entitlement {
            covered: false,
            reasons,
            ..
        } => Some(reasons.join("; ")),
        _ => None,
    });
    let survey_open = p.role == Role::Customer
        && case.status == Status::Closed
        && !answered_since_close(&history);
    let title = format!("{} {}", case.number, case.summary);
    let body = html! {
        @if let Some(why) = &out_of_coverage {
            p.error role="status" { "Out of coverage: " (why) ". Service may be chargeable; the case goes on." }
        }
        div.grid {
            section.card aria-labelledby="facts" {
                h2 #facts { "Case" }
                p { (priority_badge(case.priority)) " " (status_badge(case.status)) }
                dl.facts {
                    dt { "Customer" } dd {
                        @match (case.organization_id, &case.organization_name) {
                            (Some(id), Some(n)) if staff => a href={"/console/organizations/" (id)} { (n) },
                            (_, Some(n)) => (n),
                            _ => "-",
                        }
                    }
                    dt { "Caller" } dd { (case.caller.name)
                        @if let Some(ph) = &case.caller.phone { ", " a href={"tel:" (ph)} { (ph) } }
                        @if let Some(m) = &case.caller.email { ", " (m) } }
                    dt { "Device" } dd { (case.device_name.as_deref().unwrap_or("-")) }
                    dt { "Contract" } dd { (case.contract_number.as_deref().unwrap_or("-")) }
                    dt { "Type" } dd { (case.case_type.as_str().replace('_', " ")) @if let Some(v) = &case.vendor { ", vendor " (v) } }
                    dt { "Channel" } dd { (case.channel.as_str()) }
                    dt { "Assignee" } dd { @match &case.assignee { Some(a) => (a.name), None => span.muted { "nobody yet" } } }
                    dt { "Opened" } dd { (time(case.created_at)) }
                    dt { "Responded" } dd { (time_opt(case.responded_at)) }
                    dt { "Resolved" } dd { (time_opt(case.resolved_at)) }
                    dt { "Closed" } dd { (time_opt(case.closed_at)) }
                }
                @if !case.details.is_empty() { h3 { "Details" } p.text style="white-space:pre-wrap" { (case.details) } }
            }
            @if let Some((policy, ev)) = &sla {
                section.card aria-labelledby="sla" {
                    h2 #sla { "SLA clocks" }
                    p.small { "Policy " (policy) "; times count working time of the contract's calendar." }
                    (clock_row("Response", &ev.response, now))
                    (clock_row("Resolution", &ev.resolution, now))
                    @let next_esc = ev.upcoming.iter().filter_map(|d| match d {
                        crate::sla::clock::Deadline::Escalation { level, due_at } if *due_at > now => Some((*level, *due_at)),
                        _ => None,
                    }).min_by_key(|(_, at)| *at);
                    dl.facts {
                        dt { "Escalation" } dd {
                            @match ev.escalation_level { Some(l) => { "manager level " (l) " reached" }, None => { "not escalated" } }
                        }
                        dt { "Next escalation" } dd {
                            @match next_esc { Some((l, at)) => { "level " (l) " " (countdown(at, now)) }, None => span.muted { "none due" } }
                        }
                        @if let Some(at) = ev.diagnosed_at { dt { "Diagnosed" } dd { (time(at)) } }
                    }
                }
            }
            section.card aria-labelledby="actions" {
                h2 #actions { "Actions" }
                (actions(who, &case, &engineers))
                @if survey_open {
                    (survey_form(who, &case))
                }
            }
        }
        @if let Some(panel) = &spares {
            (super::spares::render(who, &case, panel, now))
        }
        @if let Some(list) = &suggestions {
            section.card aria-labelledby="suggestions" {
                h2 #suggestions { "Suggested articles" }
                @if list.is_empty() { p.muted { "No published article matches this case yet." } }
                @else { (super::kb::hits(list)) }
                @if may_draft {
                    form method="post" action="/kb/draft" {
                        input type="hidden" name="csrf" value=(who.csrf);
                        input type="hidden" name="case_number" value=(case.number);
                        button.secondary type="submit" { "Draft an article from this case" }
                    }
                }
            }
        }
        @if let Some(panel) = &visits {
            (super::visits::render(who, &case, panel, now))
        }
        section.card aria-labelledby="timeline" {
            h2 #timeline { "History" }
            p.small { (history.len()) " entries, oldest first; none is ever changed."
                @if staff { " Internal entries are marked and never shown to the customer." } }
            ol.timeline { @for a in &history { (entry(a)) } }
        }
        @if case.device_id.is_some() {
            section.card aria-labelledby="related" {
                h2 #related { "Other cases on this device" }
                (case_table(&related))
            }
        }
    };
    let mut resp = Page::new(who, title, Nav::None)
        .error(error)
        .notice(notice)
        .response(body);
    *resp.status_mut() = status;
    Ok(resp)
}

fn answered_since_close(history: &[ActivityView]) -> bool {
    let closed = history.iter().rposition(|a| {
        matches!(
            a.body,
            ActivityBody::StatusChanged {
                to: Status::Closed,
                ..
            }
        )
    });
    match closed {
        Some(i) => history[i..]
            .iter()
            .any(|a| matches!(a.body, ActivityBody::SurveyAnswered { .. })),
        None => false,
    }
}

fn clock_row(label: &str, c: &crate::sla::clock::ClockState, now: chrono::DateTime<Utc>) -> Markup {
    html! {
        h3 { (label) }
        p {
            @if let Some(t) = &c.target { "Target " (t.to_string()) ". " }
            @if let Some(at) = c.stopped_at {
                "Stopped " (time(at)) " after " (span_words(c.elapsed_secs)) "."
                @if c.breached { " " span.breached { "Target missed." } } @else { " " span.tag.ok { "met" } }
            } @else if c.paused {
                "Paused (" (span_words(c.elapsed_secs)) " used)."
                @if c.breached { " " span.breached { "Target missed." } }
            } @else if let Some(due) = c.due_at {
                "Due " (time(due)) ": " strong { (countdown(due, now)) }
            } @else {
                span.muted { "no target" }
            }
        }
    }
}

fn entry(a: &ActivityView) -> Markup {
    let class = match (a.visibility, a.author.is_none()) {
        (Visibility::Internal, _) => "internal",
        (_, true) => "system",
        _ => "",
    };
    html! {
        li class=(class) id={"entry-" (a.seq)} {
            div.meta {
                "#" (a.seq) " " strong { (kind_words(&a.body)) } " by " (a.author_name) ", " (time(a.at))
                @if a.visibility == Visibility::Internal { " " span.tag.warn { "internal" } }
            }
            (entry_body(&a.body))
        }
    }
}

fn kind_words(b: &ActivityBody) -> &'static str {
    match b {
        ActivityBody::Opened { .. } => "Opened",
        ActivityBody::Note { .. } => "Note",
        ActivityBody::Call { .. } => "Call",
        ActivityBody::StatusChanged { .. } => "Status",
        ActivityBody::PriorityChanged { .. } => "Priority",
        ActivityBody::Assigned { .. } => "Assigned",
        ActivityBody::TakenOver { .. } => "Taken over",
        ActivityBody::Classified { .. } => "Classified",
        ActivityBody::SlaEvent { .. } => "SLA",
        ActivityBody::FieldVisit { .. } => "Field visit",
        ActivityBody::FaultReport { .. } => "Fault report",
        ActivityBody::SurveyAnswered { .. } => "Survey",
        ActivityBody::NotificationFailed { .. } => "Notification failed",
        ActivityBody::AlertAcknowledged { .. } => "Alert acknowledged",
        ActivityBody::Fault { .. } => "Fault",
        ActivityBody::Diagnosed { .. } => "Diagnosed",
        ActivityBody::RemoteSession { .. } => "Remote session",
        ActivityBody::ExpertAdded { .. } => "Expert",
        ActivityBody::RemoteApproval { .. } => "Remote access",
        ActivityBody::Shipment { .. } => "Spare shipment",
        ActivityBody::Entitlement { .. } => "Coverage",
        ActivityBody::Visit { .. } => "Field visit",
    }
}

fn entry_body(b: &ActivityBody) -> Markup {
    match b {
        ActivityBody::Opened {
            summary,
            priority,
            channel,
            case_type,
        } => {
            html! { p.text { (priority.as_str()) ", " (case_type.as_str().replace('_', " ")) ", by " (channel.as_str()) ": " (summary) } }
        }
        ActivityBody::Note { text, corrects } => html! {
            @if let Some(c) = corrects { p.small { "Corrects " a href={"#entry-" (c)} { "#" (c) } } }
            p.text { (text) }
        },
        ActivityBody::Call {
            direction,
            party,
            phone,
            duration_secs,
            summary,
        } => html! {
            p.text {
                (if *direction == CallDirection::Inbound { "From " } else { "To " }) (party)
                @if let Some(p) = phone { " (" (p) ")" }
                @if let Some(d) = duration_secs { ", " (span_words(*d)) }
                ": " (summary)
            }
        },
        ActivityBody::StatusChanged { from, to, reason } => html! {
            p.text { (from.as_str()) " to " strong { (to.as_str()) } @if let Some(r) = reason { ": " (r) } }
        },
        ActivityBody::PriorityChanged { from, to, reason } => html! {
            p.text { (from.as_str()) " to " strong { (to.as_str()) } ": " (reason) }
        },
        ActivityBody::Assigned { from, to, reason } => html! {
            p.text { @if let Some(f) = from { (f.name) " to " } strong { (to.name) } @if let Some(r) = reason { ": " (r) } }
        },
        ActivityBody::TakenOver { from, to } => html! {
            p.text { strong { (to.name) } " took the case" @if let Some(f) = from { " from " (f.name) } }
        },
        ActivityBody::Classified {
            case_type, vendor, ..
        } => html! {
            p.text { (case_type.as_str().replace('_', " ")) @if let Some(v) = vendor { ", vendor " (v) } }
        },
        ActivityBody::SlaEvent {
            event,
            level,
            due_at,
            late,
            ..
        } => html! {
            p.text { (format!("{event:?}")) @if let Some(l) = level { " (level " (l) ")" } ", due " (time(*due_at)) @if *late { " (fired late)" } }
        },
        ActivityBody::FieldVisit {
            engineer,
            arrived_at,
            left_at,
            work_done,
            customer_signoff,
        } => html! {
            p.text { (engineer) " on site " (time(*arrived_at)) @if let Some(l) = left_at { " to " (time(*l)) } ": " (work_done)
                @if let Some(c) = customer_signoff { " (signed off by " (c) ")" } }
        },
        ActivityBody::FaultReport {
            cause,
            actions,
            prevention,
        } => html! {
            dl.facts { dt { "Cause" } dd { (cause) } dt { "Actions" } dd { (actions) } dt { "Prevention" } dd { (prevention) } }
        },
        ActivityBody::SurveyAnswered { rating, comment } => html! {
            p.text { "Rated " strong { (rating) " of 5" } @if let Some(c) = comment { ": " (c) } }
        },
        ActivityBody::NotificationFailed {
            channel,
            recipient,
            address,
            reason,
            error,
            ..
        } => {
            html! { p.text { (channel) " to " (recipient) " <" (address) "> (" (reason) "): " (error) } }
        }
        ActivityBody::AlertAcknowledged { alert_id, level } => html! {
            p.text { "Alert " (alert_id) @if let Some(l) = level { " (level " (l) ")" } }
        },
        ActivityBody::Fault {
            transition,
            fault_key,
            severity,
            summary,
            agent,
            ..
        } => {
            html! { p.text { (format!("{transition:?}")) " " (severity) ": " (summary) " (" (fault_key) ", agent " (agent) ")" } }
        }
        ActivityBody::Diagnosed { summary } => html! { p.text { (summary) } },
        ActivityBody::RemoteSession {
            phase,
            engineer,
            device,
            port,
            end_reason,
            ..
        } => html! {
            p.text { (engineer.name) " " (phase) " a session to " (device) ":" (port) @if let Some(r) = end_reason { " (" (r) ")" } }
        },
        ActivityBody::ExpertAdded { expert, reason } => {
            html! { p.text { strong { (expert.name) } " brought in: " (reason) } }
        }
        ActivityBody::RemoteApproval {
            action,
            engineer,
            reason,
            expires_at,
            ..
        } => html! {
            p.text { (action) @if let Some(e) = engineer { " for " (e.name) } " until " (time(*expires_at)) ": " (reason) }
        },
        ActivityBody::Entitlement {
            covered,
            contract,
            in_warranty,
            warranty_end,
            reasons,
        } => html! {
            p.text {
                @if *covered { span.tag.ok { "covered" } } @else { span.tag.bad { "out of coverage" } }
                @if let Some(k) = contract { " contract " (k) }
                @match (in_warranty, warranty_end) {
                    (Some(true), Some(end)) => { ", in warranty until " (end) },
                    (Some(false), Some(end)) => { ", warranty ended " (end) },
                    (Some(false), None) => { ", no warranty recorded" },
                    _ => {},
                }
                @if !reasons.is_empty() { ": " (reasons.join("; ")) }
            }
        },
        ActivityBody::Visit {
            visit_id,
            step,
            engineer,
            scheduled_at,
            address,
            at,
            work_done,
            parts_used,
            repaired,
            backup_equipment,
            signoff,
            reason,
            due_at,
            ..
        } => html! {
            p.text {
                @if let Some(v) = visit_id { "Visit " (v) ": " }
                (step.replace('_', " "))
                @if let Some(e) = engineer { ", " (e.name) }
                @if let Some(t) = scheduled_at { " for " (time(*t)) }
                @if let Some(a) = address { " at " (a) }
                @if let Some(t) = at { " " (time(*t)) }
                @if let Some(d) = due_at { " (promise due " (time(*d)) ")" }
                @if let Some(w) = work_done { ": " (w) }
                @if *repaired == Some(true) { " (repaired)" }
                @if let Some(b) = backup_equipment { "; backup equipment: " (b) }
                @if let Some(n) = signoff { " signed off by " (n) }
                @if let Some(r) = reason { ": " (r) }
            }
            @if !parts_used.is_empty() {
                ul { @for p in parts_used { li { (p.quantity) " x " (p.part_number) @if let Some(s) = &p.serial { ", serial " (s) } } } }
            }
        },
        ActivityBody::Shipment {
            shipment_id,
            part_number,
            quantity,
            state,
            carrier,
            tracking_number,
            serial,
            reason,
            due_at,
            ..
        } => html! {
            p.text {
                "Shipment " (shipment_id) ": " (quantity) " x " (part_number) " " (state.replace('_', " "))
                @if let Some(c) = carrier { ", " (c) }
                @if let Some(t) = tracking_number { " " (t) }
                @if let Some(s) = serial { ", serial " (s) }
                @if let Some(d) = due_at { ", due " (time(*d)) }
                @if let Some(r) = reason { ": " (r) }
            }
        },
    }
}

fn csrf(who: &WebAuth) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

fn actions(who: &WebAuth, c: &CaseView, engineers: &[crate::directory::User]) -> Markup {
    let p = &who.principal;
    let base = format!("/cases/{}", c.number);
    let staff = p.role.is_staff();
    let open = c.status.is_open();
    let next: Vec<Status> = Status::ALL
        .iter()
        .copied()
        .filter(|to| c.status.transition(*to, false).is_ok())
        .collect();
    let is_assignee = c.assignee.as_ref().map(|a| a.id) == Some(p.user_id);
    html! {
        details.action open {
            summary { "Add a note" }
            form method="post" action={(base) "/note"} {
                (csrf(who))
                label for="note-text" { "Note" }
                textarea #note-text name="text" required rows="4" {}
                @if staff && p.may(Action::AddInternalNote) {
                    fieldset {
                        legend { "Who may read it" }
                        label { input type="radio" name="visibility" value="internal" checked; " internal (staff only)" }
                        label { input type="radio" name="visibility" value="public"; " public (the customer too)" }
                    }
                }
                button type="submit" { "Add note" }
            }
        }
        @if p.role == Role::Customer && c.status == Status::Resolved {
            details.action open {
                summary { "Is it fixed?" }
                form method="post" action={(base) "/status"} {
                    (csrf(who))
                    input type="hidden" name="status" value="closed";
                    input type="hidden" name="reason" value="confirmed by the customer";
                    button type="submit" { "Yes, close the case" }
                }
                form method="post" action={(base) "/status"} {
                    (csrf(who))
                    input type="hidden" name="status" value="reopened";
                    label for="reopen-why" { "Not fixed? Tell us why" }
                    input #reopen-why name="reason" required;
                    button.secondary type="submit" { "Reopen" }
                }
            }
        }
        @if staff && p.may(Action::TakeOver) && !is_assignee && open {
            form method="post" action={(base) "/take-over"} {
                (csrf(who))
                button type="submit" { "Take over this case" }
            }
        }
        @if staff && p.may(Action::Assign) && open {
            details.action {
                summary { @if c.assignee.is_some() { "Reassign" } @else { "Assign" } }
                form method="post" action={(base) "/assign"} {
                    (csrf(who))
                    label for="assignee" { "Engineer" }
                    select #assignee name="assignee_id" required {
                        @for e in engineers { option value=(e.id) { (e.display_name) " (" (e.role.as_str()) ")" } }
                    }
                    label for="assign-why" { "Reason (optional)" }
                    input #assign-why name="reason";
                    button type="submit" { "Assign" }
                }
            }
        }
        @if staff && p.may(Action::ChangeStatus) && !next.is_empty() {
            details.action {
                summary { "Change status" }
                form method="post" action={(base) "/status"} {
                    (csrf(who))
                    label for="status" { "New status" }
                    select #status name="status" {
                        @for st in &next { option value=(st.as_str()) { (st.as_str().replace('_', " ")) } }
                    }
                    label for="status-why" { "Reason (required to resolve, close or reopen)" }
                    input #status-why name="reason";
                    button type="submit" { "Change" }
                }
                @if matches!(c.priority, Priority::P1 | Priority::P2) {
                    p.small { "A P1 or P2 case closes only with its fault report." }
                }
            }
        }
        @if staff && p.may(Action::RecordCall) {
            details.action {
                summary { "Record a call" }
                form method="post" action={(base) "/call"} {
                    (csrf(who))
                    label for="call-dir" { "Direction" }
                    select #call-dir name="direction" { option value="outbound" { "we called" } option value="inbound" { "they called" } }
                    label for="call-party" { "With" }
                    input #call-party name="party" required value=(c.caller.name);
                    label for="call-phone" { "Number" }
                    input #call-phone name="phone" type="tel" value=(c.caller.phone.clone().unwrap_or_default());
                    label for="call-min" { "Minutes" }
                    input #call-min name="minutes" type="number" min="0" max="1440";
                    label for="call-summary" { "What was said" }
                    textarea #call-summary name="summary" required rows="3" {}
                    label { input type="checkbox" name="public" value="1"; " the customer may read this" }
                    button type="submit" { "Record call" }
                }
            }
        }
        @if staff && p.may(Action::ChangePriority) && open {
            details.action {
                summary { "Change priority" }
                form method="post" action={(base) "/priority"} {
                    (csrf(who))
                    label for="prio" { "Priority" }
                    select #prio name="priority" { @for pr in Priority::ALL { option value=(pr.as_str()) selected[*pr == c.priority] { (pr.as_str()) } } }
                    label for="prio-why" { "Reason" }
                    input #prio-why name="reason" required;
                    button type="submit" { "Change" }
                }
            }
        }
        @if staff && p.may(Action::EscalateToExpert) && open {
            details.action {
                summary { "Escalate to an expert" }
                form method="post" action={(base) "/expert"} {
                    (csrf(who))
                    label for="expert" { "Expert" }
                    select #expert name="user_id" required {
                        @for e in engineers.iter().filter(|e| e.role == Role::Expert) { option value=(e.id) { (e.display_name) } }
                        @for e in engineers.iter().filter(|e| e.role == Role::Engineer) { option value=(e.id) { (e.display_name) " (engineer)" } }
                    }
                    label for="expert-why" { "What should they look at?" }
                    input #expert-why name="reason" required;
                    button type="submit" { "Escalate" }
                }
            }
        }
        @if staff && p.may(Action::ChangeStatus) && open {
            details.action {
                summary { "Escalate to the vendor" }
                form method="post" action={(base) "/vendor"} {
                    (csrf(who))
                    label for="vendor" { "Vendor" }
                    input #vendor name="vendor" required value=(c.vendor.clone().unwrap_or_default());
                    label for="vendor-ref" { "Vendor's case reference (optional)" }
                    input #vendor-ref name="reference";
                    label for="vendor-why" { "What was asked" }
                    textarea #vendor-why name="question" required rows="3" {}
                    p.small { "Sets the case to waiting for the vendor and records the question internally." }
                    button type="submit" { "Escalate to vendor" }
                }
            }
            details.action {
                summary { "Record the diagnosis" }
                form method="post" action={(base) "/diagnosis"} {
                    (csrf(who))
                    label for="diag" { "Cause found" }
                    input #diag name="summary" required;
                    p.small { "Stops escalation by time (SPEC.md 4)." }
                    button type="submit" { "Record" }
                }
            }
        }
        @if staff && p.may(Action::WriteFaultReport) && matches!(c.priority, Priority::P1 | Priority::P2) {
            details.action {
                summary { "Fault report" }
                form method="post" action={(base) "/report"} {
                    (csrf(who))
                    label for="r-cause" { "Cause" }
                    textarea #r-cause name="cause" required rows="2" {}
                    label for="r-actions" { "Actions taken" }
                    textarea #r-actions name="actions" required rows="2" {}
                    label for="r-prev" { "Prevention" }
                    textarea #r-prev name="prevention" required rows="2" {}
                    button type="submit" { "File report" }
                }
            }
        }
    }
}

fn survey_form(who: &WebAuth, c: &CaseView) -> Markup {
    html! {
        details.action open {
            summary { "How did we do?" }
            form method="post" action={"/cases/" (c.number) "/survey"} {
                (csrf(who))
                fieldset {
                    legend { "Your rating (5 is best)" }
                    @for r in 1..=5 { label { input type="radio" name="rating" value=(r) required; " " (r) } }
                }
                label for="survey-comment" { "Comment (optional)" }
                textarea #survey-comment name="comment" rows="3" {}
                button type="submit" { "Send" }
            }
        }
    }
}

// ---------------------------------------------------------------- actions

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    assignee_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    party: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    minutes: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    public: Option<String>,
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    cause: Option<String>,
    #[serde(default)]
    actions: Option<String>,
    #[serde(default)]
    prevention: Option<String>,
    #[serde(default)]
    rating: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    /// `queues`: go back to the queues page afterwards.
    #[serde(default)]
    back: Option<String>,
}

/// `POST /cases/{number}/{action}`: one of the workspace's forms. Refusals
/// by the domain show the workspace again with the reason.
pub async fn act(
    State(s): State<AppState>,
    who: WebAuth,
    Path((number, action)): Path<(String, String)>,
    WebForm(f): WebForm<ActionForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let p = &who.principal;
    let text = |field: &str, v: &Option<String>| {
        opt(v).ok_or_else(|| Error::invalid(field, "must not be empty"))
    };
    let result: Result<(), Error> = async {
        match action.as_str() {
            "note" => {
                let visibility = match opt(&f.visibility) {
                    Some(v) => Some(v.parse::<Visibility>()?),
                    None => None,
                };
                let note = NewNote {
                    text: text("text", &f.text)?,
                    visibility,
                    corrects: None,
                };
                s.cases.add_note(p, &number, &note).await?;
            }
            "status" => {
                let req = StatusChange {
                    status: parse("status", &f.status)?,
                    reason: opt(&f.reason),
                };
                s.cases.set_status(p, &number, &req).await?;
            }
            "priority" => {
                let req = PriorityChange {
                    priority: parse("priority", &f.priority)?,
                    reason: text("reason", &f.reason)?,
                };
                s.cases.set_priority(p, &number, &req).await?;
            }
            "assign" => {
                let req = Assignment {
                    assignee_id: opt_id("assignee_id", &f.assignee_id)?
                        .ok_or_else(|| Error::invalid("assignee_id", "choose an engineer"))?,
                    reason: opt(&f.reason),
                };
                s.cases.assign(p, &number, &req).await?;
            }
            "take-over" => {
                s.cases.take_over(p, &number).await?;
            }
            "call" => {
                let direction = match opt(&f.direction).as_deref() {
                    Some("inbound") => CallDirection::Inbound,
                    Some("outbound") | None => CallDirection::Outbound,
                    Some(other) => {
                        return Err(Error::invalid(
                            "direction",
                            format!("{other:?} is not inbound or outbound"),
                        ))
                    }
                };
                let minutes = opt_id("minutes", &f.minutes)?;
                let req = NewCall {
                    direction,
                    party: text("party", &f.party)?,
                    phone: opt(&f.phone),
                    duration_secs: minutes.map(|m| m.saturating_mul(60)),
                    summary: text("summary", &f.summary)?,
                    visibility: Some(if opt(&f.public).is_some() {
                        Visibility::Public
                    } else {
                        Visibility::Internal
                    }),
                };
                s.cases.record_call(p, &number, &req).await?;
            }
            "expert" => {
                let req = crate::cases::experts::NewExpert {
                    user_id: opt_id("user_id", &f.user_id)?
                        .ok_or_else(|| Error::invalid("user_id", "choose an expert"))?,
                    reason: text("reason", &f.reason)?,
                };
                s.cases.add_expert(p, &number, &req).await?;
            }
            "vendor" => {
                p.require(Action::ChangeStatus)?;
                let vendor = text("vendor", &f.vendor)?;
                let question = text("question", &f.question)?;
                let case = s.cases.get(p, &number).await?.to_view()?;
                if case.vendor.as_deref() != Some(vendor.as_str()) {
                    s.cases
                        .classify(
                            p,
                            &number,
                            &Classification {
                                case_type: None,
                                vendor: Some(vendor.clone()),
                            },
                        )
                        .await?;
                }
                let reference = opt(&f.reference)
                    .map(|r| format!(" (vendor reference {r})"))
                    .unwrap_or_default();
                let note = NewNote {
                    text: format!("Escalated to the vendor {vendor}{reference}: {question}"),
                    visibility: Some(Visibility::Internal),
                    corrects: None,
                };
                s.cases.add_note(p, &number, &note).await?;
                if case.status != Status::WaitingVendor {
                    s.cases
                        .set_status(
                            p,
                            &number,
                            &StatusChange {
                                status: Status::WaitingVendor,
                                reason: Some(format!("escalated to {vendor}{reference}")),
                            },
                        )
                        .await?;
                }
            }
            "diagnosis" => {
                let req = crate::cases::feedback::NewDiagnosis {
                    summary: text("summary", &f.summary)?,
                };
                s.cases.diagnose(p, &number, &req).await?;
            }
            "report" => {
                let req = crate::cases::feedback::NewFaultReport {
                    cause: text("cause", &f.cause)?,
                    actions: text("actions", &f.actions)?,
                    prevention: text("prevention", &f.prevention)?,
                };
                s.cases.add_fault_report(p, &number, &req).await?;
            }
            "survey" => {
                let rating = opt_id("rating", &f.rating)?
                    .ok_or_else(|| Error::invalid("rating", "choose 1 to 5"))?;
                let req = crate::cases::feedback::SurveyAnswer {
                    rating,
                    comment: opt(&f.comment),
                };
                s.cases.answer_survey_signed_in(p, &number, &req).await?;
            }
            other => return Err(Error::not_found(format!("case action {other:?}"))),
        }
        Ok(())
    }
    .await;
    if result.is_ok() && opt(&f.back).as_deref() == Some("queues") {
        return Ok(Redirect::to(&format!("/queues?done={action}&case={number}")).into_response());
    }
    after_action(&s, &who, &number, &action, result).await
}

/// After a workspace form: back to the case with a notice, or the
/// workspace again with the reason the domain refused it.
pub(super) async fn after_action(
    s: &AppState,
    who: &WebAuth,
    number: &str,
    action: &str,
    result: Result<(), Error>,
) -> WebResult {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/cases/{number}?done={action}")).into_response()),
        Err(
            e @ (Error::Invalid { .. }
            | Error::Conflict(_)
            | Error::IllegalTransition { .. }
            | Error::Forbidden(_)),
        ) => {
            let status = match &e {
                Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                Error::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            workspace(s, who, number, Some(e.to_string()), None, status).await
        }
        Err(e) => Err(e.into()),
    }
}
