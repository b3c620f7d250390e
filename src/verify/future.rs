//! [`ResponseFuture`]: buffer the body under the limit → answer a handshake, or verify (loading
//! a key first where the scheme needs one) → call the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use super::collect::Collector;
use super::handshake::{Answer, AnswerFuture};
use super::outcome::{decide, Outcome};
use super::ResponseBody;
use crate::alert::Alerts;
use crate::clock::SharedClock;
use crate::metrics_shim::{self as observe, Delivery, Timer};
use crate::scheme::{KeyLoad, Rejection, RejectionKind, Scheme, SignedRequest};

pin_project! {
    /// The response future of [`Verify`](super::Verify).
    ///
    /// A small state machine: it reads the body (refusing it as soon as it passes the limit,
    /// or when it has not arrived within the body timeout), then answers a handshake, or runs
    /// the scheme over the request and the raw bytes (awaiting a key load first when the
    /// scheme asks for one), then either calls the inner service with the verified request or
    /// resolves to a rejection response.
    pub struct ResponseFuture<S, V: ?Sized, B>
    where
        S: Service<Request<Full<Bytes>>>,
    {
        #[pin]
        state: State<S, S::Future, B>,
        scheme: Arc<V>,
        clock: SharedClock,
        limit: usize,
        timeout: Option<Duration>,
        handshakes: bool,
        alerts: Option<Alerts>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B> {
        Reading {
            #[pin]
            body: B,
            collector: Collector,
            head: Option<(Parts, S)>,
            // Armed the first time the body is not there yet.
            deadline: Option<Pin<Box<Sleep>>>,
        },
        Loading {
            future: KeyLoad,
            head: Option<(Parts, S, Bytes)>,
        },
        Calling {
            #[pin]
            future: F,
        },
        Answering {
            future: AnswerFuture,
            parts: Option<Parts>,
        },
        Answered {
            answer: Option<Answer>,
        },
        Rejected {
            rejection: Option<Rejection>,
        },
    }
}

impl<S, V, B> ResponseFuture<S, V, B>
where
    S: Service<Request<Full<Bytes>>>,
    V: Scheme + ?Sized,
    B: Body,
{
    /// The future of one call of `service` (its settings), with the `inner` service that
    /// was driven to readiness.
    pub(super) fn new(request: Request<B>, inner: S, service: &super::Verify<S, V>) -> Self {
        let scheme = Arc::clone(&service.scheme);
        let limit = service.limit;
        let (parts, body) = request.into_parts();
        let declared = declared_length(&parts, &body);
        let state = match declared {
            Some(len) if len > limit as u64 => {
                let rejection = too_large("declared Content-Length is over the body limit");
                log_rejection(scheme.name(), &parts, &rejection);
                State::Rejected {
                    rejection: Some(rejection),
                }
            }
            _ => State::Reading {
                body,
                collector: Collector::with_hint(declared.map_or(0, |len| len as usize)),
                head: Some((parts, inner)),
                deadline: None,
            },
        };
        Self {
            state,
            scheme,
            clock: service.clock.clone(),
            limit,
            timeout: service.timeout,
            handshakes: service.handshakes,
            alerts: service.alerts.clone(),
        }
    }
}

/// The state after the body is read (or a key loaded): what [`decide`] says, carried out.
fn after_read<S, V, B>(
    scheme: &V,
    handshakes: bool,
    clock: &SharedClock,
    alerts: Option<&Alerts>,
    (mut parts, mut inner, body): (Parts, S, Bytes),
    loaded: bool,
) -> State<S, S::Future, B>
where
    S: Service<Request<Full<Bytes>>>,
    V: Scheme + ?Sized,
{
    let request = SignedRequest {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
        now: clock.now(),
    };
    let timer = Timer::start();
    let outcome = decide(scheme, handshakes, &request, loaded);
    if !matches!(outcome, Outcome::Load(_)) {
        observe::verified(scheme.name(), timer);
    }
    match outcome {
        Outcome::Pass(verified) => {
            tracing::trace!(
                scheme = verified.scheme,
                id = %verified.id,
                "webhook verified"
            );
            parts.extensions.insert(verified);
            let future = inner.call(Request::from_parts(parts, Full::new(body)));
            State::Calling { future }
        }
        Outcome::Reject(rejection) => {
            log_rejection(scheme.name(), &parts, &rejection);
            if let (RejectionKind::BadSignature, Some(alerts)) = (rejection.kind(), alerts) {
                alerts.bad_signature(scheme.name());
            }
            State::Rejected {
                rejection: Some(rejection),
            }
        }
        Outcome::Answer(answer) => {
            log_answer(scheme.name(), &parts, &answer);
            State::Answered {
                answer: Some(answer),
            }
        }
        Outcome::AnswerLater(future) => State::Answering {
            future,
            parts: Some(parts),
        },
        Outcome::Load(future) => State::Loading {
            future,
            head: Some((parts, inner, body)),
        },
    }
}

impl<S, V, B, ResBody> Future for ResponseFuture<S, V, B>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    V: Scheme + ?Sized,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Reading {
                    mut body,
                    collector,
                    head,
                    deadline,
                } => {
                    let read = loop {
                        let frame = match body.as_mut().poll_frame(cx) {
                            Poll::Ready(frame) => frame,
                            Poll::Pending => {
                                let Some(timeout) = *this.timeout else {
                                    return Poll::Pending;
                                };
                                let timer = deadline
                                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                                if timer.as_mut().poll(cx).is_pending() {
                                    return Poll::Pending;
                                }
                                break Err(Rejection::new(
                                    RejectionKind::BodyTimeout,
                                    "the body did not arrive within the body timeout",
                                ));
                            }
                        };
                        match frame {
                            None => break Ok(()),
                            Some(Ok(frame)) => {
                                if let Ok(data) = frame.into_data() {
                                    if !collector.push(data, *this.limit) {
                                        break Err(too_large(
                                            "body grew past the body limit while streaming",
                                        ));
                                    }
                                }
                            }
                            Some(Err(err)) => {
                                let err = err.into();
                                tracing::debug!(error = %err, "webhook body could not be read");
                                break Err(Rejection::new(
                                    RejectionKind::BodyUnreadable,
                                    "the request body could not be read",
                                ));
                            }
                        }
                    };
                    let Some((parts, inner)) = head.take() else {
                        panic!("verify future polled after completion");
                    };
                    match read {
                        Ok(()) => after_read(
                            &**this.scheme,
                            *this.handshakes,
                            this.clock,
                            this.alerts.as_ref(),
                            (parts, inner, collector.take()),
                            false,
                        ),
                        Err(rejection) => {
                            log_rejection(this.scheme.name(), &parts, &rejection);
                            State::Rejected {
                                rejection: Some(rejection),
                            }
                        }
                    }
                }
                StateProj::Loading { future, head } => {
                    let loaded = ready!(future.as_mut().poll(cx));
                    let Some(head) = head.take() else {
                        panic!("verify future polled after completion");
                    };
                    match loaded {
                        Ok(()) => after_read(
                            &**this.scheme,
                            *this.handshakes,
                            this.clock,
                            this.alerts.as_ref(),
                            head,
                            true,
                        ),
                        Err(rejection) => {
                            log_rejection(this.scheme.name(), &head.0, &rejection);
                            State::Rejected {
                                rejection: Some(rejection),
                            }
                        }
                    }
                }
                StateProj::Calling { future } => {
                    return future
                        .poll(cx)
                        .map_ok(|response| response.map(ResponseBody::inner));
                }
                StateProj::Answering { future, parts } => {
                    let answer = ready!(future.as_mut().poll(cx));
                    if let Some(parts) = parts.take() {
                        log_answer(this.scheme.name(), &parts, &answer);
                    }
                    State::Answered {
                        answer: Some(answer),
                    }
                }
                StateProj::Answered { answer } => {
                    let Some(answer) = answer.take() else {
                        panic!("verify future polled after completion");
                    };
                    return Poll::Ready(Ok(
                        answer.into_response(this.scheme.name(), ResponseBody::text)
                    ));
                }
                StateProj::Rejected { rejection } => {
                    let Some(rejection) = rejection.take() else {
                        panic!("verify future polled after completion");
                    };
                    return Poll::Ready(Ok(rejection_response(rejection)));
                }
            };
            this.state.set(next);
        }
    }
}

