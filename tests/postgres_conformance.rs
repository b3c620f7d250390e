//! The shared conformance suites on PostgreSQL (a fresh schema per check, on the server
//! named by `HOOKDOCK_TEST_POSTGRES_URL`), directly and behind `Arc<dyn _>`.
//!
//! Without the variable every check prints a notice and passes without running, unless
//! `HOOKDOCK_REQUIRE_POSTGRES=1` (CI), which makes them fail.

mod postgres_support;

use std::sync::Arc;

use async_trait::async_trait;
use hookdock::store::postgres::{PgIdempotencyStore, PgOptions, PgQueue, PgStore};
use hookdock::store::{QueueOptions, StoreError};
use hookdock::testing::{Settings, StoreHarness};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// Opens backends on fresh schemas of the test server.
#[derive(Debug, Clone)]
struct Pg {
    url: Arc<str>,
}

impl Pg {
    /// The harness, or `None` (after a notice, once per process) when no server is set.
    fn from_env() -> Option<Self> {
        static NOTICE: std::sync::Once = std::sync::Once::new();
        match std::env::var(postgres_support::URL_VAR) {
            Ok(url) if !url.is_empty() => Some(Self {
                url: Arc::from(url),
            }),
            _ => {
                if std::env::var(postgres_support::REQUIRE_VAR).as_deref() == Ok("1") {
                    // Panics with the reason.
                    postgres_support::url("postgres_conformance");
                }
                NOTICE.call_once(|| {
                    postgres_support::url("postgres_conformance (every check)");
                });
                None
            }
        }
    }

    async fn pool(&self, max: u32) -> Result<PgPool, StoreError> {
        Ok(PgPoolOptions::new()
            .max_connections(max)
            .connect(&self.url)
            .await?)
    }

    async fn create_schema(&self) -> Result<Schema, StoreError> {
        let name = postgres_support::unique_schema("conf");
        let pool = self.pool(1).await?;
        // Opening migrates the new schema.
        PgStore::from_pool(pool.clone(), PgOptions::new().schema(name.clone()))
            .await?
            .close()
            .await;
        pool.close().await;
        Ok(Schema {
            name,
            url: self.url.clone(),
        })
    }
}

/// A migrated schema; dropped with the check (best effort).
struct Schema {
    name: String,
    url: Arc<str>,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // No async drop: a short-lived thread and runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(pool) = PgPoolOptions::new().max_connections(1).connect(&url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

#[async_trait]
impl StoreHarness for Pg {
    type Queue = PgQueue;
    type Idempotency = PgIdempotencyStore;
    type Storage = Schema;

    async fn create(&self) -> Result<Schema, StoreError> {
        self.create_schema().await
    }

    async fn open(
        &self,
        schema: &Schema,
        settings: &Settings,
        options: QueueOptions,
    ) -> Result<(PgQueue, PgIdempotencyStore), StoreError> {
        let options_pg = PgOptions::new()
            .schema(schema.name.clone())
            .clock(settings.clock.clone())
            .retention(settings.retention);
        let store = PgStore::from_pool(self.pool(4).await?, options_pg).await?;
        Ok((store.queue(options), store.idempotency()))
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn close(&self, queue: PgQueue, _idempotency: PgIdempotencyStore) {
        let store = queue.store().clone();
        store.close().await;
        store.pool().close().await;
    }
}

/// The harness, or a return from the test when no server is configured.
macro_rules! pg {
    () => {
        match Pg::from_env() {
            Some(h) => h,
            None => return,
        }
    };
}

mod direct {
    use super::*;
    hookdock::store_conformance!(pg!());
}

mod dyn_objects {
    use super::*;
    use hookdock::testing::DynHarness;
    hookdock::store_conformance!(DynHarness(pg!()));
}
