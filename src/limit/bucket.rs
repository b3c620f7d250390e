//! [`Buckets`]: the one wrapper over `governor` that the inbound layer and the worker share.
//!
//! The buckets read Tokio's clock ([`tokio::time::Instant`]), not the system's: under
//! Tokio's paused time (`#[tokio::test(start_paused = true)]`) a test moves them by
//! sleeping, and callers wait for a token with [`tokio::time::sleep`].

use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::RateLimit;

/// A point on Tokio's clock, as governor measures time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        Self(
            self.0
                .checked_sub(Duration::from(duration))
                .unwrap_or(self.0),
        )
    }
}

/// Tokio's clock for governor.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Keyed =
    RateLimiter<String, HashMapStateStore<String>, TokioClock, NoOpMiddleware<TokioInstant>>;

/// How many checks pass between two sweeps of the buckets that are full again (which then
/// hold nothing worth keeping), so a limit keyed by many values stays small.
const SWEEP_EVERY: u64 = 4096;

/// The token buckets of one [`RateLimit`], one per key.
pub(crate) struct Buckets {
    limiter: Keyed,
    interval: Duration,
    checks: AtomicU64,
}

impl Buckets {
    pub(crate) fn new(limit: &RateLimit) -> Self {
        let quota = Quota::with_period(limit.interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(limit.burst);
        Self {
            limiter: RateLimiter::hashmap_with_clock(quota, TokioClock),
            interval: limit.interval,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is due.
    pub(crate) fn take(&self, key: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        // `check_key` wants the owned key type; the key is short (a source, a type).
        let key = key.to_owned();
        self.limiter.check_key(&key).map_err(|not_until| {
            not_until
                .wait_time_from(TokioClock.now())
                .max(Duration::from_nanos(1))
        })
    }

    /// The time one token takes to come back.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_refills_at_its_rate_on_tokios_clock() {
        let buckets = Buckets::new(&RateLimit::per_second(10, 2).unwrap());
        assert!(buckets.take("a").is_ok());
        assert!(buckets.take("a").is_ok());
        let wait = buckets.take("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        // Another key has its own bucket.
        assert!(buckets.take("b").is_ok());
        tokio::time::sleep(wait).await;
        assert!(buckets.take("a").is_ok());
        assert!(buckets.take("a").is_err());
    }
}
