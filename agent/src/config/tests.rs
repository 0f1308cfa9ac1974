//! Tests of the configuration file: the sample, every rule, and the error
//! messages a person reads.

use super::*;

const SERVER: &str = "[server]\nurl = \"https://support.example.com\"\n";

fn parse_err(text: &str) -> String {
    AgentConfig::parse(text)
        .expect_err("config must be refused")
        .to_string()
}

fn target(body: &str) -> String {
    format!("{SERVER}\n[[snmp.targets]]\n{body}")
}

#[test]
fn sample_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/outpost-agent.toml");
    let config = AgentConfig::load(&path).expect("sample config is valid");
    assert!(config.snmp.targets.len() >= 2);
    assert_eq!(config.snmp.interval, Duration::from_secs(30));
}

#[test]
fn minimal_config_takes_defaults() {
    assert!(parse_err("[server]\n").starts_with("TOML parse error"));
    let config = AgentConfig::parse(SERVER).expect("valid");
    assert_eq!(config.snmp.concurrency, 16);
    assert_eq!(config.snmp.interval, Duration::from_secs(60));
    assert!(config.snmp.targets.is_empty());
    assert_eq!(
        config.server.identity_dir,
        PathBuf::from("/var/lib/outpost/agent")
    );
}

#[test]
fn v2c_and_v3_targets() {
    let text = format!(
        "{SERVER}
[snmp]
concurrency = 4
interval = \"1m 30s\"

[[snmp.targets]]
name = \"sw1\"
address = \"192.0.2.10\"
version = \"v2c\"
community = \"public\"

[[snmp.targets]]
name = \"core\"
address = \"[2001:db8::1]:1161\"
version = \"v3\"
user = \"monitor\"
security_level = \"authPriv\"
auth_protocol = \"SHA-256\"
auth_password = \"authpass123\"
priv_protocol = \"AES-256\"
priv_password = \"privpass123\"
timeout = \"500ms\"
retries = 3

[[snmp.targets]]
name = \"ups\"
address = \"ups.example.net:16100\"
version = \"v3\"
user = \"ro\"
security_level = \"authNoPriv\"
auth_protocol = \"SHA\"
auth_password = \"authpass123\"
"
    );
    let config = AgentConfig::parse(&text).expect("valid");
    assert_eq!(config.snmp.concurrency, 4);
    assert_eq!(config.snmp.interval, Duration::from_secs(90));
    let [sw1, core, ups] = config.snmp.targets.as_slice() else {
        panic!("three targets expected");
    };
    assert_eq!((sw1.host.as_str(), sw1.port), ("192.0.2.10", 161));
    assert_eq!(
        sw1.credentials,
        Credentials::V2c {
            community: Secret::new("public")
        }
    );
    assert_eq!(sw1.timeout, Duration::from_secs(2));
    assert_eq!(sw1.retries, 1);
    assert_eq!(sw1.version_label(), "v2c");
    assert_eq!((core.host.as_str(), core.port), ("2001:db8::1", 1161));
    assert_eq!(core.timeout, Duration::from_millis(500));
    assert_eq!(core.retries, 3);
    let Credentials::V3(v3) = &core.credentials else {
        panic!("v3 expected");
    };
    assert_eq!(v3.user, "monitor");
    assert_eq!(v3.auth.0, AuthProtocol::Sha256);
    assert_eq!(v3.privacy.as_ref().map(|p| p.0), Some(PrivProtocol::Aes256));
    assert_eq!((ups.host.as_str(), ups.port), ("ups.example.net", 16100));
    let Credentials::V3(v3) = &ups.credentials else {
        panic!("v3 expected");
    };
    assert_eq!(v3.auth.0, AuthProtocol::Sha1);
    assert!(v3.privacy.is_none());
}

#[test]
fn typo_in_a_target_names_key_and_line() {
    let text = target(
        "name = \"sw1\"\naddress = \"192.0.2.1\"\nversion = \"v2c\"\ncomunity = \"public\"\n",
    );
    let err = parse_err(&text);
    assert!(err.contains("comunity"), "{err}");
    assert!(err.contains("line 8"), "{err}");
    assert!(err.contains("community"), "expected keys listed: {err}");
}

