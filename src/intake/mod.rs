//! The intake service: stores a verified delivery durably before answering `2xx`.
//!
//! [`Intake`] is the terminal `tower::Service<http::Request<B>>` behind a
//! [`VerifyLayer`](crate::verify::VerifyLayer). For each request it:
//!
//! 1. takes the [`Verified`](crate::scheme::Verified) identity from the request's
//!    extensions; a request without one (the intake mounted without the verify layer) is
//!    never stored and gets `500` with a message saying so ([`IntakeError::NotVerified`]);
//! 2. builds a [`RawEvent`](crate::RawEvent): the verified id, the source (configured, else
//!    the scheme's name), the received-at time from its [`Clock`](crate::Clock), the headers
//!    its [`HeaderPolicy`] keeps (by default all but hop-by-hop headers and credentials, so the
//!    provider's signature, id and timestamp headers stay and events can be re-verified),
//!    and the raw body as received (no copy);
//! 3. awaits [`Queue::enqueue`](crate::store::Queue::enqueue), which resolves only once the
//!    event is stored at the queue's durability;
//! 4. answers the configured `2xx` (default `200`) for a new event *and* for a duplicate (the
//!    sender should stop retrying either way), with the [`Enqueued`](crate::store::Enqueued)
//!    outcome in the response's extensions; `503 Service Unavailable` with `Retry-After`
//!    when the queue is full or storage fails for now ([`IntakeError::QueueFull`],
//!    [`IntakeError::StorageUnavailable`]), so the sender's own retry is the backstop;
//!    `400 Bad Request` naming the reason for an event that can never be stored (an id
//!    breaking the [key rules](crate::store::key): [`IntakeError::InvalidEvent`]), so the
//!    sender stops retrying; `500` if the store reports a broken invariant
//!    ([`IntakeError::StorageFault`], logged).
//!
//! Load shedding from queue depth is this `503`: with
//! [`QueueOptions::max_depth`](crate::store::QueueOptions::max_depth()) set, the intake refuses
//! new deliveries while the queue holds that many events, with `Retry-After` (the
//! [`IntakeBuilder::retry_after`] value, 10 s by default), and stores them when the sender
//! retries after the backlog has drained. (A rate limit per route, answering `429`, is the
//! `limit` layer's, feature `rate-limit`.)
//!
//! A `2xx` is never sent for an event that is not stored. The body of every answer is one
//! line of text: `stored`, `duplicate`, or `not stored: ...` with the reason.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use hookdock::intake::Intake;
//! use hookdock::store::{MemoryQueue, Queue};
//! use hookdock::scheme::Preset;
//! use hookdock::verify::VerifyLayer;
//! use std::sync::Arc;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let queue = Arc::new(MemoryQueue::new());
//! let endpoint = ServiceBuilder::new()
//!     .layer(VerifyLayer::new(Preset::github(["It's a Secret to Everybody"])?))
//!     .service(Intake::new(Arc::clone(&queue)));
//!
//! let delivery = || {
//!     Request::post("/webhooks/github")
//!         .header("x-hub-signature-256",
//!                 "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
//!         .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
//!         .body(Full::new(Bytes::from_static(b"Hello, World!")))
//! };
//! let first = endpoint.clone().oneshot(delivery()?).await?;
//! let again = endpoint.oneshot(delivery()?).await?;
//! assert_eq!(first.status(), StatusCode::OK);
//! assert_eq!(again.status(), StatusCode::OK); // a duplicate is acknowledged too...
//! assert_eq!(queue.stats().await?.ready, 1); // ...and stored once.
//!
//! let leased = queue.lease(1, std::time::Duration::from_secs(30)).await?;
//! let event = &leased[0].event;
//! assert_eq!(event.source, "github");
//! assert_eq!(event.id.as_str(), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
//! assert_eq!(&event.body[..], b"Hello, World!");
//! assert!(event.headers.contains_key("x-hub-signature-256")); // kept for re-verification
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod future;
mod headers;
mod service;

use http::StatusCode;

use crate::store::InvalidInput;

pub use future::ResponseFuture;
pub use headers::{DefaultHeaderPolicy, HeaderPolicy, CREDENTIAL_HEADERS};
pub use service::{Intake, IntakeBuilder, DEFAULT_RETRY_AFTER};

/// Why the intake did not store a request; placed in the extensions of its non-`2xx`
/// responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// The request carries no [`Verified`](crate::scheme::Verified) identity: the intake is
    /// mounted without a verify layer in front. `500`.
    #[error("not stored: the request was not verified (mount VerifyLayer in front of the intake)")]
    NotVerified,
    /// The body could not be read. `400`.
    #[error("not stored: the request body could not be read")]
    BodyUnreadable,
    /// The event's source or id can never be stored (see [`crate::store::key`]). `400`, with
    /// the reason (`invalid_event_id`, `invalid_source`) first in the body.
    #[error("not stored: {reason}: {0}", reason = .0.reason())]
    InvalidEvent(InvalidInput),
    /// The queue is at its depth limit. `503` with `Retry-After`.
    #[error("not stored: the queue is full, retry later")]
    QueueFull,
    /// The queue failed to store the event for now (I/O, database, shut down). `503` with
    /// `Retry-After`.
    #[error("not stored: storage is unavailable, retry later")]
    StorageUnavailable,
    /// The store reported a broken invariant (a bug, or a database edited by hand). `500`;
    /// logged at `ERROR`.
    #[error("not stored: internal storage error")]
    StorageFault,
}

impl IntakeError {
    /// The HTTP status answered.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NotVerified | Self::StorageFault => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BodyUnreadable | Self::InvalidEvent(_) => StatusCode::BAD_REQUEST,
            Self::QueueFull | Self::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable snake_case name, as logs and tests use it: `not_verified`,
    /// `body_unreadable`, `invalid_event_id`, `invalid_source`, `queue_full`,
    /// `storage_unavailable`, `storage_fault`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotVerified => "not_verified",
            Self::BodyUnreadable => "body_unreadable",
            Self::InvalidEvent(invalid) => invalid.reason(),
            Self::QueueFull => "queue_full",
            Self::StorageUnavailable => "storage_unavailable",
            Self::StorageFault => "storage_fault",
        }
    }
}
