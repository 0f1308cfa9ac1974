//! Bad input gets a 4xx with a message (and field) a person can act on, and
//! loses or corrupts nothing.

use anyhow::Result;
use outpost_tests::{Backend, Server, World};
use reqwest::Method;
use serde_json::{json, Value};

fn valid_case(w: &World) -> Value {
    json!({ "caller": { "name": "Jane", "phone": "+49 40 1234567" }, "summary": "Switch down", "priority": "P1", "device_id": w.device_a })
}

fn with(mut v: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut v;
    for (i, p) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cur[*p] = value.clone();
        } else {
            cur = &mut cur[*p];
        }
    }
    v
}

fn without(mut v: Value, key: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
    v
}

#[tokio::test]
async fn bad_bodies_name_the_field() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let base = valid_case(&w);
    // (description, body, status, code, field)
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "priority wrong type",
            with(base.clone(), &["priority"], json!(5)),
            422,
            "invalid_field",
            Some("priority"),
        ),
        (
            "unknown priority",
            with(base.clone(), &["priority"], json!("P9")),
            422,
            "invalid_field",
            Some("priority"),
        ),
        (
            "unknown case type",
            with(base.clone(), &["case_type"], json!("bogus")),
            422,
            "invalid_field",
            Some("case_type"),
        ),
        (
            "unknown channel",
            with(base.clone(), &["channel"], json!("pigeon")),
            422,
            "invalid_field",
            Some("channel"),
        ),
        (
            "caller name wrong type",
            with(base.clone(), &["caller", "name"], json!(42)),
            422,
            "invalid_field",
            Some("caller.name"),
        ),
        (
            "caller missing name",
            with(base.clone(), &["caller"], json!({ "phone": "123456" })),
            422,
            "invalid_field",
            Some("caller.name"),
        ),
        (
            "missing summary",
            without(base.clone(), "summary"),
            422,
            "invalid_field",
            Some("summary"),
        ),
        (
            "unknown field",
            with(base.clone(), &["sumary"], json!("typo")),
            422,
            "invalid_field",
            Some("sumary"),
        ),
        (
            "empty summary",
            with(base.clone(), &["summary"], json!("   ")),
            422,
            "invalid_field",
            Some("summary"),
        ),
        (
            "over-long summary",
            with(base.clone(), &["summary"], json!("x".repeat(201))),
            422,
            "invalid_field",
            Some("summary"),
        ),
        (
            "over-long details",
            with(base.clone(), &["details"], json!("x".repeat(20_001))),
            422,
            "invalid_field",
            Some("details"),
        ),
        (
            "over-long caller name",
            with(base.clone(), &["caller", "name"], json!("x".repeat(201))),
            422,
            "invalid_field",
            Some("caller.name"),
        ),
        (
            "bad e-mail",
            with(base.clone(), &["caller", "email"], json!("not-an-address")),
            422,
            "invalid_field",
            Some("caller.email"),
        ),
        (
            "bad phone",
            with(base.clone(), &["caller", "phone"], json!("call me maybe")),
            422,
            "invalid_field",
            Some("caller.phone"),
        ),
        (
            "control characters",
            with(base.clone(), &["summary"], json!("bad\u{0007}bell")),
            422,
            "invalid_field",
            Some("summary"),
        ),
        (
            "unknown device",
            with(base.clone(), &["device_id"], json!(999_999)),
            422,
            "invalid_field",
            Some("device_id"),
        ),
        (
            "device id wrong type",
            with(base.clone(), &["device_id"], json!("one")),
            422,
            "invalid_field",
            Some("device_id"),
        ),
        (
            "unknown contract",
            with(base.clone(), &["contract"], json!("NOPE-1")),
            422,
            "invalid_field",
            Some("contract"),
        ),
        (
            "body is an array",
            json!([1, 2]),
            422,
            "invalid_field",
            None,
        ),
    ];
    for (what, body, status, code, field) in cases {
        let (st, v) = s.post("/api/v1/cases", &w.dispatcher, body).await?;
        assert_eq!(st.as_u16(), status, "{what}: {v}");
        assert_eq!(v["code"], code, "{what}: {v}");
        if let Some(f) = field {
            assert_eq!(v["field"], f, "{what}: {v}");
            assert!(
                v["message"].as_str().unwrap_or_default().contains(f),
                "{what}: message names the field: {v}"
            );
        }
    }
    // Status and other requests.
    let n = w.open_case(&s, false, "target").await?;
    for (path, body, field) in [
        (
            format!("/api/v1/cases/{n}/status"),
            json!({ "status": "open" }),
            "status",
        ),
        (
            format!("/api/v1/cases/{n}/status"),
            json!({ "status": "resolved" }),
            "reason",
        ),
        (
            format!("/api/v1/cases/{n}/priority"),
            json!({ "priority": "P1" }),
            "reason",
        ),
        (
            format!("/api/v1/cases/{n}/notes"),
            json!({ "text": "" }),
            "text",
        ),
        (
            format!("/api/v1/cases/{n}/notes"),
            json!({ "text": "x", "visibility": "secret" }),
            "visibility",
        ),
        (
            format!("/api/v1/cases/{n}/calls"),
            json!({ "direction": "sideways", "party": "p", "summary": "s" }),
            "direction",
        ),
        (
            format!("/api/v1/cases/{n}/calls"),
            json!({ "direction": "inbound", "party": "p", "summary": "s", "duration_secs": -5 }),
            "duration_secs",
        ),
        (
            format!("/api/v1/cases/{n}/field-visits"),
            json!({ "engineer": "e", "arrived_at": "yesterday", "work_done": "w" }),
            "arrived_at",
        ),
        (
            format!("/api/v1/cases/{n}/field-visits"),
            json!({ "engineer": "e", "arrived_at": "2026-01-02T10:00:00Z", "left_at": "2026-01-02T09:00:00Z", "work_done": "w" }),
            "left_at",
        ),
        (
            "/api/v1/contracts".to_string(),
            json!({ "organization_id": w.org_a, "number": "K9", "starts_on": "2026-02-30", "ends_on": "2026-12-31", "coverage": "5x8" }),
            "starts_on",
        ),
        (
            "/api/v1/contracts".to_string(),
            json!({ "organization_id": w.org_a, "number": "K9", "starts_on": "2026-02-01", "ends_on": "2026-12-31", "coverage": "9x9" }),
            "coverage",
        ),
        (
            "/api/v1/contracts".to_string(),
            json!({ "organization_id": w.org_a, "number": "K9", "starts_on": "2026-02-01", "ends_on": "2026-12-31", "coverage": "5x8", "device_ids": [w.device_b] }),
            "device_ids",
        ),
        (
            "/api/v1/devices".to_string(),
            json!({ "organization_id": w.org_a, "name": "d1", "device_type": "toaster", "vendor": "v", "model": "m", "serial": "s" }),
            "device_type",
        ),
        (
            "/api/v1/devices".to_string(),
            json!({ "organization_id": w.org_a, "name": "d1", "device_type": "switch", "vendor": "v", "model": "m", "serial": "has space" }),
            "serial",
        ),
        (
            "/api/v1/users".to_string(),
            json!({ "username": "m", "display_name": "M", "role": "manager", "manager_level": 7 }),
            "manager_level",
        ),
        (
            "/api/v1/users".to_string(),
            json!({ "username": "m", "display_name": "M", "role": "overlord" }),
            "role",
        ),
        (
            "/api/v1/users/1/ssh-keys".to_string(),
            json!({ "public_key": "ssh-dss AAAAB3NzaC1kc3MAAACBAP" }),
            "public_key",
        ),
    ] {
        let (st, v) = s.post(&path, &w.admin, body).await?;
        assert_eq!(
            st.as_u16(),
            if field == "status" && v["code"] == "illegal_transition" {
                409
            } else {
                422
            },
            "{path} {field}: {v}"
        );
        assert_eq!(v["field"], field, "{path}: {v}");
    }
    // Duplicates are conflicts, not server errors.
    let (st, v) = s
        .post(
            "/api/v1/organizations",
            &w.admin,
            json!({ "customer_code": "A100", "name": "dup" }),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap_or_default()
        .contains("customer_code"));
    Ok(())
}

