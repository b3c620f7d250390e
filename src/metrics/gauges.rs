//! [`QueueGauges`]: the queue's depth by state and the age of its oldest waiting event, read
//! from the event log at an interval and set as gauges.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use super::{QUEUE_EVENTS, QUEUE_OLDEST_READY_AGE_SECONDS};
use crate::alert::Alerts;
use crate::clock::SharedClock;
use crate::store::{EventFilter, EventLog, EventStatus, LogCounts, StoreError};
use crate::Clock;

/// How often [`QueueGauges`] samples unless told otherwise: every 15 seconds (a common
/// scrape interval).
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(15);

/// Samples an [`EventLog`] into the `hookdock_queue_events{source, state}` and
/// `hookdock_queue_oldest_ready_age_seconds` gauges.
///
/// Each sample is one [`EventLog::counts`] over the whole log, which scans the rows the
/// log retains (handled events included, for the retention window): milliseconds for
/// thousands of rows, more for millions, so sample every few seconds at most, not per
/// scrape. A state whose count drops to zero is set to `0`, not left at its last value.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use hookdock::metrics::QueueGauges;
/// use hookdock::store::{MemoryStore, QueueOptions};
/// use std::time::Duration;
///
/// let queue = MemoryStore::new().queue(QueueOptions::default());
/// let gauges = QueueGauges::new(queue).every(Duration::from_secs(5));
/// gauges.sample().await?;              // once, now
/// let running = gauges.spawn();        // then every 5 s until `running` is dropped
/// # drop(running);
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
pub struct QueueGauges<L> {
    log: L,
    every: Duration,
    clock: SharedClock,
    /// Every source sampled so far: its states are set each time, to zero when absent.
    sources: Mutex<BTreeSet<String>>,
    /// Checked against each sample, if given.
    alerts: Option<Alerts>,
}

impl<L: EventLog> QueueGauges<L> {
    /// Gauges over `log` (any [`EventLog`]: the SQLite, PostgreSQL or memory queue), sampled
    /// every [`DEFAULT_SAMPLE_INTERVAL`].
    pub fn new(log: L) -> Self {
        Self {
            log,
            every: DEFAULT_SAMPLE_INTERVAL,
            clock: SharedClock::default(),
            sources: Mutex::new(BTreeSet::new()),
            alerts: None,
        }
    }

    /// Samples every `interval` instead (at least one millisecond).
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = interval.max(Duration::from_millis(1));
        self
    }

    /// Reads the oldest event's age against `clock` instead of the system clock (give it
    /// the queue's clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Checks `alerts`' log-sampled alerts ([`OldestReady`](crate::alert::Alert::OldestReady),
    /// [`SilentSource`](crate::alert::Alert::SilentSource)) against each sample, so one
    /// sampler serves the gauges and the alerts (instead of a
    /// [`QueueWatch`](crate::alert::QueueWatch) beside it).
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Reads the log's counts once and sets the gauges (and checks the alerts, if given).
    pub async fn sample(&self) -> Result<(), StoreError> {
        let counts = self.log.counts(&EventFilter::all()).await?;
        self.set(&counts);
        if let Some(alerts) = &self.alerts {
            alerts.observe_log(&self.log, &counts).await?;
        }
        Ok(())
    }

    /// Sets the gauges from one sample.
    fn set(&self, counts: &LogCounts) {
        let mut by_state: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for group in &counts.groups {
            *by_state
                .entry((group.source.as_str(), group.status.as_str()))
                .or_default() += group.count;
        }
        let age = counts
            .oldest_pending_age(self.clock.now())
            .unwrap_or(Duration::ZERO);
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        for group in &counts.groups {
            if !sources.contains(&group.source) {
                sources.insert(group.source.clone());
            }
        }
        for source in sources.iter() {
            for state in EventStatus::ALL {
                let n = by_state
                    .get(&(source.as_str(), state.as_str()))
                    .copied()
                    .unwrap_or(0);
                ::metrics::gauge!(QUEUE_EVENTS, "source" => source.clone(), "state" => state.as_str())
                    .set(n as f64);
            }
        }
        ::metrics::gauge!(QUEUE_OLDEST_READY_AGE_SECONDS).set(age.as_secs_f64());
    }

    /// Samples at once, then every interval, on a new task, until the handle is dropped or
    /// [stopped](QueueGaugesHandle::stop). A failed sample is logged and the gauges keep
    /// their values until the next one.
    pub fn spawn(self) -> QueueGaugesHandle
    where
        L: 'static,
    {
        let every = self.every;
        let gauges = std::sync::Arc::new(self);
        let task = crate::periodic::spawn(every, "queue gauges", move || {
            let gauges = std::sync::Arc::clone(&gauges);
            async move { gauges.sample().await }
        });
        QueueGaugesHandle { task }
    }
}

impl<L> fmt::Debug for QueueGauges<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueGauges")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// A running [`QueueGauges`] sampler; dropping it stops the sampling.
#[derive(Debug)]
pub struct QueueGaugesHandle {
    task: tokio::task::JoinHandle<()>,
}

impl QueueGaugesHandle {
    /// Stops sampling (the same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for QueueGaugesHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
