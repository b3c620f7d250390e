//! Noticing that the database file was deleted or replaced under an open store.
//!
//! An open SQLite connection keeps writing to the file it opened even after that file is
//! unlinked (or renamed over): the writes succeed, and vanish when the process exits. So the
//! writer checks, after each commit and before answering anyone, that the paths of the
//! database and its WAL still name the files it opened; if not, it acknowledges nothing more.

use std::io;
use std::path::{Path, PathBuf};

/// The identity of the database file and its WAL, as opened: device, inode and, where the
/// file system records it, the creation time (an inode number can be reused by a file
/// created after the old one was deleted; its creation time then differs).
#[derive(Debug)]
pub(super) struct FileIdentity {
    path: PathBuf,
    wal: PathBuf,
    db_id: Option<Id>,
    wal_id: Option<Id>,
}

type Id = (u64, u64, Option<std::time::SystemTime>);

impl FileIdentity {
    /// Records what `path` and `path-wal` are now (call it once the WAL exists).
    pub(super) fn capture(path: &Path) -> io::Result<Self> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        Ok(Self {
            db_id: id(path)?,
            wal_id: id(&wal)?,
            path: path.to_owned(),
            wal,
        })
    }

    /// The database path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// `Err` if either path is gone or names another file than it did at [`capture`].
    pub(super) fn check(&self) -> io::Result<()> {
        for (path, was) in [(&self.path, self.db_id), (&self.wal, self.wal_id)] {
            let now = id(path)?;
            if now != was {
                return Err(io::Error::other(format!(
                    "{} now names another file",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn id(path: &Path) -> io::Result<Option<Id>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(Some((meta.dev(), meta.ino(), meta.created().ok())))
}

/// Elsewhere only the file's existence is checked.
#[cfg(not(unix))]
fn id(path: &Path) -> io::Result<Option<Id>> {
    std::fs::metadata(path).map(|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_or_replacing_either_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let wal = dir.path().join("q.db-wal");
        for victim in [&db, &wal] {
            std::fs::write(&db, b"db").unwrap();
            std::fs::write(&wal, b"wal").unwrap();
            let identity = FileIdentity::capture(&db).unwrap();
            assert!(identity.check().is_ok());
            std::fs::remove_file(victim).unwrap();
            assert!(identity.check().is_err(), "{} deleted", victim.display());
            // A new file at the same path is another file (even if it reuses the inode).
            std::thread::sleep(std::time::Duration::from_millis(5));
            std::fs::write(victim, b"new").unwrap();
            #[cfg(unix)]
            assert!(identity.check().is_err(), "{} replaced", victim.display());
        }
    }
}
