//! The writer thread: the one connection that writes. It commits every waiting write in one
//! transaction (group commit) and answers each caller with its own typed outcome.
//!
//! A caller wraps a [`Write`] in a [`Call`] with a oneshot for the answer and sends it over a
//! bounded channel ([`Handle::call`]). The thread takes every call that is waiting (up to
//! the batch size), applies them in order in one transaction, commits once (one fsync for
//! all), checks that the database file is still the one it opened, then answers them all. If
//! the transaction fails as a whole (a full disk, an I/O error), it is rolled back and every
//! write is applied again in a transaction of its own, so one failing write never takes its
//! neighbours down. Between batches it forgets what has passed its retention, a chunk at a
//! time, and restarts the WAL when the background checkpoint cannot keep up.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot};

use super::error::SqliteError;
use super::tail::{self, Tail, MERGE_PIECES};
use super::watch::FileIdentity;
use super::{SqliteOptions, WriterStats};
use crate::clock::SharedClock;
use crate::store::codec::to_micros;
use crate::store::StoreError;

/// A write's own answer: an `Err` here (a lost lease, a full queue) is what the caller gets
/// and changes nothing; it does not abort the transaction.
pub(super) type Answer<T> = Result<T, StoreError>;

/// One write operation, applied inside the batch's transaction.
pub(super) trait Write: Send + 'static {
    /// What the caller gets back.
    type Output: Send + 'static;

    /// True for writes whose only effect is for the caller (a lease, a claim): if the caller
    /// has gone away, running them would only hide messages or keys until a lease expires.
    const ONLY_FOR_CALLER: bool = false;

    /// Applies the write. A SQLite error aborts the whole transaction (the engine then runs
    /// each write alone); anything else is this write's answer.
    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<Self::Output>>;
}

/// What the writes of one transaction share.
pub(super) struct Tx<'c> {
    pub(super) conn: &'c Connection,
    /// The counters of `hookdock_state`, read when the transaction began and written back
    /// before it commits if a write changed them.
    pub(super) state: StateRow,
    /// True when the batch failed and writes run one by one: acks then delete their record at
    /// once, which needs no new page, so workers can still drain a full disk.
    pub(super) degraded: bool,
    /// The keys written outside the key index; see [`Tail`].
    pub(super) tail: &'c mut Tail,
}

/// The row of `hookdock_state`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct StateRow {
    pub(super) next_id: i64,
    pub(super) next_token: i64,
    pub(super) live: i64,
}

impl StateRow {
    /// A fresh fencing token.
    pub(super) fn token(&mut self) -> i64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }
}

/// A write and where its answer goes.
pub(super) struct Call<W: Write> {
    write: W,
    reply: oneshot::Sender<Answer<W::Output>>,
    answer: Option<Answer<W::Output>>,
}

/// A [`Call`] of any write, as the thread holds it.
trait Job: Send {
    fn apply(&mut self, tx: &mut Tx<'_>) -> rusqlite::Result<()>;
    /// Forgets the answer of a transaction that was rolled back.
    fn discard(&mut self);
    /// Sends the answer, or `failure` instead.
    fn answer(self: Box<Self>, failure: Option<StoreError>);
    fn abandoned(&self) -> bool;
}

impl<W: Write> Job for Call<W> {
    fn apply(&mut self, tx: &mut Tx<'_>) -> rusqlite::Result<()> {
        self.answer = Some(self.write.apply(tx)?);
        Ok(())
    }

    fn discard(&mut self) {
        self.answer = None;
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let answer = match (failure, self.answer) {
            (Some(failure), _) => Err(failure),
            (None, Some(answer)) => answer,
            (None, None) => Err(StoreError::internal(
                "sqlite",
                "a write was neither applied nor failed",
            )),
        };
        // A caller that went away does not need its answer.
        let _ = self.reply.send(answer);
    }

    fn abandoned(&self) -> bool {
        W::ONLY_FOR_CALLER && self.reply.is_closed()
    }
}

enum Msg {
    Job(Box<dyn Job>),
    /// Finish what was sent, checkpoint, stop, then signal.
    Close(oneshot::Sender<()>),
}

/// The callers' side of the writer thread.
#[derive(Debug, Clone)]
pub(super) struct Handle {
    tx: mpsc::Sender<Msg>,
}

impl Handle {
    /// Sends `write` to the writer thread; resolves with its answer once the transaction
    /// holding it is committed and fsynced.
    pub(super) async fn call<W: Write>(&self, write: W) -> Answer<W::Output> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            write,
            reply,
            answer: None,
        };
        self.tx
            .send(Msg::Job(Box::new(call)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Asks the thread to finish what was sent and stop; resolves once it has.
    pub(super) async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            // An error means the thread is already gone, which is what we wait for.
            let _ = finished.await;
        }
    }
}

