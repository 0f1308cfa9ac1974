use super::*;
use crate::config::SensorThreshold;
use crate::snmp::device::{EntityState, Interface, Sensor};
use outpost_protocol::{DeviceInventory, DiskUsage, ModuleInventory};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-14T09:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn secs(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(n)
}

fn detector() -> Detector {
    Detector::new(DetectConfig::default(), Uuid::nil())
}

fn iface(index: u32, name: &str, admin: IfStatus, oper: IfStatus) -> Interface {
    Interface {
        index,
        name: name.into(),
        descr: name.into(),
        alias: None,
        if_type: Some(6),
        admin_status: Some(admin),
        oper_status: Some(oper),
        speed_mbps: None,
        in_octets: None,
        out_octets: None,
        in_errors: None,
        out_errors: None,
        in_discards: None,
        out_discards: None,
    }
}

fn poll(at: DateTime<Utc>, uptime: u64, interfaces: Vec<Interface>) -> Observation {
    Observation::Poll {
        device: "sw1".into(),
        poll: Box::new(DevicePoll {
            collected_at: at,
            elapsed: Duration::from_millis(5),
            sys_uptime_centis: Some(uptime),
            inventory: DeviceInventory {
                target: "sw1".into(),
                address: "192.0.2.1".into(),
                sys_name: "sw1".into(),
                sys_descr: String::new(),
                sys_object_id: String::new(),
                vendor: None,
                model: None,
                serial: None,
                firmware_version: None,
                software_version: None,
                modules: Vec::new(),
            },
            interfaces,
            processors: Vec::new(),
            storage: Vec::new(),
            hr_devices: Vec::new(),
            sensors: Vec::new(),
            entity_states: Vec::new(),
            neighbours: Vec::new(),
            warnings: Vec::new(),
        }),
    }
}

/// A poll at `t` seconds with sysUpTime advancing in step.
fn link_poll(t: i64, oper: IfStatus) -> Observation {
    poll(
        secs(t),
        100_000 + t as u64 * 100,
        vec![
            iface(1, "Gi1/0/1", IfStatus::Up, oper),
            iface(2, "Gi1/0/2", IfStatus::Down, IfStatus::Down),
        ],
    )
}

fn trap(t: i64, oid: &str, if_index: u32) -> Observation {
    Observation::Trap {
        device: "sw1".into(),
        trap_oid: oid.into(),
        varbinds: vec![
            ("1.3.6.1.2.1.1.3.0".into(), "12345".into()),
            (format!("{IF_INDEX}{if_index}"), if_index.to_string()),
            (format!("{IF_ADMIN}{if_index}"), "up(1)".into()),
            (format!("{IF_OPER}{if_index}"), "down(2)".into()),
        ],
        at: secs(t),
    }
}

fn only(events: &[FaultEvent]) -> &FaultEvent {
    assert_eq!(events.len(), 1, "{events:#?}");
    &events[0]
}

fn evidence<'a>(event: &'a FaultEvent, name: &str) -> Option<&'a str> {
    event
        .evidence
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.value.as_str())
}

#[test]
fn fifty_trap_flaps_in_a_minute_are_one_raise_and_one_clear() {
    let mut d = detector();
    let mut events = Vec::new();
    for i in 0..50 {
        events.extend(d.observe(trap(i, trap_oids::LINK_DOWN, 7)));
        events.extend(d.observe(trap(i, trap_oids::LINK_UP, 7)));
        // The linkUp trap carries oper up; reuse the down helper's index only.
    }
    let raise = only(&events);
    assert_eq!(raise.transition, FaultTransition::Raised);
    assert_eq!(raise.fault_key.as_string(), "sw1/link_down/ifIndex.7");
    assert_eq!(raise.observed_at, secs(0));
    assert_eq!(d.open_faults(), 1);
    // Quiet for less than the flap window: still open.
    assert!(d.tick(secs(49 + 599)).is_empty());
    let clears = d.tick(secs(49 + 600));
    let clear = only(&clears);
    assert_eq!(clear.transition, FaultTransition::Cleared);
    assert_eq!(clear.fault_key, raise.fault_key);
    assert_eq!(evidence(clear, "flap_count"), Some("49"));
    assert_eq!(clear.observed_at, secs(49));
    assert_ne!(clear.idempotency_key, raise.idempotency_key);
    assert_eq!(d.open_faults(), 0);
}

