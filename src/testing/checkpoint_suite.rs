//! The checkpoint conformance suite: one check per promise of the
//! [`CheckpointStore`] contract (checkpoints, reports, one leader per name).
//!
//! Each check is a plain `async fn` taking a [`StoreHarness`];
//! [`store_conformance!`](crate::store_conformance) expands all of them into tests. The
//! harness's queue is the checkpoint store, as with every backend of this crate.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::queue_suite::{fixture, ok};
use super::suite::suite;
use super::StoreHarness;
use crate::reconcile::{Gap, PassReport};
use crate::store::{CheckpointStore, QueueOptions, StoreError};

/// How many tasks race for one leadership.
const RACERS: usize = 16;

/// A time with microseconds, as every backend must keep them.
fn at(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + micros.unsigned_abs())
}

/// A report of `source` with every field set to something distinct, gaps included.
fn report(source: &str, n: u64) -> PassReport {
    PassReport {
        source: source.to_owned(),
        started_at: at(123_456 + n as i64),
        duration: Duration::from_millis(1_500 + n),
        since: at(7),
        until: at(999_999_999),
        pages: 3 + n,
        seen: 250 + n,
        known: 240,
        recovered: 7,
        redeliveries: 2,
        gaps: vec![
            Gap {
                from: at(1),
                to: at(2_000_001),
            },
            Gap {
                from: at(3_000_000),
                to: at(3_000_017),
            },
        ],
        rate_limited: 4,
        retries: 1 + n,
        refused: 5 + n,
        error: (n % 2 == 1).then(|| format!("page {n}: upstream said 503 — «try later» ✗")),
    }
}

async fn load(s: &impl CheckpointStore, name: &str) -> Option<String> {
    ok("checkpoint", s.checkpoint(name).await)
}

async fn save(s: &impl CheckpointStore, name: &str, value: &str) {
    ok("save_checkpoint", s.save_checkpoint(name, value).await);
}

async fn reports(s: &impl CheckpointStore) -> Vec<PassReport> {
    ok("reports", s.reports().await)
}

fn assert_invalid<T: std::fmt::Debug>(what: &str, name: &str, r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Invalid(_))),
        "{what} with the invalid name {name:?} must fail with StoreError::Invalid, got {r:?}"
    );
}

/// A 64 KiB checkpoint of one- to four-byte characters.
fn large_value() -> String {
    let pattern = "{\"cursor\":\"evt_ä€😀\\u0000\",\"n\":42}";
    let mut s = String::with_capacity(64 * 1024 + pattern.len());
    while s.len() < 64 * 1024 {
        s.push_str(pattern);
    }
    s
}

suite! {
$ __checkpoint_checks, checkpoint_suite;

/// Promise 1: a checkpoint comes back byte for byte, whatever it holds: empty, JSON,
/// characters of every width, control characters and NUL, 64 KiB.
pub async fn checkpoint_round_trips_exactly<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let s = &*f.queue;
    let values = [
        String::new(),
        "{\"page\":\"cursor_123\",\"since\":1700000000123456}".to_owned(),
        "Zürich — 東京 — 🎉 — \u{10FFFF}".to_owned(),
        "tab\there\nnew line\r\u{1}\u{7f}".to_owned(),
        "before\0after".to_owned(),
        "  leading and trailing spaces  ".to_owned(),
        large_value(),
    ];
    for (i, value) in values.iter().enumerate() {
        let name = format!("source-{i}");
        save(s, &name, value).await;
        let back = load(s, &name).await;
        assert!(
            back.as_deref() == Some(value.as_str()),
            "checkpoint {i} ({} bytes) must come back byte for byte; got {:?} bytes",
            value.len(),
            back.map(|b| b.len())
        );
    }
    // All of them still, once every one is written.
    for (i, value) in values.iter().enumerate() {
        assert!(
            load(s, &format!("source-{i}")).await.as_deref() == Some(value.as_str()),
            "checkpoint {i} must be unchanged by the saves of other names"
        );
    }
}

