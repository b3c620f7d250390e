//! Drain benchmark: a queue pre-filled with a backlog of events, drained by the [`Worker`]
//! through the dedupe layer (claims and completions in the same database as the queue) into
//! a no-op handler, with durable acks. Run on the embedded SQLite backend
//! (`synchronous=FULL`) and, when a server is configured, on PostgreSQL, by the same code.
//!
//! ```sh
//! cargo bench --all-features --bench drain
//! # with PostgreSQL beside SQLite (a throwaway local server):
//! eval "$(scripts/postgres-test-server.sh start)"
//! cargo bench --all-features --bench drain
//! scripts/postgres-test-server.sh stop "$HOOKDOCK_POSTGRES_TEST_DIR"
//! # sizes and knobs:
//! HOOKDOCK_DRAIN_SIZES=10000,100000 HOOKDOCK_DRAIN_CONCURRENCY=512 HOOKDOCK_DRAIN_BATCH=256 \
//!     HOOKDOCK_DRAIN_PG_PROCESSES=2 cargo bench --all-features --bench drain
//! ```
//!
//! For each backlog size the benchmark fills a fresh database (SQLite: a file in a temporary
//! directory; PostgreSQL: a fresh schema, dropped afterwards) in one child process, then
//! drains it in *fresh* child processes, so the peak RSS (`VmHWM` from `/proc/self/status`)
//! is the draining process's own. The drainers connect, report ready, and start together on
//! a signal from the driver; the drain time runs from that start to the last ack of any of
//! them, on one clock.
//!
//! - **SQLite**: one process with one worker (the backend is embedded: one writer thread per
//!   database). It prints events/s and peak RSS per size and the RSS ratio between the
//!   largest and the smallest backlog (the goal: flat, within 10%), twice: with the default
//!   SQLite page cache (2 MiB for the writer connection, smaller than either database), and
//!   with an 8 MiB cache (the former default), which the 10,000-event database does not fill
//!   but the 100,000-event one does: the difference between the two shows how much of the
//!   growth is the cache reaching its bound rather than anything growing with the backlog.
//! - **PostgreSQL** (`HOOKDOCK_BENCH_POSTGRES_URL`, else `HOOKDOCK_TEST_POSTGRES_URL`; skipped
//!   with a notice when neither is set; needs feature `postgres`): `HOOKDOCK_DRAIN_PG_PROCESSES`
//!   (default 2) worker *processes*, each one [`Worker`] with its own connection pool, as a
//!   deployment with several worker machines would run. Commits as the server is configured
//!   (`synchronous_commit=on` by default: durable).
//!
//! As the baseline measured in the same run, each backend also drains the same kind of queue
//! bare (lease a batch, ack every message; no worker, no dedupe) with the same number of
//! processes, and the worker's rate is printed as a fraction of it. A last table puts the two
//! backends side by side.
//!
//! Each drain also reports the CPU time it took per event, in the draining processes and (for
//! PostgreSQL) in the server's processes (the server of `scripts/postgres-test-server.sh`,
//! found through `HOOKDOCK_POSTGRES_TEST_DIR`, else every `postgres` process). Unlike events/s,
//! that does not depend on what else the machine is running: on a machine of its own with
//! `c` cores, a CPU-bound drain approaches `c / (drain + server CPU per event)` events/s.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::IdempotencyStore;
use hookdock::store::{Queue, QueueOptions};
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::RawEvent;
use support::{env_usize, field, listing_only, vm_hwm_kib, BoxResult};
use tokio::task::JoinSet;
use tower::service_fn;

