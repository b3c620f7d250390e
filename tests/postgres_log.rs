//! The PostgreSQL event log against a real server: what each record remembers, forced
//! replays, replay jobs stepped from many processes at once and resumed by a new one. The
//! shared conformance suite runs in `postgres_conformance.rs`.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookdock::store::postgres::PgOptions;
use hookdock::store::{
    Claim, DeadLetterFilter, Enqueued, ErrorKind, EventFilter, EventLog, EventStatus, Fingerprint,
    IdempotencyKey, IdempotencyStore, Leased, Origin, Queue, QueueOptions, ReplayJobId, ReplayMode,
    ReplayState,
};
use hookdock::{Clock, RawEvent};
use http::{HeaderMap, HeaderValue};
use postgres_support::start_time;

const LEASE: Duration = Duration::from_secs(30);

fn event(i: usize) -> RawEvent {
    RawEvent::new(
        "github",
        format!("d-{i}"),
        start_time() + Duration::from_millis(i as u64),
        format!("{{\"n\":{i}}}"),
    )
    .with_event_type(if i.is_multiple_of(2) {
        "push"
    } else {
        "issues"
    })
}

async fn lease_one(queue: &impl Queue) -> Leased {
    let mut got = queue.lease(1, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "one message ready");
    got.remove(0)
}

/// Enqueues `n` events, then leases and acks every one.
async fn handled(queue: &impl Queue, n: usize) {
    for i in 0..n {
        assert!(matches!(
            queue.enqueue(event(i)).await.unwrap(),
            Enqueued::New(_)
        ));
    }
    loop {
        let batch = queue.lease(100, LEASE).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for l in batch {
            queue.ack(&l.lease).await.unwrap();
        }
    }
}

/// Every entry the log holds, by event id.
async fn entries(log: &impl EventLog) -> HashMap<String, hookdock::store::LogEntry> {
    let mut out = HashMap::new();
    let mut filter = EventFilter::all().limit(50);
    loop {
        let page = log.list(&filter).await.unwrap();
        for e in page.entries {
            assert!(
                out.insert(e.event_id.as_str().to_owned(), e).is_none(),
                "a walk repeats no entry"
            );
        }
        match page.next {
            Some(next) => filter = filter.before(next),
            None => return out,
        }
    }
}

