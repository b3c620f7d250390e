//! End to end over real HTTP and a real SQLite file: the receiver example (verify → durable
//! intake → worker with dedupe → demo handler) as a child process, driven by signed GitHub
//! deliveries, with the handler's *effects* counted in a separate file it appends to and
//! fsyncs (one line per applied event), never its calls.
//!
//! - `same_delivery_three_times_is_applied_once`
//! - `killed_mid_handling_is_redelivered_after_lease_expiry_and_applied_once`
//! - `permanent_failure_dead_letters_then_replay_after_fix_applies_once`

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hookdock::scheme::Preset;
use hookdock::testing::Signer;
use support::Receiver;

const SECRET: &str = "e2e-worker-github-secret";
/// Short leases, so a killed worker's event comes back within seconds.
const LEASE_MS: &str = "1500";

/// How many times each event's effect was applied, from the effects file.
fn effects(path: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        *counts.entry(line.to_owned()).or_default() += 1;
    }
    counts
}

async fn deliver(addr: SocketAddr, id: &str, body: &str) -> u16 {
    let signer = Signer::new(&Preset::github([SECRET]).expect("secret")).expect("signer");
    let delivery = signer
        .delivery(body.to_owned())
        .id(id)
        .event_type("push")
        .sign()
        .expect("signed");
    reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/github"))
        .headers(delivery.headers)
        .body(delivery.body)
        .send()
        .await
        .expect("the receiver answers")
        .status()
        .as_u16()
}

async fn admin(addr: SocketAddr, method: &str, path: &str) -> serde_json::Value {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}{path}");
    let request = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    let response = request.send().await.expect("admin route answers");
    assert!(
        response.status().is_success(),
        "{method} {path}: {}",
        response.status()
    );
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).expect("JSON")
}

