//! [`Health`]: liveness and readiness routes for load balancers and orchestrators.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::store::{Queue, StoreError};

/// How long a readiness answer is reused by default: 1 s.
pub const DEFAULT_HEALTH_CACHE: Duration = Duration::from_secs(1);

/// How long a probe may take by default before readiness answers `probe_timed_out`: 2 s.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness and readiness of a receiver, as routes for a load balancer and as a method.
///
/// - `GET /livez`: `200 {"status": "live"}` whenever the process can answer HTTP at all.
/// - `GET /readyz`: `200 {"status": "ready"}` when the queue can take a write now
///   ([`Queue::check_writable`]), else `503 {"status": "not_ready", "reason": <kind>}` with
///   `Retry-After`. The reason is one of [`NotReady`]'s stable names, never the error itself.
///
/// Readiness turns false by itself when storage cannot be written (a full disk, a size cap
/// reached, a database that is unreachable or read-only, the SQLite writer thread gone) and
/// true again by itself once it can: every answer comes from a real probe, at most one every
/// [`cache_for`](Self::cache_for) (default 1 s), however often the routes are called;
/// concurrent requests share one probe. A change of readiness is logged (`warn` when it is
/// lost, with the store's error, `info` when it is back).
///
/// The routes need no token: they tell nothing but the status and the kind. Mount them
/// where the load balancer can reach them, beside (not under) the admin routes.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use axum::body::Body;
/// use http::{Request, StatusCode};
/// use hookdock::admin::{Health, Readiness};
/// use hookdock::store::{MemoryStore, QueueOptions};
/// use tower::ServiceExt;
///
/// let queue = Arc::new(MemoryStore::new().queue(QueueOptions::default()));
/// let health = Health::new(queue);
/// assert_eq!(health.readiness().await, Readiness::Ready);
///
/// let app = axum::Router::new().merge(health.router());
/// let answer = app.oneshot(Request::get("/readyz").body(Body::empty())?).await?;
/// assert_eq!(answer.status(), StatusCode::OK);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Arc<dyn Queue>,
    cache_for: Duration,
    timeout: Duration,
    /// The last answer and when its probe started; the lock also makes concurrent callers
    /// share one probe.
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("cache_for", &self.inner.cache_for)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// What [`Health::readiness`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Readiness {
    /// The queue took a write.
    Ready,
    /// It did not; the kind says why.
    NotReady(NotReady),
}

impl Readiness {
    /// True for [`Readiness::Ready`].
    pub fn is_ready(self) -> bool {
        self == Self::Ready
    }
}

/// Why a receiver is not ready, by kind (the error itself goes to the log only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotReady {
    /// Storage refused the write for now: a full disk or size cap, an I/O error, a database
    /// that is unreachable or read-only ([`StoreError::Unavailable`], and any other
    /// transient error).
    StorageUnavailable,
    /// The store is shut down or its writer is gone ([`StoreError::Closed`]).
    StoreClosed,
    /// The store reported a broken invariant ([`StoreError::Internal`], or any error that is
    /// not transient).
    StoreBroken,
    /// The probe did not finish within the [timeout](Health::probe_timeout).
    ProbeTimedOut,
}

