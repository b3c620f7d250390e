//! The queue's writes and reads over `hookdock_events` and `hookdock_event_bodies`.

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::engine::{Answer, Tx, Write};
use super::order_keys;
use super::tail::locate;
use crate::store::sql::{
    DeadFilter, DeadRow, EventRow, LeasedRow, StateCounts, CLAIM_ONLY, DONE, PURGE_CHUNK,
};
use crate::store::{Enqueued, MessageId, StoreError, EXPIRED_ON_LAST_ATTEMPT};

/// The columns an enqueue fills; `?1` id, `?2` source, `?3` event id, `?4` now, `?5`
/// received at, `?6` event type, `?7` origin code, `?8` ordering key, `?9` position. The
/// key waits in the [`Tail`](super::tail) until the next merge.
const INSERT_EVENT: &str = "INSERT INTO hookdock_events
    (id, source, event_id, state, available_at, attempts, received_at, enqueued_at, keyed,
     event_type, origin, order_key, order_pos)
    VALUES (?1, ?2, ?3, 0, ?4, 0, ?5, ?4, 0, ?6, ?7, ?8, ?9)";

/// The bytes live apart from the state, written once: leases and acks rewrite small rows
/// (many to a page) instead of pages (or overflow chains) full of bodies.
const INSERT_BODY: &str =
    "INSERT OR REPLACE INTO hookdock_event_bodies (id, headers, body) VALUES (?1, ?2, ?3)";

const FIND: &str = "SELECT state, available_at FROM hookdock_events WHERE id = ?1";

/// Stores an event on a record that held only a claim.
const ATTACH: &str = "UPDATE hookdock_events
    SET state = 0, available_at = ?2, attempts = 0, received_at = ?3, enqueued_at = ?2,
        event_type = ?4, origin = ?5, order_key = ?6, order_pos = ?7
    WHERE id = ?1 AND state = 4";

const FORGET: &str = "DELETE FROM hookdock_events WHERE id = ?1";
const FORGET_BODY: &str = "DELETE FROM hookdock_event_bodies WHERE id = ?1";

const KILL_EXPIRED: &str = "UPDATE hookdock_events
    SET state = 2, dead_reason = ?1, dead_at = ?2, done_at = ?2, token = NULL
    WHERE state = 1 AND available_at <= ?2 AND attempts >= ?3
    RETURNING source, order_key, order_mark, id, order_pos";

const LEASE: &str = "UPDATE hookdock_events
    SET state = 1, available_at = ?1, attempts = attempts + 1, token = ?2,
        first_attempt_at = COALESCE(first_attempt_at, ?3), last_attempt_at = ?3
    WHERE id IN (
        SELECT id FROM hookdock_events
        WHERE state < 2 AND available_at <= ?3
        ORDER BY available_at, id
        LIMIT ?4)
    RETURNING id, attempts, source, event_id, received_at, last_error, event_type, origin,
        order_key, order_pos, order_mark";

const BODY: &str = "SELECT headers, body FROM hookdock_event_bodies WHERE id = ?1";

/// Parks a message whose bytes are missing (a database edited by hand); leasing it would
/// hand out an event that is not the one stored.
const MISSING_BODY: &str = "UPDATE hookdock_events
    SET state = 2, dead_reason = 'stored body is missing', dead_at = ?2, done_at = ?2,
        token = NULL
    WHERE id = ?1";

/// What every settling statement but `EXTEND` returns: the record's ordering key.
macro_rules! keyed {
    ($sql:literal) => {
        concat!($sql, " RETURNING source, order_key, order_pos, order_mark")
    };
}

/// Every settling statement: `?1` id, `?2` token, then its own parameters.
const EXTEND: &str = "UPDATE hookdock_events SET available_at = ?3
    WHERE id = ?1 AND state = 1 AND token = ?2";

