//! Service reports e-mailed on a schedule, one schedule per organisation.
//!
//! A schedule (weekly or monthly, a list of recipients) has its next run as
//! a durable timer (owner `report:<organization id>`, kind
//! `service_report:<run instant in microseconds>`, see `sla::timers`). When
//! it fires, the report of the last whole period before the run (the
//! previous calendar month, or the previous ISO week) is built, printed to
//! PDF and sent over the notifier's SMTP settings (`[notify.email]`) with
//! the PDF attached; `report_runs` records it, so a repeated firing sends
//! nothing twice. Then the next run is set and its timer scheduled. A run
//! whose e-mail fails for now is retried with the timer service's back-off.
//! Without Chromium the HTML report is attached instead, and the message
//! says so.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Reports;
use crate::auth::{Action, Principal};
use crate::clock::{from_micros, to_micros};
use crate::dashboard::Period;
use crate::error::{Error, Result};
use crate::notify::send::SendError;
use crate::store::timers::TimerRow;

/// Hour of day (UTC) at which scheduled reports go out.
const RUN_HOUR: u32 = 6;
/// Most recipients of one schedule.
const MAX_RECIPIENTS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Weekly,
    Monthly,
}

impl Frequency {
    fn as_str(self) -> &'static str {
        match self {
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
        }
    }

    fn parse(s: &str) -> Result<Frequency> {
        match s {
            "weekly" => Ok(Frequency::Weekly),
            "monthly" => Ok(Frequency::Monthly),
            other => Err(Error::Corrupt(format!(
                "report_schedules.frequency holds {other:?}"
            ))),
        }
    }

    /// The last whole period before the run at `at`.
    pub fn period_before(self, at: DateTime<Utc>) -> Period {
        let day = at.date_naive();
        match self {
            Frequency::Monthly => {
                let first = day.with_day(1).unwrap_or(day);
                let prev_first = first.checked_sub_months(Months::new(1)).unwrap_or(first);
                Period {
                    from: prev_first,
                    to: first.pred_opt().unwrap_or(first),
                }
            }
            Frequency::Weekly => {
                let monday = day.week(Weekday::Mon).first_day();
                Period {
                    from: monday.checked_sub_days(Days::new(7)).unwrap_or(monday),
                    to: monday.pred_opt().unwrap_or(monday),
                }
            }
        }
    }

    /// The first run after `after`: the 1st of a month, or a Monday, at
    /// [`RUN_HOUR`] UTC.
    pub fn next_run_after(self, after: DateTime<Utc>) -> DateTime<Utc> {
        let at = |d: NaiveDate| {
            d.and_time(NaiveTime::from_hms_opt(RUN_HOUR, 0, 0).unwrap_or_default())
                .and_utc()
        };
        let day = after.date_naive();
        let mut candidate = match self {
            Frequency::Monthly => day.with_day(1).unwrap_or(day),
            Frequency::Weekly => day.week(Weekday::Mon).first_day(),
        };
        while at(candidate) <= after {
            candidate = match self {
                Frequency::Monthly => candidate
                    .checked_add_months(Months::new(1))
                    .unwrap_or(candidate),
                Frequency::Weekly => candidate
                    .checked_add_days(Days::new(7))
                    .unwrap_or(candidate),
            };
        }
        at(candidate)
    }
}

/// Set an organisation's schedule.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    pub frequency: Frequency,
    /// E-mail addresses (1 to 20).
    pub recipients: Vec<String>,
    /// When the first report goes out (default: the next 1st of the month,
    /// or Monday, 06:00 UTC). It covers the last whole period before it.
    pub first_run_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    pub organization_id: i64,
    pub frequency: Frequency,
    pub recipients: Vec<String>,
    pub next_run_at: DateTime<Utc>,
    /// The period the next report covers.
    pub next_from: NaiveDate,
    pub next_to: NaiveDate,
}

impl ScheduleView {
    pub fn frequency_words(&self) -> &'static str {
        self.frequency.as_str()
    }
}

fn owner(org: i64) -> String {
    format!("report:{org}")
}

fn kind(run_at: i64) -> String {
    format!("service_report:{run_at}")
}

