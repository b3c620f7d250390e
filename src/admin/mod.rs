//! Admin routes over the [event log](crate::store::EventLog) (feature `admin`): an axum
//! [`Router`] to mount under a prefix of your own, with stats, event search, raw bodies,
//! dead letters and replay, all answered in JSON.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use hookdock::admin::Admin;
//! use hookdock::store::{MemoryStore, Queue, QueueOptions};
//! use hookdock::RawEvent;
//! use tower::ServiceExt;
//!
//! let queue = Arc::new(MemoryStore::new().queue(QueueOptions::default()));
//! queue
//!     .enqueue(RawEvent::new("github", "d-1", std::time::SystemTime::now(), "{\"zen\":1}"))
//!     .await?;
//!
//! // Served on 127.0.0.1:3000 (loopback), with a read-write token.
//! let admin = Admin::builder(Arc::clone(&queue))
//!     .write_token("change-me-to-a-long-random-token")
//!     .served_on("127.0.0.1:3000".parse()?)
//!     .build()?;
//! let app = axum::Router::new().nest("/admin", admin.router());
//! // ... then serve `app` (`hookdock::serve::serve`, `axum::serve`).
//!
//! let request = |token: &str| {
//!     Request::get("/admin/events?source=github&limit=10")
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(Body::empty())
//! };
//! let response = app.clone().oneshot(request("wrong")?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//!
//! let response = app.oneshot(request("change-me-to-a-long-random-token")?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let page: serde_json::Value =
//!     serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
//! assert_eq!(page["entries"][0]["event_id"], "d-1");
//! assert_eq!(page["entries"][0]["status"], "pending");
//! assert_eq!(page["next"], serde_json::Value::Null); // the last page
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Routes
//!
//! Paths are relative to where the router is nested. `{source}` and `{id}` are
//! percent-encoded path segments (an id holding `/` is sent as `%2F`).
//!
//! | route | token | answer |
//! |---|---|---|
//! | `GET /stats?<filter>` | read | `{"log": LogCounts, "oldest_pending_age_ms", "queue": QueueStats, "worker"?, "reconciliation"?}`: counts by source, type and status of the matching events (page parameters ignored), the queue's counts (`ready`, `leased`, `scheduled`, `dead`), the worker's totals when [given](AdminBuilder::worker), and the last reconciliation report of each source with its `recovery_rate` when [given](AdminBuilder::reconciler) |
//! | `GET /events?<filter>` | read | one page, newest first: `{"entries": [LogEntry], "next", "limit"}` |
//! | `GET /events/{source}/{id}` | read | `{"entry": LogEntry, "headers": [{"name", "value"}], "body_bytes"}`; `404` if unknown |
//! | `GET /events/{source}/{id}/body` | read | the raw body, byte for byte, under its stored `content-type` (else `application/octet-stream`), as an attachment with `nosniff` and a sandboxing CSP: a browser never renders it |
//! | `GET /dead?<filter>` | read | the dead letters: `/events` with status `dead` |
//! | `GET /replays?running=true` | read | `{"jobs": [ReplayJob]}`, newest first (only running ones with `running=true`) |
//! | `GET /replays/{id}` | read | one [`ReplayJob`](crate::store::ReplayJob): its progress (`total`, `replayed`, `skipped`, `state`) |
//! | `POST /events/{source}/{id}/replay?mode=dedupe\|forced` | write | replays one event now (a job of one, run to its end) and answers the job: `replayed: 1`, or `skipped: 1` if the event was not settled |
//! | `POST /replays` | write | body `{"filter": EventFilter, "mode": "dedupe"\|"forced"}`: creates a durable job, runs it in the background, answers `202` with the job |
//! | `POST /dead/replay` | write | the same for dead letters: body optional (`{"filter": ..., "mode": ...}`; every dead letter, through dedupe, without one) |
//! | `POST /reconcile/{source}` | write | runs a reconciliation pass over `source` now (when a [reconciler](AdminBuilder::reconciler) is given) and answers its report with `recovery_rate`; `404` for an unknown source, `409` when another process leads it |
//! | `POST /replays/{id}/cancel` | write | stops a job; answers it |
//!
//! `<filter>` is any of `source`, `type`, `status` (`pending`, `leased`, `succeeded`,
//! `retrying`, `dead`, `stale`), `origin` (`push`, `replay`, `reconciliation`), `from`
//! (inclusive) and `until` (exclusive) as **Unix milliseconds or RFC 3339**
//! (`1767225600000`, `2026-01-01T00:00:00Z`), `before` (the `next` of the previous page)
//! and `limit` (the page size, [`DEFAULT_PAGE`](crate::store::DEFAULT_PAGE) by default,
//! clamped to [`MAX_PAGE`](crate::store::MAX_PAGE)). An empty value filters nothing; an
//! unknown or repeated parameter, or a bad value, is answered `400` with
//! `{"error", "reason": "bad_parameter", "parameter"}`. The `filter` of a replay body is
//! [`EventFilter`](crate::store::EventFilter)'s JSON form (`source`, `event_id`,
//! `event_type`, `status`, `origin`, `received_from`, `received_until`, times in
//! **microseconds** since 1970); any other field is refused, so that a misspelt one never
//! widens a replay.
//!
//! Errors are JSON, `{"error": <for people>, "reason": <a stable code>}`; store failures by
//! [kind](crate::store::ErrorKind): transient `503` with `Retry-After`, invalid input `400`,
//! internal `500` (details in the log, not in the answer).
//!
//! # Health
//!
//! [`Health`] serves `GET /livez` and `GET /readyz` for load balancers, with no token and
//! nothing in the answer but a status and a [kind](NotReady): readiness is a cached, real
//! write probe of the queue ([`Queue::check_writable`](crate::store::Queue::check_writable)).
//! Mount it beside the admin routes, not under their tokens.
//!
//! # Replay jobs
//!
//! A bulk replay is a durable [job](crate::store::ReplayJob) stepped by a
//! [`Replayer`] in a task of this process, in batches
//! ([`replay_batch_size`](AdminBuilder::replay_batch_size)) and at a bounded rate
//! ([`replay_rate`](AdminBuilder::replay_rate)). If the process stops, the job stays
//! running in the store; call [`Admin::resume_replays`] at start-up to carry on with it
//! (each batch commits with the job's cursor, so nothing is replayed twice).
//!
//! # Access
//!
//! Bearer tokens (`Authorization: Bearer <token>`): a **read-write** token
//! ([`write_token`](AdminBuilder::write_token)) may use every route, a **read-only** one
//! ([`read_token`](AdminBuilder::read_token)) only the `GET` routes (`403` on the others).
//! A missing or unknown token is answered `401` with `WWW-Authenticate: Bearer`. Each call
//! adds a token, so an old and a new one can both be accepted during a rotation. Only the
//! SHA-256 digests of the tokens are kept, compared in constant time (so neither the bytes
//! nor the length of a token leak through timing), and never printed.
//!
//! Once any token is configured, every route needs one: with only read tokens, the write
//! routes answer `401`/`403` to everyone (or use [`read_only`](AdminBuilder::read_only) to
//! serve none).
//!
//! **Without any token, every route is open** to anyone who can connect:
//! [`build`](AdminBuilder::build) allows that only when the router is served on loopback
//! ([`served_on`](AdminBuilder::served_on) a loopback address, or
//! [`loopback_only`](AdminBuilder::loopback_only)). Even then, any local process and any
//! user of the machine can read the events (bodies included) and replay them. Open routes
//! also refuse what a web page could make the operator's browser send: requests whose
//! `Host` is not a loopback name (DNS rebinding) and write requests with an `Origin`
//! header (cross-site forms). Off loopback, [`build`](AdminBuilder::build) fails with a
//! [`ConfigError`] when the routes would be open, and when write routes are served
//! without a write token.

