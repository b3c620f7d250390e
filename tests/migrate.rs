//! Databases written by earlier schemas are migrated when a store opens them, and everything
//! in them keeps its meaning: the same checks on hookdock 0.1's SQLite file and PostgreSQL dump
//! (schema version 1, `tests/data/v1/`) and on SQLite files of schema versions 2, 3 and 4
//! (`tests/data/v2/` to `tests/data/v4/`). On SQLite, the migrated records are also read
//! through the event log (schema version 4), ordering keys work on them (version 5 and the
//! ordering index of version 7), and so does reconciliation's checkpoint store (version 6),
//! also on version 5 and 6 files.
//!
//! The PostgreSQL half needs `HOOKDOCK_TEST_POSTGRES_URL` (see `tests/postgres_support`).

#[cfg(feature = "postgres")]
mod postgres_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{
    Claim, DeadLetterFilter, Enqueued, EventFilter, EventLog, EventStatus, Fingerprint,
    IdempotencyKey, IdempotencyStore, Origin, Queue, QueueOptions,
};
use hookdock::testing::FakeClock;
use hookdock::RawEvent;

/// The fixture's clock stood at 1,700,000,000.5 s and its leases lasted 30 s: half a second
/// later, as the fixture's README tells.
fn clock() -> FakeClock {
    FakeClock::new(UNIX_EPOCH + Duration::from_millis(1_700_000_001_000))
}

/// What the fixture holds, checked through the traits (the queue with the fixture's
/// `max_attempts(3)`).
async fn check_the_fixture(queue: &impl Queue, dedupe: &impl IdempotencyStore, now: SystemTime) {
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.ready, stats.leased, stats.scheduled, stats.dead),
        (1, 1, 1, 1),
        "waiting-1 ready, leased-2 leased, retry-5 scheduled, dead-3 dead"
    );
    let dead = queue.dead_letters(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(dead[0].event.id.as_str(), "dead-3");
    assert_eq!(dead[0].reason, "permanent failure: no such customer");
    let ready = queue.lease(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(ready.len(), 1);
    let waiting = &ready[0].event;
    assert_eq!(waiting.id.as_str(), "waiting-1");
    assert_eq!(&waiting.body[..], b"{\"n\":1}");
    assert_eq!(
        waiting.received_at,
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        "the time is kept, now in microseconds"
    );
    assert_eq!(
        waiting.headers.get_all("x-multi").iter().count(),
        2,
        "repeated headers kept"
    );
    let lease = Duration::from_secs(30);
    let claim = |id: &'static str, source: &'static str, body: &'static [u8]| async move {
        let key = IdempotencyKey::new(source, id);
        dedupe
            .claim(&key, &Fingerprint::of(body), lease)
            .await
            .unwrap()
    };
    // acked-4's record was deleted by version 1; its completed claim keeps its result.
    assert_eq!(
        claim("acked-4", "github", b"{\"n\":4}").await,
        Claim::Completed(Some(bytes::Bytes::from_static(b"done")))
    );
    // So does the claim of a key no event was stored under.
    assert_eq!(
        claim("evt_only_claimed", "stripe", b"{}").await,
        Claim::Completed(None)
    );
    // The in-progress claim of leased-2 is on its event's record, expiring as it did.
    assert_eq!(
        claim("leased-2", "github", b"{\"n\":2}").await,
        Claim::InProgress {
            until: UNIX_EPOCH + Duration::from_millis(1_700_000_030_500)
        }
    );
    // Keys stay known; ids do not repeat.
    let dup = RawEvent::new("github", "dead-3", now, "{}");
    assert!(matches!(
        queue.enqueue(dup).await.unwrap(),
        Enqueued::Duplicate(_)
    ));
    let new = RawEvent::new("github", "new", now, "{}");
    assert!(matches!(queue.enqueue(new).await.unwrap(), Enqueued::New(m) if m.0 > 5));
}

