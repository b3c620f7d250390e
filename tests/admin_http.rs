//! End to end: `hookdock::admin` served on a real socket (127.0.0.1, port 0) over a
//! `MemoryQueue`, called with a real HTTP client (reqwest).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hookdock::admin::Admin;
use hookdock::store::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, EventFilter, EventLog, Lease, Leased,
    LogCounts, LogPage, LoggedEvent, MemoryQueue, MemoryStore, Queue, QueueOptions, QueueStats,
    ReplayJob, ReplayJobId, ReplayMode, StoreError, MAX_PAGE,
};
use hookdock::RawEvent;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::Semaphore;

const READ: &str = "read-token-0123456789";
const WRITE: &str = "write-token-9876543210";

/// 2026-01-01T00:00:00Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn queue() -> Arc<MemoryQueue> {
    Arc::new(MemoryStore::new().queue(QueueOptions::default()))
}

/// Serves the admin routes under `/admin` on a fresh loopback port.
async fn serve(admin: Admin) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().nest("/admin", admin.router());
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    addr
}

/// An admin over `log` with both tokens, on loopback.
async fn serve_guarded(log: impl EventLog) -> SocketAddr {
    let admin = Admin::builder(log)
        .read_token(READ)
        .write_token(WRITE)
        .replay_batch_size(50)
        .served_on("127.0.0.1:0".parse().unwrap())
        .build()
        .expect("admin builds");
    serve(admin).await
}

