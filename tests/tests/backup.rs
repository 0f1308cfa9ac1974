//! Backup and restore. SQLite: `outpost-server backup` while the server
//! runs, `restore` with its refusals (a running server, existing data, bad
//! files). PostgreSQL: the README's pg_dump and pg_restore commands, then
//! `admin verify` on the restored database.

use anyhow::{Context, Result};
use outpost_tests::{bin, wait_until, Backend, PgDatabase, Server, World};
use std::path::Path;
use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[tokio::test]
async fn sqlite_backup_while_serving_and_restore_with_its_refusals() -> Result<()> {
    let mut s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let before = w.open_case(&s, false, "opened before the backup").await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("outpost-backup.db");

    // Online: the server keeps running.
    let out = s.cli(&["backup", path(&file)])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("integrity ok"), "{}", text(&out));
    assert!(!dir.path().join("outpost-backup.db.partial").exists());
    let out = s.cli(&["backup", path(&file)])?;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("exists; pass --force"),
        "{}",
        text(&out)
    );
    let out = s.cli(&["backup", path(&file), "--force"])?;
    assert!(out.status.success(), "{}", text(&out));

    // A case after the backup: the restore takes the data back before it.
    let after = w.open_case(&s, false, "opened after the backup").await?;

    // Not under a running server, --force or not.
    let out = s.cli(&["restore", path(&file), "--force"])?;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("stop the server first")
            && text(&out).contains("another outpost-server is running"),
        "{}",
        text(&out)
    );
    // A second server on the same embedded database is refused too.
    let second = Command::new(bin("outpost-server"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0"])
        .args(s.data_args())
        .output()?;
    assert!(!second.status.success());
    assert!(
        text(&second).contains("another outpost-server is running"),
        "{}",
        text(&second)
    );

    // Bad files, each named with what is wrong.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database, just text\n".repeat(200))?;
    let truncated = dir.path().join("truncated.db");
    let whole = std::fs::read(&file)?;
    std::fs::write(&truncated, &whole[..whole.len() / 2])?;
    let missing = dir.path().join("missing.db");
    s.stop();
    for (bad, expect) in [
        (&junk, "is not an SQLite database"),
        (&truncated, "is damaged"),
        (&missing, "no such file"),
    ] {
        let out = s.cli(&["restore", path(bad), "--force"])?;
        assert!(!out.status.success(), "{}", bad.display());
        assert!(
            text(&out).contains(expect) && text(&out).contains(path(bad)),
            "{}: {}",
            bad.display(),
            text(&out)
        );
    }

    // The database holds data: not without --force.
    let out = s.cli(&["restore", path(&file)])?;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds data") && text(&out).contains("--force"),
        "{}",
        text(&out)
    );
    let out = s.cli(&["restore", path(&file), "--force"])?;
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("every history chain is intact"), "{said}");
    let kept = said
        .lines()
        .find_map(|l| l.strip_prefix("the replaced database is kept as "))
        .context("where the replaced database went")?
        .to_string();
    assert!(Path::new(&kept).is_file(), "{kept}");

    // The server starts on the restored data: the case from before the
    // backup is there, the later one is not.
    s.restart()?;
    // (The client's pooled connection to the old process may fail once.)
    let mut st = reqwest::StatusCode::SERVICE_UNAVAILABLE;
    wait_until("the restarted server answers", 20, async || {
        Ok(
            match s
                .get(&format!("/api/v1/cases/{before}"), &w.dispatcher)
                .await
            {
                Ok((status, _)) => {
                    st = status;
                    true
                }
                Err(_) => false,
            },
        )
    })
    .await
    .with_context(|| s.log_text())?;
    assert_eq!(st, 200);
    let (st, _) = s
        .get(&format!("/api/v1/cases/{after}"), &w.dispatcher)
        .await?;
    assert_eq!(st, 404);
    s.verify_intact()?;
    Ok(())
}

#[tokio::test]
async fn postgres_backup_with_pg_dump_and_restore_with_pg_restore() -> Result<()> {
    if Command::new("pg_dump").arg("--version").output().is_err()
        || Command::new("pg_restore")
            .arg("--version")
            .output()
            .is_err()
    {
        println!("SKIPPED: pg_dump and pg_restore are needed (postgresql-client)");
        return Ok(());
    }
    let s = Server::start(Backend::Postgres).await?;
    let w = World::build(&s).await?;
    w.open_case(&s, false, "backed up with pg_dump").await?;
    let url = s.pg.as_ref().context("PostgreSQL")?.url.clone();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("outpost.dump");

    // `backup` points at pg_dump.
    let out = s.cli(&["backup", path(&file)])?;
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));

    // The README's commands, while the server runs.
    let out = Command::new("pg_dump")
        .args(["--format=custom", "--file", path(&file), &url])
        .output()?;
    assert!(out.status.success(), "pg_dump: {}", text(&out));
    let restored = PgDatabase::create().await?;
    let out = Command::new("pg_restore")
        .args([
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            &restored.url,
            path(&file),
        ])
        .output()?;
    assert!(out.status.success(), "pg_restore: {}", text(&out));

    // `admin verify` passes on the restored database, with every case.
    let verify = |db: &str| -> Result<String> {
        let out = Command::new(bin("outpost-server"))
            .args(["admin", "verify", "--database-url", db])
            .args(["--data-dir", path(dir.path())])
            .env("OUTPOST_LOG", "warn")
            .output()?;
        anyhow::ensure!(out.status.success(), "admin verify: {}", text(&out));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let original = verify(&url)?;
    assert_eq!(verify(&restored.url)?, original);
    assert!(
        original.contains("every history chain is intact"),
        "{original}"
    );
    Ok(())
}
