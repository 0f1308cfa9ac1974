//! The `outpost-server` command line as a user meets it: the README's demo
//! command, bootstrap, verify, config errors, and the service endpoints
//! (/healthz, /metrics, the OpenAPI document).

use anyhow::{Context, Result};
use outpost_tests::{bin, Backend, Demo, Server};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn demo_seeds_prints_tokens_and_serves() -> Result<()> {
    let mut demo = Demo::start()?;
    let (url, tokens) = (demo.url.clone(), demo.tokens.clone());
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "real address printed: {url}"
    );
    for u in [
        "admin", "dana", "erik", "emma", "xavier", "rita", "mona", "tomas", "celia", "ivan",
        "greta", "jana", "hank",
    ] {
        assert!(tokens.contains_key(u), "token for {u}");
    }
    let http = reqwest::Client::new();
    let get = |path: &str, who: &str| {
        http.get(format!("{url}{path}"))
            .bearer_auth(tokens.get(who).cloned().unwrap_or_default())
            .send()
    };
    let mut ready = false;
    for _ in 0..100 {
        if get("/healthz", "admin")
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "demo server answers");
    let all: serde_json::Value = get("/api/v1/cases?limit=200", "dana").await?.json().await?;
    let items = all["items"].as_array().cloned().unwrap_or_default();
    assert!(items.len() >= 7, "demo cases: {}", items.len());
    let statuses: std::collections::HashSet<String> = items
        .iter()
        .filter_map(|c| c["status"].as_str().map(String::from))
        .collect();
    for st in [
        "new",
        "assigned",
        "diagnosing",
        "waiting_parts",
        "resolved",
        "closed",
    ] {
        assert!(statuses.contains(st), "a demo case in state {st}");
    }
    let vendors: std::collections::HashSet<String> = items
        .iter()
        .filter_map(|c| c["vendor"].as_str().map(String::from))
        .collect();
    assert!(vendors.contains("Cisco") && vendors.contains("Huawei"));
    let jana: serde_json::Value = get("/api/v1/cases?limit=200", "jana").await?.json().await?;
    let jana_items = jana["items"].as_array().cloned().unwrap_or_default();
    assert!(
        !jana_items.is_empty()
            && jana_items
                .iter()
                .all(|c| c["organization_name"] == "Nordwind Logistik GmbH")
    );
    let dossier: serde_json::Value = get("/api/v1/organizations/1", "dana").await?.json().await?;
    assert_eq!(dossier["devices"].as_array().map(Vec::len), Some(12));
    assert!(dossier["projects"][0]["participants"]
        .as_array()
        .is_some_and(|p| p.len() == 4));
    let found: serde_json::Value = get("/api/v1/lookup?q=10042", "dana").await?.json().await?;
    assert_eq!(found[0]["organization"]["name"], "Nordwind Logistik GmbH");
    demo.stop();
    // Seeding is done once; a second start keeps the data and issues new tokens.
    let verify = Command::new(bin("outpost-server"))
        .args(["admin", "verify", "--data-dir"])
        .arg(demo.dir.path())
        .output()?;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    Ok(())
}

