//! Test support (feature `test-util`): a signer for every preset, a fake clock, and the
//! conformance suites for [`Queue`](crate::queue::Queue) and
//! [`IdempotencyStore`](crate::idempotency::IdempotencyStore) that every backend must pass,
//! yours included.
//!
//! The conformance suites: every backend in this crate runs them, and a backend of your own
//! runs them the same way. Implement the small harness trait for your backend (how to open
//! it on fresh storage with a [`FakeClock`], and whether it survives a reopen), then expand
//! every check into a test with one macro line:
//!
//! ```
//! mod conformance {
//!     use hookdock::testing::{idempotency_suite, queue_suite};
//!     hookdock::queue_conformance!(queue_suite::MemoryQueueHarness);
//!     hookdock::idempotency_conformance!(idempotency_suite::MemoryIdempotencyHarness);
//! }
//! # fn main() {}
//! ```
//!
//! Each check is also a plain `pub async fn` you can call from a test of your own.

pub use crate::clock::FakeClock;

pub mod idempotency_suite;
pub mod queue_suite;
mod sign;
#[cfg(feature = "aws-sns")]
mod sns;

pub use sign::{DeliveryBuilder, SignedDelivery, Signer};
#[cfg(feature = "aws-sns")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sns")))]
pub use sns::{RecordingConfirmer, SnsSigner, StaticCertificates};
