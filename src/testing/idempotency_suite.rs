//! The [`IdempotencyStore`] conformance suite: one check per clause of the
//! [idempotency contract](crate::store#the-idempotency-contract).
//!
//! Each check is a plain `async fn` taking a [`StoreHarness`];
//! [`store_conformance!`](crate::store_conformance) expands all of them into tests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::queue_suite::{fixture_with, Fixture};
use super::suite::suite;
use super::{start_clock, Settings, StoreHarness};
use crate::store::{
    Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, QueueOptions, StoreError,
};
use crate::Clock;

const LEASE: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);

/// A fresh store keeping completed keys for `retention`; its idempotency store is `store`.
async fn fixture<H: StoreHarness>(h: &H, retention: Duration) -> Claims<H> {
    let settings = Settings {
        clock: start_clock(),
        retention,
    };
    let f = fixture_with(h, QueueOptions::default(), settings).await;
    Claims {
        store: Arc::clone(&f.idempotency),
        clock: f.clock.clone(),
        fixture: f,
    }
}

/// One check's store, with its idempotency store and clock at hand.
struct Claims<H: StoreHarness> {
    store: Arc<H::Idempotency>,
    clock: crate::clock::FakeClock,
    fixture: Fixture<H>,
}

pub(crate) fn key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new("github", id)
}

pub(crate) fn fp(body: &str) -> Fingerprint {
    Fingerprint::of(body.as_bytes())
}

pub(crate) async fn claim(
    s: &impl IdempotencyStore,
    k: &IdempotencyKey,
    body: &str,
    lease: Duration,
) -> Claim {
    match s.claim(k, &fp(body), lease).await {
        Ok(c) => c,
        Err(e) => panic!("claim failed: {e}"),
    }
}

pub(crate) async fn acquire(
    s: &impl IdempotencyStore,
    k: &IdempotencyKey,
    body: &str,
    lease: Duration,
) -> ClaimToken {
    match claim(s, k, body, lease).await {
        Claim::Acquired(t) => t,
        other => panic!("claim of {k:?}: expected Acquired, got {other:?}"),
    }
}

fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

fn assert_claim_lost(what: &str, r: Result<(), StoreError>) {
    assert!(
        matches!(r, Err(StoreError::ClaimLost)),
        "{what} with a token that is not current must fail with ClaimLost, got {r:?}"
    );
}

fn stale(t: ClaimToken) -> ClaimToken {
    ClaimToken(t.0.wrapping_add(1_000_003))
}

async fn race<S: IdempotencyStore>(store: &Arc<S>, k: &IdempotencyKey, n: usize) -> Vec<Claim> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = Arc::clone(store);
            let k = k.clone();
            tokio::spawn(async move { s.claim(&k, &fp("body"), LEASE).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(ok(
            "concurrent claim",
            t.await.expect("claim task panicked"),
        ));
    }
    out
}

suite! {
$ __idempotency_checks, idempotency_suite;

/// Clause 1: an unknown key is `Acquired` with a token; keys are scoped by source and id.
pub async fn claim_of_a_new_key_is_acquired<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let t1 = acquire(s, &key("a"), "body", LEASE).await;
    let t2 = acquire(s, &key("b"), "body", LEASE).await;
    let t3 = acquire(s, &IdempotencyKey::new("stripe", "a"), "body", LEASE).await;
    assert!(
        t1 != t2 && t2 != t3 && t1 != t3,
        "each acquisition gets its own token"
    );
}

/// Clause 1: a live claim makes later claims of the key `InProgress` until its expiry.
pub async fn live_claim_is_in_progress_until_its_expiry<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let expires = f.clock.now() + LEASE;
    acquire(s, &key("a"), "body", LEASE).await;
    assert_eq!(
        claim(s, &key("a"), "body", LEASE).await,
        Claim::InProgress { until: expires }
    );
    f.clock.advance(LEASE - Duration::from_millis(1));
    assert_eq!(
        claim(s, &key("a"), "body", Duration::from_secs(600)).await,
        Claim::InProgress { until: expires },
        "a claim is in progress until its expiry, and a refused claim does not extend it"
    );
}

/// Clause 1: a completed key answers `Completed` with the stored result: bytes, empty bytes
/// and no result are told apart.
pub async fn completed_key_answers_with_its_result<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let results = [
        (
            "with",
            Some(Bytes::from_static(b"{\"charged\":true}\x00\xff")),
        ),
        ("empty", Some(Bytes::new())),
        ("none", None),
    ];
    for (id, result) in &results {
        let t = acquire(s, &key(id), "body", LEASE).await;
        ok("complete", s.complete(&key(id), t, result.clone()).await);
    }
    f.clock.advance(LEASE * 10);
    for (id, result) in results {
        assert_eq!(
            claim(s, &key(id), "body", LEASE).await,
            Claim::Completed(result),
            "a completed key ({id}) must answer its stored result"
        );
    }
}