/// What the writer has done, for [`WriterStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    transactions: AtomicU64,
    operations: AtomicU64,
    failed_batches: AtomicU64,
    purged: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> WriterStats {
        WriterStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            purged: self.purged.load(Ordering::Relaxed),
        }
    }
}

/// How often the writer forgets what passed its retention (one chunk each time).
const PURGE_EVERY: Duration = Duration::from_secs(1);

/// Starts the writer thread on `conn`.
pub(super) fn spawn(
    conn: Connection,
    options: &SqliteOptions,
    checkpointer: super::checkpoint::Checkpointer,
    identity: FileIdentity,
    lock: std::fs::File,
    counters: Arc<Counters>,
) -> Result<Handle, SqliteError> {
    let (tx, rx) = mpsc::channel(options.channel_capacity);
    let filter = super::filter::KeyFilter::load(&conn, options.key_merge_batch)?;
    let writer = Writer {
        conn,
        rx,
        max_batch: options.max_batch,
        nudge: Some(checkpointer.nudge),
        wal_frames: checkpointer.wal_frames,
        checkpointer: Some(checkpointer.thread),
        wal_restart_pages: i64::from(options.wal_restart_pages),
        counters,
        clock: options.clock.clone(),
        identity,
        broken: false,
        last_purge: Instant::now(),
        tail: Tail::with_filter(filter),
        merge_at: options.key_merge_batch,
        merging: None,
        lock: Some(lock),
    };
    std::thread::Builder::new()
        .name("hookdock-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| SqliteError::Thread("writer", e))?;
    Ok(Handle { tx })
}

struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    /// Wakes the checkpoint thread; dropped to stop it.
    nudge: Option<std_mpsc::SyncSender<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
    wal_frames: Arc<AtomicI64>,
    wal_restart_pages: i64,
    counters: Arc<Counters>,
    clock: SharedClock,
    identity: FileIdentity,
    /// Set once the database file was found deleted or replaced: nothing is acknowledged
    /// after that.
    broken: bool,
    last_purge: Instant,
    tail: Tail,
    /// How many keys the tail holds before a merge starts.
    merge_at: usize,
    /// The merge under way, a piece per housekeeping.
    merging: Option<Merging>,
    /// The store's hold on the database file ([`super::lock`]), let go once the thread is done.
    lock: Option<std::fs::File>,
}