/// `?3`: when the handled event is forgotten, `?4` now.
const ACK: &str = keyed!(
    "UPDATE hookdock_events
    SET state = 3, token = NULL, available_at = ?3, done_at = ?4
    WHERE id = ?1 AND state = 1 AND token = ?2"
);

/// `?3`: when the skipped event is forgotten, `?4` now, `?5` the reason.
const SKIP: &str = keyed!(
    "UPDATE hookdock_events
    SET state = 5, token = NULL, available_at = ?3, done_at = ?4, last_error = ?5
    WHERE id = ?1 AND state = 1 AND token = ?2"
);

/// Ack by forgetting the record at once: with a retention of zero, and when a batch failed
/// (a full disk, say), since a delete needs no new page.
const ACK_NOW: &str = "DELETE FROM hookdock_events WHERE id = ?1 AND state = 1 AND token = ?2
    RETURNING source, order_key, order_pos, order_mark, event_id";

const RETRY: &str = keyed!(
    "UPDATE hookdock_events
    SET state = 0, available_at = ?3, last_error = ?4, token = NULL
    WHERE id = ?1 AND state = 1 AND token = ?2"
);

const DEFER: &str = keyed!(
    "UPDATE hookdock_events
    SET state = 0, available_at = ?3, attempts = MAX(attempts - 1, 0), token = NULL
    WHERE id = ?1 AND state = 1 AND token = ?2"
);

const DEAD_LETTER: &str = keyed!(
    "UPDATE hookdock_events
    SET state = 2, dead_reason = ?3, dead_at = ?4, done_at = ?4, token = NULL
    WHERE id = ?1 AND state = 1 AND token = ?2"
);

/// The dead letters a [`DeadFilter`] picks, parameters `?1`..`?6`, oldest first; shared by
/// listing (reader) and replay (writer), so they always pick the same rows.
const DEAD_PICK: &str = "state = 2
    AND (?1 IS NULL OR id = ?1)
    AND (?2 IS NULL OR source = ?2)
    AND (?3 IS NULL OR event_id = ?3)
    AND (?4 IS NULL OR instr(dead_reason, ?4) > 0)
    AND (?5 IS NULL OR id > ?5)
    ORDER BY id
    LIMIT ?6";

/// What a replay sets on a settled event it makes ready again (a dead letter replayed by
/// [`Replay`], an event a replay job steps over): ready with attempts back to zero and its
/// history of the previous run cleared, origin replay, one more replay counted. The caller
/// adds `available_at`.
pub(super) const REPLAYED: &str = "state = 0, attempts = 0, token = NULL, last_error = NULL,
    dead_reason = NULL, dead_at = NULL, done_at = NULL, first_attempt_at = NULL,
    last_attempt_at = NULL, origin = 1, replays = replays + 1";

/// What a forced replay also resets: the completed claim, so the next claim acquires it.
pub(super) const CLAIM_RESET: &str = "claim_token = NULL, claim_done = 0, claim_until = NULL,
    result = NULL, fingerprint = NULL, forced_replays = forced_replays + 1";

/// Forgets records whose time has come, oldest first.
const PURGE_BODIES: &str = "DELETE FROM hookdock_event_bodies WHERE id IN (
    SELECT id FROM hookdock_events WHERE state >= 3 AND available_at <= ?1
    ORDER BY available_at LIMIT ?2)";
const PURGE: &str = "DELETE FROM hookdock_events WHERE id IN (
    SELECT id FROM hookdock_events WHERE state >= 3 AND available_at <= ?1
    ORDER BY available_at LIMIT ?2)
    RETURNING source, event_id, keyed";

/// The record for a key: its id, state and `available_at`.
fn find(tx: &Tx<'_>, source: &str, event_id: &str) -> rusqlite::Result<Option<(i64, i64, i64)>> {
    let Some(id) = locate(tx.conn, tx.tail, source, event_id)? else {
        return Ok(None);
    };
    tx.conn
        .prepare_cached(FIND)?
        .query_row(params![id], |r| Ok((id, r.get(0)?, r.get(1)?)))
        .optional()
}

