//! Host collector: reads the agent host through `sysinfo` and produces the
//! protocol's [`HostFacts`] (slowly changing facts, sent with the inventory)
//! and [`HealthSample`] (one reading of the host's vital signs).
//!
//! Readings the operating system does not provide become `None` (or an empty
//! list) rather than an error, except where the protocol needs a value: a
//! missing host name is replaced by [`UNKNOWN_HOSTNAME`], and a boot time
//! that cannot be determined at all is an error. Functions that stamp a time
//! take a clock, so tests can drive it.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use outpost_protocol::{DiskFacts, DiskUsage, HealthSample, HostFacts, Temperature};
use sysinfo::{
    Components, CpuRefreshKind, Disk, Disks, MemoryRefreshKind, RefreshKind, System,
    MINIMUM_CPU_UPDATE_INTERVAL,
};

/// Host name reported when the operating system gives none (or an empty one).
pub const UNKNOWN_HOSTNAME: &str = "unknown-host";

/// This host's name, or [`UNKNOWN_HOSTNAME`].
pub fn hostname() -> String {
    hostname_or_fallback(System::host_name())
}

/// Collects the host's [`HostFacts`]. `now` is used only to derive the boot
/// time from the uptime when the OS does not report the boot time directly.
pub fn collect_facts(now: impl Fn() -> DateTime<Utc>) -> Result<HostFacts> {
    ensure_supported()?;
    let system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_memory(MemoryRefreshKind::everything())
            .with_cpu(CpuRefreshKind::nothing()),
    );
    let cpus = system.cpus();
    let cpu_count = if cpus.is_empty() {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        cpus.len()
    };
    let cpu_brand = non_empty(cpus.first().map(|cpu| cpu.brand().to_owned()));
    let arch =
        non_empty(Some(System::cpu_arch())).unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let boot_time = boot_time(System::boot_time(), System::uptime(), now())
        .context("reading the host's boot time")?;
    let disks = Disks::new_with_refreshed_list();

    Ok(HostFacts {
        hostname: hostname_or_fallback(System::host_name()),
        os_name: non_empty(System::name()),
        os_version: non_empty(System::os_version()),
        kernel_version: non_empty(System::kernel_version()),
        arch,
        cpu_count: u32::try_from(cpu_count).unwrap_or(u32::MAX),
        cpu_brand,
        memory_total_bytes: system.total_memory(),
        swap_total_bytes: system.total_swap(),
        boot_time,
        disks: disks.list().iter().map(disk_facts).collect(),
    })
}

/// Collects one [`HealthSample`], stamped with `now()` taken after the
/// readings. Blocks for [`MINIMUM_CPU_UPDATE_INTERVAL`], the least time over
/// which CPU usage can be measured.
pub fn collect_health(now: impl Fn() -> DateTime<Utc>) -> Result<HealthSample> {
    ensure_supported()?;
    let mut system = System::new_with_specifics(
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_cpu_usage()),
    );
    std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL);
    system.refresh_cpu_usage();
    system.refresh_memory();
    let load = System::load_average();
    let disks = Disks::new_with_refreshed_list();
    let components = Components::new_with_refreshed_list();

    Ok(HealthSample {
        collected_at: now(),
        cpu_percent: clamp_percent(system.global_cpu_usage()),
        load_1: finite_or_zero(load.one),
        load_5: finite_or_zero(load.five),
        load_15: finite_or_zero(load.fifteen),
        memory_used_bytes: system.used_memory(),
        memory_total_bytes: system.total_memory(),
        swap_used_bytes: system.used_swap(),
        swap_total_bytes: system.total_swap(),
        uptime_secs: System::uptime(),
        disks: disks.list().iter().map(disk_usage).collect(),
        temperatures: components
            .list()
            .iter()
            .filter_map(|c| temperature(c.label(), c.temperature(), c.critical()))
            .collect(),
    })
}

fn ensure_supported() -> Result<()> {
    if !sysinfo::IS_SUPPORTED_SYSTEM {
        bail!(
            "host metrics are not supported on this operating system ({})",
            std::env::consts::OS
        );
    }
    Ok(())
}

fn disk_facts(disk: &Disk) -> DiskFacts {
    DiskFacts {
        mount_point: disk.mount_point().to_string_lossy().into_owned(),
        file_system: disk.file_system().to_string_lossy().into_owned(),
        total_bytes: disk.total_space(),
        available_bytes: disk.available_space(),
    }
}

fn disk_usage(disk: &Disk) -> DiskUsage {
    DiskUsage {
        mount_point: disk.mount_point().to_string_lossy().into_owned(),
        total_bytes: disk.total_space(),
        available_bytes: disk.available_space(),
    }
}

/// The host name, trimmed, or [`UNKNOWN_HOSTNAME`] if there is none.
fn hostname_or_fallback(name: Option<String>) -> String {
    non_empty(name).unwrap_or_else(|| UNKNOWN_HOSTNAME.to_owned())
}

/// `Some(trimmed)` unless the value is missing or blank.
fn non_empty(value: Option<String>) -> Option<String> {
    let value = value?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        None
    } else {
        Some(trimmed.to_owned())
    }
}

/// The boot time from the OS's boot timestamp (seconds since the Unix epoch),
/// or, if the OS reports none (0), from `now` minus the uptime.
fn boot_time(boot_secs: u64, uptime_secs: u64, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if boot_secs != 0 {
        let secs = i64::try_from(boot_secs)
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0));
        return secs.with_context(|| format!("boot timestamp {boot_secs} is out of range"));
    }
    if uptime_secs == 0 {
        bail!("the operating system reports neither a boot time nor an uptime");
    }
    i64::try_from(uptime_secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .and_then(|uptime| now.checked_sub_signed(uptime))
        .with_context(|| format!("uptime of {uptime_secs} seconds is out of range"))
}

