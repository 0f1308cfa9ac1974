//! Faults: what the agent detected, keyed so the server files one case per
//! fault and notes recovery on the same case.
//!
//! A fault is identified by a [`FaultKey`] (device + rule + instance), which
//! stays the same from the moment the fault is raised until it clears. Each
//! [`FaultEvent`] additionally carries an idempotency key, unique per event,
//! so that an event delivered twice (for example after the agent replays its
//! spool) is recognised and applied once.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A fault being raised or cleared on one [`FaultKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Protocol version of the sender; see [`crate::check_version`].
    pub protocol_version: u32,
    /// Unique per event (not per fault); the server applies an event with a
    /// key it has already seen at most once, so redelivery is harmless.
    pub idempotency_key: Uuid,
    /// The agent's identity, from [`crate::EnrollResponse::agent_id`].
    pub agent_id: Uuid,
    /// Which fault this event is about; the same key on raise and clear.
    pub fault_key: FaultKey,
    /// Whether the fault started or ended.
    pub transition: FaultTransition,
    /// How serious the fault is.
    pub severity: Severity,
    /// When the agent observed the transition (UTC); after hold-down this is
    /// the time the condition began, not the time the event was sent.
    pub observed_at: DateTime<Utc>,
    /// One line a person can read, e.g. `Gi1/0/1 on sw1 is down`.
    pub summary: String,
    /// Readings that support the finding, oldest first.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

/// One reading attached to a [`FaultEvent`] as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What was read (e.g. `ifOperStatus.10101`).
    pub name: String,
    /// The value read, as text (e.g. `down(2)`).
    pub value: String,
    /// When it was read (UTC).
    pub observed_at: DateTime<Utc>,
}

/// Whether a [`FaultEvent`] starts or ends a fault. Encoded as `raised` or
/// `cleared`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTransition {
    /// The fault condition began (after any hold-down).
    Raised,
    /// The fault condition ended (after any hysteresis).
    Cleared,
}

/// Severity of a fault, encoded as `critical`, `major`, `minor` or `warning`.
///
/// Ordered from least to most serious: `Warning < Minor < Major < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Something to look at; service is not affected.
    Warning,
    /// Service degraded slightly or redundancy reduced.
    Minor,
    /// Service significantly degraded.
    Major,
    /// Service down.
    Critical,
}

/// The detection rule that found a fault. Encoded in `snake_case`, which is
/// also the `rule` part of a [`FaultKey`]'s text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultRule {
    /// The device does not answer SNMP (`device_unreachable`).
    DeviceUnreachable,
    /// An interface is operationally down (`link_down`).
    LinkDown,
    /// A sensor reports a failure (`sensor_failure`).
    SensorFailure,
    /// A power supply reports a failure (`power_supply_failure`).
    PowerSupplyFailure,
    /// A reading crossed a threshold for longer than allowed (`threshold`).
    Threshold,
    /// The device restarted (`cold_start`).
    ColdStart,
    /// The server stopped hearing from an agent (`agent_lost`).
    AgentLost,
    /// The agent's host rebooted (`host_reboot`).
    HostReboot,
}

impl FaultRule {
    /// Every rule, in declaration order.
    pub const ALL: [FaultRule; 8] = [
        FaultRule::DeviceUnreachable,
        FaultRule::LinkDown,
        FaultRule::SensorFailure,
        FaultRule::PowerSupplyFailure,
        FaultRule::Threshold,
        FaultRule::ColdStart,
        FaultRule::AgentLost,
        FaultRule::HostReboot,
    ];

    /// The rule's `snake_case` name, as used in JSON and in [`FaultKey`] text.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultRule::DeviceUnreachable => "device_unreachable",
            FaultRule::LinkDown => "link_down",
            FaultRule::SensorFailure => "sensor_failure",
            FaultRule::PowerSupplyFailure => "power_supply_failure",
            FaultRule::Threshold => "threshold",
            FaultRule::ColdStart => "cold_start",
            FaultRule::AgentLost => "agent_lost",
            FaultRule::HostReboot => "host_reboot",
        }
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultRule {
    type Err = FaultKeyError;

    /// Parses a rule's `snake_case` name; fails with
    /// [`FaultKeyError::UnknownRule`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultRule::ALL
            .into_iter()
            .find(|rule| rule.as_str() == s)
            .ok_or_else(|| FaultKeyError::UnknownRule { rule: s.to_owned() })
    }
}

