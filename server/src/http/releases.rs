//! The release catalog over HTTP: releases for staff (created from a signed
//! manifest, artifact uploaded by PUT, downloaded with Range), and the two
//! signed agent endpoints of self-update (`/agent/update`, the artifact).

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{decode_json, ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::releases::{
    parse_range, AgentUpdateView, ByteRange, NewRelease, RangeError, ReleaseKind, ReleaseView,
    Releases, CHUNK,
};
use crate::store::releases::ReleaseRow;

/// Add a release from its signed manifest (`outpost-server admin
/// sign-release` prints this body). The signature must verify against a
/// trusted key; the release is served once its artifact is uploaded.
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", request_body = NewRelease,
    responses((status = 201, body = ReleaseView), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_release(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewRelease>,
) -> ApiResult<(StatusCode, Json<ReleaseView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.releases.create(&who, &req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// `agent` or `firmware`.
    pub kind: Option<ReleaseKind>,
    /// A target triple or `vendor/model`.
    pub target: Option<String>,
}

/// The release catalog, newest first.
#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", params(ReleaseQuery),
    responses((status = 200, body = Vec<ReleaseView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_releases(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<ReleaseQuery>,
) -> ApiResult<Json<Vec<ReleaseView>>> {
    Ok(Json(
        s.releases.list(&who, q.kind, q.target.as_deref()).await?,
    ))
}

/// One release.
#[utoipa::path(get, path = "/api/v1/releases/{id}", tag = "releases",
    params(("id" = i64, Path, description = "Release id")),
    responses((status = 200, body = ReleaseView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_release(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReleaseView>> {
    Ok(Json(s.releases.get(&who, id).await?))
}

/// Upload a release's artifact (the raw bytes as the body). It is published
/// only if size and SHA-256 match the signed manifest; otherwise nothing is
/// kept and the answer says what differs.
#[utoipa::path(put, path = "/api/v1/releases/{id}/artifact", tag = "releases",
    params(("id" = i64, Path, description = "Release id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = ReleaseView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_artifact(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Body,
) -> ApiResult<Json<ReleaseView>> {
    let mut stream = body.into_data_stream();
    let result = receive_artifact(&s, &who, id, &mut stream).await;
    if result.is_err() {
        // Read (a bounded amount of) the rest, so the client gets this
        // answer rather than a reset connection.
        let mut drained = 0usize;
        while let Some(Ok(more)) = stream.next().await {
            drained += more.len();
            if drained > 64 * 1024 * 1024 {
                break;
            }
        }
    }
    Ok(Json(result?))
}

async fn receive_artifact(
    s: &AppState,
    who: &crate::auth::Principal,
    id: i64,
    stream: &mut axum::body::BodyDataStream,
) -> ApiResult<ReleaseView> {
    let row = s.releases.begin_upload(who, id).await?;
    let mut upload = s.releases.upload(row);
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(bytes) => upload.push(&bytes).await?,
            Err(e) => {
                upload.abort().await;
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "upload_interrupted",
                    format!("the upload broke off ({e}); nothing was published"),
                    None,
                ));
            }
        }
    }
    Ok(upload.finish().await?)
}

/// Download a published artifact; `Range: bytes=N-` resumes.
#[utoipa::path(get, path = "/api/v1/releases/{id}/artifact", tag = "releases",
    params(("id" = i64, Path, description = "Release id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, description = "The requested range"),
              (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn download_artifact(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let row = s.releases.artifact(&who, id).await?;
    Ok(serve_artifact(&s.releases, row, &headers))
}

/// Which release this agent should run (signed; `outpost_protocol::UpdateQuery`
/// in, `UpdateOffer` out).
#[utoipa::path(post, path = "/api/v1/agent/update", tag = "agent uplink",
    request_body(content = Object, description = "outpost_protocol::UpdateQuery"),
    responses((status = 200, description = "outpost_protocol::UpdateOffer", body = Object),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("agent-signature" = [])))]
pub async fn agent_update(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = super::agents::signed_agent(&s, &uri, &headers, "POST", &body).await {
        return refused;
    }
    let query: outpost_protocol::UpdateQuery = match decode_json(&body) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match s.releases.offer(&query).await {
        Ok(offer) => Json(offer).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A published agent artifact, for the agent (signed GET, empty body);
/// `Range: bytes=N-` resumes.
#[utoipa::path(get, path = "/api/v1/agent/releases/{id}/artifact", tag = "agent uplink",
    params(("id" = i64, Path, description = "Release id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, description = "The requested range"),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 416, body = ErrorBody)),
    security(("agent-signature" = [])))]
pub async fn agent_artifact(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = super::agents::signed_agent(&s, &uri, &headers, "GET", b"").await {
        return refused;
    }
    match s.releases.published(id).await {
        Ok(row) => serve_artifact(&s.releases, row, &headers),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The self-updates an agent reported, newest first.
#[utoipa::path(get, path = "/api/v1/agents/{id}/updates", tag = "agents",
    params(("id" = i64, Path, description = "Agent id")),
    responses((status = 200, body = Vec<AgentUpdateView>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn agent_updates(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<AgentUpdateView>>> {
    // Visibility as for the agent itself (customers: their own).
    let agent = s.agents.get(&who, id).await?;
    Ok(Json(s.releases.agent_updates(agent.id).await?))
}

/// The artifact (or the range asked for), streamed chunk by chunk from the
/// store; the ETag is its SHA-256.
fn serve_artifact(releases: &Releases, row: ReleaseRow, headers: &HeaderMap) -> Response {
    let size = u64::try_from(row.size).unwrap_or(0);
    let whole = ByteRange {
        first: 0,
        last: size.saturating_sub(1),
    };
    let (status, range) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (StatusCode::OK, whole),
        Some(h) => match parse_range(h, size) {
            Ok(r) => (StatusCode::PARTIAL_CONTENT, r),
            Err(RangeError::Ignore) => (StatusCode::OK, whole),
            Err(RangeError::Unsatisfiable) => {
                let mut resp = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the artifact has {size} bytes; {h:?} is outside it"),
                    None,
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return resp;
            }
        },
    };
    let releases = releases.clone();
    let id = row.id;
    let chunk = CHUNK as u64;
    // State: the next byte to send.
    let stream = futures_util::stream::unfold(Some(range.first), move |next| {
        let releases = releases.clone();
        async move {
            let pos = next?;
            if pos > range.last {
                return None;
            }
            let seq = pos / chunk;
            match releases.read_chunk(id, seq).await {
                Ok(data) => {
                    let start = (pos - seq * chunk) as usize;
                    let end = ((range.last - seq * chunk + 1) as usize).min(data.len());
                    if start >= end {
                        let e = std::io::Error::other(format!("release {id}: chunk {seq} short"));
                        return Some((Err(e), None));
                    }
                    let piece = bytes::Bytes::copy_from_slice(&data[start..end]);
                    Some((Ok(piece), Some(pos + (end - start) as u64)))
                }
                Err(e) => {
                    tracing::error!(release = id, error = %e, "cannot read an artifact chunk");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let length = range.last - range.first + 1;
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", row.sha256)) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.first, range.last))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}
