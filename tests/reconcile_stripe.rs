//! `StripeEvents` against `FakeStripe`: paging, windows, byte-exact bodies, errors, rate
//! limits, and whole passes through the `Reconciler`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookdock::reconcile::sources::StripeEvents;
use hookdock::reconcile::{Change, ChangeSource, FetchedEvent, PollError, PollRequest, Reconciler};
use hookdock::store::{EventLog, MemoryQueue, Origin, Queue};
use hookdock::testing::fake::FakeStripe;
use hookdock::RawEvent;

const KEY: &str = "sk_test_51HookdockFakeKey0000000000abcd";

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

fn event(id: &str, kind: &str, created: i64) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": { "object": { "id": format!("in_{id}"), "object": "invoice", "amount_paid": 1200, "currency": "eur" } },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
}

fn source(fake: &FakeStripe) -> StripeEvents {
    StripeEvents::builder(KEY)
        .base_url(fake.url())
        .build()
        .unwrap()
}

/// Walks a window to its end, a page at a time; returns the events and the pages.
async fn walk(
    source: &StripeEvents,
    since: SystemTime,
    until: SystemTime,
    limit: usize,
) -> (Vec<FetchedEvent>, usize) {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..=100 {
        let page = source
            .poll(PollRequest::new(since, until, cursor.as_deref(), limit))
            .await
            .expect("poll");
        assert!(
            page.changes.len() <= limit,
            "a page holds at most the limit"
        );
        for change in page.changes {
            match change {
                Change::Event(e) => events.push(e),
                other => panic!("Stripe fetches events, got {other:?}"),
            }
        }
        if page.done {
            assert_eq!(page.cursor, None, "the last page carries no cursor");
            return (events, pages);
        }
        cursor = page.cursor;
    }
    panic!("the walk did not end");
}

#[tokio::test]
async fn paging_returns_every_event_once_with_the_apis_bytes() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let now = now_secs();
    for i in 0..23 {
        let kind = if i % 2 == 0 {
            "invoice.paid"
        } else {
            "customer.updated"
        };
        fake.add_event(event(&format!("evt_{i:03}"), kind, now - 1000 + i));
    }
    let source = source(&fake);
    let (events, pages) = walk(&source, at(now - 2000), at(now), 5).await;
    assert_eq!(pages, 5, "23 events in pages of 5");
    assert_eq!(fake.list_requests(), 5);
    assert_eq!(events.len(), 23);
    let ids: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids.len(), 23, "every event exactly once");
    // Newest first, as Stripe lists.
    assert_eq!(events[0].id.as_str(), "evt_022");
    assert_eq!(events[22].id.as_str(), "evt_000");
    for e in &events {
        let served = fake.event_body(e.id.as_str()).unwrap();
        assert_eq!(
            e.body.as_ref(),
            served.as_bytes(),
            "the body is the API's bytes, not a re-serialization"
        );
        let i: i64 = e.id.as_str()[4..].parse().unwrap();
        assert_eq!(e.occurred_at, Some(at(now - 1000 + i)));
        let kind = if i % 2 == 0 {
            "invoice.paid"
        } else {
            "customer.updated"
        };
        assert_eq!(e.event_type.as_ref().map(|t| t.as_str()), Some(kind));
    }
    assert_eq!(source.name(), "stripe");
    assert_eq!(source.horizon(), Duration::from_secs(30 * 86_400));
}

#[tokio::test]
async fn the_window_types_and_delivery_filters_apply() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let now = now_secs();
    for i in 0..10 {
        let kind = if i < 5 {
            "invoice.paid"
        } else {
            "charge.refunded"
        };
        fake.add_event(event(&format!("evt_{i}"), kind, now - 100 + i * 10));
    }
    // created in [now-70, now-40]: events 3, 4, 5 and 6.
    let (events, _) = walk(&source(&fake), at(now - 70), at(now - 40), 2).await;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_6", "evt_5", "evt_4", "evt_3"]);

    let invoices = StripeEvents::builder(KEY)
        .base_url(fake.url())
        .types(["invoice.paid"])
        .build()
        .unwrap();
    let (events, _) = walk(&invoices, at(now - 1000), at(now), 3).await;
    assert_eq!(events.len(), 5);
    assert!(events
        .iter()
        .all(|e| e.event_type.as_ref().unwrap().as_str() == "invoice.paid"));

    assert!(fake.set_delivery_success("evt_7", false));
    let undelivered = StripeEvents::builder(KEY)
        .base_url(fake.url())
        .undelivered_only(true)
        .build()
        .unwrap();
    let (events, _) = walk(&undelivered, at(now - 1000), at(now), 3).await;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_7"]);
}

