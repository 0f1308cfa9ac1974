//! Service reports over real HTTP: the demo customer's report as JSON, HTML
//! and PDF (printed by headless Chromium, rendered to PNG by poppler's
//! `pdftoppm`, and the PNG checked to show something); customers see only
//! their own; bad periods named; a missing Chromium is a clear 503; and a
//! schedule whose e-mail arrives at a real SMTP server with the PDF
//! attached, once.

use anyhow::{Context, Result};
use chrono::{Datelike, Utc};
use outpost_tests::{bin, free_port, wait_until, Backend, Demo, Peer, Server, World};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// Renders the first page of `pdf` to PNG with pdftoppm and returns the
/// share of its pixels that are not white, after checking it is a PNG of
/// a plausible page.
fn render_first_page(pdf: &Path) -> Result<f64> {
    let prefix = pdf.with_extension("");
    let out = Command::new("pdftoppm")
        .args(["-png", "-r", "40", "-f", "1", "-l", "1", "-singlefile"])
        .arg(pdf)
        .arg(&prefix)
        .output()
        .context("pdftoppm (poppler-utils; .ci/run installs it)")?;
    assert!(out.status.success(), "pdftoppm: {out:?}");
    let png_path = prefix.with_extension("png");
    let file = std::fs::File::open(&png_path)?;
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG size")?];
    let info = reader.next_frame(&mut buf)?;
    // A4 or Letter at 40 dpi: about 330 x 440 pixels, portrait.
    assert!(
        info.width > 250 && info.height > info.width,
        "{}x{}",
        info.width,
        info.height
    );
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()].chunks(channels);
    let (mut inked, mut total) = (0usize, 0usize);
    for px in pixels {
        total += 1;
        if px.iter().take(3).any(|&v| v < 200) {
            inked += 1;
        }
    }
    Ok(inked as f64 / total.max(1) as f64)
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<reqwest::Response> {
    Ok(http.get(url).bearer_auth(token).send().await?)
}

