//! TEMPORARY: the subset of `store::Replayer`'s API the admin routes use, until the lead's
//! commit ("log suite") lands on `main`; then this file goes and `store::Replayer` is used.

use std::sync::Arc;

use crate::store::{EventFilter, EventLog, ReplayJob, ReplayJobId, ReplayMode, StoreError};

#[derive(Clone)]
pub(crate) struct Replayer {
    log: Arc<dyn EventLog>,
    batch: usize,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer").finish_non_exhaustive()
    }
}

impl Replayer {
    pub(crate) fn new(log: impl EventLog) -> Self {
        Self {
            log: Arc::new(log),
            batch: 500,
        }
    }

    pub(crate) fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    pub(crate) fn rate(self, _events_per_second: u32) -> Self {
        self
    }

    pub(crate) async fn start(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        self.log.create_replay(filter, mode).await
    }

    pub(crate) async fn run(
        &self,
        job: ReplayJobId,
        progress: &mut (dyn FnMut(&ReplayJob) + Send),
    ) -> Result<ReplayJob, StoreError> {
        loop {
            let now = self.log.step_replay(job, self.batch).await?;
            progress(&now);
            if now.is_over() {
                return Ok(now);
            }
        }
    }
}