const ROLE: &str = "HOOKDOCK_DRAIN_ROLE";
/// The SQLite file, or the PostgreSQL schema.
const DB: &str = "HOOKDOCK_DRAIN_DB";
/// `sqlite` or `postgres`.
const BACKEND: &str = "HOOKDOCK_DRAIN_BACKEND";
/// The PostgreSQL server, for the children.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
const PG_URL: &str = "HOOKDOCK_DRAIN_PG_URL";
const N: &str = "HOOKDOCK_DRAIN_N";
const CACHE: &str = "HOOKDOCK_DRAIN_CACHE_KIB";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either.
    if listing_only() {
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

/// What a child role returns: its result line.
type RoleFuture = std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>>;

/// Runs one child role on a 2-thread runtime (the machine has 2 cores) and prints its
/// result line.
fn child(role: fn(Target, usize) -> RoleFuture) -> BoxResult<()> {
    let target = Target::from_env()?;
    let n = env_usize(N, 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let line = rt.block_on(role(target, n))?;
    println!("{line}");
    Ok(())
}

/// Which database a child works on.
#[derive(Debug, Clone)]
enum Target {
    Sqlite(String),
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Target {
    fn from_env() -> BoxResult<Self> {
        let db = std::env::var(DB)?;
        match std::env::var(BACKEND).as_deref() {
            Ok("sqlite") | Err(_) => Ok(Self::Sqlite(db)),
            #[cfg(feature = "postgres")]
            Ok("postgres") => Ok(Self::Postgres {
                url: std::env::var(PG_URL)?,
                schema: db,
            }),
            Ok(other) => Err(format!("unknown backend {other:?}").into()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres { .. } => "postgres",
        }
    }

    fn db(&self) -> &str {
        match self {
            Self::Sqlite(path) => path,
            #[cfg(feature = "postgres")]
            Self::Postgres { schema, .. } => schema,
        }
    }

    /// Opens the queue and the dedupe store; `migrate` creates the schema first.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    async fn open(&self, migrate: bool) -> BoxResult<Opened> {
        match self {
            Self::Sqlite(path) => {
                let store = SqliteStore::open(path, store_options())?;
                Ok(Opened {
                    queue: Arc::new(store.queue(QueueOptions::default())),
                    dedupe: Arc::new(store.idempotency()),
                    close: Close::Sqlite(store),
                })
            }
            #[cfg(feature = "postgres")]
            Self::Postgres { url, schema } => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect(url)
                    .await?;
                let options = hookdock::store::postgres::PgOptions::new()
                    .schema(schema.clone())
                    .migrate(migrate);
                let backend =
                    hookdock::store::postgres::PgStore::from_pool(pool.clone(), options).await?;
                Ok(Opened {
                    queue: Arc::new(backend.queue(QueueOptions::default())),
                    dedupe: Arc::new(backend.idempotency()),
                    close: Close::Postgres(pool),
                })
            }
        }
    }
}

struct Opened {
    queue: Arc<dyn Queue>,
    dedupe: Arc<dyn IdempotencyStore>,
    close: Close,
}

enum Close {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::postgres::PgPool),
}

impl Close {
    async fn close(self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

fn body(i: usize) -> String {
    // About 400 bytes, shaped like a small provider payload.
    format!(
        r#"{{"id":"evt_{i:010}","object":"event","type":"invoice.paid","created":1700000000,"livemode":false,"data":{{"object":{{"id":"in_{i:010}","object":"invoice","amount_paid":4200,"currency":"eur","customer":"cus_{c:06}","status":"paid","lines":{{"object":"list","total_count":1}}}}}},"request":{{"id":null,"idempotency_key":"{i:x}"}},"pending_webhooks":1}}"#,
        c = i % 1000
    )
}

fn prefill(target: Target, n: usize) -> RoleFuture {
    Box::pin(async move {
        let Opened { queue, close, .. } = target.open(true).await?;
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
        #[cfg(feature = "postgres")]
        if let Close::Postgres(pool) = &close {
            // Fresh planner statistics and a visibility map, as a queue table that has been
            // in use has (not timed).
            for table in ["hookdock_events", "hookdock_queue"] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "VACUUM ANALYZE \"{}\".{table}",
                    target.db()
                )))
                .execute(pool)
                .await?;
            }
        }
        close.close().await;
        if stats.ready != n as u64 {
            return Err(format!("prefilled {} events, expected {n}", stats.ready).into());
        }
        Ok(format!("prefill n={n} secs={secs:.3}"))
    })
}

