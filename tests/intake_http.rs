//! The HTTP path end to end over real sockets: axum (three ways of mounting) and plain hyper
//! servers on 127.0.0.1, driven by reqwest or, where the request must be malformed on
//! purpose (chunked bodies, a `Content-Length` with no body behind it), by a raw TCP client.
//!
//! Every case checks both the answer (status, reason, `Retry-After`) and what was stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::routing::post_service;
use axum::Router;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use hookdock::intake::Intake;
use hookdock::scheme::Preset;
use hookdock::store::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, Leased, MemoryQueue, MemoryStore,
    Queue, QueueOptions, QueueStats,
};
use hookdock::verify::VerifyLayer;
use hookdock::{RawEvent, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;

const GITHUB_SECRET: &str = "test-github-secret";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The fixed "now" of the standard-webhooks route's clock.
const NOW: u64 = 1_700_000_000;
/// The body limit of every route in these tests.
const LIMIT: usize = 1024;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn standard_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
        .expect("test secret is base64");
    let mut mac = HmacSha256::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

async fn spawn_axum(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn github_layer() -> VerifyLayer<Preset> {
    VerifyLayer::new(Preset::github([GITHUB_SECRET]).expect("valid secret")).body_limit(LIMIT)
}

/// One axum app over `queue`, the verify layer mounted three ways:
/// - `/github`: `route_service` with a `ServiceBuilder` stack;
/// - `/standard`: `route_layer` (with a fixed clock);
/// - `/github-layered`: `Router::layer`;
/// - `/unverified`: the intake with no verify layer at all (a mistake it must survive).
fn app<Q: Queue + Clone>(queue: Q) -> Router {
    let github = ServiceBuilder::new()
        .layer(github_layer())
        .service(Intake::new(queue.clone()));
    let standard = Router::new()
        .route("/standard", post_service(Intake::new(queue.clone())))
        .route_layer(
            VerifyLayer::new(Preset::standard_webhooks([STANDARD_SECRET]).expect("valid"))
                .body_limit(LIMIT)
                .clock(|| UNIX_EPOCH + Duration::from_secs(NOW)),
        );
    let layered = Router::new()
        .route(
            "/github-layered",
            post_service(
                Intake::builder(queue.clone())
                    .source("github-layered")
                    .build()
                    .expect("valid intake"),
            ),
        )
        .layer(github_layer());
    Router::new()
        .route_service("/github", github)
        .route_service("/unverified", Intake::new(queue))
        .merge(standard)
        .merge(layered)
}

async fn post_github(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    delivery: &str,
    body: &'static [u8],
    secret: &str,
) -> (u16, String) {
    let response = client
        .post(format!("http://{addr}{path}"))
        .header("x-github-delivery", delivery)
        .header("x-github-event", "push")
        .header("x-hub-signature-256", github_signature(secret, body))
        .header("content-type", "application/json")
        .header("authorization", "Bearer must-not-be-stored")
        .header("cookie", "session=must-not-be-stored")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn all_events(queue: &impl Queue) -> Vec<RawEvent> {
    let leased: Vec<Leased> = queue
        .lease(1000, Duration::from_secs(60))
        .await
        .expect("lease");
    leased.into_iter().map(|l| l.event).collect()
}

/// Sends raw bytes and reads one response (status, headers block, body). Writes that fail
/// because the server already answered and closed are ignored: the answer is what matters.
async fn raw_exchange(addr: SocketAddr, parts: &[&[u8]]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    for part in parts {
        if stream.write_all(part).await.is_err() {
            break;
        }
    }
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]);
                    let status = head
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .expect("status line");
                    return (status, head, body.to_string());
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => panic!(
                    "connection ended before a full response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    // A guard against a hang (such as a server waiting for a body that never comes), not a
    // timing assertion.
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server answered")
}

fn chunked_head(addr: SocketAddr, delivery: &str, signature: &str) -> Vec<u8> {
    format!(
        "POST /github HTTP/1.1\r\nhost: {addr}\r\nx-github-delivery: {delivery}\r\n\
         x-hub-signature-256: {signature}\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

#[tokio::test]
async fn valid_delivery_is_acknowledged_and_stored_with_its_headers() {
    let queue = Arc::new(MemoryQueue::new());
    let addr = spawn_axum(app(Arc::clone(&queue))).await;
    let client = reqwest::Client::new();
    let body: &[u8] = br#"{"ref":"refs/heads/main","zen":"Keep it logically awesome."}"#;

    let (status, text) =
        post_github(&client, addr, "/github", "d-valid", body, GITHUB_SECRET).await;
    assert_eq!((status, text.as_str()), (200, "stored\n"));

    let events = all_events(&*queue).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.source, "github");
    assert_eq!(event.id.as_str(), "d-valid");
    assert_eq!(&event.body[..], body, "the raw bytes are stored as sent");
    // What re-verification needs is kept, credentials are not.
    assert_eq!(
        event.headers["x-hub-signature-256"],
        github_signature(GITHUB_SECRET, body)
    );
    assert_eq!(event.headers["x-github-delivery"], "d-valid");
    assert_eq!(event.headers["x-github-event"], "push");
    assert!(!event.headers.contains_key("authorization"));
    assert!(!event.headers.contains_key("cookie"));
    let scheme = Preset::github([GITHUB_SECRET]).expect("valid");
    let reverified = hookdock::Scheme::verify(
        &scheme,
        &hookdock::scheme::SignedRequest {
            method: &http::Method::POST,
            uri: &"/github".parse().expect("uri"),
            headers: &event.headers,
            body: &event.body,
            now: SystemTime::now(),
        },
    )
    .expect("the stored event re-verifies");
    assert_eq!(reverified.id, event.id);
}

#[tokio::test]
async fn every_mounting_stores_under_its_source() {
    let queue = Arc::new(MemoryQueue::new());
    let addr = spawn_axum(app(Arc::clone(&queue))).await;
    let client = reqwest::Client::new();

    let body: &[u8] = b"{\"layered\":true}";
    let (status, _) =
        post_github(&client, addr, "/github-layered", "d-1", body, GITHUB_SECRET).await;
    assert_eq!(status, 200);

    let id = "msg_2Lx";
    let ts = NOW.to_string();
    let body: &[u8] = b"{\"type\":\"user.created\"}";
    let response = client
        .post(format!("http://{addr}/standard"))
        .header("webhook-id", id)
        .header("webhook-timestamp", &ts)
        .header("webhook-signature", standard_signature(id, &ts, body))
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    let mut stored: Vec<(String, String)> = all_events(&*queue)
        .await
        .into_iter()
        .map(|e| (e.source, e.id.into_string()))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("github-layered".to_owned(), "d-1".to_owned()),
            ("standard-webhooks".to_owned(), id.to_owned())
        ]
    );
}

/// Every way a delivery can be refused: the status, the reason in the body, and nothing
/// stored.
#[tokio::test]
async fn refused_deliveries_get_their_status_and_reason_and_are_not_stored() {
    let queue = Arc::new(MemoryQueue::new());
    let addr = spawn_axum(app(Arc::clone(&queue))).await;
    let client = reqwest::Client::new();
    let body: &[u8] = b"{\"hello\":\"world\"}";

    // (case, request, expected status, expected reason)
    let standard = |id: &str, ts: &str, sig: Option<String>| {
        let mut request = client
            .post(format!("http://{addr}/standard"))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts)
            .body(body);
        if let Some(sig) = sig {
            request = request.header("webhook-signature", sig);
        }
        request
    };
    let github = |sig: Option<String>| {
        let mut request = client
            .post(format!("http://{addr}/github"))
            .header("x-github-delivery", "d-refused")
            .body(body);
        if let Some(sig) = sig {
            request = request.header("x-hub-signature-256", sig);
        }
        request
    };
    let stale = (NOW - 3600).to_string();
    let future = (NOW + 3600).to_string();
    let cases = [
        (
            "wrong secret",
            github(Some(github_signature("another-secret", body))),
            401,
            "bad_signature",
        ),
        (
            "signature over other bytes",
            github(Some(github_signature(GITHUB_SECRET, b"{}"))),
            401,
            "bad_signature",
        ),
        ("missing signature", github(None), 401, "missing_header"),
        (
            "stale timestamp",
            standard("m1", &stale, Some(standard_signature("m1", &stale, body))),
            401,
            "timestamp_too_old",
        ),
        (
            "timestamp in the future",
            standard("m2", &future, Some(standard_signature("m2", &future, body))),
            401,
            "timestamp_in_future",
        ),
        (
            "malformed timestamp",
            standard(
                "m3",
                "yesterday",
                Some(standard_signature("m3", "yesterday", body)),
            ),
            400,
            "malformed_header",
        ),
        (
            "missing signature (standard)",
            standard("m4", &NOW.to_string(), None),
            401,
            "missing_header",
        ),
    ];
    for (case, request, status, reason) in cases {
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{case}");
        let text = response.text().await.expect("body");
        assert!(
            text.starts_with(reason),
            "{case}: expected reason {reason}, got {text:?}"
        );
    }

    // Over the limit with a declared length: refused from the head alone, before any body
    // byte is sent (a server that waited for the body would never answer).
    let head = format!(
        "POST /github HTTP/1.1\r\nhost: {addr}\r\nx-github-delivery: d-big\r\n\
         x-hub-signature-256: {}\r\ncontent-length: {}\r\n\r\n",
        github_signature(GITHUB_SECRET, b"x"),
        LIMIT + 1
    );
    let (status, _, text) = raw_exchange(addr, &[head.as_bytes()]).await;
    assert_eq!(status, 413);
    assert!(text.starts_with("payload_too_large"), "{text:?}");

    // Over the limit in a chunked body that declares no length: refused once the bytes read
    // pass the limit (the body is never finished).
    let big = vec![b'a'; LIMIT / 2 + 1];
    let head = chunked_head(
        addr,
        "d-chunked-big",
        &github_signature(GITHUB_SECRET, b"x"),
    );
    let (status, _, text) = raw_exchange(addr, &[&head, &chunk(&big), &chunk(&big)]).await;
    assert_eq!(status, 413);
    assert!(text.starts_with("payload_too_large"), "{text:?}");

    // The declared length is checked on every route, route_layer included.
    let head = format!(
        "POST /standard HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
        LIMIT * 100
    );
    let (status, _, text) = raw_exchange(addr, &[head.as_bytes()]).await;
    assert_eq!(status, 413);
    assert!(text.starts_with("payload_too_large"), "{text:?}");

    assert_eq!(queue.stats().await.expect("stats"), QueueStats::default());
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_is_reassembled_exactly() {
    let queue = Arc::new(MemoryQueue::new());
    let addr = spawn_axum(app(Arc::clone(&queue))).await;
    let body: Vec<u8> = (0..LIMIT).map(|i| (i % 251) as u8).collect();
    let signature = github_signature(GITHUB_SECRET, &body);
    let head = chunked_head(addr, "d-chunked", &signature);
    let (status, _, text) = raw_exchange(
        addr,
        &[
            &head,
            &chunk(&body[..100]),
            &chunk(&body[100..700]),
            &chunk(&body[700..]),
            b"0\r\n\r\n",
        ],
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "stored\n"));
    let events = all_events(&*queue).await;
    assert_eq!(events.len(), 1);
    assert_eq!(&events[0].body[..], &body[..]);
    assert!(!events[0].headers.contains_key("transfer-encoding"));
}

