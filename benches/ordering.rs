//! Replay storm with and without ordering keys: a backlog of 100,000 events over 1,000 keys
//! (their positions shuffled, as a provider's burst arrives) drained by one worker process on
//! SQLite and by two on PostgreSQL (when `HOOKDOCK_TEST_POSTGRES_URL` is set), ordering off
//! and on in turn, each in fresh storage.
//!
//! `cargo bench --all-features --bench ordering`. Settings: `HOOKDOCK_ORDERING_EVENTS`
//! (100,000), `HOOKDOCK_ORDERING_KEYS` (1,000), `HOOKDOCK_ORDERING_ROUNDS` (3),
//! `HOOKDOCK_ORDERING_JITTER` (256, or `global`; see `fill`),
//! `HOOKDOCK_ORDERING_CONCURRENCY` (64 handlers per process). Each round measures off then on;
//! printed are every round, the medians, and on/off (the goal: drain ≥ 0.80×); per mode also
//! the p99 time in queue (receipt to handled, over every event of the round: a backlog drained
//! at once, so it is about the drain's length) and the largest drainer's peak RSS.

mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hookdock::ordering::OrderingKey;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{IdempotencyStore, Queue, QueueOptions};
use hookdock::worker::{Event, HandlerError, Worker};
use hookdock::RawEvent;
use support::{env_usize, field, listing_only, median, uuid, vm_hwm_kib, BoxResult};
use tokio::task::JoinSet;
use tower::service_fn;

const ROLE: &str = "HOOKDOCK_ORDERING_ROLE";
/// `sqlite:PATH` or `postgres:SCHEMA`.
const TARGET: &str = "HOOKDOCK_ORDERING_TARGET";
const KEYED: &str = "HOOKDOCK_ORDERING_KEYED";

fn main() {
    if listing_only() {
        return;
    }
    let result = match std::env::var(ROLE).as_deref() {
        Ok("fill") => child(fill),
        Ok("drain") => child(drain),
        _ => driver(),
    };
    if let Err(e) = result {
        eprintln!("ordering bench: {e}");
        std::process::exit(1);
    }
}

type Role = fn(Opened) -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>>;

struct Opened {
    queue: Arc<dyn Queue>,
    dedupe: Arc<dyn IdempotencyStore>,
    sqlite: Option<SqliteStore>,
}

async fn open() -> BoxResult<Opened> {
    let target = std::env::var(TARGET)?;
    if let Some(path) = target.strip_prefix("sqlite:") {
        let mut options = SqliteOptions::new();
        if let Ok(bytes) = std::env::var("HOOKDOCK_ORDERING_PAGE_SIZE") {
            options = options.page_size(bytes.parse()?);
        }
        let store = SqliteStore::open(path, options)?;
        return Ok(Opened {
            queue: Arc::new(store.queue(QueueOptions::default())),
            dedupe: Arc::new(store.idempotency()),
            sqlite: Some(store),
        });
    }
    #[cfg(feature = "postgres")]
    if let Some(schema) = target.strip_prefix("postgres:") {
        let url = std::env::var("HOOKDOCK_TEST_POSTGRES_URL")?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await?;
        let options = hookdock::store::postgres::PgOptions::new()
            .schema(schema.to_owned())
            .migrate(true);
        let store = hookdock::store::postgres::PgStore::from_pool(pool, options).await?;
        return Ok(Opened {
            queue: Arc::new(store.queue(QueueOptions::default())),
            dedupe: Arc::new(store.idempotency()),
            sqlite: None,
        });
    }
    Err(format!("unknown target {target:?}").into())
}

fn child(role: Role) -> BoxResult<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let line = rt.block_on(async {
        let opened = open().await?;
        role(opened).await
    })?;
    println!("{line}");
    Ok(())
}

