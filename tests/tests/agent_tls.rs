//! The server's own HTTPS listener and the agent's certificate pin: a
//! self-signed certificate made by `openssl`, enrolment that must be told the
//! pin, and an agent that from then on trusts exactly that key.

use anyhow::{Context, Result};
use outpost_tests::{bin, wait_until, AgentProcess, Backend, Server, World};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// A self-signed certificate for 127.0.0.1 in `dir`; returns the pin
/// `openssl` computes for its key, or None without openssl.
fn self_signed(dir: &Path, name: &str) -> Option<String> {
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-subj", "/CN=outpost-test", "-days", "2"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .output()
        .ok()?;
    if !made.status.success() {
        return None;
    }
    let spki = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(dir.join(format!("{name}.key")))
        .output()
        .ok()?;
    Some(hex::encode(Sha256::digest(&spki.stdout)))
}

fn enroll(base: &str, token: &str, pin: Option<&str>, config: &Path) -> Result<(bool, String)> {
    let mut cmd = Command::new(bin("outpost-agent"));
    cmd.args(["enroll", "--server", base, "--token", token, "--config"])
        .arg(config);
    if let Some(pin) = pin {
        cmd.args(["--tls-pin", pin]);
    }
    let out = cmd.output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn agent_pins_a_self_signed_server() -> Result<()> {
    let certs = tempfile::tempdir()?;
    let Some(pin) = self_signed(certs.path(), "server") else {
        eprintln!("SKIPPED: no openssl to make a certificate");
        return Ok(());
    };
    let other_pin = self_signed(certs.path(), "other").context("second certificate")?;
    let config = format!(
        "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n[agents]\nheartbeat_interval = \"1s\"\n",
        certs.path().join("server.crt").display(),
        certs.path().join("server.key").display()
    );
    let s = Server::start_with_config(Backend::Sqlite, Some(&config)).await?;
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let w = World::build(&s).await?;

    // The token comes with the pin and the command to run.
    let t = s
        .post_ok(
            "/api/v1/enrollment-tokens",
            &w.dispatcher,
            serde_json::json!({ "organization_id": w.org_a }),
        )
        .await?;
    assert_eq!(t["server_tls_pin_sha256"], pin.as_str(), "{t}");
    let token = t["token"].as_str().context("token")?;
    let command = t["enroll_command"].as_str().context("enroll_command")?;
    assert!(
        command.contains(&format!("--server {}", s.base))
            && command.contains(&format!("--token {token}"))
            && command.ends_with(&format!("--tls-pin {pin}")),
        "{command}"
    );

    let dir = tempfile::tempdir()?;
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "[server]\nurl = \"{}\"\nidentity_dir = \"{}\"\n\n[host]\nenabled = false\n",
            s.base,
            dir.path().join("identity").display()
        ),
    )?;

    // Without the pin the self-signed certificate is not trusted, and the
    // error says what to do; the token is not spent.
    let (ok, err) = enroll(&s.base, token, None, &agent_config)?;
    eprintln!("without a pin: {err}");
    assert!(!ok);
    assert!(err.contains("--tls-pin"), "{err}");
    // A wrong pin is refused, in any spelling.
    let (ok, err) = enroll(&s.base, token, Some(&other_pin), &agent_config)?;
    eprintln!("wrong pin: {err}");
    assert!(!ok, "a wrong pin must be refused");
    assert!(err.contains("certificate"), "{err}");
    let (ok, err) = enroll(&s.base, token, Some("12:34"), &agent_config)?;
    assert!(!ok && err.contains("64 hex digits"), "{err}");
    // Plain HTTP to the TLS port gets nowhere.
    let plain = s.base.replace("https://", "http://");
    let (ok, _) = enroll(&plain, token, Some(&pin), &agent_config)?;
    assert!(!ok, "plain HTTP to the HTTPS listener");

    // The right pin, written the way openssl prints fingerprints.
    let colons = pin
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let (ok, err) = enroll(&s.base, token, Some(&colons), &agent_config)?;
    assert!(ok, "{err}");
    let identity: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dir.path().join("identity").join("identity.json"),
    )?)?;
    assert_eq!(
        identity["server_tls_pin_sha256"],
        pin.as_str(),
        "{identity}"
    );

    // The daemon talks to the server over the pinned connection.
    let agent = AgentProcess::start(&agent_config, &dir.path().join("agent.log"))?;
    wait_until("the agent's heartbeat over HTTPS", 30, async || {
        let (_, agents) = s.get("/api/v1/agents", &w.dispatcher).await?;
        Ok(agents
            .as_array()
            .is_some_and(|a| a.iter().any(|a| !a["last_seen_at"].is_null())))
    })
    .await
    .with_context(|| agent.log_text())?;
    Ok(())
}
