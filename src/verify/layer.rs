//! [`VerifyLayer`]: the layer and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::Verify;
use crate::alert::Alerts;
use crate::clock::SharedClock;
use crate::scheme::Scheme;
use crate::Clock;

/// The body limit used when none is set: 1 MiB.
///
/// GitHub caps payloads at 25 MB, but almost every delivery of every provider is a few KiB;
/// raise the limit per route where a provider really sends more.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The body timeout used when none is set: 10 seconds.
///
/// A provider sends a webhook's body right behind its headers, in milliseconds; 10 s is
/// 100 KiB/s for a body at the [default limit](DEFAULT_BODY_LIMIT). A client that takes
/// longer (or announces more bytes than it sends) is answered `408` and nothing is stored.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Layer`] that checks every request's signature with a [`Scheme`] before the inner
/// service sees it; see the [module docs](super).
///
/// Cloning is cheap: the scheme is shared through an [`Arc`].
///
/// ```
/// use hookdock::scheme::Preset;
/// use hookdock::verify::VerifyLayer;
///
/// use std::time::Duration;
///
/// let layer = VerifyLayer::new(Preset::github(["It's a Secret to Everybody"])?)
///     .body_limit(256 * 1024)
///     .body_timeout(Duration::from_secs(5));
/// assert_eq!(layer.limit(), 256 * 1024);
/// assert_eq!(layer.timeout(), Some(Duration::from_secs(5)));
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
pub struct VerifyLayer<V: ?Sized> {
    pub(super) scheme: Arc<V>,
    pub(super) limit: usize,
    pub(super) timeout: Option<Duration>,
    pub(super) clock: SharedClock,
    pub(super) handshakes: bool,
    pub(super) alerts: Option<Alerts>,
}

impl<V: Scheme> VerifyLayer<V> {
    /// A layer verifying with `scheme`, with the [default body limit](DEFAULT_BODY_LIMIT), the
    /// [default body timeout](DEFAULT_BODY_TIMEOUT) and the system clock.
    pub fn new(scheme: V) -> Self {
        Self::from_arc(Arc::new(scheme))
    }
}

impl<V: Scheme + ?Sized> VerifyLayer<V> {
    /// A layer verifying with an already shared scheme, such as an `Arc<dyn Scheme>` chosen
    /// at run time.
    pub fn from_arc(scheme: Arc<V>) -> Self {
        Self {
            scheme,
            limit: DEFAULT_BODY_LIMIT,
            timeout: Some(DEFAULT_BODY_TIMEOUT),
            clock: SharedClock::default(),
            handshakes: true,
            alerts: None,
        }
    }

    /// Sets the largest body accepted, in bytes (builder style). A request declaring a larger
    /// `Content-Length` is refused before its body is read; a body that grows past the limit
    /// while streaming is refused as soon as it does. Both get `413 Payload Too Large`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Sets how long the body may take to arrive (builder style), counted from the moment the
    /// layer first has to wait for it. A body still incomplete then is refused with
    /// `408 Request Timeout` ([`RejectionKind::BodyTimeout`], `Connection: close`) and the
    /// inner service is not called, so nothing is stored. This is what ends a client that
    /// sends its body a byte at a time, or announces a `Content-Length` larger than what it
    /// sends.
    ///
    /// The timer is a Tokio timer, armed only when the body is not already there (a body
    /// that came in with the headers costs nothing): the layer must run on a Tokio runtime
    /// with its time driver enabled (`#[tokio::main]` enables it).
    ///
    /// [`RejectionKind::BodyTimeout`]: crate::scheme::RejectionKind::BodyTimeout
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Turns the body timeout off (builder style): the layer waits for the body as long as
    /// the connection stays open. Only for a server whose connections are bounded some other
    /// way.
    pub fn without_body_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Reads the current time from `clock` instead of the system clock (builder style); the
    /// time is what a scheme's replay window is checked against.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Counts this scheme's `bad_signature` rejections for `alerts`, which fire
    /// [`Alert::SignatureFailures`](crate::alert::Alert::SignatureFailures) when they spike
    /// (builder style).
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Stops answering the scheme's [handshake](super::handshake) (builder style): challenge
    /// requests are then verified and passed on, or refused, like any delivery. Answering is
    /// on by default for every scheme that has a handshake.
    pub fn without_handshake(mut self) -> Self {
        self.handshakes = false;
        self
    }

    /// True if the scheme's handshake is answered (the default).
    pub fn answers_handshakes(&self) -> bool {
        self.handshakes
    }

    /// The body limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The body timeout, if on.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The scheme.
    pub fn scheme(&self) -> &Arc<V> {
        &self.scheme
    }
}

impl<V: ?Sized> Clone for VerifyLayer<V> {
    fn clone(&self) -> Self {
        Self {
            scheme: Arc::clone(&self.scheme),
            limit: self.limit,
            timeout: self.timeout,
            clock: self.clock.clone(),
            handshakes: self.handshakes,
            alerts: self.alerts.clone(),
        }
    }
}

impl<V: Scheme + ?Sized> fmt::Debug for VerifyLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyLayer")
            .field("scheme", &self.scheme.name())
            .field("limit", &self.limit)
            .field("timeout", &self.timeout)
            .field("handshakes", &self.handshakes)
            .finish_non_exhaustive()
    }
}

impl<S, V: ?Sized> Layer<S> for VerifyLayer<V> {
    type Service = Verify<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        Verify {
            inner,
            scheme: Arc::clone(&self.scheme),
            limit: self.limit,
            timeout: self.timeout,
            clock: self.clock.clone(),
            handshakes: self.handshakes,
            alerts: self.alerts.clone(),
        }
    }
}
