//! The dispatcher's queues: unassigned cases, and assigned cases whose
//! engineer has not responded yet, with live countdowns and the 30- and
//! 45-minute prompts of SPEC.md 4 (remind the engineer; reassign), each row
//! with one-click assign or reassign.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{
    countdown, priority_badge, status_badge, table_wrap, time, Nav, Page, WebError, WebResult,
};
use super::WebAuth;
use crate::auth::Action;
use crate::cases::CaseQuery;
use crate::directory::User;
use crate::http::AppState;
use crate::sla::clock::Deadline;

/// What the queue shows of one case.
struct Row {
    case: crate::cases::CaseView,
    response_due: Option<DateTime<Utc>>,
    remind_at: Option<DateTime<Utc>>,
    reassign_at: Option<DateTime<Utc>>,
}

async fn rows(s: &AppState, who: &crate::auth::Principal, q: CaseQuery) -> WebResult<Vec<Row>> {
    let page = s.cases.search(who, &q).await?;
    let registry = s.sla.current();
    let mut out = Vec::with_capacity(page.items.len());
    for case in page.items {
        let row = s.cases.get(who, &case.number).await?;
        let mut r = Row {
            case,
            response_due: None,
            remind_at: None,
            reassign_at: None,
        };
        if let Some(c) = crate::sla::engine::load_row(&s.store, &registry, row).await? {
            let ev =
                crate::sla::clock::evaluate(&c.policy, &c.calendar, &c.timeline, s.clock.now());
            r.response_due = ev.response.due_at;
            for d in &ev.upcoming {
                match *d {
                    Deadline::Reminder { due_at, .. } => {
                        r.remind_at =
                            Some(r.remind_at.map_or(due_at, |x: DateTime<Utc>| x.min(due_at)))
                    }
                    Deadline::Reassign { due_at } => r.reassign_at = Some(due_at),
                    _ => {}
                }
            }
        }
        out.push(r);
    }
    // Most urgent first.
    out.sort_by_key(|r| {
        (
            r.response_due.unwrap_or(DateTime::<Utc>::MAX_UTC),
            r.case.priority,
        )
    });
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    case: Option<String>,
}

/// `GET /queues`.
pub async fn queues(
    State(s): State<AppState>,
    who: WebAuth,
    Query(q): Query<QueueQuery>,
) -> WebResult {
    let p = &who.principal;
    if !p.role.is_staff() {
        return Err(WebError::new(
            StatusCode::FORBIDDEN,
            "The queues are for staff.",
        ));
    }
    let unassigned = rows(
        &s,
        p,
        CaseQuery {
            unassigned: Some(true),
            open: Some(true),
            limit: Some(200),
            ..Default::default()
        },
    )
    .await?;
    let waiting = rows(
        &s,
        p,
        CaseQuery {
            status: Some("assigned".into()),
            limit: Some(200),
            ..Default::default()
        },
    )
    .await?;
    let engineers = if p.may(Action::Assign) {
        super::cases::engineers(&s).await?
    } else {
        Vec::new()
    };
    let now = s.clock.now();
    let notice = match (q.done.as_deref(), q.case.as_deref()) {
        (Some("assign"), Some(c)) => Some(format!("{c} is assigned.")),
        (Some("take-over"), Some(c)) => Some(format!("{c} is yours now.")),
        _ => None,
    };
    let body = html! {
        section.card aria-labelledby="unassigned" {
            h2 #unassigned { "Unassigned (" (unassigned.len()) ")" }
            (table(&who, &unassigned, &engineers, now, false))
        }
        section.card aria-labelledby="waiting" {
            h2 #waiting { "Assigned, no response yet (" (waiting.len()) ")" }
            p.small { "At 30 minutes without a response, remind the engineer (yellow); at 45, reassign (red). Times count the contract's working hours." }
            (table(&who, &waiting, &engineers, now, true))
        }
    };
    Ok(Page::new(&who, "Queues", Nav::Queues)
        .refresh(30)
        .notice(notice)
        .response(body))
}

fn table(
    who: &WebAuth,
    rows: &[Row],
    engineers: &[User],
    now: DateTime<Utc>,
    assigned: bool,
) -> Markup {
    let p = &who.principal;
    if rows.is_empty() {
        return html! { p.muted { "Nothing waiting." } };
    }
    let iso =
        |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    table_wrap(
        None,
        html! {
            table {
                thead { tr {
                    th scope="col" { "Case" } th scope="col" { "Priority" } th scope="col" { "Customer" } th scope="col" { "Summary" }
                    @if assigned { th scope="col" { "Engineer" } } @else { th scope="col" { "Status" } }
                    th scope="col" { "Opened" } th scope="col" { "Response due" } th scope="col" { "Prompt" } th scope="col" { "Action" }
                } }
                tbody {
                    @for r in rows {
                        @let c = &r.case;
                        @let class = match (r.reassign_at, r.remind_at) {
                            (Some(at), _) if assigned && at <= now => "prompt-reassign",
                            (_, Some(at)) if assigned && at <= now => "prompt-remind",
                            _ => "",
                        };
                        tr class=(class) data-remind-at=[assigned.then(|| iso(r.remind_at)).flatten()] data-reassign-at=[assigned.then(|| iso(r.reassign_at)).flatten()] {
                            td { a href={"/cases/" (c.number)} { (c.number) } }
                            td { (priority_badge(c.priority)) }
                            td { (c.organization_name.as_deref().unwrap_or("-")) }
                            td { (c.summary) }
                            @if assigned {
                                td { @match &c.assignee { Some(a) => (a.name), None => "-" } }
                            } @else {
                                td { (status_badge(c.status)) }
                            }
                            td { (time(c.created_at)) }
                            td { @match r.response_due { Some(d) => (countdown(d, now)), None => span.muted { "-" } } }
                            td.prompt {
                                @if class == "prompt-reassign" { "Reassign now" } @else if class == "prompt-remind" { "Remind the engineer" }
                            }
                            td {
                                @if p.may(Action::Assign) && !engineers.is_empty() {
                                    form.row method="post" action={"/cases/" (c.number) "/assign"} {
                                        input type="hidden" name="csrf" value=(who.csrf);
                                        input type="hidden" name="back" value="queues";
                                        label.sr for={"assign-" (c.number)} { "Engineer for " (c.number) }
                                        select id={"assign-" (c.number)} name="assignee_id" {
                                            @for e in engineers.iter().filter(|e| Some(e.id) != c.assignee.as_ref().map(|a| a.id)) {
                                                option value=(e.id) { (e.display_name) }
                                            }
                                        }
                                        button type="submit" { @if assigned { "Reassign" } @else { "Assign" } }
                                    }
                                }
                                @if p.may(Action::TakeOver) && c.assignee.as_ref().map(|a| a.id) != Some(p.user_id) {
                                    form.inline method="post" action={"/cases/" (c.number) "/take-over"} {
                                        input type="hidden" name="csrf" value=(who.csrf);
                                        input type="hidden" name="back" value="queues";
                                        button type="submit" { "Take" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
