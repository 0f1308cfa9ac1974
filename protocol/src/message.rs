//! The envelope for messages an enrolled agent sends to the server.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{FaultEvent, Heartbeat, Inventory, JobReport, Topology, UpdateReport};

/// Any message an enrolled agent sends on its uplink, as one JSON object with
/// a `type` field (`heartbeat`, `inventory` or `fault`) beside the fields of
/// the wrapped message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// A [`Heartbeat`]; `"type": "heartbeat"`.
    Heartbeat(Heartbeat),
    /// An [`Inventory`] report; `"type": "inventory"`.
    Inventory(Inventory),
    /// A [`FaultEvent`]; `"type": "fault"`.
    Fault(FaultEvent),
    /// The LLDP [`Topology`]; `"type": "topology"`.
    Topology(Topology),
    /// The outcome of a self-update ([`UpdateReport`]); `"type": "update"`.
    Update(UpdateReport),
    /// A step of a firmware/software upgrade job ([`JobReport`]);
    /// `"type": "job"`.
    Job(JobReport),
}

impl AgentMessage {
    /// The protocol version the wrapped message declares.
    pub fn protocol_version(&self) -> u32 {
        match self {
            AgentMessage::Heartbeat(m) => m.protocol_version,
            AgentMessage::Inventory(m) => m.protocol_version,
            AgentMessage::Fault(m) => m.protocol_version,
            AgentMessage::Topology(m) => m.protocol_version,
            AgentMessage::Update(m) => m.protocol_version,
            AgentMessage::Job(m) => m.protocol_version,
        }
    }

    /// The sending agent's identity.
    pub fn agent_id(&self) -> Uuid {
        match self {
            AgentMessage::Heartbeat(m) => m.agent_id,
            AgentMessage::Inventory(m) => m.agent_id,
            AgentMessage::Fault(m) => m.agent_id,
            AgentMessage::Topology(m) => m.agent_id,
            AgentMessage::Update(m) => m.agent_id,
            AgentMessage::Job(m) => m.agent_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check_version, samples, PROTOCOL_VERSION};
    use serde_json::json;

    #[test]
    fn agent_message_round_trip() {
        let messages = [
            AgentMessage::Heartbeat(samples::heartbeat()),
            AgentMessage::Inventory(samples::inventory()),
            AgentMessage::Fault(samples::fault_raised()),
            AgentMessage::Fault(samples::fault_cleared()),
        ];
        for message in messages {
            let text = serde_json::to_string(&message).expect("serialize");
            let back: AgentMessage = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, message);
            assert_eq!(back.protocol_version(), PROTOCOL_VERSION);
            assert_eq!(check_version(back.protocol_version()), Ok(()));
            assert_eq!(back.agent_id(), samples::agent_id());
        }
    }

    #[test]
    fn unknown_message_type_is_rejected_naming_it() {
        let mut json =
            serde_json::to_value(AgentMessage::Heartbeat(samples::heartbeat())).expect("serialize");
        json["type"] = json!("telemetry");
        let err = serde_json::from_value::<AgentMessage>(json).expect_err("unknown type");
        assert!(err.to_string().contains("telemetry"), "{err}");
    }

    #[test]
    fn fault_message_json_shape() {
        let json =
            serde_json::to_value(AgentMessage::Fault(samples::fault_raised())).expect("serialize");
        assert_eq!(
            json,
            json!({
                "type": "fault",
                "protocol_version": 1,
                "idempotency_key": "00000000-0000-4000-8000-000000000101",
                "agent_id": "00000000-0000-4000-8000-000000000001",
                "fault_key": {
                    "device": "sw1",
                    "rule": "link_down",
                    "instance": "GigabitEthernet1/0/1",
                },
                "transition": "raised",
                "severity": "major",
                "observed_at": "2024-05-14T09:30:00Z",
                "summary": "GigabitEthernet1/0/1 on sw1 is down",
                "evidence": [
                    {
                        "name": "ifOperStatus.10101",
                        "value": "down(2)",
                        "observed_at": "2024-05-14T09:29:30Z",
                    },
                    {
                        "name": "ifAdminStatus.10101",
                        "value": "up(1)",
                        "observed_at": "2024-05-14T09:29:30Z",
                    },
                ],
            })
        );
    }

