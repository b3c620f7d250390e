//! Alerts fired along the real paths: a worker over a SQLite queue dead-lettering, the verify
//! layer in front of the intake rejecting forged deliveries, and the queue watch sampling a
//! SQLite event log under a fake clock. Every test counts what a collecting hook received.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use hookdock::alert::{Alert, Alerts, QueueWatch};
use hookdock::scheme::Preset;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{Queue, QueueOptions};
use hookdock::testing::{FakeClock, Signer};
use hookdock::worker::{Event, HandlerError, RetryPolicy, Worker};
use hookdock::{Clock, Intake, RawEvent, VerifyLayer};

const SECRET: &str = "alerts-test-secret";

/// A window boundary (a multiple of a minute since the epoch), so windows are easy to name.
const BASE: u64 = 1_700_000_040;

/// A hook that keeps every alert, and the alerts handle over it.
fn collecting(clock: &FakeClock) -> (Alerts, Arc<Mutex<Vec<Alert>>>) {
    let fired: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let sink = Arc::clone(&fired);
    let alerts = Alerts::new(move |alert: &Alert| sink.lock().unwrap().push(alert.clone()))
        .clock(clock.clone());
    (alerts, fired)
}

fn take(fired: &Mutex<Vec<Alert>>) -> Vec<Alert> {
    std::mem::take(&mut *fired.lock().unwrap())
}

fn sqlite(dir: &tempfile::TempDir, clock: &FakeClock) -> SqliteStore {
    SqliteStore::open(
        dir.path().join("q.db"),
        SqliteOptions::default().clock(clock.clone()),
    )
    .expect("open")
}

fn signed(secret: &str, id: &str) -> http::Request<Full<Bytes>> {
    Signer::new(&Preset::github([secret]).unwrap())
        .unwrap()
        .delivery("{}")
        .id(id)
        .event_type("push")
        .sign()
        .unwrap()
        .into_request()
}

#[tokio::test]
async fn a_dead_letter_through_a_real_worker_fires_one_alert_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(BASE));
    let store = sqlite(&dir, &clock);
    let queue = Arc::new(store.queue(QueueOptions::default().max_attempts(2)));
    for id in ["ok", "broken", "flaky"] {
        queue
            .enqueue(RawEvent::new("github", id, clock.now(), "{}"))
            .await
            .unwrap();
    }
    let (alerts, fired) = collecting(&clock);
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .retry_policy(
            RetryPolicy::builder()
                .initial(Duration::from_secs(1))
                .max(Duration::from_secs(1))
                .jitter(false)
                .build()
                .unwrap(),
        )
        .alerts(alerts)
        .build(service_fn(|event: Event| async move {
            match (event.id().as_str(), event.attempt()) {
                ("broken", _) => Err(HandlerError::permanent("cannot be handled")),
                ("flaky", 1) => Err(HandlerError::retry("first attempt fails")),
                _ => Ok(()),
            }
        }))
        .unwrap();
    worker.run_until_idle().await.unwrap();
    clock.advance(Duration::from_secs(2)); // the retry of `flaky` is due
    worker.run_until_idle().await.unwrap();
    assert_eq!(queue.stats().await.unwrap().depth(), 0);

    let alerts = take(&fired);
    assert_eq!(
        alerts.len(),
        1,
        "one dead letter, no alert for a retry: {alerts:?}"
    );
    match &alerts[0] {
        Alert::DeadLetter {
            source,
            event_id,
            reason,
        } => {
            assert_eq!((source.as_str(), event_id.as_str()), ("github", "broken"));
            assert!(reason.contains("cannot be handled"), "{reason}");
        }
        other => panic!("not a dead letter: {other:?}"),
    }
    assert_eq!(alerts[0].kind(), "dead_letter");
    store.close().await;
}

