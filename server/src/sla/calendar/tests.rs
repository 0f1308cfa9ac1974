//! Calendar tests: examples (presets, holidays, DST in Berlin, New York and
//! Lord Howe, configuration errors, iCalendar import) and properties checked
//! against a minute-by-minute reference model.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::{America, Asia, Australia, Europe, Tz};
use proptest::prelude::*;

use super::{Calendar, CalendarError, CalendarSpec, WorkingRange, HORIZON_YEARS};

fn at(tz: Tz, local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        other => panic!("{local} is not a unique local time in {tz}: {other:?}"),
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

fn minutes(m: i64) -> Duration {
    Duration::minutes(m)
}

/// A calendar with the same ranges on every day of `days` (0 = Monday).
fn calendar(tz: &str, days: &[usize], ranges: &[WorkingRange]) -> Calendar {
    let mut week: [Vec<WorkingRange>; 7] = Default::default();
    for &day in days {
        week[day] = ranges.to_vec();
    }
    Calendar::new("test", tz, week, []).unwrap()
}

fn berlin(preset: &str) -> Calendar {
    Calendar::preset(preset, Europe::Berlin).unwrap()
}

fn invalid(result: Result<Calendar, CalendarError>) -> (String, String) {
    match result {
        Err(CalendarError::Invalid { field, message }) => (field, message),
        other => panic!("expected CalendarError::Invalid, got {other:?}"),
    }
}

fn ics_error(result: Result<usize, CalendarError>) -> (usize, String) {
    match result {
        Err(CalendarError::Ics { line, message }) => (line, message),
        other => panic!("expected CalendarError::Ics, got {other:?}"),
    }
}

// ----- presets and examples -----

#[test]
fn five_by_eight_friday_afternoon_plus_one_hour_is_monday_morning() {
    let cal = berlin("5x8");
    let tz = Europe::Berlin;
    assert_eq!(
        cal.add_working(at(tz, "2026-05-15 16:30"), hours(1)),
        Ok(at(tz, "2026-05-18 09:30"))
    );
    // Exactly used up at closing time: the deadline is Friday 17:00.
    assert_eq!(
        cal.add_working(at(tz, "2026-05-15 16:00"), hours(1)),
        Ok(at(tz, "2026-05-15 17:00"))
    );
    assert_eq!(
        cal.working_between(at(tz, "2026-05-15 16:30"), at(tz, "2026-05-18 09:30")),
        hours(1)
    );
    // A whole 5x8 week is 40 hours.
    assert_eq!(
        cal.working_between(at(tz, "2026-05-11 00:00"), at(tz, "2026-05-18 00:00")),
        hours(40)
    );
}

#[test]
fn a_holiday_monday_pushes_to_tuesday() {
    let tz = Europe::Berlin;
    let mut cal = berlin("5x8");
    assert!(cal.add_holiday(date("2026-05-18")));
    assert!(!cal.add_holiday(date("2026-05-18")));
    assert_eq!(
        cal.add_working(at(tz, "2026-05-15 16:30"), hours(1)),
        Ok(at(tz, "2026-05-19 09:30"))
    );
    assert!(!cal.is_working(at(tz, "2026-05-18 10:00")));
    assert_eq!(
        cal.working_between(at(tz, "2026-05-18 00:00"), at(tz, "2026-05-19 00:00")),
        Duration::zero()
    );
}

#[test]
fn seven_by_eight_counts_weekends() {
    let tz = Europe::Berlin;
    let cal = berlin("7x8");
    assert_eq!(
        cal.add_working(at(tz, "2026-05-15 16:30"), hours(1)),
        Ok(at(tz, "2026-05-16 09:30"))
    );
    assert_eq!(
        cal.working_between(at(tz, "2026-05-15 00:00"), at(tz, "2026-05-18 00:00")),
        hours(24)
    );
}

#[test]
fn twenty_four_by_seven_is_wall_time_even_across_dst() {
    for tz in [Europe::Berlin, America::New_York, Australia::Lord_Howe] {
        let cal = Calendar::preset("24x7", tz).unwrap();
        let a = utc("2026-03-01T10:17:03Z");
        for b in [
            utc("2026-03-01T10:17:03Z"),
            utc("2026-04-15T00:00:00.5Z"),
            utc("2026-11-20T23:59:59Z"),
        ] {
            assert_eq!(cal.working_between(a, b), b - a, "{tz}");
        }
        let d = Duration::days(300) + Duration::milliseconds(1);
        assert_eq!(cal.add_working(a, d), Ok(a + d), "{tz}");
        assert!(cal.is_working(a));
        assert_eq!(cal.next_working_start(a), Some(a));
    }
}

#[test]
fn spec_example_c1_c2_c3_within_1_8_24_working_hours_on_7x8() {
    // SPEC.md 4: network faults C-1/C-2/C-3 must be diagnosed within
    // 1/8/24 working hours on a contract counting 8 hours a day, 7 days a week.
    let tz = Europe::Berlin;
    let cal = berlin("7x8");
    let opened = at(tz, "2026-05-16 16:30"); // a Saturday
    let due = |h| cal.add_working(opened, hours(h)).unwrap();
    assert_eq!(due(1), at(tz, "2026-05-17 09:30"));
    assert_eq!(due(8), at(tz, "2026-05-17 16:30"));
    assert_eq!(due(24), at(tz, "2026-05-19 16:30"));
    // A case diagnosed on Monday at noon met C-2 late by 3 hours and C-3 in time.
    let diagnosed = at(tz, "2026-05-18 12:00");
    assert_eq!(
        cal.working_between(opened, diagnosed),
        hours(11) + minutes(30)
    );
}

#[test]
fn a_calendar_without_working_time_errors() {
    let cal = Calendar::new("closed", "UTC", Default::default(), []).unwrap();
    let t = utc("2026-01-01T00:00:00Z");
    assert!(!cal.has_working_hours());
    assert_eq!(
        cal.add_working(t, hours(1)),
        Err(CalendarError::NoWorkingTime)
    );
    assert_eq!(cal.add_working(t, Duration::zero()), Ok(t));
    assert_eq!(
        cal.working_between(t, t + Duration::days(400)),
        Duration::zero()
    );
    assert!(!cal.is_working(t));
    assert_eq!(cal.next_working_start(t), None);
}

#[test]
fn working_time_beyond_the_horizon_errors() {
    // Every working day for the next 21 years is a holiday.
    let mut cal = Calendar::preset("5x8", chrono_tz::UTC).unwrap();
    let mut day = date("2026-01-01");
    while day < date("2047-01-01") {
        cal.add_holiday(day);
        day = day.succ_opt().unwrap();
    }
    let t = utc("2026-01-01T00:00:00Z");
    assert_eq!(
        cal.add_working(t, minutes(1)),
        Err(CalendarError::BeyondHorizon {
            years: HORIZON_YEARS
        })
    );
    assert_eq!(cal.next_working_start(t), None);
}

#[test]
fn working_time_exists_in_the_years_1_to_9999_only() {
    assert_eq!(super::FIRST_INSTANT, utc("0001-01-01T00:00:00Z"));
    assert_eq!(
        super::END_INSTANT,
        utc("9999-12-31T23:59:59Z") + Duration::seconds(1)
    );
    let cal = Calendar::preset("24x7", chrono_tz::UTC).unwrap();
    let end = super::END_INSTANT;
    assert_eq!(
        cal.working_between(end - hours(1), end + hours(1)),
        hours(1)
    );
    assert!(cal.is_working(end - minutes(1)));
    assert!(!cal.is_working(end));
    assert_eq!(cal.next_working_start(end), None);
    assert_eq!(cal.add_working(end - hours(1), hours(1)), Ok(end));
    assert!(matches!(
        cal.add_working(end - hours(1), hours(2)),
        Err(CalendarError::BeyondHorizon { .. })
    ));
    let first = super::FIRST_INSTANT;
    assert_eq!(
        cal.working_between(first - hours(1), first + hours(1)),
        hours(1)
    );
    assert!(!cal.is_working(first - minutes(1)));
    assert_eq!(cal.next_working_start(first - hours(5)), Some(first));
    assert_eq!(
        cal.add_working(first - hours(5), hours(1)),
        Ok(first + hours(1))
    );
}

#[test]
fn the_ends_of_representable_time_do_not_panic() {
    for tz in ZONES {
        for preset in ["24x7", "5x8"] {
            let cal = Calendar::preset(preset, tz).unwrap();
            for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                let _ = cal.is_working(t);
                let _ = cal.next_working_start(t);
                let _ = cal.add_working(t, hours(100));
                let _ = cal.add_working(t, Duration::MAX);
                let before = t.checked_sub_signed(Duration::days(3)).unwrap_or(t);
                let after = t.checked_add_signed(Duration::days(3)).unwrap_or(t);
                let _ = cal.working_between(before, t);
                let _ = cal.working_between(t, after);
            }
        }
    }
}

