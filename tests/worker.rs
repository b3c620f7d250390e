//! The worker and the dedupe layer over the memory queue and store, with a fake clock.
//!
//! Every test counts *effects* (what a handler applied, keyed by event id), not calls: the
//! promise is that each event's effect happens once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hookdock::store::{
    Claim, DeadLetter, DeadLetterFilter, DeadLetters, Durability, Enqueued, Fingerprint,
    IdempotencyKey, IdempotencyStore, Lease, Leased, MemoryIdempotencyStore, MemoryQueue,
    MemoryStore, Queue, QueueOptions, QueueStats,
};
use hookdock::testing::FakeClock;
use hookdock::worker::{
    DecodeJsonLayer, DedupeLayer, Event, HandlerError, RetryPolicy, Worker, SHUTDOWN_REASON,
};
use hookdock::{RawEvent, StoreError};
use tokio::sync::Notify;
use tower::{service_fn, Layer};

const START: u64 = 1_700_000_000;

/// What the handlers under test applied, by event id.
#[derive(Clone, Default)]
struct Effects(Arc<Mutex<HashMap<String, u32>>>);

impl Effects {
    fn apply(&self, event: &Event<impl Sized>) {
        *self
            .0
            .lock()
            .unwrap()
            .entry(event.id().to_string())
            .or_default() += 1;
    }

    fn of(&self, id: &str) -> u32 {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
}

struct Fixture {
    clock: FakeClock,
    queue: Arc<MemoryQueue>,
    store: Arc<MemoryIdempotencyStore>,
    effects: Effects,
    calls: Arc<AtomicU32>,
}

impl Fixture {
    fn new() -> Self {
        Self::with_options(QueueOptions::default())
    }

    fn with_options(options: QueueOptions) -> Self {
        let clock = FakeClock::at_unix(START);
        let store = MemoryStore::new().with_clock(clock.clone());
        Self {
            queue: Arc::new(store.queue(options)),
            store: Arc::new(store.idempotency()),
            clock,
            effects: Effects::default(),
            calls: Arc::new(AtomicU32::new(0)),
        }
    }

    fn event(&self, id: &str, body: &'static str) -> RawEvent {
        RawEvent::new("github", id, self.clock.now_for_test(), body)
    }

    async fn deliver(&self, id: &str, body: &'static str) -> Enqueued {
        self.queue.enqueue(self.event(id, body)).await.unwrap()
    }

    fn worker_builder(&self) -> hookdock::worker::WorkerBuilder {
        self.worker_builder_on(self.queue.clone())
    }

    /// A builder over another queue sharing this fixture's dedupe store (as a second
    /// receiver with a queue of its own would).
    fn worker_builder_on(&self, queue: impl Queue) -> hookdock::worker::WorkerBuilder {
        Worker::builder(queue)
            .dedupe(self.store.clone())
            .clock(self.clock.clone())
            .retry_policy(
                RetryPolicy::builder()
                    .initial(Duration::from_secs(10))
                    .max(Duration::from_secs(60))
                    .build()
                    .unwrap(),
            )
    }

    /// A worker whose handler applies the effect unless `fail` says otherwise for this call.
    fn worker<F>(&self, fail: F) -> Worker
    where
        F: Fn(&Event, u32) -> Option<HandlerError> + Send + Sync + 'static,
    {
        self.worker_on(self.queue.clone(), fail)
    }

    /// The same, over another queue sharing this fixture's dedupe store.
    fn worker_on<F>(&self, queue: impl Queue, fail: F) -> Worker
    where
        F: Fn(&Event, u32) -> Option<HandlerError> + Send + Sync + 'static,
    {
        let (effects, calls, fail) = (self.effects.clone(), self.calls.clone(), Arc::new(fail));
        self.worker_builder_on(queue)
            .build(service_fn(move |event: Event| {
                let (effects, calls, fail) = (effects.clone(), calls.clone(), fail.clone());
                async move {
                    let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(error) = fail(&event, call) {
                        return Err(error);
                    }
                    effects.apply(&event);
                    Ok(())
                }
            }))
            .unwrap()
    }

    async fn stats(&self) -> QueueStats {
        self.queue.stats().await.unwrap()
    }