impl NotReady {
    /// The stable snake_case name `/readyz` answers as `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StorageUnavailable => "storage_unavailable",
            Self::StoreClosed => "store_closed",
            Self::StoreBroken => "store_broken",
            Self::ProbeTimedOut => "probe_timed_out",
        }
    }

    fn of(error: &StoreError) -> Self {
        match error {
            StoreError::Closed => Self::StoreClosed,
            e if e.is_transient() => Self::StorageUnavailable,
            _ => Self::StoreBroken,
        }
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Health {
    /// Health of a receiver whose intake stores into `queue` (any backend, or an
    /// `Arc<dyn Queue>`).
    pub fn new<Q: Queue>(queue: Arc<Q>) -> Self {
        Self::from_dyn(queue)
    }

    /// The same for a queue chosen at run time.
    pub fn from_dyn(queue: Arc<dyn Queue>) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue,
                cache_for: DEFAULT_HEALTH_CACHE,
                timeout: DEFAULT_PROBE_TIMEOUT,
                last: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Reuses a readiness answer for `every` (default [`DEFAULT_HEALTH_CACHE`]), so a load
    /// balancer polling often costs the store one probe per period. `Duration::ZERO` probes
    /// on every request.
    pub fn cache_for(self, every: Duration) -> Self {
        self.with(|inner| inner.cache_for = every)
    }

    /// How long a probe may take (default [`DEFAULT_PROBE_TIMEOUT`]); a slower one answers
    /// [`NotReady::ProbeTimedOut`] (the probe itself is dropped: for SQLite it is then not
    /// run, for PostgreSQL its statement is cancelled with the connection's future).
    pub fn probe_timeout(self, timeout: Duration) -> Self {
        self.with(|inner| inner.timeout = timeout)
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                queue: Arc::clone(&shared.queue),
                cache_for: shared.cache_for,
                timeout: shared.timeout,
                last: tokio::sync::Mutex::new(None),
            },
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The process answers: always `true` (what `/livez` says).
    pub fn liveness(&self) -> bool {
        true
    }

    /// Whether the queue can take a write now: the cached answer if it is recent enough,
    /// else a fresh [`Queue::check_writable`].
    pub async fn readiness(&self) -> Readiness {
        let mut last = self.inner.last.lock().await;
        if let Some((at, answer)) = *last {
            if at.elapsed() < self.inner.cache_for {
                return answer;
            }
        }
        let started = Instant::now();
        let probe = tokio::time::timeout(self.inner.timeout, self.inner.queue.check_writable());
        let answer = match probe.await {
            Ok(Ok(())) => Readiness::Ready,
            Ok(Err(error)) => {
                let kind = NotReady::of(&error);
                if last.is_none_or(|(_, before)| before != Readiness::NotReady(kind)) {
                    tracing::warn!(
                        reason = kind.as_str(),
                        error = %error,
                        "hookdock: not ready: storage cannot take a write"
                    );
                }
                Readiness::NotReady(kind)
            }
            Err(_) => {
                if last.is_none_or(|(_, before)| before.is_ready()) {
                    tracing::warn!(
                        reason = NotReady::ProbeTimedOut.as_str(),
                        timeout_ms = self.inner.timeout.as_millis() as u64,
                        "hookdock: not ready: the storage probe timed out"
                    );
                }
                Readiness::NotReady(NotReady::ProbeTimedOut)
            }
        };
        if answer.is_ready() && last.is_some_and(|(_, before)| !before.is_ready()) {
            tracing::info!("hookdock: ready again: storage takes writes");
        }
        *last = Some((started, answer));
        answer
    }

    /// `GET /livez` and `GET /readyz`, to merge or nest into the application's router.
    pub fn router<S>(&self) -> Router<S> {
        Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }
}

async fn livez() -> Response {
    (StatusCode::OK, Json(serde_json::json!({"status": "live"}))).into_response()
}

async fn readyz(State(health): State<Health>) -> Response {
    let mut response = match health.readiness().await {
        Readiness::Ready => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Readiness::NotReady(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": why.as_str()})),
        ),
    }
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        let seconds = health.inner.cache_for.as_secs().max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, QueueOptions};

    #[test]
    fn reasons_have_stable_names() {
        let io = || std::io::Error::other("disk full");
        let cases = [
            (StoreError::Closed, "store_closed"),
            (
                StoreError::unavailable("sqlite", io()),
                "storage_unavailable",
            ),
            (StoreError::Full { depth: 1 }, "storage_unavailable"),
            (StoreError::internal("sqlite", io()), "store_broken"),
        ];
        for (error, name) in cases {
            assert_eq!(NotReady::of(&error).as_str(), name, "{error}");
        }
        assert_eq!(NotReady::ProbeTimedOut.to_string(), "probe_timed_out");
    }

    #[tokio::test]
    async fn settings_survive_a_shared_health() {
        let queue = Arc::new(MemoryStore::new().queue(QueueOptions::default()));
        let health = Health::new(queue);
        let shared = health.clone();
        let changed = shared
            .cache_for(Duration::ZERO)
            .probe_timeout(Duration::from_secs(9));
        assert_eq!(changed.inner.cache_for, Duration::ZERO);
        assert_eq!(changed.inner.timeout, Duration::from_secs(9));
        assert_eq!(health.inner.cache_for, DEFAULT_HEALTH_CACHE);
        assert_eq!(changed.readiness().await, Readiness::Ready);
        assert!(changed.liveness());
    }
}