#[test]
fn a_trap_storm_raises_one_fault_per_key() {
    let mut d = detector();
    let mut events = Vec::new();
    for i in 0..500 {
        events.extend(d.observe(trap(i % 60, trap_oids::LINK_DOWN, 1 + (i as u32 % 2))));
        events.extend(d.observe(Observation::Trap {
            device: "sw1".into(),
            trap_oid: trap_oids::COLD_START.into(),
            varbinds: Vec::new(),
            at: secs(i % 60),
        }));
    }
    let mut keys: Vec<String> = events.iter().map(|e| e.fault_key.as_string()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "sw1/cold_start/",
            "sw1/link_down/ifIndex.1",
            "sw1/link_down/ifIndex.2"
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.transition == FaultTransition::Raised));
}

#[test]
fn polled_link_down_waits_for_the_hold_down() {
    let mut d = detector();
    assert!(d.observe(link_poll(0, IfStatus::Up)).is_empty());
    assert!(d.observe(link_poll(30, IfStatus::Down)).is_empty());
    assert!(d.observe(link_poll(60, IfStatus::Down)).is_empty());
    let events = d.observe(link_poll(90, IfStatus::Down));
    let raise = only(&events);
    assert_eq!(raise.fault_key.as_string(), "sw1/link_down/Gi1/0/1");
    assert_eq!(raise.observed_at, secs(30), "when the condition began");
    assert_eq!(raise.severity, Severity::Major);
    assert_eq!(evidence(raise, "ifOperStatus.1"), Some("down(2)"));
    assert_eq!(evidence(raise, "ifAdminStatus.1"), Some("up(1)"));
    // Gi1/0/2 is administratively down: never a fault.
    assert_eq!(d.open_keys().len(), 1);

    // Up again: the clear waits for the flap window (10 min by default).
    assert!(d.observe(link_poll(120, IfStatus::Up)).is_empty());
    assert!(d.observe(link_poll(700, IfStatus::Up)).is_empty());
    let events = d.observe(link_poll(720, IfStatus::Up));
    let clear = only(&events);
    assert_eq!(clear.transition, FaultTransition::Cleared);
    assert_eq!(clear.observed_at, secs(120));
    assert_eq!(evidence(clear, "flap_count"), Some("0"));
}

#[test]
fn a_blip_shorter_than_the_hold_down_is_nothing() {
    let mut d = detector();
    assert!(d.observe(link_poll(0, IfStatus::Down)).is_empty());
    assert!(d.observe(link_poll(30, IfStatus::Up)).is_empty());
    assert!(d.tick(secs(3600)).is_empty());
    assert_eq!(d.open_faults(), 0);
}

#[test]
fn hold_down_and_flap_window_are_configurable() {
    let config = DetectConfig {
        link_hold_down: Duration::from_secs(10),
        flap_window: Duration::ZERO,
        ..DetectConfig::default()
    };
    let mut d = Detector::new(config, Uuid::nil());
    assert!(d.observe(link_poll(0, IfStatus::Down)).is_empty());
    assert_eq!(d.observe(link_poll(10, IfStatus::Down)).len(), 1);
    assert!(d.observe(link_poll(20, IfStatus::Up)).is_empty());
    // Clears after the hold-down when there is no flap window.
    let events = d.observe(link_poll(30, IfStatus::Up));
    assert_eq!(only(&events).transition, FaultTransition::Cleared);
}