#[tokio::test]
async fn openapi_healthz_and_metrics() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let doc: serde_json::Value = s
        .http
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await?
        .json()
        .await?;
    assert!(doc["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3."));
    let paths = doc["paths"].as_object().context("paths")?;
    let expected = [
        ("/api/v1/cases", "post"),
        ("/api/v1/cases", "get"),
        ("/api/v1/cases/{number}", "get"),
        ("/api/v1/cases/{number}/activities", "get"),
        ("/api/v1/cases/{number}/status", "post"),
        ("/api/v1/cases/{number}/priority", "post"),
        ("/api/v1/cases/{number}/assign", "post"),
        ("/api/v1/cases/{number}/take-over", "post"),
        ("/api/v1/cases/{number}/classification", "post"),
        ("/api/v1/cases/{number}/notes", "post"),
        ("/api/v1/cases/{number}/calls", "post"),
        ("/api/v1/cases/{number}/field-visits", "post"),
        ("/api/v1/organizations", "post"),
        ("/api/v1/organizations", "get"),
        ("/api/v1/organizations/{id}", "get"),
        ("/api/v1/lookup", "get"),
        ("/api/v1/sites", "post"),
        ("/api/v1/sites", "get"),
        ("/api/v1/projects", "post"),
        ("/api/v1/projects", "get"),
        ("/api/v1/projects/{id}/participants", "post"),
        ("/api/v1/contracts", "post"),
        ("/api/v1/contracts", "get"),
        ("/api/v1/devices", "post"),
        ("/api/v1/devices", "get"),
        ("/api/v1/devices/{id}", "get"),
        ("/api/v1/me", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{id}/tokens", "post"),
        ("/api/v1/users/{id}/tokens", "get"),
        ("/api/v1/users/{id}/tokens/{token_id}", "delete"),
        ("/api/v1/users/{id}/ssh-keys", "post"),
        ("/api/v1/users/{id}/ssh-keys", "get"),
        ("/api/v1/users/{id}/ssh-keys/{key_id}", "delete"),
        ("/api/v1/users/{id}/password", "put"),
        ("/api/v1/calls", "post"),
        ("/api/v1/organizations/{id}", "patch"),
        ("/api/v1/contracts/{id}", "get"),
        ("/api/v1/contracts/{id}", "patch"),
        ("/api/v1/devices/{id}", "patch"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/cases/{number}/sla", "get"),
        ("/api/v1/reports/sla", "get"),
        ("/api/v1/reports/surveys", "get"),
        ("/api/v1/cases/{number}/fault-report", "post"),
        ("/api/v1/cases/{number}/notifications", "get"),
        ("/api/v1/alerts", "get"),
        ("/api/v1/alerts/{id}/ack", "post"),
        ("/api/v1/surveys/{token}", "get"),
        ("/api/v1/surveys/{token}", "post"),
        ("/api/v1/enrollment-tokens", "post"),
        ("/api/v1/agents", "get"),
        ("/api/v1/agents/{id}", "get"),
        ("/api/v1/agents/{id}/revoke", "post"),
        ("/api/v1/agent/enroll", "post"),
        ("/api/v1/agent/messages", "post"),
        ("/api/v1/organizations/{id}/topology", "get"),
        ("/api/v1/sla/policies", "get"),
        ("/api/v1/sla/policies/{name}", "put"),
        ("/api/v1/sla/policies/{name}", "delete"),
        ("/api/v1/sla/calendars", "get"),
        ("/api/v1/sla/calendars/{name}", "put"),
        ("/api/v1/sla/calendars/{name}", "delete"),
        ("/api/v1/sla/calendars/{name}/holidays", "post"),
        ("/api/v1/cases/{number}/diagnosis", "post"),
        ("/api/v1/remote-sessions", "get"),
        ("/api/v1/remote-sessions/{id}/kill", "post"),
        ("/api/v1/remote-attempts", "get"),
        ("/api/v1/replicas", "get"),
        ("/api/v1/devices/{id}/agent", "put"),
        ("/api/v1/cases/{number}/experts", "post"),
        ("/api/v1/cases/{number}/remote-approvals", "post"),
        ("/api/v1/cases/{number}/remote-approvals", "get"),
        ("/api/v1/remote-approvals/{id}/revoke", "post"),
        ("/api/v1/parts", "post"),
        ("/api/v1/parts", "get"),
        ("/api/v1/warehouses", "post"),
        ("/api/v1/warehouses", "get"),
        ("/api/v1/stock", "get"),
        ("/api/v1/stock", "post"),
        ("/api/v1/cases/{number}/shipments", "post"),
        ("/api/v1/shipments", "get"),
        ("/api/v1/shipments/{id}", "get"),
        ("/api/v1/shipments/{id}/{step}", "post"),
        ("/api/v1/kb/articles", "post"),
        ("/api/v1/kb/articles", "get"),
        ("/api/v1/kb/articles/{id}", "get"),
        ("/api/v1/kb/articles/{id}", "put"),
        ("/api/v1/kb/articles/{id}/versions", "get"),
        ("/api/v1/kb/articles/{id}/submit", "post"),
        ("/api/v1/kb/articles/{id}/review", "post"),
        ("/api/v1/kb/search", "get"),
        ("/api/v1/cases/{number}/suggestions", "get"),
        ("/api/v1/organizations/{id}/service-report", "get"),
        ("/api/v1/organizations/{id}/report-schedule", "get"),
        ("/api/v1/organizations/{id}/report-schedule", "put"),
        ("/api/v1/organizations/{id}/report-schedule", "delete"),
        ("/api/v1/stock/ledger", "get"),
        ("/api/v1/stock/units", "get"),
        ("/api/v1/cases/{number}/visits", "post"),
        ("/api/v1/cases/{number}/visits", "get"),
        ("/api/v1/visits", "get"),
        ("/api/v1/visits/{id}/{step}", "post"),
        ("/api/v1/inspection-schedules", "post"),
        ("/api/v1/inspection-schedules", "get"),
        ("/api/v1/inspection-schedules/{id}/inspections", "post"),
        ("/api/v1/inspections", "get"),
        ("/api/v1/mail/inbound", "post"),
        ("/api/v1/mail/messages", "get"),
        ("/api/v1/mail/messages/{id}/raw", "get"),
        ("/api/v1/mail/messages/{id}/release", "post"),
        ("/api/v1/cases/{number}/attachments", "get"),
        ("/api/v1/cases/{number}/attachments/{id}", "get"),
        ("/api/v1/releases", "post"),
        ("/api/v1/releases", "get"),
        ("/api/v1/releases/{id}", "get"),
        ("/api/v1/releases/{id}/artifact", "put"),
        ("/api/v1/releases/{id}/artifact", "get"),
        ("/api/v1/agent/update", "post"),
        ("/api/v1/agent/releases/{id}/artifact", "get"),
        ("/api/v1/agents/{id}/updates", "get"),
        ("/api/v1/campaigns", "post"),
        ("/api/v1/campaigns", "get"),
        ("/api/v1/campaigns/{id}", "get"),
        ("/api/v1/campaigns/{id}/{action}", "post"),
        ("/api/v1/campaigns/{id}/events", "get"),
        ("/api/v1/upgrades", "get"),
        ("/api/v1/devices/{id}/upgrades", "get"),
        ("/api/v1/agent/jobs", "post"),
    ];
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map(|o| o.len()).unwrap_or(0))
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "every route documented, nothing extra: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (p, m) in expected {
        let op = &paths[p][m];
        assert!(op.is_object(), "{m} {p} documented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{m} {p} has responses"
        );
    }
    // Every referenced schema exists.
    let schemas = doc["components"]["schemas"]
        .as_object()
        .context("schemas")?;
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "schema {name} is defined");
    }
    for s_name in [
        "CaseView",
        "NewCase",
        "ActivityView",
        "ErrorBody",
        "Dossier",
        "Status",
        "Priority",
    ] {
        assert!(schemas.contains_key(s_name), "{s_name}");
    }
    let h = s.http.get(format!("{}/healthz", s.base)).send().await?;
    assert_eq!(h.status(), 200);
    let _ = s.get("/api/v1/cases", &s.admin_token).await?;
    let m = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        m.contains(
            "outpost_http_requests_total{method=\"GET\",route=\"/api/v1/cases\",status=\"200\"}"
        ),
        "{m}"
    );
    assert!(
        m.contains("outpost_http_request_duration_seconds_bucket"),
        "{m}"
    );
    assert!(m.contains("outpost_cases{status=\"new\"} 0"), "{m}");
    Ok(())
}

