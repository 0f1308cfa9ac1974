//! The filter on hand-built datagrams (BER written out here), the value
//! text form and the `[traps]` config table. The real senders are in
//! `agent/tests/traps.rs`.

use super::filter::{printable, Filter, Verdict};
use super::*;
use crate::config::{AgentConfig, AuthProtocol, PrivProtocol, Secret, V3Credentials};

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn int(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|b| **b == 0).count();
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut content = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        content.extend(groups.iter().rev());
    }
    tlv(0x06, &content)
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

const SYS_UPTIME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
const TRAP_OID: &[u32] = &[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];
const LINK_DOWN: &[u32] = &[1, 3, 6, 1, 6, 3, 1, 1, 5, 3];
const IF_INDEX_3: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3];

fn link_down_varbinds() -> Vec<u8> {
    seq(&[
        seq(&[oid(SYS_UPTIME), tlv(0x43, &[0x04, 0xd2])]),
        seq(&[oid(TRAP_OID), oid(LINK_DOWN)]),
        seq(&[oid(IF_INDEX_3), int(3)]),
    ])
}

/// A v2c message of `version` (1 for v2c) with a PDU of tag `pdu_tag`.
fn community_message(version: u32, community: &str, pdu_tag: u8, varbinds: Vec<u8>) -> Vec<u8> {
    let pdu = tlv(pdu_tag, &[int(42), int(0), int(0), varbinds].concat());
    seq(&[int(version), tlv(0x04, community.as_bytes()), pdu])
}

fn filter() -> Filter {
    let user = V3Credentials {
        user: "trapuser".to_owned(),
        auth: (AuthProtocol::Sha1, Secret::new("authpass123")),
        privacy: Some((PrivProtocol::Aes128, Secret::new("privpass123"))),
    };
    Filter::new(1500, [b"public".to_vec()], &[user]).expect("valid users")
}

#[test]
fn v2c_traps_and_informs_pass_with_a_configured_community() {
    let filter = filter();
    let trap = community_message(1, "public", 0xa7, link_down_varbinds());
    assert_eq!(filter.classify(&trap), Verdict::Forward);
    let inform = community_message(1, "public", 0xa6, link_down_varbinds());
    assert_eq!(filter.classify(&inform), Verdict::Forward);
}

#[test]
fn unknown_community_is_refused() {
    let filter = filter();
    for community in ["private", "publi", "publicx", ""] {
        let trap = community_message(1, community, 0xa7, link_down_varbinds());
        assert_eq!(filter.classify(&trap), Verdict::BadCommunity, "{community}");
    }
    let none = Filter::new(1500, Vec::new(), &[]).expect("valid");
    let trap = community_message(1, "public", 0xa7, link_down_varbinds());
    assert_eq!(none.classify(&trap), Verdict::BadCommunity);
}

