//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! hookdock records to whatever recorder the application installs (the Prometheus exporter,
//! StatsD, OpenTelemetry, ...); with none installed every call is a no-op, and without the
//! feature the calls are not compiled at all. Call [`describe`] once after installing a
//! recorder so it knows each metric's unit and help text, and spawn [`QueueGauges`] for the
//! queue's depth (it is the one metric read from the store rather than recorded where it
//! happens).
//!
//! ```no_run
//! # async fn f(queue: hookdock::store::sqlite::SqliteQueue) {
//! // Any recorder; here the Prometheus exporter (crate `metrics-exporter-prometheus`):
//! // let handle = PrometheusBuilder::new().install_recorder()?;   // then serve handle.render()
//! hookdock::metrics::describe();
//! let gauges = hookdock::metrics::QueueGauges::new(queue).spawn();   // every 15 s
//! # drop(gauges); }
//! ```
//!
//! # Every metric
//!
//! | name | type | unit | labels | meaning |
//! |---|---|---|---|---|
//! | `hookdock_deliveries_total` | counter | deliveries | `source`, `outcome`, `kind` | every delivery answered by the verify layer, the intake or the inbound rate limit; `outcome` and `kind` below |
//! | `hookdock_verify_seconds` | histogram | seconds | `source` | the scheme's check of one delivery, from the read body to its verdict (body reading and key loading excluded) |
//! | `hookdock_store_commit_seconds` | histogram | seconds | `backend` | one group commit: a SQLite transaction with its fsync, or one PostgreSQL batch statement |
//! | `hookdock_store_batch_size` | histogram | operations | `backend` | the operations one group commit carried |
//! | `hookdock_queue_events` | gauge | events | `source`, `state` | events the log holds by state, sampled by [`QueueGauges`] |
//! | `hookdock_queue_oldest_ready_age_seconds` | gauge | seconds | — | how long the oldest event waiting to run (pending or retrying, leased excluded) has waited; `0` when none waits; sampled by [`QueueGauges`] |
//! | `hookdock_handler_seconds` | histogram | seconds | `source`, `event_type` | one run of the handler stack (dedupe and your service) on one attempt |
//! | `hookdock_handler_outcomes_total` | counter | attempts | `source`, `event_type`, `outcome` | how each attempt was settled: `acked`, `duplicate` (dedupe found it completed), `retried`, `deferred` (its claim is held elsewhere, or the worker's flow control handed it back before it ran), `dead_lettered`, `skipped_stale` (stale by the worker's [`StalePolicy`](crate::ordering::StalePolicy): settled without running), `unsettled` (settling failed; it returns when its lease expires) |
//! | `hookdock_retries_total` | counter | retries | `source` | retries scheduled (a failed attempt with attempts left) |
//! | `hookdock_dead_letters_total` | counter | events | `source`, `cause` | events moved to the dead letters: `cause` is `permanent` (a permanent error, an undecodable body) or `exhausted` (the last attempt failed) |
//! | `hookdock_receipt_to_done_seconds` | histogram | seconds | `source`, `outcome` | from the delivery's receipt (`RawEvent::received_at`) to its end: `outcome` is `succeeded` (acked), `dead` (dead-lettered) or `stale` (skipped as stale) |
//! | `hookdock_purged_total` | counter | records | `what` | records forgotten past their retention: `what` is `events` (handled events) or `idempotency_keys` |
//! | `hookdock_event_time_to_done_seconds` | histogram | seconds | `source` | from the provider's event time (the [ordering](crate::ordering) position) to the end, for workers that read positions as times (a [`max_event_age`](crate::worker::WorkerBuilder::max_event_age) is set; a position may be a version otherwise) |
//! | `hookdock_stale_events_total` | counter | events | `source` | events skipped as older than one already applied for their [ordering key](crate::ordering) (`StalePolicy::Skip`) |
//! | `hookdock_skipped_events_total` | counter | events | `source` | events skipped by an ordering rule for another reason: older than the worker's `max_event_age` |
//! | `hookdock_reconcile_seen_total` | counter | events | `source` | changes reconciliation passes listed from the provider |
//! | `hookdock_reconcile_recovered_total` | counter | events | `source` | of those, events the receiver had missed: stored from the pass, or redelivered by the provider on request |
//! | `hookdock_reconcile_recovery_ratio` | gauge | ratio | `source` | recovered over seen in the last pass |
//! | `hookdock_reconcile_gaps_total` | counter | gaps | `source` | stretches a pass could not cover: older than the provider keeps |
//! | `hookdock_schema_drift_events_total` | counter | events | `source`, `event_type`, `kind` | events whose payload drifted from the type it was decoded into (`DecodeJsonLayer::report_drift`, feature `schema-drift`): once per event and `kind`, `unknown` (fields the type did not know) or `missing` (fields it expected) |
//! | `hookdock_schema_drift_shapes_total` | counter | shapes | `source`, `event_type` | new shapes of drift (the reporter's warning once per shape), feature `schema-drift`; field paths are never labels |
//!
//! `outcome` and `kind` of `hookdock_deliveries_total`:
//!
//! | `outcome` | answer | `kind` |
//! |---|---|---|
//! | `stored` | `2xx`, a new event | `none` |
//! | `duplicate` | `2xx`, already stored | `none` |
//! | `rejected` | `4xx` | the rejection's kind ([`RejectionKind::as_str`](crate::scheme::RejectionKind::as_str): `bad_signature`, `missing_header`, `timestamp_too_old`, `payload_too_large`, ...) or the intake's reason ([`IntakeError::reason`](crate::intake::IntakeError::reason): `invalid_event_id`, `invalid_source`, `body_unreadable`) |
//! | `refused` | `503` or `429` + `Retry-After`: nothing stored, the provider retries | `queue_full`, `storage_unavailable` (intake, `503`), `key_unavailable` (verify, `503`), `rate_limited` (the route's `RateLimitLayer`, feature `rate-limit`, `429`) |
//! | `failed` | `500` | `storage_fault`, `not_verified` (the intake mounted without the verify layer; `source` is `unknown`) |
//! | `handshake` | the provider's challenge answered by the verify layer | the handshake's kind |
//!
//! A `429` of the inbound rate limit (`hookdock::limit::RateLimitLayer`) is counted under
//! the source the layer is given (`RateLimitLayer::source`, `unknown` if none). The `503` of
//! `hookdock::serve`'s in-flight limit happens before a delivery reaches these layers and is
//! not counted here.
//!
//! # Labels
//!
//! Every label has a bounded set of values, and none is ever an event id, a body or a
//! header value:
//!
//! - `source`: the intake's configured source (the scheme's name by default, such as
//!   `github`). At the verify layer, before a delivery reaches the intake, it is the
//!   scheme's name.
//! - `event_type`: the provider's event type as the scheme read it, capped at the first
//!   [`EVENT_TYPES_PER_SOURCE`] distinct types seen per source in this process; later
//!   types, and types over [`EVENT_TYPE_MAX_LEN`] bytes or with control characters, are
//!   `other`; an event without a type is `none`.
//! - `outcome`, `kind`, `state`, `cause`, `what`, `backend` (`sqlite`, `postgres`): fixed
//!   sets, listed above.
//!
//! # Cost
//!
//! With a recorder installed each delivery makes three metric calls on the intake path and
//! each attempt four or five in the worker, each a hashed lookup in the recorder's registry;
//! `benches/metrics.rs` measures intake and drain throughput with the Prometheus recorder
//! against none in the same run. [`QueueGauges`] reads [`EventLog::counts`] every interval,
//! which scans the rows the log retains (handled events stay for the retention window): keep
//! the interval at seconds, not milliseconds.