#[tokio::test]
async fn a_duplicate_is_acknowledged_and_stored_once() {
    let queue = Arc::new(MemoryQueue::new());
    let addr = spawn_axum(app(Arc::clone(&queue))).await;
    let client = reqwest::Client::new();
    let body: &[u8] = b"{\"n\":1}";
    let first = post_github(&client, addr, "/github", "d-dup", body, GITHUB_SECRET).await;
    let second = post_github(&client, addr, "/github", "d-dup", body, GITHUB_SECRET).await;
    assert_eq!(first, (200, "stored\n".to_owned()));
    assert_eq!(second, (200, "duplicate\n".to_owned()));
    assert_eq!(queue.stats().await.expect("stats").depth(), 1);
    assert_eq!(all_events(&*queue).await.len(), 1);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_stores_nothing_more() {
    let queue = Arc::new(MemoryStore::new().queue(QueueOptions::default().max_depth(2)));
    let intake = Intake::builder(Arc::clone(&queue))
        .retry_after(Duration::from_millis(6500))
        .build()
        .expect("valid intake");
    let app = Router::new().route_service(
        "/github",
        ServiceBuilder::new().layer(github_layer()).service(intake),
    );
    let addr = spawn_axum(app).await;
    let client = reqwest::Client::new();

    for id in ["d-1", "d-2"] {
        let (status, _) = post_github(&client, addr, "/github", id, b"{}", GITHUB_SECRET).await;
        assert_eq!(status, 200);
    }
    let response = client
        .post(format!("http://{addr}/github"))
        .header("x-github-delivery", "d-3")
        .header(
            "x-hub-signature-256",
            github_signature(GITHUB_SECRET, b"{}"),
        )
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["retry-after"],
        "7",
        "rounded up to whole seconds"
    );
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("queue is full"));

    let ids: Vec<String> = all_events(&*queue)
        .await
        .into_iter()
        .map(|e| e.id.into_string())
        .collect();
    assert_eq!(ids, ["d-1", "d-2"]);
}

