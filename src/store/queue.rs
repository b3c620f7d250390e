//! The [`Queue`] trait and its types: the durable hand-off between receiving and handling.
//!
//! The contract is in the [store layer's docs](super#the-queue-contract).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{StoreError, Wake};
use crate::event::{EventId, RawEvent};

/// A queue's own identifier for a stored message.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A fencing token: changes every time a message is leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseToken(pub u64);

/// The right to settle one message, until it expires or the message is leased again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The message leased.
    pub message: MessageId,
    /// The fencing token of this lease.
    pub token: LeaseToken,
    /// When the lease expires unless extended.
    pub expires_at: SystemTime,
}

/// A leased message: the event, the lease, and its attempt number.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Leased {
    /// The lease to settle the message with.
    pub lease: Lease,
    /// The stored event, bytes unchanged.
    pub event: RawEvent,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The queue's attempt limit; see [`is_last_attempt`](Self::is_last_attempt).
    pub max_attempts: u32,
    /// The error recorded by the previous attempt's `retry`, if any.
    pub last_error: Option<String>,
    /// For an event with an [ordering key](crate::ordering): the largest position of its key
    /// acked so far, as it was when this lease was taken (it cannot move while the lease
    /// lives). `None` without a key, or before the key's first ack of an event with a
    /// position.
    pub watermark: Option<i64>,
}

impl Leased {
    /// Builds a leased message; for backend implementors.
    pub fn new(lease: Lease, event: RawEvent, attempt: u32, max_attempts: u32) -> Self {
        Self {
            lease,
            event,
            attempt,
            max_attempts,
            last_error: None,
            watermark: None,
        }
    }

    /// Records the previous attempt's error (builder style).
    pub fn with_last_error(mut self, error: Option<String>) -> Self {
        self.last_error = error;
        self
    }

    /// Sets the key's watermark (builder style); for backend implementors.
    pub fn with_watermark(mut self, watermark: Option<i64>) -> Self {
        self.watermark = watermark;
        self
    }

    /// True if the event is older than one of its ordering key already applied (see
    /// [`OrderingKey::is_stale`](crate::ordering::OrderingKey::is_stale)).
    pub fn is_stale(&self) -> bool {
        self.event
            .ordering
            .as_ref()
            .is_some_and(|k| k.is_stale(self.watermark))
    }

    /// True if no further attempt is allowed after this one: a failure now should go to the
    /// dead letters rather than be retried.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// The outcome of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// The event was stored.
    New(MessageId),
    /// The store already knows an event with the same source and id (waiting, leased, dead,
    /// or handled within the retention period); nothing was stored.
    Duplicate(MessageId),
}

impl Enqueued {
    /// The message id, new or existing.
    pub fn message(self) -> MessageId {
        match self {
            Self::New(m) | Self::Duplicate(m) => m,
        }
    }
}

/// How durable an acknowledged enqueue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// In memory only: lost when the process exits. For tests and examples.
    Volatile,
    /// Written and fsynced to local disk before the enqueue resolves (SQLite with
    /// `synchronous=FULL`).
    Fsync,
    /// Committed by a database server before the enqueue resolves (PostgreSQL), as durable as
    /// that server's own settings make a commit.
    ServerCommit,
}

/// Message counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Ready to be leased now (including expired leases).
    pub ready: u64,
    /// Under a live lease.
    pub leased: u64,
    /// Waiting for a retry time in the future.
    pub scheduled: u64,
    /// In the dead letters.
    pub dead: u64,
}

impl QueueStats {
    /// Messages waiting to be handled: ready, leased and scheduled (what the depth limit
    /// counts).
    pub fn depth(&self) -> u64 {
        self.ready + self.leased + self.scheduled
    }
}

/// A message in the dead letters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The message.
    pub message: MessageId,
    /// The stored event, bytes unchanged.
    pub event: RawEvent,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub dead_at: SystemTime,
}

