//! End to end over real HTTP: the receiver example built with `--features metrics` (a real
//! process on a SQLite file), driven by a scripted scenario, then one scrape of its
//! `GET /metrics` whose counts must match the scenario exactly.
//!
//! The scenario, on the GitHub route: one event stored and handled; the same delivery sent
//! again (a duplicate); one delivery with a bad signature; one event whose handler fails its
//! first attempt and succeeds on the retry; one event whose handler fails permanently (a
//! dead letter). The demo handler is told which ids fail through `HOOKDOCK_DEMO_FAIL_IDS`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{deliver_github as deliver, Receiver};

const SECRET: &str = "metrics-e2e-github-secret";

/// One scrape: every sample, keyed by its name and its labels (sorted).
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

async fn scrape(addr: SocketAddr) -> (String, Samples) {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("text");
    let samples = parse(&text);
    (text, samples)
}

/// Parses the Prometheus text format (as the exporter writes it: no escaped quotes in
/// our label values, no timestamps).
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value.parse().expect("sample value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("closing brace");
                let mut labels: Vec<(String, String)> = rest
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("label");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                labels.sort();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), Vec::new()),
        };
        samples.insert((name, labels), value);
    }
    samples
}

/// The sample `name` with exactly these labels, if scraped.
fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    samples.get(&(name.to_owned(), labels)).copied()
}

/// The sum over every sample named `name`.
fn total(samples: &Samples, name: &str) -> f64 {
    samples
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_scenario_is_counted_exactly_on_the_metrics_route() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(support::receiver_binary());
    cmd.env("HOOKDOCK_ADDR", "127.0.0.1:0")
        .env("HOOKDOCK_DB", dir.path().join("q.db"))
        .env("HOOKDOCK_GITHUB_SECRET", SECRET)
        .env("HOOKDOCK_ROUTES", "github")
        .env("HOOKDOCK_DEMO_FAIL_IDS", "m-retry:retry,m-dead:permanent")
        .env("HOOKDOCK_METRICS_SAMPLE", "100ms")
        .env("RUST_LOG", "warn");
    let receiver = Receiver::spawn(cmd);
    receiver.wait_for_line("metrics: GET /metrics");
    let addr = receiver.addr;

    // Before anything is delivered, nothing is counted.
    let (_, before) = scrape(addr).await;
    assert_eq!(total(&before, "hookdock_deliveries_total"), 0.0);

    let body = r#"{"ref":"refs/heads/main"}"#;
    assert_eq!(
        deliver(addr, SECRET, "m-ok", body).await,
        (200, "stored\n".into())
    );
    assert_eq!(
        deliver(addr, SECRET, "m-ok", body).await,
        (200, "duplicate\n".into())
    );
    let (status, text) = deliver(addr, "not-the-secret", "m-forged", body).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(
        deliver(addr, SECRET, "m-retry", body).await,
        (200, "stored\n".into())
    );
    assert_eq!(
        deliver(addr, SECRET, "m-dead", body).await,
        (200, "stored\n".into())
    );

    // Wait until the worker has settled all four attempts (the retry comes after its
    // backoff, at most 5 s) and the gauges have sampled the end state.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (text, samples) = loop {
        let (text, samples) = scrape(addr).await;
        let settled = total(&samples, "hookdock_handler_outcomes_total") == 4.0;
        let sampled = get(
            &samples,
            "hookdock_queue_events",
            &[("source", "github"), ("state", "succeeded")],
        ) == Some(2.0)
            && get(
                &samples,
                "hookdock_queue_events",
                &[("source", "github"), ("state", "dead")],
            ) == Some(1.0);
        if settled && sampled {
            break (text, samples);
        }
        assert!(
            Instant::now() < deadline,
            "the scenario did not settle:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let github = |extra: &[(&'static str, &'static str)]| {
        let mut labels = vec![("source", "github")];
        labels.extend_from_slice(extra);
        labels
    };
    let delivery = |outcome: &'static str, kind: &'static str| {
        get(
            &samples,
            "hookdock_deliveries_total",
            &github(&[("outcome", outcome), ("kind", kind)]),
        )
    };
    // Intake and verify: three stored, one duplicate, one bad signature, nothing else.
    assert_eq!(delivery("stored", "none"), Some(3.0), "{text}");
    assert_eq!(delivery("duplicate", "none"), Some(1.0), "{text}");
    assert_eq!(delivery("rejected", "bad_signature"), Some(1.0), "{text}");
    assert_eq!(total(&samples, "hookdock_deliveries_total"), 5.0, "{text}");
    // Every delivery was checked by the scheme once.
    assert_eq!(
        get(&samples, "hookdock_verify_seconds_count", &github(&[])),
        Some(5.0)
    );

    // The worker: m-ok and m-retry acked, m-retry retried once, m-dead dead-lettered.
    let outcome = |o: &'static str| {
        get(
            &samples,
            "hookdock_handler_outcomes_total",
            &github(&[("event_type", "push"), ("outcome", o)]),
        )
    };
    assert_eq!(outcome("acked"), Some(2.0), "{text}");
    assert_eq!(outcome("retried"), Some(1.0), "{text}");
    assert_eq!(outcome("dead_lettered"), Some(1.0), "{text}");
    assert_eq!(
        get(
            &samples,
            "hookdock_handler_seconds_count",
            &github(&[("event_type", "push")])
        ),
        Some(4.0)
    );
    assert_eq!(
        get(&samples, "hookdock_retries_total", &github(&[])),
        Some(1.0)
    );
    assert_eq!(
        get(
            &samples,
            "hookdock_dead_letters_total",
            &github(&[("cause", "permanent")])
        ),
        Some(1.0)
    );
    assert_eq!(total(&samples, "hookdock_dead_letters_total"), 1.0);
    assert_eq!(
        get(
            &samples,
            "hookdock_receipt_to_done_seconds_count",
            &github(&[("outcome", "succeeded")])
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            &samples,
            "hookdock_receipt_to_done_seconds_count",
            &github(&[("outcome", "dead")])
        ),
        Some(1.0)
    );

    // The queue, as sampled: two handled, one dead, nothing waiting.
    for (state, n) in [
        ("pending", 0.0),
        ("leased", 0.0),
        ("retrying", 0.0),
        ("succeeded", 2.0),
        ("dead", 1.0),
        ("stale", 0.0),
    ] {
        assert_eq!(
            get(
                &samples,
                "hookdock_queue_events",
                &github(&[("state", state)])
            ),
            Some(n),
            "state {state}"
        );
    }
    assert_eq!(
        get(&samples, "hookdock_queue_oldest_ready_age_seconds", &[]),
        Some(0.0)
    );

    // The group commits carried at least the four enqueues.
    let ops = get(
        &samples,
        "hookdock_store_batch_size_sum",
        &[("backend", "sqlite")],
    )
    .expect("batch sizes recorded");
    assert!(ops >= 4.0, "{text}");
    assert!(
        get(
            &samples,
            "hookdock_store_commit_seconds_count",
            &[("backend", "sqlite")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // No event id reaches a label, and the units and help texts are described.
    for id in ["m-ok", "m-retry", "m-dead", "m-forged"] {
        assert!(!text.contains(id), "{id} in the scrape:\n{text}");
    }
    assert!(text.contains("# HELP hookdock_deliveries_total"), "{text}");
    assert!(
        text.contains("# TYPE hookdock_verify_seconds histogram"),
        "{text}"
    );
    receiver.stop();
}
