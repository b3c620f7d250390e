//! [`DedupeLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::Dedupe;
use crate::error::ConfigError;
use crate::store::IdempotencyStore;

/// How long a claim is held unless configured otherwise: 30 seconds, the worker's default
/// lease.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(30);

/// A `tower::Layer` that makes the handler under it see each event once in effect; see
/// [`Dedupe`] for what happens on each claim outcome.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hookdock::store::{MemoryIdempotencyStore, MessageId};
/// use hookdock::worker::{Deduped, DedupeLayer, Event, HandlerError};
/// use hookdock::RawEvent;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let effects = Arc::new(AtomicU32::new(0));
/// let counter = effects.clone();
/// let handler = DedupeLayer::new(MemoryIdempotencyStore::new()).layer(service_fn(move |_: Event| {
///     let counter = counter.clone();
///     async move {
///         counter.fetch_add(1, Ordering::SeqCst);
///         Ok::<_, HandlerError>(())
///     }
/// }));
///
/// let raw = RawEvent::new("github", "d-1", std::time::SystemTime::now(), "{}");
/// for attempt in 1..=3 {
///     let event = Event::new(raw.clone(), MessageId(attempt), 1, 10);
///     let outcome = handler.clone().oneshot(event).await.unwrap();
///     assert_eq!(matches!(outcome, Deduped::Duplicate(_)), attempt > 1);
/// }
/// assert_eq!(effects.load(Ordering::SeqCst), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct DedupeLayer {
    store: Arc<dyn IdempotencyStore>,
    claim_lease: Duration,
}

impl DedupeLayer {
    /// A layer over `store` with the default claim lease ([`DEFAULT_CLAIM_LEASE`]).
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self {
            store: Arc::new(store),
            claim_lease: DEFAULT_CLAIM_LEASE,
        }
    }

    /// A builder over `store`.
    pub fn builder(store: impl IdempotencyStore) -> DedupeLayerBuilder {
        DedupeLayerBuilder {
            layer: Self::new(store),
        }
    }

    /// How long each claim is held.
    pub fn claim_lease(&self) -> Duration {
        self.claim_lease
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.store
    }
}

impl fmt::Debug for DedupeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupeLayer")
            .field("claim_lease", &self.claim_lease)
            .finish_non_exhaustive()
    }
}

impl<S: IdempotencyStore> From<S> for DedupeLayer {
    /// A layer over `store` with the default claim lease, so that
    /// [`WorkerBuilder::dedupe`](crate::worker::WorkerBuilder::dedupe) takes a store as it is.
    fn from(store: S) -> Self {
        Self::new(store)
    }
}

impl<S> Layer<S> for DedupeLayer {
    type Service = Dedupe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Dedupe::new(inner, self.store.clone(), self.claim_lease)
    }
}

/// Builds a [`DedupeLayer`].
#[derive(Debug, Clone)]
pub struct DedupeLayerBuilder {
    layer: DedupeLayer,
}

impl DedupeLayerBuilder {
    /// How long a claim is held (default [`DEFAULT_CLAIM_LEASE`]).
    ///
    /// It bounds two things. After a worker dies mid-handler, a redelivered event waits until
    /// the dead worker's claim expires (so keep it no longer than the queue lease, or the
    /// redelivery is deferred). And if several queues or receivers share one store, a handler
    /// that runs longer than the claim lease can be taken over by another delivery of the same
    /// event (so keep it longer than your slowest handler). Within one queue the queue's own
    /// lease already keeps a second delivery of an event away while it is being handled.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.layer.claim_lease = lease;
        self
    }

    /// Checks the settings: the claim lease must be positive.
    pub fn build(self) -> Result<DedupeLayer, ConfigError> {
        if self.layer.claim_lease.is_zero() {
            return Err(ConfigError::InvalidValue {
                what: "claim lease",
                reason: "must be positive",
            });
        }
        Ok(self.layer)
    }
}