impl DeadLetter {
    /// Builds a dead letter; for backend implementors.
    pub fn new(
        message: MessageId,
        event: RawEvent,
        reason: String,
        attempts: u32,
        dead_at: SystemTime,
    ) -> Self {
        Self {
            message,
            event,
            reason,
            attempts,
            dead_at,
        }
    }
}

/// Which dead letters to list or replay. The default matches all of them.
///
/// ```
/// use hookdock::store::{DeadLetterFilter, MessageId};
/// let everything = DeadLetterFilter::all();
/// let one = DeadLetterFilter::message(MessageId(42));
/// let github = DeadLetterFilter::all().source("github").limit(100);
/// assert!(everything.matches_all());
/// assert!(!one.matches_all() && !github.matches_all());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterFilter {
    /// Only this message.
    pub message: Option<MessageId>,
    /// Only this source.
    pub source: Option<String>,
    /// Only this event id (within `source`, if given).
    pub event_id: Option<EventId>,
    /// Only messages whose reason contains this text.
    pub reason_contains: Option<String>,
    /// Only messages with a larger id (for paging through a long list).
    pub after: Option<MessageId>,
    /// At most this many (listing and replay both honour it).
    pub limit: Option<usize>,
}

impl DeadLetterFilter {
    /// Matches every dead letter.
    pub fn all() -> Self {
        Self::default()
    }

    /// Matches one message.
    pub fn message(id: MessageId) -> Self {
        Self {
            message: Some(id),
            ..Self::default()
        }
    }

    /// Only this source (builder style).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Only this event id (builder style).
    pub fn event_id(mut self, id: impl Into<EventId>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Only reasons containing this text (builder style).
    pub fn reason_contains(mut self, text: impl Into<String>) -> Self {
        self.reason_contains = Some(text.into());
        self
    }

    /// Only ids after this one (builder style).
    pub fn after(mut self, id: MessageId) -> Self {
        self.after = Some(id);
        self
    }

    /// At most `n` (builder style).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// True if this filter selects every dead letter.
    pub fn matches_all(&self) -> bool {
        *self == Self::default()
    }

    /// True if the dead letter matches every condition except `limit`; for backends that
    /// filter in memory.
    pub fn accepts(&self, message: MessageId, event: &RawEvent, reason: &str) -> bool {
        self.message.is_none_or(|m| m == message)
            && self.source.as_deref().is_none_or(|s| s == event.source)
            && self.event_id.as_ref().is_none_or(|id| *id == event.id)
            && self
                .reason_contains
                .as_deref()
                .is_none_or(|t| reason.contains(t))
            && self.after.is_none_or(|a| message > a)
    }
}

/// Limits shared by every queue backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueOptions {
    /// Attempts allowed per message before a failure or an expired lease sends it to the dead
    /// letters. Default 10.
    pub max_attempts: u32,
    /// Most messages waiting (ready, leased, scheduled) before enqueue answers
    /// [`StoreError::Full`]. Default: no limit.
    pub max_depth: Option<u64>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            max_depth: None,
        }
    }
}

impl QueueOptions {
    /// Sets the attempt limit (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the depth limit.
    pub fn max_depth(mut self, n: u64) -> Self {
        self.max_depth = Some(n);
        self
    }
}

/// Reason recorded when a lease expires on the last allowed attempt.
///
/// Every backend records exactly this text, and moves such a message to the dead letters
/// the next time it leases (or lists, replays or counts), never before its lease expired.
pub const EXPIRED_ON_LAST_ATTEMPT: &str = "lease expired on the last allowed attempt";

