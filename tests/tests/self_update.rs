//! The release catalog and the agent's self-update, with the real server
//! and agent binaries.
//!
//! Releases of the agent are the agent binary under test, stripped, with
//! another version stamped into its version slot
//! (`outpost_tests::stamp_agent_version`): the same program reporting
//! another version. A broken release is a shell script that exits, or one
//! that never reports. Keys are made and releases signed with
//! `outpost-server admin release-key generate` and `admin sign-release`.

use anyhow::{Context, Result};
use outpost_tests::releases::{generate_key, publish, sign, upload};
use outpost_tests::{
    bin, enroll_agent, stamp_agent_version, wait_until, AgentProcess, Backend, Server,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn server_config(keys: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    format!(
        "[agents]\nheartbeat_interval = \"1s\"\n\n[releases]\ntrusted_keys = [{}]\n",
        keys.join(", ")
    )
}

fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

async fn catalog(backend: Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let k1 = dir.path().join("k1.key");
    let k2 = dir.path().join("k2.key");
    let stranger = dir.path().join("stranger.key");
    let p1 = generate_key(&k1)?;
    let p2 = generate_key(&k2)?;
    generate_key(&stranger)?;
    // A key file is never overwritten.
    let again = Command::new(bin("outpost-server"))
        .args(["admin", "release-key", "generate"])
        .arg(&k1)
        .output()?;
    assert!(!again.status.success());
    assert!(p1.starts_with("ed25519:") && p1 != p2);

    let s = Server::start_with_config(backend, Some(&server_config(&[&p1, &p2]))).await?;
    let tok = s.admin_token.clone();
    // 3.5 MiB: several stored chunks.
    let data = random_bytes(3 * 1024 * 1024 + 512 * 1024 + 7);
    let fw = dir.path().join("fw.bin");
    std::fs::write(&fw, &data)?;
    let body = sign(&k1, &fw, "firmware", "17.3.1", "acme/sw-48")?;

    // Bad input: the signature, the key, the manifest.
    let mut bad = body.clone();
    bad["version"] = "17.3.2".into();
    let (st, v) = s.post("/api/v1/releases", &tok, bad).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "signature", "{v}");
    let by_stranger = sign(&stranger, &fw, "firmware", "17.3.1", "acme/sw-48")?;
    let (st, v) = s.post("/api/v1/releases", &tok, by_stranger).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("not one of the trusted"),
        "{v}"
    );
    let mut bad = body.clone();
    bad["signature"] = "zz".into();
    let (st, v) = s.post("/api/v1/releases", &tok, bad).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let mut bad = body.clone();
    bad["target"] = "no-slash".into();
    let (st, _) = s.post("/api/v1/releases", &tok, bad).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let mut bad = body.clone();
    bad["sha256"] = "XYZ".into();
    let (st, v) = s.post("/api/v1/releases", &tok, bad).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "sha256", "{v}");
    // Only admins publish (the matrix in rbac.rs lists reading; publishing
    // needs a trusted key, so it is checked here for every other role).
    for role in ["dispatcher", "engineer", "expert", "rma_admin", "manager"] {
        let (_, t) = s
            .user(
                &format!("{role}1"),
                role,
                Some(1).filter(|_| role == "manager"),
                None,
            )
            .await?;
        let (st, _) = s.post("/api/v1/releases", &t, body.clone()).await?;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role}");
    }
    let (_, eng) = s.user("eng1", "engineer", None, None).await?;

    let created = s.post_ok("/api/v1/releases", &tok, body.clone()).await?;
    let id = created["id"].as_i64().context("id")?;
    assert_eq!(created["state"], "awaiting_artifact");
    let (st, _) = s.post("/api/v1/releases", &tok, body.clone()).await?;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "same kind, target and version twice"
    );
    // Not served before its artifact is there.
    let (st, _) = s
        .get(&format!("/api/v1/releases/{id}/artifact"), &tok)
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A truncated artifact, one byte too many, and other bytes of the
    // right size: refused, nothing published.
    let (st, v) = upload(&s, id, data[..data.len() - 100].to_vec()).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("truncated"),
        "{v}"
    );
    let mut longer = data.clone();
    longer.push(0);
    let (st, v) = upload(&s, id, longer).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let mut other = data.clone();
    other[2_000_000] ^= 1;
    let (st, v) = upload(&s, id, other).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("SHA-256"),
        "{v}"
    );
    let (_, got) = s.get(&format!("/api/v1/releases/{id}"), &tok).await?;
    assert_eq!(got["state"], "awaiting_artifact");
    let (st, _) = s
        .get(&format!("/api/v1/releases/{id}/artifact"), &eng)
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The right bytes: published, then immutable.
    let (st, v) = upload(&s, id, data.clone()).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "published");
    let (st, _) = upload(&s, id, data.clone()).await?;
    assert_eq!(st, StatusCode::CONFLICT);

    // Served whole and by ranges (what a resumed download asks).
    let url = format!("{}/api/v1/releases/{id}/artifact", s.base);
    let whole = s.http.get(&url).bearer_auth(&eng).send().await?;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await?.as_ref(), &data[..]);
    for (range, first, last) in [
        ("bytes=1048570-", 1_048_570, data.len() - 1),
        ("bytes=5-2097160", 5, 2_097_160),
        ("bytes=-10", data.len() - 10, data.len() - 1),
    ] {
        let r = s
            .http
            .get(&url)
            .bearer_auth(&eng)
            .header("range", range)
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {first}-{last}/{}", data.len()).as_str()
        );
        assert_eq!(r.bytes().await?.as_ref(), &data[first..=last], "{range}");
    }
    let r = s
        .http
        .get(&url)
        .bearer_auth(&eng)
        .header("range", format!("bytes={}-", data.len()))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // curl, resuming a partial file with -C -.
    let part = dir.path().join("partial.bin");
    std::fs::write(&part, &data[..1_500_000])?;
    let curl = Command::new("curl")
        .args(["-sS", "-f", "-C", "-", "-o"])
        .arg(&part)
        .arg("-H")
        .arg(format!("Authorization: Bearer {eng}"))
        .arg(&url)
        .status()?;
    assert!(curl.success());
    assert_eq!(std::fs::read(&part)?, data);

    // The listing, and a customer sees nothing of it.
    let (_, list) = s
        .get("/api/v1/releases?kind=firmware&target=acme/sw-48", &eng)
        .await?;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (st, _) = s.get("/api/v1/releases?kind=gadget", &eng).await?;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .call(Method::GET, "/api/v1/releases/999999", &tok, None)
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn release_catalog_on_sqlite() -> Result<()> {
    catalog(Backend::Sqlite).await
}

