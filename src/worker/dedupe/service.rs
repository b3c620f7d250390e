//! The [`Dedupe`] service.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use tower_service::Service;

use super::{HeldClaim, ResponseFuture};
use crate::store::{Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, StoreError};
use crate::worker::{Event, HandlerError};

/// What the dedupe layer did with an event that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deduped<R> {
    /// The event was new (or its earlier attempt did not finish): the handler ran and the key
    /// is now completed.
    Handled(R),
    /// The event was already handled within the retention period: the handler was not
    /// called. Carries the result stored at completion, if any.
    Duplicate(Option<Bytes>),
}

impl<R> Deduped<R> {
    /// True if the handler ran.
    pub fn is_handled(&self) -> bool {
        matches!(self, Self::Handled(_))
    }
}

/// Why the dedupe layer did not run the handler, or could not; the source of the
/// [`HandlerError`] it returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DedupeError {
    /// The key was claimed or completed for a different body: the sender reused an event id
    /// for other content. Permanent: the event goes to the dead letters.
    #[error(
        "fingerprint mismatch: event {source_name}/{event_id} was already claimed or handled \
         with a different body (the sender reused the id for other content)"
    )]
    FingerprintMismatch {
        /// The event's source.
        source_name: String,
        /// The event's id.
        event_id: String,
    },
    /// Another worker holds a live claim on the key. Deferred until `until`.
    #[error(
        "event {source_name}/{event_id} is being handled elsewhere; its claim expires at {until:?}"
    )]
    InProgress {
        /// The event's source.
        source_name: String,
        /// The event's id.
        event_id: String,
        /// When the other claim expires.
        until: SystemTime,
    },
    /// The store failed to claim the key. Retryable.
    #[error("idempotency store could not claim event {source_name}/{event_id}")]
    Store {
        /// The event's source.
        source_name: String,
        /// The event's id.
        event_id: String,
        /// The store's error.
        #[source]
        error: StoreError,
    },
}

/// Runs the inner handler service at most once in effect per `(source, event id)`.
///
/// For each event it claims the key `(source, id)` with the SHA-256 of the raw body as
/// fingerprint, then:
///
/// | claim | what happens | returns |
/// |---|---|---|
/// | `Acquired` | runs the inner service with the claim attached ([`Event::claim`]); on success [`complete`](IdempotencyStore::complete)s the key, on any failure [`release`](IdempotencyStore::release)s it; neither if the handler [completed the claim itself](HeldClaim::mark_completed) | `Ok(Handled(response))` or the inner error |
/// | `Completed` | skips the handler | `Ok(Duplicate(result))` (the worker acks) |
/// | `InProgress` | skips the handler | a [deferred](crate::worker::ErrorKind::Deferred) error until the claim expires |
/// | `FingerprintMismatch` | skips the handler | a [permanent](HandlerError::permanent) error (dead letter) |
/// | store error | skips the handler | a retryable error |
///
/// **Permanent failures release the claim** rather than completing it: the event goes to the
/// dead letters, and replaying it after the fix must run the handler again. A panicking
/// handler also releases (then the panic continues to the worker, which retries). If the
/// future is dropped while the handler runs (a worker shutting down past its deadline), the
/// claim is released in the background.
///
/// **If `complete` fails** after the handler succeeded, the error is logged and the event
/// still counts as handled (`Ok`): the effect has happened, and acking stops the queue from
/// running it again. The claim then expires, so a later duplicate delivery within the
/// retention period would run the handler again; so would a crash between the handler's
/// effect and `complete`. Handlers that need the effect applied strictly once even then
/// either key their own write on [`Event::id`], or, when the effect lives in the same
/// database as the store, complete the claim in the effect's own transaction (for PostgreSQL,
/// `store::postgres::PgIdempotencyStore::complete_in` with
/// the key and token from [`Event::claim`]) and then call [`HeldClaim::mark_completed`]: the
/// effect and the completion commit together, and the layer leaves the claim alone.
///
/// The service's error is [`HandlerError`] rather than `S::Error` because the layer has
/// outcomes of its own (defer, conflict, store failure) to report; `S::Error` only needs to
/// convert into it, which every error type does.
pub struct Dedupe<S> {
    inner: S,
    store: Arc<dyn IdempotencyStore>,
    claim_lease: Duration,
}

