//! The [`EventLog`] trait and its types: every stored event, searchable and replayable.
//!
//! The contract is in the [store layer's docs](super#the-event-log-contract).

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{MessageId, Queue, StoreError};
use crate::clock::unix_millis;
use crate::event::{EventId, EventType, RawEvent};

/// Where a stored event's current run came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// Delivered by the provider to the receiver (intake).
    #[default]
    Push,
    /// Made ready again by an operator's replay.
    Replay,
    /// Fetched from the provider's API by a reconciliation pass.
    Reconciliation,
}

impl Origin {
    /// Every origin, in code order.
    pub const ALL: [Origin; 3] = [Origin::Push, Origin::Replay, Origin::Reconciliation];

    /// The name used in filters, JSON and the command line: `push`, `replay`,
    /// `reconciliation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Push => "push",
            Origin::Replay => "replay",
            Origin::Reconciliation => "reconciliation",
        }
    }

    /// The code stored in a table (`0`, `1`, `2`); for backend implementors.
    pub fn code(self) -> i64 {
        match self {
            Origin::Push => 0,
            Origin::Replay => 1,
            Origin::Reconciliation => 2,
        }
    }

    /// The origin of a stored code; an unknown code reads as [`Origin::Push`].
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Origin::Replay,
            2 => Origin::Reconciliation,
            _ => Origin::Push,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of an enum's values (see [`Origin`] and [`EventStatus`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: expected one of {expected}")]
pub struct UnknownName {
    what: &'static str,
    given: String,
    expected: &'static str,
}

impl FromStr for Origin {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Origin::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "origin",
                given: s.to_owned(),
                expected: "push, replay, reconciliation",
            })
    }
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventStatus {
    /// Stored, never attempted yet.
    Pending,
    /// Under a live lease: a worker is running it.
    Leased,
    /// Handled: the handler succeeded (or the dedupe layer found it already completed).
    Succeeded,
    /// Attempted and failed at least once; waiting for its next attempt.
    Retrying,
    /// In the dead letters.
    Dead,
    /// Skipped as older than an event already applied for its entity (the ordering work).
    Stale,
}

impl EventStatus {
    /// Every status.
    pub const ALL: [EventStatus; 6] = [
        EventStatus::Pending,
        EventStatus::Leased,
        EventStatus::Succeeded,
        EventStatus::Retrying,
        EventStatus::Dead,
        EventStatus::Stale,
    ];

    /// The name used in filters, JSON and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Leased => "leased",
            EventStatus::Succeeded => "succeeded",
            EventStatus::Retrying => "retrying",
            EventStatus::Dead => "dead",
            EventStatus::Stale => "stale",
        }
    }

    /// True for a status that is settled: nothing will run the event again unless it is
    /// replayed (succeeded, dead, stale). Only settled events are replayed.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            EventStatus::Succeeded | EventStatus::Dead | EventStatus::Stale
        )
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "status",
                given: s.to_owned(),
                expected: "pending, leased, succeeded, retrying, dead, stale",
            })
    }
}

/// One event as the log lists it: what happened to it, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogEntry {
    /// The store's id for the event (what pages and jobs refer to).
    pub message: MessageId,
    /// The event's source.
    pub source: String,
    /// The event's id within its source.
    pub event_id: EventId,
    /// The provider's event type, where the scheme reads one.
    pub event_type: Option<EventType>,
    /// When the receiver got it.
    pub received_at: SystemTime,
    /// Where its current run came from.
    pub origin: Origin,
    /// Where it is now.
    pub status: EventStatus,
    /// Attempts made since it was stored or last replayed.
    pub attempts: u32,
    /// The last failure: the error of the last retried attempt, or the dead-letter reason.
    pub last_error: Option<String>,
    /// When it was first leased (since it was stored or last replayed).
    pub first_attempt_at: Option<SystemTime>,
    /// When it was last leased.
    pub last_attempt_at: Option<SystemTime>,
    /// When it succeeded, was dead-lettered or was skipped as stale.
    pub done_at: Option<SystemTime>,
    /// How many times it was replayed.
    pub replays: u32,
    /// How many of those replays were forced (its completed claim reset so the handler ran
    /// it again).
    pub forced_replays: u32,
    /// The body's length in bytes.
    pub body_bytes: u64,
}

