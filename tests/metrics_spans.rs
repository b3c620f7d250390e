//! Tracing: one `delivery` span per delivery at the intake and one `attempt` span per
//! attempt in the worker, with the same field names (`source`, `event_id`, `event_type`,
//! and `attempt`), and never a secret or a body in any span or event, at any level.
//!
//! A capturing `tracing-subscriber` layer is the default subscriber of a current-thread
//! runtime, so everything the intake and worker tasks emit is seen (the SQLite writer's
//! own thread aside).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use hookdock::scheme::Preset;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::QueueOptions;
use hookdock::testing::Signer;
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::{Intake, VerifyLayer};

const SECRET: &str = "span-test-secret-3f9a";
const BODY: &str = r#"{"secret_marker":"body-bytes-7c21"}"#;

/// A span's name and fields as recorded.
#[derive(Debug, Clone)]
struct SpanSeen {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Seen {
    spans: Vec<SpanSeen>,
    /// Every field value of every event, as text.
    event_values: Vec<String>,
}

struct Capture(Arc<Mutex<Seen>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().spans.push(SpanSeen {
            name: attrs.metadata().name(),
            fields,
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .event_values
            .extend(fields.into_values());
    }
}

#[test]
fn delivery_and_attempt_spans_carry_the_same_fields_and_no_secret_or_body() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let subscriber = tracing_subscriber::registry()
        .with(Capture(seen.clone()).with_filter(tracing_subscriber::filter::LevelFilter::TRACE));
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("q.db"), SqliteOptions::default()).unwrap();
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let endpoint = ServiceBuilder::new()
            .layer(VerifyLayer::new(Preset::github([SECRET]).unwrap()))
            .service(Intake::new(Arc::clone(&queue)));
        let signer = Signer::new(&Preset::github([SECRET]).unwrap()).unwrap();
        let request = |id: &str| -> http::Request<Full<Bytes>> {
            signer
                .delivery(BODY)
                .id(id)
                .event_type("push")
                .sign()
                .unwrap()
                .into_request()
        };
        for id in ["span-1", "span-2"] {
            let answer = endpoint.clone().oneshot(request(id)).await.unwrap();
            assert_eq!(answer.status(), 200);
        }
        // A forged one too: its rejection is logged, without the signature.
        let forged = Signer::new(&Preset::github(["other"]).unwrap())
            .unwrap()
            .delivery(BODY)
            .id("span-3")
            .sign()
            .unwrap()
            .into_request::<Full<Bytes>>();
        assert_eq!(
            endpoint.clone().oneshot(forged).await.unwrap().status(),
            401
        );

        let worker = Worker::builder(Arc::clone(&queue))
            .dedupe(store.idempotency())
            .build(service_fn(|event: Event| async move {
                if event.id().as_str() == "span-2" && event.attempt() == 1 {
                    return Err(HandlerError::permanent("no"));
                }
                tracing::info!("handler ran");
                Ok(())
            }))
            .unwrap();
        worker.run_until_idle().await.unwrap();
        store.close().await;
    });

    let seen = seen.lock().unwrap();
    let spans = |name| -> Vec<&SpanSeen> { seen.spans.iter().filter(|s| s.name == name).collect() };
    let deliveries = spans("delivery");
    let attempts = spans("attempt");
    assert_eq!(
        deliveries.len(),
        2,
        "one per verified delivery: {:?}",
        seen.spans
    );
    assert_eq!(attempts.len(), 2, "one per attempt: {:?}", seen.spans);
    for span in &deliveries {
        let names: Vec<&str> = span.fields.keys().map(String::as_str).collect();
        assert_eq!(names, ["event_id", "event_type", "source"], "{span:?}");
        assert_eq!(span.fields["source"], "github");
        assert_eq!(span.fields["event_type"], "push");
    }
    for span in &attempts {
        let names: Vec<&str> = span.fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["attempt", "event_id", "event_type", "source"],
            "{span:?}"
        );
        assert_eq!(span.fields["source"], "github");
        assert_eq!(span.fields["event_type"], "push");
        assert_eq!(span.fields["attempt"], "1");
    }
    let mut ids: Vec<&str> = deliveries
        .iter()
        .map(|s| s.fields["event_id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["span-1", "span-2"]);
    let mut ids: Vec<&str> = attempts
        .iter()
        .map(|s| s.fields["event_id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["span-1", "span-2"]);

    // Nothing emitted, at any level, holds the secret, the body or a signature.
    let everything: Vec<&String> = seen
        .spans
        .iter()
        .flat_map(|s| s.fields.values())
        .chain(&seen.event_values)
        .collect();
    assert!(
        everything.iter().any(|v| v.contains("span-1")),
        "ids are recorded"
    );
    for value in everything {
        assert!(!value.contains(SECRET), "the secret in {value:?}");
        assert!(!value.contains("body-bytes-7c21"), "the body in {value:?}");
        assert!(!value.contains("sha256="), "a signature in {value:?}");
    }
}