/// Tells the driver this process is connected, and waits for its signal to start.
fn ready_and_wait() -> BoxResult<()> {
    println!("ready");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != "go" {
        return Err(format!("expected go from the driver, got {line:?}").into());
    }
    Ok(())
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn drain_worker(target: Target, n: usize) -> RoleFuture {
    Box::pin(async move {
        let Opened {
            queue,
            dedupe,
            close,
        } = target.open(false).await?;
        let handled = Arc::new(AtomicU64::new(0));
        let seen = handled.clone();
        let worker = Worker::builder(queue.clone())
            .dedupe(dedupe)
            .concurrency(env_usize("HOOKDOCK_DRAIN_CONCURRENCY", 512))
            .batch_size(env_usize("HOOKDOCK_DRAIN_BATCH", 256))
            .build(service_fn(move |event: Event| {
                seen.fetch_add(1, Ordering::Relaxed);
                std::hint::black_box(event.body().len());
                async { Ok::<_, HandlerError>(()) }
            }))?;
        ready_and_wait()?;
        let start = unix_nanos();
        let handle = worker.clone().spawn();
        // Finished when every event is acked (durably): the worker counts an ack once the
        // queue has committed it. Alone, this process is done when it has acked all `n`;
        // beside others, when the queue is empty and this worker is idle. The end is the
        // last time this process's count moved.
        let (mut last, mut end, mut still) = (0, start, 0u32);
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let stats = handle.stats();
            if stats.succeeded != last {
                (last, end, still) = (stats.succeeded, unix_nanos(), 0);
            } else {
                still += 1;
            }
            if last >= n as u64 {
                break;
            }
            // Idle for 100 ms: is anything left anywhere?
            if still >= 50 && stats.in_flight == 0 {
                still = 0;
                if queue.stats().await?.depth() == 0 {
                    break;
                }
            }
        }
        let report = handle.shutdown().await;
        let worker_stats = worker.stats();
        close.close().await;
        if worker_stats.succeeded != handled.load(Ordering::Relaxed)
            || worker_stats.succeeded != worker_stats.leased
            || !report.given_back.is_empty()
        {
            return Err(format!(
                "the handler ran a different number of times than events were acked: \
                 worker {worker_stats:?}, shutdown {report:?}"
            )
            .into());
        }
        Ok(format!(
            "worker count={} start_ns={start} end_ns={end} mean_lease={:.1} cpu_ticks={} hwm_kib={} {}",
            worker_stats.succeeded,
            worker_stats.leased as f64 / worker_stats.leases.max(1) as f64,
            cpu_ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()),
            vm_hwm_kib(),
            rss_breakdown()
        ))
    })
}

