//! Notifications end to end: the real server binary, a real SMTP server
//! (aiosmtpd, `tests/peers/smtp_sink.py`) and a local HTTP receiver as SMS
//! gateway and webhook consumer (`tests/peers/http_sink.py`), on loopback
//! high ports, with an SLA policy in seconds.
//!
//! - A P1 case assigned and never answered: the engineer's assignment mail
//!   and SMS, the reminders, the automatic reassignment (the new engineer's
//!   mail and SMS), and each manager level's escalation mail and SMS arrive in
//!   order, each within 1 s of its deadline; answering another case stops its
//!   reminders.
//! - kill -9 of the server mid-way: after restart nothing is lost or doubled,
//!   and deadlines missed while down are sent marked late.
//! - SMTP down, then up: every mail arrives.
//! - Surveys, fault reports and alerts.

use anyhow::{Context, Result};
use outpost_tests::{free_port, mobile_for, Backend, Peer, Server, World};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

struct Peers {
    smtp: Peer,
    http: Peer,
    _dir: tempfile::TempDir,
}

fn peers() -> Result<Peers> {
    let dir = tempfile::tempdir()?;
    let smtp = Peer::start("smtp_sink.py", free_port()?, &dir.path().join("mail.jsonl"))?;
    let http = Peer::start("http_sink.py", free_port()?, &dir.path().join("http.jsonl"))?;
    Ok(Peers {
        smtp,
        http,
        _dir: dir,
    })
}

/// P1: reminders at 1 s and 2 s, automatic reassignment at 3 s, response due
/// at 6 s, escalation levels 1..5 at 4..8 s.
fn config(p: &Peers) -> String {
    format!(
        r#"
[sla]
default_policy = "fast"

[[sla.policies]]
name = "fast"
reassign = "automatic"
[sla.policies.targets.P1]
response = "6s"
reminders = ["1s", "2s"]
reassign_at = "3s"
resolution = "off"
escalation = [{{ after = "4s", level = 1 }}, {{ after = "5s", level = 2 }}, {{ after = "6s", level = 3 }},
              {{ after = "7s", level = 4 }}, {{ after = "8s", level = 5 }}]

[notify]
retry_initial = "500ms"
retry_max = "1s"
max_attempts = 100

[notify.email]
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "Outpost Support <support@outpost.example>"

[notify.sms]
url = "http://127.0.0.1:{http}/sms"
headers = {{ Authorization = "Bearer gateway-secret" }}

[[notify.webhooks]]
url = "http://127.0.0.1:{http}/hook"
secret = "0123456789abcdef"
events = ["sla_event"]

[[notify.webhooks]]
url = "http://127.0.0.1:{http}/reject"
secret = "0123456789abcdef"
events = ["fault_report"]
"#,
        smtp = p.smtp.port,
        http = p.http.port
    )
}

async fn open_p1(s: &Server, w: &World, summary: &str, email: &str) -> Result<String> {
    let v = s
        .post_ok(
            "/api/v1/cases",
            &w.dispatcher,
            json!({
                "caller": { "name": "Jana Vogt", "phone": "+49 40 1234567", "email": email },
                "summary": summary, "details": "details", "priority": "P1",
                "device_id": w.device_a,
            }),
        )
        .await?;
    Ok(v["number"].as_str().context("number")?.to_string())
}

