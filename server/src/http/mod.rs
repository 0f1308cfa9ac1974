//! The HTTP face of the server: the REST API under `/api/v1` (bearer tokens),
//! its OpenAPI document (generated from the handlers' annotations, so it
//! cannot drift from the routes), `/healthz` and `/metrics`.
//!
//! Handlers are thin: extract, call the domain, map the result. Errors leave
//! through [`error::ApiError`] only.

pub mod agents;
pub mod cases;
pub mod directory;
pub mod error;
pub mod extract;
pub mod feedback;
pub mod field;
pub mod kb;
pub mod mail;
pub mod relay;
pub mod releases;
pub mod reports;
pub mod rma;
pub mod service_reports;
pub mod sla;
pub mod upgrades;
pub mod users;
pub mod web;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cases::Cases;
use crate::clock::Clock;
use crate::store::Store;
use error::ApiError;

/// Largest request body accepted (bytes).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Largest agent batch accepted (an inventory of hundreds of devices with
/// their modules can pass 1 MiB).
pub const AGENT_BODY_LIMIT: usize = 16 * 1024 * 1024;
const AGENT_MESSAGES: &str = "/api/v1/agent/messages";

/// Largest raw message the mail gateway endpoint reads.
pub const MAIL_BODY_LIMIT: usize = crate::mail::settings::TRANSFER_LIMIT as usize;
const MAIL_INBOUND: &str = "/api/v1/mail/inbound";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cases: Cases,
    pub clock: Arc<dyn Clock>,
    /// SLA policies and calendars (for the clock view).
    pub sla: Arc<crate::sla::settings::SlaSettings>,
    /// Enrolment and the agent uplink.
    pub agents: crate::agents::Agents,
    /// The SSH relay, when it runs in this process.
    pub relay: Option<crate::relay::Relay>,
    /// Spare parts and RMA shipments.
    pub rma: crate::rma::Rma,
    /// The knowledge base.
    pub kb: crate::kb::Kb,
    /// Service reports and their schedules.
    pub reports: crate::reports::Reports,
    /// Field visits, field promises and preventive inspections.
    pub field: crate::field::Field,
    /// Inbound e-mail (the gateway endpoint, kept messages, attachments).
    pub mail: crate::mail::Mail,
    /// The release catalog and agent self-update.
    pub releases: crate::releases::Releases,
    /// Mark the console's cookies `Secure` (the server speaks HTTPS).
    pub secure_cookies: bool,
    metrics: PrometheusHandle,
}

impl AppState {
    /// State around a configured case service (e.g. one that feeds the SLA engine).
    pub fn with_cases(cases: Cases, sla: Arc<crate::sla::settings::SlaSettings>) -> AppState {
        AppState {
            rma: crate::rma::Rma::new(cases.clone(), sla.clone(), Default::default()),
            kb: crate::kb::Kb::new(cases.clone()),
            reports: crate::reports::Reports::new(
                cases.store.clone(),
                cases.clock.clone(),
                sla.clone(),
                Default::default(),
            ),
            field: crate::field::Field::new(cases.clone(), sla.clone()),
            mail: crate::mail::Mail::new(cases.clone(), Default::default()),
            sla,
            agents: crate::agents::Agents::new(cases.clone(), Default::default()),
            relay: None,
            releases: crate::releases::Releases::new(
                cases.store.clone(),
                cases.clock.clone(),
                Default::default(),
            ),
            secure_cookies: false,
            store: cases.store.clone(),
            clock: cases.clock.clone(),
            cases,
            metrics: metrics_handle(),
        }
    }

    /// Use this agents service (configured, with its timers) instead of the default.
    pub fn with_agents(mut self, agents: crate::agents::Agents) -> AppState {
        self.agents = agents;
        self
    }

    /// Use this reports service (configured `[reports]`, with e-mail).
    pub fn with_reports(mut self, reports: crate::reports::Reports) -> AppState {
        self.reports = reports;
        self
    }

    /// Use this RMA service (configured `[rma]`) instead of the default.
    pub fn with_releases(mut self, releases: crate::releases::Releases) -> AppState {
        self.releases = releases;
        self
    }

    pub fn with_rma(mut self, rma: crate::rma::Rma) -> AppState {
        self.rma = rma;
        self
    }

