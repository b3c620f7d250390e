//! [`Verify`]: the service the layer wraps around its inner service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

use super::{ResponseBody, ResponseFuture, VerifyLayer};
use crate::clock::SharedClock;
use crate::scheme::Scheme;

/// The middleware built by [`VerifyLayer`]: buffers the body under the limit, verifies it,
/// and calls the inner service with `Request<Full<Bytes>>` (the body byte for byte) and the
/// [`Verified`](crate::scheme::Verified) identity in the request's extensions.
///
/// Rejections are `401`/`400`/`408`/`413` responses with a short `text/plain` body and the
/// [`Rejection`](crate::scheme::Rejection) in the response's extensions; the inner service
/// is not called. Errors of the inner service pass through unchanged
/// (`type Error = S::Error`).
pub struct Verify<S, V: ?Sized> {
    pub(super) inner: S,
    pub(super) scheme: Arc<V>,
    pub(super) limit: usize,
    pub(super) timeout: Option<Duration>,
    pub(super) clock: SharedClock,
    pub(super) handshakes: bool,
    pub(super) alerts: Option<crate::alert::Alerts>,
}

impl<S, V: Scheme> Verify<S, V> {
    /// Wraps `inner`, verifying with `scheme` under the default limit and timeout and the
    /// system clock. Use [`VerifyLayer`] to set the limit, the timeout or the clock.
    pub fn new(inner: S, scheme: V) -> Self {
        tower_layer::Layer::layer(&VerifyLayer::new(scheme), inner)
    }

    /// A [`VerifyLayer`] verifying with `scheme`.
    pub fn layer(scheme: V) -> VerifyLayer<V> {
        VerifyLayer::new(scheme)
    }
}

impl<S, V: ?Sized> Verify<S, V> {
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

impl<S: Clone, V: ?Sized> Clone for Verify<S, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            scheme: Arc::clone(&self.scheme),
            limit: self.limit,
            timeout: self.timeout,
            clock: self.clock.clone(),
            handshakes: self.handshakes,
            alerts: self.alerts.clone(),
        }
    }
}

impl<S: fmt::Debug, V: Scheme + ?Sized> fmt::Debug for Verify<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verify")
            .field("inner", &self.inner)
            .field("scheme", &self.scheme.name())
            .field("limit", &self.limit)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for Verify<S, V>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    V: Scheme + ?Sized,
    ReqBody: http_body::Body,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, V, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was driven to readiness goes with the request; a clone stays for
        // the next call (the usual tower idiom for calling the inner service later).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(request, inner, self)
    }
}
