//! SQL for inbound e-mail (`migrations/*/0016_mail.sql`): every message kept
//! raw with its outcome, claimed once by Message-ID; attachments on cases;
//! the directory look-ups that match a sender; and the ids a reply's
//! References may name.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{map_db_err, read, write, Store};
use crate::clock::{from_micros, to_micros};
use crate::error::Result;

/// A kept message, without its bytes.
#[derive(Debug, Clone, FromRow)]
struct MailRow {
    id: i64,
    message_id: String,
    source: String,
    received_at: i64,
    sender: Option<String>,
    subject: Option<String>,
    size: i64,
    outcome: String,
    reason: Option<String>,
    case_number: Option<String>,
}

/// A kept message as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct MailMessage {
    pub id: i64,
    /// Without angle brackets; `sha256:<hex>` for a message without one.
    pub message_id: String,
    /// `mailgate`, or `imap:<mailbox>`.
    pub source: String,
    pub received_at: DateTime<Utc>,
    pub sender: Option<String>,
    pub subject: Option<String>,
    /// Bytes of the raw message.
    pub size: i64,
    /// processing, opened, replied, ignored, held, refused, malformed.
    pub outcome: String,
    /// Why it was ignored, held, refused or found malformed.
    pub reason: Option<String>,
    /// The case it opened or was added to.
    pub case_number: Option<String>,
}

impl From<MailRow> for MailMessage {
    fn from(r: MailRow) -> Self {
        MailMessage {
            id: r.id,
            message_id: r.message_id,
            source: r.source,
            received_at: from_micros(r.received_at),
            sender: r.sender,
            subject: r.subject,
            size: r.size,
            outcome: r.outcome,
            reason: r.reason,
            case_number: r.case_number,
        }
    }
}

const MAIL_SELECT: &str = "SELECT m.id, m.message_id, m.source, m.received_at, m.sender, m.subject,
    m.size, m.outcome, m.reason, c.number AS case_number
    FROM mail_messages m LEFT JOIN cases c ON c.id = m.case_id";

/// A message to keep.
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub message_id: &'a str,
    pub source: &'a str,
    pub sender: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub raw: &'a [u8],
}

/// An attachment of a case, without its bytes.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, FromRow)]
pub struct Attachment {
    pub id: i64,
    /// The kept message it came with.
    pub mail_id: i64,
    pub filename: String,
    /// As found in its bytes.
    pub content_type: String,
    /// As the sender declared it.
    pub declared_type: String,
    pub size: i64,
    pub sha256: String,
    pub visibility: String,
    #[serde(skip)]
    pub created_at: i64,
}

/// An attachment to store.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub filename: String,
    pub content_type: String,
    pub declared_type: String,
    pub sha256: String,
    pub data: Vec<u8>,
}

/// Someone the directory knows by an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct KnownAddress {
    /// A user's id (users only).
    pub user_id: Option<i64>,
    pub name: String,
    /// The user's role, `participant` or `organization`.
    pub kind: String,
    pub organization_id: Option<i64>,
    pub organization_name: Option<String>,
}

/// id, display name, role, organisation id and name, active.
type UserByAddress = (i64, String, String, Option<i64>, Option<String>, bool);

