//! Upgrade jobs against real peers: the shipped plug-ins run as the agent
//! runs them (`outpost-plugin-script` on a script image with a version
//! command; `outpost-plugin-snmpsim` against a real snmpsim whose device
//! goes silent on reload and comes back with the new version, or never),
//! and the job runner carrying a signed release from a (minimal, in-test)
//! artifact server through the snmpsim plug-in to an SNMP-confirmed
//! success, `not_returned`, `no_plugin` and a refused signature.

#[path = "common/snmpsim.rs"]
mod snmpsim;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use outpost_agent::config::AgentConfig;
use outpost_agent::jobs::confirm;
use outpost_agent::jobs::plugin::{
    self, Contract, ContractDevice, ContractImage, PluginEnd, Status, Step, StepLine,
};
use outpost_agent::jobs::Runner;
use outpost_agent::uplink::Uplink;
use outpost_protocol::{
    JobFailure, JobReport, JobState, OfferedRelease, ReleaseManifest, UpgradeJob,
};
use sha2::{Digest, Sha256};
use snmpsim::Snmpsim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCRIPT_PLUGIN: &str = env!("CARGO_BIN_EXE_outpost-plugin-script");
const SNMPSIM_PLUGIN: &str = env!("CARGO_BIN_EXE_outpost-plugin-snmpsim");

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn contract(image: &Path, bytes: &[u8], target: &str, options: serde_json::Value) -> Contract {
    Contract {
        contract: plugin::CONTRACT_VERSION,
        job_id: 42,
        device: ContractDevice {
            name: "core-sw".into(),
            address: "127.0.0.1:1".into(),
            vendor: "Cisco Systems, Inc.".into(),
            model: "C9300-48P".into(),
            credentials: "core-sw".into(),
            current_version: Some("17.09.04a".into()),
        },
        image: ContractImage {
            path: image.to_owned(),
            sha256: sha256(bytes),
            size: bytes.len() as u64,
        },
        target_version: target.into(),
        timeout_secs: 60,
        options,
    }
}

