//! What a worker reports: [`BatchReport`], [`ShutdownReport`], [`WorkerStats`], and the
//! counters behind them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::store::MessageId;

/// How one message was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Settled {
    /// Handled and acked.
    Acked,
    /// A completed duplicate: acked without running the handler.
    Duplicate,
    /// Scheduled for another attempt at this time.
    Retried(SystemTime),
    /// Handed back until this time without being handled (someone else holds its claim).
    Deferred(SystemTime),
    /// Moved to the dead letters with this reason.
    DeadLettered(String),
    /// Settled without running the handler: stale by the worker's policy.
    Skipped,
    /// Settling failed (the lease was lost, or the queue failed); the message comes back
    /// when its lease expires.
    Unsettled(String),
}

impl Settled {
    /// The `outcome` label of `hookdock_handler_outcomes_total`.
    pub(super) fn as_str(&self) -> &'static str {
        match self {
            Settled::Acked => "acked",
            Settled::Duplicate => "duplicate",
            Settled::Retried(_) => "retried",
            Settled::Deferred(_) => "deferred",
            Settled::DeadLettered(_) => "dead_lettered",
            Settled::Skipped => "skipped_stale",
            Settled::Unsettled(_) => "unsettled",
        }
    }
}

/// Counts of what one [`Worker::run_once`](super::Worker::run_once) (or [`Worker::run_until_idle`](super::Worker::run_until_idle)) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BatchReport {
    /// Messages leased.
    pub leased: u64,
    /// Handled and acked.
    pub succeeded: u64,
    /// Completed duplicates acked without running the handler.
    pub duplicates: u64,
    /// Scheduled for another attempt.
    pub retried: u64,
    /// Handed back because their claim is held elsewhere.
    pub deferred: u64,
    /// Moved to the dead letters.
    pub dead_lettered: u64,
    /// Stale events settled without running the handler.
    pub skipped_stale: u64,
    /// Could not be settled (they come back when their lease expires).
    pub unsettled: u64,
}

impl BatchReport {
    pub(super) fn add(&mut self, settled: &Settled) {
        match settled {
            Settled::Acked => self.succeeded += 1,
            Settled::Duplicate => self.duplicates += 1,
            Settled::Retried(_) => self.retried += 1,
            Settled::Deferred(_) => self.deferred += 1,
            Settled::DeadLettered(_) => self.dead_lettered += 1,
            Settled::Skipped => self.skipped_stale += 1,
            Settled::Unsettled(_) => self.unsettled += 1,
        }
    }

    pub(super) fn merge(&mut self, other: &BatchReport) {
        self.leased += other.leased;
        self.succeeded += other.succeeded;
        self.duplicates += other.duplicates;
        self.retried += other.retried;
        self.deferred += other.deferred;
        self.dead_lettered += other.dead_lettered;
        self.skipped_stale += other.skipped_stale;
        self.unsettled += other.unsettled;
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// In-flight handlers that finished (and were settled) within the shutdown timeout.
    pub finished: u64,
    /// Messages whose handler did not finish in time: handed back to the queue, ready now.
    pub given_back: Vec<MessageId>,
    /// Messages that could not be handed back (they return when their lease expires).
    pub give_back_failed: u64,
}

/// Running totals since the worker was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Messages leased.
    pub leased: u64,
    /// Lease calls that returned at least one message (`leased / leases` is the mean batch).
    pub leases: u64,
    /// Handled and acked.
    pub succeeded: u64,
    /// Completed duplicates acked without running the handler.
    pub duplicates: u64,
    /// Scheduled for another attempt.
    pub retried: u64,
    /// Handed back because their claim is held elsewhere.
    pub deferred: u64,
    /// Moved to the dead letters.
    pub dead_lettered: u64,
    /// Stale events settled without running the handler.
    pub skipped_stale: u64,
    /// Handlers that panicked (counted in `retried` or `dead_lettered` too).
    pub panicked: u64,
    /// Messages that could not be settled.
    pub unsettled: u64,
    /// Messages handed back at shutdown.
    pub given_back: u64,
    /// Lease calls that failed.
    pub lease_errors: u64,
    /// Handled events and dedupe keys purged after their retention.
    pub purged: u64,
    /// Handlers running now.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) leased: AtomicU64,
    pub(super) leases: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) deferred: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) skipped_stale: AtomicU64,
    pub(super) panicked: AtomicU64,
    pub(super) unsettled: AtomicU64,
    pub(super) given_back: AtomicU64,
    pub(super) lease_errors: AtomicU64,
    pub(super) purged: AtomicU64,
    pub(super) in_flight: AtomicU64,
}

impl Counters {
    pub(super) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn record(&self, settled: &Settled) {
        let counter = match settled {
            Settled::Acked => &self.succeeded,
            Settled::Duplicate => &self.duplicates,
            Settled::Retried(_) => &self.retried,
            Settled::Deferred(_) => &self.deferred,
            Settled::DeadLettered(_) => &self.dead_lettered,
            Settled::Skipped => &self.skipped_stale,
            Settled::Unsettled(_) => &self.unsettled,
        };
        Self::bump(counter, 1);
    }

    pub(super) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            leased: get(&self.leased),
            leases: get(&self.leases),
            succeeded: get(&self.succeeded),
            duplicates: get(&self.duplicates),
            retried: get(&self.retried),
            deferred: get(&self.deferred),
            dead_lettered: get(&self.dead_lettered),
            skipped_stale: get(&self.skipped_stale),
            panicked: get(&self.panicked),
            unsettled: get(&self.unsettled),
            given_back: get(&self.given_back),
            lease_errors: get(&self.lease_errors),
            purged: get(&self.purged),
            in_flight: get(&self.in_flight),
        }
    }
}
