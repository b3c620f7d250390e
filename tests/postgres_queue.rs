//! The PostgreSQL queue against a real server: what is specific to PostgreSQL (batching,
//! many processes, SKIP LOCKED, LISTEN/NOTIFY, migrations, schemas). The shared conformance
//! suite runs in `postgres_conformance.rs`.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookdock::store::postgres::{PgOptions, PgStore};
use hookdock::store::ErrorKind;
use hookdock::store::{
    DeadLetterFilter, Enqueued, Queue, QueueOptions, QueueStats, EXPIRED_ON_LAST_ATTEMPT,
};
use hookdock::{RawEvent, StoreError};
use http::{HeaderMap, HeaderValue};
use postgres_support::start_time;
use sqlx::Row;

const LEASE: Duration = Duration::from_secs(30);

fn event(i: usize) -> RawEvent {
    RawEvent::new(
        "github",
        format!("d-{i}"),
        start_time(),
        format!("{{\"n\":{i}}}"),
    )
}

#[tokio::test]
async fn concurrent_enqueues_share_commits_and_get_distinct_ids() {
    let db = test_db!("concurrent_enqueues_share_commits");
    let queue = Arc::new(db.store.queue(QueueOptions::default()));
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let q = queue.clone();
            tokio::spawn(async move { q.enqueue(event(i)).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Enqueued::New(id) => assert!(ids.insert(id), "id {id} given twice"),
            other => panic!("expected New, got {other:?}"),
        }
    }
    assert_eq!(ids.len(), 300);
    // Rows written by one transaction share its xmin: fewer transactions than events
    // means concurrent enqueues were committed together.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT xmin::text) FROM \"{}\".hookdock_events",
        db.schema
    )))
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    let (rows, commits): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, 300);
    assert!(
        commits < 300,
        "every enqueue had its own commit ({commits})"
    );
    eprintln!("300 concurrent enqueues took {commits} commits");
    db.cleanup().await;
}

#[tokio::test]
async fn duplicates_return_the_stored_id_across_batches_processes_and_states() {
    let db = test_db!("duplicates_return_the_stored_id");
    let a = Arc::new(db.store.queue(QueueOptions::default()));
    let b = db.another_process().await.queue(QueueOptions::default());

    // The same event many times at once, from one process: one New, the rest Duplicate.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let q = a.clone();
            tokio::spawn(async move { q.enqueue(event(1)).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let id = outcomes[0].message();
    assert!(outcomes.iter().all(|o| o.message() == id));
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Enqueued::New(_)))
            .count(),
        1
    );
    // From another process, while ready, leased and dead.
    assert_eq!(b.enqueue(event(1)).await.unwrap(), Enqueued::Duplicate(id));
    let leased = a.lease(10, LEASE).await.unwrap();
    assert_eq!(b.enqueue(event(1)).await.unwrap(), Enqueued::Duplicate(id));
    a.dead_letter(&leased[0].lease, "broken").await.unwrap();
    assert_eq!(b.enqueue(event(1)).await.unwrap(), Enqueued::Duplicate(id));
    // Same id, other source: a different event.
    let other = RawEvent::new("stripe", "d-1", start_time(), "{}");
    assert!(matches!(b.enqueue(other).await.unwrap(), Enqueued::New(m) if m != id));
    // After replay and ack it is handled, and still known for the retention period.
    assert_eq!(a.replay(&DeadLetterFilter::message(id)).await.unwrap(), 1);
    let leased = a.lease(10, LEASE).await.unwrap();
    let mine = leased.iter().find(|l| l.lease.message == id).unwrap();
    a.ack(&mine.lease).await.unwrap();
    assert_eq!(b.enqueue(event(1)).await.unwrap(), Enqueued::Duplicate(id));
    db.cleanup().await;
}

