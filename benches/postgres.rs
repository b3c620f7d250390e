//! Intake and drain throughput of the PostgreSQL backend, beside the embedded SQLite backend
//! and the in-memory backend (the baseline), all run by the same code in the same run.
//!
//! ```sh
//! eval "$(scripts/postgres-test-server.sh start)"
//! cargo bench --features postgres --bench postgres
//! ```
//!
//! - **intake**: 256 concurrent producers (like concurrent HTTP requests) enqueue unique
//!   events until `HOOKDOCK_BENCH_INTAKE` (default 50,000) are stored; events/s.
//! - **drain**: the queue pre-filled with `HOOKDOCK_BENCH_DRAIN` (default 100,000) events is
//!   drained by 2 workers, each with its own connection pool (as two processes would be):
//!   lease a batch → for each event, concurrently: claim in the idempotency store → no-op
//!   handler → complete → ack. Durable (`synchronous_commit` as the server has it, on by
//!   default); events/s. SQLite (`synchronous=FULL`, in a temporary directory) runs the
//!   same workload with its two workers sharing one store.
//!
//! Without `HOOKDOCK_TEST_POSTGRES_URL` the PostgreSQL rows are skipped with a notice.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use hookdock::store::postgres::{PgOptions, PgStore};
use hookdock::store::{
    Claim, Fingerprint, IdempotencyKey, IdempotencyStore, MemoryIdempotencyStore,
};
use hookdock::store::{MemoryQueue, Queue, QueueOptions};
use hookdock::RawEvent;
use sqlx::postgres::PgPoolOptions;
use support::env_usize;

const PRODUCERS: usize = 256;
const WORKERS: usize = 2;
const LEASE_BATCH: usize = 256;
const LEASE_FOR: Duration = Duration::from_secs(60);

fn event(i: usize) -> RawEvent {
    // A typical small webhook: ~600 bytes of JSON and a few headers.
    let body = format!(
        "{{\"id\":\"evt_{i:08}\",\"type\":\"invoice.paid\",\"data\":{{\"object\":{{\"amount\":{i},\"currency\":\"usd\",\"customer\":\"cus_{i:08}\",\"lines\":[{}]}}}}}}",
        "{\"price\":\"price_123\",\"quantity\":1}".repeat(12)
    );
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "stripe-signature",
        http::HeaderValue::from_static(
            "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
        ),
    );
    RawEvent::new("stripe", format!("evt_{i:08}"), SystemTime::now(), body).with_headers(headers)
}

/// Enqueues `n` events from `PRODUCERS` concurrent tasks; events/s.
async fn intake(queue: Arc<dyn Queue>, n: usize) -> f64 {
    let start = Instant::now();
    let per = n.div_ceil(PRODUCERS);
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = queue.clone();
            tokio::spawn(async move {
                for i in p * per..((p + 1) * per).min(n) {
                    q.enqueue(event(i)).await.expect("enqueue");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("producer");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Fills the queue with `n` events (not timed).
async fn fill(queue: &Arc<dyn Queue>, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(2048) {
        let r = join_all(chunk.iter().map(|&i| queue.enqueue(event(i)))).await;
        for e in r {
            e.expect("fill");
        }
    }
}

/// One worker: lease → claim → no-op → complete → ack, until the queue is empty.
async fn worker(queue: Arc<dyn Queue>, store: Arc<dyn IdempotencyStore>) -> usize {
    let mut handled = 0;
    loop {
        let batch = queue.lease(LEASE_BATCH, LEASE_FOR).await.expect("lease");
        if batch.is_empty() {
            return handled;
        }
        handled += batch.len();
        join_all(batch.into_iter().map(|leased| {
            let (queue, store) = (&queue, &store);
            async move {
                let key = IdempotencyKey::new(leased.event.source.clone(), leased.event.id.clone());
                let fp = Fingerprint::of(&leased.event.body);
                match store.claim(&key, &fp, LEASE_FOR).await.expect("claim") {
                    Claim::Acquired(token) => {
                        std::hint::black_box(&leased.event.body);
                        store.complete(&key, token, None).await.expect("complete");
                    }
                    other => panic!("unexpected {other:?}"),
                }
                queue.ack(&leased.lease).await.expect("ack");
            }
        }))
        .await;
    }
}

/// Drains with `WORKERS` workers, each with its own queue/store handle; events/s.
async fn drain(workers: Vec<(Arc<dyn Queue>, Arc<dyn IdempotencyStore>)>, n: usize) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|(q, s)| tokio::spawn(worker(q, s)))
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("worker");
    }
    assert_eq!(total, n, "drained a different number of events");
    n as f64 / start.elapsed().as_secs_f64()
}

struct Row {
    name: &'static str,
    intake: f64,
    drain: f64,
}

async fn memory(intake_n: usize, drain_n: usize) -> Row {
    let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new());
    let intake = intake(q, intake_n).await;
    let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new());
    let s: Arc<dyn IdempotencyStore> = Arc::new(MemoryIdempotencyStore::new());
    fill(&q, drain_n).await;
    let drain = drain(vec![(q.clone(), s.clone()); WORKERS], drain_n).await;
    Row {
        name: "memory (baseline)",
        intake,
        drain,
    }
}

