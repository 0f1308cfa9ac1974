//! The trap and inform receiver against real senders: net-snmp's
//! `snmptrap` and `snmpinform` (v2c and v3), and hand-made bad datagrams.
//! Each test starts its own receiver on a free loopback port.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use outpost_agent::config::AgentConfig;
use outpost_agent::snmp::trap::{
    Trap, TrapConfig, TrapCounts, TrapKind, TrapReceiver, TrapVersion,
};

const SNMPTRAP: &str = "/usr/bin/snmptrap";

const LINK_DOWN: &str = "1.3.6.1.6.3.1.1.5.3";
const IF_INDEX_3: &str = "1.3.6.1.2.1.2.2.1.1.3";

/// The sender's engine ID for v3 traps (the sender is authoritative for
/// traps; the receiver localizes the user's keys to it).
const SENDER_ENGINE: &str = "0x80001f8880deadbeef01";

/// Users the receivers know: SHA-1/AES-128 and SHA-256/AES-256 authPriv,
/// SHA-512 authNoPriv.
const USERS: &str = r#"
[[traps.users]]
user = "trapuser"
security_level = "authPriv"
auth_protocol = "SHA"
auth_password = "authpass123"
priv_protocol = "AES"
priv_password = "privpass123"

[[traps.users]]
user = "trapsha256"
security_level = "authPriv"
auth_protocol = "SHA-256"
auth_password = "authpass123"
priv_protocol = "AES-256"
priv_password = "privpass123"

[[traps.users]]
user = "trapauth"
security_level = "authNoPriv"
auth_protocol = "SHA-512"
auth_password = "authpass123"
"#;

/// Whether the net-snmp tools are here; says why not otherwise.
fn have_tools() -> bool {
    if Path::new(SNMPTRAP).exists() {
        return true;
    }
    eprintln!("SKIPPED: {SNMPTRAP} is not installed (apt-get install snmp)");
    false
}

/// A `[traps]` config on a free loopback port, with `extra` keys.
fn config(extra: &str) -> TrapConfig {
    let text = format!(
        "[server]\nurl = \"http://127.0.0.1:9\"\n\n[traps]\nlisten = \"127.0.0.1:0\"\ncommunities = [\"public\"]\n{extra}\n{USERS}"
    );
    AgentConfig::parse(&text)
        .expect("test config is valid")
        .traps
        .expect("[traps]")
}

/// A receiver for the test, its address as `host:port`.
async fn receiver(extra: &str) -> (TrapReceiver, String) {
    let receiver = TrapReceiver::bind(&config(extra))
        .await
        .expect("bind the receiver");
    let address = receiver.local_addr().to_string();
    (receiver, address)
}

