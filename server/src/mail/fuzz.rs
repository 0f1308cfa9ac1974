//! The mail parsing path under arbitrary input (a bounded fuzz run on
//! stable Rust, in `cargo test`): random bytes, and the fixture corpus
//! (`tests/fixtures/mail/`) plus well-formed messages mutated byte by byte,
//! cut short and spliced. [`parse::read`] must return (never panic or hang)
//! and what it returns must keep its promises. `OUTPOST_FUZZ_CASES` sets
//! the number of cases per property (default 3000; CI runs the default).

use proptest::prelude::*;

use super::parse::{self, Inbound, SUBJECT_MAX, TEXT_MAX};

const CORPUS: &[&[u8]] = &[
    include_bytes!("../../../tests/fixtures/mail/malformed-bad-base64.eml"),
    include_bytes!("../../../tests/fixtures/mail/malformed-boundary-missing.eml"),
    include_bytes!("../../../tests/fixtures/mail/malformed-empty-from.eml"),
    include_bytes!("../../../tests/fixtures/mail/malformed-empty.eml"),
    include_bytes!("../../../tests/fixtures/mail/malformed-multipart-no-boundary.eml"),
    include_bytes!("../../../tests/fixtures/mail/malformed-no-from.eml"),
    include_bytes!("../../../tests/fixtures/mail/malformed-no-headers.eml"),
    include_bytes!("../../../tests/fixtures/mail/odd-8bit-header-and-controls.eml"),
    include_bytes!("../../../tests/fixtures/mail/odd-bad-encoded-words.eml"),
    include_bytes!("../../../tests/fixtures/mail/odd-deep-nesting-long-header.eml"),
    include_bytes!("../../../tests/fixtures/mail/odd-no-message-id-lf.eml"),
    include_bytes!("../../../tests/fixtures/mail/malformed-truncated-multipart.eml"),
    b"From: Jana <jana@customer.example>\r\nSubject: Re: [C-2026-000042] down\r\nMessage-ID: <a@b>\r\nIn-Reply-To: <delivery-7@outpost.example>\r\nReferences: <case-C-2026-000042@outpost.example>\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 =\r\nsoft break\r\n--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\nSubject: inner\r\n\r\ninner body\r\n--b1--\r\n",
    b"From: a@b.example\r\nSubject: =?utf-8?B?w6TDtsO8?= =?iso-8859-1?Q?=E9t=E9?=\r\nAuto-Submitted: auto-replied\r\nContent-Type: text/html\r\n\r\n<p>Hello<br>world</p>\r\n",
];

fn cases() -> u32 {
    std::env::var("OUTPOST_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn check(raw: &[u8]) {
    match parse::read(
        raw,
        Some("outpost.example"),
        Some("support@outpost.example"),
    ) {
        Ok(m) => promises(&m),
        Err(e) => assert!(!e.0.is_empty(), "an error names the fault"),
    }
}

fn promises(m: &Inbound) {
    assert!(!m.message_id.is_empty());
    assert!(m.text.chars().count() <= TEXT_MAX);
    assert!(m.subject.chars().count() <= SUBJECT_MAX);
    assert!(!m.subject.contains(['\n', '\r']));
    assert!(!m
        .text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t'));
    let (local, domain) = m.sender.address.split_once('@').expect("an address");
    assert!(!local.is_empty() && !domain.is_empty());
    assert_eq!(m.sender.address, m.sender.address.to_lowercase());
    for r in &m.references {
        assert!(!r.is_empty() && !r.starts_with('<') && !r.ends_with('>'));
    }
    if let Some(n) = &m.case_number {
        assert_eq!(parse::case_number_in(n).as_deref(), Some(n.as_str()));
    }
    for a in &m.attachments {
        assert!(!a.filename.is_empty() && !a.filename.contains(['/', '\\']));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&raw);
    }

    #[test]
    fn random_headers_and_bodies(
        lines in proptest::collection::vec("[ -~\t]{0,80}", 0..20),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut raw = b"From: a@b.example\r\n".to_vec();
        for l in lines {
            raw.extend_from_slice(l.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&body);
        check(&raw);
    }

    #[test]
    fn mutated_corpus(
        pick in 0..CORPUS.len(),
        other in 0..CORPUS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..24),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut raw = CORPUS[pick].to_vec();
        for (at, byte, op) in edits {
            if raw.is_empty() {
                raw.push(byte);
                continue;
            }
            let i = at.index(raw.len());
            match op {
                0 => raw[i] = byte,
                1 => raw.insert(i, byte),
                2 => {
                    raw.remove(i);
                }
                _ => {
                    // Splice in a piece of another message (boundaries,
                    // headers, encodings in the wrong place).
                    let src = CORPUS[other];
                    if !src.is_empty() {
                        let from = at.index(src.len());
                        let piece = &src[from..(from + 64).min(src.len())];
                        raw.splice(i..i, piece.iter().copied());
                    }
                }
            }
        }
        if !raw.is_empty() {
            raw.truncate(cut.index(raw.len()) + 1);
        }
        check(&raw);
    }
}

#[test]
fn corpus_as_is() {
    for raw in CORPUS {
        check(raw);
    }
}
