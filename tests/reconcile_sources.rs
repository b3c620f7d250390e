//! The ready reconciliation sources against the fakes of their providers' APIs: paging,
//! exact bodies, windows, credentials refused, rate limits, and full passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hookdock::reconcile::sources::{
    CursorFrom, JsonSource, JsonSourceConfig, PaddleEvents, SvixMessages,
};
use hookdock::reconcile::{Change, ChangeSource, FetchedEvent, PollError, PollRequest, Reconciler};
use hookdock::store::{EventLog, MemoryQueue, Origin};
use hookdock::testing::fake::{FakePaddle, FakeSvix};
use hookdock::{Queue, RawEvent};

const TOKEN: &str = "testsk_svix_f00dfeed";
const KEY: &str = "pdl_sdbx_apikey_s3cr3t";
const APP: &str = "app_1";

fn ago(minutes: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(minutes * 60)
}

/// Walks `[since, until]` from `cursor` a page of `limit` at a time; the events and the
/// cursor the last page carried.
async fn walk(
    source: &dyn ChangeSource,
    since: SystemTime,
    until: SystemTime,
    mut cursor: Option<String>,
    limit: usize,
) -> (Vec<FetchedEvent>, Option<String>, usize) {
    let mut events = Vec::new();
    let mut pages = 0;
    loop {
        let page = source
            .poll(PollRequest::new(since, until, cursor.as_deref(), limit))
            .await
            .expect("a page");
        pages += 1;
        assert!(
            page.changes.len() <= limit,
            "a page holds at most `limit` changes"
        );
        for change in page.changes {
            match change {
                Change::Event(event) => events.push(event),
                other => panic!("unexpected change {other:?}"),
            }
        }
        cursor = page.cursor;
        if page.done {
            return (events, cursor, pages);
        }
        assert!(pages < 100, "the walk does not end");
    }
}

fn by_id(events: &[FetchedEvent]) -> HashMap<String, &FetchedEvent> {
    let map: HashMap<_, _> = events.iter().map(|e| (e.id.to_string(), e)).collect();
    assert_eq!(map.len(), events.len(), "every event exactly once");
    map
}

fn reconciler(queue: &MemoryQueue, source: impl ChangeSource) -> Reconciler {
    Reconciler::builder(Arc::new(queue.clone()), Arc::new(queue.clone()))
        .source(source)
        .first_window(Duration::from_secs(3 * 3600))
        .page_size(3)
        .retries(3, Duration::from_millis(10))
        .build()
}

// --- Svix ---------------------------------------------------------------------------------

async fn svix_with(n: u64) -> FakeSvix {
    let fake = FakeSvix::start(TOKEN, APP).await.unwrap();
    for i in 0..n {
        fake.add_message(
            format!("msg_{i:04}"),
            "invoice.paid",
            ago(60 - i),
            &format!("{{ \"n\" : {i},\n  \"nested\": {{\"a\":[1, 2 ,3]}} }}"),
        );
    }
    fake
}

fn svix(fake: &FakeSvix) -> SvixMessages {
    SvixMessages::builder(TOKEN, APP)
        .base_url(fake.url())
        .build()
        .unwrap()
}

#[tokio::test]
async fn svix_pages_return_every_message_once_with_its_exact_payload() {
    let fake = svix_with(8).await;
    let source = svix(&fake);
    assert_eq!(source.name(), "svix");
    assert_eq!(source.horizon(), Duration::from_secs(90 * 24 * 3600));
    let (events, cursor, pages) = walk(&source, ago(120), SystemTime::now(), None, 3).await;
    assert_eq!(events.len(), 8);
    assert_eq!(pages, 3);
    assert_eq!(cursor, None);
    let events = by_id(&events);
    for i in 0..8u64 {
        let event = events[&format!("msg_{i:04}")];
        let expected = format!("{{ \"n\" : {i},\n  \"nested\": {{\"a\":[1, 2 ,3]}} }}");
        assert_eq!(
            &event.body[..],
            expected.as_bytes(),
            "the payload byte for byte"
        );
        assert_eq!(
            event.event_type.as_ref().map(|t| t.to_string()).as_deref(),
            Some("invoice.paid")
        );
        let at = event.occurred_at.expect("a timestamp");
        let want = ago(60 - i);
        let off = if at > want {
            at.duration_since(want)
        } else {
            want.duration_since(at)
        }
        .unwrap();
        assert!(off < Duration::from_secs(5), "the message's timestamp");
    }
}

