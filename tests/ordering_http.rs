//! Ordering end to end over real HTTP: Stripe-signed deliveries of 100 customers, shuffled and
//! partly sent twice, into a receiver whose intake keys each event by `data.object.id` at
//! `created`; a worker with dedupe drains them. Per key the effects table must grow in
//! event-time order, every event older than one already applied must be skipped as stale
//! (and logged so), and no event may be applied twice. Drained while they arrive, most are
//! stale; drained as a backlog, the queue puts each key's events in order and none is.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post_service;
use axum::Router;
use hookdock::intake::Intake;
use hookdock::ordering::{self, StalePolicy};
use hookdock::scheme::Preset;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{EventFilter, EventLog, EventStatus, Queue, QueueOptions};
use hookdock::testing::Signer;
use hookdock::verify::VerifyLayer;
use hookdock::worker::{Event, HandlerError, Worker};
use tokio::net::TcpListener;
use tower::{service_fn, ServiceBuilder};

const SECRET: &str = "whsec_ordering_e2e_secret";
const KEYS: usize = 100;
const PER_KEY: usize = 100;
const BASE: u64 = 1_700_000_000;

/// One applied effect: (customer, created, event id).
type Effects = Arc<Mutex<Vec<(String, i64, String)>>>;

fn body(key: usize, n: usize) -> String {
    format!(
        r#"{{"id":"evt_{key}_{n}","object":"event","created":{},"type":"customer.updated","data":{{"object":{{"id":"cus_{key}","object":"customer","n":{n}}}}}}}"#,
        BASE + n as u64
    )
}

