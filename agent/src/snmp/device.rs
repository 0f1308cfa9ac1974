//! [`DevicePoll`]: everything one poll of one device yielded, typed, and the
//! pure functions that build it from walked tables.
//!
//! The inventory part is the protocol's [`DeviceInventory`] (it travels to
//! the server as is); the readings (interfaces, sensors, storage, LLDP
//! neighbours, ...) stay in the agent, where fault detection reads them.
//! Values a device does not report are `None` or empty lists, never errors.

use std::time::Duration;

use chrono::{DateTime, Utc};
use outpost_protocol::{DeviceInventory, ModuleInventory, PhysicalClass};

use super::oids::{
    entity, entity_sensor, entity_state, host_resources as hr, if_table, if_x_table, lldp,
};
use super::table::{Row, Table};
use super::value::{Value, VarBind};

/// One poll of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePoll {
    /// When the poll finished (UTC).
    pub collected_at: DateTime<Utc>,
    /// How long the poll took.
    pub elapsed: Duration,
    /// `sysUpTime.0` in hundredths of a second; going back means a reboot.
    pub sys_uptime_centis: Option<u64>,
    /// System group and ENTITY-MIB inventory.
    pub inventory: DeviceInventory,
    /// IF-MIB interfaces, by `ifIndex`.
    pub interfaces: Vec<Interface>,
    /// HOST-RESOURCES `hrProcessorLoad` per processor.
    pub processors: Vec<ProcessorLoad>,
    /// HOST-RESOURCES `hrStorageTable`.
    pub storage: Vec<Storage>,
    /// HOST-RESOURCES `hrDeviceTable` (descriptions and status).
    pub hr_devices: Vec<HrDevice>,
    /// ENTITY-SENSOR-MIB sensors.
    pub sensors: Vec<Sensor>,
    /// ENTITY-STATE-MIB states of physical entities.
    pub entity_states: Vec<EntityState>,
    /// LLDP-MIB remote systems.
    pub neighbours: Vec<LldpNeighbour>,
    /// Parts of the poll that failed while the device answered otherwise
    /// (e.g. a table whose walk broke), one line each.
    pub warnings: Vec<String>,
}

/// `ifAdminStatus` / `ifOperStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfStatus {
    /// `up(1)`.
    Up,
    /// `down(2)`.
    Down,
    /// `testing(3)`.
    Testing,
    /// `unknown(4)`.
    Unknown,
    /// `dormant(5)`.
    Dormant,
    /// `notPresent(6)`.
    NotPresent,
    /// `lowerLayerDown(7)`.
    LowerLayerDown,
    /// A value the MIB does not define.
    Other(i64),
}

impl IfStatus {
    /// From the MIB's integer.
    pub fn from_mib(value: i64) -> Self {
        match value {
            1 => Self::Up,
            2 => Self::Down,
            3 => Self::Testing,
            4 => Self::Unknown,
            5 => Self::Dormant,
            6 => Self::NotPresent,
            7 => Self::LowerLayerDown,
            other => Self::Other(other),
        }
    }
}

/// One row of `ifTable` joined with `ifXTable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `ifIndex`.
    pub index: u32,
    /// `ifName`, or `ifDescr` when the device has no `ifXTable`.
    pub name: String,
    /// `ifDescr`.
    pub descr: String,
    /// `ifAlias` (the operator's description), if set.
    pub alias: Option<String>,
    /// `ifType` (IANAifType, e.g. 6 ethernetCsmacd, 24 softwareLoopback).
    pub if_type: Option<i64>,
    /// `ifAdminStatus`.
    pub admin_status: Option<IfStatus>,
    /// `ifOperStatus`.
    pub oper_status: Option<IfStatus>,
    /// `ifHighSpeed`, in Mbit/s.
    pub speed_mbps: Option<u64>,
    /// `ifHCInOctets`.
    pub in_octets: Option<u64>,
    /// `ifHCOutOctets`.
    pub out_octets: Option<u64>,
    /// `ifInErrors`.
    pub in_errors: Option<u64>,
    /// `ifOutErrors`.
    pub out_errors: Option<u64>,
    /// `ifInDiscards`.
    pub in_discards: Option<u64>,
    /// `ifOutDiscards`.
    pub out_discards: Option<u64>,
}

