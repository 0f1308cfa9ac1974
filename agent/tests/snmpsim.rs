//! SNMP polling against snmpsim serving the hand-written fixture
//! `tests/fixtures/snmpsim/core-sw.snmprec` (a Catalyst 9300): ENTITY-MIB
//! inventory, ENTITY-SENSOR-MIB and ENTITY-STATE-MIB readings, LLDP-MIB
//! neighbours and IF-MIB interfaces, read through `poll_targets` as the
//! daemon does; then a link taken down in the simulator.

mod common;
#[path = "common/snmpsim.rs"]
mod snmpsim;

use std::time::{Duration, Instant};

use outpost_agent::snmp::device::{
    EntityOperState, IfStatus, Interface, LldpNeighbour, SensorStatus,
};
use outpost_agent::snmp::poll::poll_targets;
use outpost_agent::snmp::DevicePoll;
use outpost_protocol::PhysicalClass;
use snmpsim::{fixtures_dir, Snmpsim};

/// The fixture, and its v2c community.
const DEVICE: &str = "core-sw";

/// `ifOperStatus.1` (Gi1/0/1).
const GI1_OPER_STATUS: &str = "1.3.6.1.2.1.2.2.1.8.1";

async fn poll_once(sim: &Snmpsim) -> DevicePoll {
    let target = common::target(
        DEVICE,
        &sim.address(),
        &format!("version = \"v2c\"\ncommunity = \"{DEVICE}\"\n"),
    );
    let mut outcomes = poll_targets(&[target], 4).await;
    assert_eq!(outcomes.len(), 1);
    match outcomes.remove(0).result {
        Ok(poll) => poll,
        Err(err) => panic!("poll of snmpsim failed: {err}\n{}", sim.log_text()),
    }
}

fn interface<'a>(poll: &'a DevicePoll, name: &str) -> &'a Interface {
    poll.interfaces
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:#?}", poll.interfaces))
}

fn neighbour(poll: &DevicePoll, local_port_num: u32) -> &LldpNeighbour {
    poll.neighbours
        .iter()
        .find(|n| n.local_port_num == local_port_num)
        .unwrap_or_else(|| {
            panic!(
                "no neighbour on port {local_port_num}: {:#?}",
                poll.neighbours
            )
        })
}

/// An entPhysicalTable row as compared: index, class, name, serial, model.
type Module<'a> = (
    u32,
    PhysicalClass,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
);

