//! [`ResponseFuture`]: the intake's response future.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

type BoxFuture = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// The response future of [`Intake`](super::Intake): ready at once for a request that
/// cannot be stored, otherwise reading the body and waiting for the queue.
pub struct ResponseFuture {
    kind: Kind,
}

enum Kind {
    Ready(Option<Response<Full<Bytes>>>),
    Storing(BoxFuture),
}

impl ResponseFuture {
    pub(super) fn ready(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Ready(Some(response)),
        }
    }

    pub(super) fn boxed(
        future: impl Future<Output = Response<Full<Bytes>>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Storing(Box::pin(future)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready(response) => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("intake future polled after completion"),
            },
            Kind::Storing(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.kind {
            Kind::Ready(_) => "ready",
            Kind::Storing(_) => "storing",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