    async fn dead(&self) -> Vec<DeadLetter> {
        self.queue
            .dead_letters(&DeadLetterFilter::all())
            .await
            .unwrap()
    }
}

trait NowForTest {
    fn now_for_test(&self) -> SystemTime;
}

impl NowForTest for FakeClock {
    fn now_for_test(&self) -> SystemTime {
        hookdock::Clock::now(self)
    }
}

#[tokio::test]
async fn same_event_delivered_three_times_is_applied_once() {
    let f = Fixture::new();
    let worker = f.worker(|_, _| None);
    for delivery in 1..=3 {
        // Each delivery after the first arrives after the previous one was handled and acked:
        // the store still knows the key, so it is a duplicate and nothing is leased.
        let enqueued = f.deliver("d-1", "{}").await;
        assert_eq!(matches!(enqueued, Enqueued::New(_)), delivery == 1);
        let report = worker.run_until_idle().await.unwrap();
        assert_eq!(report.leased, u64::from(delivery == 1));
        assert_eq!(report.succeeded, u64::from(delivery == 1));
    }
    // The same event stored by a second queue (another receiver) sharing the dedupe store:
    // stored there as new, it meets the completed claim and is acked without running.
    let other = MemoryQueue::new();
    let second = f.worker_on(other.clone(), |_, _| None);
    assert!(matches!(
        other.enqueue(f.event("d-1", "{}")).await.unwrap(),
        Enqueued::New(_)
    ));
    let report = second.run_until_idle().await.unwrap();
    assert_eq!((report.leased, report.duplicates), (1, 1));
    assert_eq!(f.effects.of("d-1"), 1);
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    assert_eq!(f.stats().await.depth(), 0);
    assert_eq!(other.stats().await.unwrap().depth(), 0);
}

#[tokio::test]
async fn retryable_failure_is_retried_on_schedule_and_applied_once() {
    let f = Fixture::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let worker = f.worker(move |event, call| {
        seen2
            .lock()
            .unwrap()
            .push((event.attempt(), event.last_error().map(str::to_owned)));
        (call == 1).then(|| HandlerError::retry(std::io::Error::other("downstream timed out")))
    });
    f.deliver("d-1", "{}").await;

    let first = worker.run_once().await.unwrap();
    assert_eq!(first.retried, 1);
    assert_eq!(f.effects.of("d-1"), 0);
    assert_eq!(f.stats().await.scheduled, 1);
    // Not before its retry time: the first ceiling is 10 s.
    assert_eq!(worker.run_until_idle().await.unwrap().leased, 0);

    f.clock.advance(Duration::from_secs(10));
    let second = worker.run_until_idle().await.unwrap();
    assert_eq!(second.succeeded, 1);
    assert_eq!(f.effects.of("d-1"), 1);
    assert_eq!(f.stats().await.depth(), 0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], (1, None));
    assert_eq!(seen[1].0, 2);
    let recorded = seen[1].1.as_deref().unwrap_or_default();
    assert!(recorded.contains("downstream timed out"), "{recorded}");
}

#[tokio::test]
async fn requested_retry_delay_is_honoured() {
    let f = Fixture::new();
    let worker = f.worker(|_, call| {
        (call == 1)
            .then(|| HandlerError::retry("rate limited").retry_after(Duration::from_secs(45)))
    });
    f.deliver("d-1", "{}").await;
    assert_eq!(worker.run_once().await.unwrap().retried, 1);
    f.clock.advance(Duration::from_secs(44));
    assert_eq!(worker.run_until_idle().await.unwrap().leased, 0);
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(worker.run_until_idle().await.unwrap().succeeded, 1);
    assert_eq!(f.effects.of("d-1"), 1);
}

