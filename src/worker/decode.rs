//! Typed handlers: [`DecodeJsonLayer`] decodes the raw JSON body into the handler's type.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use super::{Event, HandlerError};

/// Decodes each event's raw body as JSON into `T` before the inner service sees it, so a
/// handler can take `Event<T>` for any `serde` type.
///
/// A body that does not decode is a [permanent](HandlerError::permanent) failure: the event
/// goes to the dead letters with a reason naming the event, the target type and the
/// `serde_json` error (with its line and column), and the inner service is not called. Fix the
/// type (or the sender), then replay.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hookdock::worker::{DecodeJsonLayer, Event, HandlerError};
/// use hookdock::store::MessageId;
/// use hookdock::RawEvent;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// #[derive(serde::Deserialize)]
/// struct Push { r#ref: String }
///
/// let handler = DecodeJsonLayer::<Push>::new().layer(service_fn(|event: Event<Push>| async move {
///     Ok::<_, HandlerError>(event.payload().r#ref.clone())
/// }));
///
/// let good = RawEvent::new("github", "d-1", std::time::SystemTime::now(), r#"{"ref":"main"}"#);
/// let r = handler.clone().oneshot(Event::new(good, MessageId(1), 1, 10)).await;
/// assert_eq!(r.unwrap(), "main");
///
/// let bad = RawEvent::new("github", "d-2", std::time::SystemTime::now(), r#"{"ref":1}"#);
/// let err = handler.oneshot(Event::new(bad, MessageId(2), 1, 10)).await.unwrap_err();
/// assert!(err.is_permanent());
/// assert!(err.to_string().contains("invalid type: integer `1`"));
/// # });
/// ```
///
/// # Schema drift
///
/// With the feature `schema-drift`, `report_drift` also finds what each payload carries that
/// `T` does not know and what `T` expected but did not get (the method and its limits are on
/// `Drift`), and hands it to a `DriftReporter`: a warning once per new shape per source and
/// event type, and every drifted event to a hook (for a metric). Drift never fails an event.
pub struct DecodeJsonLayer<T> {
    _target: PhantomData<fn() -> T>,
    #[cfg(feature = "schema-drift")]
    drift: Option<super::drift::Watch<T>>,
}

impl<T> DecodeJsonLayer<T> {
    /// A layer decoding into `T`.
    pub fn new() -> Self {
        Self {
            _target: PhantomData,
            #[cfg(feature = "schema-drift")]
            drift: None,
        }
    }
}

#[cfg(feature = "schema-drift")]
#[cfg_attr(docsrs, doc(cfg(feature = "schema-drift")))]
impl<T> DecodeJsonLayer<T>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    /// Reports each payload's [drift](super::Drift) from `T` to `reporter` (builder style).
    /// `T` must also be `Serialize`: the missing fields are found by serializing the decoded
    /// value. Decoding then goes through a `serde_json::Value` first, which costs about one
    /// more pass over the body.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::sync::{Arc, Mutex};
    /// use hookdock::worker::{DecodeJsonLayer, DriftReport, DriftReporter, Event, HandlerError};
    /// use hookdock::store::MessageId;
    /// use hookdock::RawEvent;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// #[derive(serde::Deserialize, serde::Serialize)]
    /// struct Paid { id: String, #[serde(default)] amount: u64 }
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&seen);
    /// let reporter = DriftReporter::new().hook(move |r: &DriftReport| {
    ///     // A metric would count it here, by source, event type and kind.
    ///     sink.lock().unwrap().push((r.drift.unknown.clone(), r.drift.missing.clone()));
    /// });
    /// let handler = DecodeJsonLayer::<Paid>::new()
    ///     .report_drift(reporter)
    ///     .layer(service_fn(|e: Event<Paid>| async move { Ok::<_, HandlerError>(e.payload().id.clone()) }));
    ///
    /// let raw = RawEvent::new("shop", "d-1", std::time::SystemTime::now(), r#"{"id":"p1","currency":"EUR"}"#)
    ///     .with_event_type("invoice.paid");
    /// assert_eq!(handler.oneshot(Event::new(raw, MessageId(1), 1, 10)).await?, "p1");
    /// assert_eq!(*seen.lock().unwrap(), [(vec!["currency".to_owned()], vec!["amount".to_owned()])]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn report_drift(mut self, reporter: super::DriftReporter) -> Self {
        self.drift = Some(super::drift::Watch {
            decode: super::decode_with_drift::<T>,
            reporter,
        });
        self
    }
}

