//! The receiver example as a real process on a real SQLite file, driven over real HTTP.
//!
//! - `crash_test`: concurrent signed deliveries, SIGKILL mid-load, restart, repeat; every
//!   delivery that got a 2xx must be stored exactly once, byte for byte, and nothing else.
//!   `long_crash_run_worker_off` / `_on` (ignored: run by hand, see the README): 100 cycles,
//!   the second with the worker handling and acking what is stored, where every
//!   acknowledged delivery must be stored or have a completed claim.
//! - `full_queue_answers_503_and_acknowledges_nothing_it_did_not_store`: the receiver at its
//!   depth limit.
//!
//! The example is built with the same features and profile as this test (so the library is
//! not built twice) by running cargo once (see `support`).

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hookdock::scheme::Preset;
use hookdock::testing::Signer;
use support::{completed_claims, stored_rows, Receiver};

const SECRET: &str = "crash-test-github-secret";
const CYCLES: usize = 6;
const CLIENTS: usize = 24;

/// Starts the receiver (intake only: this test counts stored rows, which the worker would
/// ack away) with `extra_env`.
fn start(db: &Path, extra_env: &[(&str, &str)]) -> Receiver {
    let mut env = vec![("HOOKDOCK_WORKER", "off")];
    env.extend_from_slice(extra_env);
    Receiver::start(db, SECRET, &env)
}

/// The body sent for a delivery id: derived from the id, so the stored bytes can be checked.
fn body_for(id: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"delivery\":\"{id}\",\"ref\":\"refs/heads/main\",\"pad\":\"{}\"}}",
        "x".repeat(id.len() * 7 % 300)
    ))
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Acknowledged,
    Refused(u16),
    /// No answer: the process died with the request in flight.
    Unknown,
}

/// Sends the signed GitHub delivery `id` (its body from [`body_for`]) to the receiver.
async fn send(
    client: &reqwest::Client,
    signer: &Signer,
    addr: SocketAddr,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    let delivery = signer
        .delivery(body_for(id))
        .id(id)
        .event_type("push")
        .sign()
        .expect("valid id");
    client
        .post(format!("http://{addr}/webhooks/github"))
        .headers(delivery.headers)
        .body(delivery.body)
        .send()
        .await
}

async fn deliver(client: &reqwest::Client, signer: &Signer, addr: SocketAddr, id: &str) -> Outcome {
    match send(client, signer, addr, id).await {
        Ok(r) if r.status().is_success() => Outcome::Acknowledged,
        Ok(r) => Outcome::Refused(r.status().as_u16()),
        Err(_) => Outcome::Unknown,
    }
}

/// What the clients learnt, across all cycles.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeSet<String>,
    unknown: BTreeSet<String>,
    refused: Vec<(String, u16)>,
}

/// One crash run: `cycles` times, start the receiver (worker on or off) on the same
/// database, load it from many clients, SIGKILL it mid-load.
struct CrashRun {
    cycles: usize,
    /// Whether the receiver's worker handles (and acks away) what is stored.
    worker: bool,
    /// Acknowledgements to wait for in a cycle before the kill.
    target: fn(usize) -> u64,
}

/// What a crash run counted at the end.
#[derive(Debug)]
struct CrashCounts {
    acknowledged: usize,
    stored: usize,
    completed: usize,
    lost: usize,
}

