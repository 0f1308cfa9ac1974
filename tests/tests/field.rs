//! Field service over HTTP on both backends: a visit scheduled on a case at
//! the device's site, checked in (meeting the contract's on-site promise),
//! checked out with a part taken from stock by serial (the stock ledger and
//! the unit show it) and the repair done, signed off by the customer, with
//! the case history showing each step; preventive inspection schedules, the
//! due and overdue list, an inspection whose finding opens a follow-up
//! case; and bad input of each kind refused with a 4xx naming the field.

use anyhow::{ensure, Context, Result};
use chrono::{DateTime, Duration, Utc};
use outpost_tests::{Backend, Server, World};
use reqwest::Method;
use serde_json::{json, Value};

fn time(v: &Value) -> Result<DateTime<Utc>> {
    Ok(v.as_str().context("not a time")?.parse()?)
}

/// The world's contract for customer A, its id.
async fn contract_a(s: &Server, w: &World) -> Result<i64> {
    let (st, v) = s.get("/api/v1/contracts", &w.admin).await?;
    ensure!(st == 200, "contracts: {st} {v}");
    v.as_array()
        .context("contracts")?
        .iter()
        .find(|c| c["number"] == "K-A100")
        .and_then(|c| c["id"].as_i64())
        .context("contract K-A100")
}

/// Customer A's device placed at a site with an address; the site's id.
async fn site_a(s: &Server, w: &World) -> Result<i64> {
    let site = s
        .post_ok(
            "/api/v1/sites",
            &w.admin,
            json!({ "organization_id": w.org_a, "name": "Hamburg DC",
                    "address": "Hafenstr. 1, 20457 Hamburg" }),
        )
        .await?;
    let sid = site["id"].as_i64().context("site id")?;
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/devices/{}", w.device_a),
            &w.admin,
            Some(json!({ "site_id": sid })),
        )
        .await?;
    ensure!(st == 200, "device patch: {st} {v}");
    Ok(sid)
}

async fn expect_4xx(
    s: &Server,
    path: &str,
    token: &str,
    body: Value,
    status: u16,
    field: &str,
) -> Result<()> {
    let (st, v) = s.post(path, token, body.clone()).await?;
    ensure!(
        st.as_u16() == status,
        "POST {path} {body} -> {st} {v}, expected {status}"
    );
    ensure!(
        v.to_string().contains(field),
        "POST {path} {body}: the error names {field:?}: {v}"
    );
    Ok(())
}