mod auth;
mod error;
mod health;
mod query;
mod routes;
mod time;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::Router;

use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::reconcile::Reconciler;
use crate::store::{EventLog, ReplayJobId, Replayer, StoreError};
use crate::worker::Worker;

pub use health::{Health, NotReady, Readiness, DEFAULT_HEALTH_CACHE, DEFAULT_PROBE_TIMEOUT};

use auth::{Access, TokenDigest};
use routes::Ctx;

/// The admin routes, built: mount [`router`](Self::router) where you serve them.
///
/// Built by [`Admin::builder`]; cheap to clone.
#[derive(Clone)]
pub struct Admin {
    ctx: Ctx,
    router: Router,
    access: Arc<Access>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("access", &self.access)
            .field("worker", &self.ctx.worker.is_some())
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Starts building admin routes over `log` (any [`EventLog`]: a backend's queue, or an
    /// `Arc` of one; its queue stats are in `GET /stats`).
    pub fn builder(log: impl EventLog) -> AdminBuilder {
        AdminBuilder {
            log: Arc::new(log),
            worker: None,
            reconciliation: None,
            read: Vec::new(),
            write: Vec::new(),
            token_error: None,
            served_on: Vec::new(),
            loopback_only: false,
            read_only: false,
            batch_size: None,
            rate: None,
            clock: SharedClock::default(),
        }
    }

    /// The routes, to [`nest`](Router::nest) under a prefix such as `/admin` (or
    /// [`merge`](Router::merge) at the root).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Runs, each in a task of its own, every replay job the store still has running that
    /// this process does not run already (after a restart: jobs started before it stopped),
    /// and returns their ids. Call it once at start-up, inside the runtime.
    pub async fn resume_replays(&self) -> Result<Vec<ReplayJobId>, StoreError> {
        routes::resume(&self.ctx).await
    }
}

impl From<Admin> for Router {
    fn from(admin: Admin) -> Self {
        admin.router
    }
}

/// Settings of the [`Admin`] routes; from [`Admin::builder`].
pub struct AdminBuilder {
    log: Arc<dyn EventLog>,
    worker: Option<Worker>,
    reconciliation: Option<Reconciler>,
    read: Vec<TokenDigest>,
    write: Vec<TokenDigest>,
    token_error: Option<ConfigError>,
    served_on: Vec<SocketAddr>,
    loopback_only: bool,
    read_only: bool,
    batch_size: Option<usize>,
    rate: Option<u32>,
    clock: SharedClock,
}

impl fmt::Debug for AdminBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminBuilder")
            .field("read_tokens", &self.read.len())
            .field("write_tokens", &self.write.len())
            .field("served_on", &self.served_on)
            .field("loopback_only", &self.loopback_only)
            .field("read_only", &self.read_only)
            .field("batch_size", &self.batch_size)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Checks a token as given; the error never holds it.
fn check_token(token: &str, what: &'static str) -> Result<TokenDigest, ConfigError> {
    if token.is_empty() {
        return Err(ConfigError::InvalidValue {
            what,
            reason: "it is empty",
        });
    }
    if token.trim() != token {
        return Err(ConfigError::InvalidValue {
            what,
            reason: "it begins or ends with whitespace",
        });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::InvalidValue {
            what,
            reason: "it must be printable ASCII without spaces (it is sent in a header)",
        });
    }
    Ok(TokenDigest::of(token.as_bytes()))
}