impl Store {
    /// Keep a message and claim it for processing, unless a message with
    /// this Message-ID is already kept: then that one is returned.
    pub async fn claim_mail(
        &self,
        m: &NewMail<'_>,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<i64, MailMessage>> {
        let id: Option<i64> = write!(self, |p, _d| {
            sqlx::query_scalar(
                "INSERT INTO mail_messages (message_id, source, received_at, sender, subject, size,
                    outcome, updated_at, raw)
                 VALUES ($1, $2, $3, $4, $5, $6, 'processing', $3, $7)
                 ON CONFLICT (message_id) DO NOTHING RETURNING id",
            )
            .bind(m.message_id)
            .bind(m.source)
            .bind(to_micros(now))
            .bind(m.sender)
            .bind(m.subject)
            .bind(i64::try_from(m.raw.len()).unwrap_or(i64::MAX))
            .bind(m.raw)
            .fetch_optional(p)
            .await
            .map_err(|e| map_db_err(e, "mail message"))?
        });
        if let Some(id) = id {
            return Ok(Ok(id));
        }
        let row: Option<MailRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!("{MAIL_SELECT} WHERE m.message_id = $1"))
                .bind(m.message_id)
                .fetch_optional(p)
                .await?
        });
        match row {
            Some(r) => Ok(Err(r.into())),
            // Kept by another replica a moment ago and not yet visible here.
            None => Err(crate::error::Error::conflict(format!(
                "message <{}> is being taken in",
                m.message_id
            ))),
        }
    }

    /// Record what became of a claimed message.
    pub async fn finish_mail(
        &self,
        id: i64,
        outcome: &str,
        reason: Option<&str>,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "UPDATE mail_messages SET outcome = $2, reason = $3, case_id = $4, updated_at = $5
                 WHERE id = $1",
            )
            .bind(id)
            .bind(outcome)
            .bind(reason)
            .bind(case_id)
            .bind(to_micros(now))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Take a held or refused message back into processing (for release);
    /// false if it is not (or no longer) held or refused.
    pub async fn reclaim_mail(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        Ok(write!(self, |p, _d| {
            sqlx::query(
                "UPDATE mail_messages SET outcome = 'processing', updated_at = $2
                 WHERE id = $1 AND outcome IN ('held', 'refused')",
            )
            .bind(id)
            .bind(to_micros(now))
            .execute(p)
            .await?
            .rows_affected()
                == 1
        }))
    }

    pub async fn mail_message(&self, id: i64) -> Result<Option<MailMessage>> {
        let row: Option<MailRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!("{MAIL_SELECT} WHERE m.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(Into::into))
    }

    /// Kept messages with one of `outcomes`, newest first.
    pub async fn mail_messages(&self, outcomes: &[String], limit: i64) -> Result<Vec<MailMessage>> {
        let marks: Vec<String> = (1..=outcomes.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "{MAIL_SELECT} WHERE m.outcome IN ({}) ORDER BY m.id DESC LIMIT ${}",
            marks.join(", "),
            outcomes.len() + 1
        );
        let rows: Vec<MailRow> = read!(self, |p, _d| {
            let mut q = sqlx::query_as(&sql);
            for o in outcomes {
                q = q.bind(o.clone());
            }
            q.bind(limit).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The bytes of a kept message.
    pub async fn mail_raw(&self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar("SELECT raw FROM mail_messages WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// The case a message with one of these Message-IDs opened or joined.
    pub async fn case_of_mail(&self, message_ids: &[String]) -> Result<Option<i64>> {
        for id in message_ids {
            let found: Option<Option<i64>> = read!(self, |p, _d| {
                sqlx::query_scalar("SELECT case_id FROM mail_messages WHERE LOWER(message_id) = $1")
                    .bind(id.to_lowercase())
                    .fetch_optional(p)
                    .await?
            });
            if let Some(Some(case)) = found {
                return Ok(Some(case));
            }
        }
        Ok(None)
    }

    /// The case of one of our deliveries.
    pub async fn case_of_delivery(&self, delivery: i64) -> Result<Option<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar("SELECT case_id FROM deliveries WHERE id = $1")
                .bind(delivery)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Message-IDs of the messages a case was opened by and last joined by
    /// (oldest and newest), for threading our mail to the customer. A
    /// message from `caller` still being taken in counts too: the case it
    /// opens is created (and its acknowledgement may be sent) a moment
    /// before the message is marked with it.
    pub async fn mail_thread(&self, case_id: i64, caller: Option<&str>) -> Result<Vec<String>> {
        let ids: Vec<String> = read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT message_id FROM mail_messages
                 WHERE ((case_id = $1 AND outcome IN ('opened', 'replied'))
                        OR (outcome = 'processing' AND sender = $2))
                   AND message_id NOT LIKE 'sha256:%'
                 ORDER BY id",
            )
            .bind(case_id)
            .bind(caller.map(str::to_lowercase))
            .fetch_all(p)
            .await?
        });
        let mut out = Vec::new();
        if let Some(first) = ids.first() {
            out.push(first.clone());
        }
        if let Some(last) = ids.last().filter(|_| ids.len() > 1) {
            out.push(last.clone());
        }
        Ok(out)
    }

    /// Users (active), customer-side project participants and organisations
    /// with this e-mail address (compared in lower case).
    pub async fn known_address(&self, email: &str) -> Result<Vec<KnownAddress>> {
        let email = email.to_lowercase();
        let mut out: Vec<KnownAddress> = Vec::new();
        let users: Vec<UserByAddress> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT u.id, u.display_name, u.role, u.organization_id, o.name, u.active
                 FROM users u LEFT JOIN organizations o ON o.id = u.organization_id
                 WHERE LOWER(u.email) = $1 ORDER BY u.id",
            )
            .bind(&email)
            .fetch_all(p)
            .await?
        });
        for (id, name, role, org, org_name, active) in users {
            if active {
                out.push(KnownAddress {
                    user_id: Some(id),
                    name,
                    kind: role,
                    organization_id: org,
                    organization_name: org_name,
                });
            }
        }
        let rows: Vec<KnownAddress> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT CAST(NULL AS BIGINT) AS user_id, pa.name, 'participant' AS kind, pr.organization_id,
                        o.name AS organization_name
                 FROM participants pa JOIN projects pr ON pr.id = pa.project_id
                 JOIN organizations o ON o.id = pr.organization_id
                 WHERE pa.side = 'customer' AND LOWER(pa.email) = $1
                 UNION ALL
                 SELECT CAST(NULL AS BIGINT) AS user_id, o.name, 'organization' AS kind, o.id AS organization_id,
                        o.name AS organization_name
                 FROM organizations o WHERE LOWER(o.email) = $1",
            )
            .bind(&email)
            .fetch_all(p)
            .await?
        });
        out.extend(rows);
        Ok(out)
    }

    /// The id of the organisation with this customer code.
    pub async fn organization_id_by_code(&self, code: &str) -> Result<Option<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar("SELECT id FROM organizations WHERE customer_code = $1")
                .bind(code)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn insert_attachments(
        &self,
        case_id: i64,
        mail_id: i64,
        visibility: &str,
        items: &[NewAttachment],
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            for a in items {
                sqlx::query(
                    "INSERT INTO mail_attachments (case_id, mail_id, filename, content_type,
                        declared_type, size, sha256, visibility, created_at, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(case_id)
                .bind(mail_id)
                .bind(&a.filename)
                .bind(&a.content_type)
                .bind(&a.declared_type)
                .bind(i64::try_from(a.data.len()).unwrap_or(i64::MAX))
                .bind(&a.sha256)
                .bind(visibility)
                .bind(to_micros(now))
                .bind(&a.data)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "attachment"))?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    const ATTACHMENT_COLS: &'static str =
        "id, mail_id, filename, content_type, declared_type, size, sha256, visibility, created_at";

    /// A case's attachments, oldest first.
    pub async fn attachments(&self, case_id: i64) -> Result<Vec<Attachment>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {} FROM mail_attachments WHERE case_id = $1 ORDER BY id",
                Self::ATTACHMENT_COLS
            ))
            .bind(case_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// One attachment of a case, with its bytes.
    pub async fn attachment(&self, case_id: i64, id: i64) -> Result<Option<(Attachment, Vec<u8>)>> {
        let meta: Option<Attachment> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {} FROM mail_attachments WHERE case_id = $1 AND id = $2",
                Self::ATTACHMENT_COLS
            ))
            .bind(case_id)
            .bind(id)
            .fetch_optional(p)
            .await?
        });
        let Some(meta) = meta else { return Ok(None) };
        let data: Vec<u8> = read!(self, |p, _d| {
            sqlx::query_scalar("SELECT data FROM mail_attachments WHERE id = $1")
                .bind(id)
                .fetch_one(p)
                .await?
        });
        Ok(Some((meta, data)))
    }
}
