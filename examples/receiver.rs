//! The hookdock receiver: an axum server that verifies GitHub, Stripe and Standard Webhooks
//! deliveries and stores each one durably before answering `200`.
//!
//! ```sh
//! cargo run --features admin --example receiver
//! ```
//!
//! Routes (POST only): `/webhooks/github`, `/webhooks/stripe`, `/webhooks/standard`. Each is
//! a verify layer in front of an intake; all intakes share one queue. The server is
//! [`hookdock::serve::serve`]: header-read, idle and body timeouts, connection and in-flight
//! limits, and a shutdown deadline, all on by default.
//!
//! The queue is an embedded SQLite database by default. With `HOOKDOCK_DATABASE_URL` set
//! (and the `postgres` feature) it is PostgreSQL instead, so several receivers and workers
//! can share it:
//!
//! ```sh
//! HOOKDOCK_DATABASE_URL=postgres://app@localhost/app cargo run --features admin,postgres --example receiver
//! ```
//!
//! A [`Worker`](hookdock::worker::Worker) in the same process drains that queue through the
//! dedupe layer (claims in the same database) into a demo handler that logs each event
//! (source, id, type) and can be told to fail. The library's admin routes
//! ([`hookdock::admin`]) are mounted under `/admin`: `GET /admin/stats` (event log counts,
//! queue counts and worker totals), `GET /admin/events` (search: `?source=&type=&status=&
//! origin=&from=&until=&before=&limit=`), `GET /admin/events/{source}/{id}` (and `/body`, the
//! raw bytes), `GET /admin/dead`, `POST /admin/events/{source}/{id}/replay?mode=dedupe|forced`,
//! `POST /admin/replays` and `POST /admin/dead/replay` (bulk replay jobs, in the background),
//! `GET /admin/replays/{id}` (progress), `POST /admin/replays/{id}/cancel`. The health routes
//! ([`hookdock::admin::Health`]) are at the root, without a token: `GET /livez` (`200` while
//! the process answers) and `GET /readyz` (`200`, or `503` with a reason while the queue
//! cannot take a write: a full disk, an unreachable database). The worker's
//! settings (`HOOKDOCK_WORKER`, `HOOKDOCK_DEMO_FAIL_RATE`, `HOOKDOCK_DEMO_FAIL_KIND`,
//! `HOOKDOCK_DEMO_DELAY_MS`, `HOOKDOCK_DEMO_EFFECTS`, `HOOKDOCK_LEASE_MS`,
//! `HOOKDOCK_WORKER_CONCURRENCY`, `HOOKDOCK_ADMIN`, `HOOKDOCK_ADMIN_TOKEN`,
//! `HOOKDOCK_ADMIN_READ_TOKEN`) are listed in `examples/demo/worker.rs`.
//!
//! Built with `--features reconcile`, it also reconciles: with `HOOKDOCK_STRIPE_API_KEY`
//! (and `HOOKDOCK_STRIPE_API_BASE`), or `HOOKDOCK_GITHUB_TOKEN` with `HOOKDOCK_GITHUB_HOOK`
//! (`owner/repo/hook_id`, and `HOOKDOCK_GITHUB_API_BASE`), a pass every
//! `HOOKDOCK_RECONCILE_EVERY` seconds (default 900) stores what the push routes missed into
//! the same queue (GitHub: asks for it again); `GET /admin/stats` shows each source's last
//! report and recovery rate, `POST /admin/reconcile/{source}` runs a pass now. The variables
//! are listed in `examples/demo/reconcile.rs`.
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
//! | `HOOKDOCK_RATE_LIMIT` | no limit; with `N` (built with `--features rate-limit`), each route takes `N` deliveries a second (bursts of `N`) and answers `429` + `Retry-After` above it |
//! | `HOOKDOCK_ROUTES` | `github,stripe,standard`: the routes served (the others need no secret) |
//! | `HOOKDOCK_GITHUB_SECRET` | unset: a development secret, printed at start-up, on a loopback address only |
//! | `HOOKDOCK_STRIPE_SECRET` | the same, for Stripe |
//! | `HOOKDOCK_STANDARD_SECRET` | the same (`whsec_...`), for Standard Webhooks |
//! | `HOOKDOCK_ID_FROM_BODY` | none: routes (such as `github`) whose event id is the SHA-256 of the body rather than the provider's unsigned delivery id, so a captured delivery re-sent under new ids is one event (and so are two deliveries with identical bodies) |
//! | `HOOKDOCK_HEADER_TIMEOUT` | `10s`: to send a request's headers, and to idle between requests |
//! | `HOOKDOCK_BODY_TIMEOUT` | `10s`: to send a body once its headers are in (`408` after it) |
//! | `HOOKDOCK_MAX_CONNECTIONS` | `1024`: past it, the oldest connection with no request in flight is closed; keep it below `ulimit -n` |
//! | `HOOKDOCK_MAX_IN_FLIGHT` | `512`: requests handled at once; beyond it `503` + `Retry-After` |
//! | `HOOKDOCK_SHUTDOWN_DEADLINE` | `10s`: how long SIGTERM waits for open connections before closing them |
//! | `HOOKDOCK_LIMITS` | `on`; `off` serves with `axum::serve` and none of the four settings above (to measure their cost; loopback only) |
//! | `HOOKDOCK_METRICS_SAMPLE` | `15s`: how often the queue gauges read the event log (built with `--features metrics`) |
//! | `RUST_LOG` | `info` |
//!
//! Durations are written `10s` or `500ms`.
//!
//! Built with `--features admin,metrics` it also serves `GET /metrics`: every
//! [`hookdock::metrics`] name in the Prometheus text format (the recorder of
//! `metrics-exporter-prometheus`, with no listener of its own), the queue gauges sampled
//! every `HOOKDOCK_METRICS_SAMPLE`.
//!
//! It fails closed: a secret or token variable that is set but empty (or whitespace) stops it
//! at start-up, and so does a route without its secret, or admin routes without
//! `HOOKDOCK_ADMIN_TOKEN`, on an address other than loopback. Each secret variable takes a
//! comma-separated list (during a rotation, the new secret and the old), every one tried
//! like the library's presets do, so a secret cannot contain a comma here.
//!
//! Secrets taken from the environment are never printed. Stops gracefully on Ctrl-C and
//! SIGTERM: it stops accepting, in-flight deliveries finish (and are stored) and are
//! answered, connections still open at the shutdown deadline are closed (what they were
//! sending was never acknowledged, so the provider retries it), and the worker finishes what
//! it is handling (up to 30 s) and hands the rest back to the queue.

