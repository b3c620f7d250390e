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
//! The queue is an embedded SQLite database by default. With `HOOKDOCK_DATABASE_URL` set
//! (and the `postgres` feature) it is PostgreSQL instead, so several receivers and workers
//! can share it:
//!
//! ```sh
//! HOOKDOCK_DATABASE_URL=postgres://app@localhost/app cargo run --features postgres --example receiver
//! ```
//!
//! A [`Worker`](hookdock::worker::Worker) in the same process drains that queue through the
//! dedupe layer (claims in the same database) into a demo handler that logs each event
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
//! | `HOOKDOCK_DB` | `hookdock.db` (SQLite, WAL, `synchronous=FULL`); ignored with `HOOKDOCK_DATABASE_URL` |
//! | `HOOKDOCK_DATABASE_URL` | unset: SQLite. Set: PostgreSQL at this URL (`postgres://user:password@host:5432/database`; needs the `postgres` feature). The receiver creates its tables (migrations) at start-up; an unreachable server or a bad URL stops it with exit code 1. Every receiver and worker process pointed at the same database and schema shares one queue; the worker wakes through `LISTEN/NOTIFY`. |
//! | `HOOKDOCK_DATABASE_SCHEMA` | `public`: the PostgreSQL schema of hookdock's tables (a lowercase identifier; created if missing) |
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
use hookdock::idempotency::IdempotencyStore;
use hookdock::intake::Intake;
use hookdock::queue::{Queue, QueueOptions};
use hookdock::scheme::Preset;
use hookdock::sqlite::{SqliteOptions, SqliteStore};
use hookdock::verify::VerifyLayer;
use hookdock::worker::WakeOnEnqueue;
use hookdock::Scheme;
use tokio::sync::Notify;
use tower::ServiceBuilder;

const DEV_GITHUB_SECRET: &str = "hookdock-dev-github-secret";
const DEV_STRIPE_SECRET: &str = "whsec_hookdock_dev_stripe_secret";
const DEV_STANDARD_SECRET: &str = "whsec_aG9va2RvY2stZGV2LXN0YW5kYXJkLXNlY3JldC0zMmI=";

