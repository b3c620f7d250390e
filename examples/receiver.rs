//! The hookdock receiver: an axum server that verifies GitHub, Stripe and Standard Webhooks
//! deliveries and stores each one durably before answering `200`.
//!
//! ```sh
//! cargo run --example receiver
//! ```
//!
//! Routes (POST only): `/webhooks/github`, `/webhooks/stripe`, `/webhooks/standard`. Each is
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
//!
//! Configuration, from the environment:
//!
//! | variable | default |
//! |---|---|
//! | `HOOKDOCK_ADDR` | `127.0.0.1:3000` (port `0` picks a free port) |
//! | `HOOKDOCK_DB` | `hookdock.db` (SQLite, WAL, `synchronous=FULL`) |
//! | `HOOKDOCK_MAX_DEPTH` | no limit; with a limit, deliveries beyond it get `503` + `Retry-After` |
//! | `HOOKDOCK_GITHUB_SECRET` | a development secret, printed at start-up |
//! | `HOOKDOCK_STRIPE_SECRET` | a development secret, printed at start-up |
//! | `HOOKDOCK_STANDARD_SECRET` | a development secret (`whsec_...`), printed at start-up |
//! | `RUST_LOG` | `info` |
//!
//! Secrets taken from the environment are never printed. Stops gracefully on Ctrl-C and
//! SIGTERM: in-flight deliveries finish (and are stored) before the process exits, and the
//! worker finishes what it is handling (up to 30 s) and hands the rest back to the queue.

#[path = "demo/worker.rs"]
mod demo;

use std::error::Error;
use std::sync::Arc;

use axum::routing::{post_service, MethodRouter};
use axum::Router;
use hmac::{KeyInit, Mac};
use hookdock::intake::Intake;
use hookdock::queue::{Queue, QueueOptions};
use hookdock::scheme::Preset;
use hookdock::sqlite::{SqliteOptions, SqliteStore};
use hookdock::verify::VerifyLayer;
use hookdock::worker::WakeOnEnqueue;
use hookdock::Scheme;
use tower::ServiceBuilder;

const DEV_GITHUB_SECRET: &str = "hookdock-dev-github-secret";
const DEV_STRIPE_SECRET: &str = "whsec_hookdock_dev_stripe_secret";
const DEV_STANDARD_SECRET: &str = "whsec_aG9va2RvY2stZGV2LXN0YW5kYXJkLXNlY3JldC0zMmI=";

/// Everything the receiver reads from the environment.
struct Config {
    addr: String,
    db: String,
    max_depth: Option<u64>,
    github: Secret,
    stripe: Secret,
    standard: Secret,
}

/// A secret and whether it is the development default (which may be printed).
struct Secret {
    value: String,
    from_env: bool,
}

impl Secret {
    fn from_env(var: &str, dev_default: &str) -> Self {
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => Self {
                value,
                from_env: true,
            },
            _ => Self {
                value: dev_default.to_owned(),
                from_env: false,
            },
        }
    }

    fn describe(&self, var: &str) -> String {
        if self.from_env {
            format!("{var}: set (from the environment)")
        } else {
            format!(
                "{var}: not set, using the development secret {:?}",
                self.value
            )
        }
    }
}

impl Config {
    fn from_env() -> Result<Self, Box<dyn Error>> {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Self {
            addr: var("HOOKDOCK_ADDR", "127.0.0.1:3000"),
            db: var("HOOKDOCK_DB", "hookdock.db"),
            max_depth: match std::env::var("HOOKDOCK_MAX_DEPTH") {
                Ok(v) if !v.is_empty() => Some(v.parse().map_err(|_| {
                    format!("HOOKDOCK_MAX_DEPTH must be a whole number of events, not {v:?}")
                })?),
                _ => None,
            },
            github: Secret::from_env("HOOKDOCK_GITHUB_SECRET", DEV_GITHUB_SECRET),
            stripe: Secret::from_env("HOOKDOCK_STRIPE_SECRET", DEV_STRIPE_SECRET),
            standard: Secret::from_env("HOOKDOCK_STANDARD_SECRET", DEV_STANDARD_SECRET),
        })
    }
}

/// The database, the queue every route stores into, and the signal that wakes the worker.
struct Storage {
    store: SqliteStore,
    queue: Arc<dyn Queue>,
    wake: Arc<tokio::sync::Notify>,
}

