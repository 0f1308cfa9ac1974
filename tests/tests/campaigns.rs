//! Upgrade campaigns against the real server binary, on SQLite and
//! PostgreSQL, with agents simulated in the test (signed exactly as the
//! uplink contract says; tests/tests/upgrades.rs runs the real agent,
//! plug-in and simulated devices):
//!
//! - a firmware release signed with `admin sign-release`, published;
//! - bad campaigns refused naming the culprit (empty selection, unknown
//!   release, a device of another model, waves that do not add up, a bad
//!   maintenance window, a wrong role);
//! - heartbeats answered with hints (newest release, waiting jobs);
//! - waves: the first wave's job offered, its steps applied in order (a
//!   resent report counts once, an out-of-order one is recorded, not
//!   applied), the next wave opened when it succeeds;
//! - a device that does not come back (P2 case) and a plug-in failure (P3
//!   case) pause the campaign below its success threshold; resume accepts
//!   the wave; a device silent after its reload times out on the server
//!   (failed, P2 case) and the error threshold stops the campaign;
//! - every step recorded; customers see the upgrades that apply to their
//!   equipment, and only theirs;
//! - abort skips jobs not started; a shut maintenance window offers nothing.

use anyhow::{Context, Result};
use chrono::{Timelike, Utc};
use outpost_protocol::{
    AgentMessage, DeviceInventory, Heartbeat, HostFacts, Inventory, JobFailure, JobReport,
    JobState, PROTOCOL_VERSION,
};
use outpost_tests::releases::{generate_key, publish, sign};
use outpost_tests::sim_agent::SimAgent;
use outpost_tests::{wait_until, Backend, Server, World};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const VENDOR: &str = "Acme";
const MODEL: &str = "X100";

fn device(target: &str, serial: &str, model: &str, version: &str) -> DeviceInventory {
    DeviceInventory {
        target: target.into(),
        address: "127.0.0.1:16100".into(),
        sys_name: target.into(),
        sys_descr: format!("Acme switch OS {version}"),
        sys_object_id: "1.3.6.1.4.1.99999.1".into(),
        vendor: Some(VENDOR.into()),
        model: Some(model.into()),
        serial: Some(serial.into()),
        firmware_version: None,
        software_version: Some(version.into()),
        modules: vec![],
    }
}

fn inventory(agent: &SimAgent, devices: Vec<DeviceInventory>) -> AgentMessage {
    AgentMessage::Inventory(Inventory {
        protocol_version: PROTOCOL_VERSION,
        agent_id: agent.id,
        collected_at: Utc::now(),
        host: HostFacts {
            hostname: "jump".into(),
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
        devices,
    })
}

fn heartbeat(agent: &SimAgent) -> AgentMessage {
    AgentMessage::Heartbeat(Heartbeat {
        protocol_version: PROTOCOL_VERSION,
        agent_id: agent.id,
        sent_at: Utc::now(),
        agent_version: "0.1.0".into(),
        uptime_secs: 5,
        spool_depth: 0,
        clock_skew_secs: None,
    })
}

fn report(
    agent: &SimAgent,
    job: i64,
    state: JobState,
    step: Option<&str>,
    failure: Option<JobFailure>,
    version: Option<&str>,
) -> JobReport {
    JobReport {
        protocol_version: PROTOCOL_VERSION,
        idempotency_key: Uuid::new_v4(),
        agent_id: agent.id,
        job_id: job,
        state,
        step: step.map(String::from),
        detail: format!("{state} {}", step.unwrap_or_default()),
        version: version.map(String::from),
        failure,
        at: Utc::now(),
    }
}

/// Sends one report; its outcome.
async fn send(s: &Server, agent: &SimAgent, r: JobReport) -> Result<Value> {
    let v = agent.send(s, &[AgentMessage::Job(r)]).await?;
    Ok(v["results"][0].clone())
}

/// Walks a job through the way to `end`.
async fn run_job(
    s: &Server,
    agent: &SimAgent,
    job: i64,
    end: JobState,
    failure: Option<JobFailure>,
) -> Result<()> {
    let steps: &[(JobState, Option<&str>)] = &[
        (JobState::Downloading, Some("download")),
        (JobState::Downloaded, Some("signature")),
        (JobState::Installing, Some("pre_check")),
        (JobState::Installing, Some("transfer")),
        (JobState::Installing, Some("set_boot")),
        (JobState::Rebooting, Some("reload")),
    ];
    for (state, step) in steps {
        let o = send(s, agent, report(agent, job, *state, *step, None, None)).await?;
        anyhow::ensure!(o["status"] == "accepted", "{state}: {o}");
    }
    let (step, version) = match end {
        JobState::Succeeded => (Some("confirm"), Some("2.0")),
        _ => (Some("confirm"), None),
    };
    if end == JobState::Succeeded {
        let o = send(
            s,
            agent,
            report(agent, job, JobState::Verifying, step, None, Some("2.0")),
        )
        .await?;
        anyhow::ensure!(o["status"] == "accepted", "verifying: {o}");
    }
    let o = send(s, agent, report(agent, job, end, step, failure, version)).await?;
    anyhow::ensure!(o["status"] == "accepted", "{end}: {o}");
    Ok(())
}

async fn jobs(s: &Server, agent: &SimAgent) -> Result<Vec<Value>> {
    let (st, v) = agent
        .post(
            s,
            "/api/v1/agent/jobs",
            &json!({ "protocol_version": PROTOCOL_VERSION }).to_string(),
        )
        .await?;
    anyhow::ensure!(st == StatusCode::OK, "jobs: {st} {v}");
    Ok(v["jobs"].as_array().cloned().unwrap_or_default())
}

fn job_of<'a>(campaign: &'a Value, device: &str) -> Result<&'a Value> {
    campaign["jobs"]
        .as_array()
        .and_then(|js| js.iter().find(|j| j["device"] == device))
        .with_context(|| format!("no job for {device}: {campaign}"))
}

