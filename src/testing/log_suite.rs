//! The event log conformance suite: one check per clause of the
//! [event log contract](crate::store#the-event-log-contract), and the retention rules it
//! shares with the queue.
//!
//! Each check is a plain `async fn` taking a [`StoreHarness`];
//! [`store_conformance!`](crate::store_conformance) expands all of them into tests.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::idempotency_suite::{acquire, claim, key};
use super::queue_suite::{enqueue_new, event, fixture, fixture_with, lease, lease_one, ok};
use super::suite::suite;
use super::{start_clock, ClockExt, Settings, StoreHarness};
use crate::event::RawEvent;
use crate::store::{
    Claim, Enqueued, ErrorKind, EventFilter, EventLog, EventStatus, IdempotencyStore, LogEntry,
    MessageId, Origin, Queue, QueueOptions, ReplayJob, ReplayMode, ReplayState, StoreError,
};
use crate::Clock;

const LEASE: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);

/// An event received at `t0 + secs` seconds.
fn at(source: &str, id: &str, secs: u64) -> RawEvent {
    let mut e = event(source, id, "{}");
    e.received_at = t0() + Duration::from_secs(secs);
    e
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_600_000_000)
}

async fn list(q: &impl EventLog, filter: &EventFilter) -> Vec<LogEntry> {
    ok("list", q.list(filter).await).entries
}

async fn ids_of(q: &impl EventLog, filter: &EventFilter) -> Vec<MessageId> {
    list(q, filter).await.iter().map(|e| e.message).collect()
}

async fn entry(q: &impl EventLog, source: &str, id: &str) -> LogEntry {
    match ok("get", q.get(source, id).await) {
        Some(logged) => logged.entry,
        None => panic!("the log must hold ({source}, {id})"),
    }
}

async fn step(q: &impl EventLog, job: &ReplayJob, max: usize) -> ReplayJob {
    ok("step_replay", q.step_replay(job.id, max).await)
}

async fn run_to_end(q: &impl EventLog, job: &ReplayJob, max: usize) -> ReplayJob {
    let mut j = job.clone();
    for _ in 0..10_000 {
        j = step(q, &j, max).await;
        if j.is_over() {
            return j;
        }
    }
    panic!("replay job {} never finished", j.id)
}

/// Stores `n` events of `github` (ids `e-0`..) and handles them all; returns their ids.
async fn handled(q: &impl Queue, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(enqueue_new(q, at("github", &format!("e-{i}"), i as u64)).await);
    }
    for l in lease(q, n).await {
        ok("ack", q.ack(&l.lease).await);
    }
    ids
}

suite! {
$ __log_checks, log_suite;

/// Clauses 1 and 2: every stored event is listed, newest first, with its source, id, type,
/// origin, receipt time, body length, and status pending with no history.
pub async fn every_stored_event_is_listed_newest_first<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let a = enqueue_new(q, at("github", "a", 0).with_event_type("push")).await;
    let b = enqueue_new(q, at("stripe", "b", 1).with_origin(Origin::Reconciliation)).await;
    let c = enqueue_new(q, at("github", "c", 2)).await;
    let all = list(q, &EventFilter::all()).await;
    let ids: Vec<_> = all.iter().map(|e| e.message).collect();
    assert_eq!(ids, vec![c, b, a], "newest (largest message id) first");
    let first = &all[2];
    assert_eq!((first.source.as_str(), first.event_id.as_str()), ("github", "a"));
    assert_eq!(first.event_type.as_ref().map(|t| t.as_str()), Some("push"));
    assert_eq!(first.origin, Origin::Push);
    assert_eq!(first.received_at, t0());
    assert_eq!(first.status, EventStatus::Pending);
    assert_eq!(first.attempts, 0);
    assert_eq!(first.body_bytes, 2);
    assert_eq!((first.first_attempt_at, first.last_attempt_at, first.done_at), (None, None, None));
    assert_eq!((first.replays, first.forced_replays), (0, 0));
    assert_eq!(all[1].origin, Origin::Reconciliation, "origin is stored");
    assert_eq!(all[1].event_type, None);
}