#[tokio::test]
async fn release_catalog_on_postgres() -> Result<()> {
    catalog(Backend::Postgres).await
}

#[tokio::test]
async fn server_without_trusted_keys_refuses_every_release() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let k = dir.path().join("k.key");
    generate_key(&k)?;
    let f = dir.path().join("a.bin");
    std::fs::write(&f, b"artifact")?;
    let s = Server::start(Backend::Sqlite).await?;
    let body = sign(&k, &f, "agent", "1.0.0", "x86_64-unknown-linux-gnu")?;
    let (st, v) = s.post("/api/v1/releases", &s.admin_token, body).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("trusted_keys"),
        "{v}"
    );
    // A malformed key in the configuration is named.
    let out = Command::new(bin("outpost-server"))
        .args(["config", "check"])
        .arg({
            let p = dir.path().join("bad.toml");
            std::fs::write(&p, "[releases]\ntrusted_keys = [\"ed25519:1234\"]\n")?;
            p
        })
        .output()?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("releases.trusted_keys[0]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// How many update queries the server answered (its request metrics).
async fn update_queries(s: &Server) -> Result<u64> {
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("outpost_http_requests_total")
                && l.contains("route=\"/api/v1/agent/update\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

/// The agent's target triple, as its `--version`-less build reports it: the
/// tests run on the host they were built for.
fn target() -> &'static str {
    outpost_agent::version::TARGET
}

struct Lab {
    s: Server,
    dir: tempfile::TempDir,
    key: PathBuf,
    agent_id: i64,
    bin: PathBuf,
    stripped: PathBuf,
    update_dir: PathBuf,
    agent: AgentProcess,
}

impl Lab {
    async fn updates(&self) -> Result<Vec<Value>> {
        let (st, v) = self
            .s
            .get(
                &format!("/api/v1/agents/{}/updates", self.agent_id),
                &self.s.admin_token,
            )
            .await?;
        anyhow::ensure!(st == StatusCode::OK, "{st}: {v}");
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    async fn wait_for_outcome(&self, to: &str) -> Result<Value> {
        let mut found = None;
        wait_until(&format!("an update report for {to}"), 120, async || {
            found = self
                .updates()
                .await?
                .into_iter()
                .find(|u| u["to_version"] == to);
            Ok(found.is_some())
        })
        .await
        .with_context(|| self.agent.log_text())?;
        found.context("report")
    }

    async fn agent_version(&self) -> Result<String> {
        let (_, a) = self
            .s
            .get(
                &format!("/api/v1/agents/{}", self.agent_id),
                &self.s.admin_token,
            )
            .await?;
        Ok(a["agent_version"].as_str().unwrap_or_default().to_string())
    }

    /// A release of the real agent binary stamped `version`.
    fn stamped(&self, version: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(format!("outpost-agent-{version}"));
        stamp_agent_version(&self.stripped, &p, version)?;
        Ok(p)
    }
}

async fn lab(extra_server_keys: &[&str]) -> Result<Lab> {
    lab_via(extra_server_keys, None).await
}

/// Given the server's address, puts a proxy in front of it: the proxy's URL.
type Proxy<'a> = &'a dyn Fn(&str) -> Result<String>;

/// `via`: a proxy in front of the server (given the server's address, it
/// returns the URL the agent uses).
async fn lab_via(extra_server_keys: &[&str], via: Option<Proxy<'_>>) -> Result<Lab> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("release.key");
    let public = generate_key(&key)?;
    let mut keys = vec![public.as_str()];
    keys.extend_from_slice(extra_server_keys);
    let s = Server::start_with_config(Backend::Sqlite, Some(&server_config(&keys))).await?;
    let org = s
        .post_ok(
            "/api/v1/organizations",
            &s.admin_token,
            serde_json::json!({"customer_code": "ACME", "name": "Acme", "phone": "+49 40 5550000"}),
        )
        .await?;
    let org = org["id"].as_i64().context("org")?;
    // The installed agent: a stripped copy of the binary under test in a
    // directory of its own (self-update replaces it).
    let stripped = dir.path().join("outpost-agent-stripped");
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(bin("outpost-agent"))
        .status()?
        .success();
    anyhow::ensure!(ok, "strip failed");
    let bindir = dir.path().join("bin");
    std::fs::create_dir_all(&bindir)?;
    let installed = bindir.join("outpost-agent");
    stamp_agent_version(&stripped, &installed, "9.0.0")?;
    let id_dir = dir.path().join("identity");
    let update_dir = dir.path().join("update");
    let config = dir.path().join("agent.toml");
    let url = match via {
        Some(proxy) => proxy(&s.base)?,
        None => s.base.clone(),
    };
    std::fs::write(
        &config,
        format!(
            r#"
[server]
url = "{base}"
identity_dir = "{id}"

[host]
enabled = false

[update]
enabled = true
trusted_keys = ["{public}"]
check_interval = "1s"
health_deadline = "6s"
binary = "{bin}"
dir = "{upd}"
"#,
            base = url,
            id = id_dir.display(),
            bin = installed.display(),
            upd = update_dir.display(),
        ),
    )?;
    enroll_agent(&s, &s.admin_token, org, &config).await?;
    let (_, agents) = s.get("/api/v1/agents", &s.admin_token).await?;
    let agent_id = agents[0]["id"].as_i64().context("agent id")?;
    let agent = AgentProcess::start_binary(&installed, &config, &dir.path().join("agent.log"))?;
    let lab = Lab {
        s,
        key,
        agent_id,
        bin: installed,
        stripped,
        update_dir,
        agent,
        dir,
    };
    wait_until("the agent's first heartbeat", 60, async || {
        Ok(lab.agent_version().await? == "9.0.0")
    })
    .await
    .with_context(|| lab.agent.log_text())?;
    Ok(lab)
}

#[tokio::test]
async fn agent_updates_itself_resuming_a_partial_download() -> Result<()> {
    let lab = lab(&[]).await?;
    let pid = lab.agent.pid();
    let release = lab.stamped("9.1.0")?;
    let body = sign(&lab.key, &release, "agent", "9.1.0", target())?;
    // An earlier download broke off after 40%: the part file is there.
    let bytes = std::fs::read(&release)?;
    let cut = bytes.len() * 2 / 5;
    let download = lab.update_dir.join("download");
    std::fs::create_dir_all(&download)?;
    let sha = body["sha256"].as_str().context("sha")?;
    std::fs::write(download.join(format!("{sha}.part")), &bytes[..cut])?;
    publish(&lab.s, &body, &release).await?;

    let report = lab.wait_for_outcome("9.1.0").await?;
    assert_eq!(
        report["outcome"],
        "succeeded",
        "{report}\n{}",
        lab.agent.log_text()
    );
    assert_eq!(report["from_version"], "9.0.0");
    wait_until("heartbeats from 9.1.0", 30, async || {
        Ok(lab.agent_version().await? == "9.1.0")
    })
    .await?;
    let log = lab.agent.log_text();
    assert!(
        log.contains("resuming the download") && log.contains(&format!("from={cut}")),
        "{log}"
    );
    // The new binary is installed, the previous one kept; same process.
    assert_eq!(std::fs::read(&lab.bin)?, bytes);
    let previous = lab.bin.with_file_name("outpost-agent.previous");
    let original = std::fs::read(&previous)?;
    assert_ne!(original, bytes);
    assert_eq!(lab.agent.pid(), pid);
    assert!(
        std::fs::read_dir(&download)?.next().is_none(),
        "the download is cleaned up"
    );
    let out = Command::new(&lab.bin).arg("--version").output()?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "outpost-agent 9.1.0"
    );
    // The heartbeat carries the clock skew (same host: none to speak of).
    let (_, a) = lab
        .s
        .get(
            &format!("/api/v1/agents/{}", lab.agent_id),
            &lab.s.admin_token,
        )
        .await?;
    assert!(
        a["clock_skew_secs"].as_i64().is_some_and(|s| s.abs() <= 2),
        "{a}"
    );
    Ok(())
}

#[tokio::test]
async fn tampered_untrusted_and_unhealthy_releases_are_refused_or_rolled_back() -> Result<()> {
    // The server also trusts a second key the agent does not (rotation
    // under way on the server only).
    let dir = tempfile::tempdir()?;
    let other_key = dir.path().join("other.key");
    let other_public = generate_key(&other_key)?;
    let mut lab = lab(&[&other_public]).await?;
    let installed = std::fs::read(&lab.bin)?;

    // 1. The stored artifact is altered after publication (storage or
    //    anything between server and agent): the agent's own SHA-256 check
    //    refuses it and reports.
    //    The agent is stopped meanwhile, so it cannot fetch the release
    //    before it is altered.
    lab.agent.kill();
    let release = lab.stamped("9.2.0")?;
    let body = sign(&lab.key, &release, "agent", "9.2.0", target())?;
    let id = publish(&lab.s, &body, &release).await?;
    let db = format!(
        "sqlite://{}",
        lab.s.dir.path().join("data").join("outpost.db").display()
    );
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&db).await?;
        sqlx::query(
            "UPDATE release_chunks SET data = zeroblob(length(data)) WHERE release_id = $1 AND seq = 1",
        )
        .bind(id)
        .execute(&mut c)
        .await?;
    }
    lab.agent.spawn()?;
    let report = lab.wait_for_outcome("9.2.0").await?;
    assert_eq!(report["outcome"], "refused", "{report}");
    assert!(
        report["detail"].as_str().unwrap_or("").contains("SHA-256"),
        "{report}"
    );
    assert_eq!(std::fs::read(&lab.bin)?, installed, "nothing installed");

    // 2. Signed by a key the server trusts but the agent does not.
    let release = lab.stamped("9.3.0")?;
    let body = sign(&other_key, &release, "agent", "9.3.0", target())?;
    publish(&lab.s, &body, &release).await?;
    let report = lab.wait_for_outcome("9.3.0").await?;
    assert_eq!(report["outcome"], "refused", "{report}");
    assert!(
        report["detail"]
            .as_str()
            .unwrap_or("")
            .contains("not a trusted"),
        "{report}"
    );

    // 3. A signature altered on the server (before the artifact is
    //    uploaded, so no agent sees the release before): refused before
    //    any download.
    let release = lab.stamped("9.4.0")?;
    let body = sign(&lab.key, &release, "agent", "9.4.0", target())?;
    let created = lab
        .s
        .post_ok("/api/v1/releases", &lab.s.admin_token, body)
        .await?;
    let id = created["id"].as_i64().context("id")?;
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&db).await?;
        let forged = sign(&lab.key, &release, "agent", "9.4.1", target())?;
        sqlx::query("UPDATE releases SET signature = $1 WHERE id = $2")
            .bind(forged["signature"].as_str())
            .bind(id)
            .execute(&mut c)
            .await?;
    }
    let (st, v) = upload(&lab.s, id, std::fs::read(&release)?).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let report = lab.wait_for_outcome("9.4.0").await?;
    assert_eq!(report["outcome"], "refused", "{report}");
    assert!(
        report["detail"]
            .as_str()
            .unwrap_or("")
            .contains("signature"),
        "{report}"
    );

    // 4. A release that crashes at start: rolled back to the running one.
    let crash = dir.path().join("crash.sh");
    std::fs::write(&crash, "#!/bin/sh\necho broken release >&2\nexit 3\n")?;
    let body = sign(&lab.key, &crash, "agent", "9.5.0", target())?;
    publish(&lab.s, &body, &crash).await?;
    let report = lab.wait_for_outcome("9.5.0").await?;
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert!(
        report["detail"].as_str().unwrap_or("").contains("exited"),
        "{report}"
    );
    assert_eq!(
        std::fs::read(&lab.bin)?,
        installed,
        "the previous binary is back"
    );

    // 5. A release that starts but never reports healthy: rolled back at
    //    the deadline.
    let silent = dir.path().join("silent.sh");
    std::fs::write(&silent, "#!/bin/sh\nexec sleep 600\n")?;
    let body = sign(&lab.key, &silent, "agent", "9.6.0", target())?;
    publish(&lab.s, &body, &silent).await?;
    let report = lab.wait_for_outcome("9.6.0").await?;
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert!(
        report["detail"]
            .as_str()
            .unwrap_or("")
            .contains("did not report healthy"),
        "{report}"
    );
    assert_eq!(std::fs::read(&lab.bin)?, installed);

    // Through all of it the agent kept running the version it had.
    wait_until("heartbeats after the rollbacks", 30, async || {
        Ok(lab.agent_version().await? == "9.0.0")
    })
    .await?;
    // A refused or rolled-back release is not tried again: one report each.
    let updates = lab.updates().await?;
    for v in ["9.2.0", "9.3.0", "9.4.0", "9.5.0", "9.6.0"] {
        assert_eq!(
            updates.iter().filter(|u| u["to_version"] == v).count(),
            1,
            "{v}: {updates:?}"
        );
    }

    // 6. An older version is not offered without an explicit downgrade:
    //    the agent asks twice more and nothing happens; published as a
    //    downgrade, it is installed.
    let older = lab.stamped("8.0.0")?;
    let body = sign(&lab.key, &older, "agent", "8.0.0", target())?;
    publish(&lab.s, &body, &older).await?;
    let asked = update_queries(&lab.s).await?;
    wait_until("two more update checks", 30, async || {
        Ok(update_queries(&lab.s).await? >= asked + 2)
    })
    .await?;
    assert!(lab
        .updates()
        .await?
        .iter()
        .all(|u| u["to_version"] != "8.0.0"));
    assert_eq!(std::fs::read(&lab.bin)?, installed);
    let older = lab.stamped("8.1.0")?;
    let mut body = sign(&lab.key, &older, "agent", "8.1.0", target())?;
    body["allow_downgrade"] = true.into();
    publish(&lab.s, &body, &older).await?;
    let report = lab.wait_for_outcome("8.1.0").await?;
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(std::fs::read(&lab.bin)?, std::fs::read(&older)?);
    Ok(())
}