/// The stable identity of one fault: which device, which rule, and which
/// instance of the rule on that device.
///
/// Its text form ([`FaultKey::as_string`], parsed back by [`FromStr`]) is
/// `device/rule/instance`, e.g. `sw1/link_down/GigabitEthernet1/0/1`. The
/// device may not contain `/`; the instance may (interface names do) and may
/// be empty for rules that concern the whole device, e.g.
/// `sw1/device_unreachable/`. The JSON form is an object with the three
/// fields; decoding it applies the same checks as [`FaultKey::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "FaultKeyFields")]
pub struct FaultKey {
    /// The device's name as configured on the agent
    /// ([`crate::DeviceInventory::target`]), or the host name for faults of
    /// the agent's own host. Non-empty, without `/`.
    pub device: String,
    /// The rule that detected the fault.
    pub rule: FaultRule,
    /// Which instance of the rule on the device (interface name, sensor
    /// index, threshold name, ...); empty when the rule concerns the whole
    /// device.
    pub instance: String,
}

/// Wire shape of [`FaultKey`], validated before it becomes one.
#[derive(Deserialize)]
struct FaultKeyFields {
    device: String,
    rule: FaultRule,
    instance: String,
}

impl TryFrom<FaultKeyFields> for FaultKey {
    type Error = FaultKeyError;

    fn try_from(fields: FaultKeyFields) -> Result<Self, Self::Error> {
        FaultKey::new(fields.device, fields.rule, fields.instance)
    }
}

impl FaultKey {
    /// Builds a key, checking that `device` is non-empty and free of `/` so
    /// that the text form parses back to the same key.
    pub fn new(
        device: impl Into<String>,
        rule: FaultRule,
        instance: impl Into<String>,
    ) -> Result<Self, FaultKeyError> {
        let device = device.into();
        if device.is_empty() {
            return Err(FaultKeyError::EmptyDevice);
        }
        if device.contains('/') {
            return Err(FaultKeyError::SlashInDevice { device });
        }
        Ok(FaultKey {
            device,
            rule,
            instance: instance.into(),
        })
    }

    /// The stable text form `device/rule/instance`.
    pub fn as_string(&self) -> String {
        format!("{}/{}/{}", self.device, self.rule.as_str(), self.instance)
    }
}

impl fmt::Display for FaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.device,
            self.rule.as_str(),
            self.instance
        )
    }
}

impl FromStr for FaultKey {
    type Err = FaultKeyError;

    /// Parses the text form `device/rule/instance`: the device runs up to the
    /// first `/`, the rule up to the second, and the instance is everything
    /// after it (possibly empty, possibly containing `/`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(FaultKeyError::Empty);
        }
        let (device, rest) = s
            .split_once('/')
            .ok_or_else(|| FaultKeyError::MissingRule { key: s.to_owned() })?;
        let (rule, instance) = rest
            .split_once('/')
            .ok_or_else(|| FaultKeyError::MissingInstance { key: s.to_owned() })?;
        if device.is_empty() {
            return Err(FaultKeyError::EmptyDevice);
        }
        if rule.is_empty() {
            return Err(FaultKeyError::MissingRule { key: s.to_owned() });
        }
        let rule = rule.parse::<FaultRule>()?;
        FaultKey::new(device, rule, instance)
    }
}

