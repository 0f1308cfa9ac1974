//! The manager dashboard over real HTTP on both backends, with an SLA
//! policy in seconds so that a breach and an escalation are recorded: a
//! manager sees the charts and every section, and downloads tables as CSV
//! (type, attachment name, header row, quoting, formulas defused); a
//! customer is refused; a signed-out browser is sent to sign in.

use anyhow::{Context, Result};
use outpost_tests::{Backend, Server, World, FAST_SLA as FAST};
use reqwest::{header, redirect, StatusCode};
use serde_json::{json, Value};

/// A vendor name a spreadsheet would run as a formula.
const FORMULA_VENDOR: &str = r#"=HYPERLINK("http://x.example"), Inc"#;

#[tokio::test]
async fn dashboard_sqlite() -> Result<()> {
    dashboard(Backend::Sqlite).await
}

#[tokio::test]
async fn dashboard_postgres() -> Result<()> {
    dashboard(Backend::Postgres).await
}

/// A browser signed in as the user of `token` (given a password first):
/// its session cookie.
async fn sign_in(s: &Server, http: &reqwest::Client, token: &str) -> Result<String> {
    let (_, me) = s.get("/api/v1/me", token).await?;
    let username = me["username"].as_str().context("username")?.to_string();
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/users/{}/password", me["id"]),
            &s.admin_token,
            Some(json!({ "password": "a console password" })),
        )
        .await?;
    assert_eq!(st, 204, "{v}");
    let resp = http.get(format!("{}/login", s.base)).send().await?;
    let login_cookie = cookie(&resp, "outpost_login").context("login cookie")?;
    let page = resp.text().await?;
    let at = page.find("name=\"csrf\" value=\"").context("csrf field")? + 19;
    let csrf = page[at..].split('"').next().unwrap_or_default().to_string();
    let resp = http
        .post(format!("{}/login", s.base))
        .header(header::COOKIE, login_cookie)
        .form(&[
            ("username", username.as_str()),
            ("password", "a console password"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    cookie(&resp, "outpost_session").context("session cookie")
}

fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(String::from)
}

fn has_event(history: &Value, event: &str) -> bool {
    history
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["event"] == event))
}

async fn dashboard(backend: Backend) -> Result<()> {
    let s = Server::start_with_config(backend, Some(FAST)).await?;
    let w = World::build(&s).await?;
    // One case answered in time, one left alone until it breaches and
    // escalates, one with a vendor that looks like a formula.
    let answered = w.open_case(&s, false, "answered in time").await?;
    s.post_ok(
        &format!("/api/v1/cases/{answered}/assign"),
        &w.dispatcher,
        json!({ "assignee_id": w.engineer.0 }),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/cases/{answered}/status"),
        &w.engineer.1,
        json!({ "status": "responded" }),
    )
    .await?;
    let silent = w.open_case(&s, false, "nobody answers").await?;
    s.post_ok(
        "/api/v1/cases",
        &w.dispatcher,
        json!({
            "caller": { "name": "Caller" }, "summary": "odd vendor", "details": "d",
            "priority": "P3", "device_id": w.device_b, "vendor": FORMULA_VENDOR,
        }),
    )
    .await?;
    let mut escalated = false;
    for _ in 0..150 {
        let (_, h) = s
            .get(&format!("/api/v1/cases/{silent}/activities"), &w.dispatcher)
            .await?;
        if has_event(&h, "response_breached") && has_event(&h, "escalated") {
            escalated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(escalated, "{silent} was not breached and escalated in time");

    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()?;
    let manager = sign_in(&s, &http, &w.managers[0]).await?;
    let customer = sign_in(&s, &http, &w.customer_a).await?;
    let get = |path: &str, session: Option<&str>| {
        let mut rq = http.get(format!("{}{path}", s.base));
        if let Some(c) = session {
            rq = rq.header(header::COOKIE, c.to_string());
        }
        rq.send()
    };

    // The page: every section, the charts as accessible images.
    let resp = get("/dashboard", Some(&manager)).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await?;
    for want in [
        "<svg class=\"chart\" id=\"chart-open\"",
        "<svg class=\"chart\" id=\"chart-compliance\"",
        "<svg class=\"chart\" id=\"chart-per-day\"",
        "role=\"img\" aria-labelledby=\"chart-open-title chart-open-desc\"",
        "<desc id=\"chart-open-desc\">3 in all.",
        "Open cases by priority and age (3)",
        "Breaches and escalations this week",
        "SLA compliance",
        "By contract",
        "By engineer",
        "By vendor",
        "By case type",
        "Cases opened per day",
        "K-A100",
        "Response breached",
        silent.as_str(),
        "href=\"/dashboard/open-cases.csv\"",
        "working time",
    ] {
        assert!(
            page.contains(want),
            "{want:?} missing from the dashboard:\n{page}"
        );
    }
    // The answered case met its target, the silent one missed it: 50 %.
    assert!(page.contains("50.0% (1 of 2)"), "{page}");

    // CSV downloads.
    let resp = get("/dashboard/compliance-by-vendor.csv", Some(&manager)).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let disposition = resp.headers()[header::CONTENT_DISPOSITION]
        .to_str()?
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"outpost-compliance-by-vendor-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let csv = resp.text().await?;
    let mut lines = csv.split("\r\n");
    assert_eq!(
        lines.next(),
        Some(
            "Vendor,Cases,Response met,Response missed,Response open,Response met %,\
             Resolution met,Resolution missed,Resolution open,Resolution met %,\
             Mean time to respond (working minutes),Mean time to resolve (working minutes)"
        )
    );
    // Quoted (a comma, quotes doubled) and defused (a leading quote).
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://x.example\"\"), Inc\",1,"),
        "{csv}"
    );
    assert!(csv.contains("\r\nCisco,2,1,1,0,50.0,"), "{csv}");

    let resp = get("/dashboard/breaches-escalations.csv", Some(&manager)).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let csv = resp.text().await?;
    assert!(
        csv.starts_with(
            "Case,Customer,Event,Manager level,Recorded at (UTC),Due at (UTC),Recorded late\r\n"
        ),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("{silent},Customer A100,Response breached,,")),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("{silent},Customer A100,Escalated,L1,")),
        "{csv}"
    );
    let resp = get(
        "/dashboard/opened-per-day.csv?from=2020-01-01&to=2020-01-03",
        Some(&manager),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.text().await?,
        "Day (UTC),P1,P2,P3,P4,Total\r\n2020-01-01,0,0,0,0,0\r\n\
         2020-01-02,0,0,0,0,0\r\n2020-01-03,0,0,0,0,0\r\n"
    );
    let resp = get("/dashboard/no-such-table.csv", Some(&manager)).await?;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = get(
        "/dashboard/open-cases.csv?from=2026-02-01&to=2026-01-01",
        Some(&manager),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Customers are refused; a browser without a session goes to sign in.
    for path in ["/dashboard", "/dashboard/open-cases.csv"] {
        let resp = get(path, Some(&customer)).await?;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        let resp = get(path, None).await?;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(resp.headers()[header::LOCATION], "/login");
    }
    // The manager's start page is the dashboard.
    let resp = get("/", Some(&manager)).await?;
    assert_eq!(resp.headers()[header::LOCATION], "/dashboard");
    Ok(())
}
