//! The reconciler over the memory backend and an in-test source: windows and their overlap,
//! a checkpoint per page and the resume after a stop, gaps beyond the horizon, rate limits
//! and backoff, redeliveries, leadership, reports and the recovery-rate alert.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hookdock::alert::{Alert, Alerts};
use hookdock::reconcile::{
    Change, ChangeSource, FetchedEvent, Page, PassOutcome, PassReport, PollError, PollRequest,
    Reconciler,
};
use hookdock::store::{
    CheckpointStore, EventFilter, EventLog, MemoryQueue, MemoryStore, Origin, Queue, QueueOptions,
};
use hookdock::testing::FakeClock;
use hookdock::RawEvent;

const DAY: Duration = Duration::from_secs(86_400);

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Events `(id, created)` listed newest first, `limit` a page, the cursor the index of the
/// next one; answers queued in `script` come before the real ones.
struct ListSource {
    events: Vec<(String, SystemTime)>,
    horizon: Duration,
    redeliver: bool,
    script: Mutex<VecDeque<Option<PollError>>>,
    polls: Mutex<Vec<Option<String>>>,
    redelivered: Mutex<Vec<String>>,
}

impl ListSource {
    fn new(mut events: Vec<(String, SystemTime)>) -> Self {
        events.sort_by_key(|e| std::cmp::Reverse(e.1));
        Self {
            events,
            horizon: 30 * DAY,
            redeliver: false,
            script: Mutex::new(VecDeque::new()),
            polls: Mutex::new(Vec::new()),
            redelivered: Mutex::new(Vec::new()),
        }
    }

    /// The next poll fails with `error` (after those queued before it).
    fn then(&self, error: PollError) {
        self.script.lock().unwrap().push_back(Some(error));
    }

    /// The next poll is answered as usual (after those queued before it).
    fn then_ok(&self) {
        self.script.lock().unwrap().push_back(None);
    }