#[test]
fn negative_durations_are_refused() {
    let cal = berlin("24x7");
    let t = utc("2026-01-01T00:00:00Z");
    assert_eq!(
        cal.add_working(t, -minutes(1)),
        Err(CalendarError::NegativeDuration)
    );
    assert_eq!(cal.working_between(t, t - hours(1)), Duration::zero());
}

#[test]
fn a_case_opened_outside_hours_starts_counting_at_the_next_opening() {
    let tz = Europe::Berlin;
    let cal = berlin("5x8");
    let opened = at(tz, "2026-05-19 20:00"); // Tuesday evening
    assert!(!cal.is_working(opened));
    assert_eq!(
        cal.next_working_start(opened),
        Some(at(tz, "2026-05-20 09:00"))
    );
    assert_eq!(
        cal.add_working(opened, hours(1)),
        Ok(at(tz, "2026-05-20 10:00"))
    );
    assert_eq!(
        cal.working_between(opened, at(tz, "2026-05-20 09:30")),
        minutes(30)
    );
    // During working time, the next working start is now.
    let busy = at(tz, "2026-05-20 11:00");
    assert!(cal.is_working(busy));
    assert_eq!(cal.next_working_start(busy), Some(busy));
    // Saturday morning waits for Monday.
    assert_eq!(
        cal.next_working_start(at(tz, "2026-05-23 08:00")),
        Some(at(tz, "2026-05-25 09:00"))
    );
}

#[test]
fn several_ranges_a_day_and_ranges_to_midnight() {
    let tz = Europe::Berlin;
    // Weekdays 08:00-12:00 and 13:00-17:00; Friday also 20:00-24:00.
    let mut week: [Vec<WorkingRange>; 7] = Default::default();
    for day in week.iter_mut().take(5) {
        *day = vec![(hm(13, 0), Some(hm(17, 0))), (hm(8, 0), Some(hm(12, 0)))];
    }
    week[4].push((hm(20, 0), None));
    let cal = Calendar::new("split", "Europe/Berlin", week, [date("2026-05-18")]).unwrap();
    assert_eq!(
        cal.hours(Weekday::Mon),
        vec![(hm(8, 0), Some(hm(12, 0))), (hm(13, 0), Some(hm(17, 0)))]
    );
    assert_eq!(cal.hours(Weekday::Sat), vec![]);
    assert_eq!(
        cal.add_working(at(tz, "2026-05-13 11:30"), hours(1)),
        Ok(at(tz, "2026-05-13 13:30"))
    );
    assert!(!cal.is_working(at(tz, "2026-05-13 12:30")));
    assert!(cal.is_working(at(tz, "2026-05-15 23:59")));
    // Friday 16:00 + 2 h: 1 h until 17:00, 1 h from 20:00.
    assert_eq!(
        cal.add_working(at(tz, "2026-05-15 16:00"), hours(2)),
        Ok(at(tz, "2026-05-15 21:00"))
    );
    // Friday 23:00 + 2 h: 1 h to midnight, Monday is a holiday, Tuesday 09:00.
    assert_eq!(
        cal.add_working(at(tz, "2026-05-15 23:00"), hours(2)),
        Ok(at(tz, "2026-05-19 09:00"))
    );
    assert_eq!(
        cal.working_between(at(tz, "2026-05-15 00:00"), at(tz, "2026-05-16 00:00")),
        hours(12)
    );
}