/// Clause 1: the same key for a different body is `FingerprintMismatch`, in progress and
/// completed, and the mismatched claim changes nothing.
pub async fn fingerprint_mismatch_is_reported<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let t = acquire(s, &key("a"), "original", LEASE).await;
    assert_eq!(
        claim(s, &key("a"), "tampered", LEASE).await,
        Claim::FingerprintMismatch
    );
    ok(
        "complete after a mismatched claim",
        s.complete(&key("a"), t, None).await,
    );
    assert_eq!(
        claim(s, &key("a"), "tampered", LEASE).await,
        Claim::FingerprintMismatch
    );
    assert_eq!(
        claim(s, &key("a"), "original", LEASE).await,
        Claim::Completed(None)
    );
}

/// Clause 2: release forgets the key, so the next claim acquires it (with any body) with a
/// new token.
pub async fn release_lets_the_next_claim_acquire<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let t1 = acquire(s, &key("a"), "one", LEASE).await;
    ok("release", s.release(&key("a"), t1).await);
    let t2 = acquire(s, &key("a"), "two", LEASE).await;
    assert_ne!(t1, t2, "a new acquisition needs a new token");
    assert_claim_lost(
        "release with the released token",
        s.release(&key("a"), t1).await,
    );
    assert_claim_lost(
        "complete with the released token",
        s.complete(&key("a"), t1, None).await,
    );
    ok(
        "complete with the new token",
        s.complete(&key("a"), t2, None).await,
    );
}

/// Clause 2: complete and release succeed only with the current claim's token; otherwise
/// `ClaimLost` and nothing changes.
pub async fn complete_and_release_are_fenced<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let t = acquire(s, &key("a"), "body", LEASE).await;
    assert_claim_lost(
        "complete",
        s.complete(&key("a"), stale(t), Some(Bytes::from_static(b"x")))
            .await,
    );
    assert_claim_lost("release", s.release(&key("a"), stale(t)).await);
    assert!(
        matches!(
            claim(s, &key("a"), "body", LEASE).await,
            Claim::InProgress { .. }
        ),
        "a fenced-off call must leave the claim in progress"
    );
    ok(
        "complete",
        s.complete(&key("a"), t, Some(Bytes::from_static(b"done")))
            .await,
    );
    assert_claim_lost("a second complete", s.complete(&key("a"), t, None).await);
    assert_claim_lost("release after complete", s.release(&key("a"), t).await);
    assert_eq!(
        claim(s, &key("a"), "body", LEASE).await,
        Claim::Completed(Some(Bytes::from_static(b"done"))),
        "a fenced-off call must not change the completed result"
    );
    assert_claim_lost(
        "complete of an unknown key",
        s.complete(&key("nobody"), t, None).await,
    );
    assert_claim_lost(
        "release of an unknown key",
        s.release(&key("nobody"), t).await,
    );
}

/// Clause 1 and 2: an expired in-progress claim is taken over (whatever the body) with a
/// new token, and the old token is fenced off.
pub async fn expired_claim_is_taken_over<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let t1 = acquire(s, &key("a"), "body", LEASE).await;
    f.clock.advance(LEASE + Duration::from_secs(1));
    let t2 = acquire(s, &key("a"), "other body", LEASE).await;
    assert_ne!(t1, t2, "a takeover needs a new token");
    assert_claim_lost(
        "complete by the previous holder",
        s.complete(&key("a"), t1, None).await,
    );
    assert_claim_lost(
        "release by the previous holder",
        s.release(&key("a"), t1).await,
    );
    assert!(matches!(
        claim(s, &key("a"), "other body", LEASE).await,
        Claim::InProgress { .. }
    ));
    ok(
        "complete by the new holder",
        s.complete(&key("a"), t2, None).await,
    );
}

/// Clause 2: a claim past its lease may still be completed or released with its token while
/// nobody has taken it over.
pub async fn expired_claim_can_finish_until_taken_over<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let done = acquire(s, &key("done"), "body", LEASE).await;
    let gone = acquire(s, &key("gone"), "body", LEASE).await;
    f.clock.advance(LEASE + Duration::from_secs(1));
    ok(
        "complete of an expired, untaken claim",
        s.complete(&key("done"), done, None).await,
    );
    ok(
        "release of an expired, untaken claim",
        s.release(&key("gone"), gone).await,
    );
    assert_eq!(
        claim(s, &key("done"), "body", LEASE).await,
        Claim::Completed(None)
    );
    acquire(s, &key("gone"), "body", LEASE).await;
}

