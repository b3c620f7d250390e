//! Three worker processes on one PostgreSQL database drain 20,000 events while one of them
//! is SIGKILLed midway; every event's effect must be applied exactly once.
//!
//! The workers are this test binary run again (`--ignored --exact child_worker_process`)
//! with the schema in the environment: each runs hookdock's `Worker` over the PostgreSQL
//! queue, with a handler that claims the event in the idempotency store and writes the
//! effect (a row in `effects`, which has no unique constraint: a duplicate would be counted,
//! not refused) and the completion in one transaction; the worker then acks. Effects are
//! counted by event id at the end.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookdock::store::postgres::{PgIdempotencyStore, PgOptions, PgStore};
use hookdock::store::{Claim, Fingerprint, IdempotencyKey, IdempotencyStore};
use hookdock::store::{Queue, QueueOptions};
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::RawEvent;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};

const EVENTS: usize = 20_000;
const WORKERS: usize = 3;
/// Short, so the killed worker's leases and claims come back quickly.
const LEASE: Duration = Duration::from_secs(3);
const BATCH: usize = 64;
const SCHEMA_VAR: &str = "HOOKDOCK_MP_SCHEMA";
const WORKER_VAR: &str = "HOOKDOCK_MP_WORKER";

fn options() -> QueueOptions {
    // Redeliveries after the kill and in-progress deferrals must never dead-letter here.
    QueueOptions::default().max_attempts(1_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_one_killed_apply_each_effect_exactly_once() {
    let db = test_db!("three_worker_processes");
    let pool = db.store.pool().clone();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE \"{0}\".effects (event_id TEXT NOT NULL, worker INT NOT NULL, attempt INT NOT NULL);
         CREATE TABLE \"{0}\".started (event_id TEXT NOT NULL, worker INT NOT NULL)",
        db.schema
    )))
    .execute(&pool)
    .await
    .unwrap();
    // The workers run on the system clock; so does this side.
    let backend = db.another_with(PgOptions::new()).await;
    let queue = Arc::new(backend.queue(options()));
    let started = Instant::now();
    let enqueues: Vec<_> = (0..EVENTS)
        .map(|i| {
            let q = queue.clone();
            async move {
                q.enqueue(RawEvent::new(
                    "mp",
                    format!("evt-{i:05}"),
                    std::time::SystemTime::now(),
                    format!("{{\"n\":{i}}}"),
                ))
                .await
            }
        })
        .collect();
    for r in futures_util::future::join_all(enqueues).await {
        r.unwrap();
    }
    eprintln!("enqueued {EVENTS} events in {:?}", started.elapsed());

    let mut children: Vec<Child> = (0..WORKERS)
        .map(|w| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child_worker_process",
                    "--nocapture",
                ])
                .env(postgres_support::URL_VAR, &db.url)
                .env(SCHEMA_VAR, &db.schema)
                .env(WORKER_VAR, w.to_string())
                // The child's own test report is noise here; its stderr explains failures.
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn worker process")
        })
        .collect();
    let effects = format!("\"{}\".effects", db.schema);
    let deadline = Instant::now() + Duration::from_secs(240);

    // Kill worker 0 once a quarter of the effects are in, while it is handling events whose
    // effects it has not written yet (it started more than it applied).
    let progress = format!(
        "SELECT (SELECT count(*) FROM {effects}),
                (SELECT count(*) FROM \"{0}\".started WHERE worker = 0)
                  - (SELECT count(*) FROM {effects} WHERE worker = 0)",
        db.schema
    );
    let at_kill = loop {
        let row = sqlx::query(AssertSqlSafe(progress.clone()))
            .fetch_one(&pool)
            .await
            .unwrap();
        let (n, busy): (i64, i64) = (row.get(0), row.get(1));
        if n >= (EVENTS / 4) as i64 && busy > 0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "workers made no progress ({n} effects)"
        );
        if let Some(status) = children[0].try_wait().unwrap() {
            panic!("worker 0 exited before it could be killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    children[0].kill().expect("SIGKILL worker 0");
    let status = children[0].wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "worker 0 was not killed by SIGKILL"
    );
    let in_flight: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".hookdock_queue WHERE claim_token IS NOT NULL AND NOT claim_done",
        db.schema
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    eprintln!(
        "killed worker 0 with {at_kill} of {EVENTS} effects applied; {in_flight} claims left in progress"
    );

    for (w, child) in children.iter_mut().enumerate().skip(1) {
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                for c in children.iter_mut() {
                    let _ = c.kill();
                }
                panic!("workers did not finish in time");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "worker {w} failed: {status}");
    }
    eprintln!("drained in {:?}", started.elapsed());

    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT event_id),
                count(*) FILTER (WHERE attempt > 1),
                count(*) FILTER (WHERE worker = 0)
         FROM {effects}"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    let (total, distinct, redelivered, by_killed): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let duplicates: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT event_id FROM {effects} GROUP BY event_id HAVING count(*) > 1 LIMIT 10"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    eprintln!(
        "effects: {total} rows, {distinct} distinct ids, {redelivered} applied on a redelivery, \
         {by_killed} by the killed worker"
    );
    let attempts: Vec<(i32, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT attempt, count(*) FROM {effects} GROUP BY attempt ORDER BY attempt"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    eprintln!("effects by attempt: {attempts:?}");
    // What the killed worker started but never applied: each must have been applied once,
    // by another worker, on a later attempt.
    let row = sqlx::query(AssertSqlSafe(format!(
        "WITH orphaned AS (
             SELECT DISTINCT s.event_id FROM \"{0}\".started s
             WHERE s.worker = 0 AND NOT EXISTS (
                 SELECT 1 FROM {effects} e WHERE e.event_id = s.event_id AND e.worker = 0))
         SELECT count(*),
                count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM {effects} e
                    WHERE e.event_id = o.event_id AND e.worker <> 0 AND e.attempt > 1))
         FROM orphaned o",
        db.schema
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    let (orphaned, recovered): (i64, i64) = (row.get(0), row.get(1));
    eprintln!(
        "the killed worker left {orphaned} started events unapplied; \
         {recovered} of them were redelivered and applied by another worker"
    );
    assert_eq!(
        orphaned, recovered,
        "events the killed worker was handling were not redelivered and applied elsewhere"
    );
    assert!(
        duplicates.is_empty(),
        "effects applied twice: {duplicates:?}"
    );
    assert_eq!(distinct, EVENTS as i64, "events whose effect is missing");
    assert_eq!(total, EVENTS as i64);
    let completed: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".hookdock_queue WHERE claim_done",
        db.schema
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(completed, EVENTS as i64);
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        stats.depth() + stats.dead,
        0,
        "queue not drained: {stats:?}"
    );
    db.cleanup().await;
}