#[tokio::test]
async fn events_come_back_byte_for_byte() {
    let db = test_db!("events_come_back_byte_for_byte");
    let queue = db.store.queue(QueueOptions::default());
    let mut headers = HeaderMap::new();
    headers.append("x-github-delivery", HeaderValue::from_static("d-7"));
    headers.append("x-multi", HeaderValue::from_static("one"));
    headers.append("x-multi", HeaderValue::from_static("two"));
    headers.append(
        "x-bytes",
        HeaderValue::from_bytes(b"caf\xc3\xa9\x80").unwrap(),
    );
    let body = Bytes::from_static(b"\x00\xff{\"not\": \"utf-8 \xc3\x28\"}\r\n");
    // Stored to the microsecond, as by every backend.
    let received = start_time() + Duration::new(3, 123_456_000);
    let original = RawEvent::new("github", "d-7", received, body).with_headers(headers);
    queue.enqueue(original.clone()).await.unwrap();
    let leased = queue.lease(1, LEASE).await.unwrap();
    assert_eq!(leased[0].event, original);
    queue.dead_letter(&leased[0].lease, "kept").await.unwrap();
    let dead = queue.dead_letters(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(dead[0].event, original);
    db.cleanup().await;
}

#[tokio::test]
async fn depth_limit_refuses_new_events_and_stores_nothing() {
    let db = test_db!("depth_limit_refuses");
    let queue = Arc::new(db.store.queue(QueueOptions::default().max_depth(50)));
    let other = db
        .another_process()
        .await
        .queue(QueueOptions::default().max_depth(50));
    // 80 concurrent enqueues from one process: exactly 50 fit.
    let tasks: Vec<_> = (0..80)
        .map(|i| {
            let q = queue.clone();
            tokio::spawn(async move { q.enqueue(event(i)).await })
        })
        .collect();
    let (mut stored, mut full) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(Enqueued::New(_)) => stored += 1,
            Err(StoreError::Full { depth }) => {
                assert!(depth >= 50);
                full += 1
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored, full), (50, 30));
    assert!(matches!(
        other.enqueue(event(1000)).await,
        Err(StoreError::Full { .. })
    ));
    // A duplicate is still recognized when full (it stores nothing).
    assert!(matches!(
        other.enqueue(event(0)).await,
        Ok(Enqueued::Duplicate(_))
    ));
    assert_eq!(queue.stats().await.unwrap().depth(), 50);
    // Dead letters do not count: make room by dead-lettering one.
    let l = queue.lease(1, LEASE).await.unwrap();
    queue.dead_letter(&l[0].lease, "x").await.unwrap();
    assert!(matches!(
        other.enqueue(event(1000)).await,
        Ok(Enqueued::New(_))
    ));
    db.cleanup().await;
}

#[tokio::test]
async fn many_leasers_in_many_processes_never_share_a_message() {
    let db = test_db!("many_leasers_never_share");
    let first = db.store.queue(QueueOptions::default());
    let tasks: Vec<_> = (0..1000).map(|i| first.enqueue(event(i))).collect();
    for r in futures_util::future::join_all(tasks).await {
        r.unwrap();
    }
    let mut queues = vec![Arc::new(first)];
    for _ in 0..2 {
        queues.push(Arc::new(
            db.another_process().await.queue(QueueOptions::default()),
        ));
    }
    let leasers: Vec<_> = (0..6)
        .map(|i| {
            let q = queues[i % queues.len()].clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = q.lease(17, LEASE).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|l| (l.lease.message, l.attempt)));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for l in leasers {
        for (m, attempt) in l.await.unwrap() {
            assert!(seen.insert(m), "message {m} leased twice");
            assert_eq!(attempt, 1);
        }
    }
    assert_eq!(seen.len(), 1000);
    let stats = queues[0].stats().await.unwrap();
    assert_eq!(
        stats,
        QueueStats {
            leased: 1000,
            ..QueueStats::default()
        }
    );
    db.cleanup().await;
}