    /// Use this mail service (configured `[mail]`) instead of the default.
    pub fn with_mail(mut self, mail: crate::mail::Mail) -> AppState {
        self.mail = mail;
        self
    }

    pub fn with_secure_cookies(mut self, secure: bool) -> AppState {
        self.secure_cookies = secure;
        self
    }

    pub fn with_relay(mut self, relay: Option<crate::relay::Relay>) -> AppState {
        self.relay = relay;
        self
    }
}

/// The process-wide Prometheus recorder (installed on first use).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then ours records nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Outpost case server API", description = "Cases, customer directory and users. Authenticate with `Authorization: Bearer <token>`."),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "agent-signature",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "Authorization",
                    "Outpost-Agent <agent_id>:<unix seconds>:<hex ed25519 signature> (see outpost_protocol::uplink)",
                ),
            )),
        );
    }
}

/// The API routes together with their OpenAPI document.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(cases::create_case, cases::list_cases))
        .routes(routes!(cases::get_case))
        .routes(routes!(cases::list_activities))
        .routes(routes!(cases::get_sla))
        .routes(routes!(cases::set_status))
        .routes(routes!(cases::set_priority))
        .routes(routes!(cases::assign))
        .routes(routes!(cases::take_over))
        .routes(routes!(cases::classify))
        .routes(routes!(cases::add_note))
        .routes(routes!(cases::record_call))
        .routes(routes!(cases::record_field_visit))
        .routes(routes!(
            directory::create_organization,
            directory::list_organizations
        ))
        .routes(routes!(
            directory::get_organization,
            directory::update_organization
        ))
        .routes(routes!(directory::lookup))
        .routes(routes!(directory::create_site, directory::list_sites))
        .routes(routes!(directory::create_project, directory::list_projects))
        .routes(routes!(directory::add_participant))
        .routes(routes!(
            directory::create_contract,
            directory::list_contracts
        ))
        .routes(routes!(directory::get_contract, directory::update_contract))
        .routes(routes!(directory::create_device, directory::list_devices))
        .routes(routes!(directory::get_device, directory::update_device))
        .routes(routes!(reports::sla_report))
        .routes(routes!(sla::list_policies))
        .routes(routes!(sla::put_policy, sla::delete_policy))
        .routes(routes!(sla::list_calendars))
        .routes(routes!(sla::put_calendar, sla::delete_calendar))
        .routes(routes!(sla::import_holidays))
        .routes(routes!(agents::create_enrollment_token))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::get_agent))
        .routes(routes!(agents::revoke_agent))
        .routes(routes!(agents::enroll))
        .routes(routes!(agents::messages))
        .routes(routes!(agents::topology))
        .routes(routes!(feedback::survey_report))
        .routes(routes!(feedback::add_fault_report))
        .routes(routes!(feedback::diagnose))
        .routes(routes!(feedback::list_notifications))
        .routes(routes!(feedback::list_alerts))
        .routes(routes!(feedback::acknowledge_alert))
        .routes(routes!(feedback::get_survey, feedback::answer_survey))
        .routes(routes!(rma::create_part, rma::list_parts))
        .routes(routes!(rma::create_warehouse, rma::list_warehouses))
        .routes(routes!(rma::list_stock, rma::adjust_stock))
        .routes(routes!(rma::stock_ledger))
        .routes(routes!(rma::stock_units))
        .routes(routes!(field::schedule_visit, field::case_visits))
        .routes(routes!(field::list_visits))
        .routes(routes!(field::visit_step))
        .routes(routes!(field::create_schedule, field::list_schedules))
        .routes(routes!(field::record_inspection))
        .routes(routes!(field::list_inspections))
        .routes(routes!(rma::request_shipment))
        .routes(routes!(rma::list_shipments))
        .routes(routes!(rma::get_shipment))
        .routes(routes!(rma::shipment_step))
        .routes(routes!(kb::create_article, kb::list_articles))
        .routes(routes!(kb::get_article, kb::edit_article))
        .routes(routes!(kb::list_versions))
        .routes(routes!(kb::submit_article))
        .routes(routes!(kb::review_article))
        .routes(routes!(kb::search))
        .routes(routes!(kb::suggestions))
        .routes(routes!(service_reports::service_report))
        .routes(routes!(
            service_reports::get_schedule,
            service_reports::put_schedule,
            service_reports::delete_schedule
        ))
        .routes(routes!(users::me))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::update_user))
        .routes(routes!(users::create_token, users::list_tokens))
        .routes(routes!(users::revoke_token))
        .routes(routes!(users::add_ssh_key, users::list_ssh_keys))
        .routes(routes!(users::delete_ssh_key))
        .routes(routes!(users::set_password))
        .routes(routes!(directory::incoming_call))
        .routes(routes!(relay::list_sessions))
        .routes(routes!(relay::kill_session))
        .routes(routes!(relay::list_attempts))
        .routes(routes!(relay::list_replicas))
        .routes(routes!(relay::bind_device))
        .routes(routes!(relay::add_expert))
        .routes(routes!(relay::approve_remote, relay::list_approvals))
        .routes(routes!(relay::revoke_approval))
        .routes(routes!(mail::inbound))
        .routes(routes!(mail::list_messages))
        .routes(routes!(mail::raw_message))
        .routes(routes!(mail::release_message))
        .routes(routes!(mail::list_attachments))
        .routes(routes!(mail::get_attachment))
        .routes(routes!(releases::create_release, releases::list_releases))
        .routes(routes!(releases::get_release))
        .routes(routes!(
            releases::upload_artifact,
            releases::download_artifact
        ))
        .routes(routes!(releases::agent_update))
        .routes(routes!(releases::agent_artifact))
        .routes(routes!(releases::agent_updates))
        .routes(routes!(upgrades::create_campaign, upgrades::list_campaigns))
        .routes(routes!(upgrades::get_campaign))
        .routes(routes!(upgrades::campaign_action))
        .routes(routes!(upgrades::campaign_events))
        .routes(routes!(upgrades::applicable_upgrades))
        .routes(routes!(upgrades::device_upgrades))
        .routes(routes!(upgrades::agent_jobs))
        .split_for_parts()
}