impl LogEntry {
    /// An entry of a newly stored event; for backend implementors, who then set the fields
    /// they track.
    pub fn new(message: MessageId, event: &RawEvent) -> Self {
        Self {
            message,
            source: event.source.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            received_at: event.received_at,
            origin: event.origin,
            status: EventStatus::Pending,
            attempts: 0,
            last_error: None,
            first_attempt_at: None,
            last_attempt_at: None,
            done_at: None,
            replays: 0,
            forced_replays: 0,
            body_bytes: event.body.len() as u64,
        }
    }
}

/// The entry as JSON for admin routes and the command line: times in milliseconds since the
/// Unix epoch (`*_ms`), absent ones `null`.
impl serde::Serialize for LogEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let ms = |t: Option<SystemTime>| t.map(unix_millis);
        let mut st = s.serialize_struct("LogEntry", 15)?;
        st.serialize_field("message", &self.message)?;
        st.serialize_field("source", &self.source)?;
        st.serialize_field("event_id", self.event_id.as_str())?;
        st.serialize_field("event_type", &self.event_type.as_ref().map(|t| t.as_str()))?;
        st.serialize_field("received_at_ms", &unix_millis(self.received_at))?;
        st.serialize_field("origin", &self.origin)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("attempts", &self.attempts)?;
        st.serialize_field("last_error", &self.last_error)?;
        st.serialize_field("first_attempt_at_ms", &ms(self.first_attempt_at))?;
        st.serialize_field("last_attempt_at_ms", &ms(self.last_attempt_at))?;
        st.serialize_field("done_at_ms", &ms(self.done_at))?;
        st.serialize_field("replays", &self.replays)?;
        st.serialize_field("forced_replays", &self.forced_replays)?;
        st.serialize_field("body_bytes", &self.body_bytes)?;
        st.end()
    }
}

/// One event with its bytes: what [`EventLog::get`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggedEvent {
    /// What happened to it.
    pub entry: LogEntry,
    /// The stored event: raw body and headers unchanged.
    pub event: RawEvent,
}

impl LoggedEvent {
    /// Pairs an entry with its event; for backend implementors.
    pub fn new(entry: LogEntry, event: RawEvent) -> Self {
        Self { entry, event }
    }
}

/// The most entries one page holds; larger limits are clamped to it.
pub const MAX_PAGE: usize = 1000;

/// The page size when a filter gives none.
pub const DEFAULT_PAGE: usize = 100;

/// Which events to list, count or replay. The default matches every event.
///
/// Conditions combine with AND. Times are compared with the event's received-at time:
/// `received_from` inclusive, `received_until` exclusive.
///
/// ```
/// use hookdock::store::{EventFilter, EventStatus};
/// use std::time::{Duration, SystemTime};
/// let day_ago = SystemTime::now() - Duration::from_secs(86_400);
/// let failed_github = EventFilter::all()
///     .source("github")
///     .status(EventStatus::Dead)
///     .received_from(day_ago)
///     .limit(50);
/// assert_eq!(failed_github.page_size(), 50);
/// assert_eq!(EventFilter::all().limit(1_000_000).page_size(), hookdock::store::MAX_PAGE);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct EventFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only this event id (with `source`, one event).
    pub event_id: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only this origin.
    pub origin: Option<Origin>,
    /// Only events received at or after this time.
    #[serde(with = "opt_micros")]
    pub received_from: Option<SystemTime>,
    /// Only events received before this time.
    #[serde(with = "opt_micros")]
    pub received_until: Option<SystemTime>,
    /// Listing: only events older than this message (the previous page's
    /// [`next`](LogPage::next)). Ignored by replay jobs, which keep their own cursor.
    pub before: Option<MessageId>,
    /// Listing: page size ([`DEFAULT_PAGE`] if unset, at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
}

mod opt_micros {
    use std::time::SystemTime;

