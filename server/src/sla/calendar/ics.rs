//! The small, strict iCalendar (RFC 5545) reader behind
//! [`Calendar::import_ics`](super::Calendar::import_ics): it unfolds lines,
//! checks the component structure and turns each `VEVENT` into whole local
//! dates. Only what holiday calendars use is supported; anything else that
//! would change which days are off is refused with the line it is on.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::CalendarError;

/// Yearly recurrences are expanded up to this year, or for 30 years from
/// their start if that is later.
pub(super) const RECURRENCE_END_YEAR: i32 = 2100;
const RECURRENCE_MIN_YEARS: i32 = 30;
/// Longest single event, in days.
const MAX_EVENT_DAYS: i64 = 366;
/// Most dates one import may produce.
const MAX_DATES: usize = 100_000;

fn err(line: usize, message: impl Into<String>) -> CalendarError {
    CalendarError::Ics {
        line,
        message: message.into(),
    }
}

/// The holiday dates of an iCalendar text; `tz` is the calendar's zone,
/// used for UTC times.
pub(super) fn holiday_dates(text: &str, tz: Tz) -> Result<BTreeSet<NaiveDate>, CalendarError> {
    let mut dates = BTreeSet::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut event: Option<Event> = None;
    let mut calendars = 0;
    for (no, text) in unfold(text)? {
        let line = parse_line(no, &text)?;
        match line.name.as_str() {
            "BEGIN" => {
                let component = line.value.to_ascii_uppercase();
                match stack.last() {
                    None if component != "VCALENDAR" => {
                        return Err(err(
                            no,
                            format!("expected BEGIN:VCALENDAR, found BEGIN:{component}"),
                        ))
                    }
                    Some((parent, _)) if component == "VCALENDAR" => {
                        return Err(err(no, format!("BEGIN:VCALENDAR inside BEGIN:{parent}")))
                    }
                    Some((parent, _)) if component == "VEVENT" && parent != "VCALENDAR" => {
                        return Err(err(no, format!("BEGIN:VEVENT inside BEGIN:{parent}")))
                    }
                    _ => {}
                }
                if component == "VEVENT" {
                    event = Some(Event::new(no));
                }
                stack.push((component, no));
            }
            "END" => {
                let component = line.value.to_ascii_uppercase();
                match stack.pop() {
                    Some((open, _)) if open == component => {}
                    Some((open, at)) => {
                        return Err(err(
                            no,
                            format!("END:{component} does not close BEGIN:{open} of line {at}"),
                        ))
                    }
                    None => return Err(err(no, format!("END:{component} without BEGIN"))),
                }
                match component.as_str() {
                    "VEVENT" => {
                        if let Some(event) = event.take() {
                            event.add_dates(&mut dates)?;
                        }
                    }
                    "VCALENDAR" => calendars += 1,
                    _ => {}
                }
            }
            _ => match stack.last() {
                None => {
                    return Err(err(
                        no,
                        format!("{} outside BEGIN:VCALENDAR ... END:VCALENDAR", line.name),
                    ))
                }
                Some((component, _)) if component == "VEVENT" => {
                    if let Some(event) = event.as_mut() {
                        event.read(line, tz)?;
                    }
                }
                // Properties of the calendar, time zones, alarms: not needed.
                Some(_) => {}
            },
        }
    }
    if let Some((open, at)) = stack.last() {
        return Err(err(*at, format!("BEGIN:{open} is never closed")));
    }
    if calendars == 0 {
        return Err(err(1, "no BEGIN:VCALENDAR ... END:VCALENDAR"));
    }
    Ok(dates)
}

/// Logical lines with the number of their first physical line: CRLF or LF
/// endings, folded lines (continued by a leading space or tab) joined, blank
/// lines and a leading byte-order mark skipped.
fn unfold(text: &str) -> Result<Vec<(usize, String)>, CalendarError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut can_continue = false;
    for (i, raw) in text.split('\n').enumerate() {
        let no = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.chars().any(|c| c.is_control() && c != '\t') {
            return Err(err(no, "control character in line"));
        }
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            match lines.last_mut() {
                Some((_, line)) if can_continue => line.push_str(rest),
                _ => {
                    return Err(err(
                        no,
                        "continuation line (starting with a space) without a line to continue",
                    ))
                }
            }
        } else if raw.is_empty() {
            can_continue = false;
        } else {
            lines.push((no, raw.to_owned()));
            can_continue = true;
        }
    }
    Ok(lines)
}