/// A durable queue of [`RawEvent`]s; see the [store docs](super#the-queue-contract) for the contract.
///
/// Object safe: use `Arc<dyn Queue>` to choose a backend at run time. Implemented for
/// `Arc<Q>`.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// How durable an acknowledged enqueue is.
    fn durability(&self) -> Durability;

    /// Stores an event; resolves once it is stored at [`durability`](Self::durability).
    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError>;

    /// Leases up to `max` ready messages for `lease_for`.
    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError>;

    /// Moves a lease's expiry to `lease_for` from now; returns the updated lease.
    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError>;

    /// Marks a message handled: it is never leased again and leaves the counts, and its key
    /// is remembered for the store's retention period (an enqueue of it answers
    /// [`Enqueued::Duplicate`]) until [`purge_expired`](Self::purge_expired) removes it.
    async fn ack(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Settles a message without handling it, as [`EventStatus::Stale`](super::EventStatus):
    /// an older event of its [ordering key](crate::ordering) than one already applied, by the
    /// worker's [`StalePolicy::Skip`](crate::ordering::StalePolicy). Like an ack it is never
    /// leased again and its id stays known for the retention period, and its key's next event
    /// may run; unlike an ack it does not move the key's watermark. `reason` is kept as the
    /// entry's last error.
    async fn skip(&self, lease: &Lease, reason: &str) -> Result<(), StoreError>;

    /// Makes a message ready again at `at`, recording `error`.
    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError>;

    /// Makes a message ready again at `at` without counting the attempt its lease took: the
    /// next lease has the same attempt number. Records no error.
    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError>;

    /// Moves a message to the dead letters with `reason`.
    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError>;

    /// Lists dead letters matching `filter`, oldest message first.
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError>;

    /// Makes dead letters matching `filter` ready again; returns how many.
    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError>;

    /// Counts messages by state.
    async fn stats(&self) -> Result<QueueStats, StoreError>;

    /// Removes handled messages whose retention period has passed, in bounded chunks; returns
    /// how many. Their keys are forgotten: an enqueue stores them anew.
    async fn purge_expired(&self) -> Result<u64, StoreError>;

    /// Checks that the store can durably take a write now, for readiness probes
    /// (`hookdock::admin::Health`, feature `admin`): resolves `Ok` only after a real
    /// write went the way an [`enqueue`](Self::enqueue) goes (the same connection, thread or
    /// pool, committed at [`durability`](Self::durability)), and with the error an enqueue
    /// would meet otherwise: [`StoreError::Unavailable`] for a full disk, a size cap reached,
    /// an I/O error or an unreachable or read-only database; [`StoreError::Closed`] once the
    /// store is shut down or its writer is gone.
    ///
    /// It changes nothing a caller can see: no message, count, log entry or key. Call it
    /// sparingly (a health route caches its answer): each call is a write.
    ///
    /// There is no default: a backend that answered `Ok` without writing would report a
    /// broken store as ready. A backend that truly cannot fail to write (memory) answers
    /// `Ok` by itself; every other one must write something.
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// A signal that wakes an idle worker when this queue may have new work (an enqueue, a
    /// replay, a retry that is due), so it leases at once instead of at its next poll; `None`
    /// if the backend has none (the worker then polls).
    fn wake_signal(&self) -> Option<Box<dyn Wake>> {
        None
    }
}

#[async_trait]
impl<Q: Queue + ?Sized> Queue for std::sync::Arc<Q> {
    fn durability(&self) -> Durability {
        (**self).durability()
    }
    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        (**self).enqueue(event).await
    }
    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        (**self).lease(max, lease_for).await
    }
    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        (**self).extend(lease, lease_for).await
    }
    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        (**self).ack(lease).await
    }
    async fn skip(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        (**self).skip(lease, reason).await
    }
    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        (**self).retry(lease, at, error).await
    }
    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        (**self).defer(lease, at).await
    }
    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        (**self).dead_letter(lease, reason).await
    }
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        (**self).dead_letters(filter).await
    }
    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        (**self).replay(filter).await
    }
    async fn stats(&self) -> Result<QueueStats, StoreError> {
        (**self).stats().await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        (**self).purge_expired().await
    }
    async fn check_writable(&self) -> Result<(), StoreError> {
        (**self).check_writable().await
    }
    fn wake_signal(&self) -> Option<Box<dyn Wake>> {
        (**self).wake_signal()
    }
}
