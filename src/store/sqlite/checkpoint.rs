//! The checkpoint thread: copies the WAL back into the database on its own connection, off
//! the commit path.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::error::SqliteError;

/// Frames left behind by a checkpoint below which the thread waits for the next nudge
/// instead of going again at once.
const CAUGHT_UP_FRAMES: i64 = 256;

/// The writer's handle on the checkpoint thread.
pub(super) struct Checkpointer {
    /// Wakes the thread after a commit; dropping it stops the thread.
    pub(super) nudge: mpsc::SyncSender<()>,
    /// The WAL size, in frames, the last checkpoint saw.
    pub(super) wal_frames: Arc<AtomicI64>,
    /// The thread, to wait for it.
    pub(super) thread: JoinHandle<()>,
}

/// Starts the checkpoint thread. The writer nudges it after each commit through the
/// returned sender (a full channel means a nudge is already pending); it reports the WAL size
/// it saw, in frames, through the returned counter. The thread stops as soon as the sender is
/// dropped (join the returned handle to wait for it).
///
/// After a nudge it runs `PASSIVE` checkpoints back to back until it has caught up with the
/// writer (so the writer's own restart checkpoint finds little left to copy), then rests for
/// `interval` so that a lightly loaded store is not checkpointed after every commit.
pub(super) fn spawn(conn: Connection, interval: Duration) -> Result<Checkpointer, SqliteError> {
    let (nudge, nudged) = mpsc::sync_channel::<()>(1);
    let wal_frames = Arc::new(AtomicI64::new(0));
    let report = Arc::clone(&wal_frames);
    let thread = std::thread::Builder::new()
        .name("hookdock-ckpt".into())
        .spawn(move || {
            let mut pending = false;
            loop {
                if !pending && nudged.recv().is_err() {
                    return;
                }
                catch_up(&conn, &report);
                // Rest, remembering a nudge, but leave at once when the writer is gone.
                pending = false;
                let until = Instant::now() + interval;
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match nudged.recv_timeout(left) {
                        Ok(()) => pending = true,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
        })
        .map_err(|e| SqliteError::Thread("checkpoint", e))?;
    Ok(Checkpointer {
        nudge,
        wal_frames,
        thread,
    })
}

/// Runs `PASSIVE` checkpoints until the WAL is (nearly) all copied.
fn catch_up(conn: &Connection, report: &AtomicI64) {
    loop {
        // PASSIVE never blocks the writer or readers; it copies what it can.
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((log, copied)) => {
                report.store(log, Ordering::Relaxed);
                if log - copied < CAUGHT_UP_FRAMES {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "hookdock: background checkpoint failed");
                return;
            }
        }
    }
}