impl AdminBuilder {
    /// Adds the worker, whose [running totals](Worker::stats) `GET /stats` shows.
    pub fn worker(mut self, worker: Worker) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Adds the reconciler: `GET /stats` shows the last [report](crate::reconcile::PassReport)
    /// of each source (whichever process ran it) with its recovery rate, and
    /// `POST /reconcile/{source}` runs a pass now.
    pub fn reconciler(mut self, reconciler: Reconciler) -> Self {
        self.reconciliation = Some(reconciler);
        self
    }

    /// Adds a read-only token: it may use the `GET` routes. Call it again to accept several
    /// (a rotation).
    pub fn read_token(mut self, token: impl AsRef<str>) -> Self {
        match check_token(token.as_ref(), "admin read token") {
            Ok(digest) => self.read.push(digest),
            Err(e) => {
                self.token_error.get_or_insert(e);
            }
        }
        self
    }

    /// Adds a read-write token: it may use every route. Call it again to accept several
    /// (a rotation).
    pub fn write_token(mut self, token: impl AsRef<str>) -> Self {
        match check_token(token.as_ref(), "admin write token") {
            Ok(digest) => self.write.push(digest),
            Err(e) => {
                self.token_error.get_or_insert(e);
            }
        }
        self
    }

    /// The address the routes will be served on; call it for each if there are several. The
    /// routes count as on loopback only if every address given is a loopback one.
    pub fn served_on(mut self, addr: SocketAddr) -> Self {
        self.served_on.push(addr);
        self
    }

