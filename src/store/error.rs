//! [`StoreError`]: the one error of every store trait, with a [kind](ErrorKind) that says
//! what the caller should do.

use std::fmt;

/// A boxed error kept as the [`source`](std::error::Error::source) of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a caller should do about a [`StoreError`]; from [`StoreError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// May succeed later: the queue is full, the disk or the database server failed, or the
    /// store is shut down. Retry the same call later; intake answers `503` + `Retry-After`.
    Transient,
    /// Can never succeed for this input (an event id with a NUL byte, say). Do not retry;
    /// intake answers `400` with the [reason](InvalidInput::reason). Nothing was stored.
    InvalidInput,
    /// The lease or claim token is no longer current: whatever its holder did must not be
    /// recorded. Not an error of the store.
    Fenced,
    /// An invariant of the store is broken (a bug, or a database edited by hand). Intake
    /// answers `500`; the error is logged.
    Internal,
}

/// The error of the store traits ([`Queue`](super::Queue),
/// [`IdempotencyStore`](super::IdempotencyStore)); every backend maps its own failures into
/// it and keeps them as the [`source`](std::error::Error::source).
///
/// [`kind`](Self::kind) groups the variants by what to do about them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The queue is at its configured depth limit; the event was not stored. Transient.
    #[error("queue is full: {depth} events are waiting (limit reached)")]
    Full {
        /// Events waiting (ready, leased or scheduled) when the limit was hit.
        depth: u64,
    },
    /// The store is shut down and takes no more work. Transient (another process, or this one
    /// restarted, will take it).
    #[error("store is closed")]
    Closed,
    /// The backend failed (I/O, a full disk, a lost connection); the operation may not have
    /// happened and can be retried. Transient.
    #[error("{backend} storage is unavailable: {source}")]
    Unavailable {
        /// Which backend (`"sqlite"`, `"postgres"`, ...).
        backend: &'static str,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The input can never be stored (see [`InvalidInput`]); nothing was stored.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// No replay job has this id ([`EventLog`](super::EventLog)). Invalid input.
    #[error("no replay job {0}")]
    UnknownReplayJob(super::ReplayJobId),
    /// The lease token is no longer current: the message was leased again, settled, or moved
    /// to the dead letters. Whatever the holder was doing must not be recorded.
    #[error("lease lost: the message was leased again, settled, or dead-lettered")]
    LeaseLost,
    /// The idempotency claim token is no longer current: the claim expired and was taken
    /// over, or was already completed or released.
    #[error("claim lost: the idempotency claim was taken over, completed or released")]
    ClaimLost,
    /// An invariant is broken: a bug, or a stored record that cannot be decoded.
    #[error("{backend} internal error: {source}")]
    Internal {
        /// Which backend.
        backend: &'static str,
        /// What is broken.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A transient backend failure, keeping `source`.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// A broken invariant, keeping `source`.
    pub fn internal(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Internal {
            backend,
            source: source.into(),
        }
    }

    /// What to do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Full { .. } | Self::Closed | Self::Unavailable { .. } => ErrorKind::Transient,
            Self::Invalid(_) | Self::UnknownReplayJob(_) => ErrorKind::InvalidInput,
            Self::LeaseLost | Self::ClaimLost => ErrorKind::Fenced,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// True for failures that may go away by themselves ([`ErrorKind::Transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }
}

/// Which part of an event's identity is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyPart {
    /// The event's source name.
    Source,
    /// The event's id within its source.
    EventId,
    /// The event's [ordering key](crate::ordering::OrderingKey).
    OrderingKey,
}

impl KeyPart {
    fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::EventId => "event id",
            Self::OrderingKey => "ordering key",
        }
    }
}

/// What is wrong with an invalid source or event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyProblem {
    /// It is empty.
    Empty,
    /// It is longer than the most every backend can index.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The most allowed, in bytes.
        max: usize,
    },
    /// Its bytes are not UTF-8 (the provider sent a header value with other bytes).
    NotUtf8,
    /// It holds a control character (NUL, a line break, a tab, DEL, ...).
    ControlCharacter {
        /// The byte offset of the first one.
        at: usize,
    },
}

/// Input that no backend can store, found before anything is written: an event whose
/// [source or id](super::key) breaks the rules every backend shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("invalid {}: {}", .part.name(), ProblemText(.problem))]
pub struct InvalidInput {
    part: KeyPart,
    problem: KeyProblem,
}

struct ProblemText<'a>(&'a KeyProblem);

impl fmt::Display for ProblemText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            KeyProblem::Empty => f.write_str("it is empty"),
            KeyProblem::TooLong { len, max } => {
                write!(f, "it is {len} bytes long, more than the {max} allowed")
            }
            KeyProblem::NotUtf8 => f.write_str("it is not valid UTF-8"),
            KeyProblem::ControlCharacter { at } => {
                write!(f, "it holds a control character at byte {at}")
            }
        }
    }
}

impl InvalidInput {
    pub(crate) fn new(part: KeyPart, problem: KeyProblem) -> Self {
        Self { part, problem }
    }

    /// Which part is invalid.
    pub fn part(&self) -> KeyPart {
        self.part
    }

    /// What is wrong with it.
    pub fn problem(&self) -> KeyProblem {
        self.problem
    }

    /// A stable snake_case name for the rejection: `"invalid_event_id"`, `"invalid_source"`
    /// or `"invalid_ordering_key"`, as intake answers it.
    pub fn reason(&self) -> &'static str {
        match self.part {
            KeyPart::Source => "invalid_source",
            KeyPart::EventId => "invalid_event_id",
            KeyPart::OrderingKey => "invalid_ordering_key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_say_what_to_do() {
        let io = || std::io::Error::other("disk on fire");
        let cases = [
            (StoreError::Full { depth: 3 }, ErrorKind::Transient),
            (StoreError::Closed, ErrorKind::Transient),
            (
                StoreError::unavailable("sqlite", io()),
                ErrorKind::Transient,
            ),
            (
                InvalidInput::new(KeyPart::EventId, KeyProblem::Empty).into(),
                ErrorKind::InvalidInput,
            ),
            (
                StoreError::UnknownReplayJob(crate::store::ReplayJobId(7)),
                ErrorKind::InvalidInput,
            ),
            (StoreError::LeaseLost, ErrorKind::Fenced),
            (StoreError::ClaimLost, ErrorKind::Fenced),
            (StoreError::internal("sqlite", io()), ErrorKind::Internal),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.is_transient(), kind == ErrorKind::Transient);
        }
    }

    #[test]
    fn sources_are_kept_and_messages_name_the_problem() {
        use std::error::Error as _;
        let e = StoreError::unavailable("postgres", std::io::Error::other("connection reset"));
        assert_eq!(
            e.to_string(),
            "postgres storage is unavailable: connection reset"
        );
        assert!(e.source().is_some());
        let invalid = InvalidInput::new(KeyPart::EventId, KeyProblem::TooLong { len: 9, max: 8 });
        assert_eq!(
            invalid.to_string(),
            "invalid event id: it is 9 bytes long, more than the 8 allowed"
        );
        assert_eq!(invalid.reason(), "invalid_event_id");
        let source = InvalidInput::new(KeyPart::Source, KeyProblem::ControlCharacter { at: 2 });
        assert_eq!(
            source.to_string(),
            "invalid source: it holds a control character at byte 2"
        );
        assert_eq!(source.reason(), "invalid_source");
    }
}
