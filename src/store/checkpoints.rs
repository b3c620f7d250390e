//! Where reconciliation keeps its place: one checkpoint and one last report per source, and
//! the leadership that lets one process of many run a source's passes.

use std::fmt;

use async_trait::async_trait;

use super::StoreError;
use crate::reconcile::PassReport;

/// The durable state of reconciliation, one row per source name.
///
/// The [`Reconciler`](crate::reconcile::Reconciler) writes a source's checkpoint after
/// each page it has stored, so a pass killed at any point resumes from the last page whose
/// events are all in the queue. A checkpoint is an opaque string to the store (the
/// reconciler's own JSON); a report is a [`PassReport`].
///
/// # Contract
///
/// Every backend keeps these promises, checked by `testing::checkpoint_suite` (feature
/// `test-util`, part of `store_conformance!`):
///
/// 1. **Durable and exact.** [`save_checkpoint`](Self::save_checkpoint) resolves only once
///    the value is stored at the backend's durability; [`checkpoint`](Self::checkpoint)
///    returns the last value saved for that name, byte for byte, after a restart too.
/// 2. **Per name.** Names are independent; a name never saved has no checkpoint. Names
///    follow the [`key`](super::key) rules for a source; a name that breaks them is
///    refused with [`StoreError::Invalid`].
/// 3. **Reports.** [`save_report`](Self::save_report) keeps the last report of a name;
///    [`reports`](Self::reports) lists the last report of every name, by name.
/// 4. **One leader per name.** Of any number of [`try_lead`](Self::try_lead) calls for one
///    name, across every process sharing the store, at most one holds a [`Leadership`] at a
///    time; the others get `None`. Dropping the leadership (or the end of the process
///    holding it) releases it, and the next `try_lead` takes it.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The last checkpoint saved for `name`, if any.
    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Stores `checkpoint` as the checkpoint of `name`, replacing the previous one.
    async fn save_checkpoint(&self, name: &str, checkpoint: &str) -> Result<(), StoreError>;

    /// Stores `report` as the last report of its source (`report.source`).
    async fn save_report(&self, report: &PassReport) -> Result<(), StoreError>;

    /// The last report of every source, ordered by source name.
    async fn reports(&self) -> Result<Vec<PassReport>, StoreError>;

    /// Takes the leadership of `name` if nobody holds it; `None` if someone does.
    async fn try_lead(&self, name: &str) -> Result<Option<Box<dyn Leadership>>, StoreError>;
}

/// A held leadership (see [`CheckpointStore::try_lead`]); released when dropped.
#[async_trait]
pub trait Leadership: Send + Sync + fmt::Debug {
    /// Whether the leadership is still held (on PostgreSQL: the session holding the advisory
    /// lock is alive). A leader that lost it stops before its next write.
    async fn holds(&self) -> bool;
}

#[async_trait]
impl<T: CheckpointStore + ?Sized> CheckpointStore for std::sync::Arc<T> {
    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        (**self).checkpoint(name).await
    }
    async fn save_checkpoint(&self, name: &str, checkpoint: &str) -> Result<(), StoreError> {
        (**self).save_checkpoint(name, checkpoint).await
    }
    async fn save_report(&self, report: &PassReport) -> Result<(), StoreError> {
        (**self).save_report(report).await
    }
    async fn reports(&self) -> Result<Vec<PassReport>, StoreError> {
        (**self).reports().await
    }
    async fn try_lead(&self, name: &str) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        (**self).try_lead(name).await
    }
}