#[tokio::test]
async fn svix_walks_only_the_window() {
    let fake = FakeSvix::start(TOKEN, APP).await.unwrap();
    for (id, minutes) in [
        ("msg_a", 200),
        ("msg_b", 100),
        ("msg_c", 90),
        ("msg_d", 80),
        ("msg_e", 10),
    ] {
        fake.add_message(id, "t", ago(minutes), "{}");
    }
    let source = svix(&fake);
    let (events, _, _) = walk(&source, ago(150), ago(30), None, 2).await;
    let mut ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["msg_b", "msg_c", "msg_d"]);
}

#[tokio::test]
async fn svix_refusing_the_token_is_rejected_with_its_message_and_no_token() {
    let fake = svix_with(1).await;
    let source = SvixMessages::builder("wrong_token_9f8e7d", APP)
        .base_url(fake.url())
        .build()
        .unwrap();
    assert!(!format!("{source:?}").contains("wrong_token_9f8e7d"));
    let error = source
        .poll(PollRequest::new(ago(120), SystemTime::now(), None, 10))
        .await
        .expect_err("refused");
    match &error {
        PollError::Rejected {
            status: Some(401),
            message,
        } => assert_eq!(message, "Invalid token"),
        other => panic!("{other:?}"),
    }
    assert!(!error.to_string().contains("wrong_token_9f8e7d"));
    assert!(!format!("{error:?}").contains("wrong_token_9f8e7d"));
    let builder = SvixMessages::builder("wrong_token_9f8e7d", APP);
    assert!(!format!("{builder:?}").contains("wrong_token_9f8e7d"));
}

#[tokio::test]
async fn svix_rate_limits_are_waited_out_and_a_pass_recovers_what_was_missed() {
    let fake = svix_with(7).await;
    fake.faults().rate_limit_next(
        1,
        Duration::from_secs(1),
        r#"{"code":"rate_limit","detail":"Too many requests"}"#,
    );
    fake.faults()
        .fail_next(1, axum::http::StatusCode::BAD_GATEWAY);
    let queue = MemoryQueue::new();
    // The push path got two of them.
    for i in [1u64, 4] {
        let id = format!("msg_{i:04}");
        queue
            .enqueue(RawEvent::new("svix", id, SystemTime::now(), "pushed"))
            .await
            .unwrap();
    }
    let reconciler = reconciler(&queue, svix(&fake));
    let outcome = reconciler.run_once("svix").await.unwrap();
    let report = outcome.report().expect("ran");
    assert!(report.completed(), "{:?}", report.error);
    assert_eq!(report.rate_limited, 1);
    assert_eq!(report.retries, 1);
    assert_eq!((report.seen, report.known, report.recovered), (7, 2, 5));
    assert_eq!(fake.faults().faults_served(), 2);
    let stored = queue
        .get("svix", "msg_0003")
        .await
        .unwrap()
        .expect("recovered");
    assert_eq!(stored.event.origin, Origin::Reconciliation);
    assert_eq!(
        &stored.event.body[..],
        "{ \"n\" : 3,\n  \"nested\": {\"a\":[1, 2 ,3]} }".as_bytes()
    );
    let pushed = queue
        .get("svix", "msg_0001")
        .await
        .unwrap()
        .expect("pushed");
    assert_eq!(pushed.event.origin, Origin::Push);
}

// --- Paddle -------------------------------------------------------------------------------

fn paddle(fake: &FakePaddle) -> PaddleEvents {
    PaddleEvents::builder(KEY)
        .base_url(fake.url())
        .build()
        .unwrap()
}

/// Adds events `evt_{from..to}` a minute apart ending `end_ago` minutes ago; their bodies.
fn add_paddle(fake: &FakePaddle, from: u64, to: u64, end_ago: u64) -> HashMap<String, String> {
    (from..to)
        .map(|i| {
            let id = format!("evt_{i:04}");
            let body = fake.add_event(
                id.clone(),
                "transaction.completed",
                ago(end_ago + (to - 1 - i)),
                &format!("{{\"id\": \"txn_{i}\",  \"items\" : [ ]}}"),
            );
            (id, body)
        })
        .collect()
}