/// What the event log makes of the migrated records: every stored event listed with its
/// status, no event type and origin push (nothing older recorded them), a dead letter done
/// when it died; the record holding only a claim is no event. `acked-4` is listed where the
/// fixture kept its record (version 1 had deleted it).
async fn check_the_log(queue: &impl EventLog) {
    let page = queue.list(&EventFilter::all()).await.unwrap();
    let mut found: Vec<(String, EventStatus)> = page
        .entries
        .iter()
        .map(|e| (e.event_id.as_str().to_owned(), e.status))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        ("dead-3".to_owned(), EventStatus::Dead),
        ("leased-2".to_owned(), EventStatus::Leased),
        ("retry-5".to_owned(), EventStatus::Retrying),
        ("waiting-1".to_owned(), EventStatus::Pending),
    ];
    if found.iter().any(|(id, _)| id == "acked-4") {
        expected.push(("acked-4".to_owned(), EventStatus::Succeeded));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
    }
    assert_eq!(found, expected);
    let ids: Vec<_> = page.entries.iter().map(|e| e.message).collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first, "listed newest first");
    for e in &page.entries {
        assert_eq!((e.source.as_str(), e.origin), ("github", Origin::Push));
        assert_eq!(e.event_type, None, "{}: no type was recorded", e.event_id);
        assert_eq!((e.replays, e.forced_replays), (0, 0));
    }
    let dead = queue.get("github", "dead-3").await.unwrap().unwrap();
    assert_eq!(
        dead.entry.last_error.as_deref(),
        Some("permanent failure: no such customer")
    );
    let dead_at = queue.dead_letters(&DeadLetterFilter::all()).await.unwrap()[0].dead_at;
    assert_eq!(
        dead.entry.done_at,
        Some(dead_at),
        "a dead letter is done when it died"
    );
    assert_eq!(&dead.event.body[..], b"{\"n\":3}");
    let retry = queue.get("github", "retry-5").await.unwrap().unwrap().entry;
    assert_eq!(
        retry.last_error.as_deref(),
        Some("retryable failure: timeout")
    );
    assert_eq!(retry.attempts, 1);
    assert!(
        queue
            .get("stripe", "evt_only_claimed")
            .await
            .unwrap()
            .is_none(),
        "a record holding only a claim is not an event"
    );
    let counts = queue.counts(&EventFilter::all()).await.unwrap();
    assert_eq!(counts.total(), page.entries.len() as u64);
    assert_eq!(
        counts.oldest_pending,
        Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        "waiting-1 and retry-5 wait"
    );
}

/// Opens a copy of a SQLite fixture with today's code and checks it.
async fn migrate_sqlite_fixture(fixture: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.db");
    std::fs::copy(fixture, &path).unwrap();
    let clock = clock();
    let store = SqliteStore::open(&path, SqliteOptions::new().clock(clock.clone())).unwrap();
    let queue = store.queue(QueueOptions::default().max_attempts(3));
    check_the_log(&queue).await;
    check_the_fixture(&queue, &store.idempotency(), hookdock::Clock::now(&clock)).await;
    // Ordering keys work on a migrated file: one of the key at a time, the first position.
    for position in [2, 1] {
        let e = RawEvent::new("ordered", format!("o-{position}"), UNIX_EPOCH, "{}")
            .with_ordering(hookdock::ordering::OrderingKey::new("k").version(position));
        queue.enqueue(e).await.unwrap();
    }
    let leased = queue.lease(100, Duration::from_secs(30)).await.unwrap();
    let ordered: Vec<&str> = leased
        .iter()
        .filter(|l| l.event.source == "ordered")
        .map(|l| l.event.id.as_str())
        .collect();
    assert_eq!(
        ordered,
        ["o-1"],
        "one event of the key, the earlier position"
    );
    check_checkpoints(&queue).await;
    store.close().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 7);
    let unkeyed: i64 = conn
        .query_row(
            "SELECT count(*) FROM hookdock_events WHERE keyed = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unkeyed, 0, "every key is in the index after close");
    // The unique key still holds for what the migration carried over.
    let again = conn.execute(
        "INSERT INTO hookdock_events (source, event_id, state, available_at, received_at,
             enqueued_at) VALUES ('github', 'waiting-1', 0, 0, 0, 0)",
        [],
    );
    assert!(again.is_err(), "(source, event_id) is unique");
}