fn view(row: crate::store::reports::ScheduleRow) -> Result<ScheduleView> {
    let frequency = Frequency::parse(&row.frequency)?;
    let recipients: Vec<String> = serde_json::from_str(&row.recipients)
        .map_err(|e| Error::Corrupt(format!("report_schedules.recipients is not a list: {e}")))?;
    let next = from_micros(row.next_run_at);
    let p = frequency.period_before(next);
    Ok(ScheduleView {
        organization_id: row.organization_id,
        frequency,
        recipients,
        next_run_at: next,
        next_from: p.from,
        next_to: p.to,
    })
}

impl Reports {
    fn may_schedule(&self, who: &Principal, org: i64) -> Result<()> {
        who.require(Action::ManageReportSchedules)?;
        if !who.sees_organization(Some(org)) {
            return Err(Error::not_found(format!("organization {org}")));
        }
        Ok(())
    }

    async fn organization_exists(&self, org: i64) -> Result<()> {
        self.store
            .organization(org)
            .await?
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("organization {org}")))
    }

    pub async fn schedule(&self, who: &Principal, org: i64) -> Result<ScheduleView> {
        who.require(Action::ReadServiceReport)?;
        if !who.sees_organization(Some(org)) {
            return Err(Error::not_found(format!("organization {org}")));
        }
        self.organization_exists(org).await?;
        let row =
            self.store.report_schedule(org).await?.ok_or_else(|| {
                Error::not_found(format!("report schedule of organization {org}"))
            })?;
        view(row)
    }

    /// Create or replace the schedule; its next run's timer replaces any
    /// earlier one.
    pub async fn set_schedule(
        &self,
        who: &Principal,
        org: i64,
        req: &ScheduleRequest,
    ) -> Result<ScheduleView> {
        self.may_schedule(who, org)?;
        self.organization_exists(org).await?;
        if req.recipients.is_empty() || req.recipients.len() > MAX_RECIPIENTS {
            return Err(Error::invalid(
                "recipients",
                format!("give 1 to {MAX_RECIPIENTS} e-mail addresses"),
            ));
        }
        let mut recipients = Vec::new();
        for (i, r) in req.recipients.iter().enumerate() {
            let field = format!("recipients[{i}]");
            match crate::validate::opt_email(&field, &Some(r.clone()))? {
                Some(a) => recipients.push(a),
                None => return Err(Error::invalid(field, "must not be empty")),
            }
        }
        if !self.email_configured {
            return Err(Error::conflict(
                "e-mail is not configured ([notify.email]); a scheduled report could never be sent",
            ));
        }
        let now = self.clock.now();
        let next = match req.first_run_at {
            Some(t) if t <= now => {
                return Err(Error::invalid("first_run_at", "must be in the future"));
            }
            Some(t) if t > now + chrono::Duration::days(366) => {
                return Err(Error::invalid(
                    "first_run_at",
                    "must be within a year from now",
                ));
            }
            Some(t) => t,
            None => req.frequency.next_run_after(now),
        };
        let list = serde_json::to_string(&recipients)
            .map_err(|e| Error::Internal(format!("recipients: {e}")))?;
        self.store
            .put_report_schedule(
                org,
                req.frequency.as_str(),
                &list,
                to_micros(next),
                Some(who.user_id),
                to_micros(now),
            )
            .await?;
        self.store.cancel_timers(&owner(org), None).await?;
        self.store
            .schedule_timer(&owner(org), &kind(to_micros(next)), next, "{}", now)
            .await?;
        self.schedule(who, org).await
    }

    pub async fn delete_schedule(&self, who: &Principal, org: i64) -> Result<()> {
        self.may_schedule(who, org)?;
        self.organization_exists(org).await?;
        if !self.store.delete_report_schedule(org).await? {
            return Err(Error::not_found(format!(
                "report schedule of organization {org}"
            )));
        }
        self.store.cancel_timers(&owner(org), None).await?;
        Ok(())
    }

    /// A schedule's timer fired: send the report (once), set the next run.
    /// An `Err` makes the timer retry.
    pub async fn fire(&self, t: &TimerRow) -> std::result::Result<(), String> {
        let org: i64 = t
            .owner
            .strip_prefix("report:")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("timer owner {:?} names no organisation", t.owner))?;
        let row = match self.store.report_schedule(org).await {
            Ok(Some(r)) => r,
            // Deleted since: nothing to do.
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if t.kind != kind(row.next_run_at) {
            // A replaced schedule's timer.
            return Ok(());
        }
        let schedule = view(row.clone()).map_err(|e| e.to_string())?;
        let period = schedule.frequency.period_before(schedule.next_run_at);
        let (from, to) = (period.from.to_string(), period.to.to_string());
        let sent = self
            .store
            .report_sent(org, &from, &to)
            .await
            .map_err(|e| e.to_string())?;
        if !sent {
            self.send(org, period, &schedule.recipients, &row.recipients)
                .await?;
        }
        let now = self.clock.now();
        let next = schedule
            .frequency
            .next_run_after(schedule.next_run_at.max(now));
        let advanced = self
            .store
            .advance_report_schedule(org, row.next_run_at, to_micros(next))
            .await
            .map_err(|e| e.to_string())?;
        if advanced {
            self.store
                .schedule_timer(&owner(org), &kind(to_micros(next)), next, "{}", now)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn send(
        &self,
        org: i64,
        period: Period,
        recipients: &[String],
        recipients_json: &str,
    ) -> std::result::Result<(), String> {
        let Some(mail) = &self.mail else {
            return Err("e-mail is not configured ([notify.email])".into());
        };
        let report = self.build(org, period).await.map_err(|e| e.to_string())?;
        let name = format!("service-report-{}-{}-{}", org, report.from, report.to);
        let (file, content_type, bytes, note) = match self.pdf(&report).await {
            Ok(pdf) => (format!("{name}.pdf"), "application/pdf", pdf, ""),
            Err(Error::Unavailable(why)) => {
                tracing::warn!(organization = org, error = %why, "no PDF for the scheduled report; the HTML goes instead");
                (
                    format!("{name}.html"),
                    "text/html; charset=utf-8",
                    super::html::document(&report).into_string().into_bytes(),
                    "\n(The server cannot print PDFs, so the report is attached as a web page.)\n",
                )
            }
            Err(e) => return Err(e.to_string()),
        };
        let subject = format!(
            "Service report {}: {} to {}",
            report.organization_name, report.from, report.to
        );
        let body = format!(
            "Hello,\n\nattached is the service report of {} for {} to {}.\n{note}\nOutpost\n",
            report.organization_name, report.from, report.to
        );
        let len = bytes.len() as i64;
        match mail
            .email_with_attachment(recipients, &subject, &body, &file, content_type, bytes)
            .await
        {
            Ok(()) => {}
            Err(SendError::Transient(e)) => return Err(e),
            Err(SendError::Permanent(e)) => {
                // Retrying cannot help; say so loudly and move on.
                tracing::error!(organization = org, error = %e, "the scheduled service report cannot be sent");
                return Ok(());
            }
        }
        tracing::info!(organization = org, from = %report.from, to = %report.to, bytes = len, "service report sent");
        self.store
            .record_report_run(
                org,
                &period.from.to_string(),
                &period.to.to_string(),
                recipients_json,
                len,
                to_micros(self.clock.now()),
            )
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn periods_are_the_last_whole_month_or_week() {
        let p = Frequency::Monthly.period_before(at("2026-03-01T06:00:00Z"));
        assert_eq!((p.from, p.to), (day("2026-02-01"), day("2026-02-28")));
        let p = Frequency::Monthly.period_before(at("2026-01-15T10:00:00Z"));
        assert_eq!((p.from, p.to), (day("2025-12-01"), day("2025-12-31")));
        // 2026-11-25 is a Wednesday.
        let p = Frequency::Weekly.period_before(at("2026-11-25T10:00:00Z"));
        assert_eq!((p.from, p.to), (day("2026-11-16"), day("2026-11-22")));
    }

    #[test]
    fn next_runs_are_strictly_later() {
        assert_eq!(
            Frequency::Monthly.next_run_after(at("2026-01-31T23:00:00Z")),
            at("2026-02-01T06:00:00Z")
        );
        assert_eq!(
            Frequency::Monthly.next_run_after(at("2026-02-01T06:00:00Z")),
            at("2026-03-01T06:00:00Z")
        );
        assert_eq!(
            Frequency::Weekly.next_run_after(at("2026-11-23T05:59:00Z")),
            at("2026-11-23T06:00:00Z")
        );
        assert_eq!(
            Frequency::Weekly.next_run_after(at("2026-11-25T10:00:00Z")),
            at("2026-11-30T06:00:00Z")
        );
    }
}
