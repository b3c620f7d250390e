//! The SQLite event log end to end over real HTTP (axum on a loopback socket, reqwest):
//! signed GitHub deliveries go through the verify layer and intake into a SQLite queue; the
//! log lists each one with the event type intake read from the request, origin push, and
//! its raw bytes; a resend answers `duplicate` and adds nothing; counts group by type.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::post_service;
use axum::Router;
use hookdock::store::sqlite::{SqliteOptions, SqliteQueue, SqliteStore};
use hookdock::store::{EventFilter, EventLog, EventStatus, Origin, Queue, QueueOptions};
use hookdock::testing::Signer;
use hookdock::{Intake, Preset, VerifyLayer};
use tower::ServiceBuilder;

const SECRET: &str = "It's a Secret to Everybody";

fn github() -> Preset {
    Preset::github([SECRET]).expect("preset")
}

async fn serve(queue: Arc<SqliteQueue>) -> SocketAddr {
    let queue: Arc<dyn Queue> = queue;
    let app = Router::new().route(
        "/github",
        post_service(
            ServiceBuilder::new()
                .layer(VerifyLayer::new(github()))
                .service(Intake::new(queue)),
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Sends a signed delivery; returns the status and the answer's body.
async fn deliver(addr: SocketAddr, id: &str, event_type: &str, body: &str) -> (u16, String) {
    let signed = Signer::new(&github())
        .unwrap()
        .delivery(body.to_owned())
        .id(id)
        .event_type(event_type)
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
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn deliveries_over_http_are_logged_with_their_type() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("log.db"), SqliteOptions::new()).unwrap();
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let addr = serve(Arc::clone(&queue)).await;
    let kind = |i: usize| {
        if i.is_multiple_of(3) {
            "issues"
        } else {
            "push"
        }
    };
    for i in 0..30 {
        let (status, body) =
            deliver(addr, &format!("d-{i}"), kind(i), &format!("{{\"n\":{i}}}")).await;
        assert_eq!(status, 200, "{body}");
    }
    // Resends of ids still in the log are duplicates and store nothing.
    for i in 0..5 {
        let (status, body) =
            deliver(addr, &format!("d-{i}"), kind(i), &format!("{{\"n\":{i}}}")).await;
        assert_eq!((status, body.as_str()), (200, "duplicate\n"));
    }
    let page = queue.list(&EventFilter::all().limit(100)).await.unwrap();
    assert_eq!(page.entries.len(), 30);
    assert_eq!(page.entries[0].event_id.as_str(), "d-29", "newest first");
    for e in &page.entries {
        let i: usize = e.event_id.as_str()[2..].parse().unwrap();
        assert_eq!(e.event_type.as_deref(), Some(kind(i)), "{}", e.event_id);
        assert_eq!((e.origin, e.status), (Origin::Push, EventStatus::Pending));
    }
    let issues = queue
        .list(&EventFilter::all().event_type("issues").limit(100))
        .await
        .unwrap();
    assert_eq!(issues.entries.len(), 10);
    let one = queue.get("github", "d-7").await.unwrap().unwrap();
    assert_eq!(&one.event.body[..], b"{\"n\":7}", "the raw bytes as sent");
    assert_eq!(
        one.event
            .headers
            .get("x-github-event")
            .map(|v| v.as_bytes()),
        Some(&b"push"[..])
    );
    let counts = queue.counts(&EventFilter::all()).await.unwrap();
    let by_type: Vec<(Option<&str>, EventStatus, u64)> = counts
        .groups
        .iter()
        .map(|g| (g.event_type.as_deref(), g.status, g.count))
        .collect();
    assert_eq!(
        by_type,
        [
            (Some("issues"), EventStatus::Pending, 10),
            (Some("push"), EventStatus::Pending, 20)
        ]
    );
    store.close().await;
}
