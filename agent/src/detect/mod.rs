//! Detection: readings in, [`FaultEvent`]s out.
//!
//! [`Detector`] is pure: no I/O and no clock of its own. Every
//! [`Observation`] carries its time, and [`Detector::tick`] takes `now`, so
//! tests drive time by hand. The daemon feeds it SNMP polls, poll failures,
//! host health samples and traps, and spools the events it returns.
//!
//! # The life of a fault
//!
//! Each rule reports a *condition* per [`FaultKey`] (device + rule +
//! instance) as active or not:
//!
//! * active for longer than the rule's hold-down → **raised** (one event,
//!   `observed_at` = when the condition began);
//! * inactive while raised → *clearing*; still inactive after
//!   `max(hold-down, flap_window)` → **cleared** (one event, with
//!   `flap_count` in its evidence);
//! * active again while clearing → a **flap**: no event, the fault stays
//!   raised and its flap count goes up. Fifty flaps in a minute are one
//!   raise and, ten quiet minutes later, one clear with `flap_count` 50.
//!
//! A storm of traps cannot raise more than one fault per key: a key that is
//! raised stays raised until it clears. Reboots (sysUpTime going back, a
//! coldStart/warmStart trap, the host's uptime going back) are one-shot
//! faults: raised and immediately clearing.
//!
//! # Rules
//!
//! | rule | key instance | condition |
//! |---|---|---|
//! | `device_unreachable` | empty | `unreachable_after` polls in a row failed |
//! | `link_down` | interface name | ifAdminStatus up and ifOperStatus down or lowerLayerDown, for `link_hold_down`; a linkDown trap, for `trap_link_hold_down` |
//! | `power_supply_failure` | entity name | a powerSupply entity's sensor non-operational or ENTITY-STATE oper disabled |
//! | `sensor_failure` | entity name | a fan entity likewise (as `fan <name>`), any other sensor non-operational |
//! | `threshold` | `sensor <name>`, `cpu`, `memory`, `disk <mount>` | beyond the configured bound for its duration |
//! | `cold_start` | empty | sysUpTime went back, or a coldStart/warmStart trap |
//! | `host_reboot` | empty | the host's uptime went back |
//!
//! Faults of the agent's host use its host name as device.
//!
//! # Restarts
//!
//! [`Detector::save`] writes the faults (raised, pending and clearing) and
//! the last uptimes to a state file; [`Detector::load`] reads them back, so
//! a restart neither raises an open fault again nor forgets to clear it.
//! The daemon saves only after the events are in the spool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use outpost_protocol::{
    Evidence, FaultEvent, FaultKey, FaultRule, FaultTransition, HealthSample, PhysicalClass,
    Severity, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::DetectConfig;
use crate::fsutil::write_atomic;
use crate::snmp::device::{EntityOperState, IfStatus, SensorStatus};
use crate::snmp::DevicePoll;

#[cfg(test)]
mod tests;

/// Trap OIDs the detector understands (SNMPv2-MIB, IF-MIB).
pub mod trap_oids {
    /// coldStart.
    pub const COLD_START: &str = "1.3.6.1.6.3.1.1.5.1";
    /// warmStart.
    pub const WARM_START: &str = "1.3.6.1.6.3.1.1.5.2";
    /// linkDown.
    pub const LINK_DOWN: &str = "1.3.6.1.6.3.1.1.5.3";
    /// linkUp.
    pub const LINK_UP: &str = "1.3.6.1.6.3.1.1.5.4";
}

const IF_INDEX: &str = "1.3.6.1.2.1.2.2.1.1.";
const IF_DESCR: &str = "1.3.6.1.2.1.2.2.1.2.";
const IF_ADMIN: &str = "1.3.6.1.2.1.2.2.1.7.";
const IF_OPER: &str = "1.3.6.1.2.1.2.2.1.8.";
const IF_NAME: &str = "1.3.6.1.2.1.31.1.1.1.1.";