/// `hrProcessorLoad` of one processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessorLoad {
    /// `hrDeviceIndex` of the processor.
    pub index: u32,
    /// Percent busy over the last minute.
    pub load_percent: u8,
}

/// One row of `hrStorageTable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// `hrStorageIndex`.
    pub index: u32,
    /// `hrStorageDescr` (a mount point, "Physical memory", ...).
    pub descr: String,
    /// The last arc of `hrStorageType` (2 RAM, 3 virtual memory, 4 fixed
    /// disk, ...), if it is one of the standard types.
    pub kind: Option<u32>,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
}

/// `hrDeviceStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HrDeviceStatus {
    /// `unknown(1)`.
    Unknown,
    /// `running(2)`.
    Running,
    /// `warning(3)`.
    Warning,
    /// `testing(4)`.
    Testing,
    /// `down(5)`.
    Down,
    /// A value the MIB does not define.
    Other(i64),
}

/// One row of `hrDeviceTable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrDevice {
    /// `hrDeviceIndex`.
    pub index: u32,
    /// `hrDeviceDescr`.
    pub descr: String,
    /// `hrDeviceStatus`, if reported.
    pub status: Option<HrDeviceStatus>,
}

/// `entPhySensorOperStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorStatus {
    /// `ok(1)`.
    Ok,
    /// `unavailable(2)`.
    Unavailable,
    /// `nonoperational(3)`.
    NonOperational,
    /// A value the MIB does not define.
    Other(i64),
}

/// One ENTITY-SENSOR-MIB sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// `entPhysicalIndex` of the sensor.
    pub index: u32,
    /// `entPhysicalName` of the sensor, if ENTITY-MIB names it.
    pub name: Option<String>,
    /// `entPhySensorType` (8 celsius, 4 voltsDC, 10 rpm, 12 truthvalue, ...).
    pub sensor_type: i64,
    /// `entPhySensorValue` as reported.
    pub raw_value: i64,
    /// `entPhySensorScale` (9 = units, 8 = milli, 10 = kilo, ...).
    pub scale: i64,
    /// `entPhySensorPrecision`.
    pub precision: i64,
    /// The value in the sensor type's unit, with scale and precision applied.
    pub value: f64,
    /// `entPhySensorOperStatus`.
    pub status: SensorStatus,
}

/// `entStateOper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityOperState {
    /// `unknown(1)`.
    Unknown,
    /// `disabled(2)`: the entity cannot work (failed power supply, fan).
    Disabled,
    /// `enabled(3)`.
    Enabled,
    /// `testing(4)`.
    Testing,
    /// A value the MIB does not define.
    Other(i64),
}

/// ENTITY-STATE-MIB state of one physical entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityState {
    /// `entPhysicalIndex`.
    pub index: u32,
    /// `entPhysicalName`, if ENTITY-MIB names it.
    pub name: Option<String>,
    /// `entPhysicalClass`, if ENTITY-MIB has the entity.
    pub class: Option<PhysicalClass>,
    /// `entStateOper`.
    pub oper: EntityOperState,
}

/// One LLDP remote system seen on a local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LldpNeighbour {
    /// `lldpRemLocalPortNum`.
    pub local_port_num: u32,
    /// The local port's `lldpLocPortDesc` or `lldpLocPortId`, if known.
    pub local_port: Option<String>,
    /// The local port's `lldpLocPortId`, if known.
    pub local_port_id: Option<String>,
    /// `lldpRemSysName`.
    pub remote_sys_name: Option<String>,
    /// `lldpRemPortId` (MAC addresses as `aa:bb:..`).
    pub remote_port_id: Option<String>,
    /// `lldpRemPortDesc`.
    pub remote_port_desc: Option<String>,
    /// `lldpRemChassisId` (MAC addresses as `aa:bb:..`).
    pub remote_chassis_id: Option<String>,
}

