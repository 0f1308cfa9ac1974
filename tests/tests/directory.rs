//! Editing the directory: organisations, devices, contracts and users change
//! through PATCH (absent fields kept, null clears), with the same validation as
//! on creation; identities (customer ID, vendor + serial, contract number,
//! username, role) never change; deactivating a user refuses their tokens.

use anyhow::{Context, Result};
use outpost_tests::{Backend, Server, World};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn directory_edits() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let admin = w.admin.as_str();
    let patch = |path: String, body: serde_json::Value| {
        let (s, t) = (&s, w.dispatcher.clone());
        async move { s.call(Method::PATCH, &path, &t, Some(body)).await }
    };

    // Organisation: change the name, clear the phone, keep the rest.
    let (st, o) = patch(
        format!("/api/v1/organizations/{}", w.org_a),
        json!({ "name": "Customer A AG", "phone": null }),
    )
    .await?;
    assert_eq!(st, 200, "{o}");
    assert_eq!(
        (
            o["name"].as_str(),
            o["phone"].is_null(),
            o["customer_code"].as_str()
        ),
        (Some("Customer A AG"), true, Some("A100"))
    );
    let (st, v) = patch(
        format!("/api/v1/organizations/{}", w.org_a),
        json!({ "customer_code": "X" }),
    )
    .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("customer_code")),
        "the customer ID is fixed: {v}"
    );

    // Device: new firmware and warranty; a bad date names the field and changes nothing.
    let path = format!("/api/v1/devices/{}", w.device_a);
    let (st, d) = patch(
        path.clone(),
        json!({ "firmware_version": "17.12.1", "warranty_end": "2030-06-30" }),
    )
    .await?;
    assert_eq!(st, 200, "{d}");
    assert_eq!(
        (
            d["firmware_version"].as_str(),
            d["warranty_end"].as_str(),
            d["serial"].as_str()
        ),
        (Some("17.12.1"), Some("2030-06-30"), Some("SNA100"))
    );
    let (st, v) = patch(path.clone(), json!({ "warranty_end": "30.06.2030" })).await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("warranty_end")),
        "{v}"
    );
    let (_, d) = s.get(&path, &w.dispatcher).await?;
    assert_eq!(d["warranty_end"], "2030-06-30");
    let (st, v) = patch(
        format!("/api/v1/devices/{}", 999_999),
        json!({ "model": "x" }),
    )
    .await?;
    assert_eq!(st, 404, "{v}");

    // Contract: renewal, and a refused device set leaves the contract as it was.
    let (_, list) = s
        .get(
            &format!("/api/v1/contracts?organization_id={}", w.org_a),
            &w.dispatcher,
        )
        .await?;
    let id = list[0]["id"].as_i64().context("contract id")?;
    let (st, k) = patch(
        format!("/api/v1/contracts/{id}"),
        json!({ "ends_on": "2100-12-31", "coverage": "7x8" }),
    )
    .await?;
    assert_eq!(st, 200, "{k}");
    assert_eq!(
        (k["ends_on"].as_str(), k["coverage"].as_str()),
        (Some("2100-12-31"), Some("7x8"))
    );
    let (st, v) = patch(
        format!("/api/v1/contracts/{id}"),
        json!({ "device_ids": [w.device_a, w.device_b] }),
    )
    .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("device_ids")),
        "{v}"
    );
    let (_, k) = s
        .get(&format!("/api/v1/contracts/{id}"), &w.dispatcher)
        .await?;
    assert_eq!(k["device_ids"], json!([w.device_a]), "nothing half-written");
    let (st, v) = patch(
        format!("/api/v1/contracts/{id}"),
        json!({ "ends_on": "2019-01-01" }),
    )
    .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("ends_on")),
        "{v}"
    );
    let (st, k) = patch(
        format!("/api/v1/contracts/{id}"),
        json!({ "device_ids": [] }),
    )
    .await?;
    assert_eq!((st.as_u16(), k["device_ids"].clone()), (200, json!([])));

    // Users: self-service contact details; admin-only level and deactivation.
    let (eng_id, eng) = (w.engineer.0, w.engineer.1.as_str());
    let (st, u) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{eng_id}"),
            eng,
            Some(json!({ "mobile": "+49 170 1234567" })),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), u["mobile"].as_str()),
        (200, Some("+49 170 1234567")),
        "{u}"
    );
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{eng_id}"),
            eng,
            Some(json!({ "active": false })),
        )
        .await?;
    assert_eq!(st, 403, "only admins deactivate");
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{eng_id}"),
            eng,
            Some(json!({ "role": "admin" })),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("role")),
        "the role is fixed: {v}"
    );
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{eng_id}"),
            admin,
            Some(json!({ "manager_level": 2 })),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("manager_level")),
        "{v}"
    );
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{eng_id}"),
            admin,
            Some(json!({ "active": false })),
        )
        .await?;
    assert_eq!(st, 200);
    assert_eq!(
        s.get("/api/v1/me", eng).await?.0,
        401,
        "a deactivated user is refused at once"
    );
    let (st, v) = s
        .post(
            &format!(
                "/api/v1/cases/{}/assign",
                w.open_case(&s, false, "x").await?
            ),
            &w.dispatcher,
            json!({ "assignee_id": eng_id }),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("assignee_id")),
        "deactivated engineers cannot be assigned: {v}"
    );
    let (_, me) = s.get("/api/v1/me", admin).await?;
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", me["id"]),
            admin,
            Some(json!({ "active": false })),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("active")),
        "no self-lockout: {v}"
    );
    s.call(
        Method::PATCH,
        &format!("/api/v1/users/{eng_id}"),
        admin,
        Some(json!({ "active": true })),
    )
    .await?;
    assert_eq!(s.get("/api/v1/me", eng).await?.0, 200, "reactivated");
    Ok(())
}