#[tokio::test]
async fn paddle_pages_return_every_event_once_with_exact_bytes_and_carry_the_last_id() {
    let fake = FakePaddle::start(KEY).await.unwrap();
    let bodies = add_paddle(&fake, 0, 8, 10);
    let source = paddle(&fake);
    assert_eq!(source.name(), "paddle");
    // The first window walks newest first.
    let (events, cursor, pages) = walk(&source, ago(120), SystemTime::now(), None, 3).await;
    assert_eq!(events.len(), 8);
    assert_eq!(pages, 3);
    assert_eq!(
        cursor.as_deref(),
        Some("evt_0007"),
        "the newest id, for the next window"
    );
    for (id, event) in by_id(&events) {
        assert_eq!(&event.body[..], bodies[&id].as_bytes());
        assert!(
            bodies[&id].contains("\"data\":{\"id\": \"txn_"),
            "the data kept as given"
        );
        assert_eq!(
            event.event_type.as_ref().map(|t| t.to_string()).as_deref(),
            Some("transaction.completed")
        );
        assert!(event.occurred_at.is_some());
    }
    // The next window walks oldest first from the carried id.
    let more = add_paddle(&fake, 8, 13, 0);
    let (events, cursor, _) = walk(&source, ago(120), SystemTime::now(), cursor, 2).await;
    let mut ids: Vec<_> = events.iter().map(|e| e.id.to_string()).collect();
    ids.sort();
    let mut want: Vec<_> = more.keys().cloned().collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(cursor.as_deref(), Some("evt_0012"));
    for event in &events {
        assert_eq!(&event.body[..], more[&event.id.to_string()].as_bytes());
    }
}

#[tokio::test]
async fn paddle_walks_only_the_window() {
    let fake = FakePaddle::start(KEY).await.unwrap();
    for (id, minutes) in [
        ("evt_a", 200),
        ("evt_b", 100),
        ("evt_c", 90),
        ("evt_d", 80),
        ("evt_e", 10),
    ] {
        fake.add_event(id, "t.x", ago(minutes), "{}");
    }
    let source = paddle(&fake);
    let (events, cursor, _) = walk(&source, ago(150), ago(30), None, 2).await;
    let mut ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["evt_b", "evt_c", "evt_d"]);
    assert_eq!(
        cursor.as_deref(),
        Some("evt_d"),
        "the newest id within the window"
    );
    // From the carried id, the window's start skips the overlap and its end stops the walk.
    let (events, cursor, _) = walk(&source, ago(85), ago(20), Some("evt_b".into()), 2).await;
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["evt_d"]);
    assert_eq!(
        cursor.as_deref(),
        Some("evt_d"),
        "evt_e is left to the next window"
    );
}

#[tokio::test]
async fn paddle_refusing_the_key_is_rejected_with_its_message_and_no_key() {
    let fake = FakePaddle::start(KEY).await.unwrap();
    let source = PaddleEvents::builder("pdl_wrong_key_0451")
        .base_url(fake.url())
        .build()
        .unwrap();
    assert!(!format!("{source:?}").contains("pdl_wrong_key_0451"));
    let error = source
        .poll(PollRequest::new(ago(120), SystemTime::now(), None, 10))
        .await
        .expect_err("refused");
    match &error {
        PollError::Rejected {
            status: Some(403),
            message,
        } => assert_eq!(message, "Authentication token is invalid."),
        other => panic!("{other:?}"),
    }
    assert!(!error.to_string().contains("pdl_wrong_key_0451"));
    assert!(!format!("{error:?}").contains("pdl_wrong_key_0451"));
    assert!(
        !format!("{:?}", PaddleEvents::builder("pdl_wrong_key_0451"))
            .contains("pdl_wrong_key_0451")
    );
}