/// The system group: `sysDescr`, `sysObjectID`, `sysUpTime`, `sysName`, from
/// one GET in [`super::oids::system`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemGroup {
    /// `sysDescr.0`.
    pub descr: String,
    /// `sysObjectID.0`, dotted.
    pub object_id: String,
    /// `sysUpTime.0`.
    pub uptime_centis: Option<u64>,
    /// `sysName.0`.
    pub name: String,
}

impl SystemGroup {
    /// Reads the GET response, matching bindings by OID (not position).
    pub fn from_varbinds(varbinds: &[VarBind]) -> Self {
        use super::oids::system;
        let mut group = Self::default();
        for vb in varbinds {
            let arcs = vb.oid.arcs();
            if arcs == system::SYS_DESCR {
                group.descr = vb.value.as_text().unwrap_or_default();
            } else if arcs == system::SYS_OBJECT_ID {
                group.object_id = vb
                    .value
                    .as_oid()
                    .map(ToString::to_string)
                    .unwrap_or_default();
            } else if arcs == system::SYS_UP_TIME {
                group.uptime_centis = vb.value.as_u64();
            } else if arcs == system::SYS_NAME {
                group.name = vb.value.as_text().unwrap_or_default();
            }
        }
        group
    }
}

/// Builds the inventory from the system group and `entPhysicalTable`. The
/// chassis (the first entity of class chassis) gives the device's model,
/// serial, vendor and versions.
pub fn inventory(
    target: &str,
    address: &str,
    system: &SystemGroup,
    physical: &Table,
) -> DeviceInventory {
    let modules: Vec<ModuleInventory> = physical
        .simple_rows()
        .map(|(index, row)| ModuleInventory {
            index,
            class: row
                .int(entity::CLASS)
                .map_or(PhysicalClass::Unknown, PhysicalClass::from_mib),
            name: row.text(entity::NAME).unwrap_or_default(),
            description: row.text(entity::DESCR).unwrap_or_default(),
            serial: row.text(entity::SERIAL),
            model: row.text(entity::MODEL),
            hardware_rev: row.text(entity::HARDWARE_REV),
            firmware_rev: row.text(entity::FIRMWARE_REV),
            software_rev: row.text(entity::SOFTWARE_REV),
        })
        .collect();
    let chassis = physical
        .simple_rows()
        .find(|(_, row)| row.int(entity::CLASS) == Some(PhysicalClass::Chassis.mib_value()))
        .map(|(_, row)| row);
    let from_chassis = |column| chassis.and_then(|row: &Row| row.text(column));
    DeviceInventory {
        target: target.to_owned(),
        address: address.to_owned(),
        sys_name: system.name.clone(),
        sys_descr: system.descr.clone(),
        sys_object_id: system.object_id.clone(),
        vendor: from_chassis(entity::MFG_NAME),
        model: from_chassis(entity::MODEL),
        serial: from_chassis(entity::SERIAL),
        firmware_version: from_chassis(entity::FIRMWARE_REV),
        software_version: from_chassis(entity::SOFTWARE_REV),
        modules,
    }
}

/// Joins `ifTable` and `ifXTable` rows by `ifIndex`.
pub fn interfaces(if_rows: &Table, if_x_rows: &Table) -> Vec<Interface> {
    if_rows
        .simple_rows()
        .map(|(index, row)| {
            let x = if_x_rows.row(index);
            let x_uint = |column| x.and_then(|x| x.uint(column));
            let descr = row.text(if_table::DESCR).unwrap_or_default();
            Interface {
                index,
                name: x
                    .and_then(|x| x.text(if_x_table::NAME))
                    .unwrap_or_else(|| descr.clone()),
                descr,
                alias: x.and_then(|x| x.text(if_x_table::ALIAS)),
                if_type: row.int(if_table::TYPE),
                admin_status: row.int(if_table::ADMIN_STATUS).map(IfStatus::from_mib),
                oper_status: row.int(if_table::OPER_STATUS).map(IfStatus::from_mib),
                speed_mbps: x_uint(if_x_table::HIGH_SPEED),
                in_octets: x_uint(if_x_table::HC_IN_OCTETS),
                out_octets: x_uint(if_x_table::HC_OUT_OCTETS),
                in_errors: row.uint(if_table::IN_ERRORS),
                out_errors: row.uint(if_table::OUT_ERRORS),
                in_discards: row.uint(if_table::IN_DISCARDS),
                out_discards: row.uint(if_table::OUT_DISCARDS),
            }
        })
        .collect()
}