#[tokio::test]
async fn the_demo_customers_report_as_json_html_and_pdf() -> Result<()> {
    let demo = Demo::start()?;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", demo.url);
    let tomas = demo.token("tomas")?;
    let orgs: Value = get(&http, &format!("{api}/organizations"), &tomas)
        .await?
        .json()
        .await?;
    let org = |name: &str| {
        orgs.as_array()
            .and_then(|l| l.iter().find(|o| o["name"] == name))
            .and_then(|o| o["id"].as_i64())
            .context("demo organisation")
    };
    let nordwind = org("Nordwind Logistik GmbH")?;
    let clinics = org("Harbor Health Clinics")?;
    let url = format!("{api}/organizations/{nordwind}/service-report");

    let r: Value = get(&http, &url, &tomas).await?.json().await?;
    assert_eq!(r["organization_name"], "Nordwind Logistik GmbH");
    let total = |k: &str| {
        r[k].as_array()
            .map(|l| l.iter().filter_map(|c| c["count"].as_i64()).sum::<i64>())
            .unwrap_or(-1)
    };
    // The demo opened seven cases, six of them Nordwind's, in the last ten
    // days; one P2 case is closed.
    assert_eq!(total("opened"), 6, "{r}");
    assert_eq!(total("closed"), 1, "{r}");
    assert_eq!(r["closed"][1], json!({ "priority": "P2", "count": 1 }));
    assert_eq!(r["compliance"]["cases"], 6);
    assert!(
        r["compliance"]["response"]["met"].as_i64().unwrap_or(0) >= 1,
        "{r}"
    );
    assert_eq!(r["upgrades"], json!([]), "no upgrade in the demo: {r}");
    // The demo's Hamburg HQ inspection is three days overdue: outstanding.
    assert_eq!(r["inspections"]["performed"], json!([]), "{r}");
    let hamburg = "Quarterly inspection, Hamburg HQ";
    let outstanding = |r: &Value| -> Vec<(String, bool)> {
        r["inspections"]["outstanding"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["schedule_name"].as_str().unwrap_or_default().to_string(),
                    d["overdue"] == true,
                )
            })
            .collect()
    };
    assert_eq!(outstanding(&r), vec![(hamburg.to_string(), true)], "{r}");
    // Performed, with a finding and its follow-up case, it moves over.
    let (dana, erik) = (demo.token("dana")?, demo.token("erik")?);
    let me: Value = get(&http, &format!("{api}/me"), &erik)
        .await?
        .json()
        .await?;
    let schedules: Value = get(&http, &format!("{api}/inspection-schedules"), &dana)
        .await?
        .json()
        .await?;
    let schedule = schedules
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == hamburg))
        .context("the demo's Hamburg schedule")?;
    let items: Vec<Value> = schedule["checklist"]
        .as_array()
        .context("checklist")?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if i == 0 {
                json!({ "item": item, "result": "finding", "note": "fan 2 noisy", "open_case": true })
            } else {
                json!({ "item": item, "result": "ok" })
            }
        })
        .collect();
    let done = http
        .post(format!(
            "{api}/inspection-schedules/{}/inspections",
            schedule["id"]
        ))
        .bearer_auth(&dana)
        .json(&json!({ "engineer_id": me["id"], "items": items }))
        .send()
        .await?;
    assert!(done.status().is_success(), "{:?}", done.text().await);
    let r: Value = get(&http, &url, &tomas).await?.json().await?;
    let performed = &r["inspections"]["performed"];
    assert_eq!(performed[0]["schedule_name"], hamburg, "{r}");
    assert_eq!(performed[0]["findings"], 1);
    assert_eq!(
        performed[0]["follow_up_cases"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(outstanding(&r), vec![], "{r}");

    // HTML.
    let resp = get(&http, &format!("{url}?format=html"), &tomas).await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()?
        .starts_with("text/html"));
    let html = resp.text().await?;
    assert!(html.contains("Service report: Nordwind Logistik GmbH"));
    assert!(html.contains("SLA compliance") && html.contains("Spare parts shipped"));

    // PDF, rendered to PNG.
    let resp = get(&http, &format!("{url}?format=pdf"), &tomas).await?;
    assert_eq!(resp.status(), 200, "{}", demo.log_text());
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert!(resp.headers()["content-disposition"]
        .to_str()?
        .contains(&format!("service-report-{nordwind}-")));
    let pdf = resp.bytes().await?;
    assert!(pdf.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, &pdf)?;
    let inked = render_first_page(&file)?;
    assert!(
        inked > 0.01 && inked < 0.6,
        "the first page is neither blank nor solid: {inked}"
    );

    // Customers: their own organisation only (another answers 404).
    let jana = demo.token("jana")?;
    assert_eq!(get(&http, &url, &jana).await?.status(), 200);
    let hank = demo.token("hank")?;
    assert_eq!(get(&http, &url, &hank).await?.status(), 404);
    assert_eq!(
        get(
            &http,
            &format!("{api}/organizations/{clinics}/service-report"),
            &hank
        )
        .await?
        .status(),
        200
    );
    assert_eq!(
        get(
            &http,
            &format!("{api}/organizations/999999/service-report"),
            &tomas
        )
        .await?
        .status(),
        404
    );

    // Bad input, named.
    // (Undecodable query strings are 400, invalid values 422.)
    for (q, want, field) in [
        ("from=2026-13-01&to=2026-12-31", 422, "from"),
        ("from=2026-03-01&to=2026-02-01", 422, "to"),
        ("from=2020-01-01&to=2026-01-01", 422, "to"),
        ("format=docx", 400, "format"),
        ("colour=red", 400, "colour"),
    ] {
        let resp = get(&http, &format!("{url}?{q}"), &tomas).await?;
        assert_eq!(resp.status().as_u16(), want, "{q}");
        let v: Value = resp.json().await?;
        assert!(v.to_string().contains(field), "{q}: {v}");
    }
    Ok(())
}

#[tokio::test]
async fn pdf_without_chromium_is_a_clear_503_and_config_is_checked() -> Result<()> {
    let s = Server::start_with_config(
        Backend::Sqlite,
        Some("[reports]\nchromium = \"/nonexistent/chromium\"\n"),
    )
    .await?;
    let w = World::build(&s).await?;
    let path = format!("/api/v1/organizations/{}/service-report", w.org_a);
    let (st, v) = s.get(&format!("{path}?format=pdf"), &w.managers[0]).await?;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["code"], "unavailable");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("reports.chromium"),
        "{v}"
    );
    // The HTML report works without it.
    let resp = s
        .http
        .get(format!("{}{path}?format=html", s.base))
        .bearer_auth(&w.managers[0])
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    // Schedules need e-mail, which this server lacks.
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/v1/organizations/{}/report-schedule", w.org_a),
            &w.managers[0],
            Some(json!({ "frequency": "monthly", "recipients": ["a@example.com"] })),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("notify.email"));

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("outpost.toml");
    for (text, expected) in [
        (
            "[reports]\npdf_timeout_secs = 0\n",
            "reports.pdf_timeout_secs",
        ),
        ("[reports]\nchromium = \"\"\n", "reports.chromium"),
        (
            "[reports]\nchromum = \"/usr/bin/chromium\"\n",
            "unknown field `chromum`",
        ),
    ] {
        std::fs::write(&file, text)?;
        let out = Command::new(bin("outpost-server"))
            .args(["config", "check"])
            .arg(&file)
            .output()?;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{text}: {err}");
    }
    Ok(())
}

