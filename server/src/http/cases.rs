//! `/api/v1/cases`: open, read, search, and every change to a case.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::cases::*;

/// Open a case.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", request_body = NewCase,
    responses((status = 201, body = CaseView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_case(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewCase>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    Ok((StatusCode::CREATED, Json(s.cases.open(&who, &req).await?)))
}

/// Search cases, newest first. Customers see their own organisation's only.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(CaseQuery),
    responses((status = 200, body = CasePage), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_cases(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<CaseQuery>,
) -> ApiResult<Json<CasePage>> {
    Ok(Json(s.cases.search(&who, &q).await?))
}

/// One case.
#[utoipa::path(get, path = "/api/v1/cases/{number}", tag = "cases",
    params(("number" = String, Path, description = "Case number, e.g. C-2026-000042")),
    responses((status = 200, body = CaseView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_case(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.get(&who, &number).await?.to_view()?))
}

/// The case history, oldest first (customers see public entries only).
#[utoipa::path(get, path = "/api/v1/cases/{number}/activities", tag = "cases",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = Vec<ActivityView>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_activities(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<Vec<ActivityView>>> {
    Ok(Json(s.cases.history(&who, &number).await?))
}

/// Change the status (the status machine decides what is legal).
#[utoipa::path(post, path = "/api/v1/cases/{number}/status", tag = "cases", request_body = StatusChange,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_status(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<StatusChange>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.set_status(&who, &number, &req).await?))
}

/// Change the priority (a reason is required).
#[utoipa::path(post, path = "/api/v1/cases/{number}/priority", tag = "cases", request_body = PriorityChange,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_priority(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<PriorityChange>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.set_priority(&who, &number, &req).await?))
}

/// Assign or reassign an engineer (dispatchers, managers).
#[utoipa::path(post, path = "/api/v1/cases/{number}/assign", tag = "cases", request_body = Assignment,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn assign(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<Assignment>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.assign(&who, &number, &req).await?))
}

/// Take the case over yourself (engineers, experts).
#[utoipa::path(post, path = "/api/v1/cases/{number}/take-over", tag = "cases",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn take_over(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.take_over(&who, &number).await?))
}

/// Change the case type and/or vendor.
#[utoipa::path(post, path = "/api/v1/cases/{number}/classification", tag = "cases", request_body = Classification,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn classify(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<Classification>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.classify(&who, &number, &req).await?))
}

/// Add a note (internal by default for staff; customers' notes are public).
#[utoipa::path(post, path = "/api/v1/cases/{number}/notes", tag = "cases", request_body = NewNote,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 201, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_note(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewNote>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.cases.add_note(&who, &number, &req).await?),
    ))
}

/// Record a phone call.
#[utoipa::path(post, path = "/api/v1/cases/{number}/calls", tag = "cases", request_body = NewCall,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 201, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_call(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewCall>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.cases.record_call(&who, &number, &req).await?),
    ))
}

/// Record an on-site visit.
#[utoipa::path(post, path = "/api/v1/cases/{number}/field-visits", tag = "cases", request_body = NewFieldVisit,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 201, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_field_visit(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewFieldVisit>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.cases.record_field_visit(&who, &number, &req).await?),
    ))
}

/// The SLA clock view of a case (staff): policy and calendar in force,
/// elapsed and paused working time per clock, deadlines ahead and passed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SlaView {
    pub policy: String,
    pub calendar: String,
    pub timezone: String,
    #[serde(flatten)]
    pub evaluation: crate::sla::clock::Evaluation,
}

/// The live SLA clocks of a case (staff only).
#[utoipa::path(get, path = "/api/v1/cases/{number}/sla", tag = "cases",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = SlaView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_sla(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<SlaView>> {
    who.require(crate::auth::Action::ReadInternal)?;
    let row = s.cases.get(&who, &number).await?;
    let clocks = crate::sla::engine::load_row(&s.store, &s.sla.current(), row)
        .await?
        .ok_or_else(|| crate::error::Error::not_found(format!("case {number}")))?;
    let evaluation = crate::sla::clock::evaluate(
        &clocks.policy,
        &clocks.calendar,
        &clocks.timeline,
        s.clock.now(),
    );
    Ok(Json(SlaView {
        policy: clocks.policy.name.clone(),
        calendar: clocks.calendar.name().to_string(),
        timezone: clocks.calendar.timezone().name().to_string(),
        evaluation,
    }))
}
