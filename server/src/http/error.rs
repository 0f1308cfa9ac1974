//! The one error type at the HTTP edge: every failure becomes JSON
//! `{ "code", "message", "field"? }` with the status that fits. Internal
//! errors are logged in full and shown to the caller only as "internal".

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: invalid_field, malformed_json, unauthorized,
    /// forbidden, not_found, conflict, illegal_transition, payload_too_large,
    /// unsupported_media_type, internal.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The JSON path or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                field,
            },
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        match e {
            Error::Invalid { field, message } => {
                let msg = format!("{field}: {message}");
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_field", msg, Some(field))
            }
            Error::NotFound(what) => {
                ApiError::new(S::NOT_FOUND, "not_found", format!("{what} not found"), None)
            }
            Error::Forbidden(why) => ApiError::new(S::FORBIDDEN, "forbidden", why, None),
            Error::Unauthorized(why) => ApiError::new(S::UNAUTHORIZED, "unauthorized", why, None),
            Error::Conflict(why) => ApiError::new(S::CONFLICT, "conflict", why, None),
            Error::Unavailable(why) => {
                tracing::warn!(error = %why, "unavailable");
                ApiError::new(S::SERVICE_UNAVAILABLE, "unavailable", why, None)
            }
            e @ Error::IllegalTransition { .. } => ApiError::new(
                S::CONFLICT,
                "illegal_transition",
                e.to_string(),
                Some("status".into()),
            ),
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the server log has details",
                    None,
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"outpost\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
