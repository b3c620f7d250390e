//! The writer thread: the only connection that writes, committing every waiting operation in
//! one transaction (group commit).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{SqliteOptions, WriterStats};
use crate::clock::from_unix_millis;
use crate::error::StoreError;
use crate::event::{decode_headers, RawEvent};
use crate::idempotency::{Claim, ClaimToken};
use crate::queue::{
    DeadLetterFilter, Enqueued, Lease, LeaseToken, Leased, MessageId, EXPIRED_ON_LAST_ATTEMPT,
};

/// What the writer answers.
pub(crate) type Reply = oneshot::Sender<Result<Response, StoreError>>;

/// A message to the writer thread.
// Almost every message is an `Op`; boxing it would cost an allocation per operation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// One operation and where to send its outcome.
    Op(Request, Reply),
    /// Finish what was sent, checkpoint, stop, then signal.
    Close(oneshot::Sender<()>),
}

/// One write operation. Times are Unix milliseconds read from the store's clock by the
/// caller, at the time of the call.
pub(crate) enum Request {
    /// The event, taken apart by the caller (headers encoded, the header map dropped) so
    /// the writer thread does no more than bind it.
    Enqueue {
        source: String,
        event_id: String,
        received_at: i64,
        headers: Vec<u8>,
        body: Bytes,
        now: i64,
        max_depth: Option<u64>,
    },
    Lease {
        max: usize,
        now: i64,
        expires: i64,
        max_attempts: u32,
    },
    Extend {
        id: i64,
        token: i64,
        expires: i64,
    },
    Ack {
        id: i64,
        token: i64,
    },
    /// A retry (with its error, keeping the attempt) or a deferral (no error, the attempt
    /// given back).
    Retry {
        id: i64,
        token: i64,
        at: i64,
        error: Option<String>,
    },
    DeadLetter {
        id: i64,
        token: i64,
        reason: String,
        now: i64,
    },
    Replay {
        filter: DeadLetterFilter,
        now: i64,
    },
    Claim {
        source: String,
        event_id: String,
        fingerprint: [u8; 32],
        now: i64,
        until: i64,
    },
    Complete {
        source: String,
        event_id: String,
        token: i64,
        result: Option<Bytes>,
        until: i64,
    },
    Release {
        source: String,
        event_id: String,
        token: i64,
    },
    Purge {
        now: i64,
        retention: i64,
        limit: usize,
    },
}

impl Request {
    /// Operations whose only effect is for the caller: if the caller has gone away (its
    /// future was dropped), running them would only hide messages or keys until a lease
    /// expires.
    fn only_for_caller(&self) -> bool {
        matches!(self, Self::Lease { .. } | Self::Claim { .. })
    }
}

/// The committed outcome of a [`Request`].
#[derive(Debug)]
pub(crate) enum Response {
    Enqueued(Enqueued),
    Leased(Vec<LeasedRow>),
    Done,
    Count(u64),
    Claim(Claim),
}

/// A leased message as the writer read it; the caller's task turns it into a [`Leased`]
/// (decoding headers off the writer thread, which is the one everybody waits for).
#[derive(Debug)]
pub(crate) struct LeasedRow {
    id: i64,
    attempts: u32,
    source: String,
    event_id: String,
    received_at: i64,
    last_error: Option<String>,
    headers: Vec<u8>,
    body: Vec<u8>,
    token: i64,
    expires: i64,
}

impl LeasedRow {
    pub(crate) fn into_leased(self, max_attempts: u32) -> Leased {
        let event = RawEvent {
            source: self.source,
            id: self.event_id.into(),
            received_at: from_unix_millis(self.received_at),
            headers: decode_headers(&self.headers),
            body: Bytes::from(self.body),
        };
        let lease = Lease {
            message: MessageId(self.id),
            token: LeaseToken(token_out(self.token)),
            expires_at: from_unix_millis(self.expires),
        };
        Leased::new(lease, event, self.attempts, max_attempts).with_last_error(self.last_error)
    }
}

