//! The `[notify]` section of the config file: channels (SMTP, SMS gateway,
//! webhooks), retry policy and survey timing. Every key is checked at start;
//! a channel without a section is off (its deliveries are not planned).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::sla::policy::Span;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// First retry delay; doubles per attempt up to `retry_max`. Default 5s.
    pub retry_initial: Option<Span>,
    /// Longest delay between attempts. Default 15m.
    pub retry_max: Option<Span>,
    /// Attempts before a delivery is marked failed. Default 12.
    pub max_attempts: Option<u32>,
    /// Survey link validity. Default 30d.
    pub survey_valid_for: Option<Span>,
    /// One reminder if the survey is unanswered after this. Default 3d.
    pub survey_reminder_after: Option<Span>,
    pub email: Option<EmailSpec>,
    pub sms: Option<SmsSpec>,
    #[serde(default)]
    pub webhooks: Vec<WebhookSpec>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP upgraded with STARTTLS (refused if the server cannot).
    #[default]
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a local relay or tests.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSpec {
    pub host: String,
    /// Default: 587 (starttls), 465 (tls), 25 (none).
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    pub username: Option<String>,
    /// A secret: inline, `{ file = "PATH" }` or `{ env = "NAME" }`.
    #[serde(default, deserialize_with = "outpost_protocol::secret::option")]
    pub password: Option<String>,
    /// Sender, e.g. "Outpost Support <support@example.com>".
    pub from: String,
    /// Per-message timeout. Default 30s.
    pub timeout: Option<Span>,
}

/// How `{number}` and `{message}` are escaped in the SMS body template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// JSON string contents (the template is a JSON document).
    #[default]
    Json,
    /// application/x-www-form-urlencoded values.
    Form,
    /// As is.
    Raw,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSpec {
    pub url: String,
    /// Default POST.
    pub method: Option<String>,
    /// Values are secrets (a gateway token): inline, `{ file = "PATH" }`
    /// or `{ env = "NAME" }`.
    #[serde(default, deserialize_with = "outpost_protocol::secret::map")]
    pub headers: BTreeMap<String, String>,
    /// Template with `{number}` and `{message}`. Default
    /// `{"to": "{number}", "text": "{message}"}`.
    pub body: Option<String>,
    #[serde(default)]
    pub encoding: BodyEncoding,
    /// Default 10s.
    pub timeout: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub url: String,
    /// HMAC-SHA256 key for the `X-Outpost-Signature` header: inline,
    /// `{ file = "PATH" }` or `{ env = "NAME" }`.
    #[serde(deserialize_with = "outpost_protocol::secret::string")]
    pub secret: String,
    /// Activity kinds to send (e.g. "sla_event", "assigned"); empty: all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub survey_valid_for: Duration,
    pub survey_reminder_after: Duration,
    pub email: Option<EmailSpec>,
    pub sms: Option<SmsSpec>,
    pub webhooks: Vec<WebhookSpec>,
    /// Base of links in messages (server.public_url).
    pub public_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(15 * 60),
            max_attempts: 12,
            survey_valid_for: Duration::from_secs(30 * 86400),
            survey_reminder_after: Duration::from_secs(3 * 86400),
            email: None,
            sms: None,
            webhooks: Vec::new(),
            public_url: None,
        }
    }
}

pub const DEFAULT_SMS_BODY: &str = r#"{"to": "{number}", "text": "{message}"}"#;

fn http_url(key: &str, url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{key}: {url:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{key}: {url:?} must be http:// or https://"));
    }
    Ok(())
}

impl NotifySpec {
    /// Check every key; errors name the key.
    pub fn build(self, public_url: Option<String>) -> Result<Settings, String> {
        let d = Settings::default();
        let span = |s: Option<Span>, default: Duration| s.map(|s| s.0).unwrap_or(default);
        let s = Settings {
            retry_initial: span(self.retry_initial, d.retry_initial),
            retry_max: span(self.retry_max, d.retry_max),
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            survey_valid_for: span(self.survey_valid_for, d.survey_valid_for),
            survey_reminder_after: span(self.survey_reminder_after, d.survey_reminder_after),
            email: self.email,
            sms: self.sms,
            webhooks: self.webhooks,
            public_url,
        };
        if s.max_attempts == 0 {
            return Err("notify.max_attempts: must be at least 1".into());
        }
        if s.retry_initial.is_zero() || s.retry_max < s.retry_initial {
            return Err(
                "notify.retry_initial/retry_max: need 0 < retry_initial <= retry_max".into(),
            );
        }
        if let Some(e) = &s.email {
            if e.host.trim().is_empty() {
                return Err("notify.email.host: must not be empty".into());
            }
            e.from.parse::<lettre::message::Mailbox>().map_err(|err| {
                format!("notify.email.from: {:?} is not an address: {err}", e.from)
            })?;
            if e.username.is_some() != e.password.is_some() {
                return Err("notify.email: username and password go together".into());
            }
        }
        if let Some(sms) = &s.sms {
            http_url("notify.sms.url", &sms.url)?;
            if let Some(m) = &sms.method {
                reqwest::Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("notify.sms.method: {m:?} is not an HTTP method"))?;
            }
            for (k, v) in &sms.headers {
                reqwest::header::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("notify.sms.headers: {k:?} is not a header name"))?;
                reqwest::header::HeaderValue::from_str(v)
                    .map_err(|_| format!("notify.sms.headers.{k}: not a valid header value"))?;
            }
        }
        for (i, w) in s.webhooks.iter().enumerate() {
            http_url(&format!("notify.webhooks[{i}].url"), &w.url)?;
            if w.secret.len() < 16 {
                return Err(format!(
                    "notify.webhooks[{i}].secret: use at least 16 characters"
                ));
            }
        }
        Ok(s)
    }
}