/// One content line: `NAME *(;PARAM=VALUE) :VALUE`.
struct Line {
    no: usize,
    /// Upper case.
    name: String,
    /// Names upper case; quotes removed.
    params: Vec<(String, String)>,
    value: String,
}

impl Line {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn parse_line(no: usize, text: &str) -> Result<Line, CalendarError> {
    let shape = || err(no, format!("expected NAME:VALUE, found {text:?}"));
    let name_end = text.find([';', ':']).ok_or_else(shape)?;
    let name = &text[..name_end];
    if !is_name(name) {
        return Err(shape());
    }
    let mut rest = &text[name_end..];
    let mut params = Vec::new();
    while let Some(after) = rest.strip_prefix(';') {
        let eq = after
            .find('=')
            .ok_or_else(|| err(no, format!("parameter without '=' in {text:?}")))?;
        let param = &after[..eq];
        if !is_name(param) {
            return Err(err(no, format!("bad parameter name {param:?}")));
        }
        let mut value = String::new();
        let mut v = &after[eq + 1..];
        loop {
            if let Some(quoted) = v.strip_prefix('"') {
                let close = quoted
                    .find('"')
                    .ok_or_else(|| err(no, format!("unterminated quote in parameter {param}")))?;
                value.push_str(&quoted[..close]);
                v = &quoted[close + 1..];
            } else {
                let end = v.find([',', ';', ':']).unwrap_or(v.len());
                value.push_str(&v[..end]);
                v = &v[end..];
            }
            match v.strip_prefix(',') {
                Some(more) => {
                    value.push(',');
                    v = more;
                }
                None => break,
            }
        }
        params.push((param.to_ascii_uppercase(), value));
        rest = v;
    }
    let value = rest
        .strip_prefix(':')
        .ok_or_else(|| err(no, format!("expected ':' before the value of {name}")))?;
    Ok(Line {
        no,
        name: name.to_ascii_uppercase(),
        params,
        value: value.to_owned(),
    })
}

/// A date or a date-time value. A date-time is the wall-clock time in the
/// event's own zone (`TZID`, or floating), or for UTC (`Z`) in the
/// calendar's zone.
#[derive(Debug, Clone, Copy)]
enum When {
    Date(NaiveDate),
    Time(NaiveDateTime),
}

impl When {
    fn date(self) -> NaiveDate {
        match self {
            When::Date(d) => d,
            When::Time(t) => t.date(),
        }
    }
}

fn parse_when(line: &Line, value: &str, tz: Tz) -> Result<When, CalendarError> {
    let kind = line.param("VALUE").map(str::to_ascii_uppercase);
    let bad = || {
        err(
            line.no,
            format!(
                "{} value {value:?} is neither a date (YYYYMMDD) nor a date-time \
                 (YYYYMMDDTHHMMSS, optionally ending in Z)",
                line.name
            ),
        )
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if value.len() == 8 && digits(value) {
        if kind.as_deref() == Some("DATE-TIME") {
            return Err(err(
                line.no,
                format!("{} is VALUE=DATE-TIME but {value:?} is a date", line.name),
            ));
        }
        return NaiveDate::parse_from_str(value, "%Y%m%d")
            .map(When::Date)
            .map_err(|_| bad());
    }
    let (local, utc) = match value.strip_suffix('Z') {
        Some(local) => (local, true),
        None => (value, false),
    };
    let shape = local.len() == 15
        && local.as_bytes()[8] == b'T'
        && digits(&local[..8])
        && digits(&local[9..]);
    if !shape {
        return Err(bad());
    }
    if kind.as_deref() == Some("DATE") {
        return Err(err(
            line.no,
            format!("{} is VALUE=DATE but {value:?} has a time", line.name),
        ));
    }
    let naive = NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S").map_err(|_| bad())?;
    Ok(When::Time(if utc {
        Utc.from_utc_datetime(&naive)
            .with_timezone(&tz)
            .naive_local()
    } else {
        naive
    }))
}

/// The date a DTSTART or DTEND names, which must be a date or a midnight.
fn whole_day(no: usize, property: &str, when: When) -> Result<NaiveDate, CalendarError> {
    match when {
        When::Date(d) => Ok(d),
        When::Time(t) if t.time() == NaiveTime::MIN => Ok(t.date()),
        When::Time(t) => Err(err(
            no,
            format!(
                "{property} {t} is not at midnight; only whole days can be holidays \
                 (use DTSTART;VALUE=DATE)"
            ),
        )),
    }
}

/// `FREQ=YEARLY` with its supported parts.
struct Yearly {
    no: usize,
    interval: i32,
    count: Option<u32>,
    until: Option<NaiveDate>,
    by_month: Option<u32>,
    by_month_day: Option<u32>,
}

fn parse_rrule(line: &Line) -> Result<Yearly, CalendarError> {
    let no = line.no;
    let mut freq = None;
    let mut rule = Yearly {
        no,
        interval: 1,
        count: None,
        until: None,
        by_month: None,
        by_month_day: None,
    };
    let number = |key: &str, v: &str, max: u32| -> Result<u32, CalendarError> {
        v.parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                err(
                    no,
                    format!("RRULE {key}={v} must be a number from 1 to {max}"),
                )
            })
    };
    for part in line.value.split(';').filter(|part| !part.is_empty()) {
        let (key, v) = part
            .split_once('=')
            .ok_or_else(|| err(no, format!("RRULE part {part:?} is not KEY=VALUE")))?;
        match key.to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v.to_ascii_uppercase()),
            // At most 1000, so it fits i32.
            "INTERVAL" => rule.interval = number(key, v, 1000)? as i32,
            "COUNT" => rule.count = Some(number(key, v, 100_000)?),
            "UNTIL" => {
                let date = v
                    .get(..8)
                    .filter(|_| v.len() == 8 || v.len() == 15 || v.len() == 16)
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
                    .ok_or_else(|| err(no, format!("RRULE UNTIL={v} is not a date")))?;
                rule.until = Some(date);
            }
            "BYMONTH" => rule.by_month = Some(number(key, v, 12)?),
            "BYMONTHDAY" => rule.by_month_day = Some(number(key, v, 31)?),
            "WKST" => {}
            other => {
                return Err(err(
                    no,
                    format!(
                        "RRULE part {other} is not supported (only FREQ=YEARLY with INTERVAL, \
                         COUNT, UNTIL, and BYMONTH/BYMONTHDAY naming the DTSTART date)"
                    ),
                ))
            }
        }
    }
    match freq.as_deref() {
        Some("YEARLY") => {}
        Some(other) => {
            return Err(err(
                no,
                format!(
                    "RRULE FREQ={other} is not supported; only FREQ=YEARLY \
                     (a holiday on the same date every year)"
                ),
            ))
        }
        None => return Err(err(no, "RRULE without FREQ")),
    }
    if rule.count.is_some() && rule.until.is_some() {
        return Err(err(no, "RRULE has both COUNT and UNTIL"));
    }
    Ok(rule)
}