/// CPU usage limited to 0..=100; a non-finite reading counts as 0.
fn clamp_percent(value: f32) -> f32 {
    if value.is_finite() {
        value.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

fn finite_or_zero(value: f64) -> f64 {
    if value.is_finite() {
        value
    } else {
        0.0
    }
}

/// A [`Temperature`] for a sensor with a finite current reading; sensors
/// without one are left out, and a non-finite critical value becomes `None`.
fn temperature(label: &str, celsius: Option<f32>, critical: Option<f32>) -> Option<Temperature> {
    let celsius = celsius.filter(|t| t.is_finite())?;
    Some(Temperature {
        label: label.to_owned(),
        celsius,
        critical_celsius: critical.filter(|t| t.is_finite()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_describe_this_host() {
        let facts = collect_facts(Utc::now).expect("collect facts");
        assert!(!facts.hostname.is_empty());
        if let Some(name) = System::host_name().filter(|n| !n.trim().is_empty()) {
            assert_eq!(facts.hostname, name.trim());
        } else {
            assert_eq!(facts.hostname, UNKNOWN_HOSTNAME);
        }
        assert!(facts.memory_total_bytes > 0);
        assert!(facts.cpu_count > 0);
        assert!(!facts.arch.is_empty());
        assert!(facts.boot_time <= Utc::now());
    }

    #[test]
    fn facts_map_every_disk() {
        let facts = collect_facts(Utc::now).expect("collect facts");
        let disks = Disks::new_with_refreshed_list();
        let expected: Vec<String> = disks
            .list()
            .iter()
            .map(|d| d.mount_point().to_string_lossy().into_owned())
            .collect();
        let mapped: Vec<String> = facts.disks.iter().map(|d| d.mount_point.clone()).collect();
        assert_eq!(mapped, expected);
        for (disk, source) in facts.disks.iter().zip(disks.list()) {
            assert_eq!(disk.file_system, source.file_system().to_string_lossy());
            assert_eq!(disk.total_bytes, source.total_space());
            assert!(disk.available_bytes <= disk.total_bytes);
        }
    }

    #[test]
    fn health_sample_is_sane() {
        let before = Utc::now();
        let sample = collect_health(Utc::now).expect("collect health");
        assert!(sample.collected_at >= before);
        assert!((0.0..=100.0).contains(&sample.cpu_percent));
        assert!(sample.memory_total_bytes > 0);
        assert!(sample.memory_used_bytes <= sample.memory_total_bytes);
        assert!(sample.swap_used_bytes <= sample.swap_total_bytes);
        assert!(sample.load_1 >= 0.0 && sample.load_5 >= 0.0 && sample.load_15 >= 0.0);
        assert!(sample.uptime_secs > 0);
        for disk in &sample.disks {
            assert!(!disk.mount_point.is_empty());
            assert!(disk.available_bytes <= disk.total_bytes);
        }
        for temperature in &sample.temperatures {
            assert!(temperature.celsius.is_finite());
        }
    }

    #[test]
    fn health_uses_the_given_clock() {
        let fixed = DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
        let sample = collect_health(|| fixed).expect("collect health");
        assert_eq!(sample.collected_at, fixed);
    }

    #[test]
    fn hostname_falls_back_when_missing_or_blank() {
        assert_eq!(hostname_or_fallback(None), UNKNOWN_HOSTNAME);
        assert_eq!(hostname_or_fallback(Some("  ".into())), UNKNOWN_HOSTNAME);
        assert_eq!(hostname_or_fallback(Some("edge-01\n".into())), "edge-01");
    }

    #[test]
    fn blank_strings_become_none() {
        assert_eq!(non_empty(None), None);
        assert_eq!(non_empty(Some(String::new())), None);
        assert_eq!(non_empty(Some(" 12 ".into())), Some("12".into()));
    }

    #[test]
    fn boot_time_from_timestamp_or_uptime() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
        assert_eq!(
            boot_time(1_699_990_000, 5, now).expect("boot time"),
            DateTime::from_timestamp(1_699_990_000, 0).expect("valid timestamp")
        );
        assert_eq!(
            boot_time(0, 3_600, now).expect("boot time"),
            DateTime::from_timestamp(1_699_996_400, 0).expect("valid timestamp")
        );
        let err = boot_time(0, 0, now).expect_err("nothing known");
        assert!(err.to_string().contains("neither"), "{err}");
        let err = boot_time(u64::MAX, 0, now).expect_err("out of range");
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(boot_time(0, u64::MAX, now).is_err());
    }

    #[test]
    fn percent_is_clamped() {
        assert_eq!(clamp_percent(42.5), 42.5);
        assert_eq!(clamp_percent(-1.0), 0.0);
        assert_eq!(clamp_percent(100.5), 100.0);
        assert_eq!(clamp_percent(f32::NAN), 0.0);
        assert_eq!(finite_or_zero(f64::INFINITY), 0.0);
    }

    #[test]
    fn temperatures_without_reading_are_skipped() {
        assert_eq!(temperature("cpu", None, Some(100.0)), None);
        assert_eq!(temperature("cpu", Some(f32::NAN), None), None);
        assert_eq!(
            temperature("cpu", Some(55.0), Some(f32::NAN)),
            Some(Temperature {
                label: "cpu".into(),
                celsius: 55.0,
                critical_celsius: None,
            })
        );
        assert_eq!(
            temperature("cpu", Some(55.0), Some(100.0)).and_then(|t| t.critical_celsius),
            Some(100.0)
        );
    }
}
