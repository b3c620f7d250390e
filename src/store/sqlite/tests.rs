//! Backend-specific tests; the shared contract is checked by the conformance suites
//! (`tests/conformance_sqlite.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::FakeClock;
use crate::store::{
    Claim, DeadLetterFilter, Enqueued, ErrorKind, Fingerprint, IdempotencyKey, IdempotencyStore,
    Queue,
};
use crate::RawEvent;

fn clock() -> FakeClock {
    FakeClock::at_unix(1_700_000_000)
}

fn event(id: &str) -> RawEvent {
    RawEvent::new("github", id, std::time::UNIX_EPOCH, id.as_bytes().to_vec())
}

fn open(dir: &tempfile::TempDir, options: SqliteOptions) -> SqliteStore {
    SqliteStore::open(dir.path().join("q.db"), options.clock(clock())).expect("open")
}

/// The SQLite error code kept as the source of a store error.
fn sqlite_code(err: &StoreError) -> Option<rusqlite::ErrorCode> {
    let source = std::error::Error::source(err)?;
    match source.downcast_ref::<SqliteError>()? {
        SqliteError::Sql(e) => e.sqlite_error_code(),
        _ => None,
    }
}

#[tokio::test]
async fn enqueue_lease_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir, SqliteOptions::new()).queue(QueueOptions::default());
    let id = queue.enqueue(event("a")).await.unwrap();
    let batch = queue.lease(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].lease.message, id.message());
    assert_eq!(&batch[0].event.body[..], b"a");
    queue.ack(&batch[0].lease).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().depth(), 0);
}

/// The documented schema is what operators find with the sqlite3 shell: one record per key,
/// the claim of a stored event on its record, a claim of an unknown key on a record of its
/// own (`state = 4`).
#[tokio::test]
async fn schema_is_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    queue.enqueue(event("delivery-1")).await.unwrap();
    let dedupe = store.idempotency();
    for key in [
        IdempotencyKey::new("github", "delivery-1"),
        IdempotencyKey::new("stripe", "evt_1"),
    ] {
        let claim = dedupe
            .claim(
                &key,
                &Fingerprint::of(b"delivery-1"),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert!(matches!(claim, Claim::Acquired(_)));
    }
    // Closing merges the new keys into the key index.
    store.close().await;
    let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
    let unkeyed: i64 = conn
        .query_row(
            "SELECT count(*) FROM hookdock_events WHERE keyed = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unkeyed, 0);
    type Row = (String, String, i64, i64, bool, Option<Vec<u8>>);
    let rows: Vec<Row> = conn
        .prepare(
            "SELECT source, event_id, state, attempts, claim_token IS NOT NULL, body
             FROM hookdock_events LEFT JOIN hookdock_event_bodies USING (id) ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "github".into(),
                "delivery-1".into(),
                0,
                0,
                true,
                Some(b"delivery-1".to_vec())
            ),
            ("stripe".into(), "evt_1".into(), 4, 0, true, None),
        ]
    );
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "hookdock_event_bodies",
            "hookdock_events",
            "hookdock_order_keys",
            "hookdock_reconcile_sources",
            "hookdock_replay_jobs",
            "hookdock_state"
        ]
    );
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let duplicate = conn.execute(
        "INSERT INTO hookdock_events (source, event_id, state, available_at, received_at,
             enqueued_at) VALUES ('github', 'delivery-1', 0, 0, 0, 0)",
        [],
    );
    assert!(duplicate.is_err(), "UNIQUE(source, event_id) must hold");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = SqliteStore::open(&path, SqliteOptions::new()).expect_err("version 99 is unknown");
    assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("99") && text.contains("newer"), "{text}");
}

#[tokio::test]
async fn in_memory_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    for name in [":memory:", "", "file:mem?mode=memory"] {
        let err = SqliteStore::open(name, SqliteOptions::new()).expect_err("no WAL in memory");
        assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
        let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(text.contains("WAL"), "{text}");
    }
    let strays = std::fs::read_dir(&cwd)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".hookdock-lock"))
        .count();
    assert_eq!(strays, 0, "no lock file is made for a database in memory");
    drop(dir);
}

