//! Backend-specific tests; the shared contract is checked by the conformance suite
//! (`tests/conformance_sqlite.rs`).

use std::time::Duration;

use super::*;
use crate::clock::FakeClock;
use crate::queue::Queue;
use crate::RawEvent;

fn clock() -> FakeClock {
    FakeClock::at_unix(1_700_000_000)
}

fn event(id: &str) -> RawEvent {
    RawEvent::new("github", id, std::time::UNIX_EPOCH, id.as_bytes().to_vec())
}

#[tokio::test]
async fn enqueue_lease_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(dir.path().join("q.db"), SqliteOptions::new().clock(clock())).unwrap();
    let queue = store.queue(QueueOptions::default());
    let id = queue.enqueue(event("a")).await.unwrap();
    let batch = queue.lease(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].lease.message, id.message());
    assert_eq!(&batch[0].event.body[..], b"a");
    queue.ack(&batch[0].lease).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().depth(), 0);
}
