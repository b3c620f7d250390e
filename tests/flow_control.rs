//! Flow control end to end: the inbound rate limit over real HTTP (axum on a loopback socket,
//! reqwest, a SQLite queue) answers `429` + `Retry-After` above the route's rate and stores
//! nothing it refused; the worker's rate limit holds its rate over a minute of backlog (on
//! Tokio's paused clock, over a memory queue), hands back what it holds without using
//! attempts, and the cap per source never runs more than `n` of one source at once while
//! other sources keep running.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::routing::post_service;
use axum::Router;
use hookdock::limit::{RateKey, RateLimit, RateLimitLayer};
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{EventFilter, EventLog, EventStatus, MemoryStore, Queue, QueueOptions};
use hookdock::testing::Signer;
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::{Intake, Preset, RawEvent, VerifyLayer};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{service_fn, ServiceBuilder};

const SECRET: &str = "flow-control-secret";

fn github() -> Preset {
    Preset::github([SECRET]).expect("preset")
}

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

/// `hookdock_deliveries_total` for `source` by (`outcome`, `kind`), from what was recorded
/// since the last snapshot.
fn deliveries(source: &str) -> HashMap<(String, String), u64> {
    let mut counts = HashMap::new();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let key = key.key();
        if key.name() != "hookdock_deliveries_total" {
            continue;
        }
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        if label("source") != source {
            continue;
        }
        if let DebugValue::Counter(n) = value {
            *counts.entry((label("outcome"), label("kind"))).or_default() += n;
        }
    }
    counts
}

