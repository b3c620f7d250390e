//! `GithubDeliveries` against `FakeGithub`: paging by `Link` cursors, windows, skipped
//! redeliveries, errors, rate limits, and passes through the `Reconciler` that ask again
//! only for what the store does not know.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hookdock::reconcile::sources::GithubDeliveries;
use hookdock::reconcile::{Change, ChangeSource, PollError, PollRequest, Reconciler};
use hookdock::store::{MemoryQueue, Queue};
use hookdock::testing::fake::FakeGithub;
use hookdock::RawEvent;

const TOKEN: &str = "ghp_HookdockFakeToken000000000000000abcd";
const HOOK: u64 = 4242;

async fn fake() -> FakeGithub {
    FakeGithub::start("octo-org", "octo-repo", HOOK, TOKEN)
        .await
        .unwrap()
}

fn source(fake: &FakeGithub) -> GithubDeliveries {
    GithubDeliveries::builder("octo-org", "octo-repo", HOOK, TOKEN)
        .base_url(fake.url())
        .build()
        .unwrap()
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// Walks a window to its end; returns `(guid, handle)` of each change, and the pages.
async fn walk(
    source: &GithubDeliveries,
    since: SystemTime,
    until: SystemTime,
    limit: usize,
) -> (Vec<(String, String)>, usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..=100 {
        let page = source
            .poll(PollRequest::new(since, until, cursor.as_deref(), limit))
            .await
            .expect("poll");
        assert!(page.changes.len() <= limit);
        for change in page.changes {
            match change {
                Change::Redeliver { id, handle } => seen.push((id.to_string(), handle)),
                other => panic!("GitHub asks for redeliveries, got {other:?}"),
            }
        }
        if page.done {
            assert_eq!(page.cursor, None);
            return (seen, pages);
        }
        cursor = page.cursor;
    }
    panic!("the walk did not end");
}

#[tokio::test]
async fn paging_returns_every_delivery_once_and_stops_at_older_ones() {
    let fake = fake().await;
    let mut expected = Vec::new();
    for i in 0..12u64 {
        let guid = format!("guid-{i:02}");
        let status = if i % 3 == 0 { 502 } else { 200 };
        let id = fake.add_delivery(&guid, "push", ago(1000 - i * 60), status);
        expected.push((guid, id.to_string()));
    }
    // Older than the window: the walk stops when it reaches them.
    for i in 0..20u64 {
        fake.add_delivery(format!("old-{i:02}"), "push", ago(7200 + i), 200);
    }
    let source = source(&fake);
    let (seen, pages) = walk(&source, ago(1800), SystemTime::now(), 5).await;
    assert_eq!(
        pages, 3,
        "12 in the window in pages of 5; the third reaches older ones"
    );
    assert_eq!(
        fake.list_requests(),
        3,
        "the older pages are never asked for"
    );
    let unique: HashSet<&str> = seen.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(unique.len(), 12, "each delivery once, failed or not");
    expected.reverse(); // newest first
    assert_eq!(seen, expected);
    assert_eq!(source.name(), "github");
    assert_eq!(source.horizon(), Duration::from_secs(3 * 86_400));
}

#[tokio::test]
async fn the_window_applies_and_redelivery_attempts_are_skipped() {
    let fake = fake().await;
    for i in 0..10u64 {
        fake.add_delivery(format!("guid-{i}"), "issues", ago(3000 - i * 300), 200);
    }
    let source = source(&fake);
    // delivered in [now-2000, now-1000]: guid-4 (now-1800) .. guid-6 (now-1200).
    let (seen, _) = walk(&source, ago(2000), ago(1000), 2).await;
    let guids: Vec<&str> = seen.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(guids, ["guid-6", "guid-5", "guid-4"]);

    // An attempt asked for is listed with `redelivery: true`, and not reported again.
    let (all, _) = walk(&source, ago(4000), SystemTime::now(), 4).await;
    let (_, handle) = all.iter().find(|(g, _)| g == "guid-2").unwrap();
    source.redeliver(handle).await.unwrap();
    assert_eq!(fake.redelivery_requests(), 1);
    assert!(fake
        .deliveries()
        .iter()
        .any(|d| d.guid == "guid-2" && d.redelivery));
    let (again, _) = walk(&source, ago(4000), SystemTime::now(), 4).await;
    assert_eq!(again, all, "the attempt is skipped");
    let asked: Vec<String> = fake
        .take_redeliveries()
        .into_iter()
        .map(|d| d.guid)
        .collect();
    assert_eq!(asked, ["guid-2"]);
}

#[tokio::test]
async fn a_bad_token_is_rejected_with_githubs_message_and_never_shown() {
    let fake = fake().await;
    let wrong = "ghp_WrongWrongWrongWrongWrongWrong9876";
    let source = GithubDeliveries::builder("octo-org", "octo-repo", HOOK, wrong)
        .base_url(fake.url())
        .build()
        .unwrap();
    let error = source
        .poll(PollRequest::new(ago(60), SystemTime::now(), None, 10))
        .await
        .expect_err("a wrong token is refused");
    match &error {
        PollError::Rejected {
            status: Some(401),
            message,
        } => assert_eq!(message, "Bad credentials"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{source:?}"),
    ] {
        assert!(!shown.contains(wrong), "the token appears in {shown:?}");
    }

    // Another hook is unknown; a delivery that does not exist cannot be asked for.
    let other = GithubDeliveries::builder("octo-org", "octo-repo", HOOK + 1, TOKEN)
        .base_url(fake.url())
        .build()
        .unwrap();
    let error = other
        .poll(PollRequest::new(ago(60), SystemTime::now(), None, 10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            PollError::Rejected {
                status: Some(404),
                ..
            }
        ),
        "{error:?}"
    );
    let error = self::source(&fake).redeliver("999").await.unwrap_err();
    assert!(
        matches!(
            error,
            PollError::Rejected {
                status: Some(404),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(self::source(&fake).redeliver("1/../2").await.is_err());

    // A cursor GitHub refuses restarts the window's walk.
    let error = self::source(&fake)
        .poll(PollRequest::new(
            ago(60),
            SystemTime::now(),
            Some("v1_bogus"),
            10,
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, PollError::BeyondHorizon), "{error:?}");
}

#[tokio::test]
async fn the_reconciler_waits_out_a_rate_limit() {
    let fake = fake().await;
    for i in 0..5u64 {
        fake.add_delivery(format!("guid-{i}"), "push", ago(300 - i * 10), 200);
    }
    let body = r#"{"message":"API rate limit exceeded","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#;
    fake.faults()
        .rate_limit_next(1, Duration::from_secs(1), body);
    let queue = MemoryQueue::new();
    let reconciler = Reconciler::builder(Arc::new(queue.clone()), Arc::new(queue.clone()))
        .source(source(&fake))
        .first_window(Duration::from_secs(3600))
        .page_size(2)
        .build();
    let report = reconciler
        .run_once("github")
        .await
        .unwrap()
        .report()
        .cloned()
        .unwrap();
    assert!(report.completed(), "{:?}", report.error);
    assert_eq!(report.rate_limited, 1);
    assert_eq!(fake.faults().faults_served(), 1);
    assert_eq!(report.redeliveries, 5);
    assert_eq!(fake.redelivery_requests(), 5);
}

#[tokio::test]
async fn a_pass_asks_again_only_for_deliveries_the_store_does_not_know() {
    let fake = fake().await;
    let queue = MemoryQueue::new();
    let pushed: HashSet<String> = ["guid-0", "guid-2", "guid-3", "guid-5", "guid-7"]
        .map(String::from)
        .into();
    for i in 0..8u64 {
        let guid = format!("guid-{i}");
        let status = if pushed.contains(&guid) { 200 } else { 0 };
        fake.add_delivery(&guid, "pull_request", ago(200 - i * 10), status);
        if pushed.contains(&guid) {
            let body = format!(r#"{{"action":"opened","number":{i}}}"#);
            queue
                .enqueue(RawEvent::new("github", guid, SystemTime::now(), body))
                .await
                .unwrap();
        }
    }
    let reconciler = Reconciler::builder(Arc::new(queue.clone()), Arc::new(queue.clone()))
        .source(source(&fake))
        .first_window(Duration::from_secs(3600))
        .page_size(3)
        .build();
    let report = reconciler
        .run_once("github")
        .await
        .unwrap()
        .report()
        .cloned()
        .unwrap();
    assert!(report.completed(), "{:?}", report.error);
    assert_eq!((report.seen, report.known, report.redeliveries), (8, 5, 3));
    let asked = fake.take_redeliveries();
    let mut guids: Vec<&str> = asked.iter().map(|d| d.guid.as_str()).collect();
    guids.sort_unstable();
    assert_eq!(guids, ["guid-1", "guid-4", "guid-6"]);

    // GitHub sends them again through the push path, and the next pass asks for nothing.
    for delivery in &asked {
        queue
            .enqueue(RawEvent::new(
                "github",
                delivery.guid.clone(),
                SystemTime::now(),
                "{}",
            ))
            .await
            .unwrap();
    }
    let report = reconciler
        .run_once("github")
        .await
        .unwrap()
        .report()
        .cloned()
        .unwrap();
    assert!(report.completed(), "{:?}", report.error);
    assert_eq!(report.redeliveries, 0);
    assert_eq!(report.known, report.seen);
    assert_eq!(report.seen, 8, "the attempts listed since are skipped");
    assert!(fake.take_redeliveries().is_empty());
}
