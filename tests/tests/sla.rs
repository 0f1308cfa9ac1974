//! SLA deadlines end to end, with a policy in seconds: reminders, the reassign
//! prompt, the response breach and escalation are recorded on the case as
//! internal history entries within about a second of coming due; responding
//! cancels the response deadlines; customers never see these entries; a
//! server that was down records missed deadlines at start-up, marked late.

use anyhow::{Context, Result};
use outpost_tests::{Backend, Server, World, FAST_SLA as FAST};
use serde_json::{json, Value};

fn sla_events(history: &Value) -> Vec<(String, Option<i64>, bool)> {
    history
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == "sla_event")
                .map(|e| {
                    (
                        e["event"].as_str().unwrap_or_default().to_string(),
                        e["level"].as_i64(),
                        e["late"].as_bool().unwrap_or(true),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for_events(s: &Server, token: &str, number: &str, n: usize) -> Result<Value> {
    for _ in 0..200 {
        let (_, h) = s
            .get(&format!("/api/v1/cases/{number}/activities"), token)
            .await?;
        if sla_events(&h).len() >= n {
            return Ok(h);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), token)
        .await?;
    anyhow::bail!(
        "expected {n} SLA events on {number}, got {:?}",
        sla_events(&h)
    )
}

async fn deadlines_are_recorded(backend: Backend) -> Result<()> {
    let s = Server::start_with_config(backend, Some(FAST)).await?;
    let w = World::build(&s).await?;
    let silent = w.open_case(&s, false, "nobody answers").await?;
    let answered = w.open_case(&s, false, "answered quickly").await?;
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

    // The live clock view, while the response clock runs and after it stopped.
    let (st, v) = s
        .get(&format!("/api/v1/cases/{silent}/sla"), &w.dispatcher)
        .await?;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["policy"].as_str(),
            v["calendar"].as_str(),
            v["timezone"].as_str()
        ),
        (Some("fast"), Some("24x7"), Some("UTC"))
    );
    assert_eq!(v["response"]["target"], "3s");
    assert!(
        v["response"]["running"] == true && v["response"]["due_at"].is_string(),
        "{v}"
    );
    assert!(
        v["upcoming"]
            .as_array()
            .is_some_and(|u| u.iter().any(|d| d["kind"] == "reminder")),
        "{v}"
    );
    let (_, v) = s
        .get(&format!("/api/v1/cases/{answered}/sla"), &w.dispatcher)
        .await?;
    assert!(
        v["response"]["running"] == false && v["response"]["stopped_at"].is_string(),
        "{v}"
    );
    assert!(v["resolution"]["running"] == true, "{v}");

    let h = wait_for_events(&s, &w.engineer.1, &silent, 6).await?;
    let events = sla_events(&h);
    // In due order; the 2 s reminder and the reassign point are due together,
    // so their order between themselves is not fixed.
    let mut names: Vec<&str> = events.iter().map(|(e, _, _)| e.as_str()).collect();
    names[1..3].sort();
    assert_eq!(
        names,
        [
            "response_reminder",
            "reassign_prompt",
            "response_reminder",
            "response_breached",
            "escalated",
            "escalated"
        ],
        "{events:?}"
    );
    assert_eq!((events[4].1, events[5].1), (Some(1), Some(2)));
    assert!(
        events.iter().all(|(_, _, late)| !late),
        "every deadline recorded within a second: {events:?}"
    );
    assert!(h.as_array().is_some_and(|a| a
        .iter()
        .filter(|e| e["kind"] == "sla_event")
        .all(|e| e["visibility"] == "internal" && e["author_name"] == "Outpost SLA")));

    // The answered case: no response deadlines, but escalation still runs.
    let h = wait_for_events(&s, &w.engineer.1, &answered, 2).await?;
    let names: Vec<String> = sla_events(&h).into_iter().map(|(e, _, _)| e).collect();
    assert_eq!(names, ["escalated", "escalated"]);

    // Customers do not see SLA internals.
    let (_, h) = s
        .get(&format!("/api/v1/cases/{silent}/activities"), &w.customer_a)
        .await?;
    assert!(sla_events(&h).is_empty());
    // Nothing fires twice, and the history chain holds.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, h) = s
        .get(&format!("/api/v1/cases/{silent}/activities"), &w.engineer.1)
        .await?;
    assert_eq!(sla_events(&h).len(), 6);
    // Missed deadlines are visible in the SLA report.
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (from, to) = (
        chrono::Utc::now() - chrono::Duration::minutes(5),
        chrono::Utc::now() + chrono::Duration::minutes(1),
    );
    let (st, r) = s
        .get(
            &format!("/api/v1/reports/sla?from={}&to={}", ts(from), ts(to)),
            &w.managers[0],
        )
        .await?;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["counts"],
        json!({ "response_reminder": 2, "reassign_prompt": 1, "response_breached": 1, "escalated_l1": 2, "escalated_l2": 2 })
    );
    assert_eq!(r["cases_breached"], 1);
    assert_eq!(r["items"].as_array().map(Vec::len), Some(8));
    let (st, _) = s
        .get(
            &format!("/api/v1/reports/sla?from={}&to={}", ts(from), ts(to)),
            &w.customer_a,
        )
        .await?;
    assert_eq!(st, 403);
    let (st, v) = s
        .get(
            &format!("/api/v1/reports/sla?from={}&to={}", ts(to), ts(from)),
            &w.dispatcher,
        )
        .await?;
    assert_eq!((st.as_u16(), v["field"].as_str()), (422, Some("to")), "{v}");
    let (_, r) = s
        .get(
            &format!(
                "/api/v1/reports/sla?from={}&to={}&organization_id={}",
                ts(from),
                ts(to),
                w.org_b
            ),
            &w.dispatcher,
        )
        .await?;
    assert_eq!(
        r["items"].as_array().map(Vec::len),
        Some(0),
        "no events for customer B"
    );
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn deadlines_are_recorded_sqlite() -> Result<()> {
    deadlines_are_recorded(Backend::Sqlite).await
}

#[tokio::test]
async fn deadlines_are_recorded_postgres() -> Result<()> {
    deadlines_are_recorded(Backend::Postgres).await
}

#[tokio::test]
async fn missed_deadlines_are_recorded_late_after_a_restart() -> Result<()> {
    let mut s = Server::start_with_config(Backend::Sqlite, Some(FAST)).await?;
    let w = World::build(&s).await?;
    let number = w
        .open_case(&s, false, "opened just before an outage")
        .await?;
    s.stop();
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (base, _replica) = s.start_replica()?;
    s.base = base;
    let h = wait_for_events(&s, &w.engineer.1, &number, 6).await?;
    let events = sla_events(&h);
    assert!(
        events.iter().all(|(_, _, late)| *late),
        "all missed while down: {events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_sla_config_names_the_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (text, needle) in [
        ("[sla]\ndefault_policy = \"nope\"\n", "sla.default_policy"),
        ("[sla]\ntimezone = \"Mars/Olympus\"\n", "sla.timezone"),
        ("[[sla.policies]]\nname = \"p\"\n[sla.policies.targets.P1]\nresponse = \"soon\"\n", "soon"),
        ("[[sla.policies]]\nname = \"p\"\n[sla.policies.targets.P1]\nreminders = [\"2m\", \"1m\"]\n", "sla.policies[0].targets.P1.reminders[1]"),
        ("[[sla.calendars]]\nname = \"c\"\ntimezone = \"UTC\"\n[sla.calendars.hours]\ntue = [\"13:00-12:00\"]\n", "sla.calendars[0]"),
    ] {
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, text)?;
        let out = std::process::Command::new(outpost_tests::bin("outpost-server"))
            .args(["migrate", "--config", &f.display().to_string(), "--data-dir", &dir.path().display().to_string()])
            .env_remove("OUTPOST_DATABASE_URL")
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{text:?}: {err}");
    }
    Ok(())
}

