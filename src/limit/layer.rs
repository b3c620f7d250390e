//! [`RateLimitLayer`]: the layer and its settings.

use std::sync::Arc;

use tower_layer::Layer;

use super::bucket::Buckets;
use super::{RateLimit, RouteLimit};

/// A [`Layer`] that refuses requests over a route's [`RateLimit`] with
/// `429 Too Many Requests` and `Retry-After`; see the [module docs](super).
///
/// Every clone of the layer, and every service it builds, shares one bucket: mount one
/// layer per route.
///
/// ```
/// use hookdock::limit::{RateLimit, RateLimitLayer};
///
/// let layer = RateLimitLayer::new(RateLimit::per_second(100, 20)?).source("github");
/// assert_eq!(layer.limit().burst(), 20);
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    pub(super) route: Arc<RouteLimit>,
}

impl RateLimitLayer {
    /// A layer allowing `limit` on the route it is mounted on; refusals are counted under
    /// the source `unknown` until [`source`](Self::source) names it.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            route: Arc::new(RouteLimit {
                buckets: Buckets::new(&limit),
                limit,
                source: "unknown".into(),
            }),
        }
    }

    /// Names the route's source (builder style), as the metric `hookdock_deliveries_total`
    /// and the logs label refusals; give it the intake's source (such as `github`).
    /// Starts the route with a full bucket again.
    pub fn source(self, source: impl Into<String>) -> Self {
        let limit = self.route.limit.clone();
        Self {
            route: Arc::new(RouteLimit {
                buckets: Buckets::new(&limit),
                limit,
                source: source.into(),
            }),
        }
    }

    /// The rate allowed.
    pub fn limit(&self) -> &RateLimit {
        &self.route.limit
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = super::RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        super::RateLimited {
            inner,
            route: Arc::clone(&self.route),
        }
    }
}
