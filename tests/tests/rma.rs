//! Spare parts and RMA over HTTP on both backends: a fault case's spare from
//! request to repaired and closed, with the case history showing each step;
//! bad input; and stock that never goes negative under 100 concurrent
//! approvals.

use anyhow::{ensure, Context, Result};
use outpost_tests::{Backend, Server, World};
use serde_json::{json, Value};

/// A part fitting the world's devices (model X1), a warehouse, and stock.
async fn catalogue(s: &Server, w: &World, part: &str, on_hand: i64) -> Result<i64> {
    s.post_ok(
        "/api/v1/parts",
        &w.rma,
        json!({ "part_number": part, "vendor": "Cisco", "model": "PSU-1100",
                "description": "power supply", "compatible_models": ["X1"] }),
    )
    .await?;
    let wh = s
        .post_ok(
            "/api/v1/warehouses",
            &w.rma,
            json!({ "name": format!("Hamburg {part}"), "address": "Hafenstr. 1, Hamburg" }),
        )
        .await?;
    let wid = wh["id"].as_i64().context("warehouse id")?;
    s.post_ok(
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": part, "warehouse_id": wid, "delta": on_hand }),
    )
    .await?;
    Ok(wid)
}

async fn stock(s: &Server, w: &World, part: &str) -> Result<(i64, i64)> {
    let (st, v) = s
        .get(&format!("/api/v1/stock?part_number={part}"), &w.rma)
        .await?;
    ensure!(st == 200, "stock: {st} {v}");
    let row = &v[0];
    Ok((
        row["on_hand"].as_i64().context("on_hand")?,
        row["reserved"].as_i64().context("reserved")?,
    ))
}

async fn step(s: &Server, token: &str, id: i64, step: &str, body: Value) -> Result<Value> {
    s.post_ok(&format!("/api/v1/shipments/{id}/{step}"), token, body)
        .await
}