    use crate::store::codec::{from_micros, to_micros};

    pub(super) fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&t.map(to_micros), s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let v: Option<i64> = serde::Deserialize::deserialize(d)?;
        Ok(v.map(from_micros))
    }
}

impl EventFilter {
    /// Matches every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Matches one event.
    pub fn event(source: impl Into<String>, id: impl Into<String>) -> Self {
        Self::all().source(source).event_id(id)
    }

    /// Only this source (builder style).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Only this event id (builder style).
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Only this event type (builder style).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Only this status (builder style).
    pub fn status(mut self, status: EventStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only this origin (builder style).
    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Only events received at or after `t` (builder style).
    pub fn received_from(mut self, t: SystemTime) -> Self {
        self.received_from = Some(t);
        self
    }

    /// Only events received before `t` (builder style).
    pub fn received_until(mut self, t: SystemTime) -> Self {
        self.received_until = Some(t);
        self
    }

    /// Only events older than `message` (builder style): the next page.
    pub fn before(mut self, message: MessageId) -> Self {
        self.before = Some(message);
        self
    }

    /// Page size (builder style).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// The page size this filter asks for: its limit, else [`DEFAULT_PAGE`], at most
    /// [`MAX_PAGE`], at least 1.
    pub fn page_size(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
    }

    /// True if `entry` meets every condition except the page ones (`before`, `limit`); for
    /// backends that filter in memory, and for tests.
    pub fn accepts(&self, entry: &LogEntry) -> bool {
        self.source.as_deref().is_none_or(|s| s == entry.source)
            && self
                .event_id
                .as_deref()
                .is_none_or(|id| id == entry.event_id.as_str())
            && self.event_type.as_deref().is_none_or(|t| {
                entry
                    .event_type
                    .as_ref()
                    .is_some_and(|have| have.as_str() == t)
            })
            && self.status.is_none_or(|s| s == entry.status)
            && self.origin.is_none_or(|o| o == entry.origin)
            && self.received_from.is_none_or(|t| entry.received_at >= t)
            && self.received_until.is_none_or(|t| entry.received_at < t)
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LogPage {
    /// The entries, newest (largest message id) first.
    pub entries: Vec<LogEntry>,
    /// Where the next page starts (pass it as [`EventFilter::before`]); `None` on the last
    /// page.
    pub next: Option<MessageId>,
}

impl LogPage {
    /// A page; for backend implementors. `next` is the last entry's id when the page is
    /// full, else `None`.
    pub fn new(entries: Vec<LogEntry>, page_size: usize) -> Self {
        let next = if entries.len() >= page_size {
            entries.last().map(|e| e.message)
        } else {
            None
        };
        Self { entries, next }
    }
}

/// How many events of one source, type and status the log holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LogCount {
    /// The source.
    pub source: String,
    /// The event type (`None` for events without one).
    pub event_type: Option<String>,
    /// The status.
    pub status: EventStatus,
    /// How many.
    pub count: u64,
}

impl LogCount {
    /// A count; for backend implementors.
    pub fn new(
        source: impl Into<String>,
        event_type: Option<String>,
        status: EventStatus,
        count: u64,
    ) -> Self {
        Self {
            source: source.into(),
            event_type,
            status,
            count,
        }
    }
}

/// What [`EventLog::counts`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogCounts {
    /// One row per (source, event type, status) the log holds, sorted by those three.
    pub groups: Vec<LogCount>,
    /// When the oldest event waiting to run (pending or retrying, leased excluded) was
    /// received; `None` if nothing waits.
    pub oldest_pending: Option<SystemTime>,
}

impl LogCounts {
    /// Counts; for backend implementors (sorts `groups`).
    pub fn new(mut groups: Vec<LogCount>, oldest_pending: Option<SystemTime>) -> Self {
        groups.sort_by(|a, b| {
            (&a.source, &a.event_type, a.status.as_str()).cmp(&(
                &b.source,
                &b.event_type,
                b.status.as_str(),
            ))
        });
        Self {
            groups,
            oldest_pending,
        }
    }

