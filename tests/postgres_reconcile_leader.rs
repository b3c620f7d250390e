//! Three processes run a `Reconciler` over one PostgreSQL schema: only one of them runs the
//! source's passes at any time, and when it is SIGKILLed another takes over within one
//! interval (plus slack).
//!
//! The reconciler processes are this test binary run again (`--ignored --exact
//! child_reconciler_process`) with the schema in the environment, like
//! `tests/postgres_multiprocess.rs`. Each runs a real `Reconciler` (spawned, every
//! [`INTERVAL`]) over a fake source that returns one page of one fetched event per poll and
//! records nothing. The process watches its reconciler's last report and, for every pass that
//! ran (`PassOutcome::Ran`, seen as a new report), writes a row `(pid, started, finished)`
//! into the table `passes`. The test then checks that no two passes of different processes
//! overlap, kills the leader, and measures how long until another process starts a pass.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hookdock::reconcile::{
    Change, ChangeSource, FetchedEvent, Page, PollError, PollRequest, Reconciler,
};
use hookdock::store::postgres::{PgOptions, PgStore};
use hookdock::store::{CheckpointStore, EventLog, QueueOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};

/// The reconcilers' interval: short, so the test is quick.
const INTERVAL: Duration = Duration::from_millis(500);
/// What a takeover may take beyond one interval before the test fails: generous, so a
/// loaded machine does not make it flake.
const SLACK: Duration = Duration::from_secs(3);
const PROCESSES: usize = 3;
const SCHEMA_VAR: &str = "HOOKDOCK_RL_SCHEMA";
const CHILD_VAR: &str = "HOOKDOCK_RL_CHILD";
/// A child stops by itself after this long, should the test die without killing it.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

fn micros(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros()).unwrap_or(i64::MAX)
}

/// One recorded pass: (pid, started, finished), times in Unix microseconds.
type Pass = (i64, i64, i64);

/// The passes recorded so far, by start.
async fn passes(pool: &PgPool, schema: &str) -> Vec<Pass> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT pid, started, finished FROM \"{schema}\".passes ORDER BY started"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Pairs of passes of different processes whose intervals overlap.
fn overlaps(passes: &[Pass]) -> Vec<(Pass, Pass)> {
    let mut found = Vec::new();
    for (i, a) in passes.iter().enumerate() {
        for b in &passes[i + 1..] {
            if a.0 != b.0 && a.1 < b.2 && b.1 < a.2 {
                found.push((*a, *b));
            }
        }
    }
    found
}