#[tokio::test]
async fn a_spike_of_bad_signatures_fires_once_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(BASE));
    let store = sqlite(&dir, &clock);
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let (alerts, fired) = collecting(&clock);
    let endpoint = ServiceBuilder::new()
        .layer(
            VerifyLayer::new(Preset::github([SECRET]).unwrap())
                .clock(clock.clone())
                .alerts(alerts),
        )
        .service(Intake::new(Arc::clone(&queue)));
    let send = |request| endpoint.clone().oneshot(request);

    // Genuine deliveries and other rejections are not counted.
    assert_eq!(send(signed(SECRET, "d-ok")).await.unwrap().status(), 200);
    let mut unsigned = signed(SECRET, "d-unsigned");
    unsigned.headers_mut().remove("x-hub-signature-256");
    assert_eq!(send(unsigned).await.unwrap().status(), 401);
    for i in 0..19 {
        let forged = send(signed("a-wrong-secret", &format!("f-{i}")))
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(
        take(&fired).is_empty(),
        "19 failures are under the threshold"
    );

    for i in 19..25 {
        let forged = send(signed("a-wrong-secret", &format!("f-{i}")))
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    }
    let alerts = take(&fired);
    assert_eq!(
        alerts,
        [Alert::SignatureFailures {
            source: "github".into(),
            count: 20,
            window: Duration::from_secs(60),
        }],
        "25 failures in one window fire once"
    );

    // A new window counts from zero again.
    clock.advance(Duration::from_secs(61));
    for i in 0..20 {
        send(signed("a-wrong-secret", &format!("g-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(take(&fired).len(), 1);
    assert_eq!(
        queue.stats().await.unwrap().depth(),
        1,
        "only the genuine one stored"
    );
    store.close().await;
}

#[tokio::test]
async fn the_watch_fires_when_the_oldest_ready_event_waits_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(BASE));
    let store = sqlite(&dir, &clock);
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let (alerts, fired) = collecting(&clock);
    let watch = QueueWatch::new(
        Arc::clone(&queue),
        alerts.oldest_ready_limit(Duration::from_secs(60)),
    );
    queue
        .enqueue(RawEvent::new("github", "waits", clock.now(), "{}"))
        .await
        .unwrap();

    clock.advance(Duration::from_secs(30));
    watch.sample().await.unwrap();
    assert!(take(&fired).is_empty(), "30 s is within the limit");

    clock.advance(Duration::from_secs(31));
    watch.sample().await.unwrap();
    watch.sample().await.unwrap();
    assert_eq!(
        take(&fired),
        [Alert::OldestReady {
            age: Duration::from_secs(61),
            limit: Duration::from_secs(60),
        }],
        "once while it stays over the limit"
    );

    // Drained, the alert re-arms; a new event that waits too long fires again.
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .build(service_fn(|_: Event| async { Ok::<_, HandlerError>(()) }))
        .unwrap();
    worker.run_until_idle().await.unwrap();
    watch.sample().await.unwrap();
    assert!(take(&fired).is_empty());
    queue
        .enqueue(RawEvent::new("github", "waits-too", clock.now(), "{}"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(120));
    watch.sample().await.unwrap();
    assert_eq!(take(&fired).len(), 1);
    store.close().await;
}

/// Stores `n` pushed deliveries of `source` received at `at`.
async fn delivered(queue: &impl Queue, source: &str, at: SystemTime, n: usize) {
    for i in 0..n {
        let id = format!(
            "{source}-{}-{i}",
            at.duration_since(UNIX_EPOCH).unwrap().as_secs()
        );
        queue
            .enqueue(RawEvent::new(source, id, at, "{}"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_watch_fires_when_a_busy_source_goes_quiet_for_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(BASE));
    let store = sqlite(&dir, &clock);
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let (alerts, fired) = collecting(&clock);
    let alerts = alerts
        .silent_source(Duration::from_secs(60), 3)
        .oldest_ready_limit(Duration::from_secs(86_400));
    let watch = QueueWatch::new(Arc::clone(&queue), alerts);
    let window = |k: u64| UNIX_EPOCH + Duration::from_secs(BASE + 60 * k + 5);

    // `github` busy in windows 0, 1 and 2 (3, 2 and 4 deliveries); `stripe` only in window 2.
    for (k, n) in [(0, 3), (1, 2), (2, 4)] {
        clock.set(window(k));
        delivered(&*queue, "github", window(k), n).await;
        watch.sample().await.unwrap();
    }
    delivered(&*queue, "stripe", window(2), 1).await;
    clock.set(window(3)); // window 2 closed
    watch.sample().await.unwrap();
    assert!(
        take(&fired).is_empty(),
        "busy windows fire nothing: {fired:?}"
    );

    clock.set(window(4)); // window 3 closed with nothing from anyone
    watch.sample().await.unwrap();
    watch.sample().await.unwrap();
    assert_eq!(
        take(&fired),
        [Alert::SilentSource {
            source: "github".into(),
            quiet_for: Duration::from_secs(60),
            usual: 2,
        }],
        "github was busy for three windows; stripe for one only"
    );

    clock.set(window(6));
    watch.sample().await.unwrap();
    assert!(take(&fired).is_empty(), "once per silence");
    store.close().await;
}

#[tokio::test]
async fn a_healthy_run_fires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(BASE + 5));
    let store = sqlite(&dir, &clock);
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let (alerts, fired) = collecting(&clock);
    let alerts = alerts
        .silent_source(Duration::from_secs(60), 2)
        .oldest_ready_limit(Duration::from_secs(30));
    let endpoint = ServiceBuilder::new()
        .layer(
            VerifyLayer::new(Preset::github([SECRET]).unwrap())
                .clock(clock.clone())
                .alerts(alerts.clone()),
        )
        .service(
            Intake::builder(Arc::clone(&queue))
                .clock(clock.clone())
                .build()
                .unwrap(),
        );
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .alerts(alerts.clone())
        .build(service_fn(|_: Event| async { Ok::<_, HandlerError>(()) }))
        .unwrap();
    let watch = QueueWatch::new(Arc::clone(&queue), alerts);

    for minute in 0..6 {
        for i in 0..3 {
            let request = signed(SECRET, &format!("d-{minute}-{i}"));
            let response = endpoint.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
        worker.run_until_idle().await.unwrap();
        watch.sample().await.unwrap();
        clock.advance(Duration::from_secs(60));
    }
    watch.sample().await.unwrap();
    assert_eq!(worker.stats().succeeded, 18);
    assert!(take(&fired).is_empty(), "{fired:?}");
    store.close().await;
}

#[test]
fn a_recovery_rate_over_the_threshold_fires_and_a_panicking_hook_is_contained() {
    let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(BASE));
    let (alerts, fired) = collecting(&clock);
    let alerts = alerts.recovery_threshold(0.05);
    alerts.recovery_rate("github", 0.05);
    alerts.recovery_rate("github", f64::NAN);
    assert!(take(&fired).is_empty(), "at the threshold, or nothing seen");
    alerts.recovery_rate("github", 0.25);
    assert_eq!(
        take(&fired),
        [Alert::RecoveryRate {
            source: "github".into(),
            rate: 0.25,
            threshold: 0.05,
        }]
    );

    let panicking = Alerts::new(|_: &Alert| panic!("a broken hook"));
    panicking.recovery_rate("github", 1.0); // logged, not passed on
}
