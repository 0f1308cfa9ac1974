//! Maintenance windows: a window opens at every instant a five-field cron
//! pattern names, in a time zone, and stays open for a duration. Jobs are
//! handed to agents only while it is open; a job already started runs on.
//!
//! The pattern is evaluated by `croner` in local time of the zone
//! (`chrono-tz`), so "22:00 every weekday in Europe/Berlin" stays 22:00
//! across daylight-saving changes.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// Longest window accepted.
pub const MAX_WINDOW: Duration = Duration::days(7);

/// A parsed maintenance window.
#[derive(Debug, Clone)]
pub struct Window {
    cron: Cron,
    pub pattern: String,
    pub duration: Duration,
    pub tz: Tz,
}

impl Window {
    /// Parses a window; the error names the field (`cron`, `duration`,
    /// `time_zone`) and what is wrong.
    pub fn parse(
        pattern: &str,
        duration: std::time::Duration,
        tz: &str,
    ) -> Result<Window, (&'static str, String)> {
        let trimmed = pattern.trim();
        if trimmed.split_whitespace().count() != 5 {
            return Err((
                "cron",
                format!(
                    "{pattern:?} is not a five-field cron pattern (minute hour day-of-month month day-of-week)"
                ),
            ));
        }
        let cron = Cron::from_str(trimmed)
            .map_err(|e| ("cron", format!("{pattern:?} is not a cron pattern: {e}")))?;
        let tz: Tz = tz.parse().map_err(|_| {
            (
                "time_zone",
                format!("{tz:?} is not a time zone of the tz database (e.g. Europe/Berlin)"),
            )
        })?;
        let duration =
            Duration::from_std(duration).map_err(|_| ("duration", "is too long".to_string()))?;
        if duration < Duration::minutes(1) {
            return Err(("duration", "must be at least 1m".into()));
        }
        if duration > MAX_WINDOW {
            return Err(("duration", "must be at most 7d".into()));
        }
        let w = Window {
            cron,
            pattern: trimmed.to_string(),
            duration,
            tz,
        };
        // A pattern that never matches (30 February) is no window.
        if w.next_open(Utc::now()).is_none() {
            return Err(("cron", format!("{pattern:?} never matches")));
        }
        Ok(w)
    }

    /// When the window open at `now` closes; `None` when it is shut.
    pub fn open_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.tz);
        let opened = self.cron.find_previous_occurrence(&local, true).ok()?;
        let closes = opened.with_timezone(&Utc) + self.duration;
        (closes > now).then_some(closes)
    }

    /// The next instant (after `now`) the window opens.
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next instant the window opens or closes.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.open_until(now) {
            Some(closes) => Some(closes),
            None => self.next_open(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid")
    }

    fn hours(h: u64) -> std::time::Duration {
        std::time::Duration::from_secs(h * 3600)
    }

    #[test]
    fn weekday_nights_in_berlin() {
        // 22:00 Berlin, Monday to Friday, for 4 hours. 2026-11-25 is a
        // Wednesday; Berlin is UTC+1 in November.
        let w = Window::parse("0 22 * * 1-5", hours(4), "Europe/Berlin").expect("window");
        assert_eq!(w.open_until(at(2026, 11, 25, 12, 0)), None);
        assert_eq!(
            w.next_open(at(2026, 11, 25, 12, 0)),
            Some(at(2026, 11, 25, 21, 0))
        );
        assert_eq!(
            w.open_until(at(2026, 11, 25, 21, 0)),
            Some(at(2026, 11, 26, 1, 0))
        );
        assert_eq!(
            w.open_until(at(2026, 11, 26, 0, 59)),
            Some(at(2026, 11, 26, 1, 0))
        );
        assert_eq!(w.open_until(at(2026, 11, 26, 1, 0)), None);
        // Friday night's window runs into Saturday; Saturday has none.
        assert_eq!(
            w.open_until(at(2026, 11, 28, 0, 30)),
            Some(at(2026, 11, 28, 1, 0))
        );
        assert_eq!(
            w.next_open(at(2026, 11, 28, 2, 0)),
            Some(at(2026, 11, 30, 21, 0))
        );
        // Summer time: 22:00 Berlin is 20:00 UTC.
        assert_eq!(
            w.next_open(at(2026, 7, 1, 12, 0)),
            Some(at(2026, 7, 1, 20, 0))
        );
        assert_eq!(
            w.next_change(at(2026, 7, 1, 20, 30)),
            Some(at(2026, 7, 2, 0, 0))
        );
    }

    #[test]
    fn always_matching_pattern_is_open() {
        let w = Window::parse("* * * * *", hours(1), "UTC").expect("window");
        let now = at(2026, 11, 25, 10, 17);
        assert!(w.open_until(now).is_some_and(|c| c > now));
    }

    #[test]
    fn bad_windows_name_the_field() {
        let e = Window::parse("0 22 * *", hours(4), "UTC").expect_err("four fields");
        assert_eq!(e.0, "cron");
        let e = Window::parse("0 25 * * *", hours(4), "UTC").expect_err("hour 25");
        assert_eq!(e.0, "cron");
        let e = Window::parse("0 22 * * *", hours(4), "Mars/Olympus").expect_err("zone");
        assert_eq!(e.0, "time_zone");
        let e = Window::parse("0 22 * * *", std::time::Duration::from_secs(5), "UTC")
            .expect_err("short");
        assert_eq!(e.0, "duration");
        let e = Window::parse("0 22 * * *", hours(24 * 8), "UTC").expect_err("long");
        assert_eq!(e.0, "duration");
        let e = Window::parse("0 0 30 2 *", hours(1), "UTC").expect_err("never");
        assert_eq!(e.0, "cron");
    }
}
