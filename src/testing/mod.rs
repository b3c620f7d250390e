//! Test support (feature `test-util`): a signer for every preset, a fake clock, and the
//! conformance suites for [`Queue`](crate::queue::Queue) and
//! [`IdempotencyStore`](crate::idempotency::IdempotencyStore) that every backend must pass,
//! yours included.

pub use crate::clock::FakeClock;

pub mod idempotency_suite;
pub mod queue_suite;
mod sign;

pub use sign::{DeliveryBuilder, SignedDelivery, Signer};
