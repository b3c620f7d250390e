//! The dedupe layer's behaviour on each claim outcome, over the memory store.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use tower::{service_fn, Layer, ServiceExt};

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use tower_service::Service;

use super::*;
use crate::clock::FakeClock;
use crate::store::{Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, StoreError};
use crate::store::{MemoryIdempotencyStore, MemoryStore, MessageId};
use crate::worker::{DedupeLayer, ErrorKind};
use crate::worker::{Event, HandlerError};
use crate::RawEvent;

const LEASE: Duration = Duration::from_secs(30);

fn event(id: &str, body: &'static str) -> Event {
    let raw = RawEvent::new("github", id, SystemTime::UNIX_EPOCH, body);
    Event::new(raw, MessageId(1), 1, 10)
}

fn store(clock: &FakeClock) -> Arc<MemoryIdempotencyStore> {
    Arc::new(MemoryStore::new().with_clock(clock.clone()).idempotency())
}

/// A handler whose behaviour is scripted per call: `Ok` applies the effect.
type Script = Arc<Mutex<Vec<Result<(), HandlerError>>>>;

fn scripted(
    effects: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
    script: Script,
) -> impl Service<Event, Response = (), Error = HandlerError, Future: Send> + Clone + Send {
    service_fn(move |_event: Event| {
        let (effects, calls, script) = (effects.clone(), calls.clone(), script.clone());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let step = script.lock().unwrap().pop();
            match step {
                Some(Err(e)) => Err(e),
                _ => {
                    effects.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }
        }
    })
}