#[tokio::test]
async fn automatic_reassignment_goes_round_robin() -> Result<()> {
    let config = FAST.replace(
        "name = \"fast\"\n",
        "name = \"fast\"\nreassign = \"automatic\"\n",
    );
    let s = Server::start_with_config(Backend::Sqlite, Some(&config)).await?;
    let w = World::build(&s).await?;
    let (eng1, eng2) = (w.engineer.0, w.engineer2.0);
    let unassigned = w.open_case(&s, false, "nobody took it").await?;
    let with_eng1 = w.open_case(&s, false, "eng1 is silent").await?;
    let with_eng2 = w.open_case(&s, false, "eng2 is silent").await?;
    s.post_ok(
        &format!("/api/v1/cases/{with_eng1}/assign"),
        &w.dispatcher,
        json!({ "assignee_id": eng1 }),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/cases/{with_eng2}/assign"),
        &w.dispatcher,
        json!({ "assignee_id": eng2 }),
    )
    .await?;
    for (number, expected) in [(&unassigned, eng1), (&with_eng1, eng2), (&with_eng2, eng1)] {
        // The reassignment fires together with the second reminder: wait for it.
        let mut h = Value::Null;
        for _ in 0..100 {
            h = s
                .get(&format!("/api/v1/cases/{number}/activities"), &w.dispatcher)
                .await?
                .1;
            if sla_events(&h).iter().any(|(e, _, _)| e == "reassigned") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (_, case) = s
            .get(&format!("/api/v1/cases/{number}"), &w.dispatcher)
            .await?;
        assert_eq!(case["assignee"]["id"], expected, "{number}: {case}");
        assert_eq!(case["status"], "assigned");
        let entries = h.as_array().cloned().unwrap_or_default();
        let auto = entries
            .iter()
            .find(|e| e["kind"] == "assigned" && e["author_name"] == "Outpost SLA")
            .cloned()
            .unwrap_or_default();
        assert!(
            auto["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("respond at once"),
            "{number}: {auto} in {h}"
        );
        let events: Vec<String> = sla_events(&h).into_iter().map(|(e, _, _)| e).collect();
        assert!(
            events.contains(&"reassigned".to_string())
                && !events.contains(&"reassign_prompt".to_string()),
            "{events:?}"
        );
    }
    s.verify_intact()?;
    Ok(())
}

/// Policies and calendars through the API: admins create them, holidays come
/// from an .ics file, a contract names the policy, and replacing the policy
/// recomputes the deadlines of a case that is already open.
#[tokio::test]
async fn policies_and_calendars_through_the_api() -> Result<()> {
    let s = Server::start_with_config(Backend::Sqlite, Some(FAST)).await?;
    let w = World::build(&s).await?;
    let admin = w.admin.clone();
    // Calendars: create, import holidays, refuse bad input.
    let cal = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/sla/calendars/ops",
            &admin,
            Some(json!({ "timezone": "Europe/Berlin", "preset": "24x7" })),
        )
        .await?;
    assert_eq!(cal.0, 200, "{}", cal.1);
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/sla/calendars/bad",
            &admin,
            Some(json!({ "timezone": "Mars/Olympus", "preset": "24x7" })),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:1@test\r\nDTSTART;VALUE=DATE:20261225\r\nSUMMARY:Christmas\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:2@test\r\nDTSTART;VALUE=DATE:20261226\r\nSUMMARY:Boxing Day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let resp = s
        .http
        .post(format!("{}/api/v1/sla/calendars/ops/holidays", s.base))
        .bearer_auth(&admin)
        .header("content-type", "text/calendar")
        .body(ics)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await?;
    assert_eq!(v["added"], 2, "{v}");
    assert_eq!(
        v["calendar"]["calendar"]["holidays"],
        json!(["2026-12-25", "2026-12-26"])
    );
    let resp = s
        .http
        .post(format!("{}/api/v1/sla/calendars/ops/holidays", s.base))
        .bearer_auth(&admin)
        .header("content-type", "text/calendar")
        .body(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        )
        .send()
        .await?;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await?;
    assert_eq!(v["field"], "ics", "{v}");

    // Policies: admins only; errors name the key; config ones are read-only.
    let slow = json!({ "calendar": "ops", "targets": { "P2": { "response": "30m", "resolution": "off" } } });
    let (st, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/sla/policies/api-policy",
            &w.managers[0],
            Some(slow.clone()),
        )
        .await?;
    assert_eq!(st, 403);
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/sla/policies/api-policy",
            &admin,
            Some(json!({ "targets": { "P2": { "response": "soon" } } })),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["field"].as_str().is_some_and(|f| f.contains("response")),
        "{v}"
    );
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/sla/policies/fast",
            &admin,
            Some(slow.clone()),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/sla/policies/api-policy",
            &admin,
            Some(slow),
        )
        .await?;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["source"], "api");

    // A contract names it; a case opened on its device runs on it.
    let (_, contracts) = s
        .get(
            &format!("/api/v1/contracts?organization_id={}", w.org_a),
            &admin,
        )
        .await?;
    let contract = contracts[0]["id"].as_i64().context("contract id")?;
    let (st, v) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/contracts/{contract}"),
            &admin,
            Some(json!({ "sla_policy": "api-policy" })),
        )
        .await?;
    assert_eq!(st, 200, "{v}");
    let number = w.open_case(&s, false, "runs on the API policy").await?;
    let (_, clocks) = s
        .get(&format!("/api/v1/cases/{number}/sla"), &w.dispatcher)
        .await?;
    assert_eq!(clocks["policy"], "api-policy", "{clocks}");

    // Replacing the policy recomputes the open case's deadlines: an
    // escalation after 2 s of elapsed time fires on it.
    let fast = json!({ "calendar": "ops", "targets": { "P2": { "response": "30m", "resolution": "off",
        "escalation": [{ "after": "2s", "level": 1 }] } } });
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/sla/policies/api-policy",
            &admin,
            Some(fast),
        )
        .await?;
    assert_eq!(st, 200, "{v}");
    let h = wait_for_events(&s, &w.dispatcher, &number, 1).await?;
    assert_eq!(sla_events(&h)[0], ("escalated".to_string(), Some(1), false));

    // In use: not deleted. Listed for staff with their source.
    let (st, v) = s
        .call(
            reqwest::Method::DELETE,
            "/api/v1/sla/policies/api-policy",
            &admin,
            None,
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("K-A100")),
        "{v}"
    );
    let (st, v) = s
        .call(
            reqwest::Method::DELETE,
            "/api/v1/sla/calendars/ops",
            &admin,
            None,
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    let (_, list) = s.get("/api/v1/sla/policies", &w.engineer.1).await?;
    let sources: Vec<(String, String)> = list
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["policy"]["name"].as_str().unwrap_or_default().to_string(),
                p["source"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        sources.contains(&("fast".into(), "config".into())),
        "{sources:?}"
    );
    assert!(
        sources.contains(&("api-policy".into(), "api".into())),
        "{sources:?}"
    );
    let (st, _) = s.get("/api/v1/sla/policies", &w.customer_a).await?;
    assert_eq!(st, 403);
    s.verify_intact()?;
    Ok(())
}