/// Promise 1: saving again replaces the checkpoint; the last value saved is the one read,
/// also after a longer one.
pub async fn overwrite_keeps_the_last<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let s = &*f.queue;
    save(s, "stripe", "first").await;
    save(s, "stripe", &large_value()).await;
    save(s, "stripe", "third, shorter").await;
    assert_eq!(load(s, "stripe").await.as_deref(), Some("third, shorter"));
    for n in 0..20 {
        save(s, "stripe", &format!("{{\"n\":{n}}}")).await;
    }
    assert_eq!(load(s, "stripe").await.as_deref(), Some("{\"n\":19}"));
}

/// Promise 2: names are independent; a name never saved has no checkpoint; names differing
/// only in case or by a prefix are different names.
pub async fn names_are_independent<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let s = &*f.queue;
    assert_eq!(load(s, "stripe").await, None, "a name never saved has no checkpoint");
    save(s, "stripe", "s").await;
    save(s, "Stripe", "S").await;
    save(s, "stripe-eu", "eu").await;
    save(s, "github", "g").await;
    assert_eq!(load(s, "stripe").await.as_deref(), Some("s"));
    assert_eq!(load(s, "Stripe").await.as_deref(), Some("S"));
    assert_eq!(load(s, "stripe-eu").await.as_deref(), Some("eu"));
    assert_eq!(load(s, "github").await.as_deref(), Some("g"));
    assert_eq!(load(s, "strip").await, None, "a prefix of a saved name is another name");
    assert_eq!(load(s, "paddle").await, None);
    // A report saved under a name leaves its checkpoint alone, and the other way round.
    ok("save_report", s.save_report(&report("github", 0)).await);
    assert_eq!(
        load(s, "github").await.as_deref(),
        Some("g"),
        "a report must not clear the checkpoint"
    );
    save(s, "github", "g2").await;
    assert_eq!(reports(s).await, [report("github", 0)], "a checkpoint must not clear the report");
    assert!(
        reports(s).await.iter().all(|r| r.source == "github"),
        "names with only a checkpoint have no report"
    );
}

/// Promise 2: a name that breaks the source rules (empty, a control character, too long)
/// is refused by every call with `StoreError::Invalid`, and nothing is stored.
pub async fn invalid_names_are_refused<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let s = &*f.queue;
    let long = "s".repeat(crate::store::key::MAX_SOURCE_LEN + 1);
    for name in ["", "new\nline", "nul\0", "del\u{7f}", long.as_str()] {
        assert_invalid("checkpoint", name, s.checkpoint(name).await);
        assert_invalid("save_checkpoint", name, s.save_checkpoint(name, "x").await);
        assert_invalid("save_report", name, s.save_report(&report(name, 0)).await);
        assert_invalid("try_lead", name, s.try_lead(name).await);
    }
    assert!(reports(s).await.is_empty(), "nothing is stored for an invalid name");
    let longest = "s".repeat(crate::store::key::MAX_SOURCE_LEN);
    save(s, &longest, "ok").await;
    assert_eq!(
        load(s, &longest).await.as_deref(),
        Some("ok"),
        "a name of the longest length is valid"
    );
}

/// Promise 3: the last report of each source, every field as saved (times to the
/// microsecond, the duration to the millisecond, gaps, the error), listed by name.
pub async fn reports_keep_the_last_per_source_by_name<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let s = &*f.queue;
    assert!(reports(s).await.is_empty(), "no report before any is saved");
    let saves = [
        ("stripe", 0),
        ("github", 0),
        ("stripe", 1),
        ("Zeta", 0),
        ("äpfel", 0),
        ("github", 2),
        ("a-b", 0),
        ("a", 0),
    ];
    for (source, n) in saves {
        ok("save_report", s.save_report(&report(source, n)).await);
    }
    let got = reports(s).await;
    // Byte order, as Rust orders strings: upper case before lower case, ASCII before 'ä'.
    let names: Vec<&str> = got.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(
        names,
        ["Zeta", "a", "a-b", "github", "stripe", "äpfel"],
        "one report per source, by name"
    );
    let expected = [
        report("Zeta", 0),
        report("a", 0),
        report("a-b", 0),
        report("github", 2),
        report("stripe", 1),
        report("äpfel", 0),
    ];
    for (got, want) in got.iter().zip(&expected) {
        assert_eq!(got, want, "the last report of {} must round-trip every field", want.source);
    }
    // A report with no gaps and no error, zero counts and a zero duration round-trips too.
    let mut empty = report("stripe", 0);
    empty.gaps.clear();
    empty.error = None;
    empty.duration = Duration::ZERO;
    (empty.pages, empty.seen, empty.known, empty.recovered) = (0, 0, 0, 0);
    ok("save_report", s.save_report(&empty).await);
    let got = reports(s).await;
    assert_eq!(got.len(), 6);
    assert_eq!(got[4], empty, "a report replaces the source's last one, gaps and error included");
}

