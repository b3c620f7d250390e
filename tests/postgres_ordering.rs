//! Per-key ordering on PostgreSQL across processes: two separate [`PgStore`]s on one
//! database (each with its own pool and batchers, as two processes would have) lease and
//! ack concurrently over many keys. The shared ordering suite runs in
//! `postgres_conformance.rs`.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookdock::ordering::OrderingKey;
use hookdock::store::{Enqueued, Queue, QueueOptions};
use hookdock::{RawEvent, StoreError};
use postgres_support::start_time;

const KEYS: i64 = 24;
const PER_KEY: i64 = 10;

/// Per key, the (position, watermark) of each event handled, in the order handled.
type Applied = HashMap<String, Vec<(i64, Option<i64>)>>;

fn keyed(key: i64, position: i64) -> RawEvent {
    RawEvent::new(
        "stripe",
        format!("k{key}@{position}"),
        start_time(),
        format!("{{\"k\":{key},\"p\":{position}}}"),
    )
    .with_ordering(OrderingKey::new(format!("k{key}")).version(position))
}

#[tokio::test]
async fn two_processes_never_hold_one_key_at_once_and_keep_its_order() {
    let db = test_db!("ordering_two_processes");
    let other = db.another_process().await;
    let queues: Vec<Arc<dyn Queue>> = vec![
        Arc::new(db.store.queue(QueueOptions::default())),
        Arc::new(other.queue(QueueOptions::default())),
    ];
    // Enqueued from both processes at once, each key's positions in a shuffled order.
    let mut all: Vec<(i64, i64)> = (0..KEYS)
        .flat_map(|k| (0..PER_KEY).map(move |p| (k, p)))
        .collect();
    fastrand::shuffle(&mut all);
    let enqueues: Vec<_> = all
        .chunks(all.len() / 4)
        .enumerate()
        .map(|(i, chunk)| {
            let q = Arc::clone(&queues[i % 2]);
            let chunk = chunk.to_vec();
            tokio::spawn(async move {
                for (k, p) in chunk {
                    assert!(matches!(q.enqueue(keyed(k, p)).await?, Enqueued::New(_)));
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for t in enqueues {
        t.await.expect("an enqueuer panicked").expect("enqueue");
    }
    // Keys whose event is being handled, shared by every leaser of both processes.
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let applied: Arc<Mutex<Applied>> = Arc::default();
    let leasers: Vec<_> = (0..6)
        .map(|i| {
            let q = Arc::clone(&queues[i % 2]);
            let (running, applied) = (Arc::clone(&running), Arc::clone(&applied));
            tokio::spawn(async move {
                let mut idle = 0;
                while idle < 100 {
                    let batch = q.lease(4, Duration::from_secs(600)).await?;
                    if batch.is_empty() {
                        idle += 1;
                        tokio::task::yield_now().await;
                        continue;
                    }
                    idle = 0;
                    let mut keys = HashSet::new();
                    for l in &batch {
                        let key = l.event.ordering.as_ref().expect("keyed").key().to_owned();
                        assert!(keys.insert(key.clone()), "one batch holds {key} twice");
                        assert!(
                            running.lock().unwrap().insert(key.clone()),
                            "two live leases of {key} at once"
                        );
                    }
                    tokio::task::yield_now().await;
                    for l in batch {
                        let ordering = l.event.ordering.clone().expect("keyed");
                        let key = ordering.key().to_owned();
                        applied
                            .lock()
                            .unwrap()
                            .entry(key.clone())
                            .or_default()
                            .push((ordering.position().unwrap_or(-1), l.watermark));
                        // Released before the ack: once acked, the next one may be leased.
                        running.lock().unwrap().remove(&key);
                        q.ack(&l.lease).await?;
                    }
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for t in leasers {
        t.await
            .expect("a leaser panicked (two leases of one key?)")
            .expect("lease or ack");
    }
    let applied = applied.lock().unwrap().clone();
    assert_eq!(applied.len(), KEYS as usize, "every key was handled");
    for (key, runs) in applied.iter() {
        let positions: Vec<i64> = runs.iter().map(|r| r.0).collect();
        assert_eq!(
            positions,
            (0..PER_KEY).collect::<Vec<_>>(),
            "{key}: handled out of position order"
        );
        let marks: Vec<Option<i64>> = runs.iter().map(|r| r.1).collect();
        assert!(
            marks.windows(2).all(|w| w[0] <= w[1]),
            "{key}: the watermark moved back: {marks:?}"
        );
        assert_eq!(marks[0], None, "{key}: no watermark before the first ack");
        assert_eq!(marks[PER_KEY as usize - 1], Some(PER_KEY - 2));
    }
    let stats = queues[0].stats().await.expect("stats");
    assert_eq!(
        (stats.ready, stats.scheduled, stats.leased),
        (0, 0, 0),
        "all handled"
    );
    db.cleanup().await;
}
