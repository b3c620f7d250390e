//! A diagnostic for the HTTP load benchmark (`NULL_QUEUE=1 benches/load/run.sh`): the
//! receiver's GitHub route (verify layer + intake, exactly as in `examples/receiver.rs`) over
//! a queue that stores nothing. Set against the bare handler it measures what verification
//! and the intake cost; set against the receiver, what durable storage costs.
//!
//! With `HOOKDOCK_NULL_WRITER_US=<per event>,<per batch>` (microseconds), the queue instead
//! hands each event to one thread that works like the SQLite writer without storing
//! anything: it takes every event waiting, spends the given CPU time on the batch (a busy
//! loop), then answers them all. Set against the plain null queue it measures what the
//! group-commit hand-off itself costs the tokio workers (a task parked per delivery, woken
//! from another thread, answers leaving in bursts); set against the receiver, what SQLite
//! and the disk cost beyond it.
//!
//! Not a receiver: it acknowledges deliveries it does not keep.

#[path = "serve.rs"]
mod serve;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use axum::routing::post_service;
use axum::Router;
use hookdock::intake::Intake;
use hookdock::scheme::Preset;
use hookdock::store::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, Leased, MessageId, Queue, QueueStats,
};
use hookdock::verify::VerifyLayer;
use hookdock::{RawEvent, StoreError};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceBuilder;

/// Accepts every event and drops it, at once or after a writer-like hand-off.
#[derive(Debug, Default)]
struct NullQueue {
    next: AtomicI64,
    writer: Option<mpsc::Sender<(RawEvent, oneshot::Sender<()>)>>,
}

impl NullQueue {
    /// A queue whose events go through a thread that spends `per_event` for each event
    /// and `per_batch` for each batch it takes, then answers the batch.
    fn with_writer(per_event: Duration, per_batch: Duration) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<(RawEvent, oneshot::Sender<()>)>(1024);
        std::thread::Builder::new()
            .name("null-writer".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < 1024 {
                        match rx.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
                    let until = Instant::now() + per_event * n + per_batch;
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    for (event, reply) in batch.drain(..) {
                        drop(std::hint::black_box(event));
                        let _ = reply.send(());
                    }
                }
            })?;
        Ok(Self {
            next: AtomicI64::default(),
            writer: Some(tx),
        })
    }
}

#[async_trait]
impl Queue for NullQueue {
    fn durability(&self) -> Durability {
        Durability::Volatile
    }
    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        match &self.writer {
            None => drop(std::hint::black_box(event)),
            Some(writer) => {
                let (reply, stored) = oneshot::channel();
                writer
                    .send((event, reply))
                    .await
                    .map_err(|_| StoreError::Closed)?;
                stored.await.map_err(|_| StoreError::Closed)?;
            }
        }
        Ok(Enqueued::New(MessageId(
            self.next.fetch_add(1, Ordering::Relaxed),
        )))
    }
    async fn lease(&self, _: usize, _: Duration) -> Result<Vec<Leased>, StoreError> {
        Ok(Vec::new())
    }
    async fn extend(&self, _: &Lease, _: Duration) -> Result<Lease, StoreError> {
        Err(StoreError::LeaseLost)
    }
    async fn ack(&self, _: &Lease) -> Result<(), StoreError> {
        Err(StoreError::LeaseLost)
    }
    async fn skip(&self, _: &Lease, _: &str) -> Result<(), StoreError> {
        Err(StoreError::LeaseLost)
    }
    async fn retry(&self, _: &Lease, _: SystemTime, _: &str) -> Result<(), StoreError> {
        Err(StoreError::LeaseLost)
    }
    async fn defer(&self, _: &Lease, _: SystemTime) -> Result<(), StoreError> {
        Err(StoreError::LeaseLost)
    }
    async fn dead_letter(&self, _: &Lease, _: &str) -> Result<(), StoreError> {
        Err(StoreError::LeaseLost)
    }
    async fn dead_letters(&self, _: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(Vec::new())
    }
    async fn replay(&self, _: &DeadLetterFilter) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn stats(&self) -> Result<QueueStats, StoreError> {
        Ok(QueueStats::default())
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("HOOKDOCK_GITHUB_SECRET")?;
    let (queue, what) = match std::env::var("HOOKDOCK_NULL_WRITER_US") {
        Ok(spec) => {
            let micros = |s: Option<&str>| -> Result<Duration, Box<dyn std::error::Error>> {
                let s = s.ok_or("HOOKDOCK_NULL_WRITER_US is <per event>,<per batch>")?;
                Ok(Duration::from_secs_f64(s.trim().parse::<f64>()? / 1e6))
            };
            let mut parts = spec.split(',');
            let per_event = micros(parts.next())?;
            let per_batch = micros(parts.next())?;
            let queue = NullQueue::with_writer(per_event, per_batch)?;
            (queue, "null-queue receiver with a writer-like hand-off")
        }
        Err(_) => (NullQueue::default(), "null-queue receiver"),
    };
    let endpoint = ServiceBuilder::new()
        .layer(VerifyLayer::new(Preset::github([secret])?))
        .service(Intake::new(queue));
    let app = Router::new().route("/webhooks/github", post_service(endpoint));
    serve::serve(app, what).await
}