#[tokio::test]
async fn admin_commands_and_config_errors() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let again = s.cli(&["admin", "bootstrap"])?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("an admin already exists"));
    let tok = s.cli(&[
        "admin",
        "token",
        "--username",
        "admin",
        "--name",
        "recovery",
    ])?;
    assert!(tok.status.success());
    let token = String::from_utf8_lossy(&tok.stdout).trim().to_string();
    assert_eq!(s.get("/api/v1/me", &token).await?.0, 200);
    let none = s.cli(&["admin", "token", "--username", "nobody"])?;
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("nobody"));

    let dir = tempfile::tempdir()?;
    let run = |args: &[&str]| {
        Command::new(bin("outpost-server"))
            .args(args)
            .env_remove("OUTPOST_DATABASE_URL")
            .output()
    };
    for (content, needle) in [
        ("[server]\nlisten_addr = \"x\"\n", "listen_addr"),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        ("[database]\nmax_connections = 0\n", "max_connections"),
        ("this is not toml", "invalid"),
    ] {
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, content)?;
        let out = run(&[
            "migrate",
            "--config",
            &f.display().to_string(),
            "--data-dir",
            &dir.path().display().to_string(),
        ])?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{content:?}: {err}"
        );
    }
    let out = run(&["migrate", "--config", "/nonexistent/outpost.toml"])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/outpost.toml"));
    let out = run(&[
        "serve",
        "--listen",
        "256.0.0.1:80",
        "--data-dir",
        &dir.path().display().to_string(),
    ])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("256.0.0.1:80"));
    // OUTPOST_DATABASE_URL selects PostgreSQL without any file or flag.
    let pg = outpost_tests::PgDatabase::create().await?;
    let out = Command::new(bin("outpost-server"))
        .args(["migrate", "--data-dir", &dir.path().display().to_string()])
        .env("OUTPOST_DATABASE_URL", &pg.url)
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("PostgreSQL at"),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A config file gives the same data to every subcommand.
    let f = dir.path().join("ok.toml");
    std::fs::write(
        &f,
        format!(
            "[server]\ndata_dir = \"{}\"\n",
            dir.path().join("d").display()
        ),
    )?;
    let out = run(&["migrate", "--config", &f.display().to_string()])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("d").join("outpost.db").exists());
    Ok(())
}

