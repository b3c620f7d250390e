//! The in-memory backend: [`MemoryStore`], its [`MemoryQueue`] and
//! [`MemoryIdempotencyStore`]. For tests, examples, and as the reference for the contracts.

mod checkpoints;
mod idempotency;
mod log;
mod queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use idempotency::MemoryIdempotencyStore;
pub use queue::MemoryQueue;

use super::{QueueOptions, Signal, DEFAULT_RETENTION};
use crate::clock::SharedClock;
use crate::Clock;

/// A queue and an idempotency store held in memory, sharing a clock and a retention period.
/// Nothing survives the process ([`Durability::Volatile`](super::Durability::Volatile)).
///
/// Cheap to clone: clones share the same state.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hookdock::store::{MemoryStore, Queue, QueueOptions};
/// use hookdock::RawEvent;
/// use std::time::{Duration, SystemTime};
///
/// let store = MemoryStore::new().with_retention(Duration::from_secs(3600));
/// let queue = store.queue(QueueOptions::default());
/// let _dedupe = store.idempotency();
/// queue.enqueue(RawEvent::new("github", "d-1", SystemTime::now(), "{}")).await?;
/// let batch = queue.lease(10, Duration::from_secs(30)).await?;
/// queue.ack(&batch[0].lease).await?;
/// assert_eq!(queue.stats().await?.depth(), 0);
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: SharedClock,
    retention: Duration,
    queue: Mutex<queue::State>,
    claims: Mutex<idempotency::State>,
    checkpoints: Mutex<checkpoints::State>,
    /// Fencing tokens of leases and claims, never reused.
    next_token: AtomicU64,
    signal: Signal,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with the system clock and the default retention
    /// ([`DEFAULT_RETENTION`]).
    pub fn new() -> Self {
        Self::build(SharedClock::default(), DEFAULT_RETENTION)
    }

    fn build(clock: SharedClock, retention: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                retention,
                queue: Mutex::new(queue::State::default()),
                claims: Mutex::new(idempotency::State::default()),
                checkpoints: Mutex::new(checkpoints::State::default()),
                next_token: AtomicU64::new(1),
                signal: Signal::default(),
            }),
        }
    }

    /// Reads time from `clock` (builder style; call it before taking a queue or store).
    pub fn with_clock(self, clock: impl Clock) -> Self {
        Self::build(SharedClock::new(clock), self.inner.retention)
    }

    /// Remembers handled events and completed claims for `retention` (builder style; call it
    /// before taking a queue or store).
    pub fn with_retention(self, retention: Duration) -> Self {
        Self::build(self.inner.clock.clone(), retention)
    }

    /// A queue in this store.
    pub fn queue(&self, options: QueueOptions) -> MemoryQueue {
        MemoryQueue::new_in(self.clone(), options)
    }

    /// An idempotency store in this store.
    pub fn idempotency(&self) -> MemoryIdempotencyStore {
        MemoryIdempotencyStore::new_in(self.clone())
    }

    fn now(&self) -> i64 {
        super::codec::to_micros(self.inner.clock.now())
    }

    fn retention(&self) -> i64 {
        super::codec::duration_micros(self.inner.retention)
    }

    fn token(&self) -> u64 {
        self.inner.next_token.fetch_add(1, Ordering::Relaxed)
    }
}

/// Locks a mutex; a panic while holding it cannot leave the state half-updated in a way
/// that breaks a contract (every update is a few field writes), so keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
