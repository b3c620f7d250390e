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
//! Configuration, from the environment:
//!
//! | variable | default |
//! |---|---|
//! | `HOOKDOCK_ADDR` | `127.0.0.1:3000` (port `0` picks a free port) |
//! | `HOOKDOCK_DB` | `hookdock.db` |
//! | `HOOKDOCK_GITHUB_SECRET` | a development secret, printed at start-up |
//! | `HOOKDOCK_STRIPE_SECRET` | a development secret, printed at start-up |
//! | `HOOKDOCK_STANDARD_SECRET` | a development secret (`whsec_...`), printed at start-up |
//! | `RUST_LOG` | `info` |
//!
//! Secrets taken from the environment are never printed. Stops gracefully on Ctrl-C and
//! SIGTERM: in-flight deliveries finish (and are stored) before the process exits.

use std::error::Error;
use std::sync::Arc;

use axum::routing::{post_service, MethodRouter};
use axum::Router;
use hmac::{KeyInit, Mac};
use hookdock::intake::Intake;
use hookdock::queue::{MemoryQueue, Queue};
use hookdock::scheme::Preset;
use hookdock::verify::VerifyLayer;
use hookdock::Scheme;
use tower::ServiceBuilder;

const DEV_GITHUB_SECRET: &str = "hookdock-dev-github-secret";
const DEV_STRIPE_SECRET: &str = "whsec_hookdock_dev_stripe_secret";
const DEV_STANDARD_SECRET: &str = "whsec_aG9va2RvY2stZGV2LXN0YW5kYXJkLXNlY3JldC0zMmI=";

/// Everything the receiver reads from the environment.
struct Config {
    addr: String,
    db: String,
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
    fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            addr: var("HOOKDOCK_ADDR", "127.0.0.1:3000"),
            db: var("HOOKDOCK_DB", "hookdock.db"),
            github: Secret::from_env("HOOKDOCK_GITHUB_SECRET", DEV_GITHUB_SECRET),
            stripe: Secret::from_env("HOOKDOCK_STRIPE_SECRET", DEV_STRIPE_SECRET),
            standard: Secret::from_env("HOOKDOCK_STANDARD_SECRET", DEV_STANDARD_SECRET),
        }
    }
}

/// The queue every route stores into.
// Until the SQLite backend lands this is the in-memory queue (nothing survives a restart).
fn open_queue(_db: &str) -> Result<Arc<dyn Queue>, Box<dyn Error>> {
    Ok(Arc::new(MemoryQueue::new()))
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
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let config = Config::from_env();
    let queue = open_queue(&config.db)?;
    let app = webhook_routes(&config, &queue)?;

    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    let addr = listener.local_addr()?;
    print_banner(&config, addr, queue.durability());

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    println!("hookdock receiver stopped");
    Ok(())
}

fn print_banner(config: &Config, addr: std::net::SocketAddr, durability: impl std::fmt::Debug) {
    println!("hookdock receiver listening on http://{addr}");
    println!("  queue: {} ({durability:?})", config.db);
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
