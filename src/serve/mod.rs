//! Serving the layers over HTTP/1.1 with the edge protected: timeouts, connection and
//! in-flight limits, and a graceful shutdown with a deadline (feature `serve`).
//!
//! [`serve`] is a drop-in for `axum::serve(listener, app).with_graceful_shutdown(signal)`
//! that a webhook endpoint on the open internet needs, because a server without limits is
//! held open by anyone who connects and then sends slowly:
//!
//! | attack or accident | protection | default | answer |
//! |---|---|---|---|
//! | headers sent slowly, or never | [header-read timeout](ServeConfigBuilder::header_read_timeout) (hyper's) | 10 s | connection closed |
//! | a connection idling after a response | the same timer, which restarts after each response | 10 s | connection closed |
//! | a body sent slowly, or shorter than its `Content-Length` | the verify layer's [body timeout](crate::verify::VerifyLayer::body_timeout) | 10 s | `408`, nothing stored |
//! | huge headers | [`max_header_bytes`](ServeConfigBuilder::max_header_bytes) (hyper's) | 64 KiB | `431` |
//! | a huge body | the verify layer's [body limit](crate::verify::VerifyLayer::body_limit) | 1 MiB | `413` before reading |
//! | more connections than file descriptors | [`max_connections`](ServeConfigBuilder::max_connections); when full, or when `accept` runs out of descriptors, the oldest connection with no request in flight is closed | 1024 | the new connection is served |
//! | more requests than memory | [`max_in_flight`](ServeConfigBuilder::max_in_flight) (tower's `GlobalConcurrencyLimit` + `LoadShed`) | 512 | `503` + `Retry-After` |
//! | a client holding on during shutdown | [`shutdown_deadline`](ServeConfigBuilder::shutdown_deadline) (hyper-util's `GracefulShutdown`, then close) | 10 s | in-flight requests finish, the rest are closed |
//!
//! Nothing here can lose a stored delivery: a connection is only closed early while it has
//! no request in flight, or at the shutdown deadline, and a request cut off there has not
//! been answered (the intake answers `2xx` only once the event is stored), so the sender
//! retries it and the queue absorbs the duplicate.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::post_service, Router};
//! use hookdock::intake::Intake;
//! use hookdock::store::MemoryQueue;
//! use hookdock::scheme::Preset;
//! use hookdock::serve::{serve, ServeConfig};
//! use hookdock::verify::VerifyLayer;
//! use tower::ServiceBuilder;
//!
//! let queue = std::sync::Arc::new(MemoryQueue::new());
//! let github = ServiceBuilder::new()
//!     .layer(VerifyLayer::new(Preset::github(["It's a Secret to Everybody"])?))
//!     .service(Intake::new(queue));
//! let app = Router::new().route("/webhooks/github", post_service(github));
//!
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! let report = serve(listener, app, ServeConfig::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! HTTP/1.1 only (what webhook providers send; TLS and HTTP/2 belong to the proxy in front,
//! if any). Runs on the Tokio runtime it is called from.

mod body;
mod config;
mod connections;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tower::limit::{ConcurrencyLimit, GlobalConcurrencyLimitLayer};
use tower::load_shed::error::Overloaded;
use tower::load_shed::LoadShed;
use tower::{ServiceBuilder, ServiceExt};
use tower_service::Service;

pub use config::{
    ServeConfig, ServeConfigBuilder, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_IN_FLIGHT, DEFAULT_OVERLOAD_RETRY_AFTER,
    DEFAULT_SHUTDOWN_DEADLINE,
};

use body::EdgeBody;
use connections::{Busy, Connections, Entry};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What happened while [`serve`] ran, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed while they had no request in flight, to make room for a new one
    /// (at [`max_connections`](ServeConfig::max_connections), or when `accept` ran out of
    /// file descriptors).
    pub closed_for_room: u64,
    /// New connections closed at once because every open one had a request in flight.
    pub refused: u64,
    /// Requests answered `503` because [`max_in_flight`](ServeConfig::max_in_flight) were
    /// already in flight.
    pub overloaded: u64,
    /// Connections still open when the shutdown deadline passed, and closed then.
    pub closed_at_deadline: u64,
}

impl fmt::Display for ServeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections accepted, {} closed to make room, {} refused, {} requests \
             overloaded (503), {} connections closed at the shutdown deadline",
            self.accepted,
            self.closed_for_room,
            self.refused,
            self.overloaded,
            self.closed_at_deadline
        )
    }
}

