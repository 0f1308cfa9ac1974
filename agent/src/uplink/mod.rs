//! The uplink: the agent's HTTPS client for the server, following the
//! contract in `outpost_protocol::uplink`.
//!
//! * [`enroll`]: `POST /api/v1/agent/enroll` (unsigned; the token is the
//!   credential).
//! * [`Uplink`]: every later request, signed with the agent's ed25519 key
//!   over [`signing_input`] (method, path and query exactly as sent, agent
//!   id, timestamp, SHA-256 of the body bytes). The timestamp is the local
//!   clock plus an offset learnt from the server's `Date` header when it
//!   answers 401 `clock_skew`; such a request is retried once.
//!
//! Plain `http://` is allowed only to loopback (127.0.0.0/8, `::1`,
//! `localhost`); anything else must be `https://`, validated by WebPKI or,
//! when the identity has a pin, by [`tls`].

pub mod tls;

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use outpost_protocol::{
    signing_input_hashed, AgentAuth, AgentMessage, BatchResult, EnrollRequest, EnrollResponse,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, DATE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Path of the enrolment endpoint.
pub const ENROLL_PATH: &str = "/api/v1/agent/enroll";
/// Path of the message endpoint.
pub const MESSAGES_PATH: &str = "/api/v1/agent/messages";
/// Time limit of one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// The server URL is not acceptable.
    #[error("{0}")]
    Url(String),
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server refused the agent's credentials (revoked or unknown agent,
    /// bad signature) or, at enrolment, the token.
    #[error("the server refused the agent ({status}): {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error's stable code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Any other error answer.
    #[error("the server answered {status}: {code}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The error's stable code, if the body had one.
        code: String,
        /// The server's message or body.
        message: String,
    },
    /// A success answer that does not match the contract.
    #[error("unexpected answer from the server: {0}")]
    BadResponse(String),
}

impl UplinkError {
    /// Whether retrying later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            UplinkError::Unreachable(_) => true,
            UplinkError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The JSON error body of the server: `{ "code", "message" }`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Parses and checks a server URL: `https://`, or `http://` to loopback.
pub fn check_url(url: &str) -> Result<Url, UplinkError> {
    let parsed = Url::parse(url.trim_end_matches('/'))
        .map_err(|err| UplinkError::Url(format!("server URL {url:?}: {err}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(UplinkError::Url(format!(
                    "server URL {url:?}: plain http:// is allowed only to loopback (127.0.0.0/8, ::1, localhost); use https://"
                )));
            }
        }
        other => {
            return Err(UplinkError::Url(format!(
                "server URL {url:?}: scheme {other:?} is not https"
            )))
        }
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(UplinkError::Url(format!(
            "server URL {url:?} must not have a query or fragment"
        )));
    }
    Ok(parsed)
}

/// An HTTP client for the server at `base` (checked with [`check_url`]),
/// pinned when `pin` is set.
///
/// The built-in WebPKI roots are loaded only when they can be used: for an
/// `https://` server without a pin. (A plain `http://` server is loopback
/// only; parsing about 150 root certificates for it would cost memory for
/// nothing.)
pub fn http_client(base: &Url, pin: Option<&str>) -> Result<reqwest::Client, UplinkError> {
    client_builder(base, pin)?
        .build()
        .map_err(|err| UplinkError::Url(format!("cannot build the HTTP client: {err}")))
}

fn client_builder(base: &Url, pin: Option<&str>) -> Result<reqwest::ClientBuilder, UplinkError> {
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1)
        .user_agent(concat!("outpost-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(pin) = pin {
        builder = builder.use_preconfigured_tls(tls::pinned_config(pin).map_err(UplinkError::Url)?);
    } else if base.scheme() != "https" {
        builder = builder.tls_built_in_root_certs(false);
    }
    Ok(builder)
}

/// Joins the base URL's path and an endpoint path.
fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

/// What enrolment returned, with the pin of the TLS key actually seen.
#[derive(Debug)]
pub struct Enrolled {
    pub response: EnrollResponse,
    /// Hex SHA-256 of the SubjectPublicKeyInfo the server presented (`None`
    /// over plain HTTP).
    pub seen_pin: Option<String>,
}

/// `POST /api/v1/agent/enroll`, trusting only `pin` when given, else the
/// system's WebPKI roots.
pub async fn enroll(
    server: &str,
    request: &EnrollRequest,
    pin: Option<&str>,
) -> Result<Enrolled, UplinkError> {
    let base = check_url(server)?;
    let client = client_builder(&base, pin)?
        .tls_info(true)
        .build()
        .map_err(|err| UplinkError::Url(format!("cannot build the HTTP client: {err}")))?;
    let body = serde_json::to_vec(request)
        .map_err(|err| UplinkError::BadResponse(format!("encoding the request: {err}")))?;
    let response = client
        .post(endpoint(&base, ENROLL_PATH))
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|err| UplinkError::Unreachable(error_chain(&err)))?;
    let seen_pin = match response.extensions().get::<reqwest::tls::TlsInfo>() {
        Some(info) => match info.peer_certificate() {
            Some(der) => Some(tls::spki_sha256(der).map_err(|err| {
                UplinkError::BadResponse(format!("the server's certificate: {err}"))
            })?),
            None => None,
        },
        None => None,
    };
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| UplinkError::Unreachable(error_chain(&err)))?;
    if !status.is_success() {
        return Err(error_from(status, &bytes));
    }
    let response =
        serde_json::from_slice(&bytes).map_err(|err| UplinkError::BadResponse(err.to_string()))?;
    Ok(Enrolled { response, seen_pin })
}

