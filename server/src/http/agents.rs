//! Agents over HTTP: enrolment tokens and the agent list for staff, the
//! enrolment and message endpoints for agents (signed requests, see
//! `outpost_protocol::uplink`), and the LLDP topology graph of a customer.

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{decode_json, ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::agents::topology::TopologyGraph;
use crate::agents::{AgentView, AuthFailure, EnrollmentToken, NewEnrollmentToken};

/// Create a one-time enrolment token for a customer (and site); shown once.
#[utoipa::path(post, path = "/api/v1/enrollment-tokens", tag = "agents", request_body = NewEnrollmentToken,
    responses((status = 201, body = EnrollmentToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_enrollment_token(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewEnrollmentToken>,
) -> ApiResult<(StatusCode, Json<EnrollmentToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.agents.create_token(&who, &req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AgentQuery {
    pub organization_id: Option<i64>,
}

/// Enrolled agents (customers see their own).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(AgentQuery),
    responses((status = 200, body = Vec<AgentView>)), security(("bearer" = [])))]
pub async fn list_agents(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<AgentQuery>,
) -> ApiResult<Json<Vec<AgentView>>> {
    Ok(Json(s.agents.list(&who, q.organization_id).await?))
}

/// One agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = i64, Path, description = "Agent id")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(s.agents.get(&who, id).await?))
}

/// Revoke an agent's identity: its requests are refused from now on.
#[utoipa::path(post, path = "/api/v1/agents/{id}/revoke", tag = "agents",
    params(("id" = i64, Path, description = "Agent id")),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(s.agents.revoke(&who, id).await?))
}

/// Enrol an agent: a one-time token and the agent's ed25519 public key in,
/// its identity out (`outpost_protocol::EnrollRequest`/`EnrollResponse`).
#[utoipa::path(post, path = "/api/v1/agent/enroll", tag = "agent uplink",
    request_body(content = Object, description = "outpost_protocol::EnrollRequest"),
    responses((status = 200, description = "outpost_protocol::EnrollResponse", body = Object),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn enroll(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: outpost_protocol::EnrollRequest = decode_json(&body)?;
    let resp = s.agents.enroll(&req).await?;
    Ok(Json(resp).into_response())
}

fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Deliver a batch of agent messages (signed with the agent's key); one
/// outcome per message (`outpost_protocol::Batch` / `BatchResult`).
#[utoipa::path(post, path = "/api/v1/agent/messages", tag = "agent uplink",
    request_body(content = Object, description = "outpost_protocol::Batch"),
    responses((status = 200, description = "outpost_protocol::BatchResult", body = Object),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("agent-signature" = [])))]
pub async fn messages(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // Its own limit (larger than other endpoints'): see `AGENT_BODY_LIMIT`.
    let body = match axum::body::to_bytes(body, super::AGENT_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a batch may be at most {} bytes", super::AGENT_BODY_LIMIT),
                None,
            )
            .into_response()
        }
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/api/v1/agent/messages");
    let agent = match s.agents.authenticate(auth, "POST", path, &body).await {
        Ok(a) => a,
        Err(failure) => return refusal(failure),
    };
    match s.agents.receive_json(&agent, &body).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The agent that signed a request to `uri` (its `Authorization` header over
/// method, path and body), or the refusal to answer with.
pub(crate) async fn signed_agent(
    s: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    method: &str,
    body: &[u8],
) -> Result<crate::store::agents::AgentRow, Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    s.agents
        .authenticate(auth, method, path, body)
        .await
        .map_err(refusal)
}

/// The answer to a signed request that fails authentication: 401, with
/// the server's `Date` when the agent's clock is off.
pub(crate) fn refusal(failure: AuthFailure) -> Response {
    match failure {
        AuthFailure::ClockSkew { server_now } => {
            (
                StatusCode::UNAUTHORIZED,
                [(header::DATE, http_date(server_now))],
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "clock_skew",
                    format!(
                        "the request's timestamp is more than {} s from the server's clock ({}); correct the offset from the Date header",
                        outpost_protocol::MAX_SKEW_SECS,
                        server_now.to_rfc3339()
                    ),
                    None,
                ),
            )
                .into_response()
        }
        AuthFailure::Refused(why) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why, None)
                .into_response()
        }
    }
}

/// The customer's network as its agents see it through LLDP.
#[utoipa::path(get, path = "/api/v1/organizations/{id}/topology", tag = "directory",
    params(("id" = i64, Path, description = "Organization id")),
    responses((status = 200, body = TopologyGraph), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn topology(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TopologyGraph>> {
    Ok(Json(
        crate::agents::topology::graph(&s.store, &who, id).await?,
    ))
}