impl<T> Default for DecodeJsonLayer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for DecodeJsonLayer<T> {
    fn clone(&self) -> Self {
        Self {
            _target: PhantomData,
            #[cfg(feature = "schema-drift")]
            drift: self.drift.clone(),
        }
    }
}

impl<T> fmt::Debug for DecodeJsonLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodeJsonLayer")
            .field("target", &std::any::type_name::<T>())
            .finish()
    }
}

impl<S, T> Layer<S> for DecodeJsonLayer<T> {
    type Service = DecodeJson<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeJson {
            inner,
            _target: PhantomData,
            #[cfg(feature = "schema-drift")]
            drift: self.drift.clone(),
        }
    }
}

/// The service [`DecodeJsonLayer`] builds.
pub struct DecodeJson<S, T> {
    inner: S,
    _target: PhantomData<fn() -> T>,
    #[cfg(feature = "schema-drift")]
    drift: Option<super::drift::Watch<T>>,
}

impl<S, T> DecodeJson<S, T> {
    /// Wraps `inner` (reporting no drift).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            _target: PhantomData,
            #[cfg(feature = "schema-drift")]
            drift: None,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, T> Clone for DecodeJson<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _target: PhantomData,
            #[cfg(feature = "schema-drift")]
            drift: self.drift.clone(),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for DecodeJson<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodeJson")
            .field("inner", &self.inner)
            .field("target", &std::any::type_name::<T>())
            .finish()
    }
}

/// Why a body did not decode; the source of the permanent [`HandlerError`].
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot decode the body of event {source_name}/{event_id} as JSON into `{target}`: {error}"
)]
pub struct DecodeError {
    source_name: String,
    event_id: String,
    target: &'static str,
    #[source]
    error: serde_json::Error,
}

impl DecodeError {
    /// The `serde_json` error (line, column, what was expected).
    pub fn json_error(&self) -> &serde_json::Error {
        &self.error
    }
}

impl<S, T, P> Service<Event<P>> for DecodeJson<S, T>
where
    S: Service<Event<T>>,
    S::Error: Into<HandlerError>,
    T: DeserializeOwned,
{
    type Response = S::Response;
    type Error = HandlerError;
    type Future = DecodeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, event: Event<P>) -> Self::Future {
        #[cfg(feature = "schema-drift")]
        let decoded = match &self.drift {
            Some(watch) => (watch.decode)(event.body()).map(|(payload, drift)| {
                watch.reporter.observe(
                    event.source(),
                    event.raw().event_type.as_ref().map(|t| t.as_str()),
                    std::any::type_name::<T>(),
                    drift,
                );
                payload
            }),
            None => serde_json::from_slice::<T>(event.body()),
        };
        #[cfg(not(feature = "schema-drift"))]
        let decoded = serde_json::from_slice::<T>(event.body());
        match decoded {
            Ok(payload) => DecodeFuture::inner(self.inner.call(event.replace_payload(payload).0)),
            Err(error) => DecodeFuture::failed(HandlerError::permanent(DecodeError {
                source_name: event.source().to_owned(),
                event_id: event.id().to_string(),
                target: std::any::type_name::<T>(),
                error,
            })),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future [`DecodeJson`] returns.
    pub struct DecodeFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Failed { error: Option<HandlerError> },
    }
}

impl<F> DecodeFuture<F> {
    fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    fn failed(error: HandlerError) -> Self {
        Self {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<F> fmt::Debug for DecodeFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("DecodeFuture::Inner"),
            Kind::Failed { .. } => f.write_str("DecodeFuture::Failed"),
        }
    }
}

impl<F, R, E> Future for DecodeFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<HandlerError>,
{
    type Output = Result<R, HandlerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_err(Into::into),
            KindProj::Failed { error } => match error.take() {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Ready(Err(HandlerError::permanent(
                    "DecodeFuture polled after completion",
                ))),
            },
        }
    }
}
