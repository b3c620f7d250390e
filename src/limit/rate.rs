//! [`RateLimit`]: how many per period, how large a burst, and what each bucket counts.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::{ConfigError, RawEvent};

/// A token-bucket rate: `count` per `period` on average, with bursts of up to `burst` at
/// once, counted per [`RateKey`].
///
/// One description for both places hookdock limits a rate:
///
/// - the inbound [`RateLimitLayer`](super::RateLimitLayer), mounted per route, which answers
///   `429 Too Many Requests` above it; it keeps one bucket for the whole route (every clone
///   of the layer shares it) and does not consult the key, since before verification no
///   source or type can be trusted;
/// - the worker's [`WorkerBuilder::rate_limit`](crate::worker::WorkerBuilder::rate_limit),
///   which keeps one bucket per key and makes events wait for their token (or hands them
///   back to the queue until it is due); nothing over the rate is dropped.
///
/// ```
/// use hookdock::limit::{RateKey, RateLimit};
/// use std::time::Duration;
///
/// // 50 a second, one at a time, per source (the default key).
/// let per_source = RateLimit::per_second(50, 1)?;
/// assert_eq!(per_source.interval(), Duration::from_millis(20));
///
/// // 600 a minute with bursts of 20, per source and event type.
/// let per_type = RateLimit::new(600, Duration::from_secs(60), 20)?.keyed(RateKey::SourceAndType);
/// assert_eq!(per_type.burst(), 20);
///
/// assert!(RateLimit::per_second(0, 1).is_err());
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RateLimit {
    pub(super) interval: Duration,
    pub(super) burst: NonZeroU32,
    pub(super) key: RateKey,
}

impl RateLimit {
    /// `count` per `period`, bursts of up to `burst`, keyed per [`RateKey::Source`].
    ///
    /// Fails when `count` or `burst` is zero, or when `period / count` is under a
    /// nanosecond or zero.
    pub fn new(count: u32, period: Duration, burst: u32) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidValue {
            what: "rate limit",
            reason,
        };
        if count == 0 {
            return Err(invalid("the count per period must be at least 1"));
        }
        let burst = NonZeroU32::new(burst).ok_or(invalid("the burst must be at least 1"))?;
        let interval = period / count;
        if interval.is_zero() {
            return Err(invalid("the period divided by the count must be over zero"));
        }
        Ok(Self {
            interval,
            burst,
            key: RateKey::Source,
        })
    }

    /// `count` a second, bursts of up to `burst`; see [`new`](Self::new).
    pub fn per_second(count: u32, burst: u32) -> Result<Self, ConfigError> {
        Self::new(count, Duration::from_secs(1), burst)
    }

    /// `count` a minute, bursts of up to `burst`; see [`new`](Self::new).
    pub fn per_minute(count: u32, burst: u32) -> Result<Self, ConfigError> {
        Self::new(count, Duration::from_secs(60), burst)
    }

    /// Counts per `key` instead (builder style); the worker's limits use it, the inbound
    /// layer keeps one bucket for its route whatever the key.
    pub fn keyed(mut self, key: RateKey) -> Self {
        self.key = key;
        self
    }

    /// The time one token takes to come back: the period divided by the count.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The largest burst.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// What each bucket counts.
    pub fn key(&self) -> &RateKey {
        &self.key
    }
}

/// The function of a [`RateKey::Custom`]: the bucket an event counts against, if any.
pub type KeyFn = Arc<dyn Fn(&RawEvent) -> Option<String> + Send + Sync>;

/// What one bucket of a worker's [`RateLimit`] counts.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum RateKey {
    /// One bucket per source (the default).
    #[default]
    Source,
    /// One bucket per source and event type (an event without a type shares its source's
    /// bucket of untyped events).
    SourceAndType,
    /// One bucket per value the function returns; `None` leaves the event unlimited by this
    /// limit. For keys of your own, such as an account id you keep in a header. The
    /// function must be cheap and must not panic.
    Custom(KeyFn),
}

impl RateKey {
    /// A [`Custom`](Self::Custom) key from a function.
    pub fn custom(f: impl Fn(&RawEvent) -> Option<String> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// The bucket `event` counts against, or `None` if this key does not limit it.
    pub(crate) fn of(&self, event: &RawEvent) -> Option<String> {
        match self {
            Self::Source => Some(event.source.clone()),
            Self::SourceAndType => {
                let ty = event.event_type.as_ref().map_or("", |t| t.as_str());
                // A separator that cannot occur in a source (see `store::key`).
                Some(format!("{}\u{0}{ty}", event.source))
            }
            Self::Custom(f) => f(event),
        }
    }
}

impl fmt::Debug for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source => f.write_str("Source"),
            Self::SourceAndType => f.write_str("SourceAndType"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn rates_are_checked_at_construction() {
        assert!(RateLimit::per_second(0, 1).is_err());
        assert!(RateLimit::per_second(1, 0).is_err());
        assert!(RateLimit::new(10, Duration::ZERO, 1).is_err());
        let limit = RateLimit::per_minute(120, 3).unwrap();
        assert_eq!(limit.interval(), Duration::from_millis(500));
        assert_eq!(limit.burst(), 3);
    }

    #[test]
    fn keys_separate_what_they_should() {
        let event = RawEvent::new("github", "d-1", SystemTime::UNIX_EPOCH, "{}");
        assert_eq!(RateKey::Source.of(&event).as_deref(), Some("github"));
        let untyped = RateKey::SourceAndType.of(&event);
        let event = event.with_event_type("push");
        let typed = RateKey::SourceAndType.of(&event);
        assert_ne!(untyped, typed);
        let custom = RateKey::custom(|e| {
            e.headers
                .get("x-account")
                .map(|v| v.to_str().unwrap_or("").to_owned())
        });
        assert_eq!(custom.of(&event), None);
    }
}
