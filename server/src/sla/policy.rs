//! SLA policies: per priority, the response target, the reminder offsets,
//! the reassign point, the resolution target, and the escalation matrix of
//! SPEC.md 4 (time since open without diagnosis -> manager level); which case
//! statuses pause which clock; whether the 45-minute reassignment prompts the
//! dispatcher or reassigns automatically.
//!
//! A [`PolicySpec`] is what a person writes (config file or API): every field
//! optional, durations in human units (`45m`, `72h`, `2s`, `1h 30m`, parsed by
//! `humantime`, the common crate for exactly this). [`Policy::from_spec`]
//! fills the gaps from [`Policy::default`] (the SPEC.md values) and validates,
//! naming the offending key. All durations are measured on the contract's
//! business calendar (see `sla::calendar`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use utoipa::ToSchema;

use crate::cases::{Priority, Status};

/// A duration written for people: `45m`, `72h`, `2s`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub Duration);

impl Span {
    pub const fn secs(s: u64) -> Span {
        Span(Duration::from_secs(s))
    }
    pub const fn mins(m: u64) -> Span {
        Span(Duration::from_secs(m * 60))
    }
    pub const fn hours(h: u64) -> Span {
        Span(Duration::from_secs(h * 3600))
    }
    /// As a chrono duration (saturating at chrono's range).
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Span, String> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?} is not a duration like 45m, 72h, 2s or 1h 30m ({e})"))?;
        if d > Duration::from_secs(10 * 365 * 86_400) {
            return Err(format!("{s:?} is longer than ten years"));
        }
        Ok(Span(d))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Span {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A duration such as 45m, 72h, 2s or 1h 30m"))
            .examples([serde_json::json!("45m")])
            .into()
    }
}

impl ToSchema for Span {}

/// What happens at the reassign point when the engineer has not responded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReassignMode {
    /// Prompt the dispatcher to reassign.
    Prompt,
    /// Reassign to the next available engineer (round-robin) and tell them to
    /// respond at once.
    Automatic,
}

/// The clocks a case runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// Until the engineer responds to the customer.
    Response,
    /// Until the case is resolved.
    Resolution,
}

/// Targets for one priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Targets {
    /// The engineer must respond within this.
    pub response: Span,
    /// Prompt the dispatcher to remind the engineer at these offsets.
    pub reminders: Vec<Span>,
    /// Reassign (prompt or automatic) at this offset if still no response.
    pub reassign_at: Option<Span>,
    /// The case should be resolved within this.
    pub resolution: Option<Span>,
    /// Escalation by time without diagnosis: after each offset, notify the
    /// manager level (1 response-center manager .. 5 integration general manager).
    pub escalation: Vec<Escalation>,
}

/// One row of the escalation matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub after: Span,
    /// Manager level 1..=5.
    pub level: u8,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    pub name: String,
    /// Business calendar name; none means the contract's coverage preset.
    pub calendar: Option<String>,
    pub reassign: ReassignMode,
    pub targets: BTreeMap<Priority, Targets>,
    /// Statuses that pause each clock.
    pub pause: BTreeMap<ClockKind, Vec<Status>>,
}

/// A policy as a person writes it; absent fields take the defaults.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub name: String,
    #[serde(default)]
    pub calendar: Option<String>,
    #[serde(default)]
    pub reassign: Option<ReassignMode>,
    #[serde(default)]
    pub targets: BTreeMap<Priority, TargetsSpec>,
    #[serde(default)]
    pub pause: BTreeMap<ClockKind, Vec<Status>>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetsSpec {
    #[serde(default)]
    pub response: Option<Span>,
    #[serde(default)]
    pub reminders: Option<Vec<Span>>,
    /// `"off"` disables reassignment.
    #[serde(default)]
    pub reassign_at: Option<Toggle>,
    /// `"off"` disables the resolution target.
    #[serde(default)]
    pub resolution: Option<Toggle>,
    #[serde(default)]
    pub escalation: Option<Vec<Escalation>>,
}