/// Serves `service` on `listener` with the timeouts and limits of `config` until `shutdown`
/// resolves, then shuts down gracefully within the config's deadline; see the
/// [module docs](self).
///
/// `service` is anything taking `http::Request<hyper::body::Incoming>`: an axum `Router`, a
/// `tower::ServiceBuilder` stack around hookdock's layers, a `service_fn`. It is cloned for
/// each request. Errors of `service` close the connection (axum's never fail).
///
/// Returns once every connection is closed; errors accepting a connection are logged and
/// retried, never returned.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use hookdock::serve::{serve, ServeConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(serve(listener, app, ServeConfig::default(), async {
///     let _ = stopped.await;
/// }));
///
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
/// let mut answer = String::new();
/// client.read_to_string(&mut answer).await?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK"));
///
/// stop.send(()).unwrap();
/// let report = server.await?;
/// assert_eq!(report.accepted, 1);
/// assert_eq!(report.closed_at_deadline, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn serve<S, B, F>(
    listener: TcpListener,
    service: S,
    config: ServeConfig,
    shutdown: F,
) -> ServeReport
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .keep_alive(config.keep_alive);
    let edge = Edge::new(service, &config);
    let connections = Arc::new(Connections::default());
    let graceful = GracefulShutdown::new();
    let mut report = ServeReport::default();
    // Warnings a client can cause, at most one a second (the report has the counts).
    let mut last_warning: Option<Instant> = None;
    let mut may_warn = move || {
        let now = Instant::now();
        let ok = last_warning.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if ok {
            last_warning = Some(now);
        }
        ok
    };

    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                report.accepted += 1;
                if connections.len() >= config.max_connections {
                    if connections.close_oldest_idle() {
                        report.closed_for_room += 1;
                    } else {
                        report.refused += 1;
                        if may_warn() {
                            tracing::warn!(
                                max = config.max_connections,
                                refused = report.refused,
                                "connection refused: every open connection has a request in flight"
                            );
                        }
                        continue;
                    }
                }
                // Responses are written whole; no point in delaying the last segment.
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(
                    stream,
                    connections.add(),
                    http.clone(),
                    graceful.watcher(),
                    edge.clone(),
                ));
            }
            Err(err) if out_of_descriptors(&err) => {
                // The connection waits in the listen backlog: make room and try again.
                if connections.close_oldest_idle() {
                    report.closed_for_room += 1;
                    tracing::debug!(%err, "accept: out of file descriptors, closed an idle connection");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    if may_warn() {
                        tracing::warn!(%err, "accept: out of file descriptors and no idle connection to close");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                if may_warn() {
                    tracing::warn!(%err, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);

    // Idle connections close at once, busy ones after their response; whatever is still
    // open at the deadline (stalled in its head or body) is closed then.
    let drained = graceful.shutdown();
    if tokio::time::timeout(config.shutdown_deadline, drained)
        .await
        .is_err()
    {
        report.closed_at_deadline = connections.close_all() as u64;
        tracing::info!(
            connections = report.closed_at_deadline,
            "shutdown deadline passed: closing the connections still open"
        );
    }
    connections.all_gone().await;
    report.overloaded = edge.overload.count.load(Ordering::Relaxed);
    report
}

/// Serves one connection until it ends, or its slot is told to close.
async fn connection<S, B>(
    stream: TcpStream,
    entry: Entry,
    http: http1::Builder,
    watcher: Watcher,
    edge: Edge<S>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let slot = Arc::clone(&entry.slot);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let busy = slot.busy();
        edge.call::<B>(request, busy)
    });
    let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = conn => {
            if let Err(err) = result {
                // Header timeouts, malformed requests, clients gone: theirs, not ours.
                tracing::debug!(%err, "connection ended with an error");
            }
        }
        () = entry.slot.closed() => tracing::debug!("connection closed by the server"),
    }
    drop(entry);
}

/// The service with the in-flight limit in front, and the overload answer; one clone per
/// connection.
#[derive(Clone)]
struct Edge<S> {
    service: LoadShed<ConcurrencyLimit<S>>,
    overload: Arc<Overload>,
}

/// What every connection shares about overload refusals.
struct Overload {
    retry_after: HeaderValue,
    count: AtomicU64,
}

const OVERLOADED: &str = "overloaded: too many requests in flight, retry after Retry-After\n";

impl<S> Edge<S> {
    fn new(service: S, config: &ServeConfig) -> Self {
        let limit = GlobalConcurrencyLimitLayer::new(config.max_in_flight);
        let after = config.retry_after;
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        Self {
            service: ServiceBuilder::new()
                .load_shed()
                .layer(limit)
                .service(service),
            overload: Arc::new(Overload {
                retry_after: HeaderValue::from(secs),
                count: AtomicU64::new(0),
            }),
        }
    }

    fn call<B>(
        &self,
        request: Request<Incoming>,
        busy: Busy,
    ) -> impl Future<Output = Result<Response<EdgeBody<B>>, BoxError>> + Send + 'static
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Send + 'static,
    {
        let service = self.service.clone();
        let overload = Arc::clone(&self.overload);
        async move {
            match service.oneshot(request).await {
                Ok(response) => Ok(response.map(|body| EdgeBody::inner(body, busy))),
                Err(err) if err.is::<Overloaded>() => {
                    overload.count.fetch_add(1, Ordering::Relaxed);
                    let mut response = Response::new(EdgeBody::text(OVERLOADED, busy));
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    let headers = response.headers_mut();
                    headers.insert(RETRY_AFTER, overload.retry_after.clone());
                    headers.insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    Ok(response)
                }
                Err(err) => Err(err),
            }
        }
    }
}

/// `EMFILE` / `ENFILE`: the process or the system is out of file descriptors.
fn out_of_descriptors(err: &std::io::Error) -> bool {
    // The same numbers on Linux, the BSDs and macOS.
    cfg!(unix) && matches!(err.raw_os_error(), Some(23 | 24))
}

/// A connection that failed before it was accepted: nothing to do about it.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