    /// States that the routes are served on loopback addresses only (when the addresses are
    /// not at hand, such as a listener resolved elsewhere). Without this or
    /// [`served_on`](Self::served_on), the routes count as reachable from other machines.
    pub fn loopback_only(mut self) -> Self {
        self.loopback_only = true;
        self
    }

    /// Serves only the `GET` routes (no replay, no cancel).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Events per replay step (default: the [`Replayer`]'s).
    pub fn replay_batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// At most this many events per second made ready by a replay job (default: no limit).
    pub fn replay_rate(mut self, events_per_second: u32) -> Self {
        self.rate = Some(events_per_second);
        self
    }

    /// The clock `GET /stats` measures the age of the oldest waiting event with (default
    /// [`SystemClock`](crate::SystemClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    fn on_loopback(&self) -> bool {
        self.loopback_only
            || (!self.served_on.is_empty() && self.served_on.iter().all(|a| a.ip().is_loopback()))
    }

    /// Builds the routes.
    ///
    /// Fails with a [`ConfigError`] for a bad token (empty, or with spaces), a zero batch
    /// size or rate, and, unless the routes are on loopback, when no token is configured
    /// (every route would be open) or write routes are served without a write token.
    pub fn build(self) -> Result<Admin, ConfigError> {
        if let Some(error) = self.token_error {
            return Err(error);
        }
        if !self.on_loopback() {
            if self.read.is_empty() && self.write.is_empty() {
                return Err(ConfigError::InvalidValue {
                    what: "admin tokens",
                    reason: "none is configured, and the admin routes are not served on \
                             loopback only: anyone who can reach them could read every event \
                             and replay them; add a write token (and a read token), or serve \
                             them on a loopback address",
                });
            }
            if self.write.is_empty() && !self.read_only {
                return Err(ConfigError::InvalidValue {
                    what: "admin write token",
                    reason: "the write routes (replay, cancel) are served off loopback without \
                             a write token: add one, or call read_only() to serve only the read \
                             routes",
                });
            }
        }
        if self.batch_size == Some(0) {
            return Err(ConfigError::InvalidValue {
                what: "admin replay batch size",
                reason: "it must be at least 1",
            });
        }
        if self.rate == Some(0) {
            return Err(ConfigError::InvalidValue {
                what: "admin replay rate",
                reason: "it must be at least 1 event per second",
            });
        }
        let mut replayer = Replayer::new(Arc::clone(&self.log));
        if let Some(n) = self.batch_size {
            replayer = replayer.batch_size(n);
        }
        if let Some(rate) = self.rate {
            replayer = replayer.rate(rate);
        }
        let ctx = Ctx {
            log: self.log,
            worker: self.worker,
            reconciliation: self.reconciliation,
            replayer,
            clock: self.clock,
            running: Arc::new(Mutex::new(HashSet::new())),
        };
        let access = Arc::new(Access::new(self.read, self.write));
        let read = Router::new()
            .route("/stats", get(routes::stats))
            .route("/events", get(routes::events))
            .route("/events/{source}/{id}", get(routes::show))
            .route("/events/{source}/{id}/body", get(routes::body))
            .route("/dead", get(routes::dead))
            .route("/replays", get(routes::list_jobs))
            .route("/replays/{id}", get(routes::get_job))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&access),
                auth::require_read,
            ));
        let router = if self.read_only {
            read
        } else {
            let write = Router::new()
                .route("/events/{source}/{id}/replay", post(routes::replay_one))
                .route("/replays", post(routes::start_replay))
                .route("/replays/{id}/cancel", post(routes::cancel_job))
                .route("/dead/replay", post(routes::dead_replay))
                .route("/reconcile/{source}", post(routes::reconcile))
                .route_layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&access),
                    auth::require_write,
                ));
            read.merge(write)
        };
        Ok(Admin {
            router: router.with_state(ctx.clone()),
            ctx,
            access,
        })
    }
}
