//! A firmware campaign end to end with the real binaries: the server, the
//! agent polling four switches simulated by snmpsim (copies of the
//! `core-sw` fixture, each with its own serial), and the
//! `outpost-plugin-snmpsim` vendor plug-in that reloads them.
//!
//! - a release signed with `admin sign-release` and published;
//! - the campaign advances wave by wave: the canary `sw-a`, then the rest;
//! - each device goes down for its reload and comes back on the new
//!   version, which the agent confirms over SNMP before it reports success,
//!   and the server's device record follows;
//! - `sw-c` is a unit whose hardware fails on reboot (the simulator's
//!   `faulty` marker): it never comes back; the agent reports it
//!   `not_returned` at the reboot deadline, the job ends failed with a P2
//!   case, and the wave below its success threshold pauses the campaign;
//! - every step the plug-in printed is recorded on the server;
//! - an image whose signature does not verify is refused before anything
//!   is installed, and a plug-in that prints garbage fails its job with the
//!   garbage quoted.

#[path = "../../agent/tests/common/snmpsim.rs"]
mod snmpsim;

use anyhow::{Context, Result};
use outpost_tests::releases::{generate_key, publish, sign};
use outpost_tests::{bin, enroll_agent, wait_until, AgentProcess, Backend, Server, World};
use reqwest::StatusCode;
use serde_json::{json, Value};
use snmpsim::Snmpsim;
use std::path::Path;

const DEVICES: [&str; 4] = ["sw-a", "sw-b", "sw-c", "sw-d"];
/// entPhysicalSerialNum of the fixture's chassis.
const SERIAL_OID: &str = "1.3.6.1.2.1.47.1.1.1.1.11.1";
/// entPhysicalSoftwareRev of the fixture's chassis.
const SOFTWARE_REV_OID: &str = "1.3.6.1.2.1.47.1.1.1.1.10.1";
const TARGET: &str = "Cisco/C9300-48P";

fn firmware(version: &str) -> String {
    format!("outpost-simulated-firmware\nmodel=C9300-48P\nversion={version}\nboots=yes\n")
}

fn agent_config(s: &Server, sim: &Snmpsim, dir: &Path, key: &str, plugin: &Path) -> String {
    let mut text = format!(
        r#"
[server]
url = "{base}"
identity_dir = "{id}"

[snmp]
interval = "1s"

[host]
enabled = false

[jobs]
enabled = true
poll_interval = "1m"
trusted_keys = [{key:?}]

[[jobs.plugins]]
vendor = "cisco"
model = "C9300*"
command = "{plugin}"
timeout = "1m"
options = {{ data_dir = "{data}", reboot_secs = 2 }}
"#,
        base = s.base,
        id = dir.join("identity").display(),
        plugin = plugin.display(),
        data = sim.dir.path().join("data").display(),
    );
    for name in DEVICES {
        text.push_str(&format!(
            "\n[[snmp.targets]]\nname = \"{name}\"\naddress = \"{}\"\nversion = \"v2c\"\ncommunity = \"{name}\"\n",
            sim.address()
        ));
    }
    text
}

async fn campaign(s: &Server, token: &str, id: i64) -> Result<Value> {
    let (st, v) = s.get(&format!("/api/v1/campaigns/{id}"), token).await?;
    anyhow::ensure!(st == StatusCode::OK, "{st} {v}");
    Ok(v)
}