/// A file is served by one store at a time: a second open waits up to the busy timeout, then
/// fails with a transient error that says why; once the first store is closed or dropped,
/// the file opens again.
#[tokio::test]
async fn one_store_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir, SqliteOptions::new());
    let quick = SqliteOptions::new().busy_timeout(Duration::from_millis(50));
    let err = SqliteStore::open(dir.path().join("q.db"), quick.clone()).expect_err("in use");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("in use by another hookdock store"), "{text}");
    first.close().await;
    let second = SqliteStore::open(dir.path().join("q.db"), quick).expect("free after close");
    drop(second);
    // Dropped without close: the writer lets go once it has finished; open waits for it.
    let third = open(&dir, SqliteOptions::new());
    third.close().await;
}

#[tokio::test]
async fn a_read_only_file_is_a_transient_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    open(&dir, SqliteOptions::new()).close().await;
    let uri = format!("file:{}?mode=ro", path.display());
    let err = SqliteStore::open(uri, SqliteOptions::new()).expect_err("cannot write");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    assert_eq!(
        sqlite_code(&err),
        Some(rusqlite::ErrorCode::ReadOnly),
        "{err:?}"
    );
}

/// A full disk (here: the size cap) answers `Unavailable` with the SQLite error kept, stores
/// nothing of the refused event, and leaves what was stored intact and usable.
#[tokio::test]
async fn a_full_disk_is_a_transient_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::new().max_size(512 * 1024));
    let queue = store.queue(QueueOptions::default());
    let mut stored = 0u64;
    let err = loop {
        let e = RawEvent::new(
            "github",
            format!("e{stored}"),
            std::time::UNIX_EPOCH,
            vec![0u8; 8192],
        );
        match queue.enqueue(e).await {
            Ok(Enqueued::New(_)) => stored += 1,
            Ok(dup) => panic!("unexpected {dup:?}"),
            Err(e) => break e,
        }
        assert!(stored < 1000, "the size cap was never reached");
    };
    assert!(err.is_transient());
    assert_eq!(
        sqlite_code(&err),
        Some(rusqlite::ErrorCode::DiskFull),
        "{err:?}"
    );
    assert_eq!(queue.stats().await.unwrap().ready, stored);
    let batch = queue.lease(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(batch.len(), 10, "stored events can still be leased");
    for l in &batch {
        queue.ack(&l.lease).await.unwrap();
    }
    assert_eq!(queue.stats().await.unwrap().ready, stored - 10);
}

#[tokio::test]
async fn a_closed_store_answers_closed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    let dedupe = store.idempotency();
    queue.enqueue(event("a")).await.unwrap();
    store.close().await;
    assert!(matches!(
        queue.enqueue(event("b")).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        queue.lease(1, Duration::from_secs(1)).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(queue.stats().await, Err(StoreError::Closed)));
    assert!(matches!(
        queue.dead_letters(&DeadLetterFilter::all()).await,
        Err(StoreError::Closed)
    ));
    let claim = dedupe
        .claim(
            &IdempotencyKey::new("s", "k"),
            &Fingerprint::of(b""),
            Duration::from_secs(1),
        )
        .await;
    assert!(matches!(claim, Err(StoreError::Closed)), "{claim:?}");
    store.close().await; // closing twice is harmless
                         // What was acknowledged before the close is in the file.
    let reopened = open(&dir, SqliteOptions::new()).queue(QueueOptions::default());
    assert_eq!(reopened.stats().await.unwrap().ready, 1);
}

/// Calls made concurrently share transactions (group commit); with `max_batch(1)` every
/// operation has its own. Either way every event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_commits() {
    for (max_batch, grouped) in [(1024, true), (1, false)] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, SqliteOptions::new().max_batch(max_batch));
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let q = Arc::clone(&queue);
                tokio::spawn(async move { q.enqueue(event(&format!("e{i}"))).await })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Ok(Enqueued::New(_))));
        }
        assert_eq!(queue.stats().await.unwrap().ready, 400);
        let w = store.writer_stats();
        assert_eq!(w.operations, 400);
        if grouped {
            assert!(
                w.transactions < 400,
                "no two operations shared a commit: {w:?}"
            );
        } else {
            assert_eq!(
                w.transactions, 400,
                "max_batch(1) commits each operation: {w:?}"
            );
        }
    }
}