/// A queue whose storage is down: every operation fails.
#[derive(Debug, Clone, Copy)]
struct BrokenQueue;

fn disk_error() -> StoreError {
    StoreError::unavailable("test", std::io::Error::other("disk I/O error"))
}

#[async_trait]
impl Queue for BrokenQueue {
    fn durability(&self) -> Durability {
        Durability::Fsync
    }
    async fn enqueue(&self, _event: RawEvent) -> Result<Enqueued, StoreError> {
        Err(disk_error())
    }
    async fn lease(&self, _max: usize, _for: Duration) -> Result<Vec<Leased>, StoreError> {
        Err(disk_error())
    }
    async fn extend(&self, _lease: &Lease, _for: Duration) -> Result<Lease, StoreError> {
        Err(disk_error())
    }
    async fn ack(&self, _lease: &Lease) -> Result<(), StoreError> {
        Err(disk_error())
    }
    async fn skip(&self, _lease: &Lease, _reason: &str) -> Result<(), StoreError> {
        Err(disk_error())
    }
    async fn retry(&self, _l: &Lease, _at: SystemTime, _e: &str) -> Result<(), StoreError> {
        Err(disk_error())
    }
    async fn defer(&self, _l: &Lease, _at: SystemTime) -> Result<(), StoreError> {
        Err(disk_error())
    }
    async fn dead_letter(&self, _lease: &Lease, _reason: &str) -> Result<(), StoreError> {
        Err(disk_error())
    }
    async fn dead_letters(&self, _f: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        Err(disk_error())
    }
    async fn replay(&self, _filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        Err(disk_error())
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        Err(disk_error())
    }
    async fn check_writable(&self) -> Result<(), StoreError> {
        Err(disk_error())
    }
    async fn stats(&self) -> Result<QueueStats, StoreError> {
        Err(disk_error())
    }
}