/// The OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The complete application.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let doc = Arc::new(doc);
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
    .route(
        "/survey/{token}",
        get(feedback::survey_page).post(feedback::survey_submit),
    )
    .merge(web::routes())
    .route("/healthz", get(healthz))
    .route("/metrics", get(metrics_text))
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    .layer(middleware::from_fn(refuse_oversized))
    .layer(middleware::from_fn(track))
    .with_state(state)
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "database unavailable" })),
            )
                .into_response()
        }
    }
}

/// Prometheus text format: request counters and latency histograms, plus the
/// number of cases in each status (read from the database at scrape time).
async fn metrics_text(State(s): State<AppState>) -> Result<Response, ApiError> {
    let mut out = s.metrics.render();
    out.push_str("# HELP outpost_cases Cases by status.\n# TYPE outpost_cases gauge\n");
    let counts = s.store.case_counts_by_status().await?;
    for st in crate::cases::Status::ALL {
        let n = counts
            .iter()
            .find(|(k, _)| k == st.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0);
        out.push_str(&format!("outpost_cases{{status=\"{st}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP outpost_notification_deliveries Notifications by channel and state.\n# TYPE outpost_notification_deliveries gauge\n",
    );
    for (channel, status, n) in s.store.delivery_counts().await? {
        out.push_str(&format!(
            "outpost_notification_deliveries{{channel=\"{channel}\",status=\"{status}\"}} {n}\n"
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /api/v1/openapi.json",
        None,
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
        None,
    )
}

/// Refuse a body announced as larger than [`BODY_LIMIT`] before reading it
/// (bodies without a length are cut off at the limit while being read).
async fn refuse_oversized(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let path = req.uri().path();
    let limit = if path == AGENT_MESSAGES {
        AGENT_BODY_LIMIT
    } else if path == MAIL_INBOUND {
        MAIL_BODY_LIMIT
    } else if path.starts_with("/api/v1/releases/") && path.ends_with("/artifact") {
        // Artifacts are streamed into the store and checked against the
        // signed size as they arrive (`releases::Upload`).
        crate::releases::MAX_ARTIFACT as usize
    } else {
        BODY_LIMIT
    };
    if announced.is_some_and(|n| n > limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body may be at most {limit} bytes"),
            None,
        )
        .into_response();
    }
    next.run(req).await
}

/// Count and time every request by route template (not raw path, so case
/// numbers do not explode the label set).
async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("outpost_http_requests_total", &labels).increment(1);
    metrics::histogram!("outpost_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}