/// Deletes the record under a key and its bytes.
pub(super) fn forget(
    tx: &mut Tx<'_>,
    id: i64,
    source: &str,
    event_id: &str,
) -> rusqlite::Result<()> {
    tx.conn.prepare_cached(FORGET)?.execute(params![id])?;
    tx.conn.prepare_cached(FORGET_BODY)?.execute(params![id])?;
    tx.tail.remove(source, event_id);
    Ok(())
}

/// True if a record in `state` with `available_at` is past its time to be forgotten.
pub(super) fn forgotten(state: i64, available_at: i64, now: i64) -> bool {
    state >= DONE && available_at <= now
}

/// Stores an event. Times are microseconds from the store's clock.
pub(super) struct Enqueue {
    pub(super) source: String,
    pub(super) event_id: String,
    pub(super) event_type: Option<String>,
    /// The [`Origin`](crate::store::Origin) code.
    pub(super) origin: i64,
    pub(super) received_at: i64,
    pub(super) headers: Vec<u8>,
    pub(super) body: Bytes,
    pub(super) now: i64,
    pub(super) max_depth: Option<u64>,
    /// The ordering key and position.
    pub(super) order_key: Option<String>,
    pub(super) order_pos: Option<i64>,
}

impl Enqueue {
    fn store(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<Enqueued>> {
        let id = tx.state.next_id;
        tx.conn.prepare_cached(INSERT_EVENT)?.execute(params![
            id,
            self.source,
            self.event_id,
            self.now,
            self.received_at,
            self.event_type,
            self.origin,
            self.order_key,
            self.order_pos
        ])?;
        tx.tail.insert(&self.source, &self.event_id, id);
        tx.state.next_id += 1;
        self.store_body(tx, id)
    }

    fn store_body(&self, tx: &mut Tx<'_>, id: i64) -> rusqlite::Result<Answer<Enqueued>> {
        tx.conn
            .prepare_cached(INSERT_BODY)?
            .execute(params![id, self.headers, &self.body[..]])?;
        tx.state.live += 1;
        if let Some(key) = &self.order_key {
            order_keys::join(tx.conn, id, &self.source, key, self.order_pos)?;
        }
        Ok(Ok(Enqueued::New(MessageId(id))))
    }
}

impl Write for Enqueue {
    type Output = Enqueued;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<Enqueued>> {
        let known = find(tx, &self.source, &self.event_id)?;
        let held = match known {
            Some((id, state, at)) if forgotten(state, at, self.now) => {
                forget(tx, id, &self.source, &self.event_id)?;
                None
            }
            other => other,
        };
        if let Some((id, state, _)) = held {
            if state != CLAIM_ONLY {
                return Ok(Ok(Enqueued::Duplicate(MessageId(id))));
            }
        }
        if let Some(limit) = self.max_depth {
            let live = u64::try_from(tx.state.live).unwrap_or(0);
            if live >= limit {
                return Ok(Err(StoreError::Full { depth: live }));
            }
        }
        match held {
            // A record holding only a claim: the event is stored on it.
            Some((id, _, _)) => {
                tx.conn.prepare_cached(ATTACH)?.execute(params![
                    id,
                    self.now,
                    self.received_at,
                    self.event_type,
                    self.origin,
                    self.order_key,
                    self.order_pos
                ])?;
                self.store_body(tx, id)
            }
            None => self.store(tx),
        }
    }
}

/// Leases up to `max` ready messages.
pub(super) struct Lease {
    pub(super) max: usize,
    pub(super) now: i64,
    pub(super) expires: i64,
    pub(super) max_attempts: u32,
}

impl Write for Lease {
    type Output = Vec<LeasedRow>;
    const ONLY_FOR_CALLER: bool = true;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<Vec<LeasedRow>>> {
        if self.max == 0 {
            return Ok(Ok(Vec::new()));
        }
        kill_expired(tx, self.now, self.max_attempts)?;
        order_keys::give_way(tx.conn, self.now)?;
        let token = tx.state.token();
        let conn = tx.conn;
        let mut stmt = conn.prepare_cached(LEASE)?;
        let limit = i64::try_from(self.max).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![self.expires, token, self.now, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<i64>>(9)?,
                r.get::<_, Option<i64>>(10)?,
            ))
        })?;
        let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.sort_unstable_by_key(|row| row.0);
        let mut leased = Vec::with_capacity(rows.len());
        let mut body = conn.prepare_cached(BODY)?;
        for row in rows {
            let (id, attempts, source, event_id, received_at, last_error, event_type, origin) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
            let (order_key, order_pos, watermark) = (row.8, row.9, row.10);
            let bytes: Option<(Vec<u8>, Vec<u8>)> = body
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((headers, body)) = bytes else {
                conn.prepare_cached(MISSING_BODY)?
                    .execute(params![id, self.now])?;
                tx.state.live -= 1;
                if let Some(key) = &order_key {
                    let slot = order_keys::Slot::of(order_pos, id);
                    order_keys::settled(conn, &source, key, slot, None, watermark, self.now)?;
                }
                continue;
            };
            leased.push(LeasedRow {
                id,
                event: EventRow {
                    source,
                    event_id,
                    received_at,
                    headers,
                    body,
                    event_type,
                    origin,
                    order_key,
                    order_pos,
                },
                attempts,
                last_error,
                token,
                expires: self.expires,
                watermark,
            });
        }
        Ok(Ok(leased))
    }
}

