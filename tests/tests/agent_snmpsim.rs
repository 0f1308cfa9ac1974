//! The real agent polling a simulated switch (snmpsim serving
//! `tests/fixtures/snmpsim/core-sw.snmprec`, a Catalyst 9300 with ENTITY-MIB,
//! sensor and LLDP rows) against the real server:
//!
//! - the inventory updates the device record the customer already has
//!   (matched by the chassis serial);
//! - the LLDP neighbours become the customer's topology graph;
//! - a link set down on the simulated device opens exactly one case, with
//!   the ifOperStatus reading as evidence; bringing it up adds the recovery
//!   note to the same case, and no second case opens.

#[path = "../../agent/tests/common/snmpsim.rs"]
mod snmpsim;

use anyhow::{Context, Result};
use outpost_tests::{enroll_agent, wait_until, AgentProcess, Backend, Server, World};
use serde_json::{json, Value};
use snmpsim::Snmpsim;
use std::time::Duration;

/// The fixture, its v2c community and the agent's target name.
const DEVICE: &str = "core-sw";
/// The chassis serial in the fixture's ENTITY-MIB.
const SERIAL: &str = "FOC1234X0AB";
/// `ifOperStatus.1`: Gi1/0/1, the uplink to dist-sw1.
const GI1_OPER_STATUS: &str = "1.3.6.1.2.1.2.2.1.8.1";
const LINK_KEY: &str = "core-sw/link_down/Gi1/0/1";

/// A case the agent opened and its fault entries, in order.
struct AgentCase {
    number: String,
    case: Value,
    faults: Vec<Value>,
}

impl AgentCase {
    /// The key of the fault that opened the case.
    fn key(&self) -> &str {
        self.faults
            .first()
            .and_then(|f| f["fault_key"].as_str())
            .unwrap_or_default()
    }

    fn transitions(&self) -> Vec<&str> {
        self.faults
            .iter()
            .map(|f| f["transition"].as_str().unwrap_or_default())
            .collect()
    }
}

impl std::fmt::Debug for AgentCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.number, self.faults)
    }
}

async fn agent_cases(s: &Server, token: &str) -> Result<Vec<AgentCase>> {
    let (_, page) = s
        .get("/api/v1/cases?channel=agent&limit=200", token)
        .await?;
    let mut out = Vec::new();
    for case in page["items"].as_array().cloned().unwrap_or_default() {
        let number = case["number"].as_str().context("number")?.to_string();
        let (_, history) = s
            .get(&format!("/api/v1/cases/{number}/activities"), token)
            .await?;
        let faults = history
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["kind"] == "fault")
            .collect();
        out.push(AgentCase {
            number,
            case,
            faults,
        });
    }
    Ok(out)
}

