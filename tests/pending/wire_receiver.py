# Wires the worker and admin routes (examples/demo/worker.rs) into examples/receiver.rs.
import sys
p = sys.argv[1]
s = open(p).read()
def rep(old, new):
    global s
    assert s.count(old) == 1, old
    s = s.replace(old, new)
rep("""//! Routes (POST only): `/webhooks/github`, `/webhooks/stripe`, `/webhooks/standard`. Each is
//! a verify layer in front of an intake; all three intakes share one queue.
//!""", """//! Routes (POST only): `/webhooks/github`, `/webhooks/stripe`, `/webhooks/standard`. Each is
//! a verify layer in front of an intake; all three intakes share one queue.
//!
//! A [`Worker`](hookdock::worker::Worker) in the same process drains that queue through the
//! dedupe layer (claims in the same SQLite database) into a demo handler that logs each event
//! (source, id, type) and can be told to fail. JSON admin routes: `GET /admin/stats` (queue
//! counts and worker totals), `GET /admin/dead` (dead letters with reasons and attempts;
//! `?source=`, `?event_id=`, `?reason=`, `?after=`, `?limit=`), `POST /admin/dead/replay`
//! (every dead letter, or `?id=<message>`, or `?source=`). The worker's settings
//! (`HOOKDOCK_WORKER`, `HOOKDOCK_DEMO_FAIL_RATE`, `HOOKDOCK_DEMO_FAIL_KIND`,
//! `HOOKDOCK_DEMO_DELAY_MS`, `HOOKDOCK_DEMO_EFFECTS`, `HOOKDOCK_LEASE_MS`,
//! `HOOKDOCK_WORKER_CONCURRENCY`, `HOOKDOCK_ADMIN_TOKEN`) are listed in
//! `examples/demo/worker.rs`.
//!""")
rep("""//! Secrets taken from the environment are never printed. Stops gracefully on Ctrl-C and
//! SIGTERM: in-flight deliveries finish (and are stored) before the process exits.
""", """//! Secrets taken from the environment are never printed. Stops gracefully on Ctrl-C and
//! SIGTERM: in-flight deliveries finish (and are stored) before the process exits, and the
//! worker finishes what it is handling (up to 30 s) and hands the rest back to the queue.

#[path = "demo/worker.rs"]
mod demo;
""")
rep("""use hookdock::verify::VerifyLayer;
""", """use hookdock::verify::VerifyLayer;
use hookdock::worker::WakeOnEnqueue;
""")
rep("""fn open_queue(config: &Config) -> Result<(SqliteStore, Arc<dyn Queue>), Box<dyn Error>> {
    let store = SqliteStore::open(&config.db, SqliteOptions::default())?;
    let mut options = QueueOptions::default();
    if let Some(max) = config.max_depth {
        options = options.max_depth(max);
    }
    let queue = Arc::new(store.queue(options));
    Ok((store, queue))
}""", """///
/// The queue wakes the in-process worker whenever it stores a new event.
fn open_queue(
    config: &Config,
) -> Result<(SqliteStore, Arc<dyn Queue>, Arc<tokio::sync::Notify>), Box<dyn Error>> {
    let store = SqliteStore::open(&config.db, SqliteOptions::default())?;
    let mut options = QueueOptions::default();
    if let Some(max) = config.max_depth {
        options = options.max_depth(max);
    }
    let queue = WakeOnEnqueue::new(store.queue(options));
    let wake = queue.signal();
    Ok((store, Arc::new(queue), wake))
}""")
rep("""    let (store, queue) = open_queue(&config)?;
    let app = webhook_routes(&config, &queue)?;
""", """    let worker_config = demo::WorkerConfig::from_env()?;
    let (store, queue, wake) = open_queue(&config)?;
    let worker = worker_config.start(Arc::clone(&queue), wake, store.idempotency())?;
    let app = webhook_routes(&config, &queue)?.merge(
        worker_config.admin_routes(Arc::clone(&queue), worker.as_ref().map(|w| w.worker().clone())),
    );
""")
rep("""    print_banner(&config, addr, queue.durability());
""", """    print_banner(&config, addr, queue.durability());
    for line in worker_config.describe() {
        println!("{line}");
    }
""")
rep("""    // Every acknowledged delivery is already durable; this checkpoints the WAL.
    store.close().await;""", """    if let Some(worker) = worker {
        let report = worker.shutdown().await;
        if !report.given_back.is_empty() {
            println!(
                "worker stopped: {} event(s) handed back to the queue",
                report.given_back.len()
            );
        }
    }
    // Every acknowledged delivery is already durable; this checkpoints the WAL.
    store.close().await;""")
open(p, 'w').write(s)