#[tokio::test]
async fn malformed_requests_are_refused_cleanly() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let t = Some(w.dispatcher.as_str());
    let json_ct = "application/json";
    let (st, v) = s
        .raw(
            Method::POST,
            "/api/v1/cases",
            t,
            Some((json_ct, "{\"caller\": {\"name\": \"x\"")),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (400, Some("malformed_json")),
        "{v}"
    );
    let (st, v) = s
        .raw(
            Method::POST,
            "/api/v1/cases",
            t,
            Some((json_ct, "not json at all")),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (400, Some("malformed_json")),
        "{v}"
    );
    let (st, v) = s
        .raw(Method::POST, "/api/v1/cases", t, Some((json_ct, "")))
        .await?;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .raw(Method::POST, "/api/v1/cases", t, Some(("text/plain", "{}")))
        .await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{v}"
    );
    // A body over the 1 MiB limit is refused from its Content-Length, before
    // it is read (raw TCP: announce 2 MiB, send none of it, read the answer).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = s.base.trim_start_matches("http://").to_string();
        let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
        let head = format!(
            "POST /api/v1/cases HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n",
            w.dispatcher
        );
        tcp.write_all(head.as_bytes()).await?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }
    // Authentication.
    let (st, v) = s.raw(Method::GET, "/api/v1/cases", None, None).await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let (st, _) = s
        .raw(Method::GET, "/api/v1/cases", Some("opt_forged"), None)
        .await?;
    assert_eq!(st, 401);
    // Query strings and paths.
    for (q, field) in [
        ("limit=abc", Some("limit")),
        ("limit=0", Some("limit")),
        ("bogus=1", Some("bogus")),
        ("status=opened", Some("status")),
        ("created_from=monday", Some("created_from")),
        ("cursor=xyz", Some("cursor")),
    ] {
        let (st, v) = s.get(&format!("/api/v1/cases?{q}"), &w.dispatcher).await?;
        assert!(st == 400 || st == 422, "{q}: {st} {v}");
        if let Some(f) = field {
            assert!(
                v["message"].as_str().unwrap_or_default().contains(f) || v["field"] == f,
                "{q}: {v}"
            );
        }
    }
    let (st, v) = s.get("/api/v1/devices/abc", &w.dispatcher).await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (400, Some("invalid_path")),
        "{v}"
    );
    let (st, v) = s.get("/api/v1/cases/C-1999-999999", &w.dispatcher).await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let (st, v) = s.get("/api/v1/nowhere", &w.dispatcher).await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let (st, _) = s
        .call(Method::PUT, "/api/v1/cases", &w.dispatcher, None)
        .await?;
    assert_eq!(st, 405);

    // Nothing was created or corrupted by any of it.
    let (_, page) = s.get("/api/v1/cases", &w.dispatcher).await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));
    s.verify_intact()?;
    Ok(())
}
