//! The embedded backend: a durable [`Queue`](crate::queue::Queue) and
//! [`IdempotencyStore`](crate::idempotency::IdempotencyStore) in one SQLite database file,
//! sharing one writer thread with group commit.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::{Duration, SystemTime};
//! use hookdock::idempotency::{Claim, Fingerprint, IdempotencyKey, IdempotencyStore};
//! use hookdock::queue::{Queue, QueueOptions};
//! use hookdock::sqlite::{SqliteOptions, SqliteStore};
//! use hookdock::RawEvent;
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("hookdock.db");
//!
//! let store = SqliteStore::open(&path, SqliteOptions::default())?;
//! let queue = store.queue(QueueOptions::default().max_depth(1_000_000));
//! let dedupe = store.idempotency(); // same file, same writer, same group commits
//!
//! // Resolves once the event is committed and fsynced.
//! queue.enqueue(RawEvent::new("github", "d-1", SystemTime::now(), "{}")).await?;
//!
//! for leased in queue.lease(100, Duration::from_secs(30)).await? {
//!     let key = IdempotencyKey::new(leased.event.source.clone(), leased.event.id.clone());
//!     let fp = Fingerprint::of(&leased.event.body);
//!     if let Claim::Acquired(token) = dedupe.claim(&key, &fp, Duration::from_secs(30)).await? {
//!         // ... handle the event ...
//!         dedupe.complete(&key, token, None).await?;
//!     }
//!     queue.ack(&leased.lease).await?;
//! }
//! assert_eq!(queue.stats().await?.depth(), 0);
//! store.close().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! For a queue alone, [`SqliteQueue::open`] opens the file with default options.
//!
//! # How it stores
//!
//! - **Durability.** The database runs in WAL mode with `synchronous=FULL`: a call that
//!   changes anything (enqueue, lease, ack, claim, ...) resolves only after the transaction
//!   holding it is committed and the WAL is fsynced
//!   ([`Durability::Fsync`](crate::queue::Durability::Fsync)).
//! - **Group commit.** One writer thread owns the only writing connection. Calls send their
//!   operation over a bounded channel and await a oneshot; the writer takes every operation
//!   that is waiting (up to [`SqliteOptions::max_batch`]), runs them all in one transaction,
//!   commits once (one fsync for the whole batch), then answers each caller. Under load the
//!   cost of the fsync is shared by everything that arrived while the previous one ran. If a
//!   batch fails as a whole (disk full, I/O error), it is rolled back and every operation in
//!   it is run again in a transaction of its own, so one failing write never takes its
//!   neighbours down; each caller gets its own outcome.
//! - **Checkpoints off the commit path.** The writer never checkpoints automatically
//!   (`wal_autocheckpoint=0`); a separate thread on its own connection runs `PASSIVE`
//!   checkpoints shortly after commits, which copy the WAL back into the database without
//!   blocking the writer. Only when the WAL has grown past
//!   [`SqliteOptions::wal_restart_pages`] (the background checkpoint cannot catch up with a
//!   writer that never pauses) does the writer run one checkpoint itself between two batches,
//!   so that the WAL starts over; `journal_size_limit` then trims the file.
//! - **Readers on their own connection.** [`stats`](crate::queue::Queue::stats) and
//!   [`dead_letters`](crate::queue::Queue::dead_letters) run on a reader thread with its own
//!   connection and never wait for the writer.
//! - **Failures.** A failing write (disk full, read-only file, I/O error) is answered with
//!   [`StoreError::Storage`] carrying the SQLite error as its source; nothing panics. Once the
//!   store is closed (or its writer thread is gone), every call answers
//!   [`StoreError::Closed`].
//!
//! # Schema
//!
//! Schema version 1 (kept in `PRAGMA user_version`; [`SqliteStore::open`] creates it in an
//! empty file and refuses a file with a newer version). Times are Unix milliseconds.
//!
//! `hookdock_events`: one row per stored event, with its identity and delivery state. An
//! ack marks the row done (`state = 3`); done rows are invisible to every call and are
//! deleted in bulk a little later (when a few thousand have gathered, or on close), which
//! spreads the cost of removing a random key from the unique index over many rows.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | `INTEGER PRIMARY KEY` | the [`MessageId`](crate::queue::MessageId); never reused |
//! | `source` | `TEXT` | the event's source, such as `github` |
//! | `event_id` | `TEXT` | the provider's delivery id (or the body hash); `UNIQUE(source, event_id)` |
//! | `state` | `INTEGER` | `0` waiting (ready or scheduled), `1` leased, `2` dead letter, `3` acked (about to be deleted) |
//! | `available_at` | `INTEGER` | waiting: when it may be leased; leased: when the lease expires |
//! | `attempts` | `INTEGER` | leases so far (reset to 0 by replay) |
//! | `token` | `INTEGER` | the current lease's fencing token while leased |
//! | `last_error` | `TEXT` | the error recorded by the last retry |
//! | `dead_reason` | `TEXT` | why it is in the dead letters |
//! | `dead_at` | `INTEGER` | when it was dead-lettered |
//! | `received_at` | `INTEGER` | when the receiver got it |
//! | `enqueued_at` | `INTEGER` | when it was stored |
//!
//! Indexes: `hookdock_events_available (available_at, id) WHERE state < 2` (leasing takes the
//! oldest available rows from its front), `hookdock_events_leased (available_at) WHERE
//! state = 1` (expired leases), `hookdock_events_dead (id) WHERE state = 2` (dead letters),
//! `hookdock_events_done (id) WHERE state = 3` (rows to delete).
//!
//! `hookdock_event_bodies`: the bytes of each event, written once and deleted with its row.
//! They live apart from the state so that a lease or an ack rewrites a small row rather than
//! a page (or a chain of overflow pages) full of payload.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | `INTEGER PRIMARY KEY` | the `hookdock_events.id` it belongs to |
//! | `headers` | `BLOB` | the kept headers, `name: value\r\n` per field ([`encode_headers`](crate::event::encode_headers)) |
//! | `body` | `BLOB` | the raw body, byte for byte |
//!
//! `hookdock_idempotency`: one row per claimed key, in claim order (so completing a key
//! rewrites a recent page rather than a random one).
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | `INTEGER PRIMARY KEY` | row id |
//! | `source`, `event_id` | `TEXT` | the [`IdempotencyKey`](crate::idempotency::IdempotencyKey); `UNIQUE(source, event_id)` |
//! | `fingerprint` | `BLOB` | SHA-256 of the body the key was claimed for |
//! | `token` | `INTEGER` | the current claim's fencing token |
//! | `state` | `INTEGER` | `0` in progress, `1` completed |
//! | `until` | `INTEGER` | in progress: claim expiry; completed: end of retention |
//! | `result` | `BLOB` | the stored result of a completed key, if any |
//!
//! Index: `hookdock_idempotency_until (until)` for purging.
//!
//! `hookdock_state`: a single row with the next message id, the next fencing token and the
//! number of waiting messages (what the depth limit counts), read and written inside each
//! write transaction.
//!
//! Inspect a live database with the `sqlite3` shell, for example
//! `sqlite3 hookdock.db "SELECT id, source, event_id, state, attempts FROM hookdock_events"`,
//! or, with the payloads,
//! `sqlite3 hookdock.db "SELECT source, event_id, body FROM hookdock_events JOIN hookdock_event_bodies USING (id) WHERE state = 2"`.

