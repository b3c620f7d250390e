//! The record conformance suite: what the queue and the idempotency store of one backend
//! share. One record per key (a claim of a stored event is on its record; an event can be
//! stored under a key that was only claimed), [retention](crate::store#retention), the
//! [key rules](crate::store::key) on both traits, error kinds, and times to the microsecond.
//!
//! Each check is a plain `async fn` taking a [`StoreHarness`];
//! [`store_conformance!`](crate::store_conformance) expands all of them into tests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;

use super::idempotency_suite::{acquire, claim, fp, key};
use super::queue_suite::{
    counts, enqueue_new, event, fixture, fixture_with, lease, lease_one, ok, stats,
};
use super::suite::suite;
use super::{start_clock, ClockExt, Settings, StoreHarness};
use crate::event::{EventId, RawEvent};
use crate::store::key::MAX_EVENT_ID_LEN;
use crate::store::{
    Claim, Enqueued, ErrorKind, IdempotencyKey, IdempotencyStore, Queue, QueueOptions, StoreError,
};
use crate::Clock;

const LEASE: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);

/// Ids no backend can store, each with what is wrong with it.
fn invalid_ids() -> Vec<(EventId, &'static str)> {
    vec![
        (EventId::new(""), "an empty id"),
        (EventId::new("evt\u{0}1"), "a NUL byte"),
        (EventId::new("line\nbreak"), "a line break"),
        (EventId::new("del\u{7f}"), "DEL"),
        (EventId::new("x".repeat(64 * 1024)), "a 64 KiB id"),
        (
            EventId::new("x".repeat(MAX_EVENT_ID_LEN + 1)),
            "one byte over the limit",
        ),
        (
            EventId::from(&HeaderValue::from_bytes(b"bad-\xff").expect("a header value")),
            "bytes that are not UTF-8",
        ),
    ]
}

fn assert_invalid<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        Err(e @ StoreError::Invalid(_)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
        }
        other => panic!("{what} must be refused as invalid input, got {other:?}"),
    }
}

suite! {
$ __record_checks, record_suite;

/// The key rules, on both traits: an invalid id or source is refused with
/// [`StoreError::Invalid`] (kind [`ErrorKind::InvalidInput`]) and nothing is stored or
/// claimed; an id at the length limit is fine.
pub async fn invalid_keys_are_refused_and_store_nothing<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    for (id, what) in invalid_ids() {
        let e = RawEvent::new("github", id.clone(), f.clock.now(), "{}");
        assert_invalid(&format!("enqueue of {what}"), q.enqueue(e).await);
        let k = IdempotencyKey::new("github", id);
        assert_invalid(
            &format!("claim of {what}"),
            s.claim(&k, &fp("{}"), LEASE).await,
        );
    }
    for source in ["", "git\u{0}hub", "tab\there"] {
        let e = RawEvent::new(source, "d-1", f.clock.now(), "{}");
        assert_invalid(&format!("enqueue with source {source:?}"), q.enqueue(e).await);
    }
    assert_eq!(stats(q).await, counts(0, 0, 0, 0), "nothing may be stored");
    let longest = "x".repeat(MAX_EVENT_ID_LEN);
    enqueue_new(q, event("github", &longest, "{}")).await;
    acquire(s, &key(&longest), "{}", LEASE).await;
    assert_eq!(lease(q, 10).await.len(), 1);
}

/// One event that can never be stored does not fail the events stored with it, however
/// they are batched: of many concurrent enqueues, every valid one is stored.
pub async fn one_bad_event_never_fails_its_neighbours<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let bad = invalid_ids();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let q = Arc::clone(&f.queue);
            let id = if i % 3 == 0 {
                bad[(i / 3) % bad.len()].0.clone()
            } else {
                EventId::new(format!("good-{i}"))
            };
            let now = f.clock.now();
            tokio::spawn(async move { (i, q.enqueue(RawEvent::new("github", id, now, "{}")).await) })
        })
        .collect();
    for t in tasks {
        let (i, r) = t.await.expect("enqueue task panicked");
        if i % 3 == 0 {
            assert_invalid("a bad event among good ones", r);
        } else {
            assert!(matches!(r, Ok(Enqueued::New(_))), "good event {i}: {r:?}");
        }
    }
    assert_eq!(stats(&*f.queue).await, counts(40, 0, 0, 0));
}

/// Times round-trip to the microsecond: the received-at time, a lease's expiry, a retry's
/// time (not a microsecond early), a claim's expiry.
pub async fn times_round_trip_below_the_millisecond<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    let received = f.clock.now() - Duration::from_micros(1_234_567);
    let e = event("github", "a", "x");
    let e = RawEvent {
        received_at: received,
        ..e
    };
    enqueue_new(q, e).await;
    let l = lease_one(q).await;
    assert_eq!(l.event.received_at, received, "received_at to the microsecond");
    assert_eq!(l.lease.expires_at, f.clock.now() + LEASE, "lease expiry to the microsecond");
    let at = f.clock.now_plus(Duration::from_micros(1_500));
    ok("retry", q.retry(&l.lease, at, "later").await);
    f.clock.advance(Duration::from_micros(1_499));
    assert!(lease(q, 1).await.is_empty(), "a retry is not ready a microsecond early");
    f.clock.advance(Duration::from_micros(1));
    assert_eq!(lease(q, 1).await.len(), 1, "a retry is ready at its time");
    let until = f.clock.now() + LEASE;
    acquire(s, &key("k"), "x", LEASE).await;
    assert_eq!(
        claim(s, &key("k"), "x", LEASE).await,
        Claim::InProgress { until },
        "a claim's expiry to the microsecond"
    );
}