#[tokio::test]
async fn each_record_keeps_its_type_origin_and_history() {
    let db = test_db!("each_record_keeps_its_history");
    let queue = db.store.queue(QueueOptions::default().max_attempts(2));
    let mut headers = HeaderMap::new();
    headers.insert("x-github-event", HeaderValue::from_static("push"));
    let pushed = RawEvent::new("github", "a", start_time(), "{\"a\":1}")
        .with_headers(headers.clone())
        .with_event_type("push");
    let fetched =
        RawEvent::new("github", "b", start_time(), "{\"b\":2}").with_origin(Origin::Reconciliation);
    queue.enqueue(pushed.clone()).await.unwrap();
    queue.enqueue(fetched.clone()).await.unwrap();

    // Leased events come back with their type and origin.
    let t0 = db.clock.now();
    let a = lease_one(&queue).await;
    assert_eq!(a.event, pushed, "type, headers and bytes as stored");
    let b = lease_one(&queue).await;
    assert_eq!(b.event.origin, Origin::Reconciliation);
    assert_eq!(b.event.event_type, None);

    // a: retried, leased again later, acked. b: dead-lettered.
    queue.retry(&a.lease, t0, "flaky").await.unwrap();
    db.clock.advance(Duration::from_secs(5));
    let t1 = db.clock.now();
    let a = lease_one(&queue).await;
    assert_eq!(a.attempt, 2);
    let log = entries(&queue).await;
    assert_eq!(log["a"].status, EventStatus::Leased);
    assert_eq!(log["a"].first_attempt_at, Some(t0), "first lease kept");
    assert_eq!(log["a"].last_attempt_at, Some(t1), "last lease now");
    assert_eq!(log["a"].last_error.as_deref(), Some("flaky"));
    db.clock.advance(Duration::from_secs(1));
    let t2 = db.clock.now();
    queue.ack(&a.lease).await.unwrap();
    queue
        .dead_letter(&b.lease, "no such customer")
        .await
        .unwrap();

    let log = entries(&queue).await;
    let (ea, eb) = (&log["a"], &log["b"]);
    assert_eq!(ea.status, EventStatus::Succeeded);
    assert_eq!(ea.attempts, 2);
    assert_eq!(ea.done_at, Some(t2));
    assert_eq!(ea.event_type.as_deref(), Some("push"));
    assert_eq!(ea.origin, Origin::Push);
    assert_eq!(ea.body_bytes, 7);
    assert_eq!(eb.status, EventStatus::Dead);
    assert_eq!(eb.last_error.as_deref(), Some("no such customer"));
    assert_eq!(eb.done_at, Some(t2));
    assert_eq!(eb.origin, Origin::Reconciliation);
    assert_eq!(
        (eb.first_attempt_at, eb.last_attempt_at),
        (Some(t0), Some(t0))
    );

    // Get: bytes and headers exactly as stored, through the key.
    let got = queue
        .get("github", "a")
        .await
        .unwrap()
        .expect("a is logged");
    assert_eq!(got.event, pushed);
    assert_eq!(got.entry, *ea);
    assert!(queue.get("github", "zzz").await.unwrap().is_none());
    assert_eq!(
        queue.get("", "a").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // Counts and filters read the same columns.
    let counts = queue.counts(&EventFilter::all()).await.unwrap();
    assert_eq!(counts.total(), 2);
    assert_eq!(counts.with_status(EventStatus::Dead), 1);
    assert_eq!(counts.oldest_pending, None, "nothing waits");
    let push = queue
        .list(&EventFilter::all().event_type("push"))
        .await
        .unwrap();
    assert_eq!(push.entries.len(), 1);
    let recon = queue
        .list(&EventFilter::all().origin(Origin::Reconciliation))
        .await
        .unwrap();
    assert_eq!(recon.entries[0].event_id.as_str(), "b");

    // Queue::replay of the dead letter marks it as a replay with a fresh history.
    assert_eq!(queue.replay(&DeadLetterFilter::all()).await.unwrap(), 1);
    let eb = queue.get("github", "b").await.unwrap().unwrap().entry;
    assert_eq!(eb.status, EventStatus::Pending);
    assert_eq!(eb.origin, Origin::Replay);
    assert_eq!(eb.replays, 1);
    assert_eq!(eb.last_error, None);
    assert_eq!((eb.first_attempt_at, eb.done_at), (None, None));
    let counts = queue.counts(&EventFilter::all()).await.unwrap();
    assert_eq!(counts.oldest_pending, Some(start_time()));
    db.cleanup().await;
}

#[tokio::test]
async fn the_log_adds_no_index_to_the_tables_enqueue_writes() {
    let db = test_db!("the_log_adds_no_index");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
         WHERE schemaname = $1 AND tablename IN ('hookdock_events', 'hookdock_queue')
         ORDER BY 1",
    )
    .bind(&db.schema)
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            // Ordering's (migration 5), partial: written only for events with a key.
            "hookdock_events_order",
            "hookdock_events_pkey",
            "hookdock_events_source_event_id_key",
            "hookdock_queue_dead",
            "hookdock_queue_due",
            "hookdock_queue_forget",
            "hookdock_queue_pkey",
        ]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_forced_replay_resets_the_claim_and_a_dedupe_replay_keeps_it() {
    let db = test_db!("a_forced_replay_resets_the_claim");
    let queue = db.store.queue(QueueOptions::default());
    let claims = db.store.idempotency();
    let e = event(1);
    let key = IdempotencyKey::new("github", "d-1");
    let fp = Fingerprint::of(&e.body);
    queue.enqueue(e.clone()).await.unwrap();
    let l = lease_one(&queue).await;
    let Claim::Acquired(token) = claims.claim(&key, &fp, LEASE).await.unwrap() else {
        panic!("first claim acquires");
    };
    claims.complete(&key, token, None).await.unwrap();
    queue.ack(&l.lease).await.unwrap();

    // Through dedupe: the event runs again, but its claim is still completed.
    let job = queue
        .create_replay(&EventFilter::all(), ReplayMode::Dedupe)
        .await
        .unwrap();
    assert_eq!(job.total, 1);
    let job = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!(
        (job.replayed, job.skipped, job.state),
        (1, 0, ReplayState::Finished)
    );
    let again = lease_one(&queue).await;
    assert_eq!(again.event.origin, Origin::Replay);
    assert_eq!(again.attempt, 1, "attempts start over");
    assert!(matches!(
        claims.claim(&key, &fp, LEASE).await.unwrap(),
        Claim::Completed(_)
    ));
    queue.ack(&again.lease).await.unwrap();

    // Forced: the claim is reset, so the next claim acquires (the handler runs again).
    let job = queue
        .create_replay(&EventFilter::all().source("github"), ReplayMode::Forced)
        .await
        .unwrap();
    let job = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!(job.replayed, 1);
    let entry = queue.get("github", "d-1").await.unwrap().unwrap().entry;
    assert_eq!((entry.replays, entry.forced_replays), (2, 1));
    assert_eq!(entry.status, EventStatus::Pending);
    let third = lease_one(&queue).await;
    assert!(matches!(
        claims.claim(&key, &fp, LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));
    queue.ack(&third.lease).await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn a_job_skips_what_is_not_settled_and_unknown_jobs_are_invalid() {
    let db = test_db!("a_job_skips_what_is_not_settled");
    let queue = db.store.queue(QueueOptions::default());
    handled(&queue, 4).await;
    queue.enqueue(event(10)).await.unwrap(); // pending
    queue.enqueue(event(11)).await.unwrap();
    let leased = lease_one(&queue).await; // d-10 leased
    let job = queue
        .create_replay(&EventFilter::all(), ReplayMode::Dedupe)
        .await
        .unwrap();
    assert_eq!(job.total, 6);
    // Enqueued after the job was created: past its `through`, never selected.
    queue.enqueue(event(12)).await.unwrap();
    let mut job = job;
    while !job.is_over() {
        job = queue.step_replay(job.id, 4).await.unwrap();
    }
    assert_eq!((job.replayed, job.skipped), (4, 2));
    assert_eq!(job.state, ReplayState::Finished);
    let log = entries(&queue).await;
    assert_eq!(log["d-10"].status, EventStatus::Leased, "left alone");
    assert_eq!(log["d-12"].replays, 0);
    queue.ack(&leased.lease).await.unwrap();
    // A finished job steps as a no-op; an unknown one is refused.
    let same = queue.step_replay(job.id, 4).await.unwrap();
    assert_eq!(same, job);
    let err = queue.step_replay(ReplayJobId(9_999), 4).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Cancel stops a running job; listing shows running ones only when asked.
    let running = queue
        .create_replay(&EventFilter::all(), ReplayMode::Forced)
        .await
        .unwrap();
    assert_eq!(
        queue.replay_jobs(true).await.unwrap(),
        std::slice::from_ref(&running)
    );
    let cancelled = queue.cancel_replay(running.id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, ReplayState::Cancelled);
    let stepped = queue.step_replay(running.id, 4).await.unwrap();
    assert_eq!(stepped.replayed, 0, "a cancelled job never steps");
    assert!(queue.replay_jobs(true).await.unwrap().is_empty());
    assert_eq!(queue.replay_jobs(false).await.unwrap().len(), 2);
    assert!(queue
        .cancel_replay(ReplayJobId(9_999))
        .await
        .unwrap()
        .is_none());
    db.cleanup().await;
}

#[tokio::test]
async fn concurrent_steppers_of_one_job_replay_each_event_once() {
    let db = test_db!("concurrent_steppers_replay_once");
    let queue = db.store.queue(QueueOptions::default());
    const N: usize = 300;
    handled(&queue, N).await;
    let job = queue
        .create_replay(&EventFilter::all(), ReplayMode::Forced)
        .await
        .unwrap();
    assert_eq!(job.total, N as u64);
    // Four steppers: two in this process, two in "other processes" with pools of their own,
    // while a worker leases and acks what is replayed.
    let mut queues = vec![Arc::new(queue.clone()), Arc::new(queue.clone())];
    for _ in 0..2 {
        queues.push(Arc::new(
            db.another_process().await.queue(QueueOptions::default()),
        ));
    }
    let steppers: Vec<_> = queues
        .iter()
        .map(|q| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut replayed = 0;
                loop {
                    let j = q.step_replay(job.id, 7).await.unwrap();
                    if j.is_over() {
                        return replayed;
                    }
                    replayed += 1;
                }
            })
        })
        .collect();
    let worker = {
        let q = queue.clone();
        tokio::spawn(async move {
            let mut acked = 0;
            for _ in 0..200 {
                for l in q.lease(50, LEASE).await.unwrap() {
                    q.ack(&l.lease).await.unwrap();
                    acked += 1;
                }
                tokio::task::yield_now().await;
            }
            acked
        })
    };
    let mut steps = 0;
    for s in steppers {
        steps += s.await.unwrap();
    }
    let acked_meanwhile = worker.await.unwrap();
    let job = queue.replay_job(job.id).await.unwrap().unwrap();
    assert_eq!(job.state, ReplayState::Finished);
    assert_eq!(job.replayed + job.skipped, N as u64);
    assert_eq!(
        job.replayed, N as u64,
        "every event was settled when reached"
    );
    assert!(steps >= N / 7, "the batches were shared out: {steps} steps");
    let log = entries(&queue).await;
    assert_eq!(log.len(), N);
    for (id, e) in &log {
        assert_eq!((e.replays, e.forced_replays), (1, 1), "{id} replayed once");
    }
    // What the worker did not get to is ready: nothing lost, nothing doubled.
    let stats = queue.stats().await.unwrap();
    let handled_again = log
        .values()
        .filter(|e| e.status == EventStatus::Succeeded)
        .count();
    assert_eq!(handled_again, acked_meanwhile);
    assert_eq!(stats.ready as usize, N - acked_meanwhile);
    db.cleanup().await;
}

