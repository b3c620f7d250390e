//! Reconciliation end to end over real HTTP: the receiver example as a process, a fake
//! Stripe and a fake GitHub API in this process, the pushes through a proxy that drops some.
//! Effects are counted from the handler's effects file (one fsynced line per applied event).
//!
//! - Stripe, 1,000 events, the proxy drops exactly 10% of the pushes: one pass (run through
//!   `POST /admin/reconcile/stripe`) stores the 100 missed, every event is applied exactly
//!   once, the reported recovery rate is 10%, and a second, overlapping pass recovers nothing.
//! - Stripe, the receiver down for a stretch (200 of 1,000 pushes refused): the pass after
//!   the restart recovers them; each applied once.
//! - Stripe, a pass SIGKILLed midway (the API proxy holds page 41 of 100): the restarted
//!   receiver's first pass resumes from the checkpoint (its first request carries the saved
//!   cursor), and nothing is applied twice.
//! - GitHub, 1,000 deliveries, 10% dropped: one pass asks GitHub to redeliver exactly the
//!   missed ones, which arrive through the verified push route; each applied once.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use hookdock::scheme::Preset;
use hookdock::testing::fake::github::FakeGithub;
use hookdock::testing::fake::stripe::FakeStripe;
use hookdock::testing::Signer;
use support::Receiver;

const STRIPE_SECRET: &str = "whsec_reconcile_e2e_secret";
const STRIPE_KEY: &str = "sk_test_reconcile_e2e";
const GITHUB_SECRET: &str = "reconcile e2e github secret";
const GITHUB_TOKEN: &str = "ghp_reconcile_e2e";
const EVENTS: usize = 1000;

/// An HTTP proxy to a target that can be moved: drops the requests whose sequence numbers
/// are in `drop` (answering `502`, as a failing gateway), holds requests from `hold_from` on
/// until released, and logs every request's path and query.
#[derive(Clone)]
struct Proxy {
    state: Arc<ProxyState>,
    addr: std::net::SocketAddr,
}