fn drain_bare(target: Target, _n: usize) -> RoleFuture {
    Box::pin(async move {
        let Opened { queue, close, .. } = target.open(false).await?;
        let batch = env_usize("HOOKDOCK_DRAIN_BATCH", 256);
        let loops = (env_usize("HOOKDOCK_DRAIN_CONCURRENCY", 512) / batch).max(1);
        ready_and_wait()?;
        let start = unix_nanos();
        let mut tasks = JoinSet::new();
        for _ in 0..loops {
            let queue = queue.clone();
            tasks.spawn(async move {
                let mut acked = 0u64;
                let mut end = unix_nanos();
                loop {
                    let leased = queue.lease(batch, Duration::from_secs(30)).await?;
                    if leased.is_empty() {
                        return Ok::<_, hookdock::StoreError>((acked, end));
                    }
                    let acks = leased.iter().map(|l| queue.ack(&l.lease));
                    for r in futures_util::future::join_all(acks).await {
                        r?;
                        acked += 1;
                    }
                    end = unix_nanos();
                }
            });
        }
        let (mut acked, mut end) = (0, start);
        while let Some(done) = tasks.join_next().await {
            let (count, last) = done??;
            acked += count;
            end = end.max(last);
        }
        close.close().await;
        Ok(format!(
            "bare count={acked} start_ns={start} end_ns={end} cpu_ticks={} hwm_kib={}",
            cpu_ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()),
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

/// User + system CPU time in a `/proc/PID/stat` line, in clock ticks (0 if unreadable).
fn cpu_ticks(stat: &str) -> u64 {
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    stat.rsplit_once(") ")
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// CPU ticks used so far by the PostgreSQL server's processes: the postmaster named in
/// `$HOOKDOCK_POSTGRES_TEST_DIR/data/postmaster.pid` (the throwaway server of
/// `scripts/postgres-test-server.sh`) and its children, else every process named
/// `postgres` on this machine. Zero while no such process runs (SQLite).
fn server_ticks() -> u64 {
    let postmaster: Option<String> = std::env::var("HOOKDOCK_POSTGRES_TEST_DIR")
        .ok()
        .and_then(|dir| std::fs::read_to_string(format!("{dir}/data/postmaster.pid")).ok())
        .and_then(|pid| pid.lines().next().map(|l| l.trim().to_owned()));
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let pid = e.file_name().to_string_lossy().into_owned();
            Some((pid, stat))
        })
        .filter(|(pid, stat)| {
            if !stat.contains("(postgres)") {
                return false;
            }
            match &postmaster {
                // The parent pid is the second field after the command name.
                Some(pm) => {
                    pid == pm
                        || stat
                            .rsplit_once(") ")
                            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                            == Some(pm.as_str())
                }
                None => true,
            }
        })
        .map(|(_, stat)| cpu_ticks(&stat))
        .sum()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

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

/// A child process for `role` on `target`.
fn command(role: &str, target: &Target, n: usize, cache_kib: Option<u32>) -> BoxResult<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env(ROLE, role)
        .env(BACKEND, target.name())
        .env(DB, target.db())
        .env(N, n.to_string());
    #[cfg(feature = "postgres")]
    if let Target::Postgres { url, .. } = target {
        cmd.env(PG_URL, url);
    }
    match cache_kib {
        Some(kib) => cmd.env(CACHE, kib.to_string()),
        None => cmd.env_remove(CACHE),
    };
    Ok(cmd)
}

fn run_child(role: &str, target: &Target, n: usize, cache_kib: Option<u32>) -> BoxResult<String> {
    let out = command(role, target, n, cache_kib)?.output()?;
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

/// What `processes` drain children did together.
#[derive(Debug, Clone, Copy)]
struct Drained {
    secs: f64,
    rate: f64,
    /// The largest peak RSS of any of them, KiB.
    hwm_kib: f64,
    /// Mean events per lease (workers only; 0 for bare).
    mean_lease: f64,
    rss_anon_kib: f64,
    rss_file_kib: f64,
    /// CPU time of the drain processes, and of the database server's processes (0 for
    /// SQLite), per event, in microseconds.
    client_cpu_us: f64,
    server_cpu_us: f64,
}

/// Starts `processes` children of `role` (`worker` or `bare`), lets them connect, starts them
/// together, and measures from that start to the last ack of any of them.
fn drain(
    role: &str,
    target: &Target,
    n: usize,
    processes: usize,
    cache_kib: Option<u32>,
) -> BoxResult<Drained> {
    let mut children = Vec::new();
    for _ in 0..processes {
        let mut child = command(role, target, n, cache_kib)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line == "ready" => {}
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{role} child did not get ready: {other:?}").into());
            }
        }
        children.push((child, lines));
    }
    let server_before = server_ticks();
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().ok_or("no stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
    }
    let mut results = Vec::new();
    for (mut child, mut lines) in children {
        let line = lines.next().transpose()?.unwrap_or_default();
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("{role} child failed ({status}): {line}").into());
        }
        results.push(line);
    }
    let server = server_ticks().saturating_sub(server_before);
    let (mut start, mut end, mut count) = (f64::MAX, 0f64, 0f64);
    let mut drained = Drained {
        secs: 0.0,
        rate: 0.0,
        hwm_kib: 0.0,
        mean_lease: 0.0,
        rss_anon_kib: 0.0,
        rss_file_kib: 0.0,
        client_cpu_us: 0.0,
        server_cpu_us: server as f64 / TICKS_PER_SEC * 1e6 / n as f64,
    };
    for line in &results {
        start = start.min(field(line, "start_ns")?);
        end = end.max(field(line, "end_ns")?);
        count += field(line, "count")?;
        drained.client_cpu_us += field(line, "cpu_ticks")? / TICKS_PER_SEC * 1e6 / n as f64;
        drained.hwm_kib = drained.hwm_kib.max(field(line, "hwm_kib")?);
        if role == "worker" {
            drained.mean_lease += field(line, "mean_lease")? / processes as f64;
            drained.rss_anon_kib = drained.rss_anon_kib.max(field(line, "rssanon_kib")?);
            drained.rss_file_kib = drained.rss_file_kib.max(field(line, "rssfile_kib")?);
        }
    }
    if count != n as f64 {
        return Err(format!("{role} drain acked {count} events, expected {n}: {results:?}").into());
    }
    drained.secs = (end - start) / 1e9;
    drained.rate = n as f64 / drained.secs;
    Ok(drained)
}