/// The evidence entry `name` of a fault entry, as its value.
fn evidence<'a>(fault: &'a Value, name: &str) -> Option<&'a str> {
    fault["evidence"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

#[tokio::test]
async fn simulated_link_down_opens_one_case_and_recovery_notes_it() -> Result<()> {
    let Some(sim) = Snmpsim::start(&[DEVICE]) else {
        return Ok(());
    };
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;

    // The customer's records: the switch (known by its serial, not yet by
    // an agent), under contract, and its LLDP neighbour dist-sw1.
    let device = s
        .post_ok(
            "/api/v1/devices",
            &w.admin,
            json!({
                "organization_id": w.org_a, "name": "core-sw", "device_type": "switch",
                "vendor": "Cisco", "model": "unknown", "serial": SERIAL,
                "warranty_end": "2099-12-31"
            }),
        )
        .await?;
    let device_id = device["id"].as_i64().context("device id")?;
    s.post_ok(
        "/api/v1/contracts",
        &w.admin,
        json!({
            "organization_id": w.org_a, "number": "K-CORE", "starts_on": "2020-01-01",
            "ends_on": "2099-12-31", "coverage": "24x7", "device_ids": [device_id]
        }),
    )
    .await?;
    let dist = s
        .post_ok(
            "/api/v1/devices",
            &w.admin,
            json!({
                "organization_id": w.org_a, "name": "dist-sw1.example.net",
                "device_type": "switch", "vendor": "Cisco", "model": "C3850-24T",
                "serial": "FOC9999Z0ZZ"
            }),
        )
        .await?;
    let dist_id = dist["id"].as_i64().context("device id")?;

    // Enrol, then run polling the simulator every second.
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
url = "{base}"
identity_dir = "{id}"

[snmp]
interval = "1s"

[[snmp.targets]]
name = "{DEVICE}"
address = "{address}"
version = "v2c"
community = "{DEVICE}"

[host]
enabled = false

[detect]
link_hold_down = "1s"
flap_window = "2s"
"#,
            base = s.base,
            id = dir.path().join("identity").display(),
            address = sim.address(),
        ),
    )?;
    enroll_agent(&s, &w.dispatcher, w.org_a, &config).await?;
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"))?;
    let context = || {
        format!(
            "agent log:\n{}\nsnmpsim log:\n{}",
            agent.log_text(),
            sim.log_text()
        )
    };

    // Inventory: the existing record is updated, matched by serial.
    let mut record = Value::Null;
    wait_until("the inventory on the device record", 20, async || {
        (_, record) = s
            .get(&format!("/api/v1/devices/{device_id}"), &w.dispatcher)
            .await?;
        Ok(record["agent_target"] == DEVICE)
    })
    .await
    .with_context(context)?;
    assert_eq!(record["model"], "C9300-48P", "{record}");
    assert_eq!(record["firmware_version"], "17.9.1r", "{record}");
    assert_eq!(record["software_version"], "17.09.04a", "{record}");
    assert_eq!(record["sys_object_id"], "1.3.6.1.4.1.9.1.1208", "{record}");
    assert_eq!(record["serial"], SERIAL, "{record}");
    assert_eq!(
        record["name"], "core-sw",
        "an existing record keeps its name"
    );
    let (_, devices) = s
        .get(
            &format!("/api/v1/devices?organization_id={}", w.org_a),
            &w.dispatcher,
        )
        .await?;
    let devices = devices.as_array().cloned().context("device list")?;
    assert_eq!(
        devices.iter().filter(|d| d["serial"] == SERIAL).count(),
        1,
        "matched by serial, not created again: {devices:?}"
    );

    // Topology: both LLDP neighbours, port to port; dist-sw1 is a known
    // device, the access point only an LLDP name.
    let from = format!("device:{device_id}");
    let mut edges = Vec::new();
    wait_until("the LLDP topology", 20, async || {
        let (_, graph) = s
            .get(
                &format!("/api/v1/organizations/{}/topology", w.org_a),
                &w.dispatcher,
            )
            .await?;
        edges = graph["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["from"] == from.as_str())
            .map(|e| {
                (
                    e["local_port"].as_str().unwrap_or_default().to_owned(),
                    e["to"].as_str().unwrap_or_default().to_owned(),
                    e["remote_port"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect::<Vec<_>>();
        edges.sort();
        Ok(edges.len() >= 2)
    })
    .await
    .with_context(context)?;
    assert_eq!(
        edges,
        [
            // Local ports as fault keys name them (ifName), so that the
            // diagram can mark the link a fault is on.
            (
                "Gi1/0/1".to_owned(),
                format!("device:{dist_id}"),
                "Gi1/0/24".to_owned()
            ),
            (
                "Gi1/0/2".to_owned(),
                "lldp:ap-floor2.example.net".to_owned(),
                "f4:cf:e2:01:02:03".to_owned()
            ),
        ]
    );

    // All links up so far: no case.
    let cases = agent_cases(&s, &w.dispatcher).await?;
    assert!(cases.is_empty(), "{cases:?}");

    // Gi1/0/1 goes down: exactly one case, with the reading as evidence.
    sim.set(DEVICE, GI1_OPER_STATUS, "2", "2");
    wait_until("the link_down case", 20, async || {
        let cases = agent_cases(&s, &w.dispatcher).await?;
        Ok(cases.iter().any(|c| c.key() == LINK_KEY))
    })
    .await
    .with_context(context)?;
    let cases = agent_cases(&s, &w.dispatcher).await?;
    assert_eq!(cases.len(), 1, "one case: {cases:?}");
    let case = &cases[0];
    assert_eq!(case.transitions(), ["raised"], "{case:?}");
    let raised = &case.faults[0];
    assert_eq!(raised["rule"], "link_down", "{raised}");
    assert_eq!(
        evidence(raised, "ifOperStatus.1"),
        Some("down(2)"),
        "{raised}"
    );
    assert_eq!(
        evidence(raised, "ifAdminStatus.1"),
        Some("up(1)"),
        "{raised}"
    );
    let (_, opened) = s
        .get(&format!("/api/v1/cases/{}", case.number), &w.dispatcher)
        .await?;
    assert_eq!(opened["device_id"], device_id, "{opened}");
    assert_eq!(opened["organization_id"], w.org_a, "{opened}");
    assert_eq!(opened["channel"], "agent", "{opened}");
    assert!(
        opened["summary"]
            .as_str()
            .is_some_and(|t| t.contains("Gi1/0/1")),
        "{opened}"
    );

    // Up again: the recovery note on the same case, and no second case.
    let number = case.number.clone();
    sim.set(DEVICE, GI1_OPER_STATUS, "2", "1");
    wait_until("the recovery note", 20, async || {
        let cases = agent_cases(&s, &w.dispatcher).await?;
        Ok(cases
            .iter()
            .any(|c| c.number == number && c.transitions().contains(&"cleared")))
    })
    .await
    .with_context(context)?;
    // A few more polls of the healthy device change nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cases = agent_cases(&s, &w.dispatcher).await?;
    assert_eq!(cases.len(), 1, "no second case: {cases:?}");
    assert_eq!(cases[0].number, number);
    assert_eq!(
        cases[0].transitions(),
        ["raised", "cleared"],
        "{:?}",
        cases[0]
    );
    let cleared = &cases[0].faults[1];
    assert_eq!(cleared["fault_key"], LINK_KEY, "{cleared}");
    assert_eq!(cases[0].case["number"], number.as_str());

    let log = agent.log_text();
    assert!(!log.contains("panicked"), "{log}");
    s.verify_intact()?;
    Ok(())
}
