//! Inventory: what the agent's host is and which devices it looks after.
//!
//! Host facts come from the operating system; device facts come from SNMP
//! (the MIB-II system group and ENTITY-MIB's `entPhysicalTable`). Anything a
//! host or device may fail to report is an `Option`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A full inventory report: the host the agent runs on plus every device it
/// polls. Sent at start-up and whenever the inventory changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Protocol version of the sender; see [`crate::check_version`].
    pub protocol_version: u32,
    /// The agent's identity, from [`crate::EnrollResponse::agent_id`].
    pub agent_id: Uuid,
    /// When the agent finished collecting this inventory (UTC).
    pub collected_at: DateTime<Utc>,
    /// Facts about the host the agent runs on.
    pub host: HostFacts,
    /// One entry per device the agent is configured to poll.
    #[serde(default)]
    pub devices: Vec<DeviceInventory>,
}

/// Slowly changing facts about the agent's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// Host name; the agent substitutes a fixed placeholder when the
    /// operating system does not report one.
    pub hostname: String,
    /// Operating system name (e.g. `Debian GNU/Linux`), if known.
    #[serde(default)]
    pub os_name: Option<String>,
    /// Operating system version (e.g. `12`), if known.
    #[serde(default)]
    pub os_version: Option<String>,
    /// Kernel version (e.g. `6.1.0-18-amd64`), if known.
    #[serde(default)]
    pub kernel_version: Option<String>,
    /// CPU architecture as reported by the operating system (e.g. `x86_64`).
    pub arch: String,
    /// Number of logical CPUs.
    pub cpu_count: u32,
    /// CPU model string (e.g. `Intel(R) Xeon(R) ...`), if known.
    #[serde(default)]
    pub cpu_brand: Option<String>,
    /// Installed memory, in bytes.
    pub memory_total_bytes: u64,
    /// Configured swap, in bytes (0 when there is none).
    pub swap_total_bytes: u64,
    /// When the host last booted (UTC).
    pub boot_time: DateTime<Utc>,
    /// Mounted file systems.
    #[serde(default)]
    pub disks: Vec<DiskFacts>,
}

/// One mounted file system of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFacts {
    /// Where the file system is mounted (e.g. `/var`).
    pub mount_point: String,
    /// File system type (e.g. `ext4`).
    pub file_system: String,
    /// Size of the file system, in bytes.
    pub total_bytes: u64,
    /// Space available to unprivileged users, in bytes.
    pub available_bytes: u64,
}

/// Inventory of one network device the agent polls over SNMP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInventory {
    /// The device's name as configured on the agent; the `device` part of
    /// every [`crate::FaultKey`] about it.
    pub target: String,
    /// The address the agent polls (IP address or DNS name).
    pub address: String,
    /// `sysName.0`.
    pub sys_name: String,
    /// `sysDescr.0`.
    pub sys_descr: String,
    /// `sysObjectID.0`, in dotted numeric form (e.g. `1.3.6.1.4.1.9.1.1208`).
    pub sys_object_id: String,
    /// Manufacturer, if the agent could determine it.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Product model, if reported.
    #[serde(default)]
    pub model: Option<String>,
    /// Chassis serial number, if reported.
    #[serde(default)]
    pub serial: Option<String>,
    /// Firmware (boot loader / ROM) version, if reported.
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// Running software (operating system image) version, if reported.
    #[serde(default)]
    pub software_version: Option<String>,
    /// Physical components from ENTITY-MIB's `entPhysicalTable`; empty when
    /// the device does not implement it.
    #[serde(default)]
    pub modules: Vec<ModuleInventory>,
}

/// One physical component of a device (a row of ENTITY-MIB's
/// `entPhysicalTable`). Empty strings from the device are reported as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInventory {
    /// `entPhysicalIndex`.
    pub index: u32,
    /// `entPhysicalClass`.
    pub class: PhysicalClass,
    /// `entPhysicalName` (e.g. `PSU 1`, `GigabitEthernet1/0/1`).
    pub name: String,
    /// `entPhysicalDescr`.
    pub description: String,
    /// `entPhysicalSerialNum`, if reported.
    #[serde(default)]
    pub serial: Option<String>,
    /// `entPhysicalModelName`, if reported.
    #[serde(default)]
    pub model: Option<String>,
    /// `entPhysicalHardwareRev`, if reported.
    #[serde(default)]
    pub hardware_rev: Option<String>,
    /// `entPhysicalFirmwareRev`, if reported.
    #[serde(default)]
    pub firmware_rev: Option<String>,
    /// `entPhysicalSoftwareRev`, if reported.
    #[serde(default)]
    pub software_rev: Option<String>,
}