#[tokio::test]
async fn a_version_1_sqlite_file_is_migrated() {
    migrate_sqlite_fixture(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/v1/hookdock.db"
    ))
    .await;
}

#[tokio::test]
async fn a_version_2_sqlite_file_is_migrated() {
    migrate_sqlite_fixture(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/v2/hookdock.db"
    ))
    .await;
}

#[tokio::test]
async fn a_version_3_sqlite_file_is_migrated() {
    migrate_sqlite_fixture(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/v3/hookdock.db"
    ))
    .await;
}

#[tokio::test]
async fn a_version_4_sqlite_file_is_migrated() {
    migrate_sqlite_fixture(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/v4/hookdock.db"
    ))
    .await;
}

/// Reconciliation's checkpoints and leadership work on a migrated file.
async fn check_checkpoints(queue: &hookdock::store::sqlite::SqliteQueue) {
    use hookdock::store::CheckpointStore;
    assert_eq!(queue.checkpoint("stripe").await.unwrap(), None);
    queue.save_checkpoint("stripe", "{\"at\":1}").await.unwrap();
    assert_eq!(
        queue.checkpoint("stripe").await.unwrap().as_deref(),
        Some("{\"at\":1}")
    );
    assert!(queue.reports().await.unwrap().is_empty());
    let held = queue.try_lead("stripe").await.unwrap();
    assert!(held.is_some(), "nobody leads a source on a fresh open");
}

/// The version 7 ordering index and key floors undone, and the version as given: what
/// version 6 code (and, without `hookdock_reconcile_sources`, version 5 code) left.
const BACK_TO_V6: &str = "
    DROP INDEX hookdock_events_order;
    CREATE INDEX hookdock_events_order
        ON hookdock_events (source, order_key, order_pos, id)
        WHERE order_key IS NOT NULL AND state < 2;
    ALTER TABLE hookdock_order_keys DROP COLUMN floor_pos;
    ALTER TABLE hookdock_order_keys DROP COLUMN floor_id;";

/// A version 6 file (the version 4 fixture migrated, with the version 7 changes undone) is
/// migrated, and checked like the others.
#[tokio::test]
async fn a_version_6_sqlite_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v4/hookdock.db"),
        &path,
    )
    .unwrap();
    SqliteStore::open(&path, SqliteOptions::new().clock(clock()))
        .unwrap()
        .close()
        .await;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!("{BACK_TO_V6} PRAGMA user_version = 6;"))
            .unwrap();
    }
    migrate_sqlite_fixture(path.to_str().unwrap()).await;
}

/// A version 5 file (the version 4 fixture as version 5 code left it: version 6 only adds
/// `hookdock_reconcile_sources`, so undoing version 7 and dropping that table gives the same
/// file) is migrated, and checked like the others.
#[tokio::test]
async fn a_version_5_sqlite_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v4/hookdock.db"),
        &path,
    )
    .unwrap();
    SqliteStore::open(&path, SqliteOptions::new().clock(clock()))
        .unwrap()
        .close()
        .await;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "{BACK_TO_V6} DROP TABLE hookdock_reconcile_sources; PRAGMA user_version = 5;"
        ))
        .unwrap();
    }
    migrate_sqlite_fixture(path.to_str().unwrap()).await;
}