#[test]
fn a_trap_raises_at_once_and_a_poll_keeps_it_one_fault() {
    let mut d = detector();
    d.observe(link_poll(0, IfStatus::Up));
    // The poll taught the detector that ifIndex 1 is Gi1/0/1.
    let events = d.observe(trap(5, trap_oids::LINK_DOWN, 1));
    assert_eq!(only(&events).fault_key.as_string(), "sw1/link_down/Gi1/0/1");
    for t in [30, 60, 90, 120] {
        assert!(d.observe(link_poll(t, IfStatus::Down)).is_empty());
    }
    assert_eq!(d.open_faults(), 1);
}

#[test]
fn link_down_trap_with_admin_down_is_no_fault() {
    let mut d = detector();
    let events = d.observe(Observation::Trap {
        device: "sw1".into(),
        trap_oid: format!(".{}", trap_oids::LINK_DOWN),
        varbinds: vec![
            (format!(".{IF_INDEX}3"), "3".into()),
            (format!(".{IF_ADMIN}3"), "2".into()),
            (format!(".{IF_OPER}3"), "2".into()),
        ],
        at: secs(0),
    });
    assert!(events.is_empty());
}

#[test]
fn unreachable_after_three_failed_polls() {
    let mut d = detector();
    let fail = |t: i64| Observation::PollFailed {
        device: "sw1".into(),
        error: "no response".into(),
        at: secs(t),
    };
    assert!(d.observe(fail(0)).is_empty());
    assert!(d.observe(fail(60)).is_empty());
    let events = d.observe(fail(120));
    let raise = only(&events);
    assert_eq!(raise.fault_key.as_string(), "sw1/device_unreachable/");
    assert_eq!(raise.severity, Severity::Critical);
    assert_eq!(raise.observed_at, secs(0), "since the first failed poll");
    assert_eq!(evidence(raise, "last_error"), Some("no response"));
    assert!(d.observe(fail(180)).is_empty());
    // Answers again: the clear follows after the flap window.
    assert!(d.observe(link_poll(240, IfStatus::Up)).is_empty());
    let events = d.tick(secs(240 + 600));
    assert_eq!(only(&events).transition, FaultTransition::Cleared);
    // One failure after recovery starts the count afresh.
    assert!(d.observe(fail(900)).is_empty());
}

#[test]
fn reboot_by_sys_uptime_going_back() {
    let mut d = detector();
    assert!(d.observe(poll(secs(0), 500_000, Vec::new())).is_empty());
    assert!(d.observe(poll(secs(60), 506_000, Vec::new())).is_empty());
    let events = d.observe(poll(secs(120), 3_000, Vec::new()));
    let raise = only(&events);
    assert_eq!(raise.fault_key.as_string(), "sw1/cold_start/");
    assert_eq!(raise.transition, FaultTransition::Raised);
    assert_eq!(evidence(raise, "sysUpTime.previous"), Some("506000"));
    // One-shot: it clears by itself after the flap window.
    assert!(d.observe(poll(secs(180), 9_000, Vec::new())).is_empty());
    let events = d.tick(secs(120 + 600));
    assert_eq!(only(&events).transition, FaultTransition::Cleared);
}

#[test]
fn sys_uptime_wrapping_is_no_reboot() {
    let mut d = detector();
    let near_wrap = (1u64 << 32) - 1000;
    assert!(d.observe(poll(secs(0), near_wrap, Vec::new())).is_empty());
    assert!(d.observe(poll(secs(60), 5000, Vec::new())).is_empty());
}

#[test]
fn cold_start_trap_and_the_next_poll_are_one_reboot() {
    let mut d = detector();
    d.observe(poll(secs(0), 900_000, Vec::new()));
    let events = d.observe(Observation::Trap {
        device: "sw1".into(),
        trap_oid: trap_oids::COLD_START.into(),
        varbinds: vec![("1.3.6.1.2.1.1.3.0".into(), "100".into())],
        at: secs(30),
    });
    assert_eq!(only(&events).fault_key.rule, FaultRule::ColdStart);
    assert!(d.observe(poll(secs(60), 3_000, Vec::new())).is_empty());
    let clears = d.tick(secs(30 + 600));
    assert_eq!(evidence(only(&clears), "flap_count"), Some("0"));
}