#[tokio::test]
async fn a_storage_failure_answers_503_with_retry_after() {
    // Also shows the intake over a queue chosen at run time.
    let queue: Arc<dyn Queue> = Arc::new(BrokenQueue);
    let addr = spawn_axum(app(queue)).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{addr}/github"))
        .header("x-github-delivery", "d-1")
        .header(
            "x-hub-signature-256",
            github_signature(GITHUB_SECRET, b"{}"),
        )
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "10");
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("storage is unavailable"));
}

#[tokio::test]
async fn the_intake_without_a_verify_layer_stores_nothing() {
    let queue = Arc::new(MemoryQueue::new());
    let addr = spawn_axum(app(Arc::clone(&queue))).await;
    let client = reqwest::Client::new();
    let (status, text) =
        post_github(&client, addr, "/unverified", "d-1", b"{}", GITHUB_SECRET).await;
    assert_eq!(status, 500);
    assert!(text.contains("not verified"), "{text:?}");
    assert_eq!(queue.stats().await.expect("stats").depth(), 0);
}

#[tokio::test]
async fn source_status_and_received_at_are_configurable() {
    let queue = Arc::new(MemoryQueue::new());
    let received = UNIX_EPOCH + Duration::from_secs(1_234_567);
    let intake = Intake::builder(Arc::clone(&queue))
        .source("gh-main")
        .status(http::StatusCode::ACCEPTED)
        .clock(move || received)
        .header_policy(|name: &http::HeaderName| name.as_str().starts_with("x-github-"))
        .build()
        .expect("valid intake");
    let app = Router::new().route_service(
        "/github",
        ServiceBuilder::new().layer(github_layer()).service(intake),
    );
    let addr = spawn_axum(app).await;
    let (status, _) = post_github(
        &reqwest::Client::new(),
        addr,
        "/github",
        "d-1",
        b"{}",
        GITHUB_SECRET,
    )
    .await;
    assert_eq!(status, 202);
    let events = all_events(&*queue).await;
    assert_eq!(events[0].source, "gh-main");
    assert_eq!(events[0].received_at, received);
    let mut names: Vec<&str> = events[0].headers.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(names, ["x-github-delivery", "x-github-event"]);
}

