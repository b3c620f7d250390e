//! [`Intake`] and its builder.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::verify::collect::Collector;
use tower_service::Service;

use super::headers::{select, DefaultHeaderPolicy, HeaderPolicy};
use super::{IntakeError, ResponseFuture};
use crate::clock::SharedClock;
use crate::error::ConfigError;
use crate::event::RawEvent;
use crate::metrics_shim::{self as observe, Delivery};
use crate::ordering::ExtractOrdering;
use crate::scheme::Verified;
use crate::store::{key, Enqueued, ErrorKind, Origin, Queue, StoreError};
use crate::Clock;

/// The `Retry-After` sent with a `503` when none is set: 10 seconds.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The terminal service behind a [`VerifyLayer`](crate::verify::VerifyLayer): stores each
/// verified delivery in a [`Queue`] and answers `2xx` only once the queue has confirmed it;
/// see the [module docs](super).
///
/// Cloning is cheap (one [`Arc`]); every clone feeds the same queue.
pub struct Intake<Q> {
    shared: Arc<Shared<Q>>,
}

struct Shared<Q> {
    queue: Q,
    source: Option<String>,
    status: StatusCode,
    retry_after: HeaderValue,
    policy: Box<dyn HeaderPolicy>,
    clock: SharedClock,
    ordering: Option<Box<dyn ExtractOrdering>>,
}

impl<Q: Queue> Intake<Q> {
    /// An intake storing into `queue` with the defaults: source named after the scheme,
    /// `200 OK`, `Retry-After: 10`, [`DefaultHeaderPolicy`], system clock.
    pub fn new(queue: Q) -> Self {
        Self::from_builder(Self::builder(queue))
    }

    /// A builder to change the defaults.
    pub fn builder(queue: Q) -> IntakeBuilder<Q> {
        IntakeBuilder {
            queue,
            source: None,
            status: StatusCode::OK,
            retry_after: DEFAULT_RETRY_AFTER,
            policy: Box::new(DefaultHeaderPolicy::new()),
            clock: SharedClock::default(),
            ordering: None,
        }
    }

    fn from_builder(b: IntakeBuilder<Q>) -> Self {
        // Whole seconds, rounded up: a client told "0" would retry at once.
        let secs = b.retry_after.as_secs() + u64::from(b.retry_after.subsec_nanos() > 0);
        Self {
            shared: Arc::new(Shared {
                queue: b.queue,
                source: b.source,
                status: b.status,
                retry_after: HeaderValue::from(secs.max(1)),
                policy: b.policy,
                clock: b.clock,
                ordering: b.ordering,
            }),
        }
    }

    /// The queue events go to.
    pub fn queue(&self) -> &Q {
        &self.shared.queue
    }
}

impl<Q> Clone for Intake<Q> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Q> fmt::Debug for Intake<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intake")
            .field("source", &self.shared.source)
            .field("status", &self.shared.status)
            .field("retry_after", &self.shared.retry_after)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Intake`]; from [`Intake::builder`].
///
/// ```
/// use hookdock::intake::{DefaultHeaderPolicy, Intake};
/// use hookdock::store::MemoryQueue;
/// use http::StatusCode;
/// use std::time::Duration;
///
/// let intake = Intake::builder(MemoryQueue::new())
///     .source("github-main")
///     .status(StatusCode::ACCEPTED)
///     .retry_after(Duration::from_secs(30))
///     .header_policy(DefaultHeaderPolicy::new().drop_header("x-forwarded-for"))
///     .build()?;
///
/// // Mistakes fail here, not per request.
/// assert!(Intake::builder(MemoryQueue::new()).status(StatusCode::FOUND).build().is_err());
/// # drop(intake);
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
pub struct IntakeBuilder<Q> {
    queue: Q,
    source: Option<String>,
    status: StatusCode,
    retry_after: Duration,
    policy: Box<dyn HeaderPolicy>,
    clock: SharedClock,
    ordering: Option<Box<dyn ExtractOrdering>>,
}

impl<Q: Queue> IntakeBuilder<Q> {
    /// Names the source events are stored under (default: the scheme's name, such as
    /// `"github"`). Use distinct names for two endpoints of the same provider, since event
    /// ids are unique only within a source.
    pub fn source(mut self, name: impl Into<String>) -> Self {
        self.source = Some(name.into());
        self
    }

    /// The status answered once an event is stored, or found already stored (default
    /// `200 OK`). Must be a `2xx`.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The `Retry-After` sent with `503` when the queue is full or storage fails (default 10
    /// seconds; whole seconds, rounded up, at least 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Which request headers are stored with the event (default [`DefaultHeaderPolicy`]).
    pub fn header_policy(mut self, policy: impl HeaderPolicy) -> Self {
        self.policy = Box::new(policy);
        self
    }

    /// Gives each event the [ordering key](crate::ordering) `extract` reads from its verified
    /// headers and body, so the queue runs the events of one key one at a time and in order
    /// (default: none). An event it finds no key for is stored without one; a key that breaks
    /// the [key rules](crate::store::key) is dropped with a warning (the event is stored
    /// unordered rather than refused).
    pub fn ordering(mut self, extract: impl ExtractOrdering) -> Self {
        self.ordering = Some(Box::new(extract));
        self
    }

    /// Reads the received-at time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Checks the settings and builds the intake.
    pub fn build(self) -> Result<Intake<Q>, ConfigError> {
        if !self.status.is_success() {
            return Err(ConfigError::InvalidValue {
                what: "intake status",
                reason: "must be a 2xx status: it tells the sender the event is stored",
            });
        }
        if let Some(source) = self.source.as_deref() {
            key::validate_source(source).map_err(|_| ConfigError::InvalidValue {
                what: "intake source",
                reason: "must be 1 to 128 bytes of text without control characters",
            })?;
        }
        Ok(Intake::from_builder(self))
    }
}