/// What the writer has done, for [`WriterStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    operations: AtomicU64,
    failed_batches: AtomicU64,
    swept: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> WriterStats {
        WriterStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            swept: self.swept.load(Ordering::Relaxed),
        }
    }
}

/// The row of `hookdock_state`, read at the start of each transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StateRow {
    next_id: i64,
    next_token: i64,
    live: i64,
}

/// Starts the writer thread.
pub(crate) fn spawn(
    conn: Connection,
    options: &SqliteOptions,
    checkpointer: super::checkpoint::Checkpointer,
    counters: Arc<Counters>,
) -> Result<mpsc::Sender<Msg>, StoreError> {
    let (tx, rx) = mpsc::channel(options.channel_capacity);
    let done = conn
        .query_row(COUNT_DONE, [], |r| r.get::<_, i64>(0))
        .map_err(super::sql_error)?;
    let writer = Writer {
        done: u64::try_from(done).unwrap_or(0),
        conn,
        rx,
        max_batch: options.max_batch,
        nudge: Some(checkpointer.nudge),
        wal_pages: checkpointer.wal_frames,
        checkpointer: Some(checkpointer.thread),
        wal_restart_pages: i64::from(options.wal_restart_pages),
        counters,
    };
    std::thread::Builder::new()
        .name("hookdock-writer".into())
        .spawn(move || writer.run())
        .map_err(StoreError::storage)?;
    Ok(tx)
}

struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    /// Wakes the checkpoint thread; dropped to stop it.
    nudge: Option<std_mpsc::SyncSender<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
    wal_pages: Arc<AtomicI64>,
    wal_restart_pages: i64,
    counters: Arc<Counters>,
    /// Rows acked and not yet swept.
    done: u64,
}

/// Acked rows that trigger a sweep (and the most one sweep deletes). Fewer wait, invisible,
/// for more acks or for the store to close: smaller sweeps would rewrite nearly as many
/// index pages for far fewer rows.
const SWEEP_AT: u64 = 4096;

