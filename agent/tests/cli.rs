//! Runs the built `outpost-agent` binary and checks what it prints.

use std::process::{Command, Output};

use chrono::{TimeDelta, Utc};
use outpost_protocol::{HealthSample, HostFacts};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outpost-agent"))
        .args(args)
        .output()
        .expect("run outpost-agent")
}

fn stdout_of(args: &[&str]) -> String {
    let output = agent(args);
    assert!(
        output.status.success(),
        "outpost-agent {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

#[test]
fn facts_prints_host_facts() {
    let facts: HostFacts = serde_json::from_str(&stdout_of(&["facts"])).expect("HostFacts JSON");
    assert!(!facts.hostname.is_empty());
    assert!(!facts.arch.is_empty());
    assert!(facts.cpu_count > 0);
    assert!(facts.memory_total_bytes > 0);
    assert!(facts.boot_time <= Utc::now());
    assert!(facts.boot_time > Utc::now() - TimeDelta::days(365 * 20));
    for disk in &facts.disks {
        assert!(!disk.mount_point.is_empty());
        assert!(disk.available_bytes <= disk.total_bytes);
    }
}

#[test]
fn health_prints_one_sample() {
    let before = Utc::now();
    let sample: HealthSample =
        serde_json::from_str(&stdout_of(&["health"])).expect("HealthSample JSON");
    let after = Utc::now();
    assert!(sample.collected_at >= before && sample.collected_at <= after);
    assert!((0.0..=100.0).contains(&sample.cpu_percent));
    assert!(sample.memory_total_bytes > 0);
    assert!(sample.memory_used_bytes <= sample.memory_total_bytes);
    assert!(sample.swap_used_bytes <= sample.swap_total_bytes);
    assert!(sample.uptime_secs > 0);
    for temperature in &sample.temperatures {
        assert!(temperature.celsius.is_finite(), "{temperature:?}");
    }
}

#[test]
fn version_names_the_crate_version() {
    let text = stdout_of(&["--version"]);
    assert_eq!(
        text.trim(),
        format!("outpost-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_subcommand_fails_with_a_message() {
    let output = agent(&["frobnicate"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("frobnicate"), "{stderr}");
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn missing_subcommand_fails_with_usage() {
    let output = agent(&[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Usage"), "{stderr}");
}

#[test]
fn usage_mistakes_exit_with_status_2_naming_the_argument() {
    for (args, named) in [
        (&["check", "--bogus", "x"][..], "'--bogus'"),
        (&["run"][..], "--config <FILE>"),
        (&["enroll", "--token"][..], "'--token <TOKEN>'"),
    ] {
        let output = agent(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_goes_to_standard_output() {
    let text = stdout_of(&["enroll", "--help"]);
    assert!(text.contains("--server <URL>"), "{text}");
    assert!(text.contains("[env: OUTPOST_ENROLL_TOKEN]"), "{text}");
    let text = stdout_of(&["--help"]);
    for command in ["facts", "health", "check", "enroll", "run"] {
        assert!(text.contains(&format!("  {command} ")), "{text}");
    }
}
