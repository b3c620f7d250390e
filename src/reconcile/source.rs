//! What a provider's API says changed: the [`ChangeSource`] trait and what it returns.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::event::{EventId, EventType};
use crate::store::BoxError;

/// A provider's API, asked what changed in a time window, a page at a time.
///
/// The [`Reconciler`](super::Reconciler) walks a window `[since, until]` by calling
/// [`poll`](Self::poll) with the cursor the previous page returned (`None` first), until a
/// page says the window is done. What a source returns is either the event itself (stored
/// under the same source and id the push path stores it under, so the two meet in the
/// queue's dedupe) or a request to have the provider send it again through the push path.
///
/// # Contract
///
/// - [`name`](Self::name) is the source name of the push route (`RawEvent::source`), so ids
///   match.
/// - A page holds at most `limit` changes; every change that happened in the window is in
///   some page of the walk (a change outside it may be too: the queue's dedupe absorbs it).
///   Pages may come newest first or oldest first.
/// - The cursor of a page that is not [`done`](Page::done) continues the walk; the cursor of
///   a `done` page (usually `None`) is handed to the first poll of the next window, for APIs
///   that can only walk forward from a known id.
/// - A poll changes nothing at the provider; [`redeliver`](Self::redeliver) asks for one
///   delivery again.
#[async_trait]
pub trait ChangeSource: Send + Sync + 'static {
    /// The source name, the same as the push route's.
    fn name(&self) -> &str;

    /// How far back the provider's API keeps changes (Stripe: 30 days; GitHub: 3 days).
    /// A window that starts before it is cut there, and the part cut is reported as a gap.
    fn horizon(&self) -> Duration;

    /// One page of the changes in `request`'s window.
    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError>;

    /// Asks the provider to send a delivery again (GitHub, GitLab), by the handle a
    /// [`Change::Redeliver`] carried. Sources that fetch events never see this called.
    async fn redeliver(&self, handle: &str) -> Result<(), PollError> {
        let _ = handle;
        Err(PollError::Rejected {
            status: None,
            message: "this source does not redeliver".into(),
        })
    }
}

/// What a poll asks for.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PollRequest<'a> {
    /// The window's start (inclusive): changes at or after it.
    pub since: SystemTime,
    /// The window's end (inclusive): changes at or before it.
    pub until: SystemTime,
    /// Where the walk is: `None` for the first page of a walk that carries nothing.
    pub cursor: Option<&'a str>,
    /// The most changes the page may hold.
    pub limit: usize,
}

impl<'a> PollRequest<'a> {
    /// A request for the window `[since, until]` from `cursor`.
    pub fn new(
        since: SystemTime,
        until: SystemTime,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> Self {
        Self {
            since,
            until,
            cursor,
            limit,
        }
    }
}

/// One page of changes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Page {
    /// The changes, at most the request's `limit`.
    pub changes: Vec<Change>,
    /// Where the next poll continues (see the [`ChangeSource`] contract).
    pub cursor: Option<String>,
    /// Whether this page ends the window's walk.
    pub done: bool,
}

impl Page {
    /// A page of `changes` continued at `cursor`.
    pub fn more(changes: Vec<Change>, cursor: impl Into<String>) -> Self {
        Self {
            changes,
            cursor: Some(cursor.into()),
            done: false,
        }
    }

    /// The last page of a window, carrying `cursor` to the next window.
    pub fn last(changes: Vec<Change>, cursor: Option<String>) -> Self {
        Self {
            changes,
            cursor,
            done: true,
        }
    }
}

/// One change a source reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Change {
    /// The event itself, fetched from the provider's API.
    Event(FetchedEvent),
    /// A delivery the provider can send again through the push path: if the store does
    /// not know `id`, the reconciler calls [`ChangeSource::redeliver`] with `handle`.
    Redeliver {
        /// The event id the push path stores the delivery under.
        id: EventId,
        /// What the source needs to ask for it again (GitHub: the delivery's numeric id).
        handle: String,
    },
}

/// An event as the provider's API returns it.
#[derive(Clone)]
#[non_exhaustive]
pub struct FetchedEvent {
    /// The id the push path stores it under.
    pub id: EventId,
    /// The provider's event type, where it has one.
    pub event_type: Option<EventType>,
    /// When the event happened, where the provider says.
    pub occurred_at: Option<SystemTime>,
    /// The provider's event object, byte for byte as the API returned it.
    pub body: Bytes,
}

impl FetchedEvent {
    /// An event `id` with `body`.
    pub fn new(id: impl Into<EventId>, body: impl Into<Bytes>) -> Self {
        Self {
            id: id.into(),
            event_type: None,
            occurred_at: None,
            body: body.into(),
        }
    }

    /// Sets the event type.
    pub fn with_type(mut self, event_type: impl Into<EventType>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Sets when the event happened.
    pub fn with_occurred_at(mut self, at: SystemTime) -> Self {
        self.occurred_at = Some(at);
        self
    }
}

impl fmt::Debug for FetchedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is the provider's data: its length only.
        f.debug_struct("FetchedEvent")
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .field("occurred_at", &self.occurred_at)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Why a poll or a redelivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PollError {
    /// The provider said to slow down (`429`, or its rate-limit headers at zero): wait
    /// `retry_after` (when it said) and try again.
    #[error("rate limited by the provider{}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
    },
    /// The cursor or window is older than the provider keeps: what lay there cannot be
    /// recovered. The reconciler reports a gap and starts again at the horizon.
    #[error("beyond the provider's horizon")]
    BeyondHorizon,
    /// A failure that may pass (a connection, a `5xx`): tried again with backoff.
    #[error("transient failure: {0}")]
    Transient(#[source] BoxError),
    /// The provider refused what can never succeed as configured (bad credentials, an
    /// unknown hook): the pass stops and reports it.
    #[error("rejected by the provider{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Rejected {
        /// The HTTP status, if it came from one.
        status: Option<u16>,
        /// What the provider said, without secrets.
        message: String,
    },
}

impl PollError {
    /// A transient failure from any error.
    pub fn transient(source: impl Into<BoxError>) -> Self {
        Self::Transient(source.into())
    }
}