async fn lifecycle(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let wid = catalogue(&s, &w, "PSU-1100-AC", 3).await?;
    let number = w.open_case(&s, false, "power supply failed").await?;
    let sh = s
        .post_ok(
            &format!("/api/v1/cases/{number}/shipments"),
            &w.engineer.1,
            json!({ "part_number": "PSU-1100-AC", "warehouse_id": wid, "quantity": 1,
                    "reason": "PSU 2 dead" }),
        )
        .await?;
    assert_eq!(sh["state"], "requested");
    assert!(sh["ship_by"].is_string(), "{sh}");
    let id = sh["id"].as_i64().context("shipment id")?;

    // A tracking number on an unapproved shipment: 409 naming the state.
    let (st, v) = s
        .post(
            &format!("/api/v1/shipments/{id}/ship"),
            &w.rma,
            json!({ "carrier": "DHL", "tracking_number": "JD0001" }),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    assert!(v.to_string().contains("requested"), "{v}");
    // Engineers may request, not approve.
    let (st, _) = s
        .post(
            &format!("/api/v1/shipments/{id}/approve"),
            &w.engineer.1,
            json!({}),
        )
        .await?;
    assert_eq!(st, 403);

    let v = step(&s, &w.rma, id, "approve", json!({})).await?;
    assert_eq!(v["state"], "approved");
    assert_eq!(stock(&s, &w, "PSU-1100-AC").await?, (3, 1));
    // Shipping needs picking first.
    let (st, v) = s
        .post(
            &format!("/api/v1/shipments/{id}/ship"),
            &w.rma,
            json!({ "carrier": "DHL", "tracking_number": "JD0001" }),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    assert!(v.to_string().contains("approved"), "{v}");
    step(&s, &w.rma, id, "pick", json!({})).await?;
    // Ship without a tracking number: 422 naming it.
    let (st, v) = s
        .post(
            &format!("/api/v1/shipments/{id}/ship"),
            &w.rma,
            json!({ "carrier": "DHL" }),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    assert!(v.to_string().contains("tracking_number"), "{v}");
    let v = step(
        &s,
        &w.rma,
        id,
        "ship",
        json!({ "carrier": "DHL", "tracking_number": "JD0001", "spare_serial": "SPARE-1" }),
    )
    .await?;
    assert_eq!(v["state"], "shipped");
    assert_eq!(v["tracking_number"], "JD0001");
    assert_eq!(stock(&s, &w, "PSU-1100-AC").await?, (2, 0));
    // Cancelling a shipped spare is illegal.
    let (st, v) = s
        .post(
            &format!("/api/v1/shipments/{id}/cancel"),
            &w.rma,
            json!({ "reason": "changed my mind" }),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "illegal_transition", "{v}");
    let v = step(&s, &w.rma, id, "deliver", json!({})).await?;
    assert_eq!(v["state"], "delivered");
    assert!(v["return_due"].is_string(), "{v}");
    // A return dated before the delivery: 422 naming `at`.
    let (st, v) = s
        .post(
            &format!("/api/v1/shipments/{id}/return"),
            &w.rma,
            json!({ "at": "2001-01-01T00:00:00Z" }),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["field"], "at", "{v}");
    step(
        &s,
        &w.rma,
        id,
        "return",
        json!({ "faulty_serial": "BAD-1" }),
    )
    .await?;
    let v = step(&s, &w.rma, id, "receive", json!({})).await?;
    assert!(v["repair_due"].is_string(), "{v}");
    step(&s, &w.rma, id, "repair", json!({})).await?;
    let v = step(&s, &w.rma, id, "close", json!({})).await?;
    assert_eq!(v["state"], "closed");
    assert_eq!(v["outcome"], "repaired");
    // Closed is final.
    let (st, _) = s
        .post(&format!("/api/v1/shipments/{id}/repair"), &w.rma, json!({}))
        .await?;
    assert_eq!(st, 409);

    // The case history shows each step.
    let (st, acts) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.admin)
        .await?;
    assert_eq!(st, 200);
    let items = acts
        .as_array()
        .or_else(|| acts["items"].as_array())
        .context("activities")?;
    let states: Vec<&str> = items
        .iter()
        .filter(|a| a["kind"] == "shipment")
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "requested",
            "approved",
            "picked",
            "shipped",
            "delivered",
            "returned",
            "received",
            "repaired",
            "closed"
        ],
        "{acts}"
    );
    // The customer sees the public steps only (not approval or picking).
    let (_, acts) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.customer_a)
        .await?;
    let text = acts.to_string();
    assert!(
        text.contains("JD0001") && !text.contains("\"approved\""),
        "{acts}"
    );
    let (st, list) = s
        .get(&format!("/api/v1/shipments?case={number}"), &w.dispatcher)
        .await?;
    assert_eq!(st, 200);
    assert_eq!(list.as_array().map(|a| a.len()), Some(1));
    let (st, list) = s.get("/api/v1/shipments?overdue=true", &w.rma).await?;
    assert_eq!(st, 200);
    assert_eq!(list.as_array().map(|a| a.len()), Some(0), "{list}");
    Ok(())
}

