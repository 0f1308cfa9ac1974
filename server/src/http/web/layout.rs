//! The console's frame: the page layout with its navigation (by role), the
//! error page every console handler falls back to, and the small formatting
//! helpers pages share (times, badges, durations).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{assets, WebAuth};
use crate::auth::Role;
use crate::cases::{Priority, Status};
use crate::error::Error;

/// Where a page sits in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Console,
    Queues,
    Cases,
    NewCase,
    Dashboard,
    Knowledge,
    /// A customer's own service report.
    Report,
    Inspections,
    Upgrades,
    None,
}

/// One console page: title, navigation entry, optional message and body.
pub struct Page<'a> {
    pub who: &'a WebAuth,
    pub title: String,
    pub nav: Nav,
    /// An error to show above the content (a refused form, for instance).
    pub error: Option<String>,
    /// A confirmation to show above the content.
    pub notice: Option<String>,
    /// Reload every so many seconds while nobody is typing (queues).
    pub refresh_secs: Option<u32>,
}

impl<'a> Page<'a> {
    pub fn new(who: &'a WebAuth, title: impl Into<String>, nav: Nav) -> Page<'a> {
        Page {
            who,
            title: title.into(),
            nav,
            error: None,
            notice: None,
            refresh_secs: None,
        }
    }

    pub fn refresh(mut self, secs: u32) -> Self {
        self.refresh_secs = Some(secs);
        self
    }

    pub fn error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }

    pub fn notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }

    /// The whole document around `body`.
    pub fn render(self, body: Markup) -> Markup {
        let p = &self.who.principal;
        let link = |nav: Nav, href: &str, label: &str| {
            html! {
                @if nav == self.nav {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " - Outpost" }
                    link rel="stylesheet" href=(assets::CSS_PATH);
                    script src=(assets::JS_PATH) defer {}
                }
                body data-role=(p.role.as_str()) {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/" { "Outpost" }
                        nav aria-label="Main" {
                            @if p.role == Role::Customer {
                                (link(Nav::Cases, "/cases", "Our cases"))
                                (link(Nav::NewCase, "/cases/new", "Report a problem"))
                                @if let Some(org) = p.organization_id {
                                    (link(Nav::Report, &format!("/console/organizations/{org}/service-report"), "Service report"))
                                }
                                (link(Nav::Upgrades, "/upgrades", "Upgrades"))
                            } @else {
                                (link(Nav::Console, "/console", "Call center"))
                                (link(Nav::Queues, "/queues", "Queues"))
                                (link(Nav::Cases, "/cases", "Cases"))
                                (link(Nav::Dashboard, "/dashboard", "Dashboard"))
                                (link(Nav::Knowledge, "/kb", "Knowledge base"))
                                (link(Nav::Inspections, "/inspections", "Inspections"))
                                (link(Nav::Upgrades, "/upgrades", "Upgrades"))
                            }
                        }
                        div.who {
                            span { (p.display_name) " (" (p.role.as_str()) ")" }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(self.who.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    main id="main" tabindex="-1" data-refresh=[self.refresh_secs] {
                        h1 { (self.title) }
                        @if let Some(e) = &self.error {
                            p.error role="alert" { (e) }
                        }
                        @if let Some(n) = &self.notice {
                            p.notice role="status" { (n) }
                        }
                        (body)
                    }
                    // The hotline's callers pop up for those who answer it.
                    @if matches!(p.role, Role::Dispatcher | Role::Admin) {
                        div id="caller-popup" role="alertdialog" aria-live="assertive" aria-labelledby="caller-title" hidden {}
                    }
                }
            }
        }
    }

    pub fn response(self, body: Markup) -> Response {
        Html(self.render(body).into_string()).into_response()
    }
}

/// A console page that could not be shown: the status and a page saying why.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub message: String,
}

pub type WebResult<T = Response> = Result<T, WebError>;

