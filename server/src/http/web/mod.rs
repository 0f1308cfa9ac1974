//! The web console's sign-in: `/login`, `/logout`, and the browser session
//! behind every console page.
//!
//! * A session is a random token in the `outpost_session` cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` when the server
//!   speaks HTTPS); only its SHA-256 is stored, with the user, an expiry
//!   ([`SESSION_FOR`]) and the session's CSRF token. Logging out ends it in
//!   the database, so the cookie is refused from then on.
//! * Every form carries a CSRF token: the session's, once signed in; on the
//!   login form, a token also set in the short-lived `outpost_login` cookie
//!   (double submit), so that another site cannot sign a browser in.
//! * A page's caller is the same [`Principal`] an API token gives, and
//!   pages check it with the same [`Principal::may`]: there is no second
//!   authorisation path.

use axum::extract::{Form, FromRequestParts, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::AppState;
use crate::auth::{generate_token, hash_token, Principal};

pub mod assets;
pub mod cases;
pub mod charts;
pub mod console;
pub mod csv;
pub mod dashboard;
pub mod kb;
pub mod layout;
pub mod queues;
pub mod reports;
pub mod spares;
pub mod topology;
pub mod upgrades;
pub mod visits;

pub use layout::{Page, WebError, WebResult};

/// The console's routes (all under the browser session, [`WebAuth`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(assets::CSS_PATH, get(assets::css))
        .route(assets::JS_PATH, get(assets::js))
        .route("/console", get(console::search))
        .route("/console/calls", get(console::calls))
        .route("/console/organizations/{id}", get(console::dossier))
        .route(
            "/console/organizations/{id}/topology.svg",
            get(console::topology_svg),
        )
        .route("/queues", get(queues::queues))
        .route("/cases", get(cases::list))
        .route("/cases/new", get(cases::new_form).post(cases::create))
        .route("/cases/{number}", get(cases::show))
        .route("/cases/{number}/{action}", post(cases::act))
        .route("/cases/{number}/spare", post(spares::request))
        .route("/cases/{number}/shipments/{id}/{step}", post(spares::step))
        .route("/cases/{number}/visit", post(visits::schedule))
        .route("/cases/{number}/visits/{id}/{step}", post(visits::step))
        .route("/inspections", get(visits::page))
        .route("/dashboard", get(dashboard::page))
        .route(
            "/console/organizations/{id}/service-report",
            get(reports::page),
        )
        .route(
            "/console/organizations/{id}/service-report.pdf",
            get(reports::pdf),
        )
        .route("/kb", get(kb::search))
        .route("/kb/draft", post(kb::draft))
        .route("/kb/articles/{id}", get(kb::article))
        .route("/kb/articles/{id}/{action}", post(kb::act))
        .route("/dashboard/{file}", get(dashboard::download))
        .route("/upgrades", get(upgrades::page))
        .route("/upgrades/campaigns", post(upgrades::create))
        .route("/upgrades/campaigns/{id}", get(upgrades::campaign))
        .route("/upgrades/campaigns/{id}/action", post(upgrades::act))
}

/// How long a browser session lasts.
pub const SESSION_FOR: chrono::Duration = chrono::Duration::hours(12);
const SESSION_COOKIE: &str = "outpost_session";
const LOGIN_COOKIE: &str = "outpost_login";

/// A cookie's value from the request, if sent once and plausible.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

fn set_cookie(secure: bool, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Equal without an early exit (the tokens are secrets).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A page outside the console (sign-in, refusals): no navigation.
fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - Outpost" }
                link rel="stylesheet" href=(assets::CSS_PATH);
            }
            body.narrow { main id="main" { (body) } }
        }
    }
}

