//! [`Alerts`]: the hook, the thresholds, and what the windows have counted so far.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::watch::Silence;
use super::{Alert, AlertHook};
use crate::clock::SharedClock;
use crate::Clock;

/// `bad_signature` rejections of one source within [`DEFAULT_SIGNATURE_WINDOW`] that fire
/// [`Alert::SignatureFailures`] by default: 20.
pub const DEFAULT_SIGNATURE_FAILURES: u64 = 20;

/// The window signature failures are counted in by default: 60 seconds.
pub const DEFAULT_SIGNATURE_WINDOW: Duration = Duration::from_secs(60);

/// The share of a pass's events recovered by reconciliation over which
/// [`Alert::RecoveryRate`] fires by default: 1%.
pub const DEFAULT_RECOVERY_THRESHOLD: f64 = 0.01;

/// How long the oldest ready event may wait before [`Alert::OldestReady`] fires by default:
/// 5 minutes.
pub const DEFAULT_OLDEST_READY_LIMIT: Duration = Duration::from_secs(300);

/// The window a source's deliveries are counted in for [`Alert::SilentSource`] by default:
/// one hour.
pub const DEFAULT_SILENT_WINDOW: Duration = Duration::from_secs(3600);

/// Consecutive windows with deliveries after which a source counts as busy, so that a
/// window without any fires [`Alert::SilentSource`], by default: 3.
pub const DEFAULT_SILENT_AFTER: u32 = 3;

/// The thresholds, as [`Alerts`]' builder methods set them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) signature_failures: u64,
    pub(super) signature_window: Duration,
    pub(super) recovery_threshold: f64,
    pub(super) oldest_ready: Duration,
    pub(super) silent_window: Duration,
    pub(super) silent_after: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            signature_failures: DEFAULT_SIGNATURE_FAILURES,
            signature_window: DEFAULT_SIGNATURE_WINDOW,
            recovery_threshold: DEFAULT_RECOVERY_THRESHOLD,
            oldest_ready: DEFAULT_OLDEST_READY_LIMIT,
            silent_window: DEFAULT_SILENT_WINDOW,
            silent_after: DEFAULT_SILENT_AFTER,
        }
    }
}

/// One source's signature failures in its current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    since: SystemTime,
    count: u64,
    fired: bool,
}

/// What the alerts remember between calls; shared by every clone of an [`Alerts`].
#[derive(Debug, Default)]
pub(super) struct State {
    /// Per scheme name (a bounded set: the program's schemes).
    failures: Mutex<HashMap<&'static str, Failures>>,
    /// True while the oldest ready event is over the limit and that has been reported.
    pub(super) oldest_fired: Mutex<bool>,
    pub(super) silence: Mutex<Silence>,
}

/// Locks a mutex whose data stays consistent however a holder panicked (each update is
/// small and complete).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where alerts go and when they fire: an [`AlertHook`], the thresholds, and the counts of
/// the current windows. Cheap to clone (one `Arc`); clones share the hook and the counts, so
/// set the thresholds first, then give a clone to each part that fires alerts (see the
/// [module docs](super)).
///
/// ```
/// use std::time::Duration;
/// use hookdock::alert::{Alert, Alerts};
///
/// let alerts = Alerts::new(|alert: &Alert| tracing::warn!(kind = alert.kind(), "{alert}"))
///     .signature_failures(50, Duration::from_secs(300))
///     .oldest_ready_limit(Duration::from_secs(60))
///     .silent_source(Duration::from_secs(600), 6);
/// # drop(alerts);
/// ```
#[derive(Clone)]
pub struct Alerts {
    pub(super) inner: Arc<Inner>,
}

/// What every clone of an [`Alerts`] shares.
pub(super) struct Inner {
    hook: Arc<dyn AlertHook>,
    pub(super) limits: Limits,
    pub(super) clock: SharedClock,
    pub(super) state: State,
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerts")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Alerts {
    /// Alerts fired to `hook`, with the default thresholds and the system clock.
    pub fn new(hook: impl AlertHook) -> Self {
        Self::from_arc(Arc::new(hook))
    }

    /// Alerts fired to an already shared hook.
    pub fn from_arc(hook: Arc<dyn AlertHook>) -> Self {
        Self {
            inner: Arc::new(Inner {
                hook,
                limits: Limits::default(),
                clock: SharedClock::default(),
                state: State::default(),
            }),
        }
    }

