//! The spare desk's rules on explicit instants (Europe/Berlin, March 2026,
//! before the DST change: UTC+1). 2026-03-04 is a Wednesday.

use super::*;
use chrono_tz::Tz;

const TZ: Tz = chrono_tz::Europe::Berlin;

fn cal(holidays: &[(u32, u32)]) -> Calendar {
    let mut c = Calendar::preset("5x8", TZ).expect("5x8 preset");
    for &(m, d) in holidays {
        c.add_holiday(NaiveDate::from_ymd_opt(2026, m, d).expect("date"));
    }
    c
}

/// A local Berlin wall time in 2026 as an instant.
fn at(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    TZ.with_ymd_and_hms(2026, m, d, h, min, 0)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

fn rules() -> DeskRules {
    DeskRules::default()
}

#[test]
fn cutoff_1359_ships_same_day_1401_next_morning() -> Result<(), Error> {
    let c = cal(&[]);
    assert_eq!(ship_by(&rules(), &c, at(3, 4, 13, 59))?, at(3, 4, 17, 0));
    assert_eq!(ship_by(&rules(), &c, at(3, 4, 14, 1))?, at(3, 5, 12, 0));
    // Exactly at the cut-off is no longer before it.
    assert_eq!(ship_by(&rules(), &c, at(3, 4, 14, 0))?, at(3, 5, 12, 0));
    // Before opening on a working day: still the same day.
    assert_eq!(ship_by(&rules(), &c, at(3, 4, 7, 30))?, at(3, 4, 17, 0));
    Ok(())
}

#[test]
fn friday_afternoon_ships_monday_morning() -> Result<(), Error> {
    assert_eq!(
        ship_by(&rules(), &cal(&[]), at(3, 6, 15, 0))?,
        at(3, 9, 12, 0)
    );
    Ok(())
}

#[test]
fn the_day_before_a_holiday_skips_it() -> Result<(), Error> {
    // Thursday 5 March is a holiday.
    let c = cal(&[(3, 5)]);
    assert_eq!(ship_by(&rules(), &c, at(3, 4, 15, 0))?, at(3, 6, 12, 0));
    assert_eq!(ship_by(&rules(), &c, at(3, 4, 10, 0))?, at(3, 4, 17, 0));
    // Confirmed on the holiday itself, in the morning: the next working day.
    assert_eq!(ship_by(&rules(), &c, at(3, 5, 10, 0))?, at(3, 6, 12, 0));
    Ok(())
}

#[test]
fn saturday_confirmation_ships_monday_morning() -> Result<(), Error> {
    assert_eq!(
        ship_by(&rules(), &cal(&[]), at(3, 7, 10, 0))?,
        at(3, 9, 12, 0)
    );
    assert_eq!(
        ship_by(&rules(), &cal(&[]), at(3, 8, 23, 0))?,
        at(3, 9, 12, 0)
    );
    Ok(())
}

#[test]
fn cutoff_and_morning_are_configurable() -> Result<(), Error> {
    let r = DeskRules {
        cutoff: NaiveTime::from_hms_opt(11, 0, 0).expect("time"),
        next_day_by: NaiveTime::from_hms_opt(10, 30, 0).expect("time"),
        ..rules()
    };
    assert_eq!(ship_by(&r, &cal(&[]), at(3, 4, 10, 59))?, at(3, 4, 17, 0));
    assert_eq!(ship_by(&r, &cal(&[]), at(3, 4, 11, 1))?, at(3, 5, 10, 30));
    Ok(())
}

#[test]
fn return_due_ten_working_days_across_a_weekend_and_a_holiday() -> Result<(), Error> {
    // Delivered Wednesday 4 March; Thursday 12 March is a holiday.
    // Working days after: 5, 6, 9, 10, 11, 13, 16, 17, 18, 19.
    let c = cal(&[(3, 12)]);
    assert_eq!(
        return_due(&rules(), &c, at(3, 4, 16, 30))?,
        at(3, 19, 17, 0)
    );
    // The reminder: two working days before, at the close of 17 March.
    assert_eq!(
        return_reminder(&rules(), &c, at(3, 4, 16, 30))?,
        Some(at(3, 17, 17, 0))
    );
    // Delivered on a Saturday: counting starts on Monday.
    assert_eq!(
        return_due(&rules(), &cal(&[]), at(3, 7, 9, 0))?,
        at(3, 20, 17, 0)
    );
    Ok(())
}

#[test]
fn repair_72_working_hours_is_nine_working_days() -> Result<(), Error> {
    // Received Monday 9 March at 09:00: nine 8-hour days end Thursday 19 March 17:00.
    let c = cal(&[]);
    assert_eq!(repair_due(&rules(), &c, at(3, 9, 9, 0))?, at(3, 19, 17, 0));
    // Received after hours on Friday: counting starts Monday 09:00.
    assert_eq!(repair_due(&rules(), &c, at(3, 6, 18, 0))?, at(3, 19, 17, 0));
    // A holiday in between adds a day.
    let c = cal(&[(3, 12)]);
    assert_eq!(repair_due(&rules(), &c, at(3, 9, 9, 0))?, at(3, 20, 17, 0));
    Ok(())
}

#[test]
fn a_calendar_without_working_days_is_an_error_naming_it() {
    let never = Calendar::new("never", "UTC", Default::default(), []).expect("calendar");
    let err = ship_by(&rules(), &never, at(3, 4, 10, 0))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("rma.calendar") && err.contains("never"),
        "{err}"
    );
}

#[test]
fn every_illegal_transition_is_refused() {
    use ShipmentState::*;
    let allowed = [
        (Requested, Approved),
        (Requested, Refused),
        (Requested, Cancelled),
        (Approved, Picked),
        (Approved, Cancelled),
        (Picked, Shipped),
        (Picked, Cancelled),
        (Shipped, Delivered),
        (Delivered, Returned),
        (Returned, Received),
        (Received, Repaired),
        (Received, Scrapped),
        (Repaired, Closed),
        (Scrapped, Closed),
    ];
    let mut refused = 0;
    for &from in ShipmentState::ALL {
        for &to in ShipmentState::ALL {
            let r = from.transition(to);
            if allowed.contains(&(from, to)) {
                assert_eq!(r.ok(), Some(to), "{from} -> {to} must be allowed");
            } else {
                refused += 1;
                match r {
                    Err(Error::IllegalTransition {
                        from: f,
                        to: t,
                        reason,
                    }) => {
                        assert_eq!((f.as_str(), t.as_str()), (from.as_str(), to.as_str()));
                        assert!(!reason.is_empty());
                    }
                    other => panic!("{from} -> {to} must be refused, got {other:?}"),
                }
            }
        }
    }
    assert_eq!(refused, 12 * 12 - allowed.len());
}

#[test]
fn reservations_are_held_while_approved_or_picked() {
    use ShipmentState::*;
    for &s in ShipmentState::ALL {
        assert_eq!(s.holds_reservation(), matches!(s, Approved | Picked), "{s}");
    }
}
