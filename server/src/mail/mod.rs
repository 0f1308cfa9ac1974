//! Inbound e-mail: one raw message in, a case, a note, or a kept message for
//! a person out. The mail gateway (`outpost-server mailgate`, through
//! `POST /api/v1/mail/inbound`) and the IMAP poller ([`imap`]) both end in
//! [`Mail::take_in`].
//!
//! Every message is kept raw in `mail_messages` before anything else, with
//! its outcome (see the migration): nothing that reached the server is lost,
//! and the Message-ID (or the SHA-256 of the bytes) makes a repeat a no-op.
//! In order:
//! 1. unreadable ([`parse::Malformed`]): `malformed`, the fault named;
//! 2. over `max_message_bytes`, or an attachment over
//!    `max_attachment_bytes`: `refused` (logged, never bounced);
//! 3. automatic (auto-reply, bounce, list, our own message back): `ignored`,
//!    never answered;
//! 4. a reply: In-Reply-To/References naming one of our messages or a
//!    message of the case, else a case number in the subject. From a contact
//!    of the case's organisation (or its caller's address): a public note;
//!    from staff: an internal note; from anyone else: `held`;
//! 5. new: the sender matched by address to a customer user, a customer-side
//!    project participant or an organisation; unknown senders by
//!    `mail.unknown_senders` (refuse, hold, open in `unknown_organization`).
//!
//! Attachments are stored when their type, sniffed from their bytes, is on
//! the allow-list; others are named in the note and not stored.

#[cfg(test)]
mod fuzz;
pub mod gate;
pub mod imap;
pub mod parse;
pub mod settings;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::auth::{Action, Principal, Role};
use crate::cases::{ActivityBody, CaseType, Cases, Channel, Status, Visibility};
use crate::error::{Error, Result};
use crate::store::cases::CaseInsert;
use crate::store::mail::{Attachment, KnownAddress, MailMessage, NewAttachment, NewMail};
pub use settings::Settings;

/// What became of one message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Intake {
    /// The kept message (`GET /api/v1/mail/messages/{id}/raw`).
    pub id: i64,
    pub message_id: String,
    /// opened, replied, ignored, held, refused, malformed (or processing,
    /// for a repeat of a message still being taken in).
    pub outcome: String,
    pub reason: Option<String>,
    pub case_number: Option<String>,
    /// The same message was taken in before; nothing was done again.
    pub duplicate: bool,
}

/// Which kept messages to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MailQuery {
    /// Comma-separated outcomes; default `held,refused,malformed,processing`
    /// (what needs a person). `all` for every outcome.
    pub outcome: Option<String>,
    /// 1..=500, default 100.
    pub limit: Option<i64>,
}

/// Open a case from a held message.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The customer the case is for.
    pub organization_id: i64,
}

const OUTCOMES: &[&str] = &[
    "processing",
    "opened",
    "replied",
    "ignored",
    "held",
    "refused",
    "malformed",
];