    /// The total over every group.
    pub fn total(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// The total of one status.
    pub fn with_status(&self, status: EventStatus) -> u64 {
        self.groups
            .iter()
            .filter(|g| g.status == status)
            .map(|g| g.count)
            .sum()
    }

    /// How old the oldest waiting event is at `now` (zero if it is in the future).
    pub fn oldest_pending_age(&self, now: SystemTime) -> Option<std::time::Duration> {
        self.oldest_pending
            .map(|t| now.duration_since(t).unwrap_or_default())
    }
}

impl serde::Serialize for LogCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("LogCounts", 3)?;
        st.serialize_field("groups", &self.groups)?;
        st.serialize_field("total", &self.total())?;
        st.serialize_field("oldest_pending_ms", &self.oldest_pending.map(unix_millis))?;
        st.end()
    }
}

/// How a replay treats events the dedupe layer already completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplayMode {
    /// Through dedupe: the event runs the worker's stack again, and the dedupe layer skips
    /// it if its claim completed; only what has not completed reaches the handler (a dead
    /// letter whose claim was released, an event that was never claimed).
    #[default]
    Dedupe,
    /// Forced: the event's completed claim is reset, so the handler runs it again (for
    /// recovering from a handler bug). The entry's `forced_replays` counts it.
    Forced,
}

impl ReplayMode {
    /// `dedupe` or `forced`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayMode::Dedupe => "dedupe",
            ReplayMode::Forced => "forced",
        }
    }
}

/// A replay job's id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ReplayJobId(pub i64);

impl fmt::Display for ReplayJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a replay job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplayState {
    /// Has events left to replay.
    Running,
    /// Went through every event it selected.
    Finished,
    /// Stopped by [`EventLog::cancel_replay`].
    Cancelled,
}

impl ReplayState {
    /// `running`, `finished` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayState::Running => "running",
            ReplayState::Finished => "finished",
            ReplayState::Cancelled => "cancelled",
        }
    }

    /// The code stored in a table (`0`, `1`, `2`); for backend implementors.
    pub fn code(self) -> i64 {
        match self {
            ReplayState::Running => 0,
            ReplayState::Finished => 1,
            ReplayState::Cancelled => 2,
        }
    }

    /// The state of a stored code (unknown codes read as cancelled: never run).
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => ReplayState::Running,
            1 => ReplayState::Finished,
            _ => ReplayState::Cancelled,
        }
    }
}

/// A durable replay job: what it selects, how far it got.
///
/// A job selects the events matching its filter whose message id is at most
/// [`through`](Self::through) (the newest message when it was created), and walks them in
/// message order, oldest first; [`EventLog::step_replay`] replays the next batch and moves
/// [`after`](Self::after) past it in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ReplayJob {
    /// The job's id.
    pub id: ReplayJobId,
    /// What it selects (`before` and `limit` are ignored).
    pub filter: EventFilter,
    /// Through dedupe or forced.
    pub mode: ReplayMode,
    /// Where it is.
    pub state: ReplayState,
    /// The newest message it may select.
    pub through: Option<MessageId>,
    /// The last message it went past; `None` before its first batch.
    pub after: Option<MessageId>,
    /// Events matching the filter when it was created (an estimate of the work: events
    /// purged or changed since are not subtracted).
    pub total: u64,
    /// Events it made ready again.
    pub replayed: u64,
    /// Events it selected but left alone because they were not settled (pending, leased or
    /// retrying: they run anyway).
    pub skipped: u64,
    /// When it was created.
    #[serde(with = "micros")]
    pub created_at: SystemTime,
    /// When it last changed.
    #[serde(with = "micros")]
    pub updated_at: SystemTime,
}

mod micros {
    use std::time::SystemTime;

    use crate::store::codec::{from_micros, to_micros};

    pub(super) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(to_micros(*t))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<SystemTime, D::Error> {
        let v: i64 = serde::Deserialize::deserialize(d)?;
        Ok(from_micros(v))
    }
}

