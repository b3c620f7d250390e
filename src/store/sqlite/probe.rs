//! The writability probe behind [`Queue::check_writable`](crate::store::Queue::check_writable).
//!
//! It is a write like any other: sent to the writer thread and group committed with whatever
//! else is waiting, so a writer thread that is gone answers [`StoreError::Closed`], a
//! replaced file answers [`StoreError::Unavailable`], and a commit or fsync that fails shows.
//! It proves two things in the batch's transaction, without any table of its own:
//!
//! 1. **A page can be had.** Inside a savepoint it inserts one page worth of zeroes into
//!    `hookdock_event_bodies` under id `-1` (no record has a negative id), then rolls the
//!    savepoint back. The blob needs a fresh overflow page, which comes from the freelist or
//!    the end of the file; when neither can give one (the [size cap](super::SqliteOptions::max_size)
//!    is reached, the disk is full) SQLite answers `SQLITE_FULL`, and the probe answers that
//!    error as its own, leaving the rest of the batch alone.
//! 2. **A commit reaches the disk.** It takes one fencing token from `hookdock_state`
//!    (tokens only need to be unique, a gap is harmless), so the transaction has a changed
//!    page to write to the WAL and fsync at commit, even when the probe is alone in its batch.
//!    (Rewriting a row with the same values would not do: SQLite leaves a page it would not
//!    change clean.)
//!
//! What it cannot promise: that the next event fits. An event needs a page or a few more
//! than the probe takes, so with one free page left the probe passes and a large enqueue may
//! still answer `503`.

use rusqlite::{params, ErrorCode};

use super::engine::{Answer, Tx, Write};
use crate::store::StoreError;

/// The id the probe's blob is written under, then rolled back: no record has it.
const PROBE_ID: i64 = -1;

/// Checks that the database can take a write now.
pub(super) struct Probe;

impl Write for Probe {
    type Output = ();

    // Its only effect is its answer: a caller that went away needs no probe.
    const ONLY_FOR_CALLER: bool = true;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<()>> {
        let page_size: i64 = tx
            .conn
            .prepare_cached("PRAGMA page_size")?
            .query_row([], |r| r.get(0))?;
        tx.conn
            .prepare_cached("SAVEPOINT hookdock_probe")?
            .execute([])?;
        let inserted = tx
            .conn
            .prepare_cached(
                "INSERT INTO hookdock_event_bodies (id, headers, body) VALUES (?1, x'', zeroblob(?2))",
            )?
            .execute(params![PROBE_ID, page_size]);
        if tx.conn.is_autocommit() {
            // SQLite gave up the whole transaction (it may, on a full disk): fail the batch,
            // so that the engine runs each of its writes again in a transaction of its own.
            return Err(inserted.err().unwrap_or_else(|| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("the probe's transaction was rolled back".to_owned()),
                )
            }));
        }
        tx.conn
            .prepare_cached("ROLLBACK TO hookdock_probe")?
            .execute([])?;
        tx.conn
            .prepare_cached("RELEASE hookdock_probe")?
            .execute([])?;
        match inserted {
            Ok(_) => {
                tx.state.token();
                Ok(Ok(()))
            }
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DiskFull) => {
                Ok(Err(StoreError::from(e)))
            }
            Err(e) => Err(e),
        }
    }
}
