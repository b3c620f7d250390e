//! Throughput of the SQLite backend, every figure durable (`synchronous=FULL`):
//!
//! 1. **enqueue**: `C` concurrent callers storing 1 KiB events with group commit, against the
//!    same code committing one operation per transaction (`max_batch(1)`), measured in the
//!    same run; prints events/s, the ratio, and operations per commit.
//! 2. **drain**: a pre-filled queue drained by workers that lease a batch, then per event
//!    claim the idempotency key, complete it and ack the message (what the dedupe layer and
//!    worker do), and the same without the idempotency store; prints events/s.
//!
//! ```text
//! cargo bench --bench sqlite_queue                      # defaults
//! cargo bench --bench sqlite_queue -- --events 100000 --callers 256 --prefill 100000
//! ```
//!
//! Options: `--events N` (enqueues with group commit, default 50000), `--single N`
//! (enqueues with one commit each, default 500), `--callers C` (concurrent enqueuers,
//! default 256), `--prefill N` (events to drain, default 50000), `--lease B` (lease batch,
//! default 256), `--workers W` (concurrent drain loops, default 4), `--only enqueue|drain|drain-plain|drain-dedupe` (one part), `--repeat R` (runs per figure, median printed, default 3), `--no-memory` (skip the
//! in-memory baselines, so the peak RSS printed at the end is SQLite's alone), `--sequential`
//! (delivery ids in increasing order instead of random UUIDs: the easy case for the key index,
//! to compare with), `--dir PATH` (where the
//! databases go, default a temporary directory; use a real disk, not tmpfs).

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{
    Claim, Fingerprint, IdempotencyKey, IdempotencyStore, MemoryIdempotencyStore,
};
use hookdock::store::{MemoryQueue, Queue, QueueOptions};
use hookdock::RawEvent;
use support::uuid;

struct Args {
    events: usize,
    single: usize,
    callers: usize,
    prefill: usize,
    lease: usize,
    workers: usize,
    dir: Option<PathBuf>,
    only: Option<String>,
    repeat: usize,
    memory: bool,
}

fn args() -> Args {
    let mut a = Args {
        events: 50_000,
        single: 500,
        callers: 256,
        prefill: 50_000,
        lease: 256,
        workers: 4,
        dir: None,
        only: None,
        repeat: 3,
        memory: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        let n = value.parse().unwrap_or(0);
        match argv[i].as_str() {
            "--events" => a.events = n,
            "--single" => a.single = n,
            "--callers" => a.callers = n.max(1),
            "--prefill" => a.prefill = n,
            "--lease" => a.lease = n.max(1),
            "--workers" => a.workers = n.max(1),
            "--dir" => a.dir = Some(PathBuf::from(value)),
            "--only" => a.only = Some(value),
            "--repeat" => a.repeat = n.max(1),
            "--no-memory" => {
                a.memory = false;
                i += 1;
                continue;
            }
            "--sequential" => {
                SEQUENTIAL.store(true, Ordering::Relaxed);
                i += 1;
                continue;
            }
            // `cargo bench` passes `--bench`; ignore what we do not know.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// CPU time used so far, in microseconds: (whole process, the writer thread). Linux only;
/// zeros elsewhere.
fn cpu_micros() -> (u64, u64) {
    fn ticks(stat: &str) -> u64 {
        // Fields after the command name: state is field 3; utime and stime are 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        get(11) + get(12)
    }
    let tick_us = 10_000; // USER_HZ is 100 on Linux
    let process = std::fs::read_to_string("/proc/self/stat")
        .map(|s| ticks(&s))
        .unwrap_or(0);
    let mut writer = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim() == "hookdock-writer" {
                writer += std::fs::read_to_string(t.path().join("stat"))
                    .map(|s| ticks(&s))
                    .unwrap_or(0);
            }
        }
    }
    (process * tick_us, writer * tick_us)
}

fn body() -> Bytes {
    // A 1 KiB JSON-ish payload, typical of webhook deliveries.
    let mut s = String::from("{\"action\":\"opened\",\"payload\":\"");
    while s.len() < 1020 {
        s.push('x');
    }
    s.push_str("\"}");
    Bytes::from(s)
}

/// Set by `--sequential`: ids in increasing order instead of random ones.
static SEQUENTIAL: AtomicBool = AtomicBool::new(false);

fn event(i: usize, body: &Bytes) -> RawEvent {
    // Unique, UUID-shaped delivery ids, as GitHub sends; or increasing ones.
    let id = if SEQUENTIAL.load(Ordering::Relaxed) {
        format!("{i:036}")
    } else {
        uuid(i)
    };
    RawEvent::new("github", id, SystemTime::now(), body.clone())
}

fn open(dir: &Path, name: &str, options: SqliteOptions) -> SqliteStore {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqliteStore::open(&path, options).expect("open the database")
}

/// One measured run: events/s and CPU microseconds per event (whole process, writer
/// thread).
#[derive(Clone, Copy)]
struct Run {
    rate: f64,
    cpu: f64,
    writer_cpu: f64,
}

fn measured(events: usize, start: Instant, cpu0: (u64, u64)) -> Run {
    let rate = events as f64 / start.elapsed().as_secs_f64();
    let cpu1 = cpu_micros();
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / events.max(1) as f64;
    Run {
        rate,
        cpu: per(cpu0.0, cpu1.0),
        writer_cpu: per(cpu0.1, cpu1.1),
    }
}

/// The median run by rate.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs[runs.len() / 2]
}

