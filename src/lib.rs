//! # hookdock
//!
//! Receive webhooks safely: verify every delivery in constant time over the exact raw bytes,
//! store it durably before answering 2xx, and run your handler once in effect, with retries,
//! a dead-letter queue and replay.
//!
//! The parts, in the order a delivery meets them:
//!
//! - [`scheme`]: signing rules for real providers ([`scheme::Preset`]) and the [`Scheme`]
//!   trait for your own;
//! - [`verify`]: a tower layer that limits the body, verifies it, and passes the request on
//!   with its [`scheme::Verified`] identity;
//! - [`intake`]: the terminal service that stores the verified delivery in a [`queue::Queue`]
//!   and answers 2xx only once it is durable;
//! - [`queue`]: the durable hand-off between receiving and handling;
//! - [`idempotency`]: the store and layer that make redeliveries apply once;
//! - [`worker`]: leases events and runs your handler with retries and dead letters.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod clock;
mod error;
pub mod event;
pub mod idempotency;
pub mod intake;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod queue;
pub mod scheme;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
pub mod verify;
pub mod worker;

pub use clock::{Clock, SystemClock};
pub use error::{ConfigError, StoreError};
pub use event::{EventId, RawEvent};
pub use scheme::Scheme;
