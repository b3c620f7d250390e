//! When to try a failed event again: [`RetryPolicy`].

use std::time::Duration;

use crate::error::ConfigError;

/// Exponential backoff with full jitter and a cap.
///
/// After attempt `n` fails (counting from 1), the next attempt waits a uniformly random delay
/// between zero and `min(max, initial × 2^(n-1))` ("full jitter": failures that happened
/// together spread out instead of retrying in lock-step).
///
/// # Default schedule
///
/// `initial` 5 s, `max` 30 min. With the queue's default of 10 attempts, the ceilings of the
/// nine waits are:
///
/// | after attempt | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |
/// |---|---|---|---|---|---|---|---|---|---|
/// | wait up to | 5 s | 10 s | 20 s | 40 s | 80 s | 160 s | 320 s | 640 s | 1280 s |
///
/// so an event that keeps failing reaches the dead letters after at most ~43 minutes (about
/// 21 minutes on average), from where it can be replayed.
///
/// ```
/// use hookdock::worker::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::builder()
///     .initial(Duration::from_millis(100))
///     .max(Duration::from_secs(10))
///     .build()?;
/// for attempt in 1..=20 {
///     assert!(policy.delay(attempt) <= policy.ceiling(attempt));
/// }
/// assert_eq!(policy.ceiling(1), Duration::from_millis(100));
/// assert_eq!(policy.ceiling(3), Duration::from_millis(400));
/// assert_eq!(policy.ceiling(20), Duration::from_secs(10));
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    initial: Duration,
    max: Duration,
    jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(30 * 60),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A builder starting from the default schedule.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: Self::default(),
        }
    }

    /// The largest delay after attempt `attempt` fails: `min(max, initial × 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let factor = 1u128 << doublings;
        let millis = self.initial.as_millis().saturating_mul(factor);
        let ceiling = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        ceiling.min(self.max)
    }

    /// The delay before the attempt after `attempt`: a uniformly random duration in
    /// `[0, ceiling(attempt)]` (or exactly the ceiling if jitter is off).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if !self.jitter {
            return ceiling;
        }
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }

    /// The delay a handler asked for with
    /// [`HandlerError::retry_after`](super::HandlerError::retry_after), capped at `max`.
    pub fn requested(&self, delay: Duration) -> Duration {
        delay.min(self.max)
    }

    /// The first ceiling.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }
}

/// Builds a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// The ceiling after the first failure (default 5 s).
    pub fn initial(mut self, initial: Duration) -> Self {
        self.policy.initial = initial;
        self
    }

    /// The largest delay (default 30 min).
    pub fn max(mut self, max: Duration) -> Self {
        self.policy.max = max;
        self
    }

    /// Turns full jitter on (the default) or off (then every delay is its ceiling).
    pub fn jitter(mut self, on: bool) -> Self {
        self.policy.jitter = on;
        self
    }

    /// Checks the settings: `initial` must be positive and not above `max`.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        if self.policy.initial.is_zero() {
            return Err(ConfigError::InvalidValue {
                what: "retry initial delay",
                reason: "must be positive",
            });
        }
        if self.policy.initial > self.policy.max {
            return Err(ConfigError::InvalidValue {
                what: "retry initial delay",
                reason: "must not exceed the maximum delay",
            });
        }
        Ok(self.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_matches_the_docs() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=9).map(|a| p.ceiling(a).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 640, 1280]);
        assert_eq!(p.ceiling(10).as_secs(), 1800);
        assert_eq!(p.ceiling(u32::MAX).as_secs(), 1800);
        assert_eq!(p.ceiling(0).as_secs(), 5);
    }

    #[test]
    fn full_jitter_stays_in_range_and_spreads() {
        let p = RetryPolicy::default();
        let delays: Vec<Duration> = (0..200).map(|_| p.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(40)));
        // 200 draws over 40,001 values: all equal would mean there is no jitter.
        assert!(delays.iter().any(|d| *d != delays[0]));
        assert!(delays.iter().any(|d| *d < Duration::from_secs(20)));
    }

    #[test]
    fn no_jitter_is_the_ceiling_and_bad_settings_are_refused() {
        let p = RetryPolicy::builder()
            .initial(Duration::from_secs(1))
            .max(Duration::from_secs(4))
            .jitter(false)
            .build()
            .unwrap();
        let got: Vec<u64> = (1..=5).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 4, 4]);
        assert_eq!(p.requested(Duration::from_secs(60)), Duration::from_secs(4));
        assert!(RetryPolicy::builder()
            .initial(Duration::ZERO)
            .build()
            .is_err());
        assert!(RetryPolicy::builder()
            .initial(Duration::from_secs(10))
            .max(Duration::from_secs(1))
            .build()
            .is_err());
    }
}
