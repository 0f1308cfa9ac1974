//! The service report in the console: `/console/organizations/{id}/service-report`
//! (the report for a chosen period, with the PDF download and the e-mail
//! schedule) and `.../service-report.pdf`. The report and who may see it
//! come from [`crate::reports::Reports`], as for the API.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, Page, WebResult};
use super::WebAuth;
use crate::http::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct PeriodQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

fn query(q: &PeriodQuery) -> String {
    match (&q.from, &q.to) {
        (Some(f), Some(t)) => format!("?from={}&to={}", urlencoding(f), urlencoding(t)),
        _ => String::new(),
    }
}

/// Dates are digits and dashes; anything else is dropped from the link.
fn urlencoding(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_digit() || *c == '-')
        .collect()
}

/// `GET /console/organizations/{id}/service-report`.
pub async fn page(
    State(s): State<AppState>,
    who: WebAuth,
    Path(id): Path<i64>,
    Query(q): Query<PeriodQuery>,
) -> WebResult {
    let period = crate::reports::period(
        q.from.as_deref(),
        q.to.as_deref(),
        s.clock.now().date_naive(),
    )?;
    let r = s.reports.report(&who.principal, id, period).await?;
    let schedule = s.reports.schedule(&who.principal, id).await.ok();
    let body = html! {
        form.row method="get" action={"/console/organizations/" (id) "/service-report"} {
            div { label for="from" { "From" } input #from type="date" name="from" value=(r.from.to_string()); }
            div { label for="to" { "To" } input #to type="date" name="to" value=(r.to.to_string()); }
            button type="submit" { "Show" }
            a.button.secondary href={"/console/organizations/" (id) "/service-report.pdf" (query(&q))} download { "Download PDF" }
        }
        p.small {
            @match &schedule {
                Some(sc) => { "E-mailed " (sc.frequency_words()) " to " (sc.recipients.join(", ")) "; next on "
                    (sc.next_run_at.format("%Y-%m-%d %H:%M UTC")) " (covering " (sc.next_from) " to " (sc.next_to) ")." }
                None => { "Not e-mailed on a schedule (set one with PUT /api/v1/organizations/" (id) "/report-schedule)." }
            }
        }
        section.card { (crate::reports::html::body(&r)) }
    };
    // A customer reaches it from the navigation; staff from the dossier.
    let nav = if who.principal.role.is_staff() {
        Nav::None
    } else {
        Nav::Report
    };
    Ok(Page::new(
        &who,
        format!("Service report: {}", r.organization_name),
        nav,
    )
    .response(body))
}

/// `GET /console/organizations/{id}/service-report.pdf`.
pub async fn pdf(
    State(s): State<AppState>,
    who: WebAuth,
    Path(id): Path<i64>,
    Query(q): Query<PeriodQuery>,
) -> WebResult {
    let period = crate::reports::period(
        q.from.as_deref(),
        q.to.as_deref(),
        s.clock.now().date_naive(),
    )?;
    let r = s.reports.report(&who.principal, id, period).await?;
    let pdf = s.reports.pdf(&r).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}.pdf\"",
                    crate::http::service_reports::file_name(&r)
                ),
            ),
        ],
        pdf,
    )
        .into_response())
}
