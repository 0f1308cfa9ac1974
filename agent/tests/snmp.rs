//! SNMP polling against real peers: net-snmp's `snmpd` (v2c and v3), a
//! silent port, and a UDP server that answers with garbage.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use outpost_agent::snmp::device::IfStatus;
use outpost_agent::snmp::poll::{poll_device, poll_targets};
use outpost_agent::snmp::{AsyncSnmpSession, DevicePoll, Session, SnmpError};

async fn poll(extra: &str, address: &str) -> Result<DevicePoll, SnmpError> {
    let target = target("dut", address, extra);
    let session = AsyncSnmpSession::connect(&target).await?;
    poll_device(&session, &target, Utc::now).await
}

fn assert_full_poll(poll: &DevicePoll) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_eq!(
        poll.inventory.sys_name,
        host.trim(),
        "sysName is the host name"
    );
    assert!(
        poll.inventory.sys_descr.contains("Linux"),
        "{}",
        poll.inventory.sys_descr
    );
    // net-snmp's enterprise number is 8072.
    assert!(
        poll.inventory
            .sys_object_id
            .starts_with("1.3.6.1.4.1.8072."),
        "{}",
        poll.inventory.sys_object_id
    );
    assert!(poll.sys_uptime_centis.is_some());
    assert_eq!(poll.inventory.target, "dut");
    let lo = poll
        .interfaces
        .iter()
        .find(|i| i.name == "lo")
        .unwrap_or_else(|| panic!("no lo interface in {:?}", poll.interfaces));
    assert_eq!(lo.admin_status, Some(IfStatus::Up));
    assert_eq!(lo.oper_status, Some(IfStatus::Up));
    assert_eq!(lo.if_type, Some(24), "softwareLoopback");
    assert!(lo.in_octets.is_some() && lo.in_errors.is_some(), "{lo:?}");
    assert!(!poll.storage.is_empty(), "hrStorageTable");
    assert!(poll
        .storage
        .iter()
        .all(|s| s.used_bytes <= s.size_bytes.max(s.used_bytes)));
    // hrProcessorLoad appears only after snmpd has sampled for a minute.
    assert!(poll.processors.iter().all(|p| p.load_percent <= 100));
    assert!(!poll.hr_devices.is_empty(), "hrDeviceTable");
    assert!(poll.warnings.is_empty(), "{:?}", poll.warnings);
}

#[tokio::test]
async fn v2c_poll_reads_system_interfaces_and_host_resources() {
    let Some(snmpd) = Snmpd::start() else { return };
    let poll = poll(V2C, &snmpd.address()).await.expect("v2c poll");
    assert_full_poll(&poll);
}

#[tokio::test]
async fn v3_auth_priv_sha_aes128_and_sha256_aes256() {
    let Some(snmpd) = Snmpd::start() else { return };
    let v2c = poll(V2C, &snmpd.address()).await.expect("v2c poll");
    for credentials in [V3_SHA_AES, V3_SHA256_AES256, V3_SHA512_AUTH] {
        let poll = poll(credentials, &snmpd.address())
            .await
            .unwrap_or_else(|err| panic!("v3 poll with {credentials}: {err}"));
        assert_full_poll(&poll);
        assert_eq!(poll.interfaces.len(), v2c.interfaces.len());
    }
}

#[tokio::test]
async fn small_max_repetitions_walk_the_same_tables() {
    let Some(snmpd) = Snmpd::start() else { return };
    let wide = poll(V2C, &snmpd.address()).await.expect("poll");
    let narrow = poll(&format!("{V2C}max_repetitions = 1\n"), &snmpd.address())
        .await
        .expect("poll with max_repetitions 1");
    let names = |p: &DevicePoll| {
        p.interfaces
            .iter()
            .map(|i| i.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&narrow), names(&wide));
    assert_eq!(narrow.storage.len(), wide.storage.len());
}

#[tokio::test]
async fn bulk_walk_and_get_through_the_session_trait() {
    let Some(snmpd) = Snmpd::start() else { return };
    let target = target("dut", &snmpd.address(), V3_SHA_AES);
    let session = AsyncSnmpSession::connect(&target).await.expect("connect");
    let system = session
        .bulk_walk(&[1, 3, 6, 1, 2, 1, 1])
        .await
        .expect("walk");
    assert!(system.len() >= 7, "{system:?}");
    assert!(
        system.windows(2).all(|w| w[0].oid < w[1].oid),
        "walk is ordered"
    );
    let got = session
        .get(&[&[1, 3, 6, 1, 2, 1, 1, 5, 0], &[1, 3, 6, 1, 2, 1, 1, 99, 0]])
        .await
        .expect("get");
    assert_eq!(got.len(), 2);
    assert!(got[0].value.as_text().is_some_and(|name| !name.is_empty()));
    assert!(got[1].value.is_exception(), "{:?}", got[1].value);
}

