//! Reading one raw RFC 5322 message into what intake needs: who sent it,
//! what it is about, which case it may belong to, whether it is automatic
//! (auto-reply, bounce, list, our own message looping back), its text and
//! its attachments. Pure: bytes in, [`Inbound`] or [`Malformed`] out, no I/O.
//!
//! MIME is decoded by `mail-parser`, which is tolerant and reads almost
//! anything. What it tolerates silently but a person should look at is
//! refused here as [`Malformed`], with a sentence naming the fault: no header
//! section, no sender address, a multipart without its boundary, a base64
//! part that is not base64. (The caller keeps such messages raw.)

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// Longest note text taken from a message body (the note limit).
pub const TEXT_MAX: usize = 20_000;
/// Longest subject kept (the case summary limit).
pub const SUBJECT_MAX: usize = 200;

/// Why a message could not be read; the text is shown to people as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sender, from `From:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// Lower case.
    pub address: String,
    pub name: Option<String>,
}

impl Sender {
    /// "Name <address>" or the address.
    pub fn display(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} <{}>", self.address),
            None => self.address.clone(),
        }
    }
}

/// One attachment as the sender sent it (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub filename: String,
    pub declared_type: String,
    pub data: Vec<u8>,
}

/// A message that could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The Message-ID without angle brackets, or `sha256:<hex>` of the raw
    /// bytes when the message has none (so a repeat is still recognised).
    pub message_id: String,
    pub sender: Sender,
    /// One line, at most [`SUBJECT_MAX`] characters; may be empty.
    pub subject: String,
    /// In-Reply-To then References, without angle brackets, lower case.
    pub references: Vec<String>,
    /// A case number in the subject (`C-2026-000042`), upper case.
    pub case_number: Option<String>,
    /// Why this message is automatic and must never be answered.
    pub automatic: Option<String>,
    /// The plain text body (HTML turned into text when there is no plain
    /// part), control characters removed, at most [`TEXT_MAX`] characters.
    pub text: String,
    pub attachments: Vec<Part>,
}

/// `sha256:<hex>`: the id of a message without a Message-ID.
pub fn content_id(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

/// Skip an mbox envelope line (`From sender date`), which some MTAs' pipe
/// transports put before the message.
fn strip_envelope(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(i) => &raw[i + 1..],
            None => &raw[raw.len()..],
        }
    } else {
        raw
    }
}

/// Whether the first line is a header field (`Name: value`).
fn starts_with_header(raw: &[u8]) -> bool {
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    match line.iter().position(|&b| b == b':') {
        Some(0) | None => false,
        Some(i) => line[..i].iter().all(|&b| (33..=126).contains(&b)),
    }
}

/// Text of a header that may come as one text or a list.
fn texts(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Remove control characters (keeping newlines and tabs) and cut to `max`
/// characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut n = 0;
    for c in s.chars() {
        if c == '\r' {
            continue;
        }
        if n == max {
            break;
        }
        out.push(if c.is_control() && c != '\n' && c != '\t' {
            '\u{FFFD}'
        } else {
            c
        });
        n += 1;
    }
    out
}

