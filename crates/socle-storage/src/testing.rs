//! Throw-away stores for tests: an SQLite file in a temporary directory, or
//! a PostgreSQL schema of its own on the server named by
//! `SOCLE_TEST_POSTGRES_URL` (default: the local server, user postgres).
//! Both are removed when the handle is dropped. A missing PostgreSQL server
//! fails the test: the suite must never silently skip a backend.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{DynStore, StorageConfig};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn postgres_admin_url() -> String {
    std::env::var("SOCLE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A store for one test, with what is needed to reopen it or reach it raw.
pub struct TestStore {
    pub store: DynStore,
    pub config: StorageConfig,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("socle_test_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl TestStore {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = StorageConfig::Sqlite { path: dir.path().join("socle.db") };
        let store = crate::open(&config).await.expect("open SQLite store");
        Self { store, config, cleanup: Cleanup::Sqlite(dir) }
    }

    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let schema = unique_name();
        let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must be running for the test suite ({admin_url}): {e}"));
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create test schema");
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
        let config = StorageConfig::Postgres { url, max_connections: 8 };
        let store = crate::open(&config).await.expect("open PostgreSQL store");
        Self { store, config, cleanup: Cleanup::Postgres { admin_url, schema } }
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Runs raw SQL against the database, to simulate corruption or old schemas.
    pub async fn exec_raw(&self, sql: &str) {
        if let Err(e) = self.try_exec_raw(sql).await {
            panic!("raw SQL failed: {e}");
        }
    }

    /// Runs raw SQL and reports the database's refusal, for tests of constraints.
    pub async fn try_exec_raw(&self, sql: &str) -> Result<(), String> {
        match &self.config {
            StorageConfig::Sqlite { path } => {
                let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| e.to_string())?;
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            StorageConfig::Postgres { url, .. } => {
                let (client, conn) =
                    tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client.batch_execute(sql).await.map_err(|e| format!("{e:?}"))
            }
        }
    }

    /// Opens a second store on the same database (as a restarted process would).
    pub async fn reopen(&self) -> crate::Result<DynStore> {
        crate::open(&self.config).await
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, schema } = &self.cleanup {
            let (url, schema) = (admin_url.clone(), schema.clone());
            // Drop cannot await; a short-lived runtime on its own thread can.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.ok()?;
                    tokio::spawn(conn);
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.ok()
                })
            })
            .join();
        }
    }
}