type Outcome = Result<Response, StoreError>;

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<(Request, Reply)> = Vec::with_capacity(self.max_batch);
        let mut closing: Option<oneshot::Sender<()>> = None;
        loop {
            let first = match self.rx.blocking_recv() {
                Some(msg) => msg,
                None => break,
            };
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Op(request, reply) => batch.push((request, reply)),
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
        }
        // Every handle is gone or the store was closed: leave a tidy database. Stop the
        // checkpoint thread first so the final checkpoint has the WAL to itself.
        while self.done > 0 && self.sweep() {}
        self.nudge = None;
        if let Some(thread) = self.checkpointer.take() {
            let _ = thread.join();
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Runs a batch in one transaction and answers every caller after the commit.
    fn commit(&mut self, batch: &mut Vec<(Request, Reply)>) {
        batch.retain(|(request, reply)| !(request.only_for_caller() && reply.is_closed()));
        if batch.is_empty() {
            return;
        }
        let outcomes = match self.transaction(batch.iter().map(|(r, _)| r), false) {
            Ok(outcomes) => {
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                outcomes
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    operations = batch.len(),
                    "hookdock: group commit failed; retrying its operations one by one"
                );
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                // The whole batch is rolled back. Run each operation alone so that one bad
                // write (or a disk that filled up) fails only the operations it has to.
                batch
                    .iter()
                    .map(
                        |(request, _)| match self.transaction(std::iter::once(request), true) {
                            Ok(mut one) => {
                                one.pop().unwrap_or_else(|| Err(super::unexpected("batch")))
                            }
                            Err(e) => Err(super::sql_error(e)),
                        },
                    )
                    .collect()
            }
        };
        self.counters
            .operations
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for ((request, reply), outcome) in batch.drain(..).zip(outcomes) {
            if matches!((&request, &outcome), (Request::Ack { .. }, Ok(_))) {
                self.done += 1;
            }
            // A caller that went away does not need its answer.
            let _ = reply.send(outcome);
        }
        if self.done >= SWEEP_AT {
            // Enough acked rows for the sweep to pay off: deleting many rows at once
            // rewrites each page of the unique index they share once, not once per row.
            self.sweep();
        }
        if let Some(nudge) = &self.nudge {
            let _ = nudge.try_send(());
        }
        if self.wal_pages.load(Ordering::Relaxed) > self.wal_restart_pages {
            // The background checkpoint cannot finish while we keep appending; finish it
            // here, between two batches, so the next transaction starts the WAL over.
            self.wal_pages.store(0, Ordering::Relaxed);
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }

    /// Deletes up to [`SWEEP_AT`] acked rows in one transaction; false if it failed or found
    /// nothing.
    fn sweep(&mut self) -> bool {
        let result = (|| -> rusqlite::Result<usize> {
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let limit = sql_limit(Some(SWEEP_AT as usize));
            self.conn
                .prepare_cached(SWEEP_BODIES)?
                .execute(params![limit])?;
            let n = self.conn.prepare_cached(SWEEP)?.execute(params![limit])?;
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(n)
        })();
        match result {
            Ok(n) => {
                self.counters.swept.fetch_add(n as u64, Ordering::Relaxed);
                self.done = if n == 0 {
                    0
                } else {
                    self.done.saturating_sub(n as u64)
                };
                n > 0
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                tracing::debug!(error = %e, "hookdock: sweeping acked rows failed; will retry");
                false
            }
        }
    }

    /// One transaction over `requests`; on a SQLite error it is rolled back and the error
    /// returned. `degraded` (after a failed batch) makes acks delete their row at once: it
    /// needs no new page, so workers can still drain a full disk.
    fn transaction<'a>(
        &self,
        requests: impl Iterator<Item = &'a Request>,
        degraded: bool,
    ) -> rusqlite::Result<Vec<Outcome>> {
        let result = self.try_transaction(requests, degraded);
        if result.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn try_transaction<'a>(
        &self,
        requests: impl Iterator<Item = &'a Request>,
        degraded: bool,
    ) -> rusqlite::Result<Vec<Outcome>> {
        let conn = &self.conn;
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
        let mut counters = before;
        let mut outcomes = Vec::new();
        for request in requests {
            outcomes.push(exec(conn, request, &mut counters, degraded)?);
        }
        if counters != before {
            conn.prepare_cached(
                "UPDATE hookdock_state SET next_id = ?1, next_token = ?2, live = ?3 WHERE id = 1",
            )?
            .execute(params![
                counters.next_id,
                counters.next_token,
                counters.live
            ])?;
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(outcomes)
    }
}

/// `state` of a row that was acked and waits for the sweep.
const STATE_DONE: i64 = 3;

const INSERT_EVENT: &str = "INSERT INTO hookdock_events
    (id, source, event_id, state, available_at, attempts, received_at, enqueued_at)
    VALUES (?1, ?2, ?3, 0, ?4, 0, ?5, ?4)
    ON CONFLICT (source, event_id) DO NOTHING";

/// The bytes live apart from the state, written once: leases and acks rewrite small rows
/// (many to a page) instead of pages (or overflow chains) full of bodies.
const INSERT_BODY: &str =
    "INSERT OR REPLACE INTO hookdock_event_bodies (id, headers, body) VALUES (?1, ?2, ?3)";

const BODY: &str = "SELECT headers, body FROM hookdock_event_bodies WHERE id = ?1";

const DELETE_BODY: &str = "DELETE FROM hookdock_event_bodies WHERE id = ?1";

/// Parks a message whose bytes are missing (a database edited by hand); leasing it would
/// hand out an event that is not the one stored.
const MISSING_BODY: &str = "UPDATE hookdock_events
    SET state = 2, dead_reason = 'stored body is missing', dead_at = ?2, token = NULL
    WHERE id = ?1";

const FIND_EVENT: &str =
    "SELECT id, state FROM hookdock_events WHERE source = ?1 AND event_id = ?2";

