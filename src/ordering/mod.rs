//! Per-entity ordering: an event's ordering key and position, and what the worker does with
//! an event older than one of its key already applied.
//!
//! No provider guarantees delivery order: retries and parallel deliveries let a `deleted`
//! arrive before its `created`. Where the order matters, a route gives each event an
//! [`OrderingKey`]: the entity it is about (a customer id, an order id) and, where the
//! provider sends one, its **position** in that entity's history (the provider's event time
//! or the object's version; larger is newer). The key is stored with the event
//! ([`RawEvent::ordering`](crate::RawEvent::ordering)), and every [`Queue`](crate::store::Queue)
//! keeps these promises for the events of one `(source, key)`:
//!
//! 1. **One at a time.** At most one of them is leased at any moment, across every worker
//!    and process; events of other keys keep every worker busy (no global lock).
//! 2. **In order.** The one leased is the first of the key's waiting events by position, then
//!    by arrival; events without a position sort before those with one, by arrival. The
//!    others wait (they count as `scheduled`, not `ready`) until it is settled: an ack, a dead
//!    letter or a skip lets the next one run at once; a retry or a deferral keeps the key
//!    waiting for it, so nothing overtakes an event that failed. A dead letter does not hold
//!    its key: the events after it run (replaying it later puts it back in order).
//! 3. **Late arrivals.** An event that arrives with an earlier position than the key's first
//!    waiting event goes before it, unless that one is already leased: then the newcomer
//!    waits for it and is stale once it runs (below).
//! 4. **A watermark.** Acking an event with a position moves its key's watermark to the
//!    largest position acked (in the ack's own write; it never moves back). A leased event
//!    carries the watermark of its key as it was when leased
//!    ([`Leased::watermark`](crate::store::Leased::watermark)), which cannot change while the
//!    lease lives, since nothing else of the key runs meanwhile.
//!
//! An event whose position is below its key's watermark is **stale**: a newer state of the
//! entity has been applied. [`StalePolicy`] says what the worker does with it
//! ([`WorkerBuilder::stale_policy`](crate::worker::WorkerBuilder::stale_policy), and
//! [`max_event_age`](crate::worker::WorkerBuilder::max_event_age) for events too old by
//! their own time).
//!
//! # Where keys come from
//!
//! A route's intake reads them from the verified request with an [`ExtractOrdering`]
//! ([`IntakeBuilder::ordering`](crate::intake::IntakeBuilder::ordering)): a closure, a
//! [`JsonOrdering`] over the body, or a ready one: [`stripe`] (`data.object.id` at
//! `created`), [`shopify`] (`admin_graphql_api_id` at `X-Shopify-Triggered-At`), [`square`]
//! (`data.id` at the object's `version`), [`paddle`] (`data.id` at `occurred_at`) and
//! [`standard_webhooks`] (your key at the payload's `timestamp`). GitHub sends no event time:
//! key its events (a repository, an issue) without a position to run them one at a time in
//! arrival order.
//!
//! ```
//! use hookdock::intake::Intake;
//! use hookdock::ordering;
//! use hookdock::store::MemoryQueue;
//!
//! let intake = Intake::builder(MemoryQueue::new())
//!     .ordering(ordering::stripe())
//!     .build()?;
//! # drop(intake);
//! # Ok::<(), hookdock::ConfigError>(())
//! ```

mod extract;

use std::time::{SystemTime, UNIX_EPOCH};

pub use extract::{
    paddle, shopify, square, standard_webhooks, stripe, ExtractOrdering, JsonOrdering,
    PositionFormat,
};

/// The entity an event is about and, where known, its position in that entity's history;
/// see the [module docs](self).
///
/// ```
/// use hookdock::ordering::OrderingKey;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// // Stripe: the object's id, and the event's `created` time (seconds).
/// let key = OrderingKey::new("cus_9s6XKzkNRiz8i3").at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// assert_eq!(key.position(), Some(1_700_000_000_000_000)); // microseconds
///
/// // Square: the object's version.
/// let key = OrderingKey::new("PAY_123").version(7);
/// assert_eq!(key.position(), Some(7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderingKey {
    key: String,
    position: Option<i64>,
}

impl OrderingKey {
    /// A key without a position: its events run one at a time in arrival order.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            position: None,
        }
    }

    /// Sets the position to an event time, in microseconds since the Unix epoch (times before
    /// the epoch count as the epoch).
    pub fn at(self, time: SystemTime) -> Self {
        let micros = time
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.version(micros)
    }

    /// Sets the position to a version number (or any number that grows along the entity's
    /// history). Times and versions do not mix: one route uses one kind.
    pub fn version(mut self, position: i64) -> Self {
        self.position = Some(position);
        self
    }

    /// The entity's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The position, if known.
    pub fn position(&self) -> Option<i64> {
        self.position
    }

    /// True if an event at this position is older than `watermark`, the newest position of
    /// its key already applied. An event without a position is never stale.
    pub fn is_stale(&self, watermark: Option<i64>) -> bool {
        matches!((self.position, watermark), (Some(p), Some(w)) if p < w)
    }
}

/// What the worker does with a stale event (one whose position is below its key's
/// watermark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StalePolicy {
    /// Settle it without running the handler, recorded as `stale` in the event log
    /// ([`Queue::skip`](crate::store::Queue::skip)). The default: applying an older state
    /// over a newer one is the bug ordering exists to prevent.
    #[default]
    Skip,
    /// Run the handler with the event marked stale
    /// ([`Event::is_stale`](crate::worker::Event::is_stale)), for handlers that merge.
    Mark,
    /// Run it as usual.
    Run,
}