async fn visit_lifecycle(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let kid = contract_a(&s, &w).await?;
    // The contract's promises.
    let (st, k) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/contracts/{kid}"),
            &w.admin,
            Some(json!({ "onsite_within": "12h", "repair_within": "48h" })),
        )
        .await?;
    ensure!(st == 200, "contract patch: {st} {k}");
    assert_eq!(k["onsite_within"], "12h");
    assert_eq!(k["repair_within"], "2days");
    expect_4xx(
        &s,
        "/api/v1/contracts",
        &w.admin,
        json!({ "organization_id": w.org_a, "number": "K-BAD", "starts_on": "2020-01-01",
                "ends_on": "2099-12-31", "coverage": "24x7", "onsite_within": "12 parsecs" }),
        422,
        "onsite_within",
    )
    .await?;
    site_a(&s, &w).await?;
    // A part with two serialised units in stock.
    s.post_ok(
        "/api/v1/parts",
        &w.rma,
        json!({ "part_number": "PSU-9", "vendor": "Cisco", "model": "PSU", "compatible_models": ["X1"] }),
    )
    .await?;
    let wh = s
        .post_ok(
            "/api/v1/warehouses",
            &w.rma,
            json!({ "name": "Van 7", "address": "on the road" }),
        )
        .await?;
    let wid = wh["id"].as_i64().context("warehouse id")?;
    expect_4xx(
        &s,
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "PSU-9", "warehouse_id": wid, "delta": 2, "serials": ["S1"] }),
        422,
        "serials",
    )
    .await?;
    s.post_ok(
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "PSU-9", "warehouse_id": wid, "delta": 2, "serials": ["S1", "S2"] }),
    )
    .await?;

    let number = w
        .open_case(&s, false, "switch down, needs a technician")
        .await?;
    let (_, case) = s
        .get(&format!("/api/v1/cases/{number}"), &w.dispatcher)
        .await?;
    let opened = time(&case["created_at"])?;
    let visits = format!("/api/v1/cases/{number}/visits");
    // Bad scheduling: unknown engineer, a dispatcher as engineer, a time
    // before the case opened, unknown fields.
    let when = Utc::now() + Duration::hours(2);
    expect_4xx(
        &s,
        &visits,
        &w.dispatcher,
        json!({ "engineer_id": 999_999, "scheduled_at": when }),
        422,
        "engineer_id",
    )
    .await?;
    let (disp_id, _) = s.user("disp2", "dispatcher", None, None).await?;
    expect_4xx(
        &s,
        &visits,
        &w.dispatcher,
        json!({ "engineer_id": disp_id, "scheduled_at": when }),
        422,
        "engineer_id",
    )
    .await?;
    expect_4xx(
        &s,
        &visits,
        &w.dispatcher,
        json!({ "engineer_id": w.engineer.0, "scheduled_at": opened - Duration::hours(1) }),
        422,
        "scheduled_at",
    )
    .await?;
    expect_4xx(
        &s,
        &visits,
        &w.dispatcher,
        json!({ "engineer_id": w.engineer.0, "scheduled_at": when, "colour": "red" }),
        422,
        "colour",
    )
    .await?;
    let v = s
        .post_ok(
            &visits,
            &w.dispatcher,
            json!({ "engineer_id": w.engineer.0, "scheduled_at": when, "notes": "bring a PSU" }),
        )
        .await?;
    let id = v["id"].as_i64().context("visit id")?;
    assert_eq!(v["state"], "scheduled");
    assert_eq!(v["address"], "Hafenstr. 1, 20457 Hamburg", "from the site");
    // The promises started, counted from the opening (24x7 contract).
    let (st, cv) = s.get(&visits, &w.customer_a).await?;
    ensure!(st == 200, "the customer reads the visits: {st} {cv}");
    assert_eq!(
        time(&cv["promises"]["onsite"]["due_at"])?,
        opened + Duration::hours(12)
    );
    assert_eq!(
        time(&cv["promises"]["repair"]["due_at"])?,
        opened + Duration::hours(48)
    );
    assert!(cv["promises"]["onsite"]["met_at"].is_null());

    let step = |st: &str| format!("/api/v1/visits/{id}/{st}");
    // Out of order: check-out or sign-off before check-in.
    expect_4xx(
        &s,
        &step("check-out"),
        &w.engineer.1,
        json!({ "work_done": "x" }),
        409,
        "check in first",
    )
    .await?;
    expect_4xx(
        &s,
        &step("sign-off"),
        &w.engineer.1,
        json!({ "name": "Paul" }),
        409,
        "check in first",
    )
    .await?;
    expect_4xx(&s, &step("teleport"), &w.engineer.1, json!({}), 422, "step").await?;
    expect_4xx(
        &s,
        &step("check-in"),
        &w.engineer.1,
        json!({ "at": Utc::now() + Duration::hours(3) }),
        422,
        "at",
    )
    .await?;
    expect_4xx(
        &s,
        &step("check-in"),
        &w.engineer.1,
        json!({ "work_done": "early" }),
        422,
        "work_done",
    )
    .await?;
    let v = s
        .post_ok(&step("check-in"), &w.engineer.1, json!({}))
        .await?;
    assert_eq!(v["state"], "checked_in");
    let checked_in = time(&v["checked_in_at"])?;
    let (_, cv) = s.get(&visits, &w.engineer.1).await?;
    assert_eq!(time(&cv["promises"]["onsite"]["met_at"])?, checked_in);
    // Bad check-outs: before the check-in, no work done, negative and
    // unknown parts, more than in stock.
    let out = |extra: Value| {
        let mut b = json!({ "work_done": "Replaced the power supply", "repaired": true });
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        b
    };
    expect_4xx(
        &s,
        &step("check-out"),
        &w.engineer.1,
        out(json!({ "at": checked_in - Duration::minutes(5) })),
        422,
        "before the check-in",
    )
    .await?;
    expect_4xx(
        &s,
        &step("check-out"),
        &w.engineer.1,
        json!({ "repaired": true }),
        422,
        "work_done",
    )
    .await?;
    expect_4xx(
        &s,
        &step("check-out"),
        &w.engineer.1,
        out(json!({ "parts_used": [{ "part_number": "PSU-9", "warehouse_id": wid, "quantity": -1 }] })),
        422,
        "parts_used[0].quantity",
    )
    .await?;
    expect_4xx(
        &s,
        &step("check-out"),
        &w.engineer.1,
        out(json!({ "parts_used": [{ "part_number": "NOPE", "warehouse_id": wid, "quantity": 1 }] })),
        422,
        "parts_used[0].part_number",
    )
    .await?;
    expect_4xx(
        &s,
        &step("check-out"),
        &w.engineer.1,
        out(json!({ "parts_used": [{ "part_number": "PSU-9", "warehouse_id": wid, "quantity": 5 }] })),
        409,
        "parts_used",
    )
    .await?;
    // Nothing of the refused check-outs was written.
    let (_, stock) = s.get("/api/v1/stock?part_number=PSU-9", &w.rma).await?;
    assert_eq!(stock[0]["on_hand"], 2);
    let v = s
        .post_ok(
            &step("check-out"),
            &w.engineer.1,
            out(json!({ "parts_used": [{ "part_number": "PSU-9", "warehouse_id": wid, "quantity": 1, "serial": "S2" }] })),
        )
        .await?;
    assert_eq!(v["state"], "checked_out");
    assert_eq!(v["parts_used"][0]["serial"], "S2");
    let (_, stock) = s.get("/api/v1/stock?part_number=PSU-9", &w.rma).await?;
    assert_eq!(stock[0]["on_hand"], 1, "one unit used");
    let (_, ledger) = s
        .get("/api/v1/stock/ledger?part_number=PSU-9", &w.rma)
        .await?;
    let kinds: Vec<&str> = ledger
        .as_array()
        .context("ledger")?
        .iter()
        .filter_map(|l| l["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["use", "receive", "receive"], "{ledger}");
    assert_eq!(ledger[0]["visit_id"], id);
    assert_eq!(ledger[0]["on_hand_delta"], -1);
    let (_, units) = s
        .get("/api/v1/stock/units?part_number=PSU-9", &w.rma)
        .await?;
    assert_eq!(units[0]["serial"], "S1");
    assert_eq!(units[0]["state"], "in_stock");
    assert_eq!(units[1]["state"], "used");
    assert_eq!(units[1]["visit_id"], id);
    let (_, cv) = s.get(&visits, &w.engineer.1).await?;
    assert!(cv["promises"]["repair"]["met_at"].is_string(), "{cv}");
    expect_4xx(&s, &step("sign-off"), &w.engineer.1, json!({}), 422, "name").await?;
    let v = s
        .post_ok(
            &step("sign-off"),
            &w.engineer.1,
            json!({ "name": "Paul Brandt" }),
        )
        .await?;
    assert_eq!(v["state"], "signed_off");
    assert_eq!(v["signoff_name"], "Paul Brandt");
    expect_4xx(
        &s,
        &step("cancel"),
        &w.engineer.1,
        json!({ "reason": "too late" }),
        409,
        "finished",
    )
    .await?;
    // A second visit, cancelled; the customer may not move visits.
    let v2 = s
        .post_ok(
            &visits,
            &w.engineer.1,
            json!({ "engineer_id": w.engineer.0, "scheduled_at": when, "address": "Gate 4" }),
        )
        .await?;
    let id2 = v2["id"].as_i64().context("visit 2")?;
    assert_eq!(v2["address"], "Gate 4");
    let (st, _) = s
        .post(
            &format!("/api/v1/visits/{id2}/cancel"),
            &w.customer_a,
            json!({ "reason": "no" }),
        )
        .await?;
    assert_eq!(st, 403);
    expect_4xx(
        &s,
        &format!("/api/v1/visits/{id2}/cancel"),
        &w.dispatcher,
        json!({}),
        422,
        "reason",
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/visits/{id2}/cancel"),
        &w.dispatcher,
        json!({ "reason": "customer closed for the holiday" }),
    )
    .await?;
    // Customer B cannot see A's visits.
    let (st, _) = s.get(&visits, &w.customer_b).await?;
    assert_eq!(st, 404);
    // The engineer's agenda.
    let (_, agenda) = s
        .get(
            &format!("/api/v1/visits?engineer_id={}", w.engineer.0),
            &w.dispatcher,
        )
        .await?;
    assert_eq!(agenda.as_array().map(Vec::len), Some(2));
    // The old one-shot record still works.
    s.post_ok(
        &format!("/api/v1/cases/{number}/field-visits"),
        &w.engineer.1,
        json!({ "engineer": "E", "arrived_at": checked_in, "work_done": "follow-up check" }),
    )
    .await?;
    // The history shows each step.
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.customer_a)
        .await?;
    let steps: Vec<String> = h
        .as_array()
        .context("history")?
        .iter()
        .filter(|a| a["kind"] == "visit")
        .filter_map(|a| a["step"].as_str().map(String::from))
        .collect();
    assert_eq!(
        steps,
        [
            "scheduled",
            "checked_in",
            "checked_out",
            "signed_off",
            "scheduled",
            "cancelled"
        ],
        "{h}"
    );
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn visit_lifecycle_sqlite() -> Result<()> {
    visit_lifecycle(Backend::Sqlite).await
}

#[tokio::test]
async fn visit_lifecycle_postgres() -> Result<()> {
    visit_lifecycle(Backend::Postgres).await
}

async fn inspections(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let kid = contract_a(&s, &w).await?;
    let sid = site_a(&s, &w).await?;
    let today = Utc::now().date_naive();
    let yesterday = (today - Duration::days(1)).to_string();
    let path = "/api/v1/inspection-schedules";
    let good = json!({ "contract_id": kid, "site_id": sid, "name": "Quarterly, Hamburg",
                       "interval_days": 91, "first_due": yesterday,
                       "checklist": ["Fans and filters clean", "Logs free of errors"] });
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    expect_4xx(
        &s,
        path,
        &w.dispatcher,
        with("interval_days", json!(-5)),
        422,
        "interval_days",
    )
    .await?;
    expect_4xx(
        &s,
        path,
        &w.dispatcher,
        with("first_due", json!("2019-12-31")),
        422,
        "first_due",
    )
    .await?;
    expect_4xx(
        &s,
        path,
        &w.dispatcher,
        with("first_due", json!("31.12.2026")),
        422,
        "first_due",
    )
    .await?;
    expect_4xx(
        &s,
        path,
        &w.dispatcher,
        with("checklist", json!([])),
        422,
        "checklist",
    )
    .await?;
    expect_4xx(
        &s,
        path,
        &w.dispatcher,
        with("contract_id", json!(999_999)),
        422,
        "contract_id",
    )
    .await?;
    let (st, _) = s.post(path, &w.engineer.1, good.clone()).await?;
    assert_eq!(st, 403, "engineers do not write schedules");
    let sch = s.post_ok(path, &w.dispatcher, good.clone()).await?;
    let sch_id = sch["id"].as_i64().context("schedule id")?;
    assert_eq!(sch["overdue"], true, "due yesterday");
    // A later one, not due within 30 days.
    s.post_ok(
        path,
        &w.dispatcher,
        with("first_due", json!((today + Duration::days(60)).to_string())),
    )
    .await?;
    let (_, due) = s
        .get("/api/v1/inspection-schedules?within_days=30", &w.engineer.1)
        .await?;
    assert_eq!(due.as_array().map(Vec::len), Some(1), "{due}");
    assert_eq!(due[0]["id"], sch_id);
    assert_eq!(due[0]["overdue"], true);
    let (st, _) = s
        .get("/api/v1/inspection-schedules?within_days=-1", &w.engineer.1)
        .await?;
    assert_eq!(st, 422);
    let (st, _) = s.get("/api/v1/inspection-schedules", &w.customer_a).await?;
    assert_eq!(st, 403);

    let rec = format!("/api/v1/inspection-schedules/{sch_id}/inspections");
    let ok = json!({ "item": "Fans and filters clean", "result": "ok" });
    expect_4xx(
        &s,
        &rec,
        &w.engineer.1,
        json!({ "engineer_id": w.engineer.0, "items": [ok] }),
        422,
        "Logs free of errors",
    )
    .await?;
    expect_4xx(
        &s,
        &rec,
        &w.engineer.1,
        json!({ "engineer_id": w.engineer.0, "items": [ok,
            { "item": "Logs free of errors", "result": "finding" }] }),
        422,
        "items[1].note",
    )
    .await?;
    expect_4xx(
        &s,
        &rec,
        &w.engineer.1,
        json!({ "engineer_id": w.engineer.0, "items": [ok,
            { "item": "Logs free of errors", "result": "maybe" }] }),
        422,
        "result",
    )
    .await?;
    expect_4xx(
        &s,
        &rec,
        &w.engineer.1,
        json!({ "engineer_id": w.engineer.0, "performed_at": Utc::now() + Duration::days(1),
                "items": [ok, { "item": "Logs free of errors", "result": "ok" }] }),
        422,
        "performed_at",
    )
    .await?;
    let done = s
        .post_ok(
            &rec,
            &w.engineer.1,
            json!({ "engineer_id": w.engineer.0, "findings": "PSU 2 fan noisy",
                    "items": [{ "item": "Fans and filters clean", "result": "finding",
                                "note": "PSU 2 fan bearing noisy", "open_case": true },
                              { "item": "Logs free of errors", "result": "ok" }] }),
        )
        .await?;
    let follow = done["items"][0]["follow_up_case"]
        .as_str()
        .context("follow-up case")?
        .to_string();
    assert!(done["items"][1]["follow_up_case"].is_null());
    let (st, c) = s
        .get(&format!("/api/v1/cases/{follow}"), &w.dispatcher)
        .await?;
    ensure!(st == 200, "follow-up case: {st} {c}");
    assert!(c["summary"]
        .as_str()
        .unwrap_or_default()
        .contains("Fans and filters clean"));
    assert_eq!(c["organization_id"], w.org_a);
    // The schedule moved on a quarter; nothing due within 30 days now.
    let (_, sch) = s.get("/api/v1/inspection-schedules", &w.engineer.1).await?;
    let moved = sch
        .as_array()
        .context("schedules")?
        .iter()
        .find(|x| x["id"] == sch_id)
        .context("schedule")?;
    assert_eq!(
        moved["next_due"],
        (today - Duration::days(1) + Duration::days(91)).to_string()
    );
    assert_eq!(moved["overdue"], false);
    let (_, due) = s
        .get("/api/v1/inspection-schedules?within_days=30", &w.engineer.1)
        .await?;
    assert_eq!(due.as_array().map(Vec::len), Some(0), "{due}");
    let (_, list) = s
        .get(
            &format!("/api/v1/inspections?schedule_id={sch_id}"),
            &w.engineer.1,
        )
        .await?;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["due_on"], yesterday);
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn inspections_sqlite() -> Result<()> {
    inspections(Backend::Sqlite).await
}

#[tokio::test]
async fn inspections_postgres() -> Result<()> {
    inspections(Backend::Postgres).await
}

/// The stock ledger and the spare units follow shipments too: reserve on
/// approval, ship (the unit by serial) and release on a cancel; taking
/// units away by serial needs them in stock, and never below the reserved.
async fn ledger_follows_shipments(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    s.post_ok(
        "/api/v1/parts",
        &w.rma,
        json!({ "part_number": "FAN-2", "vendor": "Cisco", "model": "FAN", "compatible_models": ["X1"] }),
    )
    .await?;
    let wh = s
        .post_ok(
            "/api/v1/warehouses",
            &w.rma,
            json!({ "name": "Depot", "address": "Hafenstr. 2" }),
        )
        .await?;
    let wid = wh["id"].as_i64().context("warehouse id")?;
    s.post_ok(
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "FAN-2", "warehouse_id": wid, "delta": 3, "serials": ["F1", "F2", "F3"] }),
    )
    .await?;
    expect_4xx(
        &s,
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "FAN-2", "warehouse_id": wid, "delta": 2, "serials": ["F4", "F4"] }),
        422,
        "given twice",
    )
    .await?;
    expect_4xx(
        &s,
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "FAN-2", "warehouse_id": wid, "delta": 1, "serials": ["F1"] }),
        409,
        "serials",
    )
    .await?;
    let number = w.open_case(&s, false, "fan tray failed").await?;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let sh = s
            .post_ok(
                &format!("/api/v1/cases/{number}/shipments"),
                &w.engineer.1,
                json!({ "part_number": "FAN-2", "warehouse_id": wid, "quantity": 1 }),
            )
            .await?;
        let id = sh["id"].as_i64().context("shipment id")?;
        s.post_ok(
            &format!("/api/v1/shipments/{id}/approve"),
            &w.rma,
            json!({}),
        )
        .await?;
        ids.push(id);
    }
    // One unit is left unreserved: taking two away is refused whole.
    expect_4xx(
        &s,
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "FAN-2", "warehouse_id": wid, "delta": -2 }),
        409,
        "fewer unreserved",
    )
    .await?;
    expect_4xx(
        &s,
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "FAN-2", "warehouse_id": wid, "delta": -1, "serials": ["F9"] }),
        422,
        "F9",
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/shipments/{}/pick", ids[0]),
        &w.rma,
        json!({}),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/shipments/{}/ship", ids[0]),
        &w.rma,
        json!({ "carrier": "DHL", "tracking_number": "JD1", "spare_serial": "F2" }),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/shipments/{}/cancel", ids[1]),
        &w.rma,
        json!({ "reason": "duplicate request" }),
    )
    .await?;
    s.post_ok(
        "/api/v1/stock",
        &w.rma,
        json!({ "part_number": "FAN-2", "warehouse_id": wid, "delta": -1, "serials": ["F3"] }),
    )
    .await?;
    let (_, ledger) = s
        .get(
            &format!("/api/v1/stock/ledger?part_number=FAN-2&warehouse_id={wid}"),
            &w.dispatcher,
        )
        .await?;
    let rows: Vec<(String, i64, i64, Value)> = ledger
        .as_array()
        .context("ledger")?
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap_or_default().to_string(),
                l["on_hand_delta"].as_i64().unwrap_or(0),
                l["reserved_delta"].as_i64().unwrap_or(0),
                l["shipment_id"].clone(),
            )
        })
        .collect();
    let (a, b) = (json!(ids[0]), json!(ids[1]));
    assert_eq!(
        rows,
        vec![
            ("remove".into(), -1, 0, Value::Null),
            ("release".into(), 0, -1, b.clone()),
            ("ship".into(), -1, -1, a.clone()),
            ("reserve".into(), 0, 1, b),
            ("reserve".into(), 0, 1, a),
            ("receive".into(), 1, 0, Value::Null),
            ("receive".into(), 1, 0, Value::Null),
            ("receive".into(), 1, 0, Value::Null),
        ],
        "{ledger}"
    );
    // The ledger adds up to the stock.
    let on_hand: i64 = rows.iter().map(|r| r.1).sum();
    let reserved: i64 = rows.iter().map(|r| r.2).sum();
    let (_, stock) = s.get("/api/v1/stock?part_number=FAN-2", &w.rma).await?;
    assert_eq!(stock[0]["on_hand"], on_hand);
    assert_eq!(stock[0]["reserved"], reserved);
    let (_, units) = s
        .get("/api/v1/stock/units?part_number=FAN-2", &w.rma)
        .await?;
    let states: Vec<(&str, &str)> = units
        .as_array()
        .context("units")?
        .iter()
        .map(|u| {
            (
                u["serial"].as_str().unwrap_or_default(),
                u["state"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("F1", "in_stock"), ("F2", "shipped"), ("F3", "removed")]
    );
    assert_eq!(units[1]["shipment_id"], ids[0]);
    let (st, _) = s.get("/api/v1/stock/ledger", &w.customer_a).await?;
    assert_eq!(st, 403);
    Ok(())
}

#[tokio::test]
async fn ledger_follows_shipments_sqlite() -> Result<()> {
    ledger_follows_shipments(Backend::Sqlite).await
}

#[tokio::test]
async fn ledger_follows_shipments_postgres() -> Result<()> {
    ledger_follows_shipments(Backend::Postgres).await
}

/// A browser signed in as the user of `token` (given a password first):
/// its session cookie.
async fn sign_in(s: &Server, http: &reqwest::Client, token: &str) -> Result<String> {
    use reqwest::header;
    let (_, me) = s.get("/api/v1/me", token).await?;
    let username = me["username"].as_str().context("username")?.to_string();
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/v1/users/{}/password", me["id"]),
            &s.admin_token,
            Some(json!({ "password": "a console password" })),
        )
        .await?;
    ensure!(st == 204, "password: {st} {v}");
    let resp = http.get(format!("{}/login", s.base)).send().await?;
    let login_cookie = cookie(&resp, "outpost_login").context("login cookie")?;
    let page = resp.text().await?;
    let csrf = csrf_of(&page)?;
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
    ensure!(resp.status() == 303, "sign-in: {}", resp.status());
    cookie(&resp, "outpost_session").context("session cookie")
}

fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(String::from)
}

fn csrf_of(page: &str) -> Result<String> {
    let at = page.find("name=\"csrf\" value=\"").context("csrf field")? + 19;
    Ok(page[at..].split('"').next().unwrap_or_default().to_string())
}

/// The console: the case workspace's visits panel schedules a visit and
/// moves it on through the same domain calls as the API; the inspections
/// page lists the overdue schedule; customers are kept out of it.
#[tokio::test]
async fn console_visits_and_inspections() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let kid = contract_a(&s, &w).await?;
    s.call(
        Method::PATCH,
        &format!("/api/v1/contracts/{kid}"),
        &w.admin,
        Some(json!({ "onsite_within": "12h" })),
    )
    .await?;
    site_a(&s, &w).await?;
    let yesterday = (Utc::now().date_naive() - Duration::days(1)).to_string();
    s.post_ok(
        "/api/v1/inspection-schedules",
        &w.dispatcher,
        json!({ "contract_id": kid, "name": "Quarterly, Hamburg", "interval_days": 91,
                "first_due": yesterday, "checklist": ["Fans"] }),
    )
    .await?;
    let number = w.open_case(&s, false, "needs a technician").await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let dana = sign_in(&s, &http, &w.dispatcher).await?;
    let get = |path: String, session: &str| {
        http.get(format!("{}{path}", s.base))
            .header(reqwest::header::COOKIE, session.to_string())
            .send()
    };
    let page = get(format!("/cases/{number}"), &dana).await?.text().await?;
    ensure!(page.contains("Schedule a visit"), "the schedule form");
    let csrf = csrf_of(&page)?;
    let when = (Utc::now() + Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let post = |path: String, form: Vec<(&'static str, String)>| {
        http.post(format!("{}{path}", s.base))
            .header(reqwest::header::COOKIE, dana.clone())
            .form(&form)
            .send()
    };
    let resp = post(
        format!("/cases/{number}/visit"),
        vec![
            ("csrf", csrf.clone()),
            ("engineer_id", w.engineer.0.to_string()),
            ("scheduled_at", when),
        ],
    )
    .await?;
    ensure!(resp.status() == 303, "schedule: {}", resp.status());
    let (_, cv) = s
        .get(&format!("/api/v1/cases/{number}/visits"), &w.dispatcher)
        .await?;
    let id = cv["visits"][0]["id"].as_i64().context("visit scheduled")?;
    assert_eq!(cv["visits"][0]["address"], "Hafenstr. 1, 20457 Hamburg");
    let page = get(format!("/cases/{number}"), &dana).await?.text().await?;
    ensure!(page.contains("Field visits") && page.contains("Engineer on site by"));
    ensure!(page.contains(&format!("/cases/{number}/visits/{id}/check-in")));
    // A form without the CSRF token changes nothing.
    let resp = post(format!("/cases/{number}/visits/{id}/check-in"), vec![]).await?;
    ensure!(
        resp.status().is_client_error(),
        "no csrf: {}",
        resp.status()
    );
    let resp = post(
        format!("/cases/{number}/visits/{id}/check-in"),
        vec![("csrf", csrf.clone())],
    )
    .await?;
    ensure!(resp.status() == 303, "check-in: {}", resp.status());
    let (_, cv) = s
        .get(&format!("/api/v1/cases/{number}/visits"), &w.dispatcher)
        .await?;
    assert_eq!(cv["visits"][0]["state"], "checked_in");
    assert!(cv["promises"]["onsite"]["met_at"].is_string());
    let page = get("/inspections".into(), &dana).await?.text().await?;
    ensure!(
        page.contains("Quarterly, Hamburg") && page.contains("overdue"),
        "the overdue schedule is listed"
    );
    let jana = sign_in(&s, &http, &w.customer_a).await?;
    let resp = get("/inspections".into(), &jana).await?;
    assert_eq!(resp.status(), 403);
    Ok(())
}