/// One backend's settings for the series.
struct Run<'a> {
    label: &'a str,
    processes: usize,
    /// A fresh database for `name`.
    fresh: &'a dyn Fn(&str) -> BoxResult<Target>,
}

/// One drain per backlog size with the given page cache; returns (size, drained).
fn series(run: &Run, sizes: &[usize], cache_kib: Option<u32>) -> BoxResult<Vec<(usize, Drained)>> {
    let label = match cache_kib {
        Some(kib) => format!("{}, page cache {} MiB", run.label, kib / 1024),
        None => run.label.to_owned(),
    };
    let mut results = Vec::new();
    for &n in sizes {
        let target = (run.fresh)(&format!("worker_{n}_{}", cache_kib.unwrap_or(0)))?;
        let fill = run_child("prefill", &target, n, cache_kib)?;
        let d = drain("worker", &target, n, run.processes, cache_kib)?;
        println!(
            "  backlog {n:>7}, {label}: prefill {:>5.2}s | drain {:>5.2}s = {:>6.0} events/s \
             (mean lease {:.0}, CPU per event: drain processes {:.0} us, server {:.0} us), \
             peak RSS {:>5.1} MiB (at exit: anon {:.1}, file {:.1} MiB)",
            field(&fill, "secs")?,
            d.secs,
            d.rate,
            d.mean_lease,
            d.client_cpu_us,
            d.server_cpu_us,
            d.hwm_kib / 1024.0,
            d.rss_anon_kib / 1024.0,
            d.rss_file_kib / 1024.0,
        );
        results.push((n, d));
    }
    Ok(results)
}

/// The bare lease+ack drain of `n` events on `run`'s backend: the baseline.
fn baseline(run: &Run, n: usize) -> BoxResult<Drained> {
    let target = (run.fresh)(&format!("bare_{n}"))?;
    run_child("prefill", &target, n, None)?;
    let bare = drain("bare", &target, n, run.processes, None)?;
    println!(
        "  baseline, backlog {n}, {}: bare lease+ack drain (no worker, no dedupe) {:.0} \
         events/s (CPU per event: drain processes {:.0} us, server {:.0} us), peak RSS {:.1} MiB",
        run.label,
        bare.rate,
        bare.client_cpu_us,
        bare.server_cpu_us,
        bare.hwm_kib / 1024.0
    );
    Ok(bare)
}

fn at(results: &[(usize, Drained)], size: usize) -> Option<Drained> {
    results.iter().find(|r| r.0 == size).map(|r| r.1)
}

