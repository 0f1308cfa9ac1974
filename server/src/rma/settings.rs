//! The `[rma]` config section: the spare desk's calendar and rules.

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Deserialize;

use super::rules::DeskRules;

/// `[rma]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmaSpec {
    /// The SLA calendar of the spare desk (a `[[sla.calendars]]` name, an
    /// API-managed one, or a preset). Default `5x8` (Mon-Fri 09:00-17:00).
    pub calendar: Option<String>,
    /// Time zone of a preset calendar. Default: `sla.timezone`.
    pub timezone: Option<String>,
    /// Local cut-off for same-day shipping. Default "14:00".
    pub cutoff: Option<String>,
    /// Local time by which later confirmations ship on the next working
    /// day. Default "12:00".
    pub next_day_by: Option<String>,
    /// Working days after delivery for the faulty part's return. Default 10.
    pub return_working_days: Option<u32>,
    /// Working hours for the swap repair of a received unit. Default 72.
    pub repair_working_hours: Option<u32>,
    /// Working days before the return is due for the reminder. Default 2;
    /// 0 sends none.
    pub return_reminder_working_days: Option<u32>,
}

/// The `[rma]` settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub calendar: String,
    pub timezone: Option<Tz>,
    pub rules: DeskRules,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            calendar: "5x8".into(),
            timezone: None,
            rules: DeskRules::default(),
        }
    }
}

fn time(key: &str, v: &Option<String>, default: NaiveTime) -> Result<NaiveTime, String> {
    match v {
        None => Ok(default),
        Some(t) => NaiveTime::parse_from_str(t, "%H:%M")
            .map_err(|_| format!("rma.{key}: {t:?} is not a local time like 14:00")),
    }
}

impl RmaSpec {
    /// Validates the section; errors name the key.
    pub fn build(&self) -> Result<Settings, String> {
        let d = Settings::default();
        let calendar = match &self.calendar {
            None => d.calendar,
            Some(c) if c.trim().is_empty() => return Err("rma.calendar: is empty".into()),
            Some(c) => c.clone(),
        };
        let timezone = match &self.timezone {
            None => None,
            Some(t) => Some(t.parse::<Tz>().map_err(|_| {
                format!("rma.timezone: {t:?} is not an IANA time zone like Europe/Berlin")
            })?),
        };
        let range = |key: &str, v: Option<u32>, default: u32, min: u32, max: u32| match v {
            None => Ok(default),
            Some(n) if (min..=max).contains(&n) => Ok(n),
            Some(n) => Err(format!("rma.{key}: {n} is out of range {min}..={max}")),
        };
        let rules = DeskRules {
            cutoff: time("cutoff", &self.cutoff, d.rules.cutoff)?,
            next_day_by: time("next_day_by", &self.next_day_by, d.rules.next_day_by)?,
            return_working_days: range(
                "return_working_days",
                self.return_working_days,
                d.rules.return_working_days,
                1,
                365,
            )?,
            repair_working_hours: range(
                "repair_working_hours",
                self.repair_working_hours,
                d.rules.repair_working_hours,
                1,
                10_000,
            )?,
            return_reminder_working_days: range(
                "return_reminder_working_days",
                self.return_reminder_working_days,
                d.rules.return_reminder_working_days,
                0,
                365,
            )?,
        };
        if rules.return_reminder_working_days >= rules.return_working_days {
            return Err(format!(
                "rma.return_reminder_working_days: {} must be fewer than rma.return_working_days ({})",
                rules.return_reminder_working_days, rules.return_working_days
            ));
        }
        Ok(Settings {
            calendar,
            timezone,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(toml: &str) -> String {
        toml::from_str::<RmaSpec>(toml)
            .map_err(|e| e.to_string())
            .and_then(|s| s.build().map(|_| ()))
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let s = RmaSpec::default().build().expect("defaults");
        assert_eq!(s.calendar, "5x8");
        assert_eq!(s.rules, DeskRules::default());
        assert!(err("cutoff = \"2pm\"").contains("rma.cutoff"));
        assert!(err("next_day_by = \"25:00\"").contains("rma.next_day_by"));
        assert!(err("timezone = \"Mars/Base\"").contains("rma.timezone"));
        assert!(err("return_working_days = 0").contains("rma.return_working_days"));
        assert!(err("repair_working_hours = 0").contains("rma.repair_working_hours"));
        assert!(
            err("return_reminder_working_days = 10").contains("rma.return_reminder_working_days")
        );
        assert!(err("cut_off = \"14:00\"").contains("cut_off"));
    }
}
