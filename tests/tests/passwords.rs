//! Web-console passwords through the API and the CLI: who may set whose,
//! the current password for one's own, the policy, and the CLI for a lost
//! password; on both backends. Only argon2id hashes are stored.

use anyhow::Result;
use outpost_tests::{bin, Backend, Server, World};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

async fn put(s: &Server, token: &str, user: i64, body: Value) -> Result<(u16, Value)> {
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/v1/users/{user}/password"),
            token,
            Some(body),
        )
        .await?;
    Ok((st.as_u16(), v))
}

/// `admin password --username U` with `input` on standard input.
fn cli_password(s: &Server, username: &str, input: &str) -> Result<(bool, String)> {
    let mut child = Command::new(bin("outpost-server"))
        .args(["admin", "password", "--username", username])
        .args(s.data_args())
        .env("OUTPOST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

async fn passwords(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let (eng_id, eng_token) = (w.engineer.0, w.engineer.1.clone());
    let (_, me) = s.get("/api/v1/me", &eng_token).await?;
    let eng_name = me["username"].as_str().unwrap_or_default().to_string();

    // An admin sets an engineer's password.
    let (st, v) = put(
        &s,
        &s.admin_token,
        eng_id,
        json!({ "password": "first long password" }),
    )
    .await?;
    assert_eq!(st, 204, "{v}");
    // The policy, naming the field.
    let (st, v) = put(&s, &s.admin_token, eng_id, json!({ "password": "short" })).await?;
    assert_eq!((st, v["field"].as_str()), (422, Some("password")), "{v}");
    assert!(v.to_string().contains("at least 10"), "{v}");
    let (st, v) = put(
        &s,
        &s.admin_token,
        eng_id,
        json!({ "password": format!("{eng_name}") }),
    )
    .await?;
    assert_eq!(st, 422, "{v}");
    let (st, v) = put(
        &s,
        &s.admin_token,
        eng_id,
        json!({ "password": "long enough!", "pasword": "x" }),
    )
    .await?;
    assert_eq!(st, 422, "{v}");
    assert!(v.to_string().contains("pasword"), "{v}");

    // The engineer changes their own: the current password is required and
    // must match.
    let (st, v) = put(
        &s,
        &eng_token,
        eng_id,
        json!({ "password": "second long password" }),
    )
    .await?;
    assert_eq!(
        (st, v["field"].as_str()),
        (422, Some("current_password")),
        "{v}"
    );
    let (st, v) = put(
        &s,
        &eng_token,
        eng_id,
        json!({ "password": "second long password", "current_password": "wrong one here" }),
    )
    .await?;
    assert_eq!(st, 403, "{v}");
    let (st, v) = put(
        &s,
        &eng_token,
        eng_id,
        json!({ "password": "second long password", "current_password": "first long password" }),
    )
    .await?;
    assert_eq!(st, 204, "{v}");
    // Not someone else's.
    let (st, _) = put(
        &s,
        &eng_token,
        w.engineer2.0,
        json!({ "password": "not yours to set" }),
    )
    .await?;
    assert_eq!(st, 403);
    // No such user.
    let (st, _) = put(
        &s,
        &s.admin_token,
        999_999,
        json!({ "password": "long enough pass" }),
    )
    .await?;
    assert_eq!(st, 404);

    // A lost password, set from the CLI; the engineer then proves it.
    let (ok, said) = cli_password(&s, &eng_name, "third long password\n")?;
    assert!(ok, "{said}");
    let (ok, said) = cli_password(&s, &eng_name, "short\n")?;
    assert!(!ok && said.contains("at least 10"), "{said}");
    let (ok, said) = cli_password(&s, "nobody-here", "long enough password\n")?;
    assert!(!ok && said.contains("no user named"), "{said}");
    let (st, v) = put(
        &s,
        &eng_token,
        eng_id,
        json!({ "password": "fourth long password", "current_password": "third long password" }),
    )
    .await?;
    assert_eq!(st, 204, "{v}");
    Ok(())
}

#[tokio::test]
async fn passwords_sqlite() -> Result<()> {
    passwords(Backend::Sqlite).await
}

#[tokio::test]
async fn passwords_postgres() -> Result<()> {
    passwords(Backend::Postgres).await
}