impl<S, V, B> fmt::Debug for ResponseFuture<S, V, B>
where
    S: Service<Request<Full<Bytes>>>,
    V: Scheme + ?Sized,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Reading { .. } => "reading body",
            State::Loading { .. } => "loading a key",
            State::Calling { .. } => "calling inner service",
            State::Answering { .. } => "answering a handshake",
            State::Answered { .. } => "answered a handshake",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("scheme", &self.scheme.name())
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// The body length the request announces: its `Content-Length`, else the body's exact or
/// lower size hint.
fn declared_length<B: Body>(parts: &Parts, body: &B) -> Option<u64> {
    let header = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let hint = body.size_hint().lower();
    match header {
        Some(len) => Some(len.max(hint)),
        None if hint > 0 => Some(hint),
        None => None,
    }
}

fn too_large(detail: &'static str) -> Rejection {
    Rejection::new(RejectionKind::PayloadTooLarge, detail)
}

/// The answer to a refused delivery: the status for its kind, the rejection as one line of
/// text, and the typed [`Rejection`] in the extensions.
fn rejection_response<B>(rejection: Rejection) -> Response<ResponseBody<B>> {
    let text = Bytes::from(format!("{rejection}\n"));
    let mut response = Response::new(ResponseBody::text(text));
    *response.status_mut() = rejection.status();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if rejection.kind() == RejectionKind::BodyTimeout {
        // The rest of the body may still come: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if rejection.status() == StatusCode::SERVICE_UNAVAILABLE {
        // A key that could not be loaded now: the provider's retry may succeed.
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(KEY_RETRY_AFTER));
    }
    response.extensions_mut().insert(rejection);
    response
}

