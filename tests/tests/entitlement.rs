//! Warranty and entitlement when a case opens (issue 8, SPEC.md 9): the
//! device's contract and warranty are checked and recorded on the case; a
//! case for a device out of coverage is flagged, not refused, with the
//! reasons; customers do not see the internal check.

use anyhow::{Context, Result};
use outpost_tests::{Backend, Server, World};
use serde_json::{json, Value};

async fn entitlement(s: &Server, token: &str, number: &str) -> Result<Option<Value>> {
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), token)
        .await?;
    Ok(h.as_array()
        .context("history")?
        .iter()
        .find(|e| e["kind"] == "entitlement")
        .cloned())
}

async fn open(s: &Server, w: &World, device: i64, summary: &str) -> Result<String> {
    let v = s
        .post_ok(
            "/api/v1/cases",
            &w.dispatcher,
            json!({ "caller": { "name": "Caller" }, "summary": summary, "priority": "P3", "device_id": device }),
        )
        .await?;
    Ok(v["number"].as_str().context("number")?.to_string())
}

#[tokio::test]
async fn coverage_is_checked_and_flagged_sqlite() -> Result<()> {
    coverage_is_checked_and_flagged(Backend::Sqlite).await
}

#[tokio::test]
async fn coverage_is_checked_and_flagged_postgres() -> Result<()> {
    coverage_is_checked_and_flagged(Backend::Postgres).await
}

async fn coverage_is_checked_and_flagged(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;

    // Covered: on an active contract, in warranty.
    let n = open(&s, &w, w.device_a, "covered").await?;
    let e = entitlement(&s, &w.dispatcher, &n).await?.context("entry")?;
    assert_eq!(e["covered"], true, "{e}");
    assert_eq!(e["contract"], "K-A100");
    assert_eq!(e["in_warranty"], true);
    assert_eq!(e["visibility"], "internal");
    // The customer does not see the check.
    assert!(entitlement(&s, &w.customer_a, &n).await?.is_none());

    // Out of coverage: no contract lists it and its warranty has ended. The
    // case still opens, flagged with the reasons.
    let d = s
        .post_ok(
            "/api/v1/devices",
            &w.admin,
            json!({ "organization_id": w.org_a, "name": "old-sw", "device_type": "switch",
                    "vendor": "Cisco", "model": "X0", "serial": "SN-OLD", "warranty_end": "2020-06-30" }),
        )
        .await?;
    let old = d["id"].as_i64().context("device id")?;
    let n = open(&s, &w, old, "out of coverage").await?;
    let e = entitlement(&s, &w.dispatcher, &n).await?.context("entry")?;
    assert_eq!(e["covered"], false, "{e}");
    assert_eq!(e["in_warranty"], false);
    let reasons = e["reasons"].to_string();
    assert!(
        reasons.contains("no active contract covers old-sw")
            && reasons.contains("the warranty of old-sw ended on 2020-06-30"),
        "{reasons}"
    );

    // Named contract that does not list the device, but in warranty: covered
    // by the warranty, the contract recorded.
    let d = s
        .post_ok(
            "/api/v1/devices",
            &w.admin,
            json!({ "organization_id": w.org_a, "name": "new-sw", "device_type": "switch",
                    "vendor": "Cisco", "model": "X2", "serial": "SN-NEW", "warranty_end": "2099-01-01" }),
        )
        .await?;
    let new = d["id"].as_i64().context("device id")?;
    let v = s
        .post_ok(
            "/api/v1/cases",
            &w.dispatcher,
            json!({ "caller": { "name": "Caller" }, "summary": "warranty only", "priority": "P3",
                    "device_id": new, "contract": "K-A100" }),
        )
        .await?;
    let n = v["number"].as_str().context("number")?;
    let e = entitlement(&s, &w.dispatcher, n).await?.context("entry")?;
    assert_eq!(e["covered"], true, "{e}");
    assert_eq!(e["contract"], "K-A100");

    // Without a device or a contract there is nothing to check.
    let v = s
        .post_ok(
            "/api/v1/cases",
            &w.dispatcher,
            json!({ "caller": { "name": "Caller" }, "summary": "a question", "priority": "P4",
                    "organization_id": w.org_a }),
        )
        .await?;
    let n = v["number"].as_str().context("number")?;
    assert!(entitlement(&s, &w.dispatcher, n).await?.is_none());
    s.verify_intact()?;
    Ok(())
}