/// Two reboot reports of one device closer than this are the same reboot
/// (a coldStart trap and the next poll's sysUpTime).
const SAME_REBOOT: TimeDelta = TimeDelta::minutes(5);

/// Something the agent saw.
#[derive(Debug, Clone)]
pub enum Observation {
    /// A successful SNMP poll of a configured target.
    Poll {
        /// The target's name.
        device: String,
        /// What the poll read (`collected_at` is the observation time).
        poll: Box<DevicePoll>,
    },
    /// A poll of a target that failed (no answer, authentication, ...).
    PollFailed {
        /// The target's name.
        device: String,
        /// Why, for the evidence.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A health sample of the agent's own host.
    Host {
        /// The host's name (the device part of its fault keys).
        device: String,
        /// The sample (`collected_at` is the observation time).
        sample: HealthSample,
    },
    /// A trap or inform from a device.
    Trap {
        /// The sending device's target name.
        device: String,
        /// `snmpTrapOID.0`, dotted (a leading dot is ignored).
        trap_oid: String,
        /// The varbinds as (dotted OID, value as text).
        varbinds: Vec<(String, String)>,
        /// When it arrived.
        at: DateTime<Utc>,
    },
}

/// What a rule says about one key in one observation.
struct Finding {
    key: FaultKey,
    active: bool,
    hold: Duration,
    severity: Severity,
    summary: String,
    evidence: Vec<Evidence>,
}

/// One fault the detector tracks: pending (active, not yet raised), raised,
/// or clearing (raised, inactive, clear not yet sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Track {
    severity: Severity,
    summary: String,
    evidence: Vec<Evidence>,
    /// Whether the condition holds now.
    active: bool,
    /// When the current active/inactive spell began.
    since: DateTime<Utc>,
    /// When the pending raise or clear is due.
    due: Option<DateTime<Utc>>,
    /// Set once raised.
    raised_at: Option<DateTime<Utc>>,
    /// Returns while clearing.
    flaps: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DeviceMemo {
    /// Last sysUpTime (centiseconds) and when it was read.
    uptime: Option<(u64, DateTime<Utc>)>,
    /// Failed polls in a row, and when the first of them failed.
    failures: u32,
    first_failure: Option<DateTime<Utc>>,
    last_reboot: Option<DateTime<Utc>>,
    /// ifIndex → interface name, from the last poll (for traps).
    #[serde(skip)]
    if_names: HashMap<u32, String>,
}

/// The state file's content.
#[derive(Serialize, Deserialize)]
struct Persisted {
    faults: Vec<(FaultKey, Track)>,
    devices: BTreeMap<String, DeviceMemo>,
    host_uptime_secs: Option<u64>,
}

/// The fault detector; see the module documentation.
#[derive(Debug)]
pub struct Detector {
    config: DetectConfig,
    agent_id: Uuid,
    faults: BTreeMap<FaultKey, Track>,
    devices: BTreeMap<String, DeviceMemo>,
    host_uptime_secs: Option<u64>,
    dirty: bool,
}

impl Detector {
    /// A detector with no history.
    pub fn new(config: DetectConfig, agent_id: Uuid) -> Self {
        Self {
            config,
            agent_id,
            faults: BTreeMap::new(),
            devices: BTreeMap::new(),
            host_uptime_secs: None,
            dirty: false,
        }
    }

    /// Reads the state saved by [`Detector::save`]; a missing file is an
    /// empty history.
    pub fn load(path: &Path, config: DetectConfig, agent_id: Uuid) -> Result<Self> {
        let mut detector = Self::new(config, agent_id);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(detector),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let state: Persisted = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a detector state file", path.display()))?;
        detector.faults = state.faults.into_iter().collect();
        detector.devices = state.devices;
        detector.host_uptime_secs = state.host_uptime_secs;
        Ok(detector)
    }

