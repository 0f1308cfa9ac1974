//! Fault reports, notifications sent for a case, escalation alerts, and the
//! customer's satisfaction survey (a tokenised link: no login needed; the
//! `/survey/{token}` page is a plain HTML form that works without scripts).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::auth::Action;
use crate::cases::feedback::{
    DeliveryView, NewDiagnosis, NewFaultReport, SurveyAnswer, SurveyView,
};
use crate::cases::CaseView;
use crate::clock::from_micros;
use crate::error::Error;
use crate::store::notify::Alert;

/// File the fault analysis report; required before a P1/P2 case closes, and
/// e-mailed to the customer contact.
#[utoipa::path(post, path = "/api/v1/cases/{number}/fault-report", tag = "cases",
    params(("number" = String, Path, description = "Case number")), request_body = NewFaultReport,
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_fault_report(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewFaultReport>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.add_fault_report(&who, &number, &req).await?))
}

/// Record the diagnosis: escalation by time without diagnosis stops (until
/// the case is reopened).
#[utoipa::path(post, path = "/api/v1/cases/{number}/diagnosis", tag = "cases",
    params(("number" = String, Path, description = "Case number")), request_body = NewDiagnosis,
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn diagnose(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewDiagnosis>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(s.cases.diagnose(&who, &number, &req).await?))
}

/// Every notification (e-mail, SMS, webhook) sent or due for a case (staff).
#[utoipa::path(get, path = "/api/v1/cases/{number}/notifications", tag = "cases",
    params(("number" = String, Path, description = "Case number")),
    responses((status = 200, body = Vec<DeliveryView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_notifications(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    Ok(Json(s.cases.deliveries(&who, &number).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Everyone's alerts (admins only). Default: the caller's.
    #[serde(default)]
    pub all: bool,
    /// Include acknowledged alerts. Default false.
    #[serde(default)]
    pub acknowledged: bool,
}

/// Escalation and reassign alerts for the caller, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = Vec<Alert>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_alerts(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> ApiResult<Json<Vec<Alert>>> {
    Ok(Json(s.cases.alerts(&who, q.all, q.acknowledged).await?))
}

/// Acknowledge an alert (its recipient, or an admin); recorded on the case.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    responses((status = 200, body = Alert), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn acknowledge_alert(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Alert>> {
    Ok(Json(s.cases.acknowledge_alert(&who, id).await?))
}

/// What a survey link refers to (no authentication: the token is the key).
#[utoipa::path(get, path = "/api/v1/surveys/{token}", tag = "surveys",
    params(("token" = String, Path, description = "The token from the survey e-mail")),
    responses((status = 200, body = SurveyView), (status = 404, body = ErrorBody)))]