#[tokio::test]
async fn paddle_two_passes_the_second_continuing_from_the_carried_cursor() {
    let fake = FakePaddle::start(KEY).await.unwrap();
    fake.faults().rate_limit_next(
        1,
        Duration::from_secs(1),
        r#"{"error":{"type":"request_error","code":"too_many_requests","detail":"Too many requests."}}"#,
    );
    // Within the default overlap: a second pass starting again would see them again.
    add_paddle(&fake, 0, 5, 1);
    let queue = MemoryQueue::new();
    queue
        .enqueue(RawEvent::new(
            "paddle",
            "evt_0002",
            SystemTime::now(),
            "pushed",
        ))
        .await
        .unwrap();
    let reconciler = reconciler(&queue, paddle(&fake));
    let first = reconciler
        .run_once("paddle")
        .await
        .unwrap()
        .report()
        .cloned()
        .expect("ran");
    assert!(first.completed(), "{:?}", first.error);
    assert_eq!(first.rate_limited, 1);
    assert_eq!((first.seen, first.known, first.recovered), (5, 1, 4));
    let stored = queue
        .get("paddle", "evt_0004")
        .await
        .unwrap()
        .expect("recovered");
    assert_eq!(stored.event.origin, Origin::Reconciliation);

    let more = add_paddle(&fake, 5, 9, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = reconciler
        .run_once("paddle")
        .await
        .unwrap()
        .report()
        .cloned()
        .expect("ran");
    assert!(second.completed(), "{:?}", second.error);
    assert_eq!(
        (second.seen, second.known, second.recovered),
        (4, 0, 4),
        "only what followed the cursor"
    );
    for (id, body) in more {
        let stored = queue.get("paddle", &id).await.unwrap().expect("recovered");
        assert_eq!(&stored.event.body[..], body.as_bytes());
    }
}

// --- The generic source -------------------------------------------------------------------

#[tokio::test]
async fn json_source_reads_paddle_by_its_next_urls() {
    let fake = FakePaddle::start(KEY).await.unwrap();
    let bodies = add_paddle(&fake, 0, 7, 10);
    fake.add_event("evt_0000a", "t.old", ago(500), "{}");
    let config: JsonSourceConfig = serde_json::from_value(serde_json::json!({
        "name": "paddle",
        "url": format!("{}/events?per_page={{limit}}&order_by=id[ASC]", fake.url()),
        "auth": { "header": "Authorization", "value": format!("Bearer {KEY}") },
        "cursor": { "from": "next_url", "pointer": "/meta/pagination/next", "has_more": "/meta/pagination/has_more" },
        "carry_cursor": true,
        "max_limit": 200,
        "id": "/event_id",
        "type": "/event_type",
        "time": "/occurred_at",
        "horizon_days": 90,
    }))
    .unwrap();
    assert!(!format!("{config:?}").contains(KEY));
    let source = JsonSource::from_config(config).unwrap();
    assert!(!format!("{source:?}").contains(KEY));
    assert_eq!(source.horizon(), Duration::from_secs(90 * 24 * 3600));
    let (events, cursor, pages) = walk(&source, ago(120), SystemTime::now(), None, 3).await;
    assert_eq!(pages, 3);
    assert_eq!(events.len(), 7, "the old event is outside the window");
    for (id, event) in by_id(&events) {
        assert_eq!(
            &event.body[..],
            bodies[&id].as_bytes(),
            "the whole item, byte for byte"
        );
        assert_eq!(
            event.event_type.as_ref().map(|t| t.to_string()).as_deref(),
            Some("transaction.completed")
        );
    }
    let cursor = cursor.expect("the next URL is carried");
    assert!(cursor.contains("after=evt_0006"), "{cursor}");
    let more = add_paddle(&fake, 7, 9, 0);
    let (events, _, _) = walk(&source, ago(120), SystemTime::now(), Some(cursor), 3).await;
    let mut ids: Vec<_> = events.iter().map(|e| e.id.to_string()).collect();
    ids.sort();
    let mut want: Vec<_> = more.into_keys().collect();
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn json_source_reads_svix_by_its_iterator_field() {
    let fake = svix_with(5).await;
    let source = JsonSource::builder(
        "svix",
        format!(
            "{}/api/v1/app/{APP}/msg?limit={{limit}}&iterator={{cursor}}&before={{until}}",
            fake.url()
        ),
    )
    .auth("Authorization", format!("Bearer {TOKEN}"))
    .cursor(CursorFrom::Field {
        pointer: "/iterator".into(),
        done: Some("/done".into()),
        has_more: None,
    })
    .max_limit(250)
    .event_type("/eventType")
    .time("/timestamp")
    .body("/payload")
    .build()
    .unwrap();
    let (events, cursor, pages) = walk(&source, ago(120), SystemTime::now(), None, 2).await;
    assert_eq!((events.len(), pages, cursor), (5, 3, None));
    let events = by_id(&events);
    assert_eq!(
        &events["msg_0002"].body[..],
        "{ \"n\" : 2,\n  \"nested\": {\"a\":[1, 2 ,3]} }".as_bytes()
    );
    // A wrong credential: the provider's message, and the credential nowhere.
    let wrong = JsonSource::builder("svix", format!("{}/api/v1/app/{APP}/msg", fake.url()))
        .auth("Authorization", "Bearer nope_5150")
        .build()
        .unwrap();
    let error = wrong
        .poll(PollRequest::new(ago(60), SystemTime::now(), None, 5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PollError::Rejected { status: Some(401), message } if message == "Invalid token")
    );
    assert!(!format!("{error} {error:?} {wrong:?}").contains("nope_5150"));
}

/// A tiny API paged by `Link` headers: `/items?page=N`, two items a page, Unix-second
/// times, `X-Api-Key` required.
async fn link_api(
    items: Vec<serde_json::Value>,
    foreign_last_link: bool,
) -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let items = Arc::new(items);
    let router = axum::Router::new().route(
        "/items",
        axum::routing::get(
            move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                let items = Arc::clone(&items);
                async move {
                    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("k-123") {
                        return (StatusCode::UNAUTHORIZED, r#"{"message":"bad key"}"#)
                            .into_response();
                    }
                    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let chunk: Vec<_> =
                        items.iter().skip((page - 1) * 2).take(2).cloned().collect();
                    let last = page * 2 >= items.len();
                    let mut response =
                        axum::Json(serde_json::json!({ "results": chunk })).into_response();
                    let link = if !last {
                        Some(format!("</items?page={}>; rel=\"next\"", page + 1))
                    } else if foreign_last_link {
                        Some("<http://elsewhere.invalid/items?page=99>; rel=\"next\"".to_owned())
                    } else {
                        None
                    };
                    if let Some(link) = link {
                        response.headers_mut().insert("link", link.parse().unwrap());
                    }
                    response
                }
            },
        ),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, task)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn json_source_follows_link_headers_on_its_own_origin_only() {
    let times: Vec<u64> = (0..5).map(|i| unix(ago(50 - i))).collect();
    let items: Vec<_> = (0..5)
        .map(|i| serde_json::json!({ "key": format!("it-{i}"), "kind": "thing", "at": times[i], "v": i }))
        .chain([serde_json::json!({ "key": 99, "at": unix(ago(500)) })])
        .collect();
    let (base, task) = link_api(items, false).await;
    let source = JsonSource::builder("things", format!("{base}/items?page=1"))
        .auth("X-Api-Key", "k-123")
        .cursor(CursorFrom::Link)
        .items("/results")
        .id("/key")
        .event_type("/kind")
        .time("/at")
        .build()
        .unwrap();
    let (events, cursor, pages) = walk(&source, ago(120), SystemTime::now(), None, 2).await;
    assert_eq!((pages, cursor), (3, None));
    let events = by_id(&events);
    assert_eq!(
        events.len(),
        5,
        "the item from before the window is skipped"
    );
    let expected = format!(r#"{{"at":{},"key":"it-3","kind":"thing","v":3}}"#, times[3]);
    assert_eq!(
        &events["it-3"].body[..],
        expected.as_bytes(),
        "the whole item, as served"
    );
    task.abort();

    // A next link to another origin is refused rather than sent the key.
    let (base, task) = link_api(vec![serde_json::json!({ "key": "a" })], true).await;
    let source = JsonSource::builder("things", format!("{base}/items?page=1"))
        .auth("X-Api-Key", "k-123")
        .cursor(CursorFrom::Link)
        .items("/results")
        .id("/key")
        .build()
        .unwrap();
    let error = source
        .poll(PollRequest::new(ago(60), SystemTime::now(), None, 5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PollError::Rejected { message, .. } if message.contains("another origin")),
        "{error}"
    );
    task.abort();
}

#[tokio::test]
async fn json_source_reports_an_item_without_an_id() {
    let (base, task) = link_api(
        vec![
            serde_json::json!({ "key": "a" }),
            serde_json::json!({ "other": 1 }),
        ],
        false,
    )
    .await;
    let source = JsonSource::builder("things", format!("{base}/items"))
        .auth("X-Api-Key", "k-123")
        .items("/results")
        .id("/key")
        .build()
        .unwrap();
    let error = source
        .poll(PollRequest::new(ago(60), SystemTime::now(), None, 5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PollError::Rejected { message, .. } if message.contains("item 1")),
        "{error}"
    );
    task.abort();
}