const KILL_EXPIRED: &str = "UPDATE hookdock_events
    SET state = 2, dead_reason = ?1, dead_at = ?2, token = NULL
    WHERE state = 1 AND available_at <= ?2 AND attempts >= ?3";

const LEASE: &str = "UPDATE hookdock_events
    SET state = 1, available_at = ?1, attempts = attempts + 1, token = ?2
    WHERE id IN (
        SELECT id FROM hookdock_events
        WHERE state < 2 AND available_at <= ?3
        ORDER BY available_at, id
        LIMIT ?4)
    RETURNING id, attempts, source, event_id, received_at, last_error";

const EXTEND: &str = "UPDATE hookdock_events SET available_at = ?3
    WHERE id = ?1 AND state = 1 AND token = ?2";

/// Acked rows are marked done (a rewrite of pages the lease just touched) and deleted in
/// bulk by [`SWEEP`], which amortises the random page of the unique index over many rows.
const ACK: &str = "UPDATE hookdock_events SET state = 3, token = NULL
    WHERE id = ?1 AND state = 1 AND token = ?2";

/// Ack by deleting the row at once, used when a batch failed (a full disk, say).
const ACK_NOW: &str = "DELETE FROM hookdock_events WHERE id = ?1 AND state = 1 AND token = ?2";

const SWEEP_BODIES: &str = "DELETE FROM hookdock_event_bodies WHERE id IN (
    SELECT id FROM hookdock_events WHERE state = 3 ORDER BY id LIMIT ?1)";

const SWEEP: &str = "DELETE FROM hookdock_events WHERE id IN (
    SELECT id FROM hookdock_events WHERE state = 3 ORDER BY id LIMIT ?1)";

const COUNT_DONE: &str = "SELECT count(*) FROM hookdock_events WHERE state = 3";

const DELETE_DONE: &str = "DELETE FROM hookdock_events WHERE id = ?1 AND state = 3";

const RETRY: &str = "UPDATE hookdock_events
    SET state = 0, available_at = ?3, last_error = ?4, token = NULL
    WHERE id = ?1 AND state = 1 AND token = ?2";

const DEFER: &str = "UPDATE hookdock_events
    SET state = 0, available_at = ?3, attempts = MAX(attempts - 1, 0), token = NULL
    WHERE id = ?1 AND state = 1 AND token = ?2";

const DEAD_LETTER: &str = "UPDATE hookdock_events
    SET state = 2, dead_reason = ?3, dead_at = ?4, token = NULL
    WHERE id = ?1 AND state = 1 AND token = ?2";

/// The conditions of a [`DeadLetterFilter`] over `hookdock_events`, parameters `?1`..`?6`;
/// shared by listing (reader) and replay (writer).
pub(crate) const DEAD_FILTER: &str = "state = 2
    AND (?1 IS NULL OR id = ?1)
    AND (?2 IS NULL OR source = ?2)
    AND (?3 IS NULL OR event_id = ?3)
    AND (?4 IS NULL OR instr(dead_reason, ?4) > 0)
    AND (?5 IS NULL OR id > ?5)
    ORDER BY id
    LIMIT ?6";

const CLAIM: &str = "INSERT INTO hookdock_idempotency
    (source, event_id, fingerprint, token, state, until, result)
    VALUES (?1, ?2, ?3, ?4, 0, ?5, NULL)
    ON CONFLICT (source, event_id) DO UPDATE SET
        fingerprint = excluded.fingerprint, token = excluded.token, state = 0,
        until = excluded.until, result = NULL
    WHERE hookdock_idempotency.until <= ?6";

const CLAIM_HELD: &str = "SELECT fingerprint, state, until, result FROM hookdock_idempotency
    WHERE source = ?1 AND event_id = ?2";

const COMPLETE: &str = "UPDATE hookdock_idempotency SET state = 1, until = ?4, result = ?5
    WHERE source = ?1 AND event_id = ?2 AND token = ?3 AND state = 0";

const RELEASE: &str = "DELETE FROM hookdock_idempotency
    WHERE source = ?1 AND event_id = ?2 AND token = ?3 AND state = 0";

