//! Upgrade campaigns over HTTP: campaigns for managers (create, start,
//! pause, resume, abort) and staff (read, with every recorded step), the
//! upgrades that apply to a customer's equipment, and the agent's signed
//! job query.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{decode_json, ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::upgrades::{
    ApplicableUpgrade, CampaignAction, CampaignView, DeviceUpgrades, EventView, NewCampaign,
};

/// Create a campaign: a published firmware release to the selected devices
/// in waves. Devices that cannot take it are planned as skipped, with why;
/// a selection no device can take is refused naming the reasons.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "upgrades", request_body = NewCampaign,
    responses((status = 201, body = CampaignView), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_campaign(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewCampaign>,
) -> ApiResult<(StatusCode, Json<CampaignView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.agents.upgrades.create(&who, &req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CampaignQuery {
    /// draft, running, paused, stopped, aborted or completed.
    pub state: Option<String>,
}

/// Campaigns, newest first, with their wave tallies (not their jobs).
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "upgrades", params(CampaignQuery),
    responses((status = 200, body = Vec<CampaignView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_campaigns(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<CampaignQuery>,
) -> ApiResult<Json<Vec<CampaignView>>> {
    Ok(Json(
        s.agents.upgrades.list(&who, q.state.as_deref()).await?,
    ))
}

/// One campaign with every device's job.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "upgrades",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_campaign(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CampaignView>> {
    Ok(Json(s.agents.upgrades.get(&who, id).await?))
}

/// `start` a draft, `pause` a running campaign (jobs not started are
/// withdrawn; started ones run on), `resume` a paused one (a wave that
/// paused below its success threshold is accepted), or `abort` (jobs not
/// started are skipped).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/{action}", tag = "upgrades",
    request_body(content = Option<CampaignAction>, description = "optional: the reason"),
    params(("id" = i64, Path, description = "Campaign id"),
           ("action" = String, Path, description = "start, pause, resume or abort")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn campaign_action(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath((id, action)): ApiPath<(i64, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<CampaignView>> {
    let req: CampaignAction = if body.iter().all(u8::is_ascii_whitespace) {
        CampaignAction::default()
    } else {
        decode_json(&body)?
    };
    Ok(Json(s.agents.upgrades.act(&who, id, &action, &req).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only this job's steps.
    pub job: Option<i64>,
    /// Only steps after this event id.
    pub after: Option<i64>,
    /// At most this many (default 500).
    pub limit: Option<i64>,
}

/// Every recorded step of a campaign (reports, timeouts, actions), in order.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/events", tag = "upgrades",
    params(("id" = i64, Path, description = "Campaign id"), EventQuery),
    responses((status = 200, body = Vec<EventView>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn campaign_events(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<Vec<EventView>>> {
    Ok(Json(
        s.agents
            .upgrades
            .events(&who, id, q.job, q.after, q.limit)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApplicableQuery {
    /// Staff: one organisation's devices (customers always see their own).
    pub organization_id: Option<i64>,
}

/// Published firmware releases newer than what each device runs: the
/// upgrades that apply to the caller's equipment.
#[utoipa::path(get, path = "/api/v1/upgrades", tag = "upgrades", params(ApplicableQuery),
    responses((status = 200, body = Vec<ApplicableUpgrade>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn applicable_upgrades(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<ApplicableQuery>,
) -> ApiResult<Json<Vec<ApplicableUpgrade>>> {
    Ok(Json(
        s.agents
            .upgrades
            .applicable(&who, q.organization_id, None)
            .await?,
    ))
}

/// A device's applicable upgrades and its upgrade jobs so far.
#[utoipa::path(get, path = "/api/v1/devices/{id}/upgrades", tag = "upgrades",
    params(("id" = i64, Path, description = "Device id")),
    responses((status = 200, body = DeviceUpgrades), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn device_upgrades(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DeviceUpgrades>> {
    Ok(Json(s.agents.upgrades.device(&who, id).await?))
}

/// The upgrade jobs the signing agent is to carry out now.
#[utoipa::path(post, path = "/api/v1/agent/jobs", tag = "agent uplink",
    request_body(content = Object, description = "outpost_protocol::JobQuery"),
    responses((status = 200, description = "outpost_protocol::JobList", body = Object),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("agent-signature" = [])))]
pub async fn agent_jobs(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let agent = match super::agents::signed_agent(&s, &uri, &headers, "POST", &body).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let query: outpost_protocol::JobQuery = match decode_json(&body) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = outpost_protocol::check_version(query.protocol_version) {
        return ApiError::from(crate::error::Error::invalid("protocol_version", e)).into_response();
    }
    match s.agents.upgrades.jobs_for(&agent).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
