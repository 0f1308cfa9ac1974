//! Notifications: e-mail, SMS and webhooks, through a durable outbox.
//!
//! A history entry that may concern someone (see [`wants`]) is queued in the
//! `outbox` table in the same transaction as the entry itself, so an event is
//! never lost. The [`Notifier`] task then
//! 1. expands each outbox row, using [`plan::plan`], into deliveries (one per
//!    recipient and channel), alerts and surveys, in one transaction;
//! 2. sends due deliveries over [`send::Senders`], a few at a time, retrying
//!    transient failures with exponential back-off; a delivery that fails for
//!    good is recorded on its case and counted in `/metrics`.
//!
//! Both steps claim rows with a lease, so several replicas on one PostgreSQL
//! share the work and a crashed one's claims are taken over. The task wakes
//! when a local commit queues outbox rows, when the next delivery is due, and
//! at least once a second (other replicas' work).

pub mod plan;
pub mod quiet;
pub mod send;
pub mod settings;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::cases::{ActivityBody, Cases, Visibility};
use crate::error::Result;
use crate::store::notify::{DeliveryRow, Expansion, OutboxItem};
pub use settings::Settings;

/// The author name on entries the notifier writes.
pub const AUTHOR: &str = "Outpost notifier";

/// Whether an entry goes through the outbox: everything that notifies a
/// person or a webhook subscriber. Public notes do (the customer contact
/// hears of them); internal notes, calls and the notifier's own entries do
/// not.
pub fn wants(body: &ActivityBody, visibility: Visibility) -> bool {
    if matches!(body, ActivityBody::Note { .. }) {
        return visibility == Visibility::Public;
    }
    matches!(
        body,
        ActivityBody::Opened { .. }
            | ActivityBody::Assigned { .. }
            | ActivityBody::TakenOver { .. }
            | ActivityBody::StatusChanged { .. }
            | ActivityBody::PriorityChanged { .. }
            | ActivityBody::SlaEvent { .. }
            | ActivityBody::FaultReport { .. }
            | ActivityBody::SurveyAnswered { .. }
            | ActivityBody::Diagnosed { .. }
    ) || plan::promise_event(body).is_some()
}

