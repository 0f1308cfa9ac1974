//! Business calendars: when the working-time SLA clocks of a contract run.
//!
//! A [`Calendar`] owns a time zone, weekly working hours (up to
//! [`MAX_RANGES_PER_DAY`] ranges a day) and public holidays (whole local days,
//! listed or imported from iCalendar with [`Calendar::import_ics`]). It answers
//! four questions: how much working time lies between two instants
//! ([`Calendar::working_between`]), when a working duration counted from an
//! instant has elapsed ([`Calendar::add_working`]), whether an instant is
//! working time ([`Calendar::is_working`]) and when working time next begins
//! ([`Calendar::next_working_start`]). Presets: `24x7`, `7x8` (09:00-17:00
//! every day) and `5x8` (Monday to Friday 09:00-17:00). [`CalendarSpec`] is the
//! form a configuration file uses; its errors name the offending key.
//!
//! # Wall-clock hours and daylight saving time
//!
//! Working hours are local wall-clock times in the calendar's time zone. The
//! range `[start, end)` of a local date runs from the first instant at which
//! the local clock reads `start` or later to the first instant at which it
//! reads `end` or later (`24:00` is midnight of the next date). So:
//! - a local time skipped by a spring-forward change maps to the next valid
//!   instant (the change itself): `01:00-04:00` on 2026-03-29 in
//!   Europe/Berlin is 2 hours of working time;
//! - a local time repeated by a fall-back change maps to its earliest
//!   occurrence: `01:00-04:00` on 2026-10-25 in Europe/Berlin is 4 hours of
//!   working time (real elapsed time counts). A range that *ends* inside the
//!   repeated hour ends at the first occurrence of its end;
//! - a holiday removes every range of its local date.
//!
//! Working time is measured in real elapsed time with the precision of
//! [`chrono::Duration`]. Counting goes interval by interval, never minute by
//! minute: the cost grows with the days spanned and the intervals crossed,
//! and days without hours and holidays cost one set lookup each.
//! [`Calendar::add_working`] and [`Calendar::next_working_start`] search at
//! most [`HORIZON_YEARS`] years ahead. Working time exists only in the years
//! 1 to 9999; instants outside are never working.
//!
//! # Dependencies
//!
//! - `chrono-tz` compiles the IANA time zone database into the binary, so
//!   local working hours and their DST changes are right on every host,
//!   including minimal containers without `/usr/share/zoneinfo`.
//! - `proptest` (tests only) checks the interval arithmetic against a
//!   minute-by-minute reference model over random calendars, zones and
//!   instants around DST changes, and shrinks any counterexample.
//! - iCalendar is read by the small strict parser in `calendar/ics.rs`
//!   rather than the `icalendar` crate: holidays need a few properties of
//!   `VEVENT` only, errors must name the input line, and the current
//!   `icalendar` release (0.17.17) requires Rust 1.88 while the workspace
//!   supports 1.85, and brings `nom`, `nom-language` and `iso8601` along.

mod ics;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// At most this many working-hour ranges per weekday.
pub const MAX_RANGES_PER_DAY: usize = 8;

/// [`Calendar::add_working`] and [`Calendar::next_working_start`] look at
/// most this many years ahead.
pub const HORIZON_YEARS: u32 = 20;

/// The preset names [`Calendar::preset`] knows.
pub const PRESETS: [&str; 3] = ["24x7", "7x8", "5x8"];

const HORIZON_DAYS: u64 = HORIZON_YEARS as u64 * 366;
/// 0001-01-01T00:00:00Z: no working time before.
const FIRST_INSTANT: DateTime<Utc> = match DateTime::from_timestamp(-62_135_596_800, 0) {
    Some(t) => t,
    None => DateTime::<Utc>::MIN_UTC,
};
/// 10000-01-01T00:00:00Z: no working time from here on.
const END_INSTANT: DateTime<Utc> = match DateTime::from_timestamp(253_402_300_800, 0) {
    Some(t) => t,
    None => DateTime::<Utc>::MAX_UTC,
};
const DAY_SECS: u32 = 86_400;
const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One working-hour range of a weekday, local wall-clock time, half-open
/// `[start, end)`. An `end` of `None` means 24:00, the end of the day.
pub type WorkingRange = (NaiveTime, Option<NaiveTime>);