/// Clause 3: a completed key is remembered for the retention period and can be acquired
/// again after it.
pub async fn completed_key_is_kept_for_the_retention_period<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let t = acquire(s, &key("a"), "body", LEASE).await;
    f.clock.advance(Duration::from_secs(10));
    ok("complete", s.complete(&key("a"), t, None).await);
    f.clock.advance(HOUR - Duration::from_secs(1));
    assert_eq!(
        claim(s, &key("a"), "body", LEASE).await,
        Claim::Completed(None),
        "the retention period counts from completion"
    );
    f.clock.advance(Duration::from_secs(2));
    let again = acquire(s, &key("a"), "body", LEASE).await;
    assert_ne!(again, t);
}

/// Clause 3: purge removes completed keys past retention and claims expired more than a
/// retention period ago, and nothing else.
pub async fn purge_removes_only_expired_keys<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let old = acquire(s, &key("old"), "body", LEASE).await;
    ok("complete", s.complete(&key("old"), old, None).await);
    acquire(s, &key("abandoned"), "body", LEASE).await;
    f.clock.advance(Duration::from_secs(30 * 60));
    let recent = acquire(s, &key("recent"), "body", LEASE).await;
    ok("complete", s.complete(&key("recent"), recent, None).await);
    acquire(s, &key("live"), "body", 2 * HOUR).await;
    acquire(s, &key("expired-recently"), "body", Duration::from_secs(1)).await;
    f.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        ok("purge", s.purge_expired().await),
        2,
        "old and abandoned are purged"
    );
    assert_eq!(ok("purge again", s.purge_expired().await), 0);
    assert_eq!(
        claim(s, &key("recent"), "body", LEASE).await,
        Claim::Completed(None)
    );
    assert!(matches!(
        claim(s, &key("live"), "body", LEASE).await,
        Claim::InProgress { .. }
    ));
    acquire(s, &key("old"), "other body", LEASE).await;
    acquire(s, &key("abandoned"), "other body", LEASE).await;
    acquire(s, &key("expired-recently"), "body", LEASE).await;
}


/// Clause 1: of many concurrent claims of one key, exactly one is `Acquired`; the others
/// are `InProgress`.
pub async fn concurrent_claims_acquire_once<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    let claims = race(&f.store, &key("hot"), 64).await;
    let acquired = claims
        .iter()
        .filter(|c| matches!(c, Claim::Acquired(_)))
        .count();
    assert_eq!(
        acquired, 1,
        "exactly one concurrent claim may acquire: {claims:?}"
    );
    assert!(
        claims
            .iter()
            .all(|c| matches!(c, Claim::Acquired(_) | Claim::InProgress { .. })),
        "the others must see the claim in progress: {claims:?}"
    );
}

/// Clause 1: of many concurrent claims of an expired claim's key, exactly one takes it over.
pub async fn concurrent_takeovers_acquire_once<H: StoreHarness>(h: &H) {
    let f = fixture(h, HOUR).await;
    acquire(&*f.store, &key("hot"), "body", LEASE).await;
    f.clock.advance(LEASE + Duration::from_secs(1));
    let claims = race(&f.store, &key("hot"), 64).await;
    let acquired = claims
        .iter()
        .filter(|c| matches!(c, Claim::Acquired(_)))
        .count();
    assert_eq!(
        acquired, 1,
        "exactly one concurrent takeover may acquire: {claims:?}"
    );
}

/// Clauses 1 to 3 across a restart (persistent backends only): completed keys and their
/// results, live claims and their tokens survive, and new tokens do not repeat old ones.
pub async fn claims_survive_reopen<H: StoreHarness>(h: &H) {
    if !h.persistent() {
        return;
    }
    let f = fixture(h, HOUR).await;
    let s = &*f.store;
    let t1 = acquire(s, &key("done"), "body", LEASE).await;
    ok(
        "complete",
        s.complete(&key("done"), t1, Some(Bytes::from_static(b"result")))
            .await,
    );
    let t2 = acquire(s, &key("running"), "body", LEASE).await;
    let Claims { store, fixture, .. } = f;
    drop(store);
    let f = fixture.reopen(h).await;
    let s = &*f.idempotency;
    assert_eq!(
        claim(s, &key("done"), "body", LEASE).await,
        Claim::Completed(Some(Bytes::from_static(b"result")))
    );
    assert_eq!(
        claim(s, &key("running"), "other", LEASE).await,
        Claim::FingerprintMismatch,
        "the fingerprint must survive a reopen"
    );
    assert!(matches!(
        claim(s, &key("running"), "body", LEASE).await,
        Claim::InProgress { .. }
    ));
    ok(
        "complete with a token from before the reopen",
        s.complete(&key("running"), t2, None).await,
    );
    let t3 = acquire(s, &key("new"), "body", LEASE).await;
    assert!(
        t3 != t1 && t3 != t2,
        "tokens must not repeat after a reopen"
    );
}
}
