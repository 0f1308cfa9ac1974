//! Inbound and outbound e-mail against real peers: the `mailgate` command
//! piped a message (as an MTA's pipe transport runs it), a private Dovecot
//! IMAP server the built-in poller reads (messages delivered into it by
//! Dovecot's own LDA), and an aiosmtpd SMTP server the notifier sends to.
//! Threading both ways, auto-replies never answered, the attachment limit,
//! unknown senders held, and a corpus of malformed messages
//! (`tests/fixtures/mail/`), every one kept.

use anyhow::{bail, Context, Result};
use outpost_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const DOMAIN: &str = "outpost.example";

fn config(smtp: u16, imap: Option<u16>) -> String {
    let mut c = format!(
        r#"
[notify]
retry_initial = "1s"
retry_max = "1s"

[notify.email]
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "Outpost Support <support@{DOMAIN}>"

[mail]
unknown_senders = "hold"
max_attachment_bytes = 10485760
"#
    );
    if let Some(port) = imap {
        c.push_str(&format!(
            r#"
[[mail.imap]]
name = "support"
host = "127.0.0.1"
port = {port}
tls = "none"
username = "support"
password = "imap-secret"
interval = "1s"
"#
        ));
    }
    c
}

/// Run `outpost-server mailgate` with `raw` on standard input.
fn mailgate(url: &str, token: &str, raw: &[u8]) -> Result<Output> {
    let mut child = Command::new(bin("outpost-server"))
        .args([
            "mailgate",
            "--url",
            url,
            "--token",
            token,
            "--timeout",
            "20",
        ])
        .env("OUTPOST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(raw)?;
    Ok(child.wait_with_output()?)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A message from `from` (extra header lines in `headers`).
fn message(from: &str, id: &str, subject: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n{headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A message with attachments `(name, declared type, bytes)`.
fn with_attachments(
    from: &str,
    id: &str,
    subject: &str,
    body: &str,
    parts: &[(&str, &str, &[u8])],
) -> Vec<u8> {
    use base64::Engine;
    let mut m = format!(
        "From: {from}\r\nTo: support@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XyZ\"\r\n\r\n--XyZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    );
    for (name, ty, data) in parts {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        m.push_str(&format!(
            "--XyZ\r\nContent-Type: {ty}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        for line in b64.as_bytes().chunks(76) {
            m.push_str(&String::from_utf8_lossy(line));
            m.push_str("\r\n");
        }
    }
    m.push_str("--XyZ--\r\n");
    m.into_bytes()
}

async fn case_of(s: &Server, token: &str, number: &str) -> Result<Value> {
    let (st, v) = s.get(&format!("/api/v1/cases/{number}"), token).await?;
    if st != StatusCode::OK {
        bail!("case {number}: {st} {v}");
    }
    Ok(v)
}

async fn history(s: &Server, token: &str, number: &str) -> Result<Vec<Value>> {
    let (_, v) = s
        .get(&format!("/api/v1/cases/{number}/activities"), token)
        .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

async fn kept(s: &Server, outcome: &str) -> Result<Vec<Value>> {
    let (st, v) = s
        .get(
            &format!("/api/v1/mail/messages?outcome={outcome}"),
            &s.admin_token,
        )
        .await?;
    if st != StatusCode::OK {
        bail!("mail messages: {st} {v}");
    }
    Ok(v.as_array().cloned().unwrap_or_default())
}

async fn raw_of(s: &Server, id: i64) -> Result<Vec<u8>> {
    let r = s
        .http
        .get(format!("{}/api/v1/mail/messages/{id}/raw", s.base))
        .bearer_auth(&s.admin_token)
        .send()
        .await?;
    if r.status() != StatusCode::OK {
        bail!("raw {id}: {}", r.status());
    }
    Ok(r.bytes().await?.to_vec())
}

fn mails_to(p: &Peer, to: &str) -> Vec<Value> {
    p.received()
        .into_iter()
        .filter(|m| {
            m["to"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == to))
        })
        .collect()
}

/// Wait for a mail to `to` whose subject contains `needle`.
async fn wait_mail(p: &Peer, to: &str, needle: &str) -> Result<Value> {
    let mut found = None;
    wait_until(
        &format!("a mail to {to} about {needle:?}"),
        30,
        async || {
            found = mails_to(p, to)
                .into_iter()
                .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(needle)));
            Ok(found.is_some())
        },
    )
    .await?;
    found.context("mail")
}

fn bare(id: &str) -> String {
    id.trim().trim_matches(['<', '>']).to_string()
}

#[tokio::test]
async fn mailgate_opens_cases_threads_replies_and_never_answers_machines() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let smtp = Peer::start("smtp_sink.py", free_port()?, &dir.path().join("mail.jsonl"))?;
    let s = Server::start_with_config(Backend::Sqlite, Some(&config(smtp.port, None))).await?;
    let w = World::build(&s).await?;
    let gate = |raw: Vec<u8>| mailgate(&s.base, &w.dispatcher, &raw);

    // A customer user writes in, with a PDF and an executable dressed up as one.
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    let first = with_attachments(
        "Anna Kunde <CUST_A@example.com>",
        "first@customer-a.example",
        "Switch sw-A100 reboots every hour",
        "Since this morning the switch reboots. Log attached.",
        &[
            ("log.pdf", "application/pdf", &pdf),
            ("invoice.pdf", "application/pdf", &exe),
        ],
    );
    let out = gate(first.clone())?;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.starts_with("opened"), "{said}");
    let (_, page) = s.get("/api/v1/cases?channel=email", &w.dispatcher).await?;
    let items = page["items"].as_array().context("items")?;
    assert_eq!(items.len(), 1, "{page}");
    let number = items[0]["number"].as_str().context("number")?.to_string();
    let case = case_of(&s, &w.dispatcher, &number).await?;
    assert_eq!(case["channel"], "email");
    assert_eq!(case["organization_id"], w.org_a);
    assert_eq!(case["caller"]["email"], "cust_a@example.com");
    assert_eq!(case["summary"], "Switch sw-A100 reboots every hour");
    let details = case["details"].as_str().context("details")?;
    assert!(details.contains("Since this morning"), "{details}");
    assert!(
        details.contains(
            "invoice.pdf not stored: its content is application/vnd.microsoft.portable-executable"
        ),
        "{details}"
    );
    // The PDF is stored and downloadable, for the customer too; the fake is not.
    let (_, atts) = s
        .get(
            &format!("/api/v1/cases/{number}/attachments"),
            &w.customer_a,
        )
        .await?;
    let atts = atts.as_array().context("attachments")?.clone();
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["filename"], "log.pdf");
    assert_eq!(atts[0]["content_type"], "application/pdf");
    let r = s
        .http
        .get(format!(
            "{}/api/v1/cases/{number}/attachments/{}",
            s.base, atts[0]["id"]
        ))
        .bearer_auth(&w.customer_a)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(r.bytes().await?.to_vec(), pdf);
    // Another customer does not see it.
    let (st, _) = s
        .get(
            &format!("/api/v1/cases/{number}/attachments"),
            &w.customer_b,
        )
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The same message again (an MTA retry): one case.
    let out = gate(first)?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("taken in before"),
        "{}",
        text(&out)
    );
    let (_, page) = s.get("/api/v1/cases?channel=email", &w.dispatcher).await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));

    // The customer is told, in the thread of their message.
    let ack = wait_mail(&smtp, "cust_a@example.com", "Case opened").await?;
    assert!(
        ack["subject"]
            .as_str()
            .is_some_and(|x| x.contains(&format!("[{number}]"))),
        "{ack}"
    );
    assert_eq!(
        bare(ack["in_reply_to"].as_str().unwrap_or("")),
        "first@customer-a.example"
    );
    assert!(
        ack["references"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("<case-{number}@{DOMAIN}>"))),
        "{ack}"
    );
    assert_eq!(ack["auto_submitted"], "auto-generated");
    let ack_id = bare(ack["message_id"].as_str().unwrap_or(""));
    assert!(
        ack_id.starts_with("delivery-") && ack_id.ends_with(DOMAIN),
        "{ack_id}"
    );

    // A reply by In-Reply-To alone (the subject lost the case number).
    let out = gate(message(
        "cust_a@example.com",
        "reply1@customer-a.example",
        "Re: your message",
        &format!(
            "In-Reply-To: <{ack_id}>\r\nReferences: <first@customer-a.example> <{ack_id}>\r\n"
        ),
        "It rebooted again at 11:00.",
    ))?;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("replied"),
        "{}",
        text(&out)
    );
    // A reply by the case number in the subject alone.
    let out = gate(message(
        "cust_a@example.com",
        "reply2@customer-a.example",
        &format!("More on {number}"),
        "",
        "Firmware is 15.2(7)E3.",
    ))?;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("replied"),
        "{}",
        text(&out)
    );
    let h = history(&s, &w.customer_a, &number).await?;
    let notes: Vec<&str> = h
        .iter()
        .filter(|e| e["kind"] == "note" && e["visibility"] == "public")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(notes.len(), 2, "{h:?}");
    assert!(notes[0].contains("It rebooted again at 11:00."));
    assert!(notes[1].contains("Firmware is 15.2(7)E3."));
    // The customer is not sent their own notes back.
    assert!(mails_to(&smtp, "cust_a@example.com")
        .iter()
        .all(|m| !m["subject"].as_str().unwrap_or("").contains("Update")));

    // Staff write a public note: the customer gets it, threaded.
    s.post_ok(
        &format!("/api/v1/cases/{number}/notes"),
        &w.dispatcher,
        json!({ "text": "Please send the output of show version.", "visibility": "public" }),
    )
    .await?;
    let update = wait_mail(&smtp, "cust_a@example.com", "Update").await?;
    assert!(
        update["body"]
            .as_str()
            .is_some_and(|b| b.contains("show version")),
        "{update}"
    );
    assert_eq!(
        bare(update["in_reply_to"].as_str().unwrap_or("")),
        "reply2@customer-a.example"
    );
    let refs = update["references"].as_str().unwrap_or("");
    assert!(
        refs.contains(&format!("<case-{number}@{DOMAIN}>"))
            && refs.contains("<first@customer-a.example>"),
        "{refs}"
    );
    let update_id = bare(update["message_id"].as_str().unwrap_or(""));

    // The customer's out-of-office answers it: kept, ignored, never answered
    // (no entry on the case, so nothing can be queued to send).
    let before = case_of(&s, &w.dispatcher, &number).await?["history_length"].clone();
    let (_, sent_before) = s
        .get(
            &format!("/api/v1/cases/{number}/notifications"),
            &w.dispatcher,
        )
        .await?;
    for (i, extra) in [
        "Auto-Submitted: auto-replied\r\n",
        "Precedence: bulk\r\nX-Autoreply: yes\r\n",
        "Return-Path: <>\r\n",
    ]
    .iter()
    .enumerate()
    {
        let out = gate(message(
            "cust_a@example.com",
            &format!("ooo{i}@customer-a.example"),
            &format!("Out of office: Re: [{number}] Update"),
            &format!("{extra}In-Reply-To: <{update_id}>\r\n"),
            "I am away until Monday.",
        ))?;
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("ignored"),
            "{}",
            text(&out)
        );
    }
    // Our own mail looping back.
    let out = gate(message(
        &format!("someone@{DOMAIN}.relay.example"),
        &update_id,
        &format!("[{number}] Update"),
        "",
        "loop",
    ))?;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ignored"),
        "{}",
        text(&out)
    );
    assert_eq!(
        case_of(&s, &w.dispatcher, &number).await?["history_length"],
        before
    );
    let (_, sent_after) = s
        .get(
            &format!("/api/v1/cases/{number}/notifications"),
            &w.dispatcher,
        )
        .await?;
    assert_eq!(sent_before, sent_after);
    assert_eq!(kept(&s, "ignored").await?.len(), 4);

    // Someone from another organisation quoting the case number: held.
    let out = gate(message(
        "cust_b@example.com",
        "nosy@b.example",
        &format!("Re: [{number}]"),
        "",
        "me too",
    ))?;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("held"),
        "{}",
        text(&out)
    );
    // An unknown sender: held for triage (mail.unknown_senders = "hold").
    let out = gate(message(
        "stranger@elsewhere.example",
        "s1@elsewhere.example",
        "Need help",
        "",
        "hi",
    ))?;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("held"),
        "{}",
        text(&out)
    );

    // A 20 MB attachment, over the 10 MiB limit: refused, kept, logged,
    // exit 0 (the MTA bounces nothing), and nobody is written to.
    let big = vec![0x41u8; 20 * 1000 * 1000];
    let raw = with_attachments(
        "cust_b@example.com",
        "big@b.example",
        "Core dump",
        "dump attached",
        &[("core.txt", "text/plain", &big)],
    );
    let out = gate(raw.clone())?;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.starts_with("refused") && said.contains("over the 10.0 MiB limit"),
        "{said}"
    );
    let refused = kept(&s, "refused").await?;
    assert_eq!(refused.len(), 1);
    assert_eq!(
        raw_of(&s, refused[0]["id"].as_i64().context("id")?).await?,
        raw
    );
    assert!(
        s.log_text().contains("mail kept for a person"),
        "the refusal is logged"
    );
    assert!(
        mails_to(&smtp, "cust_b@example.com").is_empty(),
        "no bounce, no answer"
    );
    let (_, page) = s.get("/api/v1/cases?channel=email", &w.dispatcher).await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));

    // A malformed message: exit 0 (kept server side), the fault named.
    let junk = b"this is not a mail message\r\n".to_vec();
    let out = gate(junk.clone())?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no header section"),
        "{}",
        text(&out)
    );
    let bad = kept(&s, "malformed").await?;
    assert_eq!(
        raw_of(&s, bad[0]["id"].as_i64().context("id")?).await?,
        junk
    );
    // The default list is what needs a person.
    let (_, held) = s.get("/api/v1/mail/messages", &w.dispatcher).await?;
    let outcomes: Vec<&str> = held
        .as_array()
        .context("list")?
        .iter()
        .filter_map(|m| m["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["malformed", "refused", "held", "held"]);

    // Gateway failures the MTA must retry: exit 75, never a bounce.
    let dead = format!("http://127.0.0.1:{}", free_port()?);
    let out = mailgate(
        &dead,
        &w.dispatcher,
        &message("a@b.example", "x@b", "x", "", "x"),
    )?;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    let out = mailgate(
        &s.base,
        "opt_wrong",
        &message("a@b.example", "y@b", "y", "", "y"),
    )?;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    // Engineers and customers may not hand mail in.
    let out = mailgate(
        &s.base,
        &w.engineer.1,
        &message("a@b.example", "z@b", "z", "", "z"),
    )?;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    let (st, _) = s.get("/api/v1/mail/messages", &w.customer_a).await?;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Triage: the dispatcher opens a case from the stranger's held message.
    let stranger = kept(&s, "held")
        .await?
        .into_iter()
        .find(|m| m["sender"] == "stranger@elsewhere.example")
        .context("the stranger's message")?;
    let release = format!("/api/v1/mail/messages/{}/release", stranger["id"]);
    let (st, _) = s
        .post(
            &release,
            &w.customer_a,
            json!({ "organization_id": w.org_a }),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .post(
            &release,
            &w.dispatcher,
            json!({ "organization_id": 999_999 }),
        )
        .await?;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("organization_id")),
        "{v}"
    );
    let v = s
        .post_ok(
            &release,
            &w.dispatcher,
            json!({ "organization_id": w.org_b }),
        )
        .await?;
    assert_eq!(v["outcome"], "opened", "{v}");
    let released = v["case_number"].as_str().context("case")?.to_string();
    let case = case_of(&s, &w.dispatcher, &released).await?;
    assert_eq!(case["organization_id"], w.org_b);
    assert_eq!(case["caller"]["email"], "stranger@elsewhere.example");
    let (st, v) = s
        .post(
            &release,
            &w.dispatcher,
            json!({ "organization_id": w.org_b }),
        )
        .await?;
    assert_eq!(st, StatusCode::CONFLICT, "released once: {v}");
    s.verify_intact()?;
    Ok(())
}

