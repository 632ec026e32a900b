//! Test scaffolding: a fresh database per test on either backend — a SQLite file in a
//! temporary directory, or a PostgreSQL database created for the test and dropped after
//! it — and sample keys and usage records.

use std::ops::Deref;

use tempfile::TempDir;
use tokenrouter_store::{Db, KeyScope, NanoUsd, NewKey, UsageRecord, UsageSource};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Where the tests find a PostgreSQL server they may create databases on (scripts/test.sh
/// makes sure one runs). Never skipped: a test fails when it cannot reach it.
pub fn postgres_admin_url() -> String {
    std::env::var("TOKENROUTER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A new, migrated, empty database of this backend.
    pub async fn db(self) -> Result<TestDb, Box<dyn std::error::Error>> {
        let db = self.blank().await?;
        db.migrate().await?;
        Ok(db)
    }

    /// A new database of this backend with no tables yet.
    pub async fn blank(self) -> Result<TestDb, Box<dyn std::error::Error>> {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = file_url(&dir);
                Ok(TestDb { db: Db::open(&url).await?, url, place: Place::Dir(dir) })
            }
            Backend::Postgres => {
                let name = format!("tr_test_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                create_database(&admin, &name).await.map_err(|e| {
                    format!("PostgreSQL at {admin} is needed by this test (scripts/test.sh starts it): {e}")
                })?;
                let url = database_url(&admin, &name);
                let place = Place::Postgres { admin, name };
                Ok(TestDb { db: Db::open(&url).await?, url, place })
            }
        }
    }
}

/// The URL of database `name` on the server of `admin`.
pub fn database_url(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    format!("{base}/{name}")
}

async fn create_database(admin: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut conn).await?;
    Ok(())
}

/// A database for one test; dropped with it.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    place: Place,
}

enum Place {
    Dir(#[allow(dead_code, reason = "kept for its Drop")] TempDir),
    Postgres { admin: String, name: String },
}

impl Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Place::Postgres { admin, name } = &self.place else { return };
        let (admin, name) = (admin.clone(), name.clone());
        // On a thread of its own: this may run inside the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// Runs each named test function (`async fn name(backend: Backend) -> TestResult`) once on
/// SQLite and once on PostgreSQL: `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() -> $crate::fixture::TestResult {
                    super::$name($crate::fixture::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() -> $crate::fixture::TestResult {
                    super::$name($crate::fixture::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// A new database in its own temporary directory (removed when the `TempDir` drops).
pub async fn temp_db() -> Result<(TempDir, Db), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&file_url(&dir)).await?;
    Ok((dir, db))
}

pub fn file_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("store.db").display())
}

pub fn new_key(id: &str, account_id: i64) -> NewKey {
    NewKey {
        id: id.to_owned(),
        account_id,
        name: format!("key {id}"),
        secret_hash: [7; 32],
        models: Vec::new(),
        ips: Vec::new(),
        rpm: None,
        tpm: None,
        spend_limit: None,
        expires_at: None,
        scope: KeyScope::Inference,
        community: true,
    }
}

pub fn usage_record(request_id: &str, key_id: &str, account_id: i64, cost: i64) -> UsageRecord {
    UsageRecord {
        request_id: request_id.to_owned(),
        key_id: key_id.to_owned(),
        account_id,
        model: "gpt-4o-mini".to_owned(),
        provider: "openai".to_owned(),
        upstream_model: "gpt-4o-mini-2024-07-18".to_owned(),
        endpoint: "/v1/chat/completions".to_owned(),
        stream: false,
        status: 200,
        usage: tokenrouter_core::Usage {
            prompt_tokens: 12,
            completion_tokens: 34,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            hosted: Default::default(),
        },
        cost: NanoUsd(cost),
        usage_source: UsageSource::Upstream,
        client_disconnected: false,
        latency_ms: 250,
        created_at: 1_700_000_000,
        error_code: None,
        ttfb_ms: None,
        earning: None,
    }
}
