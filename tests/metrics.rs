//! One test per metric family, each driving the real path (verify layer and intake over a
//! SQLite queue in a temporary directory, the SQLite writer's group commit, the PostgreSQL
//! batcher, the worker with dedupe, the queue gauges, purges) and asserting the values
//! recorded.
//!
//! The recorder is a `metrics-util` `DebuggingRecorder`, installed once as this process's
//! global recorder (the SQLite writer records from its own thread, which a thread-local
//! recorder would not see). Its snapshots drain what they read, so the tests take a lock
//! and drain before they start: each sees only its own recordings.

#[cfg(feature = "postgres")]
mod postgres_support;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{service_fn, ServiceBuilder, ServiceExt};

use hookdock::metrics::{self as m, QueueGauges};
use hookdock::scheme::Preset;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{Queue, QueueOptions};
use hookdock::testing::{FakeClock, Signer};
use hookdock::worker::{Event, HandlerError, RetryPolicy, Worker};
use hookdock::{Clock, Intake, RawEvent, VerifyLayer};

const SECRET: &str = "metrics-test-secret";

/// The process's recorder, installed on first use.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test process");
        snapshotter
    })
}

/// Serializes the tests of this file and drains what earlier tests left.
async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = LOCK.lock().await;
    let _ = snapshotter().snapshot();
    guard
}

/// A metric's name and its labels, sorted.
type Key = (String, Vec<(String, String)>);

/// What was recorded since the last snapshot.
#[derive(Debug, Default)]
struct Recorded {
    counters: HashMap<Key, u64>,
    gauges: HashMap<Key, f64>,
    histograms: HashMap<Key, Vec<f64>>,
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

impl Recorded {
    fn take() -> Self {
        let mut recorded = Recorded::default();
        for (composite, _, _, value) in snapshotter().snapshot().into_vec() {
            let (_, k) = composite.into_parts();
            let mut labels: Vec<(String, String)> = k
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let id = (k.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => {
                    if n > 0 {
                        recorded.counters.insert(id, n);
                    }
                }
                DebugValue::Gauge(v) => {
                    recorded.gauges.insert(id, v.into_inner());
                }
                DebugValue::Histogram(vs) => {
                    if !vs.is_empty() {
                        recorded
                            .histograms
                            .insert(id, vs.into_iter().map(|v| v.into_inner()).collect());
                    }
                }
            }
        }
        recorded
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters.get(&key(name, labels)).copied().unwrap_or(0)
    }

    fn counter_total(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.gauges.get(&key(name, labels)).copied()
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> &[f64] {
        self.histograms
            .get(&key(name, labels))
            .map_or(&[], Vec::as_slice)
    }
}

fn sqlite(dir: &tempfile::TempDir, options: SqliteOptions) -> SqliteStore {
    SqliteStore::open(dir.path().join("q.db"), options).expect("open")
}

/// A signed GitHub `push` delivery, as a request.
fn signed(secret: &str, id: &str, body: &'static str) -> http::Request<Full<Bytes>> {
    Signer::new(&Preset::github([secret]).unwrap())
        .unwrap()
        .delivery(body)
        .id(id)
        .event_type("push")
        .sign()
        .unwrap()
        .into_request()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_counted_by_source_outcome_and_kind_and_verify_is_timed() {
    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir, SqliteOptions::default());
    let queue = Arc::new(store.queue(QueueOptions::default().max_depth(2)));
    let endpoint = ServiceBuilder::new()
        .layer(VerifyLayer::new(Preset::github([SECRET]).unwrap()))
        .service(
            Intake::builder(Arc::clone(&queue))
                .source("gh-deliveries")
                .build()
                .unwrap(),
        );
    let send = |request| endpoint.clone().oneshot(request);

    assert_eq!(
        send(signed(SECRET, "d-1", "{}")).await.unwrap().status(),
        200
    );
    assert_eq!(
        send(signed(SECRET, "d-1", "{}")).await.unwrap().status(),
        200
    );
    let forged = send(signed("wrong", "d-2", "{}")).await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let mut unsigned = signed(SECRET, "d-3", "{}");
    unsigned.headers_mut().remove("x-hub-signature-256");
    assert_eq!(send(unsigned).await.unwrap().status(), 401);
    // An id that can never be stored (over 512 bytes): 400 from the intake.
    let bad_id = send(signed(SECRET, &"x".repeat(600), "{}")).await.unwrap();
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        send(signed(SECRET, "d-4", "{}")).await.unwrap().status(),
        200
    );
    // The queue holds two now: its depth limit.
    let full = send(signed(SECRET, "d-5", "{}")).await.unwrap();
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);

