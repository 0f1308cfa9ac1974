//! The `[mail]` section of the config file: inbound e-mail. Limits, the
//! attachment allow-list, what to do with mail from unknown senders, and the
//! IMAP mailboxes the built-in poller reads (`[[mail.imap]]`). Every key is
//! checked at start; errors name the key.

use serde::Deserialize;
use std::time::Duration;

use crate::cases::Priority;
use crate::sla::policy::Span;

/// What happens to a new message from an address the directory does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownSenders {
    /// Kept (outcome `refused`), no case, no answer.
    Refuse,
    /// Kept for a dispatcher to look at (outcome `held`), no case, no answer.
    #[default]
    Hold,
    /// A case is opened in the organisation `unknown_organization` names.
    Open,
}

/// How the IMAP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapTls {
    /// Implicit TLS from the first byte (port 993), certificates checked
    /// against the Web PKI roots (or `ca_file`).
    #[default]
    Tls,
    /// Plain IMAP upgraded with STARTTLS before logging in (port 143);
    /// the same certificate checks. A server that refuses STARTTLS is an
    /// error, never a fall-back to plain text.
    Starttls,
    /// Plain IMAP: only for a mail server on the same host or in tests.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSpec {
    /// A name for logs and the `source` of messages (`imap:<name>`).
    pub name: String,
    pub host: String,
    /// Default: 993 (tls), 143 (none).
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: ImapTls,
    /// PEM file of the CA that signed the server's certificate (instead of
    /// the Web PKI roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// Default INBOX.
    pub folder: Option<String>,
    pub username: String,
    /// A secret: inline, `{ file = "PATH" }` or `{ env = "NAME" }`.
    #[serde(deserialize_with = "outpost_protocol::secret::string")]
    pub password: String,
    /// Between polls. Default 60s.
    pub interval: Option<Span>,
    /// Move each message taken in to this folder; without it, messages are
    /// marked \Seen and left (only unseen messages are read).
    pub move_to: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSpec {
    /// The support address customers write to. Its domain marks our own
    /// Message-IDs (a message of ours coming back is a loop). Default: the
    /// address of `notify.email.from`.
    pub address: Option<String>,
    #[serde(default)]
    pub unknown_senders: UnknownSenders,
    /// `customer_code` of the organisation unknown senders' cases open in
    /// (required with `unknown_senders = "open"`).
    pub unknown_organization: Option<String>,
    /// Priority of cases opened by e-mail. Default P3.
    pub priority: Option<Priority>,
    /// Largest message taken in, in bytes. Default 41943040 (40 MiB); at most
    /// 52428800 (the gateway endpoint's body limit).
    pub max_message_bytes: Option<u64>,
    /// Largest attachment stored, in bytes. A message with a larger one is
    /// refused (kept, not answered). Default 10485760 (10 MiB).
    pub max_attachment_bytes: Option<u64>,
    /// Content types an attachment may have, as found in its bytes (not as
    /// the sender declared). Default: PDF, PNG, JPEG, GIF, WebP, ZIP, gzip,
    /// plain text.
    pub attachment_types: Option<Vec<String>>,
    #[serde(default)]
    pub imap: Vec<ImapSpec>,
}

/// The largest body `POST /api/v1/mail/inbound` reads.
pub const TRANSFER_LIMIT: u64 = 50 * 1024 * 1024;

pub const DEFAULT_TYPES: &[&str] = &[
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/zip",
    "application/gzip",
    "text/plain",
];

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The support address (lower case), if known.
    pub address: Option<String>,
    /// The domain of our Message-IDs (lower case), if known.
    pub domain: Option<String>,
    pub unknown_senders: UnknownSenders,
    pub unknown_organization: Option<String>,
    pub priority: Priority,
    pub max_message_bytes: u64,
    pub max_attachment_bytes: u64,
    pub attachment_types: Vec<String>,
    pub imap: Vec<ImapSpec>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: None,
            domain: None,
            unknown_senders: UnknownSenders::Hold,
            unknown_organization: None,
            priority: Priority::P3,
            max_message_bytes: 40 * 1024 * 1024,
            max_attachment_bytes: 10 * 1024 * 1024,
            attachment_types: DEFAULT_TYPES.iter().map(|s| s.to_string()).collect(),
            imap: Vec::new(),
        }
    }
}

impl Settings {
    pub fn interval(spec: &ImapSpec) -> Duration {
        spec.interval
            .map(|s| s.0)
            .unwrap_or(Duration::from_secs(60))
    }
}