/// Clause 2: the history follows the event: leases set the attempt times, a retry makes it
/// retrying with its error, an ack makes it succeeded with its done time, a dead letter makes
/// it dead with the reason as its last error.
pub async fn history_follows_the_event<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, at("github", "ok", 0)).await;
    enqueue_new(q, at("github", "bad", 1)).await;
    let first = f.clock.now();
    let batch = lease(q, 2).await;
    assert_eq!(batch.len(), 2);
    let e = entry(q, "github", "ok").await;
    assert_eq!(e.status, EventStatus::Leased);
    assert_eq!((e.first_attempt_at, e.last_attempt_at), (Some(first), Some(first)));
    for l in &batch {
        ok("retry", q.retry(&l.lease, f.clock.now(), "upstream 502").await);
    }
    let e = entry(q, "github", "ok").await;
    assert_eq!(e.status, EventStatus::Retrying, "a failed attempt waiting again");
    assert_eq!(e.last_error.as_deref(), Some("upstream 502"));
    assert_eq!(e.attempts, 1);
    f.clock.advance(Duration::from_secs(5));
    let second = f.clock.now();
    for l in lease(q, 2).await {
        if l.event.id.as_str() == "ok" {
            ok("ack", q.ack(&l.lease).await);
        } else {
            ok("dead_letter", q.dead_letter(&l.lease, "no such customer").await);
        }
    }
    let e = entry(q, "github", "ok").await;
    assert_eq!(e.status, EventStatus::Succeeded);
    assert_eq!(e.attempts, 2);
    assert_eq!(e.first_attempt_at, Some(first), "the first attempt time is kept");
    assert_eq!(e.last_attempt_at, Some(second));
    assert_eq!(e.done_at, Some(second));
    let d = entry(q, "github", "bad").await;
    assert_eq!(d.status, EventStatus::Dead);
    assert_eq!(d.last_error.as_deref(), Some("no such customer"));
    assert_eq!(d.done_at, Some(second));
}

/// Clause 3: keyset pages walk every entry exactly once, newest first, and the last page
/// has no cursor.
pub async fn pages_walk_every_entry_once<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let mut stored = Vec::new();
    for i in 0..23 {
        stored.push(enqueue_new(q, at("github", &format!("p-{i}"), i)).await);
    }
    let mut seen = Vec::new();
    let mut filter = EventFilter::all().limit(5);
    let mut pages = 0;
    loop {
        let page = ok("list", q.list(&filter).await);
        pages += 1;
        assert!(page.entries.len() <= 5, "a page holds at most its limit");
        seen.extend(page.entries.iter().map(|e| e.message));
        match page.next {
            Some(next) => filter = filter.before(next),
            None => break,
        }
        assert!(pages < 50, "paging must end");
    }
    assert_eq!(pages, 5);
    stored.reverse();
    assert_eq!(seen, stored, "every entry once, newest first");
    let big = ok("list", q.list(&EventFilter::all().limit(1_000_000)).await);
    assert_eq!(big.entries.len(), 23, "a large limit is clamped, not refused");
}

