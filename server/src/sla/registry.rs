//! The configured SLA policies and business calendars, and which apply to a
//! case: the contract names a policy and a calendar; without names, the
//! default policy and the calendar preset of the contract's coverage (24x7
//! when there is no contract), in the device site's time zone, else the
//! configured default time zone.

use chrono_tz::Tz;
use std::collections::BTreeMap;

use super::calendar::{Calendar, CalendarSpec};
use super::policy::{Policy, PolicySpec};
use crate::directory::Coverage;

#[derive(Debug, Clone)]
pub struct Registry {
    /// Time zone for calendars when the case's site has none.
    pub timezone: Tz,
    default_policy: Policy,
    policies: BTreeMap<String, Policy>,
    calendars: BTreeMap<String, Calendar>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            timezone: chrono_tz::UTC,
            default_policy: Policy::default(),
            policies: BTreeMap::new(),
            calendars: BTreeMap::new(),
        }
    }
}

impl Registry {
    /// Build and validate; errors name the config key (`sla.policies[1].targets.P2.response: ...`).
    pub fn from_config(
        timezone: Option<&str>,
        default_policy: Option<&str>,
        policies: &[PolicySpec],
        calendars: &[CalendarSpec],
    ) -> Result<Registry, String> {
        let timezone = match timezone {
            None => chrono_tz::UTC,
            Some(t) => t.parse::<Tz>().map_err(|_| {
                format!("sla.timezone: {t:?} is not an IANA time zone like Europe/Berlin")
            })?,
        };
        let mut reg = Registry {
            timezone,
            ..Registry::default()
        };
        for (i, spec) in policies.iter().enumerate() {
            let p = Policy::from_spec(spec).map_err(|e| format!("sla.policies[{i}].{e}"))?;
            if reg.policies.insert(p.name.clone(), p).is_some() {
                return Err(format!(
                    "sla.policies[{i}].name: {:?} is defined twice",
                    spec.name
                ));
            }
        }
        for (i, spec) in calendars.iter().enumerate() {
            let c =
                Calendar::try_from(spec.clone()).map_err(|e| format!("sla.calendars[{i}].{e}"))?;
            if reg.calendars.insert(c.name().to_string(), c).is_some() {
                return Err(format!(
                    "sla.calendars[{i}].name: {:?} is defined twice",
                    spec.name
                ));
            }
        }
        for (name, p) in &reg.policies {
            if let Some(cal) = &p.calendar {
                if !reg.calendars.contains_key(cal)
                    && Calendar::preset(cal, chrono_tz::UTC).is_err()
                {
                    return Err(format!(
                        "sla.policies ({name}).calendar: no calendar named {cal:?}"
                    ));
                }
            }
        }
        if let Some(name) = default_policy {
            reg.default_policy = reg
                .policies
                .get(name)
                .cloned()
                .ok_or_else(|| format!("sla.default_policy: no policy named {name:?}"))?;
        }
        Ok(reg)
    }

    /// A digest of the effective settings (time zone, default policy, every
    /// policy and calendar, defaults filled in): equal digests, equal clocks.
    /// Serialised through serde, whose maps here are ordered, so the digest
    /// is stable from one start to the next.
    pub fn fingerprint(&self) -> Result<String, String> {
        #[derive(serde::Serialize)]
        struct Effective<'a> {
            timezone: &'a str,
            default_policy: &'a Policy,
            policies: &'a BTreeMap<String, Policy>,
            calendars: &'a BTreeMap<String, Calendar>,
        }
        let text = serde_json::to_string(&Effective {
            timezone: self.timezone.name(),
            default_policy: &self.default_policy,
            policies: &self.policies,
            calendars: &self.calendars,
        })
        .map_err(|e| format!("cannot serialise the SLA settings: {e}"))?;
        use sha2::Digest;
        Ok(hex::encode(sha2::Sha256::digest(text.as_bytes())))
    }

    /// A named policy (not the default).
    pub fn named_policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    /// A calendar by name: a configured or API-managed one, else a preset
    /// (`24x7`, `7x8`, `5x8`) in `tz`.
    pub fn named_calendar(&self, name: &str, tz: Tz) -> Option<Calendar> {
        self.calendars
            .get(name)
            .cloned()
            .or_else(|| Calendar::preset(name, tz).ok())
    }

    /// The named policy, or the default one.
    pub fn policy(&self, name: Option<&str>) -> &Policy {
        name.and_then(|n| self.policies.get(n))
            .unwrap_or(&self.default_policy)
    }

    /// The calendar for a case: by name (contract, then policy), else the
    /// coverage preset, in `tz` (the site's) or the default time zone.
    pub fn calendar(
        &self,
        names: &[Option<&str>],
        coverage: Option<Coverage>,
        tz: Option<Tz>,
    ) -> Result<Calendar, super::calendar::CalendarError> {
        let tz = tz.unwrap_or(self.timezone);
        for name in names.iter().flatten() {
            if let Some(c) = self.calendars.get(*name) {
                return Ok(c.clone());
            }
            if let Ok(c) = Calendar::preset(name, tz) {
                return Ok(c);
            }
        }
        Calendar::preset(coverage.map(|c| c.as_str()).unwrap_or("24x7"), tz)
    }

    /// The policy and calendar of a case: its contract's policy and
    /// calendar names and coverage (none without a contract), and the time
    /// zone of its device's site.
    pub fn for_case(
        &self,
        sla_policy: Option<&str>,
        calendar: Option<&str>,
        coverage: Option<Coverage>,
        tz: Option<Tz>,
    ) -> Result<(Policy, Calendar), super::calendar::CalendarError> {
        let policy = self.policy(sla_policy).clone();
        let calendar = self.calendar(&[calendar, policy.calendar.as_deref()], coverage, tz)?;
        Ok((policy, calendar))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, response: &str) -> PolicySpec {
        let mut s = PolicySpec {
            name: name.into(),
            ..PolicySpec::default()
        };
        s.targets.insert(
            crate::cases::Priority::P1,
            super::super::policy::TargetsSpec {
                response: response.parse().ok(),
                ..Default::default()
            },
        );
        s
    }

    #[test]
    fn fingerprint_follows_the_effective_settings() -> Result<(), String> {
        let a = Registry::from_config(None, None, &[spec("p", "20m")], &[])?;
        let same = Registry::from_config(None, None, &[spec("p", "20m")], &[])?;
        let other = Registry::from_config(None, None, &[spec("p", "25m")], &[])?;
        let zone = Registry::from_config(Some("Europe/Berlin"), None, &[spec("p", "20m")], &[])?;
        let default = Registry::from_config(None, Some("p"), &[spec("p", "20m")], &[])?;
        assert_eq!(a.fingerprint()?, same.fingerprint()?);
        for r in [&other, &zone, &default] {
            assert_ne!(a.fingerprint()?, r.fingerprint()?);
        }
        assert_eq!(
            Registry::default().fingerprint()?,
            Registry::default().fingerprint()?
        );
        Ok(())
    }
}