/// The background thread checkpoints the WAL into the database while the store runs (the
/// writer itself never does, with a restart threshold this high), and closing leaves an
/// empty WAL behind with everything in the database file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_run_in_the_background_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let wal = dir.path().join("q.db-wal");
    let store = open(
        &dir,
        SqliteOptions::new()
            .checkpoint_interval(Duration::from_millis(1))
            .wal_restart_pages(u32::MAX),
    );
    let queue = store.queue(QueueOptions::default());
    let initial = std::fs::metadata(&path).unwrap().len();
    for i in 0..200 {
        let e = RawEvent::new(
            "github",
            format!("e{i}"),
            std::time::UNIX_EPOCH,
            vec![1u8; 4096],
        );
        queue.enqueue(e).await.unwrap();
    }
    let mut grew = false;
    for _ in 0..1000 {
        if std::fs::metadata(&path).unwrap().len() > initial + 100 * 4096 {
            grew = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        grew,
        "no background checkpoint copied the WAL into the database"
    );
    store.close().await;
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM hookdock_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 200);
}

/// The page size applies to a database the store creates, and an existing database keeps
/// the one it was created with.
#[tokio::test]
async fn page_size_applies_to_new_databases_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let page_size = |path: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let store = open(&dir, SqliteOptions::new().page_size(1024));
    store
        .queue(QueueOptions::default())
        .enqueue(event("a"))
        .await
        .unwrap();
    store.close().await;
    assert_eq!(page_size(&path), 1024);
    let store = open(&dir, SqliteOptions::new().page_size(8192));
    let queue = store.queue(QueueOptions::default());
    assert_eq!(queue.stats().await.unwrap().depth(), 1);
    store.close().await;
    assert_eq!(page_size(&path), 1024);
}

/// A purge larger than one chunk is done in several transactions and forgets everything
/// due: handled events and records holding only a claim.
#[tokio::test]
async fn purge_works_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let store = SqliteStore::open(
        dir.path().join("q.db"),
        SqliteOptions::new()
            .clock(c.clone())
            .retention(Duration::from_secs(60)),
    )
    .unwrap();
    let dedupe = store.idempotency();
    let n = 2 * crate::store::sql::PURGE_CHUNK + 10;
    // Concurrently, so the claims and completions are group committed.
    let claims = (0..n).map(|i| {
        let dedupe = dedupe.clone();
        async move {
            let key = IdempotencyKey::new("github", format!("k{i}"));
            let fp = Fingerprint::of(b"");
            match dedupe.claim(&key, &fp, Duration::from_secs(5)).await {
                Ok(Claim::Acquired(t)) => dedupe.complete(&key, t, None).await,
                other => panic!("{other:?}"),
            }
        }
    });
    for done in futures_util::future::join_all(claims).await {
        done.unwrap();
    }
    c.advance(Duration::from_secs(61));
    let before = store.writer_stats().transactions;
    let purged = dedupe.purge_expired().await.unwrap() + store.writer_stats().purged;
    assert_eq!(purged, n as u64);
    assert!(store.writer_stats().transactions - before >= 2);
    assert_eq!(dedupe.purge_expired().await.unwrap(), 0);
}

/// A message whose bytes were deleted by hand is parked in the dead letters with a reason
/// instead of being handed out without its body; the others are leased as usual.
#[tokio::test]
async fn a_message_without_its_body_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir, SqliteOptions::new()).queue(QueueOptions::default());
    let broken = queue.enqueue(event("broken")).await.unwrap().message();
    queue.enqueue(event("fine")).await.unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
    conn.execute(
        "DELETE FROM hookdock_event_bodies WHERE id = ?1",
        [broken.0],
    )
    .unwrap();
    let batch = queue.lease(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].event.id.as_str(), "fine");
    let dead = queue.dead_letters(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message, broken);
    assert_eq!(dead[0].reason, "stored body is missing");
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.leased, stats.dead, stats.depth()), (1, 1, 1));
}