fn hardware_poll(t: i64, psu_disabled: bool, fan_status: SensorStatus, temp: f64) -> Observation {
    let Observation::Poll { device, mut poll } =
        poll(secs(t), 100_000 + t as u64 * 100, Vec::new())
    else {
        unreachable!()
    };
    let module = |index, class, name: &str| ModuleInventory {
        index,
        class,
        name: name.into(),
        description: String::new(),
        serial: None,
        model: None,
        hardware_rev: None,
        firmware_rev: None,
        software_rev: None,
    };
    poll.inventory.modules = vec![
        module(10, PhysicalClass::PowerSupply, "PSU 1"),
        module(20, PhysicalClass::Fan, "Fan 1"),
        module(30, PhysicalClass::Sensor, "Inlet Temp"),
    ];
    poll.entity_states = vec![EntityState {
        index: 10,
        name: Some("PSU 1".into()),
        class: Some(PhysicalClass::PowerSupply),
        oper: if psu_disabled {
            EntityOperState::Disabled
        } else {
            EntityOperState::Enabled
        },
    }];
    let sensor = |index, name: &str, sensor_type, value, status| Sensor {
        index,
        name: Some(name.into()),
        sensor_type,
        raw_value: value as i64,
        scale: 9,
        precision: 0,
        value,
        status,
    };
    poll.sensors = vec![
        sensor(20, "Fan 1", 10, 3000.0, fan_status),
        sensor(30, "Inlet Temp", 8, temp, SensorStatus::Ok),
    ];
    Observation::Poll { device, poll }
}

#[test]
fn power_supply_fan_and_sensor_threshold() {
    let config = DetectConfig {
        sensor_thresholds: vec![SensorThreshold {
            name: Some("inlet".into()),
            sensor_type: Some(8),
            above: Some(45.0),
            below: None,
            hold: Duration::from_secs(120),
            severity: Severity::Minor,
        }],
        ..DetectConfig::default()
    };
    let mut d = Detector::new(config, Uuid::nil());
    assert!(d
        .observe(hardware_poll(0, false, SensorStatus::Ok, 30.0))
        .is_empty());
    assert!(d
        .observe(hardware_poll(60, true, SensorStatus::NonOperational, 50.0))
        .is_empty());
    let events = d.observe(hardware_poll(120, true, SensorStatus::NonOperational, 50.0));
    let mut keys: Vec<String> = events.iter().map(|e| e.fault_key.as_string()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "sw1/power_supply_failure/PSU 1",
            "sw1/sensor_failure/fan Fan 1"
        ]
    );
    let events = d.observe(hardware_poll(180, true, SensorStatus::NonOperational, 50.0));
    let threshold = only(&events);
    assert_eq!(
        threshold.fault_key.as_string(),
        "sw1/threshold/sensor Inlet Temp"
    );
    assert_eq!(threshold.severity, Severity::Minor);
    assert_eq!(threshold.observed_at, secs(60));
    // Everything recovers.
    assert!(d
        .observe(hardware_poll(240, false, SensorStatus::Ok, 30.0))
        .is_empty());
    let events = d.tick(secs(240 + 600));
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e.transition == FaultTransition::Cleared));
}

fn sample(t: i64, cpu: f32, disk_free: u64, uptime: u64) -> Observation {
    Observation::Host {
        device: "edge-01".into(),
        sample: HealthSample {
            collected_at: secs(t),
            cpu_percent: cpu,
            load_1: 0.0,
            load_5: 0.0,
            load_15: 0.0,
            memory_used_bytes: 1,
            memory_total_bytes: 100,
            swap_used_bytes: 0,
            swap_total_bytes: 0,
            uptime_secs: uptime,
            disks: vec![DiskUsage {
                mount_point: "/".into(),
                total_bytes: 100,
                available_bytes: disk_free,
            }],
            temperatures: Vec::new(),
        },
    }
}

