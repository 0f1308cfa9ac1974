//! Service reports over HTTP: an organisation's report for a period as
//! JSON, HTML or PDF, and its e-mail schedule.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::reports::schedule::{ScheduleRequest, ScheduleView};
use crate::reports::ServiceReport;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Html,
    Pdf,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// First day, YYYY-MM-DD (UTC). Without both dates: the last 30 days.
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC), included.
    pub to: Option<String>,
    /// json (default), html or pdf.
    #[param(inline)]
    pub format: Option<Format>,
}

/// The report's file name (without extension).
pub fn file_name(r: &ServiceReport) -> String {
    format!("service-report-{}-{}-{}", r.organization_id, r.from, r.to)
}

/// The organisation's service report: cases opened and closed by priority,
/// SLA compliance, breaches and escalations, spares shipped (staff; a
/// customer for its own organisation). PDF needs Chromium on the server
/// (503 otherwise).
#[utoipa::path(get, path = "/api/v1/organizations/{id}/service-report", tag = "reports",
    params(("id" = i64, Path, description = "Organisation id"), ReportQuery),
    responses((status = 200, body = ServiceReport, description = "JSON; with format=html a text/html document, with format=pdf an application/pdf file"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn service_report(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Response> {
    let period = crate::reports::period(
        q.from.as_deref(),
        q.to.as_deref(),
        s.clock.now().date_naive(),
    )?;
    let report = s.reports.report(&who, id, period).await?;
    Ok(match q.format.unwrap_or_default() {
        Format::Json => Json(report).into_response(),
        Format::Html => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::reports::html::document(&report).into_string(),
        )
            .into_response(),
        Format::Pdf => {
            let pdf = s.reports.pdf(&report).await?;
            (
                [
                    (header::CONTENT_TYPE, "application/pdf".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.pdf\"", file_name(&report)),
                    ),
                ],
                pdf,
            )
                .into_response()
        }
    })
}

/// The organisation's report schedule (staff; a customer its own).
#[utoipa::path(get, path = "/api/v1/organizations/{id}/report-schedule", tag = "reports",
    params(("id" = i64, Path, description = "Organisation id")),
    responses((status = 200, body = ScheduleView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ScheduleView>> {
    Ok(Json(s.reports.schedule(&who, id).await?))
}

/// Set the organisation's report schedule: weekly or monthly, to whom
/// (managers, admins). Needs `[notify.email]` (409 otherwise).
#[utoipa::path(put, path = "/api/v1/organizations/{id}/report-schedule", tag = "reports",
    request_body = ScheduleRequest,
    params(("id" = i64, Path, description = "Organisation id")),
    responses((status = 200, body = ScheduleView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> ApiResult<Json<ScheduleView>> {
    Ok(Json(s.reports.set_schedule(&who, id, &req).await?))
}

/// Stop the organisation's scheduled reports (managers, admins).
#[utoipa::path(delete, path = "/api/v1/organizations/{id}/report-schedule", tag = "reports",
    params(("id" = i64, Path, description = "Organisation id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.reports.delete_schedule(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