#[test]
fn instants_with_sub_second_precision_count_exactly() {
    let cal = berlin("5x8");
    let start = at(Europe::Berlin, "2026-05-15 16:59") + Duration::microseconds(123_456);
    let d = Duration::seconds(90) + Duration::nanoseconds(7);
    let end = cal.add_working(start, d).unwrap();
    assert_eq!(cal.working_between(start, end), d);
    assert_eq!(
        end,
        at(Europe::Berlin, "2026-05-18 09:00") + d - (minutes(1) - Duration::microseconds(123_456))
    );
}

// ----- daylight saving time -----

#[test]
fn berlin_spring_forward_shortens_ranges_over_the_skipped_hour() {
    // 2026-03-29 (Sunday): 02:00 CET becomes 03:00 CEST.
    let tz = Europe::Berlin;
    let sunday = [6];
    let day = (at(tz, "2026-03-29 00:00"), at(tz, "2026-03-30 00:00"));
    assert_eq!(berlin("24x7").working_between(day.0, day.1), hours(23));
    let around = calendar("Europe/Berlin", &sunday, &[(hm(1, 0), Some(hm(4, 0)))]);
    assert_eq!(around.working_between(day.0, day.1), hours(2));
    // A start in the gap maps to the change itself, 03:00 CEST.
    let from_gap = calendar("Europe/Berlin", &sunday, &[(hm(2, 30), Some(hm(5, 0)))]);
    assert_eq!(from_gap.working_between(day.0, day.1), hours(2));
    assert_eq!(
        from_gap.next_working_start(day.0),
        Some(utc("2026-03-29T01:00:00Z"))
    );
    // An end in the gap also maps to 03:00 CEST.
    let to_gap = calendar("Europe/Berlin", &sunday, &[(hm(0, 0), Some(hm(2, 30)))]);
    assert_eq!(to_gap.working_between(day.0, day.1), hours(2));
    assert_eq!(
        to_gap.add_working(day.0, hours(2)),
        Ok(utc("2026-03-29T01:00:00Z"))
    );
    // A range wholly inside the gap has no working time.
    let inside = calendar("Europe/Berlin", &sunday, &[(hm(2, 10), Some(hm(2, 50)))]);
    assert_eq!(inside.working_between(day.0, day.1), Duration::zero());
    // 5x8 over the weekend of the change: Friday CET to Monday CEST.
    assert_eq!(
        berlin("5x8").add_working(at(tz, "2026-03-27 16:30"), hours(1)),
        Ok(utc("2026-03-30T07:30:00Z"))
    );
}