/// ENTITY-MIB `PhysicalClass` (RFC 6933), encoded in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhysicalClass {
    /// `other(1)`.
    Other,
    /// `unknown(2)`; also used for values outside the MIB's range.
    Unknown,
    /// `chassis(3)`.
    Chassis,
    /// `backplane(4)`.
    Backplane,
    /// `container(5)`: a slot or bay.
    Container,
    /// `powerSupply(6)`.
    PowerSupply,
    /// `fan(7)`.
    Fan,
    /// `sensor(8)`.
    Sensor,
    /// `module(9)`: a line card, supervisor or pluggable optic.
    Module,
    /// `port(10)`.
    Port,
    /// `stack(11)`.
    Stack,
    /// `cpu(12)`.
    Cpu,
    /// `energyObject(13)`.
    EnergyObject,
    /// `battery(14)`.
    Battery,
    /// `storageDrive(15)`.
    StorageDrive,
}

impl PhysicalClass {
    /// Maps the integer value of `entPhysicalClass` to a class; values the
    /// MIB does not define map to [`PhysicalClass::Unknown`].
    pub fn from_mib(value: i64) -> Self {
        match value {
            1 => Self::Other,
            3 => Self::Chassis,
            4 => Self::Backplane,
            5 => Self::Container,
            6 => Self::PowerSupply,
            7 => Self::Fan,
            8 => Self::Sensor,
            9 => Self::Module,
            10 => Self::Port,
            11 => Self::Stack,
            12 => Self::Cpu,
            13 => Self::EnergyObject,
            14 => Self::Battery,
            15 => Self::StorageDrive,
            _ => Self::Unknown,
        }
    }

    /// The integer value of this class in ENTITY-MIB.
    pub fn mib_value(self) -> i64 {
        match self {
            Self::Other => 1,
            Self::Unknown => 2,
            Self::Chassis => 3,
            Self::Backplane => 4,
            Self::Container => 5,
            Self::PowerSupply => 6,
            Self::Fan => 7,
            Self::Sensor => 8,
            Self::Module => 9,
            Self::Port => 10,
            Self::Stack => 11,
            Self::Cpu => 12,
            Self::EnergyObject => 13,
            Self::Battery => 14,
            Self::StorageDrive => 15,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
        let text = serde_json::to_string(value).expect("serialize");
        let back: T = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(&back, value, "{text}");
    }

    #[test]
    fn inventory_types_round_trip() {
        let inventory = samples::inventory();
        round_trip(&inventory);
        round_trip(&inventory.host);
        round_trip(&inventory.host.disks[0]);
        round_trip(&inventory.devices[0]);
        round_trip(&inventory.devices[1]);
        round_trip(&inventory.devices[0].modules[0]);
    }

    #[test]
    fn physical_class_mib_values_round_trip() {
        for value in 1..=15 {
            assert_eq!(PhysicalClass::from_mib(value).mib_value(), value);
        }
        assert_eq!(PhysicalClass::from_mib(0), PhysicalClass::Unknown);
        assert_eq!(PhysicalClass::from_mib(99), PhysicalClass::Unknown);
    }

    #[test]
    fn physical_class_is_snake_case() {
        assert_eq!(
            serde_json::to_value(PhysicalClass::PowerSupply).expect("serialize"),
            serde_json::json!("power_supply")
        );
        let err = serde_json::from_str::<PhysicalClass>("\"toaster\"")
            .expect_err("unknown class must be rejected");
        assert!(err.to_string().contains("toaster"), "{err}");
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let device: DeviceInventory = serde_json::from_value(serde_json::json!({
            "target": "sw1",
            "address": "192.0.2.10",
            "sys_name": "sw1",
            "sys_descr": "switch",
            "sys_object_id": "1.3.6.1.4.1.9.1.1208",
        }))
        .expect("deserialize");
        assert_eq!(device.vendor, None);
        assert_eq!(device.software_version, None);
        assert!(device.modules.is_empty());
    }
}
