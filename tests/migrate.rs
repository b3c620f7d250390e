//! Databases written by earlier schemas are migrated when a store opens them, and everything
//! in them keeps its meaning: the same checks on hookdock 0.1's SQLite file and PostgreSQL dump
//! (schema version 1, `tests/data/v1/`) and on a SQLite file of schema version 2
//! (`tests/data/v2/`).
//!
//! The PostgreSQL half needs `HOOKDOCK_TEST_POSTGRES_URL` (see `tests/postgres_support`).

#[cfg(feature = "postgres")]
mod postgres_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{
    Claim, DeadLetterFilter, Enqueued, Fingerprint, IdempotencyKey, IdempotencyStore, Queue,
    QueueOptions,
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

/// Opens a copy of a SQLite fixture with today's code and checks it.
async fn migrate_sqlite_fixture(fixture: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.db");
    std::fs::copy(fixture, &path).unwrap();
    let clock = clock();
    let store = SqliteStore::open(&path, SqliteOptions::new().clock(clock.clone())).unwrap();
    let queue = store.queue(QueueOptions::default().max_attempts(3));
    check_the_fixture(&queue, &store.idempotency(), hookdock::Clock::now(&clock)).await;
    store.close().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
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
    assert_eq!(versions, [1, 2, 3]);
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}
