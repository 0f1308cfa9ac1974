//! Remote login over HTTP: sessions (live and past) and killing one, the
//! relay's attempt log, binding a device to its agent, and escalating a
//! case to an expert.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::cases::approvals::{Approval, NewApproval};
use crate::cases::experts::NewExpert;
use crate::cases::CaseView;
use crate::directory::Device;
use crate::relay::access::{self, DeviceAgent, RemoteAttempt, RemoteSession, Replica};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Only live sessions.
    #[serde(default)]
    pub live: bool,
    /// Only sessions of this case (number).
    pub case: Option<String>,
}

/// Remote-login sessions, newest first (customers: on their own devices).
#[utoipa::path(get, path = "/api/v1/remote-sessions", tag = "remote login", params(SessionQuery),
    responses((status = 200, body = Vec<RemoteSession>)), security(("bearer" = [])))]
pub async fn list_sessions(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> ApiResult<Json<Vec<RemoteSession>>> {
    Ok(Json(
        access::sessions(&s.cases, &who, q.live, q.case.as_deref()).await?,
    ))
}

/// End a live session now (dispatchers, managers, admins, and customers on
/// their own devices); the relay holding it cuts it within a second.
#[utoipa::path(post, path = "/api/v1/remote-sessions/{id}/kill", tag = "remote login",
    params(("id" = i64, Path, description = "Session id")),
    responses((status = 202, body = RemoteSession), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn kill_session(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<RemoteSession>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(access::kill(&s.cases, s.relay.as_ref(), &who, id).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AttemptQuery {
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Every attempt to reach a device through the relay, allowed or refused,
/// newest first (staff).
#[utoipa::path(get, path = "/api/v1/remote-attempts", tag = "remote login", params(AttemptQuery),
    responses((status = 200, body = Vec<RemoteAttempt>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_attempts(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<AttemptQuery>,
) -> ApiResult<Json<Vec<RemoteAttempt>>> {
    Ok(Json(
        access::attempts(&s.cases, &who, q.limit.unwrap_or(100)).await?,
    ))
}

/// The server replicas sharing the database: heartbeat, whether alive,
/// the agent tunnels and live sessions each holds (admins).
#[utoipa::path(get, path = "/api/v1/replicas", tag = "remote login",
    responses((status = 200, body = Vec<Replica>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_replicas(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<Replica>>> {
    Ok(Json(
        access::replicas(&s.cases, s.relay.as_ref(), &who).await?,
    ))
}

/// Record which agent reaches a device, under the name the agent knows it
/// by (admins, dispatchers). Agents set this themselves for the SNMP
/// devices they inventory.
#[utoipa::path(put, path = "/api/v1/devices/{id}/agent", tag = "remote login", request_body = DeviceAgent,
    params(("id" = i64, Path, description = "Device id")),
    responses((status = 200, body = Device), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn bind_device(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DeviceAgent>,
) -> ApiResult<Json<Device>> {
    Ok(Json(access::bind_device(&s.cases, &who, id, &req).await?))
}

/// Escalate a case to an expert, who works on it beside the assignee and
/// may reach its device through the relay.
#[utoipa::path(post, path = "/api/v1/cases/{number}/experts", tag = "cases", request_body = NewExpert,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_expert(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewExpert>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.add_expert(&who, &number, &req).await?))
}

/// Approve remote login on a case (a user of the customer; where the
/// contract asks for approval, engineers reach the device only while one is
/// live).
#[utoipa::path(post, path = "/api/v1/cases/{number}/remote-approvals", tag = "remote login", request_body = NewApproval,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 201, body = Approval), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn approve_remote(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewApproval>,
) -> ApiResult<(StatusCode, Json<Approval>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.cases.approve_remote(&who, &number, &req).await?),
    ))
}

/// The remote-login approvals of a case, newest first.
#[utoipa::path(get, path = "/api/v1/cases/{number}/remote-approvals", tag = "remote login",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = Vec<Approval>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_approvals(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<Vec<Approval>>> {
    Ok(Json(s.cases.remote_approvals(&who, &number).await?))
}

/// Revoke an approval (the customer, a dispatcher or an admin); live
/// sessions it allowed end within a second.
#[utoipa::path(post, path = "/api/v1/remote-approvals/{id}/revoke", tag = "remote login",
    params(("id" = i64, Path, description = "Approval id")),
    responses((status = 200, body = Approval), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_approval(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Approval>> {
    Ok(Json(s.cases.revoke_remote_approval(&who, id).await?))
}