#[tokio::test]
async fn failures_release_the_claim_so_the_next_attempt_runs() {
    let clock = FakeClock::at_unix(1_000);
    let (effects, calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    // Popped from the end: a retryable failure, then a permanent one, then success.
    let script: Script = Arc::new(Mutex::new(vec![
        Ok(()),
        Err(HandlerError::permanent("bad")),
        Err(HandlerError::retry("flaky")),
    ]));
    let svc =
        DedupeLayer::new(store(&clock)).layer(scripted(effects.clone(), calls.clone(), script));
    let e1 = svc.clone().oneshot(event("a", "x")).await.unwrap_err();
    assert!(e1.is_retryable());
    let e2 = svc.clone().oneshot(event("a", "x")).await.unwrap_err();
    assert!(
        e2.is_permanent(),
        "a permanent failure is released, not completed"
    );
    assert!(svc
        .clone()
        .oneshot(event("a", "x"))
        .await
        .unwrap()
        .is_handled());
    let dup = svc.clone().oneshot(event("a", "x")).await.unwrap();
    assert_eq!(dup, Deduped::Duplicate(None));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn in_progress_defers_until_the_claim_expires() {
    let clock = FakeClock::at_unix(1_000);
    let store = store(&clock);
    let key = IdempotencyKey::new("github", "a");
    let held = store
        .claim(&key, &Fingerprint::of(b"x"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(held, Claim::Acquired(_)));
    let (effects, calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let svc = DedupeLayer::new(store.clone()).layer(scripted(
        effects.clone(),
        calls.clone(),
        Script::default(),
    ));
    let err = svc.clone().oneshot(event("a", "x")).await.unwrap_err();
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(1_060);
    assert_eq!(err.kind(), ErrorKind::Deferred { until });
    assert!(err.to_string().contains("being handled elsewhere"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Once the other claim expires, this delivery takes it over and runs.
    clock.set(until);
    assert!(svc.oneshot(event("a", "x")).await.unwrap().is_handled());
    assert_eq!(effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn fingerprint_mismatch_is_permanent_and_does_not_run() {
    let clock = FakeClock::at_unix(1_000);
    let (effects, calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let svc = DedupeLayer::new(store(&clock)).layer(scripted(
        effects.clone(),
        calls.clone(),
        Script::default(),
    ));
    svc.clone().oneshot(event("a", "first")).await.unwrap();
    let err = svc.oneshot(event("a", "second")).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().contains("fingerprint mismatch"), "{err}");
    assert!(err.to_string().contains("github/a"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_panic_releases_the_claim_and_propagates() {
    let clock = FakeClock::at_unix(1_000);
    let store = store(&clock);
    let svc = DedupeLayer::new(store.clone()).layer(service_fn(|_: Event| async {
        if true {
            panic!("handler bug");
        }
        Ok::<(), HandlerError>(())
    }));
    let caught = AssertUnwindSafe(svc.oneshot(event("a", "x")))
        .catch_unwind()
        .await;
    assert!(caught.is_err());
    let again = store
        .claim(
            &IdempotencyKey::new("github", "a"),
            &Fingerprint::of(b"x"),
            LEASE,
        )
        .await
        .unwrap();
    assert!(matches!(again, Claim::Acquired(_)), "{again:?}");
}

/// Wraps a store: fails claims on demand, counts completions and releases (by anyone),
/// and reports each release.
#[derive(Debug)]
struct Watched {
    inner: Arc<MemoryIdempotencyStore>,
    fail_claims: std::sync::atomic::AtomicBool,
    completes: AtomicU32,
    releases: AtomicU32,
    released: tokio::sync::Notify,
}

impl Watched {
    fn over(inner: Arc<MemoryIdempotencyStore>) -> Self {
        Self {
            inner,
            fail_claims: false.into(),
            completes: AtomicU32::new(0),
            releases: AtomicU32::new(0),
            released: tokio::sync::Notify::new(),
        }
    }
}

#[async_trait]
impl IdempotencyStore for Watched {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        if self.fail_claims.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "test",
                std::io::Error::other("disk on fire"),
            ));
        }
        self.inner.claim(key, fingerprint, lease).await
    }
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError> {
        self.completes.fetch_add(1, Ordering::SeqCst);
        self.inner.complete(key, token, result).await
    }
    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.release(key, token).await;
        self.released.notify_one();
        r
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.inner.purge_expired().await
    }
}

/// A watched store and a dedupe layer over a handler that completes its claim itself (as
/// it would inside its own transaction), with a result, then marks it (if `mark`) and
/// returns `outcome`. Also returns the count of handler calls.
fn self_completing(
    mark: bool,
    outcome: fn() -> Result<(), HandlerError>,
) -> (
    Arc<Watched>,
    Arc<AtomicU32>,
    impl Service<Event, Response = Deduped<()>, Error = HandlerError> + Clone,
) {
    let store = Arc::new(Watched::over(Arc::default()));
    let calls = Arc::new(AtomicU32::new(0));
    let (handler_store, handler_calls) = (store.clone(), calls.clone());
    let handler = service_fn(move |event: Event| {
        let (store, calls) = (handler_store.clone(), handler_calls.clone());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let claim = event.claim().expect("the dedupe layer attaches its claim");
            assert_eq!(claim.key(), &IdempotencyKey::new("github", "a"));
            assert!(!claim.is_completed());
            store
                .complete(
                    claim.key(),
                    claim.token(),
                    Some(Bytes::from_static(b"done")),
                )
                .await?;
            if mark {
                claim.mark_completed();
            }
            outcome()
        }
    });
    let svc = DedupeLayer::new(store.clone()).layer(handler);
    (store, calls, svc)
}

#[tokio::test]
async fn a_claim_the_handler_completed_itself_is_left_alone() {
    let (store, calls, svc) = self_completing(true, || Ok(()));
    assert!(svc
        .clone()
        .oneshot(event("a", "x"))
        .await
        .unwrap()
        .is_handled());
    assert_eq!(
        store.completes.load(Ordering::SeqCst),
        1,
        "only the handler completed the claim"
    );
    assert_eq!(store.releases.load(Ordering::SeqCst), 0);
    // The handler's completion (and its result) is what later deliveries see.
    let dup = svc.oneshot(event("a", "x")).await.unwrap();
    assert_eq!(dup, Deduped::Duplicate(Some(Bytes::from_static(b"done"))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unmarked_self_completion_still_counts_as_handled() {
    let (store, calls, svc) = self_completing(false, || Ok(()));
    // The layer completes again, gets ClaimLost, logs it, and still reports success.
    assert!(svc
        .clone()
        .oneshot(event("a", "x"))
        .await
        .unwrap()
        .is_handled());
    assert_eq!(store.completes.load(Ordering::SeqCst), 2);
    let dup = svc.oneshot(event("a", "x")).await.unwrap();
    assert_eq!(dup, Deduped::Duplicate(Some(Bytes::from_static(b"done"))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_marked_claim_is_not_released_when_the_handler_then_fails() {
    let (store, calls, svc) =
        self_completing(true, || Err(HandlerError::retry("failed after the commit")));
    let err = svc.clone().oneshot(event("a", "x")).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(store.releases.load(Ordering::SeqCst), 0);
    // The retry finds the claim completed: the effect is not applied again.
    let dup = svc.oneshot(event("a", "x")).await.unwrap();
    assert_eq!(dup, Deduped::Duplicate(Some(Bytes::from_static(b"done"))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_claim_carries_the_acquired_token() {
    let clock = FakeClock::at_unix(1_000);
    let store = store(&clock);
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let svc = DedupeLayer::new(store.clone()).layer(service_fn(move |event: Event| {
        let sink = sink.clone();
        async move {
            *sink.lock().unwrap() = event.claim().map(|c| (c.key().clone(), c.token()));
            Ok::<_, HandlerError>(())
        }
    }));
    svc.oneshot(event("a", "x")).await.unwrap();
    let (key, token) = seen.lock().unwrap().clone().expect("a claim");
    assert_eq!(key, IdempotencyKey::new("github", "a"));
    // The layer completed with that very token: completing with it again is refused as
    // already completed, and a token one off never matched.
    let again = store.complete(&key, token, None).await.unwrap_err();
    assert!(matches!(again, StoreError::ClaimLost), "{again:?}");
    assert!(matches!(
        store
            .claim(&key, &Fingerprint::of(b"x"), LEASE)
            .await
            .unwrap(),
        Claim::Completed(None)
    ));
}

#[tokio::test]
async fn store_failure_is_retryable_and_a_dropped_handler_releases() {
    let clock = FakeClock::at_unix(1_000);
    let flaky = Arc::new(Watched::over(store(&clock)));
    flaky.fail_claims.store(true, Ordering::SeqCst);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let svc = DedupeLayer::new(flaky.clone()).layer(service_fn(move |_: Event| {
        let started_tx = started_tx.clone();
        async move {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            std::future::pending::<Result<(), HandlerError>>().await
        }
    }));
    let err = svc.clone().oneshot(event("a", "x")).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("could not claim event github/a"),
        "{err}"
    );
    assert!(err.to_string().contains("disk on fire"), "{err}");

    flaky.fail_claims.store(false, Ordering::SeqCst);
    let running = tokio::spawn(svc.oneshot(event("a", "x")));
    started_rx.await.unwrap();
    running.abort();
    flaky.released.notified().await;
    let again = flaky
        .claim(
            &IdempotencyKey::new("github", "a"),
            &Fingerprint::of(b"x"),
            LEASE,
        )
        .await
        .unwrap();
    assert!(matches!(again, Claim::Acquired(_)), "{again:?}");
}
