//! The reader thread: its own connection for statistics and dead-letter listings, so reads
//! never wait behind the writer's batches.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// Sends reads to the reader thread.
pub(crate) struct ReaderHandle {
    jobs: mpsc::Sender<Job>,
}

/// Starts the reader thread.
pub(crate) fn spawn(conn: Connection) -> Result<ReaderHandle, StoreError> {
    let (jobs, mut rx) = mpsc::channel::<Job>(64);
    std::thread::Builder::new()
        .name("hookdock-reader".into())
        .spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                job(&conn);
            }
        })
        .map_err(StoreError::storage)?;
    Ok(ReaderHandle { jobs })
}

impl ReaderHandle {
    /// Runs `f` on the reader connection and returns its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}
