//! Cost of the event log's retention on the SQLite backend: intake (durable enqueues of new,
//! random-id 1 KiB events from many concurrent callers, as the intake service makes them)
//! and drain (the [`Worker`] through the dedupe layer into a no-op handler, durable acks),
//! with 0, 1M and 5M handled events retained, against retention off (a retention of zero:
//! events are forgotten when acked), all in the same run.
//!
//! ```sh
//! cargo bench --all-features --bench retention          # 1M and 5M retained
//! HOOKDOCK_RETENTION_SIZES=100000,500000 HOOKDOCK_RETENTION_EVENTS=20000 \
//!     HOOKDOCK_RETENTION_ROUNDS=3 cargo bench --bench retention
//! ```
//!
//! Every measurement runs in a fresh child process (so its peak RSS, `VmHWM`, is its own):
//! it opens the database, enqueues `HOOKDOCK_RETENTION_EVENTS` (default 600,000: more than
//! twice the keys one merge into the key index carries, so the merges' cost is in the
//! figures) new events with 256 concurrent callers, then drains them with one worker.
//! For the first row (0 retained) each round starts from an empty database. Each figure is the median
//! of `HOOKDOCK_RETENTION_ROUNDS` (default 3) such processes, and each one is taken right
//! after one on a database with retention off, so every ratio compares two runs that saw
//! the same machine. The retained events are
//! filled in between, by another child process, through the public queue API (enqueue,
//! lease, ack), so they are what a receiver would have left. Printed: events/s for intake
//! and drain at each size and as a ratio to retention off, peak RSS and its ratio to the
//! smallest size, and the database's size per retained event. Each round adds what it
//! measured to the retained events, so a row's rounds start from its size and from
//! one and two rounds' events more. `HOOKDOCK_RETENTION_CACHE_KIB` sets the SQLite page
//! cache of every child (default the store's, 2 MiB), `HOOKDOCK_RETENTION_MERGE_KEYS` its
//! `key_merge_batch` (default the store's).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{Queue, QueueOptions};
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::RawEvent;
use support::{env_usize, field, listing_only, median, uuid, vm_hwm_kib, BoxResult};
use tokio::task::JoinSet;
use tower::service_fn;

const ROLE: &str = "HOOKDOCK_RETENTION_ROLE";
const DB: &str = "HOOKDOCK_RETENTION_DB";
const N: &str = "HOOKDOCK_RETENTION_N";
/// Where the ids of a child start, so no two children store the same id.
const FIRST: &str = "HOOKDOCK_RETENTION_FIRST";
/// `off` (retention zero) or `on` (seven days).
const MODE: &str = "HOOKDOCK_RETENTION_MODE";

fn main() {
    if listing_only() {
        return;
    }
    let result = match std::env::var(ROLE).as_deref() {
        Ok("fill") => child(fill),
        Ok("measure") => child(measure),
        _ => driver(),
    };
    if let Err(err) = result {
        eprintln!("retention benchmark: {err}");
        std::process::exit(1);
    }
}