mod gauges;
mod names;

pub use gauges::{QueueGauges, QueueGaugesHandle, DEFAULT_SAMPLE_INTERVAL};
pub use names::*;

#[cfg(doc)]
use crate::store::EventLog;

/// How many distinct `event_type` label values one source gets before the rest are `other`.
pub const EVENT_TYPES_PER_SOURCE: usize = 64;

/// The longest event type kept as a label value, in bytes; a longer one is `other`.
pub const EVENT_TYPE_MAX_LEN: usize = 128;

/// Registers every metric's unit and help text with the installed recorder (the Prometheus
/// exporter prints them as `# HELP`). Call once, after installing it; recording works
/// without it.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        DELIVERIES,
        Unit::Count,
        "Deliveries answered by the verify layer, the intake or the inbound rate limit, by source, outcome and kind."
    );
    describe_histogram!(
        VERIFY_SECONDS,
        Unit::Seconds,
        "Time the scheme took to check one delivery."
    );
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one group commit (SQLite transaction with fsync, PostgreSQL batch)."
    );
    describe_histogram!(
        STORE_BATCH_SIZE,
        Unit::Count,
        "Operations carried by one group commit."
    );
    describe_gauge!(
        QUEUE_EVENTS,
        Unit::Count,
        "Events the log holds, by source and state (sampled)."
    );
    describe_gauge!(
        QUEUE_OLDEST_READY_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest event waiting to run (sampled)."
    );
    describe_histogram!(
        HANDLER_SECONDS,
        Unit::Seconds,
        "Time of one run of the handler stack."
    );
    describe_counter!(
        HANDLER_OUTCOMES,
        Unit::Count,
        "Attempts by how they were settled."
    );
    describe_counter!(RETRIES, Unit::Count, "Retries scheduled.");
    describe_counter!(
        DEAD_LETTERS,
        Unit::Count,
        "Events moved to the dead letters, by cause."
    );
    describe_histogram!(
        RECEIPT_TO_DONE_SECONDS,
        Unit::Seconds,
        "Time from a delivery's receipt to its end (acked or dead-lettered)."
    );
    describe_counter!(
        PURGED,
        Unit::Count,
        "Records forgotten past their retention."
    );
    describe_histogram!(
        EVENT_TIME_TO_DONE_SECONDS,
        Unit::Seconds,
        "Time from the provider's event time to the end (once ordering lands)."
    );
    describe_counter!(
        STALE_EVENTS,
        Unit::Count,
        "Events skipped as stale (once ordering lands)."
    );
    describe_counter!(
        SKIPPED_EVENTS,
        Unit::Count,
        "Events skipped by an ordering rule (once ordering lands)."
    );
    describe_counter!(
        RECONCILE_SEEN,
        Unit::Count,
        "Changes listed by reconciliation passes."
    );
    describe_counter!(
        RECONCILE_RECOVERED,
        Unit::Count,
        "Missed events recovered by reconciliation."
    );
    describe_gauge!(
        RECONCILE_RECOVERY_RATIO,
        "Recovered over seen in the last reconciliation pass."
    );
    describe_counter!(
        RECONCILE_GAPS,
        Unit::Count,
        "Stretches reconciliation could not cover."
    );
    describe_counter!(
        SCHEMA_DRIFT_EVENTS,
        Unit::Count,
        "Events whose payload drifted from their typed event, by kind."
    );
    describe_counter!(
        SCHEMA_DRIFT_SHAPES,
        Unit::Count,
        "New shapes of schema drift."
    );
}