    let r = Recorded::take();
    let at_intake = |outcome, kind| {
        r.counter(
            m::DELIVERIES,
            &[
                ("source", "gh-deliveries"),
                ("outcome", outcome),
                ("kind", kind),
            ],
        )
    };
    // At the verify layer the source is the scheme's name.
    let at_verify = |outcome, kind| {
        r.counter(
            m::DELIVERIES,
            &[("source", "github"), ("outcome", outcome), ("kind", kind)],
        )
    };
    assert_eq!(at_intake("stored", "none"), 2, "{r:?}");
    assert_eq!(at_intake("duplicate", "none"), 1);
    assert_eq!(at_intake("rejected", "invalid_event_id"), 1);
    assert_eq!(at_intake("refused", "queue_full"), 1);
    assert_eq!(at_verify("rejected", "bad_signature"), 1);
    assert_eq!(at_verify("rejected", "missing_header"), 1);
    assert_eq!(r.counter_total(m::DELIVERIES), 7, "{r:?}");
    // Every request reached the scheme's check: seven timings, none negative.
    let verify = r.histogram(m::VERIFY_SECONDS, &[("source", "github")]);
    assert_eq!(verify.len(), 7);
    assert!(verify.iter().all(|s| *s >= 0.0));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commits_record_their_time_and_size() {
    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir, SqliteOptions::default());
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let before = store.writer_stats();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                let event = RawEvent::new("commits", format!("c-{i}"), SystemTime::now(), "{}");
                queue.enqueue(event).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let after = store.writer_stats();
    let r = Recorded::take();
    let sizes = r.histogram(m::STORE_BATCH_SIZE, &[("backend", "sqlite")]);
    let times = r.histogram(m::STORE_COMMIT_SECONDS, &[("backend", "sqlite")]);
    // One record per group commit, its size the operations it carried: the writer's own
    // counters say the same.
    assert_eq!(
        sizes.len() as u64,
        after.transactions - before.transactions,
        "{r:?}"
    );
    assert_eq!(times.len(), sizes.len());
    assert_eq!(
        sizes.iter().sum::<f64>() as u64,
        after.operations - before.operations
    );
    assert!(sizes.iter().sum::<f64>() >= 200.0);
    store.close().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batches_record_their_time_and_size() {
    let _lock = exclusive().await;
    let Some(db) = postgres_support::TestDb::new("metrics_batches").await else {
        return;
    };
    let queue = Arc::new(db.store.queue(QueueOptions::default()));
    let _ = Recorded::take();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                let event = RawEvent::new("pg", format!("p-{i}"), SystemTime::now(), "{}");
                queue.enqueue(event).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let r = Recorded::take();
    let sizes = r.histogram(m::STORE_BATCH_SIZE, &[("backend", "postgres")]);
    // Only enqueues went through the batcher: their sizes add up to the hundred.
    assert_eq!(sizes.iter().sum::<f64>(), 100.0, "{r:?}");
    assert!(!sizes.is_empty() && sizes.iter().all(|n| *n >= 1.0));
    assert_eq!(
        r.histogram(m::STORE_COMMIT_SECONDS, &[("backend", "postgres")])
            .len(),
        sizes.len()
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_records_handler_time_outcomes_retries_dead_letters_and_time_to_done() {
    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir, SqliteOptions::default());
    let queue = Arc::new(store.queue(QueueOptions::default().max_attempts(2)));
    let received = SystemTime::now() - Duration::from_secs(60);
    for (id, ty) in [
        ("ok", "push"),
        ("flaky", "push"),
        ("broken", "issues"),
        ("hopeless", "issues"),
    ] {
        let mut event = RawEvent::new("gh-worker", id, received, "{}");
        event.event_type = Some(ty.into());
        queue.enqueue(event).await.unwrap();
    }
    let worker = Worker::builder(Arc::clone(&queue))
        .dedupe(store.idempotency())
        .retry_policy(
            RetryPolicy::builder()
                .initial(Duration::from_millis(1))
                .max(Duration::from_millis(1))
                .jitter(false)
                .build()
                .unwrap(),
        )
        .build(service_fn(|event: Event| async move {
            match (event.id().as_str(), event.attempt()) {
                ("flaky", 1) => Err(HandlerError::retry("first attempt fails")),
                ("broken", _) => Err(HandlerError::permanent("never works")),
                ("hopeless", _) => Err(HandlerError::retry("always fails")),
                _ => Ok(()),
            }
        }))
        .unwrap();
    // Retries are due a millisecond later: drain until everything is settled.
    for _ in 0..100 {
        worker.run_until_idle().await.unwrap();
        if queue.stats().await.unwrap().depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(queue.stats().await.unwrap().depth(), 0);

    let r = Recorded::take();
    let outcome = |ty, o| {
        r.counter(
            m::HANDLER_OUTCOMES,
            &[("source", "gh-worker"), ("event_type", ty), ("outcome", o)],
        )
    };
    // ok: acked; flaky: retried, then acked; broken: dead at once; hopeless: retried, then
    // dead on its last attempt.
    assert_eq!(outcome("push", "acked"), 2, "{r:?}");
    assert_eq!(outcome("push", "retried"), 1);
    assert_eq!(outcome("issues", "retried"), 1);
    assert_eq!(outcome("issues", "dead_lettered"), 2);
    assert_eq!(r.counter_total(m::HANDLER_OUTCOMES), 6);
    let ran = |ty| {
        r.histogram(
            m::HANDLER_SECONDS,
            &[("source", "gh-worker"), ("event_type", ty)],
        )
        .len()
    };
    assert_eq!((ran("push"), ran("issues")), (3, 3));
    assert_eq!(r.counter(m::RETRIES, &[("source", "gh-worker")]), 2);
    let dead = |cause| {
        r.counter(
            m::DEAD_LETTERS,
            &[("source", "gh-worker"), ("cause", cause)],
        )
    };
    assert_eq!((dead("permanent"), dead("exhausted")), (1, 1));
    // Received a minute ago: at least sixty seconds from receipt to done.
    let done = |o| {
        r.histogram(
            m::RECEIPT_TO_DONE_SECONDS,
            &[("source", "gh-worker"), ("outcome", o)],
        )
        .to_vec()
    };
    let (succeeded, dead) = (done("succeeded"), done("dead"));
    assert_eq!((succeeded.len(), dead.len()), (2, 2));
    assert!(
        succeeded.iter().chain(&dead).all(|s| *s >= 60.0),
        "{succeeded:?} {dead:?}"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauges_follow_the_log_by_state_and_the_oldest_waiting_age() {
    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000));
    let store = sqlite(&dir, SqliteOptions::default().clock(clock.clone()));
    let queue = Arc::new(store.queue(QueueOptions::default()));
    for i in 0..3 {
        let event = RawEvent::new("gauged", format!("g-{i}"), clock.now(), "{}");
        queue.enqueue(event).await.unwrap();
    }
    let gauges = QueueGauges::new(Arc::clone(&queue)).clock(clock.clone());
    clock.advance(Duration::from_secs(90));
    gauges.sample().await.unwrap();
    let r = Recorded::take();
    let state = |r: &Recorded, s| r.gauge(m::QUEUE_EVENTS, &[("source", "gauged"), ("state", s)]);
    assert_eq!(state(&r, "pending"), Some(3.0), "{r:?}");
    assert_eq!(state(&r, "succeeded"), Some(0.0));
    assert_eq!(state(&r, "dead"), Some(0.0));
    assert_eq!(r.gauge(m::QUEUE_OLDEST_READY_AGE_SECONDS, &[]), Some(90.0));

    // Two handled, one dead: the pending count goes back to zero, not stale at three.
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .build(service_fn(|event: Event| async move {
            if event.id().as_str() == "g-2" {
                Err(HandlerError::permanent("no"))
            } else {
                Ok(())
            }
        }))
        .unwrap();
    worker.run_until_idle().await.unwrap();
    gauges.sample().await.unwrap();
    let r = Recorded::take();
    assert_eq!(state(&r, "pending"), Some(0.0), "{r:?}");
    assert_eq!(state(&r, "succeeded"), Some(2.0));
    assert_eq!(state(&r, "dead"), Some(1.0));
    assert_eq!(r.gauge(m::QUEUE_OLDEST_READY_AGE_SECONDS, &[]), Some(0.0));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_count_the_records_forgotten() {
    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000));
    let store = sqlite(
        &dir,
        SqliteOptions::default()
            .clock(clock.clone())
            .retention(Duration::from_secs(3600)),
    );
    let queue = Arc::new(store.queue(QueueOptions::default()));
    for i in 0..5 {
        let event = RawEvent::new("purged", format!("p-{i}"), clock.now(), "{}");
        queue.enqueue(event).await.unwrap();
    }
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .dedupe(store.idempotency())
        .purge_interval(Some(Duration::from_millis(20)))
        .build(service_fn(|_: Event| async { Ok::<_, HandlerError>(()) }))
        .unwrap();
    worker.run_until_idle().await.unwrap();
    let _ = Recorded::take();
    // Past the retention: the running worker (and the SQLite writer, between batches)
    // forget the five handled events, each once.
    clock.advance(Duration::from_secs(7200));
    let running = worker.clone().spawn();
    let mut purged = 0;
    for _ in 0..500 {
        purged += Recorded::take().counter(m::PURGED, &[("what", "events")]);
        if purged >= 5 && queue.counts_total().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.shutdown().await;
    purged += Recorded::take().counter(m::PURGED, &[("what", "events")]);
    assert_eq!(purged, 5);
    store.close().await;
}

/// The log's total, for the purge test.
trait CountsTotal {
    async fn counts_total(&self) -> u64;
}

impl<L: hookdock::store::EventLog> CountsTotal for L {
    async fn counts_total(&self) -> u64 {
        self.counts(&hookdock::store::EventFilter::all())
            .await
            .unwrap()
            .total()
    }
}

/// Schema drift through a real worker: `DecodeJsonLayer::report_drift` counts each drifted
/// event per kind, and each new shape once.
#[cfg(feature = "schema-drift")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_counts_drifted_events_by_kind_and_new_shapes() {
    use hookdock::worker::{DecodeJsonLayer, DriftReporter};
    use tower::Layer;

    #[derive(serde::Deserialize, serde::Serialize)]
    struct Push {
        r#ref: String,
        #[serde(default)]
        forced: bool,
    }

    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir, SqliteOptions::default());
    let queue = Arc::new(store.queue(QueueOptions::default()));
    for (id, body) in [
        ("exact", r#"{"ref":"main","forced":false}"#),
        ("new-field", r#"{"ref":"main","forced":true,"pusher":"o"}"#),
        (
            "new-field-again",
            r#"{"ref":"dev","forced":true,"pusher":"p"}"#,
        ),
        ("both", r#"{"ref":"main","pusher":"o"}"#),
    ] {
        let event = RawEvent::new("gh-drift", id, SystemTime::now(), body).with_event_type("push");
        queue.enqueue(event).await.unwrap();
    }
    let handler = DecodeJsonLayer::<Push>::new()
        .report_drift(DriftReporter::new())
        .layer(service_fn(|_: Event<Push>| async {
            Ok::<_, HandlerError>(())
        }));
    let worker = Worker::builder(Arc::clone(&queue)).build(handler).unwrap();
    assert_eq!(worker.run_until_idle().await.unwrap().succeeded, 4);

    let r = Recorded::take();
    let drifted = |kind| {
        r.counter(
            m::SCHEMA_DRIFT_EVENTS,
            &[
                ("source", "gh-drift"),
                ("event_type", "push"),
                ("kind", kind),
            ],
        )
    };
    assert_eq!(drifted("unknown"), 3, "{r:?}");
    assert_eq!(drifted("missing"), 1);
    assert_eq!(
        r.counter(
            m::SCHEMA_DRIFT_SHAPES,
            &[("source", "gh-drift"), ("event_type", "push")]
        ),
        2,
        "`pusher` unknown; then `pusher` unknown with `forced` missing"
    );
    for name in [m::SCHEMA_DRIFT_EVENTS, m::SCHEMA_DRIFT_SHAPES] {
        let labels: Vec<_> = r
            .counters
            .keys()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, l)| l.iter().map(|(_, v)| v.clone()))
            .collect();
        assert!(
            labels.iter().all(|v| !v.contains("pusher") && v != "main"),
            "no path or value is a label: {labels:?}"
        );
    }
    store.close().await;
}

/// One sampler for both: `QueueGauges` given alerts sets the gauge and fires the alert from
/// the same read of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauges_check_the_alerts_they_are_given() {
    use hookdock::alert::{Alert, Alerts};

    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000));
    let store = sqlite(&dir, SqliteOptions::default().clock(clock.clone()));
    let queue = Arc::new(store.queue(QueueOptions::default()));
    queue
        .enqueue(RawEvent::new("gauged-alerts", "a-1", clock.now(), "{}"))
        .await
        .unwrap();
    let fired: Arc<std::sync::Mutex<Vec<Alert>>> = Arc::default();
    let sink = Arc::clone(&fired);
    let alerts = Alerts::new(move |a: &Alert| sink.lock().unwrap().push(a.clone()))
        .clock(clock.clone())
        .oldest_ready_limit(Duration::from_secs(60));
    let gauges = QueueGauges::new(Arc::clone(&queue))
        .clock(clock.clone())
        .alerts(alerts);
    clock.advance(Duration::from_secs(90));
    gauges.sample().await.unwrap();
    let r = Recorded::take();
    assert_eq!(r.gauge(m::QUEUE_OLDEST_READY_AGE_SECONDS, &[]), Some(90.0));
    assert_eq!(
        *fired.lock().unwrap(),
        [Alert::OldestReady {
            age: Duration::from_secs(90),
            limit: Duration::from_secs(60),
        }]
    );
    store.close().await;
}