impl Yearly {
    /// Occurrence dates, starting with `start` itself.
    fn expand(&self, start: NaiveDate) -> Result<Vec<NaiveDate>, CalendarError> {
        if self.by_month.is_some_and(|m| m != start.month())
            || self.by_month_day.is_some_and(|d| d != start.day())
        {
            return Err(err(
                self.no,
                format!(
                    "RRULE BYMONTH/BYMONTHDAY must name the DTSTART date ({start}); \
                     other yearly rules are not supported"
                ),
            ));
        }
        let last_year = RECURRENCE_END_YEAR.max(start.year() + RECURRENCE_MIN_YEARS);
        let mut dates = Vec::new();
        let mut year = start.year();
        while year <= last_year {
            // 29 February exists in leap years only; other years are skipped.
            if let Some(date) = NaiveDate::from_ymd_opt(year, start.month(), start.day()) {
                if self.until.is_some_and(|until| date > until)
                    || self
                        .count
                        .is_some_and(|count| dates.len() >= count as usize)
                {
                    break;
                }
                dates.push(date);
            }
            year += self.interval;
        }
        Ok(dates)
    }
}

/// The properties of one VEVENT that decide its days.
struct Event {
    begin: usize,
    start: Option<(usize, When)>,
    end: Option<(usize, When)>,
    days: Option<(usize, i64)>,
    rrule: Option<Yearly>,
    rdates: Vec<(usize, When)>,
    exdates: Vec<NaiveDate>,
    cancelled: bool,
}

impl Event {
    fn new(begin: usize) -> Event {
        Event {
            begin,
            start: None,
            end: None,
            days: None,
            rrule: None,
            rdates: Vec::new(),
            exdates: Vec::new(),
            cancelled: false,
        }
    }