    /// Changes the settings: in place before the first clone; after it, on a new handle
    /// with the same hook and nothing counted yet (the clones keep theirs).
    fn configure(mut self, change: impl FnOnce(&mut Limits, &mut SharedClock)) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            change(&mut inner.limits, &mut inner.clock);
            return self;
        }
        let (mut limits, mut clock) = (self.inner.limits, self.inner.clock.clone());
        change(&mut limits, &mut clock);
        Self {
            inner: Arc::new(Inner {
                hook: Arc::clone(&self.inner.hook),
                limits,
                clock,
                state: State::default(),
            }),
        }
    }

    /// Fires [`Alert::SignatureFailures`] when one source's `bad_signature` rejections reach
    /// `count` (at least 1) within `window` (at least one second), counted from the first
    /// failure of the window; once per window (builder style; defaults
    /// [`DEFAULT_SIGNATURE_FAILURES`] in [`DEFAULT_SIGNATURE_WINDOW`]).
    pub fn signature_failures(self, count: u64, window: Duration) -> Self {
        self.configure(|limits, _| {
            limits.signature_failures = count.max(1);
            limits.signature_window = window.max(Duration::from_secs(1));
        })
    }

    /// Fires [`Alert::RecoveryRate`] for a reported rate over `threshold`, a share in
    /// `0.0..=1.0` (builder style; default [`DEFAULT_RECOVERY_THRESHOLD`]). A value out of
    /// range is clamped into it; `NaN` keeps the default.
    pub fn recovery_threshold(self, threshold: f64) -> Self {
        self.configure(|limits, _| {
            limits.recovery_threshold = if threshold.is_nan() {
                DEFAULT_RECOVERY_THRESHOLD
            } else {
                threshold.clamp(0.0, 1.0)
            };
        })
    }

    /// Fires [`Alert::OldestReady`] when the oldest event waiting to run has waited longer
    /// than `limit` (builder style; default [`DEFAULT_OLDEST_READY_LIMIT`]).
    pub fn oldest_ready_limit(self, limit: Duration) -> Self {
        self.configure(|limits, _| limits.oldest_ready = limit)
    }

    /// Counts each source's deliveries per `window` (at least one second; windows start at
    /// multiples of it since the Unix epoch) and fires [`Alert::SilentSource`] when a source
    /// that had deliveries in each of the `busy_windows` (at least 1) windows before has none
    /// in the window just ended (builder style; defaults [`DEFAULT_SILENT_WINDOW`] and
    /// [`DEFAULT_SILENT_AFTER`]).
    pub fn silent_source(self, window: Duration, busy_windows: u32) -> Self {
        self.configure(|limits, _| {
            limits.silent_window = window.max(Duration::from_secs(1));
            limits.silent_after = busy_windows.max(1);
        })
    }

    /// Reads the time from `clock` instead of the system clock (builder style): give it the
    /// queue's clock.
    pub fn clock(self, clock: impl Clock) -> Self {
        let clock = SharedClock::new(clock);
        self.configure(|_, current| *current = clock)
    }

    /// Reports a reconciliation pass over `source` that recovered `rate` (recovered over
    /// seen, `0.0..=1.0`) of the events it listed: fires [`Alert::RecoveryRate`] if the rate
    /// is over the threshold. The [`Reconciler`](crate::reconcile::Reconciler) calls it after
    /// each pass that saw something; a reconciler of your own may too. A `NaN` rate fires
    /// nothing.
    pub fn recovery_rate(&self, source: &str, rate: f64) {
        let threshold = self.inner.limits.recovery_threshold;
        if rate > threshold {
            self.fire(&Alert::RecoveryRate {
                source: source.to_owned(),
                rate,
                threshold,
            });
        }
    }

    /// An event dead-lettered by the worker.
    pub(crate) fn dead_letter(&self, source: String, event_id: String, reason: &str) {
        self.fire(&Alert::DeadLetter {
            source,
            event_id,
            reason: reason.to_owned(),
        });
    }

    /// A `bad_signature` rejection by the verify layer of `source` (the scheme's name).
    pub(crate) fn bad_signature(&self, source: &'static str) {
        let now = self.inner.clock.now();
        let Limits {
            signature_failures: threshold,
            signature_window: window,
            ..
        } = self.inner.limits;
        let count = {
            let mut failures = lock(&self.inner.state.failures);
            let entry = failures.entry(source).or_insert(Failures {
                since: now,
                count: 0,
                fired: false,
            });
            // A new window once this one is over (or the clock went back before its start).
            let over = now
                .duration_since(entry.since)
                .map_or(true, |elapsed| elapsed >= window);
            if over {
                *entry = Failures {
                    since: now,
                    count: 0,
                    fired: false,
                };
            }
            entry.count += 1;
            if entry.fired || entry.count < threshold {
                return;
            }
            entry.fired = true;
            entry.count
        };
        self.fire(&Alert::SignatureFailures {
            source: source.to_owned(),
            count,
            window,
        });
    }

    /// Hands `alert` to the hook; a hook that panics is logged, not passed on to the caller
    /// (a worker's attempt, a request).
    pub(super) fn fire(&self, alert: &Alert) {
        let hook = &self.inner.hook;
        if std::panic::catch_unwind(AssertUnwindSafe(|| hook.fire(alert))).is_err() {
            tracing::error!(kind = alert.kind(), "hookdock: the alert hook panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn thresholds_changed_after_a_clone_make_a_handle_of_their_own() {
        let fired = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&fired);
        let clock = FakeClock::at_unix(1_700_000_000);
        let first = Alerts::new(move |_: &Alert| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .clock(clock.clone())
        .signature_failures(2, Duration::from_secs(60));
        let second = first.clone().signature_failures(3, Duration::from_secs(60));
        first.bad_signature("s");
        second.bad_signature("s");
        second.bad_signature("s");
        assert_eq!(
            fired.load(Ordering::SeqCst),
            0,
            "each counts its own: 1 and 2"
        );
        first.bad_signature("s");
        assert_eq!(fired.load(Ordering::SeqCst), 1, "the first reached its 2");
        // A clock that went back starts a new window rather than failing.
        clock.set(SystemTime::UNIX_EPOCH);
        second.bad_signature("s");
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    }
}