const PURGE: &str = "DELETE FROM hookdock_idempotency WHERE id IN (
    SELECT id FROM hookdock_idempotency
    WHERE until <= ?1 AND (state = 1 OR until <= ?2)
    LIMIT ?3)";

/// `usize` as an SQL limit.
pub(crate) fn sql_limit(n: Option<usize>) -> i64 {
    n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// The `?1`..`?6` parameters of [`DEAD_FILTER`]: message, source, event id, reason text,
/// after, limit.
pub(crate) type DeadFilterParams<'a> = (
    Option<i64>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    i64,
);

/// The parameters of [`DEAD_FILTER`] for `f`.
pub(crate) fn dead_filter_params(f: &DeadLetterFilter) -> DeadFilterParams<'_> {
    (
        f.message.map(|m| m.0),
        f.source.as_deref(),
        f.event_id.as_ref().map(|id| id.as_str()),
        f.reason_contains.as_deref(),
        f.after.map(|m| m.0),
        sql_limit(f.limit),
    )
}

/// A token as stored (positive `i64`) to the public `u64`.
pub(crate) fn token_out(token: i64) -> u64 {
    u64::try_from(token).unwrap_or(0)
}

/// Applies the fenced update `sql` (parameters `?1` id, `?2` token, then `rest`): `Done` if it
/// hit the row, `LeaseLost` otherwise.
fn fenced(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Outcome> {
    let n = conn.prepare_cached(sql)?.execute(params)?;
    Ok(if n == 1 {
        Ok(Response::Done)
    } else {
        Err(StoreError::LeaseLost)
    })
}

fn exec(
    conn: &Connection,
    request: &Request,
    c: &mut StateRow,
    degraded: bool,
) -> rusqlite::Result<Outcome> {
    match request {
        Request::Enqueue {
            source,
            event_id,
            received_at,
            headers,
            body,
            now,
            max_depth,
        } => {
            // The message holding this key, if any. A row that was acked but not yet swept
            // holds nothing: it is deleted here so the key can be stored again.
            let held = |conn: &Connection| -> rusqlite::Result<Option<i64>> {
                let found: Option<(i64, i64)> = conn
                    .prepare_cached(FIND_EVENT)?
                    .query_row(params![source, event_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                match found {
                    Some((id, STATE_DONE)) => {
                        conn.prepare_cached(DELETE_DONE)?.execute(params![id])?;
                        conn.prepare_cached(DELETE_BODY)?.execute(params![id])?;
                        Ok(None)
                    }
                    other => Ok(other.map(|(id, _)| id)),
                }
            };
            if let Some(limit) = max_depth {
                let live = u64::try_from(c.live).unwrap_or(0);
                if live >= *limit {
                    return Ok(match held(conn)? {
                        Some(id) => Ok(Response::Enqueued(Enqueued::Duplicate(MessageId(id)))),
                        None => Err(StoreError::Full { depth: live }),
                    });
                }
            }
            let insert = |conn: &Connection, id: i64| -> rusqlite::Result<usize> {
                let n = conn.prepare_cached(INSERT_EVENT)?.execute(params![
                    id,
                    source,
                    event_id,
                    now,
                    received_at
                ])?;
                if n == 1 {
                    conn.prepare_cached(INSERT_BODY)?
                        .execute(params![id, headers, &body[..]])?;
                }
                Ok(n)
            };
            let mut inserted = insert(conn, c.next_id)? == 1;
            if !inserted {
                if let Some(id) = held(conn)? {
                    return Ok(Ok(Response::Enqueued(Enqueued::Duplicate(MessageId(id)))));
                }
                inserted = insert(conn, c.next_id)? == 1;
            }
            if !inserted {
                return Ok(Err(StoreError::Corrupt(
                    "enqueue conflicted with a row that does not exist".into(),
                )));
            }
            let id = c.next_id;
            c.next_id += 1;
            c.live += 1;
            Ok(Ok(Response::Enqueued(Enqueued::New(MessageId(id)))))
        }
        Request::Lease {
            max,
            now,
            expires,
            max_attempts,
        } => {
            if *max == 0 {
                return Ok(Ok(Response::Leased(Vec::new())));
            }
            let killed = conn.prepare_cached(KILL_EXPIRED)?.execute(params![
                EXPIRED_ON_LAST_ATTEMPT,
                now,
                max_attempts
            ])?;
            c.live -= i64::try_from(killed).unwrap_or(0);
            let token = c.next_token;
            c.next_token += 1;
            let mut stmt = conn.prepare_cached(LEASE)?;
            let rows =
                stmt.query_map(params![expires, token, now, sql_limit(Some(*max))], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })?;
            let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.sort_unstable_by_key(|row| row.0);
            let mut leased = Vec::with_capacity(rows.len());
            let mut body = conn.prepare_cached(BODY)?;
            for (id, attempts, source, event_id, received_at, last_error) in rows {
                let bytes: Option<(Vec<u8>, Vec<u8>)> = body
                    .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((headers, body)) = bytes else {
                    conn.prepare_cached(MISSING_BODY)?
                        .execute(params![id, now])?;
                    c.live -= 1;
                    continue;
                };
                leased.push(LeasedRow {
                    id,
                    attempts,
                    source,
                    event_id,
                    received_at,
                    last_error,
                    headers,
                    body,
                    token,
                    expires: *expires,
                });
            }
            Ok(Ok(Response::Leased(leased)))
        }
        Request::Extend { id, token, expires } => fenced(conn, EXTEND, params![id, token, expires]),
        Request::Ack { id, token } => {
            let sql = if degraded { ACK_NOW } else { ACK };
            let outcome = fenced(conn, sql, params![id, token])?;
            if outcome.is_ok() {
                c.live -= 1;
                if degraded {
                    conn.prepare_cached(DELETE_BODY)?.execute(params![id])?;
                }
            }
            Ok(outcome)
        }
        Request::Retry {
            id,
            token,
            at,
            error,
        } => match error {
            Some(error) => fenced(conn, RETRY, params![id, token, at, error]),
            None => fenced(conn, DEFER, params![id, token, at]),
        },
        Request::DeadLetter {
            id,
            token,
            reason,
            now,
        } => {
            let outcome = fenced(conn, DEAD_LETTER, params![id, token, reason, now])?;
            if outcome.is_ok() {
                c.live -= 1;
            }
            Ok(outcome)
        }
        Request::Replay { filter, now } => {
            let sql = format!(
                "UPDATE hookdock_events
                 SET state = 0, available_at = ?7, attempts = 0, dead_reason = NULL,
                     dead_at = NULL
                 WHERE id IN (SELECT id FROM hookdock_events WHERE {DEAD_FILTER})"
            );
            let (m, s, e, r, a, l) = dead_filter_params(filter);
            let n = conn
                .prepare_cached(&sql)?
                .execute(params![m, s, e, r, a, l, now])?;
            c.live += i64::try_from(n).unwrap_or(0);
            Ok(Ok(Response::Count(n as u64)))
        }
        Request::Claim {
            source,
            event_id,
            fingerprint,
            now,
            until,
        } => {
            let token = c.next_token;
            let n = conn.prepare_cached(CLAIM)?.execute(params![
                source,
                event_id,
                &fingerprint[..],
                token,
                until,
                now
            ])?;
            if n == 1 {
                c.next_token += 1;
                return Ok(Ok(Response::Claim(Claim::Acquired(ClaimToken(token_out(
                    token,
                ))))));
            }
            let held = conn
                .prepare_cached(CLAIM_HELD)?
                .query_row(params![source, event_id], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<Vec<u8>>>(3)?,
                    ))
                })
                .optional()?;
            Ok(Ok(Response::Claim(match held {
                None => {
                    return Ok(Err(StoreError::Corrupt(
                        "claim conflicted with a key that does not exist".into(),
                    )))
                }
                Some((fp, _, _, _)) if fp[..] != fingerprint[..] => Claim::FingerprintMismatch,
                Some((_, 1, _, result)) => Claim::Completed(result.map(Bytes::from)),
                Some((_, _, until, _)) => Claim::InProgress {
                    until: from_unix_millis(until),
                },
            })))
        }
        Request::Complete {
            source,
            event_id,
            token,
            result,
            until,
        } => {
            let n = conn.prepare_cached(COMPLETE)?.execute(params![
                source,
                event_id,
                token,
                until,
                result.as_deref()
            ])?;
            Ok(if n == 1 {
                Ok(Response::Done)
            } else {
                Err(StoreError::ClaimLost)
            })
        }
        Request::Release {
            source,
            event_id,
            token,
        } => {
            let n = conn
                .prepare_cached(RELEASE)?
                .execute(params![source, event_id, token])?;
            Ok(if n == 1 {
                Ok(Response::Done)
            } else {
                Err(StoreError::ClaimLost)
            })
        }
        Request::Purge {
            now,
            retention,
            limit,
        } => {
            let n = conn.prepare_cached(PURGE)?.execute(params![
                now,
                now.saturating_sub(*retention),
                sql_limit(Some(*limit))
            ])?;
            Ok(Ok(Response::Count(n as u64)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn enqueue(id: &str, body: Vec<u8>) -> Request {
        Request::Enqueue {
            source: "github".into(),
            event_id: id.into(),
            received_at: 0,
            body: body.into(),
            headers: Vec::new(),
            now: 1,
            max_depth: None,
        }
    }

    fn writer(options: &SqliteOptions, dir: &tempfile::TempDir) -> (Writer, mpsc::Sender<Msg>) {
        let conn = super::super::schema::open_writer(&dir.path().join("q.db"), options).unwrap();
        let (nudge, _nudged) = std_mpsc::sync_channel(1);
        let (tx, rx) = mpsc::channel(1);
        let writer = Writer {
            conn,
            rx,
            max_batch: 64,
            nudge: Some(nudge),
            checkpointer: None,
            wal_pages: Arc::new(AtomicI64::new(0)),
            wal_restart_pages: i64::MAX,
            counters: Arc::new(Counters::default()),
            done: 0,
        };
        (writer, tx)
    }

    fn one(w: &Writer, request: Request) -> Outcome {
        let mut outcomes = w.transaction(std::iter::once(&request), false).unwrap();
        outcomes.pop().unwrap()
    }

    fn count(w: &Writer, sql: &str) -> i64 {
        w.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// An ack leaves a done row behind for the sweep; an enqueue of the same key meanwhile
    /// stores a new message (the done row holds nothing), and the sweep deletes done rows.
    #[test]
    fn acked_rows_are_swept_and_do_not_hold_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _tx) = writer(&SqliteOptions::new(), &dir);
        let first = match one(&w, enqueue("a", b"one".to_vec())) {
            Ok(Response::Enqueued(Enqueued::New(id))) => id,
            other => panic!("{other:?}"),
        };
        let lease = Request::Lease {
            max: 10,
            now: 1,
            expires: 1000,
            max_attempts: 5,
        };
        let leased = match one(&w, lease) {
            Ok(Response::Leased(l)) => l.into_iter().map(|r| r.into_leased(5)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let token = i64::try_from(leased[0].lease.token.0).unwrap();
        assert!(one(&w, Request::Ack { id: first.0, token }).is_ok());
        assert_eq!(
            count(&w, "SELECT count(*) FROM hookdock_events WHERE state = 3"),
            1
        );
        assert_eq!(count(&w, "SELECT live FROM hookdock_state"), 0);
        let second = match one(&w, enqueue("a", b"two".to_vec())) {
            Ok(Response::Enqueued(Enqueued::New(id))) => id,
            other => panic!("an acked key must be stored anew: {other:?}"),
        };
        assert_ne!(first, second, "message ids are never reused");
        assert_eq!(count(&w, "SELECT count(*) FROM hookdock_events"), 1);
        assert!(matches!(
            one(&w, Request::Ack { id: first.0, token }),
            Err(StoreError::LeaseLost)
        ));
        let leased = match one(
            &w,
            Request::Lease {
                max: 10,
                now: 2,
                expires: 1000,
                max_attempts: 5,
            },
        ) {
            Ok(Response::Leased(l)) => l.into_iter().map(|r| r.into_leased(5)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(&leased[0].event.body[..], b"two");
        let token = i64::try_from(leased[0].lease.token.0).unwrap();
        assert!(one(
            &w,
            Request::Ack {
                id: second.0,
                token
            }
        )
        .is_ok());
        w.done = 1;
        assert!(w.sweep());
        assert_eq!(count(&w, "SELECT count(*) FROM hookdock_events"), 0);
        assert_eq!(w.counters.snapshot().swept, 1);
    }

    /// Every statement the writer runs finds its rows through an index: no full scan of a
    /// table and no temporary sort, whatever the backlog.
    #[test]
    fn every_statement_uses_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _tx) = writer(&SqliteOptions::new(), &dir);
        let replay = format!("UPDATE hookdock_events SET state = 0 WHERE id IN (SELECT id FROM hookdock_events WHERE {DEAD_FILTER})");
        let statements = [
            INSERT_EVENT,
            FIND_EVENT,
            KILL_EXPIRED,
            LEASE,
            EXTEND,
            ACK,
            ACK_NOW,
            SWEEP,
            COUNT_DONE,
            DELETE_DONE,
            RETRY,
            DEAD_LETTER,
            CLAIM,
            CLAIM_HELD,
            COMPLETE,
            RELEASE,
            PURGE,
            &replay,
        ];
        for sql in statements {
            let mut stmt = w
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let n = stmt.parameter_count();
            let params: Vec<rusqlite::types::Value> = vec![rusqlite::types::Value::Null; n];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for step in &plan {
                let full_scan = step.starts_with("SCAN hookdock_") && !step.contains(" USING ");
                assert!(
                    !full_scan && !step.contains("TEMP B-TREE"),
                    "{sql}\n{plan:#?}"
                );
            }
        }
    }

    /// A batch holding one write that cannot fit is rolled back as a whole and rerun one
    /// operation per transaction: the neighbours are stored, the oversized event fails alone
    /// with the SQLite "disk full" error as its source.
    #[test]
    fn a_failing_operation_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _tx) = writer(&SqliteOptions::new().max_size(256 * 1024), &dir);
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for i in 0..10 {
            let body = if i == 4 {
                vec![7u8; 1024 * 1024]
            } else {
                vec![1u8; 100]
            };
            let (reply, answer) = oneshot::channel();
            batch.push((enqueue(&format!("e{i}"), body), reply));
            answers.push(answer);
        }
        writer.commit(&mut batch);
        for (i, mut answer) in answers.into_iter().enumerate() {
            let outcome = answer.try_recv().expect("every operation is answered");
            if i == 4 {
                let err = outcome.expect_err("the oversized event cannot be stored");
                assert!(matches!(err, StoreError::Storage(_)), "{err:?}");
                let source = err
                    .source()
                    .and_then(|s| s.downcast_ref::<rusqlite::Error>());
                assert_eq!(
                    source.and_then(|e| e.sqlite_error_code()),
                    Some(rusqlite::ErrorCode::DiskFull),
                    "the SQLite error is kept as the source: {source:?}"
                );
            } else {
                assert!(
                    matches!(outcome, Ok(Response::Enqueued(Enqueued::New(_)))),
                    "event {i} must be stored despite its neighbour: {outcome:?}"
                );
            }
        }
        let stored: i64 = writer
            .conn
            .query_row("SELECT count(*) FROM hookdock_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 9);
        let live: i64 = writer
            .conn
            .query_row("SELECT live FROM hookdock_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(live, 9, "the depth counter must not count the failed event");
        let stats = writer.counters.snapshot();
        assert_eq!((stats.failed_batches, stats.operations), (1, 10));
    }
}
