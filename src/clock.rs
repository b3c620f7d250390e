//! Time as a dependency.
//!
//! Everything in hookdock that reads the time (timestamp tolerance, lease expiry, retry
//! schedules, retention) reads it from a [`Clock`], so tests can move time by hand instead of
//! sleeping. Production code uses [`SystemClock`].

use std::fmt;
use std::sync::Arc;
#[cfg(any(test, feature = "test-util"))]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// Implemented for [`SystemClock`], for `Arc<C>` and for any `Fn() -> SystemTime` closure
/// that is `Send + Sync`.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock ([`SystemTime::now`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> SystemTime + Send + Sync + 'static,
{
    fn now(&self) -> SystemTime {
        self()
    }
}

/// A shared, type-erased clock, as the layers and backends store it.
#[derive(Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// Wraps a clock.
    pub fn new(clock: impl Clock) -> Self {
        Self(Arc::new(clock))
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        self.0.now()
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::new(SystemClock)
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedClock").finish_non_exhaustive()
    }
}

impl Clock for SharedClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

/// Milliseconds since the Unix epoch; times before the epoch map to 0.
pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A clock that only moves when told to; for tests.
///
/// Cloning shares the same time.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<std::sync::Mutex<SystemTime>>);

#[cfg(any(test, feature = "test-util"))]
impl FakeClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self(Arc::new(std::sync::Mutex::new(start)))
    }

    /// A clock standing `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::at_unix(100);
        let shared = SharedClock::new(c.clone());
        assert_eq!(unix_millis(shared.now()), 100_000);
        c.advance(Duration::from_millis(1500));
        assert_eq!(unix_millis(shared.now()), 101_500);
    }

    #[test]
    fn millis_saturate_before_epoch() {
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