/// A duration or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
pub enum Toggle {
    Off,
    At(Span),
}

impl<'de> Deserialize<'de> for Toggle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Toggle, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(Toggle::Off);
        }
        text.parse()
            .map(Toggle::At)
            .map_err(serde::de::Error::custom)
    }
}

/// A policy that fails validation, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PolicyError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError {
        key: key.into(),
        message: message.into(),
    }
}

const ALL_PRIORITIES: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

impl Default for Policy {
    /// SPEC.md 4: respond within 30 minutes (P1, P2) or 1 hour (P3, P4);
    /// remind at 30 and 45 minutes; at 45 minutes prompt the dispatcher to
    /// reassign; escalate by the matrix. Resolution targets are not in the
    /// SPEC; the defaults (P1 24h, P2 48h, P3 120h, P4 240h) are ours.
    /// Waiting on the customer pauses both clocks; waiting on vendor or parts
    /// pauses nothing.
    fn default() -> Policy {
        let esc = |rows: &[(u64, u8)]| {
            rows.iter()
                .map(|(h, level)| Escalation {
                    after: Span::hours(*h),
                    level: *level,
                })
                .collect::<Vec<_>>()
        };
        let targets = |response: Span, resolution: u64, escalation: Vec<Escalation>| Targets {
            response,
            reminders: vec![Span::mins(30), Span::mins(45)],
            reassign_at: Some(Span::mins(45)),
            resolution: Some(Span::hours(resolution)),
            escalation,
        };
        let mut t = BTreeMap::new();
        t.insert(
            Priority::P1,
            targets(
                Span::mins(30),
                24,
                esc(&[(1, 1), (4, 2), (24, 3), (48, 4), (72, 5)]),
            ),
        );
        t.insert(
            Priority::P2,
            targets(
                Span::mins(30),
                48,
                esc(&[(4, 1), (24, 2), (48, 3), (72, 4)]),
            ),
        );
        t.insert(
            Priority::P3,
            targets(Span::hours(1), 120, esc(&[(24, 1), (48, 2), (72, 3)])),
        );
        t.insert(
            Priority::P4,
            targets(Span::hours(1), 240, esc(&[(48, 1), (72, 2)])),
        );
        let mut pause = BTreeMap::new();
        pause.insert(ClockKind::Response, vec![Status::WaitingCustomer]);
        pause.insert(ClockKind::Resolution, vec![Status::WaitingCustomer]);
        Policy {
            name: "default".into(),
            calendar: None,
            reassign: ReassignMode::Prompt,
            targets: t,
            pause,
        }
    }
}

