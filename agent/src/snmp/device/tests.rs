//! Building a [`DevicePoll`]'s parts from tables, with values as devices
//! send them.

use super::*;
use crate::snmp::value::Oid;

/// A row as written in these tests: its index and its (column, value) cells.
type TestRow<'a> = (&'a [u32], &'a [(u32, Value)]);

fn table(rows: &[TestRow<'_>]) -> Table {
    let mut table = Table::default();
    for (index, cells) in rows {
        for (column, value) in *cells {
            table.insert(index.to_vec(), *column, value.clone());
        }
    }
    table
}

fn text(s: &str) -> Value {
    Value::OctetString(s.as_bytes().to_vec())
}

#[test]
fn system_group_is_matched_by_oid() {
    use crate::snmp::oids::system;
    let varbinds = [
        VarBind {
            oid: Oid::new(system::SYS_NAME),
            value: text("sw1\0"),
        },
        VarBind {
            oid: Oid::new(system::SYS_UP_TIME),
            value: Value::TimeTicks(4242),
        },
        VarBind {
            oid: Oid::new(system::SYS_OBJECT_ID),
            value: Value::ObjectIdentifier(Oid::new(vec![1, 3, 6, 1, 4, 1, 9, 1, 1208])),
        },
        VarBind {
            oid: Oid::new(system::SYS_DESCR),
            value: Value::NoSuchObject,
        },
    ];
    let group = SystemGroup::from_varbinds(&varbinds);
    assert_eq!(group.name, "sw1");
    assert_eq!(group.uptime_centis, Some(4242));
    assert_eq!(group.object_id, "1.3.6.1.4.1.9.1.1208");
    assert_eq!(group.descr, "");
}

#[test]
fn interfaces_join_if_table_and_if_x_table() {
    let if_rows = table(&[
        (
            &[1],
            &[
                (if_table::DESCR, text("lo")),
                (if_table::ADMIN_STATUS, Value::Integer(1)),
                (if_table::OPER_STATUS, Value::Integer(1)),
            ],
        ),
        (
            &[10101],
            &[
                (if_table::DESCR, text("GigabitEthernet1/0/1")),
                (if_table::TYPE, Value::Integer(6)),
                (if_table::ADMIN_STATUS, Value::Integer(1)),
                (if_table::OPER_STATUS, Value::Integer(7)),
                (if_table::IN_ERRORS, Value::Counter32(3)),
                (if_table::OUT_DISCARDS, Value::Counter32(9)),
            ],
        ),
        (&[5], &[(if_table::OPER_STATUS, Value::Integer(42))]),
    ]);
    let if_x_rows = table(&[(
        &[10101],
        &[
            (if_x_table::NAME, text("Gi1/0/1")),
            (if_x_table::ALIAS, text("uplink to core")),
            (if_x_table::HC_IN_OCTETS, Value::Counter64(u64::MAX)),
            (if_x_table::HIGH_SPEED, Value::Gauge32(1000)),
        ],
    )]);
    let interfaces = interfaces(&if_rows, &if_x_rows);
    assert_eq!(
        interfaces.iter().map(|i| i.index).collect::<Vec<_>>(),
        [1, 5, 10101]
    );
    let lo = &interfaces[0];
    assert_eq!((lo.name.as_str(), lo.descr.as_str()), ("lo", "lo"));
    assert_eq!(lo.alias, None);
    assert_eq!(interfaces[1].oper_status, Some(IfStatus::Other(42)));
    assert_eq!(interfaces[1].admin_status, None);
    let gi = &interfaces[2];
    assert_eq!(gi.name, "Gi1/0/1");
    assert_eq!(gi.descr, "GigabitEthernet1/0/1");
    assert_eq!(gi.alias.as_deref(), Some("uplink to core"));
    assert_eq!(gi.oper_status, Some(IfStatus::LowerLayerDown));
    assert_eq!(gi.in_octets, Some(u64::MAX));
    assert_eq!(gi.out_octets, None);
    assert_eq!(gi.speed_mbps, Some(1000));
    assert_eq!((gi.in_errors, gi.out_discards), (Some(3), Some(9)));
}

#[test]
fn inventory_takes_device_facts_from_the_chassis() {
    let physical = table(&[
        (
            &[1],
            &[
                (entity::CLASS, Value::Integer(3)),
                (entity::NAME, text("1")),
                (entity::DESCR, text("WS-C2960X-48FPD-L")),
                (entity::SERIAL, text("FOC1234X0AB")),
                (entity::MODEL, text("WS-C2960X-48FPD-L")),
                (entity::MFG_NAME, text("Cisco")),
                (entity::FIRMWARE_REV, text("15.2(7r)E")),
                (entity::SOFTWARE_REV, text("15.2(7)E8")),
            ],
        ),
        (
            &[1001],
            &[
                (entity::CLASS, Value::Integer(6)),
                (entity::NAME, text("PSU 1")),
                (entity::SERIAL, text("")),
            ],
        ),
        (&[2000], &[(entity::CLASS, Value::Integer(99))]),
    ]);
    let system = SystemGroup {
        descr: "IOS".into(),
        object_id: "1.3.6.1.4.1.9.1.1208".into(),
        uptime_centis: None,
        name: "sw1".into(),
    };
    let inventory = inventory("sw1", "192.0.2.10", &system, &physical);
    assert_eq!(inventory.target, "sw1");
    assert_eq!(inventory.sys_name, "sw1");
    assert_eq!(inventory.vendor.as_deref(), Some("Cisco"));
    assert_eq!(inventory.serial.as_deref(), Some("FOC1234X0AB"));
    assert_eq!(inventory.software_version.as_deref(), Some("15.2(7)E8"));
    assert_eq!(inventory.modules.len(), 3);
    let psu = &inventory.modules[1];
    assert_eq!((psu.index, psu.class), (1001, PhysicalClass::PowerSupply));
    assert_eq!(psu.serial, None, "empty strings become None");
    assert_eq!(inventory.modules[2].class, PhysicalClass::Unknown);

    let bare = inventory_of_nothing();
    assert_eq!(bare.serial, None);
    assert!(bare.modules.is_empty());
}

fn inventory_of_nothing() -> outpost_protocol::DeviceInventory {
    inventory("x", "192.0.2.1", &SystemGroup::default(), &Table::default())
}

#[test]
fn sensors_apply_scale_and_precision_and_take_entity_names() {
    let physical = table(&[(&[7], &[(entity::NAME, text("Inlet temperature"))])]);
    let rows = table(&[
        (
            &[7],
            &[
                (entity_sensor::TYPE, Value::Integer(8)),
                (entity_sensor::SCALE, Value::Integer(9)),
                (entity_sensor::PRECISION, Value::Integer(1)),
                (entity_sensor::VALUE, Value::Integer(235)),
                (entity_sensor::OPER_STATUS, Value::Integer(1)),
            ],
        ),
        (
            &[8],
            &[
                (entity_sensor::TYPE, Value::Integer(4)),
                (entity_sensor::SCALE, Value::Integer(8)),
                (entity_sensor::VALUE, Value::Integer(12_050)),
                (entity_sensor::OPER_STATUS, Value::Integer(3)),
            ],
        ),
        (&[9], &[(entity_sensor::TYPE, Value::Integer(10))]),
    ]);
    let sensors = sensors(&rows, &physical);
    assert_eq!(sensors.len(), 2, "a sensor without value is dropped");
    assert_eq!(sensors[0].name.as_deref(), Some("Inlet temperature"));
    assert!(
        (sensors[0].value - 23.5).abs() < 1e-9,
        "{}",
        sensors[0].value
    );
    assert_eq!(sensors[0].status, SensorStatus::Ok);
    assert!(
        (sensors[1].value - 12.05).abs() < 1e-9,
        "{}",
        sensors[1].value
    );
    assert_eq!(sensors[1].status, SensorStatus::NonOperational);
    assert_eq!(sensors[1].name, None);
    assert!(scaled(i64::MAX, 99, -99).is_finite());
}

#[test]
fn entity_states_and_host_resources() {
    let physical = table(&[(
        &[3],
        &[
            (entity::NAME, text("Fan 1")),
            (entity::CLASS, Value::Integer(7)),
        ],
    )]);
    let states = entity_states(
        &table(&[
            (&[3], &[(entity_state::OPER, Value::Integer(2))]),
            (&[4], &[(entity_state::OPER, Value::Integer(3))]),
        ]),
        &physical,
    );
    assert_eq!(states[0].name.as_deref(), Some("Fan 1"));
    assert_eq!(states[0].class, Some(PhysicalClass::Fan));
    assert_eq!(states[0].oper, EntityOperState::Disabled);
    assert_eq!(
        (states[1].oper, states[1].class),
        (EntityOperState::Enabled, None)
    );

    let storage = storage(&table(&[
        (
            &[1],
            &[
                (
                    hr::STORAGE_TYPE,
                    Value::ObjectIdentifier(Oid::new(vec![1, 3, 6, 1, 2, 1, 25, 2, 1, 4])),
                ),
                (hr::STORAGE_DESCR, text("/")),
                (hr::STORAGE_ALLOCATION_UNITS, Value::Integer(4096)),
                (hr::STORAGE_SIZE, Value::Integer(1000)),
                (hr::STORAGE_USED, Value::Integer(250)),
            ],
        ),
        (&[2], &[(hr::STORAGE_DESCR, text("no size"))]),
    ]));
    assert_eq!(storage.len(), 1);
    assert_eq!(storage[0].kind, Some(4));
    assert_eq!(
        (storage[0].size_bytes, storage[0].used_bytes),
        (4_096_000, 1_024_000)
    );

    let processors = processors(&table(&[
        (&[196_608], &[(hr::PROCESSOR_LOAD, Value::Integer(12))]),
        (&[196_609], &[(hr::PROCESSOR_LOAD, Value::Integer(400))]),
    ]));
    assert_eq!(
        processors,
        [ProcessorLoad {
            index: 196_608,
            load_percent: 12
        }]
    );

    let devices = hr_devices(&table(&[(
        &[768],
        &[
            (hr::DEVICE_DESCR, text("eth0")),
            (hr::DEVICE_STATUS, Value::Integer(5)),
        ],
    )]));
    assert_eq!(devices[0].status, Some(HrDeviceStatus::Down));
}

#[test]
fn lldp_neighbours_with_local_port_names_and_mac_ids() {
    let remote = table(&[
        (
            &[0, 3, 1],
            &[
                (lldp::REM_CHASSIS_ID_SUBTYPE, Value::Integer(4)),
                (
                    lldp::REM_CHASSIS_ID,
                    Value::OctetString(vec![0x00, 0x1b, 0x54, 0xaa, 0xbb, 0x0c]),
                ),
                (lldp::REM_PORT_ID_SUBTYPE, Value::Integer(5)),
                (lldp::REM_PORT_ID, text("Gi0/48")),
                (lldp::REM_SYS_NAME, text("core1")),
            ],
        ),
        (&[7, 1], &[(lldp::REM_SYS_NAME, text("bad index"))]),
    ]);
    let local = table(&[(&[3], &[(lldp::LOC_PORT_ID, text("Gi1/0/3"))])]);
    let neighbours = neighbours(&remote, &local);
    assert_eq!(
        neighbours,
        [LldpNeighbour {
            local_port_num: 3,
            local_port: Some("Gi1/0/3".into()),
            local_port_id: Some("Gi1/0/3".into()),
            remote_sys_name: Some("core1".into()),
            remote_port_id: Some("Gi0/48".into()),
            remote_port_desc: None,
            remote_chassis_id: Some("00:1b:54:aa:bb:0c".into()),
        }]
    );
}

#[test]
fn lldp_local_ports_are_named_as_fault_keys_name_interfaces() {
    let if_rows = table(&[
        (&[1], &[(if_table::DESCR, text("GigabitEthernet1/0/1"))]),
        (&[2], &[(if_table::DESCR, text("GigabitEthernet1/0/2"))]),
    ]);
    let if_x_rows = table(&[
        (&[1], &[(if_x_table::NAME, text("Gi1/0/1"))]),
        (&[2], &[(if_x_table::NAME, text("Gi1/0/2"))]),
    ]);
    let interfaces = interfaces(&if_rows, &if_x_rows);
    let port = |id: Option<&str>, desc: Option<&str>| LldpNeighbour {
        local_port_num: 9,
        local_port: desc.or(id).map(str::to_owned),
        local_port_id: id.map(str::to_owned),
        remote_sys_name: None,
        remote_port_id: None,
        remote_port_desc: None,
        remote_chassis_id: None,
    };
    // The port ID is the ifName (subtype interfaceName).
    assert_eq!(
        port(Some("Gi1/0/1"), Some("uplink")).port_name(&interfaces),
        "Gi1/0/1"
    );
    // The description is the ifDescr (what LLDP-MIB recommends).
    assert_eq!(
        port(Some("17"), Some("GigabitEthernet1/0/2")).port_name(&interfaces),
        "Gi1/0/2"
    );
    // No interface matches: the LLDP text, else the port number.
    assert_eq!(
        port(Some("17"), Some("uplink")).port_name(&interfaces),
        "uplink"
    );
    assert_eq!(port(None, None).port_name(&interfaces), "9");
    assert_eq!(port(None, Some("Gi1/0/1")).port_name(&[]), "Gi1/0/1");
}
