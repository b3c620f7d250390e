//! # hookdock
//!
//! Receive webhooks safely: verify every delivery in constant time over the exact raw bytes,
//! store it durably before answering `2xx`, and run your handler once in effect, with
//! retries, a dead-letter queue and replay.
//!
//! The parts, in the order a delivery meets them:
//!
//! - [`scheme`]: signing rules for real providers ([`scheme::Preset`]: GitHub, Stripe,
//!   Standard Webhooks/Svix, Shopify, Slack, Twilio, GitLab, Paddle, Square, HubSpot,
//!   PagerDuty, and a [`scheme::GenericHmac`] builder) and the [`Scheme`] trait for your own;
//! - `limit` (feature `rate-limit`): a tower layer mounted per route in front of the verify
//!   layer that answers `429` + `Retry-After` above the route's rate, and the
//!   `limit::RateLimit` the worker's rate limits take too;
//! - [`verify`]: a tower layer that limits the body, verifies it, answers the providers'
//!   [handshakes](verify::handshake) itself, and passes the request on with its
//!   [`scheme::Verified`] identity, or answers `401`/`400`/`413`;
//! - [`intake`]: the terminal service that stores the verified delivery in a [`Queue`] and
//!   answers `2xx` only once it is durable (`503` + `Retry-After` when it cannot be stored
//!   now, `400` with the reason when it never can);
//! - [`store`]: the store layer: the [`Queue`] (the durable hand-off) and the
//!   [`IdempotencyStore`] (what remembers handled events) with one record per event and one
//!   [`StoreError`] whose kind says what to do; backends in memory, SQLite (`store::sqlite`,
//!   feature `sqlite`, the default) and PostgreSQL (`store::postgres`, feature `postgres`);
//! - `serve` (feature `serve`, a default): serves the layers over HTTP/1.1 with the edge
//!   protected: header-read and idle timeouts, connection and in-flight limits, a graceful
//!   shutdown with a deadline;
//! - [`worker`]: leases events and runs your `tower::Service` behind the [`DedupeLayer`]
//!   (each stored event applied once in effect) with retries, backoff, dead letters, replay
//!   and graceful shutdown;
//! - `metrics` (feature `metrics`): what each stage did, through the `metrics` facade;
//!   tracing spans `delivery` (intake) and `attempt` (worker) carry `source`, `event_id`,
//!   `event_type` (and `attempt`) with or without it;
//! - [`alert`]: a hook fired on a dead letter, a spike of signature failures, a high
//!   reconciliation recovery rate, an old ready event, and a busy source gone silent;
//! - `testing` (feature `test-util`): a signer for every preset, a fake clock, and the
//!   conformance suites every backend passes, yours included.
//!
//! # The whole path
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use hookdock::store::{MemoryStore, QueueOptions};
//! use hookdock::{Event, HandlerError, Intake, Preset, VerifyLayer, Worker};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! // Receiving: verify, then store durably before answering. (Use `store::sqlite` or
//! // `store::postgres` for records that survive the process.)
//! let store = MemoryStore::new();
//! let queue = Arc::new(store.queue(QueueOptions::default()));
//! let endpoint = ServiceBuilder::new()
//!     .layer(VerifyLayer::new(Preset::github(["It's a Secret to Everybody"])?))
//!     .service(Intake::new(Arc::clone(&queue)));
//!
//! // GitHub's documented example delivery, sent twice (providers retry).
//! let delivery = || {
//!     Request::post("/webhooks/github")
//!         .header("x-hub-signature-256",
//!                 "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
//!         .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
//!         .body(Full::new(Bytes::from_static(b"Hello, World!")))
//! };
//! for _ in 0..2 {
//!     let response = endpoint.clone().oneshot(delivery()?).await?;
//!     assert_eq!(response.status(), StatusCode::OK);
//! }
//!
//! // Handling: a worker with dedupe in front of your handler.
//! let applied = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&applied);
//! let handler = service_fn(move |event: Event| {
//!     let counter = Arc::clone(&counter);
//!     async move {
//!         assert_eq!(event.body().as_ref(), b"Hello, World!"); // the exact bytes
//!         counter.fetch_add(1, Ordering::SeqCst);
//!         Ok::<_, HandlerError>(())
//!     }
//! });
//! let worker = Worker::builder(Arc::clone(&queue))
//!     .dedupe(store.idempotency()) // claims on the same records
//!     .build(handler)?;
//! worker.run_until_idle().await?; // in a service: `worker.spawn()`, then `shutdown()`
//! assert_eq!(applied.load(Ordering::SeqCst), 1); // delivered twice, stored and applied once
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | `store::sqlite`: the embedded durable queue and idempotency store (bundled SQLite) |
//! | `serve` | yes | `serve`: HTTP/1.1 serving with timeouts, connection and in-flight limits, graceful shutdown with a deadline |
//! | `postgres` | no | `store::postgres`: queue and idempotency store on PostgreSQL (sqlx) |
//! | `ed25519` | no | Standard Webhooks `v1a` signatures (`Preset::standard_webhooks_ed25519`) |
//! | `aws-sns` | no | the AWS SNS scheme (`scheme::sns`: RSA, X.509 certificates through a pluggable cached source) |
//! | `aws-sns-https` | no | `scheme::sns::HttpsFetcher`, the default HTTPS certificate source and subscription confirmer (hyper, rustls with ring) |
//! | `admin` | no | `admin`: mountable admin routes (axum) over the event log: stats, events, raw bodies, replay jobs, bearer tokens |
//! | `cli` | no | the `hookdock` command-line tool and `cli` (event log, dead letters, stats, purge, export over SQLite or PostgreSQL) |
//! | `rate-limit` | no | `limit`: token-bucket rate limits (governor): the inbound `429` layer and the worker's limits per source, type or key |
//! | `metrics` | no | `metrics`: counters, gauges and histograms through the `metrics` facade, every name in one table; nothing recorded without it |
//! | `test-util` | no | `testing`: test signer, fake clock, conformance suites |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unreachable_pub)]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
pub mod alert;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
pub mod clock;
mod error;
pub mod event;
pub mod intake;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod limit;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod metrics_shim;
pub mod ordering;
mod periodic;
pub mod reconcile;
#[cfg(any(feature = "admin", feature = "reconcile", feature = "test-util"))]
mod rfc3339;
pub mod scheme;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
pub mod verify;
pub mod worker;

pub use clock::{Clock, SystemClock};
pub use error::ConfigError;
pub use event::{EventId, EventType, RawEvent};
pub use intake::Intake;
pub use scheme::{Preset, Scheme, Verified};
pub use store::{IdempotencyStore, Queue, StoreError};
pub use verify::VerifyLayer;
pub use worker::{DedupeLayer, Event, HandlerError, Worker};