/// A merge of the tail into the key index under way: the tail's record ids when it started,
/// in key order, and how many of them are keyed.
struct Merging {
    ids: Vec<i64>,
    done: usize,
    piece: usize,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(self.max_batch);
        let mut closing: Option<oneshot::Sender<()>> = None;
        while let Some(first) = self.rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Job(job) => batch.push(job),
                    Msg::Close(done) => {
                        // Refuse new work; what is already in the channel is still done.
                        self.rx.close();
                        closing = Some(done);
                    }
                }
                if batch.len() < self.max_batch {
                    next = self.rx.try_recv().ok();
                }
            }
            self.commit(&mut batch);
            self.housekeeping();
        }
        // Every handle is gone or the store was closed: leave a tidy database. Stop the
        // checkpoint thread first so the final checkpoint has the WAL to itself.
        self.nudge = None;
        if let Some(thread) = self.checkpointer.take() {
            let _ = thread.join();
        }
        if !self.broken {
            self.merging = None;
            self.merge();
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        // Another store may open the file as soon as this one has let go of it.
        drop(self.lock.take());
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Runs a batch in one transaction and answers every caller after the commit.
    fn commit(&mut self, batch: &mut Vec<Box<dyn Job>>) {
        batch.retain(|job| !job.abandoned());
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        if self.broken {
            for job in batch.drain(..) {
                job.answer(Some(self.replaced()));
            }
            return;
        }
        // `None`: every job holds its own answer. `Some(failures)`: the batch failed as a
        // whole and each job ran alone; a job that failed again gets its error.
        let timer = crate::metrics_shim::Timer::start();
        let failures: Option<Vec<Option<StoreError>>> =
            match self.transaction(batch.iter_mut(), false) {
                Ok(()) => {
                    self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        operations = batch.len(),
                        "hookdock: group commit failed; retrying its operations one by one"
                    );
                    self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                    Some(
                        batch
                            .iter_mut()
                            .map(|job| {
                                job.discard();
                                let alone = self.transaction(std::iter::once(&mut *job), true);
                                alone.err().map(|e| {
                                    job.discard();
                                    StoreError::from(e)
                                })
                            })
                            .collect(),
                    )
                }
            };
        crate::metrics_shim::committed("sqlite", timer, batch.len());
        // The commit is durable in the file we opened; make sure that is still the file at
        // our path before telling anyone.
        if let Err(changed) = self.identity.check() {
            tracing::error!(
                error = %changed,
                "hookdock: the SQLite database file was deleted or replaced under the store; \
                 nothing more is acknowledged until the process restarts"
            );
            self.broken = true;
            for job in batch.drain(..) {
                job.answer(Some(self.replaced()));
            }
            return;
        }
        self.counters.operations.fetch_add(n, Ordering::Relaxed);
        let mut failures = failures.map(Vec::into_iter);
        for job in batch.drain(..) {
            let failure = failures.as_mut().and_then(Iterator::next).flatten();
            job.answer(failure);
        }
    }

    fn replaced(&self) -> StoreError {
        SqliteError::FileReplaced {
            path: self.identity.path().to_owned(),
        }
        .into()
    }

    /// Between batches: merge the tail into the key index once it is long enough, nudge the
    /// checkpointer, restart the WAL if it ran away, and forget a chunk of what passed its
    /// retention.
    fn housekeeping(&mut self) {
        if self.broken {
            return;
        }
        self.merge_step();
        if let Some(nudge) = &self.nudge {
            let _ = nudge.try_send(());
        }
        if self.wal_frames.load(Ordering::Relaxed) > self.wal_restart_pages {
            // The background checkpoint cannot finish while we keep appending; finish it
            // here, between two batches, so the next transaction starts the WAL over.
            self.wal_frames.store(0, Ordering::Relaxed);
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
        if self.last_purge.elapsed() >= PURGE_EVERY {
            self.last_purge = Instant::now();
            let now = to_micros(self.clock.now());
            let purge = super::events::Purge::at(now);
            match self.transaction_of(&purge) {
                Ok(Ok(n)) => {
                    self.counters.purged.fetch_add(n, Ordering::Relaxed);
                    crate::metrics_shim::purged("events", n);
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "hookdock: purge refused"),
                Err(e) => tracing::debug!(error = %e, "hookdock: purge failed; will retry"),
            }
        }
    }

    /// Starts a merge once the tail is long enough, and runs its next piece: one
    /// transaction keying the next range of the merge's keys in index order. On failure the
    /// piece runs again at the next housekeeping; lookups see the tail meanwhile.
    fn merge_step(&mut self) {
        if self.merging.is_none() {
            if self.tail.len() < self.merge_at {
                return;
            }
            let ids = self.tail.ids_in_key_order();
            let piece = ids.len().div_ceil(MERGE_PIECES).max(1);
            self.merging = Some(Merging {
                ids,
                done: 0,
                piece,
            });
        }
        let Some(mut merging) = self.merging.take() else {
            return;
        };
        let end = (merging.done + merging.piece).min(merging.ids.len());
        let last = end == merging.ids.len();
        // The ids were taken from the tail in one go, so its newest is the merge's newest.
        let through = last.then(|| merging.ids.iter().copied().max().unwrap_or(0));
        let piece = &merging.ids[merging.done..end];
        let mut keyed = 0;
        let result = self.with_transaction(false, |tx| {
            keyed = tail::merge_piece(tx.conn, piece, through)?;
            Ok(())
        });
        match result {
            Ok(()) => {
                tracing::trace!(keys = keyed, "hookdock: merged new keys into the key index");
                match through {
                    Some(through) => self.tail.forget_through(through),
                    None => {
                        merging.done = end;
                        self.merging = Some(merging);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "hookdock: merging new keys into the key index failed; will retry"
                );
                self.merging = Some(merging);
            }
        }
    }

    /// Puts the tail into the key index, in a transaction of its own. On failure the tail
    /// stays as it is (lookups still see it) and the next housekeeping tries again.
    fn merge(&mut self) {
        if self.tail.len() == 0 {
            return;
        }
        let mut merged = 0;
        let in_key_order = self.tail.ids_in_key_order();
        let result = self.with_transaction(false, |tx| {
            merged = tail::merge(tx.conn, &in_key_order)?;
            Ok(())
        });
        match result {
            Ok(()) => {
                self.tail.clear();
                tracing::trace!(
                    keys = merged,
                    "hookdock: merged new keys into the key index"
                );
            }
            Err(e) => tracing::warn!(
                error = %e,
                "hookdock: merging new keys into the key index failed; will retry"
            ),
        }
    }

    /// One write in a transaction of its own, answered here.
    fn transaction_of<W: Write>(&mut self, write: &W) -> rusqlite::Result<Answer<W::Output>> {
        let mut answer = None;
        self.with_transaction(false, |tx| {
            answer = Some(write.apply(tx)?);
            Ok(())
        })?;
        Ok(answer.unwrap_or_else(|| Err(StoreError::internal("sqlite", "no answer"))))
    }

    /// One transaction over `jobs`; on a SQLite error it is rolled back and the error
    /// returned.
    fn transaction<'a>(
        &mut self,
        jobs: impl Iterator<Item = &'a mut Box<dyn Job>>,
        degraded: bool,
    ) -> rusqlite::Result<()> {
        self.with_transaction(degraded, |tx| {
            for job in jobs {
                job.apply(tx)?;
            }
            Ok(())
        })
    }

    fn with_transaction(
        &mut self,
        degraded: bool,
        body: impl FnOnce(&mut Tx<'_>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let result = try_transaction(&self.conn, &mut self.tail, degraded, body);
        match result {
            Ok(()) => self.tail.commit(),
            Err(_) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.tail.rollback();
            }
        }
        result
    }
}