/// Why a calendar could not be built, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A field of the definition is wrong; `field` names it (`timezone`,
    /// `hours.tue[1]`, `holidays[0]`, `preset`, ...).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The iCalendar text is malformed or uses something not supported.
    #[error("iCalendar line {line}: {message}")]
    Ics { line: usize, message: String },
    /// The calendar has no working hours on any weekday.
    #[error("the calendar has no working hours")]
    NoWorkingTime,
    /// Not enough working time within [`HORIZON_YEARS`] years.
    #[error("not enough working time within {years} years")]
    BeyondHorizon { years: u32 },
    /// A working duration to add was negative.
    #[error("the working duration must not be negative")]
    NegativeDuration,
}

impl CalendarError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CalendarError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Working hours of one weekday range in seconds since local midnight:
/// `start < end <= 86_400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: u32,
    end: u32,
}

/// A business calendar: time zone, weekly working hours and holidays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarSpec", into = "CalendarSpec")]
pub struct Calendar {
    name: String,
    tz: Tz,
    /// Monday to Sunday; each sorted and non-overlapping.
    week: [Vec<Span>; 7],
    /// Local dates without working time.
    holidays: BTreeSet<NaiveDate>,
}

/// The configuration form of a [`Calendar`].
///
/// ```toml
/// name = "de-5x8"
/// timezone = "Europe/Berlin"
/// hours = { mon = ["08:00-12:00", "13:00-17:00"], fri = ["08:00-14:00"] }
/// holidays = ["2026-12-24"]
/// ```
///
/// Either `preset` (`24x7`, `7x8`, `5x8`) or `hours` gives the working hours;
/// `hours` keys are `mon` to `sun`, ranges are `HH:MM-HH:MM` (or with
/// seconds), and `24:00` ends a range at midnight. Days not listed have no
/// working hours. `holidays` are `YYYY-MM-DD` local dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    pub name: String,
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hours: BTreeMap<String, Vec<String>>,
}

impl Calendar {
    /// A preset calendar without holidays, named after the preset: `24x7`
    /// (all day, every day), `7x8` (09:00-17:00 every day) or `5x8` (Monday
    /// to Friday 09:00-17:00).
    pub fn preset(preset: &str, tz: Tz) -> Result<Calendar, CalendarError> {
        Ok(Calendar {
            name: preset.to_owned(),
            tz,
            week: preset_week(preset)?,
            holidays: BTreeSet::new(),
        })
    }

