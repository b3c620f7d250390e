//! The [`CheckpointStore`] of a [`MemoryQueue`]: checkpoints, reports and leaderships in the
//! store's memory (shared by every queue taken from one [`MemoryStore`](super::MemoryStore)).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::reconcile::PassReport;
use crate::store::{key, CheckpointStore, Leadership, MemoryQueue, StoreError};

#[derive(Debug, Default)]
pub(super) struct State {
    checkpoints: BTreeMap<String, String>,
    reports: BTreeMap<String, PassReport>,
    leaders: Arc<Mutex<HashSet<String>>>,
}

/// A leadership held in memory: the name is in the store's set until dropped.
#[derive(Debug)]
struct Held {
    name: String,
    leaders: Arc<Mutex<HashSet<String>>>,
}

#[async_trait]
impl Leadership for Held {
    async fn holds(&self) -> bool {
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.leaders).remove(&self.name);
    }
}

impl MemoryQueue {
    fn checkpoint_state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.store().inner.checkpoints)
    }
}

#[async_trait]
impl CheckpointStore for MemoryQueue {
    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        key::validate_source(name)?;
        Ok(self.checkpoint_state().checkpoints.get(name).cloned())
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: &str) -> Result<(), StoreError> {
        key::validate_source(name)?;
        self.checkpoint_state()
            .checkpoints
            .insert(name.to_owned(), checkpoint.to_owned());
        Ok(())
    }

    async fn save_report(&self, report: &PassReport) -> Result<(), StoreError> {
        key::validate_source(&report.source)?;
        self.checkpoint_state()
            .reports
            .insert(report.source.clone(), report.clone());
        Ok(())
    }

    async fn reports(&self) -> Result<Vec<PassReport>, StoreError> {
        Ok(self.checkpoint_state().reports.values().cloned().collect())
    }

    async fn try_lead(&self, name: &str) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        key::validate_source(name)?;
        let leaders = Arc::clone(&self.checkpoint_state().leaders);
        if !lock(&leaders).insert(name.to_owned()) {
            return Ok(None);
        }
        Ok(Some(Box::new(Held {
            name: name.to_owned(),
            leaders,
        })))
    }
}