/// Every fixture is answered without a panic and kept byte for byte;
/// `malformed-*` ones are refused with 422 naming the fault.
#[tokio::test]
async fn malformed_corpus_is_kept_and_named() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mail");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    assert!(files.len() >= 10, "the corpus is in {}", dir.display());
    let mut ids = Vec::new();
    for f in &files {
        let raw = std::fs::read(f)?;
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let r = s
            .http
            .post(format!("{}/api/v1/mail/inbound", s.base))
            .bearer_auth(&s.admin_token)
            .header("content-type", "message/rfc822")
            .body(raw.clone())
            .send()
            .await?;
        let st = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if name.starts_with("malformed-") {
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
            assert_eq!(v["code"], "malformed_message", "{name}: {v}");
            assert!(
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("malformed message:")),
                "{name}: {v}"
            );
        } else {
            assert_eq!(st, StatusCode::OK, "{name}: {v}");
            assert_eq!(v["outcome"], "held", "{name}: unknown sender: {v}");
        }
        ids.push((name, raw));
    }
    let (st, _) = s.raw(Method::GET, "/healthz", None, None).await?;
    assert_eq!(st, StatusCode::OK, "still serving");
    let all = kept(&s, "all").await?;
    assert_eq!(all.len(), files.len(), "every message kept");
    for m in &all {
        let raw = raw_of(&s, m["id"].as_i64().context("id")?).await?;
        assert!(
            ids.iter().any(|(_, r)| *r == raw),
            "kept byte for byte: {m}"
        );
    }
    assert!(!s.log_text().contains("panicked"));
    Ok(())
}

