//! [`WorkerBuilder`]: the worker's settings, checked when it is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use super::flow::{Flow, FlowConfig};
use super::report::Counters;
use super::runner::{Handler, Ran, Shared, Worker, DEFAULT_PURGE_INTERVAL};
use super::{DedupeLayer, Deduped, Event, HandlerError, RetryPolicy};
use crate::alert::Alerts;
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::store::{Queue, Wake};

/// The settings of a worker.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) concurrency: usize,
    pub(super) batch_size: usize,
    pub(super) lease_for: Duration,
    pub(super) retry: RetryPolicy,
    pub(super) poll_min: Duration,
    pub(super) poll_max: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) staleness: super::stale::Staleness,
    pub(super) flow: FlowConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch_size: 64,
            lease_for: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            poll_min: Duration::from_millis(50),
            poll_max: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            staleness: super::stale::Staleness::default(),
            flow: FlowConfig::default(),
        }
    }
}

/// Builds a [`Worker`]; see [`Worker::builder`].
pub struct WorkerBuilder {
    queue: Arc<dyn Queue>,
    dedupe: Option<DedupeLayer>,
    purge_every: Option<Duration>,
    config: Config,
    clock: SharedClock,
    wake: Option<Box<dyn Wake>>,
    alerts: Option<Alerts>,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("dedupe", &self.dedupe)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A builder for a worker over `queue` (any [`Queue`], including `Arc<dyn Queue>`).
    pub fn builder(queue: impl Queue) -> WorkerBuilder {
        WorkerBuilder {
            queue: Arc::new(queue),
            dedupe: None,
            purge_every: Some(DEFAULT_PURGE_INTERVAL),
            config: Config::default(),
            clock: SharedClock::default(),
            wake: None,
            alerts: None,
        }
    }
}

impl WorkerBuilder {
    /// What to do with a stale event: one whose [ordering](crate::ordering) position is
    /// below its key's watermark, or older than [`max_event_age`](Self::max_event_age).
    /// Default [`StalePolicy::Skip`](crate::ordering::StalePolicy::Skip).
    pub fn stale_policy(mut self, policy: crate::ordering::StalePolicy) -> Self {
        self.config.staleness.policy = policy;
        self
    }

    /// Treats an event whose position, read as an event time (as
    /// [`OrderingKey::at`](crate::ordering::OrderingKey::at) writes it), is older than `age`
    /// as stale, under the [`stale_policy`](Self::stale_policy). For routes whose positions
    /// are versions, leave it unset (the default).
    pub fn max_event_age(mut self, age: Duration) -> Self {
        self.config.staleness.max_age = Some(age);
        self
    }

    /// Puts a [`DedupeLayer`] over the handler, so it sees each event once in effect: an
    /// [`IdempotencyStore`](crate::store::IdempotencyStore) as it is (the default claim lease), or a layer from
    /// [`DedupeLayer::builder`].
    ///
    /// Without dedupe the worker still retries and dead-letters, but a stored event that is
    /// delivered again (after a crash, a lease that expired mid-handler, a replay) runs the
    /// handler again.
    pub fn dedupe(mut self, dedupe: impl Into<DedupeLayer>) -> Self {
        self.dedupe = Some(dedupe.into());
        self
    }

    /// Most events handled at once (default 64).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    /// Most events leased in one call (default 64); a lease never asks for more than the free
    /// handler slots.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// How long each lease lasts (default 30 s). Work still running after two thirds of it
    /// has its lease extended, again and again, so a slow handler keeps its message.
    pub fn lease_for(mut self, lease: Duration) -> Self {
        self.config.lease_for = lease;
        self
    }

