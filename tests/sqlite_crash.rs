//! Crash test of the SQLite queue: a child process enqueues from many tasks and prints the id
//! of every enqueue that resolved; the parent SIGKILLs it mid-load, reopens the database and
//! checks that every acknowledged event is stored, exactly once, with its bytes. Five cycles
//! on the same file, each child also re-sending ids from the previous cycles (which must come
//! back as duplicates).
//!
//! The child is this same test binary, re-run with `HOOKDOCK_CRASH_CHILD` set.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{Enqueued, Queue, QueueOptions};
use hookdock::RawEvent;

const CHILD_ENV: &str = "HOOKDOCK_CRASH_CHILD";
const CYCLES: usize = 5;
const TASKS: usize = 64;

fn body_of(id: &str) -> Vec<u8> {
    format!("{{\"delivery\":\"{id}\",\"pad\":\"{}\"}}", "x".repeat(512)).into_bytes()
}

/// The child: enqueue until killed, printing `new ID` or `dup ID` once each call resolved.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child: nothing to do
    };
    let (path, cycle) = spec.split_once('|').expect("path|cycle");
    let cycle: usize = cycle.parse().expect("cycle number");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(path, SqliteOptions::new()).expect("open");
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let queue = Arc::clone(&queue);
                let out = Arc::clone(&out);
                tokio::spawn(async move {
                    for n in 0.. {
                        // Every tenth call re-sends an id of an earlier cycle.
                        let id = if cycle > 0 && n % 10 == 9 {
                            format!("c{}-t{t}-n{}", cycle - 1, n / 10)
                        } else {
                            format!("c{cycle}-t{t}-n{n}")
                        };
                        let event =
                            RawEvent::new("crash", id.clone(), SystemTime::now(), body_of(&id));
                        let line = match queue.enqueue(event).await {
                            Ok(Enqueued::New(_)) => format!("new {id}\n"),
                            Ok(Enqueued::Duplicate(_)) => format!("dup {id}\n"),
                            Err(e) => panic!("enqueue failed: {e}"),
                        };
                        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                        let _ = out.write_all(line.as_bytes());
                        let _ = out.flush();
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn acknowledged_enqueues_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: HashSet<String> = HashSet::new();
    for cycle in 0..CYCLES {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{cycle}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked_now = 0usize;
        let mut lines = BufReader::new(stdout).lines();
        // Let it run for a few thousand acknowledgements, then kill it mid-stream.
        while acked_now < 3000 {
            let Some(Ok(line)) = lines.next() else {
                break;
            };
            if let Some(id) = line
                .strip_prefix("new ")
                .or_else(|| line.strip_prefix("dup "))
            {
                acknowledged.insert(id.to_owned());
                acked_now += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
                               // Whatever the child printed before dying was acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some(id) = line
                .strip_prefix("new ")
                .or_else(|| line.strip_prefix("dup "))
            {
                acknowledged.insert(id.to_owned());
            }
        }
        let _ = child.wait();
        assert!(
            acked_now > 0,
            "cycle {cycle}: the child acknowledged nothing"
        );

        // Reopen after the crash and check every acknowledged event, bytes included.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT e.event_id, b.body FROM hookdock_events e
                 JOIN hookdock_event_bodies b ON b.id = e.id
                 WHERE e.source = 'crash' AND e.state < 3",
            )
            .unwrap();
        let mut stored: HashSet<String> = HashSet::new();
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .unwrap();
        for row in rows {
            let (id, body) = row.unwrap();
            assert_eq!(body, body_of(&id), "stored bytes of {id} changed");
            assert!(stored.insert(id.clone()), "{id} is stored twice");
        }
        let lost: Vec<_> = acknowledged.difference(&stored).take(5).collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: acknowledged but not stored: {lost:?} ..."
        );
        println!(
            "cycle {cycle}: {} acknowledged so far, {} stored (unacknowledged in flight at the kill: {})",
            acknowledged.len(),
            stored.len(),
            stored.len() - acknowledged.len()
        );
        // The database opens cleanly through hookdock after the crash, too.
        drop(stmt);
        drop(conn);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = SqliteStore::open(&path, SqliteOptions::new()).unwrap();
            let stats = store.queue(QueueOptions::default()).stats().await.unwrap();
            assert_eq!(stats.ready as usize, stored.len());
            store.close().await;
        });
    }
}
