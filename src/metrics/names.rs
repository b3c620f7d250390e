//! One constant per metric name; the table is in the [module docs](super).

/// Counter: deliveries by `source`, `outcome` and `kind`.
pub const DELIVERIES: &str = "hookdock_deliveries_total";
/// Histogram (seconds): the scheme's check of one delivery, by `source`.
pub const VERIFY_SECONDS: &str = "hookdock_verify_seconds";
/// Histogram (seconds): one group commit, by `backend`.
pub const STORE_COMMIT_SECONDS: &str = "hookdock_store_commit_seconds";
/// Histogram (operations): the size of one group commit, by `backend`.
pub const STORE_BATCH_SIZE: &str = "hookdock_store_batch_size";
/// Gauge: events the log holds, by `source` and `state`.
pub const QUEUE_EVENTS: &str = "hookdock_queue_events";
/// Gauge (seconds): the age of the oldest event waiting to run.
pub const QUEUE_OLDEST_READY_AGE_SECONDS: &str = "hookdock_queue_oldest_ready_age_seconds";
/// Histogram (seconds): one run of the handler stack, by `source` and `event_type`.
pub const HANDLER_SECONDS: &str = "hookdock_handler_seconds";
/// Counter: attempts by `source`, `event_type` and `outcome`.
pub const HANDLER_OUTCOMES: &str = "hookdock_handler_outcomes_total";
/// Counter: retries scheduled, by `source`.
pub const RETRIES: &str = "hookdock_retries_total";
/// Counter: events dead-lettered, by `source` and `cause`.
pub const DEAD_LETTERS: &str = "hookdock_dead_letters_total";
/// Histogram (seconds): receipt to acked or dead-lettered, by `source` and `outcome`.
pub const RECEIPT_TO_DONE_SECONDS: &str = "hookdock_receipt_to_done_seconds";
/// Counter: records purged past their retention, by `what`.
pub const PURGED: &str = "hookdock_purged_total";
/// Histogram (seconds): the provider's event time to done, by `source`; recorded once
/// ordering lands.
pub const EVENT_TIME_TO_DONE_SECONDS: &str = "hookdock_event_time_to_done_seconds";
/// Counter: stale events skipped, by `source`; recorded once ordering lands.
pub const STALE_EVENTS: &str = "hookdock_stale_events_total";
/// Counter: events skipped by an ordering rule, by `source`; recorded once ordering lands.
pub const SKIPPED_EVENTS: &str = "hookdock_skipped_events_total";
/// Counter: changes listed by reconciliation passes, by `source`.
pub const RECONCILE_SEEN: &str = "hookdock_reconcile_seen_total";
/// Counter: missed events recovered by reconciliation (stored, or redelivered by the
/// provider on request), by `source`.
pub const RECONCILE_RECOVERED: &str = "hookdock_reconcile_recovered_total";
/// Gauge (ratio): recovered over seen in the last pass, by `source`.
pub const RECONCILE_RECOVERY_RATIO: &str = "hookdock_reconcile_recovery_ratio";
/// Counter: stretches reconciliation could not cover (older than the provider keeps), by
/// `source`.
pub const RECONCILE_GAPS: &str = "hookdock_reconcile_gaps_total";
/// Counter: events whose payload drifted from their typed event, by `source`, `event_type`
/// and `kind` (`unknown`, `missing`); recorded with feature `schema-drift`.
pub const SCHEMA_DRIFT_EVENTS: &str = "hookdock_schema_drift_events_total";
/// Counter: new drift shapes, by `source` and `event_type`; recorded with feature
/// `schema-drift`.
pub const SCHEMA_DRIFT_SHAPES: &str = "hookdock_schema_drift_shapes_total";
