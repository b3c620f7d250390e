//! Reconciliation's checkpoint store on PostgreSQL beyond the shared suite: what is saved
//! survives closing the store and its pool, two stores (as two processes) never lead one
//! source together, and a leader whose session the server ended no longer holds.
//!
//! Needs `HOOKDOCK_TEST_POSTGRES_URL` (see `scripts/postgres-test-server.sh`).

mod postgres_support;

use std::time::{Duration, SystemTime};

use hookdock::store::postgres::PgOptions;
use hookdock::store::{CheckpointStore, QueueOptions};

/// A report of `source` from a run of the reconciler-free kind: decoded from JSON, as a
/// store would read it (the report's constructor is the reconciler's).
fn report(source: &str) -> hookdock::reconcile::PassReport {
    serde_json::from_value(serde_json::json!({
        "source": source, "started_at": 1_750_000_000_123_456i64, "duration": 1_234,
        "since": 1_749_999_000_000_001i64, "until": 1_750_000_000_000_000i64,
        "pages": 2, "seen": 150, "known": 149, "recovered": 1, "redeliveries": 0,
        "gaps": [{"from": 1, "to": 2}], "rate_limited": 0, "retries": 0, "error": null
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_reports_survive_closing_the_store_and_pool() {
    let db = test_db!("reconcile_reopen");
    let store = db.another_with(PgOptions::new()).await;
    let queue = store.queue(QueueOptions::default());
    let checkpoint = format!(
        "{{\"cursor\":\"ü\\u0000\",\"pad\":\"{}\"}}\0",
        "x".repeat(70_000)
    );
    queue.save_checkpoint("stripe", &checkpoint).await.unwrap();
    queue.save_report(&report("stripe")).await.unwrap();
    store.close().await;
    store.pool().close().await;
    let store = db.another_with(PgOptions::new()).await;
    let queue = store.queue(QueueOptions::default());
    assert!(queue.checkpoint("stripe").await.unwrap().as_deref() == Some(checkpoint.as_str()));
    assert_eq!(queue.reports().await.unwrap(), [report("stripe")]);
    store.close().await;
    store.pool().close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_never_lead_one_source_together() {
    let db = test_db!("reconcile_two");
    let (a, b) = (db.another_process().await, db.another_process().await);
    let (qa, qb) = (
        a.queue(QueueOptions::default()),
        b.queue(QueueOptions::default()),
    );
    let held = qa
        .try_lead("stripe")
        .await
        .unwrap()
        .expect("nobody leads yet");
    assert!(
        qb.try_lead("stripe").await.unwrap().is_none(),
        "another store must not lead it too"
    );
    let held_b = qb.try_lead("github").await.unwrap();
    assert!(held_b.is_some(), "names are independent across stores");
    drop(held);
    // The drop releases on a task; the other store may need a moment to see it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let taken = loop {
        if let Some(l) = qb.try_lead("stripe").await.unwrap() {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped leadership was never released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(taken.holds().await);
    drop((taken, held_b));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_session_ended_no_longer_holds() {
    let db = test_db!("reconcile_ended");
    let (a, b) = (db.another_process().await, db.another_process().await);
    let (qa, qb) = (
        a.queue(QueueOptions::default()),
        b.queue(QueueOptions::default()),
    );
    let held = qa
        .try_lead("stripe")
        .await
        .unwrap()
        .expect("nobody leads yet");
    assert!(held.holds().await);
    // The server ends the session holding the advisory lock (an operator, a failover).
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
           AND objid = (hashtextextended($1, 0) & 4294967295)::oid",
    )
    .bind(format!("hookdock.reconcile:{}:stripe", db.schema))
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!(ended, 1, "one session holds the lock");
    let started = SystemTime::now();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while held.holds().await {
        assert!(
            std::time::Instant::now() < deadline,
            "holds() must notice the session is gone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!held.holds().await, "once lost, it stays lost");
    let taken = qb.try_lead("stripe").await.unwrap();
    assert!(
        taken.is_some(),
        "the lock ended with the session: another store leads"
    );
    eprintln!("lost after {:?}", started.elapsed().unwrap_or_default());
    drop((held, taken));
    db.cleanup().await;
}
