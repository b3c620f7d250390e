//! The ordering conformance suite: one check per promise of the
//! [ordering contract](crate::ordering) (clause 8 of the
//! [queue contract](crate::store#the-queue-contract)).
//!
//! Each check is a plain `async fn` taking a [`StoreHarness`];
//! [`store_conformance!`](crate::store_conformance) expands all of them into tests.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::queue_suite::{counts, enqueue_new, event, fixture, lease, ok, stats};
use super::suite::suite;
use super::{ClockExt, StoreHarness};
use crate::event::RawEvent;
use crate::ordering::OrderingKey;
use crate::store::{
    DeadLetterFilter, EventLog, EventStatus, KeyPart, Leased, MessageId, Queue, QueueOptions,
    StoreError,
};

const PAST_LEASE: Duration = Duration::from_secs(31);

/// Per key, the (position, watermark) of each event applied, in the order applied.
type Applied = HashMap<String, Vec<(i64, Option<i64>)>>;

/// An event of `key` at `position` (none if `None`), id `{key}@{position}` unless given.
fn keyed(source: &str, key: &str, position: Option<i64>) -> RawEvent {
    let id = match position {
        Some(p) => format!("{key}@{p}"),
        None => format!("{key}@{}", fastrand::u64(..)),
    };
    let ordering = match position {
        Some(p) => OrderingKey::new(key).version(p),
        None => OrderingKey::new(key),
    };
    event(source, &id, "{}").with_ordering(ordering)
}

/// The ids of a batch, as `key@position` strings, sorted.
fn names(batch: &[Leased]) -> Vec<String> {
    let mut v: Vec<String> = batch.iter().map(|l| l.event.id.to_string()).collect();
    v.sort();
    v
}

async fn lease_names(q: &impl Queue, max: usize) -> (Vec<Leased>, Vec<String>) {
    let batch = lease(q, max).await;
    let n = names(&batch);
    (batch, n)
}

async fn status(q: &impl EventLog, source: &str, id: &str) -> EventStatus {
    match ok("get", q.get(source, id).await) {
        Some(logged) => logged.entry.status,
        None => panic!("{source}/{id} is not in the event log"),
    }
}

suite! {
$ __ordering_checks, ordering_suite;

/// Promises 1 and 2: one event of a key at a time, the first by position, whatever the
/// arrival order; the others count as scheduled; each ack lets the next one run and moves
/// the watermark.
pub async fn one_at_a_time_in_position_order<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    for p in [30, 10, 20] {
        enqueue_new(q, keyed("stripe", "cus_a", Some(p))).await;
    }
    enqueue_new(q, keyed("stripe", "cus_b", Some(5))).await;
    enqueue_new(q, event("stripe", "plain", "{}")).await;
    assert_eq!(
        stats(q).await,
        counts(3, 0, 2, 0),
        "a key's first event and unkeyed ones are ready; the rest of the key is scheduled"
    );
    let (batch, got) = lease_names(q, 10).await;
    assert_eq!(got, ["cus_a@10", "cus_b@5", "plain"], "one per key, the first by position");
    assert!(batch.iter().all(|l| l.watermark.is_none()), "no ack yet: no watermark");
    assert!(lease(q, 10).await.is_empty(), "nothing else of a leased key is handed out");
    for l in &batch {
        ok("ack", q.ack(&l.lease).await);
    }
    let (batch, got) = lease_names(q, 10).await;
    assert_eq!(got, ["cus_a@20"], "the ack let the key's next event run");
    assert_eq!(batch[0].watermark, Some(10), "the watermark is the position acked");
    ok("ack", q.ack(&batch[0].lease).await);
    let (batch, got) = lease_names(q, 10).await;
    assert_eq!((got.as_slice(), batch[0].watermark), (&["cus_a@30".to_owned()][..], Some(20)));
    ok("ack", q.ack(&batch[0].lease).await);
    assert_eq!(stats(q).await, counts(0, 0, 0, 0));
}

/// Promise 2: without positions, a key's events run one at a time in arrival order; the
/// same key in another source is another key.
pub async fn without_positions_arrival_order<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let mut ids = Vec::new();
    for i in 0..4 {
        let e = event("github", &format!("d{i}"), "{}").with_ordering(OrderingKey::new("repo/1"));
        ids.push(enqueue_new(q, e).await);
    }
    let other = event("gitlab", "d0", "{}").with_ordering(OrderingKey::new("repo/1"));
    let other = enqueue_new(q, other).await;
    let mut order = Vec::new();
    loop {
        let batch = lease(q, 10).await;
        if batch.is_empty() {
            break;
        }
        let github: Vec<&Leased> = batch.iter().filter(|l| l.event.source == "github").collect();
        assert!(github.len() <= 1, "two events of one key leased at once: {:?}", names(&batch));
        for l in &batch {
            order.push(l.lease.message);
            ok("ack", q.ack(&l.lease).await);
        }
    }
    let github: Vec<MessageId> = order.iter().copied().filter(|m| *m != other).collect();
    assert_eq!(github, ids, "arrival order within the key");
    assert!(order.contains(&other), "the other source's key runs on its own");
}