/// The signed client of an enrolled agent.
#[derive(Debug)]
pub struct Uplink {
    client: reqwest::Client,
    base: Url,
    agent_id: Uuid,
    key: SigningKey,
    /// Server clock minus local clock, in seconds.
    offset_secs: AtomicI64,
    /// Local clock minus the server's `Date` at the last answer, seconds
    /// (`i64::MIN`: no answer yet). Reported in heartbeats.
    measured_skew: AtomicI64,
}

impl Uplink {
    /// A client for `server` (checked with [`check_url`]), pinned if `pin`.
    pub fn new(
        server: &str,
        pin: Option<&str>,
        agent_id: Uuid,
        key: SigningKey,
    ) -> Result<Uplink, UplinkError> {
        let base = check_url(server)?;
        Ok(Uplink {
            client: http_client(&base, pin)?,
            base,
            agent_id,
            key,
            offset_secs: AtomicI64::new(0),
            measured_skew: AtomicI64::new(i64::MIN),
        })
    }

    /// The local clock minus the server's, in seconds, as seen in the `Date`
    /// header of the last answer; `None` before any.
    pub fn clock_skew_secs(&self) -> Option<i64> {
        Some(self.measured_skew.load(Ordering::Relaxed)).filter(|v| *v != i64::MIN)
    }

    fn measure_skew(&self, date: Option<&str>) {
        if let Some(offset) = date.and_then(|d| offset_from_date(d, Utc::now())) {
            self.measured_skew.store(-offset, Ordering::Relaxed);
        }
    }

    /// POSTs `body` as JSON to `path`, signed, and decodes the JSON answer.
    pub async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, UplinkError> {
        let body = serde_json::to_vec(body)
            .map_err(|err| UplinkError::BadResponse(format!("encoding the request: {err}")))?;
        let bytes = self.post_signed(path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|err| UplinkError::BadResponse(format!("{path}: {err}")))
    }

