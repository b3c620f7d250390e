//! A reconciliation pass streams: its memory stays flat however much changed. A generated
//! source of `N` changes (Stripe-shaped events of about 600 bytes, newest first, pages of
//! 100) is walked by a `Reconciler` into a fresh SQLite store, in a child process per run;
//! printed are each run's changes per second and peak RSS, and the RSS of the large pass
//! over the small one (the goal: ≤ 1.10×).
//!
//! The SQLite store itself holds new keys in the writer's memory until it merges them into
//! the key index (`SqliteOptions::key_merge_batch`, 262,144 by default): a pass that stores a
//! million new events fills that buffer, a pass of 10,000 does not. So each round runs the
//! two passes twice: with the store's default buffer (the process as deployed), and with
//! the buffer at 1,024 keys, so that what is left to grow is the pass's own memory.
//!
//! `cargo bench --all-features --bench reconcile`. Settings: `HOOKDOCK_RECONCILE_SMALL`
//! (10,000), `HOOKDOCK_RECONCILE_LARGE` (1,000,000), `HOOKDOCK_RECONCILE_ROUNDS` (3; each
//! round runs the small pass then the large one, per store setting; medians are printed).

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hookdock::reconcile::{
    Change, ChangeSource, FetchedEvent, Page, PassOutcome, PollError, PollRequest, Reconciler,
};
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::QueueOptions;
use support::{env_usize, field, listing_only, median, vm_hwm_kib, BoxResult};

const ROLE: &str = "HOOKDOCK_RECONCILE_ROLE";
const CHANGES: &str = "HOOKDOCK_RECONCILE_CHANGES";
const DB: &str = "HOOKDOCK_RECONCILE_DB";
const MERGE_BATCH: &str = "HOOKDOCK_RECONCILE_MERGE_BATCH";

fn main() {
    if listing_only() {
        return;
    }
    let result = match std::env::var(ROLE).as_deref() {
        Ok("pass") => child(),
        _ => driver(),
    };
    if let Err(e) = result {
        eprintln!("reconcile bench: {e}");
        std::process::exit(1);
    }
}

/// `n` changes one millisecond apart ending at `end`, generated page by page: the source
/// itself holds nothing.
struct Generated {
    n: usize,
    end: SystemTime,
}

impl Generated {
    fn at(&self, i: usize) -> SystemTime {
        self.end - Duration::from_millis(i as u64)
    }
}

#[async_trait]
impl ChangeSource for Generated {
    fn name(&self) -> &str {
        "stripe"
    }

    fn horizon(&self) -> Duration {
        Duration::from_secs(30 * 86_400)
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        // Newest first: index 0 is the newest; the cursor is the next index.
        let start: usize = request
            .cursor
            .map_or(Ok(0), str::parse)
            .map_err(PollError::transient)?;
        let end = (start + request.limit).min(self.n);
        let changes = (start..end)
            .map(|i| {
                let created = self.at(i).duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                let body = format!(
                    concat!(
                        r#"{{"id":"evt_{i:024}","object":"event","api_version":"2024-06-20","#,
                        r#""created":{created},"data":{{"object":{{"id":"in_{i:024}","object":"invoice","#,
                        r#""amount_due":2000,"amount_paid":2000,"currency":"usd","customer":"cus_{c:014}","#,
                        r#""status":"paid","lines":{{"object":"list","data":[],"has_more":false}}}}}},"#,
                        r#""livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"#,
                        r#""type":"invoice.paid"}}"#
                    ),
                    i = i,
                    created = created,
                    c = i % 10_000
                );
                Change::Event(
                    FetchedEvent::new(format!("evt_{i:024}"), body)
                        .with_type("invoice.paid")
                        .with_occurred_at(self.at(i)),
                )
            })
            .collect();
        Ok(if end >= self.n {
            Page::last(changes, None)
        } else {
            Page::more(changes, end.to_string())
        })
    }
}

fn child() -> BoxResult<()> {
    let n: usize = std::env::var(CHANGES)?.parse()?;
    let path = std::env::var(DB)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let line = rt.block_on(async move {
        let mut options = SqliteOptions::new();
        if let Ok(keys) = std::env::var(MERGE_BATCH) {
            options = options.key_merge_batch(keys.parse()?);
        }
        let store = SqliteStore::open(&path, options)?;
        let queue = Arc::new(store.queue(QueueOptions::default()));
        let now = SystemTime::now();
        let reconciler = Reconciler::builder(queue.clone(), queue.clone())
            .source(Generated {
                n,
                end: now - Duration::from_secs(1),
            })
            // The whole generated history is inside the first window.
            .first_window(Duration::from_millis(n as u64) + Duration::from_secs(60))
            .build();
        let started = Instant::now();
        let outcome = reconciler.run_once("stripe").await?;
        let secs = started.elapsed().as_secs_f64();
        let PassOutcome::Ran(report) = outcome else {
            return Err::<String, Box<dyn std::error::Error + Send + Sync>>(
                "not the leader".into(),
            );
        };
        if report.recovered != n as u64 || !report.completed() {
            return Err(format!("the pass stored {} of {n}: {report:?}", report.recovered).into());
        }
        drop(reconciler);
        drop(queue);
        store.close().await;
        Ok(format!(
            "rate={:.0} secs={secs:.2} rss_kib={}",
            n as f64 / secs,
            vm_hwm_kib()
        ))
    })?;
    println!("{line}");
    Ok(())
}

fn run(n: usize, merge_batch: Option<usize>) -> BoxResult<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("reconcile.db");
    let mut cmd = Command::new(std::env::current_exe()?);
    if let Some(keys) = merge_batch {
        cmd.env(MERGE_BATCH, keys.to_string());
    }
    let out = cmd
        .env(ROLE, "pass")
        .env(CHANGES, n.to_string())
        .env(DB, &db)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("child failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let line = text.lines().last().ok_or("no result line")?;
    Ok((field(line, "rate")?, field(line, "rss_kib")?))
}

fn driver() -> BoxResult<()> {
    let small = env_usize("HOOKDOCK_RECONCILE_SMALL", 10_000);
    let large = env_usize("HOOKDOCK_RECONCILE_LARGE", 1_000_000);
    let rounds = env_usize("HOOKDOCK_RECONCILE_ROUNDS", 3).max(1);
    println!(
        "reconcile: one pass of {small} and of {large} generated changes into SQLite, {rounds} round(s)"
    );
    for (label, merge_batch) in [("store defaults", None), ("key buffer 1,024", Some(1024))] {
        let (mut small_rate, mut small_rss, mut large_rate, mut large_rss) =
            (vec![], vec![], vec![], vec![]);
        for round in 1..=rounds {
            let (sr, sm) = run(small, merge_batch)?;
            let (lr, lm) = run(large, merge_batch)?;
            println!(
                "{label}, round {round}: {small}: {sr:.0} changes/s, peak RSS {sm:.0} KiB | {large}: {lr:.0} changes/s, peak RSS {lm:.0} KiB"
            );
            small_rate.push(sr);
            small_rss.push(sm);
            large_rate.push(lr);
            large_rss.push(lm);
        }
        let (sr, sm) = (median(small_rate), median(small_rss));
        let (lr, lm) = (median(large_rate), median(large_rss));
        println!("{label}, median: {small}: {sr:.0} changes/s, peak RSS {sm:.0} KiB");
        println!("{label}, median: {large}: {lr:.0} changes/s, peak RSS {lm:.0} KiB");
        println!(
            "{label}: peak RSS {large} over {small}: {:.3}x (goal: <= 1.10x)",
            lm / sm
        );
    }
    Ok(())
}