/// Runs a net-snmp tool without MIB files or persistent state; returns
/// whether it succeeded, and its stderr.
async fn run(tool: &str, args: &[&str]) -> (bool, String) {
    let state = tempfile::tempdir().expect("tempdir");
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(tool)
            .args(args)
            .env("MIBS", "")
            .env("SNMP_PERSISTENT_DIR", state.path())
            .env("SNMPCONFPATH", state.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the tool finishes")
    .expect("the tool runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `snmptrap` (or `snmpinform`) of linkDown for ifIndex 3 with `auth` args.
async fn send_link_down(tool: &str, address: &str, auth: &[&str]) -> (bool, String) {
    let mut args: Vec<&str> = auth.to_vec();
    args.extend([
        "-r", "1", "-t", "2", address, "", LINK_DOWN, IF_INDEX_3, "i", "3",
    ]);
    run(tool, &args).await
}

async fn next(receiver: &mut TrapReceiver) -> Trap {
    tokio::time::timeout(Duration::from_secs(10), receiver.next())
        .await
        .expect("a notification arrives within 10 s")
        .expect("the receiver runs")
}

/// Asserts nothing is delivered for a while.
async fn nothing(receiver: &mut TrapReceiver) {
    if let Ok(trap) = tokio::time::timeout(Duration::from_millis(700), receiver.next()).await {
        panic!("expected nothing, got {trap:?}");
    }
}

fn counts(receiver: &TrapReceiver) -> TrapCounts {
    receiver.stats().snapshot()
}

fn assert_link_down(trap: &Trap, version: TrapVersion, principal: &str, kind: TrapKind) {
    assert_eq!(trap.version, version);
    assert_eq!(trap.principal, principal);
    assert_eq!(trap.kind, kind);
    assert_eq!(trap.trap_oid, LINK_DOWN);
    assert!(trap.uptime.is_some());
    assert_eq!(
        trap.varbinds,
        vec![(IF_INDEX_3.to_owned(), "3".to_owned())],
        "{trap:?}"
    );
    assert!(trap.source.ip().is_loopback());
    assert!((chrono::Utc::now() - trap.received_at).num_seconds() < 30);
}

/// A BER TLV with a short-form length (content under 128 bytes).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, u8::try_from(content.len()).expect("short content")];
    out.extend_from_slice(content);
    out
}

const V2C: &[&str] = &["-v2c", "-c", "public"];

fn v3<'a>(user: &'a str, level: &'a str, keys: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-v3", "-u", user, "-l", level];
    args.extend_from_slice(keys);
    args
}

const SHA_AES: &[&str] = &[
    "-a",
    "SHA",
    "-A",
    "authpass123",
    "-x",
    "AES",
    "-X",
    "privpass123",
];
const SHA256_AES256: &[&str] = &[
    "-a",
    "SHA-256",
    "-A",
    "authpass123",
    "-x",
    "AES-256",
    "-X",
    "privpass123",
];

#[tokio::test]
async fn v2c_link_down_trap_is_received_with_its_varbinds() {
    if !have_tools() {
        return;
    }
    let (mut receiver, address) = receiver("").await;
    let (ok, stderr) = send_link_down("snmptrap", &address, V2C).await;
    assert!(ok, "snmptrap failed: {stderr}");
    let trap = next(&mut receiver).await;
    assert_link_down(&trap, TrapVersion::V2c, "public", TrapKind::Trap);
    assert_eq!(
        counts(&receiver),
        TrapCounts {
            accepted: 1,
            ..TrapCounts::default()
        }
    );
}

#[tokio::test]
async fn v2c_inform_is_acknowledged_and_received() {
    if !have_tools() {
        return;
    }
    let (mut receiver, address) = receiver("").await;
    let sent = tokio::spawn(async move { send_link_down("snmpinform", &address, V2C).await });
    let trap = next(&mut receiver).await;
    assert_link_down(&trap, TrapVersion::V2c, "public", TrapKind::Inform);
    let (ok, stderr) = sent.await.expect("sender task");
    assert!(ok, "snmpinform got no acknowledgement: {stderr}");
    assert_eq!(counts(&receiver).informs_acknowledged, 1);
}

#[tokio::test]
async fn unknown_community_is_rejected_counted_and_unacknowledged() {
    if !have_tools() {
        return;
    }
    let (mut receiver, address) = receiver("").await;
    let (ok, _) = send_link_down("snmptrap", &address, &["-v2c", "-c", "private"]).await;
    assert!(ok, "snmptrap sends without waiting");
    // An inform with an unknown community gets no acknowledgement.
    let (acknowledged, _) = run(
        "snmpinform",
        &[
            "-v2c", "-c", "guess", "-r", "0", "-t", "1", &address, "", LINK_DOWN,
        ],
    )
    .await;
    assert!(
        !acknowledged,
        "an unknown community must not be acknowledged"
    );
    nothing(&mut receiver).await;
    assert_eq!(counts(&receiver).bad_community, 2);
    assert_eq!(counts(&receiver).accepted, 0);
    // The right community still gets through.
    let (ok, _) = send_link_down("snmptrap", &address, V2C).await;
    assert!(ok);
    assert_link_down(
        &next(&mut receiver).await,
        TrapVersion::V2c,
        "public",
        TrapKind::Trap,
    );
}

#[tokio::test]
async fn v3_auth_priv_traps_are_received() {
    if !have_tools() {
        return;
    }
    let (mut receiver, address) = receiver("").await;
    for (user, keys) in [("trapuser", SHA_AES), ("trapsha256", SHA256_AES256)] {
        let mut args = v3(user, "authPriv", keys);
        args.extend(["-e", SENDER_ENGINE]);
        let (ok, stderr) = send_link_down("snmptrap", &address, &args).await;
        assert!(ok, "snmptrap {user} failed: {stderr}");
        let trap = next(&mut receiver).await;
        assert_link_down(&trap, TrapVersion::V3, user, TrapKind::Trap);
    }
    let mut args = v3(
        "trapauth",
        "authNoPriv",
        &["-a", "SHA-512", "-A", "authpass123"],
    );
    args.extend(["-e", "0x80001f8880deadbeef02"]);
    let (ok, stderr) = send_link_down("snmptrap", &address, &args).await;
    assert!(ok, "snmptrap authNoPriv failed: {stderr}");
    assert_link_down(
        &next(&mut receiver).await,
        TrapVersion::V3,
        "trapauth",
        TrapKind::Trap,
    );
    assert_eq!(counts(&receiver).accepted, 3);
    assert_eq!(counts(&receiver).auth_failed, 0);
}

/// The log lines written by the receivers of this test binary.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// The lines that name `receiver` (each test has its own receiver).
    fn lines_of(&self, receiver: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("log lock"))
            .lines()
            .filter(|line| line.contains(receiver))
            .map(str::to_owned)
            .collect()
    }
}