    fn polls(&self) -> Vec<Option<String>> {
        self.polls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ChangeSource for ListSource {
    fn name(&self) -> &str {
        "list"
    }

    fn horizon(&self) -> Duration {
        self.horizon
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        self.polls
            .lock()
            .unwrap()
            .push(request.cursor.map(str::to_owned));
        if let Some(Some(error)) = self.script.lock().unwrap().pop_front() {
            return Err(error);
        }
        let start: usize = request.cursor.map_or(0, |c| c.parse().unwrap());
        let in_window: Vec<_> = self
            .events
            .iter()
            .filter(|(_, at)| *at >= request.since && *at <= request.until)
            .collect();
        let page: Vec<Change> = in_window
            .iter()
            .skip(start)
            .take(request.limit)
            .map(|(id, at)| {
                if self.redeliver {
                    Change::Redeliver {
                        id: id.as_str().into(),
                        handle: format!("h-{id}"),
                    }
                } else {
                    Change::Event(
                        FetchedEvent::new(id.as_str(), format!("{{\"id\":\"{id}\"}}"))
                            .with_type("thing.changed")
                            .with_occurred_at(*at),
                    )
                }
            })
            .collect();
        let next = start + page.len();
        Ok(if next >= in_window.len() {
            Page::last(page, None)
        } else {
            Page::more(page, next.to_string())
        })
    }

    async fn redeliver(&self, handle: &str) -> Result<(), PollError> {
        self.redelivered.lock().unwrap().push(handle.to_owned());
        Ok(())
    }
}

struct Setup {
    clock: FakeClock,
    queue: Arc<MemoryQueue>,
    source: Arc<ListSource>,
    reconciler: Reconciler,
}

/// 100 events a second apart from `t(1_000_000)`; the clock at the last one plus a minute;
/// the first window reaches back an hour.
fn setup(configure: impl FnOnce(&mut ListSource)) -> Setup {
    let events = (0..100)
        .map(|i| (format!("evt_{i:03}"), t(1_000_000 + i)))
        .collect();
    let mut source = ListSource::new(events);
    configure(&mut source);
    let source = Arc::new(source);
    let clock = FakeClock::new(t(1_000_160));
    let queue = Arc::new(
        MemoryStore::new()
            .with_clock(clock.clone())
            .queue(QueueOptions::default()),
    );
    let reconciler = Reconciler::builder(queue.clone(), queue.clone())
        .shared_source(source.clone())
        .page_size(7)
        .first_window(Duration::from_secs(3600))
        .retries(3, Duration::from_millis(1))
        .clock(clock.clone())
        .build();
    Setup {
        clock,
        queue,
        source,
        reconciler,
    }
}

async fn push(queue: &MemoryQueue, id: &str) {
    let event = RawEvent::new(
        "list",
        id,
        SystemTime::now(),
        format!("{{\"id\":\"{id}\"}}"),
    );
    queue.enqueue(event).await.unwrap();
}

async fn pass(s: &Setup) -> PassReport {
    match s.reconciler.run_once("list").await.unwrap() {
        PassOutcome::Ran(report) => report,
        other => panic!("expected a pass, got {other:?}"),
    }
}

async fn stored(queue: &MemoryQueue, origin: Origin) -> Vec<String> {
    let page = queue
        .list(&EventFilter::all().origin(origin).limit(1000))
        .await
        .unwrap();
    let mut ids: Vec<String> = page
        .entries
        .iter()
        .map(|e| e.event_id.to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_pass_stores_what_the_push_path_missed_and_counts_what_it_had() {
    let s = setup(|_| {});
    for i in (0..100).filter(|i| i % 10 != 3) {
        push(&s.queue, &format!("evt_{i:03}")).await;
    }
    let report = pass(&s).await;
    assert!(report.completed(), "{report:?}");
    assert_eq!((report.seen, report.known, report.recovered), (100, 90, 10));
    assert_eq!(report.pages, 15, "100 changes in pages of 7");
    assert!((report.recovery_rate() - 0.10).abs() < 1e-9);
    let recovered = stored(&s.queue, Origin::Reconciliation).await;
    let expected: Vec<String> = (0..100)
        .filter(|i| i % 10 == 3)
        .map(|i| format!("evt_{i:03}"))
        .collect();
    assert_eq!(
        recovered, expected,
        "exactly the missed events, marked as reconciled"
    );
    let got = s
        .queue
        .get("list", "evt_013")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        got.event.body.as_ref(),
        b"{\"id\":\"evt_013\"}",
        "the provider's bytes"
    );
    assert_eq!(got.event.event_type.as_deref(), Some("thing.changed"));
    assert_eq!(
        s.queue.reports().await.unwrap(),
        vec![report.clone()],
        "the report is stored"
    );
    assert_eq!(s.reconciler.last_reports(), vec![report]);
}

#[tokio::test]
async fn a_second_pass_overlaps_the_first_and_recovers_nothing() {
    let s = setup(|_| {});
    let first = pass(&s).await;
    assert_eq!(first.recovered, 100);
    s.clock.advance(Duration::from_secs(15 * 60));
    let second = pass(&s).await;
    assert_eq!(
        second.since,
        first.until - Duration::from_secs(5 * 60),
        "the default overlap"
    );
    assert_eq!(second.until, s.clock_now());
    assert_eq!(second.recovered, 0, "{second:?}");
    assert_eq!(second.seen, second.known);
    assert_eq!(
        second.seen, 100,
        "the overlap reaches every event of the first window"
    );
    assert_eq!(
        stored(&s.queue, Origin::Reconciliation).await.len(),
        100,
        "nothing stored twice"
    );
}

impl Setup {
    fn clock_now(&self) -> SystemTime {
        hookdock::Clock::now(&self.clock)
    }
}

#[tokio::test]
async fn a_pass_stopped_midway_resumes_at_its_checkpoint() {
    let s = setup(|_| {});
    // The provider refuses the first poll: the pass stops, its window kept.
    s.source.then(PollError::Rejected {
        status: Some(401),
        message: "expired key".into(),
    });
    let report = pass(&s).await;
    assert_eq!(
        report.error.as_deref(),
        Some("rejected by the provider (401): expired key")
    );
    assert_eq!(report.seen, 0);
    let polls_before = s.source.polls().len();
    let resumed = pass(&s).await;
    assert!(resumed.completed());
    assert_eq!(resumed.since, report.since, "the same window, resumed");
    assert_eq!(resumed.until, report.until);
    assert_eq!(resumed.recovered, 100);
    assert_eq!(s.source.polls().len() - polls_before, 15);

    // Now stop in the middle of a window: a second store, a walk stopped after page 3.
    let s = setup(|_| {});
    let stopping = StopAfter {
        inner: s.source.clone(),
        pages: AtomicUsize::new(3),
    };
    let reconciler = Reconciler::builder(s.queue.clone(), s.queue.clone())
        .source(stopping)
        .page_size(7)
        .first_window(Duration::from_secs(3600))
        .clock(s.clock.clone())
        .build();
    let stopped = match reconciler.run_once("list").await.unwrap() {
        PassOutcome::Ran(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!((stopped.pages, stopped.recovered), (3, 21), "{stopped:?}");
    assert!(stopped.error.is_some());
    let checkpoint = s
        .queue
        .checkpoint("list")
        .await
        .unwrap()
        .expect("a checkpoint");
    assert!(
        checkpoint.contains("\"cursor\":\"21\""),
        "the place after page 3: {checkpoint}"
    );
    drop(reconciler); // its leadership with it
    let resumed = pass(&s).await;
    assert_eq!(
        s.source.polls()[3],
        Some("21".into()),
        "the walk goes on from page 4"
    );
    assert_eq!(
        (resumed.seen, resumed.known, resumed.recovered),
        (79, 0, 79)
    );
    assert_eq!(
        stored(&s.queue, Origin::Reconciliation).await.len(),
        100,
        "each event once"
    );
}

/// Passes `pages` pages through, then fails every poll.
struct StopAfter {
    inner: Arc<ListSource>,
    pages: AtomicUsize,
}

#[async_trait]
impl ChangeSource for StopAfter {
    fn name(&self) -> &str {
        "list"
    }
    fn horizon(&self) -> Duration {
        self.inner.horizon()
    }
    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        if self
            .pages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(PollError::Rejected {
                status: None,
                message: "stop".into(),
            });
        }
        self.inner.poll(request).await
    }
}

#[tokio::test]
async fn a_window_older_than_the_horizon_is_reported_as_a_gap() {
    let s = setup(|_| {});
    pass(&s).await;
    let until = s.clock_now();
    s.clock.advance(40 * DAY);
    let report = pass(&s).await;
    assert_eq!(report.gaps.len(), 1, "{report:?}");
    let gap = report.gaps[0];
    assert_eq!(gap.from, until - Duration::from_secs(300));
    assert_eq!(gap.to, s.clock_now() - 30 * DAY);
    assert_eq!(report.since, gap.to, "the walk starts at the horizon");
}

#[tokio::test]
async fn a_cursor_the_provider_no_longer_keeps_restarts_the_walk() {
    let s = setup(|_| {});
    s.source.then_ok();
    s.source.then(PollError::BeyondHorizon);
    let report = pass(&s).await;
    assert!(report.completed(), "{report:?}");
    assert!(
        report.gaps.is_empty(),
        "the window is inside the horizon: nothing lost"
    );
    assert_eq!(
        (report.seen, report.known, report.recovered),
        (107, 7, 100),
        "page 1 seen twice"
    );
    assert_eq!(s.source.polls()[2], None, "walked again from the start");

    // A window start the provider calls too old (its horizon is shorter than declared):
    // the pass stops and says so.
    let s = setup(|_| {});
    s.source.then(PollError::BeyondHorizon);
    let report = pass(&s).await;
    assert_eq!(
        report.error.as_deref(),
        Some("the provider says the window is beyond its horizon")
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limits_are_waited_out_as_told() {
    let s = setup(|_| {});
    s.source.then(PollError::RateLimited {
        retry_after: Some(Duration::from_secs(30)),
    });
    s.source.then(PollError::RateLimited {
        retry_after: Some(Duration::from_secs(45)),
    });
    let started = tokio::time::Instant::now();
    let report = pass(&s).await;
    assert!(report.completed(), "{report:?}");
    assert_eq!(report.rate_limited, 2);
    assert_eq!(report.recovered, 100);
    assert!(
        started.elapsed() >= Duration::from_secs(75),
        "waited as told (paused clock)"
    );
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_then_stop_the_pass() {
    let s = setup(|_| {});
    for _ in 0..10 {
        s.source.then(PollError::transient("connection reset"));
    }
    let report = pass(&s).await;
    assert_eq!(
        report.retries, 3,
        "three tries again, then it stops: {report:?}"
    );
    assert!(report
        .error
        .as_deref()
        .unwrap()
        .contains("connection reset"));
    assert!(
        s.queue.checkpoint("list").await.unwrap().is_some(),
        "its place is kept"
    );
}

#[tokio::test]
async fn redeliveries_are_asked_for_only_what_the_store_does_not_know() {
    let s = setup(|source| source.redeliver = true);
    for i in (0..100).filter(|i| i % 4 != 0) {
        push(&s.queue, &format!("evt_{i:03}")).await;
    }
    let report = pass(&s).await;
    assert_eq!(
        (
            report.seen,
            report.known,
            report.redeliveries,
            report.recovered
        ),
        (100, 75, 25, 0)
    );
    let mut asked = s.source.redelivered.lock().unwrap().clone();
    asked.sort();
    let expected: Vec<String> = (0..100)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("h-evt_{i:03}"))
        .collect();
    assert_eq!(asked, expected);
    assert!((report.recovery_rate() - 0.25).abs() < 1e-9);
}

#[tokio::test]
async fn one_reconciler_leads_a_source_at_a_time() {
    let s = setup(|_| {});
    pass(&s).await; // holds the leadership from now on
    let other = Reconciler::builder(s.queue.clone(), s.queue.clone())
        .shared_source(s.source.clone())
        .clock(s.clock.clone())
        .build();
    assert_eq!(
        other.run_once("list").await.unwrap(),
        PassOutcome::NotLeader
    );
    drop(s.reconciler);
    assert!(
        matches!(other.run_once("list").await.unwrap(), PassOutcome::Ran(_)),
        "taken over"
    );
    assert!(
        other.run_once("nope").await.is_err(),
        "an unknown source is an error"
    );
}

#[tokio::test]
async fn a_high_recovery_rate_fires_the_alert() {
    let fired = Arc::new(Mutex::new(Vec::new()));
    let seen = fired.clone();
    let alerts = Alerts::new(move |alert: &Alert| seen.lock().unwrap().push(alert.clone()));
    let s = setup(|_| {});
    for i in 0..95 {
        push(&s.queue, &format!("evt_{i:03}")).await;
    }
    let reconciler = Reconciler::builder(s.queue.clone(), s.queue.clone())
        .shared_source(s.source.clone())
        .first_window(Duration::from_secs(3600))
        .clock(s.clock.clone())
        .alerts(alerts)
        .build();
    reconciler.run_once("list").await.unwrap();
    let fired = fired.lock().unwrap().clone();
    assert!(
        matches!(&fired[..], [Alert::RecoveryRate { source, rate, .. }] if source == "list" && (*rate - 0.05).abs() < 1e-9),
        "{fired:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_schedule_runs_passes_every_interval() {
    let s = setup(|_| {});
    let reconciler = Reconciler::builder(s.queue.clone(), s.queue.clone())
        .shared_source(s.source.clone())
        .every(Duration::from_secs(60))
        .jitter(0.0)
        .clock(s.clock.clone())
        .build();
    let handle = reconciler.spawn();
    tokio::time::sleep(Duration::from_secs(60 * 3 + 30)).await;
    let reports = handle.reconciler().last_reports();
    handle.shutdown().await;
    assert_eq!(reports.len(), 1);
    // A pass at once and one a minute: four walks, each one page or more.
    let first_polls = s.source.polls().iter().filter(|c| c.is_none()).count();
    assert_eq!(first_polls, 4, "{:?}", s.source.polls());
}
