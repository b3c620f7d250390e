//! The receiver's worker side: a demo handler run by hookdock's [`Worker`] (dedupe, retries,
//! dead letters) and the library's admin routes ([`hookdock::admin`]) over the event log.
//! Included by `examples/receiver.rs`.
//!
//! Configuration, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOOKDOCK_WORKER` | `on` | `off` runs the receiver alone (events stay in the queue) |
//! | `HOOKDOCK_DEMO_FAIL_RATE` | `0` | fraction of attempts (0 to 1) the demo handler fails |
//! | `HOOKDOCK_DEMO_FAIL_KIND` | `retry` | `retry` (retryable failures) or `permanent` (dead letters) |
//! | `HOOKDOCK_DEMO_FAIL_IDS` | none | events the handler fails by id, a comma-separated list of `ID:retry` (fails its first attempt retryably, then succeeds) or `ID:permanent` (dead-lettered at once), for scripted scenarios |
//! | `HOOKDOCK_DEMO_DELAY_MS` | `0` | how long each handling takes |
//! | `HOOKDOCK_DEMO_EFFECTS` | none | a file the handler appends `source/id` to (fsynced) for each event it applies |
//! | `HOOKDOCK_LEASE_MS` | `30000` | the worker's lease, and the dedupe claim's |
//! | `HOOKDOCK_WORKER_CONCURRENCY` | `64` | events handled at once |
//! | `HOOKDOCK_ADMIN` | `on` | `off` serves no admin routes |
//! | `HOOKDOCK_ADMIN_TOKEN` | none | read-write admin tokens: the admin routes require `Authorization: Bearer <token>`; a comma-separated list during a rotation (any one is accepted). Unset (and no read token): the admin routes are open, which is only allowed on a loopback address (elsewhere the receiver refuses to start); set but empty: refused |
//! | `HOOKDOCK_ADMIN_READ_TOKEN` | none | read-only admin tokens (the `GET` routes only), a comma-separated list; needs `HOOKDOCK_ADMIN_TOKEN` too |

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hookdock::admin::Admin;
use hookdock::store::{EventLog, IdempotencyStore, Queue};
use hookdock::worker::{DedupeLayer, Event, HandlerError, Worker, WorkerHandle};
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
    /// Holders of one of these tokens: read-write (`HOOKDOCK_ADMIN_TOKEN`) and read-only
    /// (`HOOKDOCK_ADMIN_READ_TOKEN`).
    Tokens {
        write: Vec<String>,
        read: Vec<String>,
    },
}

/// What the demo handler does.
struct Demo {
    fail_rate: f64,
    fail_permanent: bool,
    /// Event ids that fail on demand: `true` for a permanent failure, `false` for a
    /// retryable failure of the first attempt.
    fail_ids: std::collections::HashMap<String, bool>,
    delay: Duration,
    effects: Option<PathBuf>,
}

