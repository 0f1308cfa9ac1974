//! The agent uplink against the real server binary, on SQLite and
//! PostgreSQL: enrolment with one-time tokens, signed requests (tampering,
//! clock skew, revocation), inventory to device records, faults to cases
//! (one case per fault key, notes on return and recovery, idempotent,
//! auto-resolve), agent-lost detection from missing heartbeats, and the
//! topology graph. The client here signs exactly as `outpost_protocol::uplink`
//! specifies; tests/tests/agent_e2e.rs runs the real agent.

use anyhow::{Context, Result};
use base64::Engine;
use chrono::Utc;
use ed25519_dalek::{Signer, SigningKey};
use outpost_protocol::{
    AgentAuth, AgentMessage, DeviceInventory, Evidence, FaultEvent, FaultKey, FaultRule,
    FaultTransition, Heartbeat, HostFacts, Inventory, LldpLink, Severity, Topology,
    PROTOCOL_VERSION,
};
use outpost_tests::{Backend, Server, World};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// A test agent: its key, its identity once enrolled.
struct FakeAgent {
    key: SigningKey,
    id: Uuid,
    /// Added to the clock when signing (to test skew).
    skew_secs: i64,
}

fn openssh_public(key: &SigningKey) -> String {
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], key.verifying_key().as_bytes()] {
        blob.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!(
        "ssh-ed25519 {} test@agent",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

fn new_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

async fn token(s: &Server, w: &World, org: i64) -> Result<String> {
    let t = s
        .post_ok(
            "/api/v1/enrollment-tokens",
            &w.dispatcher,
            json!({ "organization_id": org, "note": "jump box" }),
        )
        .await?;
    Ok(t["token"].as_str().context("token")?.to_string())
}

async fn enroll(s: &Server, token: &str, key: &SigningKey) -> Result<(StatusCode, Value)> {
    s.raw(
        reqwest::Method::POST,
        "/api/v1/agent/enroll",
        None,
        Some((
            "application/json",
            &json!({
                "protocol_version": PROTOCOL_VERSION, "token": token, "public_key": openssh_public(key),
                "hostname": "jump-1", "agent_version": "0.1.0", "os": "linux", "arch": "x86_64"
            })
            .to_string(),
        )),
    )
    .await
}

impl FakeAgent {
    async fn enrolled(s: &Server, w: &World, org: i64) -> Result<FakeAgent> {
        let key = new_key();
        let (st, v) = enroll(s, &token(s, w, org).await?, &key).await?;
        anyhow::ensure!(st == 200, "enroll: {st} {v}");
        Ok(FakeAgent {
            key,
            id: v["agent_id"].as_str().context("agent_id")?.parse()?,
            skew_secs: 0,
        })
    }

    /// POST a raw body to /api/v1/agent/messages, signed.
    async fn post_raw(
        &self,
        s: &Server,
        body: &str,
    ) -> Result<(StatusCode, Value, reqwest::header::HeaderMap)> {
        let path = "/api/v1/agent/messages";
        let ts = Utc::now().timestamp() + self.skew_secs;
        let input = outpost_protocol::signing_input("POST", path, self.id, ts, body.as_bytes());
        let auth = AgentAuth {
            agent_id: self.id,
            timestamp: ts,
            signature: self.key.sign(&input).to_bytes().to_vec(),
        };
        let resp = s
            .http
            .post(format!("{}{path}", s.base))
            .header("authorization", auth.to_header())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let (st, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await?;
        Ok((
            st,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        ))
    }

    async fn send(&self, s: &Server, msgs: &[AgentMessage]) -> Result<Vec<Value>> {
        let body = json!({ "messages": msgs }).to_string();
        let (st, v, _) = self.post_raw(s, &body).await?;
        anyhow::ensure!(st == 200, "messages: {st} {v}");
        Ok(v["results"].as_array().cloned().unwrap_or_default())
    }

    fn heartbeat(&self) -> AgentMessage {
        AgentMessage::Heartbeat(Heartbeat {
            protocol_version: PROTOCOL_VERSION,
            agent_id: self.id,
            sent_at: Utc::now(),
            agent_version: "0.1.0".into(),
            uptime_secs: 5,
            spool_depth: 3,
            clock_skew_secs: None,
        })
    }

    fn fault(
        &self,
        device: &str,
        rule: FaultRule,
        instance: &str,
        t: FaultTransition,
    ) -> FaultEvent {
        FaultEvent {
            protocol_version: PROTOCOL_VERSION,
            idempotency_key: Uuid::new_v4(),
            agent_id: self.id,
            fault_key: FaultKey::new(device, rule, instance).expect("key"),
            transition: t,
            severity: Severity::Major,
            observed_at: Utc::now(),
            summary: format!("{instance} on {device} is down"),
            evidence: vec![Evidence {
                name: "ifOperStatus.3".into(),
                value: "down(2)".into(),
                observed_at: Utc::now(),
            }],
        }
    }

    fn inventory(&self, serial: &str) -> AgentMessage {
        AgentMessage::Inventory(Inventory {
            protocol_version: PROTOCOL_VERSION,
            agent_id: self.id,
            collected_at: Utc::now(),
            host: HostFacts {
                hostname: "jump-1".into(),
                os_name: None,
                os_version: None,
                kernel_version: None,
                arch: "x86_64".into(),
                cpu_count: 2,
                cpu_brand: None,
                memory_total_bytes: 1 << 30,
                swap_total_bytes: 0,
                boot_time: Utc::now(),
                disks: vec![],
            },
            devices: vec![
                DeviceInventory {
                    target: "core-sw".into(),
                    address: "127.0.0.1:16100".into(),
                    sys_name: "core-sw-1".into(),
                    sys_descr: "Cisco IOS Software, Catalyst L3 Switch".into(),
                    sys_object_id: "1.3.6.1.4.1.9.1.1208".into(),
                    vendor: None,
                    model: Some("C9300-48P".into()),
                    serial: Some(serial.into()),
                    firmware_version: Some("17.9.4".into()),
                    software_version: Some("17.9.4a".into()),
                    modules: vec![],
                },
                DeviceInventory {
                    target: "no-serial".into(),
                    address: "127.0.0.1:16101".into(),
                    sys_name: "mystery".into(),
                    sys_descr: "Linux".into(),
                    sys_object_id: "1.3.6.1.4.1.8072.3.2.10".into(),
                    vendor: None,
                    model: None,
                    serial: None,
                    firmware_version: None,
                    software_version: None,
                    modules: vec![],
                },
            ],
        })
    }
}

fn status(r: &Value) -> &str {
    r["status"].as_str().unwrap_or_default()
}

async fn history(s: &Server, w: &World, number: &str) -> Result<Vec<Value>> {
    let (_, h) = s
        .get(&format!("/api/v1/cases/{number}/activities"), &w.dispatcher)
        .await?;
    Ok(h.as_array().cloned().unwrap_or_default())
}

async fn uplink(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;

    // Enrolment tokens: dispatchers and admins only; one use; refused cleanly.
    let (st, _) = s
        .post(
            "/api/v1/enrollment-tokens",
            &w.engineer.1,
            json!({ "organization_id": w.org_a }),
        )
        .await?;
    assert_eq!(st, 403);
    let (st, v) = s
        .post(
            "/api/v1/enrollment-tokens",
            &w.dispatcher,
            json!({ "organization_id": 99999 }),
        )
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("organization_id")),
        "{v}"
    );
    let t = token(&s, &w, w.org_a).await?;
    let (st, v) = enroll(&s, &t, &new_key()).await?;
    assert_eq!(st, 200, "{v}");
    let (st, v) = enroll(&s, &t, &new_key()).await?;
    assert_eq!(st, 401, "{v}");
    assert!(v["message"]
        .as_str()
        .is_some_and(|m| m.contains("used already")));
    let (st, v) = enroll(&s, "opt_nope", &new_key()).await?;
    assert_eq!(st, 401, "{v}");
    let t = token(&s, &w, w.org_a).await?;
    let (st, v) = s
        .raw(reqwest::Method::POST, "/api/v1/agent/enroll", None, Some(("application/json",
            &json!({ "protocol_version": PROTOCOL_VERSION, "token": t, "public_key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x",
                     "hostname": "h", "agent_version": "1", "os": "linux", "arch": "x86_64" }).to_string())))
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("public_key")),
        "{v}"
    );
    let (st, _) = enroll(&s, &t, &new_key()).await?;
    assert_eq!(st, 200, "the token survives a refused attempt");

    let agent = FakeAgent::enrolled(&s, &w, w.org_a).await?;
    let r = agent.send(&s, &[agent.heartbeat()]).await?;
    assert_eq!(status(&r[0]), "accepted");

    // Inventory: the World's device A has serial SNA100: matched, not duplicated.
    let r = agent.send(&s, &[agent.inventory("SNA100")]).await?;
    assert_eq!(status(&r[0]), "accepted");
    let detail = r[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("1 updated") && detail.contains("no-serial"),
        "{detail}"
    );
    let (_, d) = s
        .get(&format!("/api/v1/devices/{}", w.device_a), &w.dispatcher)
        .await?;
    assert_eq!(d["agent_target"], "core-sw");
    assert_eq!(d["software_version"], "17.9.4a");
    assert_eq!(d["model"], "C9300-48P");
    assert!(d["agent_id"].as_i64().is_some(), "{d}");

    // A fault opens one case, linked to the device and its contract.
    let raise = agent.fault(
        "core-sw",
        FaultRule::LinkDown,
        "Gi1/0/3",
        FaultTransition::Raised,
    );
    let r = agent
        .send(&s, &[AgentMessage::Fault(raise.clone())])
        .await?;
    assert_eq!(status(&r[0]), "accepted", "{r:?}");
    let number = r[0]["detail"].as_str().context("case number")?.to_string();
    let (_, c) = s
        .get(&format!("/api/v1/cases/{number}"), &w.dispatcher)
        .await?;
    assert_eq!(c["channel"], "agent");
    assert_eq!(c["priority"], "P2");
    assert_eq!(
        c["device"]["id"].as_i64().or(c["device_id"].as_i64()),
        Some(w.device_a),
        "{c}"
    );
    assert!(
        c["contract"].is_object() || c["contract_id"].is_i64(),
        "{c}"
    );
    // The same event again: duplicate. A new raise of the same key: the same case.
    let r = agent
        .send(&s, &[AgentMessage::Fault(raise.clone())])
        .await?;
    assert_eq!(status(&r[0]), "duplicate");
    let again = agent.fault(
        "core-sw",
        FaultRule::LinkDown,
        "Gi1/0/3",
        FaultTransition::Raised,
    );
    let r = agent.send(&s, &[AgentMessage::Fault(again)]).await?;
    assert_eq!(r[0]["detail"].as_str(), Some(number.as_str()));
    // Recovery: a note on the same case, which stays open (link_down does
    // not resolve itself by default).
    let clear = agent.fault(
        "core-sw",
        FaultRule::LinkDown,
        "Gi1/0/3",
        FaultTransition::Cleared,
    );
    let r = agent.send(&s, &[AgentMessage::Fault(clear)]).await?;
    assert_eq!(r[0]["detail"].as_str(), Some(number.as_str()));
    let h = history(&s, &w, &number).await?;
    let changes: Vec<&str> = h
        .iter()
        .filter(|e| e["kind"] == "fault")
        .map(|e| e["transition"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(changes, ["raised", "returned", "cleared"]);
    let evidence = h
        .iter()
        .find(|e| e["kind"] == "fault")
        .context("fault entry")?;
    assert_eq!(evidence["evidence"][0]["value"], "down(2)");
    // Customers see the fault entries of their own case.
    let (st, _) = s
        .get(&format!("/api/v1/cases/{number}"), &w.customer_a)
        .await?;
    assert_eq!(st, 200);

    // A cold start resolves itself when it clears.
    let cold = agent.fault("core-sw", FaultRule::ColdStart, "", FaultTransition::Raised);
    let r = agent.send(&s, &[AgentMessage::Fault(cold)]).await?;
    let cold_case = r[0]["detail"].as_str().context("cold case")?.to_string();
    assert_ne!(cold_case, number);
    let cold_clear = agent.fault(
        "core-sw",
        FaultRule::ColdStart,
        "",
        FaultTransition::Cleared,
    );
    agent.send(&s, &[AgentMessage::Fault(cold_clear)]).await?;
    let (_, c) = s
        .get(&format!("/api/v1/cases/{cold_case}"), &w.dispatcher)
        .await?;
    assert_eq!(c["status"], "resolved");

    // A malformed message is rejected alone; its neighbours are applied.
    let body = json!({ "messages": [
        agent.heartbeat(),
        { "type": "fault", "protocol_version": PROTOCOL_VERSION, "agent_id": agent.id, "nonsense": true },
        { "type": "telemetry" },
        AgentMessage::Fault(agent.fault("core-sw", FaultRule::LinkDown, "Gi1/0/9", FaultTransition::Raised)),
    ]})
    .to_string();
    let (st, v, _) = agent.post_raw(&s, &body).await?;
    assert_eq!(st, 200, "{v}");
    let r = v["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        r.iter().map(status).collect::<Vec<_>>(),
        ["accepted", "rejected", "rejected", "accepted"],
        "{v}"
    );
    assert!(
        r[2]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("telemetry")),
        "{v}"
    );
    // Another agent's id inside a message is refused.
    let other = FakeAgent::enrolled(&s, &w, w.org_b).await?;
    let spoof = json!({ "messages": [other.heartbeat()] }).to_string();
    let (_, v, _) = agent.post_raw(&s, &spoof).await?;
    assert_eq!(status(&v["results"][0]), "rejected", "{v}");

    // Tampering, a foreign key, skew and revocation are refused at once.
    let body = json!({ "messages": [agent.heartbeat()] }).to_string();
    let impostor = FakeAgent {
        key: new_key(),
        id: agent.id,
        skew_secs: 0,
    };
    let (st, v, _) = impostor.post_raw(&s, &body).await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let skewed = FakeAgent {
        key: agent.key.clone(),
        id: agent.id,
        skew_secs: -3600,
    };
    let (st, v, headers) = skewed.post_raw(&s, &body).await?;
    assert_eq!(
        (st.as_u16(), v["code"].as_str()),
        (401, Some("clock_skew")),
        "{v}"
    );
    assert!(headers.get("date").is_some());
    let (st, v) = s
        .raw(
            reqwest::Method::POST,
            "/api/v1/agent/messages",
            None,
            Some(("application/json", &body)),
        )
        .await?;
    assert_eq!(st, 401, "{v}");
    let (_, agents) = s
        .get(
            &format!("/api/v1/agents?organization_id={}", w.org_a),
            &w.dispatcher,
        )
        .await?;
    let listed = agents
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["agent_id"] == agent.id.to_string().as_str())
        })
        .cloned()
        .context("agent listed")?;
    assert_eq!(listed["state"], "online");
    assert_eq!(listed["spool_depth"], 3);
    let id = listed["id"].as_i64().context("id")?;
    // The heartbeat's clock skew: the agent's own measure when it sends
    // one, else its send time against the server's clock.
    let skewed = |sent_ahead: i64, measured: Option<i64>| {
        let AgentMessage::Heartbeat(mut h) = agent.heartbeat() else {
            unreachable!()
        };
        h.sent_at += chrono::Duration::seconds(sent_ahead);
        h.clock_skew_secs = measured;
        AgentMessage::Heartbeat(h)
    };
    let skew = async |m: AgentMessage| -> Result<Value> {
        agent.send(&s, &[m]).await?;
        let (_, a) = s
            .get(&format!("/api/v1/agents/{id}"), &w.dispatcher)
            .await?;
        Ok(a["clock_skew_secs"].clone())
    };
    let ahead = skew(skewed(400, None)).await?;
    assert!(
        ahead.as_i64().is_some_and(|v| (398..=401).contains(&v)),
        "{ahead}"
    );
    assert_eq!(skew(skewed(400, Some(-7))).await?, -7);
    let (st, _) = s
        .post(
            &format!("/api/v1/agents/{id}/revoke"),
            &w.engineer.1,
            json!({}),
        )
        .await?;
    assert_eq!(st, 403);
    let v = s
        .post_ok(
            &format!("/api/v1/agents/{id}/revoke"),
            &w.dispatcher,
            json!({}),
        )
        .await?;
    assert_eq!(v["state"], "revoked");
    let (st, v, _) = agent.post_raw(&s, &body).await?;
    assert_eq!(st, 401, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("revoked")));
    // Customers see their own agents only.
    let (_, mine) = s.get("/api/v1/agents", &w.customer_b).await?;
    assert!(mine
        .as_array()
        .is_some_and(|a| a.iter().all(|x| x["organization_id"] == w.org_b)));
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn uplink_sqlite() -> Result<()> {
    uplink(Backend::Sqlite).await
}