/// Polls `check` (up to a minute) until it holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn queue_depth(addr: SocketAddr) -> u64 {
    let stats = admin(addr, "GET", "/admin/stats").await;
    ["ready", "leased", "scheduled"]
        .iter()
        .map(|k| stats["queue"][k].as_u64().unwrap_or(u64::MAX / 4))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_delivery_three_times_is_applied_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, fx) = (dir.path().join("q.db"), dir.path().join("effects"));
    let fx_s = fx.to_str().expect("utf-8 path");
    let receiver = Receiver::start(
        &db,
        SECRET,
        &[
            ("HOOKDOCK_DEMO_EFFECTS", fx_s),
            ("HOOKDOCK_LEASE_MS", LEASE_MS),
        ],
    );
    let addr = receiver.addr;
    let body = r#"{"ref":"refs/heads/main","after":"abc123"}"#;
    for n in 1..=3u64 {
        // Each delivery comes after the previous one was handled and acked, so the queue
        // stores it as new: only dedupe stands between it and the handler.
        assert_eq!(deliver(addr, "dup-1", body).await, 200);
        eventually("the delivery is handled or skipped", || async {
            let stats = admin(addr, "GET", "/admin/stats").await;
            let worker = &stats["worker"];
            let settled = worker["succeeded"].as_u64().unwrap_or(0)
                + worker["duplicates"].as_u64().unwrap_or(0);
            queue_depth(addr).await == 0 && settled == n
        })
        .await;
    }
    assert_eq!(effects(&fx).get("github/dup-1"), Some(&1));
    assert_eq!(effects(&fx).len(), 1);
    let stats = admin(addr, "GET", "/admin/stats").await;
    assert_eq!(
        stats["worker"]["duplicates"], 2,
        "skipped by dedupe: {stats}"
    );
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_handling_is_redelivered_after_lease_expiry_and_applied_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, fx) = (dir.path().join("q.db"), dir.path().join("effects"));
    let fx_s = fx.to_str().expect("utf-8 path");
    // The first process takes a minute per event: it is killed in the middle.
    let slow = Receiver::start(
        &db,
        SECRET,
        &[
            ("HOOKDOCK_DEMO_EFFECTS", fx_s),
            ("HOOKDOCK_LEASE_MS", LEASE_MS),
            ("HOOKDOCK_DEMO_DELAY_MS", "60000"),
        ],
    );
    assert_eq!(deliver(slow.addr, "crash-1", r#"{"n":1}"#).await, 200);
    let first = slow.wait_for_line("handling github/crash-1");
    assert!(first.ends_with("attempt=1"), "{first}");
    slow.kill();
    assert!(effects(&fx).is_empty(), "killed before the effect");

    // A new process: the event comes back once the dead worker's lease expires.
    let fixed = Receiver::start(
        &db,
        SECRET,
        &[
            ("HOOKDOCK_DEMO_EFFECTS", fx_s),
            ("HOOKDOCK_LEASE_MS", LEASE_MS),
        ],
    );
    let addr = fixed.addr;
    eventually("the redelivered event is applied", || async {
        effects(&fx).contains_key("github/crash-1") && queue_depth(addr).await == 0
    })
    .await;
    let again = fixed.printed("handling github/crash-1");
    assert!(
        again.iter().any(|l| l.ends_with("attempt=2")),
        "redelivered as the second attempt: {again:?}"
    );
    assert_eq!(effects(&fx).get("github/crash-1"), Some(&1));
    // And it stays applied once: nothing else is pending or dead.
    let stats = admin(addr, "GET", "/admin/stats").await;
    assert_eq!(stats["queue"]["dead"], 0);
    fixed.stop();
    assert_eq!(effects(&fx).get("github/crash-1"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_dead_letters_then_replay_after_fix_applies_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, fx) = (dir.path().join("q.db"), dir.path().join("effects"));
    let fx_s = fx.to_str().expect("utf-8 path");
    let broken = Receiver::start(
        &db,
        SECRET,
        &[
            ("HOOKDOCK_DEMO_EFFECTS", fx_s),
            ("HOOKDOCK_LEASE_MS", LEASE_MS),
            ("HOOKDOCK_DEMO_FAIL_RATE", "1"),
            ("HOOKDOCK_DEMO_FAIL_KIND", "permanent"),
        ],
    );
    let body = r#"{"action":"opened","number":7}"#;
    assert_eq!(deliver(broken.addr, "perm-1", body).await, 200);
    let addr = broken.addr;
    eventually("the event is dead-lettered", || async {
        let dead = admin(addr, "GET", "/admin/dead").await;
        dead["dead"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let dead = admin(addr, "GET", "/admin/dead?source=github").await;
    let letter = &dead["dead"][0];
    assert_eq!(letter["event_id"], "perm-1");
    assert_eq!(letter["attempts"], 1);
    let reason = letter["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("permanent failure: demo failure"),
        "{reason}"
    );
    let message = letter["message"].as_i64().expect("message id");
    assert!(effects(&fx).is_empty());
    broken.stop();

    // The handler is fixed (the new process does not fail); replay that one event.
    let fixed = Receiver::start(
        &db,
        SECRET,
        &[
            ("HOOKDOCK_DEMO_EFFECTS", fx_s),
            ("HOOKDOCK_LEASE_MS", LEASE_MS),
        ],
    );
    let addr = fixed.addr;
    let replayed = admin(addr, "POST", &format!("/admin/dead/replay?id={message}")).await;
    assert_eq!(replayed["replayed"], 1);
    eventually("the replayed event is applied", || async {
        effects(&fx).contains_key("github/perm-1") && queue_depth(addr).await == 0
    })
    .await;
    assert_eq!(
        admin(addr, "GET", "/admin/dead").await["dead"],
        serde_json::json!([])
    );
    // Nothing more to replay, and a late duplicate from the provider is skipped.
    assert_eq!(
        admin(addr, "POST", "/admin/dead/replay").await["replayed"],
        0
    );
    assert_eq!(deliver(addr, "perm-1", body).await, 200);
    eventually("the duplicate is skipped", || async {
        let stats = admin(addr, "GET", "/admin/stats").await;
        let settled = stats["worker"]["succeeded"].as_u64().unwrap_or(0)
            + stats["worker"]["duplicates"].as_u64().unwrap_or(0);
        settled == 2 && queue_depth(addr).await == 0
    })
    .await;
    fixed.stop();
    assert_eq!(effects(&fx).get("github/perm-1"), Some(&1));
    assert_eq!(effects(&fx).len(), 1);
}
