//! Request extractors whose failures are [`ApiError`]s that name the culprit:
//! JSON bodies (syntax errors with line and column, type errors with the
//! field path), query strings, path parameters, and the bearer token.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::auth::{hash_token, Principal};

/// A JSON body, deserialised with the failing field's path reported.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
                None,
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.body_text(),
                None,
            )
        })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// Decode JSON, naming the field at fault.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        use serde_json::error::Category;
        // serde_json reports some type mismatches (a number where an enum's
        // string belongs) as syntax errors; if the body parses as JSON at all,
        // the problem is the field's value, not the syntax.
        let syntax = matches!(
            inner.classify(),
            Category::Syntax | Category::Eof | Category::Io
        ) && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err();
        match (syntax, inner.classify()) {
            (true, _) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
                None,
            ),
            (false, _) => {
                let msg = strip_position(&inner.to_string());
                let msg = msg.replace("expected value", "wrong type of value");
                let parent = (path != ".").then_some(path);
                // Missing and unknown fields are reported at the parent object.
                let field = match (named_field(&msg), parent) {
                    // The path of an unknown field already ends in its name.
                    (Some(_), Some(p)) if msg.starts_with("unknown field") => Some(p),
                    (Some(f), Some(p)) => Some(format!("{p}.{f}")),
                    (Some(f), None) => Some(f),
                    (None, p) => p,
                };
                let message = match &field {
                    Some(f) => format!("{f}: {msg}"),
                    None => msg,
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    message,
                    field,
                )
            }
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// serde reports missing and unknown fields at the parent; name the field itself.
fn named_field(msg: &str) -> Option<String> {
    let rest = msg
        .strip_prefix("missing field `")
        .or_else(|| msg.strip_prefix("unknown field `"))?;
    Some(rest.split('`').next()?.to_string())
}

/// Query parameters, refusing unknown keys and naming the bad one.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_deserializer(q);
        de.map(ApiQuery)
    }
}

fn serde_urlencoded_deserializer<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    // axum's Query uses serde_urlencoded; go through it for the same rules.
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| bad_query("the query string is not valid".into()))?,
    )
    .map(|axum::extract::Query(v)| v)
    .map_err(|e| bad_query(e.body_text()))
}

fn bad_query(msg: String) -> ApiError {
    let msg = msg
        .trim_start_matches("Failed to deserialize query string: ")
        .to_string();
    let field = msg
        .split('`')
        .nth(1)
        .map(str::to_string)
        .filter(|_| msg.contains("field `") || msg.contains("unknown field"));
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("query string: {msg}"),
        field,
    )
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text(), None)
            })
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized =
            |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m, None);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send an API token: Authorization: Bearer <token>"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <token>"))?;
        let principal = state
            .store
            .principal_for_token(&hash_token(token))
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| unauthorized("the token is unknown or revoked"))?;
        Ok(Auth(principal))
    }
}
