//! Flow control: token-bucket rate limits (feature `rate-limit`, through `governor`).
//!
//! One description, [`RateLimit`] (a rate per period, a burst, and a [`RateKey`] saying what
//! each bucket counts), serves both ends of a delivery's path:
//!
//! - **inbound**, the [`RateLimitLayer`] mounted per route answers a request over the rate
//!   with `429 Too Many Requests`, a `Retry-After` in whole seconds (rounded up, at least
//!   `1`: when the route's next token is due), and the one-line body
//!   `not stored: rate limited, retry later`; the typed [`RateLimitRefusal`] is in the
//!   response's extensions, and the refusal is counted in `hookdock_deliveries_total` as
//!   `outcome="refused"`, `kind="rate_limited"`. Senders that follow Standard Webhooks
//!   throttle on `429` and retry, so nothing is lost: what is refused is not stored, and
//!   comes again.
//! - **in the worker**, [`WorkerBuilder::rate_limit`](crate::worker::WorkerBuilder::rate_limit)
//!   makes each event take a token for its key before the handler runs; a burst in the
//!   queue is worked off at the rate, never dropped (see the worker's docs).
//!
//! # Where to mount the inbound layer
//!
//! In front of the [`VerifyLayer`](crate::verify::VerifyLayer): a refusal then costs a
//! token check and nothing else, before any body is buffered or any signature computed, and
//! the inner service is not called. The bucket counts every request the route gets,
//! forged ones too, so a flood of unsigned requests can use up a route's rate and delay
//! real deliveries (their senders retry). Where that matters more than the cost of
//! verifying first, mount it behind the verify layer instead: it then counts only
//! verified deliveries. Either way it keeps one bucket per route, shared by every clone of
//! the layer; the key of the [`RateLimit`] is not consulted (before verification no source
//! or type can be trusted).
//!
//! Shedding load from queue depth is the intake's part, not this layer's:
//! [`QueueOptions::max_depth`](crate::store::QueueOptions::max_depth()) makes the intake
//! answer `503` with `Retry-After` while the queue is full.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use hookdock::limit::{RateLimit, RateLimitLayer, RateLimitRefusal};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let route = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(RateLimit::per_second(2, 2)?).source("github"))
//!     .service(service_fn(|_: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("stored"))))
//!     }));
//! let request = || Request::post("/webhooks/github").body(Full::new(Bytes::new()));
//! for _ in 0..2 {
//!     assert_eq!(route.clone().oneshot(request()?).await?.status(), StatusCode::OK);
//! }
//! let refused = route.oneshot(request()?).await?;
//! assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(refused.headers()["retry-after"], "1");
//! assert!(refused.extensions().get::<RateLimitRefusal>().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod bucket;
mod future;
mod layer;
mod rate;
mod service;

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

pub(crate) use bucket::Buckets;
pub use future::ResponseFuture;
pub use layer::RateLimitLayer;
pub use rate::{KeyFn, RateKey, RateLimit};
pub use service::RateLimited;

use crate::metrics_shim::{self as observe, Delivery};

/// Why the [`RateLimitLayer`] refused a request; placed in the extensions of its `429`
/// responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not stored: rate limited, retry later")]
pub struct RateLimitRefusal {
    retry_after: Duration,
}

impl RateLimitRefusal {
    /// The status answered: `429 Too Many Requests`.
    pub fn status(self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    /// A stable snake_case name, as logs and the metrics use it: `rate_limited`.
    pub fn reason(self) -> &'static str {
        "rate_limited"
    }

    /// When the route's next token is due, from the refusal.
    pub fn retry_after(self) -> Duration {
        self.retry_after
    }

    /// The `Retry-After` value sent: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// One route's limit, shared by the layer's clones and services.
#[derive(Debug)]
pub(crate) struct RouteLimit {
    pub(crate) limit: RateLimit,
    pub(crate) buckets: Buckets,
    pub(crate) source: String,
}

impl RouteLimit {
    /// The `429` for a request refused while the next token is `wait` away; counted and
    /// logged (with the path only: never a header, a query or a body).
    pub(crate) fn refuse(&self, wait: Duration, path: &str) -> Response<Bytes> {
        let refusal = RateLimitRefusal { retry_after: wait };
        observe::delivery(
            &self.source,
            Delivery::of_status(refusal.status()),
            refusal.reason(),
        );
        tracing::debug!(source = self.source.as_str(), path, retry_after = ?wait, "refused: rate limited");
        let mut response = Response::new(Bytes::from(format!("{refusal}\n")));
        *response.status_mut() = refusal.status();
        let headers = response.headers_mut();
        headers.insert(RETRY_AFTER, HeaderValue::from(refusal.retry_after_secs()));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response.extensions_mut().insert(refusal);
        response
    }
}