/// Everything the receiver reads from the environment.
struct Config {
    addr: String,
    db: String,
    /// PostgreSQL instead of SQLite, when set.
    database_url: Option<String>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    database_schema: String,
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
            database_url: std::env::var("HOOKDOCK_DATABASE_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            database_schema: var("HOOKDOCK_DATABASE_SCHEMA", "public"),
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

/// The database: the queue every route stores into, the dedupe store of the worker, and the
/// signal that wakes the worker. Everything past this point sees only the trait objects, so
/// the routes, the worker and the admin API are one code path for every backend.
struct Storage {
    queue: Arc<dyn Queue>,
    dedupe: Arc<dyn IdempotencyStore>,
    wake: Arc<Notify>,
    /// What the banner says about it.
    describe: String,
    closer: Closer,
}

/// How to shut the backend down once the server and the worker have stopped.
enum Closer {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(hookdock::postgres::Pool),
}

impl Closer {
    async fn close(self) {
        match self {
            // Every acknowledged delivery is already durable; this checkpoints the WAL.
            Self::Sqlite(store) => {
                let stats = store.writer_stats();
                println!(
                    "sqlite writer: {} operations in {} transactions (mean batch {:.1})",
                    stats.operations,
                    stats.transactions,
                    stats.mean_batch()
                );
                store.close().await
            }
            // Every acknowledged delivery is already committed; this closes the connections.
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

fn queue_options(config: &Config) -> QueueOptions {
    let mut options = QueueOptions::default();
    if let Some(max) = config.max_depth {
        options = options.max_depth(max);
    }
    options
}

/// PostgreSQL when `HOOKDOCK_DATABASE_URL` is set, else SQLite.
async fn open_storage(config: &Config) -> Result<Storage, Box<dyn Error>> {
    match &config.database_url {
        None => open_sqlite(config),
        Some(url) => open_postgres(config, url).await,
    }
}

/// One SQLite database, one writer thread, group commit. The queue wakes the in-process
/// worker whenever it stores a new event.
fn open_sqlite(config: &Config) -> Result<Storage, Box<dyn Error>> {
    let store = SqliteStore::open(&config.db, SqliteOptions::default())
        .map_err(|e| format!("cannot open the SQLite database {}: {e}", config.db))?;
    let queue = WakeOnEnqueue::new(store.queue(queue_options(config)));
    let wake = queue.signal();
    Ok(Storage {
        queue: Arc::new(queue),
        dedupe: Arc::new(store.idempotency()),
        wake,
        describe: format!("SQLite {}", config.db),
        closer: Closer::Sqlite(store),
    })
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_config: &Config, _url: &str) -> Result<Storage, Box<dyn Error>> {
    Err(
        "HOOKDOCK_DATABASE_URL is set, but this receiver was built without PostgreSQL \
         support: run it with `cargo run --features postgres --example receiver` (or unset \
         HOOKDOCK_DATABASE_URL to use SQLite)"
            .into(),
    )
}

/// PostgreSQL: connect, apply the migrations, and wake the worker through `LISTEN/NOTIFY`
/// (enqueues by any receiver process sharing the database wake it).
#[cfg(feature = "postgres")]
async fn open_postgres(config: &Config, url: &str) -> Result<Storage, Box<dyn Error>> {
    use hookdock::postgres::PgBackend;
    use sqlx::ConnectOptions;

    let shown = redact_url(url);
    // A bad URL, and an unreachable server, each get their own clear message (the pool alone
    // would retry a refused connection for 30 s and then only say that it timed out).
    let bad_url = |why: String| {
        format!(
            "HOOKDOCK_DATABASE_URL is not a valid PostgreSQL URL ({shown}): {why}; expected \
             postgres://user:password@host:5432/database"
        )
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad_url("it must start with postgres:// or postgresql://".into()).into());
    }
    let options: sqlx::postgres::PgConnectOptions =
        url.parse().map_err(|e| bad_url(format!("{e}")))?;
    let probe = tokio::time::timeout(std::time::Duration::from_secs(10), options.connect())
        .await
        .map_err(|_| format!("cannot connect to PostgreSQL at {shown}: no answer within 10 s"))?
        .map_err(|e| format!("cannot connect to PostgreSQL at {shown}: {e}"))?;
    let _ = sqlx::Connection::close(probe).await;

    let backend = PgBackend::connect(url)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL at {shown}: {e}"))?
        .with_schema(&config.database_schema)
        .map_err(|e| format!("HOOKDOCK_DATABASE_SCHEMA: {e}"))?;
    backend.migrate().await.map_err(|e| {
        format!(
            "cannot create hookdock's tables in schema {:?} at {shown}: {e}",
            config.database_schema
        )
    })?;
    let queue = backend.queue(queue_options(config));
    let wake = queue.wake_notify().await;
    Ok(Storage {
        queue: Arc::new(queue),
        dedupe: Arc::new(backend.idempotency_store()),
        wake,
        describe: format!("PostgreSQL {shown}, schema {}", config.database_schema),
        closer: Closer::Postgres(backend.pool().clone()),
    })
}

/// The URL without its password (in the user part or a `password=` parameter), for messages.
#[cfg(feature = "postgres")]
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
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
    let Storage {
        queue,
        dedupe,
        wake,
        describe,
        closer,
    } = open_storage(&config).await?;
    let worker = worker_config.start(Arc::clone(&queue), wake, dedupe)?;
    let app = webhook_routes(&config, &queue)?.merge(worker_config.admin_routes(
        Arc::clone(&queue),
        worker.as_ref().map(|w| w.worker().clone()),
    ));

    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    let addr = listener.local_addr()?;
    print_banner(
        &config,
        addr,
        &describe,
        queue.durability(),
        &worker_config.describe(),
    );

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
    closer.close().await;
    println!("hookdock receiver stopped");
    Ok(())
}

fn print_banner(
    config: &Config,
    addr: std::net::SocketAddr,
    storage: &str,
    durability: impl std::fmt::Debug,
    worker: &[String],
) {
    println!("hookdock receiver listening on http://{addr}");
    match config.max_depth {
        Some(max) => println!("  queue: {storage} ({durability:?}, at most {max} waiting)"),
        None => println!("  queue: {storage} ({durability:?})"),
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

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db.internal:5432/app",
                "postgres://app:***@db.internal:5432/app",
            ),
            (
                "postgres://app:p@ss@db/app?sslmode=require",
                "postgres://app:***@db/app?sslmode=require",
            ),
            (
                "postgres://app@db/app?password=s3cret&application_name=x",
                "postgres://app@db/app?password=***&application_name=x",
            ),
            ("postgres://db/app", "postgres://db/app"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown);
            assert!(!redact_url(url).contains("s3cret"));
        }
    }
}