/// Ordering: a stale event (older than its key's watermark) and one over the maximum event
/// age are counted apart, and a handled event's time from its provider time to done is
/// recorded; the handler ran only for the fresh event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_too_old_events_are_counted_and_event_time_to_done_recorded() {
    use hookdock::ordering::OrderingKey;
    let _lock = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir, SqliteOptions::default());
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let now = SystemTime::now();
    let keyed = |id: &str, at: SystemTime| {
        RawEvent::new("stripe-m", id, now, "{}").with_ordering(OrderingKey::new("cus_1").at(at))
    };
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran);
    let worker = Worker::builder(Arc::clone(&queue))
        .max_event_age(Duration::from_secs(3_600))
        .build(service_fn(move |event: Event| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(event.id().to_string());
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    queue
        .enqueue(keyed("fresh", now - Duration::from_secs(10)))
        .await
        .unwrap();
    worker.run_until_idle().await.unwrap();
    queue
        .enqueue(keyed("older", now - Duration::from_secs(20)))
        .await
        .unwrap();
    worker.run_until_idle().await.unwrap();
    let other = RawEvent::new("stripe-m", "ancient", now, "{}")
        .with_ordering(OrderingKey::new("cus_2").at(now - Duration::from_secs(7_200)));
    queue.enqueue(other).await.unwrap();
    worker.run_until_idle().await.unwrap();

    let r = Recorded::take();
    assert_eq!(*ran.lock().unwrap(), ["fresh"]);
    assert_eq!(r.counter(m::STALE_EVENTS, &[("source", "stripe-m")]), 1);
    assert_eq!(r.counter(m::SKIPPED_EVENTS, &[("source", "stripe-m")]), 1);
    let outcome = |o: &str| {
        r.counter(
            m::HANDLER_OUTCOMES,
            &[
                ("source", "stripe-m"),
                ("event_type", "none"),
                ("outcome", o),
            ],
        )
    };
    assert_eq!((outcome("acked"), outcome("skipped_stale")), (1, 2));
    let since = r.histogram(m::EVENT_TIME_TO_DONE_SECONDS, &[("source", "stripe-m")]);
    assert_eq!(
        since.len(),
        3,
        "every event with an event time that ended: {since:?}"
    );
    assert!(since.iter().all(|s| *s >= 10.0), "{since:?}");
    store.close().await;
}

/// A source of ten events, of which the store already has some, and a stretch beyond its
/// one-day horizon on the second pass.
struct TenEvents;

#[async_trait::async_trait]
impl hookdock::reconcile::ChangeSource for TenEvents {
    fn name(&self) -> &str {
        "stripe"
    }

    fn horizon(&self) -> Duration {
        Duration::from_secs(86_400)
    }

    async fn poll(
        &self,
        _request: hookdock::reconcile::PollRequest<'_>,
    ) -> Result<hookdock::reconcile::Page, hookdock::reconcile::PollError> {
        use hookdock::reconcile::{Change, FetchedEvent, Page};
        let changes = (0..10)
            .map(|i| Change::Event(FetchedEvent::new(format!("evt_{i}"), "{}")))
            .collect();
        Ok(Page::last(changes, None))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_counts_what_it_saw_recovered_and_could_not_cover() {
    let _guard = exclusive().await;
    let clock = FakeClock::new(SystemTime::now());
    let store = hookdock::store::MemoryStore::new().with_clock(clock.clone());
    let queue = Arc::new(store.queue(QueueOptions::default()));
    for i in 0..8 {
        let event = RawEvent::new("stripe", format!("evt_{i}"), clock.now(), "{}");
        queue.enqueue(event).await.unwrap();
    }
    let reconciler = hookdock::reconcile::Reconciler::builder(queue.clone(), queue.clone())
        .source(TenEvents)
        .clock(clock.clone())
        .build();
    reconciler.run_once("stripe").await.unwrap();
    let first = Recorded::take();
    let source = [("source", "stripe")];
    assert_eq!(first.counter(m::RECONCILE_SEEN, &source), 10);
    assert_eq!(first.counter(m::RECONCILE_RECOVERED, &source), 2);
    assert_eq!(first.gauge(m::RECONCILE_RECOVERY_RATIO, &source), Some(0.2));
    assert_eq!(first.counter(m::RECONCILE_GAPS, &source), 0);

    // Two days later: the day before the horizon is a gap; everything is known now.
    clock.advance(Duration::from_secs(2 * 86_400));
    reconciler.run_once("stripe").await.unwrap();
    let second = Recorded::take();
    assert_eq!(second.counter(m::RECONCILE_SEEN, &source), 10);
    assert_eq!(second.counter(m::RECONCILE_RECOVERED, &source), 0);
    assert_eq!(
        second.gauge(m::RECONCILE_RECOVERY_RATIO, &source),
        Some(0.0)
    );
    assert_eq!(second.counter(m::RECONCILE_GAPS, &source), 1);
}
