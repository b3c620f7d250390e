//! Exactly once across a crash between a handler's effect and the completion of its dedupe
//! claim, on PostgreSQL.
//!
//! A worker process (this test binary run again: `--ignored --exact
//! child_worker_crashes_after_commit`) runs hookdock's `Worker` with the dedupe layer over
//! the PostgreSQL idempotency store. Its handler writes the effect (a row in `effects`, which
//! has no unique constraint: a second application is counted, not refused) in a transaction,
//! commits, prints `COMMITTED`, and stops there: the test SIGKILLs the process at that
//! point, after the commit and before the handler returns to the dedupe layer. Then a fresh
//! worker (another pool, as another process would have) handles the redelivery once the dead
//! worker's lease has expired (the test's clock is moved past it; nothing sleeps).
//!
//! - `completing_the_claim_in_the_effect_transaction_survives_a_crash_after_commit`: the
//!   handler also completes the claim in its transaction
//!   ([`PgIdempotencyStore::complete_in`] with the key and token from [`Event::claim`]), and
//!   marks it completed after the commit. The redelivery is acked as a duplicate: one effect.
//! - `without_it_the_same_crash_applies_the_effect_twice`: the same handler and the same
//!   crash, leaving the completion to the layer (which never gets to it). The redelivery runs
//!   the handler again: two effects. This is the limitation the first test's handler closes,
//!   and it shows the test can tell the two apart.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hookdock::store::postgres::{PgIdempotencyStore, PgOptions, PgStore};
use hookdock::store::{Queue, QueueOptions};
use hookdock::worker::DedupeLayer;
use hookdock::worker::{BatchReport, Event, HandlerError, Worker};
use hookdock::RawEvent;
use postgres_support::TestDb;
use sqlx::AssertSqlSafe;

/// The worker's lease and the dedupe claim's.
const LEASE: Duration = Duration::from_secs(2);
const SCHEMA_VAR: &str = "HOOKDOCK_CLAIM_TEST_SCHEMA";
const MODE_VAR: &str = "HOOKDOCK_CLAIM_TEST_MODE";
const EVENT: &str = "evt-crash-1";

/// How the handler completes the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In the effect's transaction, then `mark_completed`.
    InTransaction,
    /// Left to the dedupe layer after the handler returns.
    ByTheLayer,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::InTransaction => "in_transaction",
            Self::ByTheLayer => "by_the_layer",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::InTransaction, Self::ByTheLayer]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The handler of both tests and of the crashing child.
#[derive(Clone)]
struct Handler {
    pool: sqlx::PgPool,
    claims: Arc<PgIdempotencyStore>,
    insert: Arc<str>,
    mode: Mode,
    /// Stop (for the parent to SIGKILL this process) right after the commit.
    crash_after_commit: bool,
}

impl Handler {
    fn new(backend: &PgStore, claims: Arc<PgIdempotencyStore>, mode: Mode, crash: bool) -> Self {
        Self {
            pool: backend.pool().clone(),
            claims,
            insert: Arc::from(format!(
                "INSERT INTO \"{}\".effects (event_id, attempt) VALUES ($1, $2)",
                backend.schema()
            )),
            mode,
            crash_after_commit: crash,
        }
    }

    async fn handle(self, event: Event) -> Result<(), HandlerError> {
        let claim = event
            .claim()
            .ok_or_else(|| HandlerError::permanent("no dedupe claim on the event"))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe(self.insert.clone()))
            .bind(event.id().as_str())
            .bind(i32::try_from(event.attempt()).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
        if self.mode == Mode::InTransaction {
            self.claims
                .complete_in(&mut tx, claim.key(), claim.token(), None)
                .await?;
        }
        tx.commit().await?;
        if self.crash_after_commit {
            // The crash point: committed, not yet back in the dedupe layer.
            println!("COMMITTED {}/{}", event.source(), event.id());
            std::future::pending::<()>().await;
        }
        if self.mode == Mode::InTransaction {
            claim.mark_completed();
        }
        Ok(())
    }
}

fn worker(backend: &PgStore, mode: Mode, crash: bool) -> Worker {
    let queue = backend.queue(QueueOptions::default());
    let claims = Arc::new(backend.idempotency());
    let handler = Handler::new(backend, claims.clone(), mode, crash);
    Worker::builder(queue)
        .dedupe(
            DedupeLayer::builder(claims)
                .claim_lease(LEASE)
                .build()
                .expect("dedupe layer"),
        )
        .lease_for(LEASE)
        .build(tower::service_fn(move |event: Event| {
            handler.clone().handle(event)
        }))
        .expect("worker")
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.replace("{schema}", &db.schema)))
        .fetch_one(db.store.pool())
        .await
        .expect("count")
}

/// What the crash and the redelivery left.
struct Outcome {
    /// Effect rows of the event.
    effects: i64,
    /// Effect rows written on the redelivery (attempt 2).
    effects_on_redelivery: i64,
    /// Whether the claim was completed when the worker died.
    completed_at_crash: bool,
    /// What the second worker did.
    redelivery: BatchReport,
}