async fn bad_input(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let wid = catalogue(&s, &w, "FAN-7", 1).await?;
    let number = w.open_case(&s, false, "fan noise").await?;
    let path = format!("/api/v1/cases/{number}/shipments");
    let (st, v) = s
        .post(
            &path,
            &w.engineer.1,
            json!({ "part_number": "NOPE-1", "warehouse_id": wid, "quantity": 1 }),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["field"], "part_number", "{v}");
    for q in [0, -3] {
        let (st, v) = s
            .post(
                &path,
                &w.engineer.1,
                json!({ "part_number": "FAN-7", "warehouse_id": wid, "quantity": q }),
            )
            .await?;
        assert_eq!(st, 422, "{v}");
        assert_eq!(v["field"], "quantity", "{v}");
    }
    let (st, v) = s
        .post(
            &path,
            &w.engineer.1,
            json!({ "part_number": "FAN-7", "warehouse_id": wid, "quantity": 1,
                    "confirmed_at": "2999-01-01T00:00:00Z" }),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["field"], "confirmed_at", "{v}");
    // A part for another model.
    s.post_ok(
        "/api/v1/parts",
        &w.rma,
        json!({ "part_number": "LC-9", "vendor": "Huawei", "model": "LC", "compatible_models": ["S9300"] }),
    )
    .await?;
    let (st, v) = s
        .post(
            &path,
            &w.engineer.1,
            json!({ "part_number": "LC-9", "warehouse_id": wid, "quantity": 1 }),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    assert!(v.to_string().contains("S9300"), "{v}");
    // Negative stock adjustment beyond what is there.
    let (st, v) = s
        .post(
            "/api/v1/stock",
            &w.rma,
            json!({ "part_number": "FAN-7", "warehouse_id": wid, "delta": -2 }),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    // Unknown step; a duplicate part number.
    let sh = s
        .post_ok(
            &path,
            &w.engineer.1,
            json!({ "part_number": "FAN-7", "warehouse_id": wid, "quantity": 1 }),
        )
        .await?;
    let id = sh["id"].as_i64().context("id")?;
    let (st, v) = s
        .post(
            &format!("/api/v1/shipments/{id}/teleport"),
            &w.rma,
            json!({}),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    let (st, _) = s
        .post(
            "/api/v1/parts",
            &w.rma,
            json!({ "part_number": "FAN-7", "vendor": "x", "model": "y" }),
        )
        .await?;
    assert_eq!(st, 409);
    // Refusing needs a reason; out of stock names part and warehouse.
    let (st, v) = s
        .post(&format!("/api/v1/shipments/{id}/refuse"), &w.rma, json!({}))
        .await?;
    assert_eq!(st, 422, "{v}");
    let sh2 = s
        .post_ok(
            &path,
            &w.engineer.1,
            json!({ "part_number": "FAN-7", "warehouse_id": wid, "quantity": 1 }),
        )
        .await?;
    let id2 = sh2["id"].as_i64().context("id")?;
    step(&s, &w.rma, id, "approve", json!({})).await?;
    let (st, v) = s
        .post(
            &format!("/api/v1/shipments/{id2}/approve"),
            &w.rma,
            json!({}),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    let msg = v.to_string();
    assert!(
        msg.contains("out of stock") && msg.contains("FAN-7") && msg.contains("Hamburg FAN-7"),
        "{v}"
    );
    // Cancelling releases the reservation.
    step(
        &s,
        &w.rma,
        id,
        "cancel",
        json!({ "reason": "fixed by reboot" }),
    )
    .await?;
    assert_eq!(stock(&s, &w, "FAN-7").await?, (1, 0));
    // Customers see no shipments list.
    assert_eq!(s.get("/api/v1/shipments", &w.customer_a).await?.0, 403);
    Ok(())
}

async fn concurrent_approvals(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let wid = catalogue(&s, &w, "SFP-10G", 10).await?;
    let number = w.open_case(&s, false, "optics").await?;
    let mut ids = Vec::new();
    for _ in 0..100 {
        let v = s
            .post_ok(
                &format!("/api/v1/cases/{number}/shipments"),
                &w.engineer.1,
                json!({ "part_number": "SFP-10G", "warehouse_id": wid, "quantity": 1 }),
            )
            .await?;
        ids.push(v["id"].as_i64().context("id")?);
    }
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let http = s.http.clone();
        let url = format!("{}/api/v1/shipments/{id}/approve", s.base);
        let token = w.rma.clone();
        set.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await?;
            let st = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            anyhow::Ok((st, v))
        });
    }
    let results = set.join_all().await;
    let mut ok = 0;
    let mut conflict = 0;
    for r in results {
        let (st, v) = r?;
        match st.as_u16() {
            200 => ok += 1,
            409 => {
                assert!(v.to_string().contains("out of stock"), "{v}");
                conflict += 1
            }
            other => panic!("approve -> {other}: {v}"),
        }
    }
    assert_eq!((ok, conflict), (10, 90));
    assert_eq!(stock(&s, &w, "SFP-10G").await?, (10, 10));
    Ok(())
}

#[tokio::test]
async fn spare_from_request_to_repair_sqlite() -> Result<()> {
    lifecycle(Backend::Sqlite).await
}

#[tokio::test]
async fn spare_from_request_to_repair_postgres() -> Result<()> {
    lifecycle(Backend::Postgres).await
}

#[tokio::test]
async fn bad_input_is_refused_sqlite() -> Result<()> {
    bad_input(Backend::Sqlite).await
}

#[tokio::test]
async fn bad_input_is_refused_postgres() -> Result<()> {
    bad_input(Backend::Postgres).await
}

#[tokio::test]
async fn stock_never_negative_under_100_approvals_sqlite() -> Result<()> {
    concurrent_approvals(Backend::Sqlite).await
}

#[tokio::test]
async fn stock_never_negative_under_100_approvals_postgres() -> Result<()> {
    concurrent_approvals(Backend::Postgres).await
}
