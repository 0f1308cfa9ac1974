//! The knowledge base in the console: `/kb` (search over published articles
//! and closed cases, with vendor, type and model filters; the articles in
//! review and in draft), `/kb/articles/{id}` (an article, its versions, and
//! the forms to edit, submit and review it), and `POST /kb/draft` (an
//! article drafted from a case). Every form calls the [`crate::kb::Kb`]
//! method its REST endpoint calls.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{time, Nav, Page, WebError, WebForm, WebResult};
use super::WebAuth;
use crate::auth::Action;
use crate::http::AppState;
use crate::kb::{
    ArticleEdit, ArticleState, ArticleView, Decision, HitKind, NewArticle, Review, SearchHit,
};

#[derive(Debug, Default, Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    vendor: String,
    #[serde(default, rename = "type")]
    device_type: String,
    #[serde(default)]
    model: String,
}

fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn state_words(s: ArticleState) -> &'static str {
    match s {
        ArticleState::Draft => "draft",
        ArticleState::InReview => "in review",
        ArticleState::Published => "published",
    }
}

/// A list of search hits (also the case workspace's suggestions).
pub fn hits(list: &[SearchHit]) -> Markup {
    html! {
        ol.hits {
            @for h in list {
                li {
                    @match (h.kind, h.article_id, &h.case_number) {
                        (HitKind::Article, Some(id), _) => {
                            span.tag { "article" } " " a href={"/kb/articles/" (id)} { (h.title) }
                        }
                        (_, _, Some(n)) => {
                            span.tag { "case" } " " a href={"/cases/" (n)} { (n) " " (h.title) }
                        }
                        _ => { (h.title) }
                    }
                    @let facts: Vec<&str> = [&h.vendor, &h.device_type, &h.model].into_iter().filter_map(|v| v.as_deref()).collect();
                    @if !facts.is_empty() { " " span.muted { "(" (facts.join(", ")) ")" } }
                    p.small { (h.snippet) }
                }
            }
        }
    }
}

