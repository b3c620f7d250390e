//! A PostgreSQL schema written by hookdock 0.1 (migration 1 applied, `tests/data/v1/`) is
//! migrated when a store opens it, and everything in it keeps its meaning.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `tests/postgres_support`).

mod postgres_support;

use std::time::{Duration, UNIX_EPOCH};

use hookdock::store::postgres::{PgOptions, PgStore};
use hookdock::store::{
    Claim, DeadLetterFilter, Enqueued, Fingerprint, IdempotencyKey, IdempotencyStore, Queue,
    QueueOptions,
};
use hookdock::testing::FakeClock;
use hookdock::RawEvent;
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn a_version_1_schema_is_migrated() {
    let Some(url) = postgres_support::url("a_version_1_schema_is_migrated") else {
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

    // The fixture's clock stood at 1,700,000,000.5 s; its leases lasted 30 s.
    let clock = FakeClock::new(UNIX_EPOCH + Duration::from_millis(1_700_000_001_000));
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
    let dedupe = store.idempotency();

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
        "nanoseconds became microseconds"
    );
    assert_eq!(waiting.headers.get_all("x-multi").iter().count(), 2);
    let lease = Duration::from_secs(30);
    let fp = |b: &[u8]| Fingerprint::of(b);
    // acked-4 was deleted by version 1; its completed claim keeps its result.
    assert_eq!(
        dedupe
            .claim(
                &IdempotencyKey::new("github", "acked-4"),
                &fp(b"{\"n\":4}"),
                lease
            )
            .await
            .unwrap(),
        Claim::Completed(Some(bytes::Bytes::from_static(b"done")))
    );
    assert_eq!(
        dedupe
            .claim(
                &IdempotencyKey::new("stripe", "evt_only_claimed"),
                &fp(b"{}"),
                lease
            )
            .await
            .unwrap(),
        Claim::Completed(None)
    );
    assert_eq!(
        dedupe
            .claim(
                &IdempotencyKey::new("github", "leased-2"),
                &fp(b"{\"n\":2}"),
                lease
            )
            .await
            .unwrap(),
        Claim::InProgress {
            until: UNIX_EPOCH + Duration::from_millis(1_700_000_030_500)
        }
    );
    let dup = RawEvent::new("github", "dead-3", clock_now(&clock), "{}");
    assert!(matches!(
        queue.enqueue(dup).await.unwrap(),
        Enqueued::Duplicate(_)
    ));
    let new = RawEvent::new("github", "new", clock_now(&clock), "{}");
    assert!(matches!(queue.enqueue(new).await.unwrap(), Enqueued::New(m) if m.0 > 5));
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".hookdock_migrations ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2]);
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

fn clock_now(clock: &FakeClock) -> std::time::SystemTime {
    hookdock::Clock::now(clock)
}
