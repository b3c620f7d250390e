//! The [`Queue`] conformance suite: one check per clause of the
//! [queue contract](crate::store#the-queue-contract).
//!
//! Each check is a plain `async fn` taking a [`StoreHarness`], so it can be called from any
//! test; [`store_conformance!`](crate::store_conformance) expands all of them into
//! `#[tokio::test]`s at once. A check panics (fails the test) with a message naming the
//! clause it found broken.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::suite::suite;
use super::{settings, start_clock, ClockExt, StoreHarness};
use crate::clock::FakeClock;
use crate::event::RawEvent;
use crate::store::{
    DeadLetterFilter, Durability, Enqueued, Leased, MessageId, Queue, QueueOptions, QueueStats,
    StoreError, EXPIRED_ON_LAST_ATTEMPT,
};

const LEASE: Duration = Duration::from_secs(30);
const PAST_LEASE: Duration = Duration::from_secs(31);

/// One check's backend: its storage (kept alive), queue, idempotency store and clock.
pub(crate) struct Fixture<H: StoreHarness> {
    pub(crate) storage: H::Storage,
    pub(crate) queue: Arc<H::Queue>,
    pub(crate) idempotency: Arc<H::Idempotency>,
    pub(crate) clock: FakeClock,
    pub(crate) options: QueueOptions,
}

pub(crate) async fn fixture<H: StoreHarness>(h: &H, options: QueueOptions) -> Fixture<H> {
    let clock = start_clock();
    fixture_with(h, options, settings(&clock)).await
}

pub(crate) async fn fixture_with<H: StoreHarness>(
    h: &H,
    options: QueueOptions,
    settings: super::Settings,
) -> Fixture<H> {
    let storage = match h.create().await {
        Ok(s) => s,
        Err(e) => panic!("harness could not create storage: {e}"),
    };
    let (queue, idempotency) = match h.open(&storage, &settings, options).await {
        Ok(opened) => opened,
        Err(e) => panic!("harness could not open the store: {e}"),
    };
    Fixture {
        storage,
        queue: Arc::new(queue),
        idempotency: Arc::new(idempotency),
        clock: settings.clock,
        options,
    }
}

impl<H: StoreHarness> Fixture<H> {
    /// Closes the store and opens its storage again.
    pub(crate) async fn reopen(self, h: &H) -> Fixture<H> {
        let Fixture {
            storage,
            queue,
            idempotency,
            clock,
            options,
        } = self;
        let queue = Arc::try_unwrap(queue).unwrap_or_else(|_| panic!("the queue is still shared"));
        let idempotency = Arc::try_unwrap(idempotency)
            .unwrap_or_else(|_| panic!("the idempotency store is still shared"));
        h.close(queue, idempotency).await;
        let (queue, idempotency) = match h.open(&storage, &settings(&clock), options).await {
            Ok(opened) => opened,
            Err(e) => panic!("reopening the storage failed: {e}"),
        };
        Fixture {
            storage,
            queue: Arc::new(queue),
            idempotency: Arc::new(idempotency),
            clock,
            options,
        }
    }
}

pub(crate) fn event(source: &str, id: &str, body: &str) -> RawEvent {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-delivery",
        HeaderValue::from_str(id).expect("test ids are ASCII"),
    );
    RawEvent::new(
        source,
        id,
        UNIX_EPOCH + Duration::from_secs(1_600_000_000),
        body.to_owned(),
    )
    .with_headers(headers)
}

pub(crate) async fn enqueue_new(q: &impl Queue, e: RawEvent) -> MessageId {
    match q.enqueue(e).await {
        Ok(Enqueued::New(id)) => id,
        other => panic!("enqueue of a new event: expected New, got {other:?}"),
    }
}

pub(crate) async fn lease(q: &impl Queue, max: usize) -> Vec<Leased> {
    match q.lease(max, LEASE).await {
        Ok(batch) => batch,
        Err(e) => panic!("lease failed: {e}"),
    }
}

pub(crate) async fn lease_one(q: &impl Queue) -> Leased {
    let mut batch = lease(q, 1).await;
    assert_eq!(batch.len(), 1, "expected one ready message to lease");
    batch.remove(0)
}

pub(crate) async fn stats(q: &impl Queue) -> QueueStats {
    match q.stats().await {
        Ok(s) => s,
        Err(e) => panic!("stats failed: {e}"),
    }
}

pub(crate) fn counts(ready: u64, leased: u64, scheduled: u64, dead: u64) -> QueueStats {
    QueueStats {
        ready,
        leased,
        scheduled,
        dead,
    }
}

pub(crate) fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

pub(crate) fn assert_lease_lost<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::LeaseLost)),
        "{what} with a token that is no longer current must fail with LeaseLost, got {r:?}"
    );
}

pub(crate) async fn dead_ids(q: &impl Queue) -> Vec<MessageId> {
    let dl = ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await,
    );
    dl.iter().map(|d| d.message).collect()
}

pub(crate) fn ids(batch: &[Leased]) -> Vec<MessageId> {
    batch.iter().map(|l| l.lease.message).collect()
}

