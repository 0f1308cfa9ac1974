//! SQL for upgrade campaigns: campaigns, their jobs (one per device), and
//! the append-only events recording every step. A job's state changes only
//! by conditional updates (`WHERE state = <the state it was read in>`), each
//! in the transaction that appends its event, so two replicas applying the
//! same report or the same timeout record it once.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{map_db_err, read, write, Store};
use crate::clock::to_micros;
use crate::error::Result;

/// The states a job is over in (SQL list).
const ENDED: &str = "('succeeded', 'failed', 'rolled_back', 'skipped')";

/// A device a campaign may select.
#[derive(Debug, Clone, FromRow)]
pub struct CandidateRow {
    pub id: i64,
    pub organization_id: i64,
    pub name: String,
    pub vendor: String,
    pub model: String,
    pub software_version: Option<String>,
    pub firmware_version: Option<String>,
    pub agent_id: Option<i64>,
    pub agent_target: Option<String>,
}

impl CandidateRow {
    /// The version the device runs: its software image, else its firmware.
    pub fn version(&self) -> Option<&str> {
        self.software_version
            .as_deref()
            .or(self.firmware_version.as_deref())
    }
}

/// A campaign as stored. Instants are microseconds.
#[derive(Debug, Clone, FromRow)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub release_id: i64,
    pub state: String,
    pub selection: String,
    pub wave_plan: String,
    pub wave_count: i64,
    pub current_wave: i64,
    pub accepted_wave: i64,
    pub success_threshold: i64,
    pub error_threshold: i64,
    pub install_timeout_secs: i64,
    pub reboot_timeout_secs: i64,
    pub window_cron: Option<String>,
    pub window_secs: Option<i64>,
    pub window_tz: Option<String>,
    pub reason: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

const CAMPAIGN_COLS: &str = "id, name, release_id, state, selection, wave_plan, wave_count, current_wave, accepted_wave, success_threshold, error_threshold, install_timeout_secs, reboot_timeout_secs, window_cron, window_secs, window_tz, reason, created_by, created_at, started_at, finished_at, updated_at";

/// A job as stored, with its device's name and organisation.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: i64,
    pub campaign_id: i64,
    pub device_id: i64,
    pub device_name: String,
    pub organization_id: i64,
    pub agent_id: Option<i64>,
    pub wave: i64,
    pub state: String,
    pub offered: bool,
    pub step: Option<String>,
    pub detail: String,
    pub failure: Option<String>,
    pub from_version: Option<String>,
    pub version: Option<String>,
    pub deadline: Option<i64>,
    pub reloaded_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub case_id: Option<i64>,
    pub case_number: Option<String>,
    pub updated_at: i64,
}

const JOB_SELECT: &str = "SELECT j.id, j.campaign_id, j.device_id, d.name AS device_name,
    d.organization_id, j.agent_id, j.wave, j.state, j.offered, j.step, j.detail, j.failure,
    j.from_version, j.version, j.deadline, j.reloaded_at, j.started_at, j.finished_at, j.case_id,
    c.number AS case_number, j.updated_at
    FROM upgrade_jobs j JOIN devices d ON d.id = j.device_id LEFT JOIN cases c ON c.id = j.case_id";

/// A job to insert with a new campaign.
#[derive(Debug, Clone)]
pub struct JobInsert {
    pub device_id: i64,
    pub agent_id: Option<i64>,
    pub wave: i64,
    /// `scheduled`, or `skipped` with the reason in `detail`.
    pub state: &'static str,
    pub detail: String,
    pub from_version: Option<String>,
}

/// An event to append.
#[derive(Debug, Clone, Default)]
pub struct EventInsert {
    pub job_id: Option<i64>,
    /// `agent`, `server` or `user`.
    pub source: &'static str,
    pub user_id: Option<i64>,
    pub state: Option<String>,
    pub step: Option<String>,
    pub detail: String,
    pub failure: Option<String>,
    pub version: Option<String>,
    pub idempotency_key: Option<String>,
    pub reported_at: i64,
}

/// An event as stored.
#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub campaign_id: i64,
    pub job_id: Option<i64>,
    pub device_name: Option<String>,
    pub source: String,
    pub user_id: Option<i64>,
    pub state: Option<String>,
    pub step: Option<String>,
    pub detail: String,
    pub failure: Option<String>,
    pub version: Option<String>,
    pub reported_at: i64,
    pub at: i64,
}