struct ProxyState {
    target: Mutex<String>,
    seq: AtomicUsize,
    drop: Mutex<HashSet<usize>>,
    dropped: AtomicUsize,
    hold_from: AtomicUsize,
    release: tokio::sync::watch::Sender<bool>,
    log: Mutex<Vec<String>>,
    client: reqwest::Client,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let (release, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(ProxyState {
            target: Mutex::new(target),
            seq: AtomicUsize::new(0),
            drop: Mutex::new(HashSet::new()),
            dropped: AtomicUsize::new(0),
            hold_from: AtomicUsize::new(usize::MAX),
            release,
            log: Mutex::new(Vec::new()),
            client: reqwest::Client::new(),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn retarget(&self, target: String) {
        *self.state.target.lock().unwrap() = target;
    }

    /// Drops exactly `share` of the next `n` requests, chosen at random.
    fn drop_share_of_next(&self, n: usize, share: f64) {
        let first = self.state.seq.load(Ordering::SeqCst);
        let mut slots: Vec<usize> = (first..first + n).collect();
        fastrand::shuffle(&mut slots);
        let k = (n as f64 * share).round() as usize;
        *self.state.drop.lock().unwrap() = slots.into_iter().take(k).collect();
    }

    fn hold_from(&self, n: usize) {
        self.state
            .hold_from
            .store(self.state.seq.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }

    fn release(&self) {
        self.state.hold_from.store(usize::MAX, Ordering::SeqCst);
        let _ = self.state.release.send(true);
    }

    fn requests(&self) -> usize {
        self.state.seq.load(Ordering::SeqCst)
    }

    fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let n = state.seq.fetch_add(1, Ordering::SeqCst);
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    state.log.lock().unwrap().push(path.clone());
    if state.drop.lock().unwrap().contains(&n) {
        state.dropped.fetch_add(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::BAD_GATEWAY,
            "dropped by the test proxy",
        )
            .into_response();
    }
    if n >= state.hold_from.load(Ordering::SeqCst) {
        let mut released = state.release.subscribe();
        let _ = released.wait_for(|r| *r).await;
    }
    let target = state.target.lock().unwrap().clone();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut headers = parts.headers.clone();
    headers.remove(axum::http::header::HOST);
    let sent = state
        .client
        .request(parts.method, format!("{target}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(_) => (axum::http::StatusCode::BAD_GATEWAY, "the target is down").into_response(),
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// How often each event id was applied, from the effects file.
fn effects(path: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        *counts.entry(line.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Waits (up to two minutes) until `n` distinct events were applied; the counts.
async fn applied(path: &Path, n: usize) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = effects(path);
        if counts.len() >= n || Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_each_once(counts: &BTreeMap<String, usize>, source: &str, ids: &[String]) {
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| !counts.contains_key(&format!("{source}/{id}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} never applied, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(counts.len(), ids.len(), "nothing else applied");
}

/// `POST /admin/reconcile/{source}`: the pass's report.
async fn reconcile(receiver: &Receiver, source: &str) -> serde_json::Value {
    let answer = reqwest::Client::new()
        .post(format!("http://{}/admin/reconcile/{source}", receiver.addr))
        .send()
        .await
        .expect("the admin route answers");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap()
}

/// The stored last report of `source` from `GET /admin/stats`, if any.
async fn last_report(addr: std::net::SocketAddr, source: &str) -> Option<serde_json::Value> {
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}/admin/stats"))
        .send()
        .await
        .ok()?;
    let stats: serde_json::Value = serde_json::from_slice(&answer.bytes().await.ok()?).ok()?;
    stats["reconciliation"]
        .as_array()?
        .iter()
        .find(|r| r["source"] == source)
        .cloned()
}

/// Waits until the receiver's start-up pass of `source` has stored a report started at or
/// after `since` (Unix microseconds).
async fn startup_pass(receiver: &Receiver, source: &str, since: i64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(report) = last_report(receiver.addr, source).await {
            if report["started_at"].as_i64().unwrap_or(0) >= since && report["error"].is_null() {
                return report;
            }
        }
        assert!(Instant::now() < deadline, "no start-up pass of {source}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

struct StripeRun {
    fake: FakeStripe,
    api: Proxy,
    push: Proxy,
    signer: Signer,
    dir: tempfile::TempDir,
    ids: Vec<String>,
}

impl StripeRun {
    async fn new() -> Self {
        let fake = FakeStripe::start(STRIPE_KEY).await.unwrap();
        let api = Proxy::start(fake.url()).await;
        let push = Proxy::start("http://127.0.0.1:1".into()).await;
        let signer = Signer::new(&Preset::stripe([STRIPE_SECRET]).unwrap()).unwrap();
        Self {
            fake,
            api,
            push,
            signer,
            dir: tempfile::tempdir().unwrap(),
            ids: Vec::new(),
        }
    }

    fn effects(&self) -> std::path::PathBuf {
        self.dir.path().join("effects.log")
    }

    fn start(&self, env: &[(&str, &str)]) -> Receiver {
        let db = self.dir.path().join("receiver.db");
        let effects = self.effects();
        let api = self.api.url();
        let mut all = vec![
            ("HOOKDOCK_ROUTES", "stripe"),
            ("HOOKDOCK_STRIPE_SECRET", STRIPE_SECRET),
            ("HOOKDOCK_STRIPE_API_KEY", STRIPE_KEY),
            ("HOOKDOCK_STRIPE_API_BASE", api.as_str()),
            ("HOOKDOCK_RECONCILE_EVERY", "3600"),
            ("HOOKDOCK_DEMO_EFFECTS", effects.to_str().unwrap()),
        ];
        all.extend_from_slice(env);
        let receiver = Receiver::start(&db, GITHUB_SECRET, &all);
        self.push.retarget(format!("http://{}", receiver.addr));
        receiver
    }

    /// Creates events `from..to` at the fake and pushes each, 16 at a time, through the
    /// push proxy; how many were answered `200`.
    async fn push_events(&mut self, from: usize, to: usize) -> usize {
        let mut bodies = Vec::new();
        for i in from..to {
            let id = format!("evt_1Reconcile{i:010}");
            let event = serde_json::json!({
                "id": id, "object": "event", "api_version": "2024-06-20", "created": now_secs(),
                "type": "invoice.paid", "livemode": false, "pending_webhooks": 1,
                "data": {"object": {"id": format!("in_{i:08}"), "object": "invoice", "amount_paid": 100 + i}},
                "request": {"id": null, "idempotency_key": null}
            });
            self.fake.add_event(event);
            bodies.push(self.fake.event_body(&id).unwrap());
            self.ids.push(id);
        }
        let url = format!("{}/webhooks/stripe", self.push.url());
        let client = reqwest::Client::new();
        let ok = Arc::new(AtomicUsize::new(0));
        let mut groups: Vec<Vec<_>> = (0..16).map(|_| Vec::new()).collect();
        for (i, body) in bodies.into_iter().enumerate() {
            groups[i % 16].push(self.signer.sign(body));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for group in groups {
            let (client, url, ok) = (client.clone(), url.clone(), ok.clone());
            tasks.spawn(async move {
                for delivery in group {
                    let answer = client
                        .post(&url)
                        .headers(delivery.headers)
                        .body(delivery.body)
                        .send()
                        .await;
                    if matches!(answer, Ok(a) if a.status() == 200) {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        ok.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_a_pass_recovers_what_a_lossy_proxy_dropped() {
    let mut run = StripeRun::new().await;
    let started = micros_now();
    let receiver = run.start(&[]);
    startup_pass(&receiver, "stripe", started).await;
    run.push.drop_share_of_next(EVENTS, 0.10);
    let ok = run.push_events(0, EVENTS).await;
    assert_eq!(ok, 900, "exactly 10% dropped");
    let first = reconcile(&receiver, "stripe").await;
    println!("first pass: {first}");
    assert_eq!(first["seen"], 1000);
    assert_eq!(first["recovered"], 100);
    assert_eq!(first["known"], 900);
    let rate = first["recovery_rate"].as_f64().unwrap();
    assert!(
        (rate - 0.10).abs() <= 0.01,
        "recovery rate {rate} within a point of the drop rate"
    );
    let counts = applied(&run.effects(), EVENTS).await;
    assert_each_once(&counts, "stripe", &run.ids);

    let second = reconcile(&receiver, "stripe").await;
    println!("second pass: {second}");
    assert_eq!(
        second["recovered"], 0,
        "the overlapping pass recovers nothing"
    );
    assert_eq!(second["seen"], second["known"]);
    assert!(
        second["seen"].as_u64().unwrap() > 0,
        "it overlaps the first"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_each_once(&effects(&run.effects()), "stripe", &run.ids);
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_a_pass_recovers_what_arrived_while_the_receiver_was_down() {
    let mut run = StripeRun::new().await;
    let started = micros_now();
    let receiver = run.start(&[]);
    startup_pass(&receiver, "stripe", started).await;
    assert_eq!(run.push_events(0, 400).await, 400);
    receiver.stop();
    // Down: the provider's pushes fail (it would retry for days; here it gives up).
    assert_eq!(run.push_events(400, 600).await, 0, "nobody listening");
    let restarted = micros_now();
    let receiver = run.start(&[]);
    let startup = startup_pass(&receiver, "stripe", restarted).await;
    println!("start-up pass after the downtime: {startup}");
    assert_eq!(run.push_events(600, EVENTS).await, 400);
    let pass = reconcile(&receiver, "stripe").await;
    println!("pass after the restart: {pass}");
    let recovered = startup["recovered"].as_u64().unwrap() + pass["recovered"].as_u64().unwrap();
    assert_eq!(recovered, 200, "the 200 pushed while down, recovered once");
    let counts = applied(&run.effects(), EVENTS).await;
    assert_each_once(&counts, "stripe", &run.ids);
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_a_pass_killed_midway_resumes_from_its_checkpoint() {
    let mut run = StripeRun::new().await;
    let started = micros_now();
    let receiver = run.start(&[("HOOKDOCK_RECONCILE_PAGE", "10")]);
    startup_pass(&receiver, "stripe", started).await;
    run.push.drop_share_of_next(EVENTS, 0.30);
    assert_eq!(run.push_events(0, EVENTS).await, 700);

    // Pages of 10: the API proxy lets 40 through and holds the 41st; then SIGKILL.
    run.api.hold_from(40);
    let before = run.api.requests();
    let addr = receiver.addr;
    let pass = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{addr}/admin/reconcile/stripe"))
            .send()
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while run.api.requests() < before + 41 {
        assert!(Instant::now() < deadline, "the pass never reached page 41");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    receiver.kill();
    assert!(
        pass.await.unwrap().is_err(),
        "the pass died with the process"
    );
    let held = run.api.log()[before + 40].clone();
    run.api.release();

    // The restarted receiver's start-up pass resumes the window where the checkpoint was.
    let logged = run.api.log().len();
    let restarted = micros_now();
    let receiver = run.start(&[("HOOKDOCK_RECONCILE_PAGE", "10")]);
    let resumed = startup_pass(&receiver, "stripe", restarted).await;
    println!("resumed pass: {resumed}");
    let first_after = run.api.log()[logged].clone();
    assert!(
        first_after.contains("starting_after="),
        "resumed with a cursor: {first_after}"
    );
    let cursor = |p: &str| {
        p.split("starting_after=")
            .nth(1)
            .map(|c| c.split('&').next().unwrap().to_owned())
    };
    assert_eq!(
        cursor(&first_after),
        cursor(&held),
        "the request the kill interrupted, again"
    );
    assert_eq!(resumed["pages"], 60, "the 60 pages left, not the 100");
    let counts = applied(&run.effects(), EVENTS).await;
    assert_each_once(&counts, "stripe", &run.ids);
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_a_pass_asks_for_exactly_the_missed_deliveries_again() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start("octo-org", "hello-world", 12345678, GITHUB_TOKEN)
        .await
        .unwrap();
    let api = fake.url();
    let effects_file = dir.path().join("effects.log");
    let started = micros_now();
    let receiver = Receiver::start(
        &dir.path().join("receiver.db"),
        GITHUB_SECRET,
        &[
            ("HOOKDOCK_ROUTES", "github"),
            ("HOOKDOCK_GITHUB_TOKEN", GITHUB_TOKEN),
            ("HOOKDOCK_GITHUB_HOOK", "octo-org/hello-world/12345678"),
            ("HOOKDOCK_GITHUB_API_BASE", api.as_str()),
            ("HOOKDOCK_RECONCILE_EVERY", "3600"),
            ("HOOKDOCK_DEMO_EFFECTS", effects_file.to_str().unwrap()),
        ],
    );
    startup_pass(&receiver, "github", started).await;
    let push = Proxy::start(format!("http://{}", receiver.addr)).await;
    push.drop_share_of_next(EVENTS, 0.10);
    let signer = Signer::new(&Preset::github([GITHUB_SECRET]).unwrap()).unwrap();
    let client = reqwest::Client::new();
    let mut bodies = BTreeMap::new();
    let mut guids = Vec::new();
    for i in 0..EVENTS {
        let guid = format!(
            "{:08x}-cc78-11e3-81ab-{:012x}",
            0x72d3_0000u32 + i as u32,
            i
        );
        let body = format!(
            r#"{{"ref":"refs/heads/main","after":"{i:040x}","repository":{{"full_name":"octo-org/hello-world"}}}}"#
        );
        let delivery = signer
            .delivery(body.clone())
            .id(&guid)
            .event_type("push")
            .sign()
            .unwrap();
        let answer = client
            .post(format!("{}/webhooks/github", push.url()))
            .headers(delivery.headers)
            .body(delivery.body)
            .send()
            .await
            .unwrap();
        // GitHub records each delivery with the status it got.
        fake.add_delivery(
            guid.clone(),
            "push",
            SystemTime::now(),
            answer.status().as_u16(),
        );
        bodies.insert(guid.clone(), body);
        guids.push(guid);
    }
    let report = reconcile(&receiver, "github").await;
    println!("github pass: {report}");
    assert_eq!(report["seen"], 1000);
    assert_eq!(report["redeliveries"], 100);
    assert_eq!(report["known"], 900);
    let rate = report["recovery_rate"].as_f64().unwrap();
    assert!((rate - 0.10).abs() <= 0.01, "recovery rate {rate}");
    // GitHub sends the redeliveries through the push route (signed, same guid).
    let asked = fake.take_redeliveries();
    assert_eq!(asked.len(), 100);
    for delivery in asked {
        let signed = signer
            .delivery(bodies[&delivery.guid].clone())
            .id(&delivery.guid)
            .event_type("push")
            .sign()
            .unwrap();
        let answer = client
            .post(format!("http://{}/webhooks/github", receiver.addr))
            .headers(signed.headers)
            .body(signed.body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let counts = applied(&effects_file, EVENTS).await;
    assert_each_once(&counts, "github", &guids);
    let again = reconcile(&receiver, "github").await;
    assert_eq!(
        again["redeliveries"], 0,
        "nothing missing any more: {again}"
    );
    receiver.stop();
}
