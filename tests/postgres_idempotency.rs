//! The PostgreSQL idempotency store against a real server: races across processes, fencing,
//! takeover, retention, and completing inside the caller's transaction. The shared
//! conformance suite runs in `postgres_conformance.rs`.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookdock::store::{Claim, Fingerprint, IdempotencyKey, IdempotencyStore};
use hookdock::StoreError;
use postgres_support::start_time;

const LEASE: Duration = Duration::from_secs(60);

fn key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new("stripe", id)
}

#[tokio::test]
async fn concurrent_claims_from_many_processes_acquire_each_key_once() {
    let db = test_db!("concurrent_claims_acquire_once");
    let mut stores = vec![Arc::new(db.store.idempotency())];
    for _ in 0..2 {
        stores.push(Arc::new(db.another_process().await.idempotency()));
    }
    let fp = Fingerprint::of(b"body");
    // 100 keys, each claimed 12 times at once: 4 callers in each of 3 "processes".
    let tasks: Vec<_> = (0..100)
        .flat_map(|k| (0..12).map(move |c| (k, c)))
        .map(|(k, c)| {
            let store = stores[c % 3].clone();
            tokio::spawn(async move {
                let claim = store.claim(&key(&format!("k{k}")), &fp, LEASE).await;
                (k, claim.unwrap())
            })
        })
        .collect();
    let mut acquired = vec![0; 100];
    for t in tasks {
        let (k, claim) = t.await.unwrap();
        match claim {
            Claim::Acquired(_) => acquired[k] += 1,
            Claim::InProgress { until } => assert_eq!(until, start_time() + LEASE),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(acquired.iter().all(|&n| n == 1), "{acquired:?}");
    db.cleanup().await;
}

#[tokio::test]
async fn completed_mismatch_in_progress_and_takeover() {
    let db = test_db!("completed_mismatch_takeover");
    let store = db.store.idempotency();
    let other = db.another_process().await.idempotency();
    let fp = Fingerprint::of(b"one");
    let Claim::Acquired(first) = store.claim(&key("a"), &fp, LEASE).await.unwrap() else {
        panic!("first claim must acquire")
    };
    assert_eq!(
        other.claim(&key("a"), &fp, LEASE).await.unwrap(),
        Claim::InProgress {
            until: start_time() + LEASE
        }
    );
    assert_eq!(
        other
            .claim(&key("a"), &Fingerprint::of(b"two"), LEASE)
            .await
            .unwrap(),
        Claim::FingerprintMismatch
    );
    // The claim expires: another process takes it over; the first token is fenced off.
    db.clock.advance(LEASE);
    let Claim::Acquired(second) = other.claim(&key("a"), &fp, LEASE).await.unwrap() else {
        panic!("an expired claim must be taken over")
    };
    assert_ne!(first, second);
    assert!(matches!(
        store.complete(&key("a"), first, None).await,
        Err(StoreError::ClaimLost)
    ));
    assert!(matches!(
        store.release(&key("a"), first).await,
        Err(StoreError::ClaimLost)
    ));
    other
        .complete(&key("a"), second, Some(Bytes::from_static(b"receipt")))
        .await
        .unwrap();
    assert!(matches!(
        other.complete(&key("a"), second, None).await,
        Err(StoreError::ClaimLost)
    ));
    assert_eq!(
        store.claim(&key("a"), &fp, LEASE).await.unwrap(),
        Claim::Completed(Some(Bytes::from_static(b"receipt")))
    );
    // An empty result is kept as empty, distinct from no result.
    let Claim::Acquired(t) = store.claim(&key("b"), &fp, LEASE).await.unwrap() else {
        panic!()
    };
    store
        .complete(&key("b"), t, Some(Bytes::new()))
        .await
        .unwrap();
    assert_eq!(
        store.claim(&key("b"), &fp, LEASE).await.unwrap(),
        Claim::Completed(Some(Bytes::new()))
    );
    db.cleanup().await;
}

#[tokio::test]
async fn release_forgets_and_tokens_are_never_reused() {
    let db = test_db!("release_forgets");
    let store = db.store.idempotency();
    let fp = Fingerprint::of(b"x");
    let Claim::Acquired(t1) = store.claim(&key("a"), &fp, LEASE).await.unwrap() else {
        panic!()
    };
    store.release(&key("a"), t1).await.unwrap();
    // Released: the next claim acquires it, even with another body, with a new token.
    let Claim::Acquired(t2) = store
        .claim(&key("a"), &Fingerprint::of(b"y"), LEASE)
        .await
        .unwrap()
    else {
        panic!("a released key must be acquired again")
    };
    assert_ne!(t1, t2);
    // The old token cannot touch the new claim.
    assert!(matches!(
        store.complete(&key("a"), t1, None).await,
        Err(StoreError::ClaimLost)
    ));
    assert!(matches!(
        store.release(&key("a"), t1).await,
        Err(StoreError::ClaimLost)
    ));
    // A completed key cannot be released.
    store.complete(&key("a"), t2, None).await.unwrap();
    assert!(matches!(
        store.release(&key("a"), t2).await,
        Err(StoreError::ClaimLost)
    ));
    db.cleanup().await;
}

#[tokio::test]
async fn retention_keeps_completed_keys_then_purges_them() {
    let db = test_db!("retention_keeps_then_purges");
    let retention = Duration::from_secs(3600);
    let store = db
        .another_with(
            hookdock::store::postgres::PgOptions::new()
                .clock(db.clock.clone())
                .retention(retention),
        )
        .await
        .idempotency();
    let fp = Fingerprint::of(b"x");
    for id in ["done", "abandoned"] {
        let Claim::Acquired(t) = store.claim(&key(id), &fp, LEASE).await.unwrap() else {
            panic!()
        };
        if id == "done" {
            store.complete(&key(id), t, None).await.unwrap();
        }
    }
    // Just before the end of retention: remembered, nothing to purge.
    db.clock.advance(retention - Duration::from_secs(1));
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(
        store.claim(&key("done"), &fp, LEASE).await.unwrap(),
        Claim::Completed(None)
    );
    // After it: the completed key and the long-abandoned claim go.
    db.clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(store.purge_expired().await.unwrap(), 2);
    assert!(matches!(
        store.claim(&key("done"), &fp, LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));
    db.cleanup().await;
}

#[tokio::test]
async fn purge_works_in_chunks_beyond_one_statement() {
    let db = test_db!("purge_in_chunks");
    let store = db.store.idempotency();
    // 25,000 records holding only a completed claim past its retention, written directly
    // (faster than claiming each).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{0}\".hookdock_events
             (id, source, event_id, received_at, headers, body, enqueued_at)
         OVERRIDING SYSTEM VALUE
         SELECT g, 's', g::text, 0, '', '', 0 FROM generate_series(1, 25000) g;
         INSERT INTO \"{0}\".hookdock_queue
             (id, state, available_at, claim_token, claim_done, claim_until, fingerprint)
         SELECT g, 4, 0, g, true, 0, '\\x00' FROM generate_series(1, 25000) g",
        db.schema
    )))
    .execute(db.store.pool())
    .await
    .unwrap();
    assert_eq!(store.purge_expired().await.unwrap(), 25_000);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    db.cleanup().await;
}

