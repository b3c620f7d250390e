//! The future [`Dedupe`](super::Dedupe) returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Deduped;
use crate::worker::HandlerError;

type BoxFuture<R> = Pin<Box<dyn Future<Output = Result<Deduped<R>, HandlerError>> + Send>>;

/// The future [`Dedupe`](super::Dedupe) returns: claim, run, then complete or release.
///
/// Boxed inside: every step awaits the (object-safe, hence boxed) store.
pub struct ResponseFuture<R> {
    inner: BoxFuture<R>,
}

impl<R> ResponseFuture<R> {
    pub(super) fn new(
        future: impl Future<Output = Result<Deduped<R>, HandlerError>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl<R> fmt::Debug for ResponseFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<R> Future for ResponseFuture<R> {
    type Output = Result<Deduped<R>, HandlerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
