//! The case history is append-only and tamper-evident, on both backends:
//! plain SQL cannot UPDATE or DELETE it, and with the protection removed an
//! altered or removed entry is caught by `outpost-server admin verify`.

use anyhow::{Context, Result};
use outpost_tests::{Backend, Server, World};
use serde_json::json;

/// Run SQL directly on the server's database (as an intruder would).
async fn sql(s: &Server, stmt: &str) -> Result<u64, String> {
    use sqlx::Connection;
    let r = match &s.pg {
        Some(pg) => {
            let mut c = sqlx::PgConnection::connect(&pg.url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(stmt)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
        }
        None => {
            let path = s.dir.path().join("data").join("outpost.db");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(stmt)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
        }
    };
    r.map_err(|e| e.to_string())
}

async fn append_only_and_tamper_evident(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let first = w.open_case(&s, false, "first").await?;
    let second = w.open_case(&s, false, "second").await?;
    for n in [&first, &second] {
        for t in ["checked logs", "replaced cable"] {
            s.post_ok(
                &format!("/api/v1/cases/{n}/notes"),
                &w.engineer.1,
                json!({ "text": t }),
            )
            .await?;
        }
    }
    let ok = s.cli(&["admin", "verify"])?;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("verified 2 cases"));

    // The database itself refuses changes to history.
    let target = format!("case_id = (SELECT id FROM cases WHERE number = '{first}') AND seq = 2");
    for stmt in [
        format!("UPDATE activities SET body = '{{\"kind\":\"note\",\"text\":\"nothing happened\"}}' WHERE {target}"),
        format!("DELETE FROM activities WHERE {target}"),
        "DELETE FROM activities".to_string(),
        format!("DELETE FROM cases WHERE number = '{first}'"),
    ] {
        let err = sql(&s, &stmt).await.err().with_context(|| format!("{stmt} must fail"))?;
        assert!(err.contains("append-only") || err.contains("never deleted"), "{stmt}: {err}");
    }
    if backend == Backend::Postgres {
        let err = sql(&s, "TRUNCATE activities CASCADE")
            .await
            .err()
            .context("TRUNCATE must fail")?;
        assert!(err.contains("append-only"), "{err}");
    }
    let ok = s.cli(&["admin", "verify"])?;
    assert!(ok.status.success(), "refused statements changed nothing");

    // Remove the protection, alter one entry of the first case and remove
    // the last entry of the second: verify names both.
    let drops: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER activities_no_update",
            "DROP TRIGGER activities_no_delete",
        ],
        Backend::Postgres => &["DROP TRIGGER activities_no_update_delete ON activities"],
    };
    for d in drops {
        sql(&s, d).await.map_err(anyhow::Error::msg)?;
    }
    let n = sql(&s, &format!("UPDATE activities SET body = '{{\"kind\":\"note\",\"text\":\"nothing happened\"}}' WHERE {target}"))
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(n, 1);
    let n = sql(&s, &format!("DELETE FROM activities WHERE case_id = (SELECT id FROM cases WHERE number = '{second}') AND seq = 3"))
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(n, 1);
    let bad = s.cli(&["admin", "verify"])?;
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "verify must fail: {out}");
    assert!(
        out.contains(&format!("case {first} entry #2")),
        "names the altered entry: {out}"
    );
    assert!(
        out.contains(&format!("case {second}")),
        "names the truncated case: {out}"
    );
    assert!(out.contains("2 case(s)"), "{out}");
    Ok(())
}

#[tokio::test]
async fn append_only_and_tamper_evident_sqlite() -> Result<()> {
    append_only_and_tamper_evident(Backend::Sqlite).await
}

#[tokio::test]
async fn append_only_and_tamper_evident_postgres() -> Result<()> {
    append_only_and_tamper_evident(Backend::Postgres).await
}

#[tokio::test]
async fn corrections_are_new_entries() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let n = w.open_case(&s, false, "typo").await?;
    s.post_ok(
        &format!("/api/v1/cases/{n}/notes"),
        &w.engineer.1,
        json!({ "text": "reboot fixed it" }),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/cases/{n}/notes"),
        &w.engineer.1,
        json!({ "text": "correction: a power cycle fixed it", "corrects": 3 }),
    )
    .await?;
    let (_, h) = s
        .get(&format!("/api/v1/cases/{n}/activities"), &w.engineer.1)
        .await?;
    let entries = h.as_array().cloned().unwrap_or_default();
    // opened, the coverage check, the note, its correction
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[1]["kind"], "entitlement");
    assert_eq!(entries[2]["text"], "reboot fixed it", "the original stays");
    assert_eq!(entries[3]["corrects"], 3);
    assert_eq!(
        entries[3]["prev_hash"], entries[2]["hash"],
        "entries are chained"
    );
    let (st, v) = s
        .post(
            &format!("/api/v1/cases/{n}/notes"),
            &w.engineer.1,
            json!({ "text": "x", "corrects": 99 }),
        )
        .await?;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["field"], "corrects");
    Ok(())
}