    /// A signed GET of `path` (empty body), from byte `from` on (`Range:
    /// bytes=from-` when above zero). Returns the response to stream from
    /// when its status is 200 or 206; `timeout` bounds the whole transfer.
    pub async fn get_signed(
        &self,
        path: &str,
        from: u64,
        timeout: Duration,
    ) -> Result<reqwest::Response, UplinkError> {
        let url = endpoint(&self.base, path);
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let body_sha256 = hex::encode(Sha256::digest(b""));
        for attempt in 0..2 {
            let timestamp = Utc::now().timestamp() + self.clock_offset_secs();
            let signature = self.key.sign(&signing_input_hashed(
                "GET",
                &path_and_query,
                self.agent_id,
                timestamp,
                &body_sha256,
            ));
            let auth = AgentAuth {
                agent_id: self.agent_id,
                timestamp,
                signature: signature.to_bytes().to_vec(),
            };
            let mut request = self
                .client
                .get(url.clone())
                .header(AUTHORIZATION, auth.to_header())
                .timeout(timeout);
            if from > 0 {
                request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
            }
            let response = request
                .send()
                .await
                .map_err(|err| UplinkError::Unreachable(error_chain(&err)))?;
            let status = response.status();
            let date = response
                .headers()
                .get(DATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.measure_skew(date.as_deref());
            if status.is_success() {
                return Ok(response);
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|err| UplinkError::Unreachable(error_chain(&err)))?;
            let error = error_from(status, &bytes);
            if let UplinkError::Refused { code, .. } = &error {
                if code == "clock_skew" && attempt == 0 {
                    if let Some(offset) = date
                        .as_deref()
                        .and_then(|d| offset_from_date(d, Utc::now()))
                    {
                        self.offset_secs.store(offset, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            return Err(error);
        }
        Err(UplinkError::BadResponse(
            "clock_skew again after correcting the clock".into(),
        ))
    }

    /// The offset added to the local clock when signing.
    pub fn clock_offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// Sends one message (a heartbeat) and returns its outcome and the
    /// hints the answer carries (what waits for the agent; `None` from
    /// servers that send none).
    pub async fn send_message(
        &self,
        message: &AgentMessage,
    ) -> Result<(outpost_protocol::Outcome, Option<outpost_protocol::Hints>), UplinkError> {
        let json = serde_json::to_vec(message)
            .map_err(|err| UplinkError::BadResponse(format!("encoding a message: {err}")))?;
        let result = self.send_batch(&[&json[..]]).await?;
        let hints = result.hints;
        let outcome = result
            .results
            .into_iter()
            .next()
            .ok_or_else(|| UplinkError::BadResponse("no outcome for the message".into()))?;
        Ok((outcome, hints))
    }

    /// Sends already-encoded `AgentMessage` JSON documents as one `Batch`
    /// (at most `MAX_BATCH`). The result has as many outcomes as messages.
    pub async fn send_batch(&self, messages: &[&[u8]]) -> Result<BatchResult, UplinkError> {
        let mut body = Vec::with_capacity(messages.iter().map(|m| m.len() + 1).sum::<usize>() + 16);
        body.extend_from_slice(b"{\"messages\":[");
        for (i, message) in messages.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(message);
        }
        body.extend_from_slice(b"]}");
        let bytes = self.post_signed(MESSAGES_PATH, body).await?;
        let result: BatchResult = serde_json::from_slice(&bytes)
            .map_err(|err| UplinkError::BadResponse(format!("batch result: {err}")))?;
        if result.results.len() != messages.len() {
            return Err(UplinkError::BadResponse(format!(
                "{} outcomes for {} messages",
                result.results.len(),
                messages.len()
            )));
        }
        Ok(result)
    }

    /// POSTs `body` to `path`, signed; on 401 `clock_skew` corrects the
    /// clock offset from the `Date` header and retries once.
    async fn post_signed(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>, UplinkError> {
        let url = endpoint(&self.base, path);
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let body_sha256 = hex::encode(Sha256::digest(&body));
        for attempt in 0..2 {
            let timestamp = Utc::now().timestamp() + self.clock_offset_secs();
            let signature = self.key.sign(&signing_input_hashed(
                "POST",
                &path_and_query,
                self.agent_id,
                timestamp,
                &body_sha256,
            ));
            let auth = AgentAuth {
                agent_id: self.agent_id,
                timestamp,
                signature: signature.to_bytes().to_vec(),
            };
            let response = self
                .client
                .post(url.clone())
                .header(AUTHORIZATION, auth.to_header())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|err| UplinkError::Unreachable(error_chain(&err)))?;
            let status = response.status();
            let date = response
                .headers()
                .get(DATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.measure_skew(date.as_deref());
            let bytes = response
                .bytes()
                .await
                .map_err(|err| UplinkError::Unreachable(error_chain(&err)))?;
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let error = error_from(status, &bytes);
            if let UplinkError::Refused { code, .. } = &error {
                if code == "clock_skew" && attempt == 0 {
                    if let Some(offset) = date
                        .as_deref()
                        .and_then(|d| offset_from_date(d, Utc::now()))
                    {
                        tracing::warn!(
                            offset_secs = offset,
                            "the server says our clock is off; correcting by its Date header and retrying"
                        );
                        self.offset_secs.store(offset, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            return Err(error);
        }
        Err(UplinkError::BadResponse(
            "clock_skew again after correcting the clock".into(),
        ))
    }
}

/// Server time (from an HTTP `Date` header) minus `now`, in seconds.
pub fn offset_from_date(date: &str, now: DateTime<Utc>) -> Option<i64> {
    let server = DateTime::parse_from_rfc2822(date.trim()).ok()?;
    Some(server.timestamp() - now.timestamp())
}

fn error_from(status: StatusCode, bytes: &[u8]) -> UplinkError {
    let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_else(|_| ErrorBody {
        code: String::new(),
        message: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
    });
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        UplinkError::Refused {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        }
    } else {
        UplinkError::Http {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        }
    }
}

/// An error with its causes on one line (reqwest hides the interesting part
/// in the source chain).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_loopback() {
        for ok in [
            "https://support.example.com",
            "https://support.example.com/outpost/",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9000",
            "http://localhost:1234",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://support.example.com",
            "http://10.0.0.1",
            "http://[::2]",
            "ftp://127.0.0.1",
            "https://x.example/?q=1",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_keeps_a_base_path() {
        let base = check_url("https://example.com/outpost/").expect("url");
        assert_eq!(
            endpoint(&base, MESSAGES_PATH).as_str(),
            "https://example.com/outpost/api/v1/agent/messages"
        );
        let base = check_url("http://127.0.0.1:1").expect("url");
        assert_eq!(endpoint(&base, ENROLL_PATH).path(), ENROLL_PATH);
    }

    #[test]
    fn offset_from_http_date() {
        let now = DateTime::parse_from_rfc3339("2024-05-14T09:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            offset_from_date("Tue, 14 May 2024 09:40:00 GMT", now),
            Some(600)
        );
        assert_eq!(
            offset_from_date("Tue, 14 May 2024 09:29:00 GMT", now),
            Some(-60)
        );
        assert_eq!(offset_from_date("yesterday", now), None);
    }

    #[test]
    fn error_bodies_are_classified() {
        let e = error_from(
            StatusCode::UNAUTHORIZED,
            br#"{"code":"agent_revoked","message":"revoked"}"#,
        );
        assert!(matches!(&e, UplinkError::Refused { code, .. } if code == "agent_revoked"));
        assert!(!e.is_transient());
        let e = error_from(StatusCode::BAD_GATEWAY, b"<html>");
        assert!(e.is_transient());
        assert!(e.to_string().contains("<html>"));
    }
}