#[test]
fn typo_in_snmp_table_names_key_and_line() {
    let err = parse_err(&format!("{SERVER}\n[snmp]\nconcurency = 4\n"));
    assert!(err.contains("concurency"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    let err = parse_err("[server]\nurl = \"https://x\"\nidentity = \"/tmp\"\n");
    assert!(err.contains("identity") && err.contains("line 3"), "{err}");
    let err = parse_err(&format!("{SERVER}[snmpp]\n"));
    assert!(err.contains("snmpp") && err.contains("line 3"), "{err}");
}

#[test]
fn cross_key_rules_name_target_key_and_line() {
    let err = parse_err(&target("name = \"r1\"\naddress = \"192.0.2.1\"\nversion = \"v3\"\nsecurity_level = \"authNoPriv\"\n"));
    assert!(err.contains("\"r1\"") && err.contains("`user`"), "{err}");
    // The line of the target's table.
    assert!(err.contains("line 4"), "{err}");

    let err = parse_err(&target(
        "name = \"r1\"\naddress = \"192.0.2.1\"\nversion = \"v2c\"\n",
    ));
    assert!(err.contains("needs `community`"), "{err}");

    let err = parse_err(&target(
        "name = \"r1\"\naddress = \"192.0.2.1\"\nversion = \"v2c\"\ncommunity = \"c\"\nuser = \"u\"\n",
    ));
    assert!(err.contains("`user` is for version \"v3\""), "{err}");

    let v3 = "name = \"r1\"\naddress = \"192.0.2.1\"\nversion = \"v3\"\nuser = \"u\"\nauth_protocol = \"SHA\"\nauth_password = \"authpass123\"\n";
    let err = parse_err(&target(&format!("{v3}security_level = \"authPriv\"\n")));
    assert!(err.contains("needs `priv_protocol`"), "{err}");
    let err = parse_err(&target(&format!(
        "{v3}security_level = \"authNoPriv\"\npriv_protocol = \"AES\"\n"
    )));
    assert!(
        err.contains("`priv_protocol` needs security_level \"authPriv\""),
        "{err}"
    );
    let err = parse_err(&target(&format!(
        "{v3}security_level = \"authPriv\"\npriv_protocol = \"AES\"\npriv_password = \"short\"\n"
    )));
    assert!(err.contains("`priv_password` must be at least 8"), "{err}");
}

#[test]
fn unknown_protocols_and_levels_list_the_choices() {
    let base = "name = \"r1\"\naddress = \"192.0.2.1\"\nversion = \"v3\"\nuser = \"u\"\nauth_password = \"authpass123\"\n";
    let err = parse_err(&target(&format!(
        "{base}security_level = \"authNoPriv\"\nauth_protocol = \"SHA-1024\"\n"
    )));
    assert!(err.contains("SHA-1024") && err.contains("SHA-256"), "{err}");
    let err = parse_err(&target(&format!(
        "{base}security_level = \"secret\"\nauth_protocol = \"SHA\"\n"
    )));
    assert!(err.contains("secret") && err.contains("authPriv"), "{err}");
    let err = parse_err(&target(
        "name = \"r1\"\naddress = \"192.0.2.1\"\nversion = \"v1\"\n",
    ));
    assert!(err.contains("v1") && err.contains("v2c"), "{err}");
}

#[test]
fn bad_values_are_refused() {
    let v2c = |extra: &str| {
        parse_err(&target(&format!(
            "name = \"sw1\"\naddress = \"192.0.2.1\"\nversion = \"v2c\"\ncommunity = \"public\"\n{extra}"
        )))
    };
    let err = v2c("timeout = \"soon\"\n");
    assert!(err.contains("invalid duration \"soon\""), "{err}");
    assert!(v2c("timeout = \"5m\"\n").contains("timeout must be between"));
    assert!(v2c("retries = 99\n").contains("retries must be at most 10"));
    assert!(v2c("max_repetitions = 0\n").contains("max_repetitions"));
    assert!(v2c("retries = -1\n").contains("retries"));

    let err = parse_err(&target(
        "name = \"a/b\"\naddress = \"x\"\nversion = \"v2c\"\ncommunity = \"c\"\n",
    ));
    assert!(err.contains("target name \"a/b\""), "{err}");
    for address in ["", ":161", "host:0", "host:99999", "[::1", "[::1]x", "a b"] {
        let err = parse_err(&target(&format!(
            "name = \"a\"\naddress = {address:?}\nversion = \"v2c\"\ncommunity = \"c\"\n"
        )));
        assert!(err.contains("address"), "{address}: {err}");
    }

    let err = parse_err(&format!("{SERVER}[snmp]\nconcurrency = 0\n"));
    assert!(err.contains("snmp.concurrency"), "{err}");
    let err = parse_err(&format!("{SERVER}[snmp]\ninterval = \"10ms\"\n"));
    assert!(err.contains("snmp.interval"), "{err}");
    let err = parse_err("[server]\nurl = \"ftp://x\"\n");
    assert!(err.contains("server.url"), "{err}");
    let err = parse_err("");
    assert!(err.contains("server"), "{err}");
}

#[test]
fn duplicate_target_names_are_refused() {
    let one = "[[snmp.targets]]\nname = \"sw1\"\naddress = \"192.0.2.1\"\nversion = \"v2c\"\ncommunity = \"c\"\n";
    let err = parse_err(&format!("{SERVER}{one}{one}"));
    assert!(
        err.contains("\"sw1\" is used by more than one target"),
        "{err}"
    );
}

#[test]
fn bare_ipv6_addresses_have_no_port() {
    assert_eq!(split_address("::1"), Ok(("::1".to_owned(), 161)));
    assert_eq!(split_address("[::1]"), Ok(("::1".to_owned(), 161)));
    assert_eq!(split_address("[::1]:16100"), Ok(("::1".to_owned(), 16100)));
    assert_eq!(split_address("h:1"), Ok(("h".to_owned(), 1)));
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let text = target(
        "name = \"r1\"\naddress = \"192.0.2.1\"\nversion = \"v3\"\nuser = \"u\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"SHA\"\nauth_password = \"authpass123\"\npriv_protocol = \"AES\"\npriv_password = \"privpass123\"\n",
    );
    let config = AgentConfig::parse(&text).expect("valid");
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("authpass123") && !debug.contains("privpass123"),
        "{debug}"
    );
    assert!(debug.contains("***"), "{debug}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    let err = AgentConfig::load(&path)
        .expect_err("missing file")
        .to_string();
    assert!(err.contains("agent.toml"), "{err}");
    std::fs::write(&path, "[server]\nurll = \"x\"\n").expect("write");
    let err = AgentConfig::load(&path).expect_err("typo").to_string();
    assert!(
        err.contains("agent.toml") && err.contains("urll") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn agent_sections_take_defaults_and_check_values() {
    let config = AgentConfig::parse(SERVER).expect("valid");
    assert!(config.host.enabled);
    assert_eq!(config.host.interval, Duration::from_secs(30));
    assert_eq!(config.spool.max_bytes, 64 * 1024 * 1024);
    assert_eq!(
        config.spool_dir(),
        PathBuf::from("/var/lib/outpost/agent/spool")
    );
    assert_eq!(
        config.detector_state_file(),
        PathBuf::from("/var/lib/outpost/agent/detector.json")
    );
    assert_eq!(config.detect, DetectConfig::default());
    assert_eq!(config.detect.unreachable_after, 3);
    assert_eq!(config.detect.link_hold_down, Duration::from_secs(60));
    assert_eq!(config.detect.trap_link_hold_down, Duration::ZERO);
    assert_eq!(config.detect.flap_window, Duration::from_secs(600));
    assert!(config.metrics.listen.is_none());

    let err = parse_err(&format!("{SERVER}\n[detect]\nflap_windw = \"1m\"\n"));
    assert!(
        err.contains("flap_windw") && err.contains("line 5"),
        "{err}"
    );
    let err = parse_err(&format!("{SERVER}\n[detect]\ndisk_percent = 120.0\n"));
    assert!(err.contains("detect.disk_percent"), "{err}");
    let err = parse_err(&format!("{SERVER}\n[spool]\nmax_bytes = 10\n"));
    assert!(err.contains("spool.max_bytes"), "{err}");
    let err = parse_err(&format!(
        "{SERVER}\n[[detect.sensor_thresholds]]\nname = \"x\"\n"
    ));
    assert!(err.contains("`above` or `below`"), "{err}");
    let err = parse_err(&format!(
        "{SERVER}\n[[detect.sensor_thresholds]]\nsensor_type = \"kelvin\"\nabove = 1.0\n"
    ));
    assert!(err.contains("kelvin"), "{err}");
    let config = AgentConfig::parse(&format!(
        "{SERVER}\n[[detect.sensor_thresholds]]\nsensor_type = \"rpm\"\nbelow = 500.0\nfor = \"2m\"\nseverity = \"major\"\n\n[metrics]\nlisten = \"127.0.0.1:9101\"\n"
    ))
    .expect("valid");
    let t = &config.detect.sensor_thresholds[0];
    assert_eq!(t.sensor_type, Some(10));
    assert_eq!(t.hold, Duration::from_secs(120));
    assert_eq!(t.severity, outpost_protocol::Severity::Major);
    assert!(config.metrics.listen.is_some());
}

fn tunnel(body: &str) -> String {
    format!("{SERVER}\n[tunnel]\n{body}")
}

#[test]
fn sample_tunnel_section_parses_with_a_target() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/outpost-agent.toml");
    let sample = std::fs::read_to_string(&path).expect("read the sample");
    let config = AgentConfig::parse(&sample).expect("sample config is valid");
    assert!(
        !config.tunnel.enabled(),
        "the sample opens no tunnel by default"
    );
    assert_eq!(config.tunnel.keepalive, Duration::from_secs(30));
    // The commented example target, enabled.
    let enabled = sample.replace(
        "# [[tunnel.targets]]\n# name = \"core-sw-1\"\n# address = \"10.0.0.5\"\n# ports = [22]\n",
        "[[tunnel.targets]]\nname = \"core-sw-1\"\naddress = \"10.0.0.5\"\nports = [22]\n",
    );
    assert_ne!(
        enabled, sample,
        "the sample's example target changed; update this test"
    );
    let config = AgentConfig::parse(&enabled).expect("sample with a target is valid");
    let target = config.tunnel.target("core-sw-1").expect("target");
    assert_eq!(target.address, "10.0.0.5");
    assert_eq!(target.ports, vec![22]);
    assert_eq!(
        config.tunnel.relay.as_ref().map(ToString::to_string),
        Some("support.example.com:2222".to_owned())
    );
}

#[test]
fn tunnel_defaults() {
    let config = AgentConfig::parse(SERVER).expect("valid");
    assert!(!config.tunnel.enabled());
    assert_eq!(config.tunnel.keepalive, Duration::from_secs(30));
    assert_eq!(config.tunnel.host_key, None);
    let relay = config.tunnel.relay.expect("default relay");
    assert_eq!(
        (relay.host.as_str(), relay.port),
        ("support.example.com", 2222)
    );

    let config = AgentConfig::parse(
        "[server]\nurl = \"https://[2001:db8::7]:8443/outpost\"\n\n[[tunnel.targets]]\nname = \"sw\"\naddress = \"2001:db8::5\"\n",
    )
    .expect("valid");
    let relay = config.tunnel.relay.clone().expect("default relay");
    assert_eq!((relay.host.as_str(), relay.port), ("2001:db8::7", 2222));
    assert_eq!(relay.to_string(), "[2001:db8::7]:2222");
    let target = config.tunnel.target("sw").expect("target");
    assert_eq!(target.ports, vec![22]);
    assert!(target.allows(22) && !target.allows(23) && !target.allows(65558));

    let config = AgentConfig::parse(&tunnel(
        "relay = \"relay.example.net:22022\"\nkeepalive = \"10s\"\nhost_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl relay@example\"\n\n[[tunnel.targets]]\nname = \"core-sw-1\"\naddress = \"[2001:db8::5]\"\nports = [22, 830, 22]\n",
    ))
    .expect("valid");
    let t = &config.tunnel;
    assert_eq!(
        t.relay.as_ref().map(ToString::to_string).as_deref(),
        Some("relay.example.net:22022")
    );
    assert_eq!(t.keepalive, Duration::from_secs(10));
    assert_eq!(
        t.host_key.as_deref(),
        Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
    );
    assert_eq!(t.targets[0].address, "2001:db8::5");
    assert_eq!(t.targets[0].ports, vec![22, 830]);
}

#[test]
fn tunnel_errors_name_key_and_line() {
    let err = parse_err(&tunnel("relai = \"x:1\"\n"));
    assert!(err.contains("relai") && err.contains("line 5"), "{err}");
    let err = parse_err(&tunnel("[[targets]]\nname = \"a\"\naddress = \"h\"\n"));
    assert!(err.contains("targets"), "{err}");
    let err = parse_err(&tunnel(
        "[[tunnel.targets]]\nname = \"a\"\naddress = \"h\"\nport = 22\n",
    ));
    assert!(err.contains("port") && err.contains("line 8"), "{err}");

    for relay in [
        "relay.example.com",
        "relay:0",
        "relay:70000",
        ":22",
        "2001:db8::1:22",
        "[::1]",
    ] {
        let err = parse_err(&tunnel(&format!("relay = \"{relay}\"\n")));
        assert!(
            err.contains("relay must be \"host:port\"") && err.contains("line 5"),
            "{relay}: {err}"
        );
    }
    let err = parse_err(&tunnel("keepalive = \"soon\"\n"));
    assert!(err.contains("invalid duration"), "{err}");
    let err = parse_err(&tunnel("keepalive = \"0s\"\n"));
    assert!(err.contains("tunnel.keepalive"), "{err}");
    let err = parse_err(&tunnel("host_key = \"ssh-ed25519 not-base64\"\n"));
    assert!(
        err.contains("host_key must be an OpenSSH public key") && err.contains("line 5"),
        "{err}"
    );
}

#[test]
fn tunnel_targets_are_checked() {
    let target = |body: &str| format!("{SERVER}\n[[tunnel.targets]]\n{body}");
    let err = parse_err(&target("name = \"\"\naddress = \"10.0.0.5\"\n"));
    assert!(
        err.contains("name must not be empty") && err.contains("line 4"),
        "{err}"
    );
    let err = parse_err(&target("name = \"sw\"\naddress = \"\"\n"));
    assert!(
        err.contains("tunnel target \"sw\": address must not be empty"),
        "{err}"
    );
    let err = parse_err(&target("name = \"sw\"\naddress = \"10.0.0.5:22\"\n"));
    assert!(err.contains("without a port"), "{err}");
    let err = parse_err(&target(
        "name = \"sw\"\naddress = \"10.0.0.5\"\nports = [0]\n",
    ));
    assert!(err.contains("port 0 is not between 1 and 65535"), "{err}");
    let err = parse_err(&target(
        "name = \"sw\"\naddress = \"10.0.0.5\"\nports = [22, 65536]\n",
    ));
    assert!(
        err.contains("port 65536 is not between 1 and 65535"),
        "{err}"
    );
    let err = parse_err(&target(
        "name = \"sw\"\naddress = \"10.0.0.5\"\nports = []\n",
    ));
    assert!(err.contains("at least one port"), "{err}");
    let err = parse_err(&target("name = \"sw\"\n"));
    assert!(err.contains("address"), "{err}");
    let err = parse_err(&format!(
        "{SERVER}\n[[tunnel.targets]]\nname = \"sw\"\naddress = \"10.0.0.5\"\n\n[[tunnel.targets]]\nname = \"sw\"\naddress = \"10.0.0.6\"\n"
    ));
    assert!(
        err.contains("tunnel.targets: the name \"sw\" is used by more than one target"),
        "{err}"
    );
}

#[test]
fn secrets_may_come_from_the_environment_or_a_file() {
    // PATH is set wherever tests run.
    let path = std::env::var("PATH").unwrap_or_default();
    let config = AgentConfig::parse(&format!(
        "{SERVER}\n[traps]\ncommunities = [\"inline\", {{ env = \"PATH\" }}]\n"
    ))
    .expect("valid");
    let traps = config.traps.expect("traps");
    let communities: Vec<&str> = traps.communities.iter().map(Secret::expose).collect();
    assert_eq!(communities, ["inline", path.as_str()]);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("community");
    std::fs::write(&file, "private\r\n").expect("write");
    let config = AgentConfig::parse(&target(&format!(
        "name = \"sw1\"\naddress = \"192.0.2.1\"\nversion = \"v2c\"\ncommunity = {{ file = {:?} }}\n",
        file.display().to_string()
    )))
    .expect("valid");
    assert_eq!(
        config.snmp.targets[0].credentials,
        Credentials::V2c {
            community: Secret::new("private")
        }
    );
    let err = parse_err(&target(
        "name = \"sw1\"\naddress = \"192.0.2.1\"\nversion = \"v2c\"\ncommunity = { path = \"/x\" }\n",
    ));
    assert!(
        err.contains("unknown key `path` in a secret") && err.contains("line 8"),
        "{err}"
    );
}