/// `hrProcessorLoad` per processor; values outside 0..=100 are dropped.
pub fn processors(rows: &Table) -> Vec<ProcessorLoad> {
    rows.simple_rows()
        .filter_map(|(index, row)| {
            let load = u8::try_from(row.uint(hr::PROCESSOR_LOAD)?).ok()?;
            (load <= 100).then_some(ProcessorLoad {
                index,
                load_percent: load,
            })
        })
        .collect()
}

/// `hrStorageTable` in bytes; rows without size or unit are dropped.
pub fn storage(rows: &Table) -> Vec<Storage> {
    rows.simple_rows()
        .filter_map(|(index, row)| {
            let unit = row.uint(hr::STORAGE_ALLOCATION_UNITS)?;
            let size = row.uint(hr::STORAGE_SIZE)?;
            let used = row.uint(hr::STORAGE_USED).unwrap_or(0);
            let kind = row
                .get(hr::STORAGE_TYPE)
                .and_then(Value::as_oid)
                .and_then(|oid| match oid.index_under(hr::STORAGE_TYPES) {
                    Some([kind]) => Some(*kind),
                    _ => None,
                });
            Some(Storage {
                index,
                descr: row.text(hr::STORAGE_DESCR).unwrap_or_default(),
                kind,
                size_bytes: size.saturating_mul(unit),
                used_bytes: used.saturating_mul(unit),
            })
        })
        .collect()
}

/// `hrDeviceTable` descriptions and status.
pub fn hr_devices(rows: &Table) -> Vec<HrDevice> {
    rows.simple_rows()
        .map(|(index, row)| HrDevice {
            index,
            descr: row.text(hr::DEVICE_DESCR).unwrap_or_default(),
            status: row.int(hr::DEVICE_STATUS).map(|status| match status {
                1 => HrDeviceStatus::Unknown,
                2 => HrDeviceStatus::Running,
                3 => HrDeviceStatus::Warning,
                4 => HrDeviceStatus::Testing,
                5 => HrDeviceStatus::Down,
                other => HrDeviceStatus::Other(other),
            }),
        })
        .collect()
}

/// ENTITY-SENSOR-MIB sensors, named from `entPhysicalTable`; rows without a
/// value are dropped.
pub fn sensors(rows: &Table, physical: &Table) -> Vec<Sensor> {
    rows.simple_rows()
        .filter_map(|(index, row)| {
            let raw_value = row.int(entity_sensor::VALUE)?;
            let scale = row.int(entity_sensor::SCALE).unwrap_or(9);
            let precision = row.int(entity_sensor::PRECISION).unwrap_or(0);
            Some(Sensor {
                index,
                name: physical.row(index).and_then(|p| p.text(entity::NAME)),
                sensor_type: row.int(entity_sensor::TYPE).unwrap_or(2),
                raw_value,
                scale,
                precision,
                value: scaled(raw_value, scale, precision),
                status: match row.int(entity_sensor::OPER_STATUS) {
                    Some(1) => SensorStatus::Ok,
                    Some(2) => SensorStatus::Unavailable,
                    Some(3) => SensorStatus::NonOperational,
                    Some(other) => SensorStatus::Other(other),
                    None => SensorStatus::Unavailable,
                },
            })
        })
        .collect()
}

/// `value * 1000^(scale - 9) / 10^precision`: scale 9 is units, 8 milli,
/// 10 kilo (ENTITY-SENSOR-MIB `SensorDataScale`); out-of-range scale and
/// precision are clamped to the MIB's limits.
fn scaled(value: i64, scale: i64, precision: i64) -> f64 {
    let exponent = 3 * (scale.clamp(1, 17) - 9) - precision.clamp(-8, 9);
    // Sensor values fit an f64 exactly (the MIB bounds them to 32 bits).
    let value = value as f64;
    value * 10f64.powi(i32::try_from(exponent).unwrap_or(0))
}