/// Clause 3: the filter's conditions combine: source, id, type, status, origin and a
/// receipt-time range (from inclusive, until exclusive).
pub async fn filters_combine<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let push = enqueue_new(q, at("github", "g0", 0).with_event_type("push")).await;
    let issue = enqueue_new(q, at("github", "g1", 10).with_event_type("issues")).await;
    let pay = enqueue_new(q, at("stripe", "s0", 20).with_event_type("invoice.paid")).await;
    let rec = enqueue_new(
        q,
        at("stripe", "s1", 30)
            .with_event_type("invoice.paid")
            .with_origin(Origin::Reconciliation),
    )
    .await;
    // g0 succeeds, s0 goes dead; g1 and s1 stay pending.
    for l in lease(q, 3).await {
        match l.event.id.as_str() {
            "g0" => ok("ack", q.ack(&l.lease).await),
            "s0" => ok("dead", q.dead_letter(&l.lease, "bad").await),
            _ => ok("defer", q.defer(&l.lease, f.clock.now()).await),
        }
    }
    let cases: Vec<(EventFilter, Vec<MessageId>, &str)> = vec![
        (EventFilter::all().source("github"), vec![issue, push], "source"),
        (EventFilter::event("stripe", "s1"), vec![rec], "one event"),
        (EventFilter::all().event_type("invoice.paid"), vec![rec, pay], "type"),
        (EventFilter::all().status(EventStatus::Succeeded), vec![push], "succeeded"),
        (EventFilter::all().status(EventStatus::Dead), vec![pay], "dead"),
        (EventFilter::all().status(EventStatus::Pending), vec![rec, issue], "pending"),
        (EventFilter::all().origin(Origin::Reconciliation), vec![rec], "origin"),
        (
            EventFilter::all()
                .received_from(t0() + Duration::from_secs(10))
                .received_until(t0() + Duration::from_secs(30)),
            vec![pay, issue],
            "time range",
        ),
        (
            EventFilter::all().source("stripe").status(EventStatus::Pending),
            vec![rec],
            "source and status",
        ),
        (EventFilter::all().source("gitlab"), vec![], "nothing"),
    ];
    for (filter, want, what) in cases {
        assert_eq!(ids_of(q, &filter).await, want, "filter by {what}");
        let counted = ok("counts", q.counts(&filter).await).total();
        assert_eq!(counted, want.len() as u64, "counts honour the filter ({what})");
    }
}

/// Clause 4: get returns the body and headers exactly as stored; an unknown key, and a key
/// that was only claimed (no event stored), are not in the log.
pub async fn get_returns_the_exact_bytes<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    let body = Bytes::from_static(b"{\"a\":1}\r\n\x00\xff binary tail");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("x-github-event", HeaderValue::from_static("push"));
    let e = RawEvent::new("github", "raw", t0(), body.clone())
        .with_headers(headers.clone())
        .with_event_type("push");
    let id = enqueue_new(q, e).await;
    let Some(got) = ok("get", q.get("github", "raw").await) else {
        panic!("a stored event must be found by (source, id)");
    };
    assert_eq!(got.entry.message, id);
    assert_eq!(got.event.body, body, "byte for byte");
    assert_eq!(got.event.headers, headers);
    assert_eq!(got.event.event_type.as_ref().map(|t| t.as_str()), Some("push"));
    assert_eq!(got.entry.body_bytes, body.len() as u64);
    assert!(ok("get", q.get("github", "nope").await).is_none());
    assert!(ok("get", q.get("stripe", "raw").await).is_none(), "the source is part of the key");
    acquire(s, &key("only-claimed"), "{}", LEASE).await;
    assert!(ok("get", q.get("github", "only-claimed").await).is_none(), "a claim is not an event");
    assert_eq!(ids_of(q, &EventFilter::all()).await, vec![id], "claims are never listed");
    assert_eq!(ok("counts", q.counts(&EventFilter::all()).await).total(), 1);
}

/// Clause 5: counts group by source, type and status, and give the receipt time of the
/// oldest event waiting (pending or retrying; not leased, not settled).
pub async fn counts_group_and_find_the_oldest_waiting<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    assert_eq!(ok("counts", q.counts(&EventFilter::all()).await).oldest_pending, None);
    enqueue_new(q, at("github", "a", 0).with_event_type("push")).await;
    enqueue_new(q, at("github", "b", 5).with_event_type("push")).await;
    enqueue_new(q, at("github", "c", 9).with_event_type("issues")).await;
    enqueue_new(q, at("stripe", "d", 7)).await;
    // The oldest (a) is leased and acked; b fails once and waits: b is the oldest waiting.
    let batch = lease(q, 2).await;
    for l in &batch {
        match l.event.id.as_str() {
            "a" => ok("ack", q.ack(&l.lease).await),
            _ => ok("retry", q.retry(&l.lease, f.clock.now_plus(HOUR), "later").await),
        }
    }
    let c = ok("counts", q.counts(&EventFilter::all()).await);
    assert_eq!(c.total(), 4);
    let find = |source: &str, kind: Option<&str>, status| {
        c.groups
            .iter()
            .find(|g| g.source == source && g.event_type.as_deref() == kind && g.status == status)
            .map(|g| g.count)
    };
    assert_eq!(find("github", Some("push"), EventStatus::Succeeded), Some(1));
    assert_eq!(find("github", Some("push"), EventStatus::Retrying), Some(1));
    assert_eq!(find("github", Some("issues"), EventStatus::Pending), Some(1));
    assert_eq!(find("stripe", None, EventStatus::Pending), Some(1));
    assert_eq!(c.groups.len(), 4, "one row per group");
    assert_eq!(c.with_status(EventStatus::Pending), 2);
    assert_eq!(c.oldest_pending, Some(t0() + Duration::from_secs(5)), "b waits longest");
}