/// Implements `Queue` for a wrapper by its `log` field.
macro_rules! queue_by_field {
    ($ty:ty) => {
        #[async_trait]
        impl Queue for $ty {
            fn durability(&self) -> Durability {
                self.log.durability()
            }
            async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
                self.log.enqueue(event).await
            }
            async fn lease(&self, max: usize, d: Duration) -> Result<Vec<Leased>, StoreError> {
                self.log.lease(max, d).await
            }
            async fn extend(&self, lease: &Lease, d: Duration) -> Result<Lease, StoreError> {
                self.log.extend(lease, d).await
            }
            async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
                self.log.ack(lease).await
            }
            async fn skip(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
                self.log.skip(lease, reason).await
            }
            async fn retry(&self, l: &Lease, at: SystemTime, e: &str) -> Result<(), StoreError> {
                self.log.retry(l, at, e).await
            }
            async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
                self.log.defer(lease, at).await
            }
            async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
                self.log.dead_letter(lease, reason).await
            }
            async fn dead_letters(
                &self,
                filter: &DeadLetterFilter,
            ) -> Result<Vec<DeadLetter>, StoreError> {
                self.log.dead_letters(filter).await
            }
            async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
                Queue::replay(&*self.log, filter).await
            }
            async fn stats(&self) -> Result<QueueStats, StoreError> {
                self.log.stats().await
            }
            async fn purge_expired(&self) -> Result<u64, StoreError> {
                self.log.purge_expired().await
            }
            async fn check_writable(&self) -> Result<(), StoreError> {
                self.log.check_writable().await
            }
        }
    };
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/admin{path}");
    let mut request = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("the admin routes answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let answer = call(addr, "GET", path, Some(READ), None).await;
    assert_eq!(
        answer.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

async fn post(addr: SocketAddr, path: &str, body: Option<&str>) -> Answer {
    call(addr, "POST", path, Some(WRITE), body).await
}

/// Stores `n` events `prefix-0..n` of `source`, one second apart from `start`.
async fn store_events(
    queue: &MemoryQueue,
    source: &str,
    prefix: &str,
    n: usize,
    start: SystemTime,
) {
    for i in 0..n {
        let event = RawEvent::new(
            source,
            format!("{prefix}-{i}"),
            start + Duration::from_secs(i as u64),
            format!("{{\"n\":{i}}}"),
        )
        .with_event_type(if i % 2 == 0 { "push" } else { "issues" });
        queue.enqueue(event).await.expect("stored");
    }
}

/// Leases up to `n` ready events and acks them (or dead-letters them).
async fn settle(queue: &MemoryQueue, n: usize, dead: bool) -> usize {
    let leased = queue
        .lease(n, Duration::from_secs(60))
        .await
        .expect("lease");
    for l in &leased {
        if dead {
            queue
                .dead_letter(&l.lease, "handler said no")
                .await
                .expect("dead");
        } else {
            queue.ack(&l.lease).await.expect("ack");
        }
    }
    leased.len()
}

fn ids(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

#[tokio::test]
async fn list_filters_and_walks_every_page_once() {
    let queue = queue();
    store_events(&queue, "github", "gh", 130, t0()).await;
    store_events(&queue, "stripe", "st", 70, t0()).await;
    // The 130 github events went in first: lease them all and ack 100, dead-letter 30.
    assert_eq!(settle(&queue, 100, false).await, 100);
    assert_eq!(settle(&queue, 30, true).await, 30);
    let addr = serve_guarded(Arc::clone(&queue)).await;

    // Walk every page of 40: each event exactly once, newest first.
    let mut seen = Vec::new();
    let mut messages = Vec::new();
    let mut path = "/events?limit=40".to_owned();
    let mut pages = 0;
    loop {
        let page = get(addr, &path).await;
        pages += 1;
        assert_eq!(page["limit"], 40);
        for e in page["entries"].as_array().unwrap() {
            messages.push(e["message"].as_i64().unwrap());
        }
        seen.extend(ids(&page));
        match page["next"].as_i64() {
            Some(next) => path = format!("/events?limit=40&before={next}"),
            None => break,
        }
        assert!(pages < 10, "the walk ends");
    }
    // Five full pages of 40; a full page always has a `next`, so the sixth is empty.
    assert_eq!(pages, 6, "200 events in pages of 40");
    assert_eq!(seen.len(), 200);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 200, "each entry once");
    assert!(messages.windows(2).all(|w| w[0] > w[1]), "newest first");

    // Filters: source, status, type, origin, and times in both forms.
    let page = get(addr, "/events?source=github&status=succeeded&limit=1000").await;
    assert_eq!(ids(&page).len(), 100);
    assert!(page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["source"] == "github" && e["status"] == "succeeded"));
    let page = get(
        addr,
        "/events?source=stripe&status=pending&type=push&limit=1000",
    )
    .await;
    assert_eq!(ids(&page).len(), 35);
    assert_eq!(
        ids(&get(addr, "/events?origin=push&limit=1000").await).len(),
        200
    );
    assert_eq!(ids(&get(addr, "/events?origin=replay").await).len(), 0);
    // The first ten seconds: gh-0..9 and st-0..9, by RFC 3339 and by Unix milliseconds.
    let page = get(
        addr,
        "/events?from=2026-01-01T00:00:00Z&until=2026-01-01T01:00:10%2B01:00&limit=1000",
    )
    .await;
    assert_eq!(ids(&page).len(), 20);
    let page = get(
        addr,
        "/events?from=1767225605000&until=1767225610000&source=github",
    )
    .await;
    let mut got = ids(&page);
    got.sort();
    assert_eq!(got, ["gh-5", "gh-6", "gh-7", "gh-8", "gh-9"]);

    // Dead letters: the 30, with their reason.
    let dead = get(addr, "/dead?limit=1000").await;
    assert_eq!(ids(&dead).len(), 30);
    assert!(dead["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["status"] == "dead" && e["last_error"] == "handler said no"));
    assert_eq!(ids(&get(addr, "/dead?source=stripe").await).len(), 0);

    // Stats: log counts, and the queue's.
    let stats = get(addr, "/stats").await;
    assert_eq!(stats["log"]["total"], 200);
    assert_eq!(stats["queue"]["ready"], 70);
    assert_eq!(stats["queue"]["dead"], 30);
    let succeeded: u64 = stats["log"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["status"] == "succeeded")
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(succeeded, 100);
    assert!(stats["oldest_pending_age_ms"].as_u64().is_some());
    assert_eq!(get(addr, "/stats?source=stripe").await["log"]["total"], 70);
}

#[tokio::test]
async fn pages_are_bounded_and_bad_filters_are_named() {
    let queue = queue();
    store_events(&queue, "github", "gh", MAX_PAGE + 50, t0()).await;
    let addr = serve_guarded(Arc::clone(&queue)).await;

    let page = get(addr, "/events?limit=5000").await;
    assert_eq!(page["limit"], MAX_PAGE);
    assert_eq!(ids(&page).len(), MAX_PAGE);
    assert!(page["next"].is_i64());
    let page = get(addr, "/events").await;
    assert_eq!(ids(&page).len(), hookdock::store::DEFAULT_PAGE);

    for (query, parameter, says) in [
        ("status=exploded", "status", "pending, leased"),
        ("origin=mars", "origin", "push, replay, reconciliation"),
        ("from=yesterday", "from", "RFC 3339"),
        ("until=2026-02-30T00:00:00Z", "until", "RFC 3339"),
        ("limit=0", "limit", "positive"),
        ("before=last", "before", "message id"),
        ("sauce=github", "sauce", "unknown parameter"),
        ("source=a&source=b", "source", "more than once"),
    ] {
        for route in ["/events", "/dead", "/stats"] {
            let answer = call(addr, "GET", &format!("{route}?{query}"), Some(READ), None).await;
            assert_eq!(answer.status, 400, "{route}?{query}");
            let json = answer.json();
            assert_eq!(json["reason"], "bad_parameter", "{json}");
            assert_eq!(json["parameter"], parameter, "{json}");
            let error = json["error"].as_str().unwrap();
            assert!(error.contains(says), "{route}?{query}: {error}");
        }
    }
    let answer = call(addr, "GET", "/dead?status=succeeded", Some(READ), None).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["parameter"], "status");
}

#[tokio::test]
async fn show_and_raw_body_byte_for_byte() {
    let queue = queue();
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert("x-github-event", HeaderValue::from_static("push"));
    headers.append("x-multi", HeaderValue::from_static("one"));
    headers.append("x-multi", HeaderValue::from_static("two"));
    let json_body = br#"{"zen":"Keep it logically awesome.","n":1}"#;
    queue
        .enqueue(RawEvent::new("github", "with/slash", t0(), &json_body[..]).with_headers(headers))
        .await
        .unwrap();
    // Every byte value, no content type.
    let binary: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    queue
        .enqueue(RawEvent::new("raw", "bin-1", t0(), binary.clone()))
        .await
        .unwrap();
    let addr = serve_guarded(Arc::clone(&queue)).await;

    let shown = get(addr, "/events/github/with%2Fslash").await;
    assert_eq!(shown["entry"]["event_id"], "with/slash");
    assert_eq!(shown["entry"]["source"], "github");
    assert_eq!(shown["entry"]["status"], "pending");
    assert_eq!(shown["body_bytes"], json_body.len());
    let headers = shown["headers"].as_array().unwrap();
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|h| h["name"] == name)
            .map(|h| h["value"].as_str().unwrap())
            .collect()
    };
    assert_eq!(values("x-github-event"), ["push"]);
    assert_eq!(values("x-multi"), ["one", "two"]);

    let body = call(
        addr,
        "GET",
        "/events/github/with%2Fslash/body",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(body.status, 200);
    assert_eq!(&body.body[..], &json_body[..]);
    assert_eq!(
        body.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(body.headers["x-content-type-options"], "nosniff");
    assert_eq!(body.headers["cache-control"], "no-store");

    let body = call(addr, "GET", "/events/raw/bin-1/body", Some(READ), None).await;
    assert_eq!(body.status, 200);
    assert_eq!(&body.body[..], &binary[..], "byte for byte");
    assert_eq!(body.headers["content-type"], "application/octet-stream");

    for path in [
        "/events/raw/nope",
        "/events/raw/nope/body",
        "/events/nope/bin-1",
    ] {
        let answer = call(addr, "GET", path, Some(READ), None).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.json()["reason"], "not_found");
    }
    let answer = post(addr, "/events/raw/nope/replay", None).await;
    assert_eq!(answer.status, 404);
    assert!(
        get(addr, "/replays").await["jobs"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no job made"
    );
}

async fn entry(addr: SocketAddr, source: &str, id: &str) -> Value {
    get(addr, &format!("/events/{source}/{id}")).await["entry"].clone()
}

#[tokio::test]
async fn replay_one_through_dedupe_then_forced() {
    let queue = queue();
    store_events(&queue, "github", "gh", 3, t0()).await;
    assert_eq!(settle(&queue, 3, false).await, 3);
    let addr = serve_guarded(Arc::clone(&queue)).await;
    assert_eq!(entry(addr, "github", "gh-1").await["status"], "succeeded");

    let answer = post(addr, "/events/github/gh-1/replay?mode=dedupe", None).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let job = answer.json();
    assert_eq!(job["state"], "finished");
    assert_eq!(job["mode"], "dedupe");
    assert_eq!(job["replayed"], 1);
    let e = entry(addr, "github", "gh-1").await;
    assert_eq!(e["status"], "pending", "ready again: {e}");
    assert_eq!(e["origin"], "replay");
    assert_eq!(e["replays"], 1);
    assert_eq!(e["forced_replays"], 0);
    assert_eq!(e["attempts"], 0);
    // The others are untouched.
    assert_eq!(entry(addr, "github", "gh-0").await["replays"], 0);
    // Ready again: the next lease hands out exactly that event.
    let leased = queue.lease(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].event.id.as_str(), "gh-1");
    assert_eq!(
        leased[0].event.body.as_ref(),
        b"{\"n\":1}",
        "the original bytes"
    );

    // While it is leased (not settled), a replay skips it.
    let job = post(addr, "/events/github/gh-1/replay", None).await.json();
    assert_eq!(
        (job["replayed"].as_u64(), job["skipped"].as_u64()),
        (Some(0), Some(1))
    );
    queue.ack(&leased[0].lease).await.unwrap();

    let job = post(addr, "/events/github/gh-1/replay?mode=forced", None)
        .await
        .json();
    assert_eq!(job["mode"], "forced");
    assert_eq!(job["replayed"], 1);
    let e = entry(addr, "github", "gh-1").await;
    assert_eq!(e["status"], "pending");
    assert_eq!(e["replays"], 2);
    assert_eq!(e["forced_replays"], 1);
    assert_eq!(get(addr, "/stats").await["queue"]["ready"], 1);

    let answer = post(addr, "/events/github/gh-1/replay?mode=again", None).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["parameter"], "mode");
    // Jobs of one are listed with the others.
    assert_eq!(
        get(addr, "/replays").await["jobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// An event log whose replay steps each wait for a permit the test hands out, so the test
/// sees a job mid-way without depending on timing.
struct Gated {
    log: Arc<MemoryQueue>,
    steps: Arc<Semaphore>,
    /// Steps that returned.
    stepped: Arc<AtomicUsize>,
}

queue_by_field!(Gated);

#[async_trait]
impl EventLog for Gated {
    async fn list(&self, filter: &EventFilter) -> Result<LogPage, StoreError> {
        self.log.list(filter).await
    }
    async fn get(&self, source: &str, id: &str) -> Result<Option<LoggedEvent>, StoreError> {
        self.log.get(source, id).await
    }
    async fn counts(&self, filter: &EventFilter) -> Result<LogCounts, StoreError> {
        self.log.counts(filter).await
    }
    async fn create_replay(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        self.log.create_replay(filter, mode).await
    }
    async fn step_replay(&self, job: ReplayJobId, max: usize) -> Result<ReplayJob, StoreError> {
        self.steps.acquire().await.expect("semaphore open").forget();
        let stepped = self.log.step_replay(job, max).await;
        self.stepped.fetch_add(1, Ordering::SeqCst);
        stepped
    }
    async fn replay_job(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        self.log.replay_job(job).await
    }
    async fn replay_jobs(&self, running_only: bool) -> Result<Vec<ReplayJob>, StoreError> {
        self.log.replay_jobs(running_only).await
    }
    async fn cancel_replay(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        self.log.cancel_replay(job).await
    }
}

/// Polls `GET /replays/{id}` until `done` holds (up to a minute).
async fn job_until(addr: SocketAddr, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..6000 {
        let job = get(addr, &format!("/replays/{id}")).await;
        if done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("replay job {id} never got there");
}

#[tokio::test]
async fn bulk_replay_of_dead_letters_runs_in_the_background_with_progress() {
    let queue = queue();
    store_events(&queue, "github", "gh", 300, t0()).await;
    store_events(&queue, "stripe", "st", 20, t0()).await;
    assert_eq!(settle(&queue, 300, true).await, 300, "the github ones dead");
    let steps = Arc::new(Semaphore::new(0));
    let stepped = Arc::new(AtomicUsize::new(0));
    let gated = Gated {
        log: Arc::clone(&queue),
        steps: Arc::clone(&steps),
        stepped: Arc::clone(&stepped),
    };
    let addr = serve_guarded(gated).await;

    let answer = post(addr, "/dead/replay", None).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let job = answer.json();
    let id = job["id"].as_i64().unwrap();
    assert_eq!(job["state"], "running");
    assert_eq!(job["total"], 300);
    assert_eq!(job["replayed"], 0);
    assert_eq!(job["filter"]["status"], "dead");

    // One step of 50 (the batch size), then the job waits: progress is visible.
    steps.add_permits(1);
    let job = job_until(addr, id, |j| j["replayed"] == 50).await;
    assert_eq!(job["state"], "running");
    assert_eq!(ids(&get(addr, "/dead?limit=1000").await).len(), 250);
    let running = get(addr, "/replays?running=true").await;
    assert_eq!(running["jobs"][0]["id"], id);

    steps.add_permits(1000);
    let job = job_until(addr, id, |j| j["state"] != "running").await;
    assert_eq!(job["state"], "finished");
    assert_eq!(job["replayed"], 300);
    assert_eq!(job["skipped"], 0);
    assert!(ids(&get(addr, "/dead").await).is_empty());
    let stats = get(addr, "/stats").await;
    assert_eq!(
        stats["queue"]["ready"], 320,
        "300 replayed + 20 never settled"
    );
    assert_eq!(
        ids(&get(addr, "/events?origin=replay&limit=1000").await).len(),
        300
    );
    assert!(get(addr, "/replays?running=true").await["jobs"]
        .as_array()
        .unwrap()
        .is_empty());

    // A filtered job through `POST /replays`, forced; then cancelled midway.
    steps.forget_permits(steps.available_permits());
    assert_eq!(settle(&queue, 1000, false).await, 320);
    let body = r#"{"filter": {"source": "github", "event_type": "push"}, "mode": "forced"}"#;
    let answer = post(addr, "/replays", Some(body)).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let job = answer.json();
    assert_eq!(job["total"], 150);
    assert_eq!(job["mode"], "forced");
    let id = job["id"].as_i64().unwrap();
    steps.add_permits(1);
    job_until(addr, id, |j| j["replayed"] == 50).await;
    let cancelled = post(addr, &format!("/replays/{id}/cancel"), None).await;
    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.json()["state"], "cancelled");
    // The job's task was waiting in its next step: let it take that step, and wait until
    // the step returned.
    let before = stepped.load(Ordering::SeqCst);
    steps.add_permits(1000);
    for _ in 0..6000 {
        if stepped.load(Ordering::SeqCst) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        stepped.load(Ordering::SeqCst),
        before + 1,
        "one more step, then the task ends"
    );
    let job = get(addr, &format!("/replays/{id}")).await;
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["replayed"], 50, "nothing replayed after the cancel");
    assert_eq!(
        ids(&get(addr, "/events?status=pending&limit=1000").await).len(),
        50
    );

    // Unknown jobs, bad ids and bad bodies.
    assert_eq!(
        call(addr, "GET", "/replays/999", Some(READ), None)
            .await
            .status,
        404
    );
    assert_eq!(post(addr, "/replays/999/cancel", None).await.status, 404);
    assert_eq!(
        call(addr, "GET", "/replays/abc", Some(READ), None)
            .await
            .status,
        400
    );
    for bad in [
        r#"{"filter": {"type": "push"}}"#,
        r#"{"mode": "forced"}"#,
        r#"{"filter": {}, "mode": "sometimes"}"#,
        "nope",
    ] {
        let answer = post(addr, "/replays", Some(bad)).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.json()["error"].as_str().is_some());
    }
    let answer = post(
        addr,
        "/dead/replay",
        Some(r#"{"filter": {"status": "succeeded"}}"#),
    )
    .await;
    assert_eq!(answer.status, 400);
    // A query meant to narrow a bulk replay is refused, never ignored.
    let answer = post(addr, "/dead/replay?id=7", None).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["parameter"], "id");
    assert_eq!(
        get(addr, "/replays").await["jobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn the_token_matrix_on_a_read_and_a_write_route() {
    let queue = queue();
    store_events(&queue, "github", "gh", 1, t0()).await;
    settle(&queue, 1, false).await;
    let addr = serve_guarded(Arc::clone(&queue)).await;
    let cases: [(Option<&str>, u16, u16); 4] = [
        (None, 401, 401),
        (Some("not-a-token"), 401, 401),
        (Some(READ), 200, 403),
        (Some(WRITE), 200, 200),
    ];
    for (token, read, write) in cases {
        let answer = call(addr, "GET", "/events", token, None).await;
        assert_eq!(answer.status, read, "GET with {token:?}");
        if read == 401 {
            let challenge = answer.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            assert_eq!(answer.json()["reason"], "unauthorized");
            assert!(!answer
                .body
                .windows(READ.len())
                .any(|w| w == READ.as_bytes()));
        }
        let answer = call(addr, "POST", "/events/github/gh-0/replay", token, None).await;
        assert_eq!(answer.status, write, "POST with {token:?}");
        if write == 401 {
            assert!(answer.headers.contains_key("www-authenticate"));
        }
        if write == 403 {
            assert_eq!(answer.json()["reason"], "forbidden");
        }
    }
    // Only the write token's call did anything: one job, one replay.
    assert_eq!(
        get(addr, "/replays").await["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(entry(addr, "github", "gh-0").await["replays"], 1);
}

#[tokio::test]
async fn off_loopback_the_routes_need_tokens_and_on_loopback_they_may_be_open() {
    let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let refused = Admin::builder(queue()).served_on(public).build();
    assert!(refused.is_err());
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("loopback"), "{message}");
    // A read token alone still leaves write routes without a write token.
    let message = Admin::builder(queue())
        .read_token(READ)
        .served_on(public)
        .build()
        .unwrap_err()
        .to_string();
    assert!(message.contains("write token"), "{message}");
    assert!(!message.contains(READ), "no token in messages");
    // Unknown address: as if public.
    assert!(Admin::builder(queue()).build().is_err());
    // One public address among loopback ones: public.
    assert!(Admin::builder(queue())
        .served_on("127.0.0.1:1".parse().unwrap())
        .served_on(public)
        .build()
        .is_err());
    assert!(Admin::builder(queue())
        .read_token(READ)
        .read_only()
        .served_on(public)
        .build()
        .is_ok());
    assert!(Admin::builder(queue())
        .write_token(WRITE)
        .served_on(public)
        .build()
        .is_ok());
    assert!(Admin::builder(queue())
        .write_token("")
        .loopback_only()
        .build()
        .is_err());
    assert!(Admin::builder(queue())
        .write_token(" x ")
        .loopback_only()
        .build()
        .is_err());
    let debug = format!(
        "{:?}",
        Admin::builder(queue()).write_token(WRITE).read_token(READ)
    );
    assert!(!debug.contains(WRITE) && !debug.contains(READ), "{debug}");

    // On loopback without any token: open, over real HTTP.
    let queue = queue();
    store_events(&queue, "github", "gh", 2, t0()).await;
    settle(&queue, 2, false).await;
    let admin = Admin::builder(Arc::clone(&queue))
        .served_on("[::1]:0".parse().unwrap())
        .build()
        .expect("open on loopback");
    let addr = serve(admin).await;
    assert_eq!(ids(&get(addr, "/events").await).len(), 2);
    let answer = call(addr, "POST", "/events/github/gh-0/replay", None, None).await;
    assert_eq!(answer.status, 200);
    // But not for a browser's cross-site request.
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/admin/events/github/gh-1/replay"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(entry(addr, "github", "gh-1").await["replays"], 0);
}

/// An event log that is down (its queue works).
struct Down {
    error: fn() -> StoreError,
    log: Arc<MemoryQueue>,
}

impl Down {
    fn new(error: fn() -> StoreError) -> Self {
        Self {
            error,
            log: queue(),
        }
    }
}

queue_by_field!(Down);

#[async_trait]
impl EventLog for Down {
    async fn list(&self, _: &EventFilter) -> Result<LogPage, StoreError> {
        Err((self.error)())
    }
    async fn get(&self, _: &str, _: &str) -> Result<Option<LoggedEvent>, StoreError> {
        Err((self.error)())
    }
    async fn counts(&self, _: &EventFilter) -> Result<LogCounts, StoreError> {
        Err((self.error)())
    }
    async fn create_replay(&self, _: &EventFilter, _: ReplayMode) -> Result<ReplayJob, StoreError> {
        Err((self.error)())
    }
    async fn step_replay(&self, _: ReplayJobId, _: usize) -> Result<ReplayJob, StoreError> {
        Err((self.error)())
    }
    async fn replay_job(&self, _: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        Err((self.error)())
    }
    async fn replay_jobs(&self, _: bool) -> Result<Vec<ReplayJob>, StoreError> {
        Err((self.error)())
    }
    async fn cancel_replay(&self, _: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        Err((self.error)())
    }
}

#[tokio::test]
async fn store_failures_are_answered_by_kind() {
    let transient = serve_guarded(Down::new(|| StoreError::Closed)).await;
    for (method, path) in [
        ("GET", "/events"),
        ("GET", "/stats"),
        ("GET", "/events/a/b"),
        ("GET", "/replays"),
    ] {
        let answer = call(transient, method, path, Some(WRITE), None).await;
        assert_eq!(answer.status, 503, "{path}");
        assert_eq!(answer.headers["retry-after"], "1");
        assert_eq!(answer.json()["reason"], "unavailable");
    }
    let answer = post(transient, "/dead/replay", None).await;
    assert_eq!(answer.status, 503);

    let internal = serve_guarded(Down::new(|| {
        StoreError::internal("test", std::io::Error::other("secret detail"))
    }))
    .await;
    let answer = call(internal, "GET", "/events", Some(READ), None).await;
    assert_eq!(answer.status, 500);
    let json = answer.json();
    assert_eq!(json["reason"], "internal");
    assert!(!json["error"].as_str().unwrap().contains("secret detail"));
}

#[tokio::test]
async fn jobs_left_running_by_a_stopped_process_are_resumed() {
    let queue = queue();
    store_events(&queue, "github", "gh", 120, t0()).await;
    assert_eq!(settle(&queue, 120, true).await, 120);
    // A job created, and stepped once, by a process that then stopped.
    let job = queue
        .create_replay(&EventFilter::all().source("github"), ReplayMode::Dedupe)
        .await
        .unwrap();
    queue.step_replay(job.id, 30).await.unwrap();

    let admin = Admin::builder(Arc::clone(&queue))
        .write_token(WRITE)
        .replay_batch_size(25)
        .loopback_only()
        .build()
        .unwrap();
    let addr = serve(admin.clone()).await;
    let job_path = format!("/replays/{}", job.id);
    let before = call(addr, "GET", &job_path, Some(WRITE), None).await.json();
    assert_eq!(
        (before["state"].as_str(), before["replayed"].as_u64()),
        (Some("running"), Some(30))
    );

    assert_eq!(admin.resume_replays().await.unwrap(), vec![job.id]);
    let mut done = before;
    for _ in 0..6000 {
        done = call(addr, "GET", &job_path, Some(WRITE), None).await.json();
        if done["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(done["state"], "finished");
    assert_eq!(done["replayed"], 120, "each event once");
    assert_eq!(queue.stats().await.unwrap().ready, 120);
    assert!(
        admin.resume_replays().await.unwrap().is_empty(),
        "nothing left to resume"
    );
}

#[tokio::test]
async fn through_the_worker_a_forced_replay_runs_the_handler_again_and_dedupe_does_not() {
    use hookdock::worker::{Event, HandlerError, Worker};
    use tower::service_fn;

    let store = MemoryStore::new();
    let queue = Arc::new(store.queue(QueueOptions::default()));
    store_events(&queue, "github", "gh", 3, t0()).await;
    let applied = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&applied);
    let handler = service_fn(move |_event: Event| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(())
        }
    });
    let worker = Worker::builder(Arc::clone(&queue))
        .dedupe(store.idempotency())
        .build(handler)
        .expect("worker");
    worker.run_until_idle().await.expect("drained");
    assert_eq!(applied.load(Ordering::SeqCst), 3);

    let admin = Admin::builder(Arc::clone(&queue))
        .write_token(WRITE)
        .read_token(READ)
        .worker(worker.clone())
        .loopback_only()
        .build()
        .unwrap();
    let addr = serve(admin).await;
    let stats = get(addr, "/stats").await;
    assert_eq!(stats["worker"]["succeeded"], 3);

    // Through dedupe: ready again, but the completed claim skips the handler.
    let job = post(addr, "/events/github/gh-0/replay?mode=dedupe", None)
        .await
        .json();
    assert_eq!(job["replayed"], 1);
    worker.run_until_idle().await.unwrap();
    assert_eq!(
        applied.load(Ordering::SeqCst),
        3,
        "dedupe: not applied again"
    );
    assert_eq!(get(addr, "/stats").await["worker"]["duplicates"], 1);

    // Forced: the claim is reset, the handler runs once more.
    let job = post(addr, "/events/github/gh-1/replay?mode=forced", None)
        .await
        .json();
    assert_eq!(job["replayed"], 1);
    worker.run_until_idle().await.unwrap();
    assert_eq!(
        applied.load(Ordering::SeqCst),
        4,
        "forced: applied exactly once more"
    );
    let e = entry(addr, "github", "gh-1").await;
    assert_eq!(
        (e["status"].as_str(), e["forced_replays"].as_u64()),
        (Some("succeeded"), Some(1))
    );
    assert_eq!(get(addr, "/stats").await["log"]["total"], 3);
}
