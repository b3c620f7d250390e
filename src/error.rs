//! Configuration errors, reported when a scheme, layer or backend is built.

/// A mistake in configuration, reported at construction rather than per request.
///
/// The message never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No secret was given; a scheme needs at least one.
    #[error("no secret configured: at least one secret is required")]
    NoSecrets,
    /// A secret was empty.
    #[error("secret #{index} is empty")]
    EmptySecret {
        /// Position of the secret in the list given, from 0.
        index: usize,
    },
    /// A secret could not be decoded (for example a `whsec_` secret that is not base64).
    #[error("secret #{index} cannot be decoded: {reason}")]
    UndecodableSecret {
        /// Position of the secret in the list given, from 0.
        index: usize,
        /// What is wrong with it (never the secret itself).
        reason: &'static str,
    },
    /// A URL setting (public URL, notification URL) is not an absolute `http(s)` URL.
    #[error("invalid {what}: {reason}")]
    InvalidUrl {
        /// Which setting.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header name is not a valid HTTP header name.
    #[error("invalid header name {name:?}")]
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// A required builder setting was not given.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A setting has a value outside its allowed range.
    #[error("invalid value for {what}: {reason}")]
    InvalidValue {
        /// Which setting.
        what: &'static str,
        /// Why it is rejected.
        reason: &'static str,
    },
}

/// The error of the store traits: [`Queue`](crate::queue::Queue) and
/// [`IdempotencyStore`](crate::idempotency::IdempotencyStore).
///
/// Backend errors are kept as the [`source`](std::error::Error::source) of
/// [`Storage`](Self::Storage).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The queue is at its configured depth limit; the event was not stored.
    #[error("queue is full: {depth} events are waiting (limit reached)")]
    Full {
        /// Events waiting (ready, leased or scheduled) when the limit was hit.
        depth: u64,
    },
    /// The lease token is no longer current: the message was leased again, settled, or moved
    /// to the dead letters. Whatever the holder was doing must not be recorded.
    #[error("lease lost: the message was leased again, settled, or dead-lettered")]
    LeaseLost,
    /// The idempotency claim token is no longer current: the claim expired and was taken
    /// over, or was already completed or released.
    #[error("claim lost: the idempotency claim was taken over, completed or released")]
    ClaimLost,
    /// The message or key does not exist.
    #[error("not found")]
    NotFound,
    /// The backend is shut down and takes no more work.
    #[error("store is closed")]
    Closed,
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The storage backend failed (I/O, database, connection); the operation may not have
    /// happened and can be retried.
    #[error("storage failure: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn storage(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Storage(err.into())
    }

    /// True for failures that may go away by themselves (storage failures, a full queue),
    /// false for outcomes that retrying the same call cannot change (a lost lease).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Full { .. } | Self::Storage(_) | Self::Closed)
    }
}