#[tokio::test]
async fn tokens_fence_and_expired_leases_come_back_then_die() {
    let db = test_db!("tokens_fence_and_expired");
    let queue = db.store.queue(QueueOptions::default().max_attempts(2));
    queue.enqueue(event(1)).await.unwrap();
    let first = queue.lease(5, LEASE).await.unwrap().remove(0);
    assert_eq!(first.attempt, 1);
    assert!(!first.is_last_attempt());
    // Expired but not taken: still settles with its token (extend it).
    db.clock.advance(LEASE + Duration::from_secs(1));
    let extended = queue.extend(&first.lease, LEASE).await.unwrap();
    assert!(extended.expires_at > first.lease.expires_at);
    // Expired and taken again: the old token is dead, the new one works.
    db.clock.advance(LEASE + Duration::from_secs(1));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased), (1, 0));
    let second = queue.lease(5, LEASE).await.unwrap().remove(0);
    assert_eq!(second.attempt, 2);
    assert!(second.is_last_attempt());
    assert_ne!(second.lease.token, first.lease.token);
    for r in [
        queue.ack(&first.lease).await,
        queue.retry(&first.lease, start_time(), "x").await,
        queue.dead_letter(&first.lease, "x").await,
        queue.extend(&first.lease, LEASE).await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(StoreError::LeaseLost)), "{r:?}");
    }
    // The last attempt's lease expires: counted dead at once, listed with the reason.
    db.clock.advance(LEASE + Duration::from_secs(1));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.ready, stats.dead), (0, 1));
    assert!(queue.lease(5, LEASE).await.unwrap().is_empty());
    let dead = queue.dead_letters(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, EXPIRED_ON_LAST_ATTEMPT);
    assert_eq!(dead[0].attempts, 2);
    assert!(matches!(
        queue.ack(&second.lease).await,
        Err(StoreError::LeaseLost)
    ));
    // Replay: attempts start over, with a fresh token.
    assert_eq!(queue.replay(&DeadLetterFilter::all()).await.unwrap(), 1);
    let third = queue.lease(5, LEASE).await.unwrap().remove(0);
    assert_eq!(third.attempt, 1);
    assert!(third.lease.token != second.lease.token && third.lease.token != first.lease.token);
    queue.ack(&third.lease).await.unwrap();
    assert!(matches!(
        queue.ack(&third.lease).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
    db.cleanup().await;
}

#[tokio::test]
async fn concurrent_acks_settle_each_lease_once() {
    let db = test_db!("concurrent_acks_settle");
    let queue = Arc::new(db.store.queue(QueueOptions::default()));
    for i in 0..200 {
        queue.enqueue(event(i)).await.unwrap();
    }
    let leased = queue.lease(200, LEASE).await.unwrap();
    assert_eq!(leased.len(), 200);
    // Each lease acked twice at once: exactly one of the two succeeds.
    let tasks: Vec<_> = leased
        .iter()
        .flat_map(|l| [l.lease, l.lease])
        .map(|lease| {
            let q = queue.clone();
            tokio::spawn(async move { q.ack(&lease).await })
        })
        .collect();
    let (mut ok, mut lost) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::LeaseLost) => lost += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, lost), (200, 200));
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
    db.cleanup().await;
}

#[tokio::test]
async fn retry_waits_for_its_time_and_keeps_the_error() {
    let db = test_db!("retry_waits_for_its_time");
    let queue = db.store.queue(QueueOptions::default());
    queue.enqueue(event(1)).await.unwrap();
    let l = queue.lease(1, LEASE).await.unwrap().remove(0);
    let at = start_time() + Duration::from_secs(60);
    queue.retry(&l.lease, at, "upstream 502").await.unwrap();
    assert_eq!(queue.stats().await.unwrap().scheduled, 1);
    db.clock.advance(Duration::from_secs(59));
    assert!(queue.lease(1, LEASE).await.unwrap().is_empty());
    db.clock.advance(Duration::from_secs(1));
    let again = queue.lease(1, LEASE).await.unwrap().remove(0);
    assert_eq!(again.attempt, 2);
    assert_eq!(again.last_error.as_deref(), Some("upstream 502"));
    db.cleanup().await;
}

