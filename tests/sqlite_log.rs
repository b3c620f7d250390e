//! The SQLite event log beyond the shared suite: what it records survives the file (columns
//! read back after a reopen, and as the sqlite3 shell sees them), a replay job resumes after
//! the store is closed between its steps, a forced replay resets the claim on the record, and
//! a lookup by key finds records whether their key is in the key index yet or not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookdock::store::sqlite::{SqliteOptions, SqliteQueue, SqliteStore};
use hookdock::store::{
    Claim, EventFilter, EventLog, EventStatus, Fingerprint, IdempotencyKey, IdempotencyStore,
    Origin, Queue, QueueOptions, ReplayMode, ReplayState,
};
use hookdock::testing::FakeClock;
use hookdock::{Clock, RawEvent};

const LEASE: Duration = Duration::from_secs(30);

fn clock() -> FakeClock {
    FakeClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

fn open(path: &std::path::Path, clock: &FakeClock) -> (SqliteStore, SqliteQueue) {
    let store = SqliteStore::open(path, SqliteOptions::new().clock(clock.clone())).unwrap();
    let queue = store.queue(QueueOptions::default().max_attempts(3));
    (store, queue)
}

fn event(id: &str) -> RawEvent {
    RawEvent::new(
        "github",
        id,
        UNIX_EPOCH + Duration::from_secs(1),
        id.to_owned(),
    )
}

/// Stores `n` events (`e-0`..) and acks them all.
async fn handled(queue: &SqliteQueue, n: usize) {
    for i in 0..n {
        queue.enqueue(event(&format!("e-{i}"))).await.unwrap();
    }
    let leased = queue.lease(n, LEASE).await.unwrap();
    assert_eq!(leased.len(), n);
    for l in leased {
        queue.ack(&l.lease).await.unwrap();
    }
}

fn micros(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap()
}

/// Type, origin and every time of the history are stored in the file: they read back
/// through the log after a reopen, and the columns hold them in microseconds.
#[tokio::test]
async fn the_history_round_trips_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let clock = clock();
    let (store, queue) = open(&path, &clock);
    let mut headers = http::HeaderMap::new();
    headers.insert("x-github-event", "push".parse().unwrap());
    let ok = event("ok")
        .with_event_type("push")
        .with_origin(Origin::Reconciliation)
        .with_headers(headers.clone());
    queue.enqueue(ok).await.unwrap();
    queue.enqueue(event("bad")).await.unwrap();

    let first = clock.now();
    for l in queue.lease(2, LEASE).await.unwrap() {
        let stored_as = if l.event.id.as_str() == "ok" {
            Origin::Reconciliation
        } else {
            Origin::Push
        };
        assert_eq!(
            l.event.origin, stored_as,
            "a leased event carries its origin"
        );
        queue.retry(&l.lease, first, "upstream 502").await.unwrap();
    }
    clock.advance(Duration::from_secs(5));
    let second = clock.now();
    let batch = queue.lease(2, LEASE).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let done = clock.now();
    for l in batch {
        if l.event.id.as_str() == "ok" {
            assert_eq!(l.event.event_type.as_deref(), Some("push"));
            assert_eq!(l.event.origin, Origin::Reconciliation);
            queue.ack(&l.lease).await.unwrap();
        } else {
            queue
                .dead_letter(&l.lease, "no such customer")
                .await
                .unwrap();
        }
    }
    store.close().await;

    let (store, queue) = open(&path, &clock);
    let ok = queue.get("github", "ok").await.unwrap().unwrap();
    let e = &ok.entry;
    assert_eq!(e.status, EventStatus::Succeeded);
    assert_eq!(e.event_type.as_deref(), Some("push"));
    assert_eq!(e.origin, Origin::Reconciliation);
    assert_eq!(e.attempts, 2);
    assert_eq!(e.last_error.as_deref(), Some("upstream 502"));
    assert_eq!(
        (e.first_attempt_at, e.last_attempt_at, e.done_at),
        (Some(first), Some(second), Some(done))
    );
    assert_eq!(ok.event.headers, headers, "headers kept");
    assert_eq!(ok.event.event_type.as_deref(), Some("push"));
    let bad = queue.get("github", "bad").await.unwrap().unwrap().entry;
    assert_eq!(bad.status, EventStatus::Dead);
    assert_eq!(bad.last_error.as_deref(), Some("no such customer"));
    assert_eq!(bad.done_at, Some(done));
    assert_eq!(bad.origin, Origin::Push);
    store.close().await;

    let conn = rusqlite::Connection::open(&path).unwrap();
    type Row = (Option<String>, i64, i64, i64, i64, i64);
    let row: Row = conn
        .query_row(
            "SELECT event_type, origin, first_attempt_at, last_attempt_at, done_at, state
             FROM hookdock_events WHERE event_id = 'ok'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row,
        (
            Some("push".to_owned()),
            2,
            micros(first),
            micros(second),
            micros(done),
            3
        )
    );
}

