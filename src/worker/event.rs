//! What a handler receives: [`Event`].

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderMap;

use super::HeldClaim;
use crate::event::{EventId, RawEvent};
use crate::store::{Leased, MessageId};

/// One delivery as a handler sees it: the stored [`RawEvent`], where it is in its retry
/// schedule, and its payload.
///
/// The payload is the raw body (`Event<Bytes>`, the default) or, behind
/// [`DecodeJsonLayer`](super::DecodeJsonLayer), a value decoded from it (`Event<T>`). The raw
/// event is always kept, bytes unchanged, so a handler can re-read headers or the exact body.
///
/// ```
/// use hookdock::worker::Event;
/// use hookdock::store::MessageId;
/// use hookdock::RawEvent;
/// use std::time::SystemTime;
///
/// let raw = RawEvent::new("github", "d-1", SystemTime::now(), r#"{"action":"opened"}"#);
/// let event = Event::new(raw, MessageId(7), 1, 10);
/// assert_eq!(event.source(), "github");
/// assert_eq!(event.id().as_str(), "d-1");
/// assert_eq!(&event.payload()[..], br#"{"action":"opened"}"#);
/// assert!(!event.is_last_attempt());
/// ```
#[derive(Debug, Clone)]
pub struct Event<T = Bytes> {
    raw: RawEvent,
    message: MessageId,
    attempt: u32,
    max_attempts: u32,
    last_error: Option<String>,
    claim: Option<HeldClaim>,
    stale: bool,
    payload: T,
}

impl Event<Bytes> {
    /// An event whose payload is the raw body; `attempt` counts from 1.
    pub fn new(raw: RawEvent, message: MessageId, attempt: u32, max_attempts: u32) -> Self {
        let payload = raw.body.clone();
        Self {
            raw,
            message,
            attempt,
            max_attempts,
            last_error: None,
            claim: None,
            stale: false,
            payload,
        }
    }

    /// Marks the event stale (builder style); see [`is_stale`](Event::is_stale).
    pub fn with_stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Records the previous attempt's error (builder style).
    pub fn with_last_error(mut self, error: Option<String>) -> Self {
        self.last_error = error;
        self
    }
}

impl From<Leased> for Event<Bytes> {
    fn from(leased: Leased) -> Self {
        Event::new(
            leased.event,
            leased.lease.message,
            leased.attempt,
            leased.max_attempts,
        )
        .with_last_error(leased.last_error)
    }
}

impl<T> Event<T> {
    /// The stored event, bytes unchanged.
    pub fn raw(&self) -> &RawEvent {
        &self.raw
    }

    /// The event's id within its source (the provider's delivery id, or the body's hash).
    pub fn id(&self) -> &EventId {
        &self.raw.id
    }

    /// The source the event came from (such as `"github"`).
    pub fn source(&self) -> &str {
        &self.raw.source
    }

    /// The headers the intake kept.
    pub fn headers(&self) -> &HeaderMap {
        &self.raw.headers
    }

    /// The raw body, byte for byte as the provider sent it.
    pub fn body(&self) -> &Bytes {
        &self.raw.body
    }

    /// When the receiver got the delivery.
    pub fn received_at(&self) -> SystemTime {
        self.raw.received_at
    }

    /// True if the event is older than one of its [ordering key](crate::ordering) already
    /// applied, handed to the handler because the worker's
    /// [`StalePolicy`](crate::ordering::StalePolicy) is `Mark`: a handler that merges can
    /// keep the newer state. Always false under the other policies (`Skip` never runs it).
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The event's ordering key and position, if its route extracts one.
    pub fn ordering(&self) -> Option<&crate::ordering::OrderingKey> {
        self.raw.ordering.as_ref()
    }

    /// The queue's id for the message carrying this event.
    pub fn message(&self) -> MessageId {
        self.message
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The queue's attempt limit.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// True if a retryable failure now sends the event to the dead letters.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The error the previous attempt recorded, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The dedupe layer's claim on this event (its key and fencing token), while the handler
    /// runs under a [`DedupeLayer`](crate::worker::DedupeLayer); `None` without one.
    ///
    /// A handler that writes its effect in the same database as the idempotency store can
    /// complete the claim in the same transaction, then [mark it
    /// completed](HeldClaim::mark_completed): see [`HeldClaim`] and the [worker
    /// docs](super#exactly-once-across-a-crash).
    pub fn claim(&self) -> Option<&HeldClaim> {
        self.claim.as_ref()
    }

    /// Attaches a claim (builder style): what the dedupe layer does before calling the
    /// handler, and what a test of a handler can do.
    pub fn with_claim(mut self, claim: HeldClaim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut T {
        &mut self.payload
    }

    /// Takes the payload, dropping the rest.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// Splits into the payload and the same event with `()` as its payload.
    pub fn into_parts(self) -> (Event<()>, T) {
        self.replace_payload(())
    }

    /// Replaces the payload, returning the event with the new one and the old payload.
    pub fn replace_payload<U>(self, payload: U) -> (Event<U>, T) {
        (
            Event {
                raw: self.raw,
                message: self.message,
                attempt: self.attempt,
                max_attempts: self.max_attempts,
                last_error: self.last_error,
                claim: self.claim,
                stale: self.stale,
                payload,
            },
            self.payload,
        )
    }

    /// Transforms the payload.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Event<U> {
        let (event, payload) = self.into_parts();
        event.replace_payload(f(payload)).0
    }

    /// Transforms the payload with a function that can fail.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Event<U>, E> {
        let (event, payload) = self.into_parts();
        Ok(event.replace_payload(f(payload)?).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Lease, LeaseToken};

    #[test]
    fn from_leased_keeps_everything() {
        let raw = RawEvent::new("stripe", "evt_1", SystemTime::UNIX_EPOCH, "body");
        let leased = Leased::new(
            Lease {
                message: MessageId(3),
                token: LeaseToken(9),
                expires_at: SystemTime::UNIX_EPOCH,
            },
            raw.clone(),
            10,
            10,
        )
        .with_last_error(Some("boom".into()));
        let event = Event::from(leased);
        assert_eq!(event.raw(), &raw);
        assert_eq!(event.message(), MessageId(3));
        assert_eq!(event.attempt(), 10);
        assert!(event.is_last_attempt());
        assert_eq!(event.last_error(), Some("boom"));
        assert_eq!(event.payload(), &Bytes::from_static(b"body"));
        assert!(event.claim().is_none(), "no claim outside the dedupe layer");

        let claim = HeldClaim::new(
            crate::store::IdempotencyKey::new("stripe", "evt_1"),
            crate::store::ClaimToken(5),
        );
        let event = event.with_claim(claim.clone());
        let mapped = event.map(|b| b.len());
        // The claim travels with the event through payload changes, and clones share its
        // completed flag.
        let carried = mapped.claim().expect("claim kept");
        assert_eq!(carried.token(), crate::store::ClaimToken(5));
        claim.mark_completed();
        assert!(carried.is_completed());
        assert_eq!(*mapped.payload(), 4);
        assert_eq!(mapped.body(), &Bytes::from_static(b"body"));
        assert_eq!(mapped.last_error(), Some("boom"));
        let failed: Result<Event<u8>, &str> = mapped.try_map(|_| Err("no"));
        assert_eq!(failed.unwrap_err(), "no");
    }
}
