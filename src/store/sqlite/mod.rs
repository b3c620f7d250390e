//! The embedded backend: [`SqliteStore`], one SQLite database file holding a durable
//! [`Queue`](crate::store::Queue) and an [`IdempotencyStore`](crate::store::IdempotencyStore),
//! sharing one writer thread with group commit.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::{Duration, SystemTime};
//! use hookdock::store::{Claim, Fingerprint, IdempotencyKey, IdempotencyStore, Queue, QueueOptions};
//! use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
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
//!     // The claim is on the event's own record: no second insert.
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
//! # How it stores
//!
//! - **Durability.** The database runs in WAL mode with `synchronous=FULL`: a call that
//!   changes anything (enqueue, lease, ack, claim, ...) resolves only after the transaction
//!   holding it is committed and the WAL is fsynced
//!   ([`Durability::Fsync`](crate::store::Durability::Fsync)).
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
//! - **Readers on their own connection.** [`stats`](crate::store::Queue::stats),
//!   [`dead_letters`](crate::store::Queue::dead_letters) and the
//!   [event log](crate::store::EventLog)'s listing, lookups, counts and job reads run on a
//!   reader thread with its own connection and never wait for the writer. A lookup by key
//!   there finds the records whose keys still wait in the writer's memory (below) by a short
//!   range of the primary key past `keyed_through`.
//! - **The event log adds nothing to the hot path.** [`SqliteQueue`] implements
//!   [`EventLog`](crate::store::EventLog) over the same records, with no index of its own:
//!   an enqueue writes what it wrote before (two more columns of its row), a lease, an ack or a
//!   dead letter sets a time on the row it already rewrites. Listing walks the primary key
//!   newest first; a replay job's step is one writer transaction that makes its batch ready
//!   and moves the job's cursor together.
//! - **Failures.** A failing write (disk full, read-only file, I/O error) is answered with
//!   [`StoreError::Unavailable`] carrying the SQLite error as its source; a record that
//!   contradicts the schema with [`StoreError::Internal`]; nothing panics. Once the store is
//!   closed (or its writer thread is gone), every call answers [`StoreError::Closed`].
//! - **A deleted or replaced file.** After each commit, before answering anyone, the writer
//!   checks that the database path and its `-wal` still name the files it opened. If
//!   someone deleted or replaced them (writes would go to a file nobody will read again),
//!   the batch and everything after it are answered [`StoreError::Unavailable`] (intake:
//!   `503`), and the error is logged; a restart opens whatever is at the path then.
//! - **Forgetting.** Between batches, about once a second, the writer deletes a chunk of the
//!   records whose retention has passed ([`SqliteOptions::retention`]), oldest first.
//! - **New keys wait outside the key index.** Providers' delivery ids are random; inserting
//!   each into the unique `(source, event_id)` index as it arrives would dirty one index page
//!   per event in every group commit. A new record is written with `keyed = 0`, outside the
//!   partial index `hookdock_events_key`, and the writer keeps its key in memory; every lookup
//!   by key asks that memory first, then the index, so a resend is a duplicate either way.
//!   Once [`SqliteOptions::key_merge_batch`] keys wait (262,144 by default), the writer
//!   merges them into the index in key order, in eight transactions between batches, and the
//!   index writes each of its pages once for all the keys landing on it; at close and at
//!   open (for what a crash left behind) one transaction merges whatever waits.
//! - **Health.** [`check_writable`](crate::store::Queue::check_writable) is a write like the
//!   others, through the writer thread and its group commit, with no table of its own: in a
//!   savepoint it inserts one page of zeroes under a body id no record has (so a fresh page
//!   must come from the freelist or the end of the file) and rolls that back, then takes one
//!   fencing token so that the commit writes and fsyncs a page. A full disk or a reached
//!   [`SqliteOptions::max_size`] answers [`StoreError::Unavailable`] ("database or disk is
//!   full"), a writer thread that is gone [`StoreError::Closed`], and once acks or purges have
//!   given pages back it answers `Ok` again by itself. (Rewriting an existing row would not
//!   do: it needs no new page, so it succeeds on a full database.) On a full database, a
//!   lease needs new index pages too, so workers may not drain it until something frees
//!   space: settle what is already leased, or raise the cap.
//! - **One store per file.** Because of that memory, a file is served by one store at a
//!   time: [`SqliteStore::open`] takes an exclusive lock on `<database>.hookdock-lock` (released
//!   by the operating system if the process dies), waiting up to
//!   [`SqliteOptions::busy_timeout`] for a previous store to let go, then fails with
//!   [`StoreError::Unavailable`]. Clone the store to share it within a process; use the
//!   PostgreSQL backend for many processes.
//!
//! # Schema
//!
//! Schema version 7, kept in `PRAGMA user_version`. [`SqliteStore::open`] creates it in an
//! empty file, migrates a version 1 file (hookdock 0.1), a version 2 to 6 file in one
//! transaction (versions 3 to 7 only add columns, indexes and tables: no row is rewritten),
//! and refuses a file with a newer version. Times are Unix microseconds.
//!
//! `hookdock_events`: one record per key, `(source, event_id)`: the stored event with its
//! delivery state, and the claim of the worker's dedupe layer on it.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | `INTEGER PRIMARY KEY` | the [`MessageId`](crate::store::MessageId); never reused |
//! | `source` | `TEXT` | the event's source, such as `github` |
//! | `event_id` | `TEXT` | the provider's delivery id (or the body hash); unique with `source` |
//! | `state` | `INTEGER` | `0` waiting (ready or scheduled), `1` leased, `2` dead letter, `3` handled, `4` holds only a claim, `5` skipped as stale |
//! | `available_at` | `INTEGER` | waiting: when it may be leased (`9223372036854775807` while held behind its ordering key's active record; once its turn comes, when it was stored); leased: when the lease expires; `3`..`5`: when the record is forgotten |
//! | `attempts` | `INTEGER` | leases so far (reset to 0 by replay) |
//! | `token` | `INTEGER` | the current lease's fencing token while leased |
//! | `last_error` | `TEXT` | the error recorded by the last retry |
//! | `dead_reason` | `TEXT` | why it is in the dead letters |
//! | `dead_at` | `INTEGER` | when it was dead-lettered |
//! | `received_at` | `INTEGER` | when the receiver got it |
//! | `enqueued_at` | `INTEGER` | when it was stored |
//! | `claim_token` | `INTEGER` | the dedupe claim's fencing token; `NULL`: no claim |
//! | `claim_done` | `INTEGER` | `1` once the claim is completed |
//! | `claim_until` | `INTEGER` | held: the claim's expiry; completed: the end of its retention |
//! | `fingerprint` | `BLOB` | SHA-256 of the body the key was claimed for |
//! | `result` | `BLOB` | the stored result of a completed claim, if any |
//! | `keyed` | `INTEGER` | `1` once the record is in the key index; `0` while its key waits in the writer's memory (the default, `1`, keeps rows inserted by hand in the index) |
//! | `event_type` | `TEXT` | the provider's event type, where the scheme read one |
//! | `origin` | `INTEGER` | where its current run came from: `0` push, `1` replay, `2` reconciliation |
//! | `first_attempt_at` | `INTEGER` | when it was first leased (since stored or last replayed) |
//! | `last_attempt_at` | `INTEGER` | when it was last leased |
//! | `done_at` | `INTEGER` | when it was acked or dead-lettered |
//! | `replays` | `INTEGER` | how many times it was replayed |
//! | `forced_replays` | `INTEGER` | how many of those reset its completed claim |
//! | `order_key` | `TEXT` | its [ordering key](crate::ordering), if any |
//! | `order_pos` | `INTEGER` | its position under that key; `NULL`: none |
//! | `order_mark` | `INTEGER` | its key's watermark when it became the key's active record (it cannot change while it is) |
//!
//! Indexes: `hookdock_events_key UNIQUE (source, event_id) WHERE keyed = 1` (lookups by key;
//! query it with `AND keyed = 1`, or scan, to see the newest records too), `hookdock_events_available (available_at, id) WHERE state < 2` (leasing takes the
//! oldest available rows from its front), `hookdock_events_leased (available_at) WHERE
//! state = 1` (expired leases), `hookdock_events_dead (id) WHERE state = 2` (dead letters),
//! `hookdock_events_forget (available_at) WHERE state >= 3` (what to forget next),
//! `hookdock_events_order (source, order_key, order_pos, id) WHERE order_key IS NOT NULL` (an
//! ordering key's records in order, whatever their state, so that leases and settles do not
//! rewrite it; walked from the key's floor).
//!
//! `hookdock_order_keys`: one row per [ordering key](crate::ordering) seen, kept after its
//! events are forgotten (the watermark must outlive them).
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `source`, `order_key` | `TEXT` | the key (primary key) |
//! | `active` | `INTEGER` | the id of its one record that is leased or waiting at its own time; the others are held |
//! | `watermark` | `INTEGER` | the largest position acked |
//! | `floor_pos`, `floor_id` | `INTEGER` | no pending record of the key sorts before this position and id (`floor_id` `NULL`: the key's first record); where a walk over its records starts |
//!
//! `hookdock_event_bodies`: the bytes of each event, written once and deleted with its
//! record. They live apart from the state so that a lease or an ack rewrites a small row
//! rather than a page (or a chain of overflow pages) full of payload.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | `INTEGER PRIMARY KEY` | the `hookdock_events.id` it belongs to |
//! | `headers` | `BLOB` | the kept headers, `name: value\r\n` per field ([`codec::encode_headers`](crate::store::codec::encode_headers)) |
//! | `body` | `BLOB` | the raw body, byte for byte |
//!
//! `hookdock_replay_jobs`: the [event log](crate::store::EventLog)'s durable replay jobs.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | `INTEGER PRIMARY KEY` | the [`ReplayJobId`](crate::store::ReplayJobId) |
//! | `filter` | `TEXT` | the [`EventFilter`](crate::store::EventFilter) as JSON |
//! | `forced` | `INTEGER` | `1` for [`ReplayMode::Forced`](crate::store::ReplayMode::Forced) |
//! | `state` | `INTEGER` | `0` running, `1` finished, `2` cancelled |
//! | `through_id` | `INTEGER` | the newest message it may select: the newest match at creation (`NULL`: nothing matched) |
//! | `after_id` | `INTEGER` | the cursor: every id up to it was gone through |
//! | `total`, `replayed`, `skipped` | `INTEGER` | matching events at creation; made ready; left alone |
//! | `created_at`, `updated_at` | `INTEGER` | times |
//!
//! `hookdock_reconcile_sources` (version 6): where [reconciliation](crate::reconcile) is,
//! one row per source; [`SqliteQueue`] is its
//! [`CheckpointStore`](crate::store::CheckpointStore). Both saves go through the writer
//! and its group commit like any write. Leadership of a source needs no row: this process is
//! the file's only writer (see *One store per file*), so the store keeps the names led in
//! memory, one leader per name among all of its queues, released when the
//! [`Leadership`](crate::store::Leadership) is dropped.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `name` | `TEXT PRIMARY KEY` | the source's name |
//! | `checkpoint` | `TEXT` | the reconciler's checkpoint, opaque, byte for byte; `NULL` before the first |
//! | `checkpoint_at` | `INTEGER` | when it was saved |
//! | `report` | `TEXT` | the last [`PassReport`](crate::reconcile::PassReport), as JSON |
//! | `report_at` | `INTEGER` | when it was saved |
//!
//! `hookdock_state`: a single row with the next message id, the next fencing token and the
//! number of waiting messages (what the depth limit counts), read and written inside each
//! write transaction, and recomputed from the records at every open; and `keyed_through`,
//! the id up to which every record is in the key index (a merge finds the others by a range of
//! the primary key).
//!
//! Inspect a live database with the `sqlite3` shell, for example
//! `sqlite3 hookdock.db "SELECT id, source, event_id, state, attempts FROM hookdock_events"`,
//! or, with the payloads,
//! `sqlite3 hookdock.db "SELECT source, event_id, body FROM hookdock_events JOIN hookdock_event_bodies USING (id) WHERE state = 2"`.

