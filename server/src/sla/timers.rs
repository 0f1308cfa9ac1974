//! The durable timer service: every deadline is a row with a due time (see
//! `store::timers`); this runner keeps the next one in view and fires each
//! within about a second of its due time.
//!
//! - **Never early, promptly.** It sleeps until the earliest pending timer.
//!   [`TimerService::schedule`] wakes it when a new timer comes earlier. It also
//!   looks again at least every `poll` (1 s) so timers scheduled by another
//!   replica are seen. That look is two index lookups, never a scan of cases
//!   or of the timers.
//! - **Little memory.** The table is the queue: the runner holds only the
//!   timers it has claimed (at most `max_in_flight`), however many are pending.
//! - **At least once, effect once.** A due timer is claimed with a lease,
//!   handed to the handler, and marked fired when the handler succeeds. If the
//!   handler fails, the timer is retried with back-off. If the runner dies, the
//!   lease runs out and any replica takes it. Handlers must be idempotent by
//!   timer id; then each timer's effect happens exactly once.
//! - **After downtime.** Timers that came due while no runner was up fire at
//!   start-up and are marked `late` (fired more than `grace` after due).
//!
//! Handlers run concurrently (at most `max_in_flight`), so one slow handler
//! (an SMTP server timing out) never holds back the others.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};

use crate::clock::Clock;
use crate::error::Result;
use crate::store::timers::TimerRow;
use crate::store::Store;

/// What a handler returns: `Err` (a message) makes the timer retry.
pub type HandlerResult = std::result::Result<(), String>;

/// Runs the effect of a fired timer.
pub type Handler =
    Arc<dyn Fn(TimerRow) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> + Send + Sync>;

/// Tuning; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest sleep between looks at the table (bounds cross-replica delay).
    pub poll: Duration,
    /// How long a claim lasts before another runner may take the timer.
    pub lease: Duration,
    /// Firing later than this after the due time marks the timer late.
    pub grace: Duration,
    /// First retry delay after a failure; doubles per attempt, up to `max_retry`.
    pub retry: Duration,
    pub max_retry: Duration,
    /// Handlers running at once.
    pub max_in_flight: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            grace: Duration::from_secs(1),
            retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(600),
            max_in_flight: 64,
        }
    }
}

/// Schedules timers and runs them.
#[derive(Clone)]
pub struct TimerService {
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    settings: Settings,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl TimerService {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: Settings) -> TimerService {
        TimerService {
            store,
            clock,
            wake: Arc::new(Notify::new()),
            settings,
        }
    }

    /// Create or move a timer (a fired one stays fired) and wake the runner.
    pub async fn schedule(
        &self,
        owner: &str,
        kind: &str,
        due_at: DateTime<Utc>,
        payload: &str,
    ) -> Result<()> {
        self.store
            .schedule_timer(owner, kind, due_at, payload, self.clock.now())
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    pub async fn cancel(&self, owner: &str, kind: Option<&str>) -> Result<u64> {
        self.store.cancel_timers(owner, kind).await
    }

    /// Run until `stop` turns true. Database errors are logged and retried
    /// after `poll`; they never end the loop.
    pub async fn run(self, handler: Handler, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.max_in_flight.max(1)));
        let batch = self.settings.max_in_flight.max(1) as i64;
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.now();
            let free = slots.available_permits() as i64;
            let claimed = if free > 0 {
                match self
                    .store
                    .claim_due_timers(now, now + chrono(self.settings.lease), free.min(batch))
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim timers; retrying");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let full = claimed.len() as i64 == free && free > 0;
            for timer in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (svc, handler) = (self.clone(), handler.clone());
                tokio::spawn(async move {
                    svc.fire(timer, &handler).await;
                    drop(permit);
                    svc.wake.notify_one();
                });
            }
            if full {
                continue; // more may be due right now
            }
            if slots.available_permits() == 0 {
                // Every handler slot is busy: wait for one to finish.
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let wait = match self.store.next_timer_at(self.clock.now()).await {
                Ok(Some(next)) => (next - self.clock.now()).to_std().unwrap_or(Duration::ZERO),
                Ok(None) => self.settings.poll,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the next timer; retrying");
                    self.settings.poll
                }
            }
            .min(self.settings.poll);
            if wait.is_zero() {
                // Due now but not claimable by us (another runner holds it):
                // look again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn fire(&self, timer: TimerRow, handler: &Handler) {
        let (id, attempts, due) = (timer.id, timer.attempts, timer.due());
        match handler(timer).await {
            Ok(()) => {
                let fired = self.clock.now();
                let late = fired - due > chrono(self.settings.grace);
                if let Err(e) = self.store.complete_timer(id, fired, late).await {
                    // The lease will run out and the (idempotent) handler runs again.
                    tracing::warn!(timer = id, error = %e, "cannot record a fired timer");
                }
            }
            Err(msg) => {
                let factor = 2u32.saturating_pow(attempts.clamp(1, 20) as u32 - 1);
                let delay = self
                    .settings
                    .retry
                    .saturating_mul(factor)
                    .min(self.settings.max_retry);
                tracing::warn!(timer = id, attempts, error = %msg, "timer handler failed; will retry");
                if let Err(e) = self
                    .store
                    .fail_timer(id, self.clock.now() + chrono(delay), &msg)
                    .await
                {
                    tracing::warn!(timer = id, error = %e, "cannot record a failed timer");
                }
            }
        }
    }
}