#[path = "demo/config.rs"]
mod config;
#[path = "demo/worker.rs"]
mod demo;
#[cfg(feature = "reconcile")]
#[path = "demo/reconcile.rs"]
mod reconcile;

use std::error::Error;
use std::sync::Arc;

use axum::routing::{post_service, MethodRouter};
use axum::Router;
use hmac::{KeyInit, Mac};
use hookdock::alert::{Alert, Alerts};
use hookdock::intake::Intake;
use hookdock::scheme::Preset;
use hookdock::serve::serve;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::IdempotencyStore;
use hookdock::store::{CheckpointStore, EventLog, Queue, QueueOptions};
use hookdock::verify::VerifyLayer;
use tower::ServiceBuilder;

use config::{Config, Route};

/// The database: the queue every route stores into (which is also its event log) and the
/// dedupe store of the worker (the queue brings its own wake-up for the worker). Everything
/// past this point sees only the trait objects, so the routes, the worker and the admin API
/// are one code path for every backend.
struct Storage {
    log: Arc<dyn EventLog>,
    dedupe: Arc<dyn IdempotencyStore>,
    /// Reconciliation's checkpoints, reports and leadership (used with `reconcile`).
    #[cfg_attr(not(feature = "reconcile"), allow(dead_code))]
    checkpoints: Arc<dyn CheckpointStore>,
    /// What the banner says about it.
    describe: String,
    closer: Closer,
}