impl WebError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            message: message.into(),
        }
    }

    pub fn csrf() -> WebError {
        WebError::new(
            StatusCode::FORBIDDEN,
            "This form was refused: it has expired or it was not sent from this site. Go back, reload the page and try again.",
        )
    }

    pub fn bad_form(what: impl std::fmt::Display) -> WebError {
        WebError::new(StatusCode::UNPROCESSABLE_ENTITY, what.to_string())
    }
}

impl From<Error> for WebError {
    fn from(e: Error) -> WebError {
        let api = super::super::error::ApiError::from(e);
        WebError::new(api.status, api.body.message)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            s if s.is_client_error() => "That did not work",
            _ => "Something went wrong",
        };
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " - Outpost" }
                    link rel="stylesheet" href=(assets::CSS_PATH);
                }
                body.narrow {
                    main id="main" {
                        h1 { (title) }
                        p.error role="alert" { (self.message) }
                        p { a href="javascript:history.back()" { "Go back" } " or " a href="/" { "start over" } "." }
                    }
                }
            }
        };
        (self.status, Html(body.into_string())).into_response()
    }
}

/// A form body; a body that does not decode is refused with the reason
/// on a console page rather than as plain text.
pub struct WebForm<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for WebForm<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = WebError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, WebError> {
        match axum::extract::Form::<T>::from_request(req, state).await {
            Ok(axum::extract::Form(v)) => Ok(WebForm(v)),
            Err(e) => Err(WebError::bad_form(format!(
                "The form could not be read: {}",
                e.body_text()
            ))),
        }
    }
}

/// A `<time>` element: UTC on the server, the reader's local time once the
/// script has run.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

pub fn time_opt(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { "-" } },
    }
}

/// A live countdown to `due` (or time past it), updated by the script.
pub fn countdown(due: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let left = (due - now).num_seconds();
    let class = if left < 0 {
        "countdown overdue"
    } else {
        "countdown"
    };
    html! {
        span class=(class) data-due=(due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (duration_words(left))
        }
    }
}

/// "in 1h 05m" / "12m 30s overdue".
pub fn duration_words(secs: i64) -> String {
    let a = secs.unsigned_abs();
    let text = if a >= 86_400 {
        format!("{}d {:02}h", a / 86_400, (a % 86_400) / 3600)
    } else if a >= 3600 {
        format!("{}h {:02}m", a / 3600, (a % 3600) / 60)
    } else {
        format!("{}m {:02}s", a / 60, a % 60)
    };
    if secs < 0 {
        format!("{text} overdue")
    } else {
        format!("in {text}")
    }
}

/// A working-time span in words: "1h 30m".
pub fn span_words(secs: i64) -> String {
    let a = secs.max(0);
    if a >= 3600 {
        format!("{}h {:02}m", a / 3600, (a % 3600) / 60)
    } else {
        format!("{}m", a / 60)
    }
}

pub fn priority_badge(p: Priority) -> Markup {
    html! { span class={"badge " (p.as_str().to_lowercase())} { (p.as_str()) } }
}

pub fn status_badge(s: Status) -> Markup {
    html! { span class={"status " (s.as_str())} { (s.as_str().replace('_', " ")) } }
}

/// A table wrapped for narrow screens, with a CSV link when given.
pub fn table_wrap(csv: Option<&str>, table: Markup) -> Markup {
    html! {
        div.table-wrap { (table) }
        @if let Some(href) = csv {
            p.small { a href=(href) download { "Download as CSV" } }
        }
    }
}

/// Inline SVG, already escaped by its maker.
pub fn raw_svg(svg: String) -> Markup {
    PreEscaped(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words(90), "in 1m 30s");
        assert_eq!(duration_words(-3700), "1h 01m overdue");
        assert_eq!(duration_words(2 * 86_400 + 7200), "in 2d 02h");
        assert_eq!(span_words(5400), "1h 30m");
    }
}