/// `total` enqueues spread over `callers` concurrent tasks.
async fn enqueue_run(queue: Arc<dyn Queue>, total: usize, callers: usize) -> Run {
    let body = body();
    let cpu0 = cpu_micros();
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let queue = Arc::clone(&queue);
            let body = body.clone();
            tokio::spawn(async move {
                let mut i = c;
                while i < total {
                    queue.enqueue(event(i, &body)).await.expect("enqueue");
                    i += callers;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("enqueue task");
    }
    measured(total, start, cpu0)
}

/// Drains everything with `workers` loops of lease(batch) → per event, concurrently,
/// [claim → complete →] ack.
async fn drain_run(
    queue: Arc<dyn Queue>,
    idem: Arc<dyn IdempotencyStore>,
    workers: usize,
    batch: usize,
    dedupe: bool,
) -> (Run, usize) {
    let cpu0 = cpu_micros();
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let idem = Arc::clone(&idem);
            tokio::spawn(async move {
                let mut handled = 0usize;
                loop {
                    let leased = queue
                        .lease(batch, Duration::from_secs(60))
                        .await
                        .expect("lease");
                    if leased.is_empty() {
                        return handled;
                    }
                    handled += leased.len();
                    let settle = leased.into_iter().map(|l| {
                        let queue = Arc::clone(&queue);
                        let idem = Arc::clone(&idem);
                        async move {
                            if dedupe {
                                let key =
                                    IdempotencyKey::new(l.event.source.clone(), l.event.id.clone());
                                let fp = Fingerprint::of(&l.event.body);
                                match idem
                                    .claim(&key, &fp, Duration::from_secs(60))
                                    .await
                                    .expect("claim")
                                {
                                    Claim::Acquired(t) => {
                                        idem.complete(&key, t, None).await.expect("complete")
                                    }
                                    other => panic!("unexpected claim {other:?}"),
                                }
                            }
                            queue.ack(&l.lease).await.expect("ack");
                        }
                    });
                    futures_util::future::join_all(settle).await;
                }
            })
        })
        .collect();
    let mut handled = 0;
    for t in tasks {
        handled += t.await.expect("drain task");
    }
    (measured(handled, start, cpu0), handled)
}

