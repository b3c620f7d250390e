//! The cost of metrics: intake (signed 1 KiB GitHub deliveries through the verify layer
//! and [`Intake`] over a SQLite queue, from many concurrent callers) and drain (the
//! [`Worker`] through the dedupe layer into a no-op handler), with the Prometheus recorder
//! installed against no recorder at all, in the same run. The library is built with the
//! `metrics` feature both ways: what is measured is recording, not compiling it in.
//!
//! ```sh
//! cargo bench --features metrics,test-util --bench metrics
//! HOOKDOCK_METRICS_EVENTS=5000 HOOKDOCK_METRICS_ROUNDS=3 \
//!     cargo bench --features metrics,test-util --bench metrics      # a quick look
//! ```
//!
//! Every measurement is a fresh child process on a fresh database: it signs
//! `HOOKDOCK_METRICS_EVENTS` (default 50,000) deliveries with new random-looking ids up
//! front, sends them through the endpoint with 256 callers at a time, then drains them with
//! one worker. Rounds alternate recorder off and on (`HOOKDOCK_METRICS_ROUNDS` of each,
//! default 5), so each pair saw the same machine; printed are every round, the medians of
//! each, and the on/off ratios (1.00 = no cost; the goal is at least 0.97).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use tokio::task::JoinSet;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use hookdock::scheme::Preset;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::QueueOptions;
use hookdock::testing::Signer;
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::{Intake, VerifyLayer};
use support::{env_usize, field, listing_only, median, uuid, BoxResult};

const ROLE: &str = "HOOKDOCK_METRICS_ROLE";
const DB: &str = "HOOKDOCK_METRICS_DB";
const SECRET: &str = "bench-metrics-secret";
const CALLERS: usize = 256;

fn main() {
    if listing_only() {
        return;
    }
    let result = match std::env::var(ROLE).as_deref() {
        Ok(mode @ ("off" | "on")) => child(mode == "on"),
        _ => driver(),
    };
    if let Err(e) = result {
        eprintln!("metrics bench: {e}");
        std::process::exit(1);
    }
}

/// One measurement: intake and drain of `n` events, with or without the recorder.
fn child(recorder: bool) -> BoxResult<()> {
    if recorder {
        let seconds = [
            0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ];
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&seconds)?
            .install_recorder()?;
        hookdock::metrics::describe();
    }
    let n = env_usize("HOOKDOCK_METRICS_EVENTS", 50_000);
    let db = std::env::var(DB)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = SqliteStore::open(&db, SqliteOptions::default())?;
        let queue = store.queue(QueueOptions::default());
        let endpoint = ServiceBuilder::new()
            .layer(VerifyLayer::new(Preset::github([SECRET])?))
            .service(Intake::new(queue.clone()));
        // Signed before the clock starts: what is timed is the receiver's side.
        let signer = Signer::new(&Preset::github([SECRET])?)?;
        let mut body = String::from("{\"action\":\"opened\",\"pad\":\"");
        body.push_str(&"x".repeat(1000));
        body.push_str("\"}");
        let body = Bytes::from(body);
        let mut requests = Vec::with_capacity(n);
        for i in 0..n {
            let delivery = signer
                .delivery(body.clone())
                .id(uuid(i))
                .event_type("push")
                .sign()?;
            requests.push(delivery.into_request::<Full<Bytes>>());
        }

        let start = Instant::now();
        let mut tasks = JoinSet::new();
        let mut requests = requests.into_iter();
        loop {
            while tasks.len() < CALLERS {
                let Some(request) = requests.next() else {
                    break;
                };
                let endpoint = endpoint.clone();
                tasks.spawn(async move { endpoint.oneshot(request).await });
            }
            match tasks.join_next().await {
                Some(answer) => {
                    let status = answer?.map_err(|e| format!("{e:?}"))?.status();
                    if status != 200 {
                        return Err(format!("intake answered {status}").into());
                    }
                }
                None => break,
            }
        }
        let intake = n as f64 / start.elapsed().as_secs_f64();

        let handled = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&handled);
        let worker = Worker::builder(queue)
            .dedupe(store.idempotency())
            .concurrency(512)
            .batch_size(256)
            .build(service_fn(move |event: Event| {
                seen.fetch_add(1, Ordering::Relaxed);
                std::hint::black_box(event.body().len());
                async { Ok::<_, HandlerError>(()) }
            }))?;
        let start = Instant::now();
        let running = worker.spawn();
        while running.stats().succeeded < n as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if start.elapsed() > Duration::from_secs(600) {
                return Err("the drain did not finish in 10 minutes".into());
            }
        }
        let drain = n as f64 / start.elapsed().as_secs_f64();
        running.shutdown().await;
        store.close().await;
        println!("measured intake={intake:.0} drain={drain:.0}");
        Ok(())
    })
}

/// Runs one child on a fresh database in `dir`; its (intake, drain) events/s.
fn measure(dir: &Path, mode: &str, round: usize) -> BoxResult<(f64, f64)> {
    let db = dir.join(format!("{mode}-{round}.db"));
    let out = Command::new(std::env::current_exe()?)
        .env(ROLE, mode)
        .env(DB, &db)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{mode} child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout
        .lines()
        .find(|l| l.starts_with("measured "))
        .ok_or("the child printed no figures")?;
    Ok((field(line, "intake")?, field(line, "drain")?))
}

fn driver() -> BoxResult<()> {
    let rounds = env_usize("HOOKDOCK_METRICS_ROUNDS", 5).max(1);
    let n = env_usize("HOOKDOCK_METRICS_EVENTS", 50_000);
    let dir = tempfile::tempdir()?;
    println!("metrics cost: {n} events per round, {rounds} rounds each of recorder off and on");
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let order: [&str; 2] = if round % 2 == 0 {
            ["off", "on"]
        } else {
            ["on", "off"]
        };
        for mode in order {
            let figures = measure(dir.path(), mode, round)?;
            println!(
                "  round {round} {mode:>3}: intake {:>8.0}/s  drain {:>8.0}/s",
                figures.0, figures.1
            );
            if mode == "on" {
                on.push(figures)
            } else {
                off.push(figures)
            }
        }
    }
    let med = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| median(v.iter().map(pick).collect());
    let (off_in, on_in) = (med(&off, |f| f.0), med(&on, |f| f.0));
    let (off_dr, on_dr) = (med(&off, |f| f.1), med(&on, |f| f.1));
    println!("medians: recorder off intake {off_in:.0}/s drain {off_dr:.0}/s");
    println!("         recorder on  intake {on_in:.0}/s drain {on_dr:.0}/s");
    println!(
        "on/off:  intake {:.3}  drain {:.3}  (goal: at least 0.970 each)",
        on_in / off_in,
        on_dr / off_dr
    );
    Ok(())
}