/// Runs a plug-in binary directly: its step lines and exit status.
fn run_binary(program: &str, contract: &Contract) -> (Vec<StepLine>, bool, String) {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the plug-in");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(contract).expect("encode"))
        .expect("write the contract");
    let out = child.wait_with_output().expect("plug-in output");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<StepLine>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (
        lines,
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn oks(lines: &[StepLine]) -> Vec<&'static str> {
    lines
        .iter()
        .filter(|l| l.status == Status::Ok)
        .map(|l| l.step.as_str())
        .collect()
}

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn the_script_plugin_installs_and_checks_the_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let installed = dir.path().join("installed-version");
    let image = dir.path().join("installer.sh");
    let text = format!(
        "#!/bin/sh\nread contract\ncase \"$contract\" in *'\"job_id\":42'*) ;; *) echo 'no contract' >&2; exit 9;; esac\n\
         [ \"$OUTPOST_DEVICE\" = core-sw ] || exit 8\nprintf '%s\\n' \"$OUTPOST_TARGET_VERSION\" > {}\n",
        installed.display()
    );
    write_exe(&image, &text);
    let options =
        serde_json::json!({"version_command": ["/bin/cat", installed.to_str().expect("utf-8")]});
    let c = contract(&image, text.as_bytes(), "2.4.1", options.clone());

    // As the agent runs it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut seen = Vec::new();
    let end = rt.block_on(plugin::run(
        &plugin::Invocation {
            command: Path::new(SCRIPT_PLUGIN),
            args: &[],
            timeout: Duration::from_secs(60),
        },
        &c,
        |line| seen.push(line.clone()),
    ));
    assert_eq!(
        end,
        PluginEnd::Done {
            reloaded: true,
            post_check_version: Some("2.4.1".into())
        }
    );
    assert_eq!(
        oks(&seen),
        [
            "pre_check",
            "transfer",
            "verify",
            "set_boot",
            "reload",
            "post_check"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&installed).expect("installed"),
        "2.4.1\n"
    );

    // Another version installed than the target: post_check fails.
    let c = contract(&image, text.as_bytes(), "2.4.2", options.clone());
    std::fs::write(&installed, "").expect("reset");
    let wrong = serde_json::json!({"version_command": ["/bin/echo", "2.4.1"]});
    let (lines, ok, _) = run_binary(
        SCRIPT_PLUGIN,
        &Contract {
            options: wrong,
            ..c
        },
    );
    assert!(!ok);
    let last = lines.last().expect("lines");
    assert_eq!((last.step, last.status), (Step::PostCheck, Status::Failed));
    assert_eq!(last.version.as_deref(), Some("2.4.1"));

    // An installer that fails: reload failed with its stderr.
    let bad = dir.path().join("bad.sh");
    let bad_text = "#!/bin/sh\necho 'disk full while unpacking' >&2\nexit 4\n";
    write_exe(&bad, bad_text);
    let (lines, ok, _) = run_binary(
        SCRIPT_PLUGIN,
        &contract(&bad, bad_text.as_bytes(), "2.4.1", options.clone()),
    );
    assert!(!ok);
    let last = lines.last().expect("lines");
    assert_eq!((last.step, last.status), (Step::Reload, Status::Failed));
    assert!(
        last.detail.contains("exited with status 4"),
        "{}",
        last.detail
    );
    assert!(
        last.detail.contains("disk full while unpacking"),
        "{}",
        last.detail
    );

    // Not an executable image, a wrong checksum, an unknown option.
    let data = dir.path().join("data.bin");
    std::fs::write(&data, "PK\u{3}\u{4}zip").expect("write");
    let (lines, ok, _) = run_binary(
        SCRIPT_PLUGIN,
        &contract(&data, b"PK\x03\x04zip", "2.4.1", options.clone()),
    );
    assert!(!ok);
    assert!(
        lines[1].detail.contains("neither a #! script nor an ELF"),
        "{:?}",
        lines[1]
    );
    let mut tampered = contract(&image, text.as_bytes(), "2.4.1", options.clone());
    tampered.image.sha256 = "00".repeat(32);
    let (lines, ok, _) = run_binary(SCRIPT_PLUGIN, &tampered);
    assert!(!ok);
    assert_eq!(
        lines.last().map(|l| (l.step, l.status)),
        Some((Step::Verify, Status::Failed))
    );
    let (lines, ok, _) = run_binary(
        SCRIPT_PLUGIN,
        &contract(
            &image,
            text.as_bytes(),
            "2.4.1",
            serde_json::json!({"versoin_command": ["x"]}),
        ),
    );
    assert!(!ok);
    assert!(
        lines[1].detail.contains("options.versoin_command"),
        "{:?}",
        lines[1]
    );
}

fn firmware(model: &str, version: &str, boots: bool) -> String {
    format!(
        "outpost-simulated-firmware\nmodel={model}\nversion={version}\nboots={}\n",
        if boots { "yes" } else { "no" }
    )
}

fn target_config(sim: &Snmpsim, extra: &str) -> AgentConfig {
    config_for(&sim.address(), extra)
}

fn config_for(address: &str, extra: &str) -> AgentConfig {
    AgentConfig::parse(&format!(
        "[server]\nurl = \"http://127.0.0.1:1\"\n\n[[snmp.targets]]\nname = \"core-sw\"\naddress = \"{address}\"\nversion = \"v2c\"\ncommunity = \"core-sw\"\ntimeout = \"500ms\"\nretries = 0\n{extra}"
    ))
    .expect("config")
}