#[test]
fn config_check_validates_a_file_without_starting() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let check = |text: &str| -> Result<std::process::Output> {
        let file = dir.path().join("outpost.toml");
        std::fs::write(&file, text)?;
        Ok(Command::new(bin("outpost-server"))
            .args(["config", "check"])
            .arg(&file)
            // Overrides of keys do not apply to the file checked.
            .env("OUTPOST_LISTEN", "not an address")
            .env("OUTPOST_DATABASE_URL", "mysql://nowhere")
            .output()?)
    };
    let file = dir.path().join("outpost.toml").display().to_string();
    // The packaged configuration file, and an empty one.
    for text in [include_str!("../../packaging/outpost-server.toml"), ""] {
        let out = check(text)?;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{file}: ok\n")
        );
    }
    for (text, expected) in [
        (
            "[server]\nlisten = \"127.0.0.1:8080\"\nlisten_adress = \"x\"\n",
            "line 3, column 1: unknown field `listen_adress`",
        ),
        (
            "[notify]\nretry_initial = \"5s\"\nmax_attempts = 0\n",
            "line 3, column 16: notify.max_attempts",
        ),
        (
            "[notify.email]\nhost = \"h\"\nfrom = \"a@example.com\"\nusername = \"u\"\npassword = { env = \"OUTPOST_TEST_UNSET_4711\" }\n",
            "line 5, column 12: the environment variable OUTPOST_TEST_UNSET_4711 is not set",
        ),
    ] {
        let out = check(text)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("{file}: {expected}")),
            "{text:?}: {err}"
        );
    }
    let out = Command::new(bin("outpost-server"))
        .args(["config", "check", "/nonexistent/outpost.toml"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read config file /nonexistent/outpost.toml"));
    Ok(())
}