/// Deleting the database file (and its WAL) under a running store: nothing more is
/// acknowledged, every later write answers a transient error naming the cause, and what was
/// acknowledged before is in no danger from the store (it stopped writing).
#[tokio::test]
async fn a_deleted_database_file_stops_all_acknowledgements() {
    for victim in ["q.db", "q.db-wal"] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, SqliteOptions::new());
        let queue = store.queue(QueueOptions::default());
        queue.enqueue(event("before")).await.unwrap();
        std::fs::remove_file(dir.path().join(victim)).unwrap();
        for i in 0..3 {
            let err = queue
                .enqueue(event(&format!("after-{i}")))
                .await
                .expect_err("nothing may be acknowledged once the file is gone");
            assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
            let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
            assert!(text.contains("deleted or replaced"), "{text}");
        }
        let lease = queue.lease(10, Duration::from_secs(30)).await;
        assert!(lease.is_err(), "leases are refused too: {lease:?}");
        store.close().await;
    }
}

/// Every statement finds its rows through an index: no full scan of a table and no
/// temporary sort, whatever the backlog.
#[tokio::test]
async fn every_statement_uses_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::new());
    store.close().await;
    let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
    let mut all: Vec<String> = events::ALL_SQL
        .iter()
        .chain(idempotency::ALL_SQL.iter())
        .chain(tail::ALL_SQL.iter())
        .chain(order_keys::ALL_SQL.iter())
        .map(|s| (*s).to_owned())
        .collect();
    all.extend(log::all_sql());
    all.extend(replay_jobs::all_sql());
    all.extend(reconcile_sources::all_sql());
    for sql in &all {
        let plan = query_plan(&conn, sql);
        for step in &plan {
            let full_scan = step.starts_with("SCAN hookdock_") && !step.contains(" USING ");
            assert!(
                !full_scan && !step.contains("TEMP B-TREE"),
                "{sql}\n{plan:#?}"
            );
        }
    }
}

/// The steps of a statement's query plan (all parameters `NULL`).
fn query_plan(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let n = stmt.parameter_count();
    let params: Vec<rusqlite::types::Value> = vec![rusqlite::types::Value::Null; n];
    stmt.query_map(rusqlite::params_from_iter(params), |r| {
        r.get::<_, String>(3)
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The event log's reads take the paths its docs promise: a lookup by key asks the key index
/// and the unkeyed range of the primary key, a page walks the primary key, the oldest waiting
/// event comes from the index of waiting records; the statements that read every match by
/// design (counts, a new job's count, the small jobs table) still prepare.
#[tokio::test]
async fn event_log_reads_take_their_documented_paths() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir, SqliteOptions::new()).close().await;
    let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
    let key = query_plan(&conn, log::KEY_ID).join("\n");
    assert!(
        key.contains("INDEX hookdock_events_key (source=? AND event_id=?)"),
        "{key}"
    );
    assert!(key.contains("USING INTEGER PRIMARY KEY (rowid>?)"), "{key}");
    let sqls = log::all_sql();
    let page = query_plan(&conn, &sqls[0]).join("\n");
    assert!(
        page.contains("USING INTEGER PRIMARY KEY (rowid<?)"),
        "{page}"
    );
    let oldest = query_plan(&conn, &sqls[3]).join("\n");
    assert!(oldest.contains("hookdock_events_available"), "{oldest}");
    let dead = query_plan(&conn, &sqls[4]).join("\n");
    assert!(dead.contains("INDEX hookdock_events_dead (id<?)"), "{dead}");
    for sql in log::scanning_sql()
        .into_iter()
        .chain(replay_jobs::scanning_sql())
        .chain(reconcile_sources::scanning_sql())
    {
        assert!(!query_plan(&conn, &sql).is_empty(), "{sql}");
    }
}

fn unkeyed(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*) FROM hookdock_events WHERE keyed = 0",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// New keys wait outside the key index, and every lookup still finds them: a resend is a
/// duplicate, a claim lands on the event's own record. Closing merges them into the index,
/// and after a reopen the index answers.
#[tokio::test]
async fn new_keys_are_found_before_and_after_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    let dedupe = store.idempotency();
    let fp = Fingerprint::of(b"x");
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            queue
                .enqueue(event(&format!("k{i}")))
                .await
                .unwrap()
                .message(),
        );
    }
    assert_eq!(unkeyed(&path), 20, "new keys are not in the index yet");
    for (i, id) in ids.iter().enumerate() {
        let again = queue.enqueue(event(&format!("k{i}"))).await.unwrap();
        assert_eq!(again, Enqueued::Duplicate(*id));
    }
    let key = IdempotencyKey::new("github", "k3");
    let Claim::Acquired(token) = dedupe
        .claim(&key, &fp, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("a new key is acquired");
    };
    dedupe.complete(&key, token, None).await.unwrap();
    let other = IdempotencyKey::new("stripe", "only-a-claim");
    let Claim::Acquired(held) = dedupe
        .claim(&other, &fp, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("a new key is acquired");
    };
    dedupe.release(&other, held).await.unwrap();
    let rows = |path: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM hookdock_events", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        rows(&path),
        20,
        "one record per key; a released claim-only record is gone"
    );
    store.close().await;
    assert_eq!(unkeyed(&path), 0, "closing merges the tail into the index");

    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    for (i, id) in ids.iter().enumerate() {
        let again = queue.enqueue(event(&format!("k{i}"))).await.unwrap();
        assert_eq!(again, Enqueued::Duplicate(*id), "found through the index");
    }
    let claim = store
        .idempotency()
        .claim(&key, &fp, Duration::from_secs(30))
        .await;
    assert_eq!(claim.unwrap(), Claim::Completed(None));
    assert!(matches!(
        queue.enqueue(event("k-new")).await.unwrap(),
        Enqueued::New(_)
    ));
    store.close().await;
}