mod checkpoint;
mod idempotency;
mod queue;
mod reader;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::clock::{unix_millis, SharedClock};
use crate::error::StoreError;
use crate::queue::QueueOptions;
use crate::Clock;

pub use idempotency::SqliteIdempotencyStore;
pub use queue::SqliteQueue;

use writer::{Msg, Request, Response};

/// Settings of a [`SqliteStore`]. Every setting has a sensible default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    clock: SharedClock,
    max_batch: usize,
    channel_capacity: usize,
    cache_size_kib: u32,
    page_size: u32,
    checkpoint_interval: Duration,
    wal_restart_pages: u32,
    journal_size_limit: u64,
    max_size: Option<u64>,
    busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            clock: SharedClock::default(),
            max_batch: 1024,
            channel_capacity: 8192,
            cache_size_kib: 2 * 1024,
            page_size: 4096,
            checkpoint_interval: Duration::from_millis(100),
            wal_restart_pages: 16 * 1024,
            journal_size_limit: 64 * 1024 * 1024,
            max_size: None,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteOptions {
    /// The defaults: system clock, batches of up to 1024 operations, a channel of 8192.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads time (lease expiry, retry times, retention) from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Most operations committed in one transaction (at least 1). Default 1024. `1` turns
    /// group commit off: one transaction and one fsync per operation (for comparison).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// How many operations may wait for the writer (at least 1); callers beyond that wait
    /// for room, so memory stays bounded under any load. Default 8192.
    pub fn channel_capacity(mut self, n: usize) -> Self {
        self.channel_capacity = n.max(1);
        self
    }

    /// Page cache of the writer connection, in KiB. Default 2048 (2 MiB).
    ///
    /// The cache is a bounded buffer that fills as the writer touches pages, so a process's
    /// memory grows until the cache is full and then stays flat. The default is small so that
    /// it fills early: with it, a worker draining a 100,000-event backlog peaks within 10%
    /// of the memory it needs for a 10,000-event one (with 8 MiB, the 10,000-event database
    /// did not fill the cache and the larger backlog peaked 15–26% higher), and intake and
    /// drain throughput measured the same (the hot pages of a queue are its newest rows and
    /// the index leaves next to them; the operating system's page cache holds the rest).
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = kib;
        self
    }

    /// Page size of a database this store creates, in bytes: a power of two from 512 to
    /// 65536 (SQLite ignores any other value and keeps 4096). Default 4096. An existing
    /// database keeps the page size it was created with.
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }

    /// Least time between two background checkpoints. Default 100 ms.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// WAL size, in pages, past which the writer checkpoints once itself between two batches
    /// so that the WAL can start over. Default 16384 (64 MiB with 4 KiB pages).
    pub fn wal_restart_pages(mut self, pages: u32) -> Self {
        self.wal_restart_pages = pages.max(1);
        self
    }

    /// Size the WAL file is trimmed to when it starts over (`journal_size_limit`), in bytes.
    /// Default 64 MiB.
    pub fn journal_size_limit(mut self, bytes: u64) -> Self {
        self.journal_size_limit = bytes;
        self
    }

    /// Caps the database file at about this many bytes (`max_page_count`); writes beyond it
    /// fail with [`StoreError::Storage`] (SQLite's "database or disk is full"), exactly as a
    /// full disk would. Default: no cap.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// How long a connection waits for a lock held by another process. Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// Counters of the writer thread, from [`SqliteStore::writer_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Write transactions committed (each one fsync).
    pub transactions: u64,
    /// Operations answered (enqueues, leases, acks, claims, ...).
    pub operations: u64,
    /// Batches that failed as a whole and were run again one operation per transaction.
    pub failed_batches: u64,
    /// Acked rows deleted by sweeps.
    pub swept: u64,
}