/// A TCP proxy that cuts the first connection over which the server has
/// sent more than `cut_after` bytes (an artifact download), mid-transfer.
/// Returns its URL and a flag set once it has cut.
fn cutting_proxy(
    server: &str,
    cut_after: u64,
) -> Result<(String, std::sync::Arc<std::sync::atomic::AtomicBool>)> {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let upstream = server.trim_start_matches("http://").to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let cut = Arc::new(AtomicBool::new(false));
    let flag = cut.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_read, mut s_write) = match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => (c, s),
                _ => continue,
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let flag = flag.clone();
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut sent = 0u64;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n as u64;
                    if sent > cut_after && !flag.swap(true, Ordering::SeqCst) {
                        let _ = c_write.shutdown(std::net::Shutdown::Both);
                        let _ = s_read.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Ok((url, cut))
}

#[tokio::test]
async fn a_download_cut_off_midway_resumes() -> Result<()> {
    let cut = std::sync::Mutex::new(None);
    let lab = lab_via(
        &[],
        Some(&|base: &str| {
            let (url, flag) = cutting_proxy(base, 3 * 1024 * 1024)?;
            *cut.lock().map_err(|_| anyhow::anyhow!("lock"))? = Some(flag);
            Ok(url)
        }),
    )
    .await?;
    let cut = cut
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone()
        .context("proxy")?;
    let release = lab.stamped("9.1.0")?;
    let body = sign(&lab.key, &release, "agent", "9.1.0", target())?;
    publish(&lab.s, &body, &release).await?;
    let report = lab.wait_for_outcome("9.1.0").await?;
    assert_eq!(
        report["outcome"],
        "succeeded",
        "{report}\n{}",
        lab.agent.log_text()
    );
    assert!(
        cut.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy cut a download"
    );
    let log = lab.agent.log_text();
    assert!(
        log.contains("the download broke off at byte")
            || log.contains("the download ended at byte"),
        "{log}"
    );
    assert!(log.contains("resuming the download"), "{log}");
    assert_eq!(std::fs::read(&lab.bin)?, std::fs::read(&release)?);
    Ok(())
}
