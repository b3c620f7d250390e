//! Drain benchmark: a SQLite queue pre-filled with a backlog of events, drained by the
//! [`Worker`] through the dedupe layer (claims and completions in the same SQLite database)
//! into a no-op handler, with durable (`synchronous=FULL`) acks.
//!
//! ```sh
//! cargo bench --bench drain
//! # sizes and knobs:
//! HOOKDOCK_DRAIN_SIZES=10000,100000 HOOKDOCK_DRAIN_CONCURRENCY=512 HOOKDOCK_DRAIN_BATCH=256 \
//!     cargo bench --bench drain
//! ```
//!
//! For each backlog size the benchmark fills a fresh database in one child process, then
//! drains it in a *fresh* child process, so the peak RSS (`VmHWM` from `/proc/self/status`)
//! is the draining process's own. It prints events/s and peak RSS per size and the RSS ratio
//! between the largest and the smallest backlog (the goal: flat, within 10%), twice: with the
//! default SQLite page cache (8 MiB per connection), and with a 2 MiB cache, smaller than
//! either database, which separates the cache filling up to its bound from anything that
//! would grow with the backlog. As the baseline measured in the same run it drains the same
//! kind of queue bare (lease a batch, ack every message; no worker, no dedupe) and prints the
//! worker's rate as a fraction of it.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hookdock::queue::{Queue, QueueOptions};
use hookdock::sqlite::{SqliteOptions, SqliteStore};
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::RawEvent;
use tokio::task::JoinSet;
use tower::service_fn;

const ROLE: &str = "HOOKDOCK_DRAIN_ROLE";
const DB: &str = "HOOKDOCK_DRAIN_DB";
const N: &str = "HOOKDOCK_DRAIN_N";
const CACHE: &str = "HOOKDOCK_DRAIN_CACHE_KIB";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let result = match std::env::var(ROLE).as_deref() {
        Ok("prefill") => child(prefill),
        Ok("worker") => child(drain_worker),
        Ok("bare") => child(drain_bare),
        _ => driver(),
    };
    if let Err(err) = result {
        eprintln!("drain benchmark: {err}");
        std::process::exit(1);
    }
}

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What a child role returns: its result line.
type RoleFuture = std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>>;