/// Retention: a handled event stays in the log with its bytes for the retention period
/// (a resend is a duplicate), then the purge forgets it and a resend is new.
pub async fn handled_events_stay_for_the_retention_then_go<H: StoreHarness>(h: &H) {
    let clock = start_clock();
    let settings = Settings { clock: clock.clone(), retention: 7 * 24 * HOUR };
    let f = fixture_with(h, QueueOptions::default(), settings).await;
    let q = &*f.queue;
    let id = enqueue_new(q, at("github", "kept", 0)).await;
    ok("ack", q.ack(&lease_one(q).await.lease).await);
    f.clock.advance(7 * 24 * HOUR - Duration::from_secs(1));
    ok("purge", q.purge_expired().await);
    assert_eq!(entry(q, "github", "kept").await.status, EventStatus::Succeeded);
    let body = ok("get", q.get("github", "kept").await).map(|l| l.event.body);
    assert_eq!(body.as_deref(), Some(&b"{}"[..]), "the bytes are kept too");
    assert_eq!(
        ok("resend", q.enqueue(at("github", "kept", 0)).await),
        Enqueued::Duplicate(id),
        "a resend within the window is a duplicate"
    );
    assert_eq!(ids_of(q, &EventFilter::all()).await, vec![id], "and stores nothing");
    f.clock.advance(Duration::from_secs(1));
    let mut purged = 0;
    loop {
        let n = ok("purge", q.purge_expired().await);
        if n == 0 {
            break;
        }
        purged += n;
    }
    assert_eq!(purged, 1);
    assert!(ok("get", q.get("github", "kept").await).is_none(), "purged after the window");
    assert!(ids_of(q, &EventFilter::all()).await.is_empty());
    assert!(matches!(ok("resend", q.enqueue(at("github", "kept", 0)).await), Enqueued::New(_)));
}

/// Retention zero: an event is forgotten when it is acked.
pub async fn zero_retention_forgets_at_ack<H: StoreHarness>(h: &H) {
    let clock = start_clock();
    let settings = Settings { clock: clock.clone(), retention: Duration::ZERO };
    let f = fixture_with(h, QueueOptions::default(), settings).await;
    let q = &*f.queue;
    enqueue_new(q, at("github", "gone", 0)).await;
    enqueue_new(q, at("github", "waits", 1)).await;
    let l = lease(q, 1).await.remove(0);
    ok("ack", q.ack(&l.lease).await);
    ok("purge", q.purge_expired().await);
    let left: Vec<_> = list(q, &EventFilter::all()).await.into_iter().map(|e| e.event_id.into_string()).collect();
    assert_eq!(left, vec!["waits".to_owned()], "the acked event is gone, the waiting one stays");
    assert!(matches!(ok("resend", q.enqueue(at("github", "gone", 0)).await), Enqueued::New(_)));
}

