//! [`ServeConfig`]: the timeouts and limits [`serve`](super::serve) applies, and its builder.

use std::time::Duration;

use crate::error::ConfigError;

/// How long a connection may take to send a request's headers, and may stay idle between
/// requests, when none is set: 10 seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) accepted when none is set: 64 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most connections held open at once when none is set: 1024.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The most requests handled at once when none is set: 512.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// The `Retry-After` of a request refused because too many are in flight: 5 seconds.
pub const DEFAULT_OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long a graceful shutdown waits for open connections when none is set: 10 seconds.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// The timeouts and limits of [`serve`](super::serve); see the [module docs](super) for what
/// each protects against.
///
/// [`ServeConfig::default()`] has every protection on, with the `DEFAULT_*` values of this
/// module; [`ServeConfig::builder`] changes them, checking each at [`build`](ServeConfigBuilder::build).
///
/// ```
/// use std::time::Duration;
/// use hookdock::serve::ServeConfig;
///
/// let config = ServeConfig::builder()
///     .header_read_timeout(Duration::from_secs(5))
///     .max_connections(200) // below `ulimit -n`, with room for the database's files
///     .max_in_flight(100)
///     .shutdown_deadline(Duration::from_secs(20))
///     .build()?;
/// assert_eq!(config.max_connections(), 200);
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub(super) header_read_timeout: Option<Duration>,
    pub(super) max_header_bytes: usize,
    pub(super) keep_alive: bool,
    pub(super) max_connections: usize,
    pub(super) max_in_flight: usize,
    pub(super) retry_after: Duration,
    pub(super) shutdown_deadline: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            keep_alive: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry_after: DEFAULT_OVERLOAD_RETRY_AFTER,
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
        }
    }
}

impl ServeConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ServeConfigBuilder {
        ServeConfigBuilder {
            config: Self::default(),
        }
    }

    /// How long a connection may take to send a request's head, counted from when it starts
    /// waiting for one (at accept, and after each response): so also how long an idle
    /// keep-alive connection stays open. `None`: no limit.
    pub fn header_read_timeout(&self) -> Option<Duration> {
        self.header_read_timeout
    }

    /// The largest request head, in bytes; a larger one gets `431`.
    pub fn max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// Whether connections are kept open between requests.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The most connections held open at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The most requests handled at once; one more gets `503` with `Retry-After`.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The `Retry-After` sent with an overload `503`.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// How long a graceful shutdown waits for open connections before closing them.
    pub fn shutdown_deadline(&self) -> Duration {
        self.shutdown_deadline
    }
}

/// Builds a [`ServeConfig`]; each setting is checked by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ServeConfigBuilder {
    config: ServeConfig,
}

impl ServeConfigBuilder {
    /// How long a connection may take to send a request's head (request line and headers),
    /// counted from when it starts waiting for one: at accept, and again after each
    /// response. A connection that has not sent a complete head by then is closed, so this
    /// is also the idle keep-alive timeout (hyper runs one timer for both). Must be
    /// positive. Default [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = Some(timeout);
        self
    }

    /// No header-read (and idle) timeout: a connection may take forever to send its head.
    /// Only behind a proxy that has its own.
    pub fn without_header_read_timeout(mut self) -> Self {
        self.config.header_read_timeout = None;
        self
    }

    /// The largest request head accepted, in bytes; a larger one gets
    /// `431 Request Header Fields Too Large` and the connection is closed. At least 1 KiB.
    /// Default [`DEFAULT_MAX_HEADER_BYTES`].
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.config.max_header_bytes = bytes;
        self
    }

    /// Whether to keep connections open between requests (default `true`). With `false`,
    /// each connection carries one request.
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.config.keep_alive = on;
        self
    }

    /// The most connections held open at once. A new connection beyond it closes the
    /// oldest connection that has no request in flight (one idling, or still sending its
    /// head); if every connection is busy, the new one is closed at once. Keep it below the
    /// process's open-file limit (`ulimit -n`) minus what the rest of the process needs.
    /// At least 1. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// The most requests handled at once, counted from their head being read until their
    /// response is written; one more is answered `503 Service Unavailable` with
    /// [`Retry-After`](Self::retry_after) at once, without reading its body. With the body
    /// limit, this bounds the memory held by request bodies. At least 1. Default
    /// [`DEFAULT_MAX_IN_FLIGHT`].
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.config.max_in_flight = max;
        self
    }

    /// The `Retry-After` of an overload `503`, rounded up to whole seconds. At least one
    /// second. Default [`DEFAULT_OVERLOAD_RETRY_AFTER`].
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// How long a graceful shutdown waits: it stops accepting, closes idle connections,
    /// lets requests in flight finish (and be answered), then closes whatever is still open
    /// when the deadline passes. A request cut off by the deadline has not been answered,
    /// so the sender retries it; an answered one was stored first. Default
    /// [`DEFAULT_SHUTDOWN_DEADLINE`].
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.config.shutdown_deadline = deadline;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<ServeConfig, ConfigError> {
        let c = &self.config;
        let invalid = |what, reason| Err(ConfigError::InvalidValue { what, reason });
        if c.header_read_timeout.is_some_and(|t| t.is_zero()) {
            return invalid("header_read_timeout", "must be positive");
        }
        if c.max_header_bytes < 1024 {
            return invalid("max_header_bytes", "must be at least 1024");
        }
        if c.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if c.max_in_flight == 0 {
            return invalid("max_in_flight", "must be at least 1");
        }
        if c.retry_after < Duration::from_secs(1) {
            return invalid("retry_after", "must be at least one second");
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_checks() {
        let built = ServeConfig::builder().build().unwrap();
        assert_eq!(built, ServeConfig::default());
        assert_eq!(
            built.header_read_timeout(),
            Some(DEFAULT_HEADER_READ_TIMEOUT)
        );
    }

    #[test]
    fn bad_settings_fail_at_build() {
        let cases = [
            ServeConfig::builder().header_read_timeout(Duration::ZERO),
            ServeConfig::builder().max_header_bytes(100),
            ServeConfig::builder().max_connections(0),
            ServeConfig::builder().max_in_flight(0),
            ServeConfig::builder().retry_after(Duration::from_millis(500)),
        ];
        for builder in cases {
            assert!(matches!(
                builder.build(),
                Err(ConfigError::InvalidValue { .. })
            ));
        }
        let off = ServeConfig::builder()
            .without_header_read_timeout()
            .build()
            .unwrap();
        assert_eq!(off.header_read_timeout(), None);
    }
}