async fn scheduled_report_is_emailed_with_the_pdf(backend: Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let smtp = Peer::start("smtp_sink.py", free_port()?, &dir.path().join("mail.jsonl"))?;
    let config = format!(
        r#"
[notify.email]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Outpost Support <support@outpost.example>"

[reports]
chromium = "/usr/bin/chromium"
"#,
        port = smtp.port
    );
    let s = Server::start_with_config(backend, Some(&config)).await?;
    let w = World::build(&s).await?;
    let path = format!("/api/v1/organizations/{}/report-schedule", w.org_a);
    let put = |body: Value, token: String| {
        let s = &s;
        let path = path.clone();
        async move { s.call(Method::PUT, &path, &token, Some(body)).await }
    };
    let manager = w.managers[1].clone();

    // Who and what.
    let soon = Utc::now() + chrono::Duration::seconds(2);
    let good = json!({ "frequency": "monthly", "recipients": ["ops@customer-a.example", "cfo@customer-a.example"],
                       "first_run_at": soon.to_rfc3339() });
    for token in [&w.engineer.1, &w.customer_a, &w.rma] {
        assert_eq!(put(good.clone(), token.clone()).await?.0, 403);
    }
    let bad = [
        (
            json!({ "frequency": "monthly", "recipients": [] }),
            "recipients",
        ),
        (
            json!({ "frequency": "monthly", "recipients": ["not an address"] }),
            "recipients[0]",
        ),
        (
            json!({ "frequency": "monthly", "recipients": ["a@example.com"], "first_run_at": "2001-01-01T00:00:00Z" }),
            "first_run_at",
        ),
        (
            json!({ "frequency": "daily", "recipients": ["a@example.com"] }),
            "",
        ),
        (
            json!({ "frequency": "monthly", "recipients": ["a@example.com"], "cc": [] }),
            "",
        ),
    ];
    for (body, field) in bad {
        let (st, v) = put(body.clone(), manager.clone()).await?;
        assert_eq!(st, 422, "{body}: {v}");
        if !field.is_empty() {
            assert_eq!(v["field"], field, "{body}: {v}");
        }
    }
    let (st, _) = s.get(&path, &manager).await?;
    assert_eq!(st, 404, "refused schedules wrote nothing");
    let (st, _) = s
        .call(
            Method::PUT,
            "/api/v1/organizations/999999/report-schedule",
            &manager,
            Some(good.clone()),
        )
        .await?;
    assert_eq!(st, 404);

    let (st, v) = put(good, manager.clone()).await?;
    assert_eq!(st, 200, "{v}");
    // It covers the previous calendar month.
    let today = Utc::now().date_naive();
    let first = today.with_day(1).context("day")?;
    let prev = first - chrono::Months::new(1);
    assert_eq!(v["next_from"], prev.to_string());
    assert_eq!(v["next_to"], first.pred_opt().context("pred")?.to_string());
    // Customer B does not see A's schedule.
    assert_eq!(s.get(&path, &w.customer_b).await?.0, 404);
    assert_eq!(s.get(&path, &w.customer_a).await?.0, 200);

    wait_until("the scheduled report e-mail", 60, async || {
        Ok(!smtp.received().is_empty())
    })
    .await?;
    // The schedule moves on to the next month's run; one e-mail was sent.
    wait_until("the next run", 30, async || {
        let (_, v) = s.get(&path, &manager).await?;
        Ok(v["next_run_at"]
            .as_str()
            .is_some_and(|t| t.ends_with("T06:00:00Z")))
    })
    .await?;
    let mails = smtp.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert_eq!(
        m["subject"],
        format!(
            "Service report Customer A100: {} to {}",
            prev,
            first.pred_opt().context("pred")?
        )
    );
    let mut to: Vec<&str> = m["to"]
        .as_array()
        .context("to")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    to.sort();
    assert_eq!(to, ["cfo@customer-a.example", "ops@customer-a.example"]);
    assert!(m["body"]
        .as_str()
        .unwrap_or("")
        .contains("attached is the service report"));
    let att = &m["attachments"][0];
    assert_eq!(att["content_type"], "application/pdf", "{m}");
    assert!(att["filename"].as_str().unwrap_or("").ends_with(".pdf"));
    let pdf = Path::new(att["path"].as_str().context("path")?);
    assert!(std::fs::read(pdf)?.starts_with(b"%PDF-"));
    let inked = render_first_page(pdf)?;
    assert!(inked > 0.01, "the mailed PDF shows something: {inked}");

    // Deleting stops it; a second delete finds nothing.
    let (st, _) = s.call(Method::DELETE, &path, &manager, None).await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.call(Method::DELETE, &path, &manager, None).await?;
    assert_eq!(st, 404);
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn scheduled_report_is_emailed_with_the_pdf_sqlite() -> Result<()> {
    scheduled_report_is_emailed_with_the_pdf(Backend::Sqlite).await
}

#[tokio::test]
async fn scheduled_report_is_emailed_with_the_pdf_postgres() -> Result<()> {
    scheduled_report_is_emailed_with_the_pdf(Backend::Postgres).await
}
