//! The checkpoint thread: copies the WAL back into the database on its own connection, off
//! the commit path.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;

/// Starts the checkpoint thread. The writer nudges it after each commit through the
/// returned sender (a full channel means a nudge is already pending); it reports the WAL size
/// it saw, in pages, through the returned counter. The thread stops when every sender is
/// dropped.
pub(crate) fn spawn(
    conn: Connection,
    interval: Duration,
) -> Result<(mpsc::SyncSender<()>, Arc<AtomicI64>), StoreError> {
    let (nudge, nudged) = mpsc::sync_channel::<()>(1);
    let wal_pages = Arc::new(AtomicI64::new(0));
    let report = Arc::clone(&wal_pages);
    std::thread::Builder::new()
        .name("hookdock-sqlite-checkpoint".into())
        .spawn(move || {
            while nudged.recv().is_ok() {
                // PASSIVE never blocks the writer or readers; it copies what it can.
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(pages) => report.store(pages, Ordering::Relaxed),
                    Err(e) => tracing::debug!(error = %e, "hookdock: background checkpoint failed"),
                }
                std::thread::sleep(interval);
            }
        })
        .map_err(StoreError::storage)?;
    Ok((nudge, wal_pages))
}