/// A handled event is remembered for the retention period (a resend is a duplicate), then
/// forgotten: a resend is stored and handled anew, and `purge_expired` removes the record.
pub async fn handled_events_are_remembered_for_the_retention_period<H: StoreHarness>(h: &H) {
    let clock = start_clock();
    let settings = Settings {
        clock: clock.clone(),
        retention: HOUR,
    };
    let f = fixture_with(h, QueueOptions::default(), settings).await;
    let q = &*f.queue;
    let first = enqueue_new(q, event("github", "a", "x")).await;
    let l = lease_one(q).await;
    ok("ack", q.ack(&l.lease).await);
    assert_eq!(ok("purge", q.purge_expired().await), 0, "nothing is past retention yet");
    clock.advance(HOUR - Duration::from_millis(1));
    assert_eq!(
        ok("enqueue", q.enqueue(event("github", "a", "x")).await),
        Enqueued::Duplicate(first),
        "within the retention period a resend is a duplicate"
    );
    clock.advance(Duration::from_millis(1));
    let again = match ok("enqueue", q.enqueue(event("github", "a", "second")).await) {
        Enqueued::New(id) => id,
        other => panic!("after the retention period a resend is new, got {other:?}"),
    };
    let l = lease_one(q).await;
    assert_eq!(l.lease.message, again);
    assert_eq!(&l.event.body[..], b"second", "the resend's own bytes are stored");
    assert_eq!(l.attempt, 1, "a new event starts at attempt 1");
    // Another handled event, then its retention passes: the purge removes its record.
    enqueue_new(q, event("github", "b", "x")).await;
    let b = lease_one(q).await;
    ok("ack", q.ack(&b.lease).await);
    ok("ack", q.ack(&l.lease).await);
    clock.advance(HOUR);
    assert!(ok("purge", q.purge_expired().await) >= 2, "both handled records are purged");
    assert!(matches!(
        ok("enqueue", q.enqueue(event("github", "b", "x")).await),
        Enqueued::New(_)
    ));
}

/// The dedupe layer's claim of a stored event is on the event's record: completing it, then
/// acking the message, leaves one record that answers both a resend (duplicate) and a claim
/// (completed, with its result).
pub async fn a_claim_of_a_stored_event_shares_its_record<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    let id = enqueue_new(q, event("github", "a", "body")).await;
    let l = lease_one(q).await;
    let token = acquire(s, &key("a"), "body", LEASE).await;
    ok(
        "complete",
        s.complete(&key("a"), token, Some(Bytes::from_static(b"done"))).await,
    );
    ok("ack", q.ack(&l.lease).await);
    assert_eq!(
        ok("enqueue", q.enqueue(event("github", "a", "body")).await),
        Enqueued::Duplicate(id)
    );
    assert_eq!(
        claim(s, &key("a"), "body", LEASE).await,
        Claim::Completed(Some(Bytes::from_static(b"done")))
    );
    assert_eq!(ok("purge", s.purge_expired().await), 0);
    f.clock.advance(crate::store::DEFAULT_RETENTION + Duration::from_secs(1));
    acquire(s, &key("a"), "body", LEASE).await;
    assert!(matches!(
        ok("enqueue", q.enqueue(event("github", "a", "body")).await),
        Enqueued::New(_)
    ));
}

/// An event can be stored under a key that was only claimed: the enqueue stores it (a new
/// message, leasable), and the claim stays as it was.
pub async fn an_event_is_stored_under_a_key_that_was_only_claimed<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    let token = acquire(s, &key("a"), "body", LEASE).await;
    enqueue_new(q, event("github", "a", "body")).await;
    assert_eq!(stats(q).await, counts(1, 0, 0, 0));
    let l = lease_one(q).await;
    assert_eq!(&l.event.body[..], b"body", "the stored event is the enqueued one");
    assert!(
        matches!(claim(s, &key("a"), "body", LEASE).await, Claim::InProgress { .. }),
        "the claim is kept"
    );
    ok("release", s.release(&key("a"), token).await);
    acquire(s, &key("a"), "body", LEASE).await;
    // A key only claimed and released is free again, and claims are not messages.
    let other = IdempotencyKey::new("stripe", "evt_1");
    let t = acquire(s, &other, "{}", LEASE).await;
    ok("release", s.release(&other, t).await);
    acquire(s, &other, "{}", LEASE).await;
    assert_eq!(stats(q).await, counts(0, 1, 0, 0), "claims are not messages");
}

/// Every error says what to do: a lost lease and a lost claim are [`ErrorKind::Fenced`].
pub async fn fenced_errors_have_their_kind<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    enqueue_new(q, event("github", "a", "x")).await;
    let l = lease_one(q).await;
    ok("ack", q.ack(&l.lease).await);
    let again = q.ack(&l.lease).await.expect_err("a settled lease is lost");
    assert_eq!(again.kind(), ErrorKind::Fenced, "{again}");
    let t = acquire(s, &key("k"), "x", LEASE).await;
    ok("complete", s.complete(&key("k"), t, None).await);
    let again = s.complete(&key("k"), t, None).await.expect_err("a completed claim is lost");
    assert_eq!(again.kind(), ErrorKind::Fenced, "{again}");
}
}
