//! The conformance suites on the in-memory backends, directly and behind `Arc<dyn _>`.

mod queue {
    hookdock::queue_conformance!(hookdock::testing::queue_suite::MemoryQueueHarness);
}

mod queue_dyn {
    use hookdock::testing::queue_suite::{DynQueueHarness, MemoryQueueHarness};
    hookdock::queue_conformance!(DynQueueHarness(MemoryQueueHarness));
}

mod idempotency {
    hookdock::idempotency_conformance!(
        hookdock::testing::idempotency_suite::MemoryIdempotencyHarness
    );
}

mod idempotency_dyn {
    use hookdock::testing::idempotency_suite::{DynIdempotencyHarness, MemoryIdempotencyHarness};
    hookdock::idempotency_conformance!(DynIdempotencyHarness(MemoryIdempotencyHarness));
}