#[tokio::test]
async fn a_bad_key_is_rejected_with_stripes_message_and_never_shown() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let wrong = "sk_test_51WrongKeyWrongKeyWrongKey9876";
    let source = StripeEvents::builder(wrong)
        .base_url(fake.url())
        .build()
        .unwrap();
    let now = SystemTime::now();
    let error = source
        .poll(PollRequest::new(
            now - Duration::from_secs(60),
            now,
            None,
            10,
        ))
        .await
        .expect_err("a wrong key is refused");
    match &error {
        PollError::Rejected {
            status: Some(401),
            message,
        } => {
            assert!(message.starts_with("Invalid API Key provided"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{source:?}"),
    ] {
        assert!(!shown.contains(wrong), "the key appears in {shown:?}");
        assert!(!shown.contains(KEY));
    }
}

#[tokio::test]
async fn a_cursor_that_aged_out_is_beyond_the_horizon() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let now = now_secs();
    for i in 0..5 {
        fake.add_event(event(&format!("evt_{i}"), "invoice.paid", now - 50 + i));
    }
    let source = source(&fake);
    let (since, until) = (at(now - 100), at(now));
    let first = source
        .poll(PollRequest::new(since, until, None, 2))
        .await
        .unwrap();
    let cursor = first.cursor.clone().expect("more to come");
    assert_eq!(cursor, "evt_3");
    assert!(fake.remove_event(&cursor));
    let error = source
        .poll(PollRequest::new(since, until, Some(&cursor), 2))
        .await
        .unwrap_err();
    assert!(matches!(error, PollError::BeyondHorizon), "{error:?}");
}

#[tokio::test]
async fn the_reconciler_waits_out_a_rate_limit_and_a_server_error() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let now = now_secs();
    for i in 0..7 {
        fake.add_event(event(&format!("evt_{i}"), "invoice.paid", now - 60 + i));
    }
    let body = r#"{"error":{"message":"Too many requests hit the API too quickly.","type":"invalid_request_error","code":"rate_limit"}}"#;
    fake.faults()
        .rate_limit_next(1, Duration::from_secs(1), body);
    fake.faults()
        .fail_next(1, axum::http::StatusCode::BAD_GATEWAY);
    let queue = MemoryQueue::new();
    let reconciler = Reconciler::builder(Arc::new(queue.clone()), Arc::new(queue.clone()))
        .source(source(&fake))
        .first_window(Duration::from_secs(3600))
        .page_size(3)
        .retries(3, Duration::from_millis(10))
        .build();
    let outcome = reconciler.run_once("stripe").await.unwrap();
    let report = outcome.report().expect("the pass ran");
    assert!(report.completed(), "{:?}", report.error);
    assert_eq!(report.rate_limited, 1);
    assert_eq!(report.retries, 1);
    assert_eq!(fake.faults().faults_served(), 2);
    assert_eq!(report.recovered, 7);
    assert_eq!(report.pages, 3);
}

#[tokio::test]
async fn a_pass_stores_missing_events_and_counts_known_ones() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let now = now_secs();
    for i in 0..10 {
        fake.add_event(event(
            &format!("evt_{i}"),
            "invoice.paid",
            now - 120 + i * 10,
        ));
    }
    let queue = MemoryQueue::new();
    // The push path got four of them.
    for i in [1, 4, 5, 8] {
        let id = format!("evt_{i}");
        let body = fake.event_body(&id).unwrap();
        queue
            .enqueue(RawEvent::new("stripe", id, SystemTime::now(), body))
            .await
            .unwrap();
    }
    let reconciler = Reconciler::builder(Arc::new(queue.clone()), Arc::new(queue.clone()))
        .source(source(&fake))
        .first_window(Duration::from_secs(3600))
        .page_size(3)
        .build();
    let report = reconciler
        .run_once("stripe")
        .await
        .unwrap()
        .report()
        .cloned()
        .unwrap();
    assert!(report.completed(), "{:?}", report.error);
    assert_eq!((report.seen, report.known, report.recovered), (10, 4, 6));
    assert_eq!(report.pages, 4);
    for i in 0..10 {
        let id = format!("evt_{i}");
        let logged = queue.get("stripe", &id).await.unwrap().expect("stored");
        let expected = if [1, 4, 5, 8].contains(&i) {
            Origin::Push
        } else {
            Origin::Reconciliation
        };
        assert_eq!(logged.event.origin, expected, "{id}");
        assert_eq!(
            logged.event.body.as_ref(),
            fake.event_body(&id).unwrap().as_bytes()
        );
        if expected == Origin::Reconciliation {
            assert_eq!(
                logged.event.event_type.as_ref().map(|t| t.as_str()),
                Some("invoice.paid")
            );
        }
    }

    // The next pass reaches back by the overlap only, and finds nothing new there.
    let report = reconciler
        .run_once("stripe")
        .await
        .unwrap()
        .report()
        .cloned()
        .unwrap();
    assert!(report.completed(), "{:?}", report.error);
    assert_eq!(report.recovered, 0);
    assert_eq!(report.known, report.seen);
    assert!(report.seen >= 10, "every event lies in the overlap");
}

#[tokio::test]
async fn the_fake_follows_stripes_list_format() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let now = now_secs();
    for i in 0..6 {
        fake.add_event(event(&format!("evt_{i}"), "invoice.paid", now - 60 + i));
    }
    // A plain-HTTP client for the fake; reqwest is built without a default TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let get = |query: &str| {
        http.get(format!("{}/v1/events?{query}", fake.url()))
            .bearer_auth(KEY)
            .send()
    };
    let read = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        (status, body)
    };

    let (status, body) = read(get("limit=2").await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["object"].as_str(), body["url"].as_str()),
        (Some("list"), Some("/v1/events"))
    );
    assert_eq!(body["has_more"], true);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_5", "evt_4"]);

    // `ending_before` gives the page just newer than the id, still newest first.
    let (_, body) = read(get("limit=2&ending_before=evt_1").await.unwrap()).await;
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_3", "evt_2"]);
    assert_eq!(body["has_more"], true);

    for bad in ["limit=0", "limit=101"] {
        let (status, body) = read(get(bad).await.unwrap()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "limit");
    }
    let (status, body) = read(get("starting_after=evt_gone").await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("resource_missing"))
    );

    let response = http
        .get(format!("{}/v1/events", fake.url()))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("You did not provide an API key"));
    assert_eq!(
        fake.list_requests(),
        5,
        "the unauthenticated request is not counted"
    );
}