/// A diagnosed case escalates no further; its other deadlines still fire.
#[tokio::test]
async fn diagnosis_stops_escalation() -> Result<()> {
    let s = Server::start_with_config(Backend::Sqlite, Some(FAST)).await?;
    let w = World::build(&s).await?;
    let number = w.open_case(&s, false, "cause found quickly").await?;
    let (st, v) = s
        .post(
            &format!("/api/v1/cases/{number}/diagnosis"),
            &w.customer_a,
            json!({ "summary": "x" }),
        )
        .await?;
    assert_eq!(st, 403, "{v}");
    let (st, v) = s
        .post(
            &format!("/api/v1/cases/{number}/diagnosis"),
            &w.engineer.1,
            json!({ "summary": " " }),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("summary")),
        "{v}"
    );
    s.post_ok(
        &format!("/api/v1/cases/{number}/diagnosis"),
        &w.engineer.1,
        json!({ "summary": "A failed line card" }),
    )
    .await?;
    let (st, _) = s
        .post(
            &format!("/api/v1/cases/{number}/diagnosis"),
            &w.engineer.1,
            json!({ "summary": "again" }),
        )
        .await?;
    assert_eq!(st, 409);
    // Reminders (1 s, 2 s), reassign prompt (2 s) and the response breach
    // (3 s) still come; escalations (4 s, 5 s) do not.
    let h = wait_for_events(&s, &w.dispatcher, &number, 4).await?;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, h2) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.dispatcher)
        .await?;
    let names: Vec<String> = sla_events(&h2).into_iter().map(|(e, _, _)| e).collect();
    assert!(!names.iter().any(|n| n == "escalated"), "{names:?}");
    assert_eq!(
        sla_events(&h).len(),
        names.len(),
        "nothing after the breach: {names:?}"
    );
    let (_, clocks) = s
        .get(&format!("/api/v1/cases/{number}/sla"), &w.dispatcher)
        .await?;
    assert!(
        clocks["clocks"]["diagnosed_at"].is_string() || clocks["diagnosed_at"].is_string(),
        "{clocks}"
    );
    Ok(())
}