/// A job's new state, applied only if it is still in `expect`.
#[derive(Debug, Clone)]
pub struct JobChange {
    pub expect: String,
    pub state: String,
    pub step: Option<String>,
    pub detail: String,
    pub failure: Option<String>,
    pub version: Option<String>,
    pub deadline: Option<i64>,
    pub reloaded_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A job the agent is to carry out, with what the offer needs.
#[derive(Debug, Clone, FromRow)]
pub struct OfferRow {
    pub id: i64,
    pub campaign_id: i64,
    pub campaign: String,
    pub device: String,
    pub vendor: String,
    pub model: String,
    pub from_version: Option<String>,
    pub release_id: i64,
    pub install_timeout_secs: i64,
    pub reboot_timeout_secs: i64,
}

/// A published firmware release that fits a device of the caller's.
#[derive(Debug, Clone, FromRow)]
pub struct ApplicableRow {
    pub device_id: i64,
    pub device_name: String,
    pub organization_id: i64,
    pub vendor: String,
    pub model: String,
    pub software_version: Option<String>,
    pub firmware_version: Option<String>,
    pub release_id: i64,
    pub release_target: String,
    pub release_version: String,
    pub release_name: String,
    pub notes: String,
    pub published_at: Option<i64>,
}

macro_rules! append_event {
    ($tx:expr, $campaign:expr, $e:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO upgrade_events (campaign_id, job_id, source, user_id, state, step,
                detail, failure, version, idempotency_key, reported_at, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind($campaign)
        .bind($e.job_id)
        .bind($e.source)
        .bind($e.user_id)
        .bind(&$e.state)
        .bind(&$e.step)
        .bind(&$e.detail)
        .bind(&$e.failure)
        .bind(&$e.version)
        .bind(&$e.idempotency_key)
        .bind($e.reported_at)
        .bind($now)
        .execute(&mut *$tx)
        .await
    };
}

impl Store {
    /// Devices of one model (case-insensitive), by id; the caller matches
    /// the vendor (whose spelling varies: `Cisco`, `Cisco Systems, Inc.`).
    pub async fn upgrade_candidates(&self, model: &str) -> Result<Vec<CandidateRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, organization_id, name, vendor, model, software_version,
                        firmware_version, agent_id, agent_target
                 FROM devices WHERE lower(model) = lower($1)
                 ORDER BY id LIMIT 100000",
            )
            .bind(model)
            .fetch_all(p)
            .await?
        }))
    }

    /// (device, campaign) of every job still under way in a campaign that is
    /// not over.
    pub async fn devices_in_campaigns(&self) -> Result<Vec<(i64, i64)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT j.device_id, j.campaign_id FROM upgrade_jobs j
                 JOIN campaigns c ON c.id = j.campaign_id
                 WHERE c.state IN ('draft', 'running', 'paused') AND j.state NOT IN {ENDED}"
            ))
            .fetch_all(p)
            .await?
        }))
    }

    /// Insert a campaign, its jobs and its first event in one transaction.
    pub async fn insert_campaign(
        &self,
        c: &CampaignRow,
        jobs: &[JobInsert],
        event: &EventInsert,
    ) -> Result<i64> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO campaigns (name, release_id, state, selection, wave_plan, wave_count,
                    success_threshold, error_threshold, install_timeout_secs, reboot_timeout_secs,
                    window_cron, window_secs, window_tz, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
                 RETURNING id",
            )
            .bind(&c.name)
            .bind(c.release_id)
            .bind(&c.state)
            .bind(&c.selection)
            .bind(&c.wave_plan)
            .bind(c.wave_count)
            .bind(c.success_threshold)
            .bind(c.error_threshold)
            .bind(c.install_timeout_secs)
            .bind(c.reboot_timeout_secs)
            .bind(&c.window_cron)
            .bind(c.window_secs)
            .bind(&c.window_tz)
            .bind(c.created_by)
            .bind(c.created_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "campaign"))?;
            for j in jobs {
                let ended = (j.state == "skipped").then_some(c.created_at);
                sqlx::query(
                    "INSERT INTO upgrade_jobs (campaign_id, device_id, agent_id, wave, state,
                        detail, from_version, finished_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(j.device_id)
                .bind(j.agent_id)
                .bind(j.wave)
                .bind(j.state)
                .bind(&j.detail)
                .bind(&j.from_version)
                .bind(ended)
                .bind(c.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "campaign device"))?;
            }
            append_event!(tx, id, event, c.created_at)?;
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<CampaignRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Campaigns, newest first; optionally in one state.
    pub async fn campaigns(&self, state: Option<&str>) -> Result<Vec<CampaignRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE ($1 IS NULL OR state = $1)
                 ORDER BY id DESC LIMIT 500"
            ))
            .bind(state)
            .fetch_all(p)
            .await?
        }))
    }

    /// Ids of the campaigns still under way (running or paused), for the
    /// start-up sweep.
    pub async fn live_campaign_ids(&self) -> Result<Vec<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT id FROM campaigns WHERE state IN ('running', 'paused') ORDER BY id",
            )
            .fetch_all(p)
            .await?
        }))
    }

    /// A campaign's jobs by wave and id.
    pub async fn campaign_jobs(&self, campaign: i64) -> Result<Vec<JobRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{JOB_SELECT} WHERE j.campaign_id = $1 ORDER BY j.wave, j.id"
            ))
            .bind(campaign)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn upgrade_job(&self, id: i64) -> Result<Option<JobRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{JOB_SELECT} WHERE j.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// A device's jobs, newest first.
    pub async fn device_jobs(&self, device: i64) -> Result<Vec<JobRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{JOB_SELECT} WHERE j.device_id = $1 ORDER BY j.id DESC LIMIT 200"
            ))
            .bind(device)
            .fetch_all(p)
            .await?
        }))
    }

    /// A campaign's events (or one job's), in order, after `after`.
    pub async fn upgrade_events(
        &self,
        campaign: i64,
        job: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT e.id, e.campaign_id, e.job_id, d.name AS device_name, e.source, e.user_id,
                        e.state, e.step, e.detail, e.failure, e.version, e.reported_at, e.at
                 FROM upgrade_events e
                 LEFT JOIN upgrade_jobs j ON j.id = e.job_id
                 LEFT JOIN devices d ON d.id = j.device_id
                 WHERE e.campaign_id = $1 AND ($2 IS NULL OR e.job_id = $2) AND e.id > $3
                 ORDER BY e.id LIMIT $4",
            )
            .bind(campaign)
            .bind(job)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Change a campaign's state and wave if they are still what was read;
    /// with its event. False: someone else changed it first.
    #[allow(clippy::too_many_arguments)]
    pub async fn change_campaign(
        &self,
        id: i64,
        expect: (&str, i64),
        to: (&str, i64),
        accepted_wave: i64,
        reason: Option<&str>,
        event: &EventInsert,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now = to_micros(now);
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE campaigns SET state = $1, current_wave = $2, accepted_wave = $3,
                    reason = $4, updated_at = $5,
                    started_at = CASE WHEN $1 = 'running' THEN COALESCE(started_at, $5) ELSE started_at END,
                    finished_at = CASE WHEN $1 IN ('stopped', 'aborted', 'completed') THEN $5 ELSE NULL END
                 WHERE id = $6 AND state = $7 AND current_wave = $8",
            )
            .bind(to.0)
            .bind(to.1)
            .bind(accepted_wave)
            .bind(reason)
            .bind(now)
            .bind(id)
            .bind(expect.0)
            .bind(expect.1)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if done {
                append_event!(tx, id, event, now)?;
                tx.commit().await?;
            }
            Ok::<bool, crate::error::Error>(done)
        })
    }

    /// Hand a wave's scheduled jobs to their agents, each with a deadline to
    /// start by.
    pub async fn offer_wave(
        &self,
        campaign: i64,
        wave: i64,
        deadline: i64,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(write!(self, |p, _d| {
            sqlx::query(
                "UPDATE upgrade_jobs SET offered = TRUE, deadline = $1, updated_at = $2
                 WHERE campaign_id = $3 AND wave = $4 AND state = 'scheduled' AND NOT offered",
            )
            .bind(deadline)
            .bind(to_micros(now))
            .bind(campaign)
            .bind(wave)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// Take back the scheduled jobs no agent has started yet (pause, window
    /// closed).
    pub async fn withdraw_offers(&self, campaign: i64, now: DateTime<Utc>) -> Result<u64> {
        Ok(write!(self, |p, _d| {
            sqlx::query(
                "UPDATE upgrade_jobs SET offered = FALSE, deadline = NULL, updated_at = $1
                 WHERE campaign_id = $2 AND state = 'scheduled' AND offered",
            )
            .bind(to_micros(now))
            .bind(campaign)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// Apply a job's change if it is still in `change.expect`, with its
    /// event (no change: the event alone). `Ok(None)`: the event's
    /// idempotency key was seen before (nothing done); `Ok(Some(false))`:
    /// the job had moved on (the event is still recorded, the job left
    /// alone).
    pub async fn change_job(
        &self,
        job: &JobRow,
        change: Option<&JobChange>,
        event: &EventInsert,
        now: DateTime<Utc>,
    ) -> Result<Option<bool>> {
        let now = to_micros(now);
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            if let Some(key) = &event.idempotency_key {
                let seen: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM upgrade_events WHERE idempotency_key = $1")
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                if seen.is_some() {
                    return Ok(None);
                }
            }
            let mut done = false;
            if let Some(change) = change {
                done = sqlx::query(
                    "UPDATE upgrade_jobs SET state = $1, step = $2, detail = $3, failure = $4,
                        version = COALESCE($5, version), deadline = $6,
                        reloaded_at = COALESCE($7, reloaded_at),
                        started_at = COALESCE(started_at, $8), finished_at = $9,
                        offered = CASE WHEN $1 = 'scheduled' THEN offered ELSE FALSE END,
                        updated_at = $10
                     WHERE id = $11 AND state = $12",
                )
                .bind(&change.state)
                .bind(&change.step)
                .bind(&change.detail)
                .bind(&change.failure)
                .bind(&change.version)
                .bind(change.deadline)
                .bind(change.reloaded_at)
                .bind(change.started_at)
                .bind(change.finished_at)
                .bind(now)
                .bind(job.id)
                .bind(&change.expect)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if done && change.state == "succeeded" {
                    if let Some(v) = &change.version {
                        sqlx::query("UPDATE devices SET software_version = $1 WHERE id = $2")
                            .bind(v)
                            .bind(job.device_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            match append_event!(tx, job.campaign_id, event, now) {
                Ok(_) => {}
                // A racing replica recorded the same report first.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            Ok(Some(done))
        })
    }

    /// Append an event that changes no job (a campaign action, a late
    /// report).
    pub async fn append_upgrade_event(
        &self,
        campaign: i64,
        event: &EventInsert,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = to_micros(now);
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            append_event!(tx, campaign, event, now)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Jobs of a campaign not over whose deadline has passed.
    pub async fn expired_jobs(&self, campaign: i64, now: DateTime<Utc>) -> Result<Vec<JobRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{JOB_SELECT} WHERE j.campaign_id = $1 AND j.deadline IS NOT NULL
                   AND j.deadline <= $2 AND j.state NOT IN {ENDED}
                 ORDER BY j.id"
            ))
            .bind(campaign)
            .bind(to_micros(now))
            .fetch_all(p)
            .await?
        }))
    }

    /// The earliest deadline of a campaign's jobs not over.
    pub async fn next_job_deadline(&self, campaign: i64) -> Result<Option<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(&format!(
                "SELECT MIN(deadline) FROM upgrade_jobs
                 WHERE campaign_id = $1 AND state NOT IN {ENDED}"
            ))
            .bind(campaign)
            .fetch_one(p)
            .await?
        }))
    }

    /// Link a failed job to the case opened for it.
    pub async fn set_job_case(&self, job: i64, case_id: i64) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query("UPDATE upgrade_jobs SET case_id = $1 WHERE id = $2 AND case_id IS NULL")
                .bind(case_id)
                .bind(job)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The jobs an agent is to carry out now: scheduled, offered, in a
    /// running campaign, oldest first.
    pub async fn agent_offers(&self, agent: i64) -> Result<Vec<OfferRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT j.id, j.campaign_id, c.name AS campaign, d.agent_target AS device,
                        d.vendor, d.model, j.from_version, c.release_id,
                        c.install_timeout_secs, c.reboot_timeout_secs
                 FROM upgrade_jobs j
                 JOIN campaigns c ON c.id = j.campaign_id
                 JOIN devices d ON d.id = j.device_id
                 WHERE j.agent_id = $1 AND j.state = 'scheduled' AND j.offered
                   AND c.state = 'running' AND d.agent_target IS NOT NULL
                 ORDER BY j.id LIMIT 100",
            )
            .bind(agent)
            .fetch_all(p)
            .await?
        }))
    }

    /// How many jobs wait for an agent (the heartbeat's hint).
    pub async fn agent_offer_count(&self, agent: i64) -> Result<i64> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM upgrade_jobs j JOIN campaigns c ON c.id = j.campaign_id
                 WHERE j.agent_id = $1 AND j.state = 'scheduled' AND j.offered
                   AND c.state = 'running'",
            )
            .bind(agent)
            .fetch_one(p)
            .await?
        }))
    }

    /// The newest published release's id (the heartbeat's hint).
    pub async fn newest_release_id(&self) -> Result<Option<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar("SELECT MAX(id) FROM releases WHERE published_at IS NOT NULL")
                .fetch_one(p)
                .await?
        }))
    }

    /// Published firmware releases for the devices of `organization` (all
    /// organisations: `None`), or of one device, by device and release.
    pub async fn applicable_releases(
        &self,
        organization: Option<i64>,
        device: Option<i64>,
    ) -> Result<Vec<ApplicableRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT d.id AS device_id, d.name AS device_name, d.organization_id, d.vendor,
                        d.model, d.software_version, d.firmware_version, r.id AS release_id,
                        r.target AS release_target, r.version AS release_version, r.name AS release_name, r.notes,
                        r.published_at
                 FROM devices d
                 JOIN releases r ON r.kind = 'firmware' AND r.published_at IS NOT NULL
                      AND lower(r.target) LIKE '%/' || lower(d.model)
                 WHERE ($1 IS NULL OR d.organization_id = $1) AND ($2 IS NULL OR d.id = $2)
                 ORDER BY d.id, r.id LIMIT 20000",
            )
            .bind(organization)
            .bind(device)
            .fetch_all(p)
            .await?
        }))
    }
}