/// Why a [`FaultKey`] (or [`FaultRule`]) could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKeyError {
    /// The text was empty.
    Empty,
    /// The device part was empty.
    EmptyDevice,
    /// The device name contains `/`, which would make the text form ambiguous.
    SlashInDevice {
        /// The offending device name.
        device: String,
    },
    /// The text has no rule part (no `/` after the device, or an empty rule).
    MissingRule {
        /// The text that was parsed.
        key: String,
    },
    /// The text has no `/` between the rule and the instance.
    MissingInstance {
        /// The text that was parsed.
        key: String,
    },
    /// The rule part names no known [`FaultRule`].
    UnknownRule {
        /// The unrecognised rule name.
        rule: String,
    },
}

impl fmt::Display for FaultKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKeyError::Empty => {
                f.write_str("fault key is empty; expected `device/rule/instance`")
            }
            FaultKeyError::EmptyDevice => f.write_str("fault key has an empty device name"),
            FaultKeyError::SlashInDevice { device } => {
                write!(f, "fault key device name `{device}` must not contain `/`")
            }
            FaultKeyError::MissingRule { key } => write!(
                f,
                "fault key `{key}` has no rule; expected `device/rule/instance`"
            ),
            FaultKeyError::MissingInstance { key } => write!(
                f,
                "fault key `{key}` has no instance part; expected `device/rule/instance` \
                 (the instance may be empty, the `/` before it may not be missing)"
            ),
            FaultKeyError::UnknownRule { rule } => {
                write!(f, "unknown fault rule `{rule}`; expected one of ")?;
                for (i, known) in FaultRule::ALL.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(known.as_str())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for FaultKeyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn fault_event_round_trip() {
        for value in [samples::fault_raised(), samples::fault_cleared()] {
            let text = serde_json::to_string(&value).expect("serialize");
            let back: FaultEvent = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, value);

            let key_text = serde_json::to_string(&value.fault_key).expect("serialize");
            let key: FaultKey = serde_json::from_str(&key_text).expect("deserialize");
            assert_eq!(key, value.fault_key);

            let evidence_text = serde_json::to_string(&value.evidence[0]).expect("serialize");
            let evidence: Evidence = serde_json::from_str(&evidence_text).expect("deserialize");
            assert_eq!(evidence, value.evidence[0]);
        }
    }

    #[test]
    fn small_enums_round_trip_as_snake_case() {
        for (value, text) in [
            (FaultTransition::Raised, "\"raised\""),
            (FaultTransition::Cleared, "\"cleared\""),
        ] {
            assert_eq!(serde_json::to_string(&value).expect("serialize"), text);
            assert_eq!(
                serde_json::from_str::<FaultTransition>(text).expect("deserialize"),
                value
            );
        }
        for (value, text) in [
            (Severity::Critical, "\"critical\""),
            (Severity::Major, "\"major\""),
            (Severity::Minor, "\"minor\""),
            (Severity::Warning, "\"warning\""),
        ] {
            assert_eq!(serde_json::to_string(&value).expect("serialize"), text);
            assert_eq!(
                serde_json::from_str::<Severity>(text).expect("deserialize"),
                value
            );
        }
    }

    #[test]
    fn severity_orders_by_seriousness() {
        assert!(Severity::Warning < Severity::Minor);
        assert!(Severity::Minor < Severity::Major);
        assert!(Severity::Major < Severity::Critical);
    }

    #[test]
    fn rule_names_match_serde_names() {
        for rule in FaultRule::ALL {
            let json = serde_json::to_string(&rule).expect("serialize");
            assert_eq!(json, format!("\"{}\"", rule.as_str()));
            assert_eq!(rule.as_str().parse::<FaultRule>(), Ok(rule));
            assert_eq!(
                serde_json::from_str::<FaultRule>(&json).expect("deserialize"),
                rule
            );
        }
    }

    #[test]
    fn fault_key_text_round_trip() {
        let cases = [
            ("sw1", FaultRule::LinkDown, "GigabitEthernet1/0/1"),
            ("sw1", FaultRule::DeviceUnreachable, ""),
            ("core-rtr.example.net", FaultRule::Threshold, "cpu_5min"),
            ("host", FaultRule::HostReboot, "a//b/"),
        ];
        for rule in FaultRule::ALL {
            let key = FaultKey::new("dev", rule, "x").expect("valid key");
            assert_eq!(key.as_string().parse::<FaultKey>(), Ok(key));
        }
        for (device, rule, instance) in cases {
            let key = FaultKey::new(device, rule, instance).expect("valid key");
            let text = key.as_string();
            assert_eq!(text, format!("{device}/{}/{instance}", rule.as_str()));
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<FaultKey>(), Ok(key));
        }
    }

    #[test]
    fn fault_key_parse_splits_at_first_two_slashes() {
        let key: FaultKey = "sw1/link_down/Gi1/0/1".parse().expect("parse");
        assert_eq!(key.device, "sw1");
        assert_eq!(key.rule, FaultRule::LinkDown);
        assert_eq!(key.instance, "Gi1/0/1");
    }

    #[test]
    fn fault_key_rejects_malformed_text() {
        let cases: [(&str, FaultKeyError); 7] = [
            ("", FaultKeyError::Empty),
            ("sw1", FaultKeyError::MissingRule { key: "sw1".into() }),
            (
                "sw1//x",
                FaultKeyError::MissingRule {
                    key: "sw1//x".into(),
                },
            ),
            (
                "sw1/link_down",
                FaultKeyError::MissingInstance {
                    key: "sw1/link_down".into(),
                },
            ),
            ("/link_down/x", FaultKeyError::EmptyDevice),
            (
                "sw1/link_up/x",
                FaultKeyError::UnknownRule {
                    rule: "link_up".into(),
                },
            ),
            (
                "sw1/LinkDown/x",
                FaultKeyError::UnknownRule {
                    rule: "LinkDown".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            let err = text.parse::<FaultKey>().expect_err(text);
            assert_eq!(err, expected, "{text}");
        }
    }

    #[test]
    fn fault_key_errors_name_the_problem() {
        let err = "sw1/link_up/x"
            .parse::<FaultKey>()
            .expect_err("unknown rule");
        let text = err.to_string();
        assert!(text.contains("`link_up`"), "{text}");
        assert!(text.contains("link_down"), "{text}");

        let err = "sw1/link_down"
            .parse::<FaultKey>()
            .expect_err("no instance");
        assert!(err.to_string().contains("`sw1/link_down`"), "{err}");

        let err = "".parse::<FaultKey>().expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");

        let err = FaultKey::new("a/b", FaultRule::LinkDown, "x").expect_err("slash");
        assert!(err.to_string().contains("`a/b`"), "{err}");
    }

    #[test]
    fn fault_key_json_is_validated() {
        let err = serde_json::from_value::<FaultKey>(serde_json::json!({
            "device": "a/b",
            "rule": "link_down",
            "instance": "x",
        }))
        .expect_err("slash in device");
        assert!(err.to_string().contains("must not contain"), "{err}");

        let err = serde_json::from_value::<FaultKey>(serde_json::json!({
            "device": "",
            "rule": "link_down",
            "instance": "x",
        }))
        .expect_err("empty device");
        assert!(err.to_string().contains("empty device"), "{err}");
    }

    #[test]
    fn unknown_enum_values_are_rejected_naming_the_value() {
        let mut json = serde_json::to_value(samples::fault_raised()).expect("serialize");
        json["fault_key"]["rule"] = serde_json::json!("link_flapping");
        let err = serde_json::from_value::<FaultEvent>(json).expect_err("unknown rule");
        assert!(err.to_string().contains("link_flapping"), "{err}");

        let mut json = serde_json::to_value(samples::fault_raised()).expect("serialize");
        json["severity"] = serde_json::json!("catastrophic");
        let err = serde_json::from_value::<FaultEvent>(json).expect_err("unknown severity");
        assert!(err.to_string().contains("catastrophic"), "{err}");

        let mut json = serde_json::to_value(samples::fault_raised()).expect("serialize");
        json["transition"] = serde_json::json!("acknowledged");
        let err = serde_json::from_value::<FaultEvent>(json).expect_err("unknown transition");
        assert!(err.to_string().contains("acknowledged"), "{err}");
    }
}