/// ENTITY-STATE-MIB operational states, with names and classes from
/// `entPhysicalTable`.
pub fn entity_states(rows: &Table, physical: &Table) -> Vec<EntityState> {
    rows.simple_rows()
        .filter_map(|(index, row)| {
            let oper = match row.int(entity_state::OPER)? {
                1 => EntityOperState::Unknown,
                2 => EntityOperState::Disabled,
                3 => EntityOperState::Enabled,
                4 => EntityOperState::Testing,
                other => EntityOperState::Other(other),
            };
            let entity_row = physical.row(index);
            Some(EntityState {
                index,
                name: entity_row.and_then(|p| p.text(entity::NAME)),
                class: entity_row
                    .and_then(|p| p.int(entity::CLASS))
                    .map(PhysicalClass::from_mib),
                oper,
            })
        })
        .collect()
}

/// LLDP remote systems (`lldpRemTable`, indexed by time mark, local port
/// number and remote index), with local port names from `lldpLocPortTable`.
pub fn neighbours(remote: &Table, local_ports: &Table) -> Vec<LldpNeighbour> {
    remote
        .rows()
        .filter_map(|(index, row)| {
            let [_time_mark, local_port_num, _remote_index] = index else {
                return None;
            };
            let local = local_ports.row(*local_port_num);
            Some(LldpNeighbour {
                local_port_num: *local_port_num,
                local_port: local.and_then(|p| {
                    p.text(lldp::LOC_PORT_DESC)
                        .or_else(|| p.text(lldp::LOC_PORT_ID))
                }),
                local_port_id: local.and_then(|p| p.text(lldp::LOC_PORT_ID)),
                remote_sys_name: row.text(lldp::REM_SYS_NAME),
                remote_port_id: lldp_id(row, lldp::REM_PORT_ID_SUBTYPE, lldp::REM_PORT_ID, 3),
                remote_port_desc: row.text(lldp::REM_PORT_DESC),
                remote_chassis_id: lldp_id(
                    row,
                    lldp::REM_CHASSIS_ID_SUBTYPE,
                    lldp::REM_CHASSIS_ID,
                    4,
                ),
            })
        })
        .collect()
}

impl LldpNeighbour {
    /// The local port as fault keys name it (`ifName`, see
    /// [`Interface::name`]): the interface whose `ifName`, else whose
    /// `ifDescr`, equals the port's `lldpLocPortId` or `lldpLocPortDesc`.
    /// Without such an interface, the LLDP text, else the port number.
    pub fn port_name(&self, interfaces: &[Interface]) -> String {
        let candidates = [self.local_port_id.as_deref(), self.local_port.as_deref()];
        let by = |field: fn(&Interface) -> &str| {
            candidates.iter().flatten().find_map(|text| {
                interfaces
                    .iter()
                    .find(|i| field(i) == *text)
                    .map(|i| i.name.clone())
            })
        };
        by(|i| i.name.as_str())
            .or_else(|| by(|i| i.descr.as_str()))
            .or_else(|| self.local_port.clone())
            .unwrap_or_else(|| self.local_port_num.to_string())
    }
}

/// An LLDP chassis or port ID: as a MAC address when its subtype says so
/// (`mac_subtype`: 4 for chassis IDs, 3 for port IDs), else as text, or hex
/// when it is not printable.
fn lldp_id(row: &Row, subtype_column: u32, id_column: u32, mac_subtype: i64) -> Option<String> {
    let Some(Value::OctetString(bytes)) = row.get(id_column) else {
        return None;
    };
    if bytes.is_empty() {
        return None;
    }
    let is_mac = row.int(subtype_column) == Some(mac_subtype) && bytes.len() == 6;
    let printable = bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if is_mac || !printable {
        Some(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        )
    } else {
        Some(String::from_utf8_lossy(bytes).trim().to_owned())
    }
}

#[cfg(test)]
mod tests;