pub async fn get_survey(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<Json<SurveyView>> {
    Ok(Json(s.cases.survey(&token).await?))
}

/// Answer a survey once: rating 1..5 and an optional comment.
#[utoipa::path(post, path = "/api/v1/surveys/{token}", tag = "surveys",
    params(("token" = String, Path, description = "The token from the survey e-mail")),
    request_body = SurveyAnswer,
    responses((status = 200, body = SurveyView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn answer_survey(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
    ApiJson(a): ApiJson<SurveyAnswer>,
) -> ApiResult<Json<SurveyView>> {
    Ok(Json(s.cases.answer_survey(&token, &a).await?))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, inner: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}\
         label{{display:inline-block;margin-right:1rem}}textarea{{width:100%;height:6rem}}</style></head>\
         <body><h1>{t}</h1>{inner}</body></html>",
        t = escape(title)
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

fn error_page(e: Error) -> Response {
    let api = ApiError::from(e);
    page(
        api.status,
        "Survey",
        &format!("<p>{}</p>", escape(&api.body.message)),
    )
}

/// The survey form (HTML).
pub async fn survey_page(
    State(s): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    match s.cases.survey(&token).await {
        Err(e) => error_page(e),
        Ok(v) if v.answered => page(
            StatusCode::OK,
            "Thank you",
            "<p>This survey has been answered. Thank you!</p>",
        ),
        Ok(v) => {
            let radios: String = (1..=5)
                .map(|n| {
                    format!("<label><input type=\"radio\" name=\"rating\" value=\"{n}\" required> {n}</label>")
                })
                .collect();
            page(
                StatusCode::OK,
                "How did we do?",
                &format!(
                    "<p>Case {} — {}</p><form method=\"post\">\
                     <p>Your rating (1 poor … 5 excellent):<br>{radios}</p>\
                     <p><label for=\"c\">Comment (optional)</label><br>\
                     <textarea id=\"c\" name=\"comment\" maxlength=\"4000\"></textarea></p>\
                     <p><button type=\"submit\">Send</button></p></form>",
                    escape(&v.case_number),
                    escape(&v.summary)
                ),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SurveyForm {
    rating: Option<String>,
    comment: Option<String>,
}

/// The survey form's POST (HTML).
pub async fn survey_submit(
    State(s): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    form: Result<Form<SurveyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return error_page(Error::invalid("form", "not a survey form"));
    };
    let Some(rating) = f
        .rating
        .as_deref()
        .and_then(|r| r.trim().parse::<i64>().ok())
    else {
        return error_page(Error::invalid("rating", "choose a rating from 1 to 5"));
    };
    let answer = SurveyAnswer {
        rating,
        comment: f.comment,
    };
    match s.cases.answer_survey(&token, &answer).await {
        Ok(_) => page(
            StatusCode::OK,
            "Thank you",
            "<p>Your answer has been recorded. Thank you!</p>",
        ),
        Err(e) => error_page(e),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SurveyReportQuery {
    /// RFC 3339; answers at or after.
    pub from: DateTime<Utc>,
    /// RFC 3339; answers before.
    pub to: DateTime<Utc>,
    pub organization_id: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RatingSummary {
    pub answers: i64,
    pub average: f64,
    /// Answers per rating "1".."5".
    pub ratings: BTreeMap<String, i64>,
}

impl RatingSummary {
    fn add(&mut self, r: i64) {
        self.average = (self.average * self.answers as f64 + r as f64) / (self.answers + 1) as f64;
        self.answers += 1;
        *self.ratings.entry(r.to_string()).or_default() += 1;
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EngineerRating {
    pub engineer_id: Option<i64>,
    pub engineer: Option<String>,
    #[serde(flatten)]
    pub summary: RatingSummary,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SurveyReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Surveys sent in the range.
    pub sent: i64,
    pub overall: RatingSummary,
    pub by_engineer: Vec<EngineerRating>,
    /// Per calendar month "YYYY-MM" (UTC).
    pub by_month: BTreeMap<String, RatingSummary>,
}

/// Satisfaction survey results by engineer and by month (staff).
#[utoipa::path(get, path = "/api/v1/reports/surveys", tag = "reports", params(SurveyReportQuery),
    responses((status = 200, body = SurveyReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn survey_report(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<SurveyReportQuery>,
) -> ApiResult<Json<SurveyReport>> {
    who.require(Action::ReadReports)?;
    if q.to <= q.from {
        return Err(Error::invalid("to", "must be after from").into());
    }
    let answers = s
        .store
        .survey_answers(q.from, q.to, q.organization_id)
        .await?;
    let sent = s
        .store
        .surveys_sent(q.from, q.to, q.organization_id)
        .await?;
    let mut overall = RatingSummary::default();
    let mut by_engineer: BTreeMap<Option<i64>, EngineerRating> = BTreeMap::new();
    let mut by_month: BTreeMap<String, RatingSummary> = BTreeMap::new();
    for a in answers {
        overall.add(a.rating);
        by_engineer
            .entry(a.engineer_id)
            .or_insert_with(|| EngineerRating {
                engineer_id: a.engineer_id,
                engineer: a.engineer_name.clone(),
                summary: RatingSummary::default(),
            })
            .summary
            .add(a.rating);
        let at = from_micros(a.answered_at);
        by_month
            .entry(format!("{:04}-{:02}", at.year(), at.month()))
            .or_default()
            .add(a.rating);
    }
    Ok(Json(SurveyReport {
        from: q.from,
        to: q.to,
        sent,
        overall,
        by_engineer: by_engineer.into_values().collect(),
        by_month,
    }))
}
