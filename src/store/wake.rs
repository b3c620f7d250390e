//! Wake-ups: [`Wake`], the signal a [`Queue`](super::Queue) hands an idle worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Notify;

/// A signal that new events may be ready, so an idle worker leases again at once instead of
/// at its next poll. Each backend makes its own ([`Queue::wake_signal`](super::Queue::wake_signal)):
/// the memory and SQLite backends wake workers of their own process when they store, replay
/// or reschedule work; PostgreSQL wakes every process through `LISTEN/NOTIFY`.
///
/// Spurious wake-ups are fine (the worker finds the queue empty and waits again); missed ones
/// only delay work until the next poll, which the worker keeps doing anyway.
///
/// Implemented for `Arc<tokio::sync::Notify>`, for a signal of your own (call `notify_one`).
pub trait Wake: Send + 'static {
    /// Resolves at the next wake-up.
    fn woken(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl Wake for Arc<Notify> {
    fn woken(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.notified())
    }
}

/// An in-process wake-up source: what the memory and SQLite backends notify.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signal(Arc<Notify>);

impl Signal {
    /// Wakes every worker waiting now, and leaves a permit for one that is busy.
    pub(crate) fn notify(&self) {
        self.0.notify_waiters();
        self.0.notify_one();
    }

    /// A handle for one worker.
    pub(crate) fn subscribe(&self) -> Box<dyn Wake> {
        Box::new(Arc::clone(&self.0))
    }
}
