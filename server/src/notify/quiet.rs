//! Per-recipient quiet hours: a daily window ("22:00-07:00", may cross
//! midnight) in the recipient's time zone during which only P1 notifications
//! are sent; others wait for the window's end.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// A daily window `start-end`; `start == end` is refused (ambiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl FromStr for QuietHours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a window like \"22:00-07:00\""))?;
        let t = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| format!("{:?} is not a time like \"22:00\"", x.trim()))
        };
        let (start, end) = (t(a)?, t(b)?);
        if start == end {
            return Err(format!("{s:?} starts and ends at the same time"));
        }
        Ok(QuietHours { start, end })
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl QuietHours {
    fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// The first instant at or after `at` outside the window, in `tz`.
    pub fn next_allowed(&self, tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
        let local = at.with_timezone(&tz);
        if !self.contains(local.time()) {
            return at;
        }
        // The window ends today or, if it crosses midnight and we are before
        // midnight, tomorrow.
        let mut day = local.date_naive();
        if self.start > self.end && local.time() >= self.start {
            day = day.succ_opt().unwrap_or(day);
        }
        let end = day.and_time(self.end);
        // A DST gap at the end time: take the first valid instant after it.
        for step in 0..=120 {
            if let Some(t) = tz
                .from_local_datetime(&(end + Duration::minutes(step)))
                .earliest()
            {
                return t.with_timezone(&Utc).max(at);
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_refuses() {
        let q: QuietHours = "22:00-07:00".parse().unwrap();
        assert_eq!(q.to_string(), "22:00-07:00");
        assert!("22:00".parse::<QuietHours>().is_err());
        assert!("25:00-07:00".parse::<QuietHours>().is_err());
        assert!("07:00-07:00".parse::<QuietHours>().is_err());
    }

    #[test]
    fn overnight_window_defers_to_morning() {
        let q: QuietHours = "22:00-07:00".parse().unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 23:30 Berlin (CET, UTC+1) -> 07:00 next day = 06:00 UTC.
        assert_eq!(
            q.next_allowed(tz, utc("2026-01-14T22:30:00Z")),
            utc("2026-01-15T06:00:00Z")
        );
        // 03:00 Berlin -> 07:00 the same day.
        assert_eq!(
            q.next_allowed(tz, utc("2026-01-15T02:00:00Z")),
            utc("2026-01-15T06:00:00Z")
        );
        // 12:00 is outside: at once.
        let noon = utc("2026-01-15T11:00:00Z");
        assert_eq!(q.next_allowed(tz, noon), noon);
    }

    #[test]
    fn daytime_window() {
        let q: QuietHours = "12:00-13:00".parse().unwrap();
        let tz: Tz = "UTC".parse().unwrap();
        assert_eq!(
            q.next_allowed(tz, utc("2026-01-15T12:10:00Z")),
            utc("2026-01-15T13:00:00Z")
        );
        let at = utc("2026-01-15T13:00:00Z");
        assert_eq!(q.next_allowed(tz, at), at);
    }

    #[test]
    fn end_inside_a_dst_gap() {
        // Berlin skips 02:00-03:00 on 2026-03-29.
        let q: QuietHours = "01:00-02:30".parse().unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 01:30 CET = 00:30 UTC; 02:30 does not exist, so 03:00 CEST = 01:00 UTC.
        assert_eq!(
            q.next_allowed(tz, utc("2026-03-29T00:30:00Z")),
            utc("2026-03-29T01:00:00Z")
        );
    }
}