/// Moves leases that expired on their last allowed attempt to the dead letters.
fn kill_expired(tx: &mut Tx<'_>, now: i64, max_attempts: u32) -> rusqlite::Result<()> {
    type Killed = (String, Option<String>, Option<i64>, i64, Option<i64>);
    let killed: Vec<Killed> = tx
        .conn
        .prepare_cached(KILL_EXPIRED)?
        .query_map(params![EXPIRED_ON_LAST_ATTEMPT, now, max_attempts], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    tx.state.live -= i64::try_from(killed.len()).unwrap_or(0);
    for (source, key, mark, id, position) in killed {
        if let Some(key) = key {
            let slot = order_keys::Slot::of(position, id);
            order_keys::settled(tx.conn, &source, &key, slot, None, mark, now)?;
        }
    }
    Ok(())
}

/// How a lease is settled.
pub(super) enum Action {
    /// Moves the expiry to this time.
    Extend { expires: i64 },
    /// Handled at `now`; forgotten at `forget_at`, or at once if `forget` (a retention of
    /// zero).
    Ack {
        forget_at: i64,
        now: i64,
        forget: bool,
    },
    /// Settled without handling (stale), like an ack that does not move the watermark.
    Skip {
        forget_at: i64,
        now: i64,
        forget: bool,
        reason: String,
    },
    /// Ready again at `at`, recording the error.
    Retry { at: i64, error: String },
    /// Ready again at `at`, giving back the attempt.
    Defer { at: i64 },
    /// To the dead letters.
    DeadLetter { reason: String, now: i64 },
}

/// Settles the message under a lease, fenced by its token.
pub(super) struct Settle {
    pub(super) id: i64,
    pub(super) token: i64,
    pub(super) action: Action,
}

impl Write for Settle {
    type Output = ();

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<()>> {
        let (id, token) = (self.id, self.token);
        // Acks and skips forget the record at once with a retention of zero, and when a
        // batch failed (a full disk, say), since a delete needs no new page.
        let forget_now = match &self.action {
            Action::Ack { forget, .. } | Action::Skip { forget, .. } => tx.degraded || *forget,
            _ => false,
        };
        if let Action::Extend { expires } = &self.action {
            let n = tx
                .conn
                .prepare_cached(EXTEND)?
                .execute(params![id, token, expires])?;
            return Ok(if n == 1 {
                Ok(())
            } else {
                Err(StoreError::LeaseLost)
            });
        }
        type Keyed = (String, Option<String>, Option<i64>, Option<i64>);
        let read = |r: &Row<'_>| -> rusqlite::Result<Keyed> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        };
        let settled: Option<Keyed> = if forget_now {
            let deleted: Option<(Keyed, String)> = tx
                .conn
                .prepare_cached(ACK_NOW)?
                .query_row(params![id, token], |r| Ok((read(r)?, r.get(4)?)))
                .optional()?;
            deleted.map(|(keyed, event_id)| {
                tx.tail.remove(&keyed.0, &event_id);
                keyed
            })
        } else {
            let conn = tx.conn;
            match &self.action {
                Action::Extend { .. } => None,
                Action::Ack { forget_at, now, .. } => conn
                    .prepare_cached(ACK)?
                    .query_row(params![id, token, forget_at, now], read)
                    .optional()?,
                Action::Skip {
                    forget_at,
                    now,
                    reason,
                    ..
                } => conn
                    .prepare_cached(SKIP)?
                    .query_row(params![id, token, forget_at, now, reason], read)
                    .optional()?,
                Action::Retry { at, error } => conn
                    .prepare_cached(RETRY)?
                    .query_row(params![id, token, at, error], read)
                    .optional()?,
                Action::Defer { at } => conn
                    .prepare_cached(DEFER)?
                    .query_row(params![id, token, at], read)
                    .optional()?,
                Action::DeadLetter { reason, now } => conn
                    .prepare_cached(DEAD_LETTER)?
                    .query_row(params![id, token, reason, now], read)
                    .optional()?,
            }
        };
        let Some((source, order_key, order_pos, order_mark)) = settled else {
            return Ok(Err(StoreError::LeaseLost));
        };
        match &self.action {
            Action::Ack { .. } | Action::Skip { .. } | Action::DeadLetter { .. } => {
                tx.state.live -= 1
            }
            _ => {}
        }
        if forget_now {
            tx.conn.prepare_cached(FORGET_BODY)?.execute(params![id])?;
        }
        if let Some(key) = order_key {
            let (conn, mark) = (tx.conn, order_mark);
            let slot = order_keys::Slot::of(order_pos, id);
            match &self.action {
                Action::Ack { now, .. } => {
                    order_keys::settled(conn, &source, &key, slot, order_pos, mark, *now)?
                }
                Action::Skip { now, .. } | Action::DeadLetter { now, .. } => {
                    order_keys::settled(conn, &source, &key, slot, None, mark, *now)?
                }
                Action::Retry { at, .. } | Action::Defer { at } => {
                    order_keys::requeued(conn, id, &source, &key, mark, *at)?
                }
                // Returned above.
                Action::Extend { .. } => {}
            }
        }
        Ok(Ok(()))
    }
}

/// Makes the dead letters a filter picks ready again.
pub(super) struct Replay {
    pub(super) filter: DeadFilter,
    pub(super) now: i64,
    pub(super) max_attempts: u32,
}

impl Write for Replay {
    type Output = u64;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<u64>> {
        kill_expired(tx, self.now, self.max_attempts)?;
        let sql = format!(
            "UPDATE hookdock_events
             SET {REPLAYED}, available_at = ?7
             WHERE id IN (SELECT id FROM hookdock_events WHERE {DEAD_PICK})
             RETURNING id, source, order_key, order_pos"
        );
        let f = &self.filter;
        let replayed: Vec<(i64, String, Option<String>, Option<i64>)> = tx
            .conn
            .prepare_cached(&sql)?
            .query_map(
                params![f.message, f.source, f.event_id, f.reason, f.after, f.limit, self.now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let n = replayed.len();
        for (id, source, key, position) in replayed {
            if let Some(key) = key {
                order_keys::join(tx.conn, id, &source, &key, position)?;
            }
        }
        tx.state.live += i64::try_from(n).unwrap_or(0);
        Ok(Ok(n as u64))
    }
}

/// Forgets up to [`PURGE_CHUNK`] records whose time has come.
pub(super) struct Purge {
    now: i64,
}

impl Purge {
    pub(super) fn at(now: i64) -> Self {
        Self { now }
    }
}

impl Write for Purge {
    type Output = u64;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<u64>> {
        let limit = PURGE_CHUNK as i64;
        tx.conn
            .prepare_cached(PURGE_BODIES)?
            .execute(params![self.now, limit])?;
        let mut purge = tx.conn.prepare_cached(PURGE)?;
        let mut rows = purge.query(params![self.now, limit])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            n += 1;
            if row.get::<_, i64>(2)? == 0 {
                tx.tail
                    .remove(row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
            }
        }
        Ok(Ok(n))
    }
}

/// The dead letters a filter picks, with their bytes; on the reader connection.
pub(super) fn dead_letters(conn: &Connection, f: &DeadFilter) -> rusqlite::Result<Vec<DeadRow>> {
    let sql = format!(
        "SELECT e.id, e.source, e.event_id, e.received_at, b.headers, b.body,
                e.dead_reason, e.attempts, e.dead_at, e.event_type, e.origin,
                e.order_key, e.order_pos
         FROM (SELECT * FROM hookdock_events WHERE {DEAD_PICK}) AS e
         LEFT JOIN hookdock_event_bodies AS b ON b.id = e.id
         ORDER BY e.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![f.message, f.source, f.event_id, f.reason, f.after, f.limit],
        |r: &Row<'_>| {
            Ok(DeadRow {
                id: r.get(0)?,
                event: EventRow {
                    source: r.get(1)?,
                    event_id: r.get(2)?,
                    received_at: r.get(3)?,
                    headers: r.get::<_, Option<_>>(4)?.unwrap_or_default(),
                    body: r.get::<_, Option<_>>(5)?.unwrap_or_default(),
                    event_type: r.get(9)?,
                    origin: r.get(10)?,
                    order_key: r.get(11)?,
                    order_pos: r.get(12)?,
                },
                reason: r.get(6)?,
                attempts: r.get(7)?,
                dead_at: r.get(8)?,
            })
        },
    )?;
    rows.collect()
}

/// Counts by state, in one statement (one snapshot); every count is answered from an index.
pub(super) fn counts(
    conn: &Connection,
    now: i64,
    max_attempts: u32,
) -> rusqlite::Result<StateCounts> {
    let mut stmt = conn.prepare_cached(
        "SELECT
           (SELECT count(*) FROM hookdock_events WHERE state < 2 AND available_at <= ?1),
           (SELECT count(*) FROM hookdock_events WHERE state < 2 AND available_at > ?1),
           (SELECT count(*) FROM hookdock_events WHERE state = 1 AND available_at > ?1),
           (SELECT count(*) FROM hookdock_events
              WHERE state = 1 AND available_at <= ?1 AND attempts >= ?2),
           (SELECT count(*) FROM hookdock_events WHERE state = 2)",
    )?;
    stmt.query_row(params![now, max_attempts], |r| {
        let (due, later, leased_live, expired_last, dead): (i64, i64, i64, i64, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        // `due` holds waiting messages and expired leases (with attempts left or not);
        // `later` holds scheduled ones and live leases.
        Ok(StateCounts {
            waiting_due: due - expired_last,
            waiting_later: later - leased_live,
            leased_live,
            leased_expired: 0,
            leased_expired_last: expired_last,
            dead,
        })
    })
}

#[cfg(test)]
pub(super) const ALL_SQL: [&str; 18] = [
    INSERT_EVENT,
    INSERT_BODY,
    FIND,
    ATTACH,
    FORGET,
    FORGET_BODY,
    KILL_EXPIRED,
    LEASE,
    BODY,
    MISSING_BODY,
    EXTEND,
    ACK,
    ACK_NOW,
    RETRY,
    DEFER,
    DEAD_LETTER,
    PURGE_BODIES,
    PURGE,
];
