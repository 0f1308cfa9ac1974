//! Field service over HTTP: scheduled visits on cases with one endpoint per
//! step, the case's field promises, and preventive inspection schedules,
//! inspections and the due/overdue list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::field::inspections::{Inspection, NewInspection, NewSchedule, Schedule};
use crate::field::{step_state, CaseVisits, NewVisit, Visit, VisitQuery, VisitStepRequest};

/// Schedule an on-site visit on a case (dispatchers, engineers, experts,
/// admins). The address defaults to the case device's site; the first
/// visit starts the contract's on-site and repair promises.
#[utoipa::path(post, path = "/api/v1/cases/{number}/visits", tag = "field", request_body = NewVisit,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 201, body = Visit), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn schedule_visit(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewVisit>,
) -> ApiResult<(StatusCode, Json<Visit>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.field.schedule_visit(&who, &number, &req).await?),
    ))
}

/// A case's visits and its field promises (whoever may read the case).
#[utoipa::path(get, path = "/api/v1/cases/{number}/visits", tag = "field",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = CaseVisits), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn case_visits(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<CaseVisits>> {
    Ok(Json(s.field.case_visits(&who, &number).await?))
}

/// Visits across cases by scheduled time (staff).
#[utoipa::path(get, path = "/api/v1/visits", tag = "field", params(VisitQuery),
    responses((status = 200, body = Vec<Visit>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_visits(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<VisitQuery>,
) -> ApiResult<Json<Vec<Visit>>> {
    Ok(Json(s.field.visits(&who, &q).await?))
}

/// Move a visit one step (dispatchers, engineers, experts, admins):
/// `check-in` (at), `check-out` (at, work_done, parts_used, repaired,
/// backup_equipment), `sign-off` (name), `cancel` (reason). Illegal moves
/// are 409; a check-out before the check-in is 422.
#[utoipa::path(post, path = "/api/v1/visits/{id}/{step}", tag = "field", request_body = VisitStepRequest,
    params(("id" = i64, Path, description = "Visit id"),
           ("step" = String, Path, description = "check-in, check-out, sign-off or cancel")),
    responses((status = 200, body = Visit), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn visit_step(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath((id, step)): ApiPath<(i64, String)>,
    ApiJson(req): ApiJson<VisitStepRequest>,
) -> ApiResult<Json<Visit>> {
    let to = step_state(&step)?;
    Ok(Json(s.field.step(&who, id, to, &req).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScheduleQuery {
    /// Only schedules due within this many days (overdue ones included).
    pub within_days: Option<i64>,
}

/// Add a preventive inspection schedule to a contract (dispatchers, admins).
#[utoipa::path(post, path = "/api/v1/inspection-schedules", tag = "field", request_body = NewSchedule,
    responses((status = 201, body = Schedule), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewSchedule>,
) -> ApiResult<(StatusCode, Json<Schedule>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.field.create_schedule(&who, &req).await?),
    ))
}

/// Inspection schedules by next due date, each marked overdue when its due
/// date has passed; `within_days` gives the due list (staff).
#[utoipa::path(get, path = "/api/v1/inspection-schedules", tag = "field", params(ScheduleQuery),
    responses((status = 200, body = Vec<Schedule>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_schedules(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<ScheduleQuery>,
) -> ApiResult<Json<Vec<Schedule>>> {
    Ok(Json(s.field.schedules(&who, q.within_days).await?))
}

/// Record the inspection now due under a schedule (dispatchers, engineers,
/// experts, admins): every checklist item once; findings with `open_case`
/// open follow-up cases. The schedule moves on by its interval; the same
/// due inspection recorded twice is 409.
#[utoipa::path(post, path = "/api/v1/inspection-schedules/{id}/inspections", tag = "field",
    request_body = NewInspection,
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 201, body = Inspection), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_inspection(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewInspection>,
) -> ApiResult<(StatusCode, Json<Inspection>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.field.record(&who, id, &req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InspectionQuery {
    pub schedule_id: Option<i64>,
}

/// Inspections done, newest first (staff).
#[utoipa::path(get, path = "/api/v1/inspections", tag = "field", params(InspectionQuery),
    responses((status = 200, body = Vec<Inspection>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_inspections(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<InspectionQuery>,
) -> ApiResult<Json<Vec<Inspection>>> {
    Ok(Json(s.field.inspections(&who, q.schedule_id).await?))
}