impl Policy {
    /// Fill a spec's gaps from the defaults and validate the result.
    pub fn from_spec(spec: &PolicySpec) -> Result<Policy, PolicyError> {
        let base = Policy::default();
        let name = spec.name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(err("name", "must be 1 to 64 characters"));
        }
        let mut targets = base.targets.clone();
        for (p, ts) in &spec.targets {
            let Some(t) = targets.get_mut(p) else {
                continue;
            };
            if let Some(r) = ts.response {
                t.response = r;
            }
            if let Some(r) = &ts.reminders {
                t.reminders = r.clone();
            }
            match ts.reassign_at {
                Some(Toggle::Off) => t.reassign_at = None,
                Some(Toggle::At(s)) => t.reassign_at = Some(s),
                None => {}
            }
            match ts.resolution {
                Some(Toggle::Off) => t.resolution = None,
                Some(Toggle::At(s)) => t.resolution = Some(s),
                None => {}
            }
            if let Some(e) = &ts.escalation {
                t.escalation = e.clone();
            }
        }
        let mut pause = base.pause.clone();
        for (k, v) in &spec.pause {
            pause.insert(*k, v.clone());
        }
        let policy = Policy {
            name: name.to_string(),
            calendar: spec.calendar.clone().filter(|c| !c.trim().is_empty()),
            reassign: spec.reassign.unwrap_or(base.reassign),
            targets,
            pause,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Every rule a policy must keep; errors name the key.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for p in ALL_PRIORITIES {
            let key = |f: &str| format!("targets.{p}.{f}");
            let t = self
                .targets
                .get(&p)
                .ok_or_else(|| err(format!("targets.{p}"), "missing"))?;
            if t.response.0.is_zero() {
                return Err(err(key("response"), "must be longer than zero"));
            }
            for (i, w) in t.reminders.windows(2).enumerate() {
                if w[1] <= w[0] {
                    return Err(err(
                        format!("{}[{}]", key("reminders"), i + 1),
                        "reminders must come in increasing order",
                    ));
                }
            }
            if t.reminders.iter().any(|r| r.0.is_zero()) {
                return Err(err(
                    key("reminders"),
                    "a reminder at zero would fire on opening",
                ));
            }
            if let Some(r) = t.reassign_at {
                if r.0.is_zero() {
                    return Err(err(
                        key("reassign_at"),
                        "must be longer than zero (or \"off\")",
                    ));
                }
            }
            if let Some(r) = t.resolution {
                if r <= t.response {
                    return Err(err(
                        key("resolution"),
                        format!("{r} is not longer than the response target {}", t.response),
                    ));
                }
            }
            let mut prev: Option<Escalation> = None;
            for (i, e) in t.escalation.iter().enumerate() {
                let k = format!("{}[{i}]", key("escalation"));
                if !(1..=5).contains(&e.level) {
                    return Err(err(
                        format!("{k}.level"),
                        format!("{} is not a manager level 1..5", e.level),
                    ));
                }
                if let Some(pv) = prev {
                    if e.after <= pv.after {
                        return Err(err(
                            format!("{k}.after"),
                            "escalation offsets must increase",
                        ));
                    }
                    if e.level < pv.level {
                        return Err(err(
                            format!("{k}.level"),
                            "escalation never goes down a level",
                        ));
                    }
                }
                prev = Some(*e);
            }
        }
        for (clock, statuses) in &self.pause {
            for (i, s) in statuses.iter().enumerate() {
                if !matches!(
                    s,
                    Status::WaitingCustomer | Status::WaitingVendor | Status::WaitingParts
                ) {
                    return Err(err(
                        format!(
                            "pause.{}[{i}]",
                            serde_json::to_value(clock)
                                .ok()
                                .and_then(|v| v.as_str().map(String::from))
                                .unwrap_or_default()
                        ),
                        format!("{s} cannot pause a clock; only the waiting statuses can"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn targets(&self, p: Priority) -> Option<&Targets> {
        self.targets.get(&p)
    }

    /// Whether `status` pauses `clock`.
    pub fn pauses(&self, clock: ClockKind, status: Status) -> bool {
        self.pause.get(&clock).is_some_and(|s| s.contains(&status))
    }

    /// The highest manager level due after `elapsed` working time without
    /// diagnosis, if any.
    pub fn escalation_level(&self, p: Priority, elapsed: Span) -> Option<u8> {
        self.targets(p)?
            .escalation
            .iter()
            .filter(|e| e.after <= elapsed)
            .map(|e| e.level)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_human_units() {
        for (text, secs) in [
            ("45m", 2700),
            ("72h", 259_200),
            ("2s", 2),
            ("1h 30m", 5400),
            ("3days", 259_200),
        ] {
            assert_eq!(
                text.parse::<Span>().map(|s| s.0.as_secs()),
                Ok(secs),
                "{text}"
            );
        }
        for bad in ["", "45", "fortyfive minutes", "-5m", "20years"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
        assert_eq!(Span::mins(45).to_string(), "45m");
    }

    #[test]
    fn defaults_are_the_spec() {
        let p = Policy::default();
        assert!(p.validate().is_ok());
        let t = |pr| p.targets(pr).map(|t| t.response);
        assert_eq!(
            (t(Priority::P1), t(Priority::P2)),
            (Some(Span::mins(30)), Some(Span::mins(30)))
        );
        assert_eq!(
            (t(Priority::P3), t(Priority::P4)),
            (Some(Span::hours(1)), Some(Span::hours(1)))
        );
        // SPEC.md 4's matrix, row by row.
        let rows = [
            (1, [Some(1), None, None, None]),
            (4, [Some(2), Some(1), None, None]),
            (24, [Some(3), Some(2), Some(1), None]),
            (48, [Some(4), Some(3), Some(2), Some(1)]),
            (72, [Some(5), Some(4), Some(3), Some(2)]),
        ];
        for (h, levels) in rows {
            for (pr, want) in ALL_PRIORITIES.into_iter().zip(levels) {
                assert_eq!(p.escalation_level(pr, Span::hours(h)), want, "{h}h {pr}");
            }
        }
        assert_eq!(p.escalation_level(Priority::P1, Span::mins(59)), None);
        assert!(p.pauses(ClockKind::Response, Status::WaitingCustomer));
        assert!(!p.pauses(ClockKind::Resolution, Status::WaitingParts));
        assert_eq!(p.reassign, ReassignMode::Prompt);
    }

    #[test]
    fn specs_override_and_errors_name_the_key() {
        let spec: PolicySpec = toml::from_str(
            r#"
            name = "fast"
            reassign = "automatic"
            [targets.P1]
            response = "15m"
            reminders = ["5m", "10m"]
            reassign_at = "12m"
            resolution = "off"
            [pause]
            response = ["waiting_customer", "waiting_vendor"]
            "#,
        )
        .unwrap_or_default();
        let p = Policy::from_spec(&spec).map_err(|e| e.to_string());
        let p = p.as_ref().ok();
        assert_eq!(
            p.and_then(|p| p.targets(Priority::P1))
                .map(|t| (t.response, t.resolution)),
            Some((Span::mins(15), None))
        );
        assert_eq!(
            p.and_then(|p| p.targets(Priority::P2)).map(|t| t.response),
            Some(Span::mins(30)),
            "others keep defaults"
        );
        assert_eq!(p.map(|p| p.reassign), Some(ReassignMode::Automatic));
        assert!(p.is_some_and(|p| p.pauses(ClockKind::Response, Status::WaitingVendor)));

        let bad = |text: &str| -> String {
            match toml::from_str::<PolicySpec>(text) {
                Err(e) => e.to_string(),
                Ok(spec) => Policy::from_spec(&spec)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            }
        };
        assert!(
            bad("name = \"x\"\n[targets.P2]\nreminders = [\"45m\", \"30m\"]")
                .contains("targets.P2.reminders[1]")
        );
        assert!(bad("name = \"x\"\n[targets.P1]\nresolution = \"10m\"")
            .contains("targets.P1.resolution"));
        assert!(
            bad("name = \"x\"\n[[targets.P3.escalation]]\nafter = \"1h\"\nlevel = 6")
                .contains("targets.P3.escalation[0].level")
        );
        assert!(bad("name = \"x\"\n[[targets.P3.escalation]]\nafter = \"2h\"\nlevel = 2\n[[targets.P3.escalation]]\nafter = \"1h\"\nlevel = 3").contains("targets.P3.escalation[1].after"));
        assert!(bad("name = \"x\"\n[pause]\nresponse = [\"new\"]").contains("pause.response[0]"));
        assert!(bad("name = \"x\"\n[targets.P1]\nresponse = \"soon\"").contains("soon"));
        assert!(bad("name = \"x\"\n[targets.P9]\nresponse = \"1h\"").contains("P9"));
        assert!(bad("name = \"\"").contains("name"));
    }
}
