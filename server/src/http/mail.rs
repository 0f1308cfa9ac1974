//! `/api/v1/mail`: the mail gateway's endpoint (one raw message in), the
//! kept messages that need a person, their raw bytes; and a case's
//! attachments.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::mail::{Intake, MailQuery, Release};
use crate::store::mail::{Attachment, MailMessage};

/// Hand over one raw RFC 5322 message (what `outpost-server mailgate`
/// sends). Every message is kept; the answer says what became of it. A
/// malformed message answers 422 naming the fault (it is kept all the same).
#[utoipa::path(post, path = "/api/v1/mail/inbound", tag = "mail",
    request_body(content = String, content_type = "message/rfc822", description = "One raw message"),
    responses((status = 200, body = Intake), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn inbound(
    State(s): State<AppState>,
    Auth(who): Auth,
    body: axum::body::Body,
) -> Response {
    // Its own limit: messages with attachments pass the 1 MiB of other endpoints.
    let raw = match axum::body::to_bytes(body, super::MAIL_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a message may be at most {} bytes", super::MAIL_BODY_LIMIT),
                None,
            )
            .into_response()
        }
    };
    match s.mail.ingest(&who, &raw).await {
        Ok(i) if i.outcome == "malformed" => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed_message",
            format!(
                "{} (kept as mail message {}, see GET /api/v1/mail/messages)",
                i.reason.as_deref().unwrap_or("malformed message"),
                i.id
            ),
            None,
        )
        .into_response(),
        Ok(i) => Json(i).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Kept messages, newest first: by default those that need a person
/// (held, refused, malformed, and any stuck in processing).
#[utoipa::path(get, path = "/api/v1/mail/messages", tag = "mail", params(MailQuery),
    responses((status = 200, body = Vec<MailMessage>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_messages(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<MailQuery>,
) -> ApiResult<Json<Vec<MailMessage>>> {
    Ok(Json(s.mail.list(&who, &q).await?))
}

/// A kept message exactly as it arrived.
#[utoipa::path(get, path = "/api/v1/mail/messages/{id}/raw", tag = "mail",
    params(("id" = i64, Path, description = "Kept message id")),
    responses((status = 200, content_type = "message/rfc822", body = String), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn raw_message(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let raw = s.mail.raw(&who, id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

/// Open a case from a held (or refused) message for the organisation
/// chosen: triage of mail from unknown senders.
#[utoipa::path(post, path = "/api/v1/mail/messages/{id}/release", tag = "mail", request_body = Release,
    params(("id" = i64, Path, description = "Kept message id")),
    responses((status = 200, body = Intake), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release_message(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<Release>,
) -> ApiResult<Json<Intake>> {
    Ok(Json(s.mail.release(&who, id, &req).await?))
}

/// A case's attachments (customers see those of public entries only).
#[utoipa::path(get, path = "/api/v1/cases/{number}/attachments", tag = "cases",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = Vec<Attachment>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_attachments(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<Vec<Attachment>>> {
    Ok(Json(s.mail.attachments(&who, &number).await?))
}

/// Download an attachment, with the content type found in its bytes.
#[utoipa::path(get, path = "/api/v1/cases/{number}/attachments/{id}", tag = "cases",
    params(("number" = String, Path, description = "Case number"), ("id" = i64, Path, description = "Attachment id")),
    responses((status = 200, content_type = "application/octet-stream", body = String), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_attachment(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath((number, id)): ApiPath<(String, i64)>,
) -> ApiResult<Response> {
    let (a, data) = s.mail.attachment(&who, &number, id).await?;
    let name: String = a
        .filename
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, a.content_type),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        data,
    )
        .into_response())
}
