//! `/api/v1/sla`: SLA policies and business calendars. Staff read them;
//! admins create, replace and delete those managed through the API (the
//! config file's are read-only here) and import holidays from iCalendar.
//! Every change recomputes open cases' deadlines in the background.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::{decode_json, ApiPath, Auth};
use super::AppState;
use crate::error::Error;
use crate::sla::calendar::CalendarSpec;
use crate::sla::settings::{CalendarView, PolicyView};

/// Every policy in force, with its effective values.
#[utoipa::path(get, path = "/api/v1/sla/policies", tag = "sla",
    responses((status = 200, body = Vec<PolicyView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_policies(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<PolicyView>>> {
    Ok(Json(s.sla.policies(&who).await?))
}

/// Create or replace a policy (admins): the same keys as `[[sla.policies]]`
/// in the config file, durations in human units (`"45m"`).
#[utoipa::path(put, path = "/api/v1/sla/policies/{name}", tag = "sla",
    params(("name" = String, Path, description = "Policy name")),
    request_body(content = Object, description = "a policy as in the config file: calendar, reassign, targets.P1..P4 {response, reminders, reassign_at, resolution, escalation}, pause"),
    responses((status = 200, body = PolicyView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_policy(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<PolicyView>> {
    let v: serde_json::Value = decode_json(&body)?;
    Ok(Json(s.sla.put_policy(&who, &name, v, s.clock.now()).await?))
}

/// Delete an API-managed policy that no contract uses (admins).
#[utoipa::path(delete, path = "/api/v1/sla/policies/{name}", tag = "sla",
    params(("name" = String, Path, description = "Policy name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_policy(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.sla.delete_policy(&who, &name, s.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every business calendar (presets 24x7, 7x8 and 5x8 are always there).
#[utoipa::path(get, path = "/api/v1/sla/calendars", tag = "sla",
    responses((status = 200, body = Vec<CalendarView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_calendars(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<CalendarView>>> {
    Ok(Json(s.sla.calendars(&who).await?))
}

/// Create or replace a calendar (admins): timezone, preset or hours, holidays.
#[utoipa::path(put, path = "/api/v1/sla/calendars/{name}", tag = "sla",
    params(("name" = String, Path, description = "Calendar name")),
    request_body(content = Object, description = "timezone, preset (24x7, 7x8, 5x8) or hours {mon: [\"09:00-17:00\"], ...}, holidays [\"YYYY-MM-DD\"]"),
    responses((status = 200, body = CalendarView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_calendar(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<CalendarView>> {
    let mut v: serde_json::Value = decode_json(&body)?;
    if let Some(obj) = v.as_object_mut() {
        obj.entry("name")
            .or_insert_with(|| serde_json::Value::String(name.clone()));
    }
    let spec: CalendarSpec = serde_path_to_error::deserialize(v)
        .map_err(|e| Error::invalid(e.path().to_string(), e.inner().to_string()))?;
    Ok(Json(
        s.sla.put_calendar(&who, &name, spec, s.clock.now()).await?,
    ))
}

/// Delete an API-managed calendar no contract or policy uses (admins).
#[utoipa::path(delete, path = "/api/v1/sla/calendars/{name}", tag = "sla",
    params(("name" = String, Path, description = "Calendar name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_calendar(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.sla.delete_calendar(&who, &name, s.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HolidayImport {
    /// Holidays not in the calendar before.
    pub added: usize,
    pub calendar: CalendarView,
}

/// Add the holidays of an iCalendar (`.ics`) file to a calendar (admins);
/// send it with `Content-Type: text/calendar`.
#[utoipa::path(post, path = "/api/v1/sla/calendars/{name}/holidays", tag = "sla",
    params(("name" = String, Path, description = "Calendar name")),
    request_body(content = String, content_type = "text/calendar"),
    responses((status = 200, body = HolidayImport), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn import_holidays(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<HolidayImport>> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.to_ascii_lowercase().starts_with("text/calendar") {
        return Err(super::error::ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the .ics file with Content-Type: text/calendar",
            None,
        ));
    }
    let text = std::str::from_utf8(&body).map_err(|_| Error::invalid("ics", "not UTF-8 text"))?;
    let (added, calendar) = s
        .sla
        .import_holidays(&who, &name, text, s.clock.now())
        .await?;
    Ok(Json(HolidayImport { added, calendar }))
}