/// Waits (at most `limit`) until `what` holds of the device's answer.
fn wait_for_device(
    config: &AgentConfig,
    limit: Duration,
    what: impl Fn(&confirm::Observed) -> bool,
) -> Option<confirm::Observed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(seen) = rt.block_on(confirm::observe(&config.snmp.targets[0])) {
            if what(&seen) {
                return Some(seen);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn the_snmpsim_plugin_reloads_the_device_into_the_new_version() {
    let Some(sim) = Snmpsim::start(&["core-sw"]) else {
        return;
    };
    let config = target_config(&sim, "");
    let before =
        wait_for_device(&config, Duration::from_secs(20), |_| true).expect("the device answers");
    assert!(before.runs("17.09.04a"), "{before:?}");
    assert!(before.sys_descr.contains("Version 17.9.4a,"), "{before:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("fw.bin");
    let text = firmware("c9300-48p", "17.12.1", true);
    std::fs::write(&image, &text).expect("image");
    let data_dir = sim.dir.path().join("data");
    let options = serde_json::json!({"data_dir": data_dir, "reboot_secs": 2});
    let (lines, ok, stderr) = run_binary(
        SNMPSIM_PLUGIN,
        &contract(&image, text.as_bytes(), "17.12.1", options),
    );
    assert!(ok, "{lines:?} {stderr}");
    assert_eq!(
        oks(&lines),
        ["pre_check", "transfer", "verify", "set_boot", "reload"]
    );
    assert!(data_dir
        .join("core-sw.flash")
        .join(format!("{}.bin", sha256(text.as_bytes())))
        .is_file());

    // Down for a while, then back with the new version everywhere.
    let after = wait_for_device(&config, Duration::from_secs(30), |seen| {
        seen.runs("17.12.1")
    })
    .unwrap_or_else(|| {
        panic!(
            "the device did not come back on 17.12.1; snmpsim says:\n{}",
            sim.log_text()
        )
    });
    assert_eq!(after.chassis_software, ["17.12.1"]);
    assert!(after.sys_descr.contains("Version 17.12.1,"), "{after:?}");
    assert!(!after.sys_descr.contains("17.9.4a"), "{after:?}");
}

#[test]
fn the_snmpsim_plugin_checks_the_image_and_a_bad_image_never_boots() {
    let Some(sim) = Snmpsim::start(&["core-sw"]) else {
        return;
    };
    let config = target_config(&sim, "");
    wait_for_device(&config, Duration::from_secs(20), |_| true).expect("the device answers");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = sim.dir.path().join("data");
    let options = serde_json::json!({"data_dir": data_dir, "reboot_secs": 1});

    // Wrong model, wrong version, not a firmware: refused in pre_check.
    for (text, why) in [
        (firmware("C9500", "17.12.1", true), "for model C9500"),
        (
            firmware("C9300-48P", "17.12.2", true),
            "holds version 17.12.2",
        ),
        ("#!/bin/sh\n".to_owned(), "not a simulated firmware"),
    ] {
        let image = dir.path().join("fw.bin");
        std::fs::write(&image, &text).expect("image");
        let (lines, ok, _) = run_binary(
            SNMPSIM_PLUGIN,
            &contract(&image, text.as_bytes(), "17.12.1", options.clone()),
        );
        assert!(!ok);
        let last = lines.last().expect("lines");
        assert_eq!((last.step, last.status), (Step::PreCheck, Status::Failed));
        assert!(last.detail.contains(why), "{why}: {}", last.detail);
    }
    assert!(
        data_dir.join("core-sw.snmprec").is_file(),
        "a refused image changes nothing"
    );

    // boots=no: the device goes down and stays down.
    let text = firmware("C9300-48P", "17.12.1", false);
    let image = dir.path().join("fw.bin");
    std::fs::write(&image, &text).expect("image");
    let (lines, ok, stderr) = run_binary(
        SNMPSIM_PLUGIN,
        &contract(&image, text.as_bytes(), "17.12.1", options),
    );
    assert!(ok, "{lines:?} {stderr}");
    // Well past the simulated reboot (1 s), it still does not answer.
    let answered = wait_for_device(&config, Duration::from_secs(6), |_| true);
    assert_eq!(
        answered, None,
        "a device whose image does not boot answered"
    );
    let data = std::fs::read_to_string(data_dir.join("core-sw.snmprec")).expect("data file");
    let records: Vec<&str> = data
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(records.len() > 100);
    assert!(
        records.iter().all(|l| l.contains(":delay|wait=100000")),
        "every record drops the request"
    );
}

// ---------------------------------------------------------------------------
// The runner, end to end.

/// Serves `artifact` to any GET (with `Range: bytes=N-`), as the server's
/// signed artifact endpoint does; counts requests.
async fn artifact_server(artifact: Vec<u8>) -> (String, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let artifact = artifact.clone();
            *counter.lock().expect("lock") += 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                let from: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .and_then(|r| r.trim().trim_end_matches('-').parse().ok())
                    .unwrap_or(0);
                let body = &artifact[from.min(artifact.len())..];
                let status = if from > 0 {
                    "206 Partial Content"
                } else {
                    "200 OK"
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, hits)
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn job(id: i64, artifact: &[u8], model: &str, version: &str) -> UpgradeJob {
    let key = signing_key();
    let manifest = ReleaseManifest {
        name: "ios-xe".into(),
        version: version.into(),
        target: format!("Cisco/{model}"),
        sha256: sha256(artifact),
        size: artifact.len() as u64,
    };
    UpgradeJob {
        id,
        campaign_id: 1,
        campaign: "wave 1".into(),
        device: "core-sw".into(),
        vendor: "Cisco".into(),
        model: model.into(),
        current_version: Some("17.09.04a".into()),
        release: OfferedRelease {
            id: 9,
            signature: hex::encode(key.sign(&manifest.canonical_bytes()).to_bytes()),
            public_key: outpost_protocol::release::format_public_key(
                &key.verifying_key().to_bytes(),
            ),
            manifest,
            allow_downgrade: false,
            artifact_path: "/api/v1/agent/releases/9/artifact".into(),
        },
        install_timeout_secs: 120,
        reboot_timeout_secs: 30,
    }
}

struct Harness {
    runner: Runner,
    reports: Arc<Mutex<Vec<JobReport>>>,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let reports: Arc<Mutex<Vec<JobReport>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let runner = Runner {
        dir: dir.path().join("jobs"),
        keys: vec![signing_key().verifying_key().to_bytes()],
        agent_id: uuid::Uuid::new_v4(),
        reporter: Arc::new(move |r| {
            sink.lock().expect("lock").push(r);
            Ok(())
        }),
    };
    Harness {
        runner,
        reports,
        _dir: dir,
    }
}

fn states(reports: &[JobReport]) -> Vec<(JobState, String)> {
    reports
        .iter()
        .map(|r| (r.state, r.step.clone().unwrap_or_default()))
        .collect()
}

fn plugin_section(data_dir: &Path, reboot_secs: u64) -> String {
    format!(
        "\n[jobs]\nenabled = true\ntrusted_keys = [\"{}\"]\n\n[[jobs.plugins]]\nvendor = \"cisco\"\nmodel = \"C9300*\"\ncommand = \"{SNMPSIM_PLUGIN}\"\noptions = {{ data_dir = \"{}\", reboot_secs = {reboot_secs} }}\n",
        outpost_protocol::release::format_public_key(&signing_key().verifying_key().to_bytes()),
        data_dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_from_download_to_an_snmp_confirmed_success_once() {
    let Some(sim) = Snmpsim::start(&["core-sw"]) else {
        return;
    };
    let data_dir: PathBuf = sim.dir.path().join("data");
    let config = target_config(&sim, &plugin_section(&data_dir, 2));
    let artifact = firmware("C9300-48P", "17.12.1", true).into_bytes();
    let (url, hits) = artifact_server(artifact.clone()).await;
    let uplink = Uplink::new(&url, None, uuid::Uuid::new_v4(), signing_key()).expect("uplink");
    let h = harness();

    let ended = h
        .runner
        .run(&uplink, &config, job(5, &artifact, "C9300-48P", "17.12.1"))
        .await
        .expect("run")
        .expect("ended");
    let reports = h.reports.lock().expect("lock").clone();
    assert_eq!(
        ended.state,
        JobState::Succeeded,
        "{ended:?}\n{:#?}",
        states(&reports)
    );
    let seen = states(&reports);
    let order: Vec<JobState> = seen.iter().map(|(s, _)| *s).collect();
    for pair in order.windows(2) {
        assert!(
            pair[0] == pair[1] || pair[0].may_follow(pair[1]),
            "{seen:?}"
        );
    }
    for wanted in [
        (JobState::Downloading, "download"),
        (JobState::Downloaded, "download"),
        (JobState::Installing, "pre_check"),
        (JobState::Installing, "set_boot"),
        (JobState::Rebooting, "reload"),
        (JobState::Verifying, "confirm"),
        (JobState::Succeeded, "confirm"),
    ] {
        assert!(
            seen.iter()
                .any(|(s, step)| *s == wanted.0 && step == wanted.1),
            "{wanted:?} in {seen:?}"
        );
    }
    let last = reports.last().expect("reports");
    assert_eq!(last.version.as_deref(), Some("17.12.1"));
    let keys: std::collections::HashSet<_> = reports.iter().map(|r| r.idempotency_key).collect();
    assert_eq!(
        keys.len(),
        reports.len(),
        "a fresh idempotency key per report"
    );
    assert!(
        !h.runner
            .image_path(&job(5, &artifact, "C9300-48P", "17.12.1"))
            .exists(),
        "image deleted"
    );
    assert_eq!(
        h.runner.load(5).expect("load").expect("record").state,
        JobState::Succeeded
    );

    // The server repeats the job: nothing runs, nothing is fetched.
    let before = *hits.lock().expect("lock");
    let again = h
        .runner
        .run(&uplink, &config, job(5, &artifact, "C9300-48P", "17.12.1"))
        .await
        .expect("run");
    assert_eq!(again, None);
    assert_eq!(*hits.lock().expect("lock"), before);
    assert_eq!(h.reports.lock().expect("lock").len(), reports.len());

    // Now on 17.12.1: the same release again is skipped.
    let skipped = h
        .runner
        .run(&uplink, &config, job(6, &artifact, "C9300-48P", "17.12.1"))
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(skipped.state, JobState::Skipped, "{skipped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_does_not_boot_is_not_returned_and_bad_jobs_are_refused() {
    let Some(sim) = Snmpsim::start(&["core-sw"]) else {
        return;
    };
    let data_dir: PathBuf = sim.dir.path().join("data");
    let config = target_config(&sim, &plugin_section(&data_dir, 1));
    let h = harness();

    // No plug-in for the model; a device the agent does not poll.
    let artifact = firmware("N9K", "10.3.1", true).into_bytes();
    let uplink = Uplink::new(
        "http://127.0.0.1:1",
        None,
        uuid::Uuid::new_v4(),
        signing_key(),
    )
    .expect("uplink");
    let ended = h
        .runner
        .run(&uplink, &config, job(1, &artifact, "N9K", "10.3.1"))
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::NoPlugin))
    );
    assert!(ended.detail.contains("\"N9K\""), "{}", ended.detail);
    let mut other = job(2, &artifact, "C9300-48P", "17.12.1");
    other.device = "edge-9".into();
    let ended = h
        .runner
        .run(&uplink, &config, other)
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::NoPlugin))
    );
    assert!(ended.detail.contains("edge-9"), "{}", ended.detail);

    // A signature by another key, a release for another model: refused
    // before any download (the uplink points nowhere).
    let mut forged = job(3, &artifact, "C9300-48P", "17.12.1");
    forged.release.manifest.version = "17.12.2".into();
    let ended = h
        .runner
        .run(&uplink, &config, forged)
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::Refused))
    );
    assert!(ended.detail.contains("signature"), "{}", ended.detail);
    let mut wrong = job(4, &artifact, "C9300-48P", "17.12.1");
    wrong.model = "C9300-24T".into();
    let ended = h
        .runner
        .run(&uplink, &config, wrong)
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::Refused))
    );
    // An older release without allow_downgrade.
    let older = firmware("C9300-48P", "16.12.1", true).into_bytes();
    let ended = h
        .runner
        .run(&uplink, &config, job(7, &older, "C9300-48P", "16.12.1"))
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::Refused))
    );
    assert!(ended.detail.contains("downgrade"), "{}", ended.detail);

    // The artifact cannot be fetched: retried until the install timeout.
    let good = firmware("C9300-48P", "17.12.1", true).into_bytes();
    let mut j = job(9, &good, "C9300-48P", "17.12.1");
    j.install_timeout_secs = 3;
    let ended = h
        .runner
        .run(&uplink, &config, j)
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::Download)),
        "{ended:?}"
    );
    assert!(ended.detail.contains("within 3s"), "{}", ended.detail);
    // Other bytes than the signed ones (same size): refused, nothing kept.
    let mut other = good.clone();
    other[0] ^= 1;
    let (url, _) = artifact_server(other).await;
    let tampering = Uplink::new(&url, None, uuid::Uuid::new_v4(), signing_key()).expect("uplink");
    let j = job(10, &good, "C9300-48P", "17.12.1");
    let image = h.runner.image_path(&j);
    let ended = h
        .runner
        .run(&tampering, &config, j)
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::Refused)),
        "{ended:?}"
    );
    assert!(ended.detail.contains("SHA-256"), "{}", ended.detail);
    assert!(!image.exists());
    assert!(data_dir.join("core-sw.snmprec").is_file());

    // An image that never boots: not_returned after the reboot timeout.
    let artifact = firmware("C9300-48P", "17.12.1", false).into_bytes();
    let (url, _) = artifact_server(artifact.clone()).await;
    let uplink = Uplink::new(&url, None, uuid::Uuid::new_v4(), signing_key()).expect("uplink");
    let mut j = job(8, &artifact, "C9300-48P", "17.12.1");
    j.reboot_timeout_secs = 5;
    let ended = h
        .runner
        .run(&uplink, &config, j)
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::NotReturned)),
        "{ended:?}"
    );
    assert!(
        ended.detail.contains("did not answer within 5s"),
        "{}",
        ended.detail
    );
}