/// A job stepped, then the store closed and opened again (as after a restart), goes on from
/// its cursor: every event is made ready exactly once, the depth counter counts each of them,
/// and a later step of the finished job changes nothing.
#[tokio::test]
async fn a_job_resumes_after_a_reopen_without_replaying_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let clock = clock();
    let (store, queue) = open(&path, &clock);
    handled(&queue, 25).await;
    let job = queue
        .create_replay(&EventFilter::all(), ReplayMode::Dedupe)
        .await
        .unwrap();
    assert_eq!((job.total, job.state), (25, ReplayState::Running));
    let job = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!((job.replayed, job.skipped), (10, 0));
    store.close().await;

    let (store, queue) = open(&path, &clock);
    let running = queue.replay_jobs(true).await.unwrap();
    assert_eq!(
        running.len(),
        1,
        "the job is still running after the reopen"
    );
    assert_eq!(running[0].after, job.after, "its cursor was kept");
    let mut job = running[0].clone();
    let mut steps = 0;
    while !job.is_over() {
        job = queue.step_replay(job.id, 10).await.unwrap();
        steps += 1;
    }
    assert_eq!(steps, 2);
    assert_eq!(
        (job.state, job.replayed, job.skipped),
        (ReplayState::Finished, 25, 0)
    );
    // The ten made ready before the reopen are pending now: the job skips nothing twice
    // because it never went back over them.
    let again = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!(again, job, "a finished job steps no more");
    let page = queue.list(&EventFilter::all().limit(100)).await.unwrap();
    assert_eq!(page.entries.len(), 25);
    for e in &page.entries {
        assert_eq!(
            (e.replays, e.origin, e.status),
            (1, Origin::Replay, EventStatus::Pending)
        );
        assert_eq!(
            (e.first_attempt_at, e.done_at),
            (None, None),
            "history cleared"
        );
    }
    assert_eq!(queue.stats().await.unwrap().ready, 25);
    // The counter the depth limit reads agrees with the records while the store runs.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (live, waiting): (i64, i64) = conn
        .query_row(
            "SELECT live, (SELECT count(*) FROM hookdock_events WHERE state < 2)
             FROM hookdock_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((live, waiting), (25, 25));
    drop(conn);
    let leased = queue.lease(100, LEASE).await.unwrap();
    assert_eq!(leased.len(), 25, "each replayed event runs once");
    store.close().await;
}

/// A forced replay resets the completed claim on the event's record (the next claim
/// acquires it); a replay through dedupe leaves it (the next claim finds it completed).
#[tokio::test]
async fn forced_replay_resets_the_claim_dedupe_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let clock = clock();
    let (store, queue) = open(&path, &clock);
    let dedupe = store.idempotency();
    let fp = Fingerprint::of(b"x");
    for id in ["kept", "forced"] {
        queue.enqueue(event(id)).await.unwrap();
        let key = IdempotencyKey::new("github", id);
        let Claim::Acquired(token) = dedupe.claim(&key, &fp, LEASE).await.unwrap() else {
            panic!("a new key is acquired");
        };
        dedupe
            .complete(&key, token, Some("done".into()))
            .await
            .unwrap();
    }
    for l in queue.lease(2, LEASE).await.unwrap() {
        queue.ack(&l.lease).await.unwrap();
    }
    for (id, mode) in [("kept", ReplayMode::Dedupe), ("forced", ReplayMode::Forced)] {
        let job = queue
            .create_replay(&EventFilter::event("github", id), mode)
            .await
            .unwrap();
        assert_eq!(job.total, 1);
        let job = queue.step_replay(job.id, 100).await.unwrap();
        assert_eq!(
            (job.state, job.replayed),
            (ReplayState::Finished, 1),
            "{id}"
        );
    }
    let kept = IdempotencyKey::new("github", "kept");
    assert_eq!(
        dedupe.claim(&kept, &fp, LEASE).await.unwrap(),
        Claim::Completed(Some("done".into()))
    );
    let forced = IdempotencyKey::new("github", "forced");
    assert!(matches!(
        dedupe.claim(&forced, &fp, LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));
    let e = queue.get("github", "forced").await.unwrap().unwrap().entry;
    assert_eq!((e.replays, e.forced_replays), (1, 1));
    let e = queue.get("github", "kept").await.unwrap().unwrap().entry;
    assert_eq!((e.replays, e.forced_replays), (1, 0));
    // Both are ready once, with their bytes.
    let leased = queue.lease(10, LEASE).await.unwrap();
    assert_eq!(leased.len(), 2);
    assert!(leased.iter().all(|l| l.event.origin == Origin::Replay));
    store.close().await;
}

/// The reader finds an event by key whether its key waits in the writer's memory (stored
/// since the last merge) or is in the key index (merged at close), and a one-key listing and
/// a one-key job find it the same way.
#[tokio::test]
async fn lookups_by_key_see_the_tail_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let clock = clock();
    let (store, queue) = open(&path, &clock);
    queue.enqueue(event("old")).await.unwrap();
    store.close().await; // merges "old" into the key index
    let (store, queue) = open(&path, &clock);
    queue.enqueue(event("new")).await.unwrap(); // waits outside the index
    let conn = rusqlite::Connection::open(&path).unwrap();
    let keyed: Vec<(String, i64)> = conn
        .prepare("SELECT event_id, keyed FROM hookdock_events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keyed, [("old".to_owned(), 1), ("new".to_owned(), 0)]);
    drop(conn);
    for id in ["old", "new"] {
        let got = queue.get("github", id).await.unwrap().expect(id);
        assert_eq!(&got.event.body[..], id.as_bytes());
        let page = queue.list(&EventFilter::event("github", id)).await.unwrap();
        assert_eq!(page.entries.len(), 1, "{id}");
        assert_eq!(page.entries[0].event_id.as_str(), id);
    }
    assert!(queue.get("github", "none").await.unwrap().is_none());
    assert!(queue.get("stripe", "new").await.unwrap().is_none());
    // A one-key listing still applies its other conditions.
    let dead_only = EventFilter::event("github", "new").status(EventStatus::Dead);
    assert!(queue.list(&dead_only).await.unwrap().entries.is_empty());
    // A one-key job of a pending event skips it.
    let job = queue
        .create_replay(&EventFilter::event("github", "new"), ReplayMode::Dedupe)
        .await
        .unwrap();
    let job = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!(
        (job.state, job.replayed, job.skipped),
        (ReplayState::Finished, 0, 1)
    );
    store.close().await;
}