    /// Writes the state atomically.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let state = Persisted {
            faults: self
                .faults
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect(),
            devices: self.devices.clone(),
            host_uptime_secs: self.host_uptime_secs,
        };
        let json = serde_json::to_vec(&state).context("encoding the detector state")?;
        write_atomic(path, &json, Some(0o600))
            .with_context(|| format!("writing {}", path.display()))?;
        self.dirty = false;
        Ok(())
    }

    /// Whether the state changed since the last save.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Replaces the rules' settings (on SIGHUP), keeping every fault.
    pub fn set_config(&mut self, config: DetectConfig) {
        self.config = config;
    }

    /// Faults raised and not yet cleared.
    pub fn open_faults(&self) -> usize {
        self.faults
            .values()
            .filter(|t| t.raised_at.is_some())
            .count()
    }

    /// Keys of the raised faults.
    pub fn open_keys(&self) -> Vec<FaultKey> {
        self.faults
            .iter()
            .filter(|(_, t)| t.raised_at.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Forgets devices no longer configured: their faults are cleared now
    /// (a device taken out of the configuration is not broken).
    pub fn retain_devices(
        &mut self,
        devices: &HashSet<String>,
        host: &str,
        now: DateTime<Utc>,
    ) -> Vec<FaultEvent> {
        let gone: Vec<FaultKey> = self
            .faults
            .keys()
            .filter(|k| k.device != host && !devices.contains(&k.device))
            .cloned()
            .collect();
        let mut events = Vec::new();
        for key in gone {
            if let Some(track) = self.faults.remove(&key) {
                if track.raised_at.is_some() {
                    events.push(self.event(&key, &track, FaultTransition::Cleared, now));
                }
            }
            self.dirty = true;
        }
        self.devices
            .retain(|name, _| name == host || devices.contains(name));
        events
    }

    /// Takes in one observation; returns the events it causes (including
    /// any timer that expired by the observation's time).
    pub fn observe(&mut self, observation: Observation) -> Vec<FaultEvent> {
        let (now, findings) = match observation {
            Observation::Poll { device, poll } => {
                let at = poll.collected_at;
                (at, self.poll_findings(&device, &poll))
            }
            Observation::PollFailed { device, error, at } => {
                (at, self.failure_findings(&device, &error, at))
            }
            Observation::Host { device, sample } => {
                let at = sample.collected_at;
                (at, self.host_findings(&device, &sample))
            }
            Observation::Trap {
                device,
                trap_oid,
                varbinds,
                at,
            } => (at, self.trap_findings(&device, &trap_oid, &varbinds, at)),
        };
        let mut events = Vec::new();
        for (finding, at) in findings {
            self.apply(finding, at);
            // One-shot faults need to be raised before they start clearing.
            events.extend(self.tick(at));
        }
        events.extend(self.tick(now));
        events
    }

    /// Fires the raises and clears due by `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<FaultEvent> {
        let mut events = Vec::new();
        let mut cleared = Vec::new();
        let keys: Vec<FaultKey> = self
            .faults
            .iter()
            .filter(|(_, t)| t.due.is_some_and(|due| due <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(track) = self.faults.get_mut(&key) else {
                continue;
            };
            if track.active && track.raised_at.is_none() {
                track.raised_at = Some(track.since);
                track.due = None;
                let track = track.clone();
                events.push(self.event(&key, &track, FaultTransition::Raised, track.since));
            } else if !track.active && track.raised_at.is_some() {
                cleared.push(key);
            } else {
                track.due = None;
            }
            self.dirty = true;
        }
        for key in cleared {
            if let Some(track) = self.faults.remove(&key) {
                events.push(self.event(&key, &track, FaultTransition::Cleared, track.since));
            }
        }
        events
    }

    fn event(
        &self,
        key: &FaultKey,
        track: &Track,
        transition: FaultTransition,
        observed_at: DateTime<Utc>,
    ) -> FaultEvent {
        let mut evidence = track.evidence.clone();
        let summary = match transition {
            FaultTransition::Raised => track.summary.clone(),
            FaultTransition::Cleared => {
                evidence.push(Evidence {
                    name: "flap_count".into(),
                    value: track.flaps.to_string(),
                    observed_at,
                });
                format!("cleared (was: {})", track.summary)
            }
        };
        FaultEvent {
            protocol_version: PROTOCOL_VERSION,
            idempotency_key: Uuid::new_v4(),
            agent_id: self.agent_id,
            fault_key: key.clone(),
            transition,
            severity: track.severity,
            observed_at,
            summary,
            evidence,
        }
    }

    /// Moves one key's condition; see the module documentation.
    fn apply(&mut self, f: Finding, at: DateTime<Utc>) {
        let clear_after = to_delta(f.hold.max(self.config.flap_window));
        let hold = to_delta(f.hold);
        match self.faults.get_mut(&f.key) {
            None => {
                if f.active {
                    self.faults.insert(
                        f.key,
                        Track {
                            severity: f.severity,
                            summary: f.summary,
                            evidence: f.evidence,
                            active: true,
                            since: at,
                            due: Some(at + hold),
                            raised_at: None,
                            flaps: 0,
                        },
                    );
                    self.dirty = true;
                }
            }
            Some(track) => {
                if f.active {
                    if track.raised_at.is_none() || track.active {
                        // Fresher readings; the severity may rise.
                        track.evidence = f.evidence;
                        track.summary = f.summary;
                        track.severity = track.severity.max(f.severity);
                    }
                    if !track.active {
                        track.active = true;
                        track.since = at;
                        track.flaps += 1;
                        track.due = None;
                        self.dirty = true;
                    } else if track.raised_at.is_none() {
                        let due = at + hold;
                        if track.due.is_none_or(|d| due < d) {
                            track.due = Some(due);
                        }
                    }
                } else if track.raised_at.is_none() {
                    self.faults.remove(&f.key);
                    self.dirty = true;
                } else if track.active {
                    track.active = false;
                    track.since = at;
                    track.due = Some(at + clear_after);
                    self.dirty = true;
                }
            }
        }
    }

    fn failure_findings(
        &mut self,
        device: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Vec<(Finding, DateTime<Utc>)> {
        let memo = self.devices.entry(device.to_owned()).or_default();
        memo.failures = memo.failures.saturating_add(1);
        let first = *memo.first_failure.get_or_insert(at);
        let failures = memo.failures;
        self.dirty = true;
        if failures < self.config.unreachable_after {
            return Vec::new();
        }
        let Some(key) = key(device, FaultRule::DeviceUnreachable, "") else {
            return Vec::new();
        };
        vec![(
            Finding {
                key,
                active: true,
                hold: Duration::ZERO,
                severity: Severity::Critical,
                summary: format!("{device} does not answer SNMP ({failures} polls in a row)"),
                evidence: vec![
                    ev("consecutive_failed_polls", failures.to_string(), at),
                    ev("last_error", error.to_owned(), at),
                ],
            },
            first,
        )]
    }

    fn poll_findings(&mut self, device: &str, poll: &DevicePoll) -> Vec<(Finding, DateTime<Utc>)> {
        let at = poll.collected_at;
        let mut findings: Vec<Finding> = Vec::new();
        let memo = self.devices.entry(device.to_owned()).or_default();
        memo.failures = 0;
        memo.first_failure = None;
        self.dirty = true;
        if let Some(key) = key(device, FaultRule::DeviceUnreachable, "") {
            findings.push(inactive(key));
        }

        // Reboot: sysUpTime went back (but not by wrapping at 2^32).
        let memo = self.devices.entry(device.to_owned()).or_default();
        let mut rebooted = None;
        if let Some(now_up) = poll.sys_uptime_centis {
            if let Some((before, before_at)) = memo.uptime {
                let elapsed = (at - before_at).num_milliseconds().max(0) as u64 / 10;
                let wrapped = before + elapsed + 6000 >= 1 << 32;
                if now_up < before && !wrapped {
                    rebooted = Some((before, now_up));
                }
            }
            memo.uptime = Some((now_up, at));
        }
        memo.if_names = poll
            .interfaces
            .iter()
            .map(|i| (i.index, interface_name(&i.name, &i.descr, i.index)))
            .collect();
        let mut out: Vec<(Finding, DateTime<Utc>)> = Vec::new();
        if let Some((before, now_up)) = rebooted {
            out.extend(self.reboot(
                device,
                at,
                vec![
                    ev("sysUpTime.previous", format!("{before}"), at),
                    ev("sysUpTime", format!("{now_up}"), at),
                ],
                "sysUpTime went back",
            ));
        }

        // Links.
        let hold = self.config.link_hold_down;
        let mut seen_links = HashSet::new();
        for iface in &poll.interfaces {
            let name = interface_name(&iface.name, &iface.descr, iface.index);
            let Some(key) = key(device, FaultRule::LinkDown, &name) else {
                continue;
            };
            seen_links.insert(key.clone());
            let active = iface.admin_status == Some(IfStatus::Up)
                && matches!(
                    iface.oper_status,
                    Some(IfStatus::Down | IfStatus::LowerLayerDown)
                );
            findings.push(Finding {
                key,
                active,
                hold,
                severity: Severity::Major,
                summary: format!("{name} on {device} is down"),
                evidence: vec![
                    ev(
                        &format!("ifOperStatus.{}", iface.index),
                        status_text(iface.oper_status),
                        at,
                    ),
                    ev(
                        &format!("ifAdminStatus.{}", iface.index),
                        status_text(iface.admin_status),
                        at,
                    ),
                ],
            });
        }
        if !poll.interfaces.is_empty() {
            // An interface that disappeared (module removed) is no fault.
            for k in self.keys_of(device, &[FaultRule::LinkDown]) {
                if !seen_links.contains(&k) {
                    findings.push(inactive(k));
                }
            }
        }

        // Hardware: sensors and entity states, by entity class.
        let classes: HashMap<u32, PhysicalClass> = poll
            .inventory
            .modules
            .iter()
            .map(|m| (m.index, m.class))
            .collect();
        let mut hardware: BTreeMap<FaultKey, Finding> = BTreeMap::new();
        let mut merge = |finding: Finding| match hardware.get_mut(&finding.key) {
            Some(existing) => {
                if finding.active && !existing.active {
                    *existing = finding;
                } else if finding.active {
                    existing.evidence.extend(finding.evidence);
                }
            }
            None => {
                hardware.insert(finding.key.clone(), finding);
            }
        };
        let sensor_hold = self.config.sensor_hold_down;
        for sensor in &poll.sensors {
            let name = sensor
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("entPhysicalIndex.{}", sensor.index));
            let class = classes.get(&sensor.index).copied();
            if let Some((rule, instance, severity)) = hardware_rule(class, &name) {
                if let Some(key) = key(device, rule, &instance) {
                    let active = sensor.status == SensorStatus::NonOperational;
                    merge(Finding {
                        key,
                        active,
                        hold: sensor_hold,
                        severity,
                        summary: format!("{instance} on {device} failed"),
                        evidence: vec![ev(
                            &format!("entPhySensorOperStatus.{}", sensor.index),
                            format!("{:?}", sensor.status),
                            at,
                        )],
                    });
                }
            }
            for threshold in &self.config.sensor_thresholds {
                let name_ok = threshold
                    .name
                    .as_ref()
                    .is_none_or(|n| name.to_ascii_lowercase().contains(&n.to_ascii_lowercase()));
                let type_ok = threshold
                    .sensor_type
                    .is_none_or(|t| t == sensor.sensor_type);
                if !(name_ok && type_ok) || sensor.status != SensorStatus::Ok {
                    continue;
                }
                let instance = format!("sensor {name}");
                let Some(key) = key(device, FaultRule::Threshold, &instance) else {
                    continue;
                };
                let over = threshold.above.is_some_and(|a| sensor.value > a);
                let under = threshold.below.is_some_and(|b| sensor.value < b);
                let bound = if over {
                    format!("above {}", threshold.above.unwrap_or_default())
                } else {
                    format!("below {}", threshold.below.unwrap_or_default())
                };
                merge(Finding {
                    key,
                    active: over || under,
                    hold: threshold.hold,
                    severity: threshold.severity,
                    summary: format!("{name} on {device} reads {} ({bound})", sensor.value),
                    evidence: vec![ev(
                        &format!("entPhySensorValue.{}", sensor.index),
                        format!("{}", sensor.value),
                        at,
                    )],
                });
            }
        }
        for state in &poll.entity_states {
            let name = state
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("entPhysicalIndex.{}", state.index));
            let class = state.class.or_else(|| classes.get(&state.index).copied());
            if !matches!(class, Some(PhysicalClass::PowerSupply | PhysicalClass::Fan)) {
                continue;
            }
            if let Some((rule, instance, severity)) = hardware_rule(class, &name) {
                if let Some(key) = key(device, rule, &instance) {
                    merge(Finding {
                        key,
                        active: state.oper == EntityOperState::Disabled,
                        hold: sensor_hold,
                        severity,
                        summary: format!("{instance} on {device} failed"),
                        evidence: vec![ev(
                            &format!("entStateOper.{}", state.index),
                            format!("{:?}", state.oper),
                            at,
                        )],
                    });
                }
            }
        }
        let hardware_seen: HashSet<FaultKey> = hardware.keys().cloned().collect();
        findings.extend(hardware.into_values());
        if !poll.sensors.is_empty() || !poll.entity_states.is_empty() {
            for k in self.keys_of(
                device,
                &[
                    FaultRule::SensorFailure,
                    FaultRule::PowerSupplyFailure,
                    FaultRule::Threshold,
                ],
            ) {
                if !hardware_seen.contains(&k) {
                    findings.push(inactive(k));
                }
            }
        }
        out.extend(findings.into_iter().map(|f| (f, at)));
        out
    }

    fn host_findings(
        &mut self,
        device: &str,
        sample: &HealthSample,
    ) -> Vec<(Finding, DateTime<Utc>)> {
        let at = sample.collected_at;
        let mut out = Vec::new();
        if let Some(before) = self.host_uptime_secs {
            if sample.uptime_secs < before {
                if let Some(key) = key(device, FaultRule::HostReboot, "") {
                    out.push((
                        Finding {
                            key,
                            active: true,
                            hold: Duration::ZERO,
                            severity: Severity::Warning,
                            summary: format!("host {device} rebooted"),
                            evidence: vec![
                                ev("uptime_secs.previous", before.to_string(), at),
                                ev("uptime_secs", sample.uptime_secs.to_string(), at),
                            ],
                        },
                        at,
                    ));
                    if let Some(key) = key_for(device, FaultRule::HostReboot, "") {
                        out.push((inactive(key), at));
                    }
                }
            }
        }
        self.host_uptime_secs = Some(sample.uptime_secs);
        self.dirty = true;

        let c = &self.config;
        let mut usage = vec![(
            "cpu".to_owned(),
            f64::from(sample.cpu_percent),
            c.cpu_percent,
            c.cpu_for,
            "cpu_percent".to_owned(),
        )];
        if sample.memory_total_bytes > 0 {
            usage.push((
                "memory".to_owned(),
                percent(sample.memory_used_bytes, sample.memory_total_bytes),
                c.memory_percent,
                c.memory_for,
                "memory_used_percent".to_owned(),
            ));
        }
        let mut seen = HashSet::new();
        for disk in &sample.disks {
            if disk.total_bytes == 0 {
                continue;
            }
            usage.push((
                format!("disk {}", disk.mount_point),
                percent(
                    disk.total_bytes.saturating_sub(disk.available_bytes),
                    disk.total_bytes,
                ),
                c.disk_percent,
                c.disk_for,
                format!("disk_used_percent {}", disk.mount_point),
            ));
        }
        for (instance, value, limit, hold, name) in usage {
            let Some(key) = key(device, FaultRule::Threshold, &instance) else {
                continue;
            };
            seen.insert(key.clone());
            out.push((
                Finding {
                    key,
                    active: value >= limit,
                    hold,
                    severity: Severity::Minor,
                    summary: format!(
                        "{instance} on {device} at {value:.1}% (threshold {limit}% for {})",
                        humantime::format_duration(hold)
                    ),
                    evidence: vec![ev(&name, format!("{value:.1}"), at)],
                },
                at,
            ));
        }
        for k in self.keys_of(device, &[FaultRule::Threshold]) {
            if !seen.contains(&k) {
                out.push((inactive(k), at));
            }
        }
        out
    }

    fn trap_findings(
        &mut self,
        device: &str,
        trap_oid: &str,
        varbinds: &[(String, String)],
        at: DateTime<Utc>,
    ) -> Vec<(Finding, DateTime<Utc>)> {
        let trap_oid = trap_oid.trim_start_matches('.');
        let varbinds: Vec<(&str, &str)> = varbinds
            .iter()
            .map(|(o, v)| (o.trim_start_matches('.'), v.as_str()))
            .collect();
        let evidence = || {
            let mut e = vec![ev("snmpTrapOID.0", trap_oid.to_owned(), at)];
            e.extend(
                varbinds
                    .iter()
                    .take(20)
                    .map(|(o, v)| ev(o, (*v).to_owned(), at)),
            );
            e
        };
        match trap_oid {
            trap_oids::COLD_START | trap_oids::WARM_START => {
                let memo = self.devices.entry(device.to_owned()).or_default();
                // The next poll's smaller sysUpTime is this same reboot.
                memo.uptime = None;
                let what = if trap_oid == trap_oids::COLD_START {
                    "coldStart trap"
                } else {
                    "warmStart trap"
                };
                self.reboot(device, at, evidence(), what)
            }
            trap_oids::LINK_DOWN | trap_oids::LINK_UP => {
                let index = varbinds.iter().find_map(|(oid, value)| {
                    if let Some(i) = oid.strip_prefix(IF_INDEX) {
                        value.trim().parse::<u32>().ok().or_else(|| i.parse().ok())
                    } else {
                        [IF_DESCR, IF_ADMIN, IF_OPER, IF_NAME]
                            .iter()
                            .find_map(|p| oid.strip_prefix(p))
                            .and_then(|i| i.parse::<u32>().ok())
                    }
                });
                let from_trap = |prefix: &str| {
                    index.and_then(|i| {
                        varbinds
                            .iter()
                            .find(|(o, _)| *o == format!("{prefix}{i}"))
                            .map(|(_, v)| (*v).to_owned())
                    })
                };
                let known = index.and_then(|i| {
                    self.devices
                        .get(device)
                        .and_then(|m| m.if_names.get(&i).cloned())
                });
                let name = known
                    .or_else(|| from_trap(IF_NAME).filter(|n| !n.is_empty()))
                    .or_else(|| from_trap(IF_DESCR).filter(|n| !n.is_empty()))
                    .unwrap_or_else(|| match index {
                        Some(i) => format!("ifIndex.{i}"),
                        None => "unknown interface".to_owned(),
                    });
                let admin_down = from_trap(IF_ADMIN).and_then(|v| status_number(&v)) == Some(2);
                let active = trap_oid == trap_oids::LINK_DOWN && !admin_down;
                let Some(key) = key(device, FaultRule::LinkDown, &name) else {
                    return Vec::new();
                };
                vec![(
                    Finding {
                        key,
                        active,
                        hold: self.config.trap_link_hold_down,
                        severity: Severity::Major,
                        summary: format!("{name} on {device} is down"),
                        evidence: evidence(),
                    },
                    at,
                )]
            }
            other => {
                tracing::debug!(device, trap_oid = other, "trap without a detection rule");
                Vec::new()
            }
        }
    }

    /// A one-shot reboot fault: raised now and clearing at once, so a
    /// reboot loop stays one fault with a flap count.
    fn reboot(
        &mut self,
        device: &str,
        at: DateTime<Utc>,
        evidence: Vec<Evidence>,
        what: &str,
    ) -> Vec<(Finding, DateTime<Utc>)> {
        let memo = self.devices.entry(device.to_owned()).or_default();
        if memo
            .last_reboot
            .is_some_and(|last| at - last < SAME_REBOOT && at >= last)
        {
            return Vec::new();
        }
        memo.last_reboot = Some(at);
        let Some(key) = key(device, FaultRule::ColdStart, "") else {
            return Vec::new();
        };
        vec![
            (
                Finding {
                    key: key.clone(),
                    active: true,
                    hold: Duration::ZERO,
                    severity: Severity::Warning,
                    summary: format!("{device} restarted ({what})"),
                    evidence,
                },
                at,
            ),
            (inactive(key), at),
        ]
    }

    fn keys_of(&self, device: &str, rules: &[FaultRule]) -> Vec<FaultKey> {
        self.faults
            .keys()
            .filter(|k| k.device == device && rules.contains(&k.rule))
            .cloned()
            .collect()
    }
}