impl<Q> fmt::Debug for IntakeBuilder<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntakeBuilder")
            .field("source", &self.source)
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

impl<Q, B> Service<Request<B>> for Intake<Q>
where
    Q: Queue,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Backpressure comes from the queue: a full queue answers 503 rather than making
        // senders wait.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // Checked before the body is touched: without the verify layer in front, nothing
        // vouches for this request and it must not be stored.
        let Some(verified) = parts.extensions.remove::<Verified>() else {
            tracing::error!(
                path = parts.uri.path(),
                "intake got a request without a verified identity; is VerifyLayer mounted in \
                 front of it?"
            );
            observe::delivery(
                "unknown",
                Delivery::Failed,
                IntakeError::NotVerified.reason(),
            );
            return ResponseFuture::ready(failure(IntakeError::NotVerified, None));
        };
        let shared = Arc::clone(&self.shared);
        let source: &str = shared.source.as_deref().unwrap_or(verified.scheme);
        // One span per delivery, with the same field names as the worker's `attempt` span;
        // never a header value or the body.
        let span = tracing::info_span!(
            "delivery",
            source,
            event_id = %verified.id,
            event_type = verified.event_type.as_ref().map(|t| t.as_str()),
        );
        let delivered = async move {
            // Behind the verify layer the body is already in memory, bounded, usually in
            // one chunk: this takes that chunk without a copy.
            let mut body = std::pin::pin!(body);
            let mut collector = Collector::default();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            collector.push(data, usize::MAX);
                        }
                    }
                    Err(err) => {
                        let err = err.into();
                        tracing::debug!(error = %err, "intake could not read the body");
                        let source = shared.source.as_deref().unwrap_or(verified.scheme);
                        return refusal(source, IntakeError::BodyUnreadable, None);
                    }
                }
            }
            let body = collector.take();
            let source: &str = shared.source.as_deref().unwrap_or(verified.scheme);
            // Refused here, the same way every backend would refuse it: an id that can never
            // be stored gets a 400 the sender will not retry, never a 503.
            if let Err(invalid) = key::validate(source, &verified.id) {
                tracing::info!(%source, id = ?verified.id, error = %invalid, "invalid event identity: answered 400");
                return refusal(source, IntakeError::InvalidEvent(invalid), None);
            }
            let ordering = shared.ordering.as_ref().and_then(|extract| {
                let found = extract.extract(&parts.headers, &body);
                if found.is_none() {
                    tracing::debug!(%source, id = ?verified.id, "no ordering key found: stored unordered");
                }
                found
            });
            let ordering = ordering.filter(|o| match key::validate_ordering(o) {
                Ok(()) => true,
                Err(invalid) => {
                    tracing::warn!(%source, id = ?verified.id, error = %invalid, "ordering key breaks the key rules: stored unordered");
                    false
                }
            });
            // For the log lines below; the event itself moves into the queue.
            let id = verified.id.clone();
            let event = RawEvent {
                id: verified.id,
                source: source.to_owned(),
                received_at: shared.clock.now(),
                headers: select(parts.headers, &*shared.policy),
                body,
                event_type: verified.event_type,
                origin: Origin::Push,
                ordering,
            };
            match shared.queue.enqueue(event).await {
                Ok(enqueued) => {
                    tracing::debug!(%source, %id, ?enqueued, "webhook stored");
                    let outcome = match enqueued {
                        Enqueued::New(_) => Delivery::Stored,
                        Enqueued::Duplicate(_) => Delivery::Duplicate,
                    };
                    observe::delivery(source, outcome, "none");
                    stored(shared.status, enqueued)
                }
                Err(StoreError::Full { depth }) => {
                    tracing::warn!(%source, %id, depth, "queue full: answered 503");
                    refusal(source, IntakeError::QueueFull, Some(&shared.retry_after))
                }
                Err(StoreError::Invalid(invalid)) => {
                    tracing::info!(%source, %id, error = %invalid, "the store refused the event: answered 400");
                    refusal(source, IntakeError::InvalidEvent(invalid), None)
                }
                Err(err) if err.kind() == ErrorKind::Transient => {
                    tracing::error!(
                        %source,
                        %id,
                        error = %err,
                        cause = ?std::error::Error::source(&err),
                        "storage failed: answered 503"
                    );
                    refusal(
                        source,
                        IntakeError::StorageUnavailable,
                        Some(&shared.retry_after),
                    )
                }
                Err(err) => {
                    tracing::error!(
                        %source,
                        %id,
                        error = %err,
                        cause = ?std::error::Error::source(&err),
                        "storage broke an invariant: answered 500"
                    );
                    refusal(source, IntakeError::StorageFault, None)
                }
            }
        };
        ResponseFuture::boxed(tracing::Instrument::instrument(delivered, span))
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn stored(status: StatusCode, enqueued: Enqueued) -> Response<Full<Bytes>> {
    let body = match enqueued {
        Enqueued::New(_) => "stored\n",
        Enqueued::Duplicate(_) => "duplicate\n",
    };
    let mut response = text(status, body);
    response.extensions_mut().insert(enqueued);
    response
}

/// [`failure`], counted under `source`.
fn refusal(
    source: &str,
    error: IntakeError,
    retry_after: Option<&HeaderValue>,
) -> Response<Full<Bytes>> {
    observe::delivery(source, Delivery::of_status(error.status()), error.reason());
    failure(error, retry_after)
}

fn failure(error: IntakeError, retry_after: Option<&HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = text(error.status(), format!("{error}\n"));
    if let Some(after) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, after.clone());
    }
    response.extensions_mut().insert(error);
    response
}
