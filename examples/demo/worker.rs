//! The receiver's worker side: a demo handler run by hookdock's [`Worker`] (dedupe, retries,
//! dead letters) and JSON admin routes over the queue. Included by `examples/receiver.rs`.
//!
//! Configuration, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOOKDOCK_WORKER` | `on` | `off` runs the receiver alone (events stay in the queue) |
//! | `HOOKDOCK_DEMO_FAIL_RATE` | `0` | fraction of attempts (0 to 1) the demo handler fails |
//! | `HOOKDOCK_DEMO_FAIL_KIND` | `retry` | `retry` (retryable failures) or `permanent` (dead letters) |
//! | `HOOKDOCK_DEMO_DELAY_MS` | `0` | how long each handling takes |
//! | `HOOKDOCK_DEMO_EFFECTS` | none | a file the handler appends `source/id` to (fsynced) for each event it applies |
//! | `HOOKDOCK_LEASE_MS` | `30000` | the worker's lease, and the dedupe claim's |
//! | `HOOKDOCK_WORKER_CONCURRENCY` | `64` | events handled at once |
//! | `HOOKDOCK_ADMIN` | `on` | `off` serves no admin routes |
//! | `HOOKDOCK_ADMIN_TOKEN` | none | the admin routes require `Authorization: Bearer <token>`; a comma-separated list during a rotation (any one is accepted). Unset: the admin routes are open, which is only allowed on a loopback address (elsewhere the receiver refuses to start); set but empty: refused |

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hookdock::store::{DeadLetterFilter, MessageId, Queue};
use hookdock::store::{DeadLetters, IdempotencyStore};
use hookdock::worker::{DedupeLayer, Event, HandlerError, Worker, WorkerHandle};
use hookdock::StoreError;
use subtle::{Choice, ConstantTimeEq};
use tower::service_fn;

use crate::config::{env, parse, secret_list};

/// The worker's settings.
pub struct WorkerConfig {
    enabled: bool,
    demo: Arc<Demo>,
    lease: Duration,
    concurrency: usize,
    admin: AdminAccess,
}

/// Who may use the admin routes.
enum AdminAccess {
    /// No admin routes (`HOOKDOCK_ADMIN=off`).
    Off,
    /// Anyone who can connect: only on a loopback address.
    Open,
    /// Holders of one of these tokens (`HOOKDOCK_ADMIN_TOKEN`).
    Tokens(Arc<[String]>),
}

/// What the demo handler does.
struct Demo {
    fail_rate: f64,
    fail_permanent: bool,
    delay: Duration,
    effects: Option<PathBuf>,
}

impl WorkerConfig {
    /// Reads the settings of a receiver about to listen on `addr` (a `loopback` address or
    /// not); a bad value is an error naming the variable, and open admin routes on an
    /// address other than loopback are refused.
    pub fn from_env(addr: &str, loopback: bool) -> Result<Self, Box<dyn Error>> {
        let admin = match env("HOOKDOCK_ADMIN").as_deref() {
            None | Some("on") => match secret_list("HOOKDOCK_ADMIN_TOKEN")? {
                Some(tokens) => AdminAccess::Tokens(tokens.into()),
                None if loopback => AdminAccess::Open,
                None => {
                    return Err(format!(
                        "the admin routes (/admin/stats, /admin/dead, /admin/dead/replay) would be \
                         open to anyone who can reach {addr}: set HOOKDOCK_ADMIN_TOKEN, or \
                         HOOKDOCK_ADMIN=off to serve none, or bind HOOKDOCK_ADDR to a \
                         loopback address"
                    )
                    .into())
                }
            },
            Some("off") => AdminAccess::Off,
            Some(other) => {
                return Err(format!("HOOKDOCK_ADMIN must be on or off, not {other:?}").into())
            }
        };
        let enabled = match env("HOOKDOCK_WORKER").as_deref() {
            None | Some("on" | "1" | "true") => true,
            Some("off" | "0" | "false") => false,
            Some(other) => {
                return Err(format!("HOOKDOCK_WORKER must be on or off, not {other:?}").into())
            }
        };
        let fail_rate: f64 = parse("HOOKDOCK_DEMO_FAIL_RATE", 0.0, "a number from 0 to 1")?;
        if !(0.0..=1.0).contains(&fail_rate) {
            return Err(
                format!("HOOKDOCK_DEMO_FAIL_RATE must be from 0 to 1, not {fail_rate}").into(),
            );
        }
        let fail_permanent = match env("HOOKDOCK_DEMO_FAIL_KIND").as_deref() {
            None | Some("retry") => false,
            Some("permanent") => true,
            Some(other) => {
                return Err(format!(
                    "HOOKDOCK_DEMO_FAIL_KIND must be retry or permanent, not {other:?}"
                )
                .into())
            }
        };
        let lease_ms: u64 = parse(
            "HOOKDOCK_LEASE_MS",
            30_000,
            "a whole number of milliseconds",
        )?;
        if lease_ms == 0 {
            return Err("HOOKDOCK_LEASE_MS must be positive".into());
        }
        Ok(Self {
            enabled,
            demo: Arc::new(Demo {
                fail_rate,
                fail_permanent,
                delay: Duration::from_millis(parse(
                    "HOOKDOCK_DEMO_DELAY_MS",
                    0,
                    "a whole number of milliseconds",
                )?),
                effects: env("HOOKDOCK_DEMO_EFFECTS").map(PathBuf::from),
            }),
            lease: Duration::from_millis(lease_ms),
            concurrency: parse("HOOKDOCK_WORKER_CONCURRENCY", 64, "a whole number")?,
            admin,
        })
    }

