//! [`VerifyLayer`]: the layer and its builder.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::Verify;
use crate::clock::SharedClock;
use crate::scheme::Scheme;
use crate::Clock;

/// The body limit used when none is set: 1 MiB.
///
/// GitHub caps payloads at 25 MB, but almost every delivery of every provider is a few KiB;
/// raise the limit per route where a provider really sends more.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// A [`Layer`] that checks every request's signature with a [`Scheme`] before the inner
/// service sees it; see the [module docs](super).
///
/// Cloning is cheap: the scheme is shared through an [`Arc`].
///
/// ```
/// use hookdock::scheme::Preset;
/// use hookdock::verify::VerifyLayer;
///
/// let layer = VerifyLayer::new(Preset::github(["It's a Secret to Everybody"])?)
///     .body_limit(256 * 1024);
/// assert_eq!(layer.limit(), 256 * 1024);
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
pub struct VerifyLayer<V: ?Sized> {
    pub(super) scheme: Arc<V>,
    pub(super) limit: usize,
    pub(super) clock: SharedClock,
}

impl<V: Scheme> VerifyLayer<V> {
    /// A layer verifying with `scheme`, with the [default body limit](DEFAULT_BODY_LIMIT) and
    /// the system clock.
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
            clock: SharedClock::default(),
        }
    }

    /// Sets the largest body accepted, in bytes (builder style). A request declaring a larger
    /// `Content-Length` is refused before its body is read; a body that grows past the limit
    /// while streaming is refused as soon as it does. Both get `413 Payload Too Large`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Reads the current time from `clock` instead of the system clock (builder style); the
    /// time is what a scheme's replay window is checked against.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// The body limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
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
            clock: self.clock.clone(),
        }
    }
}

impl<V: Scheme + ?Sized> fmt::Debug for VerifyLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyLayer")
            .field("scheme", &self.scheme.name())
            .field("limit", &self.limit)
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
            clock: self.clock.clone(),
        }
    }
}