suite! {
$ __queue_checks, queue_suite;

/// Clause 1: a new event is `New`; the same (source, id) again is `Duplicate` with the same
/// message id and stores nothing; the same id in another source is a different event.
pub async fn enqueue_returns_new_then_duplicate<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let a = enqueue_new(q, event("github", "a", "first body")).await;
    let again = ok(
        "enqueue",
        q.enqueue(event("github", "a", "other body")).await,
    );
    assert_eq!(
        again,
        Enqueued::Duplicate(a),
        "same source and id must be a duplicate"
    );
    let other_source = enqueue_new(q, event("stripe", "a", "stripe body")).await;
    let b = enqueue_new(q, event("github", "b", "b body")).await;
    let distinct: HashSet<_> = [a, other_source, b].into_iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "distinct events need distinct message ids"
    );
    assert_eq!(stats(q).await, counts(3, 0, 0, 0));
    let batch = lease(q, 10).await;
    let first = batch
        .iter()
        .find(|l| l.lease.message == a)
        .expect("the first event is leasable");
    assert_eq!(
        &first.event.body[..],
        b"first body",
        "a duplicate must not overwrite the stored event"
    );
}

/// Clause 1: enqueue stays idempotent while the message is leased, scheduled for a retry,
/// in the dead letters, or handled.
pub async fn enqueue_is_idempotent_in_every_held_state<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let leased = enqueue_new(q, event("github", "leased", "1")).await;
    let scheduled = enqueue_new(q, event("github", "scheduled", "2")).await;
    let dead = enqueue_new(q, event("github", "dead", "3")).await;
    let handled = enqueue_new(q, event("github", "handled", "5")).await;
    let batch = lease(q, 4).await;
    assert_eq!(batch.len(), 4);
    for l in &batch {
        if l.lease.message == scheduled {
            let at = f.clock.now_plus(Duration::from_secs(3600));
            ok("retry", q.retry(&l.lease, at, "later").await);
        } else if l.lease.message == dead {
            ok("dead_letter", q.dead_letter(&l.lease, "bad").await);
        } else if l.lease.message == handled {
            ok("ack", q.ack(&l.lease).await);
        }
    }
    let ready = enqueue_new(q, event("github", "ready", "4")).await;
    let before = stats(q).await;
    assert_eq!(before, counts(1, 1, 1, 1));
    for (id, msg) in [
        ("leased", leased),
        ("scheduled", scheduled),
        ("dead", dead),
        ("handled", handled),
        ("ready", ready),
    ] {
        let again = ok("enqueue", q.enqueue(event("github", id, "again")).await);
        assert_eq!(
            again,
            Enqueued::Duplicate(msg),
            "an event that is {id} must be a duplicate"
        );
    }
    assert_eq!(stats(q).await, before, "duplicates must store nothing");
}

/// Clause 1: many concurrent enqueues of one event store it once: exactly one `New`, every
/// other call `Duplicate` of the same message.
pub async fn concurrent_enqueues_store_one_event_once<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let q = Arc::clone(&f.queue);
            tokio::spawn(async move { q.enqueue(event("github", "same", &format!("{i}"))).await })
        })
        .collect();
    let mut new = Vec::new();
    let mut dups = Vec::new();
    for t in tasks {
        match t.await.expect("enqueue task panicked") {
            Ok(Enqueued::New(id)) => new.push(id),
            Ok(Enqueued::Duplicate(id)) => dups.push(id),
            Err(e) => panic!("concurrent enqueue failed: {e}"),
        }
    }
    assert_eq!(
        new.len(),
        1,
        "exactly one concurrent enqueue must store the event"
    );
    assert!(
        dups.iter().all(|d| *d == new[0]),
        "every duplicate must name the stored message"
    );
    assert_eq!(stats(&*f.queue).await, counts(1, 0, 0, 0));
}

/// The declared durability matches the harness: a persistent backend does not claim to be
/// volatile, and a volatile one does not claim durability.
pub async fn durability_matches_the_harness<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let volatile = f.queue.durability() == Durability::Volatile;
    assert_eq!(
        volatile,
        !h.persistent(),
        "durability() is {:?} but the harness says persistent = {}",
        f.queue.durability(),
        h.persistent()
    );
}

/// The stored event comes back unchanged: every byte of the body (including bytes that
/// are not UTF-8, and an empty body), repeated and non-ASCII headers, the received-at time
/// to the microsecond, the source and the id.
pub async fn event_round_trips_byte_for_byte<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let body: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let mut headers = HeaderMap::new();
    headers.append("x-repeated", HeaderValue::from_static("one"));
    headers.append("x-repeated", HeaderValue::from_static("two, with: colon"));
    headers.append(
        "x-obs-text",
        HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").expect("obs-text is a valid value"),
    );
    headers.append("x-empty", HeaderValue::from_static(""));
    let received = UNIX_EPOCH + Duration::from_micros(1_650_000_000_987_654);
    let full = RawEvent::new("git-hub.v2", "d/é 1", received, body).with_headers(headers);
    let empty = RawEvent::new("stripe", "evt_empty", received, Vec::new());
    let full_id = enqueue_new(q, full.clone()).await;
    let empty_id = enqueue_new(q, empty.clone()).await;
    let batch = lease(q, 2).await;
    assert_eq!(batch.len(), 2);
    for l in batch {
        let expected = if l.lease.message == full_id {
            &full
        } else {
            assert_eq!(l.lease.message, empty_id);
            &empty
        };
        assert_eq!(l.event.id, expected.id, "event id changed");
        assert_eq!(l.event.source, expected.source, "source changed");
        assert_eq!(l.event.body, expected.body, "body bytes changed");
        assert_eq!(l.event.headers, expected.headers, "headers changed");
        assert_eq!(
            l.event.received_at, expected.received_at,
            "received_at changed"
        );
    }
}

