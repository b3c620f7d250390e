//! The shared conformance suites on PostgreSQL (a fresh schema per check, on the server
//! named by `HOOKDOCK_TEST_POSTGRES_URL`), directly and behind `Arc<dyn _>`.
//!
//! Without the variable every check prints a notice and passes without running, unless
//! `HOOKDOCK_REQUIRE_POSTGRES=1` (CI), which makes them fail.

mod postgres_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookdock::postgres::{PgBackend, PgIdempotencyStore, PgQueue};
use hookdock::queue::QueueOptions;
use hookdock::testing::idempotency_suite::IdempotencyHarness;
use hookdock::testing::queue_suite::QueueHarness;
use hookdock::testing::FakeClock;
use hookdock::StoreError;
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
        PgPoolOptions::new()
            .max_connections(max)
            .connect(&self.url)
            .await
            .map_err(StoreError::storage)
    }

    async fn backend(&self, schema: &Schema, clock: FakeClock) -> Result<PgBackend, StoreError> {
        Ok(PgBackend::from_pool(self.pool(4).await?)
            .with_schema(&schema.name)
            .map_err(StoreError::storage)?
            .with_clock(clock))
    }

    async fn create_schema(&self) -> Result<Schema, StoreError> {
        let name = postgres_support::unique_schema("conf");
        let pool = self.pool(1).await?;
        PgBackend::from_pool(pool.clone())
            .with_schema(&name)
            .map_err(StoreError::storage)?
            .migrate()
            .await?;
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
impl QueueHarness for Pg {
    type Queue = PgQueue;
    type Storage = Schema;

    async fn create(&self) -> Result<Schema, StoreError> {
        self.create_schema().await
    }

    async fn open(
        &self,
        schema: &Schema,
        options: QueueOptions,
        clock: FakeClock,
    ) -> Result<PgQueue, StoreError> {
        Ok(self.backend(schema, clock).await?.queue(options))
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn close(&self, queue: PgQueue) {
        let pool = queue.pool().clone();
        queue.close().await;
        pool.close().await;
    }
}

#[async_trait]
impl IdempotencyHarness for Pg {
    type Store = PgIdempotencyStore;
    type Storage = Schema;

    async fn create(&self) -> Result<Schema, StoreError> {
        self.create_schema().await
    }

    async fn open(
        &self,
        schema: &Schema,
        retention: Duration,
        clock: FakeClock,
    ) -> Result<PgIdempotencyStore, StoreError> {
        Ok(self
            .backend(schema, clock)
            .await?
            .idempotency_store()
            .with_retention(retention))
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn close(&self, store: PgIdempotencyStore) {
        let pool = store.pool().clone();
        store.close().await;
        pool.close().await;
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

mod queue {
    use super::Pg;
    hookdock::queue_conformance!(pg!());
}

mod queue_dyn {
    use super::Pg;
    use hookdock::testing::queue_suite::DynQueueHarness;
    hookdock::queue_conformance!(DynQueueHarness(pg!()));
}

mod idempotency {
    use super::Pg;
    hookdock::idempotency_conformance!(pg!());
}

mod idempotency_dyn {
    use super::Pg;
    use hookdock::testing::idempotency_suite::DynIdempotencyHarness;
    hookdock::idempotency_conformance!(DynIdempotencyHarness(pg!()));
}
