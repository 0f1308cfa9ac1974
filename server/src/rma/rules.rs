//! The spare desk's rules (SPEC.md 5), pure: deadlines on the spare-desk
//! calendar and the one shipment state machine. Nothing here reads a clock;
//! every instant comes in as an argument.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

use crate::cases::model::text_enum;
use crate::error::Error;
use crate::sla::calendar::Calendar;

/// The desk's configurable times and counts (the `[rma]` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskRules {
    /// A fault confirmed before this local time on a working day ships the
    /// same day (by its close of business).
    pub cutoff: NaiveTime,
    /// Otherwise it ships by this local time on the next working day.
    pub next_day_by: NaiveTime,
    /// The faulty part is due back by the close of this many working days
    /// after the delivery day.
    pub return_working_days: u32,
    /// The reminder goes out at the close of the working day this many
    /// working days before the return is due.
    pub return_reminder_working_days: u32,
    /// The swap repair of a received unit is due after this much working time.
    pub repair_working_hours: u32,
}

impl Default for DeskRules {
    fn default() -> DeskRules {
        DeskRules {
            cutoff: NaiveTime::from_hms_opt(14, 0, 0).unwrap_or(NaiveTime::MIN),
            next_day_by: NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN),
            return_working_days: 10,
            return_reminder_working_days: 2,
            repair_working_hours: 72,
        }
    }
}

/// Days searched for the next working day before giving up (a calendar
/// without working days).
const SEARCH_DAYS: u32 = 3 * 366;

fn no_working_days(cal: &Calendar) -> Error {
    Error::invalid(
        "rma.calendar",
        format!(
            "calendar {} has no working day within three years",
            cal.name()
        ),
    )
}

/// A date with working hours that is not a holiday.
pub fn is_working_day(cal: &Calendar, date: NaiveDate) -> bool {
    !cal.is_holiday(date) && !cal.hours(date.weekday()).is_empty()
}

/// A local wall time on `date` in the calendar's zone as an instant. In a
/// DST gap, the first instant after it; when ambiguous, the earlier one.
fn at_local(cal: &Calendar, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let tz = cal.timezone();
    let mut naive = date.and_time(time);
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&naive).earliest() {
            return t.with_timezone(&Utc);
        }
        naive += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&date.and_time(time))
}

/// The end of the last working range of a working day.
pub fn close_of_business(cal: &Calendar, date: NaiveDate) -> DateTime<Utc> {
    match cal.hours(date.weekday()).last() {
        Some((_, Some(end))) => at_local(cal, date, *end),
        // A range ending at 24:00 ends at the next midnight.
        Some((_, None)) => at_local(cal, date.succ_opt().unwrap_or(date), NaiveTime::MIN),
        None => at_local(cal, date, NaiveTime::MIN),
    }
}

/// The `n`th working day after `date` (n >= 1).
pub fn nth_working_day_after(cal: &Calendar, date: NaiveDate, n: u32) -> Result<NaiveDate, Error> {
    let mut left = n;
    let mut d = date;
    for _ in 0..SEARCH_DAYS {
        d = d.succ_opt().ok_or_else(|| no_working_days(cal))?;
        if is_working_day(cal, d) {
            left = left.saturating_sub(1);
            if left == 0 {
                return Ok(d);
            }
        }
    }
    Err(no_working_days(cal))
}

/// When the spare must ship: confirmed before the cut-off on a working day,
/// by that day's close of business; otherwise by `next_day_by` on the next
/// working day.
pub fn ship_by(
    rules: &DeskRules,
    cal: &Calendar,
    confirmed_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, Error> {
    let local = confirmed_at.with_timezone(&cal.timezone());
    let date = local.date_naive();
    if is_working_day(cal, date) && local.time() < rules.cutoff {
        let close = close_of_business(cal, date);
        if close > confirmed_at {
            return Ok(close);
        }
    }
    let next = nth_working_day_after(cal, date, 1)?;
    Ok(at_local(cal, next, rules.next_day_by))
}

/// When the faulty part is due back: the close of business of the
/// `return_working_days`th working day after the delivery day.
pub fn return_due(
    rules: &DeskRules,
    cal: &Calendar,
    delivered_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, Error> {
    let date = delivered_at.with_timezone(&cal.timezone()).date_naive();
    let due = nth_working_day_after(cal, date, rules.return_working_days.max(1))?;
    Ok(close_of_business(cal, due))
}

/// The return reminder: the close of business `return_reminder_working_days`
/// working days before the due day; `None` when that is not after the
/// delivery day (or no reminder is wanted).
pub fn return_reminder(
    rules: &DeskRules,
    cal: &Calendar,
    delivered_at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Error> {
    let r = rules.return_reminder_working_days;
    if r == 0 || r >= rules.return_working_days {
        return Ok(None);
    }
    let date = delivered_at.with_timezone(&cal.timezone()).date_naive();
    let day = nth_working_day_after(cal, date, rules.return_working_days - r)?;
    Ok(Some(close_of_business(cal, day)))
}

/// When the swap repair of a received unit is due: `repair_working_hours`
/// of working time after receipt.
pub fn repair_due(
    rules: &DeskRules,
    cal: &Calendar,
    received_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, Error> {
    cal.add_working(
        received_at,
        Duration::hours(i64::from(rules.repair_working_hours)),
    )
    .map_err(|e| Error::invalid("rma.calendar", e))
}

/// Where a shipment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentState {
    Requested,
    Approved,
    Refused,
    Picked,
    Shipped,
    Delivered,
    /// The customer sent the faulty part back.
    Returned,
    /// The faulty part arrived at the spare desk.
    Received,
    Repaired,
    Scrapped,
    Closed,
    Cancelled,
}

text_enum!(ShipmentState, "state", {
    Requested => "requested", Approved => "approved", Refused => "refused",
    Picked => "picked", Shipped => "shipped", Delivered => "delivered",
    Returned => "returned", Received => "received", Repaired => "repaired",
    Scrapped => "scrapped", Closed => "closed", Cancelled => "cancelled",
});

impl ShipmentState {
    /// The states a shipment in this state may move to.
    pub fn next(self) -> &'static [ShipmentState] {
        use ShipmentState::*;
        match self {
            Requested => &[Approved, Refused, Cancelled],
            Approved => &[Picked, Cancelled],
            Picked => &[Shipped, Cancelled],
            Shipped => &[Delivered],
            Delivered => &[Returned],
            Returned => &[Received],
            Received => &[Repaired, Scrapped],
            Repaired | Scrapped => &[Closed],
            Refused | Closed | Cancelled => &[],
        }
    }

    /// Whether stock is reserved for the shipment in this state.
    pub fn holds_reservation(self) -> bool {
        matches!(self, ShipmentState::Approved | ShipmentState::Picked)
    }

    /// The one transition function: `Ok(to)` or an error naming from, to and why.
    pub fn transition(self, to: ShipmentState) -> Result<ShipmentState, Error> {
        use ShipmentState::*;
        if self.next().contains(&to) {
            return Ok(to);
        }
        let reason = if self == to {
            format!("the shipment is {self} already")
        } else if self.next().is_empty() {
            format!("{self} is final")
        } else if to == Cancelled {
            "the spare has left the warehouse; it can no longer be cancelled".to_string()
        } else if to == Shipped && self == Requested {
            "it must be approved and picked before it ships".to_string()
        } else {
            let next: Vec<&str> = self.next().iter().map(|s| s.as_str()).collect();
            format!("a {self} shipment can only become {}", next.join(" or "))
        };
        Err(Error::IllegalTransition {
            from: self.to_string(),
            to: to.to_string(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
