//! The log-sampled alerts ([`Alert::OldestReady`], [`Alert::SilentSource`]) and
//! [`QueueWatch`], the sampler that checks them when the `metrics` feature's
//! `QueueGauges` does not.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::handle::lock;
use super::{Alert, Alerts};
use crate::store::{EventFilter, EventLog, LogCounts, Origin, StoreError};

/// The interval [`QueueWatch`] samples at unless told otherwise: every 15 seconds.
const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(15);

/// Most sources tracked for silence; deliveries of further sources are not tracked (sources
/// are configured by the application, so this is far above any real count).
const MAX_SOURCES: usize = 1024;

/// Per source, how busy its recent windows were.
#[derive(Debug, Clone, Copy)]
struct Busy {
    /// Consecutive closed windows with at least one delivery.
    streak: u32,
    /// The fewest deliveries in one of those windows.
    fewest: u64,
}

/// The silent-source windows closed so far.
#[derive(Debug, Default)]
pub(super) struct Silence {
    /// The index (since the epoch, in windows) of the next window to close; `None` before
    /// the first sample.
    next: Option<u64>,
    sources: BTreeMap<String, Busy>,
}

fn index(at: SystemTime, window: Duration) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    u64::try_from(since / window.as_nanos().max(1)).unwrap_or(u64::MAX)
}

fn start(index: u64, window: Duration) -> SystemTime {
    let nanos = u128::from(index).saturating_mul(window.as_nanos());
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

impl Alerts {
    /// Checks the log-sampled alerts against one sample of `log`'s `counts`: the oldest
    /// ready event's age, and (once per window) each source's deliveries in the windows
    /// closed since the last call, read from `log` by receipt time (pushed events only, so a
    /// replay does not hide a silent provider).
    pub(crate) async fn observe_log<L: EventLog + ?Sized>(
        &self,
        log: &L,
        counts: &LogCounts,
    ) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        self.oldest_ready(counts.oldest_pending_age(now).unwrap_or(Duration::ZERO));
        self.close_windows(log, now).await
    }

    fn oldest_ready(&self, age: Duration) {
        let limit = self.inner.limits.oldest_ready;
        let over = age > limit;
        let fire = {
            let mut fired = lock(&self.inner.state.oldest_fired);
            let fire = over && !*fired;
            *fired = over;
            fire
        };
        if fire {
            self.fire(&Alert::OldestReady { age, limit });
        }
    }

    async fn close_windows<L: EventLog + ?Sized>(
        &self,
        log: &L,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let window = self.inner.limits.silent_window;
        let current = index(now, window);
        // Far enough back to learn a source's usual windows from the log on the first sample,
        // and no further after a long pause.
        let earliest = current.saturating_sub(u64::from(self.inner.limits.silent_after) + 1);
        let first = {
            let mut silence = lock(&self.inner.state.silence);
            let next = silence.next.get_or_insert(earliest);
            *next = (*next).max(earliest);
            *next
        };
        for closing in first..current {
            let filter = EventFilter {
                origin: Some(Origin::Push),
                received_from: Some(start(closing, window)),
                received_until: Some(start(closing + 1, window)),
                ..EventFilter::default()
            };
            let counts = log.counts(&filter).await?;
            let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
            for group in &counts.groups {
                *seen.entry(group.source.as_str()).or_default() += group.count;
            }
            let fired = self.close(closing, &seen);
            for alert in fired {
                self.fire(&alert);
            }
        }
        Ok(())
    }

    /// Closes window `closing` with each source's deliveries in it; returns the alerts to
    /// fire. Does nothing if another sampler of these alerts closed it already.
    fn close(&self, closing: u64, seen: &BTreeMap<&str, u64>) -> Vec<Alert> {
        let busy_after = self.inner.limits.silent_after;
        let mut silence = lock(&self.inner.state.silence);
        if silence.next != Some(closing) {
            return Vec::new();
        }
        silence.next = Some(closing + 1);
        let mut fired = Vec::new();
        for (source, busy) in silence.sources.iter_mut() {
            if seen.get(source.as_str()).is_some_and(|&n| n > 0) {
                continue;
            }
            if busy.streak >= busy_after {
                fired.push(Alert::SilentSource {
                    source: source.clone(),
                    quiet_for: self.inner.limits.silent_window,
                    usual: busy.fewest,
                });
            }
            *busy = Busy {
                streak: 0,
                fewest: u64::MAX,
            };
        }
        for (&source, &n) in seen {
            if n == 0 {
                continue;
            }
            if !silence.sources.contains_key(source) && silence.sources.len() >= MAX_SOURCES {
                continue;
            }
            let busy = silence.sources.entry(source.to_owned()).or_insert(Busy {
                streak: 0,
                fewest: u64::MAX,
            });
            busy.streak = busy.streak.saturating_add(1);
            busy.fewest = busy.fewest.min(n);
        }
        fired
    }
}