async fn campaign(s: &Server, id: i64, token: &str) -> Result<Value> {
    let (st, v) = s.get(&format!("/api/v1/campaigns/{id}"), token).await?;
    anyhow::ensure!(st == StatusCode::OK, "campaign: {st} {v}");
    Ok(v)
}

async fn refused(s: &Server, token: &str, body: Value, field: &str) -> Result<()> {
    let (st, v) = s.post("/api/v1/campaigns", token, body.clone()).await?;
    anyhow::ensure!(
        st == StatusCode::UNPROCESSABLE_ENTITY,
        "expected 422 for {body}: {st} {v}"
    );
    let text = v.to_string();
    anyhow::ensure!(text.contains(field), "error names {field}: {v}");
    Ok(())
}

async fn campaigns(backend: Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("release.key");
    let public = generate_key(&key_file)?;
    let s = Server::start_with_config(
        backend,
        Some(&format!(
            "[agents]\nheartbeat_interval = \"1s\"\n\n[releases]\ntrusted_keys = [{public:?}]\n"
        )),
    )
    .await?;
    let w = World::build(&s).await?;
    let manager = &w.managers[0];

    // Two jump boxes of customer A; six Acme X100 and one other model.
    let a1 = SimAgent::enroll(&s, &w.dispatcher, w.org_a, "jump-1").await?;
    let a2 = SimAgent::enroll(&s, &w.dispatcher, w.org_a, "jump-2").await?;
    a1.send(
        &s,
        &[inventory(
            &a1,
            vec![
                device("sw-1", "S1", MODEL, "1.0"),
                device("sw-2", "S2", MODEL, "1.0"),
                device("sw-3", "S3", MODEL, "1.0"),
                device("sw-6", "S6", MODEL, "2.0"),
                device("rt-1", "R1", "R9", "1.0"),
            ],
        )],
    )
    .await?;
    a2.send(
        &s,
        &[inventory(
            &a2,
            vec![
                device("sw-4", "S4", MODEL, "1.0"),
                device("sw-5", "S5", MODEL, "1.1"),
            ],
        )],
    )
    .await?;
    let (_, devices) = s.get("/api/v1/devices", &w.admin).await?;
    let device_id = |name: &str| -> Result<i64> {
        devices["items"]
            .as_array()
            .or(devices.as_array())
            .and_then(|d| d.iter().find(|d| d["name"] == name))
            .and_then(|d| d["id"].as_i64())
            .with_context(|| format!("device {name}: {devices}"))
    };
    let rt1 = device_id("rt-1")?;

    // The release.
    let artifact = dir.path().join("x100-2.0.bin");
    std::fs::write(
        &artifact,
        b"outpost-simulated-firmware\nmodel=X100\nversion=2.0\nboots=yes\n",
    )?;
    let release = publish(
        &s,
        &sign(
            &key_file,
            &artifact,
            "firmware",
            "2.0",
            &format!("{VENDOR}/{MODEL}"),
        )?,
        &artifact,
    )
    .await?;

    // Bad campaigns, each refused naming what is wrong.
    let base = json!({ "name": "X100 2.0", "release_id": release });
    let with = |extra: Value| {
        let mut b = base.clone();
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        b
    };
    refused(
        &s,
        manager,
        with(json!({ "selection": { "organizations": [w.org_b] } })),
        "matches no device",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "selection": { "versions": ["9.9"] } })),
        "matches no device",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "selection": { "organizations": [] } })),
        "selection.organizations",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "release_id": 999_999 })),
        "release_id",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "selection": { "devices": [rt1] } })),
        "selection.devices[0]",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "waves": [{ "percent": 50 }, { "percent": 40 }] })),
        "sum to 90",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "waves": [{ "percent": 50 }, { "devices": ["sw-1"] }] })),
        "waves",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "waves": [{ "devices": ["sw-1"] }] })),
        "in no wave",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "waves": [{ "devices": ["sw-6"] }] })),
        "already runs 2.0",
    )
    .await?;
    refused(
        &s,
        manager,
        with(json!({ "window": { "cron": "0 25 * * *", "duration": "1h" } })),
        "window.cron",
    )
    .await?;
    refused(&s, manager, with(json!({ "window": { "cron": "0 22 * * *", "duration": "1h", "time_zone": "Mars/Base" } })), "window.time_zone").await?;
    refused(
        &s,
        manager,
        with(json!({ "success_threshold": 101 })),
        "success_threshold",
    )
    .await?;
    refused(&s, manager, with(json!({ "surprise": true })), "surprise").await?;
    let (st, _) = s
        .post("/api/v1/campaigns", &w.engineer.1, base.clone())
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN, "engineers do not run campaigns");

    // Heartbeats say what waits: the release, no jobs yet.
    let hb = a1.send(&s, &[heartbeat(&a1)]).await?;
    assert_eq!(hb["hints"]["release"], json!(release), "{hb}");
    assert_eq!(hb["hints"]["jobs"], json!(0), "{hb}");

    // Three waves: a canary, three, one.
    let c = s
        .post_ok(
            "/api/v1/campaigns",
            manager,
            with(json!({
                "waves": [
                    { "devices": ["sw-1"] },
                    { "devices": ["sw-2", "sw-3", "sw-4"] },
                    { "devices": ["sw-5"] }
                ],
                "success_threshold": 60,
                "error_threshold": 50,
                "install_timeout": "10s",
                "reboot_timeout": "10s",
                "start": true
            })),
        )
        .await?;
    let id = c["id"].as_i64().context("campaign id")?;
    assert_eq!(c["state"], "running", "{c}");
    assert_eq!(c["current_wave"], 1);
    assert_eq!(c["wave_count"], 3);
    let sw6 = job_of(&c, "sw-6")?;
    assert_eq!(sw6["state"], "skipped");
    assert!(
        sw6["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("already runs 2.0"),
        "{sw6}"
    );
    assert!(c["jobs"]
        .as_array()
        .is_some_and(|j| !j.iter().any(|j| j["device"] == "rt-1")));

    // Wave 1: only sw-1 is offered, to its agent.
    let hb = a1.send(&s, &[heartbeat(&a1)]).await?;
    assert_eq!(hb["hints"]["jobs"], json!(1), "{hb}");
    assert!(jobs(&s, &a2).await?.is_empty());
    let offered = jobs(&s, &a1).await?;
    assert_eq!(offered.len(), 1, "{offered:?}");
    let j1 = &offered[0];
    assert_eq!(j1["device"], "sw-1");
    assert_eq!(j1["release"]["manifest"]["version"], "2.0");
    assert_eq!(j1["release"]["manifest"]["target"], "Acme/X100");
    assert_eq!(j1["current_version"], "1.0");
    assert_eq!(
        j1["release"]["artifact_path"],
        format!("/api/v1/agent/releases/{release}/artifact")
    );
    let j1 = j1["id"].as_i64().context("job id")?;

    // A report of another agent's job, and garbage, are rejected.
    let o = send(
        &s,
        &a2,
        report(&a2, j1, JobState::Downloading, None, None, None),
    )
    .await?;
    assert_eq!(o["status"], "rejected", "{o}");
    let garbage = a1
        .send_raw_job(
            &s,
            json!({ "type": "job", "protocol_version": 1, "idempotency_key": Uuid::new_v4(),
            "agent_id": a1.id, "job_id": j1, "state": "proceeding", "at": Utc::now() }),
        )
        .await?;
    assert_eq!(garbage["status"], "rejected", "{garbage}");
    assert!(
        garbage["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown variant `proceeding`"),
        "{garbage}"
    );
    let o = send(&s, &a1, report(&a1, j1, JobState::Failed, None, None, None)).await?;
    assert_eq!(o["status"], "rejected", "a failure without a reason: {o}");

    // sw-1 succeeds; a resent report counts once; a late one is recorded only.
    let first = report(&a1, j1, JobState::Downloading, Some("download"), None, None);
    let o = send(&s, &a1, first.clone()).await?;
    assert_eq!(o["status"], "accepted", "{o}");
    let o = send(&s, &a1, first).await?;
    assert_eq!(o["status"], "duplicate", "{o}");
    run_job(&s, &a1, j1, JobState::Succeeded, None).await?;
    let o = send(
        &s,
        &a1,
        report(&a1, j1, JobState::Downloading, None, None, None),
    )
    .await?;
    assert_eq!(o["status"], "accepted");
    assert!(
        o["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not applied"),
        "{o}"
    );
    let (_, d) = s
        .get(&format!("/api/v1/devices/{}", device_id("sw-1")?), &w.admin)
        .await?;
    assert_eq!(
        d["software_version"], "2.0",
        "the device record follows: {d}"
    );

    // Wave 2 opened: sw-2 and sw-3 for jump-1, sw-4 for jump-2.
    let c = campaign(&s, id, manager).await?;
    assert_eq!(c["current_wave"], 2, "{c}");
    let mine: Vec<String> = jobs(&s, &a1)
        .await?
        .iter()
        .map(|j| j["device"].to_string())
        .collect();
    assert_eq!(mine, ["\"sw-2\"", "\"sw-3\""]);
    let theirs = jobs(&s, &a2).await?;
    assert_eq!(theirs.len(), 1);
    let job = |name: &str| -> Result<i64> { job_of(&c, name)?["id"].as_i64().context("id") };
    run_job(&s, &a1, job("sw-2")?, JobState::Succeeded, None).await?;
    run_job(
        &s,
        &a1,
        job("sw-3")?,
        JobState::Failed,
        Some(JobFailure::NotReturned),
    )
    .await?;
    let c = campaign(&s, id, manager).await?;
    assert_eq!(
        c["state"], "running",
        "one failure of three is within 60%: {c}"
    );
    run_job(
        &s,
        &a2,
        job("sw-4")?,
        JobState::Failed,
        Some(JobFailure::Plugin),
    )
    .await?;
    let c = campaign(&s, id, manager).await?;
    assert_eq!(c["state"], "paused", "two of three failed: below 60%: {c}");
    assert!(
        c["reason"].as_str().unwrap_or_default().contains("wave 2"),
        "{c}"
    );
    assert!(
        jobs(&s, &a2).await?.is_empty(),
        "nothing offered while paused"
    );

    // Each failure opened one case: P2 for the device that did not come back.
    for (name, priority) in [("sw-3", "P2"), ("sw-4", "P3")] {
        let number = job_of(&c, name)?["case_number"]
            .as_str()
            .with_context(|| format!("{name} has a case: {c}"))?
            .to_string();
        let (_, case) = s
            .get(&format!("/api/v1/cases/{number}"), &w.dispatcher)
            .await?;
        assert_eq!(case["priority"], priority, "{case}");
        assert_eq!(case["case_type"], "upgrade", "{case}");
        assert_eq!(case["device_id"], json!(device_id(name)?), "{case}");
        assert!(
            case["details"]
                .as_str()
                .unwrap_or_default()
                .contains("reload"),
            "the steps are on the case: {case}"
        );
    }

    // Resume accepts wave 2; wave 3 (sw-5) is offered.
    let (st, v) = s
        .post(
            &format!("/api/v1/campaigns/{id}/resume"),
            &w.engineer.1,
            json!({}),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let c = s
        .post_ok(
            &format!("/api/v1/campaigns/{id}/resume"),
            manager,
            json!({ "reason": "sw-3 and sw-4 are handled on their cases" }),
        )
        .await?;
    assert_eq!(c["state"], "running", "{c}");
    assert_eq!(c["current_wave"], 3, "{c}");
    let offered = jobs(&s, &a2).await?;
    assert_eq!(offered.len(), 1, "{offered:?}");
    assert_eq!(offered[0]["current_version"], "1.1");
    let j5 = offered[0]["id"].as_i64().context("id")?;

    // sw-5 reloads and nothing more is heard: the server gives up after the
    // reboot timeout, fails the job, opens a P2 case, and the third failure
    // of five is over the error threshold of 50%: the campaign stops.
    for (state, step) in [
        (JobState::Downloading, "download"),
        (JobState::Installing, "pre_check"),
        (JobState::Rebooting, "reload"),
    ] {
        send(&s, &a2, report(&a2, j5, state, Some(step), None, None)).await?;
    }
    wait_until(
        "the silent device's job times out and the campaign stops",
        60,
        || async {
            let c = campaign(&s, id, manager).await?;
            Ok(job_of(&c, "sw-5")?["state"] == "failed" && c["state"] != "running")
        },
    )
    .await?;
    let c = campaign(&s, id, manager).await?;
    let sw5 = job_of(&c, "sw-5")?;
    assert_eq!(sw5["failure"], "timeout", "{sw5}");
    assert!(sw5["case_number"].is_string(), "{sw5}");
    assert_eq!(c["state"], "stopped", "{c}");
    assert!(
        c["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("error threshold"),
        "{c}"
    );
    let (st, _) = s
        .post(
            &format!("/api/v1/campaigns/{id}/resume"),
            manager,
            json!({}),
        )
        .await?;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a stopped campaign does not resume"
    );

    // Every step is recorded, by whom it came from.
    let (_, events) = s
        .get(&format!("/api/v1/campaigns/{id}/events"), &w.engineer.1)
        .await?;
    let events = events.as_array().cloned().unwrap_or_default();
    let count = |source: &str| events.iter().filter(|e| e["source"] == source).count();
    assert!(count("agent") >= 30, "{events:?}");
    assert!(count("user") >= 2, "created, resumed: {events:?}");
    assert!(events
        .iter()
        .any(|e| e["source"] == "server" && e["state"] == "paused"));
    assert!(events
        .iter()
        .any(|e| e["source"] == "server" && e["failure"] == "timeout"));
    let (_, only) = s
        .get(
            &format!("/api/v1/campaigns/{id}/events?job={j1}"),
            &w.engineer.1,
        )
        .await?;
    assert!(
        only.as_array()
            .is_some_and(|e| e.len() >= 8 && e.iter().all(|e| e["job_id"] == json!(j1))),
        "{only}"
    );

    // Customers see which upgrades apply to their equipment, and only theirs.
    let (st, mine) = s.get("/api/v1/upgrades", &w.customer_a).await?;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<&str> = mine
        .as_array()
        .map(|a| a.iter().filter_map(|u| u["device"].as_str()).collect())
        .unwrap_or_default();
    for n in ["sw-3", "sw-4", "sw-5"] {
        assert!(names.contains(&n), "{n} still on 1.x: {mine}");
    }
    for n in ["sw-1", "sw-2", "sw-6", "rt-1"] {
        assert!(
            !names.contains(&n),
            "{n} is on 2.0 or another model: {mine}"
        );
    }
    let (_, theirs) = s.get("/api/v1/upgrades", &w.customer_b).await?;
    assert_eq!(theirs, json!([]), "customer B sees none of A's");
    let (st, dev) = s
        .get(
            &format!("/api/v1/devices/{}/upgrades", device_id("sw-3")?),
            &w.customer_a,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{dev}");
    assert_eq!(dev["applicable"][0]["version"], "2.0", "{dev}");
    assert!(dev["jobs"][0]["case_number"].is_string(), "{dev}");
    let (st, _) = s
        .get(
            &format!("/api/v1/devices/{}/upgrades", device_id("sw-3")?),
            &w.customer_b,
        )
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The customer's service report lists the upgrades of the period.
    let today = Utc::now().format("%Y-%m-%d");
    let (st, report) = s
        .get(
            &format!(
                "/api/v1/organizations/{}/service-report?from={today}&to={today}",
                w.org_a
            ),
            &w.customer_a,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{report}");
    let ups = report["upgrades"].as_array().cloned().unwrap_or_default();
    let outcome = |d: &str| {
        ups.iter()
            .find(|u| u["device"] == d)
            .map(|u| u["state"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(outcome("sw-1").as_deref(), Some("succeeded"), "{report}");
    assert_eq!(outcome("sw-3").as_deref(), Some("failed"), "{report}");
    assert!(
        ups.iter().all(|u| u["device"] != "sw-6"),
        "skipped ones are left out"
    );

    // A draft aborted: its jobs are skipped, never offered.
    let draft = s
        .post_ok(
            "/api/v1/campaigns",
            manager,
            with(json!({ "name": "retry", "selection": { "versions": ["1.0", "1.1"] } })),
        )
        .await?;
    let draft_id = draft["id"].as_i64().context("id")?;
    assert_eq!(draft["state"], "draft");
    assert!(jobs(&s, &a1).await?.is_empty(), "a draft offers nothing");
    let aborted = s
        .post_ok(
            &format!("/api/v1/campaigns/{draft_id}/abort"),
            manager,
            json!({ "reason": "wrong week" }),
        )
        .await?;
    assert_eq!(aborted["state"], "aborted");
    assert!(
        aborted["jobs"]
            .as_array()
            .is_some_and(|j| j.iter().all(|j| j["state"] == "skipped")),
        "{aborted}"
    );
    let (st, _) = s
        .post(
            &format!("/api/v1/campaigns/{draft_id}/pause"),
            manager,
            json!({}),
        )
        .await?;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = s
        .post(
            &format!("/api/v1/campaigns/{draft_id}/explode"),
            manager,
            json!({}),
        )
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A window that opens in two hours: running, but nothing offered yet.
    let opens = (Utc::now() + chrono::Duration::hours(2)).hour();
    let later = s
        .post_ok(
            "/api/v1/campaigns",
            manager,
            with(json!({
                "name": "tonight",
                "selection": { "versions": ["1.0", "1.1"] },
                "window": { "cron": format!("0 {opens} * * *"), "duration": "1h", "time_zone": "UTC" },
                "start": true
            })),
        )
        .await?;
    assert_eq!(later["state"], "running", "{later}");
    assert_eq!(later["window"]["open_now"], false, "{later}");
    assert!(later["window"]["next_change"].is_string(), "{later}");
    assert!(
        jobs(&s, &a1).await?.is_empty() && jobs(&s, &a2).await?.is_empty(),
        "the window is shut"
    );
    let (_, list) = s
        .get("/api/v1/campaigns?state=running", &w.engineer.1)
        .await?;
    assert!(
        list.as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["name"] == "tonight"),
        "{list}"
    );
    let (st, _) = s
        .get("/api/v1/campaigns?state=proceeding", &w.engineer.1)
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // The console: the manager sees the campaigns and pauses one; the
    // customer sees what applies to its equipment.
    let manager_console = console_user(&s, manager, "manager password").await?;
    let (st, page) = manager_console.get("/upgrades").await?;
    assert_eq!(st, StatusCode::OK);
    assert!(
        page.contains("X100 2.0") && page.contains("tonight"),
        "{page}"
    );
    let later_id = later["id"].as_i64().context("id")?;
    let (st, page) = manager_console
        .get(&format!("/upgrades/campaigns/{later_id}"))
        .await?;
    assert_eq!(st, StatusCode::OK);
    assert!(
        page.contains("Recorded steps") && page.contains("shut"),
        "{page}"
    );
    let csrf = outpost_tests::console::csrf_field(&page).context("csrf")?;
    let (st, to) = manager_console
        .post(
            &format!("/upgrades/campaigns/{later_id}/action"),
            &[
                ("csrf", &csrf),
                ("action", "pause"),
                ("reason", "freeze week"),
            ],
        )
        .await?;
    assert_eq!(st, StatusCode::SEE_OTHER, "{to}");
    assert_eq!(campaign(&s, later_id, manager).await?["state"], "paused");
    let (st, _) = manager_console
        .post(
            &format!("/upgrades/campaigns/{later_id}/action"),
            &[("csrf", "forged"), ("action", "resume")],
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN, "a forged form changes nothing");
    assert_eq!(campaign(&s, later_id, manager).await?["state"], "paused");
    // A campaign made with the console's form: refused naming the field
    // while its devices are in the paused campaign, or for a bad wave;
    // created once that campaign is aborted.
    let (_, page) = manager_console.get("/upgrades").await?;
    assert!(page.contains("New campaign"), "{page}");
    let csrf = outpost_tests::console::csrf_field(&page).context("csrf")?;
    let release_text = release.to_string();
    let form = |waves: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", "from the console".to_string()),
            ("release_id", release_text.clone()),
            ("versions", "1.0, 1.1".to_string()),
            ("waves", waves.to_string()),
            ("install_timeout", "30m".to_string()),
        ]
    };
    async fn post_form(
        console: &outpost_tests::console::Session,
        form: Vec<(&'static str, String)>,
    ) -> Result<(StatusCode, String)> {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        console.post("/upgrades/campaigns", &pairs).await
    }
    let (st, _) = post_form(&manager_console, form("50, 50")).await?;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sw-3..5 are in the paused campaign"
    );
    let (st, _) = post_form(&manager_console, form("half, half")).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    s.post_ok(
        &format!("/api/v1/campaigns/{later_id}/abort"),
        manager,
        json!({}),
    )
    .await?;
    let (st, to) = post_form(&manager_console, form("50, 50")).await?;
    assert_eq!(st, StatusCode::SEE_OTHER, "{to}");
    let made: i64 = to
        .trim_start_matches("/upgrades/campaigns/")
        .split('?')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("redirected to {to}"))?;
    let made = campaign(&s, made, manager).await?;
    assert_eq!(made["state"], "draft", "{made}");
    assert_eq!(made["wave_count"], 2, "{made}");
    let customer_console = console_user(&s, &w.customer_a, "customer password").await?;
    let (st, page) = customer_console.get("/upgrades").await?;
    assert_eq!(st, StatusCode::OK);
    assert!(page.contains("sw-3") && !page.contains("sw-1<"), "{page}");
    let (st, _) = customer_console
        .get(&format!("/upgrades/campaigns/{later_id}"))
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN, "campaigns are for staff");

    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn campaigns_on_sqlite() -> Result<()> {
    campaigns(Backend::Sqlite).await
}

#[tokio::test]
async fn campaigns_on_postgres() -> Result<()> {
    campaigns(Backend::Postgres).await
}

/// The token's user, given `password`, signed in to the console.
async fn console_user(
    s: &Server,
    token: &str,
    password: &str,
) -> Result<outpost_tests::console::Session> {
    let (_, me) = s.get("/api/v1/me", token).await?;
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/users/{}/password", me["id"]),
            &s.admin_token,
            Some(json!({ "password": password })),
        )
        .await?;
    anyhow::ensure!(st == StatusCode::NO_CONTENT, "password: {st} {v}");
    outpost_tests::console::sign_in(
        &s.base,
        me["username"].as_str().context("username")?,
        password,
    )
    .await
}

/// Raw job messages (to send what the types would not let us build).
trait RawJob {
    async fn send_raw_job(&self, s: &Server, message: Value) -> Result<Value>;
}

impl RawJob for SimAgent {
    async fn send_raw_job(&self, s: &Server, message: Value) -> Result<Value> {
        let body = json!({ "messages": [message] }).to_string();
        let (st, v) = self.post(s, "/api/v1/agent/messages", &body).await?;
        anyhow::ensure!(st == 200, "messages: {st} {v}");
        Ok(v["results"][0].clone())
    }
}
