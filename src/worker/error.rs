//! How a handler reports failure: [`HandlerError`].

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::store::{BoxError, StoreError};

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
/// Failures are **retryable by default**. A handler has two ways to return errors:
///
/// - `Result<_, HandlerError>`: `?` converts the common errors (`std::io::Error`,
///   [`StoreError`], `sqlx::Error` with feature `postgres`, `String`, `&str`, a
///   [`BoxError`]) into a retryable `HandlerError`; [`HandlerError::permanent`] and
///   [`HandlerError::retry`] wrap any other error and say what it is.
/// - `Result<_, BoxError>` (tower's own error type): `?` works on every error, and the worker
///   converts the box; a `HandlerError` returned inside the box (`Err(HandlerError::permanent(e).into())`)
///   keeps its kind.
///
/// `HandlerError` is a `std::error::Error` whose source is the cause, so it also passes
/// through tower middleware that boxes errors (timeouts, load shedding) and comes back out of
/// the box with its kind.
///
/// ```
/// use hookdock::worker::{ErrorKind, HandlerError};
///
/// fn parse(body: &[u8]) -> Result<u64, HandlerError> {
///     let text = std::str::from_utf8(body).map_err(HandlerError::permanent)?;
///     let n: u64 = text.trim().parse().map_err(HandlerError::permanent)?;
///     if n == 0 {
///         // `?` on an I/O error (or a store error, a string, ...) is retryable.
///         Err(std::io::Error::other("downstream unavailable"))?;
///     }
///     Ok(n)
/// }
/// assert_eq!(parse(b"x").unwrap_err().kind(), ErrorKind::Permanent);
/// assert_eq!(parse(b"0").unwrap_err().kind(), ErrorKind::Retryable);
/// ```
#[derive(thiserror::Error)]
#[error("{}{}", .kind.prefix(), chain(.source))]
pub struct HandlerError {
    kind: ErrorKind,
    #[source]
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
        // is unwrapped, and takes the kind the caller asks for now.
        match source.downcast::<HandlerError>() {
            Ok(inner) => Self { kind, ..*inner },
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

    /// Boxes this error, for middleware that needs `Error: Into<BoxError>`. Converting the
    /// box back into a `HandlerError` (with `From`, `?`, or as the worker does) recovers this
    /// error with its kind.
    pub fn into_boxed(self) -> BoxError {
        Box::new(self)
    }

    /// The underlying error and its chain of sources, joined by `": "`: what the worker
    /// records as the retry error or dead-letter reason.
    pub fn chain(&self) -> String {
        chain(&self.source)
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

/// An error and its chain of sources, joined by `": "`.
fn chain(error: &BoxError) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
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

impl ErrorKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Retryable => "retryable failure: ",
            Self::Permanent => "permanent failure: ",
            Self::Deferred { .. } => "deferred: ",
        }
    }
}

impl HandlerError {
    /// A retryable failure, or the `HandlerError` a boxing middleware carried, with its kind.
    fn from_boxed(source: BoxError) -> Self {
        match source.downcast::<HandlerError>() {
            Ok(inner) => *inner,
            Err(source) => Self {
                kind: ErrorKind::Retryable,
                source,
                retry_after: None,
            },
        }
    }
}

/// A boxed error (tower's error type) converts into a *retryable* `HandlerError`, except a
/// boxed `HandlerError`, which comes back with its own kind.
impl From<BoxError> for HandlerError {
    fn from(error: BoxError) -> Self {
        Self::from_boxed(error)
    }
}

/// Errors `?` turns into a retryable `HandlerError`.
macro_rules! retryable_from {
    ($($(#[$attr:meta])* $t:ty),* $(,)?) => {
        $(
            $(#[$attr])*
            impl From<$t> for HandlerError {
                fn from(error: $t) -> Self {
                    Self::from_boxed(error.into())
                }
            }
        )*
    };
}

retryable_from!(
    std::io::Error,
    StoreError,
    String,
    &str,
    crate::worker::DecodeError,
    crate::worker::dedupe::DedupeError,
    #[cfg(feature = "postgres")]
    sqlx::Error,
);

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
        fn typed() -> Result<(), HandlerError> {
            Err(std::io::Error::other("io"))?;
            Ok(())
        }
        assert!(typed().unwrap_err().is_retryable());
        // With tower's error type every error converts, and a HandlerError keeps its kind.
        fn boxed(permanent: bool) -> Result<(), BoxError> {
            if permanent {
                return Err(HandlerError::permanent("bad payload").into());
            }
            let _: u8 = "300".parse::<u8>()?;
            Ok(())
        }
        assert!(HandlerError::from(boxed(false).unwrap_err()).is_retryable());
        assert!(HandlerError::from(boxed(true).unwrap_err()).is_permanent());
    }

    #[test]
    fn it_is_a_std_error_with_the_cause_as_source() {
        let e = HandlerError::permanent(Outer(std::io::Error::other("disk gone")));
        let source = StdError::source(&e).expect("the cause");
        assert_eq!(source.to_string(), "outer");
    }
}