    #[test]
    fn heartbeat_message_json_shape() {
        let json =
            serde_json::to_value(AgentMessage::Heartbeat(samples::heartbeat())).expect("serialize");
        assert_eq!(
            json,
            json!({
                "type": "heartbeat",
                "protocol_version": 1,
                "agent_id": "00000000-0000-4000-8000-000000000001",
                "sent_at": "2024-05-14T09:30:00Z",
                "agent_version": "0.1.0",
                "uptime_secs": 86400,
                "spool_depth": 3,
            })
        );
    }

    #[test]
    fn enroll_json_shape() {
        assert_eq!(
            serde_json::to_value(samples::enroll_request()).expect("serialize"),
            json!({
                "protocol_version": 1,
                "token": "otk_3fa9c1d2e4b5",
                "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMz1iGRjXHFgmlQwDrdIYsaK2E7d8u2VyqNvkrNIGIUx outpost-agent@edge-01",
                "hostname": "edge-01",
                "agent_version": "0.1.0",
                "os": "linux",
                "arch": "x86_64",
            })
        );
        assert_eq!(
            serde_json::to_value(samples::enroll_response()).expect("serialize"),
            json!({
                "agent_id": "00000000-0000-4000-8000-000000000001",
                "server_tls_pin_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "ssh_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx9mJm0rL2bW5m3x6HqQbQ0y0G3u4s9d6yA1fJXkq0b relay",
                "heartbeat_interval_secs": 60,
            })
        );
    }

    #[test]
    fn inventory_and_health_json_field_names() {
        let inventory = serde_json::to_value(samples::inventory()).expect("serialize");
        let host = &inventory["host"];
        for field in [
            "hostname",
            "os_name",
            "os_version",
            "kernel_version",
            "arch",
            "cpu_count",
            "cpu_brand",
            "memory_total_bytes",
            "swap_total_bytes",
            "boot_time",
            "disks",
        ] {
            assert!(
                host.get(field).is_some(),
                "host facts lack `{field}`: {host}"
            );
        }
        assert_eq!(
            host["disks"][0],
            json!({
                "mount_point": "/",
                "file_system": "ext4",
                "total_bytes": 64_000_000_000_u64,
                "available_bytes": 21_000_000_000_u64,
            })
        );
        assert_eq!(host["boot_time"], json!("2024-05-13T09:30:00Z"));
        let device = &inventory["devices"][0];
        for field in [
            "target",
            "address",
            "sys_name",
            "sys_descr",
            "sys_object_id",
            "vendor",
            "model",
            "serial",
            "firmware_version",
            "software_version",
            "modules",
        ] {
            assert!(
                device.get(field).is_some(),
                "device lacks `{field}`: {device}"
            );
        }
        assert_eq!(
            device["modules"][0],
            json!({
                "index": 1001,
                "class": "power_supply",
                "name": "PSU 1",
                "description": "715W AC power supply",
                "serial": "LIT1234ABCD",
                "model": "PWR-C1-715WAC",
                "hardware_rev": "V02",
                "firmware_rev": null,
                "software_rev": null,
            })
        );

        let health = serde_json::to_value(samples::health_sample()).expect("serialize");
        assert_eq!(
            health,
            json!({
                "collected_at": "2024-05-14T09:30:00Z",
                "cpu_percent": 12.5,
                "load_1": 0.5,
                "load_5": 0.25,
                "load_15": 0.125,
                "memory_used_bytes": 3_000_000_000_u64,
                "memory_total_bytes": 8_000_000_000_u64,
                "swap_used_bytes": 0,
                "swap_total_bytes": 2_000_000_000_u64,
                "uptime_secs": 86400,
                "disks": [
                    { "mount_point": "/", "total_bytes": 64_000_000_000_u64, "available_bytes": 21_000_000_000_u64 },
                ],
                "temperatures": [
                    { "label": "coretemp Package id 0", "celsius": 47.5, "critical_celsius": 100.0 },
                    { "label": "acpitz", "celsius": 27.75, "critical_celsius": null },
                ],
            })
        );
    }
}