/// Which rule watches a failed entity of `class`, its instance text and
/// severity.
fn hardware_rule(
    class: Option<PhysicalClass>,
    name: &str,
) -> Option<(FaultRule, String, Severity)> {
    Some(match class {
        Some(PhysicalClass::PowerSupply) => (
            FaultRule::PowerSupplyFailure,
            name.to_owned(),
            Severity::Major,
        ),
        Some(PhysicalClass::Fan) => (
            FaultRule::SensorFailure,
            format!("fan {name}"),
            Severity::Major,
        ),
        _ => (FaultRule::SensorFailure, name.to_owned(), Severity::Minor),
    })
}

fn key(device: &str, rule: FaultRule, instance: &str) -> Option<FaultKey> {
    key_for(device, rule, instance)
}

fn key_for(device: &str, rule: FaultRule, instance: &str) -> Option<FaultKey> {
    match FaultKey::new(device, rule, instance) {
        Ok(key) => Some(key),
        Err(err) => {
            tracing::warn!(device, %err, "cannot key a fault of this device");
            None
        }
    }
}

fn inactive(key: FaultKey) -> Finding {
    Finding {
        key,
        active: false,
        hold: Duration::ZERO,
        severity: Severity::Warning,
        summary: String::new(),
        evidence: Vec::new(),
    }
}