/// Runs one child role on a 2-thread runtime (the machine has 2 cores) and prints its
/// result line.
fn child(role: fn(String, usize) -> RoleFuture) -> BoxResult<()> {
    let db = std::env::var(DB)?;
    let n = env_usize(N, 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let line = rt.block_on(role(db, n))?;
    println!("{line}");
    Ok(())
}

fn body(i: usize) -> String {
    // About 400 bytes, shaped like a small provider payload.
    format!(
        r#"{{"id":"evt_{i:010}","object":"event","type":"invoice.paid","created":1700000000,"livemode":false,"data":{{"object":{{"id":"in_{i:010}","object":"invoice","amount_paid":4200,"currency":"eur","customer":"cus_{c:06}","status":"paid","lines":{{"object":"list","total_count":1}}}}}},"request":{{"id":null,"idempotency_key":"{i:x}"}},"pending_webhooks":1}}"#,
        c = i % 1000
    )
}

fn prefill(db: String, n: usize) -> RoleFuture {
    Box::pin(async move {
        let store = SqliteStore::open(&db, store_options())?;
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        let mut next = 0usize;
        while next < n || !tasks.is_empty() {
            while next < n && tasks.len() < 1024 {
                let q = queue.clone();
                let i = next;
                tasks.spawn(async move {
                    let mut headers = http::HeaderMap::new();
                    headers.insert(
                        "stripe-signature",
                        http::HeaderValue::from_static("t=1,v1=00"),
                    );
                    q.enqueue(
                        RawEvent::new("bench", format!("evt_{i:010}"), SystemTime::now(), body(i))
                            .with_headers(headers),
                    )
                    .await
                });
                next += 1;
            }
            if let Some(done) = tasks.join_next().await {
                done??;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let stats = queue.stats().await?;
        store.close().await;
        if stats.ready != n as u64 {
            return Err(format!("prefilled {} events, expected {n}", stats.ready).into());
        }
        Ok(format!("prefill n={n} secs={secs:.3}"))
    })
}

fn drain_worker(db: String, n: usize) -> RoleFuture {
    Box::pin(async move {
        let store = SqliteStore::open(&db, store_options())?;
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let handled = Arc::new(AtomicU64::new(0));
        let seen = handled.clone();
        let worker = Worker::builder(queue.clone())
            .idempotency(store.idempotency())
            .concurrency(env_usize("HOOKDOCK_DRAIN_CONCURRENCY", 512))
            .batch_size(env_usize("HOOKDOCK_DRAIN_BATCH", 256))
            .build(service_fn(move |event: Event| {
                seen.fetch_add(1, Ordering::Relaxed);
                std::hint::black_box(event.body().len());
                async { Ok::<_, HandlerError>(()) }
            }))?;
        let start = Instant::now();
        let handle = worker.clone().spawn();
        // Finished when every event is acked (durably): the worker counts an ack once the
        // queue has committed it.
        while handle.stats().succeeded < n as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        let report = handle.shutdown().await;
        let stats = queue.stats().await?;
        let worker_stats = worker.stats();
        store.close().await;
        if stats.depth() != 0 || stats.dead != 0 || worker_stats.succeeded != n as u64 {
            return Err(format!(
                "drain incomplete: {stats:?}, worker {worker_stats:?}, shutdown {report:?}"
            )
            .into());
        }
        if handled.load(Ordering::Relaxed) != n as u64 {
            return Err("the handler ran a different number of times than events".into());
        }
        Ok(format!(
            "worker n={n} secs={secs:.3} rate={:.0} mean_lease={:.1} hwm_kib={} {}",
            n as f64 / secs,
            worker_stats.leased as f64 / worker_stats.leases.max(1) as f64,
            vm_hwm_kib(),
            rss_breakdown()
        ))
    })
}

fn drain_bare(db: String, n: usize) -> RoleFuture {
    Box::pin(async move {
        let store = SqliteStore::open(&db, store_options())?;
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let batch = env_usize("HOOKDOCK_DRAIN_BATCH", 256);
        let loops = (env_usize("HOOKDOCK_DRAIN_CONCURRENCY", 512) / batch).max(1);
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..loops {
            let queue = queue.clone();
            tasks.spawn(async move {
                let mut acked = 0u64;
                loop {
                    let leased = queue.lease(batch, Duration::from_secs(30)).await?;
                    if leased.is_empty() {
                        return Ok::<_, hookdock::StoreError>(acked);
                    }
                    let acks = leased.iter().map(|l| queue.ack(&l.lease));
                    for r in futures_util::future::join_all(acks).await {
                        r?;
                        acked += 1;
                    }
                }
            });
        }
        let mut acked = 0;
        while let Some(done) = tasks.join_next().await {
            acked += done??;
        }
        let secs = start.elapsed().as_secs_f64();
        store.close().await;
        if acked != n as u64 {
            return Err(format!("bare drain acked {acked}, expected {n}").into());
        }
        Ok(format!(
            "bare n={n} secs={secs:.3} rate={:.0} hwm_kib={}",
            n as f64 / secs,
            vm_hwm_kib()
        ))
    })
}

/// The store's settings: the defaults, or `HOOKDOCK_DRAIN_CACHE_KIB` for the page cache.
fn store_options() -> SqliteOptions {
    match std::env::var(CACHE).ok().and_then(|v| v.parse().ok()) {
        Some(kib) => SqliteOptions::default().cache_size_kib(kib),
        None => SqliteOptions::default(),
    }
}

/// Peak resident set size of this process, in KiB (0 where `/proc` is unavailable).
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Current resident memory by kind (anonymous, file-backed, shared), for the record.
fn rss_breakdown() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    ["RssAnon", "RssFile", "RssShmem"]
        .iter()
        .map(|key| {
            let kib = status
                .lines()
                .find(|l| l.starts_with(&format!("{key}:")))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?");
            format!("{}_kib={kib}", key.to_lowercase())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `key=value` fields from a child's result line.
fn field(line: &str, key: &str) -> BoxResult<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .ok_or_else(|| format!("no {key} in {line:?}"))?
        .parse::<f64>()
        .map_err(Into::into)
}

fn run_child(
    role: &str,
    db: &std::path::Path,
    n: usize,
    cache_kib: Option<u32>,
) -> BoxResult<String> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env(ROLE, role).env(DB, db).env(N, n.to_string());
    match cache_kib {
        Some(kib) => cmd.env(CACHE, kib.to_string()),
        None => cmd.env_remove(CACHE),
    };
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "{role} child failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = String::from_utf8(out.stdout)?;
    Ok(line.trim().to_owned())
}

/// One drain per backlog size with the given page cache; returns (size, rate, peak RSS KiB).
fn series(
    dir: &std::path::Path,
    sizes: &[usize],
    cache_kib: Option<u32>,
) -> BoxResult<Vec<(usize, f64, f64)>> {
    let label = match cache_kib {
        Some(kib) => format!("page cache {} MiB", kib / 1024),
        None => "default page cache (8 MiB)".to_owned(),
    };
    let mut results = Vec::new();
    for &n in sizes {
        let db = dir.join(format!("worker-{n}-{}.db", cache_kib.unwrap_or(0)));
        let fill = run_child("prefill", &db, n, cache_kib)?;
        let drained = run_child("worker", &db, n, cache_kib)?;
        let (rate, hwm) = (field(&drained, "rate")?, field(&drained, "hwm_kib")?);
        println!(
            "  backlog {n:>7}, {label}: prefill {:>5.2}s | drain {:>5.2}s = {rate:>6.0} events/s, \
             peak RSS {:>5.1} MiB (at exit: anon {:.1}, file {:.1} MiB)",
            field(&fill, "secs")?,
            field(&drained, "secs")?,
            hwm / 1024.0,
            field(&drained, "rssanon_kib")? / 1024.0,
            field(&drained, "rssfile_kib")? / 1024.0,
        );
        results.push((n, rate, hwm));
    }
    Ok(results)
}

fn driver() -> BoxResult<()> {
    let sizes: Vec<usize> = std::env::var("HOOKDOCK_DRAIN_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let (Some(&smallest), Some(&largest)) = (sizes.iter().min(), sizes.iter().max()) else {
        return Err("HOOKDOCK_DRAIN_SIZES lists no sizes".into());
    };
    println!(
        "drain benchmark: SQLite (WAL, synchronous=FULL), dedupe on the same database, no-op \
         handler; concurrency {}, batch {}",
        env_usize("HOOKDOCK_DRAIN_CONCURRENCY", 512),
        env_usize("HOOKDOCK_DRAIN_BATCH", 256)
    );
    let dir = tempfile::tempdir()?;
    let default_cache = series(dir.path(), &sizes, None)?;
    // SQLite's page cache is a bounded buffer (per connection) that fills as the drain reads
    // the database. A 10,000-event database (~6 MB) fits in the default 8 MiB cache without
    // filling it, a 100,000-event one fills it: that difference is the cache reaching its
    // bound, not memory growing with the backlog. With a cache smaller than both databases,
    // both runs fill it, and what remains is everything else.
    let small_cache = series(dir.path(), &sizes, Some(2048))?;

    let bare_db = dir.path().join(format!("bare-{largest}.db"));
    run_child("prefill", &bare_db, largest, None)?;
    let bare = run_child("bare", &bare_db, largest, None)?;
    let bare_rate = field(&bare, "rate")?;
    println!(
        "  baseline, backlog {largest}: bare lease+ack drain (no worker, no dedupe) {bare_rate:.0} \
         events/s, peak RSS {:.1} MiB",
        field(&bare, "hwm_kib")? / 1024.0
    );
    let at =
        |results: &[(usize, f64, f64)], size: usize| results.iter().find(|r| r.0 == size).copied();
    if let Some(large) = at(&default_cache, largest) {
        println!(
            "  worker rate / bare rate at {largest}: {:.2}",
            large.1 / bare_rate
        );
    }
    for (label, results) in [
        ("default cache", &default_cache),
        ("2 MiB cache", &small_cache),
    ] {
        if let (Some(small), Some(large)) = (at(results, smallest), at(results, largest)) {
            println!(
                "  peak RSS at {largest} / at {smallest}, {label}: {:.3} (goal: within 10%)",
                large.2 / small.2
            );
        }
    }
    Ok(())
}