async fn serve(queue: impl Queue + Clone) -> SocketAddr {
    let endpoint = ServiceBuilder::new()
        .layer(VerifyLayer::new(Preset::stripe([SECRET]).expect("secret")))
        .service(
            Intake::builder(queue)
                .ordering(ordering::stripe())
                .build()
                .expect("intake"),
        );
    let app = Router::new().route("/webhooks/stripe", post_service(endpoint));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drained_while_arriving_applied_in_order_once_the_rest_stale() {
    let (applied, stale) = run(true).await;
    assert!(
        applied >= KEYS && stale > 0,
        "applied {applied}, stale {stale}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shuffled_backlog_is_applied_in_full_in_event_time_order() {
    let (applied, stale) = run(false).await;
    assert_eq!(
        (applied, stale),
        (KEYS * PER_KEY, 0),
        "the queue resequenced every key"
    );
}

/// Sends every event (shuffled, a tenth twice) with the worker running meanwhile or started
/// after; checks the effects and the event log; returns (applied, skipped as stale).
async fn run(drain_while_arriving: bool) -> (usize, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("q.db"), SqliteOptions::new()).expect("open");
    let queue = store.queue(QueueOptions::default());
    let addr = serve(queue.clone()).await;

    let effects: Effects = Arc::default();
    let table = Arc::clone(&effects);
    let build = Worker::builder(queue.clone())
        .dedupe(store.idempotency())
        .concurrency(32)
        .stale_policy(StalePolicy::Skip)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
        .build(service_fn(move |event: Event| {
            let table = Arc::clone(&table);
            async move {
                let o = event.ordering().expect("every event is keyed");
                let row = (
                    o.key().to_owned(),
                    o.position().unwrap_or(-1),
                    event.id().to_string(),
                );
                // Yield while "applying", so concurrent events of one key would interleave.
                tokio::task::yield_now().await;
                table.lock().unwrap().push(row);
                Ok::<_, HandlerError>(())
            }
        }))
        .expect("worker");
    let mut build = Some(build);
    let mut worker = None;
    if drain_while_arriving {
        worker = build.take().map(Worker::spawn);
    }

    // Every event once, a tenth of them twice, all shuffled.
    let mut sends: Vec<(usize, usize)> = (0..KEYS)
        .flat_map(|k| (0..PER_KEY).map(move |n| (k, n)))
        .collect();
    let again: Vec<(usize, usize)> = sends
        .iter()
        .copied()
        .filter(|(k, n)| (k * 7 + n) % 10 == 0)
        .collect();
    sends.extend(again.iter().copied());
    fastrand::seed(15);
    fastrand::shuffle(&mut sends);

    let signer = Arc::new(Signer::new(&Preset::stripe([SECRET]).expect("secret")).expect("signer"));
    let client = reqwest::Client::new();
    let answers: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in sends.chunks(sends.len() / 16 + 1) {
        let (chunk, signer, client, answers) = (
            chunk.to_vec(),
            Arc::clone(&signer),
            client.clone(),
            Arc::clone(&answers),
        );
        tasks.spawn(async move {
            for (k, n) in chunk {
                let d = signer.delivery(body(k, n)).sign().expect("signed");
                let response = client
                    .post(format!("http://{addr}/webhooks/stripe"))
                    .headers(d.headers)
                    .body(d.body)
                    .send()
                    .await
                    .expect("the receiver answers");
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default().trim().to_owned();
                assert_eq!(status, 200, "{text}");
                *answers.lock().unwrap().entry(text).or_default() += 1;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a sender panicked");
    }
    let answers = answers.lock().unwrap().clone();
    assert_eq!(
        answers.get("stored"),
        Some(&(KEYS * PER_KEY)),
        "{answers:?}"
    );
    assert_eq!(answers.get("duplicate"), Some(&again.len()), "{answers:?}");

    if let Some(build) = build.take() {
        worker = Some(build.spawn());
    }
    let worker = worker.expect("started");
    // Drain: wait until nothing is waiting or leased.
    for _ in 0..6_000 {
        if queue.stats().await.expect("stats").depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = worker.shutdown().await;
    assert_eq!(report.give_back_failed, 0);
    assert_eq!(
        queue.stats().await.expect("stats").depth(),
        0,
        "the backlog drained"
    );

    let effects = effects.lock().unwrap().clone();
    let mut per_key: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut applied_ids: HashMap<&str, usize> = HashMap::new();
    for (key, position, id) in &effects {
        per_key.entry(key).or_default().push(*position);
        *applied_ids.entry(id).or_default() += 1;
    }
    assert!(
        applied_ids.values().all(|&n| n == 1),
        "an event was applied twice"
    );
    for (key, positions) in &per_key {
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "{key}: effects out of event-time order: {positions:?}"
        );
    }
    // The newest event of every key is applied: nothing newer can make it stale.
    assert_eq!(per_key.len(), KEYS);
    let newest = ((BASE + PER_KEY as u64 - 1) * 1_000_000) as i64;
    assert!(per_key.values().all(|p| p.last() == Some(&newest)));

    // Every event not applied was skipped as stale, and the event log says so.
    let mut stale = 0;
    let mut succeeded = 0;
    let mut before = None;
    loop {
        let mut filter = EventFilter::all().source("stripe").limit(1000);
        if let Some(b) = before {
            filter = filter.before(b);
        }
        let page = queue.list(&filter).await.expect("list");
        for entry in &page.entries {
            match entry.status {
                EventStatus::Stale => stale += 1,
                EventStatus::Succeeded => succeeded += 1,
                other => panic!("{}: unexpected status {other:?}", entry.event_id),
            }
        }
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(
        succeeded,
        effects.len(),
        "every applied event is logged as succeeded"
    );
    assert_eq!(
        stale + succeeded,
        KEYS * PER_KEY,
        "each event is either applied or skipped as stale"
    );
    println!(
        "ordering e2e (drained {}): {} events over {KEYS} keys, {} resent; applied {succeeded}, skipped as stale {stale}",
        if drain_while_arriving { "while arriving" } else { "as a backlog" },
        KEYS * PER_KEY,
        again.len()
    );
    store.close().await;
    (succeeded, stale)
}
