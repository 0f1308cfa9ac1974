//! Realistic example values shared by this crate's tests.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::*;

/// 2024-05-14T09:30:00Z plus `offset_secs`.
pub fn at(offset_secs: i64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2024, 5, 14, 9, 30, 0)
        .single()
        .expect("valid date");
    base + chrono::TimeDelta::seconds(offset_secs)
}

pub fn agent_id() -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001)
}

pub fn enroll_request() -> EnrollRequest {
    EnrollRequest {
        protocol_version: PROTOCOL_VERSION,
        token: "otk_3fa9c1d2e4b5".into(),
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMz1iGRjXHFgmlQwDrdIYsaK2E7d8u2VyqNvkrNIGIUx outpost-agent@edge-01".into(),
        hostname: "edge-01".into(),
        agent_version: "0.1.0".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
    }
}

pub fn enroll_response() -> EnrollResponse {
    EnrollResponse {
        agent_id: agent_id(),
        server_tls_pin_sha256: Some(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        ),
        ssh_host_key: Some(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx9mJm0rL2bW5m3x6HqQbQ0y0G3u4s9d6yA1fJXkq0b relay"
                .into(),
        ),
        heartbeat_interval_secs: 60,
    }
}

pub fn enroll_response_minimal() -> EnrollResponse {
    EnrollResponse {
        agent_id: agent_id(),
        server_tls_pin_sha256: None,
        ssh_host_key: None,
        heartbeat_interval_secs: 300,
    }
}

pub fn heartbeat() -> Heartbeat {
    Heartbeat {
        protocol_version: PROTOCOL_VERSION,
        agent_id: agent_id(),
        sent_at: at(0),
        agent_version: "0.1.0".into(),
        uptime_secs: 86_400,
        spool_depth: 3,
        clock_skew_secs: None,
    }
}

pub fn host_facts() -> HostFacts {
    HostFacts {
        hostname: "edge-01".into(),
        os_name: Some("Debian GNU/Linux".into()),
        os_version: Some("12".into()),
        kernel_version: Some("6.1.0-18-amd64".into()),
        arch: "x86_64".into(),
        cpu_count: 4,
        cpu_brand: Some("Intel(R) Xeon(R) E-2224 CPU @ 3.40GHz".into()),
        memory_total_bytes: 8_000_000_000,
        swap_total_bytes: 2_000_000_000,
        boot_time: at(-86_400),
        disks: vec![
            DiskFacts {
                mount_point: "/".into(),
                file_system: "ext4".into(),
                total_bytes: 64_000_000_000,
                available_bytes: 21_000_000_000,
            },
            DiskFacts {
                mount_point: "/var/lib/outpost".into(),
                file_system: "xfs".into(),
                total_bytes: 200_000_000_000,
                available_bytes: 150_000_000_000,
            },
        ],
    }
}

pub fn inventory() -> Inventory {
    Inventory {
        protocol_version: PROTOCOL_VERSION,
        agent_id: agent_id(),
        collected_at: at(0),
        host: host_facts(),
        devices: vec![
            DeviceInventory {
                target: "sw1".into(),
                address: "192.0.2.10".into(),
                sys_name: "sw1.branch.example.net".into(),
                sys_descr:
                    "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E8"
                        .into(),
                sys_object_id: "1.3.6.1.4.1.9.1.1208".into(),
                vendor: Some("Cisco".into()),
                model: Some("WS-C2960X-48FPD-L".into()),
                serial: Some("FOC1234X0AB".into()),
                firmware_version: Some("15.2(7r)E".into()),
                software_version: Some("15.2(7)E8".into()),
                modules: vec![
                    ModuleInventory {
                        index: 1001,
                        class: PhysicalClass::PowerSupply,
                        name: "PSU 1".into(),
                        description: "715W AC power supply".into(),
                        serial: Some("LIT1234ABCD".into()),
                        model: Some("PWR-C1-715WAC".into()),
                        hardware_rev: Some("V02".into()),
                        firmware_rev: None,
                        software_rev: None,
                    },
                    ModuleInventory {
                        index: 1,
                        class: PhysicalClass::Chassis,
                        name: "1".into(),
                        description: "WS-C2960X-48FPD-L".into(),
                        serial: Some("FOC1234X0AB".into()),
                        model: Some("WS-C2960X-48FPD-L".into()),
                        hardware_rev: Some("V05".into()),
                        firmware_rev: Some("15.2(7r)E".into()),
                        software_rev: Some("15.2(7)E8".into()),
                    },
                ],
            },
            DeviceInventory {
                target: "ups-a".into(),
                address: "ups-a.branch.example.net".into(),
                sys_name: "ups-a".into(),
                sys_descr: "UPS network card".into(),
                sys_object_id: "1.3.6.1.4.1.318.1.3.27".into(),
                vendor: None,
                model: None,
                serial: None,
                firmware_version: None,
                software_version: None,
                modules: Vec::new(),
            },
        ],
    }
}

pub fn health_sample() -> HealthSample {
    HealthSample {
        collected_at: at(0),
        cpu_percent: 12.5,
        load_1: 0.5,
        load_5: 0.25,
        load_15: 0.125,
        memory_used_bytes: 3_000_000_000,
        memory_total_bytes: 8_000_000_000,
        swap_used_bytes: 0,
        swap_total_bytes: 2_000_000_000,
        uptime_secs: 86_400,
        disks: vec![DiskUsage {
            mount_point: "/".into(),
            total_bytes: 64_000_000_000,
            available_bytes: 21_000_000_000,
        }],
        temperatures: vec![
            Temperature {
                label: "coretemp Package id 0".into(),
                celsius: 47.5,
                critical_celsius: Some(100.0),
            },
            Temperature {
                label: "acpitz".into(),
                celsius: 27.75,
                critical_celsius: None,
            },
        ],
    }
}

fn link_down_key() -> FaultKey {
    FaultKey::new("sw1", FaultRule::LinkDown, "GigabitEthernet1/0/1").expect("valid key")
}

pub fn fault_raised() -> FaultEvent {
    FaultEvent {
        protocol_version: PROTOCOL_VERSION,
        idempotency_key: Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0101),
        agent_id: agent_id(),
        fault_key: link_down_key(),
        transition: FaultTransition::Raised,
        severity: Severity::Major,
        observed_at: at(0),
        summary: "GigabitEthernet1/0/1 on sw1 is down".into(),
        evidence: vec![
            Evidence {
                name: "ifOperStatus.10101".into(),
                value: "down(2)".into(),
                observed_at: at(-30),
            },
            Evidence {
                name: "ifAdminStatus.10101".into(),
                value: "up(1)".into(),
                observed_at: at(-30),
            },
        ],
    }
}

pub fn fault_cleared() -> FaultEvent {
    FaultEvent {
        protocol_version: PROTOCOL_VERSION,
        idempotency_key: Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0102),
        agent_id: agent_id(),
        fault_key: link_down_key(),
        transition: FaultTransition::Cleared,
        severity: Severity::Major,
        observed_at: at(600) + chrono::TimeDelta::milliseconds(125),
        summary: "GigabitEthernet1/0/1 on sw1 is up again".into(),
        evidence: vec![Evidence {
            name: "ifOperStatus.10101".into(),
            value: "up(1)".into(),
            observed_at: at(590),
        }],
    }
}