fn kill_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reconciler_process_leads_and_another_takes_over_when_it_is_killed() {
    let db = test_db!("reconcile_leader");
    let pool = db.store.pool().clone();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE \"{}\".passes (pid BIGINT NOT NULL, started BIGINT NOT NULL, finished BIGINT NOT NULL)",
        db.schema
    )))
    .execute(&pool)
    .await
    .unwrap();
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child_reconciler_process",
                    "--nocapture",
                ])
                .env(postgres_support::URL_VAR, &db.url)
                .env(SCHEMA_VAR, &db.schema)
                .env(CHILD_VAR, i.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn reconciler process")
        })
        .collect();
    let pids: Vec<i64> = children.iter().map(|c| i64::from(c.id())).collect();

    // A few passes, all by one process.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let got = passes(&pool, &db.schema).await;
        if got.len() >= 4 {
            break got;
        }
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(status) = c.try_wait().unwrap() {
                kill_all(&mut children);
                panic!("reconciler process {i} exited early: {status}");
            }
        }
        if Instant::now() > deadline {
            kill_all(&mut children);
            panic!("no reconciler process ran passes ({} recorded)", got.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let leader = before.last().unwrap().0;
    let by_leader = before.iter().filter(|p| p.0 == leader).count();
    eprintln!(
        "{} passes before the kill, {by_leader} of them by the leader, pid {leader} (processes {pids:?})",
        before.len()
    );
    assert!(
        before.iter().all(|p| p.0 == leader),
        "while the leader lives no other process runs passes: {before:?}"
    );
    let Some(index) = pids.iter().position(|&p| p == leader) else {
        kill_all(&mut children);
        panic!("pid {leader} is not one of the children {pids:?}");
    };

    children[index].kill().expect("SIGKILL the leader");
    let status = children[index].wait().unwrap();
    let killed_at = SystemTime::now();
    assert_eq!(
        status.signal(),
        Some(9),
        "the leader was not killed by SIGKILL"
    );

    // Another process starts a pass within one interval and the slack.
    let bound = INTERVAL + SLACK;
    let deadline = Instant::now() + bound + Duration::from_secs(1);
    let successor = loop {
        let got = passes(&pool, &db.schema).await;
        if let Some(p) = got.iter().find(|p| p.0 != leader) {
            break *p;
        }
        if Instant::now() > deadline {
            kill_all(&mut children);
            panic!("no process took over within {bound:?} after the leader was killed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let takeover =
        Duration::from_micros(u64::try_from(successor.1 - micros(killed_at)).unwrap_or(0));
    eprintln!(
        "takeover: pid {} started a pass {takeover:?} after the leader was killed (interval {INTERVAL:?})",
        successor.0
    );
    assert!(
        takeover <= bound,
        "another process must take over within one interval (+{SLACK:?}): took {takeover:?}"
    );

    // A few more passes, then every pass is checked.
    let wait_until = Instant::now() + INTERVAL * 4;
    while Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = passes(&pool, &db.schema).await;
    kill_all(&mut children);
    let after: Vec<_> = all.iter().filter(|p| p.1 > micros(killed_at)).collect();
    eprintln!(
        "{} passes in all, {} after the kill",
        all.len(),
        after.len()
    );
    assert!(
        after.iter().all(|p| p.0 == successor.0),
        "after the takeover only the new leader runs passes: {after:?}"
    );
    assert!(
        after.len() >= 2,
        "the new leader keeps running passes: {after:?}"
    );
    let overlapping = overlaps(&all);
    assert!(
        overlapping.is_empty(),
        "passes of two processes overlapped: {overlapping:?}"
    );
    // The reports are in the store: the last pass's, by one of the processes.
    let queue = db.store.queue(QueueOptions::default());
    let reports = queue.reports().await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].source, "fake");
    db.cleanup().await;
}

/// A source that returns one page with one fetched event per poll, and records nothing.
struct Fake;

#[async_trait]
impl ChangeSource for Fake {
    fn name(&self) -> &str {
        "fake"
    }

    fn horizon(&self) -> Duration {
        Duration::from_secs(3600)
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        // Long enough that the passes of two processes would overlap if both ran them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let id = format!("evt-{}", micros(request.until));
        let event = FetchedEvent::new(id, "{}").with_occurred_at(request.until);
        Ok(Page::last(vec![Change::Event(event)], None))
    }
}

/// Not a test: a reconciler process started by the test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reconciler process for one_reconciler_process_leads_and_another_takes_over_when_it_is_killed"]
async fn child_reconciler_process() {
    let (Ok(url), Ok(schema), Ok(_child)) = (
        std::env::var(postgres_support::URL_VAR),
        std::env::var(SCHEMA_VAR),
        std::env::var(CHILD_VAR),
    ) else {
        eprintln!("child_reconciler_process runs only when started by the leadership test");
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("connect");
    let store = PgStore::from_pool(pool.clone(), PgOptions::new().schema(schema.clone()))
        .await
        .expect("open the store");
    let queue = store.queue(QueueOptions::default());
    let log: Arc<dyn EventLog> = Arc::new(queue.clone());
    let checkpoints: Arc<dyn CheckpointStore> = Arc::new(queue);
    let handle = Reconciler::builder(log, checkpoints)
        .source(Fake)
        .every(INTERVAL)
        .retries(2, Duration::from_millis(50))
        .build()
        .spawn();
    let pid = i64::from(std::process::id());
    let insert =
        format!("INSERT INTO \"{schema}\".passes (pid, started, finished) VALUES ($1, $2, $3)");
    let mut last = None;
    let stop = Instant::now() + CHILD_LIFETIME;
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(report) = handle.reconciler().last_reports().pop() else {
            continue;
        };
        if last == Some(report.started_at) {
            continue;
        }
        last = Some(report.started_at);
        let started = micros(report.started_at);
        let finished = micros(report.started_at + report.duration);
        sqlx::query(AssertSqlSafe(insert.clone()))
            .bind(pid)
            .bind(started)
            .bind(finished)
            .execute(&pool)
            .await
            .expect("record the pass");
    }
    handle.shutdown().await;
}
