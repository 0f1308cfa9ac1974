//! `POST /api/v1/calls`: an incoming call from a phone system or IVR is
//! recorded and answered with the matching dossier; bad numbers are named.

use anyhow::Result;
use outpost_tests::{Backend, Server, World};
use serde_json::{json, Value};

async fn call(s: &Server, token: &str, body: Value) -> Result<(u16, Value)> {
    let (st, v) = s.post("/api/v1/calls", token, body).await?;
    Ok((st.as_u16(), v))
}

#[tokio::test]
async fn incoming_calls_are_recorded_and_answered_with_the_dossier() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let (_, org) = s
        .get(&format!("/api/v1/organizations/{}", w.org_a), &w.dispatcher)
        .await?;
    let phone = org["organization"]["phone"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!phone.is_empty(), "{org}");

    // A known number: one match, and its dossier for the caller pop-up.
    let (st, v) = call(&s, &w.dispatcher, json!({ "caller": phone })).await?;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["matches"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["dossier"]["organization"]["id"], json!(w.org_a), "{v}");
    assert!(v["dossier"]["devices"].is_array(), "{v}");
    let first = v["call_id"].as_i64().unwrap_or_default();
    assert!(first > 0);

    // An unknown number is recorded too, with no dossier.
    let (st, v) = call(&s, &w.dispatcher, json!({ "caller": "+1 (555) 010-0199" })).await?;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["matches"], json!([]), "{v}");
    assert!(v["dossier"].is_null(), "{v}");
    assert_eq!(v["call_id"].as_i64(), Some(first + 1));

    // Bad input, each naming the field and what is wrong.
    for (body, expect) in [
        (
            json!({ "caller": "call me maybe" }),
            "is not part of a phone number",
        ),
        (json!({ "caller": "12" }), "at least 3 digits"),
        (json!({ "caller": "1".repeat(41) }), "longer than 40"),
        (json!({ "caller": 4940 }), "caller"),
        (json!({}), "caller"),
        (json!({ "caller": "+49 40 1", "callee": "x" }), "callee"),
    ] {
        let (st, v) = call(&s, &w.dispatcher, body.clone()).await?;
        assert!(st == 422 || st == 400, "{body}: {st} {v}");
        assert!(v.to_string().contains(expect), "{body}: {v}");
    }
    // Customers do not take calls.
    let (st, _) = call(&s, &w.customer_a, json!({ "caller": phone })).await?;
    assert_eq!(st, 403);
    Ok(())
}
