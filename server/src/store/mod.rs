//! The store: the only module that speaks SQL.
//!
//! One [`Store`] runs on either backend. SQLite (the embedded default) uses
//! WAL mode with one writer connection and a pool of readers, so writers never
//! fight over the lock and reads never wait for writes. PostgreSQL uses one
//! pool. Every query is written once: the SQL text uses `$N` placeholders,
//! which both drivers accept, and the [`read!`]/[`write!`] macros expand the
//! same Rust code once per backend, so each runs on its native driver types.
//! Where the dialects differ (`LIKE` vs `ILIKE`) the code asks [`Dialect`].
//!
//! Migrations live in `server/migrations/{sqlite,postgres}`, numbered alike.

pub mod agents;
pub mod auth;
pub mod backup;
pub mod cases;
pub mod dashboard;
pub mod directory;
pub mod field;
pub mod kb;
pub mod mail;
pub mod meta;
pub mod notify;
pub mod relay;
pub mod releases;
pub mod replicas;
pub mod reports;
pub mod rma;
pub mod sla;
pub mod timers;
pub mod upgrades;
pub mod web;

pub use cases::{CaseFilter, CaseRow, Cursor};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

use crate::config::Database;
use crate::error::{Error, Result};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
enum Backend {
    Sqlite {
        /// Exactly one connection: SQLite has one writer at a time anyway,
        /// and queueing here is fairer than SQLITE_BUSY retries.
        write: SqlitePool,
        /// Readers, concurrent with the writer thanks to WAL.
        read: SqlitePool,
    },
    Postgres {
        pool: PgPool,
    },
}

/// Which SQL dialect a query is being built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Case-insensitive LIKE.
    pub fn ilike(self) -> &'static str {
        match self {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Queue of the case writer task (group commit); `None` inside that task.
    creator: Option<tokio::sync::mpsc::Sender<cases::CreateRequest>>,
    /// Poked after a commit that queued outbox rows (see `notify`).
    outbox_signal: std::sync::Arc<tokio::sync::Notify>,
}

/// Run `$body` with `$p` bound to a pool that may read.
macro_rules! read {
    ($self:expr, |$p:ident, $d:ident| $body:expr) => {
        match &$self.backend {
            $crate::store::Backend::Sqlite { read: $p, .. } => {
                #[allow(unused_variables)]
                let $d = $crate::store::Dialect::Sqlite;
                $body
            }
            $crate::store::Backend::Postgres { pool: $p } => {
                #[allow(unused_variables)]
                let $d = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
}

/// Run `$body` with `$p` bound to the pool that writes.
macro_rules! write {
    ($self:expr, |$p:ident, $d:ident| $body:expr) => {
        match &$self.backend {
            $crate::store::Backend::Sqlite { write: $p, .. } => {
                #[allow(unused_variables)]
                let $d = $crate::store::Dialect::Sqlite;
                $body
            }
            $crate::store::Backend::Postgres { pool: $p } => {
                #[allow(unused_variables)]
                let $d = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(crate) use {read, write};

impl Store {
    /// Connect (creating the SQLite file and its directory if needed) and
    /// bring the schema up to date.
    pub async fn open(db: &Database, max_connections: u32) -> Result<Store> {
        let store = match db {
            Database::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::invalid("data_dir", format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    .pragma("temp_store", "memory")
                    .pragma("cache_size", "-32000");
                let write = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts.clone())
                    .await?;
                let read = SqlitePoolOptions::new()
                    .max_connections(max_connections.max(2))
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts.read_only(true))
                    .await?;
                SQLITE_MIGRATIONS.run(&write).await?;
                Store {
                    backend: Backend::Sqlite { write, read },
                    creator: None,
                    outbox_signal: Default::default(),
                }
            }
            Database::Postgres { url } => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(|e| Error::invalid("database.url", e))?
                    .application_name("outpost-server");
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Store {
                    backend: Backend::Postgres { pool },
                    creator: None,
                    outbox_signal: Default::default(),
                }
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(cases::case_writer(store.clone(), rx));
        Ok(Store {
            creator: Some(tx),
            ..store
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// A trivial round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        read!(self, |p, _d| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Run one SQL statement as given. Only for tests that must show what the
    /// database itself refuses (e.g. UPDATE of the history).
    pub async fn execute_raw(&self, sql: &str) -> Result<u64> {
        write!(self, |p, _d| {
            Ok(sqlx::query(sql).execute(p).await?.rows_affected())
        })
    }

    /// SQLite: fold the write-ahead log into the database file, so the file
    /// alone is a complete copy once writes stop. PostgreSQL: nothing to do.
    pub async fn checkpoint(&self) -> Result<()> {
        if let Backend::Sqlite { write, .. } = &self.backend {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(write)
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres { pool } => pool.close().await,
        }
    }
}

/// Turn constraint violations into the client errors they stand for.
pub(crate) fn map_db_err(e: sqlx::Error, what: &str) -> Error {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return Error::conflict(format!("{what} already exists"));
        }
        if d.is_foreign_key_violation() {
            return Error::invalid(what, "refers to something that does not exist");
        }
        if d.is_check_violation() {
            return Error::invalid(
                what,
                format!("violates a rule of the data model: {}", d.message()),
            );
        }
    }
    Error::Database(e)
}

/// Convert a stored date text.
pub(crate) fn parse_date(field: &str, s: &str) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::Corrupt(format!("{field} holds {s:?}, not a date")))
}

pub(crate) fn parse_enum<T: FromStr>(field: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("{field} holds unknown value {s:?}")))
}