fn login_page(csrf: &str, error: Option<&str>, username: &str) -> Markup {
    page(
        "Sign in",
        html! {
            h1 { "Sign in to Outpost" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="username" { "User name" }
                input id="username" name="username" autocomplete="username" required value=(username);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The sign-in form, with a fresh login CSRF token.
pub async fn login_form(State(s): State<AppState>) -> Response {
    let csrf = generate_token();
    let mut resp = Html(login_page(&csrf, None, "").into_string()).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(s.secure_cookies, LOGIN_COOKIE, &csrf, 3600),
    );
    resp
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub(crate) fn refused_form() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            page(
                "Refused",
                html! {
                    h1 { "This form was refused" }
                    p { "It has expired, or it was not sent from this site. "
                        a href="/login" { "Go back" } " and try again." }
                },
            )
            .into_string(),
        ),
    )
        .into_response()
}

/// Checks the password and starts a session.
pub async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    match cookie(&headers, LOGIN_COOKIE) {
        Some(expected) if same(&expected, &f.csrf) => {}
        _ => return refused_form(),
    }
    let username = f.username.trim().to_string();
    let found = match s.store.password_login(&username).await {
        Ok(found) => found,
        Err(e) => return super::error::ApiError::from(e).into_response(),
    };
    let password = f.password;
    // Unknown users cost a hash too, so that timing does not tell them apart.
    let (user_id, stored) = found.unwrap_or((0, String::new()));
    let checked = tokio::task::spawn_blocking(move || {
        if stored.is_empty() {
            let _ = crate::password::hash(&password);
            false
        } else {
            crate::password::verify(&password, &stored)
        }
    })
    .await
    .unwrap_or(false);
    if !checked {
        tracing::info!(user = %username, "web: sign-in refused");
        return (
            StatusCode::UNAUTHORIZED,
            Html(
                login_page(
                    &f.csrf,
                    Some("Unknown user name or wrong password."),
                    &username,
                )
                .into_string(),
            ),
        )
            .into_response();
    }
    let token = generate_token();
    let csrf = generate_token();
    let now = s.clock.now();
    if let Err(e) = s
        .store
        .insert_web_session(&hash_token(&token), user_id, &csrf, now, now + SESSION_FOR)
        .await
    {
        return super::error::ApiError::from(e).into_response();
    }
    tracing::info!(user = %username, "web: signed in");
    let mut resp = Redirect::to("/").into_response();
    let headers = resp.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            s.secure_cookies,
            SESSION_COOKIE,
            &token,
            SESSION_FOR.num_seconds(),
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(s.secure_cookies, LOGIN_COOKIE, "", 0),
    );
    resp
}

/// The signed-in caller of a console page; without a live session, the
/// browser is sent to `/login`.
pub struct WebAuth {
    pub principal: Principal,
    pub csrf: String,
    token_hash: String,
}

impl FromRequestParts<AppState> for WebAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        let token_hash = hash_token(&token);
        match s.store.web_session(&token_hash, s.clock.now()).await {
            Ok(Some(session)) => Ok(WebAuth {
                principal: session.principal,
                csrf: session.csrf,
                token_hash,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(super::error::ApiError::from(e).into_response()),
        }
    }
}

/// The console's start page: customers go to their portal, staff to the
/// call-center search, managers to the dashboard.
pub async fn home(who: WebAuth) -> Response {
    use crate::auth::Role;
    let to = match who.principal.role {
        Role::Customer => "/cases",
        Role::Manager => "/dashboard",
        Role::Engineer | Role::Expert => "/cases?mine=1",
        _ => "/console",
    };
    Redirect::to(to).into_response()
}

impl WebAuth {
    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), WebError> {
        if same(&self.csrf, sent) {
            Ok(())
        } else {
            Err(WebError::csrf())
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// Ends the session (the form must carry the session's CSRF token).
pub async fn logout(State(s): State<AppState>, who: WebAuth, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = who.check_csrf(&f.csrf) {
        return e.into_response();
    }
    if let Err(e) = s
        .store
        .end_web_session(&who.token_hash, s.clock.now())
        .await
    {
        return super::error::ApiError::from(e).into_response();
    }
    tracing::info!(user = %who.principal.username, "web: signed out");
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(s.secure_cookies, SESSION_COOKIE, "", 0),
    );
    resp
}