/// Clause 6: a replay through dedupe makes settled events (succeeded, dead) ready again
/// with their bytes and id, as origin replay, and leaves the others alone (skipped); the
/// completed claim is kept, so the dedupe layer skips what completed.
pub async fn replay_readies_settled_events_only<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    for (id, secs) in [("done", 0), ("dead", 1), ("running", 2), ("waiting", 3)] {
        enqueue_new(q, at("github", id, secs)).await;
    }
    let t = acquire(s, &key("done"), "{}", LEASE).await;
    ok("complete", s.complete(&key("done"), t, None).await);
    let batch = lease(q, 2).await;
    for l in &batch {
        match l.event.id.as_str() {
            "done" => ok("ack", q.ack(&l.lease).await),
            _ => ok("dead", q.dead_letter(&l.lease, "boom").await),
        }
    }
    let running = lease_one(q).await;
    assert_eq!(running.event.id.as_str(), "running");
    let job = ok("create", q.create_replay(&EventFilter::all(), ReplayMode::Dedupe).await);
    assert_eq!(job.state, ReplayState::Running);
    assert_eq!(job.total, 4);
    let job = run_to_end(q, &job, 100).await;
    assert_eq!(job.state, ReplayState::Finished);
    assert_eq!((job.replayed, job.skipped), (2, 2), "settled replayed, the others skipped");
    for id in ["done", "dead"] {
        let e = entry(q, "github", id).await;
        assert_eq!(e.status, EventStatus::Pending, "{id} is ready again");
        assert_eq!(e.origin, Origin::Replay);
        assert_eq!((e.replays, e.forced_replays, e.attempts), (1, 0, 0));
        assert_eq!((e.done_at, e.last_error), (None, None), "{id}: a fresh history");
    }
    assert_eq!(entry(q, "github", "waiting").await.replays, 0);
    assert_eq!(
        claim(s, &key("done"), "{}", LEASE).await,
        Claim::Completed(None),
        "through dedupe, the completed claim stays"
    );
    let leased = lease(q, 10).await;
    let mut got: Vec<_> = leased.iter().map(|l| l.event.id.as_str().to_owned()).collect();
    got.sort();
    assert!(got.contains(&"done".to_owned()) && got.contains(&"dead".to_owned()), "{got:?}");
    let replayed = leased.iter().find(|l| l.event.id.as_str() == "dead").map(|l| (&l.event.body, l.attempt, l.event.origin));
    assert_eq!(replayed, Some((&Bytes::from_static(b"{}"), 1, Origin::Replay)), "original bytes, attempt 1");
    assert!(got.contains(&"waiting".to_owned()), "{got:?}");
    assert!(!got.contains(&"running".to_owned()), "a live lease is left alone");
    assert_eq!(entry(q, "github", "running").await.status, EventStatus::Leased);
}

/// Clause 6: a forced replay resets the completed claim, so the next claim acquires it,
/// and the entry counts it.
pub async fn forced_replay_resets_the_claim<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let (q, s) = (&*f.queue, &*f.idempotency);
    enqueue_new(q, at("github", "fix-me", 0)).await;
    let l = lease_one(q).await;
    let t = acquire(s, &key("fix-me"), "{}", LEASE).await;
    ok("complete", s.complete(&key("fix-me"), t, None).await);
    ok("ack", q.ack(&l.lease).await);
    let job = ok("create", q.create_replay(&EventFilter::event("github", "fix-me"), ReplayMode::Forced).await);
    let job = run_to_end(q, &job, 10).await;
    assert_eq!((job.replayed, job.skipped), (1, 0));
    let e = entry(q, "github", "fix-me").await;
    assert_eq!((e.replays, e.forced_replays), (1, 1), "the log says it was forced");
    assert_eq!(e.status, EventStatus::Pending);
    assert!(
        matches!(claim(s, &key("fix-me"), "{}", LEASE).await, Claim::Acquired(_)),
        "a forced replay resets the claim: the handler runs again"
    );
}

