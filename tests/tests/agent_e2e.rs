//! The real agent against the real server, with real SNMP peers on loopback
//! high ports: net-snmp `snmpd` to poll, `snmptrap` to send traps.
//!
//! - enrolment with a one-time token, then `outpost-agent run`;
//! - an unreachable device opens exactly one case; inventory reaches the server;
//! - a linkDown trap opens one case with evidence, linkUp adds the recovery note;
//! - 50 flaps in a few seconds stay one case;
//! - a trap with an unknown community opens nothing;
//! - the server down while faults happen, then up: every fault arrives once;
//! - kill -9 of the agent with faults in its spool: nothing is lost.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use anyhow::{Context, Result};
use outpost_tests::{
    bin, enroll_agent, free_udp_port, wait_until, AgentProcess, Backend, Server, World,
};
use std::process::Command;
use std::time::Duration;

fn snmptrap(port: u16, community: &str, trap_oid: &str, if_index: u32) -> Result<()> {
    let ok = Command::new("snmptrap")
        .args(["-v2c", "-c", community])
        .arg(format!("127.0.0.1:{port}"))
        .arg("")
        .arg(trap_oid)
        .arg(format!("1.3.6.1.2.1.2.2.1.1.{if_index}"))
        .args(["i", &if_index.to_string()])
        .env("MIBS", "")
        .status()?
        .success();
    anyhow::ensure!(ok, "snmptrap failed");
    Ok(())
}

const LINK_DOWN: &str = "1.3.6.1.6.3.1.1.5.3";
const LINK_UP: &str = "1.3.6.1.6.3.1.1.5.4";