/// Clause 2: lease hands out at most `max` messages, oldest first; `max = 0` leases nothing
/// and counts no attempt.
pub async fn lease_takes_oldest_first_up_to_max<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let mut order = Vec::new();
    for i in 0..5 {
        order.push(enqueue_new(q, event("github", &format!("e{i}"), "x")).await);
        f.clock.advance(Duration::from_millis(1));
    }
    assert!(lease(q, 0).await.is_empty(), "lease(0) must lease nothing");
    let first = lease(q, 2).await;
    assert_eq!(
        ids(&first),
        order[..2].to_vec(),
        "lease must take the oldest first"
    );
    let rest = lease(q, 10).await;
    let mut rest_ids = ids(&rest);
    rest_ids.sort();
    assert_eq!(
        rest_ids,
        order[2..].to_vec(),
        "lease must take every ready message"
    );
    assert!(lease(q, 10).await.is_empty(), "nothing is left to lease");
    assert!(
        first.iter().chain(&rest).all(|l| l.attempt == 1),
        "lease(0) must not count an attempt"
    );
}

/// Clause 2: a lease expires `lease_for` after the lease, is attempt 1 on a new message, and
/// carries the queue's attempt limit and no previous error.
pub async fn lease_sets_expiry_token_and_attempt<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default().max_attempts(4)).await;
    let q = &*f.queue;
    let id = enqueue_new(q, event("github", "a", "x")).await;
    let now = f.clock.now_plus(Duration::ZERO);
    let l = lease_one(q).await;
    assert_eq!(l.lease.message, id);
    assert_eq!(
        l.lease.expires_at,
        now + LEASE,
        "expiry must be lease_for from now"
    );
    assert_eq!(l.attempt, 1, "the first lease is attempt 1");
    assert_eq!(l.max_attempts, 4, "max_attempts must be the queue's option");
    assert!(!l.is_last_attempt());
    assert_eq!(l.last_error, None);
    assert_eq!(stats(q).await, counts(0, 1, 0, 0));
}

/// Clause 2: a message under a live lease is not leased again, however close to expiry.
pub async fn lease_is_exclusive_until_expiry<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, event("github", "a", "x")).await;
    lease_one(q).await;
    assert!(
        lease(q, 10).await.is_empty(),
        "a live lease must be exclusive"
    );
    f.clock.advance(LEASE - Duration::from_millis(1));
    assert!(
        lease(q, 10).await.is_empty(),
        "a lease 1 ms before its expiry must still be exclusive"
    );
    assert_eq!(stats(q).await, counts(0, 1, 0, 0));
}

/// Clause 2: many concurrent leasers: every message is leased exactly once.
pub async fn concurrent_leasers_take_each_message_once<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    const MESSAGES: usize = 300;
    for i in 0..MESSAGES {
        enqueue_new(&*f.queue, event("github", &format!("m{i}"), "x")).await;
    }
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let q = Arc::clone(&f.queue);
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = q.lease(7, Duration::from_secs(600)).await?;
                    if batch.is_empty() {
                        return Ok::<_, StoreError>(got);
                    }
                    got.extend(batch.into_iter().map(|l| l.lease.message));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(ok("concurrent lease", t.await.expect("leaser panicked")));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a message was leased twice");
    assert_eq!(all.len(), MESSAGES, "every message must be leased once");
    assert_eq!(stats(&*f.queue).await, counts(0, MESSAGES as u64, 0, 0));
}

/// Clause 3: an expired lease makes the message ready again; the next lease gets it with a
/// new token and the next attempt number.
pub async fn expired_lease_is_redelivered_with_new_token<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let id = enqueue_new(q, event("github", "a", "x")).await;
    let first = lease_one(q).await;
    f.clock.advance(PAST_LEASE);
    assert_eq!(
        stats(q).await,
        counts(1, 0, 0, 0),
        "an expired lease counts as ready"
    );
    let second = lease_one(q).await;
    assert_eq!(second.lease.message, id);
    assert_ne!(
        second.lease.token, first.lease.token,
        "a new lease needs a new token"
    );
    assert_eq!(second.attempt, 2, "a redelivery is the next attempt");
    assert_eq!(
        second.event, first.event,
        "the redelivered event must be the same"
    );
    assert_eq!(
        second.lease.expires_at,
        f.clock.now_plus(LEASE),
        "the new lease expires lease_for from now"
    );
}

