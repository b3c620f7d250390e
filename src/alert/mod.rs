//! Alert hooks: a small, synchronous callback fired when something needs a person.
//!
//! hookdock fires an [`Alert`] to your [`AlertHook`] (a closure will do) for:
//!
//! | alert | fired by | when |
//! |---|---|---|
//! | [`Alert::DeadLetter`] | the [worker](crate::worker::WorkerBuilder::alerts) | each event it moves to the dead letters |
//! | [`Alert::SignatureFailures`] | the [verify layer](crate::verify::VerifyLayer::alerts) | a source's `bad_signature` rejections reach the threshold within a window (once per window) |
//! | [`Alert::RecoveryRate`] | whoever reports a reconciliation pass through [`Alerts::recovery_rate`] | the share of events a pass recovered is over the threshold |
//! | [`Alert::OldestReady`] | the [`QueueWatch`] (or `metrics::QueueGauges` given the alerts) | the oldest event waiting to run has waited longer than the limit (once, until it drops under it) |
//! | [`Alert::SilentSource`] | the same sampler | a source that had deliveries in each of the last few windows had none in the window just ended (once, until it is busy again) |
//!
//! One [`Alerts`] handle (cheap to clone) carries the hook, the thresholds and what the
//! windows have counted; give clones of it to the worker, the verify layers and the watcher.
//! An alert carries names, counts and durations, never a secret, a header value or a body;
//! a dead letter's alert names its event id and the recorded reason, which are for people
//! (never use them as a metric label).
//!
//! The [`Reconciler`](crate::reconcile::Reconciler) given these alerts
//! ([`ReconcilerBuilder::alerts`](crate::reconcile::ReconcilerBuilder::alerts)) calls
//! [`Alerts::recovery_rate`] after each pass that saw something; a reconciler of your own
//! can call it too.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use hookdock::alert::{Alert, Alerts};
//!
//! let fired = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&fired);
//! let alerts = Alerts::new(move |alert: &Alert| sink.lock().unwrap().push(alert.clone()))
//!     .recovery_threshold(0.05);
//! alerts.recovery_rate("github", 0.01); // under the threshold: nothing
//! alerts.recovery_rate("github", 0.20);
//! assert!(matches!(
//!     fired.lock().unwrap().as_slice(),
//!     [Alert::RecoveryRate { source, .. }] if source == "github"
//! ));
//! ```

mod handle;
mod watch;

use std::fmt;
use std::time::Duration;

pub use handle::{
    Alerts, DEFAULT_OLDEST_READY_LIMIT, DEFAULT_RECOVERY_THRESHOLD, DEFAULT_SIGNATURE_FAILURES,
    DEFAULT_SIGNATURE_WINDOW, DEFAULT_SILENT_AFTER, DEFAULT_SILENT_WINDOW,
};
pub use watch::{QueueWatch, QueueWatchHandle};

/// Something that needs a person's attention; see the [module docs](self) for who fires
/// each and when.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Alert {
    /// An event was moved to the dead letters.
    DeadLetter {
        /// The event's source.
        source: String,
        /// The event's id.
        event_id: String,
        /// The reason recorded with the dead letter (the handler's error).
        reason: String,
    },
    /// A source's signatures failed `count` times within `window`.
    SignatureFailures {
        /// The scheme's name, as the verify layer knows the source.
        source: String,
        /// `bad_signature` rejections counted in the window so far.
        count: u64,
        /// The window they were counted in.
        window: Duration,
    },
    /// A reconciliation pass recovered a larger share of a source's events than it should:
    /// the push path is losing deliveries.
    RecoveryRate {
        /// The source the pass covered.
        source: String,
        /// Events recovered over events seen, in `0.0..=1.0`.
        rate: f64,
        /// The threshold it is over.
        threshold: f64,
    },
    /// The oldest event waiting to run has waited longer than the limit: the worker is
    /// stopped, stuck or too slow.
    OldestReady {
        /// How long it has waited.
        age: Duration,
        /// The limit.
        limit: Duration,
    },
    /// A source that is normally busy sent nothing for a whole window.
    SilentSource {
        /// The source.
        source: String,
        /// How long it has been quiet: the window that just ended with no delivery.
        quiet_for: Duration,
        /// Deliveries it usually sends per window: the fewest of the busy windows before.
        usual: u64,
    },
}

impl Alert {
    /// A short, fixed name for the alert's kind (`dead_letter`, `signature_failures`,
    /// `recovery_rate`, `oldest_ready`, `silent_source`): fit for a log field or a label.
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::DeadLetter { .. } => "dead_letter",
            Alert::SignatureFailures { .. } => "signature_failures",
            Alert::RecoveryRate { .. } => "recovery_rate",
            Alert::OldestReady { .. } => "oldest_ready",
            Alert::SilentSource { .. } => "silent_source",
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alert::DeadLetter {
                source,
                event_id,
                reason,
            } => write!(f, "{source}: event {event_id} dead-lettered: {reason}"),
            Alert::SignatureFailures {
                source,
                count,
                window,
            } => write!(
                f,
                "{source}: {count} signature failures within {}s",
                window.as_secs()
            ),
            Alert::RecoveryRate {
                source,
                rate,
                threshold,
            } => write!(
                f,
                "{source}: reconciliation recovered {:.1}% of events (threshold {:.1}%)",
                rate * 100.0,
                threshold * 100.0
            ),
            Alert::OldestReady { age, limit } => write!(
                f,
                "the oldest ready event has waited {}s (limit {}s)",
                age.as_secs(),
                limit.as_secs()
            ),
            Alert::SilentSource {
                source,
                quiet_for,
                usual,
            } => write!(
                f,
                "{source}: no delivery for {}s (usually {usual} per window)",
                quiet_for.as_secs()
            ),
        }
    }
}

/// Receives every [`Alert`]. Called on the task that noticed it (a worker's attempt, a
/// request, the watcher): keep it quick and do not block; hand slow work (a page, an email)
/// to a channel or a task of your own. Closures `Fn(&Alert)` are hooks.
///
/// Object safe: [`Alerts`] keeps it as an `Arc<dyn AlertHook>`.
pub trait AlertHook: Send + Sync + 'static {
    /// Called once per alert.
    fn fire(&self, alert: &Alert);
}

impl<F: Fn(&Alert) + Send + Sync + 'static> AlertHook for F {
    fn fire(&self, alert: &Alert) {
        self(alert)
    }
}