impl WriterStats {
    /// Operations per transaction: how much group commit is saving.
    pub fn mean_batch(&self) -> f64 {
        if self.transactions == 0 {
            0.0
        } else {
            self.operations as f64 / self.transactions as f64
        }
    }
}

/// One SQLite database holding hookdock's queue and idempotency tables, with the writer
/// thread, the reader thread and the checkpoint thread that serve it.
///
/// Cheap to clone: clones, and the [`SqliteQueue`]s and [`SqliteIdempotencyStore`]s made from
/// it, share the same threads, so all their writes are group committed together. The
/// threads stop when the last handle is dropped (after finishing the work already sent) or
/// on [`close`](Self::close).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    clock: SharedClock,
    writer: mpsc::Sender<Msg>,
    reader: reader::ReaderHandle,
    closed: AtomicBool,
    counters: Arc<writer::Counters>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date and
    /// starts the writer, reader and checkpoint threads.
    ///
    /// This does blocking file I/O; call it at start-up (or in `spawn_blocking`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Storage`] if the file cannot be opened or is not a database, WAL mode
    /// is unavailable (as for `:memory:`), or its schema is newer than this version knows.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let writer_conn = schema::open_writer(&path, &options)?;
        let reader_conn = schema::open_reader(&path, &options)?;
        let checkpoint_conn = schema::open(&path, &options)?;
        let checkpointer = checkpoint::spawn(checkpoint_conn, options.checkpoint_interval)?;
        let reader = reader::spawn(reader_conn)?;
        let counters = Arc::new(writer::Counters::default());
        let writer = writer::spawn(writer_conn, &options, checkpointer, Arc::clone(&counters))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                clock: options.clock,
                writer,
                reader,
                closed: AtomicBool::new(false),
                counters,
            }),
        })
    }

    /// A queue in this database, sharing its writer.
    pub fn queue(&self, options: QueueOptions) -> SqliteQueue {
        SqliteQueue::new(self.clone(), options)
    }

    /// An idempotency store in this database with the default retention (72 hours),
    /// sharing its writer.
    pub fn idempotency(&self) -> SqliteIdempotencyStore {
        SqliteIdempotencyStore::new(self.clone())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops the store: work already sent is committed and answered, the WAL is
    /// checkpointed, and every later call (on any handle) answers [`StoreError::Closed`].
    /// Resolves once the writer has finished.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let (done, finished) = oneshot::channel();
        if self.inner.writer.send(Msg::Close(done)).await.is_ok() {
            // An error means the writer is already gone, which is what we wait for.
            let _ = finished.await;
        }
    }

    /// What the writer thread has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.counters.snapshot()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        unix_millis(self.inner.clock.now())
    }

    /// Sends one operation to the writer and waits for its committed outcome.
    pub(crate) async fn call(&self, request: Request) -> Result<Response, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, outcome) = oneshot::channel();
        self.inner
            .writer
            .send(Msg::Op(request, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read on the reader connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner.reader.run(f).await
    }
}

/// Wraps a SQLite error.
pub(crate) fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::storage(e)
}

/// The writer answered with a response of the wrong kind: a bug, reported rather than
/// panicked on.
pub(crate) fn unexpected(what: &'static str) -> StoreError {
    StoreError::storage(format!(
        "internal error: unexpected writer response to {what}"
    ))
}

#[cfg(test)]
mod tests;