#[test]
fn berlin_fall_back_lengthens_ranges_over_the_repeated_hour() {
    // 2026-10-25 (Sunday): 03:00 CEST becomes 02:00 CET; 02:00-03:00 happens twice.
    let tz = Europe::Berlin;
    let sunday = [6];
    let day = (at(tz, "2026-10-25 00:00"), at(tz, "2026-10-26 00:00"));
    assert_eq!(berlin("24x7").working_between(day.0, day.1), hours(25));
    let around = calendar("Europe/Berlin", &sunday, &[(hm(1, 0), Some(hm(4, 0)))]);
    assert_eq!(around.working_between(day.0, day.1), hours(4));
    assert_eq!(
        around.add_working(day.0, hours(4)),
        Ok(at(tz, "2026-10-25 04:00"))
    );
    // A start in the repeated hour maps to its first occurrence (CEST).
    let from_repeat = calendar("Europe/Berlin", &sunday, &[(hm(2, 30), Some(hm(5, 0)))]);
    assert_eq!(
        from_repeat.next_working_start(day.0),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    assert_eq!(
        from_repeat.working_between(day.0, day.1),
        hours(3) + minutes(30)
    );
    // An end in the repeated hour maps to its first occurrence too: the
    // second pass through 02:00-02:30 (CET) is not working time.
    let to_repeat = calendar("Europe/Berlin", &sunday, &[(hm(0, 0), Some(hm(2, 30)))]);
    assert_eq!(
        to_repeat.working_between(day.0, day.1),
        hours(2) + minutes(30)
    );
    assert!(to_repeat.is_working(utc("2026-10-25T00:15:00Z"))); // 02:15 CEST
    assert!(!to_repeat.is_working(utc("2026-10-25T01:15:00Z"))); // 02:15 CET
                                                                 // 5x8 over the weekend of the change: Friday CEST to Monday CET.
    assert_eq!(
        berlin("5x8").add_working(at(tz, "2026-10-23 16:30"), hours(1)),
        Ok(utc("2026-10-26T08:30:00Z"))
    );
}

#[test]
fn new_york_dst_changes() {
    let tz = America::New_York;
    let seven = Calendar::preset("7x8", tz).unwrap();
    // 2026-03-08 (Sunday): 02:00 EST becomes 03:00 EDT; 09:00-17:00 is still 8 h.
    assert_eq!(
        seven.working_between(at(tz, "2026-03-08 00:00"), at(tz, "2026-03-09 00:00")),
        hours(8)
    );
    assert_eq!(
        seven.add_working(at(tz, "2026-03-07 16:30"), hours(1)),
        Ok(utc("2026-03-08T13:30:00Z"))
    );
    let all_day = Calendar::preset("24x7", tz).unwrap();
    assert_eq!(
        all_day.working_between(at(tz, "2026-03-08 00:00"), at(tz, "2026-03-09 00:00")),
        hours(23)
    );
    // 2026-11-01 (Sunday): 02:00 EDT becomes 01:00 EST.
    assert_eq!(
        all_day.working_between(at(tz, "2026-11-01 00:00"), at(tz, "2026-11-02 00:00")),
        hours(25)
    );
    let night = calendar("America/New_York", &[6], &[(hm(1, 0), Some(hm(3, 0)))]);
    assert_eq!(
        night.next_working_start(utc("2026-11-01T00:00:00Z")),
        Some(utc("2026-11-01T05:00:00Z")) // 01:00 EDT
    );
    assert_eq!(
        night.add_working(utc("2026-11-01T00:00:00Z"), hours(3)),
        Ok(utc("2026-11-01T08:00:00Z")) // 03:00 EST
    );
    assert_eq!(
        night.working_between(at(tz, "2026-03-08 00:00"), at(tz, "2026-03-09 00:00")),
        hours(1)
    );
}

#[test]
fn lord_howe_half_hour_dst_changes() {
    let tz = Australia::Lord_Howe;
    let cal = Calendar::preset("24x7", tz).unwrap();
    let day = |d: &str, next: &str| {
        cal.working_between(
            at(tz, &format!("{d} 00:00")),
            at(tz, &format!("{next} 00:00")),
        )
    };
    // 2026-04-05: 02:00 (+11) becomes 01:30 (+10:30). 2026-10-04: 02:00 becomes 02:30.
    assert_eq!(day("2026-04-05", "2026-04-06"), hours(24) + minutes(30));
    assert_eq!(day("2026-10-04", "2026-10-05"), hours(23) + minutes(30));
    let night = calendar("Australia/Lord_Howe", &[6], &[(hm(1, 0), Some(hm(3, 0)))]);
    let sunday = (at(tz, "2026-10-04 00:00"), at(tz, "2026-10-05 00:00"));
    assert_eq!(
        night.working_between(sunday.0, sunday.1),
        hours(1) + minutes(30)
    );
}

#[test]
fn st_johns_2010_fell_back_across_midnight() {
    // Until 2011 Newfoundland changed at 00:01. On 2010-11-07 the clock read
    // Sunday 00:00 and 00:01 (NDT, 02:30Z), then Saturday 23:01 (NST) again.
    let tz = America::St_Johns;
    let cal = calendar("America/St_Johns", &[6], &[(hm(0, 0), Some(hm(0, 30)))]);
    assert_eq!(
        cal.next_working_start(utc("2010-11-07T00:00:00Z")),
        Some(utc("2010-11-07T02:30:00Z"))
    );
    // Sunday 00:00 NDT to 00:30 NST, including the repeated Saturday hour.
    let sunday = (utc("2010-11-07T02:30:00Z"), utc("2010-11-07T04:00:00Z"));
    assert_eq!(
        cal.working_between(sunday.0 - hours(1), sunday.1 + hours(1)),
        minutes(90)
    );
    // 03:00Z reads Saturday 23:30 but belongs to Sunday's range.
    let repeated = utc("2010-11-07T03:00:00Z");
    assert_eq!(repeated.with_timezone(&tz).date_naive(), date("2010-11-06"));
    assert!(cal.is_working(repeated));
    assert_eq!(
        cal.working_between(utc("2010-11-07T02:00:00Z"), repeated),
        minutes(30)
    );
    assert_eq!(cal.add_working(repeated, minutes(60)), Ok(sunday.1));
}

#[test]
fn dst_days_of_the_property_tests_are_dst_days() {
    for (zone, days) in ZONES.iter().zip(DST_DAYS) {
        let cal = Calendar::preset("24x7", *zone).unwrap();
        for day in days {
            let d = date(day);
            let next = d.succ_opt().unwrap();
            let midnight = |d: NaiveDate| {
                let local = d.and_time(NaiveTime::MIN);
                zone.from_local_datetime(&local)
                    .earliest()
                    .unwrap()
                    .with_timezone(&Utc)
            };
            let length = cal.working_between(midnight(d), midnight(next));
            let has_dst = !matches!(zone.name(), "UTC" | "Asia/Kolkata");
            assert_eq!(length != hours(24), has_dst, "{zone} {day}");
        }
    }
}

// ----- construction and configuration -----

#[test]
fn presets_and_unknown_presets() {
    let five = berlin("5x8");
    assert_eq!(five.name(), "5x8");
    assert_eq!(five.timezone(), Europe::Berlin);
    assert_eq!(five.hours(Weekday::Fri), vec![(hm(9, 0), Some(hm(17, 0)))]);
    assert_eq!(five.hours(Weekday::Sat), vec![]);
    assert_eq!(berlin("24x7").hours(Weekday::Sun), vec![(hm(0, 0), None)]);
    let (field, message) = invalid(Calendar::preset("9x5", Europe::Berlin));
    assert_eq!(field, "preset");
    assert!(message.contains("\"9x5\""), "{message}");
}

#[test]
fn new_validates_time_zone_and_ranges() {
    let (field, message) = invalid(Calendar::new("x", "Mars/Olympus", Default::default(), []));
    assert_eq!(field, "timezone");
    assert!(message.contains("Mars/Olympus"), "{message}");

    let with_tuesday = |ranges: Vec<WorkingRange>| {
        let mut week: [Vec<WorkingRange>; 7] = Default::default();
        week[1] = ranges;
        Calendar::new("x", "UTC", week, [])
    };
    let err = with_tuesday(vec![
        (hm(9, 0), Some(hm(12, 0))),
        (hm(13, 0), Some(hm(12, 0))),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "hours.tue[1]: \"13:00-12:00\" ends before it starts"
    );
    let (field, message) = invalid(with_tuesday(vec![
        (hm(14, 0), Some(hm(18, 0))),
        (hm(9, 0), Some(hm(12, 0))),
        (hm(11, 0), Some(hm(15, 0))),
    ]));
    assert_eq!(field, "hours.tue[2]");
    assert_eq!(
        message,
        "\"11:00-15:00\" overlaps hours.tue[1] \"09:00-12:00\""
    );
    let (field, message) = invalid(with_tuesday(vec![(hm(9, 0), Some(hm(0, 0)))]));
    assert_eq!(field, "hours.tue[0]");
    assert!(message.contains("write 24:00"), "{message}");
    let (_, message) = invalid(with_tuesday(vec![(hm(9, 0), Some(hm(9, 0)))]));
    assert!(message.contains("is empty"), "{message}");
    let fraction = NaiveTime::from_hms_milli_opt(9, 0, 0, 5).unwrap();
    let (_, message) = invalid(with_tuesday(vec![(fraction, None)]));
    assert!(message.contains("fractions of a second"), "{message}");
    let many = (0..9).map(|h| (hm(h, 0), Some(hm(h, 30)))).collect();
    let (field, message) = invalid(with_tuesday(many));
    assert_eq!(field, "hours.tue");
    assert!(message.contains("at most 8"), "{message}");
    // Touching ranges are fine.
    let cal = with_tuesday(vec![(hm(12, 0), None), (hm(9, 0), Some(hm(12, 0)))]).unwrap();
    assert_eq!(cal.hours(Weekday::Tue).len(), 2);
}

const SPEC_TOML: &str = r#"
name = "de-office"
timezone = "Europe/Berlin"
holidays = ["2026-12-24", "2026-12-31"]

[hours]
mon = ["08:00-12:00", "13:00-17:00"]
fri = ["08:00-14:00"]
sat = ["22:00-24:00"]
"#;

#[test]
fn spec_from_toml_and_back() {
    let spec: CalendarSpec = toml::from_str(SPEC_TOML).unwrap();
    let cal = Calendar::try_from(spec.clone()).unwrap();
    assert_eq!(cal.name(), "de-office");
    assert_eq!(cal.hours(Weekday::Sat), vec![(hm(22, 0), None)]);
    assert!(cal.is_holiday(date("2026-12-24")));
    assert_eq!(cal.to_spec(), spec);
    // Calendar itself deserializes through the spec.
    let direct: Calendar = toml::from_str(SPEC_TOML).unwrap();
    assert_eq!(direct, cal);
    let again: Calendar = toml::from_str(&toml::to_string(&cal).unwrap()).unwrap();
    assert_eq!(again, cal);

    let preset: Calendar =
        toml::from_str("name = \"support\"\ntimezone = \"America/New_York\"\npreset = \"7x8\"\n")
            .unwrap();
    assert_eq!(preset.name(), "support");
    assert_eq!(
        preset.hours(Weekday::Sun),
        vec![(hm(9, 0), Some(hm(17, 0)))]
    );
}

#[test]
fn spec_errors_name_the_key() {
    let spec = |extra: &str| -> Result<Calendar, String> {
        let text = format!("name = \"x\"\ntimezone = \"Europe/Berlin\"\n{extra}");
        let spec: CalendarSpec = toml::from_str(&text).map_err(|e| e.to_string())?;
        Calendar::try_from(spec).map_err(|e| e.to_string())
    };
    let cases = [
        (
            "hours = { tue = [\"09:00-12:00\", \"13:00-12:00\"] }",
            "hours.tue[1]: \"13:00-12:00\" ends before it starts",
        ),
        (
            "hours = { wed = [\"9-17\"] }",
            "hours.wed[0]: \"9-17\" is not a range (expected \"HH:MM-HH:MM\", e.g. \"09:00-17:00\")",
        ),
        (
            "hours = { mon = [\"09:00-24:30\"] }",
            "hours.mon[0]: \"09:00-24:30\" is not a range",
        ),
        (
            "hours = { mon = [\"09:00-12:00\", \"11:00-13:00\"] }",
            "hours.mon[1]: \"11:00-13:00\" overlaps hours.mon[0] \"09:00-12:00\"",
        ),
        ("hours = { monday = [\"09:00-12:00\"] }", "hours.monday: unknown day"),
        ("hours = {}", "hours: no working hours"),
        ("", "hours: no working hours"),
        (
            "preset = \"5x8\"\nhours = { mon = [\"09:00-12:00\"] }",
            "hours: must be left out when preset is set",
        ),
        ("preset = \"5x7\"", "preset: unknown preset \"5x7\""),
        (
            "preset = \"5x8\"\nholidays = [\"2026-01-01\", \"2026-1-6\"]",
            "holidays[1]: \"2026-1-6\" is not a date (expected YYYY-MM-DD)",
        ),
        (
            "preset = \"5x8\"\nholidays = [\"2026-02-30\"]",
            "holidays[0]: \"2026-02-30\" is not a date",
        ),
        ("preset = \"5x8\"\ncolour = \"red\"", "unknown field `colour`"),
    ];
    for (extra, expected) in cases {
        let message = spec(extra).unwrap_err();
        assert!(message.contains(expected), "{extra:?}: {message}");
    }
    let message =
        toml::from_str::<CalendarSpec>("name = \"x\"\ntimezone = \"Berlin\"\npreset = \"5x8\"")
            .map_err(|e| e.to_string())
            .and_then(|s| Calendar::try_from(s).map_err(|e| e.to_string()))
            .unwrap_err();
    assert!(
        message.starts_with("timezone: unknown time zone \"Berlin\""),
        "{message}"
    );
    let message =
        toml::from_str::<CalendarSpec>("name = \" \"\ntimezone = \"UTC\"\npreset = \"5x8\"")
            .map_err(|e| e.to_string())
            .and_then(|s| Calendar::try_from(s).map_err(|e| e.to_string()))
            .unwrap_err();
    assert_eq!(message, "name: must not be empty");
    assert!(spec("hours = { sun = [\"00:00-24:00\"] }").is_ok());
    assert!(spec("hours = { sun = [\"08:15:30-12:00\"] }").is_ok());
}

// ----- iCalendar import -----

/// German public holidays as a typical export: CRLF line ends, folded lines,
/// a VTIMEZONE whose own RRULE must be ignored, an alarm, yearly and single
/// events, a multi-day all-day event, a midnight-to-midnight timed event and
/// a cancelled one.
const GERMAN_HOLIDAYS: &str = concat!(
    "BEGIN:VCALENDAR\r\n",
    "VERSION:2.0\r\n",
    "PRODID:-//Outpost tests//Feiertage//DE\r\n",
    "X-WR-CALNAME:Feiertage in Deutschland\r\n",
    "BEGIN:VTIMEZONE\r\n",
    "TZID:Europe/Berlin\r\n",
    "BEGIN:DAYLIGHT\r\n",
    "TZOFFSETFROM:+0100\r\n",
    "TZOFFSETTO:+0200\r\n",
    "DTSTART:19700329T020000\r\n",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n",
    "END:DAYLIGHT\r\n",
    "BEGIN:STANDARD\r\n",
    "TZOFFSETFROM:+0200\r\n",
    "TZOFFSETTO:+0100\r\n",
    "DTSTART:19701025T030000\r\n",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n",
    "END:STANDARD\r\n",
    "END:VTIMEZONE\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:neujahr@feiertage.example\r\n",
    "DTSTAMP:20251201T120000Z\r\n",
    "DTSTART;VALUE=DATE:20260101\r\n",
    "DTEND;VALUE=DATE:20260102\r\n",
    "RRULE:FREQ=YEARLY\r\n",
    "SUMMARY:Neujahr\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:karfreitag-2026@feiertage.example\r\n",
    "DTSTART;VALUE=DATE:20260403\r\n",
    "SUMMARY:Karfreitag\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:ostermontag-2026@feiertage.example\r\n",
    "DTSTART;VALUE=DATE:20260406\r\n",
    "DTEND;VALUE=DATE:20260407\r\n",
    "SUMMARY:Ostermontag (gesetzlicher Feiertag in allen Bundesl\r\n",
    " ändern)\r\n",
    "DESCRIPTION:Der Ostermontag ist der Tag nach dem Ostersonntag\\, in ganz D\r\n",
    "\teutschland arbeitsfrei.\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:tag-der-arbeit@feiertage.example\r\n",
    "DTSTART;VALUE=DATE:20260501\r\n",
    "RRULE:FREQ=YEARLY;BYMON\r\n",
    " TH=5;BYMONTHDAY=1\r\n",
    "SUMMARY:Tag der Arbeit\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:einheit@feiertage.example\r\n",
    "DTSTART;VALUE=DATE:20261003\r\n",
    "DURATION:P1D\r\n",
    "RRULE:FREQ=YEARLY\r\n",
    "SUMMARY:Tag der Deutschen Einheit\r\n",
    "BEGIN:VALARM\r\n",
    "ACTION:DISPLAY\r\n",
    "TRIGGER:-PT15H\r\n",
    "DESCRIPTION:Morgen ist Feiertag\r\n",
    "END:VALARM\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:weihnachten@feiertage.example\r\n",
    "DTSTART;VALUE=DATE:20261225\r\n",
    "DTEND;VALUE=DATE:20261227\r\n",
    "RRULE:FREQ=YEARLY;UNTIL=20281231\r\n",
    "SUMMARY;LANGUAGE=de:\"Weihnachten\"; 1. und 2. Feiertag\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:betriebsferien-2026@firma.example\r\n",
    "DTSTART;TZID=\"Europe/Berlin\":20261228T000000\r\n",
    "DTEND;TZID=\"Europe/Berlin\":20261231T000000\r\n",
    "SUMMARY:Betriebsferien\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VEVENT\r\n",
    "UID:abgesagt@firma.example\r\n",
    "DTSTART;VALUE=DATE:20260601\r\n",
    "STATUS:CANCELLED\r\n",
    "SUMMARY:Abgesagt\r\n",
    "END:VEVENT\r\n",
    "END:VCALENDAR\r\n",
);

#[test]
fn imports_german_holidays() {
    let tz = Europe::Berlin;
    let mut cal = berlin("5x8");
    // Yearly events run 2026..=2100: 3 x 75; Christmas 2 days x 3 years;
    // Karfreitag, Ostermontag, and 3 days of Betriebsferien.
    assert_eq!(cal.import_ics(GERMAN_HOLIDAYS), Ok(75 * 3 + 6 + 1 + 1 + 3));
    assert_eq!(cal.import_ics(GERMAN_HOLIDAYS), Ok(0));
    for day in [
        "2026-01-01",
        "2026-04-03",
        "2026-04-06",
        "2026-05-01",
        "2026-10-03",
        "2026-12-25",
        "2026-12-26",
        "2026-12-28",
        "2026-12-29",
        "2026-12-30",
        "2028-12-26",
        "2045-05-01",
        "2100-10-03",
    ] {
        assert!(cal.is_holiday(date(day)), "{day}");
    }
    for day in [
        "2026-04-07",
        "2026-06-01",
        "2026-12-27",
        "2026-12-31",
        "2029-12-25",
        "2101-01-01",
    ] {
        assert!(!cal.is_holiday(date(day)), "{day}");
    }
    // Thursday before Easter 16:30 + 1 h: Good Friday, the weekend and
    // Easter Monday are off.
    assert_eq!(
        cal.add_working(at(tz, "2026-04-02 16:30"), hours(1)),
        Ok(at(tz, "2026-04-07 09:30"))
    );
    // Plain LF line ends read the same.
    let mut lf = berlin("5x8");
    assert_eq!(
        lf.import_ics(&GERMAN_HOLIDAYS.replace("\r\n", "\n")),
        Ok(236)
    );
    assert_eq!(lf, cal);
}

#[test]
fn ics_recurrence_details() {
    let event = |body: &str| {
        format!(
            "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\n{}\nEND:VEVENT\nEND:VCALENDAR\n",
            body.trim()
        )
    };
    let dates = |body: &str| {
        let mut cal = Calendar::preset("5x8", Europe::Berlin).unwrap();
        cal.import_ics(&event(body)).unwrap();
        cal.holidays()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dates("DTSTART;VALUE=DATE:20240229\nRRULE:FREQ=YEARLY;COUNT=3"),
        ["2024-02-29", "2028-02-29", "2032-02-29"]
    );
    assert_eq!(
        dates("DTSTART;VALUE=DATE:20260101\nRRULE:FREQ=YEARLY;INTERVAL=2;UNTIL=20320101T000000Z"),
        ["2026-01-01", "2028-01-01", "2030-01-01", "2032-01-01"]
    );
    assert_eq!(
        dates(
            "DTSTART;VALUE=DATE:20260101\nRRULE:FREQ=YEARLY;COUNT=3\n\
             EXDATE;VALUE=DATE:20270101\nRDATE;VALUE=DATE:20300101,20310101"
        ),
        ["2026-01-01", "2028-01-01", "2030-01-01", "2031-01-01"]
    );
    // A late start still gets 30 years.
    let late = dates("DTSTART;VALUE=DATE:20900704\nRRULE:FREQ=YEARLY");
    assert_eq!(late.len(), 31);
    assert_eq!(late.last().map(String::as_str), Some("2120-07-04"));
    // Two weeks and a UTC midnight (in the calendar's zone: 23:00Z is midnight in Berlin).
    assert_eq!(dates("DTSTART;VALUE=DATE:20260803\nDURATION:P2W").len(), 14);
    assert_eq!(
        dates("DTSTART:20260802T220000Z\nDTEND:20260803T220000Z"),
        ["2026-08-03"]
    );
}

#[test]
fn ics_errors_name_the_line() {
    let import = |text: &str| {
        Calendar::preset("5x8", Europe::Berlin)
            .unwrap()
            .import_ics(text)
    };
    let wrap = |body: &str| {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n")
    };
    let cases: Vec<(String, usize, &str)> =
        vec![
        (
            wrap("DTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=MONTHLY\r\n"),
            5,
            "FREQ=MONTHLY is not supported",
        ),
        (
            wrap("DTSTART;VALUE=DATE:20261126\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BY\r\n DAY=4TH\r\n"),
            5,
            "RRULE part BYDAY is not supported",
        ),
        (
            wrap("DTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=YEARLY;BYMONTH=2\r\n"),
            5,
            "must name the DTSTART date",
        ),
        (wrap("SUMMARY:Nothing\r\n"), 3, "VEVENT without DTSTART"),
        (
            wrap("DTSTART:20260101T130000\r\nDTEND:20260101T170000\r\n"),
            4,
            "not at midnight",
        ),
        (wrap("DTSTART:20260101T000000\r\n"), 4, "without DTEND or DURATION"),
        (
            wrap("DTSTART;VALUE=DATE:20260105\r\nDTEND;VALUE=DATE:20260105\r\n"),
            5,
            "is not after DTSTART",
        ),
        (
            wrap("DTSTART;VALUE=DATE:20260105\r\nDTEND:20260106T000000\r\n"),
            5,
            "DTEND must be a date",
        ),
        (wrap("DTSTART;VALUE=DATE:2026015\r\n"), 4, "neither a date"),
        (wrap("DTSTART;VALUE=DATE:20260231\r\n"), 4, "neither a date"),
        (
            wrap("DTSTART;VALUE=DATE:20260101T000000\r\n"),
            4,
            "VALUE=DATE but",
        ),
        (
            wrap("DTSTART;VALUE=DATE:20260101\r\nDURATION:PT5H\r\n"),
            5,
            "whole days",
        ),
        (
            wrap("DTSTART;VALUE=DATE:20260101\r\nDTSTART;VALUE=DATE:20260102\r\n"),
            5,
            "second DTSTART",
        ),
        (
            wrap("DTSTART;VALUE=DATE:20260101\r\nRECURRENCE-ID;VALUE=DATE:20270101\r\n"),
            5,
            "RECURRENCE-ID",
        ),
        (wrap("this is not a property\r\n"), 4, "expected NAME:VALUE"),
        (wrap("SUMMARY;LANGUAGE=\"de:Feiertag\r\n"), 4, "unterminated quote"),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nEND:VCALENDAR\r\n"
                .to_owned(),
            4,
            "does not close BEGIN:VEVENT of line 2",
        ),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\n".to_owned(),
            2,
            "BEGIN:VEVENT is never closed",
        ),
        (" VERSION:2.0\r\n".to_owned(), 1, "continuation line"),
        (
            "BEGIN:VCALENDAR\r\n\r\n continued\r\nEND:VCALENDAR\r\n".to_owned(),
            3,
            "continuation line",
        ),
        ("VERSION:2.0\r\n".to_owned(), 1, "outside BEGIN:VCALENDAR"),
        ("BEGIN:VEVENT\r\n".to_owned(), 1, "expected BEGIN:VCALENDAR"),
        ("".to_owned(), 1, "no BEGIN:VCALENDAR"),
        (
            "BEGIN:VCALENDAR\r\nEND:VEVENT\r\n".to_owned(),
            2,
            "does not close BEGIN:VCALENDAR",
        ),
        (
            "BEGIN:VCALENDAR\r\nX-BAD:a\u{7}b\r\nEND:VCALENDAR\r\n".to_owned(),
            2,
            "control character",
        ),
    ];
    for (text, line, expected) in cases {
        let (got_line, message) = ics_error(import(&text));
        assert_eq!(got_line, line, "{text:?}: {message}");
        assert!(message.contains(expected), "{text:?}: {message}");
    }
    let message = import(&wrap(
        "DTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=WEEKLY\r\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with("iCalendar line 5: RRULE FREQ=WEEKLY"),
        "{message}"
    );
}

#[test]
fn a_failed_import_changes_nothing() {
    let mut cal = berlin("5x8");
    let text = GERMAN_HOLIDAYS.replace("RRULE:FREQ=YEARLY;UNTIL", "RRULE:FREQ=DAILY;UNTIL");
    assert!(cal.import_ics(&text).is_err());
    assert!(cal.holidays().is_empty());
}

// ----- properties against a minute-by-minute reference model -----

const ZONES: [Tz; 6] = [
    chrono_tz::UTC,
    Europe::Berlin,
    America::New_York,
    Australia::Lord_Howe,
    Asia::Kolkata,
    // Changed at 00:01 until 2011, falling back across midnight.
    America::St_Johns,
];

/// Local dates of DST changes, per zone of [`ZONES`]: 2025-2027, for
/// St. John's 2008-2010; the zones without DST get the Berlin dates.
const DST_DAYS: [[&str; 6]; 6] = [
    [
        "2025-03-30",
        "2025-10-26",
        "2026-03-29",
        "2026-10-25",
        "2027-03-28",
        "2027-10-31",
    ],
    [
        "2025-03-30",
        "2025-10-26",
        "2026-03-29",
        "2026-10-25",
        "2027-03-28",
        "2027-10-31",
    ],
    [
        "2025-03-09",
        "2025-11-02",
        "2026-03-08",
        "2026-11-01",
        "2027-03-14",
        "2027-11-07",
    ],
    [
        "2025-04-06",
        "2025-10-05",
        "2026-04-05",
        "2026-10-04",
        "2027-04-04",
        "2027-10-03",
    ],
    [
        "2025-03-30",
        "2025-10-26",
        "2026-03-29",
        "2026-10-25",
        "2027-03-28",
        "2027-10-31",
    ],
    [
        "2008-03-09",
        "2008-11-02",
        "2009-03-08",
        "2009-11-01",
        "2010-03-14",
        "2010-11-07",
    ],
];

/// A random calendar in plain terms, for the reference model.
#[derive(Debug, Clone)]
struct Model {
    tz: Tz,
    /// Monday to Sunday: sorted, disjoint `[start, end)` in minutes, end <= 1440.
    week: [Vec<(u32, u32)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

impl Model {
    fn calendar(&self) -> Calendar {
        let time = |m: u32| NaiveTime::from_hms_opt(m / 60, m % 60, 0);
        let week = self.week.clone().map(|day| {
            day.into_iter()
                .map(|(s, e)| (time(s).unwrap(), time(e)))
                .collect()
        });
        Calendar::new(
            "random",
            self.tz.name(),
            week,
            self.holidays.iter().copied(),
        )
        .unwrap()
    }

    /// Whether the high-water wall clock `clock` (the latest local time
    /// shown so far) lies in a range of its own date.
    fn working_at(&self, clock: NaiveDateTime) -> bool {
        use chrono::{Datelike, Timelike};
        if self.holidays.contains(&clock.date()) {
            return false;
        }
        let minute = clock.time().num_seconds_from_midnight() / 60;
        self.week[clock.weekday().num_days_from_monday() as usize]
            .iter()
            .any(|&(s, e)| s <= minute && minute < e)
    }

    /// For each minute from `a` (minute-aligned) before `b`, whether it is working.
    fn minutes(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Vec<bool> {
        let mut clock = NaiveDateTime::MIN;
        let mut out = Vec::new();
        // Three hours of warm-up cover any repeated hour before `a`.
        let mut m = a - hours(3);
        while m < b {
            clock = clock.max(m.with_timezone(&self.tz).naive_local());
            if m >= a {
                out.push(self.working_at(clock));
            }
            m += minutes(1);
        }
        out
    }
}

fn minute_point() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => 0u32..=1440,
        1 => prop::sample::select(vec![0u32, 60, 90, 120, 150, 180, 210, 240, 1380, 1440]),
    ]
}

fn day_ranges() -> impl Strategy<Value = Vec<(u32, u32)>> {
    (0usize..=3)
        .prop_flat_map(|n| prop::collection::btree_set(minute_point(), 2 * n))
        .prop_map(|points| {
            let points: Vec<u32> = points.into_iter().collect();
            points.chunks(2).map(|p| (p[0], p[1])).collect()
        })
}

/// A random calendar and a minute-aligned instant, in 2025-2027 or within
/// days of one of the zone's DST changes.
fn model_and_start() -> impl Strategy<Value = (Model, DateTime<Utc>)> {
    (0..ZONES.len())
        .prop_flat_map(|zone| {
            let start = prop_oneof![
                (0i64..3 * 365 * 1440).prop_map(|m| utc("2025-01-01T00:00:00Z") + minutes(m)),
                (
                    prop::sample::select(DST_DAYS[zone].to_vec()),
                    -2880i64..4320
                )
                    .prop_map(|(day, m)| utc(&format!("{day}T00:00:00Z")) + minutes(m)),
            ];
            (
                Just(ZONES[zone]),
                prop::array::uniform7(day_ranges()),
                prop::collection::vec(-3i64..12, 0..4),
                start,
            )
        })
        .prop_map(|(tz, week, holiday_offsets, start)| {
            let today = start.date_naive();
            let holidays = holiday_offsets
                .into_iter()
                .map(|d| today + Duration::days(d))
                .collect();
            (Model { tz, week, holidays }, start)
        })
}

fn working_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1i64..=4 * 3600).prop_map(Duration::seconds),
        (1i64..=200 * 3600).prop_map(Duration::seconds),
        (1i64..=200 * 3600 * 1000).prop_map(Duration::milliseconds),
    ]
}

