//! The channels: SMTP (lettre over rustls), an HTTP SMS gateway, and signed
//! webhooks (reqwest over rustls). Each send returns `Ok`, a transient error
//! (retried with back-off) or a permanent one (recorded as failed at once).
//!
//! Exactly-once is impossible across a crash between "the peer accepted it"
//! and "we recorded that": such a message is sent again on restart. Every
//! message carries the delivery's stable id so the far side can drop the
//! repeat: e-mail `Message-ID: <delivery-N@host>`, SMS gateway and webhooks
//! the `X-Outpost-Delivery: N` header (`Idempotency-Key` too).

use hmac::{Hmac, Mac};
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sha2::Sha256;
use std::time::Duration;

use super::settings::{BodyEncoding, EmailSpec, Settings, SmsSpec, TlsMode, DEFAULT_SMS_BODY};
use crate::store::notify::DeliveryRow;

/// Why a send did not succeed.
#[derive(Debug)]
pub enum SendError {
    /// Try again later (connection refused, timeout, 4xx SMTP, 5xx HTTP).
    Transient(String),
    /// Will never work (bad address, 5xx SMTP, 4xx HTTP).
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient(e) => write!(f, "{e}"),
            SendError::Permanent(e) => write!(f, "permanent: {e}"),
        }
    }
}

/// Where an e-mail belongs: its case, and the customer's messages that
/// opened it and last added to it (Message-IDs without angle brackets).
/// Replies to our mail name `delivery-N@domain`, and we name the case's
/// thread `case-NUMBER@domain`, so a reply finds its case (`mail::parse`).
#[derive(Debug, Clone, Default)]
pub struct Thread {
    pub case_number: Option<String>,
    pub inbound: Vec<String>,
}

impl Thread {
    /// `(In-Reply-To, References)`: we answer the customer's latest message
    /// and refer to the whole conversation.
    pub fn headers(&self, domain: &str) -> Option<(String, String)> {
        let case = self.case_number.as_ref()?;
        let mut refs = vec![format!("<case-{case}@{domain}>")];
        refs.extend(self.inbound.iter().map(|m| format!("<{m}>")));
        let reply_to = refs.last().cloned().unwrap_or_default();
        Some((reply_to, refs.join(" ")))
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): autoresponders must not
/// answer our mail, and our own intake ignores it should it come back.
#[derive(Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

/// The configured channels, ready to send.
pub struct Senders {
    mail: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox, String)>,
    sms: Option<SmsSpec>,
    webhook_secrets: Vec<(String, String)>,
    http: reqwest::Client,
}

fn smtp(e: &EmailSpec) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match e.tls {
        TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host)
            .map_err(|err| format!("notify.email: {err}"))?
            .port(e.port.unwrap_or(587)),
        TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host)
            .map_err(|err| format!("notify.email: {err}"))?
            .port(e.port.unwrap_or(465)),
        TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host)
            .port(e.port.unwrap_or(25)),
    };
    let builder = builder.timeout(Some(
        e.timeout.map(|t| t.0).unwrap_or(Duration::from_secs(30)),
    ));
    let builder = match (&e.username, &e.password) {
        (Some(u), Some(p)) => builder.credentials(Credentials::new(u.clone(), p.clone())),
        _ => builder,
    };
    Ok(builder.build())
}

