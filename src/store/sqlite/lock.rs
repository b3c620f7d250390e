//! One store per database file: an exclusive lock on a file beside the database.
//!
//! The writer thread keeps the keys it wrote since the last merge in memory (the
//! [tail](super::tail)); a second store on the same file, in this process or another, would
//! not see them and could store a resend twice. So a store holds an exclusive advisory lock
//! (`flock` on Unix, `LockFileEx` on Windows) on `<database>.hookdock-lock` for as long as its
//! writer thread runs. The operating system releases it when the process dies, so a crash
//! never leaves a stale lock. The lock file is left in place (deleting a lock file races with
//! the next process locking it); it is empty.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::SqliteError;

/// How often [`acquire`] tries again while another store holds the lock.
const POLL: Duration = Duration::from_millis(10);

/// The lock file of the database at `path`: beside it, for a plain path or a `file:` URI.
fn lock_path(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    let file = match text.strip_prefix("file:") {
        // A URI: its path ends where its query begins.
        Some(uri) => PathBuf::from(uri.split(['?', '#']).next().unwrap_or(uri)),
        None => path.to_path_buf(),
    };
    let mut name = file.into_os_string();
    name.push(".hookdock-lock");
    PathBuf::from(name)
}

/// True for the names SQLite opens in memory, which have no file to lock and cannot use WAL.
pub(super) fn in_memory(path: &Path) -> bool {
    let text = path.to_string_lossy();
    text.is_empty()
        || text == ":memory:"
        || (text.starts_with("file:") && (text.contains("mode=memory") || text == "file::memory:"))
}

/// Takes the lock of the database at `path`, waiting up to `timeout` for another store to
/// let go of it.
pub(super) fn acquire(path: &Path, timeout: Duration) -> Result<File, SqliteError> {
    let lock = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|e| SqliteError::Lock(lock.clone(), e))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if started.elapsed() < timeout => {
                std::thread::sleep(POLL);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(SqliteError::InUse {
                    path: path.to_owned(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(SqliteError::Lock(lock, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(
            lock_path(Path::new("/data/hookdock.db")),
            Path::new("/data/hookdock.db.hookdock-lock")
        );
        assert_eq!(
            lock_path(Path::new("file:/data/hookdock.db?mode=rwc")),
            Path::new("/data/hookdock.db.hookdock-lock")
        );
    }

    #[test]
    fn memory_databases_are_recognised() {
        for name in [
            "",
            ":memory:",
            "file::memory:",
            "file:x?mode=memory&cache=shared",
        ] {
            assert!(in_memory(Path::new(name)), "{name:?}");
        }
        for name in ["hookdock.db", "file:hookdock.db?mode=ro", "memory.db"] {
            assert!(!in_memory(Path::new(name)), "{name:?}");
        }
    }
}
