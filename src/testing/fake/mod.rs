//! Fake provider APIs to reconcile against: local HTTP servers that follow each provider's
//! documented format (pagination, ordering, error bodies, `429` with `Retry-After`), hold
//! the events a test gives them, and count what they were asked.
//!
//! Every fake is started with `start().await` on `127.0.0.1` and an ephemeral port, gives its
//! base URL with `url()`, and shares [`Faults`]: answers injected ahead of the real ones
//! (`429` with a `Retry-After`, `5xx`), and counters of requests and of faults served.

pub mod github;
pub mod paddle;
pub mod stripe;
pub mod svix;

pub use github::{FakeDelivery, FakeGithub};
pub use paddle::FakePaddle;
pub use stripe::FakeStripe;
pub use svix::FakeSvix;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Answers a fake gives before its real ones, and what it counted.
#[derive(Debug, Default)]
pub struct Faults {
    queued: Mutex<Vec<Fault>>,
    requests: AtomicU64,
    faults_served: AtomicU64,
}

#[derive(Debug, Clone)]
enum Fault {
    RateLimited { retry_after: Duration, body: String },
    Status(StatusCode),
}

impl Faults {
    /// The next `n` requests are answered `429` with `Retry-After: <retry_after seconds>`
    /// and the provider's error body.
    pub fn rate_limit_next(&self, n: usize, retry_after: Duration, body: impl Into<String>) {
        let body = body.into();
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..n {
            queued.push(Fault::RateLimited {
                retry_after,
                body: body.clone(),
            });
        }
    }

    /// The next `n` requests are answered with `status` and an empty body.
    pub fn fail_next(&self, n: usize, status: StatusCode) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..n {
            queued.push(Fault::Status(status));
        }
    }

    /// Requests received, faults included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Injected answers served.
    pub fn faults_served(&self) -> u64 {
        self.faults_served.load(Ordering::SeqCst)
    }

    /// Counts a request and returns the injected answer for it, if one is queued. Each
    /// fake calls this first in every handler.
    pub(crate) fn take(&self) -> Option<Response> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let fault = {
            let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
            if queued.is_empty() {
                return None;
            }
            queued.remove(0)
        };
        self.faults_served.fetch_add(1, Ordering::SeqCst);
        Some(match fault {
            Fault::RateLimited { retry_after, body } => {
                let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
                let secs = HeaderValue::from(retry_after.as_secs().max(1));
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, secs);
                response.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Fault::Status(status) => status.into_response(),
        })
    }
}

/// A fake's server task: serves `router` on `127.0.0.1` and an ephemeral port until dropped.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds and serves `router`.
    pub(crate) async fn start(router: axum::Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
