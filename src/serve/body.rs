//! The response body [`serve`](super::serve) writes: the service's body, or the text of an
//! overload refusal, holding its connection's [`Busy`] mark until it is written.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::connections::Busy;
use crate::verify::ResponseBody;

pin_project! {
    pub(super) struct EdgeBody<B> {
        #[pin]
        body: ResponseBody<B>,
        // Dropped with the body, once hyper has written it: until then the connection has
        // a request in flight and is not closed to make room.
        _busy: Busy,
    }
}

impl<B> EdgeBody<B> {
    pub(super) fn inner(body: B, busy: Busy) -> Self {
        Self {
            body: ResponseBody::inner(body),
            _busy: busy,
        }
    }

    pub(super) fn text(text: &'static str, busy: Busy) -> Self {
        Self {
            body: ResponseBody::text(Bytes::from_static(text.as_bytes())),
            _busy: busy,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for EdgeBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