/// The same stack served by hyper alone, without axum.
#[tokio::test]
async fn plain_hyper_serves_the_stack() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let queue = Arc::new(MemoryQueue::new());
    let service = ServiceBuilder::new()
        .layer(github_layer())
        .service(Intake::new(Arc::clone(&queue)));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let client = reqwest::Client::new();
    let ok = post_github(&client, addr, "/any", "d-h", b"[1]", GITHUB_SECRET).await;
    let bad = post_github(&client, addr, "/any", "d-x", b"[1]", "wrong").await;
    assert_eq!(ok, (200, "stored\n".to_owned()));
    assert_eq!(bad.0, 401);
    assert!(bad.1.starts_with("bad_signature"));
    let ids: Vec<String> = all_events(&*queue)
        .await
        .into_iter()
        .map(|e| e.id.into_string())
        .collect();
    assert_eq!(ids, ["d-h"]);
}

/// Real storage failure: the SQLite file capped (`max_page_count`) so that writes fail with
/// "database or disk is full", exactly as on a full disk.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_full_disk_answers_503_with_retry_after_and_acknowledges_only_what_is_stored() {
    use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
    use std::collections::BTreeSet;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("small.db");
    let store =
        SqliteStore::open(&path, SqliteOptions::default().max_size(256 * 1024)).expect("open");
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let layer =
        VerifyLayer::new(Preset::github([GITHUB_SECRET]).expect("valid")).body_limit(64 * 1024);
    let app = Router::new().route_service(
        "/github",
        ServiceBuilder::new()
            .layer(layer)
            .service(Intake::new(Arc::clone(&queue))),
    );
    let addr = spawn_axum(app).await;
    let client = reqwest::Client::new();

    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for n in 0..60 {
        let id = format!("d-{n}");
        let body = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(16 * 1024));
        let response = client
            .post(format!("http://{addr}/github"))
            .header("x-github-delivery", &id)
            .header(
                "x-hub-signature-256",
                github_signature(GITHUB_SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .expect("request");
        match response.status().as_u16() {
            200 => {
                acknowledged.insert(id);
            }
            503 => {
                assert_eq!(response.headers()["retry-after"], "10");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    store.close().await;
    assert!(!acknowledged.is_empty(), "the first deliveries fit");
    assert!(refused > 0, "the cap was reached");

    let conn = rusqlite::Connection::open(&path).expect("open");
    let mut stmt = conn
        .prepare("SELECT event_id FROM hookdock_events")
        .expect("query");
    let stored: BTreeSet<String> = stmt
        .query_map([], |row| row.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(stored, acknowledged, "stored exactly what was acknowledged");
}
