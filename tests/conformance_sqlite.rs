//! The conformance suites on the SQLite backend (a fresh database file per check),
//! directly and behind `Arc<dyn _>`.

use std::time::Duration;

use async_trait::async_trait;
use hookdock::idempotency::IdempotencyStore;
use hookdock::queue::QueueOptions;
use hookdock::sqlite::{SqliteIdempotencyStore, SqliteOptions, SqliteQueue, SqliteStore};
use hookdock::testing::idempotency_suite::IdempotencyHarness;
use hookdock::testing::queue_suite::QueueHarness;
use hookdock::testing::FakeClock;
use hookdock::StoreError;
use tempfile::TempDir;

/// Opens `hookdock.db` in a fresh temporary directory per check.
#[derive(Debug, Clone, Copy, Default)]
struct Sqlite;

impl Sqlite {
    fn open(dir: &TempDir, clock: FakeClock) -> Result<SqliteStore, StoreError> {
        SqliteStore::open(
            dir.path().join("hookdock.db"),
            SqliteOptions::new().clock(clock),
        )
    }
}

#[async_trait]
impl QueueHarness for Sqlite {
    type Queue = SqliteQueue;
    type Storage = TempDir;

    async fn create(&self) -> Result<TempDir, StoreError> {
        tempfile::tempdir().map_err(StoreError::storage)
    }

    async fn open(
        &self,
        dir: &TempDir,
        options: QueueOptions,
        clock: FakeClock,
    ) -> Result<SqliteQueue, StoreError> {
        Ok(Self::open(dir, clock)?.queue(options))
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn close(&self, queue: SqliteQueue) {
        queue.store().close().await;
    }
}

#[async_trait]
impl IdempotencyHarness for Sqlite {
    type Store = SqliteIdempotencyStore;
    type Storage = TempDir;

    async fn create(&self) -> Result<TempDir, StoreError> {
        tempfile::tempdir().map_err(StoreError::storage)
    }

    async fn open(
        &self,
        dir: &TempDir,
        retention: Duration,
        clock: FakeClock,
    ) -> Result<SqliteIdempotencyStore, StoreError> {
        Ok(Self::open(dir, clock)?
            .idempotency()
            .with_retention(retention))
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn close(&self, store: SqliteIdempotencyStore) {
        store.store().close().await;
    }
}

mod queue {
    hookdock::queue_conformance!(super::Sqlite);
}

mod queue_dyn {
    use hookdock::testing::queue_suite::DynQueueHarness;
    hookdock::queue_conformance!(DynQueueHarness(super::Sqlite));
}

mod idempotency {
    hookdock::idempotency_conformance!(super::Sqlite);
}

mod idempotency_dyn {
    use hookdock::testing::idempotency_suite::DynIdempotencyHarness;
    hookdock::idempotency_conformance!(DynIdempotencyHarness(super::Sqlite));
}

/// The store is only used through the traits above; keep the import honest.
#[allow(dead_code)]
fn _is_store(s: SqliteIdempotencyStore) -> impl IdempotencyStore {
    s
}