/// Clause 2: once a message is leased again, the old token fails with `LeaseLost` for
/// ack, retry, extend and dead_letter, and changes nothing; the new token still works.
pub async fn stale_token_is_fenced_everywhere<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, event("github", "a", "x")).await;
    let old = lease_one(q).await.lease;
    f.clock.advance(PAST_LEASE);
    let new = lease_one(q).await.lease;
    let before = stats(q).await;
    assert_lease_lost("ack", q.ack(&old).await);
    assert_lease_lost(
        "retry",
        q.retry(&old, f.clock.now_plus(Duration::ZERO), "x").await,
    );
    assert_lease_lost("extend", q.extend(&old, LEASE).await);
    assert_lease_lost("dead_letter", q.dead_letter(&old, "x").await);
    assert_eq!(stats(q).await, before, "a stale token must change nothing");
    assert!(
        lease(q, 10).await.is_empty(),
        "a stale token must not release the live lease"
    );
    assert!(
        ok(
            "dead_letters",
            q.dead_letters(&DeadLetterFilter::all()).await
        )
        .is_empty(),
        "a stale dead_letter must not park the message"
    );
    let extended = ok("extend with the current token", q.extend(&new, LEASE).await);
    ok("ack with the current token", q.ack(&extended).await);
    assert_eq!(stats(q).await, counts(0, 0, 0, 0));
}

/// Clause 2: a lease that expired but was not yet taken by anyone else may still be settled
/// (or extended) with its token.
pub async fn expired_lease_can_be_settled_until_retaken<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let a = enqueue_new(q, event("github", "a", "x")).await;
    let la = lease_one(q).await;
    let b = enqueue_new(q, event("github", "b", "x")).await;
    let lb = lease_one(q).await;
    assert_eq!((la.lease.message, lb.lease.message), (a, b));
    f.clock.advance(PAST_LEASE);
    ok("ack of an expired, untaken lease", q.ack(&la.lease).await);
    let extended = ok(
        "extend of an expired, untaken lease",
        q.extend(&lb.lease, LEASE).await,
    );
    assert_eq!(
        stats(q).await,
        counts(0, 1, 0, 0),
        "the extended lease is live again"
    );
    assert!(
        lease(q, 10).await.is_empty(),
        "the extended lease must be exclusive"
    );
    ok("ack after extend", q.ack(&extended).await);
    assert_eq!(stats(q).await, counts(0, 0, 0, 0));
}

/// Clause 2: a token stops being current once its message is acked, retried or
/// dead-lettered; using it again fails with `LeaseLost` and changes nothing.
pub async fn settled_tokens_are_no_longer_current<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    for id in ["acked", "retried", "dead"] {
        enqueue_new(q, event("github", id, "x")).await;
    }
    let batch = lease(q, 3).await;
    assert_eq!(batch.len(), 3);
    let [acked, retried, dead] = [0, 1, 2].map(|i| batch[i].lease);
    ok("ack", q.ack(&acked).await);
    assert_lease_lost("a second ack", q.ack(&acked).await);
    assert_lease_lost(
        "retry after ack",
        q.retry(&acked, f.clock.now_plus(Duration::ZERO), "x").await,
    );
    let later = f.clock.now_plus(Duration::from_secs(60));
    ok("retry", q.retry(&retried, later, "boom").await);
    assert_lease_lost("ack after retry", q.ack(&retried).await);
    assert_lease_lost("extend after retry", q.extend(&retried, LEASE).await);
    ok("dead_letter", q.dead_letter(&dead, "first reason").await);
    assert_lease_lost("ack after dead_letter", q.ack(&dead).await);
    assert_lease_lost("retry after dead_letter", q.retry(&dead, later, "x").await);
    assert_lease_lost(
        "dead_letter twice",
        q.dead_letter(&dead, "second reason").await,
    );
    assert_eq!(stats(q).await, counts(0, 0, 1, 1));
    let dl = ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await,
    );
    assert_eq!(dl.len(), 1);
    assert_eq!(
        dl[0].reason, "first reason",
        "a lost dead_letter must not change the reason"
    );
}

/// Clause 2: extend moves the expiry to `lease_for` from now, keeps the token, and the
/// message is not redelivered at the original expiry.
pub async fn extend_moves_the_expiry<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, event("github", "a", "x")).await;
    let l = lease_one(q).await.lease;
    f.clock.advance(Duration::from_secs(20));
    let extended = ok("extend", q.extend(&l, LEASE).await);
    assert_eq!(extended.message, l.message);
    assert_eq!(extended.token, l.token, "extend keeps the token");
    assert_eq!(
        extended.expires_at,
        f.clock.now_plus(LEASE),
        "extend sets lease_for from now"
    );
    f.clock.advance(Duration::from_secs(20));
    assert!(
        lease(q, 10).await.is_empty(),
        "an extended lease must not expire at its original time"
    );
    assert_eq!(stats(q).await, counts(0, 1, 0, 0));
    f.clock.advance(Duration::from_secs(11));
    let again = lease_one(q).await;
    assert_eq!(
        again.attempt, 2,
        "past the extended expiry the message comes back"
    );
}