impl WorkerConfig {
    /// Reads the settings of a receiver about to listen on `addr` (a `loopback` address or
    /// not); a bad value is an error naming the variable, and open admin routes on an
    /// address other than loopback are refused.
    pub fn from_env(addr: &str, loopback: bool) -> Result<Self, Box<dyn Error>> {
        let admin = match env("HOOKDOCK_ADMIN").as_deref() {
            None | Some("on") => match (
                secret_list("HOOKDOCK_ADMIN_TOKEN")?,
                secret_list("HOOKDOCK_ADMIN_READ_TOKEN")?,
            ) {
                (Some(write), read) => AdminAccess::Tokens {
                    write,
                    read: read.unwrap_or_default(),
                },
                (None, Some(_)) => {
                    return Err("HOOKDOCK_ADMIN_READ_TOKEN is set without HOOKDOCK_ADMIN_TOKEN:                                 set a read-write token too (or unset both, on a loopback                                 address only)"
                        .into())
                }
                (None, None) if loopback => AdminAccess::Open,
                (None, None) => {
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
        let mut fail_ids = std::collections::HashMap::new();
        for item in env("HOOKDOCK_DEMO_FAIL_IDS")
            .unwrap_or_default()
            .split(',')
            .filter(|i| !i.trim().is_empty())
        {
            let permanent = match item.trim().rsplit_once(':') {
                Some((id, "retry")) => (id, false),
                Some((id, "permanent")) => (id, true),
                _ => {
                    return Err(format!(
                        "HOOKDOCK_DEMO_FAIL_IDS: {item:?} is not ID:retry or ID:permanent"
                    )
                    .into())
                }
            };
            fail_ids.insert(permanent.0.to_owned(), permanent.1);
        }
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
                fail_ids,
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
        let routes = "/admin/stats, /admin/events, /admin/dead, /admin/replays (GET and POST)";
        match &self.admin {
            AdminAccess::Off => "  admin: off (HOOKDOCK_ADMIN=off)".into(),
            AdminAccess::Open => format!(
                "  admin: {routes} (no HOOKDOCK_ADMIN_TOKEN: open, on this loopback address only)"
            ),
            AdminAccess::Tokens { read, .. } if read.is_empty() => {
                format!("  admin: {routes} (Bearer token from HOOKDOCK_ADMIN_TOKEN)")
            }
            AdminAccess::Tokens { .. } => format!(
                "  admin: {routes} (Bearer token from HOOKDOCK_ADMIN_TOKEN; read-only from \
                 HOOKDOCK_ADMIN_READ_TOKEN)"
            ),
        }
    }

    /// Starts the worker (unless `HOOKDOCK_WORKER=off`): dedupe over `dedupe`, then the demo
    /// handler; the queue's own signal wakes it; its dead letters go to `alerts`.
    pub fn start(
        &self,
        queue: Arc<dyn Queue>,
        dedupe: impl IdempotencyStore,
        alerts: hookdock::alert::Alerts,
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
            .alerts(alerts)
            .build(service_fn(move |event: Event| handle(demo.clone(), event)))?;
        Ok(Some(worker.spawn()))
    }

    /// The admin routes ([`hookdock::admin`]) over the event log, served on `addr`, with
    /// the running worker's totals (if any); none with `HOOKDOCK_ADMIN=off`. Replay jobs a
    /// previous run left unfinished are resumed.
    pub async fn admin_routes(
        &self,
        log: Arc<dyn EventLog>,
        worker: Option<Worker>,
        reconciler: Option<hookdock::reconcile::Reconciler>,
        addr: SocketAddr,
    ) -> Result<Router, Box<dyn Error>> {
        let mut admin = Admin::builder(log).served_on(addr);
        match &self.admin {
            AdminAccess::Off => return Ok(Router::new()),
            AdminAccess::Open => {}
            AdminAccess::Tokens { write, read } => {
                for token in write {
                    admin = admin.write_token(token);
                }
                for token in read {
                    admin = admin.read_token(token);
                }
            }
        }
        if let Some(worker) = worker {
            admin = admin.worker(worker);
        }
        if let Some(reconciler) = reconciler {
            admin = admin.reconciler(reconciler);
        }
        let admin = admin.build().map_err(|e| format!("admin routes: {e}"))?;
        let resumed = admin.resume_replays().await?;
        if !resumed.is_empty() {
            println!(
                "  admin: resumed {} unfinished replay job(s)",
                resumed.len()
            );
        }
        Ok(Router::new().nest("/admin", admin.router()))
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
    match demo.fail_ids.get(event.id().as_str()) {
        Some(true) => {
            return Err(HandlerError::permanent(
                "demo failure (HOOKDOCK_DEMO_FAIL_IDS, permanent)",
            ))
        }
        Some(false) if event.attempt() == 1 => {
            return Err(HandlerError::retry(
                "demo failure (HOOKDOCK_DEMO_FAIL_IDS, first attempt)",
            ))
        }
        _ => {}
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
