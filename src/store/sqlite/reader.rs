//! The reader thread: its own connection for statistics and dead-letter listings, so reads
//! never wait behind the writer's batches.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::error::SqliteError;
use crate::store::StoreError;

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// Sends reads to the reader thread.
pub(super) struct ReaderHandle {
    jobs: mpsc::Sender<Job>,
}

/// Starts the reader thread.
pub(super) fn spawn(conn: Connection) -> Result<ReaderHandle, SqliteError> {
    let (jobs, mut rx) = mpsc::channel::<Job>(64);
    std::thread::Builder::new()
        .name("hookdock-reader".into())
        .spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                job(&conn);
            }
        })
        .map_err(|e| SqliteError::Thread("reader", e))?;
    Ok(ReaderHandle { jobs })
}

impl ReaderHandle {
    /// Runs `f` on the reader connection and returns its result.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }
}