/// Clause 4: defer makes the message ready again at the given time and not before, gives
/// back the attempt its lease counted (so even the last attempt is not dead-lettered),
/// records no error, and is fenced like every settling call.
pub async fn defer_gives_the_attempt_back<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default().max_attempts(2)).await;
    let q = &*f.queue;
    enqueue_new(q, event("github", "a", "x")).await;
    let first = lease_one(q).await;
    assert_eq!(first.attempt, 1);
    ok(
        "retry",
        q.retry(&first.lease, f.clock.now_plus(Duration::ZERO), "boom")
            .await,
    );
    let second = lease_one(q).await;
    assert_eq!(second.attempt, 2);
    assert!(second.is_last_attempt());
    let at = f.clock.now_plus(Duration::from_secs(60));
    ok("defer", q.defer(&second.lease, at).await);
    assert_lease_lost("ack after defer", q.ack(&second.lease).await);
    assert_lease_lost("defer after defer", q.defer(&second.lease, at).await);
    assert_eq!(
        stats(q).await,
        counts(0, 0, 1, 0),
        "a deferral in the future is scheduled"
    );
    f.clock.advance(Duration::from_secs(59));
    assert!(lease(q, 10).await.is_empty(), "not ready before its time");
    f.clock.advance(Duration::from_secs(1));
    let third = lease_one(q).await;
    assert_eq!(third.attempt, 2, "defer gives the attempt back");
    assert_eq!(
        third.last_error.as_deref(),
        Some("boom"),
        "defer records no error of its own"
    );
    // Deferring the last attempt again and again never dead-letters it.
    let mut current = third;
    for _ in 0..3 {
        ok(
            "defer",
            q.defer(&current.lease, f.clock.now_plus(Duration::ZERO))
                .await,
        );
        current = lease_one(q).await;
        assert_eq!(
            current.attempt, 2,
            "repeated deferrals keep the attempt number"
        );
    }
    f.clock.advance(PAST_LEASE);
    assert_eq!(
        stats(q).await,
        counts(0, 0, 0, 1),
        "an expired lease on the last attempt still counts as dead: defer only gives back what it is told"
    );
}

/// Clause 4: retry makes the message ready again at the given time and not before, keeps
/// its attempt count and records the error; a time in the past means now.
pub async fn retry_waits_until_its_time<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, event("github", "a", "x")).await;
    let l = lease_one(q).await;
    let at = f.clock.now_plus(Duration::from_secs(60));
    ok("retry", q.retry(&l.lease, at, "boom: upstream 502").await);
    assert_eq!(
        stats(q).await,
        counts(0, 0, 1, 0),
        "a retry in the future is scheduled"
    );
    assert!(
        lease(q, 10).await.is_empty(),
        "not ready before its retry time"
    );
    f.clock.advance(Duration::from_secs(59));
    assert!(
        lease(q, 10).await.is_empty(),
        "not ready 1 s before its retry time"
    );
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        stats(q).await,
        counts(1, 0, 0, 0),
        "ready at its retry time"
    );
    let second = lease_one(q).await;
    assert_eq!(second.attempt, 2, "retry keeps the attempt count");
    assert_eq!(second.last_error.as_deref(), Some("boom: upstream 502"));
    let past = f.clock.now_plus(Duration::ZERO) - Duration::from_secs(3600);
    ok(
        "retry in the past",
        q.retry(&second.lease, past, "again").await,
    );
    let third = lease_one(q).await;
    assert_eq!(third.attempt, 3);
    assert_eq!(third.last_error.as_deref(), Some("again"));
}

/// Clause 4: ack removes the message for good.
pub async fn ack_marks_the_message_handled<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let a = enqueue_new(q, event("github", "a", "x")).await;
    let keep = enqueue_new(q, event("github", "b", "y")).await;
    let batch = lease(q, 1).await;
    ok("ack", q.ack(&batch[0].lease).await);
    assert_eq!(stats(q).await, counts(1, 0, 0, 0), "a handled message is not counted");
    assert_eq!(
        ok("enqueue", q.enqueue(event("github", "a", "x")).await),
        Enqueued::Duplicate(a),
        "a handled event is remembered: a resend is a duplicate"
    );
    f.clock.advance(Duration::from_secs(86_400));
    let rest = lease(q, 10).await;
    assert_eq!(
        ids(&rest),
        vec![keep],
        "an acked message must never come back"
    );
    assert!(ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await
    )
    .is_empty());
}

/// Clause 4: dead_letter parks the message with its reason: listed with its attempts, time
/// and event, never leased again, not counted in the depth.
pub async fn dead_letter_parks_the_message<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let original = event("github", "a", "{\"bad\":");
    let id = enqueue_new(q, original.clone()).await;
    let l = lease_one(q).await;
    f.clock.advance(Duration::from_secs(5));
    let dead_at = f.clock.now_plus(Duration::ZERO);
    ok(
        "dead_letter",
        q.dead_letter(&l.lease, "decode: unexpected end of input")
            .await,
    );
    assert_eq!(stats(q).await, counts(0, 0, 0, 1));
    assert_eq!(stats(q).await.depth(), 0);
    f.clock.advance(Duration::from_secs(86_400));
    assert!(
        lease(q, 10).await.is_empty(),
        "a dead letter must not be leased"
    );
    let dl = ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await,
    );
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].message, id);
    assert_eq!(dl[0].reason, "decode: unexpected end of input");
    assert_eq!(dl[0].attempts, 1);
    assert_eq!(dl[0].dead_at, dead_at);
    assert_eq!(
        dl[0].event, original,
        "the dead letter keeps the original event"
    );
}