/// `n` bytes for people: "20.0 MiB".
fn mebibytes(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// The content type found in the bytes: magic numbers, else plain text
/// for valid UTF-8 without NULs, else `application/octet-stream`.
pub fn sniff(data: &[u8]) -> String {
    if let Some(t) = infer::get(data) {
        return t.mime_type().to_string();
    }
    match std::str::from_utf8(data) {
        Ok(s) if !s.contains('\0') => "text/plain".into(),
        _ => "application/octet-stream".into(),
    }
}

/// A sender resolved against the directory.
enum Who {
    Staff(KnownAddress),
    Customer {
        user_id: Option<i64>,
        name: String,
        organization_id: i64,
    },
    Ambiguous(Vec<String>),
    Unknown,
}

#[derive(Clone)]
pub struct Mail {
    cases: Cases,
    settings: Arc<Settings>,
}

struct Decision {
    outcome: &'static str,
    reason: Option<String>,
    case_id: Option<i64>,
    case_number: Option<String>,
}

impl Decision {
    fn kept(outcome: &'static str, reason: String) -> Decision {
        Decision {
            outcome,
            reason: Some(reason),
            case_id: None,
            case_number: None,
        }
    }
}

impl Mail {
    pub fn new(cases: Cases, settings: Settings) -> Mail {
        Mail {
            cases,
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `POST /api/v1/mail/inbound`: a caller with [`Action::IngestMail`]
    /// hands over one raw message.
    pub async fn ingest(&self, who: &Principal, raw: &[u8]) -> Result<Intake> {
        who.require(Action::IngestMail)?;
        self.take_in(raw, "mailgate").await
    }

    /// Take one raw message in (see the module documentation).
    pub async fn take_in(&self, raw: &[u8], source: &str) -> Result<Intake> {
        let s = &self.settings;
        let now = self.cases.clock.now();
        let read = parse::read(raw, s.domain.as_deref(), s.address.as_deref());
        let (message_id, sender, subject) = match &read {
            Ok(m) => (
                m.message_id.clone(),
                Some(m.sender.address.clone()),
                Some(m.subject.clone()),
            ),
            Err(_) => (parse::content_id(raw), None, None),
        };
        let claim = self
            .cases
            .store
            .claim_mail(
                &NewMail {
                    message_id: &message_id,
                    source,
                    sender: sender.as_deref(),
                    subject: subject.as_deref(),
                    raw,
                },
                now,
            )
            .await?;
        let id = match claim {
            Ok(id) => id,
            Err(existing) => {
                tracing::info!(mail = existing.id, message_id = %message_id, outcome = %existing.outcome, "message taken in before; nothing done again");
                return Ok(Intake {
                    id: existing.id,
                    message_id,
                    outcome: existing.outcome,
                    reason: existing.reason,
                    case_number: existing.case_number,
                    duplicate: true,
                });
            }
        };
        let decision = match read {
            Err(e) => Ok(Decision::kept(
                "malformed",
                format!("malformed message: {e}"),
            )),
            Ok(m) => self.decide(id, raw.len(), &m).await,
        };
        let d = match decision {
            Ok(d) => d,
            Err(e) => {
                // Kept raw; a person can look at it (and it is not retried:
                // the same message again is a duplicate).
                let reason = format!("could not be taken in: {e}");
                tracing::error!(mail = id, message_id = %message_id, error = %e, "mail intake failed; message kept");
                Decision::kept("held", reason)
            }
        };
        self.cases
            .store
            .finish_mail(id, d.outcome, d.reason.as_deref(), d.case_id, now)
            .await?;
        match d.outcome {
            "opened" | "replied" => {
                tracing::info!(mail = id, message_id = %message_id, source, outcome = d.outcome, case = d.case_number.as_deref().unwrap_or(""), "mail taken in")
            }
            "ignored" => {
                tracing::info!(mail = id, message_id = %message_id, source, reason = d.reason.as_deref().unwrap_or(""), "mail ignored, not answered")
            }
            _ => {
                tracing::error!(mail = id, message_id = %message_id, source, outcome = d.outcome, reason = d.reason.as_deref().unwrap_or(""), "mail kept for a person; not answered")
            }
        }
        metrics::counter!("outpost_mail_messages_total", "outcome" => d.outcome).increment(1);
        Ok(Intake {
            id,
            message_id,
            outcome: d.outcome.into(),
            reason: d.reason,
            case_number: d.case_number,
            duplicate: false,
        })
    }

    async fn decide(&self, mail_id: i64, size: usize, m: &parse::Inbound) -> Result<Decision> {
        let s = &self.settings;
        if size as u64 > s.max_message_bytes {
            return Ok(Decision::kept(
                "refused",
                format!(
                    "the message is {} ({size} bytes), over the {} limit (mail.max_message_bytes)",
                    mebibytes(size as u64),
                    mebibytes(s.max_message_bytes)
                ),
            ));
        }
        if let Some(big) = m
            .attachments
            .iter()
            .find(|a| a.data.len() as u64 > s.max_attachment_bytes)
        {
            return Ok(Decision::kept(
                "refused",
                format!(
                    "attachment {:?} is {} ({} bytes), over the {} limit (mail.max_attachment_bytes)",
                    big.filename,
                    mebibytes(big.data.len() as u64),
                    big.data.len(),
                    mebibytes(s.max_attachment_bytes)
                ),
            ));
        }
        if let Some(why) = &m.automatic {
            return Ok(Decision::kept(
                "ignored",
                format!("automatic message: {why}"),
            ));
        }
        let who = self.who(&m.sender.address).await?;
        if let Some(case_id) = self.thread_case(m).await? {
            return self.reply(mail_id, case_id, m, who).await;
        }
        self.open(mail_id, m, who).await
    }

    /// Who the directory says the sender is.
    async fn who(&self, address: &str) -> Result<Who> {
        let known = self.cases.store.known_address(address).await?;
        if let Some(staff) = known
            .iter()
            .find(|k| k.user_id.is_some() && k.kind != Role::Customer.as_str())
        {
            return Ok(Who::Staff(staff.clone()));
        }
        let mut orgs: Vec<(i64, String)> = known
            .iter()
            .filter_map(|k| {
                k.organization_id
                    .map(|o| (o, k.organization_name.clone().unwrap_or_default()))
            })
            .collect();
        orgs.sort();
        orgs.dedup();
        match orgs.len() {
            0 => Ok(Who::Unknown),
            1 => {
                let user = known.iter().find(|k| k.user_id.is_some());
                let best = user.or(known.first());
                Ok(Who::Customer {
                    user_id: user.and_then(|u| u.user_id),
                    name: best.map(|k| k.name.clone()).unwrap_or_default(),
                    organization_id: orgs[0].0,
                })
            }
            _ => Ok(Who::Ambiguous(orgs.into_iter().map(|(_, n)| n).collect())),
        }
    }

    /// The case a message continues: one of ours or a message of the case in
    /// its references, else the case number in its subject.
    async fn thread_case(&self, m: &parse::Inbound) -> Result<Option<i64>> {
        let store = &self.cases.store;
        let domain = self.settings.domain.as_deref();
        for r in &m.references {
            if let Some(d) = parse::our_delivery(r, domain) {
                if let Some(c) = store.case_of_delivery(d).await? {
                    return Ok(Some(c));
                }
            }
            if let Some(n) = parse::our_case(r, domain) {
                if let Some(c) = store.case_by_number(&n).await? {
                    return Ok(Some(c.id));
                }
            }
        }
        if let Some(c) = store.case_of_mail(&m.references).await? {
            return Ok(Some(c));
        }
        if let Some(n) = &m.case_number {
            if let Some(c) = store.case_by_number(n).await? {
                return Ok(Some(c.id));
            }
        }
        Ok(None)
    }

    /// The attachments to store, and the lines the note shows for them.
    fn check_attachments(&self, m: &parse::Inbound) -> (Vec<NewAttachment>, Vec<String>) {
        let mut keep = Vec::new();
        let mut lines = Vec::new();
        for a in &m.attachments {
            let found = sniff(&a.data);
            if self.settings.attachment_types.contains(&found) {
                lines.push(format!(
                    "- {} ({found}, {} bytes)",
                    a.filename,
                    a.data.len()
                ));
                keep.push(NewAttachment {
                    filename: a.filename.clone(),
                    content_type: found,
                    declared_type: a.declared_type.clone(),
                    sha256: hex::encode(Sha256::digest(&a.data)),
                    data: a.data.clone(),
                });
            } else {
                lines.push(format!(
                    "- {} not stored: its content is {found} (declared {}), not an allowed type (mail.attachment_types)",
                    a.filename, a.declared_type
                ));
            }
        }
        (keep, lines)
    }

    fn note_text(&self, m: &parse::Inbound, lines: &[String]) -> String {
        let mut t = format!("E-mail from {}", m.sender.display());
        if !m.subject.is_empty() {
            t.push_str(&format!("\nSubject: {}", m.subject));
        }
        t.push_str("\n\n");
        t.push_str(if m.text.is_empty() {
            "(no text)"
        } else {
            &m.text
        });
        if !lines.is_empty() {
            t.push_str("\n\nAttachments:\n");
            t.push_str(&lines.join("\n"));
        }
        parse::clean(&t, parse::TEXT_MAX)
    }

    async fn reply(
        &self,
        mail_id: i64,
        case_id: i64,
        m: &parse::Inbound,
        who: Who,
    ) -> Result<Decision> {
        let store = &self.cases.store;
        let case = store
            .case_by_id(case_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("case {case_id}")))?;
        let from_caller = case
            .caller_email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&m.sender.address));
        let (author_id, author, visibility) = match who {
            Who::Staff(k) => (k.user_id, k.name, Visibility::Internal),
            Who::Customer {
                user_id,
                name,
                organization_id,
            } if case.organization_id == Some(organization_id) => {
                (user_id, name, Visibility::Public)
            }
            _ if from_caller => (None, m.sender.display(), Visibility::Public),
            _ => {
                return Ok(Decision {
                    outcome: "held",
                    reason: Some(format!(
                        "reply to case {} from {}, who is neither its caller nor a contact of its organisation",
                        case.number, m.sender.address
                    )),
                    case_id: None,
                    case_number: None,
                })
            }
        };
        let (keep, lines) = self.check_attachments(m);
        let body = ActivityBody::Note {
            text: self.note_text(m, &lines),
            corrects: None,
        };
        self.cases
            .record_as(&case.number, author_id, &author, visibility, &body)
            .await?;
        if !keep.is_empty() {
            store
                .insert_attachments(
                    case.id,
                    mail_id,
                    visibility.as_str(),
                    &keep,
                    self.cases.clock.now(),
                )
                .await?;
        }
        Ok(Decision {
            outcome: "replied",
            reason: None,
            case_id: Some(case.id),
            case_number: Some(case.number),
        })
    }

    async fn open(&self, mail_id: i64, m: &parse::Inbound, who: Who) -> Result<Decision> {
        let s = &self.settings;
        let store = &self.cases.store;
        let (org, user_id, name) = match who {
            Who::Customer {
                user_id,
                name,
                organization_id,
            } => (organization_id, user_id, name),
            Who::Staff(k) => {
                return Ok(Decision::kept(
                    "held",
                    format!(
                        "new message from staff member {} without a case number or reference: open the case by hand",
                        k.name
                    ),
                ))
            }
            Who::Ambiguous(orgs) => {
                return Ok(Decision::kept(
                    "held",
                    format!(
                        "{} is a contact of several organisations ({}): open the case by hand",
                        m.sender.address,
                        orgs.join(", ")
                    ),
                ))
            }
            Who::Unknown => {
                let why = format!("unknown sender {}", m.sender.address);
                match s.unknown_senders {
                    settings::UnknownSenders::Refuse => {
                        return Ok(Decision::kept(
                            "refused",
                            format!("{why} (mail.unknown_senders = \"refuse\")"),
                        ))
                    }
                    settings::UnknownSenders::Hold => {
                        return Ok(Decision::kept(
                            "held",
                            format!("{why} (mail.unknown_senders = \"hold\")"),
                        ))
                    }
                    settings::UnknownSenders::Open => {
                        let code = s.unknown_organization.as_deref().unwrap_or_default();
                        match store.organization_id_by_code(code).await? {
                            Some(o) => (o, None, m.sender.name.clone().unwrap_or_default()),
                            None => {
                                return Ok(Decision::kept(
                                    "held",
                                    format!("{why}, and mail.unknown_organization {code:?} names no organisation"),
                                ))
                            }
                        }
                    }
                }
            }
        };
        let name = if name.trim().is_empty() {
            m.sender
                .name
                .clone()
                .unwrap_or_else(|| m.sender.address.clone())
        } else {
            name
        };
        let summary = if m.subject.trim().is_empty() {
            m.text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| parse::clean(l, parse::SUBJECT_MAX))
                .unwrap_or_else(|| "(no subject)".into())
        } else {
            m.subject.clone()
        };
        let email = crate::validate::opt_email("caller.email", &Some(m.sender.address.clone()))
            .ok()
            .flatten();
        let (keep, lines) = self.check_attachments(m);
        let now = self.cases.clock.now();
        let insert = CaseInsert {
            organization_id: Some(org),
            contract_id: None,
            device_id: None,
            caller_name: parse::clean(&name, 200),
            caller_company: None,
            caller_phone: None,
            caller_email: email,
            caller_contract: None,
            summary: summary.clone(),
            details: self.note_text(m, &lines),
            priority: s.priority.level(),
            status: Status::New.as_str().into(),
            case_type: CaseType::Other.as_str().into(),
            vendor: None,
            channel: Channel::Email.as_str().into(),
            assignee_id: None,
            created_by: user_id,
            created_at: now,
            agent_id: None,
            fault_key: None,
        };
        let opened = ActivityBody::Opened {
            summary,
            priority: s.priority,
            channel: Channel::Email,
            case_type: CaseType::Other,
        };
        let (case_id, number) = self
            .cases
            .open_as(user_id, &name, &insert, &[(Visibility::Public, opened)])
            .await?;
        if !keep.is_empty() {
            store
                .insert_attachments(case_id, mail_id, "public", &keep, now)
                .await?;
        }
        Ok(Decision {
            outcome: "opened",
            reason: None,
            case_id: Some(case_id),
            case_number: Some(number),
        })
    }

    /// Open a case from a held or refused message, for the organisation a
    /// dispatcher chose (triage of unknown senders). The message becomes
    /// `opened`; its sender is the caller.
    pub async fn release(&self, who: &Principal, id: i64, req: &Release) -> Result<Intake> {
        who.require(Action::IngestMail)?;
        who.require(Action::CreateCase)?;
        let store = &self.cases.store;
        let msg = store
            .mail_message(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("mail message {id}")))?;
        if store.organization(req.organization_id).await?.is_none() {
            return Err(Error::invalid(
                "organization_id",
                format!("organization {} does not exist", req.organization_id),
            ));
        }
        let raw = store
            .mail_raw(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("mail message {id}")))?;
        let s = &self.settings;
        let m = parse::read(&raw, s.domain.as_deref(), s.address.as_deref())
            .map_err(|e| Error::conflict(format!("mail message {id} cannot be read: {e}")))?;
        if !store.reclaim_mail(id, self.cases.clock.now()).await? {
            return Err(Error::conflict(format!(
                "mail message {id} is {}, not held or refused",
                msg.outcome
            )));
        }
        let who_sent = Who::Customer {
            user_id: None,
            name: String::new(),
            organization_id: req.organization_id,
        };
        let d = match self.open(id, &m, who_sent).await {
            Ok(d) => d,
            Err(e) => {
                let reason = format!("release failed: {e}");
                store
                    .finish_mail(id, "held", Some(&reason), None, self.cases.clock.now())
                    .await?;
                return Err(e);
            }
        };
        let reason = format!("released by {}", who.display_name);
        store
            .finish_mail(
                id,
                d.outcome,
                Some(&reason),
                d.case_id,
                self.cases.clock.now(),
            )
            .await?;
        tracing::info!(mail = id, by = %who.display_name, case = d.case_number.as_deref().unwrap_or(""), "held mail released");
        Ok(Intake {
            id,
            message_id: msg.message_id,
            outcome: d.outcome.into(),
            reason: Some(reason),
            case_number: d.case_number,
            duplicate: false,
        })
    }

    /// Kept messages (`GET /api/v1/mail/messages`).
    pub async fn list(&self, who: &Principal, q: &MailQuery) -> Result<Vec<MailMessage>> {
        who.require(Action::ReadMail)?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 500"));
        }
        let outcomes: Vec<String> = match q.outcome.as_deref().map(str::trim) {
            None | Some("") => ["held", "refused", "malformed", "processing"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Some("all") => OUTCOMES.iter().map(|s| s.to_string()).collect(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| {
                    if OUTCOMES.contains(&o) {
                        Ok(o.to_string())
                    } else {
                        Err(Error::invalid(
                            "outcome",
                            format!(
                                "unknown value {o:?}; expected all or some of: {}",
                                OUTCOMES.join(", ")
                            ),
                        ))
                    }
                })
                .collect::<Result<_>>()?,
        };
        if outcomes.is_empty() {
            return Err(Error::invalid("outcome", "name at least one outcome"));
        }
        self.cases.store.mail_messages(&outcomes, limit).await
    }

    /// A kept message's bytes.
    pub async fn raw(&self, who: &Principal, id: i64) -> Result<Vec<u8>> {
        who.require(Action::ReadMail)?;
        self.cases
            .store
            .mail_raw(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("mail message {id}")))
    }

    /// A case's attachments the caller may see.
    pub async fn attachments(&self, who: &Principal, number: &str) -> Result<Vec<Attachment>> {
        let case = self.cases.get(who, number).await?;
        let internal = who.may(Action::ReadInternal);
        Ok(self
            .cases
            .store
            .attachments(case.id)
            .await?
            .into_iter()
            .filter(|a| internal || a.visibility == "public")
            .collect())
    }

    /// One attachment with its bytes.
    pub async fn attachment(
        &self,
        who: &Principal,
        number: &str,
        id: i64,
    ) -> Result<(Attachment, Vec<u8>)> {
        let case = self.cases.get(who, number).await?;
        let internal = who.may(Action::ReadInternal);
        self.cases
            .store
            .attachment(case.id, id)
            .await?
            .filter(|(a, _)| internal || a.visibility == "public")
            .ok_or_else(|| Error::not_found(format!("attachment {id} of case {number}")))
    }
}