    /// A calendar from its parts. `timezone` is an IANA name such as
    /// `Europe/Berlin`; `week` holds the ranges of Monday to Sunday, in any
    /// order but not overlapping (touching is fine). A week without any
    /// hours is accepted; such a calendar never works.
    pub fn new(
        name: impl Into<String>,
        timezone: &str,
        week: [Vec<WorkingRange>; 7],
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Calendar, CalendarError> {
        let tz = parse_tz(timezone)?;
        let mut days: [Vec<Span>; 7] = Default::default();
        for (day, ranges) in week.iter().enumerate() {
            let mut spans = Vec::with_capacity(ranges.len());
            for (i, &(start, end)) in ranges.iter().enumerate() {
                let field = || format!("hours.{}[{i}]", DAY_KEYS[day]);
                let start = whole_seconds(start).ok_or_else(|| {
                    CalendarError::invalid(field(), "start has fractions of a second")
                })?;
                let end = match end {
                    None => DAY_SECS,
                    Some(end) => whole_seconds(end).ok_or_else(|| {
                        CalendarError::invalid(field(), "end has fractions of a second")
                    })?,
                };
                spans.push(Span { start, end });
            }
            days[day] = check_day(day, spans)?;
        }
        Ok(Calendar {
            name: name.into(),
            tz,
            week: days,
            holidays: holidays.into_iter().collect(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The working-hour ranges of a weekday, sorted.
    pub fn hours(&self, day: Weekday) -> Vec<WorkingRange> {
        self.week[day.num_days_from_monday() as usize]
            .iter()
            .map(|span| {
                (
                    time_of(span.start).unwrap_or(NaiveTime::MIN),
                    time_of(span.end),
                )
            })
            .collect()
    }

    pub fn holidays(&self) -> &BTreeSet<NaiveDate> {
        &self.holidays
    }

    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.contains(&date)
    }

    /// Adds a holiday; false if it was one already.
    pub fn add_holiday(&mut self, date: NaiveDate) -> bool {
        self.holidays.insert(date)
    }

    /// Whether some weekday has working hours.
    pub fn has_working_hours(&self) -> bool {
        self.week.iter().any(|day| !day.is_empty())
    }

    /// Adds the all-day events of an iCalendar (RFC 5545) text as holidays
    /// and returns how many dates were new.
    ///
    /// Each `VEVENT` adds its days: `DTSTART;VALUE=DATE` up to the exclusive
    /// `DTEND` (or `DURATION`, or one day); a timed event counts only if it
    /// starts and ends at local midnight. `RRULE:FREQ=YEARLY` (with
    /// `INTERVAL`, `COUNT`, `UNTIL`) repeats it on the same date every year
    /// up to 2100 (at least 30 years); `RDATE` and `EXDATE` add and remove
    /// occurrences; cancelled events are skipped. Other recurrence rules,
    /// and malformed text, are refused with the line number; on error the
    /// calendar is unchanged.
    pub fn import_ics(&mut self, text: &str) -> Result<usize, CalendarError> {
        let dates = ics::holiday_dates(text, self.tz)?;
        Ok(dates
            .into_iter()
            .filter(|&date| self.holidays.insert(date))
            .count())
    }

    /// The configuration form of this calendar (hours spelled out).
    pub fn to_spec(&self) -> CalendarSpec {
        let hours = self
            .week
            .iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(day, spans)| {
                let ranges = spans.iter().map(|span| show_span(*span)).collect();
                (DAY_KEYS[day].to_owned(), ranges)
            })
            .collect();
        CalendarSpec {
            name: self.name.clone(),
            timezone: self.tz.name().to_owned(),
            preset: None,
            hours,
            holidays: self.holidays.iter().map(|d| d.to_string()).collect(),
        }
    }

    /// Whether `t` lies in working time.
    pub fn is_working(&self, t: DateTime<Utc>) -> bool {
        if t < FIRST_INSTANT || t >= END_INSTANT {
            return false;
        }
        // Only the ranges of t's local date and of the next one (after a
        // fall-back change at midnight) can contain t.
        let date = self.local_date(t);
        let mut buf = Vec::new();
        [Some(date), date.succ_opt()]
            .into_iter()
            .flatten()
            .any(|date| {
                self.intervals_of(date, &mut buf);
                buf.iter().any(|&(s, e)| s <= t && t < e)
            })
    }

    /// The earliest working instant at or after `t`: `t` itself during
    /// working time, else the start of the next working period. `None` if
    /// there is none within [`HORIZON_YEARS`] years.
    pub fn next_working_start(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.has_working_hours() || t >= END_INSTANT {
            return None;
        }
        let t = t.max(FIRST_INSTANT);
        let mut buf = Vec::new();
        let mut date = self.local_date(t);
        for _ in 0..=HORIZON_DAYS {
            self.intervals_of(date, &mut buf);
            if let Some(&(s, _)) = buf.iter().find(|&&(_, e)| e > t) {
                return Some(s.max(t));
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The instant at which `dur` of working time has elapsed, counting from
    /// `start`. It is the end of working time, never the start of the next
    /// period: 5x8 Friday 16:00 plus 1 hour is Friday 17:00. Zero gives
    /// `start`.
    pub fn add_working(
        &self,
        start: DateTime<Utc>,
        dur: Duration,
    ) -> Result<DateTime<Utc>, CalendarError> {
        if dur < Duration::zero() {
            return Err(CalendarError::NegativeDuration);
        }
        if dur.is_zero() {
            return Ok(start);
        }
        if !self.has_working_hours() {
            return Err(CalendarError::NoWorkingTime);
        }
        let beyond = CalendarError::BeyondHorizon {
            years: HORIZON_YEARS,
        };
        if start >= END_INSTANT {
            return Err(beyond);
        }
        let start = start.max(FIRST_INSTANT);
        let mut remaining = dur;
        let mut buf = Vec::new();
        let mut date = self.local_date(start);
        for _ in 0..=HORIZON_DAYS {
            self.intervals_of(date, &mut buf);
            for &(s, e) in &buf {
                let from = s.max(start);
                if from >= e {
                    continue;
                }
                let available = e - from;
                if remaining <= available {
                    return Ok(from + remaining);
                }
                remaining -= available;
            }
            date = date.succ_opt().ok_or_else(|| beyond.clone())?;
        }
        Err(beyond)
    }

    /// The working time in `[a, b)`; zero if `b <= a`.
    pub fn working_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        let clamp = |t: DateTime<Utc>| t.clamp(FIRST_INSTANT, END_INSTANT);
        let (a, b) = (clamp(a), clamp(b));
        if b <= a || !self.has_working_hours() {
            return total;
        }
        // Ranges of earlier dates end by a; ranges of dates after b's local
        // date plus one start at or after b (overlaps are shorter than a day).
        let last = self
            .local_date(b)
            .checked_add_days(Days::new(2))
            .unwrap_or(NaiveDate::MAX);
        let mut buf = Vec::new();
        let mut date = self.local_date(a);
        loop {
            self.intervals_of(date, &mut buf);
            for &(s, e) in &buf {
                let (from, to) = (s.max(a), e.min(b));
                if from < to {
                    total += to - from;
                }
            }
            match date.succ_opt() {
                Some(next) if date < last => date = next,
                _ => break,
            }
        }
        total
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// The working intervals of one local date in UTC: in order, none empty,
    /// within the supported years.
    fn intervals_of(&self, date: NaiveDate, out: &mut Vec<(DateTime<Utc>, DateTime<Utc>)>) {
        out.clear();
        if self.holidays.contains(&date) {
            return;
        }
        for span in &self.week[date.weekday().num_days_from_monday() as usize] {
            let start = self.resolve(date, span.start);
            let end = self.resolve(date, span.end);
            if let (Some(s), Some(e)) = (start, end) {
                let (s, e) = (s.max(FIRST_INSTANT), e.min(END_INSTANT));
                if s < e {
                    out.push((s, e));
                }
            }
        }
    }

    /// The first instant at which the local clock reads `secs` after the
    /// midnight starting `date`, or later.
    fn resolve(&self, date: NaiveDate, secs: u32) -> Option<DateTime<Utc>> {
        let local = date
            .and_time(NaiveTime::MIN)
            .checked_add_signed(Duration::seconds(i64::from(secs)))?;
        first_instant_at_or_after(self.tz, local)
    }
}

impl TryFrom<CalendarSpec> for Calendar {
    type Error = CalendarError;

    fn try_from(spec: CalendarSpec) -> Result<Calendar, CalendarError> {
        if spec.name.trim().is_empty() {
            return Err(CalendarError::invalid("name", "must not be empty"));
        }
        let tz = parse_tz(&spec.timezone)?;
        let week = match &spec.preset {
            Some(preset) => {
                if !spec.hours.is_empty() {
                    return Err(CalendarError::invalid(
                        "hours",
                        format!("must be left out when preset is set (preset = {preset:?})"),
                    ));
                }
                preset_week(preset)?
            }
            None => {
                let mut week: [Vec<Span>; 7] = Default::default();
                for (key, ranges) in &spec.hours {
                    let day = DAY_KEYS.iter().position(|k| k == key).ok_or_else(|| {
                        CalendarError::invalid(
                            format!("hours.{key}"),
                            "unknown day (expected mon, tue, wed, thu, fri, sat or sun)",
                        )
                    })?;
                    let spans = ranges
                        .iter()
                        .enumerate()
                        .map(|(i, text)| {
                            parse_span(text).ok_or_else(|| {
                                CalendarError::invalid(
                                    format!("hours.{key}[{i}]"),
                                    format!(
                                        "{text:?} is not a range (expected \"HH:MM-HH:MM\", \
                                         e.g. \"09:00-17:00\")"
                                    ),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    week[day] = check_day(day, spans)?;
                }
                if week.iter().all(Vec::is_empty) {
                    return Err(CalendarError::invalid(
                        "hours",
                        "no working hours (set preset, or give hours for at least one day)",
                    ));
                }
                week
            }
        };
        let holidays = spec
            .holidays
            .iter()
            .enumerate()
            .map(|(i, text)| {
                parse_date(text).ok_or_else(|| {
                    CalendarError::invalid(
                        format!("holidays[{i}]"),
                        format!("{text:?} is not a date (expected YYYY-MM-DD)"),
                    )
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(Calendar {
            name: spec.name,
            tz,
            week,
            holidays,
        })
    }
}

impl From<Calendar> for CalendarSpec {
    fn from(calendar: Calendar) -> CalendarSpec {
        calendar.to_spec()
    }
}

fn parse_tz(name: &str) -> Result<Tz, CalendarError> {
    name.parse::<Tz>().map_err(|_| {
        CalendarError::invalid(
            "timezone",
            format!("unknown time zone {name:?} (expected an IANA name such as \"Europe/Berlin\")"),
        )
    })
}

fn preset_week(preset: &str) -> Result<[Vec<Span>; 7], CalendarError> {
    let all_day = Span {
        start: 0,
        end: DAY_SECS,
    };
    let office = Span {
        start: 9 * 3600,
        end: 17 * 3600,
    };
    let (span, days) = match preset {
        "24x7" => (all_day, 7),
        "7x8" => (office, 7),
        "5x8" => (office, 5),
        _ => {
            return Err(CalendarError::invalid(
                "preset",
                format!("unknown preset {preset:?} (expected \"24x7\", \"7x8\" or \"5x8\")"),
            ))
        }
    };
    let mut week: [Vec<Span>; 7] = Default::default();
    for day in week.iter_mut().take(days) {
        day.push(span);
    }
    Ok(week)
}

/// Checks one weekday's ranges (given in input order) and sorts them.
fn check_day(day: usize, spans: Vec<Span>) -> Result<Vec<Span>, CalendarError> {
    let key = DAY_KEYS[day];
    if spans.len() > MAX_RANGES_PER_DAY {
        return Err(CalendarError::invalid(
            format!("hours.{key}"),
            format!(
                "{} ranges; at most {MAX_RANGES_PER_DAY} are allowed",
                spans.len()
            ),
        ));
    }
    for (i, span) in spans.iter().enumerate() {
        let problem = if span.start == span.end {
            Some("is empty")
        } else if span.end == 0 {
            Some("ends at 00:00; write 24:00 for the end of the day")
        } else if span.start > span.end {
            Some("ends before it starts")
        } else if span.end > DAY_SECS || span.start >= DAY_SECS {
            Some("must lie within 00:00-24:00")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(CalendarError::invalid(
                format!("hours.{key}[{i}]"),
                format!("{:?} {problem}", show_span(*span)),
            ));
        }
    }
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i]);
    for pair in order.windows(2) {
        let (before, after) = (spans[pair[0]], spans[pair[1]]);
        if after.start < before.end {
            return Err(CalendarError::invalid(
                format!("hours.{key}[{}]", pair[1]),
                format!(
                    "{:?} overlaps hours.{key}[{}] {:?}",
                    show_span(after),
                    pair[0],
                    show_span(before)
                ),
            ));
        }
    }
    Ok(order.into_iter().map(|i| spans[i]).collect())
}

fn whole_seconds(t: NaiveTime) -> Option<u32> {
    (t.nanosecond() == 0).then(|| t.num_seconds_from_midnight())
}

fn time_of(secs: u32) -> Option<NaiveTime> {
    NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)
}

fn show_time(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

fn show_span(span: Span) -> String {
    format!("{}-{}", show_time(span.start), show_time(span.end))
}

/// `HH:MM-HH:MM` (or `HH:MM:SS`); not checked for order.
fn parse_span(text: &str) -> Option<Span> {
    let (start, end) = text.split_once('-')?;
    Some(Span {
        start: parse_clock(start)?,
        end: parse_clock(end)?,
    })
}

/// `HH:MM` or `HH:MM:SS`, 00:00 to 24:00.
fn parse_clock(text: &str) -> Option<u32> {
    let mut parts = text.split(':');
    let mut field = |max: u32| -> Option<u32> {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok().filter(|&v| v <= max)
    };
    let (h, m) = (field(24)?, field(59)?);
    let s = match text.len() {
        5 => 0,
        8 => field(59)?,
        _ => return None,
    };
    let secs = h * 3600 + m * 60 + s;
    (secs <= DAY_SECS).then_some(secs)
}

/// Strictly `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The first instant at which the local clock of `tz` reads `local` or
/// later: the instant itself, the earliest of an ambiguous pair, or for a
/// skipped local time the end of the gap.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, local),
    }
}

/// For a local time inside a DST gap: the instant the gap ends. Finds valid
/// local times an hour or more on either side and bisects between them.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let probe = |hours: i64| {
        let t = local.checked_add_signed(Duration::hours(hours))?;
        match tz.from_local_datetime(&t) {
            LocalResult::Single(t) => Some(t.timestamp()),
            LocalResult::Ambiguous(a, b) if hours < 0 => Some(a.max(b).timestamp()),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).timestamp()),
            LocalResult::None => None,
        }
    };
    // Invariant: the local clock reads before `local` at lo, `local` or later at hi.
    let mut lo = (1..=48).find_map(|h| probe(-h))?;
    let mut hi = (1..=48).find_map(probe)?;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let reads = DateTime::from_timestamp(mid, 0)?
            .with_timezone(&tz)
            .naive_local();
        if reads >= local {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}