type Role = fn(
    SqliteStore,
    usize,
    usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>>;

/// Runs a child role on a 2-thread runtime and prints its result line.
fn child(role: Role) -> BoxResult<()> {
    let db = std::env::var(DB)?;
    let retention = match std::env::var(MODE).as_deref() {
        Ok("off") => Duration::ZERO,
        _ => Duration::from_secs(7 * 24 * 3600),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let line = rt.block_on(async move {
        let mut options = SqliteOptions::new().retention(retention);
        if let Ok(kib) = std::env::var("HOOKDOCK_RETENTION_CACHE_KIB") {
            options = options.cache_size_kib(kib.parse()?);
        }
        if let Ok(keys) = std::env::var("HOOKDOCK_RETENTION_MERGE_KEYS") {
            options = options.key_merge_batch(keys.parse()?);
        }
        let store = SqliteStore::open(&db, options)?;
        let line = role(store.clone(), env_usize(N, 0), env_usize(FIRST, 0)).await;
        store.close().await;
        line
    })?;
    println!("{line}");
    Ok(())
}

fn body() -> Bytes {
    let mut s = String::from("{\"action\":\"opened\",\"payload\":\"");
    while s.len() < 1020 {
        s.push('x');
    }
    s.push_str("\"}");
    Bytes::from(s)
}

/// Enqueues events `first..first + n` with 256 concurrent callers; returns the seconds.
async fn enqueue(queue: &Arc<dyn Queue>, first: usize, n: usize) -> BoxResult<f64> {
    let body = body();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let mut next = first;
    while next < first + n || !tasks.is_empty() {
        while tasks.len() < 256 && next < first + n {
            let q = queue.clone();
            let e = RawEvent::new("github", uuid(next), SystemTime::now(), body.clone())
                .with_event_type("push");
            tasks.spawn(async move { q.enqueue(e).await });
            next += 1;
        }
        if let Some(done) = tasks.join_next().await {
            done??;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Stores `n` events and handles them (lease, ack): what a receiver leaves in the log.
fn fill(
    store: SqliteStore,
    n: usize,
    first: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>> {
    Box::pin(async move {
        let queue: Arc<dyn Queue> = Arc::new(store.queue(QueueOptions::default()));
        let chunk = 100_000;
        let mut done = 0;
        let start = Instant::now();
        while done < n {
            let k = chunk.min(n - done);
            enqueue(&queue, first + done, k).await?;
            let mut acked = 0;
            while acked < k {
                let batch = queue.lease(1000, Duration::from_secs(300)).await?;
                if batch.is_empty() {
                    return Err("the fill found nothing to lease".into());
                }
                let mut acks = JoinSet::new();
                for l in batch {
                    let q = queue.clone();
                    acks.spawn(async move { q.ack(&l.lease).await });
                }
                while let Some(r) = acks.join_next().await {
                    r??;
                    acked += 1;
                }
            }
            done += k;
        }
        Ok(format!(
            "fill n={n} secs={:.1}",
            start.elapsed().as_secs_f64()
        ))
    })
}

/// Intake then drain of `n` new events; prints both rates and the peak RSS.
fn measure(
    store: SqliteStore,
    n: usize,
    first: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>> {
    Box::pin(async move {
        let sq = store.queue(QueueOptions::default());
        let queue: Arc<dyn Queue> = Arc::new(sq.clone());
        let intake_secs = enqueue(&queue, first, n).await?;
        let handled = Arc::new(AtomicU64::new(0));
        let seen = handled.clone();
        let worker = Worker::builder(sq)
            .dedupe(store.idempotency())
            .concurrency(512)
            .batch_size(256)
            .build(service_fn(move |event: Event| {
                seen.fetch_add(1, Ordering::Relaxed);
                std::hint::black_box(event.body().len());
                async { Ok::<_, HandlerError>(()) }
            }))?;
        let start = Instant::now();
        let handle = worker.spawn();
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if handle.stats().succeeded >= n as u64 {
                break;
            }
            if start.elapsed() > Duration::from_secs(600) {
                return Err("the drain did not finish in 10 minutes".into());
            }
        }
        let drain_secs = start.elapsed().as_secs_f64();
        handle.shutdown().await;
        Ok(format!(
            "measure intake={:.0} drain={:.0} rss_kib={}",
            n as f64 / intake_secs,
            n as f64 / drain_secs,
            vm_hwm_kib()
        ))
    })
}

/// Runs a child role; returns its last output line.
fn run_child(role: &str, db: &Path, mode: &str, n: usize, first: usize) -> BoxResult<String> {
    let out = Command::new(std::env::current_exe()?)
        .env(ROLE, role)
        .env(DB, db)
        .env(MODE, mode)
        .env(N, n.to_string())
        .env(FIRST, first.to_string())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{role} child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8(out.stdout)?;
    stdout
        .lines()
        .last()
        .map(str::to_owned)
        .ok_or_else(|| format!("{role} child printed nothing").into())
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    intake: f64,
    drain: f64,
    rss_kib: f64,
}

/// `rounds` measurements on `on_db`, each beside one on `off_db` (retention off) taken just
/// before it, so both see the same machine; the medians of each.
fn rounds(
    off_db: &Path,
    on_db: &Path,
    n: usize,
    rounds: usize,
    fresh: bool,
    next_id: &mut usize,
) -> BoxResult<(Figures, Figures)> {
    let mut runs: [(Vec<f64>, Vec<f64>, Vec<f64>); 2] = Default::default();
    for _ in 0..rounds {
        if fresh {
            remove_db(on_db)?;
        }
        for (i, (db, mode)) in [(off_db, "off"), (on_db, "on")].into_iter().enumerate() {
            let line = run_child("measure", db, mode, n, *next_id)?;
            *next_id += n;
            runs[i].0.push(field(&line, "intake")?);
            runs[i].1.push(field(&line, "drain")?);
            runs[i].2.push(field(&line, "rss_kib")?);
        }
    }
    let [off, on] = runs.map(|(i, d, r)| Figures {
        intake: median(i),
        drain: median(d),
        rss_kib: median(r),
    });
    Ok((off, on))
}

/// Deletes a database and its WAL, if they exist.
fn remove_db(db: &Path) -> BoxResult<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(p)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

fn file_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).ok().map(|m| m.len())
        })
        .sum()
}

fn driver() -> BoxResult<()> {
    let sizes: Vec<usize> = std::env::var("HOOKDOCK_RETENTION_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000, 5_000_000]);
    let n = env_usize("HOOKDOCK_RETENTION_EVENTS", 600_000);
    let r = env_usize("HOOKDOCK_RETENTION_ROUNDS", 3).max(1);
    let dir = tempfile::tempdir_in(
        std::env::var("HOOKDOCK_RETENTION_DIR").unwrap_or_else(|_| ".".into()),
    )?;
    println!(
        "retention benchmark: {n} new events per measurement (intake, then drain), median of {r} \
         processes; retained sizes {sizes:?}; databases in {}",
        dir.path().display()
    );
    let mut next_id = 0;
    let off_db = dir.path().join("off.db");
    let on_db = dir.path().join("on.db");
    let (off0, on0) = rounds(&off_db, &on_db, n, r, true, &mut next_id)?;
    let mut rows = vec![(0usize, off0, on0)];
    let mut retained = n;
    for &size in &sizes {
        if size > retained {
            let line = run_child("fill", &on_db, "on", size - retained, next_id)?;
            next_id += size - retained;
            retained = size;
            println!("  filled to {size} retained ({line})");
        }
        let (off, on) = rounds(&off_db, &on_db, n, r, false, &mut next_id)?;
        // The rounds added what they measured: the file holds that many more.
        retained += r * n;
        let bytes = file_bytes(&on_db);
        println!(
            "  {size} retained (then {retained} after the rounds): database {:.1} MiB, \
             {:.0} bytes per retained event",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / retained as f64
        );
        rows.push((size, off, on));
    }
    println!();
    println!(
        "| retained | intake ev/s (off) | intake vs off | drain ev/s (off) | drain vs off | peak RSS KiB | RSS vs 0 retained |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (size, off, on) in &rows {
        println!(
            "| {size} | {:.0} ({:.0}) | {:.3} | {:.0} ({:.0}) | {:.3} | {:.0} | {:.3} |",
            on.intake,
            off.intake,
            on.intake / off.intake,
            on.drain,
            off.drain,
            on.drain / off.drain,
            on.rss_kib,
            on.rss_kib / on0.rss_kib
        );
    }
    Ok(())
}
