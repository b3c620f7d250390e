//! How a handler reports failure: [`HandlerError`].

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

/// A boxed error, as tower uses it.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What the worker does with a failed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Try again later, on the retry policy's schedule (or after
    /// [`HandlerError::retry_after`]). On the last allowed attempt the event goes to the dead
    /// letters instead.
    Retryable,
    /// Trying again cannot help (the payload is invalid, the operation is refused): the event
    /// goes to the dead letters now, from where it can be replayed once the cause is fixed.
    Permanent,
    /// Not a failure of this attempt: someone else is working on the event (the dedupe layer
    /// found a live claim). Hand the event back to be tried again at `until`.
    Deferred {
        /// When to try again.
        until: SystemTime,
    },
}

/// The error a handler returns: a cause plus what to do about it.
///
/// Failures are **retryable by default**: any `std::error::Error` (and `String`, `&str`,
/// [`BoxError`]) converts into a retryable `HandlerError`, so `?` works in a handler. Mark
/// the failures that retrying cannot fix with [`HandlerError::permanent`].
///
/// `HandlerError` deliberately does not implement `std::error::Error` (like `anyhow::Error`),
/// which is what lets it convert from every error type. To put tower middleware that boxes
/// errors (timeouts, load shedding) between the worker and a handler, box it with
/// [`into_boxed`](Self::into_boxed) (`handler.map_err(HandlerError::into_boxed)`); converting
/// the boxed error back recovers the original kind.
///
/// ```
/// use hookdock::worker::{ErrorKind, HandlerError};
///
/// fn parse(body: &[u8]) -> Result<u64, HandlerError> {
///     let text = std::str::from_utf8(body).map_err(HandlerError::permanent)?;
///     let n: u64 = text.trim().parse().map_err(HandlerError::permanent)?;
///     if n == 0 {
///         // `?` on any other error is retryable.
///         Err(std::io::Error::other("downstream unavailable"))?;
///     }
///     Ok(n)
/// }
/// assert_eq!(parse(b"x").unwrap_err().kind(), ErrorKind::Permanent);
/// assert_eq!(parse(b"0").unwrap_err().kind(), ErrorKind::Retryable);
/// ```
pub struct HandlerError {
    kind: ErrorKind,
    source: BoxError,
    retry_after: Option<Duration>,
}

impl HandlerError {
    /// A failure worth retrying (a timeout, a downstream outage, a lock conflict).
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self::with_kind(ErrorKind::Retryable, error)
    }

    /// A failure retrying cannot fix: the event goes to the dead letters now.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::with_kind(ErrorKind::Permanent, error)
    }

    /// Not a failure: try the event again at `until` (see [`ErrorKind::Deferred`]).
    pub fn defer(until: SystemTime, reason: impl Into<BoxError>) -> Self {
        Self::with_kind(ErrorKind::Deferred { until }, reason)
    }

    fn with_kind(kind: ErrorKind, error: impl Into<BoxError>) -> Self {
        let source = error.into();
        // A `HandlerError` that went through a boxing middleware and is being wrapped again
        // keeps its own kind unless the caller says otherwise explicitly.
        match source.downcast::<Boxed>() {
            Ok(boxed) => {
                let Boxed(mut inner) = *boxed;
                inner.kind = kind;
                inner
            }
            Err(source) => Self {
                kind,
                source,
                retry_after: None,
            },
        }
    }

    /// Asks for the next attempt no sooner than `delay` from now, instead of the retry
    /// policy's delay (builder style; capped by the policy's maximum). For a provider's
    /// `Retry-After`, a rate limit's reset time, and the like.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// What the worker should do.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for [`ErrorKind::Permanent`].
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }

    /// True for [`ErrorKind::Retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }

    /// The delay asked for with [`retry_after`](Self::retry_after).
    pub fn requested_delay(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The underlying error.
    pub fn source_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// Unwraps the underlying error.
    pub fn into_source(self) -> BoxError {
        self.source
    }

    /// Boxes this error as a `std::error::Error`, for middleware that needs
    /// `Error: Into<BoxError>`. Converting the box back into a `HandlerError` (with `From`,
    /// `?`, or as the worker does) recovers this error with its kind.
    pub fn into_boxed(self) -> BoxError {
        Box::new(Boxed(self))
    }

    /// The underlying error and its chain of sources, joined by `": "`: what the worker
    /// records as the retry error or dead-letter reason.
    pub fn chain(&self) -> String {
        let mut out = self.source.to_string();
        let mut next = self.source.source();
        while let Some(err) = next {
            let text = err.to_string();
            // Many errors repeat their source's text in their own; skip exact repeats.
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            next = err.source();
        }
        out
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Retryable => f.write_str("retryable failure: ")?,
            ErrorKind::Permanent => f.write_str("permanent failure: ")?,
            ErrorKind::Deferred { .. } => f.write_str("deferred: ")?,
        }
        f.write_str(&self.chain())
    }
}

/// Any error converts into a *retryable* `HandlerError`, except a `HandlerError` that went
/// through a boxing middleware, which gets its own kind back.
impl<E> From<E> for HandlerError
where
    E: Into<BoxError>,
{
    fn from(error: E) -> Self {
        let source: BoxError = error.into();
        match source.downcast::<Boxed>() {
            Ok(boxed) => boxed.0,
            Err(source) => Self {
                kind: ErrorKind::Retryable,
                source,
                retry_after: None,
            },
        }
    }
}

/// A `HandlerError` boxed as a `std::error::Error`, so it survives middleware that boxes
/// errors and comes back out with its kind.
struct Boxed(HandlerError);

impl fmt::Debug for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Boxed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn retryable_by_default_and_kinds_survive_boxing() {
        let e: HandlerError = std::io::Error::other("io").into();
        assert_eq!(e.kind(), ErrorKind::Retryable);
        let e: HandlerError = "plain text".into();
        assert!(e.is_retryable());

        let permanent = HandlerError::permanent("bad payload").retry_after(Duration::from_secs(3));
        let boxed = permanent.into_boxed();
        assert_eq!(boxed.to_string(), "permanent failure: bad payload");
        let back = HandlerError::from(boxed);
        assert!(back.is_permanent());
        assert_eq!(back.requested_delay(), Some(Duration::from_secs(3)));

        // Explicit constructors override the kind of a boxed HandlerError.
        let boxed = HandlerError::permanent("x").into_boxed();
        assert!(HandlerError::retry(boxed).is_retryable());
    }

    #[test]
    fn chain_joins_sources_and_display_names_the_kind() {
        let e = HandlerError::permanent(Outer(std::io::Error::other("disk gone")));
        assert_eq!(e.chain(), "outer: disk gone");
        assert_eq!(e.to_string(), "permanent failure: outer: disk gone");
        let until = SystemTime::UNIX_EPOCH;
        let d = HandlerError::defer(until, "held elsewhere");
        assert_eq!(d.kind(), ErrorKind::Deferred { until });
        assert_eq!(d.to_string(), "deferred: held elsewhere");
    }

    #[test]
    fn question_mark_works() {
        fn f() -> Result<(), HandlerError> {
            let _: u8 = "300".parse::<u8>()?;
            Ok(())
        }
        assert!(f().unwrap_err().is_retryable());
    }
}
