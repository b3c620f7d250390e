//! [`StoreHarness`]: how the conformance suites open a backend, and the harnesses for this
//! crate's own backends.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::FakeClock;
use crate::store::{
    CheckpointStore, EventLog, IdempotencyStore, MemoryIdempotencyStore, MemoryQueue, MemoryStore,
    QueueOptions, StoreError,
};

/// What a check opens a store with: the clock it reads (a [`FakeClock`] the check moves by
/// hand) and the retention period.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// The store's clock.
    pub clock: FakeClock,
    /// How long the store remembers handled events and completed claims.
    pub retention: Duration,
}

/// Opens the backend under test for the conformance suites; implement it once per backend.
///
/// Keep it cheap: every check creates its own storage, so checks never see each other's
/// records and can run in parallel.
///
/// ```
/// use async_trait::async_trait;
/// use hookdock::store::{MemoryIdempotencyStore, MemoryQueue, MemoryStore, QueueOptions, StoreError};
/// use hookdock::testing::{Settings, StoreHarness};
///
/// struct MyHarness;
///
/// #[async_trait]
/// impl StoreHarness for MyHarness {
///     type Queue = MemoryQueue;
///     type Idempotency = MemoryIdempotencyStore;
///     // A temporary file, a fresh schema or table prefix, ...; nothing for memory.
///     type Storage = ();
///     async fn create(&self) -> Result<(), StoreError> {
///         Ok(())
///     }
///     async fn open(
///         &self,
///         _storage: &(),
///         settings: &Settings,
///         options: QueueOptions,
///     ) -> Result<(MemoryQueue, MemoryIdempotencyStore), StoreError> {
///         let store = MemoryStore::new()
///             .with_clock(settings.clock.clone())
///             .with_retention(settings.retention);
///         Ok((store.queue(options), store.idempotency()))
///     }
///     fn persistent(&self) -> bool {
///         false
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// hookdock::testing::queue_suite::lease_is_exclusive_until_expiry(&MyHarness).await;
/// # });
/// // In a test file: hookdock::store_conformance!(MyHarness);
/// ```
#[async_trait]
pub trait StoreHarness: Send + Sync + 'static {
    /// The queue under test, with its event log and reconciliation's checkpoint store.
    type Queue: EventLog + CheckpointStore;
    /// The idempotency store under test.
    type Idempotency: IdempotencyStore;
    /// What a store is opened on: a temporary file, a fresh schema or table prefix on a
    /// database server, or `()` for a backend that keeps nothing.
    type Storage: Send + Sync + 'static;

    /// Creates fresh, empty storage for one check.
    async fn create(&self) -> Result<Self::Storage, StoreError>;

    /// Opens the store on `storage` with `settings`, and returns a queue with `options` and
    /// the idempotency store, which share the store's records.
    ///
    /// For a [`persistent`](Self::persistent) backend, opening the same storage again
    /// (after [`close`](Self::close)) must see everything stored before.
    async fn open(
        &self,
        storage: &Self::Storage,
        settings: &Settings,
        options: QueueOptions,
    ) -> Result<(Self::Queue, Self::Idempotency), StoreError>;

    /// True if what a store recorded survives closing it and opening its storage again; the
    /// durability checks run only then.
    fn persistent(&self) -> bool;

    /// Shuts a store down before its storage is opened again. The default drops both.
    async fn close(&self, queue: Self::Queue, idempotency: Self::Idempotency) {
        drop((queue, idempotency));
    }
}

/// An [`EventLog`] (a [`Queue`](crate::store::Queue)) that is also a [`CheckpointStore`], as
/// one trait object: what [`DynHarness`] runs a backend's queue behind. Implemented for every
/// type that is both.
pub trait LogAndCheckpoints: EventLog + CheckpointStore {}

impl<T: EventLog + CheckpointStore + ?Sized> LogAndCheckpoints for T {}

/// Runs another harness's backend behind `Arc<dyn LogAndCheckpoints>` (its
/// [`EventLog`], [`Queue`](crate::store::Queue) and [`CheckpointStore`]) and
/// `Arc<dyn IdempotencyStore>`,
/// to check that the trait objects (and the `Arc` forwarding) keep the contracts too.
#[derive(Debug, Clone, Copy, Default)]
pub struct DynHarness<H>(pub H);

#[async_trait]
impl<H: StoreHarness> StoreHarness for DynHarness<H> {
    type Queue = Arc<dyn LogAndCheckpoints>;
    type Idempotency = Arc<dyn IdempotencyStore>;
    type Storage = H::Storage;

    async fn create(&self) -> Result<Self::Storage, StoreError> {
        self.0.create().await
    }

    async fn open(
        &self,
        storage: &Self::Storage,
        settings: &Settings,
        options: QueueOptions,
    ) -> Result<(Self::Queue, Self::Idempotency), StoreError> {
        let (q, i) = self.0.open(storage, settings, options).await?;
        Ok((Arc::new(q), Arc::new(i)))
    }

    fn persistent(&self) -> bool {
        self.0.persistent()
    }
}

/// The harness for [`MemoryStore`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryHarness;

#[async_trait]
impl StoreHarness for MemoryHarness {
    type Queue = MemoryQueue;
    type Idempotency = MemoryIdempotencyStore;
    type Storage = ();

    async fn create(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn open(
        &self,
        _storage: &(),
        settings: &Settings,
        options: QueueOptions,
    ) -> Result<(MemoryQueue, MemoryIdempotencyStore), StoreError> {
        let store = MemoryStore::new()
            .with_clock(settings.clock.clone())
            .with_retention(settings.retention);
        Ok((store.queue(options), store.idempotency()))
    }

    fn persistent(&self) -> bool {
        false
    }
}