/// Once the tail holds `key_merge_batch` keys, the writer merges it between batches,
/// without a close; keys from both sides of the merge are still found.
#[tokio::test]
async fn a_long_tail_is_merged_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let batch = 2_000;
    let store = open(&dir, SqliteOptions::new().key_merge_batch(batch));
    let queue = store.queue(QueueOptions::default());
    let total = batch + 100;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..64 {
        let queue = queue.clone();
        tasks.spawn(async move {
            let mut i = lane;
            while i < total {
                queue.enqueue(event(&format!("m{i}"))).await.unwrap();
                i += 64;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // The merge's pieces run one per batch; a few single enqueues finish it.
    for i in 0..tail::MERGE_PIECES {
        queue.enqueue(event(&format!("after{i}"))).await.unwrap();
    }
    let left = unkeyed(&path);
    assert!(
        left < batch as i64,
        "a merge ran while the store was open: {left} keys still unkeyed"
    );
    for i in [0, batch / 2, total - 1] {
        let again = queue.enqueue(event(&format!("m{i}"))).await.unwrap();
        assert!(matches!(again, Enqueued::Duplicate(_)), "m{i}: {again:?}");
    }
    assert_eq!(
        queue.stats().await.unwrap().depth(),
        (total + tail::MERGE_PIECES) as u64
    );
    store.close().await;
}

/// A merge runs in pieces, one transaction between two batches each, over ranges of the
/// keys in index order: while it is half done, every key is found from both the writer
/// (a resend is a duplicate) and the event log's reader; when its last piece commits,
/// every record it started with is keyed and only the keys written since wait.
#[tokio::test]
async fn a_merge_runs_in_pieces_and_every_key_is_found_meanwhile() {
    use crate::store::EventLog;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = open(&dir, SqliteOptions::new().key_merge_batch(64));
    let queue = store.queue(QueueOptions::default());
    // One enqueue at a time: each is a batch of its own, followed by one housekeeping.
    for i in 0..64 {
        queue.enqueue(event(&format!("p{i}"))).await.unwrap();
    }
    // The 64th key started the merge; its pieces (8 keys each) run after batches, so once
    // the 65th enqueue is answered one or two of them have run.
    queue.enqueue(event("p64")).await.unwrap();
    let left = unkeyed(&path);
    assert!(
        left == 65 - 8 || left == 65 - 16,
        "one or two pieces of eight ran: {left} unkeyed"
    );
    for i in 0..65 {
        let key = format!("p{i}");
        let logged = queue.get("github", &key).await.unwrap();
        assert!(logged.is_some(), "{key} is found by the reader mid-merge");
    }
    // Ten more batches: more than the eight pieces. The merge took p0..p63; p64..p74 wait.
    for i in 65..75 {
        queue.enqueue(event(&format!("p{i}"))).await.unwrap();
    }
    assert_eq!(unkeyed(&path), 11);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let keyed_through: i64 = conn
        .query_row("SELECT keyed_through FROM hookdock_state", [], |r| r.get(0))
        .unwrap();
    let max_keyed: i64 = conn
        .query_row(
            "SELECT max(id) FROM hookdock_events WHERE keyed = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        keyed_through, max_keyed,
        "keyed_through moved to the merge's newest record"
    );
    for i in 0..75 {
        let again = queue.enqueue(event(&format!("p{i}"))).await.unwrap();
        assert!(matches!(again, Enqueued::Duplicate(_)), "p{i}: {again:?}");
    }
    store.close().await;
    assert_eq!(unkeyed(&path), 0, "closing merges what waits");
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    for i in 0..75 {
        let again = queue.enqueue(event(&format!("p{i}"))).await.unwrap();
        assert!(
            matches!(again, Enqueued::Duplicate(_)),
            "p{i} after a reopen"
        );
    }
    store.close().await;
}

/// What a crash leaves outside the key index (records with `keyed = 0` and no tail in
/// memory) is merged when the file is opened again, before any lookup.
#[tokio::test]
async fn records_left_unkeyed_by_a_crash_are_merged_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    open(&dir, SqliteOptions::new()).close().await;
    {
        // What the writer had committed when the process died: a record and its bytes,
        // outside the index.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO hookdock_events (id, source, event_id, state, available_at,
                 received_at, enqueued_at, keyed)
             VALUES (7, 'github', 'crashed', 0, 0, 0, 0, 0);
             INSERT INTO hookdock_event_bodies (id, headers, body) VALUES (7, x'', x'7b7d');",
        )
        .unwrap();
    }
    let store = open(&dir, SqliteOptions::new());
    assert_eq!(unkeyed(&path), 0);
    let queue = store.queue(QueueOptions::default());
    let again = queue.enqueue(event("crashed")).await.unwrap();
    assert_eq!(again, Enqueued::Duplicate(crate::store::MessageId(7)));
    let next = queue.enqueue(event("after")).await.unwrap();
    assert_eq!(next, Enqueued::New(crate::store::MessageId(8)));
    store.close().await;
}

