//! Event ids that can never be stored, over real HTTP (axum on a loopback socket, reqwest),
//! on SQLite and on PostgreSQL: each is answered `400 invalid_event_id` and stored nowhere,
//! never `503`, never merged with another id; good deliveries sent alongside them are all
//! stored; and a fault that may pass still gets `503` + `Retry-After`.
//!
//! The PostgreSQL half needs `HOOKDOCK_TEST_POSTGRES_URL` (see `tests/postgres_support`).

#[cfg(feature = "postgres")]
mod postgres_support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::post_service;
use axum::Router;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{Queue, QueueOptions};
use hookdock::testing::Signer;
use hookdock::{Intake, Preset, VerifyLayer};
use http::{HeaderName, HeaderValue};
use tower::ServiceBuilder;

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_test_secret";

fn github() -> Preset {
    Preset::github([GITHUB_SECRET]).expect("preset")
}

fn stripe() -> Preset {
    Preset::stripe([STRIPE_SECRET]).expect("preset")
}

/// `/github` and `/stripe`, each a verify layer in front of an intake into `queue`.
async fn serve(queue: Arc<dyn Queue>) -> SocketAddr {
    let route = |preset: Preset| {
        post_service(
            ServiceBuilder::new()
                .layer(VerifyLayer::new(preset))
                .service(Intake::new(Arc::clone(&queue))),
        )
    };
    let app = Router::new()
        .route("/github", route(github()))
        .route("/stripe", route(stripe()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Sends a GitHub delivery of `body` whose `X-GitHub-Delivery` is these exact bytes (GitHub
/// does not sign the id, so anyone with one signed body can choose it).
async fn github_delivery(addr: SocketAddr, id: &[u8], body: &str) -> (u16, String) {
    let mut signed = Signer::new(&github()).unwrap().sign(body.to_owned());
    signed.headers.insert(
        HeaderName::from_static("x-github-delivery"),
        HeaderValue::from_bytes(id).expect("a header value"),
    );
    send(addr, "/github", signed).await
}

/// Sends a signed Stripe delivery of `body` (Stripe's id is the body's `id`).
async fn stripe_delivery(addr: SocketAddr, body: &str) -> (u16, String) {
    let signed = Signer::new(&stripe()).unwrap().sign(body.to_owned());
    send(addr, "/stripe", signed).await
}

async fn send(
    addr: SocketAddr,
    path: &str,
    signed: hookdock::testing::SignedDelivery,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("http://{addr}{path}"))
        .body(signed.body.clone());
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn assert_invalid(what: &str, (status, body): (u16, String)) {
    assert_eq!(status, 400, "{what}: {body}");
    assert!(
        body.starts_with("not stored: invalid_event_id"),
        "{what}: {body}"
    );
}

/// The whole scenario against one backend's queue.
async fn ids_that_can_never_be_stored(queue: Arc<dyn Queue>) {
    let addr = serve(Arc::clone(&queue)).await;
    assert_invalid("a tab", github_delivery(addr, b"d\t1", "{}").await);
    assert_invalid(
        "a 64 KiB id",
        github_delivery(addr, &vec![b'x'; 64 * 1024], "{}").await,
    );
    // Two ids that differ only in bytes that are not UTF-8: both refused, neither taken for
    // the other.
    assert_invalid(
        "bad-\\xff",
        github_delivery(addr, b"bad-\xff", "{\"a\":1}").await,
    );
    assert_invalid(
        "bad-\\xfe",
        github_delivery(addr, b"bad-\xfe", "{\"a\":2}").await,
    );
    // A NUL byte in a body-carried id (PostgreSQL text cannot hold it).
    assert_invalid(
        "a NUL in Stripe's id",
        stripe_delivery(addr, r#"{"id":"evt_\u0000x","type":"invoice.paid"}"#).await,
    );
    let long = "y".repeat(4000);
    assert_invalid(
        "a 4,000-byte Stripe id",
        stripe_delivery(addr, &format!(r#"{{"id":"evt_{long}","type":"x"}}"#)).await,
    );
    assert_eq!(queue.stats().await.unwrap().depth(), 0, "nothing stored");

    // 300 good deliveries sent concurrently with 30 whose ids are over 2.7 KB (too long for
    // PostgreSQL's index): every good one is stored, every bad one refused, whatever batch
    // or group commit they shared.
    let tasks: Vec<_> = (0..330)
        .map(|i| {
            tokio::spawn(async move {
                let id = if i % 11 == 10 {
                    format!("long-{i}-{}", "z".repeat(4000))
                } else {
                    format!("good-{i:04}")
                };
                (
                    i,
                    github_delivery(addr, id.as_bytes(), &format!("{{\"n\":{i}}}")).await,
                )
            })
        })
        .collect();
    let (mut good, mut bad) = (0, 0);
    for t in tasks {
        let (i, answer) = t.await.unwrap();
        if i % 11 == 10 {
            assert_invalid("an over-long id among good ones", answer);
            bad += 1;
        } else {
            assert_eq!(answer, (200, "stored\n".to_owned()), "delivery {i}");
            good += 1;
        }
    }
    assert_eq!((good, bad), (300, 30));
    assert_eq!(
        queue.stats().await.unwrap().ready,
        300,
        "every good one stored"
    );
    // And a good one sent again is a duplicate, not a second event.
    assert_eq!(
        github_delivery(addr, b"good-0000", "{\"n\":0}").await,
        (200, "duplicate\n".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_ids_it_can_never_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("ids.db"), SqliteOptions::new()).unwrap();
    ids_that_can_never_be_stored(Arc::new(store.queue(QueueOptions::default()))).await;
    store.close().await;
}

/// A full disk (here: the file's size cap) may pass: `503` with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transient_fault_still_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path().join("full.db"),
        SqliteOptions::new().max_size(256 * 1024),
    )
    .unwrap();
    let addr = serve(Arc::new(store.queue(QueueOptions::default()))).await;
    let body = format!("{{\"pad\":\"{}\"}}", "p".repeat(16 * 1024));
    let mut answers = Vec::new();
    for i in 0..64 {
        answers.push(github_delivery(addr, format!("fill-{i}").as_bytes(), &body).await);
        if answers.last().is_some_and(|(status, _)| *status != 200) {
            break;
        }
    }
    let (status, text) = answers.last().cloned().unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("retry later"), "{text}");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_ids_it_can_never_store() {
    let db = test_db!("postgres_refuses_ids");
    ids_that_can_never_be_stored(Arc::new(db.store.queue(QueueOptions::default()))).await;
    db.cleanup().await;
}

/// A database that went away may come back: `503`.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_transient_fault_still_answers_503() {
    let db = test_db!("postgres_transient_fault");
    let store = db.another_process().await;
    let addr = serve(Arc::new(store.queue(QueueOptions::default()))).await;
    assert_eq!(github_delivery(addr, b"ok-1", "{}").await.0, 200);
    store.pool().close().await;
    let (status, text) = github_delivery(addr, b"ok-2", "{}").await;
    assert_eq!(status, 503, "{text}");
    db.cleanup().await;
}