/// The migration to version 4 only adds columns and a table: the records keep their ids
/// and rows, and opening the migrated file again changes nothing.
#[tokio::test]
async fn a_version_3_file_keeps_its_records_through_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v3/hookdock.db"),
        &path,
    )
    .unwrap();
    let rows = |path: &std::path::Path| -> Vec<(i64, String, i64, i64)> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, event_id, state, attempts FROM hookdock_events ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let before = rows(&path);
    assert_eq!(before.len(), 6);
    for _ in 0..2 {
        let store = SqliteStore::open(&path, SqliteOptions::new().clock(clock())).unwrap();
        store.close().await;
        assert_eq!(rows(&path), before);
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_version_1_postgres_schema_is_migrated() {
    use hookdock::store::postgres::{PgOptions, PgStore};
    use sqlx::postgres::PgPoolOptions;

    let Some(url) = postgres_support::url("a_version_1_postgres_schema_is_migrated") else {
        return;
    };
    let schema = postgres_support::unique_schema("v1");
    // The dump, under a schema of this test's own, without psql's meta-commands.
    let dump: String = include_str!("data/v1/postgres.sql")
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "CREATE SCHEMA fixture;",
            &format!("CREATE SCHEMA \"{schema}\";"),
        )
        .replace("fixture.", &format!("\"{schema}\"."));
    let loader = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
        .execute(&loader)
        .await
        .expect("load the version 1 dump");
    loader.close().await;

    let clock = clock();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    let options = PgOptions::new().schema(schema.clone()).clock(clock.clone());
    let store = PgStore::from_pool(pool.clone(), options)
        .await
        .expect("migrate and open");
    let queue = store.queue(QueueOptions::default().max_attempts(3));
    check_the_fixture(&queue, &store.idempotency(), hookdock::Clock::now(&clock)).await;
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".hookdock_migrations ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    // Version 4's health row is there: the readiness probe writes on a migrated schema.
    queue
        .check_writable()
        .await
        .expect("check_writable on a migrated schema");
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// The event log on a migrated version 1 PostgreSQL dump: every stored event is listed with
/// the status its state means, a dead letter done when it died, and the claim-only record of
/// a key no event was stored under not at all.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_migrated_postgres_schema_has_its_events_in_the_log() {
    use hookdock::store::postgres::{PgOptions, PgStore};
    use hookdock::store::{EventFilter, EventLog, EventStatus, Origin};
    use sqlx::postgres::PgPoolOptions;

    let Some(url) = postgres_support::url("a_migrated_postgres_schema_has_its_events_in_the_log")
    else {
        return;
    };
    let schema = postgres_support::unique_schema("v1log");
    let dump: String = include_str!("data/v1/postgres.sql")
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "CREATE SCHEMA fixture;",
            &format!("CREATE SCHEMA \"{schema}\";"),
        )
        .replace("fixture.", &format!("\"{schema}\"."));
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
        .execute(&pool)
        .await
        .expect("load the version 1 dump");
    let options = PgOptions::new().schema(schema.clone()).clock(clock());
    let store = PgStore::from_pool(pool.clone(), options)
        .await
        .expect("migrate and open");
    let queue = store.queue(QueueOptions::default().max_attempts(3));
    let page = queue.list(&EventFilter::all()).await.unwrap();
    let seen: Vec<(&str, EventStatus)> = page
        .entries
        .iter()
        .map(|e| (e.event_id.as_str(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("retry-5", EventStatus::Retrying),
            ("dead-3", EventStatus::Dead),
            ("leased-2", EventStatus::Leased),
            ("waiting-1", EventStatus::Pending),
        ],
        "newest first; the claim-only record is not an event"
    );
    let dead = &page.entries[1];
    assert_eq!(
        dead.last_error.as_deref(),
        Some("permanent failure: no such customer")
    );
    assert_eq!(
        dead.done_at,
        Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)),
        "a dead letter was done when it died"
    );
    assert!(page
        .entries
        .iter()
        .all(|e| e.origin == Origin::Push && e.replays == 0 && e.event_type.is_none()));
    assert_eq!(
        page.entries[0].last_error.as_deref(),
        Some("retryable failure: timeout")
    );
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}