    /// Lines for the start-up banner (never the admin token).
    pub fn describe(&self) -> Vec<String> {
        if !self.enabled {
            return vec![
                "  worker: off (HOOKDOCK_WORKER=off): events stay in the queue".into(),
                self.describe_admin(),
            ];
        }
        let d = &self.demo;
        let mut lines = vec![format!(
            "  worker: demo handler, {} at once, lease {:?}, fails {:.0}% of attempts ({}){}",
            self.concurrency,
            self.lease,
            d.fail_rate * 100.0,
            if d.fail_permanent {
                "permanently"
            } else {
                "retryably"
            },
            if d.delay.is_zero() {
                String::new()
            } else {
                format!(", takes {:?} each", d.delay)
            }
        )];
        if let Some(path) = &d.effects {
            lines.push(format!("  effects: appended to {}", path.display()));
        }
        lines.push(self.describe_admin());
        lines
    }

    fn describe_admin(&self) -> String {
        let routes = "GET /admin/stats, GET /admin/dead, POST /admin/dead/replay";
        match &self.admin {
            AdminAccess::Off => "  admin: off (HOOKDOCK_ADMIN=off)".into(),
            AdminAccess::Open => format!(
                "  admin: {routes} (no HOOKDOCK_ADMIN_TOKEN: open, on this loopback address only)"
            ),
            AdminAccess::Tokens(_) => {
                format!("  admin: {routes} (Bearer token from HOOKDOCK_ADMIN_TOKEN)")
            }
        }
    }

    /// Starts the worker (unless `HOOKDOCK_WORKER=off`): dedupe over `dedupe`, then the demo
    /// handler; the queue's own signal wakes it.
    pub fn start(
        &self,
        queue: Arc<dyn Queue>,
        dedupe: impl IdempotencyStore,
    ) -> Result<Option<WorkerHandle>, Box<dyn Error>> {
        if !self.enabled {
            return Ok(None);
        }
        let demo = self.demo.clone();
        let worker = Worker::builder(queue)
            .dedupe(
                DedupeLayer::builder(dedupe)
                    .claim_lease(self.lease)
                    .build()?,
            )
            .lease_for(self.lease)
            .concurrency(self.concurrency)
            .build(service_fn(move |event: Event| handle(demo.clone(), event)))?;
        Ok(Some(worker.spawn()))
    }

    /// The admin routes, over `queue` and the running worker (if any); none with
    /// `HOOKDOCK_ADMIN=off`.
    pub fn admin_routes(&self, queue: Arc<dyn Queue>, worker: Option<Worker>) -> Router {
        let tokens = match &self.admin {
            AdminAccess::Off => return Router::new(),
            AdminAccess::Open => None,
            AdminAccess::Tokens(tokens) => Some(Arc::clone(tokens)),
        };
        let admin = Admin {
            dead: DeadLetters::new(queue.clone()),
            queue,
            worker,
            tokens,
        };
        Router::new()
            .route("/admin/stats", get(stats))
            .route("/admin/dead", get(dead))
            .route("/admin/dead/replay", post(replay))
            .route_layer(middleware::from_fn_with_state(admin.clone(), require_token))
            .with_state(admin)
    }
}

/// What kind of event this is: GitHub's `X-GitHub-Event` header, else the body's top-level
/// `"type"` (Stripe, Standard Webhooks).
fn event_type(event: &Event) -> String {
    if let Some(kind) = event
        .headers()
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
    {
        return kind.to_owned();
    }
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_slice::<Typed>(event.body())
        .ok()
        .and_then(|t| t.kind)
        .unwrap_or_else(|| "unknown".into())
}

