//! What the SQLite and PostgreSQL backends share: the codes stored in their tables, the
//! encoding of tokens and limits, the dead-letter filter's parameters, and the decoding of
//! rows into the public types. Each backend reads its driver's rows into the plain structs
//! here, so the rules live once.

use std::time::SystemTime;

use bytes::Bytes;

use super::codec::{decode_headers, from_micros};
use super::{
    ClaimToken, DeadLetter, DeadLetterFilter, Lease, LeaseToken, Leased, MessageId, StoreError,
};
use crate::event::RawEvent;

pub(crate) mod log;

// The `state` codes both backends store: `0` waiting (ready once `available_at <= now`), `1`
// leased (the lease expires at `available_at`), `2` dead letter, then these two, whose
// records are forgotten at `available_at`. The SQL writes them as literals.

/// `state` of a dead letter.
#[cfg(feature = "postgres")]
pub(crate) const DEAD: i64 = 2;
/// `state` of a handled message, remembered until `available_at` (then forgotten).
pub(crate) const DONE: i64 = 3;
/// `state` of a record that holds only an idempotency claim (no event was stored under its
/// key), remembered until `available_at`.
pub(crate) const CLAIM_ONLY: i64 = 4;

/// Rows one purge statement deletes at most, so a large purge never holds a transaction (or
/// SQLite's writer) for long.
pub(crate) const PURGE_CHUNK: usize = 4096;

/// A lease token as stored. A token this store cannot have issued is simply not current.
pub(crate) fn lease_token(token: LeaseToken) -> Result<i64, StoreError> {
    i64::try_from(token.0).map_err(|_| StoreError::LeaseLost)
}

/// A claim token as stored; see [`lease_token`].
pub(crate) fn claim_token(token: ClaimToken) -> Result<i64, StoreError> {
    i64::try_from(token.0).map_err(|_| StoreError::ClaimLost)
}

/// A stored token (a positive `i64`) as the public `u64`.
pub(crate) fn token_out(token: i64) -> u64 {
    u64::try_from(token).unwrap_or(0)
}

/// An attempt count as stored.
pub(crate) fn attempts_out(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// `usize` as an SQL limit: no limit is the largest `i64`.
pub(crate) fn sql_limit(n: Option<usize>) -> i64 {
    n.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// The parameters of a [`DeadLetterFilter`], in the order both backends bind them: message,
/// source, event id, text in the reason, after, limit (each `None` for "any").
#[derive(Debug, Clone)]
pub(crate) struct DeadFilter {
    pub(crate) message: Option<i64>,
    pub(crate) source: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) after: Option<i64>,
    pub(crate) limit: i64,
}

impl From<&DeadLetterFilter> for DeadFilter {
    fn from(f: &DeadLetterFilter) -> Self {
        Self {
            message: f.message.map(|m| m.0),
            source: f.source.clone(),
            event_id: f.event_id.as_ref().map(|id| id.as_str().to_owned()),
            reason: f.reason_contains.clone(),
            after: f.after.map(|m| m.0),
            limit: sql_limit(f.limit),
        }
    }
}

/// A stored event as read from either backend.
#[derive(Debug)]
pub(crate) struct EventRow {
    pub(crate) source: String,
    pub(crate) event_id: String,
    pub(crate) received_at: i64,
    pub(crate) headers: Vec<u8>,
    pub(crate) body: Vec<u8>,
    /// `None` where the backend does not read it yet.
    pub(crate) event_type: Option<String>,
    /// The [`Origin`](crate::store::Origin) code.
    pub(crate) origin: i64,
    /// The ordering key and position, if the event has a key.
    pub(crate) order_key: Option<String>,
    pub(crate) order_pos: Option<i64>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> RawEvent {
        RawEvent {
            id: self.event_id.into(),
            source: self.source,
            received_at: from_micros(self.received_at),
            headers: decode_headers(&self.headers),
            body: Bytes::from(self.body),
            event_type: self.event_type.map(crate::event::EventType::from),
            origin: crate::store::Origin::from_code(self.origin),
            ordering: self.order_key.map(|key| {
                let key = crate::ordering::OrderingKey::new(key);
                match self.order_pos {
                    Some(position) => key.version(position),
                    None => key,
                }
            }),
        }
    }
}

/// A leased message as read from either backend.
#[derive(Debug)]
pub(crate) struct LeasedRow {
    pub(crate) id: i64,
    pub(crate) event: EventRow,
    pub(crate) attempts: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) token: i64,
    pub(crate) expires: i64,
    /// The watermark of the event's ordering key when leased.
    pub(crate) watermark: Option<i64>,
}

impl LeasedRow {
    pub(crate) fn into_leased(self, max_attempts: u32) -> Leased {
        let lease = Lease {
            message: MessageId(self.id),
            token: LeaseToken(token_out(self.token)),
            expires_at: from_micros(self.expires),
        };
        Leased::new(
            lease,
            self.event.into_event(),
            attempts_out(self.attempts),
            max_attempts,
        )
        .with_last_error(self.last_error)
        .with_watermark(self.watermark)
    }
}

/// A dead letter as read from either backend.
#[derive(Debug)]
pub(crate) struct DeadRow {
    pub(crate) id: i64,
    pub(crate) event: EventRow,
    pub(crate) attempts: i64,
    pub(crate) reason: Option<String>,
    pub(crate) dead_at: Option<i64>,
}

impl DeadRow {
    pub(crate) fn into_dead_letter(self) -> DeadLetter {
        DeadLetter::new(
            MessageId(self.id),
            self.event.into_event(),
            self.reason.unwrap_or_default(),
            attempts_out(self.attempts),
            self.dead_at.map_or(SystemTime::UNIX_EPOCH, from_micros),
        )
    }
}

/// Counts read by both backends' stats query, and the rule that turns them into
/// [`QueueStats`](super::QueueStats): a lease that expired on its last attempt is counted as
/// dead (the next lease moves it there).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateCounts {
    /// Waiting with `available_at <= now`.
    pub(crate) waiting_due: i64,
    /// Waiting with `available_at > now`.
    pub(crate) waiting_later: i64,
    /// Leased and not expired.
    pub(crate) leased_live: i64,
    /// Leased, expired, with attempts left.
    pub(crate) leased_expired: i64,
    /// Leased, expired, on the last attempt.
    pub(crate) leased_expired_last: i64,
    /// Dead letters.
    pub(crate) dead: i64,
}

impl From<StateCounts> for super::QueueStats {
    fn from(c: StateCounts) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Self {
            ready: n(c.waiting_due) + n(c.leased_expired),
            leased: n(c.leased_live),
            scheduled: n(c.waiting_later),
            dead: n(c.dead) + n(c.leased_expired_last),
        }
    }
}
