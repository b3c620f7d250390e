//! The dedupe layer: runs the handler under it at most once in effect per
//! `(source, event id)`.
//!
//! [`DedupeLayer`] wraps a handler service with a [`Dedupe`] middleware over an
//! [`IdempotencyStore`](crate::store::IdempotencyStore): for each event it claims the key, runs
//! the handler with the claim attached ([`HeldClaim`], read with
//! [`Event::claim`](crate::worker::Event::claim)), then completes the claim, or releases it
//! on failure; a completed key is skipped ([`Deduped::Duplicate`]), a key held elsewhere is
//! deferred, and a key held for another body is a permanent failure ([`DedupeError`]). The
//! [`Worker`](crate::worker::Worker) puts it over the handler with
//! [`WorkerBuilder::dedupe`](crate::worker::WorkerBuilder::dedupe).
//!
//! Duplicates the provider sends are already absorbed at intake (the store answers
//! `duplicate` for a key it knows; see the [store docs](crate::store#one-record-per-event-one-dedupe-path)),
//! and with a backend's own idempotency store the claim lives on the stored event's record.
//! What this layer adds is that one stored event never runs the handler twice in effect:
//! not after a crash, a lease that expired mid-handler, or a replay.

mod claim;
mod future;
mod layer;
mod service;

pub use claim::HeldClaim;
pub use future::ResponseFuture;
pub use layer::{DedupeLayer, DedupeLayerBuilder, DEFAULT_CLAIM_LEASE};
pub use service::{Dedupe, DedupeError, Deduped};

#[cfg(test)]
mod tests;
