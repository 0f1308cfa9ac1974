//! Online backup of the embedded SQLite database, and checking a backup
//! file before it is restored. (PostgreSQL is backed up with its own
//! tools: README, "Backup and restore".)

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use super::{Backend, Store, SQLITE_MIGRATIONS};
use crate::error::{Error, Result};

/// What a backup file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The newest schema migration applied in it.
    pub schema_version: i64,
    /// Cases in it.
    pub cases: i64,
}

impl Store {
    /// Writes a consistent copy of the live database to `dest`, which must
    /// not exist (`VACUUM INTO`: one read transaction, so writers go on;
    /// the copy is compact and has no WAL of its own).
    pub async fn backup_into(&self, dest: &Path) -> Result<()> {
        let Backend::Sqlite { write, .. } = &self.backend else {
            return Err(Error::invalid(
                "backup",
                "the database is PostgreSQL: back it up with pg_dump \
                 (README, \"Backup and restore\")",
            ));
        };
        let dest = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup", "the file name is not UTF-8"))?;
        sqlx::query("VACUUM INTO ?")
            .bind(dest)
            .execute(write)
            .await?;
        Ok(())
    }
}

/// The newest schema migration this server knows.
pub fn newest_sqlite_schema() -> i64 {
    SQLITE_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Opens `path` read-only and checks that it is an intact Outpost database
/// this server can use: SQLite's integrity check passes, and its schema is
/// not newer than this server's.
pub async fn check_sqlite_file(path: &Path) -> Result<BackupInfo> {
    let named = |what: String| Error::invalid("file", format!("{}: {what}", path.display()));
    if !path.is_file() {
        return Err(named("no such file".into()));
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| named(format!("cannot be opened as SQLite: {e}")))?;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| {
            let e = e.to_string();
            named(if e.contains("not a database") {
                format!("is not an SQLite database ({e})")
            } else {
                format!("is damaged: it fails SQLite's integrity check ({e})")
            })
        })?;
    if integrity != "ok" {
        return Err(named(format!(
            "is damaged: it fails SQLite's integrity check ({integrity})"
        )));
    }
    let row = sqlx::query(
        "SELECT (SELECT MAX(version) FROM _sqlx_migrations WHERE success), \
                (SELECT COUNT(*) FROM cases)",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|_| {
        named("is not an Outpost database (no schema history or no cases table)".into())
    })?;
    let schema_version: Option<i64> = row.try_get(0)?;
    let cases: i64 = row.try_get(1)?;
    conn.close().await?;
    let schema_version =
        schema_version.ok_or_else(|| named("has no applied schema migration".into()))?;
    let newest = newest_sqlite_schema();
    if schema_version > newest {
        return Err(named(format!(
            "comes from a newer server (schema {schema_version}; this one knows up to {newest})"
        )));
    }
    Ok(BackupInfo {
        schema_version,
        cases,
    })
}
