//! The call-center console: one search box (customer ID, phone number, name
//! or device serial), the customer's dossier on one screen with the
//! topology drawn from LLDP, and the calls a phone system reported, for the
//! caller pop-up.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Json;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::layout::{
    priority_badge, raw_svg, status_badge, table_wrap, time, time_opt, Nav, Page, WebError,
    WebResult,
};
use super::{topology, WebAuth};
use crate::cases::CaseView;
use crate::directory::Dossier;
use crate::http::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

fn staff_only(who: &WebAuth) -> WebResult<()> {
    if who.principal.role.is_staff() {
        Ok(())
    } else {
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            "The call-center console is for staff.",
        ))
    }
}

fn search_box(q: &str) -> Markup {
    html! {
        form.search role="search" method="get" action="/console" {
            label.sr for="q" { "Customer ID, phone number, name or device serial" }
            input #q type="search" name="q" value=(q) autofocus
                placeholder="Customer ID, phone, name or serial" aria-describedby="q-help";
            button type="submit" { "Find" }
        }
        p #q-help .small { "Type what the caller gives you; press / anywhere to come back here." }
    }
}

/// `GET /console`: the search box, matches, and the latest calls.
pub async fn search(
    State(s): State<AppState>,
    who: WebAuth,
    Query(q): Query<SearchQuery>,
) -> WebResult {
    staff_only(&who)?;
    let text = q.q.trim().to_string();
    let mut error = None;
    let matches = if text.is_empty() {
        None
    } else {
        match crate::directory::lookup(&s.store, &who.principal, &text).await {
            Ok(m) => Some(m),
            Err(e @ crate::error::Error::Invalid { .. }) => {
                error = Some(e.to_string());
                None
            }
            Err(e) => return Err(e.into()),
        }
    };
    if let Some([one]) = matches.as_deref() {
        let mut to = format!("/console/organizations/{}", one.organization.id);
        if let Some(d) = one.device_id {
            to.push_str(&format!("?device={d}#device-{d}"));
        }
        return Ok(Redirect::to(&to).into_response());
    }
    let calls = s.store.recent_calls(10).await?;
    let body = html! {
        section.card aria-labelledby="find" {
            h2 #find { "Find a customer" }
            (search_box(&text))
            @if let Some(m) = &matches {
                @if m.is_empty() {
                    p role="status" { "Nothing matches " strong { (text) } "." }
                } @else {
                    h3 { (m.len()) " customers match" }
                    (table_wrap(None, html! {
                        table {
                            thead { tr { th scope="col" { "Customer" } th scope="col" { "ID" } th scope="col" { "Phone" } th scope="col" { "Matched by" } } }
                            tbody {
                                @for m in m {
                                    tr {
                                        td { a href={"/console/organizations/" (m.organization.id)} { (m.organization.name) } }
                                        td { (m.organization.customer_code) }
                                        td { (m.organization.phone.as_deref().unwrap_or("")) }
                                        td { (m.matched_by) }
                                    }
                                }
                            }
                        }
                    }))
                }
            }
        }
        section.card aria-labelledby="calls" {
            h2 #calls { "Latest calls" }
            @if calls.is_empty() {
                p.muted { "No calls reported by the phone system yet." }
            } @else {
                (table_wrap(None, html! {
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Caller" } th scope="col" { "Customer" } } }
                        tbody {
                            @for c in &calls {
                                tr {
                                    td { (time(c.received_at)) }
                                    td { a href={"/console?q=" (urlencode(&c.caller))} { (c.caller) } }
                                    td {
                                        @match (c.organization_id, &c.organization_name) {
                                            (Some(id), Some(name)) => a href={"/console/organizations/" (id) "?call=" (c.id)} { (name) },
                                            _ => span.muted { "no single match" },
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
    Ok(Page::new(&who, "Call center", Nav::Console)
        .error(error)
        .response(body))
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct DossierQuery {
    /// The call that led here (greets the caller, pre-fills the case).
    #[serde(default)]
    call: Option<i64>,
    /// A device to highlight (found by serial).
    #[serde(default)]
    device: Option<i64>,
}

/// `GET /console/organizations/{id}`: the dossier.
pub async fn dossier(
    State(s): State<AppState>,
    who: WebAuth,
    Path(id): Path<i64>,
    Query(q): Query<DossierQuery>,
) -> WebResult {
    staff_only(&who)?;
    let d = crate::directory::dossier(&s.cases, &who.principal, id).await?;
    let graph = crate::agents::topology::graph(&s.store, &who.principal, id).await?;
    let call = match q.call {
        Some(c) => s.store.call(c).await?,
        None => None,
    };
    let svg = topology::svg(&graph);
    let caller_phone = call.as_ref().map(|c| c.caller.clone());
    let body = render_dossier(&d, svg, call.as_ref(), caller_phone.as_deref(), q.device);
    Ok(Page::new(&who, d.organization.name.clone(), Nav::Console).response(body))
}

fn new_case_link(
    org: i64,
    device: Option<i64>,
    contract: Option<&str>,
    phone: Option<&str>,
) -> String {
    let mut href = format!("/cases/new?organization_id={org}");
    if let Some(d) = device {
        href.push_str(&format!("&device_id={d}"));
    }
    if let Some(c) = contract {
        href.push_str(&format!("&contract={}", urlencode(c)));
    }
    if let Some(p) = phone {
        href.push_str(&format!("&caller_phone={}", urlencode(p)));
    }
    href
}

fn render_dossier(
    d: &Dossier,
    svg: String,
    call: Option<&crate::store::web::CallRecord>,
    phone: Option<&str>,
    highlight: Option<i64>,
) -> Markup {
    let o = &d.organization;
    let first_contract = d
        .contracts
        .iter()
        .find(|c| c.active)
        .map(|c| c.contract.number.as_str());
    html! {
        @if let Some(c) = call {
            p.notice role="status" { "Caller " strong { (c.caller) } " on the line since " (time(c.received_at)) ": this is " strong { (o.name) } "." }
        }
        p {
            a.button href=(new_case_link(o.id, None, first_contract, phone)) { "New case for " (o.name) }
            " "
            a.button.secondary href={"/console/organizations/" (o.id) "/service-report"} { "Service report" }
        }
        div.grid {
            section.card aria-labelledby="customer" {
                h2 #customer { "Customer" }
                dl.facts {
                    dt { "Customer ID" } dd { (o.customer_code) }
                    dt { "Name" } dd { (o.name) }
                    dt { "Phone" } dd { (o.phone.as_deref().unwrap_or("-")) }
                    dt { "E-mail" } dd { (o.email.as_deref().unwrap_or("-")) }
                    dt { "Address" } dd { (o.address.as_deref().unwrap_or("-")) }
                    @if let Some(n) = &o.notes { dt { "Notes" } dd { (n) } }
                    dt { "Sites" } dd { @for (i, site) in d.sites.iter().enumerate() { @if i > 0 { ", " } (site.name) } }
                }
                h3 { "Engineers on open cases" }
                @if d.engineers.is_empty() { p.muted { "None." } }
                ul { @for e in &d.engineers { li { (e.display_name) @if let Some(m) = &e.mobile { " - " (m) } } } }
            }
            section.card aria-labelledby="contracts" {
                h2 #contracts { "Contracts" }
                @if d.contracts.is_empty() { p.muted { "No contracts." } }
                (table_wrap(None, html! {
                    table {
                        thead { tr { th scope="col" { "Contract" } th scope="col" { "Coverage" } th scope="col" { "Term" } th scope="col" { "State" } } }
                        tbody {
                            @for c in &d.contracts {
                                tr {
                                    td { (c.contract.number) @if let Some(p) = &c.contract.sla_policy { br; span.small { "SLA " (p) } } }
                                    td { (c.contract.coverage.as_str()) }
                                    td { (c.contract.starts_on) " to " (c.contract.ends_on) }
                                    td { @if c.active { span.tag.ok { "active" } } @else { span.tag.bad { "not active" } } }
                                }
                            }
                        }
                    }
                }))
            }
            section.card aria-labelledby="projects" {
                h2 #projects { "Projects and participants" }
                @if d.projects.is_empty() { p.muted { "No projects." } }
                @for p in &d.projects {
                    h3 { (p.name) }
                    @if let Some(desc) = &p.description { p.small { (desc) } }
                    ul {
                        @for x in &p.participants {
                            li { (x.name) ", " (x.role) " (" (x.side.as_str()) ")"
                                @if let Some(ph) = &x.phone { " - " (ph) }
                                @if let Some(m) = &x.email { " - " (m) } }
                        }
                    }
                }
            }
            section.card.wide aria-labelledby="equipment" {
                h2 #equipment { "Equipment" }
                (table_wrap(None, html! {
                    table {
                        thead { tr {
                            th scope="col" { "Device" } th scope="col" { "Model" } th scope="col" { "Serial" } th scope="col" { "Firmware" } th scope="col" { "Site" }
                            th scope="col" { "Coverage" } th scope="col" { "Warranty" } th scope="col" { "Agent" } th scope="col" { span.sr { "Actions" } }
                        } }
                        tbody {
                            @for dev in &d.devices {
                                @let x = &dev.device;
                                tr id={"device-" (x.id)} class=[(highlight == Some(x.id)).then_some("prompt-remind")] {
                                    td { (x.name) }
                                    td { (x.vendor) " " (x.model) }
                                    td { (x.serial) }
                                    td { (x.firmware_version.as_deref().or(x.software_version.as_deref()).unwrap_or("-")) }
                                    td { (dev.site_name.as_deref().unwrap_or("-")) }
                                    td { @if dev.covered_by.is_empty() { span.tag.bad { "not covered" } } @else { (dev.covered_by.join(", ")) } }
                                    td { @if dev.in_warranty { span.tag.ok { "in warranty" } } @else { span.tag.warn { "out of warranty" } }
                                         @if let Some(w) = x.warranty_end { br; span.small { "until " (w) } } }
                                    td { (agent_state(x)) }
                                    td { a href=(new_case_link(o.id, Some(x.id), dev.covered_by.first().map(String::as_str), phone)) { "New case" span.sr { " for " (x.name) } } }
                                }
                            }
                        }
                    }
                }))
            }
            section.card.wide aria-labelledby="topology" {
                h2 #topology { "Topology" }
                p.small { "Drawn from the links the agents learn over LLDP. Red: open cases on the device; green: none; grey: a neighbour known only by name." }
                (raw_svg(svg))
            }
            section.card.wide aria-labelledby="open" {
                h2 #open { "Open cases" }
                (case_table(&d.open_cases))
            }
            section.card.wide aria-labelledby="recent" {
                h2 #recent { "Recently resolved" }
                (case_table(&d.recent_cases))
            }
        }
    }
}

fn agent_state(x: &crate::directory::Device) -> Markup {
    html! {
        @if x.agent_id.is_none() {
            span.muted { "no agent" }
        } @else if let Some(since) = x.stale_since {
            span.tag.bad { "silent" } " since " (time(since))
        } @else {
            span.tag.ok { "reporting" } @if let Some(at) = x.last_seen_at { br; span.small { "last " (time(at)) } }
        }
    }
}

/// A table of cases with links to their workspaces.
pub fn case_table(cases: &[CaseView]) -> Markup {
    html! {
        @if cases.is_empty() {
            p.muted { "None." }
        } @else {
            (table_wrap(None, html! {
                table {
                    thead { tr { th scope="col" { "Case" } th scope="col" { "Priority" } th scope="col" { "Status" } th scope="col" { "Summary" } th scope="col" { "Device" } th scope="col" { "Assignee" } th scope="col" { "Opened" } } }
                    tbody {
                        @for c in cases {
                            tr {
                                td { a href={"/cases/" (c.number)} { (c.number) } }
                                td { (priority_badge(c.priority)) }
                                td { (status_badge(c.status)) }
                                td { (c.summary) }
                                td { (c.device_name.as_deref().unwrap_or("-")) }
                                td { @match &c.assignee { Some(a) => (a.name), None => span.muted { "unassigned" } } }
                                td { (time_opt(Some(c.created_at))) }
                            }
                        }
                    }
                }
            }))
        }
    }
}

/// `GET /console/organizations/{id}/topology.svg`: the diagram alone.
pub async fn topology_svg(
    State(s): State<AppState>,
    who: WebAuth,
    Path(id): Path<i64>,
) -> WebResult {
    let graph = crate::agents::topology::graph(&s.store, &who.principal, id).await?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        topology::svg(&graph),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct CallsQuery {
    #[serde(default)]
    after: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct PopupCall {
    id: i64,
    caller: String,
    received_at: chrono::DateTime<chrono::Utc>,
    matches: Vec<PopupMatch>,
}

#[derive(Debug, Serialize)]
pub struct PopupMatch {
    id: i64,
    name: String,
    code: String,
}

#[derive(Debug, Serialize)]
pub struct PopupCalls {
    calls: Vec<PopupCall>,
    last_id: i64,
}

/// `GET /console/calls?after=ID`: calls reported since the last one this
/// page saw (without `after`: those of the last two minutes), with the
/// customers each number matches, for the caller pop-up.
pub async fn calls(
    State(s): State<AppState>,
    who: WebAuth,
    Query(q): Query<CallsQuery>,
) -> Result<Json<PopupCalls>, WebError> {
    staff_only(&who)?;
    let now = s.clock.now();
    let (after, since) = match q.after {
        Some(a) => (a, now - chrono::Duration::minutes(10)),
        None => (0, now - chrono::Duration::minutes(2)),
    };
    let (rows, last_id) = s.store.calls_after(after, since, 20).await?;
    let mut calls = Vec::with_capacity(rows.len());
    for r in rows {
        let matches = crate::directory::lookup(&s.store, &who.principal, &r.caller)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|m| PopupMatch {
                id: m.organization.id,
                name: m.organization.name,
                code: m.organization.customer_code,
            })
            .collect();
        calls.push(PopupCall {
            id: r.id,
            caller: r.caller,
            received_at: r.received_at,
            matches,
        });
    }
    Ok(Json(PopupCalls { calls, last_id }))
}
