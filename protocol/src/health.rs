//! Host health: one sample of the agent host's vital signs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One reading of the agent host's health, taken at `collected_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSample {
    /// When the sample was taken (UTC).
    pub collected_at: DateTime<Utc>,
    /// Busy share of all CPUs over the sampling interval, 0.0 to 100.0.
    pub cpu_percent: f32,
    /// Load average over 1 minute (0.0 where the OS has no load average).
    pub load_1: f64,
    /// Load average over 5 minutes.
    pub load_5: f64,
    /// Load average over 15 minutes.
    pub load_15: f64,
    /// Memory in use, in bytes (total minus what is available to programs).
    pub memory_used_bytes: u64,
    /// Installed memory, in bytes.
    pub memory_total_bytes: u64,
    /// Swap in use, in bytes.
    pub swap_used_bytes: u64,
    /// Configured swap, in bytes.
    pub swap_total_bytes: u64,
    /// Seconds since the host booted.
    pub uptime_secs: u64,
    /// Space on each mounted file system.
    #[serde(default)]
    pub disks: Vec<DiskUsage>,
    /// Temperature sensors the OS exposes; empty when it exposes none
    /// (common in virtual machines and containers).
    #[serde(default)]
    pub temperatures: Vec<Temperature>,
}

/// Space on one mounted file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Where the file system is mounted (e.g. `/var`).
    pub mount_point: String,
    /// Size of the file system, in bytes.
    pub total_bytes: u64,
    /// Space available to unprivileged users, in bytes.
    pub available_bytes: u64,
}

/// One temperature sensor reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// Sensor name as the OS reports it (e.g. `coretemp Package id 0`).
    pub label: String,
    /// Current temperature, in degrees Celsius.
    pub celsius: f32,
    /// Temperature the hardware considers critical, if it reports one.
    #[serde(default)]
    pub critical_celsius: Option<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn health_sample_round_trip() {
        let value = samples::health_sample();
        let text = serde_json::to_string(&value).expect("serialize");
        let back: HealthSample = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, value);

        let disk = &value.disks[0];
        let text = serde_json::to_string(disk).expect("serialize");
        assert_eq!(
            &serde_json::from_str::<DiskUsage>(&text).expect("deserialize"),
            disk
        );

        for temperature in &value.temperatures {
            let text = serde_json::to_string(temperature).expect("serialize");
            let back: Temperature = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(&back, temperature);
        }
    }
}
