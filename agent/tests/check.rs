//! `outpost-agent check` against a real `snmpd`: the table it prints, its
//! exit status, and its refusal of a bad configuration file.

mod common;

use std::process::{Command, Output};

use common::*;

fn check(config: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outpost-agent"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run outpost-agent check")
}

#[test]
fn check_prints_one_row_per_target_and_fails_if_one_fails() {
    let Some(snmpd) = Snmpd::start() else { return };
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_address = silent.local_addr().expect("address").to_string();
    let targets = [
        target_table("edge-v2c", &snmpd.address(), V2C),
        target_table("edge-v3", &snmpd.address(), V3_SHA256_AES256),
        target_table(
            "gone",
            &silent_address,
            &format!("{V2C}timeout = \"200ms\"\nretries = 0\n"),
        ),
    ]
    .concat();
    let path = snmpd.path("agent.toml");
    std::fs::write(&path, config_text(&targets)).expect("write config");

    let output = check(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TARGET",
            "VERSION",
            "REACHABLE",
            "SYSNAME",
            "INTERFACES",
            "ENTITIES",
            "TIME_MS",
            "ERROR"
        ]
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for (line, name, version) in [(lines[1], "edge-v2c", "v2c"), (lines[2], "edge-v3", "v3")] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cells[..4], [name, version, "yes", host.trim()], "{line}");
        assert!(
            cells[4].parse::<u32>().is_ok_and(|n| n >= 1),
            "interfaces: {line}"
        );
        assert!(cells[6].parse::<u64>().is_ok(), "time: {line}");
        assert_eq!(cells[7], "-", "{line}");
    }
    let gone: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(&gone[..3], ["gone", "v2c", "no"], "{}", lines[3]);
    assert!(lines[3].contains("timeout: gone ("), "{}", lines[3]);
    assert!(stderr.contains("1 of 3 SNMP targets failed"), "{stderr}");
}

#[test]
fn check_succeeds_when_every_target_answers() {
    let Some(snmpd) = Snmpd::start() else { return };
    let path = snmpd.path("agent.toml");
    let targets = target_table("only", &snmpd.address(), V3_SHA_AES);
    std::fs::write(&path, config_text(&targets)).expect("write config");
    let output = check(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
}

#[test]
fn check_refuses_a_config_with_a_typo_naming_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    let text = config_text(&target_table(
        "sw1",
        "127.0.0.1:161",
        "version = \"v2c\"\ncomunity = \"public\"\n",
    ));
    std::fs::write(&path, &text).expect("write config");
    let line = text
        .lines()
        .position(|l| l.starts_with("comunity"))
        .expect("typo line")
        + 1;
    let output = check(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(stderr.contains("invalid configuration"), "{stderr}");
    assert!(stderr.contains("agent.toml"), "{stderr}");
    assert!(stderr.contains("comunity"), "{stderr}");
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");
}

#[test]
fn check_names_a_missing_config_file() {
    let output = check(std::path::Path::new("/nonexistent/agent.toml"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read /nonexistent/agent.toml"),
        "{stderr}"
    );
}

fn check_offline(config: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outpost-agent"))
        .args(["check", "--offline", "--config"])
        .arg(config)
        .output()
        .expect("run outpost-agent check --offline")
}

#[test]
fn offline_check_validates_without_polling() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A target nothing answers for: the offline check never sends to it.
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        config_text(&target_table(
            "sw1",
            "192.0.2.1:161",
            "version = \"v2c\"\ncommunity = \"public\"\n",
        )),
    )
    .expect("write config");
    let started = std::time::Instant::now();
    let output = check_offline(&path);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok\n", path.display())
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // The packaged configuration file passes too.
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/outpost-agent.toml");
    let output = check_offline(&sample);
    assert!(output.status.success(), "{output:?}");

    // A bad one fails the same way as without --offline.
    std::fs::write(&path, "[server]\nurl = \"https://s.example\"\nbogus = 1\n").expect("write");
    let output = check_offline(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("bogus") && stderr.contains("line 3"),
        "{stderr}"
    );
}

#[test]
fn secrets_come_from_files_and_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("community");
    std::fs::write(&secret, "from-a-file\n").expect("write secret");
    let path = dir.path().join("agent.toml");
    let body = format!(
        "version = \"v3\"\nuser = \"u\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"SHA\"\n\
         auth_password = {{ file = {:?} }}\npriv_protocol = \"AES\"\n\
         priv_password = {{ env = \"OUTPOST_TEST_PRIV\" }}\n",
        secret.display().to_string()
    );
    let text = config_text(&target_table("sw1", "192.0.2.1:161", &body));
    std::fs::write(&path, &text).expect("write config");
    let run = |env: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_outpost-agent"));
        command.args(["check", "--offline", "--config"]).arg(&path);
        match env {
            Some(value) => command.env("OUTPOST_TEST_PRIV", value),
            None => command.env_remove("OUTPOST_TEST_PRIV"),
        };
        command.output().expect("run outpost-agent")
    };
    let output = run(Some("priv-from-env"));
    assert!(output.status.success(), "{output:?}");

    // Each missing source names the key's line and the file or variable.
    let line_of = |key: &str| {
        text.lines()
            .position(|l| l.starts_with(key))
            .map(|i| i + 1)
            .unwrap_or_default()
    };
    let output = run(None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the environment variable OUTPOST_TEST_PRIV is not set")
            && stderr.contains(&format!("line {}", line_of("priv_password"))),
        "{stderr}"
    );
    std::fs::remove_file(&secret).expect("remove secret");
    let output = run(Some("priv-from-env"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read the secret file")
            && stderr.contains(&secret.display().to_string())
            && stderr.contains(&format!("line {}", line_of("auth_password"))),
        "{stderr}"
    );
}