/// Deliveries of a case as the API lists them.
async fn deliveries(s: &Server, token: &str, number: &str) -> Result<Vec<Value>> {
    let (st, v) = s
        .get(&format!("/api/v1/cases/{number}/notifications"), token)
        .await?;
    anyhow::ensure!(st == 200, "{st}: {v}");
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// Wait until `done` holds for the deliveries of `number` (up to `secs`).
async fn wait_deliveries(
    s: &Server,
    token: &str,
    number: &str,
    secs: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let d = deliveries(s, token, number).await?;
        if done(&d) {
            return Ok(d);
        }
        if std::time::Instant::now() > deadline {
            let short: Vec<String> = d
                .iter()
                .map(|x| {
                    format!(
                        "{} {} {} {}",
                        x["reason"], x["channel"], x["address"], x["status"]
                    )
                })
                .collect();
            anyhow::bail!("deliveries of {number} not as expected after {secs} s: {short:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn key(d: &Value) -> (String, String, String) {
    (
        d["reason"].as_str().unwrap_or_default().into(),
        d["channel"].as_str().unwrap_or_default().into(),
        d["address"].as_str().unwrap_or_default().into(),
    )
}

fn has(ds: &[Value], reason: &str, channel: &str, address: &str) -> bool {
    ds.iter()
        .any(|d| key(d) == (reason.into(), channel.into(), address.into()) && d["status"] == "sent")
}

/// Delivery id -> arrival time (Unix seconds) at the peers: mails by their
/// Message-ID `<delivery-N@...>`, HTTP requests by `x-outpost-delivery`.
fn arrivals(p: &Peers) -> BTreeMap<i64, Vec<f64>> {
    let mut out: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for m in p.smtp.received() {
        let id = m["message_id"]
            .as_str()
            .and_then(|s| s.strip_prefix("<delivery-"))
            .and_then(|s| s.split('@').next())
            .and_then(|s| s.parse().ok());
        if let (Some(id), Some(at)) = (id, m["at"].as_f64()) {
            out.entry(id).or_default().push(at);
        }
    }
    for r in p.http.received() {
        let id = r["headers"]["x-outpost-delivery"]
            .as_str()
            .and_then(|s| s.parse().ok());
        if let (Some(id), Some(at)) = (id, r["at"].as_f64()) {
            out.entry(id).or_default().push(at);
        }
    }
    out
}

/// seq -> due_at (Unix seconds) of the SLA events in a case history.
async fn sla_due(s: &Server, token: &str, number: &str) -> Result<BTreeMap<i64, (f64, bool)>> {
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), token)
        .await?;
    let mut out = BTreeMap::new();
    for e in h.as_array().cloned().unwrap_or_default() {
        if e["kind"] != "sla_event" {
            continue;
        }
        let due: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(e["due_at"].clone()).context("due_at")?;
        out.insert(
            e["seq"].as_i64().context("seq")?,
            (due.timestamp_micros() as f64 / 1e6, e["late"] == true),
        );
    }
    Ok(out)
}

fn manager_email(level: i64) -> String {
    format!("mgr{level}@example.com")
}

#[tokio::test]
async fn unanswered_p1_notifies_everyone_in_order_and_on_time() -> Result<()> {
    let p = peers()?;
    let s = Server::start_with_config(Backend::Sqlite, Some(&config(&p))).await?;
    let w = World::build(&s).await?;
    let silent = open_p1(&s, &w, "Core switch down", "jana@customer.example").await?;
    let answered = open_p1(&s, &w, "Edge router flapping", "jana@customer.example").await?;
    for n in [&silent, &answered] {
        s.post_ok(
            &format!("/api/v1/cases/{n}/assign"),
            &w.dispatcher,
            json!({ "assignee_id": w.engineer.0 }),
        )
        .await?;
    }
    s.post_ok(
        &format!("/api/v1/cases/{answered}/status"),
        &w.engineer.1,
        json!({ "status": "responded" }),
    )
    .await?;

    let all_levels = |d: &[Value]| {
        (1..=5).all(|l| {
            has(d, &format!("escalation:{l}"), "email", &manager_email(l))
                && has(
                    d,
                    &format!("escalation:{l}"),
                    "sms",
                    &mobile_for(&format!("mgr{l}")),
                )
        })
    };
    let d = wait_deliveries(&s, &w.dispatcher, &silent, 30, all_levels).await?;
    let (eng1, eng2, disp) = ("eng1@example.com", "eng2@example.com", "disp@example.com");
    assert!(has(&d, "assigned", "email", eng1) && has(&d, "assigned", "sms", &mobile_for("eng1")));
    assert!(has(&d, "reminder", "email", eng1) && has(&d, "reminder", "sms", &mobile_for("eng1")));
    assert!(has(&d, "reminder", "email", disp) && has(&d, "reminder", "sms", &mobile_for("disp")));
    // Reassigned round-robin to eng2, who is told at once by mail and SMS.
    assert!(has(&d, "assigned", "email", eng2) && has(&d, "assigned", "sms", &mobile_for("eng2")));
    assert!(has(&d, "reassigned", "email", disp));
    // Two reminders to eng1 (before the reassignment), none to eng2.
    let count = |r: &str, addr: &str| {
        d.iter()
            .filter(|x| key(x) == (r.into(), "email".into(), addr.into()))
            .count()
    };
    assert_eq!(count("reminder", eng1), 2);
    assert_eq!(count("reminder", eng2), 0);
    // Webhook subscribers get the SLA events, signed.
    let hooks: Vec<Value> = p
        .http
        .received()
        .into_iter()
        .filter(|r| r["path"] == "/hook")
        .collect();
    assert!(hooks.len() >= 8, "{hooks:?}");
    for h in &hooks {
        assert!(h["headers"]["x-outpost-signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("sha256=")));
        let body: Value = serde_json::from_str(h["body"].as_str().unwrap_or("null"))?;
        assert_eq!(body["event"], "sla_event");
    }
    // SMS went through the gateway with its configured header and JSON body.
    let sms: Vec<Value> = p
        .http
        .received()
        .into_iter()
        .filter(|r| r["path"] == "/sms")
        .collect();
    assert!(sms
        .iter()
        .all(|r| r["headers"]["authorization"] == "Bearer gateway-secret"));
    let texts: Vec<Value> = sms
        .iter()
        .filter_map(|r| serde_json::from_str(r["body"].as_str().unwrap_or("null")).ok())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t["text"].as_str().is_some_and(|t| t.contains(&silent))
                && t["to"] == mobile_for("eng1").as_str()),
        "{texts:?}"
    );

    // On time: every SLA-caused message arrived within 1 s of its deadline,
    // and in deadline order.
    let due = sla_due(&s, &w.dispatcher, &silent).await?;
    let arrived = arrivals(&p);
    let mut timeline = Vec::new();
    for x in &d {
        let seq = x["seq"].as_i64().context("seq")?;
        let id = x["id"].as_i64().context("id")?;
        let at = arrived.get(&id).and_then(|v| v.first().copied());
        let at = at.with_context(|| format!("delivery {id} ({:?}) never arrived", key(x)))?;
        assert_eq!(arrived[&id].len(), 1, "delivery {id} arrived twice");
        if let Some((due_at, late)) = due.get(&seq) {
            assert!(!late);
            let lag = at - due_at;
            assert!(
                (0.0..1.0).contains(&lag),
                "{:?}: {lag:.3} s after due",
                key(x)
            );
            timeline.push((*due_at, at, key(x)));
        }
    }
    timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
    let levels: Vec<String> = timeline
        .iter()
        .filter(|t| t.2 .0.starts_with("escalation") && t.2 .1 == "email")
        .map(|t| t.2 .0.clone())
        .collect();
    assert_eq!(
        levels,
        [
            "escalation:1",
            "escalation:2",
            "escalation:3",
            "escalation:4",
            "escalation:5"
        ]
    );

    // Answering stopped the other case's reminders.
    let d2 = deliveries(&s, &w.dispatcher, &answered).await?;
    assert!(
        d2.iter().all(|x| !matches!(
            x["reason"].as_str(),
            Some("reminder" | "reassign_prompt" | "reassigned")
        )),
        "{d2:?}"
    );
    assert!(has(&d2, "assigned", "email", eng1));

    // Alerts: manager level 1 sees and acknowledges one; level 2 cannot.
    let (_, mine) = s.get("/api/v1/alerts", &w.managers[0]).await?;
    let alert = mine
        .as_array()
        .and_then(|a| a.iter().find(|x| x["case_number"] == silent.as_str()))
        .cloned()
        .context("an alert for level 1")?;
    assert_eq!(alert["level"], 1);
    let id = alert["id"].as_i64().context("alert id")?;
    let (st, _) = s
        .post(
            &format!("/api/v1/alerts/{id}/ack"),
            &w.managers[1],
            json!({}),
        )
        .await?;
    assert_eq!(st, 404);
    let acked = s
        .post_ok(
            &format!("/api/v1/alerts/{id}/ack"),
            &w.managers[0],
            json!({}),
        )
        .await?;
    assert!(acked["acknowledged_at"].is_string());
    let (_, mine) = s.get("/api/v1/alerts", &w.managers[0]).await?;
    assert!(mine
        .as_array()
        .is_some_and(|a| a.iter().all(|x| x["id"] != id)));
    let (_, h) = s
        .get(&format!("/api/v1/cases/{silent}/activities"), &w.dispatcher)
        .await?;
    assert!(h
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["kind"] == "alert_acknowledged")));
    let (st, _) = s.get("/api/v1/alerts?all=true", &w.managers[0]).await?;
    assert_eq!(st, 403);

    // /metrics counts deliveries by channel and state.
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        text.contains("outpost_notification_deliveries{channel=\"sms\",status=\"sent\"}"),
        "{text}"
    );
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn kill_9_loses_and_doubles_nothing() -> Result<()> {
    let p = peers()?;
    let mut s = Server::start_with_config(Backend::Sqlite, Some(&config(&p))).await?;
    let w = World::build(&s).await?;
    let number = open_p1(&s, &w, "Storage array offline", "ops@customer.example").await?;
    s.post_ok(
        &format!("/api/v1/cases/{number}/assign"),
        &w.dispatcher,
        json!({ "assignee_id": w.engineer.0 }),
    )
    .await?;
    // Let the first reminder go out, then kill -9 and stay down past level 2.
    wait_deliveries(&s, &w.dispatcher, &number, 10, |d| {
        has(d, "reminder", "email", "eng1@example.com")
    })
    .await?;
    s.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (base, _replica) = s.start_replica()?;
    s.base = base;
    let d = wait_deliveries(&s, &w.dispatcher, &number, 30, |d| {
        (1..=5).all(|l| has(d, &format!("escalation:{l}"), "email", &manager_email(l)))
    })
    .await?;
    // Nothing doubled: one delivery per (reason, channel, address, entry),
    // and each arrived exactly once.
    let arrived = arrivals(&p);
    for x in &d {
        let id = x["id"].as_i64().context("id")?;
        assert_eq!(
            arrived.get(&id).map(Vec::len),
            Some(1),
            "delivery {id} {:?}",
            key(x)
        );
    }
    // Deadlines missed while down were recorded late, and their mail says so.
    let due = sla_due(&s, &w.dispatcher, &number).await?;
    assert!(due.values().any(|(_, late)| *late), "{due:?}");
    let late_mail = p.smtp.received().into_iter().any(|m| {
        m["body"]
            .as_str()
            .is_some_and(|b| b.contains("recorded late"))
    });
    assert!(late_mail);
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn mail_waits_while_smtp_is_down() -> Result<()> {
    let mut p = peers()?;
    let s = Server::start_with_config(Backend::Sqlite, Some(&config(&p))).await?;
    let w = World::build(&s).await?;
    p.smtp.stop();
    let number = open_p1(&s, &w, "Mail server down too", "ops@customer.example").await?;
    s.post_ok(
        &format!("/api/v1/cases/{number}/assign"),
        &w.dispatcher,
        json!({ "assignee_id": w.engineer.0 }),
    )
    .await?;
    // SMS still flows; mail retries.
    let d = wait_deliveries(&s, &w.dispatcher, &number, 10, |d| {
        has(d, "reminder", "sms", &mobile_for("eng1"))
            && d.iter()
                .any(|x| x["channel"] == "email" && x["attempts"].as_i64() > Some(1))
    })
    .await?;
    let waiting = d
        .iter()
        .find(|x| x["channel"] == "email" && x["status"] == "pending")
        .context("a mail waiting")?;
    assert!(
        waiting["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("SMTP")),
        "{waiting}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.smtp.restart()?;
    let d = wait_deliveries(&s, &w.dispatcher, &number, 30, |d| {
        (1..=5).all(|l| has(d, &format!("escalation:{l}"), "email", &manager_email(l)))
            && d.iter()
                .filter(|x| x["channel"] == "email")
                .all(|x| x["status"] == "sent")
    })
    .await?;
    let mails = p.smtp.received();
    let sent = d.iter().filter(|x| x["channel"] == "email").count();
    assert_eq!(mails.len(), sent, "every mail arrived once");
    Ok(())
}

#[tokio::test]
async fn surveys_fault_reports_and_permanent_failures() -> Result<()> {
    let p = peers()?;
    let s = Server::start_with_config(Backend::Sqlite, Some(&config(&p))).await?;
    let w = World::build(&s).await?;
    let number = open_p1(&s, &w, "Firewall lost its config", "jana@customer.example").await?;
    s.post_ok(
        &format!("/api/v1/cases/{number}/assign"),
        &w.dispatcher,
        json!({ "assignee_id": w.engineer.0 }),
    )
    .await?;
    for st in ["responded", "diagnosing", "resolved"] {
        s.post_ok(
            &format!("/api/v1/cases/{number}/status"),
            &w.engineer.1,
            json!({ "status": st, "reason": "done" }),
        )
        .await?;
    }
    // A P1 case does not close without a fault analysis report.
    let (st, v) = s
        .post(
            &format!("/api/v1/cases/{number}/status"),
            &w.customer_a,
            json!({ "status": "closed" }),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    assert!(v["message"]
        .as_str()
        .is_some_and(|m| m.contains("fault analysis report")));
    let (st, v) = s
        .post(
            &format!("/api/v1/cases/{number}/fault-report"),
            &w.engineer.1,
            json!({ "cause": " ", "actions": "a", "prevention": "p" }),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("cause")),
        "{v}"
    );
    let (st, _) = s
        .post(
            &format!("/api/v1/cases/{number}/fault-report"),
            &w.customer_a,
            json!({ "cause": "c", "actions": "a", "prevention": "p" }),
        )
        .await?;
    assert_eq!(st, 403);
    s.post_ok(
        &format!("/api/v1/cases/{number}/fault-report"),
        &w.engineer.1,
        json!({ "cause": "A config push wiped the rule base", "actions": "Restored from backup", "prevention": "Config pushes now need review" }),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/cases/{number}/status"),
        &w.customer_a,
        json!({ "status": "closed" }),
    )
    .await?;

    // The report and the survey reach the contact.
    let d = wait_deliveries(&s, &w.dispatcher, &number, 10, |d| {
        has(d, "fault_report", "email", "jana@customer.example")
            && has(d, "survey", "email", "jana@customer.example")
    })
    .await?;
    assert!(d
        .iter()
        .any(|x| x["reason"] == "survey_reminder" && x["status"] == "pending"));
    let mails = p.smtp.received();
    let report = mails
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Fault analysis report"))
        })
        .context("report mail")?;
    assert!(report["body"]
        .as_str()
        .is_some_and(|b| b.contains("rule base")));
    let survey = mails
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("How did we do"))
        })
        .context("survey mail")?;
    let body = survey["body"].as_str().unwrap_or_default();
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/survey/"))
        .context("survey link")?
        .to_string();
    assert!(link.starts_with(&s.base), "{link} is on this server");
    let token = link.rsplit('/').next().unwrap_or_default().to_string();

    // The form page works without a login; a wrong token is a clear 404.
    let page = s.http.get(&link).send().await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains(&number));
    let (st, v) = s
        .raw(
            reqwest::Method::GET,
            "/api/v1/surveys/not-a-token",
            None,
            None,
        )
        .await?;
    assert_eq!(st, 404, "{v}");
    let (st, v) = s
        .raw(
            reqwest::Method::POST,
            &format!("/api/v1/surveys/{token}"),
            None,
            Some(("application/json", r#"{"rating": 9}"#)),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("rating")),
        "{v}"
    );
    // Answer through the HTML form; a second answer is refused.
    let resp = s
        .http
        .post(&link)
        .form(&[("rating", "4"), ("comment", "Quick & <competent>")])
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (st, _) = s
        .raw(
            reqwest::Method::POST,
            &format!("/api/v1/surveys/{token}"),
            None,
            Some(("application/json", r#"{"rating": 5}"#)),
        )
        .await?;
    assert_eq!(st, 409);
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.customer_a)
        .await?;
    let answer = h
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == "survey_answered"))
        .cloned()
        .context("answer on the case")?;
    assert_eq!(answer["rating"], 4);
    assert_eq!(answer["comment"], "Quick & <competent>");
    // The reminder is cancelled.
    let d = deliveries(&s, &w.dispatcher, &number).await?;
    assert!(d
        .iter()
        .any(|x| x["reason"] == "survey_reminder" && x["status"] == "cancelled"));
    // Results by engineer and month.
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now = chrono::Utc::now();
    let (st, r) = s
        .get(
            &format!(
                "/api/v1/reports/surveys?from={}&to={}",
                ts(now - chrono::Duration::hours(1)),
                ts(now + chrono::Duration::hours(1))
            ),
            &w.managers[0],
        )
        .await?;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["sent"], 1);
    assert_eq!(r["overall"]["answers"], 1);
    assert_eq!(r["by_engineer"][0]["engineer"], "eng1");
    assert_eq!(r["by_engineer"][0]["average"], 4.0);

    // A webhook receiver that refuses (HTTP 400) fails for good at once:
    // recorded on the case, not retried.
    let d = wait_deliveries(&s, &w.dispatcher, &number, 10, |d| {
        d.iter().any(|x| {
            x["address"]
                .as_str()
                .is_some_and(|a| a.ends_with("/reject"))
                && x["status"] == "failed"
        })
    })
    .await?;
    let failed = d
        .iter()
        .find(|x| x["status"] == "failed")
        .context("failed delivery")?;
    assert_eq!(failed["attempts"], 1);
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("400")),
        "{failed}"
    );
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.dispatcher)
        .await?;
    assert!(h
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["kind"] == "notification_failed")));
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.customer_a)
        .await?;
    assert!(h
        .as_array()
        .is_some_and(|a| a.iter().all(|e| e["kind"] != "notification_failed")));
    s.verify_intact()?;
    Ok(())
}