/// The first `C-YYYY-NNNNNN` in `s` (any case), upper-cased.
pub fn case_number_in(s: &str) -> Option<String> {
    const LEN: usize = 13;
    let b = s.as_bytes();
    if b.len() < LEN {
        return None;
    }
    (0..=b.len() - LEN).find_map(|i| {
        let w = &b[i..i + LEN];
        let ok = (w[0] == b'C' || w[0] == b'c')
            && w[1] == b'-'
            && w[2..6].iter().all(u8::is_ascii_digit)
            && w[6] == b'-'
            && w[7..].iter().all(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b.get(i + LEN).is_none_or(|c| !c.is_ascii_digit());
        ok.then(|| String::from_utf8_lossy(w).to_uppercase())
    })
}

/// Whether `id` (no angle brackets) is one of ours: `delivery-N@domain` or
/// `case-NUMBER@domain` (see `notify::send`).
pub fn ours(id: &str, domain: Option<&str>) -> bool {
    let Some(domain) = domain else { return false };
    match id.rsplit_once('@') {
        Some((local, d)) => {
            d.eq_ignore_ascii_case(domain)
                && (local.starts_with("delivery-") || local.starts_with("case-"))
        }
        None => false,
    }
}

/// The delivery number in one of our Message-IDs.
pub fn our_delivery(id: &str, domain: Option<&str>) -> Option<i64> {
    if !ours(id, domain) {
        return None;
    }
    id.split_once('@')?
        .0
        .strip_prefix("delivery-")?
        .parse()
        .ok()
}

/// The case number in one of our thread ids `case-NUMBER@domain`.
pub fn our_case(id: &str, domain: Option<&str>) -> Option<String> {
    if !ours(id, domain) {
        return None;
    }
    let local = id.split_once('@')?.0.strip_prefix("case-")?;
    case_number_in(local).filter(|n| n.eq_ignore_ascii_case(local))
}

/// Read `raw`. `domain` is our Message-ID domain and `address` our support
/// address (both lower case), for loop detection.
pub fn read(raw: &[u8], domain: Option<&str>, address: Option<&str>) -> Result<Inbound, Malformed> {
    let body = strip_envelope(raw);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Malformed("the message is empty".into()));
    }
    if !starts_with_header(body) {
        return Err(Malformed(
            "no header section: the first line is not a header field (Name: value)".into(),
        ));
    }
    let msg = MessageParser::default()
        .parse(body)
        .ok_or_else(|| Malformed("not an RFC 5322 message".into()))?;
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address().map(|x| (x.trim().to_lowercase(), a.name())))
        .filter(|(x, _)| {
            x.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
                && !x.contains(char::is_whitespace)
                // RFC 5321's limit; a longer one cut short could lose its
                // domain, so it is no address.
                && x.chars().count() <= 254
                && !x.contains(char::is_control)
        });
    let Some((address_from, name)) = from else {
        return Err(Malformed(
            "no sender: the From: header is missing or holds no address".into(),
        ));
    };
    let sender = Sender {
        address: clean(&address_from, 254),
        name: name
            .map(|n| clean(n.trim(), 200))
            .filter(|n| !n.is_empty() && *n != address_from),
    };
    // MIME structure that mail-parser accepts silently but is broken.
    for (i, part) in msg.parts.iter().enumerate() {
        if part.is_encoding_problem {
            return Err(Malformed(format!(
                "MIME part {i}: its content cannot be decoded as declared (Content-Transfer-Encoding {}), or it is cut off before its closing boundary",
                part.content_transfer_encoding().unwrap_or("7bit")
            )));
        }
        let ct = part.content_type();
        let multipart = ct.is_some_and(|c| c.ctype().eq_ignore_ascii_case("multipart"));
        if multipart {
            let Some(boundary) = ct.and_then(|c| c.attribute("boundary")) else {
                return Err(Malformed(format!(
                    "MIME part {i} is multipart but names no boundary"
                )));
            };
            let start = part.raw_body_offset() as usize;
            let end = (part.raw_end_offset() as usize).min(body.len());
            let marker = format!("--{boundary}");
            let inner = body.get(start..end).unwrap_or_default();
            if !inner
                .windows(marker.len().max(1))
                .any(|w| w == marker.as_bytes())
            {
                return Err(Malformed(format!(
                    "MIME part {i}: the boundary {boundary:?} never occurs in its body"
                )));
            }
        }
        let base64 = part
            .content_transfer_encoding()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"));
        if base64 && !multipart {
            let start = part.raw_body_offset() as usize;
            let end = (part.raw_end_offset() as usize).min(body.len());
            let inner = body.get(start..end).unwrap_or_default();
            // The part's end may include the next boundary line.
            let text = inner
                .split(|&b| b == b'\n')
                .take_while(|l| !l.starts_with(b"--"))
                .flatten()
                .copied();
            let bad = text
                .filter(|b| !b.is_ascii_whitespace())
                .any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')));
            if bad {
                return Err(Malformed(format!(
                    "MIME part {i}{}: declared base64 but the body is not base64",
                    part.attachment_name()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )));
            }
        }
    }
    let message_id = msg
        .message_id()
        .map(|m| m.trim().trim_matches(['<', '>']).to_string())
        .filter(|m| !m.is_empty() && m.len() <= 500 && !m.contains(char::is_control))
        .unwrap_or_else(|| content_id(raw));
    let subject = clean(msg.subject().unwrap_or_default(), SUBJECT_MAX)
        .replace(['\n', '\t'], " ")
        .trim()
        .to_string();
    let mut references = Vec::new();
    for v in [msg.in_reply_to(), msg.references()] {
        for t in texts(v) {
            let t = t.trim().trim_matches(['<', '>']).to_lowercase();
            if !t.is_empty() && t.len() <= 500 && !references.contains(&t) {
                references.push(t);
            }
        }
    }
    let automatic = automatic(&msg, &message_id, &sender, domain, address);
    let text = msg
        .body_text(0)
        .map(|t| clean(t.trim(), TEXT_MAX))
        .unwrap_or_default();
    let mut attachments = Vec::new();
    for (i, a) in msg.attachments().enumerate() {
        if matches!(a.body, PartType::Message(_)) && a.attachment_name().is_none() {
            // A forwarded or bounced message: its text is not an attachment.
            continue;
        }
        let declared = a
            .content_type()
            .map(|c| match c.subtype() {
                Some(s) => format!("{}/{}", c.ctype(), s),
                None => c.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_lowercase();
        let filename = a
            .attachment_name()
            .map(|n| clean(n, 200).replace(['/', '\\', '\n', '\t'], "_"))
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("attachment-{}", i + 1));
        attachments.push(Part {
            filename,
            declared_type: declared,
            data: a.contents().to_vec(),
        });
    }
    let case_number = case_number_in(&subject);
    Ok(Inbound {
        message_id,
        sender,
        subject,
        references,
        case_number,
        automatic,
        text,
        attachments,
    })
}