/// The embedded SQLite backend (`synchronous=FULL`) in a temporary directory: the same
/// workload, two workers sharing its writer.
#[cfg(feature = "sqlite")]
async fn sqlite(intake_n: usize, drain_n: usize) -> Row {
    use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
    let dir = tempfile::tempdir().expect("temporary directory");
    let store =
        SqliteStore::open(dir.path().join("intake.db"), SqliteOptions::new()).expect("open sqlite");
    let intake = intake(Arc::new(store.queue(QueueOptions::default())), intake_n).await;
    store.close().await;
    let store =
        SqliteStore::open(dir.path().join("drain.db"), SqliteOptions::new()).expect("open sqlite");
    let q: Arc<dyn Queue> = Arc::new(store.queue(QueueOptions::default()));
    let s: Arc<dyn IdempotencyStore> = Arc::new(store.idempotency());
    fill(&q, drain_n).await;
    let drain = drain(vec![(q.clone(), s.clone()); WORKERS], drain_n).await;
    store.close().await;
    Row {
        name: "sqlite",
        intake,
        drain,
    }
}

async fn postgres(url: &str, intake_n: usize, drain_n: usize) -> Row {
    let schema = format!("hd_bench_{}", std::process::id());
    let backend = |max: u32| {
        let schema = schema.clone();
        async move {
            let pool = PgPoolOptions::new()
                .max_connections(max)
                .connect(url)
                .await
                .expect("connect to HOOKDOCK_TEST_POSTGRES_URL");
            PgStore::from_pool(pool, PgOptions::new().schema(schema))
                .await
                .expect("open the store")
        }
    };
    let admin = backend(4).await;
    let q: Arc<dyn Queue> = Arc::new(admin.queue(QueueOptions::default()));
    let intake = intake(q.clone(), intake_n).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "TRUNCATE \"{schema}\".hookdock_events, \"{schema}\".hookdock_queue"
    )))
    .execute(admin.pool())
    .await
    .expect("truncate");
    fill(&q, drain_n).await;
    for table in ["hookdock_events", "hookdock_queue"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "VACUUM ANALYZE \"{schema}\".{table}"
        )))
        .execute(admin.pool())
        .await
        .expect("vacuum");
    }
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let b = backend(4).await;
        workers.push((
            Arc::new(b.queue(QueueOptions::default())) as Arc<dyn Queue>,
            Arc::new(b.idempotency()) as Arc<dyn IdempotencyStore>,
        ));
    }
    let drain = drain(workers, drain_n).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(admin.pool())
    .await
    .expect("drop schema");
    Row {
        name: "postgres",
        intake,
        drain,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it with no flag: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let intake_n = env_usize("HOOKDOCK_BENCH_INTAKE", 50_000);
    let drain_n = env_usize("HOOKDOCK_BENCH_DRAIN", 100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut rows = vec![memory(intake_n, drain_n).await];
        #[cfg(feature = "sqlite")]
        rows.push(sqlite(intake_n, drain_n).await);
        match std::env::var("HOOKDOCK_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => rows.push(postgres(&url, intake_n, drain_n).await),
            _ => eprintln!(
                "NOTICE: HOOKDOCK_TEST_POSTGRES_URL is not set; PostgreSQL skipped \
                 (eval \"$(scripts/postgres-test-server.sh start)\")"
            ),
        }
        let base = &rows[0];
        println!(
            "queue throughput: intake {intake_n} events ({PRODUCERS} producers), drain {drain_n} events ({WORKERS} workers, lease {LEASE_BATCH})"
        );
        println!(
            "{:<20} {:>14} {:>10} {:>14} {:>10}",
            "backend", "intake ev/s", "vs base", "drain ev/s", "vs base"
        );
        for r in &rows {
            println!(
                "{:<20} {:>14.0} {:>10.3} {:>14.0} {:>10.3}",
                r.name,
                r.intake,
                r.intake / base.intake,
                r.drain,
                r.drain / base.drain
            );
        }
    });
}
