//! Crash test of a SQLite replay job: a child process resumes a forced replay job with
//! [`Replayer`] in small batches and prints its progress after each one; the parent SIGKILLs
//! it mid-job, three times, then finishes the job itself. Every event must have been made
//! ready exactly once (one replay, one forced replay, each claim reset once), whatever step
//! each kill interrupted.
//!
//! Then a worker drains the replayed events through the dedupe layer into a handler that
//! counts its effects per event: each is applied exactly once more.
//!
//! The child is this same test binary, re-run with `HOOKDOCK_REPLAY_CHILD` set.
//! `HOOKDOCK_REPLAY_EVENTS` (default 2,000) sets the number of events, for the 100,000-event
//! run of the event log issue (`HOOKDOCK_REPLAY_EVENTS=100000 cargo test --release
//! --all-features --test sqlite_replay_crash -- --nocapture` prints the rates).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{
    Claim, EventFilter, EventLog, EventStatus, Fingerprint, IdempotencyKey, IdempotencyStore,
    Queue, QueueOptions, ReplayMode, ReplayState, Replayer,
};
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::RawEvent;
use tower::service_fn;

const CHILD_ENV: &str = "HOOKDOCK_REPLAY_CHILD";
/// Events in the job (`HOOKDOCK_REPLAY_EVENTS`, default 2,000).
fn events() -> usize {
    std::env::var("HOOKDOCK_REPLAY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}
const BATCH: usize = 10;
const CYCLES: usize = 3;
const LEASE: Duration = Duration::from_secs(30);

/// The child: resume every running job, printing `step REPLAYED` after each batch.
#[test]
fn replay_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // not a child: nothing to do
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(&path, SqliteOptions::new()).expect("open");
        let queue = store.queue(QueueOptions::default());
        let replayer = Replayer::new(queue).batch_size(BATCH);
        let mut out = std::io::stdout();
        replayer
            .resume(&mut |job| {
                let _ = writeln!(out, "step {}", job.replayed);
                let _ = out.flush();
            })
            .await
            .expect("resume");
        println!("over");
    });
}

#[test]
fn a_killed_replay_resumes_and_replays_each_event_once() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    #[allow(non_snake_case)]
    let EVENTS = events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Handled events, each with a completed claim, and a forced job over all of them.
    rt.block_on(async {
        let store = SqliteStore::open(&path, SqliteOptions::new()).unwrap();
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let dedupe = store.idempotency();
        let tasks: Vec<_> = (0..EVENTS)
            .map(|i| {
                let queue = Arc::clone(&queue);
                let dedupe = dedupe.clone();
                tokio::spawn(async move {
                    let id = format!("e-{i}");
                    let event = RawEvent::new("github", id.clone(), SystemTime::now(), "{}");
                    queue.enqueue(event).await.unwrap();
                    let key = IdempotencyKey::new("github", id);
                    let Claim::Acquired(t) = dedupe
                        .claim(&key, &Fingerprint::of(b"{}"), LEASE)
                        .await
                        .unwrap()
                    else {
                        panic!("new key");
                    };
                    dedupe.complete(&key, t, None).await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let leased = queue.lease(EVENTS, LEASE).await.unwrap();
        assert_eq!(leased.len(), EVENTS);
        for l in &leased {
            queue.ack(&l.lease).await.unwrap();
        }
        let job = queue
            .create_replay(&EventFilter::all(), ReplayMode::Forced)
            .await
            .unwrap();
        assert_eq!(job.total, EVENTS as u64);
        store.close().await;
    });

    let exe = std::env::current_exe().unwrap();
    let mut last_seen = 0u64;
    for cycle in 0..CYCLES {
        let mut child = Command::new(&exe)
            .args(["--exact", "replay_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut steps = 0;
        // Let it commit a few batches, then kill it while it steps.
        while steps < 5 {
            let Some(Ok(line)) = lines.next() else {
                break;
            };
            if let Some(n) = line.strip_prefix("step ") {
                last_seen = n.parse().unwrap();
                steps += 1;
            }
            assert_ne!(line, "over", "cycle {cycle}: the job ended before the kill");
        }
        child.kill().unwrap(); // SIGKILL on Unix
        let _ = child.wait();
        assert_eq!(steps, 5, "cycle {cycle}: the child stepped too little");
    }

    rt.block_on(async {
        let store = SqliteStore::open(&path, SqliteOptions::new()).unwrap();
        let queue = store.queue(QueueOptions::default());
        let running = queue.replay_jobs(true).await.unwrap();
        assert_eq!(running.len(), 1, "the killed job is still running");
        assert!(
            running[0].replayed >= last_seen,
            "what a child saw committed is kept"
        );
        assert!(running[0].replayed < EVENTS as u64, "killed midway");
        println!(
            "after {CYCLES} kills: {} of {EVENTS} replayed (the last child reported {last_seen})",
            running[0].replayed
        );
        let before = running[0].replayed;
        let started = std::time::Instant::now();
        let ended = Replayer::new(queue.clone())
            .batch_size(500)
            .resume(&mut |_| {})
            .await
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "resumed: {} events replayed in {secs:.2} s ({:.0} events/s, batches of 500)",
            ended[0].replayed - before,
            (ended[0].replayed - before) as f64 / secs
        );
        assert_eq!(ended.len(), 1);
        let job = &ended[0];
        assert_eq!(
            (job.state, job.replayed, job.skipped),
            (ReplayState::Finished, EVENTS as u64, 0)
        );
        // Each event was made ready exactly once, with its claim reset once.
        let mut seen = 0;
        let mut filter = EventFilter::all().limit(1000);
        loop {
            let page = queue.list(&filter).await.unwrap();
            for e in &page.entries {
                assert_eq!(
                    (e.replays, e.forced_replays, e.status),
                    (1, 1, EventStatus::Pending),
                    "{}",
                    e.event_id
                );
                seen += 1;
            }
            match page.next {
                Some(next) => filter = filter.before(next),
                None => break,
            }
        }
        assert_eq!(seen, EVENTS);
        assert_eq!(queue.stats().await.unwrap().ready, EVENTS as u64);
        let dedupe = store.idempotency();
        let key = IdempotencyKey::new("github", "e-7");
        // The forced replay reset the claim: it can be taken (and is given back for the
        // worker below).
        match dedupe
            .claim(&key, &Fingerprint::of(b"{}"), LEASE)
            .await
            .unwrap()
        {
            Claim::Acquired(token) => dedupe.release(&key, token).await.unwrap(),
            other => panic!("a forced replay resets the claim, got {other:?}"),
        }

        // The worker runs each replayed event once more, in effect, through dedupe.
        let effects: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let seen = effects.clone();
        let worker = Worker::builder(queue.clone())
            .dedupe(dedupe.clone())
            .concurrency(256)
            .batch_size(256)
            .lease_for(Duration::from_secs(120))
            .build(service_fn(move |event: Event| {
                *seen
                    .lock()
                    .unwrap()
                    .entry(event.id().to_string())
                    .or_default() += 1;
                async { Ok::<_, HandlerError>(()) }
            }))
            .unwrap();
        let started = std::time::Instant::now();
        let handle = worker.spawn();
        while effects
            .lock()
            .unwrap()
            .values()
            .map(|&n| u64::from(n))
            .sum::<u64>()
            < EVENTS as u64
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the drain stalled"
            );
        }
        handle.shutdown().await;
        let applied = std::mem::take(&mut *effects.lock().unwrap());
        assert_eq!(applied.len(), EVENTS, "every replayed event is applied");
        assert!(applied.values().all(|&n| n == 1), "and none twice");
        store.close().await;
    });
}