/// Clause 3: a lease that expires on the last allowed attempt sends the message to the dead
/// letters with [`EXPIRED_ON_LAST_ATTEMPT`] instead of redelivering it.
pub async fn expiry_on_last_attempt_dead_letters<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default().max_attempts(2)).await;
    let q = &*f.queue;
    let id = enqueue_new(q, event("github", "a", "x")).await;
    let first = lease_one(q).await;
    assert!(!first.is_last_attempt());
    f.clock.advance(PAST_LEASE);
    let second = lease_one(q).await;
    assert_eq!(second.attempt, 2);
    assert!(second.is_last_attempt());
    f.clock.advance(PAST_LEASE);
    assert_eq!(
        stats(q).await,
        counts(0, 0, 0, 1),
        "a lease expired on the last attempt counts as dead"
    );
    assert!(
        lease(q, 10).await.is_empty(),
        "no attempt beyond max_attempts"
    );
    let dl = ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await,
    );
    assert_eq!(dl.len(), 1, "the message must be in the dead letters");
    assert_eq!(dl[0].message, id);
    assert_eq!(dl[0].reason, EXPIRED_ON_LAST_ATTEMPT);
    assert_eq!(dl[0].attempts, 2);
    assert_lease_lost(
        "ack after expiry to the dead letters",
        q.ack(&second.lease).await,
    );
    assert_eq!(f.options.max_attempts, 2);
}

/// Clause 5: dead letters are listed oldest message first, filtered by message, source,
/// event id, reason text and `after`, and limited.
pub async fn dead_letters_filter_and_page<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let spec = [
        ("github", "a", "decode: bad json"),
        ("github", "b", "handler: timeout"),
        ("stripe", "c", "decode: bad json"),
        ("stripe", "d", "handler: 500"),
        ("github", "e", "handler: timeout"),
    ];
    let mut dead = Vec::new();
    for (source, id, reason) in spec {
        let m = enqueue_new(q, event(source, id, "x")).await;
        let l = lease_one(q).await;
        assert_eq!(l.lease.message, m);
        ok("dead_letter", q.dead_letter(&l.lease, reason).await);
        dead.push(m);
    }
    let alive = enqueue_new(q, event("github", "f", "x")).await;
    let list = |filter: DeadLetterFilter| async move {
        let dl = ok("dead_letters", q.dead_letters(&filter).await);
        dl.iter().map(|d| d.message).collect::<Vec<_>>()
    };
    let [a, b, c, d, e] = [dead[0], dead[1], dead[2], dead[3], dead[4]];
    assert_eq!(list(DeadLetterFilter::all()).await, vec![a, b, c, d, e]);
    assert_eq!(
        list(DeadLetterFilter::all().source("github")).await,
        vec![a, b, e]
    );
    assert_eq!(
        list(DeadLetterFilter::all().source("stripe").event_id("c")).await,
        vec![c]
    );
    assert_eq!(
        list(DeadLetterFilter::all().source("github").event_id("c")).await,
        Vec::<MessageId>::new()
    );
    assert_eq!(
        list(DeadLetterFilter::all().reason_contains("decode")).await,
        vec![a, c]
    );
    assert_eq!(
        list(
            DeadLetterFilter::all()
                .source("stripe")
                .reason_contains("handler")
        )
        .await,
        vec![d]
    );
    assert_eq!(list(DeadLetterFilter::all().after(b)).await, vec![c, d, e]);
    assert_eq!(list(DeadLetterFilter::all().limit(2)).await, vec![a, b]);
    assert_eq!(
        list(DeadLetterFilter::all().after(b).limit(2)).await,
        vec![c, d]
    );
    assert_eq!(list(DeadLetterFilter::message(d)).await, vec![d]);
    assert_eq!(
        list(DeadLetterFilter::message(alive)).await,
        Vec::<MessageId>::new(),
        "a message that is not dead is not a dead letter"
    );
    let reasons = ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await,
    );
    for (dl, (source, id, reason)) in reasons.iter().zip(spec) {
        assert_eq!(
            (dl.event.source.as_str(), dl.event.id.as_str()),
            (source, id)
        );
        assert_eq!(dl.reason, reason);
    }
}

/// Clause 5: replay makes a dead letter ready again with its original bytes, id and
/// source, and the attempt count reset; replaying it again finds nothing.
pub async fn replay_restores_the_original_event<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default().max_attempts(5)).await;
    let q = &*f.queue;
    let original = event("github", "a", "{\"action\":\"opened\"}");
    let id = enqueue_new(q, original.clone()).await;
    for _ in 0..2 {
        let l = lease_one(q).await;
        ok(
            "retry",
            q.retry(&l.lease, f.clock.now_plus(Duration::ZERO), "flaky")
                .await,
        );
    }
    let third = lease_one(q).await;
    assert_eq!(third.attempt, 3);
    ok(
        "dead_letter",
        q.dead_letter(&third.lease, "permanent").await,
    );
    assert_eq!(
        ok(
            "dead_letters",
            q.dead_letters(&DeadLetterFilter::all()).await
        )[0]
        .attempts,
        3
    );
    let replayed = ok("replay", q.replay(&DeadLetterFilter::message(id)).await);
    assert_eq!(replayed, 1);
    assert_eq!(stats(q).await, counts(1, 0, 0, 0));
    assert!(ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await
    )
    .is_empty());
    let again = lease_one(q).await;
    assert_eq!(again.lease.message, id, "replay keeps the message id");
    assert_eq!(
        again.event,
        original.clone().with_origin(crate::store::Origin::Replay),
        "replay keeps the original event (marked as a replay)"
    );
    assert_eq!(again.attempt, 1, "replay resets the attempt count");
    assert_eq!(ok("replay", q.replay(&DeadLetterFilter::all()).await), 0);
    assert_eq!(
        ok("enqueue", q.enqueue(original).await),
        Enqueued::Duplicate(id),
        "a replayed message is held again"
    );
}