/// The demo handler: logs the event, takes its time, fails when told to, and records its
/// effect.
async fn handle(demo: Arc<Demo>, event: Event) -> Result<(), HandlerError> {
    let kind = event_type(&event);
    // A plain line on stdout (the tests watch for it), besides the log.
    println!(
        "handling {}/{} type={kind} attempt={}",
        event.source(),
        event.id(),
        event.attempt()
    );
    tracing::info!(source = event.source(), id = %event.id(), %kind, attempt = event.attempt(), "handling event");
    if !demo.delay.is_zero() {
        tokio::time::sleep(demo.delay).await;
    }
    if demo.fail_rate > 0.0 && fastrand::f64() < demo.fail_rate {
        let why = format!(
            "demo failure (HOOKDOCK_DEMO_FAIL_RATE={}) for {}/{}",
            demo.fail_rate,
            event.source(),
            event.id()
        );
        return Err(if demo.fail_permanent {
            HandlerError::permanent(why)
        } else {
            HandlerError::retry(why)
        });
    }
    if let Some(path) = demo.effects.clone() {
        let line = format!("{}/{}\n", event.source(), event.id());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            file.write_all(line.as_bytes())?;
            file.sync_data()
        })
        .await
        .map_err(|e| HandlerError::retry(format!("effect writer task failed: {e}")))??;
    }
    Ok(())
}

#[derive(Clone)]
struct Admin {
    queue: Arc<dyn Queue>,
    dead: DeadLetters,
    worker: Option<Worker>,
    /// `None`: open (loopback only, checked at start-up).
    tokens: Option<Arc<[String]>>,
}

/// Without configured tokens (loopback only), everything passes; with them, only
/// `Bearer <token>` for one of them (each compared in constant time, all of them always).
async fn require_token(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    if let Some(tokens) = &admin.tokens {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        let matched = tokens
            .iter()
            .fold(Choice::from(0), |any, t| any | given.ct_eq(t.as_bytes()));
        if !bool::from(matched) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                Json(serde_json::json!({ "error": "admin token required" })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// A storage failure: 503 with `Retry-After`.
fn unavailable(error: StoreError) -> Response {
    tracing::warn!(%error, "admin request failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
        Json(serde_json::json!({ "error": error.to_string() })),
    )
        .into_response()
}

/// `GET /admin/stats`: the queue's counts and the worker's totals.
async fn stats(State(admin): State<Admin>) -> Response {
    match admin.queue.stats().await {
        Ok(queue) => Json(serde_json::json!({
            "queue": queue,
            "worker": admin.worker.as_ref().map(Worker::stats),
        }))
        .into_response(),
        Err(error) => unavailable(error),
    }
}

#[derive(serde::Deserialize)]
struct DeadQuery {
    source: Option<String>,
    event_id: Option<String>,
    reason: Option<String>,
    /// Page on: only message ids above this.
    after: Option<i64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// `GET /admin/dead`: dead letters with their reasons and attempts, oldest first.
async fn dead(State(admin): State<Admin>, Query(q): Query<DeadQuery>) -> Response {
    let mut filter = DeadLetterFilter::all().limit(q.limit.unwrap_or(100).min(1000));
    if let Some(source) = q.source {
        filter = filter.source(source);
    }
    if let Some(id) = q.event_id {
        filter = filter.event_id(id);
    }
    if let Some(text) = q.reason {
        filter = filter.reason_contains(text);
    }
    if let Some(after) = q.after {
        filter = filter.after(MessageId(after));
    }
    match admin.dead.list(&filter).await {
        Ok(dead) => Json(serde_json::json!({ "dead": dead })).into_response(),
        Err(error) => unavailable(error),
    }
}

#[derive(serde::Deserialize)]
struct ReplayQuery {
    /// Only this message (as listed by `GET /admin/dead`).
    id: Option<i64>,
    /// Only this source.
    source: Option<String>,
}

/// `POST /admin/dead/replay`: replays every dead letter, or `?id=<message>`, or
/// `?source=<name>`.
async fn replay(State(admin): State<Admin>, Query(q): Query<ReplayQuery>) -> Response {
    let mut filter = match q.id {
        Some(id) => DeadLetterFilter::message(MessageId(id)),
        None => DeadLetterFilter::all(),
    };
    if let Some(source) = q.source {
        filter = filter.source(source);
    }
    match admin.dead.replay(&filter).await {
        Ok(replayed) => Json(serde_json::json!({ "replayed": replayed })).into_response(),
        Err(error) => unavailable(error),
    }
}