/// The backlog: event `i` is key `i % keys` at position `i / keys`, sent in event-time order
/// shuffled within windows of `HOOKDOCK_ORDERING_JITTER` sends (256: a burst sent by many
/// concurrent connections), or shuffled across the whole burst with `global` (the worst
/// case: a key's next event is anywhere in the backlog).
fn fill(o: Opened) -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>> {
    Box::pin(async move {
        let n = env_usize("HOOKDOCK_ORDERING_EVENTS", 100_000);
        let keys = env_usize("HOOKDOCK_ORDERING_KEYS", 1_000).max(1);
        let keyed = std::env::var(KEYED).as_deref() == Ok("on");
        let mut order: Vec<usize> = (0..n).collect();
        fastrand::seed(7);
        match std::env::var("HOOKDOCK_ORDERING_JITTER").as_deref() {
            Ok("global") => fastrand::shuffle(&mut order),
            other => {
                let window = other
                    .ok()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(256usize)
                    .max(1);
                order.chunks_mut(window).for_each(fastrand::shuffle);
            }
        }
        let body = Bytes::from(format!(
            "{{\"object\":\"event\",\"pad\":\"{}\"}}",
            "x".repeat(400)
        ));
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        let mut next = 0;
        while next < n || !tasks.is_empty() {
            while next < n && tasks.len() < 256 {
                let i = order[next];
                let mut e = RawEvent::new("stripe", uuid(i), SystemTime::now(), body.clone());
                if keyed {
                    let position = i64::try_from(i / keys).unwrap_or(0);
                    e = e.with_ordering(
                        OrderingKey::new(format!("cus_{}", i % keys)).version(position),
                    );
                }
                let q = o.queue.clone();
                tasks.spawn(async move { q.enqueue(e).await });
                next += 1;
            }
            if let Some(done) = tasks.join_next().await {
                done??;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        if let Some(store) = o.sqlite {
            store.close().await;
        }
        Ok(format!("filled secs={secs}"))
    })
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Drains until the queue is empty; prints its count, span and the p99 time in queue.
fn drain(o: Opened) -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxResult<String>>>> {
    Box::pin(async move {
        let waits: Arc<Mutex<Vec<f64>>> = Arc::default();
        let table = Arc::clone(&waits);
        let worker = Worker::builder(o.queue.clone())
            .dedupe(o.dedupe.clone())
            .concurrency(env_usize("HOOKDOCK_ORDERING_CONCURRENCY", 64))
            .batch_size(64)
            .poll_interval(Duration::from_millis(2), Duration::from_millis(20))
            .build(service_fn(move |event: Event| {
                let table = Arc::clone(&table);
                async move {
                    let waited = SystemTime::now()
                        .duration_since(event.received_at())
                        .unwrap_or_default();
                    table.lock().unwrap().push(waited.as_secs_f64());
                    Ok::<_, HandlerError>(())
                }
            }))?;
        let start = unix_nanos();
        let handle = worker.spawn();
        let began = Instant::now();
        loop {
            // Not too often: each count reads the whole waiting index.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if o.queue.stats().await?.depth() == 0 || began.elapsed() > Duration::from_secs(900) {
                break;
            }
        }
        let end = unix_nanos();
        handle.shutdown().await;
        if let Some(store) = o.sqlite {
            store.close().await;
        }
        let mut waits = std::mem::take(&mut *waits.lock().unwrap());
        waits.sort_by(f64::total_cmp);
        let p99 = waits
            .get(waits.len() * 99 / 100)
            .copied()
            .unwrap_or(f64::NAN);
        Ok(format!(
            "drained count={} start_ns={start} end_ns={end} p99={p99} hwm_kib={}",
            waits.len(),
            vm_hwm_kib()
        ))
    })
}

fn spawn_child(role: &str, target: &str, keyed: bool) -> BoxResult<std::process::Child> {
    Ok(Command::new(std::env::current_exe()?)
        .env(ROLE, role)
        .env(TARGET, target)
        .env(KEYED, if keyed { "on" } else { "off" })
        .stdout(Stdio::piped())
        .spawn()?)
}

fn result_line(child: std::process::Child) -> BoxResult<String> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("a child failed: {}", out.status).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// One measurement: fill fresh storage, then `drainers` processes at once. Returns (drain
/// events/s, p99 seconds, peak RSS KiB of the largest drainer).
fn measure(target: &str, drainers: usize, keyed: bool) -> BoxResult<(f64, f64, f64)> {
    result_line(spawn_child("fill", target, keyed)?)?;
    let children: Vec<_> = (0..drainers)
        .map(|_| spawn_child("drain", target, keyed))
        .collect::<BoxResult<_>>()?;
    let (mut count, mut start, mut end, mut p99, mut hwm) = (0.0, f64::MAX, 0.0f64, 0.0f64, 0.0f64);
    for child in children {
        let line = result_line(child)?;
        count += field(&line, "count")?;
        start = start.min(field(&line, "start_ns")?);
        end = end.max(field(&line, "end_ns")?);
        p99 = p99.max(field(&line, "p99")?);
        hwm = hwm.max(field(&line, "hwm_kib")?);
    }
    let expected = env_usize("HOOKDOCK_ORDERING_EVENTS", 100_000) as f64;
    if count < expected {
        return Err(format!("drained {count} of {expected}").into());
    }
    Ok((count / ((end - start) / 1e9), p99, hwm))
}

fn driver() -> BoxResult<()> {
    let rounds = env_usize("HOOKDOCK_ORDERING_ROUNDS", 3).max(1);
    let dir = tempfile::tempdir()?;
    let mut backends: Vec<(&str, usize)> = vec![("sqlite", 1)];
    if cfg!(feature = "postgres") && std::env::var("HOOKDOCK_TEST_POSTGRES_URL").is_ok() {
        backends.push(("postgres", 2));
    }
    println!(
        "replay storm: {} events over {} keys, {rounds} rounds (off then on each)",
        env_usize("HOOKDOCK_ORDERING_EVENTS", 100_000),
        env_usize("HOOKDOCK_ORDERING_KEYS", 1_000)
    );
    for (backend, drainers) in backends {
        let mut runs: [Vec<(f64, f64, f64)>; 2] = Default::default();
        for round in 0..rounds {
            for (i, keyed) in [false, true].into_iter().enumerate() {
                let name = format!(
                    "storm_{round}_{}_{}",
                    if keyed { "on" } else { "off" },
                    std::process::id()
                );
                let target = match backend {
                    "sqlite" => {
                        format!("sqlite:{}", dir.path().join(format!("{name}.db")).display())
                    }
                    _ => format!("postgres:{name}"),
                };
                let r = measure(&target, drainers, keyed)?;
                println!(
                    "  {backend} round {round} ordering {}: drain {:.0} ev/s, p99 in queue {:.2} s, peak RSS {:.0} KiB",
                    if keyed { "on " } else { "off" },
                    r.0, r.1, r.2
                );
                runs[i].push(r);
            }
        }
        let med = |v: &[(f64, f64, f64)], pick: fn(&(f64, f64, f64)) -> f64| {
            median(v.iter().map(pick).collect())
        };
        let (off, on) = (&runs[0], &runs[1]);
        println!(
            "{backend} ({drainers} drainer{}): drain off {:.0} ev/s, on {:.0} ev/s: on/off {:.3} (goal >= 0.80); p99 in queue off {:.2} s, on {:.2} s; peak RSS off {:.0} KiB, on {:.0} KiB: {:.3}x",
            if drainers == 1 { "" } else { "s" },
            med(off, |r| r.0),
            med(on, |r| r.0),
            med(on, |r| r.0) / med(off, |r| r.0),
            med(off, |r| r.1),
            med(on, |r| r.1),
            med(off, |r| r.2),
            med(on, |r| r.2),
            med(on, |r| r.2) / med(off, |r| r.2),
        );
    }
    Ok(())
}
