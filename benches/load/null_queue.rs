//! A diagnostic for the HTTP load benchmark (`NULL_QUEUE=1 benches/load/run.sh`): the
//! receiver's GitHub route (verify layer + intake, exactly as in `examples/receiver.rs`) over
//! a queue that stores nothing. Set against the bare handler it measures what verification
//! and the intake cost; set against the receiver, what durable storage costs.
//!
//! Not a receiver: it acknowledges deliveries it does not keep.

#[path = "serve.rs"]
mod serve;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::routing::post_service;
use axum::Router;
use hookdock::intake::Intake;
use hookdock::queue::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, Leased, MessageId, Queue, QueueStats,
};
use hookdock::scheme::Preset;
use hookdock::verify::VerifyLayer;
use hookdock::{RawEvent, StoreError};
use tower::ServiceBuilder;

/// Accepts every event and drops it.
#[derive(Debug, Default)]
struct NullQueue(AtomicI64);

#[async_trait]
impl Queue for NullQueue {
    fn durability(&self) -> Durability {
        Durability::Volatile
    }
    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        drop(std::hint::black_box(event));
        Ok(Enqueued::New(MessageId(
            self.0.fetch_add(1, Ordering::Relaxed),
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("HOOKDOCK_GITHUB_SECRET")?;
    let endpoint = ServiceBuilder::new()
        .layer(VerifyLayer::new(Preset::github([secret])?))
        .service(Intake::new(NullQueue::default()));
    let app = Router::new().route("/webhooks/github", post_service(endpoint));
    serve::serve(app, "null-queue receiver").await
}