#[tokio::test]
async fn complete_in_commits_with_the_callers_transaction() {
    let db = test_db!("complete_in_commits");
    let store = db.store.idempotency();
    let pool = db.store.pool();
    let effects = format!("\"{}\".effects", db.schema);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {effects} (id TEXT NOT NULL)"
    )))
    .execute(pool)
    .await
    .unwrap();
    let insert = format!("INSERT INTO {effects} (id) VALUES ($1)");
    let fp = Fingerprint::of(b"x");
    let Claim::Acquired(t) = store.claim(&key("a"), &fp, LEASE).await.unwrap() else {
        panic!()
    };
    // Rolled back: neither the effect nor the completion happened.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
        .bind("a")
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .complete_in(&mut tx, &key("a"), t, None)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(
        store.claim(&key("a"), &fp, LEASE).await.unwrap(),
        Claim::InProgress { .. }
    ));
    // Committed: both.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
        .bind("a")
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .complete_in(&mut tx, &key("a"), t, Some(Bytes::from_static(b"ok")))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.claim(&key("a"), &fp, LEASE).await.unwrap(),
        Claim::Completed(Some(Bytes::from_static(b"ok")))
    );
    // A taken-over claim cannot complete inside a transaction either.
    let Claim::Acquired(old) = store.claim(&key("b"), &fp, LEASE).await.unwrap() else {
        panic!()
    };
    db.clock.advance(LEASE);
    let Claim::Acquired(_) = store.claim(&key("b"), &fp, LEASE).await.unwrap() else {
        panic!()
    };
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(
        store.complete_in(&mut tx, &key("b"), old, None).await,
        Err(StoreError::ClaimLost)
    ));
    drop(tx);
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {effects}"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(count, 1);
    db.cleanup().await;
}

#[tokio::test]
async fn a_takeover_waits_for_an_uncommitted_completion() {
    // Worker A completes inside a transaction that is still open when its claim expires and
    // worker B claims: B must not acquire (it waits for A's row lock, then sees Completed).
    let db = test_db!("takeover_waits_for_completion");
    let a = db.store.idempotency();
    let b = db.another_process().await.idempotency();
    let fp = Fingerprint::of(b"x");
    let Claim::Acquired(t) = a.claim(&key("a"), &fp, LEASE).await.unwrap() else {
        panic!()
    };
    let mut tx = db.store.pool().begin().await.unwrap();
    a.complete_in(&mut tx, &key("a"), t, None).await.unwrap();
    db.clock.advance(LEASE + Duration::from_secs(1));
    let claim_b = tokio::spawn(async move { b.claim(&key("a"), &fp, LEASE).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !claim_b.is_finished(),
        "B's claim did not wait for A's open transaction"
    );
    tx.commit().await.unwrap();
    assert_eq!(claim_b.await.unwrap().unwrap(), Claim::Completed(None));
    db.cleanup().await;
}