/// Clause 5: replay honours the filter and its limit (lowest message ids first).
pub async fn replay_honours_filter_and_limit<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let mut dead = Vec::new();
    for (source, id) in [
        ("github", "a"),
        ("stripe", "b"),
        ("github", "c"),
        ("stripe", "d"),
    ] {
        enqueue_new(q, event(source, id, "x")).await;
        let l = lease_one(q).await;
        ok("dead_letter", q.dead_letter(&l.lease, "broken").await);
        dead.push(l.lease.message);
    }
    assert_eq!(
        ok(
            "replay",
            q.replay(&DeadLetterFilter::all().source("stripe")).await
        ),
        2
    );
    assert_eq!(dead_ids(q).await, vec![dead[0], dead[2]]);
    assert_eq!(
        ok("replay", q.replay(&DeadLetterFilter::all().limit(1)).await),
        1
    );
    assert_eq!(
        dead_ids(q).await,
        vec![dead[2]],
        "the limit replays the oldest first"
    );
    assert_eq!(
        ok(
            "replay",
            q.replay(&DeadLetterFilter::all().source("nobody")).await
        ),
        0
    );
    assert_eq!(ok("replay", q.replay(&DeadLetterFilter::all()).await), 1);
    assert_eq!(stats(q).await, counts(4, 0, 0, 0));
}

/// Clause 6: stats count ready (including expired leases), leased, scheduled and dead.
pub async fn stats_count_each_state<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let hour = Duration::from_secs(3600);
    assert_eq!(stats(q).await, QueueStats::default());
    enqueue_new(q, event("github", "expiring", "x")).await;
    assert_eq!(
        ok("lease", q.lease(1, Duration::from_secs(10)).await).len(),
        1
    );
    enqueue_new(q, event("github", "leased", "x")).await;
    assert_eq!(ok("lease", q.lease(1, hour).await).len(), 1);
    enqueue_new(q, event("github", "scheduled", "x")).await;
    let s = ok("lease", q.lease(1, hour).await);
    ok(
        "retry",
        q.retry(&s[0].lease, f.clock.now_plus(hour), "later").await,
    );
    enqueue_new(q, event("github", "dead", "x")).await;
    let d = ok("lease", q.lease(1, hour).await);
    ok("dead_letter", q.dead_letter(&d[0].lease, "bad").await);
    enqueue_new(q, event("github", "ready-1", "x")).await;
    enqueue_new(q, event("github", "ready-2", "x")).await;
    assert_eq!(stats(q).await, counts(2, 2, 1, 1));
    f.clock.advance(Duration::from_secs(11));
    let s = stats(q).await;
    assert_eq!(s, counts(3, 1, 1, 1), "an expired lease counts as ready");
    assert_eq!(s.depth(), 5);
}

/// Clause 1: at the depth limit a new event is refused with `Full` and nothing is stored;
/// duplicates are still recognised; dead letters do not count; settling makes room.
pub async fn depth_limit_refuses_new_events<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default().max_depth(3)).await;
    let q = &*f.queue;
    let a = enqueue_new(q, event("github", "a", "x")).await;
    enqueue_new(q, event("github", "b", "x")).await;
    enqueue_new(q, event("github", "c", "x")).await;
    match q.enqueue(event("github", "d", "x")).await {
        Err(StoreError::Full { depth }) => assert_eq!(depth, 3, "Full reports the depth"),
        other => panic!("enqueue at the depth limit must fail with Full, got {other:?}"),
    }
    assert_eq!(
        stats(q).await,
        counts(3, 0, 0, 0),
        "a refused event must not be stored"
    );
    assert_eq!(
        ok("enqueue", q.enqueue(event("github", "a", "x")).await),
        Enqueued::Duplicate(a),
        "a duplicate at the limit is still a duplicate"
    );
    let batch = lease(q, 3).await;
    assert_eq!(batch.len(), 3);
    assert!(
        batch.iter().all(|l| l.event.id.as_str() != "d"),
        "the refused event must not be leasable"
    );
    ok("dead_letter", q.dead_letter(&batch[0].lease, "bad").await);
    enqueue_new(q, event("github", "d", "x")).await;
    assert!(
        matches!(
            q.enqueue(event("github", "e", "x")).await,
            Err(StoreError::Full { .. })
        ),
        "the limit counts leased messages"
    );
    ok("ack", q.ack(&batch[1].lease).await);
    enqueue_new(q, event("github", "e", "x")).await;
    assert_eq!(stats(q).await, counts(2, 1, 0, 1));
}