/// Samples an [`EventLog`] for the alerts read from the log: [`Alert::OldestReady`] and
/// [`Alert::SilentSource`].
///
/// Each sample is one [`EventLog::counts`] over the whole log, plus, once per silent-source
/// window, one over that window's pushed events. With the `metrics` feature, give the
/// alerts to `QueueGauges` instead (its `alerts` method) so that one sample serves both.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use hookdock::alert::{Alert, Alerts, QueueWatch};
/// use hookdock::store::{MemoryStore, QueueOptions};
///
/// let queue = MemoryStore::new().queue(QueueOptions::default());
/// let alerts = Alerts::new(|alert: &Alert| tracing::warn!("{alert}"));
/// let watch = QueueWatch::new(queue, alerts);
/// watch.sample().await?;          // once, now
/// let running = watch.spawn();    // then every 15 s until `running` is dropped
/// # drop(running);
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
pub struct QueueWatch<L> {
    log: L,
    alerts: Alerts,
    every: Duration,
}

impl<L: EventLog> QueueWatch<L> {
    /// Watches `log` (any [`EventLog`]) for `alerts`, sampled every 15 seconds.
    pub fn new(log: L, alerts: Alerts) -> Self {
        Self {
            log,
            alerts,
            every: DEFAULT_WATCH_INTERVAL,
        }
    }

    /// Samples every `interval` instead (at least one millisecond).
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = interval.max(Duration::from_millis(1));
        self
    }

    /// Reads the log once and fires what is due.
    pub async fn sample(&self) -> Result<(), StoreError> {
        let counts = self.log.counts(&EventFilter::all()).await?;
        self.alerts.observe_log(&self.log, &counts).await
    }

    /// Samples at once, then every interval, on a new task, until the handle is dropped or
    /// [stopped](QueueWatchHandle::stop). A failed sample is logged and tried again at the
    /// next interval.
    pub fn spawn(self) -> QueueWatchHandle
    where
        L: 'static,
    {
        let every = self.every;
        let watch = std::sync::Arc::new(self);
        let task = crate::periodic::spawn(every, "queue watch", move || {
            let watch = std::sync::Arc::clone(&watch);
            async move { watch.sample().await }
        });
        QueueWatchHandle { task }
    }
}

impl<L> fmt::Debug for QueueWatch<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWatch")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// A running [`QueueWatch`]; dropping it stops the sampling.
#[derive(Debug)]
pub struct QueueWatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl QueueWatchHandle {
    /// Stops sampling (the same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for QueueWatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_at_multiples_of_their_length() {
        let w = Duration::from_secs(60);
        assert_eq!(index(UNIX_EPOCH + Duration::from_secs(119), w), 1);
        assert_eq!(index(UNIX_EPOCH + Duration::from_secs(120), w), 2);
        assert_eq!(start(2, w), UNIX_EPOCH + Duration::from_secs(120));
        assert_eq!(index(start(28_333_334, w), w), 28_333_334);
        // Before the epoch, or absurdly far: no panic.
        assert_eq!(index(UNIX_EPOCH - Duration::from_secs(5), w), 0);
        let _ = start(u64::MAX, w);
    }
}
