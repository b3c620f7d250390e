//! The crate's instrumentation calls, made where they measure (intake, verify layer, group
//! commits, worker, purges). With feature `metrics` they record through the `metrics`
//! facade under the names of [`crate::metrics`]; without it every function is empty and the
//! [`Timer`] holds nothing, so the calls compile to nothing.

/// What became of a delivery at the verify layer or the intake (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Stored,
    Duplicate,
    Rejected,
    Refused,
    Failed,
    Handshake,
}

impl Delivery {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Stored => "stored",
            Delivery::Duplicate => "duplicate",
            Delivery::Rejected => "rejected",
            Delivery::Refused => "refused",
            Delivery::Failed => "failed",
            Delivery::Handshake => "handshake",
        }
    }

    /// The outcome of an answer with this status that stored nothing.
    pub(crate) fn of_status(status: http::StatusCode) -> Self {
        match status.as_u16() {
            503 | 429 => Delivery::Refused,
            500..=599 => Delivery::Failed,
            _ => Delivery::Rejected,
        }
    }
}

/// Measures a duration for a histogram; holds nothing (and reads no clock) without the
/// feature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }

    #[cfg(feature = "metrics")]
    fn seconds(self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// What the worker's metrics say about one event: its source, type and receipt time, taken
/// before the event moves into the handler. Empty without the feature.
#[derive(Debug, Clone)]
pub(crate) struct EventLabels {
    #[cfg(feature = "metrics")]
    source: String,
    #[cfg(feature = "metrics")]
    event_type: Option<String>,
    #[cfg(feature = "metrics")]
    received_at: std::time::SystemTime,
    /// The provider's event time, where the worker reads positions as times.
    #[cfg(feature = "metrics")]
    event_time: Option<std::time::SystemTime>,
}

impl EventLabels {
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn of(event: &crate::RawEvent) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            source: event.source.clone(),
            #[cfg(feature = "metrics")]
            event_type: event.event_type.as_ref().map(|t| t.as_str().to_owned()),
            #[cfg(feature = "metrics")]
            received_at: event.received_at,
            #[cfg(feature = "metrics")]
            event_time: None,
        }
    }

    /// Adds the provider's event time (builder style).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, unused_mut))]
    pub(crate) fn event_time(mut self, at: Option<std::time::SystemTime>) -> Self {
        #[cfg(feature = "metrics")]
        {
            self.event_time = at;
        }
        self
    }

    /// Skipped by the ordering rules: `stale` (older than its key's watermark) or
    /// `too_old` (over the maximum event age).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn skipped(&self, why: &'static str) {
        #[cfg(feature = "metrics")]
        {
            let name = if why == "stale" {
                crate::metrics::STALE_EVENTS
            } else {
                crate::metrics::SKIPPED_EVENTS
            };
            ::metrics::counter!(name, "source" => self.source.clone()).increment(1);
        }
    }

    /// One run of the handler stack, timed from `timer`'s start.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn ran(&self, timer: Timer) {
        #[cfg(feature = "metrics")]
        ::metrics::histogram!(
            crate::metrics::HANDLER_SECONDS,
            "source" => self.source.clone(),
            "event_type" => on::event_type_label(&self.source, self.event_type.as_deref())
        )
        .record(timer.seconds());
    }

    /// An attempt settled as `outcome`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn settled(&self, outcome: &'static str) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(
            crate::metrics::HANDLER_OUTCOMES,
            "source" => self.source.clone(),
            "event_type" => on::event_type_label(&self.source, self.event_type.as_deref()),
            "outcome" => outcome
        )
        .increment(1);
    }

    /// A retry scheduled.
    #[inline]
    pub(crate) fn retried(&self) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(crate::metrics::RETRIES, "source" => self.source.clone()).increment(1);
    }

    /// Moved to the dead letters for `cause` (`permanent`, `exhausted`).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn dead_lettered(&self, cause: &'static str) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(crate::metrics::DEAD_LETTERS, "source" => self.source.clone(), "cause" => cause)
            .increment(1);
    }

    /// Done (`succeeded` or `dead`) at `now`: the time since receipt.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn done(&self, outcome: &'static str, now: std::time::SystemTime) {
        #[cfg(feature = "metrics")]
        {
            let waited = now.duration_since(self.received_at).unwrap_or_default();
            ::metrics::histogram!(
                crate::metrics::RECEIPT_TO_DONE_SECONDS,
                "source" => self.source.clone(),
                "outcome" => outcome
            )
            .record(waited.as_secs_f64());
            if let Some(at) = self.event_time {
                let since = now.duration_since(at).unwrap_or_default();
                ::metrics::histogram!(
                    crate::metrics::EVENT_TIME_TO_DONE_SECONDS,
                    "source" => self.source.clone()
                )
                .record(since.as_secs_f64());
            }
        }
    }
}

/// One decoded event's schema drift (feature `schema-drift`): which kinds it showed, and
/// whether its shape is new to the reporter.
#[cfg(feature = "schema-drift")]
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn drifted(
    source: &str,
    event_type: Option<&str>,
    unknown: bool,
    missing: bool,
    new_shape: bool,
) {
    #[cfg(feature = "metrics")]
    {
        let ty = on::event_type_label(source, event_type);
        for (kind, showed) in [("unknown", unknown), ("missing", missing)] {
            if showed {
                ::metrics::counter!(
                    crate::metrics::SCHEMA_DRIFT_EVENTS,
                    "source" => source.to_owned(),
                    "event_type" => ty.clone(),
                    "kind" => kind
                )
                .increment(1);
            }
        }
        if new_shape {
            ::metrics::counter!(
                crate::metrics::SCHEMA_DRIFT_SHAPES,
                "source" => source.to_owned(),
                "event_type" => ty
            )
            .increment(1);
        }
    }
}