/// The `Retry-After` of a `503` for a key that could not be loaded, in seconds.
const KEY_RETRY_AFTER: &str = "10";

/// Logs and counts an answered handshake: which one and where, never the challenge or the
/// answer.
fn log_answer(scheme: &'static str, parts: &Parts, answer: &Answer) {
    observe::delivery(scheme, Delivery::Handshake, answer.kind().as_str());
    tracing::info!(
        scheme,
        method = parts.method.as_str(),
        path = parts.uri.path(),
        kind = answer.kind().as_str(),
        status = answer.status_code().as_u16(),
        "webhook handshake answered"
    );
}

/// Logs and counts a refusal: never a header value, a signature or the query string (which some senders
/// use for tokens), only what was wrong and where.
fn log_rejection(scheme: &'static str, parts: &Parts, rejection: &Rejection) {
    let kind = rejection.kind().as_str();
    observe::delivery(scheme, Delivery::of_status(rejection.status()), kind);
    let header = rejection.header().map_or("", |h| h.as_str());
    let path = parts.uri.path();
    let method = parts.method.as_str();
    match rejection.kind() {
        // Worth seeing at the default level: a wrong or rotated secret, a replay, clock skew.
        RejectionKind::BadSignature
        | RejectionKind::TimestampTooOld
        | RejectionKind::TimestampInFuture => tracing::info!(
            scheme,
            method,
            path,
            kind,
            header,
            detail = rejection.detail(),
            "webhook rejected"
        ),
        _ => tracing::debug!(
            scheme,
            method,
            path,
            kind,
            header,
            detail = rejection.detail(),
            "webhook rejected"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::stream::{self, StreamExt};
    use http::{Request, Response, StatusCode};
    use http_body::Frame;
    use http_body_util::{BodyExt, Full, StreamBody};
    use tower::{service_fn, ServiceExt};

    use crate::scheme::{Preset, Rejection, RejectionKind};
    use crate::verify::VerifyLayer;

    /// A body that sends `first`, then nothing more for `stall` (forever if `None`), then ends.
    fn stalling(
        first: &'static [u8],
        stall: Option<Duration>,
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        let head = stream::iter([Ok(Frame::data(Bytes::from_static(first)))]);
        let tail = stream::once(async move {
            match stall {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
            Ok(Frame::data(Bytes::from_static(b"}")))
        });
        StreamBody::new(head.chain(tail))
    }

    async fn answer<B>(layer: VerifyLayer<Preset>, body: B) -> (Response<Bytes>, usize)
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let inner = service_fn(move |_req: Request<Full<Bytes>>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
        });
        let svc = tower_layer::Layer::layer(&layer, inner);
        let request = Request::post("/webhooks/github").body(body).unwrap();
        let response = svc.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, body),
            calls.load(Ordering::Relaxed),
        )
    }

    fn layer(timeout: Duration) -> VerifyLayer<Preset> {
        VerifyLayer::new(Preset::github(["s"]).unwrap()).body_timeout(timeout)
    }

    #[tokio::test]
    async fn a_stalled_body_gets_408_and_the_inner_service_is_not_called() {
        let answered = answer(layer(Duration::from_millis(50)), stalling(b"{\"a\":", None));
        let (response, calls) = tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .expect("answered (not waiting forever)");
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()["connection"], "close");
        let rejection = response.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.kind(), RejectionKind::BodyTimeout);
        assert!(response.body().starts_with(b"body_timeout: "));
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn a_body_finishing_within_the_timeout_is_verified() {
        // Unsigned, so refused, but by the scheme: the whole body was read.
        let (response, calls) = answer(
            layer(Duration::from_secs(30)),
            stalling(b"{\"a\":1", Some(Duration::from_millis(20))),
        )
        .await;
        let rejection = response.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.kind(), RejectionKind::MissingHeader);
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn without_a_timeout_a_slow_body_is_waited_for() {
        let layer = VerifyLayer::new(Preset::github(["s"]).unwrap()).without_body_timeout();
        assert_eq!(layer.timeout(), None);
        let (response, _) = answer(
            layer,
            stalling(b"{\"a\":1", Some(Duration::from_millis(20))),
        )
        .await;
        let rejection = response.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.kind(), RejectionKind::MissingHeader);
    }
}
