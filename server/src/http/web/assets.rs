//! The console's stylesheet and script, embedded in the binary (nothing is
//! loaded from elsewhere). Their paths carry the server's version, so a
//! browser may keep them for a day and still gets new ones after an upgrade.

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub const CSS_PATH: &str = concat!("/assets/console-", env!("CARGO_PKG_VERSION"), ".css");
pub const JS_PATH: &str = concat!("/assets/console-", env!("CARGO_PKG_VERSION"), ".js");

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

const CACHE: &str = "public, max-age=86400";

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        CSS,
    )
        .into_response()
}

pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        JS,
    )
        .into_response()
}
