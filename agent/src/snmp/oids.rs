//! Numeric object identifiers of everything the agent polls. There are no
//! MIB files on the hosts the agent runs on, so names live here, once, with
//! the MIB they come from. Table entries end at the `...Entry` node; a
//! column is the entry plus the column number.

/// SNMPv2-MIB system group scalars (instance `.0` included).
pub mod system {
    /// `sysDescr.0`.
    pub const SYS_DESCR: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 1, 0];
    /// `sysObjectID.0`.
    pub const SYS_OBJECT_ID: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 2, 0];
    /// `sysUpTime.0`, in hundredths of a second.
    pub const SYS_UP_TIME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
    /// `sysName.0`.
    pub const SYS_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];
}

/// IF-MIB `ifTable` (`ifEntry`) and its columns.
pub mod if_table {
    /// `ifEntry`.
    pub const ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1];
    /// `ifDescr`.
    pub const DESCR: u32 = 2;
    /// `ifType`.
    pub const TYPE: u32 = 3;
    /// `ifAdminStatus`: up(1), down(2), testing(3).
    pub const ADMIN_STATUS: u32 = 7;
    /// `ifOperStatus`: up(1), down(2), testing(3), unknown(4), dormant(5),
    /// notPresent(6), lowerLayerDown(7).
    pub const OPER_STATUS: u32 = 8;
    /// `ifInDiscards`.
    pub const IN_DISCARDS: u32 = 13;
    /// `ifInErrors`.
    pub const IN_ERRORS: u32 = 14;
    /// `ifOutDiscards`.
    pub const OUT_DISCARDS: u32 = 19;
    /// `ifOutErrors`.
    pub const OUT_ERRORS: u32 = 20;
}

/// IF-MIB `ifXTable` (`ifXEntry`) and its columns.
pub mod if_x_table {
    /// `ifXEntry`.
    pub const ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1];
    /// `ifName`.
    pub const NAME: u32 = 1;
    /// `ifHCInOctets`.
    pub const HC_IN_OCTETS: u32 = 6;
    /// `ifHCOutOctets`.
    pub const HC_OUT_OCTETS: u32 = 10;
    /// `ifHighSpeed`, in Mbit/s.
    pub const HIGH_SPEED: u32 = 15;
    /// `ifAlias`.
    pub const ALIAS: u32 = 18;
}

/// HOST-RESOURCES-MIB tables.
pub mod host_resources {
    /// `hrStorageEntry`.
    pub const STORAGE_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1];
    /// `hrStorageType` (an OID under `hrStorageTypes`).
    pub const STORAGE_TYPE: u32 = 2;
    /// `hrStorageDescr`.
    pub const STORAGE_DESCR: u32 = 3;
    /// `hrStorageAllocationUnits`, in bytes.
    pub const STORAGE_ALLOCATION_UNITS: u32 = 4;
    /// `hrStorageSize`, in allocation units.
    pub const STORAGE_SIZE: u32 = 5;
    /// `hrStorageUsed`, in allocation units.
    pub const STORAGE_USED: u32 = 6;
    /// `hrStorageTypes`: the prefix of every `hrStorageType` value; the
    /// last arc says what kind (2 RAM, 3 virtual memory, 4 fixed disk, ...).
    pub const STORAGE_TYPES: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 2, 1];
    /// `hrDeviceEntry`.
    pub const DEVICE_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 3, 2, 1];
    /// `hrDeviceDescr`.
    pub const DEVICE_DESCR: u32 = 3;
    /// `hrDeviceStatus`: unknown(1), running(2), warning(3), testing(4),
    /// down(5).
    pub const DEVICE_STATUS: u32 = 5;
    /// `hrProcessorEntry`.
    pub const PROCESSOR_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 3, 3, 1];
    /// `hrProcessorLoad`, percent over the last minute.
    pub const PROCESSOR_LOAD: u32 = 2;
}