    /// When to retry a retryable failure (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// How often to poll an empty queue: from `min` after the last event, doubling up to
    /// `max` while the queue stays empty (default 50 ms to 1 s). A [wake-up
    /// signal](Self::wake_on) cuts the wait short.
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.config.poll_min = min;
        self.config.poll_max = max;
        self
    }

    /// How often a running worker purges its queue and dedupe store of what is past the
    /// store's retention ([`Queue::purge_expired`], [`IdempotencyStore::purge_expired`](crate::store::IdempotencyStore::purge_expired);
    /// default hourly, `None` to leave it to you).
    pub fn purge_interval(mut self, every: Option<Duration>) -> Self {
        self.purge_every = every;
        self
    }

    /// How long a shutdown waits for in-flight handlers before abandoning them and handing
    /// their messages back (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Reads time from `clock` (default: the system clock). Use the queue's clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Fires an [`Alert::DeadLetter`](crate::alert::Alert::DeadLetter) to `alerts` for each
    /// event this worker moves to the dead letters.
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Wakes an idle worker when `signal` fires, instead of waiting for the next poll. By
    /// default the worker uses the queue's own signal ([`Queue::wake_signal`]: every backend
    /// in this crate has one); this replaces it, for example with an
    /// `Arc<tokio::sync::Notify>` you notify yourself. See [`Wake`].
    pub fn wake_on(mut self, signal: impl Wake) -> Self {
        self.wake = Some(Box::new(signal));
        self
    }

    /// Adds a rate limit (builder style; feature `rate-limit`): before the handler runs, each
    /// event takes a token from its key's bucket ([`RateLimit::keyed`]), and over the rate
    /// waits for it or is handed back to the queue to when it is due, without using an
    /// attempt; a backlog is worked off at the rate, never dropped. Several limits may be
    /// added (per source and per event type, say): an event takes a token from each that
    /// applies. See the [worker docs](super#flow-control) for how waiting is bounded.
    ///
    /// The buckets are this worker's: workers in several processes each allow the rate.
    ///
    /// [`RateLimit::keyed`]: crate::limit::RateLimit::keyed
    #[cfg(feature = "rate-limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
    pub fn rate_limit(mut self, limit: crate::limit::RateLimit) -> Self {
        self.config.flow.rates.push(limit);
        self
    }

    /// Runs at most `n` handlers of one source at once (builder style); events of a source
    /// at its cap wait briefly for a slot or are handed back (no attempt used), while other
    /// sources keep running. Per worker; the default is no cap. `0` fails at build.
    pub fn max_concurrent_per_source(mut self, n: usize) -> Self {
        self.config.flow.per_source = Some(n);
        self
    }

    /// The longest an event waits in its worker slot for a rate-limit token or a source's
    /// running slot before it is handed back to the queue (builder style; default
    /// [`DEFAULT_MAX_FLOW_WAIT`](super::DEFAULT_MAX_FLOW_WAIT), 1 s). Its lease is kept
    /// alive while it waits.
    pub fn max_flow_wait(mut self, wait: Duration) -> Self {
        self.config.flow.max_wait = wait;
        self
    }

    /// Builds the worker around `handler`: a `tower::Service<Event>` whose error converts into
    /// [`HandlerError`]. For a typed handler, wrap it in
    /// [`DecodeJsonLayer`](super::DecodeJsonLayer) first.
    pub fn build<S>(self, handler: S) -> Result<Worker, ConfigError>
    where
        S: Service<Event> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Response: Send + 'static,
        S::Error: Into<HandlerError>,
    {
        self.validate()?;
        let handler: Handler = match &self.dedupe {
            Some(layer) => {
                BoxCloneSyncService::new(layer.layer(handler).map_response(|r| match r {
                    Deduped::Handled(_) => Ran::Handled,
                    Deduped::Duplicate(_) => Ran::Duplicate,
                }))
            }
            None => BoxCloneSyncService::new(
                handler
                    .map_response(|_| Ran::Handled)
                    .map_err(Into::<HandlerError>::into),
            ),
        };
        let wake = self.wake.or_else(|| self.queue.wake_signal());
        Ok(Worker {
            shared: Arc::new(Shared {
                queue: self.queue,
                handler,
                slots: Arc::new(Semaphore::new(self.config.concurrency)),
                flow: Flow::new(&self.config.flow),
                config: self.config,
                clock: self.clock,
                wake: wake.map(|signal| Arc::new(tokio::sync::Mutex::new(signal))),
                counters: Counters::default(),
                alerts: self.alerts,
                purge: self
                    .purge_every
                    .map(|every| (self.dedupe.as_ref().map(|l| l.store().clone()), every)),
            }),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        let bad = |what, reason| Err(ConfigError::InvalidValue { what, reason });
        if c.concurrency == 0 || c.concurrency > Semaphore::MAX_PERMITS {
            return bad(
                "worker concurrency",
                "must be between 1 and Semaphore::MAX_PERMITS",
            );
        }
        if c.batch_size == 0 {
            return bad("worker batch size", "must be at least 1");
        }
        if c.lease_for.is_zero() {
            return bad("worker lease", "must be positive");
        }
        if c.flow.per_source == Some(0) {
            return bad("worker concurrency per source", "must be at least 1");
        }
        if c.flow.max_wait.is_zero() {
            return bad("worker flow wait", "must be positive");
        }
        if c.poll_min.is_zero() || c.poll_min > c.poll_max {
            return bad(
                "worker poll interval",
                "min must be positive and not above max",
            );
        }
        Ok(())
    }
}