#[tokio::test]
async fn dead_letter_filters_list_and_replay_what_they_match() {
    let db = test_db!("dead_letter_filters");
    let queue = db.store.queue(QueueOptions::default());
    for (source, id) in [
        ("github", "a"),
        ("github", "b"),
        ("stripe", "a"),
        ("stripe", "c"),
    ] {
        queue
            .enqueue(RawEvent::new(source, id, start_time(), "{}"))
            .await
            .unwrap();
    }
    for l in queue.lease(10, LEASE).await.unwrap() {
        let reason = format!("{}: 'quoted' % _ reason", l.event.source);
        queue.dead_letter(&l.lease, &reason).await.unwrap();
    }
    let all = queue.dead_letters(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].message < w[1].message));
    let ids = |f: DeadLetterFilter| {
        let q = &queue;
        async move {
            q.dead_letters(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|d| format!("{}/{}", d.event.source, d.event.id))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(DeadLetterFilter::all().source("stripe")).await,
        ["stripe/a", "stripe/c"]
    );
    assert_eq!(
        ids(DeadLetterFilter::all().event_id("a")).await,
        ["github/a", "stripe/a"]
    );
    // Reason text is matched literally (no LIKE wildcards).
    assert_eq!(
        ids(DeadLetterFilter::all().reason_contains("hub: 'quoted' %"))
            .await
            .len(),
        2
    );
    assert!(ids(DeadLetterFilter::all().reason_contains("%%"))
        .await
        .is_empty());
    assert_eq!(
        ids(DeadLetterFilter::all().after(all[1].message).limit(1)).await,
        ["stripe/a"]
    );
    assert_eq!(
        ids(DeadLetterFilter::message(all[3].message)).await,
        ["stripe/c"]
    );
    // Replay honours the filter and the limit.
    assert_eq!(
        queue
            .replay(&DeadLetterFilter::all().source("github").limit(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        queue.stats().await.unwrap(),
        QueueStats {
            ready: 1,
            dead: 3,
            ..Default::default()
        }
    );
    let back = queue.lease(10, LEASE).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event.id.as_str(), "a");
    assert_eq!(back[0].event.source, "github");
    db.cleanup().await;
}

#[tokio::test]
async fn idle_workers_are_woken_by_notify_from_another_process() {
    let db = test_db!("idle_workers_are_woken");
    let worker_side = db.store.queue(QueueOptions::default());
    let receiver_side = db.another_process().await.queue(QueueOptions::default());
    let mut wake = worker_side
        .wake_signal()
        .expect("PostgreSQL queues have a wake-up");
    // The first wait starts the listener, which wakes once when it is listening (anything
    // sent before that could have been missed).
    tokio::time::timeout(Duration::from_secs(10), wake.woken())
        .await
        .expect("listener never came up");
    assert!(worker_side.lease(10, LEASE).await.unwrap().is_empty());
    let waiter = tokio::spawn(async move {
        wake.woken().await;
        wake
    });
    receiver_side.enqueue(event(1)).await.unwrap();
    let mut wake = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("enqueue did not wake the idle worker")
        .unwrap();
    assert_eq!(worker_side.lease(10, LEASE).await.unwrap().len(), 1);
    // A notification sent while the worker was busy is kept for its next wait.
    receiver_side.enqueue(event(2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(10), wake.woken())
        .await
        .expect("a notification sent while busy was lost");
    db.cleanup().await;
}

#[tokio::test]
async fn migrations_are_idempotent_concurrent_and_checked() {
    let db = test_db!("migrations_are_idempotent");
    // Twice more, concurrently, from two "processes" opening the schema: nothing changes,
    // nothing fails.
    let (a, b) = tokio::join!(db.another_process(), db.another_process());
    drop((a, b));
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    )
    .bind(&db.schema)
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "hookdock_events",
            "hookdock_health",
            "hookdock_migrations",
            "hookdock_order_keys",
            "hookdock_queue",
            "hookdock_reconcile_sources",
            "hookdock_replay_jobs"
        ]
    );
    // A migration recorded with different SQL is refused rather than silently skipped.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE \"{}\".hookdock_migrations SET checksum = 'edited'",
        db.schema
    )))
    .execute(db.store.pool())
    .await
    .unwrap();
    let pool = db.store.pool().clone();
    let edited = PgStore::from_pool(pool.clone(), PgOptions::new().schema(db.schema.clone()))
        .await
        .expect_err("an edited migration is refused");
    assert_eq!(edited.kind(), ErrorKind::Internal, "{edited:?}");
    let text = format!("{edited}");
    assert!(text.contains("different SQL"), "{text}");
    // A migration newer than this code knows is refused too, and says so.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{}\".hookdock_migrations (version, name, checksum) VALUES (99, 'x', 'y')",
        db.schema
    )))
    .execute(&pool)
    .await
    .unwrap();
    let newer = PgStore::from_pool(
        pool,
        PgOptions::new().schema(db.schema.clone()).migrate(false),
    )
    .await
    .expect_err("a newer schema is refused");
    assert!(newer.to_string().contains("newer"), "{newer}");
    db.cleanup().await;
}

