//! The SQLite backend's own failures, and how each maps into [`StoreError`].

use std::path::PathBuf;

use rusqlite::ErrorCode;

use crate::store::StoreError;

const BACKEND: &str = "sqlite";

/// What can go wrong in this backend; always reported as a [`StoreError`] that keeps it as
/// the source.
#[derive(Debug, thiserror::Error)]
pub(super) enum SqliteError {
    /// SQLite itself failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// The database file (or its WAL) was deleted or replaced while the store had it open:
    /// writes would go to a file nobody will ever read again.
    #[error(
        "the database file {path} (or its -wal file) was deleted or replaced while open; \
         refusing to acknowledge anything written to it (restart to open the file now at that \
         path)"
    )]
    FileReplaced { path: PathBuf },
    /// The file cannot run in WAL mode (such as `:memory:` or some network file systems).
    #[error(
        "SQLite database {path} cannot use WAL mode (journal mode is {mode:?}); hookdock \
         needs a file on a local disk"
    )]
    NoWal { path: PathBuf, mode: String },
    /// The file has hookdock tables but no schema version: not written by hookdock.
    #[error("{path} has hookdock tables but no schema version; refusing to touch it")]
    Unversioned { path: PathBuf },
    /// The file was written by a newer hookdock.
    #[error(
        "{path} has hookdock schema version {found}, newer than the {known} this version of \
         hookdock knows; upgrade hookdock to open it"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// Another store (in this process or another) has the database open.
    #[error(
        "the SQLite database {path} is in use by another hookdock store; one store serves a \
         file (share it by cloning the SqliteStore; for many processes use PostgreSQL)"
    )]
    InUse { path: PathBuf },
    /// The lock file beside the database could not be created or locked.
    #[error("could not lock {0}")]
    Lock(PathBuf, #[source] std::io::Error),
    /// A thread of the store could not be started.
    #[error("could not start the {0} thread")]
    Thread(&'static str, #[source] std::io::Error),
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> Self {
        let transient = match &e {
            SqliteError::Sql(e) => is_transient(e),
            SqliteError::FileReplaced { .. }
            | SqliteError::Thread(..)
            | SqliteError::InUse { .. }
            | SqliteError::Lock(..) => true,
            SqliteError::NoWal { .. }
            | SqliteError::Unversioned { .. }
            | SqliteError::SchemaTooNew { .. } => false,
        };
        if transient {
            StoreError::unavailable(BACKEND, e)
        } else {
            StoreError::internal(BACKEND, e)
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        SqliteError::Sql(e).into()
    }
}

/// SQLite errors that another try may not meet: the disk (full, failing, read-only for now),
/// locks held by another process, memory.
fn is_transient(e: &rusqlite::Error) -> bool {
    match e.sqlite_error_code() {
        Some(code) => matches!(
            code,
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OperationInterrupted
        ),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorKind;

    #[test]
    fn disk_and_lock_failures_are_transient_the_rest_internal() {
        let sql = |code| {
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("x".into()))
        };
        let full: StoreError = sql(rusqlite::ffi::SQLITE_FULL).into();
        assert_eq!(full.kind(), ErrorKind::Transient);
        let busy: StoreError = sql(rusqlite::ffi::SQLITE_BUSY).into();
        assert_eq!(busy.kind(), ErrorKind::Transient);
        let corrupt: StoreError = sql(rusqlite::ffi::SQLITE_CORRUPT).into();
        assert_eq!(corrupt.kind(), ErrorKind::Internal);
        let replaced: StoreError = SqliteError::FileReplaced {
            path: "x.db".into(),
        }
        .into();
        assert_eq!(replaced.kind(), ErrorKind::Transient);
        assert!(
            replaced.to_string().contains("deleted or replaced"),
            "{replaced}"
        );
        let newer: StoreError = SqliteError::SchemaTooNew {
            path: "x.db".into(),
            found: 9,
            known: 2,
        }
        .into();
        assert_eq!(newer.kind(), ErrorKind::Internal);
    }
}