#[tokio::test]
async fn poll_reads_inventory_sensors_states_and_lldp_from_snmpsim() {
    let Some(sim) = Snmpsim::start(&[DEVICE]) else {
        return;
    };
    let poll = poll_once(&sim).await;
    assert!(poll.warnings.is_empty(), "{:?}", poll.warnings);

    // System group.
    let inv = &poll.inventory;
    assert_eq!(inv.target, DEVICE);
    assert_eq!(inv.address, sim.address());
    assert_eq!(inv.sys_name, "core-sw.example.net");
    assert!(inv.sys_descr.contains("CAT9K_IOSXE"), "{}", inv.sys_descr);
    assert_eq!(inv.sys_object_id, "1.3.6.1.4.1.9.1.1208");
    assert_eq!(poll.sys_uptime_centis, Some(123_456_789));

    // ENTITY-MIB: the chassis gives the device's identity.
    assert_eq!(inv.serial.as_deref(), Some("FOC1234X0AB"));
    assert_eq!(inv.model.as_deref(), Some("C9300-48P"));
    assert_eq!(inv.vendor.as_deref(), Some("Cisco Systems, Inc."));
    assert_eq!(inv.firmware_version.as_deref(), Some("17.9.1r"));
    assert_eq!(inv.software_version.as_deref(), Some("17.09.04a"));
    let modules: Vec<Module> = inv
        .modules
        .iter()
        .map(|m| {
            (
                m.index,
                m.class,
                m.name.as_str(),
                m.serial.as_deref(),
                m.model.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        modules,
        [
            (
                1,
                PhysicalClass::Chassis,
                "Switch 1",
                Some("FOC1234X0AB"),
                Some("C9300-48P")
            ),
            (
                2,
                PhysicalClass::PowerSupply,
                "Switch 1 - Power Supply A",
                Some("ART2231F0AA"),
                Some("PWR-C1-715WAC")
            ),
            (
                3,
                PhysicalClass::PowerSupply,
                "Switch 1 - Power Supply B",
                Some("ART2231F0AB"),
                Some("PWR-C1-715WAC")
            ),
            (
                4,
                PhysicalClass::Sensor,
                "Switch 1 - Inlet Temp Sensor",
                None,
                None
            ),
        ]
    );
    let chassis = &inv.modules[0];
    assert_eq!(
        chassis.description,
        "Cisco Catalyst 9300 48-port PoE+ Switch"
    );
    assert_eq!(chassis.hardware_rev.as_deref(), Some("V02"));
    assert_eq!(chassis.firmware_rev.as_deref(), Some("17.9.1r"));
    assert_eq!(chassis.software_rev.as_deref(), Some("17.09.04a"));
    // Empty strings in the MIB are "not reported".
    assert_eq!(inv.modules[1].firmware_rev, None);
    assert_eq!(inv.modules[3].hardware_rev, None);

    // ENTITY-SENSOR-MIB: 345 at precision 1 is 34.5 degrees Celsius.
    assert_eq!(poll.sensors.len(), 1, "{:#?}", poll.sensors);
    let sensor = &poll.sensors[0];
    assert_eq!(sensor.index, 4);
    assert_eq!(sensor.name.as_deref(), Some("Switch 1 - Inlet Temp Sensor"));
    assert_eq!(sensor.sensor_type, 8, "celsius");
    assert_eq!(
        (sensor.raw_value, sensor.scale, sensor.precision),
        (345, 9, 1)
    );
    assert!((sensor.value - 34.5).abs() < 1e-9, "{}", sensor.value);
    assert_eq!(sensor.status, SensorStatus::Ok);

    // ENTITY-STATE-MIB, named and classed from ENTITY-MIB.
    let states: Vec<(u32, Option<&str>, Option<PhysicalClass>, EntityOperState)> = poll
        .entity_states
        .iter()
        .map(|s| (s.index, s.name.as_deref(), s.class, s.oper))
        .collect();
    assert_eq!(
        states,
        [
            (
                1,
                Some("Switch 1"),
                Some(PhysicalClass::Chassis),
                EntityOperState::Enabled
            ),
            (
                2,
                Some("Switch 1 - Power Supply A"),
                Some(PhysicalClass::PowerSupply),
                EntityOperState::Enabled
            ),
            (
                3,
                Some("Switch 1 - Power Supply B"),
                Some(PhysicalClass::PowerSupply),
                EntityOperState::Enabled
            ),
        ]
    );

    // LLDP-MIB: remote systems with the local port's name from
    // lldpLocPortTable; a MAC-address port ID (subtype 3) as aa:bb:..
    assert_eq!(poll.neighbours.len(), 2, "{:#?}", poll.neighbours);
    let dist = neighbour(&poll, 1);
    assert_eq!(dist.local_port.as_deref(), Some("GigabitEthernet1/0/1"));
    // As fault keys name it: the interface with that ifDescr, by its ifName.
    assert_eq!(dist.port_name(&poll.interfaces), "Gi1/0/1");
    assert_eq!(
        dist.remote_sys_name.as_deref(),
        Some("dist-sw1.example.net")
    );
    assert_eq!(dist.remote_port_id.as_deref(), Some("Gi1/0/24"));
    assert_eq!(
        dist.remote_port_desc.as_deref(),
        Some("GigabitEthernet1/0/24")
    );
    assert_eq!(dist.remote_chassis_id.as_deref(), Some("00:1a:2b:3c:4d:5e"));
    let ap = neighbour(&poll, 2);
    assert_eq!(ap.local_port.as_deref(), Some("GigabitEthernet1/0/2"));
    assert_eq!(ap.remote_sys_name.as_deref(), Some("ap-floor2.example.net"));
    assert_eq!(ap.remote_port_id.as_deref(), Some("f4:cf:e2:01:02:03"));
    assert_eq!(ap.remote_port_desc.as_deref(), Some("eth0"));
    assert_eq!(ap.remote_chassis_id.as_deref(), Some("f4:cf:e2:01:02:00"));

    // IF-MIB joined with ifXTable.
    assert_eq!(poll.interfaces.len(), 4, "{:#?}", poll.interfaces);
    let gi1 = interface(&poll, "Gi1/0/1");
    assert_eq!(gi1.index, 1);
    assert_eq!(gi1.descr, "GigabitEthernet1/0/1");
    assert_eq!(gi1.alias.as_deref(), Some("uplink to dist-sw1"));
    assert_eq!(gi1.if_type, Some(6));
    assert_eq!(gi1.admin_status, Some(IfStatus::Up));
    assert_eq!(gi1.oper_status, Some(IfStatus::Up));
    assert_eq!(gi1.speed_mbps, Some(1000));
    assert_eq!(gi1.in_octets, Some(81_604_378_543), "Counter64");
    assert_eq!(gi1.out_octets, Some(45_097_156_609), "Counter64");
    let gi2 = interface(&poll, "Gi1/0/2");
    assert_eq!(
        (
            gi2.in_errors,
            gi2.out_errors,
            gi2.in_discards,
            gi2.out_discards
        ),
        (Some(17), Some(1), Some(5), Some(3))
    );
    let gi3 = interface(&poll, "Gi1/0/3");
    assert_eq!(gi3.admin_status, Some(IfStatus::Down));
    assert_eq!(gi3.alias, None, "empty ifAlias");
    let vlan = interface(&poll, "Vl1");
    assert_eq!((vlan.index, vlan.if_type), (4, Some(53)));

    // Nothing HOST-RESOURCES in a switch.
    assert!(poll.storage.is_empty() && poll.processors.is_empty() && poll.hr_devices.is_empty());

    // Take Gi1/0/1 down in the simulator: the next poll sees it at once,
    // and bringing it up again is seen just as fast.
    for (value, expected) in [("2", IfStatus::Down), ("1", IfStatus::Up)] {
        sim.set(DEVICE, GI1_OPER_STATUS, "2", value);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let poll = poll_once(&sim).await;
            let gi1 = interface(&poll, "Gi1/0/1");
            if gi1.oper_status == Some(expected) {
                assert_eq!(gi1.admin_status, Some(IfStatus::Up));
                assert_eq!(interface(&poll, "Gi1/0/2").oper_status, Some(IfStatus::Up));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Gi1/0/1 still {:?}, expected {expected:?}",
                gi1.oper_status
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// snmpsim finds records by binary search over the file: every fixture must
/// be sorted by numeric OID, without duplicates, with known types.
#[test]
fn fixtures_are_sorted_by_numeric_oid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures_dir()).expect("fixtures dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("snmprec") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let mut previous: Option<Vec<u32>> = None;
        for (number, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), number + 1);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, '|');
            let (oid, tag) = (fields.next().unwrap_or_default(), fields.next());
            assert!(fields.next().is_some(), "{at}: not OID|TAG|VALUE: {line}");
            let tag = tag.unwrap_or_default();
            assert!(
                ["2", "4", "4x", "5", "6", "64", "65", "66", "67", "70"].contains(&tag),
                "{at}: unknown tag {tag}"
            );
            let arcs: Vec<u32> = oid
                .split('.')
                .map(|arc| {
                    arc.parse()
                        .unwrap_or_else(|_| panic!("{at}: not a numeric OID: {oid}"))
                })
                .collect();
            if let Some(previous) = &previous {
                assert!(
                    *previous < arcs,
                    "{at}: {oid} is not after the line before it"
                );
            }
            previous = Some(arcs);
        }
        checked += 1;
    }
    assert!(checked > 0, "no .snmprec fixtures found");
}
