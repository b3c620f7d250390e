//! [`RateLimited`]: the service the layer wraps around its inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::{RateLimitLayer, ResponseFuture, RouteLimit};
use crate::verify::ResponseBody;

/// The middleware built by [`RateLimitLayer`]: takes a token from the route's bucket for
/// each request and calls the inner service, or, when none is left, answers
/// `429 Too Many Requests` with `Retry-After` and the [`RateLimitRefusal`](super::RateLimitRefusal)
/// in the response's extensions, without calling the inner service or reading the body.
///
/// Errors of the inner service pass through unchanged (`type Error = S::Error`).
#[derive(Clone, Debug)]
pub struct RateLimited<S> {
    pub(super) inner: S,
    pub(super) route: Arc<RouteLimit>,
}

impl<S> RateLimited<S> {
    /// A [`RateLimitLayer`] allowing `limit`.
    pub fn layer(limit: super::RateLimit) -> RateLimitLayer {
        RateLimitLayer::new(limit)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimited<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.route.buckets.take("") {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            // The inner service stays ready for the next request.
            Err(wait) => ResponseFuture::refused(self.route.refuse(wait, request.uri().path())),
        }
    }
}