/// Most outbox rows expanded, and deliveries sent, per round.
const BATCH: i64 = 64;
/// How long a claim holds: longer than the slowest send (SMTP timeout 30 s).
const LEASE: Duration = Duration::from_secs(60);
/// Longest sleep between rounds when idle.
const IDLE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Notifier {
    cases: Cases,
    settings: Arc<Settings>,
    senders: Arc<send::Senders>,
    channels: Arc<plan::Channels>,
    default_tz: Tz,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Notifier {
    pub fn new(
        cases: Cases,
        settings: Settings,
        default_tz: Tz,
    ) -> std::result::Result<Notifier, String> {
        let senders = send::Senders::new(&settings)?;
        let channels = plan::Channels {
            email: settings.email.is_some(),
            sms: settings.sms.is_some(),
            webhooks: settings
                .webhooks
                .iter()
                .map(|w| (w.url.clone(), w.events.clone()))
                .collect(),
        };
        if !channels.email {
            tracing::info!("e-mail notifications are off: no [notify.email] in the config");
        }
        if !channels.sms {
            tracing::info!("SMS notifications are off: no [notify.sms] in the config");
        }
        Ok(Notifier {
            cases,
            settings: Arc::new(settings),
            senders: Arc::new(senders),
            channels: Arc::new(channels),
            default_tz,
        })
    }

    /// Run until `stop` turns true.
    pub fn start(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    fn now(&self) -> DateTime<Utc> {
        self.cases.clock.now()
    }

    /// Delay before attempt `attempts + 1`: doubling from `retry_initial`.
    fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.clamp(1, 30) - 1).unwrap_or(0);
        self.settings
            .retry_initial
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.settings.retry_max)
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            // Look first (two index reads); claim (a write) only when
            // something is due, so an idle notifier writes nothing.
            let wait = match self.cases.store.next_notify_at().await {
                Ok(Some(t)) => (t - self.now()).to_std().unwrap_or(Duration::ZERO),
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the notification outbox");
                    IDLE
                }
            };
            if wait.is_zero() {
                let mut busy = false;
                match self.expand_some().await {
                    Ok(n) => busy |= n > 0,
                    Err(e) => tracing::warn!(error = %e, "cannot expand the notification outbox"),
                }
                match self.deliver_some().await {
                    Ok(n) => busy |= n > 0,
                    Err(e) => tracing::warn!(error = %e, "cannot send notifications"),
                }
                if !busy {
                    // Due, but claimed by another replica at this moment.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
            // Until the next is due, a local commit queues one, or a second
            // passes (other replicas' work).
            tokio::select! {
                _ = self.cases.store.outbox_wait(wait.min(IDLE)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn expand_some(&self) -> Result<usize> {
        let now = self.now();
        let items = self
            .cases
            .store
            .claim_outbox(now, now + chrono(LEASE), BATCH)
            .await?;
        if items.is_empty() {
            return Ok(0);
        }
        let roster: Vec<_> = self
            .cases
            .store
            .users(None, None)
            .await?
            .into_iter()
            .filter(|u| u.active && u.role != crate::auth::Role::Customer)
            .collect();
        for item in &items {
            if let Err(e) = self.expand(item, &roster).await {
                tracing::warn!(case = item.case_id, seq = item.seq, error = %e, "cannot plan notifications; will retry");
                let retry = self.now() + chrono(self.backoff(item.attempts));
                self.cases
                    .store
                    .fail_outbox(item.id, retry, &e.to_string())
                    .await?;
            }
        }
        Ok(items.len())
    }

    async fn expand(&self, item: &OutboxItem, roster: &[crate::directory::User]) -> Result<()> {
        let store = &self.cases.store;
        let now = self.now();
        let (Some(case), Some(entry)) = (
            store.case_by_id(item.case_id).await?,
            store.entry(item.case_id, item.seq).await?,
        ) else {
            return store.expand_outbox(item, &Expansion::default(), now).await;
        };
        let body: ActivityBody = match serde_json::from_str(&entry.body) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(case = %case.number, seq = item.seq, error = %e, "history entry not understood; no notification");
                return store.expand_outbox(item, &Expansion::default(), now).await;
            }
        };
        let mut token = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut token);
        let token = hex::encode(token);
        let x = plan::plan(&plan::Context {
            case: &case,
            seq: item.seq,
            at: crate::clock::from_micros(entry.at),
            author: &entry.author_name,
            author_id: entry.author_id,
            body: &body,
            roster,
            channels: &self.channels,
            public_url: self.settings.public_url.as_deref(),
            default_tz: self.default_tz,
            now,
            survey_token: &token,
            survey_valid_for: chrono(self.settings.survey_valid_for),
            survey_reminder_after: chrono(self.settings.survey_reminder_after),
        });
        store.expand_outbox(item, &x, now).await
    }

    async fn deliver_some(&self) -> Result<usize> {
        let now = self.now();
        let due = self
            .cases
            .store
            .claim_deliveries(now, now + chrono(LEASE), BATCH)
            .await?;
        let n = due.len();
        let mut set = tokio::task::JoinSet::new();
        for d in due {
            let me = self.clone();
            set.spawn(async move {
                let (id, case) = (d.id, d.case_id);
                if let Err(e) = me.deliver(d).await {
                    tracing::warn!(delivery = id, case, error = %e, "cannot record a delivery");
                }
            });
        }
        while set.join_next().await.is_some() {}
        Ok(n)
    }

    async fn deliver(&self, d: DeliveryRow) -> Result<()> {
        let store = &self.cases.store;
        if d.reason == "survey_reminder" {
            let open = store.survey_for(d.case_id, d.seq).await?.is_some_and(|s| {
                s.answered_at.is_none() && s.expires_at > crate::clock::to_micros(self.now())
            });
            if !open {
                return store
                    .finish_delivery(
                        d.id,
                        "cancelled",
                        self.now(),
                        None,
                        Some("answered or expired"),
                    )
                    .await;
            }
        }
        let thread = if d.channel == "email" {
            let case = store.case_by_id(d.case_id).await?;
            let caller = case.as_ref().and_then(|c| c.caller_email.as_deref());
            send::Thread {
                inbound: store.mail_thread(d.case_id, caller).await?,
                case_number: case.map(|c| c.number),
            }
        } else {
            send::Thread::default()
        };
        let result = self.senders.send(&d, &thread).await;
        let now = self.now();
        let channel = d.channel.clone();
        let error = match result {
            Ok(()) => {
                metrics::counter!("outpost_notifications_total", "channel" => channel, "result" => "sent")
                    .increment(1);
                tracing::info!(delivery = d.id, case = d.case_id, channel = %d.channel, to = %d.address, reason = %d.reason, "notification sent");
                return store.finish_delivery(d.id, "sent", now, None, None).await;
            }
            Err(send::SendError::Transient(e))
                if d.attempts < i64::from(self.settings.max_attempts) =>
            {
                let retry = now + chrono(self.backoff(d.attempts));
                metrics::counter!("outpost_notifications_total", "channel" => channel, "result" => "retried")
                    .increment(1);
                tracing::warn!(delivery = d.id, channel = %d.channel, to = %d.address, attempt = d.attempts, error = %e, "notification not sent; will retry");
                return store
                    .finish_delivery(d.id, "pending", now, Some(retry), Some(&e))
                    .await;
            }
            Err(e) => e.to_string(),
        };
        metrics::counter!("outpost_notifications_total", "channel" => channel, "result" => "failed")
            .increment(1);
        tracing::error!(delivery = d.id, channel = %d.channel, to = %d.address, error = %error, "notification failed for good");
        store
            .finish_delivery(d.id, "failed", now, None, Some(&error))
            .await?;
        if let Some(case) = store.case_by_id(d.case_id).await? {
            let body = ActivityBody::NotificationFailed {
                channel: d.channel,
                recipient: d.recipient,
                address: d.address,
                reason: d.reason,
                attempts: d.attempts,
                error,
            };
            self.cases
                .record_system(&case.number, AUTHOR, Visibility::Internal, &body)
                .await?;
        }
        Ok(())
    }
}