#[tokio::test]
async fn permanent_failure_is_dead_lettered_then_replayed_after_the_fix_and_applied_once() {
    let f = Fixture::new();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = broken.clone();
    let worker = f.worker(move |_, _| {
        flag.load(Ordering::SeqCst)
            .then(|| HandlerError::permanent("customer cus_42 does not exist"))
    });
    f.deliver("d-1", r#"{"customer":"cus_42"}"#).await;

    let report = worker.run_until_idle().await.unwrap();
    assert_eq!(report.dead_lettered, 1);
    assert_eq!(f.effects.total(), 0);
    let admin = DeadLetters::new(f.queue.clone());
    let dead = admin.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, "d-1");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(
        dead[0].reason,
        "permanent failure: customer cus_42 does not exist"
    );

    // Dead letters are never leased on their own.
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(worker.run_until_idle().await.unwrap().leased, 0);

    // Fix the handler, replay: the event keeps its bytes and id and goes through dedupe
    // again, whose claim the permanent failure released.
    broken.store(false, Ordering::SeqCst);
    assert!(admin.replay_one(dead[0].message).await.unwrap());
    let report = worker.run_until_idle().await.unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(f.effects.of("d-1"), 1);
    assert!(f.dead().await.is_empty());

    // A late duplicate from the provider changes nothing: the store still knows it.
    assert!(matches!(
        f.deliver("d-1", r#"{"customer":"cus_42"}"#).await,
        Enqueued::Duplicate(_)
    ));
    assert_eq!(worker.run_until_idle().await.unwrap().leased, 0);
    assert_eq!(f.effects.of("d-1"), 1);
    // Replaying an event that is no longer dead does nothing.
    assert!(!admin.replay_one(dead[0].message).await.unwrap());
}

#[tokio::test]
async fn replay_by_filter_and_all() {
    let f = Fixture::new();
    let worker = f.worker(|_, _| Some(HandlerError::permanent("nope")));
    for id in ["a", "b", "c"] {
        f.deliver(id, "{}").await;
    }
    f.queue
        .enqueue(RawEvent::new("stripe", "s", f.clock.now_for_test(), "{}"))
        .await
        .unwrap();
    assert_eq!(worker.run_until_idle().await.unwrap().dead_lettered, 4);
    let admin = worker.dead_letters();
    assert_eq!(
        admin
            .replay(&DeadLetterFilter::all().source("stripe"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(f.stats().await.ready, 1);
    assert_eq!(admin.replay_all().await.unwrap(), 3);
    assert_eq!(f.stats().await.ready, 4);
    assert_eq!(f.stats().await.dead, 0);
}

#[tokio::test]
async fn a_panicking_handler_is_caught_and_retried() {
    let f = Fixture::new();
    let worker = f.worker(|_, call| {
        if call == 1 {
            panic!("bug in handler");
        }
        None
    });
    f.deliver("d-1", "{}").await;
    let report = worker.run_once().await.unwrap();
    assert_eq!(report.retried, 1);
    assert_eq!(worker.stats().panicked, 1);
    assert_eq!(f.effects.of("d-1"), 0);

    f.clock.advance(Duration::from_secs(60));
    let leased = f.queue.lease(1, Duration::from_secs(30)).await.unwrap();
    let recorded = leased[0].last_error.clone().unwrap_or_default();
    assert!(
        recorded.contains("handler panicked: bug in handler"),
        "{recorded}"
    );
    f.queue
        .retry(&leased[0].lease, f.clock.now_for_test(), &recorded)
        .await
        .unwrap();

    assert_eq!(worker.run_until_idle().await.unwrap().succeeded, 1);
    assert_eq!(f.effects.of("d-1"), 1);
}

#[tokio::test]
async fn retryable_failure_on_the_last_attempt_is_dead_lettered() {
    let f = Fixture::with_options(QueueOptions::default().max_attempts(3));
    let worker = f.worker(|_, _| Some(HandlerError::retry("still down")));
    f.deliver("d-1", "{}").await;
    for _ in 0..3 {
        worker.run_until_idle().await.unwrap();
        f.clock.advance(Duration::from_secs(60));
    }
    let dead = f.dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(
        dead[0].reason,
        "retryable failure: still down (attempt 3 of 3: no attempts left)"
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn in_progress_elsewhere_is_deferred_until_the_claim_expires() {
    let f = Fixture::new();
    // Another worker (sharing the store) holds a live claim on the event for 90 s.
    let key = IdempotencyKey::new("github", "d-1");
    let claim = f
        .store
        .claim(&key, &Fingerprint::of(b"{}"), Duration::from_secs(90))
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Acquired(_)));
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let worker = f.worker(move |event, _| {
        seen.lock().unwrap().push(event.attempt());
        None
    });
    f.deliver("d-1", "{}").await;

    let report = worker.run_once().await.unwrap();
    assert_eq!(report.deferred, 1);
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        0,
        "the handler must not run"
    );
    assert_eq!(f.stats().await.scheduled, 1);
    assert!(f.dead().await.is_empty());

    f.clock.advance(Duration::from_secs(89));
    assert_eq!(worker.run_until_idle().await.unwrap().leased, 0);
    // At the claim's expiry the message is ready and takes the abandoned claim over.
    f.clock.advance(Duration::from_secs(1));
    let report = worker.run_until_idle().await.unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(f.effects.of("d-1"), 1);
    assert_eq!(
        *attempts.lock().unwrap(),
        [1],
        "the deferral gave its attempt back: the handler runs on attempt 1"
    );
}

#[tokio::test]
async fn fingerprint_mismatch_is_dead_lettered_with_that_reason() {
    let f = Fixture::new();
    let worker = f.worker(|_, _| None);
    f.deliver("d-1", r#"{"amount":100}"#).await;
    worker.run_until_idle().await.unwrap();
    // Same id, different body: the store knows the key and keeps the first body.
    assert!(matches!(
        f.deliver("d-1", r#"{"amount":999}"#).await,
        Enqueued::Duplicate(_)
    ));
    // Stored by another queue sharing the dedupe store, it meets the claim of another body.
    let other = MemoryQueue::new();
    let second = f.worker_on(other.clone(), |_, _| None);
    other
        .enqueue(f.event("d-1", r#"{"amount":999}"#))
        .await
        .unwrap();
    let report = second.run_until_idle().await.unwrap();
    assert_eq!(report.dead_lettered, 1);
    let dead = other.dead_letters(&DeadLetterFilter::all()).await.unwrap();
    assert!(
        dead[0].reason.contains("fingerprint mismatch"),
        "{}",
        dead[0].reason
    );
    assert_eq!(&dead[0].event.body[..], br#"{"amount":999}"#);
    assert_eq!(f.effects.of("d-1"), 1);
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
}

#[derive(Debug, serde::Deserialize)]
struct Order {
    id: u64,
    total_cents: i64,
}

#[tokio::test]
async fn decode_failure_is_dead_lettered_with_the_serde_error() {
    let f = Fixture::new();
    let totals = Arc::new(Mutex::new(Vec::new()));
    let sink = totals.clone();
    let effects = f.effects.clone();
    let worker = f
        .worker_builder()
        .build(
            DecodeJsonLayer::<Order>::new().layer(service_fn(move |event: Event<Order>| {
                let (sink, effects) = (sink.clone(), effects.clone());
                async move {
                    effects.apply(&event);
                    sink.lock()
                        .unwrap()
                        .push((event.payload().id, event.payload().total_cents));
                    Ok::<_, HandlerError>(())
                }
            })),
        )
        .unwrap();
    f.deliver("good", r#"{"id":7,"total_cents":1250}"#).await;
    f.deliver("bad", r#"{"id":"seven","total_cents":1250}"#)
        .await;
    let report = worker.run_until_idle().await.unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(report.dead_lettered, 1);
    assert_eq!(*totals.lock().unwrap(), [(7, 1250)]);
    assert_eq!(f.effects.of("bad"), 0);

    let dead = f.dead().await;
    assert_eq!(dead.len(), 1);
    let reason = &dead[0].reason;
    assert!(
        reason.starts_with(
            "permanent failure: cannot decode the body of event github/bad as JSON into `"
        ),
        "{reason}"
    );
    assert!(reason.contains("Order"), "{reason}");
    assert!(
        reason.contains("invalid type: string \"seven\", expected u64 at line 1 column 13"),
        "{reason}"
    );

    // A decode failure released its claim: after fixing the sender, a replay is handled.
    assert_eq!(dead[0].attempts, 1);
}

#[tokio::test]
async fn graceful_shutdown_finishes_quick_work_and_hands_back_the_rest() {
    let f = Fixture::new();
    let started = Arc::new(Notify::new());
    let release_quick = Arc::new(Notify::new());
    let (effects, s, r) = (f.effects.clone(), started.clone(), release_quick.clone());
    let worker = f
        .worker_builder()
        .shutdown_timeout(Duration::from_secs(2))
        .build(service_fn(move |event: Event| {
            let (effects, started, release_quick) = (effects.clone(), s.clone(), r.clone());
            async move {
                started.notify_one();
                if event.id().as_str() == "slow" {
                    // Never finishes on its own.
                    std::future::pending::<()>().await;
                }
                release_quick.notified().await;
                effects.apply(&event);
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    let slow = f.deliver("slow", "{}").await.message();
    f.deliver("quick", "{}").await;
    let handle = worker.spawn();
    started.notified().await;
    started.notified().await;
    assert_eq!(handle.stats().in_flight, 2);

    // Shut down while both run; the quick one finishes during the grace period.
    let shutdown = tokio::spawn(handle.shutdown());
    tokio::task::yield_now().await;
    release_quick.notify_one();
    let report = shutdown.await.unwrap();
    assert_eq!(report.finished, 1);
    assert_eq!(report.given_back, [slow]);
    assert_eq!(report.give_back_failed, 0);
    assert_eq!(f.effects.of("quick"), 1);
    assert_eq!(f.effects.of("slow"), 0);

    // The unfinished message is ready again now, not after its lease would have expired.
    let stats = f.stats().await;
    assert_eq!((stats.ready, stats.leased), (1, 0));
    let leased = f.queue.lease(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        leased[0].attempt, 1,
        "the hand-back gave its attempt back (Queue::defer)"
    );
    assert_eq!(leased[0].last_error, None, "a hand-back is not an error");
    assert_eq!(leased[0].event.id.as_str(), "slow");
    f.queue
        .retry(&leased[0].lease, f.clock.now_for_test(), SHUTDOWN_REASON)
        .await
        .unwrap();

    // A fresh worker handles it once. (The abandoned handler's claim is released in the
    // background; if that has not happened yet the event is deferred until the claim's
    // expiry, so step time until it is handled.)
    let fixed = f.worker(|_, _| None);
    for _ in 0..3 {
        fixed.run_until_idle().await.unwrap();
        if f.effects.of("slow") > 0 {
            break;
        }
        f.clock.advance(Duration::from_secs(30));
    }
    assert_eq!(f.effects.of("slow"), 1);
    assert_eq!(f.effects.total(), 2);
}

#[tokio::test]
async fn spawned_worker_drains_the_queue_and_wakes_on_signal() {
    let f = Fixture::new();
    let wake = Arc::new(Notify::new());
    let handled = Arc::new(Notify::new());
    let (effects, h) = (f.effects.clone(), handled.clone());
    // Poll so rarely that only the wake-up signal can get the second event handled.
    let worker = f
        .worker_builder()
        .poll_interval(Duration::from_secs(3600), Duration::from_secs(3600))
        .wake_on(wake.clone())
        .build(service_fn(move |event: Event| {
            let (effects, handled) = (effects.clone(), h.clone());
            async move {
                effects.apply(&event);
                handled.notify_one();
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    f.deliver("first", "{}").await;
    let handle = worker.spawn();
    handled.notified().await;
    // Let the worker find the queue empty and go idle, then announce a new event.
    while f.stats().await.depth() > 0 || handle.stats().in_flight > 0 {
        tokio::task::yield_now().await;
    }
    f.deliver("second", "{}").await;
    wake.notify_one();
    tokio::time::timeout(Duration::from_secs(30), handled.notified())
        .await
        .expect("the wake-up signal did not get the event handled");
    let report = handle.shutdown().await;
    assert!(report.given_back.is_empty());
    assert_eq!(f.effects.of("first"), 1);
    assert_eq!(f.effects.of("second"), 1);
}

/// Wraps a queue and announces every `extend`.
struct Watched {
    inner: Arc<MemoryQueue>,
    extended: Notify,
    extends: AtomicU32,
}

#[async_trait]
impl Queue for Watched {
    fn durability(&self) -> Durability {
        self.inner.durability()
    }
    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        self.inner.enqueue(event).await
    }
    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        self.inner.lease(max, lease_for).await
    }
    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        let r = self.inner.extend(lease, lease_for).await;
        self.extends.fetch_add(1, Ordering::SeqCst);
        self.extended.notify_one();
        r
    }
    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.ack(lease).await
    }
    async fn skip(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        self.inner.skip(lease, reason).await
    }
    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        self.inner.retry(lease, at, error).await
    }
    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        self.inner.defer(lease, at).await
    }
    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        self.inner.dead_letter(lease, reason).await
    }
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(filter).await
    }
    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        self.inner.replay(filter).await
    }
    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.inner.stats().await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.inner.purge_expired().await
    }
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.inner.check_writable().await
    }
}

#[tokio::test]
async fn long_work_keeps_its_lease_through_heartbeats() {
    let f = Fixture::new();
    let watched = Arc::new(Watched {
        inner: f.queue.clone(),
        extended: Notify::new(),
        extends: AtomicU32::new(0),
    });
    let dyn_queue: Arc<dyn Queue> = watched.clone();
    let (started, finish) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (s, fin, effects) = (started.clone(), finish.clone(), f.effects.clone());
    let lease_for = Duration::from_millis(300);
    let worker = Worker::builder(dyn_queue)
        .dedupe(DedupeLayer::new(f.store.clone()))
        .clock(f.clock.clone())
        .lease_for(lease_for)
        .build(service_fn(move |event: Event| {
            let (started, finish, effects) = (s.clone(), fin.clone(), effects.clone());
            async move {
                started.notify_one();
                finish.notified().await;
                effects.apply(&event);
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    f.deliver("d-1", "{}").await;
    let run = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run_once().await }
    });
    started.notified().await;

    // Four leases' worth of (fake) handler time: each time two thirds of the lease have
    // passed, the heartbeat extends it, so the message is never free for anyone else.
    for _ in 0..6 {
        let before = watched.extends.load(Ordering::SeqCst);
        f.clock.advance(Duration::from_millis(210));
        while watched.extends.load(Ordering::SeqCst) == before {
            watched.extended.notified().await;
        }
        assert!(f.queue.lease(1, lease_for).await.unwrap().is_empty());
        assert_eq!(f.stats().await.leased, 1);
    }
    finish.notify_one();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(f.effects.of("d-1"), 1);
    assert_eq!(f.stats().await.depth(), 0);
}

#[tokio::test]
async fn bad_configuration_is_refused_at_build() {
    let f = Fixture::new();
    let handler = service_fn(|_: Event| async { Ok::<_, HandlerError>(()) });
    assert!(f.worker_builder().concurrency(0).build(handler).is_err());
    assert!(f.worker_builder().batch_size(0).build(handler).is_err());
    assert!(f
        .worker_builder()
        .lease_for(Duration::ZERO)
        .build(handler)
        .is_err());
    assert!(f
        .worker_builder()
        .poll_interval(Duration::from_secs(2), Duration::from_secs(1))
        .build(handler)
        .is_err());
    assert!(DedupeLayer::builder(f.store.clone())
        .claim_lease(Duration::ZERO)
        .build()
        .is_err());
}

#[tokio::test]
async fn a_running_worker_purges_keys_past_their_retention() {
    let f = Fixture::new();
    let effects = f.effects.clone();
    let worker = f
        .worker_builder()
        .purge_interval(Some(Duration::from_millis(10)))
        .build(service_fn(move |event: Event| {
            let effects = effects.clone();
            async move {
                effects.apply(&event);
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    f.deliver("d-1", "{}").await;
    worker.run_until_idle().await.unwrap();
    let key = IdempotencyKey::new("github", "d-1");
    let fp = Fingerprint::of(b"{}");

    // Within the retention (7 days by default) the key stays completed, through purges.
    f.clock
        .advance(hookdock::store::DEFAULT_RETENTION - Duration::from_secs(3600));
    let handle = worker.clone().spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(handle.stats().purged, 0);
    let claim = f
        .store
        .claim(&key, &fp, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claim, Claim::Completed(None));

    // Past it, the running worker purges the key.
    f.clock.advance(Duration::from_secs(2 * 3600));
    tokio::time::timeout(Duration::from_secs(30), async {
        while handle.stats().purged == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the worker never purged the expired key");
    handle.shutdown().await;
    let claim = f
        .store
        .claim(&key, &fp, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Acquired(_)), "{claim:?}");
}