/// Clause 6: a job walks its events oldest first in bounded batches, each event once; it
/// survives a reopen; events stored after it was created are not selected; a finished job
/// steps no more.
pub async fn jobs_walk_in_batches_and_survive_a_reopen<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let ids = handled(&*f.queue, 10).await;
    let job = ok("create", f.queue.create_replay(&EventFilter::all(), ReplayMode::Dedupe).await);
    assert_eq!((job.total, job.through), (10, ids.last().copied()));
    let job = step(&*f.queue, &job, 3).await;
    assert_eq!((job.replayed, job.after, job.state), (3, Some(ids[2]), ReplayState::Running));
    let f = if h.persistent() { f.reopen(h).await } else { f };
    let q = &*f.queue;
    let running = ok("replay_jobs", q.replay_jobs(true).await);
    assert_eq!(running.iter().map(|j| j.id).collect::<Vec<_>>(), vec![job.id], "the job is still running");
    assert_eq!(running[0].after, Some(ids[2]), "with its cursor");
    enqueue_new(q, at("github", "late", 99)).await;
    let job = run_to_end(q, &running[0], 3).await;
    assert_eq!((job.replayed, job.skipped), (10, 0));
    assert_eq!(job.done(), 10);
    for i in 0..10 {
        assert_eq!(entry(q, "github", &format!("e-{i}")).await.replays, 1, "e-{i} replayed once");
    }
    assert_eq!(entry(q, "github", "late").await.replays, 0, "stored after the job: not selected");
    let again = step(q, &job, 3).await;
    assert_eq!(again, job, "a finished job is returned unchanged");
    assert!(ok("replay_jobs", q.replay_jobs(true).await).is_empty());
    let all = ok("replay_jobs", q.replay_jobs(false).await);
    assert_eq!(all.len(), 1);
    assert_eq!(ok("replay_job", q.replay_job(job.id).await), Some(job));
}

/// Clause 6: a cancelled job never steps; an unknown job is invalid input; a job over an
/// empty selection is finished at once.
pub async fn jobs_cancel_and_unknown_jobs_are_refused<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    handled(q, 4).await;
    let job = ok("create", q.create_replay(&EventFilter::all(), ReplayMode::Forced).await);
    let job = step(q, &job, 1).await;
    let cancelled = ok("cancel", q.cancel_replay(job.id).await).map(|j| j.state);
    assert_eq!(cancelled, Some(ReplayState::Cancelled));
    let after = step(q, &job, 10).await;
    assert_eq!((after.state, after.replayed), (ReplayState::Cancelled, 1), "a cancelled job does nothing");
    let replayed: u32 = list(q, &EventFilter::all()).await.iter().map(|e| e.replays).sum();
    assert_eq!(replayed, 1);
    let unknown = crate::store::ReplayJobId(job.id.0 + 1000);
    match q.step_replay(unknown, 10).await {
        Err(e @ StoreError::UnknownReplayJob(_)) => assert_eq!(e.kind(), ErrorKind::InvalidInput),
        other => panic!("stepping an unknown job must be refused, got {other:?}"),
    }
    assert_eq!(ok("replay_job", q.replay_job(unknown).await), None);
    assert_eq!(ok("cancel", q.cancel_replay(unknown).await), None);
    let empty = ok("create", q.create_replay(&EventFilter::all().source("gitlab"), ReplayMode::Dedupe).await);
    assert_eq!((empty.total, empty.state), (0, ReplayState::Finished));
}

/// Clause 6: replaying dead letters through the queue marks them like a job does.
pub async fn dead_letter_replay_is_logged<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    enqueue_new(q, at("github", "d", 0)).await;
    ok("dead", q.dead_letter(&lease_one(q).await.lease, "boom").await);
    assert_eq!(ok("replay", q.replay(&crate::store::DeadLetterFilter::all()).await), 1);
    let e = entry(q, "github", "d").await;
    assert_eq!((e.status, e.origin, e.replays), (EventStatus::Pending, Origin::Replay, 1));
}

/// A leased event carries the type and origin it was stored with.
pub async fn leased_events_keep_type_and_origin<H: StoreHarness>(h: &H) {
    let f = fixture(h, QueueOptions::default()).await;
    let q = &*f.queue;
    let e = at("stripe", "evt_1", 0)
        .with_event_type("invoice.paid")
        .with_origin(Origin::Reconciliation);
    enqueue_new(q, e).await;
    let l = lease_one(q).await;
    assert_eq!(l.event.event_type.as_ref().map(|t| t.as_str()), Some("invoice.paid"));
    assert_eq!(l.event.origin, Origin::Reconciliation);
    let seen: HashSet<_> = list(q, &EventFilter::all().origin(Origin::Reconciliation)).await.into_iter().map(|e| e.message).collect();
    assert_eq!(seen, HashSet::from([l.lease.message]));
}
}