#[tokio::test]
async fn a_job_resumes_after_a_new_store_connects() {
    let db = test_db!("a_job_resumes_after_restart");
    let queue = db.store.queue(QueueOptions::default());
    handled(&queue, 50).await;
    let job = queue
        .create_replay(&EventFilter::all().event_type("push"), ReplayMode::Dedupe)
        .await
        .unwrap();
    assert_eq!(job.total, 25);
    let job = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!((job.replayed, job.state), (10, ReplayState::Running));
    // The process goes away; a new one finds the running job and finishes it.
    db.store.close().await;
    let other = db.another_process().await.queue(QueueOptions::default());
    let running = other.replay_jobs(true).await.unwrap();
    assert_eq!(running, std::slice::from_ref(&job));
    let mut job = running[0].clone();
    while !job.is_over() {
        job = other.step_replay(job.id, 10).await.unwrap();
    }
    assert_eq!((job.replayed, job.skipped), (25, 0));
    let log = entries(&other).await;
    for (id, e) in &log {
        let want = u32::from(e.event_type.as_deref() == Some("push"));
        assert_eq!(e.replays, want, "{id}");
    }
    assert_eq!(other.stats().await.unwrap().ready, 25);
    other.store().close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn with_no_retention_an_ack_forgets_the_event() {
    let db = test_db!("with_no_retention_an_ack_forgets");
    let store = db
        .another_with(
            PgOptions::new()
                .clock(db.clock.clone())
                .retention(Duration::ZERO),
        )
        .await;
    let queue = store.queue(QueueOptions::default());
    queue.enqueue(event(1)).await.unwrap();
    queue.enqueue(event(2)).await.unwrap();
    let l = lease_one(&queue).await;
    queue.ack(&l.lease).await.unwrap();
    let log = entries(&queue).await;
    assert_eq!(log.len(), 1, "the acked event is gone at once");
    assert!(log.contains_key("d-2"));
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".hookdock_events",
        db.schema
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(rows, 1, "its record is deleted, not left for the purge");
    assert!(matches!(
        queue.enqueue(event(1)).await.unwrap(),
        Enqueued::New(_)
    ));
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_replay_step_wakes_idle_workers_in_other_processes() {
    let db = test_db!("a_replay_step_wakes_idle_workers");
    let operator = db.store.queue(QueueOptions::default());
    handled(&operator, 3).await;
    let worker_side = db.another_process().await.queue(QueueOptions::default());
    let mut wake = worker_side
        .wake_signal()
        .expect("PostgreSQL queues have a wake-up");
    // The first wait starts the listener (it wakes once when listening).
    tokio::time::timeout(Duration::from_secs(10), wake.woken())
        .await
        .expect("listener never came up");
    assert!(worker_side.lease(10, LEASE).await.unwrap().is_empty());
    let waiter = tokio::spawn(async move { wake.woken().await });
    let job = operator
        .create_replay(&EventFilter::all(), ReplayMode::Dedupe)
        .await
        .unwrap();
    let job = operator.step_replay(job.id, 10).await.unwrap();
    assert_eq!(job.replayed, 3);
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the step did not wake the idle worker")
        .unwrap();
    assert_eq!(worker_side.lease(10, LEASE).await.unwrap().len(), 3);
    worker_side.store().close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_expired_lease_is_shown_as_waiting_or_dead() {
    let db = test_db!("an_expired_lease_is_shown");
    let queue = db.store.queue(QueueOptions::default().max_attempts(2));
    queue.enqueue(event(1)).await.unwrap();
    let first = lease_one(&queue).await;
    let only = |status| EventFilter::all().status(status);
    let ids = |page: hookdock::store::LogPage| {
        page.entries
            .into_iter()
            .map(|e| e.event_id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(queue.list(&only(EventStatus::Leased)).await.unwrap()),
        ["d-1"]
    );
    // The lease runs out: the event waits for its next attempt, as the next lease sees it.
    db.clock.advance(LEASE + Duration::from_secs(1));
    assert!(queue
        .list(&only(EventStatus::Leased))
        .await
        .unwrap()
        .entries
        .is_empty());
    assert_eq!(
        ids(queue.list(&only(EventStatus::Retrying)).await.unwrap()),
        ["d-1"]
    );
    let counts = queue.counts(&EventFilter::all()).await.unwrap();
    assert_eq!(counts.with_status(EventStatus::Retrying), 1);
    assert_eq!(counts.oldest_pending, Some(event(1).received_at));
    // The second (last) lease runs out too: the log shows the dead letter it became.
    let second = lease_one(&queue).await;
    assert_eq!(second.attempt, 2);
    assert_eq!(
        queue.ack(&first.lease).await.unwrap_err().kind(),
        ErrorKind::Fenced
    );
    db.clock.advance(LEASE + Duration::from_secs(1));
    let dead = queue.list(&only(EventStatus::Dead)).await.unwrap().entries;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some(hookdock::store::EXPIRED_ON_LAST_ATTEMPT)
    );
    assert_eq!(dead[0].done_at, Some(db.clock.now()));
    db.cleanup().await;
}

#[tokio::test]
async fn a_stepper_killed_mid_batch_leaves_neither_batch_nor_cursor() {
    let db = test_db!("a_stepper_killed_mid_batch");
    let queue = db.store.queue(QueueOptions::default());
    handled(&queue, 20).await;
    let job = queue
        .create_replay(&EventFilter::all(), ReplayMode::Forced)
        .await
        .unwrap();
    // A stepper in another process has locked the job and replayed half a batch when its
    // process dies: its session holds the job's row and has reset the first five records.
    let doomed = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let mut conn = doomed.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN;
         SELECT 1 FROM \"{s}\".hookdock_replay_jobs WHERE id = {job} FOR UPDATE;
         UPDATE \"{s}\".hookdock_queue SET state = 0, replays = replays + 1
         WHERE id IN (SELECT id FROM \"{s}\".hookdock_queue ORDER BY id LIMIT 5);",
        s = db.schema,
        job = job.id.0
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    // A stepper here waits for the job's lock...
    let stepper = {
        let q = queue.clone();
        tokio::spawn(async move {
            let mut j = q.step_replay(job.id, 8).await.unwrap();
            while !j.is_over() {
                j = q.step_replay(j.id, 8).await.unwrap();
            }
            j
        })
    };
    // ...until the other process is gone (its transaction rolls back with it).
    let mut blocked = 0_i64;
    for _ in 0..500 {
        blocked = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        )
        .bind(pid)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
        if blocked > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(blocked, 1, "the stepper waits for the job's lock");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert!(killed);
    drop(conn);
    doomed.close().await;
    let job = stepper.await.unwrap();
    assert_eq!((job.replayed, job.skipped), (20, 0));
    for (id, e) in entries(&queue).await {
        assert_eq!((e.replays, e.forced_replays), (1, 1), "{id} replayed once");
    }
    db.cleanup().await;
}
