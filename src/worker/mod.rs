//! The worker: leases events from a [`Queue`](crate::store::Queue) and runs your handler on
//! them, with dedupe, retries, dead letters, replay and graceful shutdown.
//!
//! # The handler
//!
//! A handler is any `tower::Service<Event<T>>` whose error converts into [`HandlerError`]
//! (`tower::service_fn` over an `async fn` is enough):
//!
//! - it receives an [`Event`]: the stored [`RawEvent`](crate::RawEvent) (exact bytes, id,
//!   source, headers), the attempt number, the queue's message id, and the payload: the raw
//!   body, or a `serde` type behind [`DecodeJsonLayer`];
//! - failures are **retryable by default** (`?` on the common errors, or on any error with
//!   tower's `BoxError` as the handler's error type), [`HandlerError::permanent`] sends the
//!   event to the dead letters at once, and a **panic** is caught and retried.
//!
//! # The stack
//!
//! [`Worker::builder`] puts the [`DedupeLayer`] over your handler (`.dedupe(store)`), so the
//! handler sees each `(source, event id)` once in effect even when the queue redelivers after
//! a crash (duplicates the provider sends are already absorbed by the store at intake).
//! For a typed handler the stack is dedupe → [`DecodeJsonLayer`] → your service: duplicates
//! are skipped before decoding.
//!
//! # What happens to a message
//!
//! | outcome | settled with | next |
//! |---|---|---|
//! | handled, or a completed duplicate | `ack` | remembered for the store's retention, then forgotten |
//! | retryable error or panic | `retry` at now + [`RetryPolicy`] delay | leased again then |
//! | retryable error on the last attempt | `dead_letter` ("… (attempt n of n: no attempts left)") | replay |
//! | permanent error, decode failure, fingerprint mismatch | `dead_letter` with the error | replay |
//! | claim held elsewhere (dedupe `InProgress`) | handed back until the claim expires | leased again then |
//! | shutdown deadline passed | handed back, ready now | leased again at once |
//!
//! Long handlers keep their lease: after two thirds of it the worker extends it, and again.
//!
//! # Polling, wake-ups and housekeeping
//!
//! An idle worker polls with backoff (50 ms doubling to 1 s by default). The queue's own
//! wake-up signal ([`Queue::wake_signal`](crate::store::Queue::wake_signal)) cuts the wait
//! short: the memory and SQLite backends wake the workers of their process when they store,
//! replay or reschedule work, PostgreSQL wakes every process through `LISTEN/NOTIFY`. A
//! running worker also purges the queue and its dedupe store of what is past the store's
//! retention, hourly by default.
//!
//! # Flow control
//!
//! `WorkerBuilder::rate_limit` (feature `rate-limit`; several allowed, each a
//! `hookdock::limit::RateLimit` keyed per source, per source and event type, or per
//! a key of yours) and [`WorkerBuilder::max_concurrent_per_source`] hold events back before
//! the handler runs; a burst in the queue is worked off at the configured pace and nothing
//! is dropped. An event first takes one of its source's running slots, then a token from
//! each limit that applies. What waits, and for how long:
//!
//! - an event whose token or slot comes within [`WorkerBuilder::max_flow_wait`] (1 s by
//!   default) waits in its worker slot, its lease kept alive by the heartbeat, but only
//!   [`WAITERS_PER_KEY`] events per rate-limit key and as many per source as its cap allow
//!   at once: enough to take each token the moment it is due, too few for one limited
//!   source's backlog to fill the worker's slots while other sources wait;
//! - every other one is handed back with [`Queue::defer`](crate::store::Queue::defer) (no
//!   attempt used) to just before the time its token is due (one interval ahead, at most half
//!   the longest wait, so it is back in a slot when the token comes). Those times are reserved
//!   one interval apart
//!   per key, so a backlog of thousands comes back as a stream at the rate rather than all at
//!   one instant (a thundering herd of leases); events held by a source's cap come back after
//!   about the longest wait, spread at random by half of it either way. The worker wakes for
//!   the first of the times it handed back, without waiting for its idle poll.
//!
//! Buckets and caps belong to one worker: workers in several processes each allow the rate.
//! Hand-backs are counted in [`WorkerStats::deferred`] and as `outcome="deferred"` in
//! `hookdock_handler_outcomes_total`.
//!
//! # Replay
//!
//! [`DeadLetters`](crate::store::DeadLetters) lists dead letters (reason, attempts) and
//! replays one, a
//! [filter](crate::store::DeadLetterFilter), or all of them. A replayed event keeps its
//! original bytes and id and goes through dedupe again.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hookdock::store::{MemoryStore, QueueOptions};
//! use hookdock::worker::{DecodeJsonLayer, Event, HandlerError, Worker};
//! use tower::{service_fn, Layer};
//!
//! #[derive(serde::Deserialize)]
//! struct Invoice { id: String, amount_due: i64 }
//!
//! async fn on_invoice(event: Event<Invoice>) -> Result<(), HandlerError> {
//!     let invoice = event.payload();
//!     if invoice.amount_due < 0 {
//!         return Err(HandlerError::permanent(format!("negative amount on {}", invoice.id)));
//!     }
//!     // ... apply the effect; a `?` here is a retryable failure.
//!     Ok(())
//! }
//!
//! let store = MemoryStore::new();
//! let worker = Worker::builder(store.queue(QueueOptions::default()))
//!     .dedupe(store.idempotency())
//!     .concurrency(32)
//!     .build(DecodeJsonLayer::<Invoice>::new().layer(service_fn(on_invoice)))?;
//! let handle = worker.spawn();
//! // ... on SIGTERM:
//! let report = handle.shutdown().await;
//! println!("handed back {} unfinished events", report.given_back.len());
//! # Ok(()) }
//! ```
//!
//! # Exactly once across a crash
//!
//! The dedupe layer completes an event's claim after the handler returns. A process that dies
//! in between (after the effect, before the completion) leaves the claim unfinished, and the
//! redelivered event runs the handler again. When the effect lives in the same database as
//! the idempotency store, the handler can close that gap: [`Event::claim`] gives it the
//! layer's claim (key and fencing token, plain data, the same for every backend); it
//! completes the claim in the transaction that writes the effect, commits, and calls
//! [`HeldClaim::mark_completed`](crate::worker::HeldClaim::mark_completed) so the layer
//! leaves the claim alone. The effect and the completion commit together or not at all: a
//! crash before the commit rolls both back (the event is handled again), a crash after it
//! leaves the claim completed (the redelivery is acked as a duplicate). With PostgreSQL:
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use hookdock::store::postgres::{PgIdempotencyStore, PgOptions, PgStore};
//! use hookdock::store::QueueOptions;
//! use hookdock::worker::{Event, HandlerError, Worker};
//!
//! async fn record_payment(
//!     event: Event,
//!     pool: sqlx::PgPool,
//!     claims: Arc<PgIdempotencyStore>,
//! ) -> Result<(), HandlerError> {
//!     let claim = event
//!         .claim()
//!         .ok_or_else(|| HandlerError::permanent("run this handler under the dedupe layer"))?;
//!     let mut tx = pool.begin().await?;
//!     sqlx::query("INSERT INTO payments (event_id, body) VALUES ($1, $2)")
//!         .bind(event.id().as_str())
//!         .bind(&event.body()[..])
//!         .execute(&mut *tx)
//!         .await?;
//!     // In the same transaction as the effect. ClaimLost (the claim was taken over): the `?`
//!     // drops `tx`, which rolls the effect back.
//!     claims.complete_in(&mut tx, claim.key(), claim.token(), None).await?;
//!     tx.commit().await?;
//!     claim.mark_completed(); // committed: the dedupe layer must not complete it again
//!     Ok(())
//! }
//!
//! let pg = PgStore::connect("postgres://app@localhost/app", PgOptions::new()).await?;
//! let queue = pg.queue(QueueOptions::default());
//! let claims = Arc::new(pg.idempotency());
//! let (pool, handler_claims) = (pg.pool().clone(), claims.clone());
//! let worker = Worker::builder(queue) // woken through LISTEN/NOTIFY
//!     .dedupe(claims) // the dedupe layer claims on the same records
//!     .build(tower::service_fn(move |event: Event| {
//!         record_payment(event, pool.clone(), handler_claims.clone())
//!     }))?;
//! let handle = worker.spawn();
//! # drop(handle);
//! # Ok(()) }
//! # fn main() {}
//! ```
//!
//! A handler whose effect is elsewhere (an HTTP call, another database) cannot commit it
//! together with the claim; it keys its write on [`Event::id`] instead (an idempotency key
//! for the remote API, a unique constraint), so that running it twice applies it once.
//!
//! # Deferral and attempts
//!
//! A message handed back without being tried (its dedupe claim is held elsewhere, flow
//! control holds it, or the shutdown deadline passed) goes back with [`Queue::defer`](crate::store::Queue::defer),
//! which gives back the attempt its lease counted: deferrals never bring an event closer to
//! the dead letters.

mod builder;
mod decode;
pub mod dedupe;
#[cfg(feature = "schema-drift")]
mod drift;
mod error;
mod event;
mod flow;
mod report;
mod retry;
mod runner;
mod stale;

pub use builder::WorkerBuilder;
pub use decode::{DecodeError, DecodeFuture, DecodeJson, DecodeJsonLayer};
pub use dedupe::{DedupeLayer, Deduped, HeldClaim};
#[cfg(feature = "schema-drift")]
#[cfg_attr(docsrs, doc(cfg(feature = "schema-drift")))]
pub use drift::{
    decode_with_drift, Drift, DriftHook, DriftReport, DriftReporter, DEFAULT_MAX_SHAPES,
    MAX_DRIFT_PATHS,
};
pub use error::{ErrorKind, HandlerError};
pub use event::Event;
pub use flow::{DEFAULT_MAX_FLOW_WAIT, WAITERS_PER_KEY};
pub use report::{BatchReport, ShutdownReport, WorkerStats};
pub use retry::{RetryPolicy, RetryPolicyBuilder};
pub use runner::{Worker, WorkerHandle, DEFAULT_PURGE_INTERVAL, SHUTDOWN_REASON};