/// A replay job's step looks at no more than [`replay_jobs::STEP_SPAN`] message ids, so a
/// selective filter over a large log never holds the writer for a long scan: the cursor
/// moves a span at a time, and each step still replays what it finds.
#[tokio::test]
async fn a_replay_step_looks_at_a_bounded_span_of_ids() {
    use crate::store::{EventFilter, EventLog, MessageId, ReplayMode, ReplayState};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    open(&dir, SqliteOptions::new()).close().await;
    let span = replay_jobs::STEP_SPAN;
    let last = span + 5_000;
    {
        // A large log of handled events, written directly: two of them from a rare source,
        // one at each end.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO hookdock_events (id, source, event_id, state, available_at, attempts,
                 received_at, enqueued_at, keyed)
             SELECT i, CASE WHEN i IN (1, ?1) THEN 'rare' ELSE 'github' END, 'e-' || i, 3,
                 9000000000000000, 1, 0, 0, 1
             FROM n",
            [last],
        )
        .unwrap();
        conn.execute("UPDATE hookdock_state SET keyed_through = ?1", [last])
            .unwrap();
    }
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    let job = queue
        .create_replay(&EventFilter::all().source("rare"), ReplayMode::Dedupe)
        .await
        .unwrap();
    assert_eq!((job.total, job.through), (2, Some(MessageId(last))));
    let job = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!(
        (job.state, job.after, job.replayed),
        (ReplayState::Running, Some(MessageId(span)), 1),
        "the first step stops at the end of its span"
    );
    let job = queue.step_replay(job.id, 10).await.unwrap();
    assert_eq!(
        (job.state, job.after, job.replayed),
        (ReplayState::Finished, Some(MessageId(last)), 2)
    );
    assert_eq!(queue.stats().await.unwrap().ready, 2);
    store.close().await;
}