/// Why a message is automatic (RFC 3834 and common practice), or `None`
/// for a message a person wrote.
fn automatic(
    msg: &mail_parser::Message<'_>,
    message_id: &str,
    sender: &Sender,
    domain: Option<&str>,
    address: Option<&str>,
) -> Option<String> {
    // The header's value as written (first occurrence), in lower case.
    let raw = |name: &str| {
        msg.headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| {
                let start = h.offset_start() as usize;
                let end = (h.offset_end() as usize).max(start);
                String::from_utf8_lossy(msg.raw_message().get(start..end).unwrap_or_default())
                    .trim()
                    .to_lowercase()
            })
    };
    if let Some(v) = raw("Auto-Submitted").filter(|v| !v.is_empty() && v != "no") {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(v) =
        raw("Precedence").filter(|v| matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply"))
    {
        return Some(format!("Precedence: {v}"));
    }
    for h in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Auto-Reply",
    ] {
        if raw(h).is_some() {
            return Some(format!("{h} header"));
        }
    }
    if raw("List-Id").is_some() {
        return Some("List-Id: mailing-list mail".into());
    }
    if let Some(rp) = raw("Return-Path") {
        if rp
            .trim_matches(['<', '>', ' ', '\t', '\r', '\n'])
            .is_empty()
        {
            return Some("empty Return-Path (a bounce)".into());
        }
    }
    let local = sender.address.split('@').next().unwrap_or_default();
    if matches!(local, "mailer-daemon" | "postmaster") {
        return Some(format!("sent by {}", sender.address));
    }
    if msg.content_type().is_some_and(|c| {
        c.subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    }) {
        return Some("multipart/report (a delivery or read report)".into());
    }
    if ours(message_id, domain) {
        return Some(format!("our own message <{message_id}> came back (a loop)"));
    }
    if address.is_some_and(|a| a == sender.address) {
        return Some(format!("sent from our own address {}", sender.address));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}").into_bytes()
    }

    #[test]
    fn a_plain_message() {
        let raw = msg(
            "From: Jana Vogt <Jana@Customer.Example>\r\nTo: support@outpost.example\r\nSubject: Re: [C-2026-000042] Switch down\r\nMessage-ID: <abc@customer.example>\r\nIn-Reply-To: <delivery-7@outpost.example>\r\nReferences: <case-C-2026-000042@outpost.example> <delivery-7@outpost.example>",
            "It is down again.\r\n",
        );
        let m = read(
            &raw,
            Some("outpost.example"),
            Some("support@outpost.example"),
        )
        .unwrap();
        assert_eq!(m.message_id, "abc@customer.example");
        assert_eq!(m.sender.address, "jana@customer.example");
        assert_eq!(m.sender.name.as_deref(), Some("Jana Vogt"));
        assert_eq!(m.case_number.as_deref(), Some("C-2026-000042"));
        assert_eq!(
            m.references,
            vec![
                "delivery-7@outpost.example",
                "case-c-2026-000042@outpost.example"
            ]
        );
        assert_eq!(m.text, "It is down again.");
        assert_eq!(m.automatic, None);
        assert_eq!(
            our_delivery(&m.references[0], Some("outpost.example")),
            Some(7)
        );
        assert_eq!(
            our_case(&m.references[1], Some("outpost.example")).as_deref(),
            Some("C-2026-000042")
        );
        assert_eq!(
            our_delivery("delivery-7@elsewhere.example", Some("outpost.example")),
            None
        );
    }

    #[test]
    fn automatic_messages_are_recognised() {
        let base = "From: a@b.example\r\nSubject: Out of office\r\nMessage-ID: <x@b.example>";
        for (extra, why) in [
            ("Auto-Submitted: auto-replied", "Auto-Submitted"),
            ("Precedence: bulk", "Precedence"),
            ("Precedence: junk", "Precedence"),
            ("Precedence: list", "Precedence"),
            ("X-Autoreply: yes", "X-Autoreply"),
            ("X-Autorespond: yes", "X-Autorespond"),
            ("Return-Path: <>", "Return-Path"),
            ("List-Id: <ops.lists.example>", "List-Id"),
        ] {
            let raw = msg(&format!("{base}\r\n{extra}"), "away");
            let m = read(&raw, None, None).unwrap();
            assert!(
                m.automatic.as_deref().is_some_and(|a| a.contains(why)),
                "{extra}: {:?}",
                m.automatic
            );
        }
        let raw = msg("From: a@b.example\r\nAuto-Submitted: no", "hi");
        assert_eq!(read(&raw, None, None).unwrap().automatic, None);
        let raw = msg("From: MAILER-DAEMON@b.example", "undeliverable");
        assert!(read(&raw, None, None).unwrap().automatic.is_some());
        let raw = msg(
            "From: x@c.example\r\nMessage-ID: <delivery-3@outpost.example>",
            "loop",
        );
        assert!(read(&raw, Some("outpost.example"), None)
            .unwrap()
            .automatic
            .is_some_and(|a| a.contains("loop")));
        let raw = msg("From: Support <SUPPORT@outpost.example>", "loop");
        assert!(read(&raw, None, Some("support@outpost.example"))
            .unwrap()
            .automatic
            .is_some());
    }

    #[test]
    fn an_over_long_sender_is_no_address() {
        // Cut to 254 characters it would lose its domain.
        let raw = format!("From: <{}@example.com>\r\n\r\nbody", "a".repeat(300));
        let err = read(raw.as_bytes(), None, None).expect_err("no sender");
        assert!(err.0.contains("no sender"), "{}", err.0);
    }

    #[test]
    fn malformed_messages_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"just some text\r\nwithout headers\r\n", "no header section"),
            (b"Subject: nobody\r\n\r\nbody", "no sender"),
            (b"From: not an address\r\n\r\nbody", "no sender"),
            (
                b"From: a@b.example\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n",
                "names no boundary",
            ),
            (
                b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"zzz\"\r\n\r\nno parts here\r\n",
                "never occurs",
            ),
            (
                b"From: a@b.example\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%%% not base64 !!!\r\n",
                "cannot be decoded",
            ),
        ];
        for (raw, why) in cases {
            let e = read(raw, None, None).unwrap_err();
            assert!(e.0.contains(why), "{:?}: {e}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn messages_without_an_id_get_one_from_their_bytes() {
        let raw = msg("From: a@b.example\r\nSubject: hi", "x");
        let m = read(&raw, None, None).unwrap();
        assert_eq!(m.message_id, content_id(&raw));
        assert_eq!(read(&raw, None, None).unwrap().message_id, m.message_id);
    }

    #[test]
    fn case_numbers() {
        assert_eq!(
            case_number_in("Re: [C-2026-000042] x").as_deref(),
            Some("C-2026-000042")
        );
        assert_eq!(
            case_number_in("c-2026-000042").as_deref(),
            Some("C-2026-000042")
        );
        assert_eq!(case_number_in("XC-2026-000042"), None);
        assert_eq!(case_number_in("C-2026-0000421"), None);
        assert_eq!(case_number_in("C-2026-00004"), None);
        assert_eq!(
            case_number_in("ü C-2026-000001 ü").as_deref(),
            Some("C-2026-000001")
        );
    }

    #[test]
    fn attachments_and_envelope_lines() {
        let raw = b"From sender@b.example Wed Nov 25 10:00:00 2026\r\nFrom: a@b.example\r\nSubject: log\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\nContent-Type: application/pdf; name=\"../r.pdf\"\r\nContent-Disposition: attachment; filename=\"../r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n";
        let m = read(raw, None, None).unwrap();
        assert_eq!(m.text, "see attached");
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].filename, ".._r.pdf");
        assert_eq!(m.attachments[0].declared_type, "application/pdf");
        assert_eq!(m.attachments[0].data, b"%PDF-1.4\n");
    }
}