impl<S> Dedupe<S> {
    /// Wraps `inner`; see also [`DedupeLayer`](super::DedupeLayer).
    pub fn new(inner: S, store: Arc<dyn IdempotencyStore>, claim_lease: Duration) -> Self {
        Self {
            inner,
            store,
            claim_lease,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Dedupe<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            store: self.store.clone(),
            claim_lease: self.claim_lease,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Dedupe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedupe")
            .field("inner", &self.inner)
            .field("claim_lease", &self.claim_lease)
            .finish_non_exhaustive()
    }
}

impl<S, T> Service<Event<T>> for Dedupe<S>
where
    S: Service<Event<T>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<HandlerError>,
    T: Send + 'static,
{
    type Response = Deduped<S::Response>;
    type Error = HandlerError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, event: Event<T>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(run(self.store.clone(), self.claim_lease, inner, event))
    }
}

async fn run<S, T>(
    store: Arc<dyn IdempotencyStore>,
    claim_lease: Duration,
    mut inner: S,
    event: Event<T>,
) -> Result<Deduped<S::Response>, HandlerError>
where
    S: Service<Event<T>>,
    S::Error: Into<HandlerError>,
{
    let key = IdempotencyKey::new(event.source(), event.id().clone());
    let fingerprint = Fingerprint::of(event.body());
    let claim = match store.claim(&key, &fingerprint, claim_lease).await {
        Ok(claim) => claim,
        Err(error) => {
            return Err(HandlerError::retry(DedupeError::Store {
                source_name: key.source,
                event_id: key.id.into_string(),
                error,
            }))
        }
    };
    let token = match claim {
        Claim::Acquired(token) => token,
        Claim::Completed(result) => return Ok(Deduped::Duplicate(result)),
        Claim::InProgress { until } => return Err(in_progress(key, until)),
        Claim::FingerprintMismatch => {
            return Err(HandlerError::permanent(DedupeError::FingerprintMismatch {
                source_name: key.source,
                event_id: key.id.into_string(),
            }))
        }
    };

    // The key moves into the claim, which the handler and the drop guard share.
    let held = HeldClaim::new(key, token);
    let key = held.key();
    let mut guard = ReleaseOnDrop {
        store: Some((store.clone(), held.clone())),
    };
    let outcome = AssertUnwindSafe(inner.call(event.with_claim(held.clone())))
        .catch_unwind()
        .await
        .map(|result| result.map_err(Into::<HandlerError>::into));
    guard.disarm();
    // The handler completed the claim in its own (committed) transaction: it is no longer
    // this layer's to complete or release.
    if held.is_completed() {
        tracing::trace!(source = %key.source, id = %key.id, "claim completed by the handler");
    } else if matches!(outcome, Ok(Ok(_))) {
        if let Err(error) = store.complete(key, token, None).await {
            tracing::error!(
                source = %key.source, id = %key.id, %error,
                "handler succeeded but its idempotency claim could not be completed; \
                 a later duplicate of this event may run the handler again (a handler \
                 that completes the claim itself should call HeldClaim::mark_completed)"
            );
        }
    } else {
        release(&*store, key, token).await;
    }
    match outcome {
        Ok(Ok(response)) => Ok(Deduped::Handled(response)),
        Ok(Err(error)) => Err(error),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn in_progress(key: IdempotencyKey, until: SystemTime) -> HandlerError {
    HandlerError::defer(
        until,
        DedupeError::InProgress {
            source_name: key.source,
            event_id: key.id.into_string(),
            until,
        },
    )
}

async fn release(store: &dyn IdempotencyStore, key: &IdempotencyKey, token: ClaimToken) {
    if let Err(error) = store.release(key, token).await {
        // The claim stays until it expires; the retry is deferred until then.
        tracing::warn!(
            source = %key.source, id = %key.id, %error,
            "could not release the idempotency claim after a failure"
        );
    }
}

/// Releases a claim whose handler future was dropped before it finished (unless the handler
/// had completed it itself).
struct ReleaseOnDrop {
    store: Option<(Arc<dyn IdempotencyStore>, HeldClaim)>,
}

impl ReleaseOnDrop {
    fn disarm(&mut self) {
        self.store = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some((store, held)) = self.store.take() else {
            return;
        };
        if held.is_completed() {
            return;
        }
        // Without a runtime the claim simply expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { release(&*store, held.key(), held.token()).await });
        }
    }
}