/// With a retention of zero an ack deletes the record and its bytes at once (nothing waits
/// for the purge); a lease that expired on the last attempt is dead and done when the next
/// lease found it.
#[tokio::test]
async fn zero_retention_deletes_at_ack_and_expired_leases_are_done() {
    use crate::store::{EventLog, EventStatus};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let clock = clock();
    let store = SqliteStore::open(
        &path,
        SqliteOptions::new()
            .clock(clock.clone())
            .retention(Duration::ZERO),
    )
    .unwrap();
    let queue = store.queue(QueueOptions::default().max_attempts(1));
    queue.enqueue(event("acked")).await.unwrap();
    let leased = queue.lease(1, Duration::from_secs(30)).await.unwrap();
    queue.ack(&leased[0].lease).await.unwrap();
    let rows = |sql: &str| -> i64 {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    assert_eq!(rows("SELECT count(*) FROM hookdock_events"), 0);
    assert_eq!(rows("SELECT count(*) FROM hookdock_event_bodies"), 0);
    assert!(queue.get("github", "acked").await.unwrap().is_none());

    queue.enqueue(event("expired")).await.unwrap();
    assert_eq!(
        queue.lease(1, Duration::from_secs(30)).await.unwrap().len(),
        1
    );
    clock.advance(Duration::from_secs(31));
    assert!(queue
        .lease(1, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    let e = queue.get("github", "expired").await.unwrap().unwrap().entry;
    assert_eq!(e.status, EventStatus::Dead);
    assert_eq!(e.done_at, Some(crate::Clock::now(&clock)));
    assert_eq!(
        e.last_error.as_deref(),
        Some(crate::store::EXPIRED_ON_LAST_ATTEMPT)
    );
    store.close().await;
}

/// Reconciliation's checkpoint and report are on disk once saved: after a close and a
/// reopen they are there, in `hookdock_reconcile_sources`, the report as JSON.
#[tokio::test]
async fn checkpoints_and_reports_survive_a_reopen() {
    use crate::store::CheckpointStore;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    let now = crate::Clock::now(&clock());
    let mut report = crate::reconcile::PassReport::start("stripe", now, now, now);
    report.seen = 12;
    report
        .gaps
        .push(crate::reconcile::Gap { from: now, to: now });
    queue
        .save_checkpoint("stripe", "{\"cursor\":\"evt_1\"}")
        .await
        .unwrap();
    queue.save_report(&report).await.unwrap();
    store.close().await;
    {
        let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
        let (checkpoint, json): (String, String) = conn
            .query_row(
                "SELECT checkpoint, report FROM hookdock_reconcile_sources WHERE name = 'stripe'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(checkpoint, "{\"cursor\":\"evt_1\"}");
        assert!(json.contains("\"seen\":12"), "{json}");
    }
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    assert_eq!(
        queue.checkpoint("stripe").await.unwrap().as_deref(),
        Some("{\"cursor\":\"evt_1\"}")
    );
    assert_eq!(queue.reports().await.unwrap(), [report]);
    store.close().await;
}

/// One leader per name among every queue (and clone) of one store; a closed store refuses.
#[tokio::test]
async fn leadership_is_shared_by_the_queues_of_one_store() {
    use crate::store::CheckpointStore;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::new());
    let a = store.queue(QueueOptions::default());
    let b = store.clone().queue(QueueOptions::default().max_depth(10));
    let held = a
        .try_lead("stripe")
        .await
        .unwrap()
        .expect("nobody leads yet");
    assert!(held.holds().await);
    assert!(b.try_lead("stripe").await.unwrap().is_none());
    assert!(b.try_lead("github").await.unwrap().is_some());
    drop(held);
    assert!(b.try_lead("stripe").await.unwrap().is_some());
    store.close().await;
    assert!(matches!(
        a.save_checkpoint("stripe", "x").await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        a.checkpoint("stripe").await,
        Err(StoreError::Closed)
    ));
}

/// A version 6 file (its ordering index over pending records only, no floor on the keys)
/// with a key half drained is migrated to the current version: the key's events still run one at a
/// time and in order, from its first pending record, with the watermark carried along.
#[tokio::test]
async fn a_version_6_file_keeps_its_keys_in_order() {
    use crate::ordering::OrderingKey;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let keyed =
        |id: &str, position: i64| event(id).with_ordering(OrderingKey::new("k").version(position));
    {
        let store = open(&dir, SqliteOptions::new());
        let queue = store.queue(QueueOptions::default());
        for (id, position) in [("e-1", 1), ("e-2", 2), ("e-3", 3), ("e-4", 4)] {
            queue.enqueue(keyed(id, position)).await.unwrap();
        }
        let leased = queue.lease(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(leased.len(), 1);
        queue.ack(&leased[0].lease).await.unwrap();
        store.close().await;
    }
    {
        // Back to the version 6 shape.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX hookdock_events_order;
             CREATE INDEX hookdock_events_order
                 ON hookdock_events (source, order_key, order_pos, id)
                 WHERE order_key IS NOT NULL AND state < 2;
             ALTER TABLE hookdock_order_keys DROP COLUMN floor_pos;
             ALTER TABLE hookdock_order_keys DROP COLUMN floor_id;
             PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    let mut order = Vec::new();
    for _ in 0..3 {
        let leased = queue.lease(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(leased.len(), 1, "one at a time: {order:?}");
        order.push((leased[0].event.id.as_str().to_owned(), leased[0].watermark));
        queue.ack(&leased[0].lease).await.unwrap();
    }
    assert_eq!(
        order,
        [
            ("e-2".to_owned(), Some(1)),
            ("e-3".to_owned(), Some(2)),
            ("e-4".to_owned(), Some(3))
        ]
    );
    // A late arrival below everything acked joins a key whose floor moved: it still runs.
    queue.enqueue(keyed("e-0", 0)).await.unwrap();
    let leased = queue.lease(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].event.id.as_str(), "e-0");
    assert_eq!(leased[0].watermark, Some(4));
    store.close().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::SCHEMA_VERSION);
}

/// A key drained past many settled records moves its floor up (so walks stay short), and a
/// record joining below the floor (a late arrival, a replay) lowers it again and runs first.
#[tokio::test]
async fn a_keys_floor_follows_its_drain() {
    use crate::ordering::OrderingKey;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::new());
    let queue = store.queue(QueueOptions::default());
    let keyed = |id: String, position: i64| {
        event(&id).with_ordering(OrderingKey::new("k").version(position))
    };
    for p in 10..40 {
        queue.enqueue(keyed(format!("e-{p}"), p)).await.unwrap();
    }
    let drain = |n: usize| {
        let queue = queue.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..n {
                let leased = queue.lease(10, Duration::from_secs(30)).await.unwrap();
                assert_eq!(leased.len(), 1, "one at a time after {seen:?}");
                seen.push(leased[0].event.id.as_str().to_owned());
                queue.ack(&leased[0].lease).await.unwrap();
            }
            seen
        }
    };
    let first = drain(20).await;
    assert_eq!(
        first,
        (10..30).map(|p| format!("e-{p}")).collect::<Vec<_>>()
    );
    let floor: (Option<i64>, Option<i64>) = store
        .read(|conn| {
            conn.query_row(
                "SELECT floor_pos, floor_id FROM hookdock_order_keys WHERE order_key = 'k'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
        .unwrap();
    assert!(floor.0 > Some(10), "the floor moved up: {floor:?}");
    // Below the floor: it goes before the key's waiting record (which is not leased).
    queue.enqueue(keyed("late".to_owned(), 5)).await.unwrap();
    queue.enqueue(event("plain")).await.unwrap();
    let leased = queue.lease(10, Duration::from_secs(30)).await.unwrap();
    let mut ids: Vec<&str> = leased.iter().map(|l| l.event.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["late", "plain"], "the late arrival takes e-30's turn");
    for l in &leased {
        queue.ack(&l.lease).await.unwrap();
    }
    let rest = drain(10).await;
    assert_eq!(rest, (30..40).map(|p| format!("e-{p}")).collect::<Vec<_>>());
    store.close().await;
}
