//! Flow-control benchmark on the real clock: a SQLite queue holding a backlog, drained by
//! the [`Worker`] through a rate limit (default 50/s, burst 1) for a fixed time (default
//! 60 s), printing the rate achieved against the one configured. Nothing here asserts; the
//! deterministic check is `tests/flow_control.rs` on Tokio's paused clock.
//!
//! ```sh
//! cargo bench --features rate-limit,sqlite --bench flow
//! # knobs:
//! HOOKDOCK_FLOW_SECS=20 HOOKDOCK_FLOW_RATE=200 HOOKDOCK_FLOW_BURST=2 HOOKDOCK_FLOW_BACKLOG=10000 \
//!     cargo bench --features rate-limit,sqlite --bench flow
//! ```
//!
//! The backlog must be larger than the rate times the time, or the worker runs dry; the
//! benchmark says so if it did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hookdock::limit::RateLimit;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{Queue, QueueOptions};
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::RawEvent;
use tower::service_fn;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs = knob("HOOKDOCK_FLOW_SECS", 60);
    let rate = u32::try_from(knob("HOOKDOCK_FLOW_RATE", 50))?;
    let backlog = knob("HOOKDOCK_FLOW_BACKLOG", 5_000);
    let burst = u32::try_from(knob("HOOKDOCK_FLOW_BURST", 1))?;
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("flow.db"), SqliteOptions::new())?;
    let queue = Arc::new(store.queue(QueueOptions::default()));
    let fill: Vec<_> = (0..backlog)
        .map(|i| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                queue
                    .enqueue(RawEvent::new(
                        "burst",
                        format!("e-{i}"),
                        SystemTime::now(),
                        "{}",
                    ))
                    .await
            })
        })
        .collect();
    for task in fill {
        task.await??;
    }

    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
    let worker = Worker::builder(Arc::clone(&queue))
        .dedupe(store.idempotency())
        .rate_limit(RateLimit::per_second(rate, burst)?)
        .build(service_fn(move |_: Event| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok::<_, HandlerError>(())
            }
        }))?;
    let started = Instant::now();
    let handle = worker.spawn();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let n = handled.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let stats = handle.stats();
    handle.shutdown().await;

    let achieved = n as f64 / elapsed;
    println!(
        "flow: {n} handled in {elapsed:.1} s = {achieved:.2}/s against {rate}/s burst {burst} ({:.3}x); {} handed back; backlog {backlog}",
        achieved / f64::from(rate),
        stats.deferred,
    );
    if n >= backlog {
        println!("flow: the backlog ran dry; raise HOOKDOCK_FLOW_BACKLOG");
    }
    store.close().await;
    Ok(())
}