/// Promise 3: a late arrival with an earlier position goes first while its key's first event
/// waits; once the first is leased, the newcomer waits and then runs stale; skipping it
/// settles it as stale without moving the watermark.
pub async fn late_arrivals_and_stale_skips<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, keyed("paddle", "sub_1", Some(20))).await;
    enqueue_new(q, keyed("paddle", "sub_1", Some(10))).await;
    let (batch, got) = lease_names(q, 10).await;
    assert_eq!(got, ["sub_1@10"], "the late arrival with the earlier position goes first");
    ok("ack", q.ack(&batch[0].lease).await);
    let (thirty, _) = lease_names(q, 10).await;
    assert_eq!(names(&thirty), ["sub_1@20"]);
    // While 20 is leased, 15 arrives: it cannot go first any more.
    enqueue_new(q, keyed("paddle", "sub_1", Some(15))).await;
    assert!(lease(q, 10).await.is_empty(), "the key is busy");
    ok("ack", q.ack(&thirty[0].lease).await);
    let (stale, got) = lease_names(q, 10).await;
    assert_eq!(got, ["sub_1@15"]);
    assert_eq!(stale[0].watermark, Some(20));
    assert!(stale[0].is_stale(), "older than the watermark: stale");
    ok("skip", q.skip(&stale[0].lease, "stale: older than position 20").await);
    assert_eq!(status(q, "paddle", "sub_1@15").await, EventStatus::Stale);
    assert_eq!(status(q, "paddle", "sub_1@20").await, EventStatus::Succeeded);
    assert!(
        matches!(q.enqueue(keyed("paddle", "sub_1", Some(15))).await, Ok(crate::store::Enqueued::Duplicate(_))),
        "a skipped event stays known"
    );
    enqueue_new(q, keyed("paddle", "sub_1", Some(25))).await;
    let (next, _) = lease_names(q, 10).await;
    assert_eq!(next[0].watermark, Some(20), "a skip does not move the watermark");
    assert!(!next[0].is_stale());
}

/// Promise 2: a retry holds the key (nothing overtakes the failed event); a dead letter
/// releases it; a replayed dead letter rejoins the order and runs stale after newer acks.
pub async fn retry_holds_and_dead_letter_releases<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, keyed("square", "pay_1", Some(1))).await;
    enqueue_new(q, keyed("square", "pay_1", Some(2))).await;
    let (first, _) = lease_names(q, 10).await;
    let later = f.clock.now_plus(Duration::from_secs(60));
    ok("retry", q.retry(&first[0].lease, later, "upstream 502").await);
    assert!(lease(q, 10).await.is_empty(), "version 2 must not overtake version 1's retry");
    assert_eq!(stats(q).await, counts(0, 0, 2, 0));
    f.clock.advance(Duration::from_secs(60));
    let (again, got) = lease_names(q, 10).await;
    assert_eq!((got.as_slice(), again[0].attempt), (&["pay_1@1".to_owned()][..], 2));
    ok("dead", q.dead_letter(&again[0].lease, "gave up").await);
    let (second, got) = lease_names(q, 10).await;
    assert_eq!(got, ["pay_1@2"], "a dead letter does not hold its key");
    ok("ack", q.ack(&second[0].lease).await);
    assert_eq!(ok("replay", q.replay(&DeadLetterFilter::all()).await), 1);
    let (replayed, got) = lease_names(q, 10).await;
    assert_eq!(got, ["pay_1@1"]);
    assert!(replayed[0].is_stale(), "replayed after version 2 was applied: stale");
}

/// Promise 1 with expiry: a live lease holds its key; once it expires the key's first event
/// by position runs, which is an earlier one that arrived meanwhile.
pub async fn expired_lease_gives_way_in_order<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, keyed("shopify", "order_9", Some(2))).await;
    let (held, _) = lease_names(q, 10).await;
    enqueue_new(q, keyed("shopify", "order_9", Some(1))).await;
    assert!(lease(q, 10).await.is_empty(), "a live lease holds the key");
    f.clock.advance(PAST_LEASE);
    let (next, got) = lease_names(q, 10).await;
    assert_eq!(got, ["order_9@1"], "the earlier event goes first once the lease expired");
    assert!(
        matches!(q.ack(&held[0].lease).await, Ok(()) | Err(StoreError::LeaseLost)),
        "settling an expired lease may succeed or be fenced"
    );
    ok("ack", q.ack(&next[0].lease).await);
    let rest = lease(q, 10).await;
    let pending: usize = rest.len();
    assert!(pending <= 1, "at most one of the key at a time");
}