/// ENTITY-MIB `entPhysicalTable` (`entPhysicalEntry`) and its columns.
pub mod entity {
    /// `entPhysicalEntry`.
    pub const ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1];
    /// `entPhysicalDescr`.
    pub const DESCR: u32 = 2;
    /// `entPhysicalContainedIn`.
    pub const CONTAINED_IN: u32 = 4;
    /// `entPhysicalClass`.
    pub const CLASS: u32 = 5;
    /// `entPhysicalName`.
    pub const NAME: u32 = 7;
    /// `entPhysicalHardwareRev`.
    pub const HARDWARE_REV: u32 = 8;
    /// `entPhysicalFirmwareRev`.
    pub const FIRMWARE_REV: u32 = 9;
    /// `entPhysicalSoftwareRev`.
    pub const SOFTWARE_REV: u32 = 10;
    /// `entPhysicalSerialNum`.
    pub const SERIAL: u32 = 11;
    /// `entPhysicalMfgName`.
    pub const MFG_NAME: u32 = 12;
    /// `entPhysicalModelName`.
    pub const MODEL: u32 = 13;
}

/// ENTITY-SENSOR-MIB `entPhySensorTable`, indexed by `entPhysicalIndex`.
pub mod entity_sensor {
    /// `entPhySensorEntry`.
    pub const ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 99, 1, 1, 1];
    /// `entPhySensorType`: other(1), unknown(2), voltsAC(3), voltsDC(4),
    /// amperes(5), watts(6), hertz(7), celsius(8), percentRH(9), rpm(10),
    /// cmm(11), truthvalue(12).
    pub const TYPE: u32 = 1;
    /// `entPhySensorScale`: yocto(1) ... units(9) ... yotta(17).
    pub const SCALE: u32 = 2;
    /// `entPhySensorPrecision`: digits after the decimal point.
    pub const PRECISION: u32 = 3;
    /// `entPhySensorValue`.
    pub const VALUE: u32 = 4;
    /// `entPhySensorOperStatus`: ok(1), unavailable(2), nonoperational(3).
    pub const OPER_STATUS: u32 = 5;
}

/// ENTITY-STATE-MIB `entStateTable`, indexed by `entPhysicalIndex`.
pub mod entity_state {
    /// `entStateEntry`.
    pub const ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 131, 1, 1, 1];
    /// `entStateAdmin`: unknown(1), locked(2), shuttingDown(3), unlocked(4).
    pub const ADMIN: u32 = 2;
    /// `entStateOper`: unknown(1), disabled(2), enabled(3), testing(4).
    pub const OPER: u32 = 3;
}

/// LLDP-MIB (IEEE 802.1AB) tables.
pub mod lldp {
    /// `lldpRemEntry`, indexed by time mark, local port number and remote
    /// index.
    pub const REM_ENTRY: &[u32] = &[1, 0, 8802, 1, 1, 2, 1, 4, 1, 1];
    /// `lldpRemChassisIdSubtype`.
    pub const REM_CHASSIS_ID_SUBTYPE: u32 = 4;
    /// `lldpRemChassisId`.
    pub const REM_CHASSIS_ID: u32 = 5;
    /// `lldpRemPortIdSubtype`.
    pub const REM_PORT_ID_SUBTYPE: u32 = 6;
    /// `lldpRemPortId`.
    pub const REM_PORT_ID: u32 = 7;
    /// `lldpRemPortDesc`.
    pub const REM_PORT_DESC: u32 = 8;
    /// `lldpRemSysName`.
    pub const REM_SYS_NAME: u32 = 9;
    /// `lldpLocPortEntry`, indexed by local port number.
    pub const LOC_PORT_ENTRY: &[u32] = &[1, 0, 8802, 1, 1, 2, 1, 3, 7, 1];
    /// `lldpLocPortId`.
    pub const LOC_PORT_ID: u32 = 3;
    /// `lldpLocPortDesc`.
    pub const LOC_PORT_DESC: u32 = 4;
}
