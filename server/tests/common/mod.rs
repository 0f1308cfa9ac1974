//! Test databases for the server's integration tests: SQLite in a temporary
//! directory, or a fresh PostgreSQL database (`OUTPOST_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`) created for one test and dropped
//! after it.

use outpost_server::config::Database;
use outpost_server::store::Store;

pub fn pg_admin() -> String {
    std::env::var("OUTPOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// One database, opened as often as a test wants (each open is a "replica").
pub struct TestDb {
    pub database: Database,
    _dir: tempfile::TempDir,
    pg: Option<String>,
}

impl TestDb {
    pub async fn new(postgres: bool) -> anyhow::Result<TestDb> {
        let dir = tempfile::tempdir()?;
        if !postgres {
            let path = dir.path().join("t.db");
            return Ok(TestDb {
                database: Database::Sqlite { path },
                _dir: dir,
                pg: None,
            });
        }
        use sqlx::Connection;
        let name = format!(
            "outpost_t_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut c = sqlx::PgConnection::connect(&pg_admin()).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await?;
        let base = pg_admin()
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or_default();
        let url = format!("{base}/{name}");
        Ok(TestDb {
            database: Database::Postgres { url },
            _dir: dir,
            pg: Some(name),
        })
    }

    pub async fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.database, 4).await?)
    }

    /// Drop the PostgreSQL database (SQLite goes with the temporary directory).
    pub async fn drop_pg(self) -> anyhow::Result<()> {
        use sqlx::Connection;
        if let Some(name) = self.pg {
            let mut c = sqlx::PgConnection::connect(&pg_admin()).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await?;
        }
        Ok(())
    }
}

/// One test over each backend: `both!(name)` runs `async fn name(&TestDb)`
/// on SQLite and on a fresh PostgreSQL database.
#[allow(unused_macros)]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                let db = crate::common::TestDb::new(false).await?;
                super::$name(&db).await
            }
            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                let db = crate::common::TestDb::new(true).await?;
                let r = super::$name(&db).await;
                db.drop_pg().await?;
                r
            }
        }
    };
}