/// Every case the agent opened, with its fault entries (transition, key).
async fn agent_cases(s: &Server, token: &str) -> Result<Vec<(String, Vec<(String, String)>)>> {
    let (_, page) = s
        .get("/api/v1/cases?channel=agent&limit=200", token)
        .await?;
    let mut out = Vec::new();
    for c in page["items"].as_array().cloned().unwrap_or_default() {
        let number = c["number"].as_str().context("number")?.to_string();
        let (_, h) = s
            .get(&format!("/api/v1/cases/{number}/activities"), token)
            .await?;
        let faults = h
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|e| e["kind"] == "fault")
            .map(|e| {
                (
                    e["transition"].as_str().unwrap_or_default().to_string(),
                    e["fault_key"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        out.push((number, faults));
    }
    Ok(out)
}

/// Cases whose first fault entry has this key.
fn with_key<'a>(
    cases: &'a [(String, Vec<(String, String)>)],
    key: &str,
) -> Vec<&'a (String, Vec<(String, String)>)> {
    cases
        .iter()
        .filter(|(_, f)| f.first().is_some_and(|(_, k)| k == key))
        .collect()
}

#[tokio::test]
async fn agent_files_cases_from_polls_and_traps() -> Result<()> {
    let Some(snmpd) = common::Snmpd::start() else {
        return Ok(());
    };
    let mut s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let dir = tempfile::tempdir()?;
    let trap_port = free_udp_port()?;
    let dead_port = free_udp_port()?;
    let config = dir.path().join("agent.toml");
    let write_config = |base: &str| -> Result<()> {
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
name = "sw1"
address = "127.0.0.1:{snmp}"
version = "v2c"
community = "public"

[[snmp.targets]]
name = "dead"
address = "127.0.0.2:{dead}"
version = "v2c"
community = "public"
timeout = "200ms"
retries = 0

[host]
enabled = false

[detect]
unreachable_after = 2
flap_window = "2s"
trap_link_hold_down = "0s"

[traps]
listen = "127.0.0.1:{trap}"
communities = ["public"]
"#,
                id = dir.path().join("identity").display(),
                snmp = snmpd.port,
                dead = dead_port,
                trap = trap_port,
            ),
        )?;
        Ok(())
    };
    write_config(&s.base)?;

    // Enrol with a one-time token, then run.
    let token = enroll_agent(&s, &w.dispatcher, w.org_a, &config).await?;
    let token = token.as_str();
    let again = Command::new(bin("outpost-agent"))
        .args(["enroll", "--server", &s.base, "--token", token, "--config"])
        .arg(&config)
        .arg("--force")
        .output()?;
    assert!(!again.status.success(), "a used token is refused");
    let mut agent = AgentProcess::start(&config, &dir.path().join("agent.log"))?;

    // Online, and the unreachable device opens exactly one case.
    let dead_key = "dead/device_unreachable/";
    wait_until("the unreachable device's case", 30, async || {
        Ok(with_key(&agent_cases(&s, &w.dispatcher).await?, dead_key).len() == 1)
    })
    .await
    .with_context(|| agent.log_text())?;
    let (_, agents) = s.get("/api/v1/agents", &w.dispatcher).await?;
    assert_eq!(agents[0]["state"], "online", "{agents}");

    // A linkDown trap: one case with evidence; linkUp: the recovery note.
    snmptrap(trap_port, "public", LINK_DOWN, 1)?;
    let mut link_key = String::new();
    wait_until("the linkDown case", 20, async || {
        let cases = agent_cases(&s, &w.dispatcher).await?;
        if let Some((_, f)) = cases.iter().find(|(_, f)| {
            f.first()
                .is_some_and(|(_, k)| k.starts_with("sw1/link_down/"))
        }) {
            link_key = f[0].1.clone();
            return Ok(true);
        }
        Ok(false)
    })
    .await
    .with_context(|| agent.log_text())?;
    snmptrap(trap_port, "public", LINK_UP, 1)?;
    wait_until("the recovery note", 20, async || {
        let cases = agent_cases(&s, &w.dispatcher).await?;
        Ok(with_key(&cases, &link_key)
            .first()
            .is_some_and(|(_, f)| f.iter().any(|(t, _)| t == "cleared")))
    })
    .await
    .with_context(|| agent.log_text())?;
    let cases = agent_cases(&s, &w.dispatcher).await?;
    let link_case = with_key(&cases, &link_key);
    assert_eq!(link_case.len(), 1, "{cases:?}");
    let (_, h) = s
        .get(
            &format!("/api/v1/cases/{}/activities", link_case[0].0),
            &w.dispatcher,
        )
        .await?;
    let raised = h
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == "fault"))
        .cloned()
        .context("fault entry")?;
    assert!(
        raised["evidence"].as_array().is_some_and(|e| !e.is_empty()),
        "evidence recorded: {raised}"
    );

    // 50 flaps in a few seconds on another interface: one case.
    for _ in 0..50 {
        snmptrap(trap_port, "public", LINK_DOWN, 2)?;
        snmptrap(trap_port, "public", LINK_UP, 2)?;
    }
    // A trap from an unknown community opens nothing.
    snmptrap(trap_port, "not-our-community", LINK_DOWN, 3)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let cases = agent_cases(&s, &w.dispatcher).await?;
    let flappy: Vec<_> = cases
        .iter()
        .filter(|(_, f)| {
            f.first()
                .is_some_and(|(_, k)| k.starts_with("sw1/link_down/") && *k != link_key)
        })
        .collect();
    assert_eq!(flappy.len(), 1, "50 flaps stay one case: {cases:?}");
    assert!(
        cases
            .iter()
            .all(|(_, f)| f.iter().all(|(_, k)| !k.contains("trap-"))),
        "nothing from the unknown community: {cases:?}"
    );

    // The server goes down; faults happen; the agent is killed -9 with them
    // in its spool and started again; the server comes back: each arrives once.
    let before = agent_cases(&s, &w.dispatcher).await?.len();
    s.stop();
    snmptrap(trap_port, "public", LINK_DOWN, 4)?;
    snmptrap(trap_port, "public", LINK_DOWN, 5)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.kill();
    let started = agent.log_text().matches("receiving SNMP traps").count();
    agent.spawn()?;
    // Traps sent while no receiver listens are lost (UDP): wait for it.
    wait_until("the restarted agent's trap receiver", 20, async || {
        Ok(agent.log_text().matches("receiving SNMP traps").count() > started)
    })
    .await?;
    snmptrap(trap_port, "public", LINK_DOWN, 6)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (base, _replica) = s.start_replica()?;
    s.base = base.clone();
    write_config(&base)?;
    // The agent still points at the old port: restart it on the new one
    // (a real server keeps its address; the spool is what matters here).
    agent.kill();
    agent.spawn()?;
    wait_until("the faults from the outage", 40, async || {
        Ok(agent_cases(&s, &w.dispatcher).await?.len() >= before + 3)
    })
    .await
    .with_context(|| agent.log_text())?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cases = agent_cases(&s, &w.dispatcher).await?;
    assert_eq!(cases.len(), before + 3, "each fault once: {cases:?}");
    let mut keys: Vec<&String> = cases
        .iter()
        .filter_map(|(_, f)| f.first().map(|(_, k)| k))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "one case per fault key: {cases:?}");
    // Inventory arrived (net-snmp reports no serial: the server says so).
    let log = agent.log_text();
    assert!(!log.contains("panicked"), "{log}");
    s.verify_intact()?;
    Ok(())
}