/// The queue every route stores into: one SQLite database, one writer thread, group
/// commit. (Any other backend fits here: the routes only see `Arc<dyn Queue>`.)
///
/// The queue wakes the in-process worker whenever it stores a new event.
fn open_queue(config: &Config) -> Result<Storage, Box<dyn Error>> {
    let store = SqliteStore::open(&config.db, SqliteOptions::default())?;
    let mut options = QueueOptions::default();
    if let Some(max) = config.max_depth {
        options = options.max_depth(max);
    }
    let queue = WakeOnEnqueue::new(store.queue(options));
    let wake = queue.signal();
    Ok(Storage {
        store,
        queue: Arc::new(queue),
        wake,
    })
}

/// One webhook endpoint: verify with `scheme`, then store into `queue`.
fn endpoint(scheme: impl Scheme, queue: &Arc<dyn Queue>) -> MethodRouter {
    post_service(
        ServiceBuilder::new()
            .layer(VerifyLayer::new(scheme))
            .service(Intake::new(Arc::clone(queue))),
    )
}

/// The webhook routes.
fn webhook_routes(config: &Config, queue: &Arc<dyn Queue>) -> Result<Router, Box<dyn Error>> {
    Ok(Router::new()
        .route(
            "/webhooks/github",
            endpoint(Preset::github([&config.github.value])?, queue),
        )
        .route(
            "/webhooks/stripe",
            endpoint(Preset::stripe([&config.stripe.value])?, queue),
        )
        .route(
            "/webhooks/standard",
            endpoint(Preset::standard_webhooks([&config.standard.value])?, queue),
        ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hookdock receiver: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let config = Config::from_env()?;
    let worker_config = demo::WorkerConfig::from_env()?;
    let Storage { store, queue, wake } = open_queue(&config)?;
    let worker = worker_config.start(Arc::clone(&queue), wake, store.idempotency())?;
    let app = webhook_routes(&config, &queue)?.merge(worker_config.admin_routes(
        Arc::clone(&queue),
        worker.as_ref().map(|w| w.worker().clone()),
    ));

    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    let addr = listener.local_addr()?;
    print_banner(&config, addr, queue.durability(), &worker_config.describe());

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    if let Some(worker) = worker {
        let report = worker.shutdown().await;
        if !report.given_back.is_empty() {
            println!(
                "worker stopped: {} event(s) handed back to the queue",
                report.given_back.len()
            );
        }
    }
    // Every acknowledged delivery is already durable; this checkpoints the WAL.
    store.close().await;
    println!("hookdock receiver stopped");
    Ok(())
}

fn print_banner(
    config: &Config,
    addr: std::net::SocketAddr,
    durability: impl std::fmt::Debug,
    worker: &[String],
) {
    println!("hookdock receiver listening on http://{addr}");
    match config.max_depth {
        Some(max) => println!(
            "  queue: {} ({durability:?}, at most {max} waiting)",
            config.db
        ),
        None => println!("  queue: {} ({durability:?})", config.db),
    }
    println!(
        "  POST /webhooks/github    {}",
        config.github.describe("HOOKDOCK_GITHUB_SECRET")
    );
    println!(
        "  POST /webhooks/stripe    {}",
        config.stripe.describe("HOOKDOCK_STRIPE_SECRET")
    );
    println!(
        "  POST /webhooks/standard  {}",
        config.standard.describe("HOOKDOCK_STANDARD_SECRET")
    );
    for line in worker {
        println!("{line}");
    }
    if config.github.from_env {
        // A signature under a real secret would be a delivery anyone reading the log could
        // replay forever (GitHub signs no timestamp): print none.
        println!("  (no test command printed: HOOKDOCK_GITHUB_SECRET is a real secret)");
        return;
    }
    let body = r#"{"zen":"Approachable is better than simple.","hook_id":1}"#;
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(config.github.value.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return,
    };
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    println!("send a signed test delivery (again: it is acknowledged as a duplicate):");
    println!(
        "  curl -i http://{addr}/webhooks/github -H 'Content-Type: application/json' \
         -H 'X-GitHub-Event: ping' -H 'X-GitHub-Delivery: hookdock-test-1' \
         -H 'X-Hub-Signature-256: sha256={signature}' -d '{body}'"
    );
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight deliveries");
}