#[tokio::test]
async fn uplink_postgres() -> Result<()> {
    uplink(Backend::Postgres).await
}

/// Concurrent raises of one fault key, over two replicas on one PostgreSQL:
/// exactly one case.
#[tokio::test]
async fn one_case_per_fault_key_across_replicas() -> Result<()> {
    let s = Server::start(Backend::Postgres).await?;
    let w = World::build(&s).await?;
    let agent = FakeAgent::enrolled(&s, &w, w.org_a).await?;
    let (base2, _replica) = s.start_replica()?;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let ev = agent.fault(
            "core-sw",
            FaultRule::DeviceUnreachable,
            "",
            FaultTransition::Raised,
        );
        let body = json!({ "messages": [AgentMessage::Fault(ev)] }).to_string();
        let a = FakeAgent {
            key: agent.key.clone(),
            id: agent.id,
            skew_secs: 0,
        };
        let base = if i % 2 == 0 {
            s.base.clone()
        } else {
            base2.clone()
        };
        let http = s.http.clone();
        tasks.push(tokio::spawn(async move {
            let path = "/api/v1/agent/messages";
            let ts = Utc::now().timestamp();
            let input = outpost_protocol::signing_input("POST", path, a.id, ts, body.as_bytes());
            let auth = AgentAuth {
                agent_id: a.id,
                timestamp: ts,
                signature: a.key.sign(&input).to_bytes().to_vec(),
            };
            let r = http
                .post(format!("{base}{path}"))
                .header("authorization", auth.to_header())
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200, "{}", r.status());
            let v: Value = r.json().await?;
            Ok::<String, anyhow::Error>(
                v["results"][0]["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }));
    }
    let mut numbers = std::collections::BTreeSet::new();
    for t in tasks {
        numbers.insert(t.await??);
    }
    assert_eq!(numbers.len(), 1, "{numbers:?}");
    let number = numbers.into_iter().next().unwrap_or_default();
    let h = history(&s, &w, &number).await?;
    let raised = h.iter().filter(|e| e["kind"] == "fault").count();
    assert_eq!(raised, 20, "every event recorded once on the one case");
    s.verify_intact()?;
    Ok(())
}

/// Heartbeats stop: the server raises `agent_lost` by itself; they resume:
/// the case notes the recovery and resolves.
#[tokio::test]
async fn lost_agent_opens_a_case_and_recovers() -> Result<()> {
    let s = Server::start_with_config(
        Backend::Sqlite,
        Some("[agents]\nheartbeat_interval = \"1s\"\nlost_after = 2\n"),
    )
    .await?;
    let w = World::build(&s).await?;
    let agent = FakeAgent::enrolled(&s, &w, w.org_a).await?;
    agent
        .send(&s, &[agent.heartbeat(), agent.inventory("SNA100")])
        .await?;
    let device = format!("/api/v1/devices/{}", w.device_a);
    let (_, d) = s.get(&device, &w.dispatcher).await?;
    assert!(d["stale_since"].is_null(), "{d}");
    let mut found = None;
    for _ in 0..100 {
        let (_, page) = s.get("/api/v1/cases?channel=agent", &w.dispatcher).await?;
        if let Some(c) = page["items"].as_array().and_then(|a| a.first()).cloned() {
            found = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let case = found.context("an agent_lost case within 10 s")?;
    assert!(
        case["summary"]
            .as_str()
            .is_some_and(|t| t.contains("stopped reporting")),
        "{case}"
    );
    let number = case["number"].as_str().context("number")?.to_string();
    let (_, agents) = s.get("/api/v1/agents", &w.dispatcher).await?;
    assert_eq!(agents[0]["state"], "lost");
    let (_, d) = s.get(&device, &w.dispatcher).await?;
    assert!(d["stale_since"].is_string(), "its devices are stale: {d}");
    agent.send(&s, &[agent.heartbeat()]).await?;
    let (_, d) = s.get(&device, &w.dispatcher).await?;
    assert!(d["stale_since"].is_null(), "fresh again: {d}");
    let (_, c) = s
        .get(&format!("/api/v1/cases/{number}"), &w.dispatcher)
        .await?;
    assert_eq!(c["status"], "resolved", "{c}");
    let (_, agents) = s.get("/api/v1/agents", &w.dispatcher).await?;
    assert_eq!(agents[0]["state"], "online");
    Ok(())
}

#[tokio::test]
async fn topology_graph_from_lldp() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let agent = FakeAgent::enrolled(&s, &w, w.org_a).await?;
    agent.send(&s, &[agent.inventory("SNA100")]).await?;
    let topo = AgentMessage::Topology(Topology {
        protocol_version: PROTOCOL_VERSION,
        agent_id: agent.id,
        collected_at: Utc::now(),
        links: vec![
            LldpLink {
                device: "core-sw".into(),
                local_port: "Gi1/0/1".into(),
                remote_chassis_id: Some("00:11:22:33:44:55".into()),
                remote_sys_name: Some("access-sw-7".into()),
                remote_port: "Gi0/48".into(),
                remote_port_descr: None,
            },
            LldpLink {
                device: "no-serial".into(),
                local_port: "eth0".into(),
                remote_chassis_id: None,
                remote_sys_name: Some("sw-A100".into()),
                remote_port: "Te1/1".into(),
                remote_port_descr: None,
            },
        ],
    });
    let r = agent.send(&s, &[topo]).await?;
    assert_eq!(status(&r[0]), "accepted");
    let (st, g) = s
        .get(
            &format!("/api/v1/organizations/{}/topology", w.org_a),
            &w.dispatcher,
        )
        .await?;
    assert_eq!(st, 200, "{g}");
    let edges = g["edges"].as_array().cloned().unwrap_or_default();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["from"], format!("device:{}", w.device_a));
    assert_eq!(edges[0]["to"], "lldp:access-sw-7");
    assert!(g["nodes"]
        .as_array()
        .is_some_and(|n| n.iter().any(|x| x["id"] == "lldp:access-sw-7")));
    assert_eq!(edges[1]["from"], "lldp:no-serial");
    assert_eq!(edges[1]["to"], format!("device:{}", w.device_a));
    let (st, _) = s
        .get(
            &format!("/api/v1/organizations/{}/topology", w.org_a),
            &w.customer_b,
        )
        .await?;
    assert_eq!(st, 404);
    Ok(())
}