fn ev(name: &str, value: String, at: DateTime<Utc>) -> Evidence {
    Evidence {
        name: name.to_owned(),
        value,
        observed_at: at,
    }
}

fn interface_name(name: &str, descr: &str, index: u32) -> String {
    if !name.is_empty() {
        name.to_owned()
    } else if !descr.is_empty() {
        descr.to_owned()
    } else {
        format!("ifIndex.{index}")
    }
}

fn status_text(status: Option<IfStatus>) -> String {
    match status {
        Some(IfStatus::Up) => "up(1)".into(),
        Some(IfStatus::Down) => "down(2)".into(),
        Some(IfStatus::Testing) => "testing(3)".into(),
        Some(IfStatus::Unknown) => "unknown(4)".into(),
        Some(IfStatus::Dormant) => "dormant(5)".into(),
        Some(IfStatus::NotPresent) => "notPresent(6)".into(),
        Some(IfStatus::LowerLayerDown) => "lowerLayerDown(7)".into(),
        Some(IfStatus::Other(n)) => format!("{n}"),
        None => "absent".into(),
    }
}

/// An interface status in a trap varbind: `2`, `down(2)` or `down`.
fn status_number(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    if let Some(inner) = text.split_once('(').and_then(|(_, r)| r.strip_suffix(')')) {
        return inner.parse().ok();
    }
    match text {
        "up" => Some(1),
        "down" => Some(2),
        _ => None,
    }
}

fn percent(used: u64, total: u64) -> f64 {
    used as f64 * 100.0 / total as f64
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}