#[tokio::test]
async fn a_restart_while_the_plugin_ran_fails_the_job_and_a_confirmation_keeps_its_deadline() {
    // A silent device: nothing listens on this UDP port.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(&format!("127.0.0.1:{port}"), &plugin_section(dir.path(), 1));
    let h = harness();
    let uplink = Uplink::new(
        "http://127.0.0.1:1",
        None,
        uuid::Uuid::new_v4(),
        signing_key(),
    )
    .expect("uplink");
    let artifact = firmware("C9300-48P", "17.12.1", true).into_bytes();
    let state_dir = h.runner.dir.join("state");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let record = |job: UpgradeJob,
                  state: JobState,
                  plugin_running: bool,
                  confirming: bool,
                  reload_secs_ago: i64| {
        let id = job.id;
        let record = outpost_agent::jobs::Record {
            job,
            state,
            started_at: chrono::Utc::now() - chrono::TimeDelta::seconds(600),
            plugin_running,
            confirming,
            reload_at: Some(chrono::Utc::now() - chrono::TimeDelta::seconds(reload_secs_ago)),
            answered: false,
            seen_version: None,
        };
        std::fs::write(
            state_dir.join(format!("{id}.json")),
            serde_json::to_vec(&record).expect("encode"),
        )
        .expect("write the record");
    };

    // The agent stopped while the plug-in ran: the device's state is unknown.
    record(
        job(1, &artifact, "C9300-48P", "17.12.1"),
        JobState::Installing,
        true,
        false,
        0,
    );
    record(
        job(2, &artifact, "C9300-48P", "17.12.1"),
        JobState::Rebooting,
        true,
        false,
        0,
    );
    assert_eq!(h.runner.unfinished().len(), 2);
    for id in [1, 2] {
        let ended = h
            .runner
            .run(&uplink, &config, job(id, &artifact, "C9300-48P", "17.12.1"))
            .await
            .expect("run")
            .expect("ended");
        assert_eq!(
            (ended.state, ended.failure),
            (JobState::Failed, Some(JobFailure::Plugin))
        );
        assert!(
            ended
                .detail
                .contains("the agent restarted while the plug-in ran"),
            "{}",
            ended.detail
        );
    }
    assert!(h.runner.unfinished().is_empty());

    // Confirming when the agent stopped; the reload was 4000 s ago and the
    // reboot timeout is an hour: past it at once (a deadline restarted by
    // the restart would keep this test waiting for an hour).
    let mut long = job(3, &artifact, "C9300-48P", "17.12.1");
    long.reboot_timeout_secs = 3600;
    record(long.clone(), JobState::Rebooting, false, true, 4000);
    let ended = h
        .runner
        .run(&uplink, &config, long)
        .await
        .expect("run")
        .expect("ended");
    assert_eq!(
        (ended.state, ended.failure),
        (JobState::Failed, Some(JobFailure::NotReturned)),
        "{ended:?}"
    );
    assert!(ended.detail.contains("within 1h"), "{}", ended.detail);
    let reports = h.reports.lock().expect("lock").clone();
    assert!(reports.iter().all(|r| r.state == JobState::Failed));
}