/// `GET /kb`: the search form, its results, and the articles awaiting work.
pub async fn search(
    State(s): State<AppState>,
    who: WebAuth,
    Query(f): Query<SearchForm>,
) -> WebResult {
    let p = &who.principal;
    p.require(Action::ReadKnowledge)?;
    let mut error = None;
    let results = if f.q.trim().is_empty() {
        None
    } else {
        let q = crate::kb::Query {
            text: f.q.clone(),
            vendor: opt(&f.vendor),
            device_type: opt(&f.device_type),
            model: opt(&f.model),
            kind: None,
            limit: Some(30),
        };
        match s.kb.search(p, &q).await {
            Ok(h) => Some(h),
            Err(e) => {
                error = Some(WebError::from(e).message);
                None
            }
        }
    };
    let review = s.kb.list(p, Some(ArticleState::InReview)).await?;
    let drafts = s.kb.list(p, Some(ArticleState::Draft)).await?;
    let body = html! {
        form.row method="get" action="/kb" role="search" {
            div { label for="q" { "Words" } input #q type="search" name="q" value=(f.q) required; }
            div { label for="vendor" { "Vendor" } input #vendor name="vendor" value=(f.vendor); }
            div { label for="type" { "Type" } input #type name="type" value=(f.device_type) placeholder="switch"; }
            div { label for="model" { "Model" } input #model name="model" value=(f.model); }
            button type="submit" { "Search" }
        }
        p.small { "Searches published articles and closed cases; any word may match, and documents with more of the words, rarer words and words in the title come first." }
        @if let Some(list) = &results {
            section.card aria-labelledby="results" {
                h2 #results { (list.len()) " found" }
                @if list.is_empty() { p.muted { "Nothing matches; try other words or fewer filters." } }
                @else { (hits(list)) }
            }
        }
        section.card aria-labelledby="review" {
            h2 #review { "In review" }
            (article_list(&review))
        }
        section.card aria-labelledby="drafts" {
            h2 #drafts { "Drafts" }
            (article_list(&drafts))
        }
    };
    Ok(Page::new(&who, "Knowledge base", Nav::Knowledge)
        .error(error)
        .response(body))
}

fn article_list(list: &[ArticleView]) -> Markup {
    html! {
        @if list.is_empty() { p.muted { "None." } }
        @else {
            ul { @for a in list {
                li { a href={"/kb/articles/" (a.id)} { (a.title) } " "
                     span.muted { "v" (a.version) ", " (a.edited_by) ", " } (time(a.updated_at)) }
            } }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ArticleQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /kb/articles/{id}`.
pub async fn article(
    State(s): State<AppState>,
    who: WebAuth,
    Path(id): Path<i64>,
    Query(q): Query<ArticleQuery>,
) -> WebResult {
    let notice = q.done.map(|d| match d.as_str() {
        "draft" => "The draft is made from the case; check and complete it.".to_string(),
        "edit" => "The new version is saved.".to_string(),
        "submit" => "The article is in review.".to_string(),
        "publish" => "The article is published.".to_string(),
        "return" => "The article is back in draft.".to_string(),
        _ => "Done.".to_string(),
    });
    page(&s, &who, id, None, notice, StatusCode::OK).await
}

async fn page(
    s: &AppState,
    who: &WebAuth,
    id: i64,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> WebResult {
    let p = &who.principal;
    let a = s.kb.get(p, id).await?;
    let versions = s.kb.versions(p, id).await?;
    let field = |label: &str, v: &str| {
        html! { h3 { (label) } p.text style="white-space:pre-wrap" { @if v.is_empty() { span.muted { "(to be written)" } } @else { (v) } } }
    };
    let body = html! {
        p { span.tag { (state_words(a.state)) } " version " (a.version)
            @if let Some(v) = a.published_version { ", published version " (v) }
            @if let Some(c) = &a.source_case { ", from case " a href={"/cases/" (c)} { (c) } } }
        div.grid {
            section.card aria-labelledby="text" {
                h2 #text { "Article" }
                dl.facts {
                    dt { "Vendor" } dd { (a.vendor.as_deref().unwrap_or("-")) }
                    dt { "Type" } dd { (a.device_type.as_deref().unwrap_or("-")) }
                    dt { "Model" } dd { (a.model.as_deref().unwrap_or("-")) }
                    dt { "Firmware" } dd { (a.firmware.as_deref().unwrap_or("-")) }
                    dt { "Written by" } dd { (a.edited_by) }
                    @if let Some(r) = &a.reviewed_by { dt { "Reviewed by" } dd { (r) } }
                    @if let Some(c) = &a.review_comment { dt { "Review comment" } dd { (c) } }
                }
                (field("Symptom", &a.symptom))
                (field("Cause", &a.cause))
                (field("Resolution", &a.resolution))
            }
            section.card aria-labelledby="work" {
                h2 #work { "Work on it" }
                @if a.state == ArticleState::Draft && p.may(Action::WriteKnowledge) {
                    form method="post" action={"/kb/articles/" (a.id) "/submit"} {
                        input type="hidden" name="csrf" value=(who.csrf);
                        button type="submit" { "Send to review" }
                    }
                }
                @if a.state == ArticleState::InReview && p.may(Action::ReviewKnowledge) {
                    form method="post" action={"/kb/articles/" (a.id) "/review"} {
                        input type="hidden" name="csrf" value=(who.csrf);
                        label for="comment" { "Comment (needed to return it)" }
                        textarea #comment name="comment" rows="3" {}
                        button type="submit" name="decision" value="publish" { "Publish" }
                        " "
                        button.secondary type="submit" name="decision" value="return" { "Return to draft" }
                    }
                }
                @if p.may(Action::WriteKnowledge) {
                    details {
                        summary { "Edit (a new version; back to draft)" }
                        form method="post" action={"/kb/articles/" (a.id) "/edit"} {
                            input type="hidden" name="csrf" value=(who.csrf);
                            input type="hidden" name="base_version" value=(a.version);
                            label for="title" { "Title" } input #title name="title" value=(a.title) required;
                            label for="symptom" { "Symptom" } textarea #symptom name="symptom" rows="4" { (a.symptom) }
                            label for="cause" { "Cause" } textarea #cause name="cause" rows="4" { (a.cause) }
                            label for="resolution" { "Resolution" } textarea #resolution name="resolution" rows="4" { (a.resolution) }
                            label for="vendor" { "Vendor" } input #vendor name="vendor" value=(a.vendor.as_deref().unwrap_or(""));
                            label for="device_type" { "Type" } input #device_type name="device_type" value=(a.device_type.as_deref().unwrap_or(""));
                            label for="model" { "Model" } input #model name="model" value=(a.model.as_deref().unwrap_or(""));
                            label for="firmware" { "Firmware" } input #firmware name="firmware" value=(a.firmware.as_deref().unwrap_or(""));
                            button type="submit" { "Save version" }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="versions" {
            h2 #versions { "Versions" }
            ol { @for v in &versions {
                li { "v" (v.version) " by " (v.edited_by) ", " (time(v.edited_at)) ": " (v.title) }
            } }
        }
    };
    let mut resp = Page::new(who, a.title.clone(), Nav::None)
        .error(error)
        .notice(notice)
        .response(body);
    *resp.status_mut() = status;
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
pub struct ArticleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    base_version: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    symptom: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    resolution: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    device_type: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    firmware: String,
}

/// `POST /kb/articles/{id}/{action}`: submit, review, edit.
pub async fn act(
    State(s): State<AppState>,
    who: WebAuth,
    Path((id, action)): Path<(i64, String)>,
    WebForm(f): WebForm<ArticleForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let p = &who.principal;
    let (result, done) = match action.as_str() {
        "submit" => (s.kb.submit(p, id).await, "submit"),
        "review" => {
            let decision = match f.decision.as_str() {
                "publish" => Decision::Publish,
                "return" => Decision::Return,
                other => {
                    return Err(WebError::bad_form(format!(
                        "decision {other:?} is neither publish nor return"
                    )))
                }
            };
            let req = Review {
                decision,
                comment: opt(&f.comment),
            };
            let done = if decision == Decision::Publish {
                "publish"
            } else {
                "return"
            };
            (s.kb.review(p, id, &req).await, done)
        }
        "edit" => {
            let base_version = f.base_version.trim().parse().map_err(|_| {
                WebError::bad_form(format!("base_version {:?} is not a number", f.base_version))
            })?;
            let req = ArticleEdit {
                base_version,
                title: f.title,
                symptom: f.symptom,
                cause: f.cause,
                resolution: f.resolution,
                vendor: opt(&f.vendor),
                device_type: opt(&f.device_type),
                model: opt(&f.model),
                firmware: opt(&f.firmware),
            };
            (s.kb.edit(p, id, &req).await, "edit")
        }
        _ => return Err(WebError::new(StatusCode::NOT_FOUND, "No such action.")),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/kb/articles/{id}?done={done}")).into_response()),
        Err(e) => {
            let e = WebError::from(e);
            page(&s, &who, id, Some(e.message), None, e.status).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DraftForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    case_number: String,
}

/// `POST /kb/draft`: an article drafted from a resolved or closed case.
pub async fn draft(
    State(s): State<AppState>,
    who: WebAuth,
    WebForm(f): WebForm<DraftForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let req = NewArticle {
        case_number: f.case_number,
        ..Default::default()
    };
    let a = s.kb.draft_from_case(&who.principal, &req).await?;
    Ok(Redirect::to(&format!("/kb/articles/{}?done=draft", a.id)).into_response())
}