impl Senders {
    pub fn new(s: &Settings) -> Result<Senders, String> {
        let mail = match &s.email {
            Some(e) => {
                let from: Mailbox = e
                    .from
                    .parse()
                    .map_err(|err| format!("notify.email.from: {err}"))?;
                let domain = from.email.domain().to_string();
                Some((smtp(e)?, from, domain))
            }
            None => None,
        };
        let timeout = s
            .sms
            .as_ref()
            .and_then(|x| x.timeout)
            .map(|t| t.0)
            .unwrap_or(Duration::from_secs(10));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("outpost-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Senders {
            mail,
            sms: s.sms.clone(),
            webhook_secrets: s
                .webhooks
                .iter()
                .map(|w| (w.url.clone(), w.secret.clone()))
                .collect(),
            http,
        })
    }

    /// Send `d`; `thread` places an e-mail in its case's conversation.
    pub async fn send(&self, d: &DeliveryRow, thread: &Thread) -> Result<(), SendError> {
        match d.channel.as_str() {
            "email" => self.email(d, thread).await,
            "sms" => self.sms(d).await,
            "webhook" => self.webhook(d).await,
            other => Err(SendError::Permanent(format!("unknown channel {other:?}"))),
        }
    }

    async fn email(&self, d: &DeliveryRow, thread: &Thread) -> Result<(), SendError> {
        let Some((transport, from, domain)) = &self.mail else {
            return Err(SendError::Transient(
                "e-mail is not configured ([notify.email])".into(),
            ));
        };
        let to: Mailbox = match d.address.parse() {
            Ok(a) => a,
            Err(e) => {
                return Err(SendError::Permanent(format!(
                    "{:?} is not an e-mail address: {e}",
                    d.address
                )))
            }
        };
        let to = Mailbox::new(Some(d.recipient.clone()), to.email);
        let msg = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(d.subject.clone())
            .message_id(Some(format!("<delivery-{}@{domain}>", d.id)));
        let msg = match thread.headers(domain) {
            Some((in_reply_to, references)) => msg.in_reply_to(in_reply_to).references(references),
            None => msg,
        };
        let msg = msg
            .header(AutoSubmitted)
            .header(ContentType::TEXT_PLAIN)
            .body(d.body.clone())
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        match transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Transient(format!("SMTP: {e}"))),
        }
    }

    /// One e-mail with one attachment to several recipients, outside the
    /// case outbox (the scheduled service reports, whose retries and
    /// once-only record are the report schedule's).
    pub async fn email_with_attachment(
        &self,
        to: &[String],
        subject: &str,
        body: &str,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), SendError> {
        use lettre::message::{Attachment, MultiPart, SinglePart};
        let Some((transport, from, _domain)) = &self.mail else {
            return Err(SendError::Transient(
                "e-mail is not configured ([notify.email])".into(),
            ));
        };
        let mut builder = Message::builder().from(from.clone()).subject(subject);
        for address in to {
            let mailbox: Mailbox = address.parse().map_err(|e| {
                SendError::Permanent(format!("{address:?} is not an e-mail address: {e}"))
            })?;
            builder = builder.to(mailbox);
        }
        let kind = ContentType::parse(content_type)
            .map_err(|e| SendError::Permanent(format!("content type {content_type:?}: {e}")))?;
        let msg = builder
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(body.to_string()))
                    .singlepart(Attachment::new(file_name.to_string()).body(bytes, kind)),
            )
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        match transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Transient(format!("SMTP: {e}"))),
        }
    }

    async fn sms(&self, d: &DeliveryRow) -> Result<(), SendError> {
        let Some(g) = &self.sms else {
            return Err(SendError::Transient(
                "the SMS gateway is not configured ([notify.sms])".into(),
            ));
        };
        let template = g.body.as_deref().unwrap_or(DEFAULT_SMS_BODY);
        let body = render_sms(template, g.encoding, &d.address, &d.body);
        let method = g
            .method
            .as_deref()
            .and_then(|m| reqwest::Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(reqwest::Method::POST);
        let mut req = self.http.request(method, &g.url).body(body);
        req = match g.encoding {
            BodyEncoding::Json => req.header("content-type", "application/json"),
            BodyEncoding::Form => req.header("content-type", "application/x-www-form-urlencoded"),
            BodyEncoding::Raw => req,
        };
        for (k, v) in &g.headers {
            req = req.header(k, v);
        }
        let id = d.id.to_string();
        req = req
            .header("x-outpost-delivery", &id)
            .header("idempotency-key", &id);
        http_result(req.send().await)
    }

    async fn webhook(&self, d: &DeliveryRow) -> Result<(), SendError> {
        let Some((_, secret)) = self.webhook_secrets.iter().find(|(u, _)| *u == d.address) else {
            return Err(SendError::Permanent(format!(
                "webhook {} is no longer configured",
                d.address
            )));
        };
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = sign(secret, &ts, &d.body);
        let id = d.id.to_string();
        let req = self
            .http
            .post(&d.address)
            .header("content-type", "application/json")
            .header("x-outpost-event", &d.subject)
            .header("x-outpost-delivery", &id)
            .header("idempotency-key", &id)
            .header("x-outpost-timestamp", &ts)
            .header("x-outpost-signature", format!("sha256={sig}"))
            .body(d.body.clone());
        http_result(req.send().await)
    }
}

fn http_result(r: reqwest::Result<reqwest::Response>) -> Result<(), SendError> {
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => {
            let s = resp.status();
            let msg = format!("HTTP {s}");
            if s.is_client_error() && s.as_u16() != 408 && s.as_u16() != 429 {
                Err(SendError::Permanent(msg))
            } else {
                Err(SendError::Transient(msg))
            }
        }
        Err(e) => Err(SendError::Transient(format!("HTTP: {e}"))),
    }
}

/// `HMAC-SHA256(secret, "{timestamp}.{body}")` in hex. A receiver recomputes
/// it and rejects old timestamps, so a captured request cannot be replayed.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Fill `{number}` and `{message}` into the gateway's body template.
pub fn render_sms(template: &str, enc: BodyEncoding, number: &str, message: &str) -> String {
    let esc = |v: &str| match enc {
        BodyEncoding::Json => {
            let quoted = serde_json::Value::String(v.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }
        BodyEncoding::Form => form_encode(v),
        BodyEncoding::Raw => v.to_string(),
    };
    // One pass, so a message containing "{number}" is not expanded again.
    let mut out = String::with_capacity(template.len() + message.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{number}") {
            out.push_str(&esc(number));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{message}") {
            out.push_str(&esc(message));
            rest = t;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn form_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_template_escapes_per_encoding() {
        let t = r#"{"to": "{number}", "text": "{message}"}"#;
        let out = render_sms(t, BodyEncoding::Json, "+49 1", "say \"hi\" {number}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["to"], "+49 1");
        assert_eq!(v["text"], "say \"hi\" {number}");
        assert_eq!(
            render_sms(
                "to={number}&msg={message}",
                BodyEncoding::Form,
                "+49 1",
                "a&b c"
            ),
            "to=%2B49+1&msg=a%26b+c"
        );
    }

    #[test]
    fn signature_is_hmac_sha256() {
        // A fixed vector computed independently with Python's hmac module:
        // hmac.new(b"0123456789abcdef", b"1700000000.{}", "sha256").hexdigest()
        assert_eq!(
            sign("0123456789abcdef", "1700000000", "{}"),
            "e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
        );
    }
}
