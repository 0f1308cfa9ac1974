//! The knowledge base over HTTP: articles (draft from a case, edit, submit,
//! review, versions), search over published articles and closed cases, and
//! the articles suggested for a case.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::kb::{
    ArticleEdit, ArticleState, ArticleView, HitKind, NewArticle, Query, Review, SearchHit,
    VersionView,
};

/// Draft an article from a resolved or closed case, prefilled from the case,
/// its device and its fault analysis report (engineers, experts,
/// dispatchers, managers, admins).
#[utoipa::path(post, path = "/api/v1/kb/articles", tag = "knowledge", request_body = NewArticle,
    responses((status = 201, body = ArticleView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_article(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewArticle>,
) -> ApiResult<(StatusCode, Json<ArticleView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.kb.draft_from_case(&who, &req).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ArticleQuery {
    /// draft, in_review or published.
    pub state: Option<ArticleState>,
}

/// Articles, most recently changed first (staff).
#[utoipa::path(get, path = "/api/v1/kb/articles", tag = "knowledge", params(ArticleQuery),
    responses((status = 200, body = Vec<ArticleView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_articles(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<ArticleQuery>,
) -> ApiResult<Json<Vec<ArticleView>>> {
    Ok(Json(s.kb.list(&who, q.state).await?))
}

/// One article, its latest version (staff).
#[utoipa::path(get, path = "/api/v1/kb/articles/{id}", tag = "knowledge",
    params(("id" = i64, Path, description = "Article id")),
    responses((status = 200, body = ArticleView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_article(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ArticleView>> {
    Ok(Json(s.kb.get(&who, id).await?))
}

/// A new version of the article's text; it goes back to draft (a published
/// version stays searchable until the new one is published).
#[utoipa::path(put, path = "/api/v1/kb/articles/{id}", tag = "knowledge", request_body = ArticleEdit,
    params(("id" = i64, Path, description = "Article id")),
    responses((status = 200, body = ArticleView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn edit_article(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ArticleEdit>,
) -> ApiResult<Json<ArticleView>> {
    Ok(Json(s.kb.edit(&who, id, &req).await?))
}

/// Every version of the article, oldest first (staff).
#[utoipa::path(get, path = "/api/v1/kb/articles/{id}/versions", tag = "knowledge",
    params(("id" = i64, Path, description = "Article id")),
    responses((status = 200, body = Vec<VersionView>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_versions(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<VersionView>>> {
    Ok(Json(s.kb.versions(&who, id).await?))
}

/// Send a draft to review (its title, symptom, cause and resolution filled in).
#[utoipa::path(post, path = "/api/v1/kb/articles/{id}/submit", tag = "knowledge",
    params(("id" = i64, Path, description = "Article id")),
    responses((status = 200, body = ArticleView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit_article(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ArticleView>> {
    Ok(Json(s.kb.submit(&who, id).await?))
}

/// Publish an article in review, or return it to draft with a comment
/// (experts, managers, admins; not its author or submitter).
#[utoipa::path(post, path = "/api/v1/kb/articles/{id}/review", tag = "knowledge", request_body = Review,
    params(("id" = i64, Path, description = "Article id")),
    responses((status = 200, body = ArticleView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn review_article(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<Review>,
) -> ApiResult<Json<ArticleView>> {
    Ok(Json(s.kb.review(&who, id, &req).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to look for; any may match, documents matching more and rarer
    /// words (and in the title) rank higher.
    pub q: String,
    /// Only this vendor (any case).
    pub vendor: Option<String>,
    /// Only this device type (switch, router, ...).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub device_type: Option<String>,
    /// Only this model (any case).
    pub model: Option<String>,
    /// Only articles or only cases.
    pub kind: Option<HitKind>,
    /// At most this many (default 20, at most 50).
    pub limit: Option<i64>,
}

/// Full-text search over published articles and closed cases, best first (staff).
#[utoipa::path(get, path = "/api/v1/kb/search", tag = "knowledge", params(SearchQuery),
    responses((status = 200, body = Vec<SearchHit>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn search(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Vec<SearchHit>>> {
    let query = Query {
        text: q.q,
        vendor: q.vendor,
        device_type: q.device_type,
        model: q.model,
        kind: q.kind,
        limit: q.limit,
    };
    Ok(Json(s.kb.search(&who, &query).await?))
}

/// The published articles closest to the case (at most 5, best first; staff).
#[utoipa::path(get, path = "/api/v1/cases/{number}/suggestions", tag = "knowledge",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = Vec<SearchHit>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn suggestions(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<Vec<SearchHit>>> {
    Ok(Json(s.kb.suggestions(&who, &number).await?))
}