mod checkpoint;
mod engine;
mod error;
mod events;
mod filter;
mod idempotency;
mod lock;
mod log;
mod options;
mod order_keys;
mod probe;
mod queue;
mod reader;
mod reconcile_sources;
mod replay_jobs;
mod schema;
mod tail;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use idempotency::SqliteIdempotencyStore;
pub use options::{SqliteOptions, WriterStats};
pub use queue::SqliteQueue;
pub use tail::DEFAULT_KEY_MERGE_BATCH;

use crate::clock::SharedClock;
use crate::store::codec::{duration_micros, to_micros};
use crate::store::{QueueOptions, Signal, StoreError, Wake};
use error::SqliteError;

/// One SQLite database holding hookdock's records, with the writer thread, the reader
/// thread and the checkpoint thread that serve it.
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
    /// The retention period, in microseconds.
    retention: i64,
    writer: engine::Handle,
    reader: reader::ReaderHandle,
    closed: AtomicBool,
    counters: Arc<engine::Counters>,
    signal: Signal,
    /// The reconciliation sources led in this process.
    leaders: reconcile_sources::Leaders,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date and
    /// starts the writer, reader and checkpoint threads.
    ///
    /// This does blocking file I/O; call it at start-up (or in `spawn_blocking`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the file cannot be opened; [`StoreError::Internal`] if
    /// it is not a database, WAL mode is unavailable (as for `:memory:`), or its schema is
    /// newer than this version knows. The message says which.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Ok(Self::open_inner(path.as_ref(), options)?)
    }

    fn open_inner(path: &Path, options: SqliteOptions) -> Result<Self, SqliteError> {
        let path = path.to_path_buf();
        if lock::in_memory(&path) {
            return Err(SqliteError::NoWal {
                path,
                mode: "memory".to_owned(),
            });
        }
        let lock = lock::acquire(&path, options.busy_timeout)?;
        let writer_conn = schema::open_writer(&path, &options)?;
        let identity = watch::FileIdentity::capture(&path)
            .map_err(|e| SqliteError::Thread("file check", e))?;
        let reader_conn = schema::open_reader(&path, &options)?;
        let checkpoint_conn = schema::open(&path, &options)?;
        let checkpointer = checkpoint::spawn(checkpoint_conn, options.checkpoint_interval)?;
        let reader = reader::spawn(reader_conn)?;
        let counters = Arc::new(engine::Counters::default());
        let writer = engine::spawn(
            writer_conn,
            &options,
            checkpointer,
            identity,
            lock,
            Arc::clone(&counters),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                retention: duration_micros(options.retention),
                clock: options.clock,
                writer,
                reader,
                closed: AtomicBool::new(false),
                counters,
                signal: Signal::default(),
                leaders: reconcile_sources::Leaders::default(),
            }),
        })
    }

    /// A queue in this database, sharing its writer.
    pub fn queue(&self, options: QueueOptions) -> SqliteQueue {
        SqliteQueue::new(self.clone(), options)
    }

    /// An idempotency store in this database, sharing its writer and its records.
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
        self.inner.writer.close().await;
    }

    /// What the writer thread has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.counters.snapshot()
    }

    fn now(&self) -> i64 {
        to_micros(self.inner.clock.now())
    }

    fn retention(&self) -> i64 {
        self.inner.retention
    }

    /// The set of reconciliation sources led in this process, shared by every queue.
    fn leaders(&self) -> reconcile_sources::Leaders {
        Arc::clone(&self.inner.leaders)
    }

    /// Wakes this process's idle workers.
    fn wake(&self) {
        self.inner.signal.notify();
    }

    fn wake_signal(&self) -> Box<dyn Wake> {
        self.inner.signal.subscribe()
    }

    /// Sends one write to the writer and waits for its committed outcome.
    async fn call<W: engine::Write>(&self, write: W) -> Result<W::Output, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner.writer.call(write).await
    }

    /// Runs a read on the reader connection.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner.reader.run(f).await
    }

    /// Forgets what passed its retention, a chunk per transaction.
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.call(events::Purge::at(self.now())).await?;
            total += n;
            if n < crate::store::sql::PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests;