/// How to shut the backend down once the server and the worker have stopped.
enum Closer {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(hookdock::store::postgres::PgStore),
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
            // Every acknowledged delivery is already committed; this finishes the batches in
            // flight and closes the connections.
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => {
                store.close().await;
                store.pool().close().await
            }
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
    let store = SqliteStore::open(&config.db, SqliteOptions::default()).map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(" ({c})"));
        format!("cannot open the SQLite database {}: {e}{cause}", config.db)
    })?;
    Ok(Storage {
        log: Arc::new(store.queue(queue_options(config))),
        dedupe: Arc::new(store.idempotency()),
        checkpoints: Arc::new(store.queue(queue_options(config))),
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
    use hookdock::store::postgres::{PgOptions, PgStore};
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

    let options = PgOptions::new().schema(config.database_schema.clone());
    let store = PgStore::connect(url, options).await.map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(" ({c})"));
        format!(
            "cannot open hookdock's tables in schema {:?} at {shown}: {e}{cause}",
            config.database_schema
        )
    })?;
    Ok(Storage {
        log: Arc::new(store.queue(queue_options(config))),
        dedupe: Arc::new(store.idempotency()),
        checkpoints: Arc::new(store.queue(queue_options(config))),
        describe: format!("PostgreSQL {shown}, schema {}", config.database_schema),
        closer: Closer::Postgres(store),
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

/// One webhook route: verify with its preset (every configured secret), then store into
/// `queue`.
fn endpoint(
    route: &Route,
    config: &Config,
    queue: &Arc<dyn Queue>,
    alerts: &Alerts,
) -> Result<MethodRouter, Box<dyn Error>> {
    let secrets = &route.secrets.values;
    let preset = match route.name {
        "github" => Preset::github(secrets),
        "stripe" => Preset::stripe(secrets),
        _ => Preset::standard_webhooks(secrets),
    }
    .map_err(|e| format!("{}: {e}", route.secret_var()))?;
    let preset = if route.id_from_body {
        preset.id_from_body_hash()
    } else {
        preset
    };
    let verify = VerifyLayer::new(preset).alerts(alerts.clone());
    let verify = if config.edge.limits {
        verify.body_timeout(config.edge.body_timeout)
    } else {
        verify.without_body_timeout()
    };
    let service = ServiceBuilder::new()
        .layer(verify)
        .service(Intake::new(Arc::clone(queue)));
    #[cfg(feature = "rate-limit")]
    if let Some(limit) = rate_limit()? {
        use tower::Layer;
        let limited = hookdock::limit::RateLimitLayer::new(limit).source(route.name);
        return Ok(post_service(limited.layer(service)));
    }
    Ok(post_service(service))
}

/// `HOOKDOCK_RATE_LIMIT`: deliveries a second per route (bursts of as many), answered
/// `429` + `Retry-After` above it; unset: no limit.
#[cfg(feature = "rate-limit")]
fn rate_limit() -> Result<Option<hookdock::limit::RateLimit>, Box<dyn Error>> {
    let Some(value) = config::env("HOOKDOCK_RATE_LIMIT") else {
        return Ok(None);
    };
    let per_second: u32 = value
        .parse()
        .map_err(|e| format!("HOOKDOCK_RATE_LIMIT {value:?} is not a whole number: {e}"))?;
    let limit = hookdock::limit::RateLimit::per_second(per_second, per_second)
        .map_err(|e| format!("HOOKDOCK_RATE_LIMIT: {e}"))?;
    Ok(Some(limit))
}

/// The webhook routes.
fn webhook_routes(
    config: &Config,
    queue: &Arc<dyn Queue>,
    alerts: &Alerts,
) -> Result<Router, Box<dyn Error>> {
    let mut router = Router::new();
    for route in &config.routes {
        let path = format!("/webhooks/{}", route.name);
        router = router.route(&path, endpoint(route, config, queue, alerts)?);
    }
    Ok(router)
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

    // Whether the address is loopback decides what may run without secrets: checked before
    // anything listens on it.
    let addr = config::env("HOOKDOCK_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host(&addr)
        .await
        .map_err(|e| format!("HOOKDOCK_ADDR {addr:?} is not an address to listen on: {e}"))?
        .collect();
    let loopback = !resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback());
    let config = Config::from_env(loopback)?;
    let worker_config = demo::WorkerConfig::from_env(&addr, loopback)?;
    let listener = tokio::net::TcpListener::bind(&resolved[..])
        .await
        .map_err(|e| format!("cannot listen on HOOKDOCK_ADDR {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    #[cfg(feature = "reconcile")]
    let reconcile_config = reconcile::ReconcileConfig::from_env()?;
    let Storage {
        log,
        dedupe,
        checkpoints,
        describe,
        closer,
    } = open_storage(&config).await?;
    let queue: Arc<dyn Queue> = log.clone();
    // Alerts (dead letters, signature spikes, an old ready event, a busy source gone quiet)
    // are logged; a real deployment would page someone from this hook.
    let alerts = Alerts::new(|alert: &Alert| {
        tracing::warn!(alert = alert.kind(), "hookdock alert: {alert}");
    });
    let worker = worker_config.start(Arc::clone(&queue), dedupe, alerts.clone())?;
    // Reconciliation, when a provider's API is configured: the same queue, dedupe and
    // handler as the pushed events.
    #[cfg(feature = "reconcile")]
    let (reconciler, reconcile_lines) = {
        let lines = reconcile_config.describe();
        let reconciler = reconcile_config.reconciler(Arc::clone(&log), checkpoints, alerts.clone());
        (reconciler, lines)
    };
    #[cfg(not(feature = "reconcile"))]
    let (reconciler, reconcile_lines): (Option<hookdock::reconcile::Reconciler>, Vec<String>) = {
        drop(checkpoints);
        (None, Vec::new())
    };
    let admin = worker_config
        .admin_routes(
            Arc::clone(&log),
            worker.as_ref().map(|w| w.worker().clone()),
            reconciler.clone(),
            addr,
        )
        .await?;
    // For load balancers, with no token: `GET /livez`, `GET /readyz` (a cached write probe).
    let health = hookdock::admin::Health::from_dyn(Arc::clone(&queue)).router();
    let app = webhook_routes(&config, &queue, &alerts)?
        .merge(admin)
        .merge(health);
    // One sampler of the log: the queue gauges check the alerts when metrics are on.
    #[cfg(feature = "metrics")]
    let (app, _gauges) = {
        let (routes, gauges) = metrics_routes(Arc::clone(&log), alerts)?;
        (app.merge(routes), gauges)
    };
    #[cfg(not(feature = "metrics"))]
    let _watch = hookdock::alert::QueueWatch::new(Arc::clone(&log), alerts).spawn();

    print_banner(
        &config,
        addr,
        &describe,
        queue.durability(),
        &worker_config.describe(),
    );
    for line in reconcile_lines {
        println!("{line}");
    }
    let reconciling = reconciler.map(hookdock::reconcile::Reconciler::spawn);

    if config.edge.limits {
        let report = serve(listener, app, config.edge.serve.clone(), shutdown_signal()).await;
        println!("edge: {report}");
    } else {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
    }
    if let Some(reconciling) = reconciling {
        // A pass under way stops where it is; its checkpoint keeps its place.
        reconciling.shutdown().await;
    }
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

/// `GET /metrics` in the Prometheus text format, and the queue gauges' sampler (stopped when
/// the handle is dropped).
#[cfg(feature = "metrics")]
fn metrics_routes(
    log: Arc<dyn hookdock::store::EventLog>,
    alerts: Alerts,
) -> Result<(Router, hookdock::metrics::QueueGaugesHandle), Box<dyn Error>> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    // Seconds histograms as Prometheus histograms (not summaries), from 100 µs to 10 min.
    const SECONDS: &[f64] = &[
        0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0, 30.0, 60.0, 300.0, 600.0,
    ];
    const SIZES: &[f64] = &[
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(
            Matcher::Full(hookdock::metrics::STORE_BATCH_SIZE.into()),
            SIZES,
        )?
        .install_recorder()?;
    hookdock::metrics::describe();
    let every = config::duration(
        "HOOKDOCK_METRICS_SAMPLE",
        std::time::Duration::from_secs(15),
    )?;
    let gauges = hookdock::metrics::QueueGauges::new(log)
        .every(every)
        .alerts(alerts)
        .spawn();
    let routes = Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    Ok((routes, gauges))
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
    for route in &config.routes {
        let path = format!("/webhooks/{}", route.name);
        let id = if route.id_from_body {
            ", event id: SHA-256 of the body"
        } else {
            ""
        };
        println!(
            "  POST {path:<18} {}{id}",
            route.secrets.describe(&route.secret_var())
        );
    }
    println!("{}", config.describe_edge());
    for line in worker {
        println!("{line}");
    }
    #[cfg(feature = "metrics")]
    println!("  metrics: GET /metrics (Prometheus text)");
    let Some(github) = config.github() else {
        return;
    };
    if !github.secrets.dev {
        // A signature under a real secret would be a delivery anyone reading the log could
        // replay forever (GitHub signs no timestamp): print none.
        println!("  (no test command printed: HOOKDOCK_GITHUB_SECRET is a real secret)");
        return;
    }
    let body = r#"{"zen":"Approachable is better than simple.","hook_id":1}"#;
    let mut mac =
        match hmac::Hmac::<sha2::Sha256>::new_from_slice(github.secrets.values[0].as_bytes()) {
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