proptest! {
    #[test]
    fn working_between_matches_the_reference_model(
        (model, a) in model_and_start(),
        span in 0i64..=10 * 1440,
    ) {
        let cal = model.calendar();
        let b = a + minutes(span);
        let reference = model.minutes(a, b).into_iter().filter(|&w| w).count() as i64;
        prop_assert_eq!(cal.working_between(a, b), minutes(reference));
    }

    #[test]
    fn is_working_and_next_working_start_match_the_reference_model(
        (model, t) in model_and_start(),
    ) {
        let cal = model.calendar();
        // The next 4 days, minute by minute.
        let ahead = model.minutes(t, t + Duration::days(4));
        prop_assert_eq!(cal.is_working(t), ahead[0]);
        let next = cal.next_working_start(t);
        match ahead.iter().position(|&w| w) {
            Some(i) => prop_assert_eq!(next, Some(t + minutes(i as i64))),
            None => prop_assert!(next.is_none_or(|n| n >= t + Duration::days(4))),
        }
        if let Some(n) = next {
            prop_assert!(cal.is_working(n));
            prop_assert_eq!(cal.working_between(t, n), Duration::zero());
        }
    }

    #[test]
    fn add_working_is_the_inverse_of_working_between(
        (model, start) in model_and_start(),
        d in working_duration(),
        more in working_duration(),
        offset_ns in 0i64..60_000_000_000,
    ) {
        let cal = model.calendar();
        // Not only minute-aligned starts.
        let start = start + Duration::nanoseconds(offset_ns);
        match cal.add_working(start, d) {
            Ok(end) => {
                prop_assert!(end > start);
                prop_assert_eq!(cal.working_between(start, end), d);
                // The end of working time: the instant just before it works.
                prop_assert!(cal.is_working(end - Duration::nanoseconds(1)));
                // Monotone in the duration.
                if let Ok(later) = cal.add_working(start, d + more) {
                    prop_assert!(later > end);
                    prop_assert_eq!(cal.working_between(end, later), more);
                }
                let shorter = cal.add_working(start, d / 2).unwrap();
                prop_assert!(shorter <= end);
            }
            Err(CalendarError::NoWorkingTime) => prop_assert!(!cal.has_working_hours()),
            Err(CalendarError::BeyondHorizon { .. }) => {
                let horizon = start + Duration::days(365 * i64::from(HORIZON_YEARS));
                prop_assert!(cal.working_between(start, horizon) < d);
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }

    #[test]
    fn working_between_is_additive(
        (model, a) in model_and_start(),
        to_b in 0i64..=20 * 86_400_000,
        to_c in 0i64..=20 * 86_400_000,
    ) {
        let cal = model.calendar();
        let b = a + Duration::milliseconds(to_b);
        let c = b + Duration::milliseconds(to_c);
        prop_assert_eq!(
            cal.working_between(a, c),
            cal.working_between(a, b) + cal.working_between(b, c)
        );
        prop_assert_eq!(cal.working_between(c, a), Duration::zero());
    }
}