/// A finished reconciliation pass: what it listed and recovered, its recovery ratio and
/// its gaps, by source.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn reconcile_pass(report: &crate::reconcile::PassReport) {
    #[cfg(feature = "metrics")]
    {
        let source = report.source.clone();
        ::metrics::counter!(crate::metrics::RECONCILE_SEEN, "source" => source.clone())
            .increment(report.seen);
        ::metrics::counter!(crate::metrics::RECONCILE_RECOVERED, "source" => source.clone())
            .increment(report.recovered + report.redeliveries);
        ::metrics::gauge!(crate::metrics::RECONCILE_RECOVERY_RATIO, "source" => source.clone())
            .set(report.recovery_rate());
        ::metrics::counter!(crate::metrics::RECONCILE_GAPS, "source" => source)
            .increment(report.gaps.len() as u64);
    }
}

#[cfg(feature = "metrics")]
mod on {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, RwLock};

    use ::metrics::{counter, histogram, SharedString};

    use super::{Delivery, Timer};
    use crate::metrics::*;

    pub(crate) fn delivery(source: &str, outcome: Delivery, kind: &'static str) {
        counter!(DELIVERIES, "source" => source.to_owned(), "outcome" => outcome.as_str(), "kind" => kind)
            .increment(1);
    }

    pub(crate) fn verified(source: &'static str, timer: Timer) {
        histogram!(VERIFY_SECONDS, "source" => source).record(timer.seconds());
    }

    pub(crate) fn committed(backend: &'static str, timer: Timer, operations: usize) {
        histogram!(STORE_COMMIT_SECONDS, "backend" => backend).record(timer.seconds());
        histogram!(STORE_BATCH_SIZE, "backend" => backend).record(operations as f64);
    }

    pub(crate) fn purged(what: &'static str, records: u64) {
        if records > 0 {
            counter!(PURGED, "what" => what).increment(records);
        }
    }

    /// Per source, the event types given a label of their own so far.
    type Types = HashMap<String, HashMap<String, Arc<str>>>;

    fn types() -> &'static RwLock<Types> {
        static TYPES: OnceLock<RwLock<Types>> = OnceLock::new();
        TYPES.get_or_init(Default::default)
    }

    /// The `event_type` label value: the type itself for the first
    /// [`EVENT_TYPES_PER_SOURCE`] distinct types of a source, `other` after them and for a
    /// type too long or with control characters, `none` without a type.
    pub(crate) fn event_type_label(source: &str, event_type: Option<&str>) -> SharedString {
        let Some(ty) = event_type else {
            return SharedString::const_str("none");
        };
        if ty.len() > EVENT_TYPE_MAX_LEN || ty.is_empty() || ty.chars().any(char::is_control) {
            return SharedString::const_str("other");
        }
        {
            let known = types().read().unwrap_or_else(|e| e.into_inner());
            if let Some(label) = known.get(source).and_then(|m| m.get(ty)) {
                return SharedString::from(Arc::clone(label));
            }
        }
        let mut known = types().write().unwrap_or_else(|e| e.into_inner());
        let of_source = known.entry(source.to_owned()).or_default();
        if let Some(label) = of_source.get(ty) {
            return SharedString::from(Arc::clone(label));
        }
        if of_source.len() >= EVENT_TYPES_PER_SOURCE {
            return SharedString::const_str("other");
        }
        let label: Arc<str> = Arc::from(ty);
        of_source.insert(ty.to_owned(), Arc::clone(&label));
        SharedString::from(label)
    }
}

#[cfg(all(test, feature = "metrics"))]
use on::event_type_label;
#[cfg(feature = "metrics")]
pub(crate) use on::{committed, delivery, purged, verified};

#[cfg(not(feature = "metrics"))]
mod off {
    use super::{Delivery, Timer};

    #[inline(always)]
    pub(crate) fn delivery(_: &str, _: Delivery, _: &'static str) {}
    #[inline(always)]
    pub(crate) fn verified(_: &'static str, _: Timer) {}
    #[inline(always)]
    #[allow(dead_code)] // only the SQLite and PostgreSQL backends commit in groups
    pub(crate) fn committed(_: &'static str, _: Timer, _: usize) {}
    #[inline(always)]
    pub(crate) fn purged(_: &'static str, _: u64) {}
}

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::event_type_label;
    use crate::metrics::{EVENT_TYPES_PER_SOURCE, EVENT_TYPE_MAX_LEN};

    #[test]
    fn event_types_are_capped_per_source() {
        // A source of its own: the table is process-wide and other tests run beside this one.
        let source = "cap-test-source";
        for i in 0..EVENT_TYPES_PER_SOURCE {
            let ty = format!("type.{i}");
            assert_eq!(&*event_type_label(source, Some(&ty)), ty.as_str());
        }
        assert_eq!(&*event_type_label(source, Some("one.too.many")), "other");
        // Those already labelled keep their label; another source has its own allowance.
        assert_eq!(&*event_type_label(source, Some("type.0")), "type.0");
        assert_eq!(
            &*event_type_label("cap-test-other", Some("one.too.many")),
            "one.too.many"
        );
    }

    #[test]
    fn odd_event_types_are_other_and_a_missing_one_is_none() {
        let source = "odd-types-source";
        assert_eq!(&*event_type_label(source, None), "none");
        assert_eq!(&*event_type_label(source, Some("")), "other");
        assert_eq!(&*event_type_label(source, Some("a\nb")), "other");
        let long = "x".repeat(EVENT_TYPE_MAX_LEN + 1);
        assert_eq!(&*event_type_label(source, Some(&long)), "other");
    }
}