/// Captures the logs of the whole test binary. A process-wide subscriber,
/// because a scoped one misses events whose callsites other tests' threads
/// registered first.
fn captured_logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
}

#[tokio::test]
async fn v3_wrong_keys_are_rejected_counted_and_logged() {
    if !have_tools() {
        return;
    }
    let logs = captured_logs();
    let (mut receiver, address) = receiver("").await;
    let cases: [(&str, &[&str]); 5] = [
        (
            "wrong auth key",
            &[
                "-a",
                "SHA",
                "-A",
                "wrongpass999",
                "-x",
                "AES",
                "-X",
                "privpass123",
            ],
        ),
        (
            "wrong priv key",
            &[
                "-a",
                "SHA",
                "-A",
                "authpass123",
                "-x",
                "AES",
                "-X",
                "wrongpass999",
            ],
        ),
        (
            "wrong auth protocol",
            &[
                "-a",
                "SHA-256",
                "-A",
                "authpass123",
                "-x",
                "AES",
                "-X",
                "privpass123",
            ],
        ),
        (
            "wrong priv protocol",
            &[
                "-a",
                "SHA",
                "-A",
                "authpass123",
                "-x",
                "AES-256",
                "-X",
                "privpass123",
            ],
        ),
        (
            "below the configured level",
            &["-a", "SHA", "-A", "authpass123"],
        ),
    ];
    for (i, (case, keys)) in cases.iter().enumerate() {
        let level = if keys.len() == 4 {
            "authNoPriv"
        } else {
            "authPriv"
        };
        let mut args = v3("trapuser", level, keys);
        args.extend(["-e", SENDER_ENGINE]);
        let (ok, stderr) = send_link_down("snmptrap", &address, &args).await;
        assert!(ok, "{case}: snmptrap failed: {stderr}");
        nothing(&mut receiver).await;
        assert_eq!(counts(&receiver).auth_failed, i as u64 + 1, "{case}");
    }
    // An unknown user, too.
    let mut args = v3("nobody", "authPriv", SHA_AES);
    args.extend(["-e", SENDER_ENGINE]);
    let (ok, _) = send_link_down("snmptrap", &address, &args).await;
    assert!(ok);
    nothing(&mut receiver).await;
    assert_eq!(counts(&receiver).auth_failed, 6);
    assert_eq!(counts(&receiver).accepted, 0);

    // One line per source and reason per minute: the first rejection is
    // logged, naming the source and the reason; the rest are counted only.
    let lines = logs.lines_of(&format!("receiver={address}"));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(line.contains("trap rejected"), "{line}");
    assert!(line.contains("wrong digest"), "{line}");
    assert!(line.contains("source=127.0.0.1:"), "{line}");
    assert!(!line.contains("authpass123") && !line.contains("privpass123"));

    // The right keys still work afterwards.
    let mut args = v3("trapuser", "authPriv", SHA_AES);
    args.extend(["-e", SENDER_ENGINE]);
    let (ok, _) = send_link_down("snmptrap", &address, &args).await;
    assert!(ok);
    assert_link_down(
        &next(&mut receiver).await,
        TrapVersion::V3,
        "trapuser",
        TrapKind::Trap,
    );
}