#[tokio::test]
async fn schemas_isolate_queues() {
    let db = test_db!("schemas_isolate_queues");
    let here = db.store.queue(QueueOptions::default());
    let elsewhere_schema = postgres_support::unique_schema("iso");
    let elsewhere = PgStore::from_pool(
        db.store.pool().clone(),
        PgOptions::new().schema(elsewhere_schema.clone()),
    )
    .await
    .unwrap();
    let there = elsewhere.queue(QueueOptions::default());
    here.enqueue(event(1)).await.unwrap();
    assert_eq!(there.stats().await.unwrap().depth(), 0);
    assert!(matches!(
        there.enqueue(event(1)).await.unwrap(),
        Enqueued::New(_)
    ));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{elsewhere_schema}\" CASCADE"
    )))
    .execute(db.store.pool())
    .await
    .unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn bad_schema_names_are_refused_before_any_sql() {
    // A pool that reaches nothing: the name is refused before any statement is sent.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy("postgres://nobody@127.0.0.1:1/nothing")
        .unwrap();
    for bad in [
        "",
        "Robert'); DROP TABLE students;--",
        "a\"b",
        "UPPER",
        "pg_catalog",
    ] {
        let err = PgStore::from_pool(pool.clone(), PgOptions::new().schema(bad))
            .await
            .expect_err("a bad schema name");
        assert_eq!(err.kind(), ErrorKind::Internal, "{bad:?}: {err:?}");
        let text = format!("{err}: {:?}", std::error::Error::source(&err));
        assert!(text.contains("PostgreSQL schema"), "{bad:?}: {text}");
    }
}

#[tokio::test]
async fn a_dead_database_is_a_transient_storage_error() {
    // Nothing listens on port 1: every operation fails, none panics, none hangs.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy("postgres://nobody@127.0.0.1:1/nothing")
        .unwrap();
    let err = PgStore::from_pool(pool, PgOptions::new())
        .await
        .expect_err("nothing to open");
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_lost_pool_is_a_transient_error_everywhere() {
    let db = test_db!("a_lost_pool_is_a_transient_error");
    let store = db.another_process().await;
    let queue = store.queue(QueueOptions::default());
    queue.enqueue(event(1)).await.unwrap();
    store.pool().close().await;
    let err = queue.enqueue(event(2)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(queue.lease(1, LEASE).await.unwrap_err().is_transient());
    assert!(queue.stats().await.unwrap_err().is_transient());
    db.cleanup().await;
}

#[tokio::test]
async fn an_event_id_no_backend_can_store_fails_alone() {
    let db = test_db!("an_event_id_no_backend_can_store");
    let queue = Arc::new(db.store.queue(QueueOptions::default()));
    // Concurrent with good events that share its batch: only the bad one fails.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let q = queue.clone();
            let e = if i == 7 {
                RawEvent::new("github", "d-\u{0}-7", start_time(), "{}")
            } else {
                event(i)
            };
            tokio::spawn(async move { q.enqueue(e).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        if i == 7 {
            let err = r.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("control character"), "{err}");
        } else {
            assert!(matches!(r, Ok(Enqueued::New(_))), "{r:?}");
        }
    }
    assert_eq!(queue.stats().await.unwrap().ready, 19);
    db.cleanup().await;
}