fn main() {
    let a = args();
    let tmp =
        tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).expect("temp dir");
    let dir = tmp.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "sqlite_queue: synchronous=FULL, WAL, databases in {}; median of {} runs",
            dir.display(),
            a.repeat
        );
        let run = |part: &str| a.only.as_deref().is_none_or(|o| part.starts_with(o));
        let mut n = 0;
        let mut fresh = |options: SqliteOptions| {
            n += 1;
            open(dir, &format!("bench-{n}.db"), options)
        };

        if run("enqueue") {
            let mut single = Vec::new();
            let mut grouped = Vec::new();
            let mut batch = 0.0;
            for _ in 0..a.repeat {
                let store = fresh(SqliteOptions::new().max_batch(1));
                single.push(enqueue_run(Arc::new(store.queue(QueueOptions::default())), a.single, a.callers).await);
                store.close().await;
                let store = fresh(SqliteOptions::new());
                grouped.push(enqueue_run(Arc::new(store.queue(QueueOptions::default())), a.events, a.callers).await);
                batch = store.writer_stats().mean_batch();
                store.close().await;
            }
            let mut memory = Vec::new();
            for _ in 0..a.repeat {
                if a.memory {
                    memory.push(enqueue_run(Arc::new(MemoryQueue::new()), a.events, a.callers).await);
                }
            }
            let (single, grouped) = (median(single), median(grouped));
            let memory = (!memory.is_empty()).then(|| median(memory));
            let ids = if SEQUENTIAL.load(Ordering::Relaxed) {
                "sequential ids"
            } else {
                "random UUID ids"
            };
            println!("enqueue, {} concurrent callers, 1 KiB events, {ids}:", a.callers);
            println!("  one commit per op   {:>9.0} events/s", single.rate);
            println!(
                "  group commit        {:>9.0} events/s  ({:.0}x one-commit-per-op; {:.0} ops/commit; CPU/event {:.1} us, writer thread {:.1} us)",
                grouped.rate,
                grouped.rate / single.rate,
                batch,
                grouped.cpu,
                grouped.writer_cpu
            );
            if let Some(memory) = memory {
                println!(
                    "  memory (volatile)   {:>9.0} events/s  (group commit reaches {:.2} of it)",
                    memory.rate,
                    grouped.rate / memory.rate
                );
            }
        }

        for dedupe in [false, true] {
            if !run(if dedupe { "drain-dedupe" } else { "drain-plain" }) {
                continue;
            }
            let mut runs = Vec::new();
            let mut per_commit = 0.0;
            for _ in 0..a.repeat {
                let store = fresh(SqliteOptions::new());
                let queue: Arc<dyn Queue> = Arc::new(store.queue(QueueOptions::default()));
                enqueue_run(Arc::clone(&queue), a.prefill, a.callers).await;
                let before = store.writer_stats();
                let (r, handled) =
                    drain_run(queue, Arc::new(store.idempotency()), a.workers, a.lease, dedupe).await;
                let after = store.writer_stats();
                assert_eq!(handled, a.prefill, "every event must be drained once");
                per_commit = (after.operations - before.operations) as f64
                    / (after.transactions - before.transactions).max(1) as f64;
                runs.push(r);
                store.close().await;
            }
            let mut memory = Vec::new();
            for _ in 0..a.repeat {
                if !a.memory {
                    break;
                }
                let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new());
                enqueue_run(Arc::clone(&queue), a.prefill, a.callers).await;
                let idem = Arc::new(MemoryIdempotencyStore::new());
                memory.push(drain_run(queue, idem, a.workers, a.lease, dedupe).await.0);
            }
            let r = median(runs);
            let memory = (!memory.is_empty()).then(|| median(memory));
            println!(
                "drain {} events, {} workers x lease({}), {}:",
                a.prefill,
                a.workers,
                a.lease,
                if dedupe { "lease -> claim -> complete -> ack" } else { "lease -> ack" }
            );
            println!(
                "  sqlite              {:>9.0} events/s  ({:.0} ops/commit; CPU/event {:.1} us, writer thread {:.1} us)",
                r.rate, per_commit, r.cpu, r.writer_cpu
            );
            if let Some(memory) = memory {
                println!(
                    "  memory (volatile)   {:>9.0} events/s  (sqlite reaches {:.2} of it)",
                    memory.rate,
                    r.rate / memory.rate
                );
            }
        }
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned));
        if let Some(peak) = peak {
            println!("peak RSS of this process: {}", peak.trim_start_matches("VmHWM:").trim());
        }
    });
}