#[test]
fn host_thresholds_need_their_duration() {
    let mut d = detector();
    let mut events = Vec::new();
    // CPU at 99% for 9.5 minutes, then normal: nothing.
    for i in 0..20 {
        events.extend(d.observe(sample(i * 30, 99.0, 50, 1000 + i as u64 * 30)));
    }
    events.extend(d.observe(sample(600, 10.0, 50, 1600)));
    assert!(events.is_empty(), "{events:#?}");
    // CPU at 99% for 10 minutes: one fault, from when it began.
    for i in 0..=20 {
        events.extend(d.observe(sample(700 + i * 30, 99.0, 50, 1700 + i as u64 * 30)));
    }
    let raise = only(&events);
    assert_eq!(raise.fault_key.as_string(), "edge-01/threshold/cpu");
    assert_eq!(raise.observed_at, secs(700));
    assert_eq!(evidence(raise, "cpu_percent"), Some("99.0"));

    // Disk 95% used for 5 minutes.
    let mut d = detector();
    let mut events = Vec::new();
    for i in 0..=10 {
        events.extend(d.observe(sample(i * 30, 1.0, 5, 1000 + i as u64 * 30)));
    }
    assert_eq!(
        only(&events).fault_key.as_string(),
        "edge-01/threshold/disk /"
    );
}

#[test]
fn host_reboot_is_detected_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("detector.json");
    let mut d = detector();
    assert!(d.observe(sample(0, 1.0, 50, 86_400)).is_empty());
    d.save(&state).expect("save");
    let mut d = Detector::load(&state, DetectConfig::default(), Uuid::nil()).expect("load");
    let events = d.observe(sample(60, 1.0, 50, 40));
    let raise = only(&events);
    assert_eq!(raise.fault_key.as_string(), "edge-01/host_reboot/");
}

#[test]
fn open_faults_survive_a_restart_without_a_second_raise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("detector.json");
    let mut d = detector();
    assert_eq!(d.observe(trap(0, trap_oids::LINK_DOWN, 4)).len(), 1);
    assert!(d.is_dirty());
    d.save(&state).expect("save");
    assert!(!d.is_dirty());
    drop(d);

    let mut d = Detector::load(&state, DetectConfig::default(), Uuid::nil()).expect("load");
    assert_eq!(d.open_faults(), 1);
    assert!(d.observe(trap(30, trap_oids::LINK_DOWN, 4)).is_empty());
    assert!(d.observe(trap(40, trap_oids::LINK_UP, 4)).is_empty());
    d.save(&state).expect("save");
    // Restarted while clearing: the clear still comes.
    let mut d = Detector::load(&state, DetectConfig::default(), Uuid::nil()).expect("load");
    let events = d.tick(secs(40 + 600));
    let clear = only(&events);
    assert_eq!(clear.transition, FaultTransition::Cleared);
    assert_eq!(evidence(clear, "flap_count"), Some("0"));
    // A missing state file is an empty history.
    let d = Detector::load(
        &dir.path().join("none"),
        DetectConfig::default(),
        Uuid::nil(),
    )
    .expect("load");
    assert_eq!(d.open_faults(), 0);
}

#[test]
fn removed_devices_clear_their_faults() {
    let mut d = detector();
    assert_eq!(d.observe(trap(0, trap_oids::LINK_DOWN, 4)).len(), 1);
    let events = d.retain_devices(&HashSet::new(), "edge-01", secs(10));
    assert_eq!(only(&events).transition, FaultTransition::Cleared);
    assert_eq!(d.open_faults(), 0);
}

#[test]
fn unknown_traps_are_ignored() {
    let mut d = detector();
    let events = d.observe(Observation::Trap {
        device: "sw1".into(),
        trap_oid: "1.3.6.1.4.1.9.9.41.2.0.1".into(),
        varbinds: Vec::new(),
        at: secs(0),
    });
    assert!(events.is_empty());
}