async fn crash_run(run: CrashRun) -> CrashCounts {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("crash.db");
    let signer = Arc::new(Signer::new(&Preset::github([SECRET]).expect("secret")).expect("signer"));
    // A request with no answer for 30 s counts as unanswered (and is redelivered at the
    // end): without a timeout, a pooled request can wait forever on a connection that died
    // with the process (seen once in 100 cycles).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // With the worker on: short leases, so events a killed worker held come back soon.
    let worker_env: &[(&str, &str)] = if run.worker {
        &[("HOOKDOCK_WORKER", "on"), ("HOOKDOCK_LEASE_MS", "1500")]
    } else {
        &[]
    };

    for cycle in 0..run.cycles {
        let receiver = start(&db, worker_env);
        let addr = receiver.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let acked_this_cycle = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (client, signer, ledger, stop, acked, next) = (
                client.clone(),
                Arc::clone(&signer),
                Arc::clone(&ledger),
                Arc::clone(&stop),
                Arc::clone(&acked_this_cycle),
                Arc::clone(&next),
            );
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    // Every tenth delivery is a redelivery of an earlier one, as providers
                    // retry: it must be acknowledged again and still stored once.
                    let earlier = (n % 10 == 9)
                        .then(|| {
                            let l = ledger.lock().expect("ledger");
                            let pool = &l.acknowledged;
                            pool.iter()
                                .nth((n as usize * 7919) % pool.len().max(1))
                                .cloned()
                        })
                        .flatten();
                    let id = earlier.unwrap_or_else(|| format!("c{cycle}-{n}"));
                    let outcome = deliver(&client, &signer, addr, &id).await;
                    let unknown = outcome == Outcome::Unknown;
                    {
                        let mut l = ledger.lock().expect("ledger");
                        match outcome {
                            Outcome::Acknowledged => {
                                acked.fetch_add(1, Ordering::Relaxed);
                                l.unknown.remove(&id);
                                l.acknowledged.insert(id);
                            }
                            Outcome::Unknown => {
                                if !l.acknowledged.contains(&id) {
                                    l.unknown.insert(id);
                                }
                            }
                            Outcome::Refused(status) => l.refused.push((id, status)),
                        }
                    }
                    if unknown {
                        // The server is gone (or going): stop hammering it.
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }));
        }
        // Kill once this cycle has acknowledged its target: mid-load, with requests in
        // flight on every connection.
        let target = (run.target)(cycle);
        while acked_this_cycle.load(Ordering::Relaxed) < target {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        receiver.kill();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.expect("client task");
        }
        let l = ledger.lock().expect("ledger");
        println!(
            "cycle {cycle}: SIGKILL after {} acknowledged in this cycle; {} acknowledged so far, \
             {} without an answer",
            acked_this_cycle.load(Ordering::Relaxed),
            l.acknowledged.len(),
            l.unknown.len()
        );
    }

    // The provider's retries: redeliver everything that never got an answer.
    let receiver = start(&db, &[]);
    let unknown: Vec<String> = ledger
        .lock()
        .expect("ledger")
        .unknown
        .iter()
        .cloned()
        .collect();
    let mut stored_before_answer = 0;
    for id in &unknown {
        let response = send(&client, &signer, receiver.addr, id)
            .await
            .expect("the restarted receiver answers");
        assert_eq!(response.status(), 200, "{id}");
        if response.text().await.expect("body") == "duplicate\n" {
            stored_before_answer += 1;
        }
    }
    receiver.stop();

    let l = ledger.lock().expect("ledger");
    assert!(
        l.refused.is_empty(),
        "unexpected refusals: {:?}",
        &l.refused[..l.refused.len().min(5)]
    );
    let rows = stored_rows(&db);
    let completed = completed_claims(&db);
    let acked_total = l.acknowledged.len() + unknown.len();
    println!(
        "acknowledged {} (+{} redelivered after no answer, {} of which had been stored before \
         the kill), stored {} rows, {} completed claims",
        l.acknowledged.len(),
        unknown.len(),
        stored_before_answer,
        rows.len(),
        completed.len()
    );
    let mut lost = Vec::new();
    for id in l.acknowledged.iter().chain(&unknown) {
        let key = ("github".to_owned(), id.clone());
        match rows.get(&key) {
            // Worker on: handled, acked and swept from the queue; its claim says it was.
            None if completed.contains(&key) => {}
            None => lost.push(id.clone()),
            Some((count, body)) => {
                assert_eq!(*count, 1, "delivery {id} stored {count} times");
                assert_eq!(
                    body[..],
                    body_for(id)[..],
                    "delivery {id} stored with other bytes"
                );
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged but neither stored nor completed: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Nothing that nobody acknowledged.
    let sent: BTreeSet<&String> = l.acknowledged.iter().chain(&unknown).collect();
    for (_, id) in rows.keys().chain(&completed) {
        assert!(sent.contains(id), "{id} stored but never acknowledged");
    }
    if !run.worker {
        assert_eq!(rows.len(), acked_total, "rows that nobody acknowledged");
    }
    CrashCounts {
        acknowledged: acked_total,
        stored: rows.len(),
        completed: completed.len(),
        lost: lost.len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_test() {
    let counts = crash_run(CrashRun {
        cycles: CYCLES,
        worker: false,
        target: |cycle| 150 + 60 * cycle as u64,
    })
    .await;
    assert!(counts.acknowledged >= CYCLES * 150);
}

/// The long crash run, with the worker off (every acknowledged delivery stored) and on
/// (every acknowledged delivery stored or its claim completed); about a minute each:
///
/// ```sh
/// cargo test --all-features --test receiver_process -- --ignored --nocapture long_crash_run
/// ```
async fn long_crash_run(worker: bool) -> CrashCounts {
    let counts = crash_run(CrashRun {
        cycles: 100,
        worker,
        target: |cycle| 100 + 40 * (cycle as u64 % 5),
    })
    .await;
    println!("worker {worker}, 100 SIGKILL cycles: {counts:?}");
    assert_eq!(counts.lost, 0);
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 100 SIGKILL cycles"]
async fn long_crash_run_worker_off() {
    let counts = long_crash_run(false).await;
    assert_eq!(counts.stored, counts.acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 100 SIGKILL cycles"]
async fn long_crash_run_worker_on() {
    let counts = long_crash_run(true).await;
    assert!(counts.completed > 0, "the worker handled nothing");
}

#[tokio::test]
async fn full_queue_answers_503_and_acknowledges_nothing_it_did_not_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("full.db");
    let signer = Signer::new(&Preset::github([SECRET]).expect("secret")).expect("signer");
    let client = reqwest::Client::new();
    let receiver = start(&db, &[("HOOKDOCK_MAX_DEPTH", "20")]);

    let mut acknowledged = BTreeSet::new();
    let mut refused = BTreeSet::new();
    for n in 0..30 {
        let id = format!("full-{n}");
        let response = send(&client, &signer, receiver.addr, &id)
            .await
            .expect("answer");
        match response.status().as_u16() {
            200 => {
                acknowledged.insert(id);
            }
            503 => {
                let retry_after = response.headers().get("retry-after").cloned();
                assert!(
                    retry_after.is_some_and(|v| v.to_str().is_ok_and(|s| s.parse::<u64>().is_ok())),
                    "503 carries Retry-After in seconds"
                );
                refused.insert(id);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // A redelivery of a stored event is still acknowledged at the limit: it is stored.
    let id = "full-0";
    let response = send(&client, &signer, receiver.addr, id)
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    receiver.stop();

    assert_eq!(acknowledged.len(), 20);
    assert_eq!(refused.len(), 10);
    let stored: BTreeSet<String> = stored_rows(&db).into_keys().map(|(_, id)| id).collect();
    assert_eq!(stored, acknowledged, "stored exactly what was acknowledged");
}