/// A private Dovecot: its own config, users file and maildirs in a temp
/// dir, IMAP on a loopback port, plaintext login (loopback only), or
/// implicit TLS with a certificate from a test CA. Started in the
/// foreground; as root, the whole of it runs as `nobody`.
struct Dovecot {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// With TLS: plain IMAP where STARTTLS is required before login.
    starttls_port: u16,
    drop_to: Option<(String, String)>,
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made by
/// `openssl` in `dir`: `ca.pem`, `cert.pem`, `key.pem`.
fn test_ca(dir: &std::path::Path) -> Result<()> {
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Outpost test IMAP CA",
    ])?;
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ])?;
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Dovecot {
    fn start() -> Result<Dovecot> {
        Dovecot::start_with(false)
    }

    /// With `tls`, only IMAPS, with the certificate of [`test_ca`] (the
    /// CA's certificate is `ca_file()`).
    fn start_with(tls: bool) -> Result<Dovecot> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let starttls_port = free_port()?;
        let (user, group, uid, gid, drop_to) = if is_root() {
            let id = |a: &str| -> Result<String> {
                Ok(
                    String::from_utf8(Command::new("id").args([a, "nobody"]).output()?.stdout)?
                        .trim()
                        .to_string(),
                )
            };
            let group =
                String::from_utf8(Command::new("id").args(["-gn", "nobody"]).output()?.stdout)?
                    .trim()
                    .to_string();
            (
                "nobody".to_string(),
                group.clone(),
                id("-u")?,
                id("-g")?,
                Some(("nobody".to_string(), group)),
            )
        } else {
            let id = |a: &str| -> Result<String> {
                Ok(
                    String::from_utf8(Command::new("id").arg(a).output()?.stdout)?
                        .trim()
                        .to_string(),
                )
            };
            (id("-un")?, id("-gn")?, id("-u")?, id("-g")?, None)
        };
        let d = dir.path().display().to_string();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        let (ssl, listeners) = if tls {
            test_ca(dir.path())?;
            (
                format!("ssl = required\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n"),
                format!(
                    "  inet_listener imap {{\n    address = 127.0.0.1\n    port = {starttls_port}\n  }}\n  \
                     inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n    ssl = yes\n  }}\n"
                ),
            )
        } else {
            (
                "ssl = no\n".to_string(),
                format!(
                    "  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
                     inet_listener imaps {{\n    port = 0\n  }}\n"
                ),
            )
        };
        std::fs::write(
            dir.path().join("passwd"),
            "support:{PLAIN}imap-secret::::::\nsecure:{PLAIN}imap-secret::::::\n",
        )?;
        std::fs::write(
            dir.path().join("dovecot.conf"),
            format!(
                r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
service imap-login {{
  chroot =
{listeners}}}
service anvil {{
  chroot =
}}
"#
            ),
        )?;
        if drop_to.is_some() {
            // The temp dir is root's and 0700: hand it to the unprivileged user.
            let st = Command::new("chown")
                .args(["-R", &format!("{user}:{group}"), &d])
                .status()?;
            if !st.success() {
                bail!("chown {d} failed");
            }
        }
        let child = Self::command(&drop_to, "dovecot")
            .args(["-F", "-c", &format!("{d}/dovecot.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start dovecot (package dovecot-imapd; .ci/run installs it)")?;
        let dv = Dovecot {
            child,
            dir,
            port,
            starttls_port,
            drop_to,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("dovecot did not listen: {}", dv.log());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(dv)
    }

    fn command(drop_to: &Option<(String, String)>, program: &str) -> Command {
        match drop_to {
            Some((u, g)) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={g}"),
                    "--clear-groups",
                    program,
                ]);
                c
            }
            None => Command::new(program),
        }
    }

    fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    fn conf(&self) -> String {
        self.dir.path().join("dovecot.conf").display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Deliver `raw` to the support mailbox with Dovecot's LDA.
    fn deliver(&self, raw: &[u8]) -> Result<()> {
        self.deliver_to("support", raw)
    }

    /// Deliver `raw` to `user`'s mailbox with Dovecot's LDA.
    fn deliver_to(&self, user: &str, raw: &[u8]) -> Result<()> {
        let mut c = Self::command(&self.drop_to, "/usr/lib/dovecot/dovecot-lda")
            .args(["-c", &self.conf(), "-d", user, "-f", "sender@example.com"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        c.stdin.take().context("stdin")?.write_all(raw)?;
        let out = c.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "dovecot-lda failed: {} {}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        Ok(())
    }

    /// UIDs of unseen messages in the support INBOX (doveadm).
    fn unseen(&self) -> Result<String> {
        let out = Self::command(&self.drop_to, "doveadm")
            .args([
                "-c",
                &self.conf(),
                "search",
                "-u",
                "support",
                "mailbox",
                "INBOX",
                "UNSEEN",
            ])
            .output()?;
        if !out.status.success() {
            bail!("doveadm search: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn imap_poller_reads_dovecot_on_postgres() -> Result<()> {
    let dv = Dovecot::start()?;
    let dir = tempfile::tempdir()?;
    let smtp = Peer::start("smtp_sink.py", free_port()?, &dir.path().join("mail.jsonl"))?;
    let s = Server::start_with_config(Backend::Postgres, Some(&config(smtp.port, Some(dv.port))))
        .await?;
    let w = World::build(&s).await?;

    let first = message(
        "cust_a@example.com",
        "imap-first@customer-a.example",
        "Power supply 2 failed",
        "",
        "PSU2 LED is amber.",
    );
    dv.deliver(&first)?;
    let mut number = String::new();
    wait_until("a case from the IMAP mailbox", 30, async || {
        let (_, page) = s.get("/api/v1/cases?channel=email", &w.dispatcher).await?;
        if let Some(n) = page["items"][0]["number"].as_str() {
            number = n.to_string();
        }
        Ok(!number.is_empty())
    })
    .await?;
    let case = case_of(&s, &w.dispatcher, &number).await?;
    assert_eq!(case["summary"], "Power supply 2 failed");
    assert_eq!(case["organization_id"], w.org_a);
    // Marked seen in the mailbox once taken in.
    wait_until("the message flagged \\Seen", 30, async || {
        Ok(dv.unseen()?.is_empty())
    })
    .await?;

    // The acknowledgement, then the customer's reply to it through IMAP.
    let ack = wait_mail(&smtp, "cust_a@example.com", "Case opened").await?;
    let ack_id = bare(ack["message_id"].as_str().unwrap_or(""));
    dv.deliver(&message(
        "cust_a@example.com",
        "imap-reply@customer-a.example",
        "Re: Case opened",
        &format!("In-Reply-To: <{ack_id}>\r\n"),
        "Serial of the PSU is PS123.",
    ))?;
    // An auto-reply and the first message again (a second copy in the box).
    dv.deliver(&message(
        "cust_a@example.com",
        "imap-ooo@customer-a.example",
        "Automatic reply",
        &format!("Auto-Submitted: auto-replied\r\nIn-Reply-To: <{ack_id}>\r\n"),
        "Out of office.",
    ))?;
    dv.deliver(&first)?;
    wait_until("the reply as a note", 30, async || {
        let h = history(&s, &w.dispatcher, &number).await?;
        Ok(h.iter().any(|e| {
            e["kind"] == "note" && e["text"].as_str().is_some_and(|t| t.contains("PS123"))
        }))
    })
    .await?;
    wait_until("every message seen", 30, async || {
        Ok(dv.unseen()?.is_empty())
    })
    .await?;
    wait_until("the auto-reply kept as ignored", 30, async || {
        Ok(kept(&s, "ignored").await?.len() == 1)
    })
    .await?;
    let (_, page) = s.get("/api/v1/cases?channel=email", &w.dispatcher).await?;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(1),
        "the repeat opened nothing"
    );
    let all = kept(&s, "all").await?;
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|m| m["source"] == "imap:support"));
    let h = history(&s, &w.dispatcher, &number).await?;
    assert_eq!(
        h.iter().filter(|e| e["kind"] == "note").count(),
        1,
        "only the reply: {h:?}"
    );
    s.verify_intact()?;
    Ok(())
}

/// The poller over implicit TLS and over STARTTLS: Dovecot with a
/// certificate from a test CA. Trusting that CA (`ca_file`), messages are
/// taken in both ways; a mailbox on the same server that trusts only the
/// Web PKI roots refuses the certificate, says so in the log, and takes
/// nothing.
#[tokio::test]
async fn imap_poller_speaks_tls_and_checks_the_certificate() -> Result<()> {
    let dv = Dovecot::start_with(true)?;
    let dir = tempfile::tempdir()?;
    let smtp = Peer::start("smtp_sink.py", free_port()?, &dir.path().join("mail.jsonl"))?;
    let mut toml = config(smtp.port, None);
    toml.push_str(&format!(
        r#"
[[mail.imap]]
name = "tls"
host = "127.0.0.1"
port = {port}
tls = "tls"
ca_file = "{ca}"
username = "support"
password = "imap-secret"
interval = "1s"

[[mail.imap]]
name = "untrusted"
host = "127.0.0.1"
port = {port}
tls = "tls"
username = "support"
password = "imap-secret"
interval = "1s"

[[mail.imap]]
name = "starttls"
host = "127.0.0.1"
port = {starttls}
tls = "starttls"
ca_file = "{ca}"
username = "secure"
password = "imap-secret"
interval = "1s"
"#,
        port = dv.port,
        starttls = dv.starttls_port,
        ca = dv.ca_file()
    ));
    let s = Server::start_with_config(Backend::Sqlite, Some(&toml)).await?;
    let w = World::build(&s).await?;
    dv.deliver(&message(
        "cust_a@example.com",
        "imap-tls@customer-a.example",
        "Fan tray alarm",
        "",
        "Fan tray 1 reports a failure.",
    ))?;
    let mut number = String::new();
    wait_until("a case from the mailbox over TLS", 30, async || {
        let (_, page) = s.get("/api/v1/cases?channel=email", &w.dispatcher).await?;
        if let Some(n) = page["items"][0]["number"].as_str() {
            number = n.to_string();
        }
        Ok(!number.is_empty())
    })
    .await
    .with_context(|| format!("{}\n{}", s.log_text(), dv.log()))?;
    assert_eq!(
        case_of(&s, &w.dispatcher, &number).await?["summary"],
        "Fan tray alarm"
    );
    // The second mailbox, reached with STARTTLS on the plain port.
    dv.deliver_to(
        "secure",
        &message(
            "cust_a@example.com",
            "imap-starttls@customer-a.example",
            "PSU fan noisy",
            "",
            "The PSU fan of core-sw-1 is loud.",
        ),
    )?;
    wait_until("a case from the mailbox over STARTTLS", 30, async || {
        Ok(kept(&s, "all").await?.len() == 2)
    })
    .await
    .with_context(|| format!("{}\n{}", s.log_text(), dv.log()))?;
    let mut sources: Vec<String> = kept(&s, "all")
        .await?
        .iter()
        .map(|m| m["source"].as_str().unwrap_or_default().to_string())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        ["imap:starttls", "imap:tls"],
        "only the mailboxes that trust the CA took mail in"
    );
    wait_until("the untrusted mailbox's refusal logged", 30, async || {
        let log = s.log_text();
        Ok(log.lines().any(|l| {
            l.contains("untrusted") && (l.contains("certificate") || l.contains("UnknownIssuer"))
        }))
    })
    .await
    .with_context(|| s.log_text())?;
    Ok(())
}