async fn serve_limited(queue: Arc<dyn Queue>, limit: RateLimit) -> SocketAddr {
    let app = Router::new().route(
        "/github",
        post_service(
            ServiceBuilder::new()
                .layer(RateLimitLayer::new(limit).source("github-limited"))
                .layer(VerifyLayer::new(github()))
                .service(
                    Intake::builder(queue)
                        .source("github-limited")
                        .build()
                        .unwrap(),
                ),
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Sends a signed delivery; the status, `Retry-After` and body of the answer.
async fn deliver(addr: SocketAddr, id: String) -> (u16, Option<u64>, String) {
    let signed = Signer::new(&github())
        .unwrap()
        .delivery(format!("{{\"id\":\"{id}\"}}"))
        .id(&id)
        .event_type("push")
        .sign()
        .unwrap();
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/github"))
        .body(signed.body.clone());
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().expect("whole seconds"));
    (
        status,
        retry_after,
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_limited_route_answers_429_above_its_rate_and_stores_only_what_it_accepted() {
    const N: u32 = 10;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("limited.db"), SqliteOptions::new()).unwrap();
    let queue = Arc::new(store.queue(QueueOptions::default()));
    // N a minute with a burst of N: the bucket holds N, and the next token is 6 s away,
    // far longer than 3N requests take on loopback.
    let limit = RateLimit::per_minute(N, N).unwrap();
    let addr = serve_limited(Arc::clone(&queue) as Arc<dyn Queue>, limit).await;
    let _ = deliveries("github-limited");

    let answers = futures_util::future::join_all(
        (0..3 * N).map(|i| tokio::spawn(deliver(addr, format!("d-{i}")))),
    )
    .await;
    let mut accepted = HashSet::new();
    let mut refused = 0;
    for (i, answer) in answers.into_iter().enumerate() {
        let (status, retry_after, body) = answer.unwrap();
        match status {
            200 => {
                assert_eq!(body, "stored\n");
                accepted.insert(format!("d-{i}"));
            }
            429 => {
                refused += 1;
                assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
                assert_eq!(body, "not stored: rate limited, retry later\n");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(accepted.len(), N as usize);
    assert_eq!(refused, 2 * N);

    // Exactly what was accepted is stored; nothing refused is.
    assert_eq!(queue.stats().await.unwrap().ready, u64::from(N));
    let page = queue.list(&EventFilter::all().limit(1000)).await.unwrap();
    let stored: HashSet<String> = page
        .entries
        .iter()
        .map(|e| e.event_id.as_str().to_owned())
        .collect();
    assert_eq!(stored, accepted);

    let counted = deliveries("github-limited");
    assert_eq!(
        counted.get(&("refused".into(), "rate_limited".into())),
        Some(&u64::from(2 * N))
    );
    assert_eq!(
        counted.get(&("stored".into(), "none".into())),
        Some(&u64::from(N))
    );
}

/// A crate clock that follows Tokio's (paused) clock, so the queue's due times and the
/// rate limiter's buckets move together.
fn tokio_clock() -> impl Fn() -> SystemTime + Send + Sync + Clone + 'static {
    let start = tokio::time::Instant::now();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    move || base + start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn the_worker_holds_its_rate_over_a_minute_of_backlog_without_using_attempts() {
    const BACKLOG: usize = 5_000;
    const RATE: u32 = 50;
    let clock = tokio_clock();
    let store = MemoryStore::new().with_clock(clock.clone());
    let queue = Arc::new(store.queue(QueueOptions::default()));
    for i in 0..BACKLOG {
        queue
            .enqueue(RawEvent::new("burst", format!("e-{i}"), clock(), "{}"))
            .await
            .unwrap();
    }
    let handled = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
    let effects = Arc::clone(&handled);
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .dedupe(store.idempotency())
        .rate_limit(RateLimit::per_second(RATE, 1).unwrap())
        .build(service_fn(move |event: Event| {
            let effects = Arc::clone(&effects);
            async move {
                effects
                    .lock()
                    .unwrap()
                    .push((event.id().as_str().to_owned(), event.attempt()));
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    let handle = worker.spawn();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stats = handle.stats();
    let report = handle.shutdown().await;
    let handled = handled.lock().unwrap().clone();

    // 60 s at 50/s (plus the one token the bucket starts with): 3,000 within 5%.
    let expected = 60.0 * f64::from(RATE);
    let got = handled.len() as f64;
    assert!(
        (got - expected).abs() <= expected * 0.05,
        "handled {got} in 60 s, expected {expected} ± 5%"
    );
    // Each event once, and every one of them on its first attempt: hand-backs used none.
    let ids: HashSet<&str> = handled.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), handled.len());
    assert!(handled.iter().all(|(_, attempt)| *attempt == 1));
    assert!(
        stats.deferred > 0,
        "the backlog was held back by hand-backs"
    );
    // Nothing dropped: what was not handled is still in the queue, ready.
    let left = queue.stats().await.unwrap();
    assert_eq!(left.dead, 0);
    assert_eq!(
        left.ready + left.scheduled + left.leased,
        (BACKLOG - handled.len()) as u64,
        "{left:?} {report:?}"
    );
    // The log agrees: a handled event's record counts one attempt.
    let first = &handled[0].0;
    let logged = queue.get("burst", first).await.unwrap().expect("logged");
    assert_eq!(logged.entry.status, EventStatus::Succeeded);
    assert_eq!(logged.entry.attempts, 1);
    let waiting = queue
        .list(&EventFilter::all().status(EventStatus::Pending).limit(10))
        .await
        .unwrap();
    assert!(
        waiting.entries.iter().all(|e| e.attempts == 0),
        "{:?}",
        waiting.entries
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limits_per_event_type_are_separate_buckets() {
    let clock = tokio_clock();
    let store = MemoryStore::new().with_clock(clock.clone());
    let queue = Arc::new(store.queue(QueueOptions::default()));
    for i in 0..200 {
        let ty = if i % 2 == 0 { "push" } else { "issues" };
        queue
            .enqueue(RawEvent::new("gh", format!("e-{i}"), clock(), "{}").with_event_type(ty))
            .await
            .unwrap();
    }
    let by_type = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let effects = Arc::clone(&by_type);
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .rate_limit(
            RateLimit::per_second(5, 1)
                .unwrap()
                .keyed(RateKey::SourceAndType),
        )
        .build(service_fn(move |event: Event| {
            let effects = Arc::clone(&effects);
            async move {
                let ty = event
                    .raw()
                    .event_type
                    .as_ref()
                    .map(|t| t.as_str().to_owned());
                *effects
                    .lock()
                    .unwrap()
                    .entry(ty.unwrap_or_default())
                    .or_default() += 1;
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    let handle = worker.spawn();
    tokio::time::sleep(Duration::from_secs(10)).await;
    handle.shutdown().await;
    let by_type = by_type.lock().unwrap().clone();
    // Each type has its own 5/s: about 50 each in 10 s, not 50 between them.
    for ty in ["push", "issues"] {
        let n = by_type.get(ty).copied().unwrap_or(0);
        assert!((45..=56).contains(&n), "{ty}: {n} in 10 s at 5/s");
    }
}

#[tokio::test(start_paused = true)]
async fn the_cap_per_source_holds_while_other_sources_keep_running() {
    const CAP: usize = 2;
    let clock = tokio_clock();
    let store = MemoryStore::new().with_clock(clock.clone());
    let queue = Arc::new(store.queue(QueueOptions::default()));
    for i in 0..40 {
        queue
            .enqueue(RawEvent::new("busy", format!("b-{i}"), clock(), "{}"))
            .await
            .unwrap();
    }
    for i in 0..10 {
        queue
            .enqueue(RawEvent::new("quiet", format!("q-{i}"), clock(), "{}"))
            .await
            .unwrap();
    }
    #[derive(Default)]
    struct Counts {
        running: HashMap<String, usize>,
        most: HashMap<String, usize>,
        done: HashMap<String, usize>,
        busy_done_when_quiet_finished: Option<usize>,
    }
    let counts = Arc::new(Mutex::new(Counts::default()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let (effects, tries) = (Arc::clone(&counts), Arc::clone(&attempts));
    let worker = Worker::builder(Arc::clone(&queue))
        .clock(clock.clone())
        .concurrency(16)
        .max_concurrent_per_source(CAP)
        .build(service_fn(move |event: Event| {
            let effects = Arc::clone(&effects);
            let tries = Arc::clone(&tries);
            async move {
                let source = event.source().to_owned();
                assert_eq!(event.attempt(), 1, "hand-backs use no attempt");
                tries.fetch_add(1, Ordering::SeqCst);
                {
                    let mut c = effects.lock().unwrap();
                    let running = c.running.entry(source.clone()).or_default();
                    *running += 1;
                    let now = *running;
                    let most = c.most.entry(source.clone()).or_default();
                    *most = (*most).max(now);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut c = effects.lock().unwrap();
                *c.running.get_mut(&source).unwrap() -= 1;
                *c.done.entry(source.clone()).or_default() += 1;
                if source == "quiet" && c.done["quiet"] == 10 {
                    c.busy_done_when_quiet_finished =
                        Some(c.done.get("busy").copied().unwrap_or(0));
                }
                Ok::<_, HandlerError>(())
            }
        }))
        .unwrap();
    let handle = worker.spawn();
    // 40 busy events, 2 at a time, 0.5 s each: 10 s; give it more.
    tokio::time::sleep(Duration::from_secs(30)).await;
    handle.shutdown().await;
    assert_eq!(queue.stats().await.unwrap().depth(), 0);
    let c = counts.lock().unwrap();
    assert_eq!(c.most["busy"], CAP, "the cap is reached and never passed");
    assert_eq!(c.most["quiet"], CAP);
    assert_eq!(c.done["busy"], 40);
    assert_eq!(c.done["quiet"], 10);
    assert_eq!(attempts.load(Ordering::SeqCst), 50, "each event ran once");
    // The quiet source finished while most of the busy backlog still waited.
    let busy_then = c.busy_done_when_quiet_finished.expect("quiet finished");
    assert!(
        busy_then < 20,
        "busy had done {busy_then} of 40 when quiet finished"
    );
}

/// Load shedding from queue depth is the intake's `503` + `Retry-After` under
/// `QueueOptions::max_depth`; the refused delivery is stored when retried after a drain.
#[tokio::test]
async fn a_full_queue_sheds_load_with_503_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("shed.db"), SqliteOptions::new()).unwrap();
    let queue = Arc::new(store.queue(QueueOptions::default().max_depth(2)));
    let app = Router::new().route(
        "/github",
        post_service(
            ServiceBuilder::new()
                .layer(VerifyLayer::new(github()))
                .service(Intake::new(Arc::clone(&queue) as Arc<dyn Queue>)),
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    for i in 0..2 {
        let (status, _, body) = deliver(addr, format!("s-{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry_after, body) = deliver(addr, "s-2".into()).await;
    assert_eq!(status, 503);
    assert_eq!(retry_after, Some(10));
    assert_eq!(body, "not stored: the queue is full, retry later\n");
    assert!(queue.get("github", "s-2").await.unwrap().is_none());

    // The worker drains the queue; the sender's retry is then stored.
    let worker = Worker::builder(Arc::clone(&queue))
        .build(service_fn(|_: Event| async { Ok::<_, HandlerError>(()) }))
        .unwrap();
    assert_eq!(worker.run_until_idle().await.unwrap().succeeded, 2);
    let (status, _, body) = deliver(addr, "s-2".into()).await;
    assert_eq!(status, 200, "{body}");
    assert!(queue.get("github", "s-2").await.unwrap().is_some());
}