    fn read(&mut self, line: Line, tz: Tz) -> Result<(), CalendarError> {
        let no = line.no;
        let once = |seen: bool| {
            if seen {
                Err(err(no, format!("second {} in one VEVENT", line.name)))
            } else {
                Ok(())
            }
        };
        match line.name.as_str() {
            "DTSTART" => {
                once(self.start.is_some())?;
                self.start = Some((no, parse_when(&line, &line.value, tz)?));
            }
            "DTEND" => {
                once(self.end.is_some())?;
                self.end = Some((no, parse_when(&line, &line.value, tz)?));
            }
            "DURATION" => {
                once(self.days.is_some())?;
                self.days = Some((no, parse_days(no, &line.value)?));
            }
            "RRULE" => {
                once(self.rrule.is_some())?;
                self.rrule = Some(parse_rrule(&line)?);
            }
            "RDATE" => {
                if line
                    .param("VALUE")
                    .is_some_and(|v| v.eq_ignore_ascii_case("PERIOD"))
                {
                    return Err(err(no, "RDATE;VALUE=PERIOD is not supported"));
                }
                for value in line.value.split(',') {
                    self.rdates.push((no, parse_when(&line, value, tz)?));
                }
            }
            "EXDATE" => {
                for value in line.value.split(',') {
                    self.exdates.push(parse_when(&line, value, tz)?.date());
                }
            }
            "STATUS" => self.cancelled = line.value.eq_ignore_ascii_case("CANCELLED"),
            "RECURRENCE-ID" => {
                return Err(err(
                    no,
                    "RECURRENCE-ID (a changed occurrence of a recurring event) is not supported",
                ))
            }
            _ => {}
        }
        Ok(())
    }

    fn add_dates(self, dates: &mut BTreeSet<NaiveDate>) -> Result<(), CalendarError> {
        if self.cancelled {
            return Ok(());
        }
        let (start_no, start) = self
            .start
            .ok_or_else(|| err(self.begin, "VEVENT without DTSTART"))?;
        let first = whole_day(start_no, "DTSTART", start)?;
        let days = match (self.end, self.days) {
            (Some(_), Some((no, _))) => {
                return Err(err(no, "VEVENT has both DTEND and DURATION"));
            }
            (Some((no, end)), None) => {
                if matches!(start, When::Date(_)) != matches!(end, When::Date(_)) {
                    return Err(err(
                        no,
                        "DTEND must be a date if DTSTART is one, and a date-time if DTSTART is one",
                    ));
                }
                let last = whole_day(no, "DTEND", end)?;
                let days = (last - first).num_days();
                if days <= 0 {
                    return Err(err(
                        no,
                        format!("DTEND {last} is not after DTSTART {first} (DTEND is exclusive)"),
                    ));
                }
                days
            }
            (None, Some((_, days))) => days,
            (None, None) => match start {
                When::Date(_) => 1,
                When::Time(_) => {
                    return Err(err(
                        start_no,
                        "a timed VEVENT without DTEND or DURATION lasts no time; \
                         only whole days can be holidays",
                    ))
                }
            },
        };
        if days > MAX_EVENT_DAYS {
            return Err(err(
                start_no,
                format!("event lasts {days} days; at most {MAX_EVENT_DAYS} are allowed"),
            ));
        }
        let mut starts: BTreeSet<NaiveDate> = match &self.rrule {
            Some(rule) => rule.expand(first)?.into_iter().collect(),
            None => BTreeSet::from([first]),
        };
        for (no, when) in self.rdates {
            starts.insert(whole_day(no, "RDATE", when)?);
        }
        for date in &self.exdates {
            starts.remove(date);
        }
        for start in starts {
            for k in 0..days.unsigned_abs() {
                if let Some(date) = start.checked_add_days(Days::new(k)) {
                    dates.insert(date);
                }
            }
            if dates.len() > MAX_DATES {
                return Err(err(
                    self.begin,
                    format!("more than {MAX_DATES} holiday dates"),
                ));
            }
        }
        Ok(())
    }
}

/// A DURATION of whole days: `P<n>D`, `P<n>W` or `PT<24n>H`.
fn parse_days(no: usize, value: &str) -> Result<i64, CalendarError> {
    let text = value.strip_prefix('+').unwrap_or(value);
    let number = |s: &str| s.parse::<i64>().ok().filter(|n| (1..=100_000).contains(n));
    let days = if let Some(n) = text.strip_prefix("PT").and_then(|t| t.strip_suffix('H')) {
        number(n).filter(|h| h % 24 == 0).map(|h| h / 24)
    } else if let Some(n) = text.strip_prefix('P').and_then(|t| t.strip_suffix('D')) {
        number(n)
    } else if let Some(n) = text.strip_prefix('P').and_then(|t| t.strip_suffix('W')) {
        number(n).map(|w| w * 7)
    } else {
        None
    };
    days.ok_or_else(|| {
        err(
            no,
            format!("DURATION {value:?} is not a positive number of whole days (e.g. P1D, P2W)"),
        )
    })
}