impl MailSpec {
    /// Check every key; `notify_from` is `notify.email.from`, the default
    /// support address.
    pub fn build(self, notify_from: Option<&str>) -> Result<Settings, String> {
        let d = Settings::default();
        let address = match (&self.address, notify_from) {
            (Some(a), _) => Some(
                a.parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("mail.address: {a:?} is not an address: {e}"))?
                    .email
                    .to_string(),
            ),
            (None, Some(f)) => f
                .parse::<lettre::message::Mailbox>()
                .ok()
                .map(|m| m.email.to_string()),
            (None, None) => None,
        }
        .map(|a| a.to_lowercase());
        let domain = address
            .as_deref()
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, d)| d.to_string());
        let max_message_bytes = self.max_message_bytes.unwrap_or(d.max_message_bytes);
        if !(1024..=TRANSFER_LIMIT).contains(&max_message_bytes) {
            return Err(format!(
                "mail.max_message_bytes: must be between 1024 and {TRANSFER_LIMIT}"
            ));
        }
        let max_attachment_bytes = self.max_attachment_bytes.unwrap_or(d.max_attachment_bytes);
        if max_attachment_bytes == 0 || max_attachment_bytes > max_message_bytes {
            return Err(
                "mail.max_attachment_bytes: must be at least 1 and at most mail.max_message_bytes"
                    .into(),
            );
        }
        let attachment_types = match self.attachment_types {
            Some(t) => {
                for (i, ty) in t.iter().enumerate() {
                    let ok = ty
                        .split_once('/')
                        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
                        && !ty.contains(char::is_whitespace);
                    if !ok {
                        return Err(format!(
                            "mail.attachment_types[{i}]: {ty:?} is not a content type like application/pdf"
                        ));
                    }
                }
                t.into_iter().map(|t| t.to_lowercase()).collect()
            }
            None => d.attachment_types,
        };
        if self.unknown_senders == UnknownSenders::Open && self.unknown_organization.is_none() {
            return Err(
                "mail.unknown_organization: required with unknown_senders = \"open\" (the customer_code of the organisation their cases open in)"
                    .into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, m) in self.imap.iter().enumerate() {
            let key = format!("mail.imap[{i}]");
            if m.name.trim().is_empty() || !names.insert(m.name.clone()) {
                return Err(format!("{key}.name: must be set and unique"));
            }
            if m.host.trim().is_empty() {
                return Err(format!("{key}.host: must not be empty"));
            }
            if m.username.is_empty() {
                return Err(format!("{key}.username: must not be empty"));
            }
            if m.interval.is_some_and(|s| s.0 < Duration::from_secs(1)) {
                return Err(format!("{key}.interval: at least 1s"));
            }
            if m.ca_file.is_some() && m.tls == ImapTls::None {
                return Err(format!(
                    "{key}.ca_file: only with tls = \"tls\" or \"starttls\""
                ));
            }
            for (k, v) in [("folder", &m.folder), ("move_to", &m.move_to)] {
                if v.as_deref().is_some_and(|f| {
                    f.is_empty() || f.contains(['"', '\\', '\r', '\n']) || f.len() > 200
                }) {
                    return Err(format!("{key}.{k}: not a usable folder name"));
                }
            }
        }
        Ok(Settings {
            address,
            domain,
            unknown_senders: self.unknown_senders,
            unknown_organization: self.unknown_organization,
            priority: self.priority.unwrap_or(d.priority),
            max_message_bytes,
            max_attachment_bytes,
            attachment_types,
            imap: self.imap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_text: &str) -> Result<Settings, String> {
        let spec: MailSpec = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        spec.build(Some("Outpost Support <Support@Outpost.Example>"))
    }

    #[test]
    fn defaults_and_the_support_address() {
        let s = build("").unwrap();
        assert_eq!(s.address.as_deref(), Some("support@outpost.example"));
        assert_eq!(s.domain.as_deref(), Some("outpost.example"));
        assert_eq!(s.unknown_senders, UnknownSenders::Hold);
        assert_eq!(s.max_attachment_bytes, 10 * 1024 * 1024);
        assert!(s.attachment_types.iter().any(|t| t == "application/pdf"));
        let s = build("address = \"help@desk.example\"").unwrap();
        assert_eq!(s.domain.as_deref(), Some("desk.example"));
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("address = \"not an address\"", "mail.address"),
            ("unknown_senders = \"open\"", "mail.unknown_organization"),
            ("max_message_bytes = 100", "mail.max_message_bytes"),
            ("max_message_bytes = 99999999999", "mail.max_message_bytes"),
            ("max_attachment_bytes = 0", "mail.max_attachment_bytes"),
            ("attachment_types = [\"pdf\"]", "mail.attachment_types[0]"),
            (
                "[[imap]]\nname = \"a\"\nhost = \"\"\nusername = \"u\"\npassword = \"p\"",
                "mail.imap[0].host",
            ),
            (
                "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\ninterval = \"10ms\"",
                "mail.imap[0].interval",
            ),
            (
                "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"",
                "mail.imap[1].name",
            ),
            (
                "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\nmove_to = \"a\\\"b\"",
                "mail.imap[0].move_to",
            ),
        ] {
            let e = build(text).unwrap_err();
            assert!(e.starts_with(key), "{text:?}: {e}");
        }
        assert!(build("unknown_senders = \"bounce\"").is_err());
        let imap = "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n";
        assert!(build(&format!("{imap}tls = \"ssl\"")).is_err());
        assert!(build(&format!(
            "{imap}tls = \"starttls\"\nca_file = \"/etc/ca.pem\""
        ))
        .is_ok());
        let e = build(&format!("{imap}tls = \"none\"\nca_file = \"/etc/ca.pem\"")).unwrap_err();
        assert!(e.starts_with("mail.imap[0].ca_file"), "{e}");
    }
}