/// Promise 4: a held leadership excludes every other `try_lead` of its name, holds while
/// held, and once dropped the next `try_lead` takes it; other names are independent.
pub async fn try_lead_is_exclusive<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let s = &*f.queue;
    let first = ok("try_lead", s.try_lead("stripe").await);
    let Some(first) = first else {
        panic!("nobody leads stripe: try_lead must take it");
    };
    assert!(first.holds().await, "a leadership just taken holds");
    assert!(
        ok("try_lead", s.try_lead("stripe").await).is_none(),
        "a second try_lead while the leadership is held must get None"
    );
    let other = ok("try_lead", s.try_lead("github").await);
    assert!(other.is_some(), "leading stripe must not keep anyone from leading github");
    assert!(first.holds().await, "a refused try_lead leaves the leader holding");
    drop(first);
    let again = ok("try_lead", s.try_lead("stripe").await);
    let Some(again) = again else {
        panic!("after the leadership is dropped, the next try_lead must take it");
    };
    assert!(again.holds().await);
    assert!(ok("try_lead", s.try_lead("stripe").await).is_none());
    drop((again, other));
}

/// Promise 4 under contention: of 16 concurrent `try_lead`s of one name, exactly one wins.
pub async fn one_of_concurrent_try_leads_wins<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let (s, barrier) = (Arc::clone(&f.queue), Arc::clone(&barrier));
        tasks.spawn(async move {
            barrier.wait().await;
            ok("try_lead", s.try_lead("stripe").await)
        });
    }
    // Every result is kept until all are in, so no winner lets go early.
    let mut held = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(leadership) => held.push(leadership),
            Err(e) => panic!("a try_lead task failed: {e}"),
        }
    }
    let winners = held.iter().filter(|l| l.is_some()).count();
    assert_eq!(winners, 1, "exactly one of {RACERS} concurrent try_leads must lead");
    drop(held);
    assert!(
        ok("try_lead", f.queue.try_lead("stripe").await).is_some(),
        "once the winner let go the source can be led again"
    );
}

/// Promise 1 on a store that survives a restart: checkpoints and reports are there after a
/// close and a reopen, and no leadership outlives the store that held it.
pub async fn checkpoints_survive_reopen<H: StoreHarness>(h: &H) {
    if !h.persistent() {
        return;
    }
    let f = fixture(h, QueueOptions::default()).await;
    save(&*f.queue, "stripe", &large_value()).await;
    save(&*f.queue, "github", "{\"at\":\"ü\"}").await;
    ok("save_report", f.queue.save_report(&report("stripe", 1)).await);
    let held = ok("try_lead", f.queue.try_lead("stripe").await);
    assert!(held.is_some());
    drop(held);
    let f = f.reopen(h).await;
    let s = &*f.queue;
    assert!(
        load(s, "stripe").await.as_deref() == Some(large_value().as_str()),
        "the checkpoint must survive a reopen"
    );
    assert_eq!(load(s, "github").await.as_deref(), Some("{\"at\":\"ü\"}"));
    assert_eq!(reports(s).await, [report("stripe", 1)], "the report must survive a reopen");
    assert!(ok("try_lead", s.try_lead("stripe").await).is_some(), "a reopened store leads afresh");
}
}
