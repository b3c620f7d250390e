//! Liveness and readiness over real HTTP (axum on a loopback socket, reqwest), against real
//! stores: readiness turns false when a size-capped SQLite database is full (while intake
//! answers `503` + `Retry-After`, never `2xx`) and true again once acks free space, without
//! a restart; it is false once the store is closed; a load balancer polling it costs the
//! store one probe per cache period; on PostgreSQL it is true on a writable server and false
//! on a read-only one.

#[cfg(feature = "postgres")]
mod postgres_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::routing::post_service;
use axum::Router;
use hookdock::admin::{Health, NotReady, Readiness};
use hookdock::store::sqlite::{SqliteOptions, SqliteQueue, SqliteStore};
use hookdock::store::{Queue, QueueOptions, StoreError};
use hookdock::testing::Signer;
use hookdock::{Intake, Preset, RawEvent, VerifyLayer};
use tower::ServiceBuilder;

const SECRET: &str = "It's a Secret to Everybody";

fn github() -> Preset {
    Preset::github([SECRET]).expect("preset")
}

/// `/github` (verify + intake into `queue`) and the health routes of `health`.
async fn serve(queue: Arc<dyn Queue>, health: Health) -> SocketAddr {
    let intake = post_service(
        ServiceBuilder::new()
            .layer(VerifyLayer::new(github()))
            .service(Intake::new(queue)),
    );
    let app = Router::new()
        .route("/github", intake)
        .merge(health.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    json: serde_json::Value,
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    let response = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("an answer");
    answer(response).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        retry_after,
        json: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    }
}

/// Sends a signed GitHub delivery with a body of about `size` bytes.
async fn deliver(addr: SocketAddr, n: usize, size: usize) -> Answer {
    let body = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(size));
    let mut signed = Signer::new(&github()).unwrap().sign(body);
    signed.headers.insert(
        "x-github-delivery",
        http::HeaderValue::from_str(&format!("d-{n}")).unwrap(),
    );
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/github"))
        .body(signed.body.clone());
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    answer(request.send().await.expect("an answer")).await
}

fn assert_ready(what: &str, a: &Answer) {
    assert_eq!(a.status, 200, "{what}: {:?}", a.json);
    assert_eq!(a.json, serde_json::json!({"status": "ready"}), "{what}");
}

fn assert_not_ready(what: &str, a: &Answer, reason: &str) {
    assert_eq!(a.status, 503, "{what}: {:?}", a.json);
    assert_eq!(
        a.json,
        serde_json::json!({"status": "not_ready", "reason": reason}),
        "{what}: the answer is the kind only"
    );
    assert!(a.retry_after.is_some(), "{what}: 503 without Retry-After");
}

fn capped_store(dir: &tempfile::TempDir, bytes: u64) -> (SqliteStore, Arc<SqliteQueue>) {
    let options = SqliteOptions::new()
        .max_size(bytes)
        .retention(Duration::ZERO);
    let store = SqliteStore::open(dir.path().join("capped.db"), options).unwrap();
    let queue = Arc::new(store.queue(QueueOptions::default()));
    (store, queue)
}