/// Enqueues one event, lets a worker process commit its effect and SIGKILLs it right after,
/// then lets a fresh worker handle the redelivery.
async fn crash_after_commit(db: &TestDb, mode: Mode) -> Outcome {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE \"{}\".effects (event_id TEXT NOT NULL, attempt INT NOT NULL)",
        db.schema
    )))
    .execute(db.store.pool())
    .await
    .expect("effects table");
    // The child runs on the system clock; this side's clock starts there too.
    db.clock.set(SystemTime::now());
    let queue = db.store.queue(QueueOptions::default());
    queue
        .enqueue(RawEvent::new(
            "github",
            EVENT,
            SystemTime::now(),
            r#"{"amount":42}"#,
        ))
        .await
        .expect("enqueue");

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "child_worker_crashes_after_commit",
            "--nocapture",
        ])
        .env(postgres_support::URL_VAR, &db.url)
        .env(SCHEMA_VAR, &db.schema)
        .env(MODE_VAR, mode.name())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the worker process");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("COMMITTED ") {
                let _ = tx.send(line);
            }
        }
    });
    let committed = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the worker process never committed the effect: {e}");
        }
    };
    assert_eq!(committed, format!("COMMITTED github/{EVENT}"));
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap");
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");

    // The state the crash left: the effect committed, the message still leased.
    assert_eq!(
        count(db, "SELECT count(*) FROM \"{schema}\".effects").await,
        1
    );
    let stats = queue.stats().await.expect("stats");
    assert_eq!((stats.leased, stats.ready), (1, 0), "{stats:?}");
    let completed_at_crash = count(
        db,
        "SELECT count(*) FROM \"{schema}\".hookdock_queue WHERE claim_done",
    )
    .await
        == 1;

    // Past the dead worker's lease (and claim): a fresh worker gets the redelivery.
    db.clock
        .set(SystemTime::now() + LEASE + Duration::from_secs(5));
    let backend = db.another_process().await;
    let redelivery = worker(&backend, mode, false)
        .run_until_idle()
        .await
        .expect("second worker");
    let stats = queue.stats().await.expect("stats");
    assert_eq!(stats.depth() + stats.dead, 0, "drained: {stats:?}");
    Outcome {
        effects: count(
            db,
            &format!("SELECT count(*) FROM \"{{schema}}\".effects WHERE event_id = '{EVENT}'"),
        )
        .await,
        effects_on_redelivery: count(
            db,
            "SELECT count(*) FROM \"{schema}\".effects WHERE attempt = 2",
        )
        .await,
        completed_at_crash,
        redelivery,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_the_claim_in_the_effect_transaction_survives_a_crash_after_commit() {
    let db = test_db!("claim_in_transaction");
    let outcome = crash_after_commit(&db, Mode::InTransaction).await;
    assert!(
        outcome.completed_at_crash,
        "the completion committed with the effect"
    );
    assert_eq!(outcome.effects, 1, "the effect was applied once");
    assert_eq!(outcome.effects_on_redelivery, 0);
    assert_eq!(outcome.redelivery.leased, 1, "the event was redelivered");
    assert_eq!(
        outcome.redelivery.duplicates, 1,
        "and acked as a duplicate: {:?}",
        outcome.redelivery
    );
    assert_eq!(outcome.redelivery.succeeded, 0);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_it_the_same_crash_applies_the_effect_twice() {
    let db = test_db!("claim_by_layer");
    let outcome = crash_after_commit(&db, Mode::ByTheLayer).await;
    assert!(
        !outcome.completed_at_crash,
        "the layer never completed the claim"
    );
    assert_eq!(outcome.redelivery.succeeded, 1, "{:?}", outcome.redelivery);
    assert_eq!(outcome.effects_on_redelivery, 1);
    assert_eq!(
        outcome.effects, 2,
        "the documented limitation: the handler ran again after the crash"
    );
    db.cleanup().await;
}

/// Not a test: the worker process the tests above start and SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "worker process for the crash tests in this file"]
async fn child_worker_crashes_after_commit() {
    let (Ok(url), Ok(schema), Some(mode)) = (
        std::env::var(postgres_support::URL_VAR),
        std::env::var(SCHEMA_VAR),
        std::env::var(MODE_VAR)
            .ok()
            .as_deref()
            .and_then(Mode::parse),
    ) else {
        eprintln!("child_worker_crashes_after_commit runs only when started by the crash tests");
        return;
    };
    let backend = PgStore::connect(&url, PgOptions::new().schema(schema.clone()))
        .await
        .expect("open the store");
    let running = worker(&backend, mode, true).spawn();
    // The parent kills this process once the effect is committed; never exit on our own
    // before that (unless something is wrong, after a minute).
    tokio::time::sleep(Duration::from_secs(60)).await;
    eprintln!("child: not killed within a minute: {:?}", running.stats());
    std::process::exit(2);
}