/// The job of device `id` (the four switches share one sysName, so jobs
/// are told apart by device id).
fn job(c: &Value, id: i64) -> &Value {
    c["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["device_id"] == id))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn a_firmware_campaign_rolls_out_wave_by_wave_and_a_dead_unit_pauses_it() -> Result<()> {
    let files: Vec<(&str, &str)> = DEVICES.iter().map(|d| (*d, "core-sw")).collect();
    let Some(sim) = Snmpsim::start_copies(&files) else {
        return Ok(());
    };
    for (i, name) in DEVICES.iter().enumerate() {
        sim.set(name, SERIAL_OID, "4", &format!("FOC000{i}UPG"));
    }
    // sw-c's hardware fails on its next reboot.
    let data = sim.dir.path().join("data");
    std::fs::create_dir_all(data.join("sw-c.flash"))?;
    std::fs::write(data.join("sw-c.flash/faulty"), b"bad flash\n")?;

    let dir = tempfile::tempdir()?;
    let key = dir.path().join("release.key");
    let public = generate_key(&key)?;
    let s = Server::start_with_config(
        Backend::Sqlite,
        Some(&format!(
            "[agents]\nheartbeat_interval = \"1s\"\n\n[releases]\ntrusted_keys = [{public:?}]\n"
        )),
    )
    .await?;
    let w = World::build(&s).await?;
    let manager = &w.managers[0];

    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        agent_config(
            &s,
            &sim,
            dir.path(),
            &public,
            &bin("outpost-plugin-snmpsim"),
        ),
    )?;
    enroll_agent(&s, &w.dispatcher, w.org_a, &config).await?;
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"))?;
    let context = || {
        format!(
            "agent log:\n{}\nsnmpsim log:\n{}\nserver log:\n{}",
            agent.log_text(),
            sim.log_text(),
            s.log_text()
        )
    };

    // The four switches arrive through the agent's inventory.
    let mut devices = Value::Null;
    wait_until("four switches inventoried", 30, async || {
        (_, devices) = s.get("/api/v1/devices", &w.admin).await?;
        Ok(devices.as_array().is_some_and(|d| {
            DEVICES.iter().all(|n| {
                d.iter()
                    .any(|x| x["agent_target"] == *n && x["software_version"] == "17.09.04a")
            })
        }))
    })
    .await
    .with_context(context)?;
    let device_id = |name: &str| -> Result<i64> {
        devices
            .as_array()
            .and_then(|d| d.iter().find(|x| x["agent_target"] == name))
            .and_then(|x| x["id"].as_i64())
            .with_context(|| format!("{name}: {devices}"))
    };

    // The release, and the upgrades the customer now sees.
    let image = dir.path().join("c9300-17.12.1.bin");
    std::fs::write(&image, firmware("17.12.1"))?;
    let release = publish(
        &s,
        &sign(&key, &image, "firmware", "17.12.1", TARGET)?,
        &image,
    )
    .await?;
    let (_, applicable) = s.get("/api/v1/upgrades", &w.customer_a).await?;
    assert_eq!(
        applicable.as_array().map(Vec::len),
        Some(4),
        "every switch may take 17.12.1: {applicable}"
    );

    // A canary, then the other three; 100% of a wave must succeed.
    let names: Vec<i64> = ["sw-b", "sw-c", "sw-d"]
        .iter()
        .map(|n| device_id(n))
        .collect::<Result<_>>()?;
    let c = s
        .post_ok(
            "/api/v1/campaigns",
            manager,
            json!({
                "name": "C9300 to 17.12.1", "release_id": release,
                "waves": [{ "devices": [device_id("sw-a")?] }, { "devices": names }],
                "install_timeout": "2m", "reboot_timeout": "20s", "error_threshold": 50, "start": true
            }),
        )
        .await?;
    let id = c["id"].as_i64().context("campaign id")?;

    // Wave 1: the canary is reloaded, comes back on 17.12.1, confirmed.
    wait_until("the canary upgraded", 60, async || {
        let c = campaign(&s, manager, id).await?;
        anyhow::ensure!(
            job(&c, device_id("sw-a")?)["state"] != "failed",
            "canary failed: {c}"
        );
        Ok(job(&c, device_id("sw-a")?)["state"] == "succeeded")
    })
    .await
    .with_context(context)?;
    let c = campaign(&s, manager, id).await?;
    assert_eq!(job(&c, device_id("sw-a")?)["version"], "17.12.1", "{c}");
    // The simulator itself says so, and so does the device record.
    let rev = std::fs::read_to_string(sim.data_file("sw-a"))?;
    assert!(
        rev.contains(&format!("{SOFTWARE_REV_OID}|4|17.12.1")),
        "{rev}"
    );
    let (_, record) = s
        .get(&format!("/api/v1/devices/{}", device_id("sw-a")?), &w.admin)
        .await?;
    assert_eq!(record["software_version"], "17.12.1", "{record}");

    // The canary's steps: the agent's and the plug-in's, in order.
    let (_, steps) = s
        .get(
            &format!(
                "/api/v1/campaigns/{id}/events?job={}",
                job(&c, device_id("sw-a")?)["id"]
            ),
            manager,
        )
        .await?;
    let seen: Vec<String> = steps
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["state"].as_str().unwrap_or_default(),
                        e["step"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for want in [
        "downloading/download",
        "downloaded/",
        "installing/pre_check",
        "installing/transfer",
        "installing/verify",
        "installing/set_boot",
        "rebooting/reload",
        "verifying/confirm",
        "succeeded/confirm",
    ] {
        let (state, step) = want.split_once('/').unwrap_or((want, ""));
        assert!(
            seen.iter()
                .any(|s| s.starts_with(&format!("{state}/"))
                    && (step.is_empty() || s.ends_with(step))),
            "step {want} recorded: {seen:?}"
        );
    }

    // Wave 2 opens; sw-b and sw-d come back, sw-c never does.
    let wave2 = [device_id("sw-b")?, device_id("sw-c")?, device_id("sw-d")?];
    wait_until("wave 2 over", 90, async || {
        let c = campaign(&s, manager, id).await?;
        Ok(wave2.iter().all(|d| {
            let st = job(&c, *d)["state"].as_str().unwrap_or_default();
            matches!(st, "succeeded" | "failed" | "rolled_back")
        }))
    })
    .await
    .with_context(context)?;
    let c = campaign(&s, manager, id).await?;
    assert_eq!(c["current_wave"], 2, "{c}");
    for n in ["sw-b", "sw-d"] {
        assert_eq!(job(&c, device_id(n)?)["state"], "succeeded", "{n}: {c}");
    }
    let dead = job(&c, device_id("sw-c")?);
    assert_eq!(dead["state"], "failed", "{c}");
    assert_eq!(dead["failure"], "not_returned", "{dead}");
    assert_eq!(c["state"], "paused", "below 100% in wave 2: {c}");
    let number = dead["case_number"].as_str().context("a case for sw-c")?;
    let (_, case) = s
        .get(&format!("/api/v1/cases/{number}"), &w.dispatcher)
        .await?;
    assert_eq!(case["priority"], "P2", "{case}");
    assert_eq!(case["device_id"], json!(device_id("sw-c")?), "{case}");
    assert_eq!(case["case_type"], "upgrade", "{case}");

    // The customer sees that sw-c alone still has the upgrade to take.
    let (_, applicable) = s.get("/api/v1/upgrades", &w.customer_a).await?;
    let left: Vec<&str> = applicable
        .as_array()
        .map(|a| a.iter().filter_map(|u| u["device"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(left.len(), 1, "{applicable}");

    // A release whose signature does not verify (the image changed after
    // signing) is refused by the catalog; and a plug-in that prints garbage
    // fails its job, quoting it.
    let tampered = dir.path().join("tampered.bin");
    std::fs::write(&tampered, firmware("17.12.2"))?;
    let mut body = sign(&key, &tampered, "firmware", "17.12.2", TARGET)?;
    body["version"] = json!("17.12.3");
    let (st, v) = s.post("/api/v1/releases", &s.admin_token, body).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("signature"), "{v}");

    drop(agent);
    let garbage = dir.path().join("garbage-plugin");
    std::fs::write(&garbage, "#!/bin/sh\necho 'flashing... 42%'\nsleep 30\n")?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755))?;
    }
    // The same enrolled agent, its plug-in now one that prints garbage.
    std::fs::write(
        &config,
        agent_config(&s, &sim, dir.path(), &public, &garbage),
    )?;
    let agent = AgentProcess::start(&config, &dir.path().join("agent2.log"))?;
    let image2 = dir.path().join("c9300-17.12.2.bin");
    std::fs::write(&image2, firmware("17.12.2"))?;
    let r2 = publish(
        &s,
        &sign(&key, &image2, "firmware", "17.12.2", TARGET)?,
        &image2,
    )
    .await?;
    let c2 = s
        .post_ok(
            "/api/v1/campaigns",
            manager,
            json!({ "name": "garbage", "release_id": r2,
                    "selection": { "devices": [device_id("sw-d")?] }, "start": true }),
        )
        .await?;
    let id2 = c2["id"].as_i64().context("id")?;
    wait_until("the garbage plug-in's job fails", 60, async || {
        let c = campaign(&s, manager, id2).await?;
        Ok(job(&c, device_id("sw-d")?)["state"] == "failed")
    })
    .await
    .with_context(|| agent.log_text())?;
    let c2 = campaign(&s, manager, id2).await?;
    let j = job(&c2, device_id("sw-d")?);
    assert_eq!(j["failure"], "plugin", "{j}");
    assert!(
        j["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("flashing... 42%"),
        "the garbage is quoted: {j}"
    );
    assert!(
        j["case_number"].is_string(),
        "a case for the failed job: {j}"
    );
    drop(agent);
    s.verify_intact()?;
    Ok(())
}
