//! Wake-up signals: [`Wake`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Notify;

/// A signal that new events may be ready, so an idle [`Worker`](super::Worker) leases again
/// at once instead of at its next poll.
///
/// Spurious wake-ups are fine (the worker just finds the queue empty and waits again); missed
/// ones only delay work until the next poll, which the worker keeps doing anyway (scheduled
/// retries become ready without any signal).
///
/// Implemented for `Arc<tokio::sync::Notify>` (call `notify_one` after an in-process enqueue)
/// and, with feature `postgres`, for [`PgWakeup`](crate::postgres::PgWakeup)
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