/// `check_writable` answers `Ok` on a working store, alone and among concurrent enqueues,
/// and changes nothing anyone can see: no message, count, dead letter or log entry, and the
/// events around it are stored, leased and settled as usual.
pub async fn check_writable_answers_ok_and_changes_nothing<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    ok("check_writable on an empty store", q.check_writable().await);
    assert_eq!(
        stats(q).await,
        counts(0, 0, 0, 0),
        "a probe must store no message"
    );
    let first = enqueue_new(q, event("github", "before", "1")).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let q = Arc::clone(&f.queue);
            tokio::spawn(async move {
                if i % 2 == 0 {
                    q.check_writable().await.map(|()| None)
                } else {
                    q.enqueue(event("github", &format!("beside-{i}"), "2"))
                        .await
                        .map(Some)
                }
            })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        match t.await.expect("task panicked") {
            Ok(Some(Enqueued::New(_))) => stored += 1,
            Ok(None) => {}
            other => panic!("a probe or an enqueue beside it failed: {other:?}"),
        }
    }
    assert_eq!(stored, 4);
    ok("check_writable", q.check_writable().await);
    assert_eq!(
        stats(q).await,
        counts(5, 0, 0, 0),
        "probes must not add or remove messages"
    );
    let log = ok(
        "the event log's counts",
        crate::store::EventLog::counts(q, &crate::store::EventFilter::all()).await,
    );
    assert_eq!(log.total(), 5, "probes must not appear in the event log");
    let batch = lease(q, 10).await;
    assert_eq!(batch.len(), 5, "only the enqueued events are leased");
    assert!(batch.iter().any(|l| l.lease.message == first));
    for l in &batch {
        ok("ack", q.ack(&l.lease).await);
    }
    ok("check_writable after acks", q.check_writable().await);
    assert_eq!(stats(q).await, counts(0, 0, 0, 0));
    assert!(dead_ids(q).await.is_empty(), "probes must not dead-letter");
}

/// Clauses 1 and 2 across a restart (persistent backends only): every acknowledged change
/// is still there after the queue is closed and opened again, live lease tokens stay
/// current, and new tokens and message ids do not repeat old ones.
pub async fn stored_state_survives_reopen<H: StoreHarness>(h: &H) {
    if !h.persistent() {
        return;
    }
    let options = QueueOptions::default().max_attempts(3);
    let f = fixture(h, options).await;
    let q = &*f.queue;
    let originals: Vec<RawEvent> = ["leased", "scheduled", "dead", "ready"]
        .iter()
        .map(|id| event("github", id, &format!("body of {id}")))
        .collect();
    let mut msgs = Vec::new();
    for e in &originals {
        msgs.push(enqueue_new(q, e.clone()).await);
    }
    let leased = lease_one(q).await;
    let scheduled = lease_one(q).await;
    let later = f.clock.now_plus(Duration::from_secs(3600));
    ok("retry", q.retry(&scheduled.lease, later, "try later").await);
    let dead = lease_one(q).await;
    ok("dead_letter", q.dead_letter(&dead.lease, "nope").await);
    assert_eq!(
        ids(&[leased.clone(), scheduled.clone(), dead.clone()]),
        msgs[..3].to_vec()
    );

    let f = f.reopen(h).await;
    let (q, clock) = (&*f.queue, f.clock.clone());

    assert_eq!(
        stats(q).await,
        counts(1, 1, 1, 1),
        "counts must survive a reopen"
    );
    for (e, m) in originals.iter().zip(&msgs) {
        assert_eq!(
            ok("enqueue", q.enqueue(e.clone()).await),
            Enqueued::Duplicate(*m),
            "held events must still be known after a reopen"
        );
    }
    let dl = ok(
        "dead_letters",
        q.dead_letters(&DeadLetterFilter::all()).await,
    );
    assert_eq!(dl.len(), 1);
    assert_eq!((dl[0].message, dl[0].reason.as_str()), (msgs[2], "nope"));
    let ready = lease_one(q).await;
    assert_eq!(ready.lease.message, msgs[3]);
    assert_eq!(
        ready.event, originals[3],
        "the stored event must survive a reopen"
    );
    let extended = ok(
        "extend with a token from before the reopen",
        q.extend(&leased.lease, LEASE).await,
    );
    ok(
        "ack with a token from before the reopen",
        q.ack(&extended).await,
    );
    ok("ack", q.ack(&ready.lease).await);
    clock.advance(Duration::from_secs(3600));
    let retried = lease_one(q).await;
    assert_eq!(retried.lease.message, msgs[1]);
    assert_eq!(retried.attempt, 2);
    assert_eq!(retried.last_error.as_deref(), Some("try later"));
    assert_ne!(
        retried.lease.token, scheduled.lease.token,
        "a new lease must not repeat the message's old token"
    );
    assert_lease_lost(
        "ack with the retried message's old token",
        q.ack(&scheduled.lease).await,
    );
    let e = enqueue_new(q, event("github", "new", "x")).await;
    assert!(
        !msgs.contains(&e),
        "message ids must not be reused after a reopen"
    );
}
}
