//! Shared set-up for the PostgreSQL tests: a fresh schema per test on the server named by
//! `HOOKDOCK_TEST_POSTGRES_URL`, so tests run in parallel without seeing each other.
//!
//! When the variable is unset the tests print a notice and pass without running, unless
//! `HOOKDOCK_REQUIRE_POSTGRES=1` is set (CI), in which case they fail.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use hookdock::store::postgres::{PgOptions, PgStore};
use hookdock::testing::FakeClock;
use sqlx::postgres::PgPoolOptions;

/// The variable naming the test server.
pub const URL_VAR: &str = "HOOKDOCK_TEST_POSTGRES_URL";
/// Set to `1` to fail instead of skipping when there is no server.
pub const REQUIRE_VAR: &str = "HOOKDOCK_REQUIRE_POSTGRES";

/// The server URL, or `None` after printing why the test is skipped.
///
/// # Panics
/// If the URL is unset and `HOOKDOCK_REQUIRE_POSTGRES=1`.
pub fn url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
                panic!(
                    "{test}: {URL_VAR} is not set but {REQUIRE_VAR}=1: start a server with \
                     `eval \"$(scripts/postgres-test-server.sh start)\"`"
                );
            }
            // Straight to stderr, past the test harness's output capture, so the notice is
            // seen even though the test passes.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: skipping PostgreSQL test `{test}`: {URL_VAR} is not set \
                 (start a throwaway server with `eval \"$(scripts/postgres-test-server.sh start)\"`)"
            );
            None
        }
    }
}

/// A schema name no other test (or test process) uses.
pub fn unique_schema(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "hd_{prefix}_{}_{}_{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

/// A migrated store in its own schema, with a fake clock.
pub struct TestDb {
    pub url: String,
    pub schema: String,
    pub clock: FakeClock,
    pub store: PgStore,
}

/// The start of every fake clock: a fixed, recent time.
pub fn start_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

impl TestDb {
    /// Sets up a fresh schema, or `None` (after a notice) when no server is configured.
    pub async fn new(test: &str) -> Option<Self> {
        let url = url(test)?;
        let schema = unique_schema(
            &test
                .chars()
                .filter(|c| c.is_ascii_lowercase())
                .take(12)
                .collect::<String>(),
        );
        let clock = FakeClock::new(start_time());
        let store = Self::store_on(&url, &schema, PgOptions::new().clock(clock.clone())).await;
        Some(Self {
            url,
            schema,
            clock,
            store,
        })
    }

    /// Another store on the same schema with its own pool: as another process would be.
    pub async fn another_process(&self) -> PgStore {
        self.another_with(PgOptions::new().clock(self.clock.clone()))
            .await
    }

    /// Another store on the same schema with these options (the schema is set here).
    pub async fn another_with(&self, options: PgOptions) -> PgStore {
        Self::store_on(&self.url, &self.schema, options).await
    }

    async fn store_on(url: &str, schema: &str, options: PgOptions) -> PgStore {
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .connect(url)
            .await
            .expect("connect to HOOKDOCK_TEST_POSTGRES_URL");
        PgStore::from_pool(pool, options.schema(schema))
            .await
            .expect("open the store")
    }

    /// Drops the schema (on success; a failed test leaves it for inspection).
    pub async fn cleanup(self) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{}\" CASCADE",
            self.schema
        )))
        .execute(self.store.pool())
        .await
        .expect("drop schema");
    }
}

/// Skips the test (returning from it) when no server is configured.
#[macro_export]
macro_rules! test_db {
    ($name:expr) => {
        match $crate::postgres_support::TestDb::new($name).await {
            Some(db) => db,
            None => return,
        }
    };
}