#[tokio::test]
async fn wrong_v3_passwords_are_clear_authentication_errors() {
    let Some(snmpd) = Snmpd::start() else { return };
    let fast = "timeout = \"300ms\"\nretries = 1\n";
    let cases = [
        (
            V3_SHA_AES.replace("\"authpass123\"", "\"wrongpass123\""),
            "auth password",
        ),
        (
            V3_SHA_AES.replace("\"privpass123\"", "\"wrongpriv123\""),
            "privacy password",
        ),
        (V3_SHA_AES.replace("\"v3user\"", "\"nobody\""), "user name"),
    ];
    for (credentials, hint) in cases {
        let started = Instant::now();
        let err = poll(&format!("{credentials}{fast}"), &snmpd.address())
            .await
            .expect_err("wrong credentials must fail");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, SnmpError::Authentication { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("dut (127.0.0.1:") && text.contains(hint),
            "{text}"
        );
        assert!(
            !text.contains("wrongpass") && !text.contains("privpass"),
            "no secrets: {text}"
        );
    }
}

#[tokio::test]
async fn silent_port_times_out_with_a_clear_error() {
    // Bound but never answering: requests vanish as into a firewall.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("address").to_string();
    let started = Instant::now();
    let err = poll(
        &format!("{V2C}timeout = \"200ms\"\nretries = 1\n"),
        &address,
    )
    .await
    .expect_err("nobody answers");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(err.is_unreachable(), "{err:?}");
    assert_eq!(err.kind(), "timeout");
    let text = err.to_string();
    assert!(
        text.contains("no response within 200ms (1 retries)"),
        "{text}"
    );
    assert!(text.contains(&address), "{text}");

    // A closed port (nothing bound): the same, not a hang or a panic.
    let closed = format!("127.0.0.1:{}", free_udp_port());
    let err = poll(
        &format!("{V3_SHA_AES}timeout = \"200ms\"\nretries = 0\n"),
        &closed,
    )
    .await
    .expect_err("nothing listens");
    assert!(err.is_unreachable(), "{err:?}");
}

/// Builds the reply to a request datagram.
type Reply = fn(&[u8]) -> Vec<u8>;

/// Answers every datagram with `reply(request)`, until the test ends.
fn garbage_server(reply: Reply) -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let address = socket.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&reply(&buf[..len]), from);
        }
    });
    address
}

#[tokio::test]
async fn garbage_responses_are_errors_not_panics() {
    let replies: [(&str, Reply); 6] = [
        ("text", |_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
        ("empty", |_| Vec::new()),
        ("truncated request echo", |req| {
            req[..req.len() / 2].to_vec()
        }),
        ("sequence claiming 2 GB", |_| {
            vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01]
        }),
        ("oversize junk", |_| vec![0x30; 65_000]),
        ("request echoed back", |req| req.to_vec()),
    ];
    for (what, reply) in replies {
        let address = garbage_server(reply);
        for credentials in [V2C, V3_SHA_AES] {
            let err = poll(
                &format!("{credentials}timeout = \"200ms\"\nretries = 1\n"),
                &address,
            )
            .await
            .expect_err("garbage is not a poll");
            let text = err.to_string();
            assert!(text.contains(&address), "{what}: {text}");
            assert!(
                matches!(err, SnmpError::Malformed { .. } | SnmpError::Timeout { .. }),
                "{what}: {err:?}"
            );
        }
    }
    // Plain junk is called what it is.
    let address = garbage_server(|_| b"not snmp at all".to_vec());
    let err = poll(
        &format!("{V2C}timeout = \"200ms\"\nretries = 0\n"),
        &address,
    )
    .await
    .expect_err("junk");
    assert_eq!(err.kind(), "malformed", "{err}");
    assert!(err.to_string().contains("undecodable"), "{err}");
}

#[tokio::test]
async fn many_targets_are_polled_with_bounded_concurrency() {
    let Some(snmpd) = Snmpd::start() else { return };
    let mut tables = String::new();
    for i in 0..12 {
        let credentials = if i % 3 == 0 { V3_SHA256_AES256 } else { V2C };
        tables.push_str(&target_table(
            &format!("t{i}"),
            &snmpd.address(),
            credentials,
        ));
    }
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_address = silent.local_addr().expect("address").to_string();
    tables.push_str(&target_table(
        "silent",
        &silent_address,
        &format!("{V2C}timeout = \"200ms\"\nretries = 0\n"),
    ));
    let config = outpost_agent::config::AgentConfig::parse(&config_text(&tables)).expect("config");
    let outcomes = poll_targets(&config.snmp.targets, 3).await;
    assert_eq!(outcomes.len(), 13);
    for (i, outcome) in outcomes.iter().take(12).enumerate() {
        assert_eq!(
            outcome.target.name,
            format!("t{i}"),
            "outcomes keep config order"
        );
        let poll = outcome.result.as_ref().expect("poll succeeds");
        assert!(!poll.interfaces.is_empty());
    }
    assert!(outcomes[12]
        .result
        .as_ref()
        .is_err_and(SnmpError::is_unreachable));
}
