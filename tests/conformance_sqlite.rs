//! The conformance suites on the SQLite backend (a fresh database file per check),
//! directly and behind `Arc<dyn _>`.

use async_trait::async_trait;
use hookdock::store::sqlite::{SqliteIdempotencyStore, SqliteOptions, SqliteQueue, SqliteStore};
use hookdock::store::{QueueOptions, StoreError};
use hookdock::testing::{Settings, StoreHarness};
use tempfile::TempDir;

/// Opens `hookdock.db` in a fresh temporary directory per check.
#[derive(Debug, Clone, Copy, Default)]
struct Sqlite;

#[async_trait]
impl StoreHarness for Sqlite {
    type Queue = SqliteQueue;
    type Idempotency = SqliteIdempotencyStore;
    type Storage = TempDir;

    async fn create(&self) -> Result<TempDir, StoreError> {
        tempfile::tempdir().map_err(|e| StoreError::unavailable("test", e))
    }

    async fn open(
        &self,
        dir: &TempDir,
        settings: &Settings,
        options: QueueOptions,
    ) -> Result<(SqliteQueue, SqliteIdempotencyStore), StoreError> {
        let store = SqliteStore::open(
            dir.path().join("hookdock.db"),
            SqliteOptions::new()
                .clock(settings.clock.clone())
                .retention(settings.retention),
        )?;
        Ok((store.queue(options), store.idempotency()))
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn close(&self, queue: SqliteQueue, _idempotency: SqliteIdempotencyStore) {
        queue.store().close().await;
    }
}

mod direct {
    use super::*;
    hookdock::store_conformance!(Sqlite);
}

mod dyn_objects {
    use super::*;
    use hookdock::testing::DynHarness;
    hookdock::store_conformance!(DynHarness(Sqlite));
}