/// One row of the side-by-side table.
struct Summary {
    backend: String,
    worker: Drained,
    bare: Drained,
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
        "drain benchmark: worker + dedupe (claims in the queue's database) + no-op handler; \
         per process: concurrency {}, batch {}",
        env_usize("HOOKDOCK_DRAIN_CONCURRENCY", 512),
        env_usize("HOOKDOCK_DRAIN_BATCH", 256)
    );
    let mut summary = Vec::new();

    println!("SQLite (WAL, synchronous=FULL), 1 process");
    let dir = tempfile::tempdir()?;
    let sqlite_db = |name: &str| -> BoxResult<Target> {
        let path = dir.path().join(format!("{name}.db"));
        Ok(Target::Sqlite(
            path.to_str().ok_or("non-UTF-8 path")?.to_owned(),
        ))
    };
    let sqlite = Run {
        label: "sqlite",
        processes: 1,
        fresh: &sqlite_db,
    };
    let default_cache = series(&sqlite, &sizes, None)?;
    // SQLite's page cache is a bounded buffer (per connection) that fills as the drain reads
    // the database. The default 2 MiB cache is smaller than both databases, so both runs fill
    // it, and what remains is everything else. A 10,000-event database (~6 MB) fits in an
    // 8 MiB cache without filling it, a 100,000-event one fills it: that difference is the
    // cache reaching its bound, not memory growing with the backlog.
    let large_cache = series(&sqlite, &sizes, Some(8192))?;
    let bare = baseline(&sqlite, largest)?;
    if let Some(large) = at(&default_cache, largest) {
        println!(
            "  worker rate / bare rate at {largest}: {:.2}",
            large.rate / bare.rate
        );
        summary.push(Summary {
            backend: "SQLite, 1 process".into(),
            worker: large,
            bare,
        });
    }
    for (label, results) in [
        ("default cache (2 MiB)", &default_cache),
        ("8 MiB cache", &large_cache),
    ] {
        if let (Some(small), Some(large)) = (at(results, smallest), at(results, largest)) {
            println!(
                "  peak RSS at {largest} / at {smallest}, {label}: {:.3} (goal: within 10%)",
                large.hwm_kib / small.hwm_kib
            );
        }
    }

    postgres(&sizes, smallest, largest, &mut summary)?;

    println!("side by side, backlog {largest}:");
    println!(
        "  {:<26} {:>10} {:>10} {:>12} {:>16} {:>22}",
        "backend", "events/s", "bare ev/s", "worker/bare", "peak RSS / proc", "CPU/event (+server)"
    );
    for s in &summary {
        println!(
            "  {:<26} {:>10.0} {:>10.0} {:>12.2} {:>12.1} MiB {:>10.0} us (+{:.0} us)",
            s.backend,
            s.worker.rate,
            s.bare.rate,
            s.worker.rate / s.bare.rate,
            s.worker.hwm_kib / 1024.0,
            s.worker.client_cpu_us,
            s.worker.server_cpu_us,
        );
    }
    Ok(())
}

/// The PostgreSQL series, or a notice why it is skipped.
#[cfg(feature = "postgres")]
fn postgres(
    sizes: &[usize],
    smallest: usize,
    largest: usize,
    summary: &mut Vec<Summary>,
) -> BoxResult<()> {
    let Some(url) = ["HOOKDOCK_BENCH_POSTGRES_URL", "HOOKDOCK_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
    else {
        println!(
            "PostgreSQL: skipped (set HOOKDOCK_BENCH_POSTGRES_URL or HOOKDOCK_TEST_POSTGRES_URL; \
             a throwaway server: eval \"$(scripts/postgres-test-server.sh start)\")"
        );
        return Ok(());
    };
    let processes = env_usize("HOOKDOCK_DRAIN_PG_PROCESSES", 2).max(1);
    println!("PostgreSQL, {processes} worker processes (a pool of 8 connections each)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pool = rt.block_on(
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url),
    )?;
    let schemas = std::sync::Mutex::new(Vec::<String>::new());
    let fresh = |name: &str| -> BoxResult<Target> {
        let schema = format!("hd_drain_{}_{name}", std::process::id());
        schemas.lock().map_err(|_| "poisoned")?.push(schema.clone());
        Ok(Target::Postgres {
            url: url.clone(),
            schema,
        })
    };
    let run = Run {
        label: "postgres",
        processes,
        fresh: &fresh,
    };
    let result = (|| -> BoxResult<()> {
        let results = series(&run, sizes, None)?;
        let bare = baseline(&run, largest)?;
        if let Some(large) = at(&results, largest) {
            println!(
                "  worker rate / bare rate at {largest}: {:.2}",
                large.rate / bare.rate
            );
            summary.push(Summary {
                backend: format!("PostgreSQL, {processes} processes"),
                worker: large,
                bare,
            });
        }
        if let (Some(small), Some(large)) = (at(&results, smallest), at(&results, largest)) {
            println!(
                "  peak RSS at {largest} / at {smallest}: {:.3} (goal: within 10%)",
                large.hwm_kib / small.hwm_kib
            );
        }
        Ok(())
    })();
    for schema in schemas.lock().map_err(|_| "poisoned")?.iter() {
        rt.block_on(
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&pool),
        )?;
    }
    rt.block_on(pool.close());
    result
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &[usize], _: usize, _: usize, _: &mut Vec<Summary>) -> BoxResult<()> {
    println!("PostgreSQL: skipped (build with --features postgres, or --all-features)");
    Ok(())
}
