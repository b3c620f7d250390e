//! The conformance suites on the in-memory backend, directly and behind `Arc<dyn _>`.

mod direct {
    hookdock::store_conformance!(hookdock::testing::MemoryHarness);
}

mod dyn_objects {
    use hookdock::testing::{DynHarness, MemoryHarness};
    hookdock::store_conformance!(DynHarness(MemoryHarness));
}