fn try_transaction(
    conn: &Connection,
    tail: &mut Tail,
    degraded: bool,
    body: impl FnOnce(&mut Tx<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let before = conn
        .prepare_cached("SELECT next_id, next_token, live FROM hookdock_state WHERE id = 1")?
        .query_row([], |r| {
            Ok(StateRow {
                next_id: r.get(0)?,
                next_token: r.get(1)?,
                live: r.get(2)?,
            })
        })?;
    tail.begin(before.next_id);
    let mut tx = Tx {
        conn,
        state: before,
        degraded,
        tail,
    };
    body(&mut tx)?;
    if tx.state != before {
        conn.prepare_cached(
            "UPDATE hookdock_state SET next_id = ?1, next_token = ?2, live = ?3 WHERE id = 1",
        )?
        .execute(params![
            tx.state.next_id,
            tx.state.next_token,
            tx.state.live
        ])?;
    }
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Enqueued;

    /// A batch holding one write that cannot fit is rolled back as a whole and run again one
    /// write per transaction: the neighbours are stored, the oversized event fails alone, with
    /// SQLite's "disk full" as its source.
    #[test]
    fn a_failing_write_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let options = SqliteOptions::new().max_size(256 * 1024);
        let conn = super::super::schema::open_writer(&path, &options).unwrap();
        let (nudge, _nudged) = std_mpsc::sync_channel(1);
        let (_tx, rx) = mpsc::channel(1);
        let mut writer = Writer {
            conn,
            rx,
            max_batch: 64,
            nudge: Some(nudge),
            checkpointer: None,
            wal_frames: Arc::new(AtomicI64::new(0)),
            wal_restart_pages: i64::MAX,
            counters: Arc::new(Counters::default()),
            clock: options.clock.clone(),
            identity: FileIdentity::capture(&path).unwrap(),
            broken: false,
            last_purge: Instant::now(),
            tail: Tail::default(),
            merge_at: options.key_merge_batch,
            merging: None,
            lock: None,
        };
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        let mut answers = Vec::new();
        for i in 0..10 {
            let body = if i == 4 {
                vec![7u8; 1 << 20]
            } else {
                vec![1u8; 100]
            };
            let (reply, answer) = oneshot::channel();
            let write = super::super::events::Enqueue {
                source: "github".into(),
                event_id: format!("e{i}"),
                event_type: None,
                origin: 0,
                received_at: 0,
                headers: Vec::new(),
                body: body.into(),
                now: 1,
                max_depth: None,
                order_key: None,
                order_pos: None,
            };
            batch.push(Box::new(Call {
                write,
                reply,
                answer: None,
            }));
            answers.push(answer);
        }
        writer.commit(&mut batch);
        for (i, mut answer) in answers.into_iter().enumerate() {
            let outcome = answer.try_recv().expect("every write is answered");
            if i == 4 {
                let err = outcome.expect_err("the oversized event cannot be stored");
                assert!(err.is_transient(), "{err:?}");
                let sql = std::error::Error::source(&err)
                    .and_then(|s| s.downcast_ref::<SqliteError>())
                    .and_then(|e| match e {
                        SqliteError::Sql(e) => e.sqlite_error_code(),
                        _ => None,
                    });
                assert_eq!(sql, Some(rusqlite::ErrorCode::DiskFull), "{err:?}");
            } else {
                assert!(
                    matches!(outcome, Ok(Enqueued::New(_))),
                    "event {i} must be stored despite its neighbour: {outcome:?}"
                );
            }
        }
        let count = |sql: &str| -> i64 { writer.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM hookdock_events"), 9);
        assert_eq!(
            count("SELECT live FROM hookdock_state"),
            9,
            "the depth counter must not count the failed event"
        );
        let stats = writer.counters.snapshot();
        assert_eq!((stats.failed_batches, stats.operations), (1, 10));
        // The rolled-back key left the tail with its transaction.
        assert_eq!(writer.tail.len(), 9);
        assert_eq!(writer.tail.get("github", "e4"), None);
        assert!(writer.tail.get("github", "e5").is_some());
    }
}