/// Not a test: the worker process started by the test above.
///
/// A real [`Worker`] (batched leases, bounded concurrency, lease extension, retries,
/// wake-ups through `LISTEN/NOTIFY`) over the PostgreSQL queue, running a handler that
/// claims the event in the idempotency store and writes its effect and the completion in
/// one transaction ([`PgIdempotencyStore::complete_in`]): that is what makes the effect
/// exactly-once across a SIGKILL at any point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "worker process for three_worker_processes_one_killed_apply_each_effect_exactly_once"]
async fn child_worker_process() {
    let (Ok(url), Ok(schema), Ok(worker)) = (
        std::env::var(postgres_support::URL_VAR),
        std::env::var(SCHEMA_VAR),
        std::env::var(WORKER_VAR),
    ) else {
        eprintln!("child_worker_process runs only when started by the multi-process test");
        return;
    };
    let worker_index: i32 = worker.parse().expect("worker index");
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect(&url)
        .await
        .expect("connect");
    let backend = PgStore::from_pool(pool.clone(), PgOptions::new().schema(schema.clone()))
        .await
        .expect("open the store");
    let queue = Arc::new(backend.queue(options()));
    let handler = Handler {
        store: Arc::new(backend.idempotency()),
        pool: pool.clone(),
        started: Arc::from(format!(
            "INSERT INTO \"{schema}\".started (event_id, worker) VALUES ($1, $2)"
        )),
        insert: Arc::from(format!(
            "INSERT INTO \"{schema}\".effects (event_id, worker, attempt) VALUES ($1, $2, $3)"
        )),
        worker: worker_index,
    };
    let worker = Worker::builder(queue.clone())
        .concurrency(BATCH)
        .batch_size(BATCH)
        .lease_for(LEASE)
        .poll_interval(Duration::from_millis(20), Duration::from_millis(250))
        .build(tower::service_fn(move |event: Event| {
            let handler = handler.clone();
            async move { handler.handle(event).await }
        }))
        .expect("worker");
    let running = worker.spawn();
    // Run until nothing is left: no message ready, leased (by anyone) or scheduled.
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if matches!(queue.stats().await, Ok(s) if s.depth() == 0) {
            break;
        }
    }
    let stats = running.stats();
    running.shutdown().await;
    eprintln!("worker {worker_index}: {stats:?}; queue empty");
}

#[derive(Clone)]
struct Handler {
    store: Arc<PgIdempotencyStore>,
    pool: PgPool,
    started: Arc<str>,
    insert: Arc<str>,
    worker: i32,
}

impl Handler {
    /// Claim → (effect + completion in one transaction). The worker acks on `Ok`.
    async fn handle(&self, event: Event) -> Result<(), HandlerError> {
        let id = event.id().as_str();
        sqlx::query(AssertSqlSafe(self.started.clone()))
            .bind(id)
            .bind(self.worker)
            .execute(&self.pool)
            .await
            .map_err(HandlerError::retry)?;
        let key = IdempotencyKey::new(event.source(), event.id().clone());
        let fingerprint = Fingerprint::of(event.body());
        match self
            .store
            .claim(&key, &fingerprint, LEASE)
            .await
            .map_err(HandlerError::retry)?
        {
            Claim::Acquired(token) => {
                let mut tx = self.pool.begin().await.map_err(HandlerError::retry)?;
                sqlx::query(AssertSqlSafe(self.insert.clone()))
                    .bind(id)
                    .bind(self.worker)
                    .bind(i32::try_from(event.attempt()).unwrap_or(i32::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(HandlerError::retry)?;
                // ClaimLost: taken over; dropping `tx` rolls the effect back.
                self.store
                    .complete_in(&mut tx, &key, token, None)
                    .await
                    .map_err(HandlerError::retry)?;
                tx.commit().await.map_err(HandlerError::retry)
            }
            Claim::Completed(_) => Ok(()),
            Claim::InProgress { until } => Err(HandlerError::defer(until, "in progress elsewhere")),
            Claim::FingerprintMismatch => Err(HandlerError::permanent("fingerprint mismatch")),
            other => Err(HandlerError::permanent(format!(
                "unexpected claim {other:?}"
            ))),
        }
    }
}