/// Promise 1 under concurrency: many leasers over many keys never hold two events of one
/// key at once, apply each key's events in position order, and see its watermark only grow.
pub async fn concurrent_leasers_keep_keys_exclusive_and_ordered<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    const KEYS: i64 = 20;
    const PER_KEY: i64 = 12;
    let mut all: Vec<(i64, i64)> = (0..KEYS).flat_map(|k| (0..PER_KEY).map(move |p| (k, p))).collect();
    fastrand::shuffle(&mut all);
    for (k, p) in &all {
        enqueue_new(&*f.queue, keyed("stripe", &format!("k{k}"), Some(*p))).await;
    }
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let applied: Arc<Mutex<Applied>> = Arc::default();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (q, running, applied) = (Arc::clone(&f.queue), Arc::clone(&running), Arc::clone(&applied));
            tokio::spawn(async move {
                let mut idle = 0;
                while idle < 50 {
                    let batch = q.lease(3, Duration::from_secs(600)).await?;
                    if batch.is_empty() {
                        idle += 1;
                        tokio::task::yield_now().await;
                        continue;
                    }
                    idle = 0;
                    for l in batch {
                        let ordering = l.event.ordering.clone().expect("keyed");
                        let key = ordering.key().to_owned();
                        assert!(running.lock().unwrap().insert(key.clone()), "two leases of {key} at once");
                        tokio::task::yield_now().await;
                        applied.lock().unwrap().entry(key.clone()).or_default().push((ordering.position().unwrap_or(-1), l.watermark));
                        running.lock().unwrap().remove(&key);
                        q.ack(&l.lease).await?;
                    }
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for t in tasks {
        ok("leaser", t.await.expect("a leaser panicked (two leases of one key?)"));
    }
    let applied = applied.lock().unwrap();
    assert_eq!(applied.len(), KEYS as usize);
    for (key, runs) in applied.iter() {
        let positions: Vec<i64> = runs.iter().map(|r| r.0).collect();
        assert_eq!(positions, (0..PER_KEY).collect::<Vec<_>>(), "{key}: applied out of order");
        let marks: Vec<Option<i64>> = runs.iter().map(|r| r.1).collect();
        assert!(marks.windows(2).all(|w| w[0] <= w[1]), "{key}: the watermark moved back: {marks:?}");
        assert_eq!(marks[0], None);
        assert_eq!(marks[PER_KEY as usize - 1], Some(PER_KEY - 2));
    }
}

/// The key rules apply to the ordering key: refused with the part named, nothing stored.
pub async fn ordering_keys_follow_the_key_rules<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    for bad in ["", "a\u{0}b", &"k".repeat(crate::store::key::MAX_ORDERING_KEY_LEN + 1)] {
        let e = event("github", "bad-key", "{}").with_ordering(OrderingKey::new(bad));
        match q.enqueue(e).await {
            Err(StoreError::Invalid(invalid)) => assert_eq!(invalid.part(), KeyPart::OrderingKey),
            other => panic!("ordering key {bad:?}: expected Invalid, got {other:?}"),
        }
    }
    assert_eq!(stats(q).await, counts(0, 0, 0, 0), "nothing stored");
}

/// Promises 1, 2 and 4 survive a reopen: a leased key stays held until its lease expires,
/// waiting events keep their order, and the watermark is kept.
pub async fn order_and_watermark_survive_reopen<H: StoreHarness>(h: &H) {
    if !h.persistent() {
        return;
    }
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    for p in [3, 1, 2] {
        enqueue_new(q, keyed("stripe", "cus_r", Some(p))).await;
    }
    let (first, _) = lease_names(q, 10).await;
    ok("ack", q.ack(&first[0].lease).await);
    let (held, got) = lease_names(q, 10).await;
    assert_eq!(got, ["cus_r@2"]);
    let f = f.reopen(h).await;
    let q = &*f.queue;
    assert!(lease(q, 10).await.is_empty(), "the live lease still holds its key after a reopen");
    f.clock.advance(PAST_LEASE);
    let (again, got) = lease_names(q, 10).await;
    assert_eq!(got, ["cus_r@2"]);
    assert_eq!(again[0].watermark, Some(1), "the watermark survives a reopen");
    assert_ne!(again[0].lease.token, held[0].lease.token);
    ok("ack", q.ack(&again[0].lease).await);
    let (last, got) = lease_names(q, 10).await;
    assert_eq!((got.as_slice(), last[0].watermark), (&["cus_r@3".to_owned()][..], Some(2)));
}
}
