//! Topology: the LLDP neighbours each polled device reports, so the server
//! can draw the customer's network (nodes: devices; edges: port to port).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every LLDP link the agent's devices see. Sent when it changes; replaces
/// the agent's previous report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Protocol version of the sender; see [`crate::check_version`].
    pub protocol_version: u32,
    /// The agent's identity.
    pub agent_id: Uuid,
    /// When the LLDP tables were read (UTC).
    pub collected_at: DateTime<Utc>,
    /// One per LLDP remote-table row.
    #[serde(default)]
    pub links: Vec<LldpLink>,
}

/// One neighbour seen on one local port (a row of `lldpRemTable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LldpLink {
    /// The polled device (its target name, as in [`crate::DeviceInventory`]).
    pub device: String,
    /// Local port name (`lldpLocPortId`/`ifName`).
    pub local_port: String,
    /// `lldpRemChassisId`, as text (MAC addresses as `aa:bb:..`).
    #[serde(default)]
    pub remote_chassis_id: Option<String>,
    /// `lldpRemSysName`.
    #[serde(default)]
    pub remote_sys_name: Option<String>,
    /// `lldpRemPortId`.
    pub remote_port: String,
    /// `lldpRemPortDesc`.
    #[serde(default)]
    pub remote_port_descr: Option<String>,
}
