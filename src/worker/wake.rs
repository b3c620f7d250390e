//! Wake-up signals: [`Wake`], and [`WakeOnEnqueue`] for an in-process queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::error::StoreError;
use crate::event::RawEvent;
use crate::queue::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, Leased, Queue, QueueStats,
};

/// A signal that new events may be ready, so an idle [`Worker`](super::Worker) leases again
/// at once instead of at its next poll.
///
/// Spurious wake-ups are fine (the worker just finds the queue empty and waits again); missed
/// ones only delay work until the next poll, which the worker keeps doing anyway (scheduled
/// retries become ready without any signal).
///
/// Implemented for `Arc<tokio::sync::Notify>` (call `notify_one` after an in-process enqueue)
/// and, with feature `postgres`, for `postgres::PgWakeup`
/// (`LISTEN/NOTIFY`).
pub trait Wake: Send + 'static {
    /// Resolves at the next wake-up.
    fn woken(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl Wake for Arc<Notify> {
    fn woken(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.notified())
    }
}

#[cfg(feature = "postgres")]
impl Wake for crate::postgres::PgWakeup {
    fn woken(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.notified())
    }
}

/// A [`Queue`] wrapper that wakes a worker whenever it stores new events or replays dead
/// letters: for a worker in the same process as the intake (memory, SQLite), so it picks up
/// a delivery at once instead of at its next poll.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hookdock::queue::{MemoryQueue, Queue};
/// use hookdock::worker::WakeOnEnqueue;
/// use hookdock::RawEvent;
/// use std::sync::Arc;
///
/// let queue = WakeOnEnqueue::new(MemoryQueue::new());
/// let signal: Arc<tokio::sync::Notify> = queue.signal();
/// queue.enqueue(RawEvent::new("github", "d-1", std::time::SystemTime::now(), "{}")).await?;
/// signal.notified().await; // resolves at once: the enqueue stored a permit
/// // Worker::builder(queue.clone()).wake_on(signal) ...
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct WakeOnEnqueue<Q> {
    inner: Q,
    signal: Arc<Notify>,
}

impl<Q: Queue> WakeOnEnqueue<Q> {
    /// Wraps `queue` with a new signal.
    pub fn new(queue: Q) -> Self {
        Self {
            inner: queue,
            signal: Arc::new(Notify::new()),
        }
    }

    /// The signal to give [`WorkerBuilder::wake_on`](super::WorkerBuilder::wake_on).
    pub fn signal(&self) -> Arc<Notify> {
        self.signal.clone()
    }

    /// The wrapped queue.
    pub fn get_ref(&self) -> &Q {
        &self.inner
    }
}

#[async_trait]
impl<Q: Queue> Queue for WakeOnEnqueue<Q> {
    fn durability(&self) -> Durability {
        self.inner.durability()
    }
    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        let outcome = self.inner.enqueue(event).await?;
        if matches!(outcome, Enqueued::New(_)) {
            self.signal.notify_one();
        }
        Ok(outcome)
    }
    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        self.inner.lease(max, lease_for).await
    }
    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        self.inner.extend(lease, lease_for).await
    }
    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.ack(lease).await
    }
    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        self.inner.retry(lease, at, error).await
    }
    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        self.inner.defer(lease, at).await
    }
    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        self.inner.dead_letter(lease, reason).await
    }
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(filter).await
    }
    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        let replayed = self.inner.replay(filter).await?;
        if replayed > 0 {
            self.signal.notify_one();
        }
        Ok(replayed)
    }
    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.inner.stats().await
    }
}