impl ReplayJob {
    /// A new job, for backend implementors: `Running`, nothing done yet.
    pub fn new(
        id: ReplayJobId,
        filter: EventFilter,
        mode: ReplayMode,
        through: Option<MessageId>,
        total: u64,
        now: SystemTime,
    ) -> Self {
        let filter = EventFilter {
            before: None,
            limit: None,
            ..filter
        };
        Self {
            id,
            filter,
            mode,
            state: if through.is_some() {
                ReplayState::Running
            } else {
                ReplayState::Finished
            },
            through,
            after: None,
            total,
            replayed: 0,
            skipped: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Events gone through so far (replayed or skipped).
    pub fn done(&self) -> u64 {
        self.replayed + self.skipped
    }

    /// True once the job has nothing left to do (finished or cancelled).
    pub fn is_over(&self) -> bool {
        self.state != ReplayState::Running
    }
}

/// The event log: every stored event with its status and history, kept for the store's
/// retention period after it is settled; see the [store docs](super#the-event-log-contract)
/// for the contract.
///
/// A [`Queue`] that is also its own log: backends implement it on their queue type
/// ([`MemoryQueue`](super::MemoryQueue), `SqliteQueue`, `PgQueue`), which sees every event,
/// so one `Arc<dyn EventLog>` serves admin routes and tools (listing, replay, stats, purge).
///
/// Object safe; implemented for `Arc<L>`.
#[async_trait]
pub trait EventLog: Queue {
    /// Lists events matching `filter`, newest (largest message id) first, one page of at
    /// most [`EventFilter::page_size`] entries.
    async fn list(&self, filter: &EventFilter) -> Result<LogPage, StoreError>;

    /// One event with its raw body and headers; `None` if the log does not hold it.
    async fn get(&self, source: &str, event_id: &str) -> Result<Option<LoggedEvent>, StoreError>;

    /// Counts by source, type and status of the events matching `filter` (page fields
    /// ignored), with the receipt time of the oldest waiting one.
    async fn counts(&self, filter: &EventFilter) -> Result<LogCounts, StoreError>;

    /// Creates a durable replay job over the events matching `filter` (page fields ignored).
    /// Nothing is replayed until [`step_replay`](Self::step_replay) runs it.
    async fn create_replay(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError>;

    /// Replays the job's next batch of at most `max` selected events, in one transaction
    /// with the move of its cursor, and returns the job as it is after it. A job that is over
    /// is returned unchanged. Fails with [`StoreError::Invalid`] for an unknown job.
    async fn step_replay(&self, job: ReplayJobId, max: usize) -> Result<ReplayJob, StoreError>;

    /// One job; `None` if unknown.
    async fn replay_job(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError>;

    /// Every job, newest first; `running_only` keeps those still running (to resume after a
    /// restart).
    async fn replay_jobs(&self, running_only: bool) -> Result<Vec<ReplayJob>, StoreError>;

    /// Stops a running job; returns it (unchanged if it was over already), `None` if unknown.
    async fn cancel_replay(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError>;
}

#[async_trait]
impl<L: EventLog + ?Sized> EventLog for std::sync::Arc<L> {
    async fn list(&self, filter: &EventFilter) -> Result<LogPage, StoreError> {
        (**self).list(filter).await
    }
    async fn get(&self, source: &str, event_id: &str) -> Result<Option<LoggedEvent>, StoreError> {
        (**self).get(source, event_id).await
    }
    async fn counts(&self, filter: &EventFilter) -> Result<LogCounts, StoreError> {
        (**self).counts(filter).await
    }
    async fn create_replay(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        (**self).create_replay(filter, mode).await
    }
    async fn step_replay(&self, job: ReplayJobId, max: usize) -> Result<ReplayJob, StoreError> {
        (**self).step_replay(job, max).await
    }
    async fn replay_job(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        (**self).replay_job(job).await
    }
    async fn replay_jobs(&self, running_only: bool) -> Result<Vec<ReplayJob>, StoreError> {
        (**self).replay_jobs(running_only).await
    }
    async fn cancel_replay(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        (**self).cancel_replay(job).await
    }
}
