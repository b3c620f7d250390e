//! Test support (feature `test-util`): a signer for every preset, a fake clock, a
//! schema-regression check over captured payloads (`testing::schema`, with `schema-drift`), and the
//! conformance suites for [`Queue`](crate::store::Queue) and
//! [`IdempotencyStore`](crate::store::IdempotencyStore) that every backend must pass, yours
//! included.
//!
//! The conformance suites: every backend in this crate runs them, and a backend of your own
//! runs them the same way. Implement [`StoreHarness`] for your backend (how to open it on
//! fresh storage with given [`Settings`], and whether it survives a reopen), then expand
//! every check of every suite into a test with one macro line:
//!
//! ```
//! mod conformance {
//!     hookdock::store_conformance!(hookdock::testing::MemoryHarness);
//! }
//! mod conformance_dyn {
//!     hookdock::store_conformance!(hookdock::testing::DynHarness(hookdock::testing::MemoryHarness));
//! }
//! # fn main() {}
//! ```
//!
//! The suites: [`queue_suite`] (the queue contract), [`idempotency_suite`] (the idempotency
//! contract), [`record_suite`] (what the two share: one record per key, retention, the
//! key rules, times), [`log_suite`] (the event log contract: listing, history, counts,
//! retention, replay jobs), [`ordering_suite`] (ordering keys) and [`checkpoint_suite`] (the
//! [`CheckpointStore`](crate::store::CheckpointStore) contract: checkpoints, reports,
//! leadership). Each check is also a plain `pub async fn` you can call from a test of
//! your own; a check panics (fails the test) with a message naming the clause it found
//! broken. The macro is generated from the suites, so every check runs.

pub use crate::clock::FakeClock;

pub mod checkpoint_suite;
pub mod fake;
mod harness;
pub mod idempotency_suite;
pub mod log_suite;
pub mod ordering_suite;
pub mod queue_suite;
pub mod record_suite;
#[cfg(feature = "schema-drift")]
#[cfg_attr(docsrs, doc(cfg(feature = "schema-drift")))]
pub mod schema;
mod sign;
#[cfg(feature = "aws-sns")]
mod sns;
mod suite;

pub use harness::{DynHarness, LogAndCheckpoints, MemoryHarness, Settings, StoreHarness};
pub use sign::{DeliveryBuilder, SignedDelivery, Signer};
#[cfg(feature = "aws-sns")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sns")))]
pub use sns::{RecordingConfirmer, SnsSigner, StaticCertificates};

/// Expands every check of every conformance suite into a `#[tokio::test]`, in one module per
/// suite (`queue`, `idempotency`, `records`, `log`, `ordering`, `checkpoints`), each evaluating `$harness` (an expression giving
/// a [`StoreHarness`]; items of the calling module are in scope).
///
/// The calling crate needs `tokio` (with the `macros` and `rt-multi-thread` features) among
/// its dev-dependencies. Use it once per module, since the modules and tests are named after
/// the suites and checks.
#[macro_export]
macro_rules! store_conformance {
    ($harness:expr) => {
        mod queue {
            #[allow(unused_imports)]
            use super::*;
            $crate::__queue_checks!($harness);
        }
        mod idempotency {
            #[allow(unused_imports)]
            use super::*;
            $crate::__idempotency_checks!($harness);
        }
        mod records {
            #[allow(unused_imports)]
            use super::*;
            $crate::__record_checks!($harness);
        }
        mod log {
            #[allow(unused_imports)]
            use super::*;
            $crate::__log_checks!($harness);
        }
        mod ordering {
            #[allow(unused_imports)]
            use super::*;
            $crate::__ordering_checks!($harness);
        }
        mod checkpoints {
            #[allow(unused_imports)]
            use super::*;
            $crate::__checkpoint_checks!($harness);
        }
    };
}

/// The start of every check's fake clock: a time with microseconds, as every backend must
/// store them.
pub(crate) fn start_clock() -> FakeClock {
    FakeClock::new(std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456))
}

/// The settings every check opens its store with, unless it needs others.
pub(crate) fn settings(clock: &FakeClock) -> Settings {
    Settings {
        clock: clock.clone(),
        retention: crate::store::DEFAULT_RETENTION,
    }
}

/// `now + d` on a fake clock; keeps the checks readable.
pub(crate) trait ClockExt {
    fn now_plus(&self, d: std::time::Duration) -> std::time::SystemTime;
}

impl ClockExt for FakeClock {
    fn now_plus(&self, d: std::time::Duration) -> std::time::SystemTime {
        crate::Clock::now(self) + d
    }
}
