//! Release artifact download throughput: the agent's own downloader
//! (`outpost_agent::update::fetch_artifact`: signed GET, streamed to a file,
//! then SHA-256 checked) against `curl` fetching the same artifact from the
//! same server (the staff endpoint, bearer token), both writing to a file
//! on the same disk. Run on a release build (see BENCHMARKS.md):
//!
//! ```sh
//! cargo build --release -p outpost-server -p outpost-tests --bin outpost-server --bin artifact-bench
//! target/release/artifact-bench [MiB]
//! ```

use anyhow::{bail, Context, Result};
use outpost_tests::{bin, Backend, Server};
use std::process::Command;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(256);
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("release.key");
    let out = Command::new(bin("outpost-server"))
        .args(["admin", "release-key", "generate"])
        .arg(&key)
        .output()?;
    let public = String::from_utf8(out.stdout)?.trim().to_string();
    let s = Server::start_with_config(
        Backend::Sqlite,
        Some(&format!("[releases]\ntrusted_keys = [\"{public}\"]\n")),
    )
    .await?;
    // The artifact: random bytes, so nothing compresses.
    let artifact = dir.path().join("artifact.bin");
    {
        use rand::RngCore;
        let mut bytes = vec![0u8; mib * 1024 * 1024];
        rand::thread_rng().fill_bytes(&mut bytes);
        std::fs::write(&artifact, &bytes)?;
    }
    let target = outpost_agent::version::TARGET;
    let out = Command::new(bin("outpost-server"))
        .args(["admin", "sign-release", "--key"])
        .arg(&key)
        .arg("--file")
        .arg(&artifact)
        .args(["--version", "99.0.0", "--target", target])
        .output()?;
    if !out.status.success() {
        bail!("sign-release: {}", String::from_utf8_lossy(&out.stderr));
    }
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let created = s.post_ok("/api/v1/releases", &s.admin_token, body).await?;
    let id = created["id"].as_i64().context("id")?;
    let url = format!("{}/api/v1/releases/{id}/artifact", s.base);
    let auth = format!("Authorization: Bearer {}", s.admin_token);
    let started = Instant::now();
    let up = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null", "-H", &auth, "-T"])
        .arg(&artifact)
        .arg(&url)
        .status()?;
    anyhow::ensure!(up.success(), "upload failed");
    let upload_secs = started.elapsed().as_secs_f64();

    // An enrolled agent identity, for the signed download.
    let org = s
        .post_ok(
            "/api/v1/organizations",
            &s.admin_token,
            serde_json::json!({"customer_code": "BENCH", "name": "Bench", "phone": "+49 40 5550000"}),
        )
        .await?;
    let t = s
        .post_ok(
            "/api/v1/enrollment-tokens",
            &s.admin_token,
            serde_json::json!({ "organization_id": org["id"] }),
        )
        .await?;
    let id_dir = dir.path().join("identity");
    let identity = outpost_agent::enroll::enroll(
        &s.base,
        t["token"].as_str().context("token")?,
        None,
        &id_dir,
        false,
    )
    .await?;
    let (_, key) = outpost_agent::identity::Identity::load(&id_dir)?;
    let uplink = outpost_agent::uplink::Uplink::new(&s.base, None, identity.agent_id, key)?;
    let offer: outpost_protocol::UpdateOffer = uplink
        .post_json(
            outpost_protocol::release::UPDATE_PATH,
            &outpost_protocol::UpdateQuery {
                protocol_version: outpost_protocol::PROTOCOL_VERSION,
                target: target.into(),
                current_version: "0.0.1".into(),
            },
        )
        .await?;
    let offer = offer.release.context("no release offered")?;

    let size = (mib * 1024 * 1024) as f64 / (1024.0 * 1024.0);
    println!("artifact: {mib} MiB of random bytes, SQLite store, loopback HTTP");
    println!(
        "upload (curl -T, hashed and stored in 1 MiB chunks): {:.0} MiB/s",
        size / upload_secs
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "download", "run 1", "run 2", "run 3"
    );
    let mut agent = Vec::new();
    for run in 0..3 {
        let part = dir.path().join(format!("agent-{run}.part"));
        let started = Instant::now();
        outpost_agent::update::fetch_artifact(&uplink, &offer, &part).await?;
        agent.push(size / started.elapsed().as_secs_f64());
        std::fs::remove_file(&part)?;
    }
    let mut curl = Vec::new();
    for run in 0..3 {
        let file = dir.path().join(format!("curl-{run}.bin"));
        let started = Instant::now();
        let ok = Command::new("curl")
            .args(["-sS", "-f", "-H", &auth, "-o"])
            .arg(&file)
            .arg(&url)
            .status()?;
        anyhow::ensure!(ok.success(), "curl failed");
        curl.push(size / started.elapsed().as_secs_f64());
        std::fs::remove_file(&file)?;
    }
    let row = |name: &str, v: &[f64]| {
        println!(
            "{name:<44} {:>6.0} MiB/s {:>4.0} MiB/s {:>4.0} MiB/s",
            v[0], v[1], v[2]
        );
    };
    row("agent (signed GET, to file, then SHA-256)", &agent);
    row("curl (bearer token, to file)", &curl);
    Ok(())
}