#[tokio::test]
async fn v3_inform_is_acknowledged_and_received() {
    if !have_tools() {
        return;
    }
    let (mut receiver, address) = receiver("").await;
    for (user, keys) in [("trapuser", SHA_AES), ("trapsha256", SHA256_AES256)] {
        let args = v3(user, "authPriv", keys);
        let address = address.clone();
        let sent = tokio::spawn(async move {
            let args: Vec<&str> = args.to_vec();
            send_link_down("snmpinform", &address, &args).await
        });
        let trap = next(&mut receiver).await;
        assert_link_down(&trap, TrapVersion::V3, user, TrapKind::Inform);
        let (ok, stderr) = sent.await.expect("sender task");
        assert!(ok, "snmpinform {user} got no acknowledgement: {stderr}");
    }
    assert_eq!(counts(&receiver).informs_acknowledged, 2);
    // A v3 inform with a wrong key is neither delivered nor acknowledged.
    let args = v3(
        "trapuser",
        "authPriv",
        &[
            "-a",
            "SHA",
            "-A",
            "wrongpass999",
            "-x",
            "AES",
            "-X",
            "privpass123",
        ],
    );
    let mut args = args.to_vec();
    args.extend(["-r", "0", "-t", "1", &address, "", LINK_DOWN]);
    let (acknowledged, _) = run("snmpinform", &args).await;
    assert!(!acknowledged);
    nothing(&mut receiver).await;
    assert!(counts(&receiver).auth_failed >= 1);
}

#[tokio::test]
async fn garbage_is_counted_as_malformed_and_the_receiver_keeps_working() {
    if !have_tools() {
        return;
    }
    let (mut receiver, address) = receiver("max_datagram = 1024").await;
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // A valid v2c linkDown trap, by hand, to truncate and corrupt.
    let varbinds = tlv(
        0x30,
        &[
            tlv(
                0x30,
                &[
                    &[0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 3, 0][..],
                    &[0x43, 0x01, 0x05],
                ]
                .concat(),
            ),
            tlv(
                0x30,
                &[
                    &[0x06, 0x0a, 0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0][..],
                    &[0x06, 0x09, 0x2b, 6, 1, 6, 3, 1, 1, 5, 3],
                ]
                .concat(),
            ),
        ]
        .concat(),
    );
    let pdu = tlv(
        0xa7,
        &[
            &[0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00][..],
            &varbinds,
        ]
        .concat(),
    );
    let good = tlv(
        0x30,
        &[&[0x02, 0x01, 0x01][..], &tlv(0x04, b"public"), &pdu].concat(),
    );
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let random: Vec<u8> = (0..200)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut huge_length = good.clone();
    huge_length.splice(1..2, [0x84, 0x7f, 0xff, 0xff, 0xff]);
    let mut oversize = good.clone();
    oversize.resize(4000, 0);
    let datagrams = [
        random,
        good[..good.len() - 7].to_vec(),
        huge_length,
        oversize,
        Vec::new(),
    ];
    for datagram in &datagrams {
        socket.send_to(datagram, &address).expect("send");
    }
    // The hand-made trap itself is fine.
    socket.send_to(&good, &address).expect("send");
    let trap = next(&mut receiver).await;
    assert_eq!(trap.trap_oid, LINK_DOWN);
    assert_eq!(trap.uptime, Some(5));
    assert_eq!(counts(&receiver).malformed, datagrams.len() as u64);

    // A 60,000-byte datagram: above the configured maximum.
    socket.send_to(&vec![0x30; 60_000], &address).expect("send");
    // And a real sender afterwards.
    let (ok, _) = send_link_down("snmptrap", &address, V2C).await;
    assert!(ok);
    assert_link_down(
        &next(&mut receiver).await,
        TrapVersion::V2c,
        "public",
        TrapKind::Trap,
    );
    assert_eq!(counts(&receiver).malformed, datagrams.len() as u64 + 1);
    assert_eq!(counts(&receiver).accepted, 2);
}

#[tokio::test]
async fn engine_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("trap-engine");
    let extra = format!("state_file = {:?}", state.display().to_string());
    let first = TrapReceiver::bind(&config(&extra)).await.expect("bind");
    let engine_id = first.engine_id().to_vec();
    drop(first);
    let saved = std::fs::read_to_string(&state).expect("state file");
    assert!(saved.trim_end().ends_with(" 1"), "{saved}");
    let second = TrapReceiver::bind(&config(&extra)).await.expect("bind");
    assert_eq!(second.engine_id(), engine_id);
    let saved = std::fs::read_to_string(&state).expect("state file");
    assert!(saved.trim_end().ends_with(" 2"), "{saved}");
}

#[tokio::test]
async fn an_address_in_use_is_reported() {
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let mut config = config("");
    config.listen = ([127, 0, 0, 1], port).into();
    let err = TrapReceiver::bind(&config)
        .await
        .err()
        .expect("the port is taken");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