fn is_full(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable { .. }) && e.to_string().contains("full")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_full_disk_and_recovers_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, queue) = capped_store(&dir, 512 * 1024);
    let health = Health::new(Arc::clone(&queue)).cache_for(Duration::ZERO);
    let addr = serve(queue.clone(), health).await;

    assert_eq!(get(addr, "/livez").await.status, 200);
    assert_ready("an empty database", &get(addr, "/readyz").await);

    // Fill the database over HTTP until intake refuses: every answer before is a 2xx for a
    // stored event, the refusal is 503 + Retry-After, never a 2xx for what was not stored.
    // A worker leases each stored event as it arrives (a lease needs pages too).
    let mut stored = 0u64;
    let mut held = Vec::new();
    let refusal = loop {
        let a = deliver(addr, stored as usize, 6 * 1024).await;
        if a.status / 100 != 2 {
            break a;
        }
        stored += 1;
        assert!(stored < 1_000, "a 512 KiB cap must fill up");
        match queue.lease(1, Duration::from_secs(3600)).await {
            Ok(batch) => held.extend(batch),
            Err(e) if is_full(&e) => {}
            Err(e) => panic!("lease: an unexpected error: {e}"),
        }
    };
    assert!(
        stored > 10,
        "the cap left room for only {stored} events: {} {:?}",
        refusal.status,
        refusal.json
    );
    assert_eq!(refusal.status, 503, "a full disk: {:?}", refusal.json);
    assert!(refusal.retry_after.is_some(), "503 without Retry-After");
    let counts = queue.stats().await.unwrap();
    assert_eq!(
        counts.ready + counts.leased,
        stored,
        "every 2xx, and only those, stored an event"
    );
    assert!(held.len() as u64 + 1 >= stored, "the worker kept up");

    // Take what pages are left with ever smaller events, until not even the smallest fits:
    // then no page can be had at all.
    let mut extra = 0u64;
    for size in [4096usize, 1024, 256, 16, 0] {
        loop {
            let id = format!("fill-{size}-{extra}");
            let event = RawEvent::new("github", id, SystemTime::now(), vec![b'y'; size]);
            match queue.enqueue(event).await {
                Ok(_) => extra += 1,
                Err(e) if is_full(&e) => break,
                Err(e) => panic!("filling: an unexpected error: {e}"),
            }
            assert!(extra < 10_000, "the cap must hold");
        }
    }
    let full = get(addr, "/readyz").await;
    assert_not_ready("a full database", &full, "storage_unavailable");
    assert_eq!(
        queue.check_writable().await.map_err(|e| is_full(&e)).err(),
        Some(true),
        "the probe meets SQLite's 'database or disk is full'"
    );
    assert_not_ready(
        "still full",
        &get(addr, "/readyz").await,
        "storage_unavailable",
    );

    // Free space: the worker settles what it holds (a retention of zero forgets a record
    // when it is acked, which takes no new page, so its pages go back to the freelist).
    for leased in &held {
        queue.ack(&leased.lease).await.unwrap();
    }
    assert_ready("space freed", &get(addr, "/readyz").await);
    let again = deliver(addr, 1_000_000, 6 * 1024).await;
    assert_eq!(
        again.status / 100,
        2,
        "intake takes events again: {:?}",
        again.json
    );
    let left = queue.stats().await.unwrap();
    assert_eq!(
        left.ready + left.leased,
        stored - held.len() as u64 + extra + 1
    );

    // Readiness is false once the store is closed (its writer thread is gone), while the
    // process is still live.
    store.close().await;
    assert_not_ready("closed", &get(addr, "/readyz").await, "store_closed");
    assert_eq!(
        get(addr, "/livez").await.json,
        serde_json::json!({"status": "live"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_load_balancer_costs_one_probe_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db"), SqliteOptions::new()).unwrap();
    let queue = Arc::new(store.queue(QueueOptions::default()));

    // Each probe is one writer transaction: count them.
    let cached = Health::new(Arc::clone(&queue)).cache_for(Duration::from_secs(3600));
    let addr = serve(queue.clone(), cached).await;
    let before = store.writer_stats().transactions;
    let polls: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { get(addr, "/readyz").await.status }))
        .collect();
    for poll in polls {
        assert_eq!(poll.await.unwrap(), 200);
    }
    for _ in 0..20 {
        assert_ready("cached", &get(addr, "/readyz").await);
    }
    assert_eq!(
        store.writer_stats().transactions - before,
        1,
        "40 polls within one period share one probe"
    );

    // Without a cache every poll probes, and each probe is a committed write.
    let uncached = Health::new(Arc::clone(&queue)).cache_for(Duration::ZERO);
    let before = store.writer_stats().transactions;
    for _ in 0..5 {
        assert_eq!(uncached.readiness().await, Readiness::Ready);
    }
    assert_eq!(store.writer_stats().transactions - before, 5);
    assert_eq!(
        queue.stats().await.unwrap().depth(),
        0,
        "probes store nothing"
    );
    store.close().await;
    assert_eq!(
        uncached.readiness().await,
        Readiness::NotReady(NotReady::StoreClosed)
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_readiness_is_a_committed_write() {
    use hookdock::store::postgres::{PgOptions, PgStore};
    use sqlx::postgres::PgPoolOptions;
    use sqlx::Executor;

    let db = test_db!("health_pg");
    let queue = Arc::new(db.store.queue(QueueOptions::default()));
    let health = Health::new(Arc::clone(&queue)).cache_for(Duration::ZERO);
    let addr = serve(queue.clone(), health.clone()).await;
    assert_ready("a writable server", &get(addr, "/readyz").await);
    let probed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT probed_at FROM \"{}\".hookdock_health WHERE id = 1",
        db.schema
    )))
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert!(probed > 0, "the probe wrote its row");

    // The same schema through connections that may not write (as on a standby).
    let read_only = PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET default_transaction_read_only = on")
                    .await?;
                Ok(())
            })
        })
        .connect(&db.url)
        .await
        .unwrap();
    let store = PgStore::from_pool(
        read_only,
        PgOptions::new().schema(&db.schema).migrate(false),
    )
    .await
    .unwrap();
    let ro_queue = Arc::new(store.queue(QueueOptions::default()));
    let ro = Health::new(ro_queue).cache_for(Duration::ZERO);
    assert_eq!(
        ro.readiness().await,
        Readiness::NotReady(NotReady::StorageUnavailable)
    );

    db.store.close().await;
    assert_not_ready("closed", &get(addr, "/readyz").await, "store_closed");
    db.cleanup().await;
}
