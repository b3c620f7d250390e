//! Reconciliation's place in `hookdock_reconcile_sources`: the [`CheckpointStore`] of a
//! [`SqliteQueue`].
//!
//! One row per source name holds its checkpoint (the reconciler's opaque text) and its last
//! [`PassReport`] as JSON, each with the time it was written. Saving either is a write like
//! any other: it goes through the writer thread and its group commit, so it resolves once
//! the transaction holding it is committed and fsynced. Reads run on the reader connection.
//!
//! Leadership needs no table: the process that opened the file is its only writer (the
//! store holds `<database>.hookdock-lock`), so leading a source is only a matter of the
//! tasks of this process. The store keeps the names led in a set shared by all of its
//! queues; a [`Leadership`] holds its name there until dropped, and always
//! [`holds`](Leadership::holds).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::engine::{Answer, Tx, Write};
use super::SqliteQueue;
use crate::reconcile::PassReport;
use crate::store::{key, CheckpointStore, Leadership, StoreError};

/// `?1` name, `?2` checkpoint, `?3` now.
const SAVE_CHECKPOINT: &str = "INSERT INTO hookdock_reconcile_sources
        (name, checkpoint, checkpoint_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (name) DO UPDATE SET
        checkpoint = excluded.checkpoint, checkpoint_at = excluded.checkpoint_at";

/// `?1` name, `?2` the report as JSON, `?3` now.
const SAVE_REPORT: &str = "INSERT INTO hookdock_reconcile_sources
        (name, report, report_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (name) DO UPDATE SET report = excluded.report, report_at = excluded.report_at";

/// `?1` name.
const CHECKPOINT: &str = "SELECT checkpoint FROM hookdock_reconcile_sources WHERE name = ?1";

/// Every last report, by name (the `BINARY` collation orders by bytes, as Rust orders
/// strings). A few rows, one per source: a scan of the primary key.
const REPORTS: &str = "SELECT name, report FROM hookdock_reconcile_sources
    WHERE report IS NOT NULL ORDER BY name";

/// The names led in this process, shared by every queue of one store.
pub(super) type Leaders = Arc<Mutex<HashSet<String>>>;

fn lock(leaders: &Mutex<HashSet<String>>) -> MutexGuard<'_, HashSet<String>> {
    // The set stays consistent whatever panicked while it was locked.
    leaders.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stores a source's checkpoint.
struct SaveCheckpoint {
    name: String,
    checkpoint: String,
    now: i64,
}

impl Write for SaveCheckpoint {
    type Output = ();

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<()>> {
        tx.conn.prepare_cached(SAVE_CHECKPOINT)?.execute(params![
            self.name,
            self.checkpoint,
            self.now
        ])?;
        Ok(Ok(()))
    }
}

/// Stores a source's last report.
struct SaveReport {
    name: String,
    json: String,
    now: i64,
}

impl Write for SaveReport {
    type Output = ();

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<()>> {
        tx.conn
            .prepare_cached(SAVE_REPORT)?
            .execute(params![self.name, self.json, self.now])?;
        Ok(Ok(()))
    }
}

/// A leadership held in this process: its name is in the store's set until dropped.
#[derive(Debug)]
struct Held {
    name: String,
    leaders: Leaders,
}

#[async_trait]
impl Leadership for Held {
    async fn holds(&self) -> bool {
        // Only this process writes the file, for as long as it lives.
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.leaders).remove(&self.name);
    }
}

#[async_trait]
impl CheckpointStore for SqliteQueue {
    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        key::validate_source(name)?;
        let name = name.to_owned();
        self.store()
            .read(move |conn| {
                conn.prepare_cached(CHECKPOINT)?
                    .query_row(params![name], |r| r.get::<_, Option<String>>(0))
                    .optional()
                    .map(Option::flatten)
            })
            .await
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: &str) -> Result<(), StoreError> {
        key::validate_source(name)?;
        let write = SaveCheckpoint {
            name: name.to_owned(),
            checkpoint: checkpoint.to_owned(),
            now: self.store().now(),
        };
        self.store().call(write).await
    }

    async fn save_report(&self, report: &PassReport) -> Result<(), StoreError> {
        key::validate_source(&report.source)?;
        let json = serde_json::to_string(report)
            .map_err(|e| StoreError::internal("sqlite", format!("pass report: {e}")))?;
        let write = SaveReport {
            name: report.source.clone(),
            json,
            now: self.store().now(),
        };
        self.store().call(write).await
    }

    async fn reports(&self) -> Result<Vec<PassReport>, StoreError> {
        let rows: Vec<(String, String)> = self
            .store()
            .read(|conn| {
                let mut stmt = conn.prepare_cached(REPORTS)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(name, json)| {
                serde_json::from_str(&json).map_err(|e| {
                    StoreError::internal("sqlite", format!("the last report of {name:?}: {e}"))
                })
            })
            .collect()
    }

    async fn try_lead(&self, name: &str) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        key::validate_source(name)?;
        let leaders = self.store().leaders();
        if !lock(&leaders).insert(name.to_owned()) {
            return Ok(None);
        }
        Ok(Some(Box::new(Held {
            name: name.to_owned(),
            leaders,
        })))
    }
}

#[cfg(test)]
pub(super) fn all_sql() -> Vec<String> {
    [SAVE_CHECKPOINT, SAVE_REPORT, CHECKPOINT]
        .map(str::to_owned)
        .to_vec()
}

/// The reports' listing scans its small table by design.
#[cfg(test)]
pub(super) fn scanning_sql() -> Vec<String> {
    vec![REPORTS.to_owned()]
}