#[test]
fn garbage_truncation_and_oversize_are_malformed() {
    let filter = filter();
    let good = community_message(1, "public", 0xa7, link_down_varbinds());
    let mut huge_length = good.clone();
    huge_length.splice(1..2, [0x84, 0x7f, 0xff, 0xff, 0xff]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"hello, this is not SNMP".to_vec()),
        ("truncated", good[..good.len() - 5].to_vec()),
        ("header only", good[..2].to_vec()),
        ("huge length", huge_length),
        ("oversize", {
            let mut big = good.clone();
            big.resize(1501, 0);
            big
        }),
        (
            "indefinite length",
            vec![0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00],
        ),
        (
            "version 7",
            community_message(7, "public", 0xa7, link_down_varbinds()),
        ),
        (
            "no snmpTrapOID",
            community_message(
                1,
                "public",
                0xa7,
                seq(&[seq(&[oid(SYS_UPTIME), tlv(0x43, &[1])])]),
            ),
        ),
    ];
    for (name, datagram) in cases {
        assert!(
            matches!(filter.classify(&datagram), Verdict::Malformed(_)),
            "{name}: {:?}",
            filter.classify(&datagram)
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let filter = filter();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..2000 {
        let len = (round % 300) + 1;
        let datagram: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert_ne!(filter.classify(&datagram), Verdict::Forward);
        // Corrupt a good message one byte at a time, too.
        let mut good = community_message(1, "public", 0xa7, link_down_varbinds());
        let at = round % good.len();
        good[at] ^= state as u8 | 1;
        let _ = filter.classify(&good);
    }
}

#[test]
fn v1_and_requests_are_unsupported() {
    let filter = filter();
    let get = community_message(1, "public", 0xa0, link_down_varbinds());
    assert!(matches!(filter.classify(&get), Verdict::Unsupported(_)));
    let v1_trap = seq(&[
        int(0),
        tlv(0x04, b"public"),
        tlv(
            0xa4,
            &[
                oid(&[1, 3, 6, 1, 4, 1, 9]),
                tlv(0x40, &[192, 0, 2, 1]),
                int(2),
                int(0),
                tlv(0x43, &[1]),
                seq(&[]),
            ]
            .concat(),
        ),
    ]);
    assert!(matches!(filter.classify(&v1_trap), Verdict::Unsupported(_)));
}

#[test]
fn value_text_forms() {
    use crate::snmp::value::Oid;
    assert_eq!(value_text(&Value::Integer(-3)), "-3");
    assert_eq!(value_text(&Value::OctetString(b"eth0".to_vec())), "eth0");
    assert_eq!(
        value_text(&Value::OctetString(vec![0x00, 0x1b, 0xff])),
        "0x001bff"
    );
    assert_eq!(
        value_text(&Value::ObjectIdentifier(Oid::new(vec![1, 3, 6]))),
        "1.3.6"
    );
    assert_eq!(value_text(&Value::IpAddress([192, 0, 2, 1])), "192.0.2.1");
    assert_eq!(value_text(&Value::TimeTicks(1234)), "1234");
    assert_eq!(value_text(&Value::Null), "");
    assert_eq!(printable(b"a\x00b\xffc"), "a?b\u{fffd}c");
}

const SERVER: &str = "[server]\nurl = \"https://support.example.com\"\n";

#[test]
fn traps_table_defaults_and_users() {
    let config = AgentConfig::parse(SERVER).expect("valid");
    assert!(config.traps.is_none());
    let config = AgentConfig::parse(&format!(
        "{SERVER}[traps]\ncommunities = [\"public\"]\n\n[[traps.users]]\nuser = \"t\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"SHA-256\"\nauth_password = \"authpass123\"\npriv_protocol = \"AES-256\"\npriv_password = \"privpass123\"\n"
    ))
    .expect("valid");
    let traps = config.traps.expect("[traps]");
    assert_eq!(traps.listen.to_string(), config::DEFAULT_LISTEN);
    assert_eq!(traps.max_datagram, config::DEFAULT_MAX_DATAGRAM);
    assert_eq!(traps.users.len(), 1);
    assert_eq!(traps.users[0].auth.0, AuthProtocol::Sha256);
    assert!(traps.users[0].privacy.is_some());
}

#[test]
fn traps_table_errors_name_the_key() {
    let err = |body: &str| {
        AgentConfig::parse(&format!("{SERVER}[traps]\n{body}"))
            .expect_err("refused")
            .to_string()
    };
    assert!(err("").contains("accepts nothing"), "{}", err(""));
    assert!(err("communities = [\"public\"]\nlisten = \"nowhere\"\n").contains("traps.listen"));
    assert!(err("communities = [\"public\"]\nlisten_on = \"1.2.3.4:1\"\n").contains("listen_on"));
    assert!(err("communities = [\"public\"]\nmax_datagram = 100\n").contains("max_datagram"));
    assert!(err("communities = [\"public\"]\nengine_id = \"0x12\"\n").contains("engine_id"));
    assert!(err("communities = [\"\"]\n").contains("empty"));
    let user = "\n[[traps.users]]\nuser = \"t\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"SHA\"\nauth_password = \"authpass123\"\n";
    assert!(err(user).contains("priv_protocol"), "{}", err(user));
    let short = user.replace("authpass123", "short");
    assert!(err(&short).contains("at least 8"));
    let des = format!("{user}priv_protocol = \"DES\"\npriv_password = \"privpass123\"\n");
    assert!(err(&des).contains("DES"));
    let twice = format!(
        "{user}priv_protocol = \"AES\"\npriv_password = \"privpass123\"\n{user}priv_protocol = \"AES\"\npriv_password = \"privpass123\"\n"
    );
    assert!(err(&twice).contains("more than once"));
    let line = err("communities = [\"public\"]\nmax_datagram = 100\n");
    assert!(line.contains("line"), "{line}");
}

#[test]
fn engine_ids_in_hex() {
    assert_eq!(
        config::parse_engine_id("0x8000000001").expect("valid"),
        vec![0x80, 0, 0, 0, 1]
    );
    assert!(config::parse_engine_id("0x80000000").is_err());
    assert!(config::parse_engine_id("0x80000000zz").is_err());
    assert!(config::parse_engine_id(&format!("0x{}", "ab".repeat(33))).is_err());
    assert!(config::parse_engine_id("0xé0000000001").is_err());
}
