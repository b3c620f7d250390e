//! [`PgQueue`]: the delivery state in `hookdock_queue`: lease, settle, dead letters, counts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::batch::{fail_all, on_conflict_retry, BatchOp};
use super::events::{self, EnqueueReq, Shared};
use super::order_keys;
use super::schema::{Schema, Sql};
use super::PgStore;
use crate::event::RawEvent;
use crate::store::codec::{duration_micros, from_micros, to_micros};
use crate::store::sql::{lease_token, DeadFilter, DeadRow, EventRow, LeasedRow, StateCounts, DEAD};
use crate::store::{
    key, DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, Leased, Queue, QueueOptions,
    QueueStats, StoreError, Wake, EXPIRED_ON_LAST_ATTEMPT,
};

/// $1 now, $2 max, $3 expiry, $4 max attempts, $5 reason for expired last attempts.
const LEASE: &str = "
WITH picked AS (
    SELECT q.id, q.available_at,
           CASE WHEN q.state = 1 THEN EXISTS (
               SELECT 1 FROM {schema}.hookdock_events h
               WHERE h.id = q.id AND h.order_key IS NOT NULL) ELSE false END AS hold
    FROM {schema}.hookdock_queue q
    WHERE q.state < 2 AND q.available_at <= $1
    ORDER BY q.available_at, q.id
    LIMIT $2
    FOR UPDATE OF q SKIP LOCKED
), leased AS (
    UPDATE {schema}.hookdock_queue q SET
        state        = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN 2 ELSE 1 END,
        available_at = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN q.available_at ELSE $3 END,
        attempts     = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN q.attempts ELSE q.attempts + 1 END,
        lease_token  = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN q.lease_token ELSE q.lease_token + 1 END,
        dead_reason  = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN $5 ELSE NULL END,
        dead_at      = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN $1 ELSE NULL END,
        done_at      = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN $1 ELSE NULL END,
        first_attempt_at = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN q.first_attempt_at
                                ELSE COALESCE(q.first_attempt_at, $1) END,
        last_attempt_at  = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN q.last_attempt_at
                                ELSE $1 END
    FROM picked
    WHERE q.id = picked.id AND NOT picked.hold
    RETURNING q.id, q.state, picked.available_at AS was_available, q.attempts, q.lease_token,
              q.last_error, q.origin
)
SELECT l.id, l.state, l.was_available, e.source, e.event_id, e.received_at, e.headers,
       e.body, l.attempts, l.lease_token, l.last_error, e.event_type, l.origin, e.order_key,
       e.order_pos, k.watermark
FROM leased l
LEFT JOIN {schema}.hookdock_events e ON e.id = l.id AND l.state = 1
LEFT JOIN {schema}.hookdock_order_keys k ON k.source = e.source AND k.order_key = e.order_key
UNION ALL
SELECT id, (-1)::int2, available_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL
FROM picked WHERE hold";

/// What [`LEASE`] returns as the state of an expired keyed lease it left alone (locked,
/// unchanged): its key decides what happens to it, in [`PgQueue::expired_keyed`].
const HELD: i16 = -1;

/// Excludes records with an ordering key: the one-statement paths settle only unkeyed
/// records; a keyed one goes through [`PgQueue::settle_keyed`], in a transaction with its
/// key.
macro_rules! unkeyed {
    () => {
        "
  AND NOT EXISTS (SELECT 1 FROM {schema}.hookdock_events g
                  WHERE g.id = q.id AND g.order_key IS NOT NULL)"
    };
}

/// A settling statement of one record, returning its key.
macro_rules! keyed {
    ($update:expr) => {
        concat!(
            "WITH u AS (",
            $update,
            " RETURNING q.id)
SELECT e.source, e.order_key, e.order_pos FROM u JOIN {schema}.hookdock_events e ON e.id = u.id"
        )
    };
}

/// $1 ids (`NULL`: any), $2 now: expired keyed leases, locked (skipping locked ones).
const EXPIRED_KEYED: &str = "
SELECT q.id, q.attempts, e.source, e.order_key, q.available_at
FROM {schema}.hookdock_queue q JOIN {schema}.hookdock_events e ON e.id = q.id
WHERE ($1::int8[] IS NULL OR q.id = ANY($1)) AND q.state = 1 AND q.available_at <= $2
  AND e.order_key IS NOT NULL
ORDER BY q.id
FOR UPDATE OF q SKIP LOCKED";

/// $1 id, $2 reason, $3 now.
const KILL: &str = "
UPDATE {schema}.hookdock_queue SET state = 2, dead_reason = $2, dead_at = $3, done_at = $3
WHERE id = $1 AND state = 1";

/// $1 id: an expired lease making way, waiting again (its attempt stays counted), parked.
const GIVE_WAY: &str = "
UPDATE {schema}.hookdock_queue SET state = 0, available_at = 9223372036854775807
WHERE id = $1 AND state = 1";

/// $1 id, $2 now, $3 expiry, $4 when it was available: leases an expired keyed lease again;
/// columns as [`LEASE`].
const RELEASE: &str = "
WITH l AS (
    UPDATE {schema}.hookdock_queue q SET state = 1, available_at = $3,
        attempts = q.attempts + 1, lease_token = q.lease_token + 1,
        first_attempt_at = COALESCE(q.first_attempt_at, $2), last_attempt_at = $2
    WHERE q.id = $1 AND q.state = 1
    RETURNING q.id, q.state, q.attempts, q.lease_token, q.last_error, q.origin
)
SELECT l.id, l.state, $4::int8, e.source, e.event_id, e.received_at, e.headers,
       e.body, l.attempts, l.lease_token, l.last_error, e.event_type, l.origin, e.order_key,
       e.order_pos, k.watermark
FROM l
JOIN {schema}.hookdock_events e ON e.id = l.id
LEFT JOIN {schema}.hookdock_order_keys k ON k.source = e.source AND k.order_key = e.order_key";

/// $1 channel.
const NOTIFY: &str = "SELECT pg_notify($1, '')";

const EXTEND: &str = "
UPDATE {schema}.hookdock_queue SET available_at = $3
WHERE id = $1 AND lease_token = $2 AND state = 1
RETURNING id";

/// $1 ids, $2 tokens, $3 when the handled records are forgotten, $4 now.
const ACK: &str = concat!(
    "
UPDATE {schema}.hookdock_queue q SET state = 3, available_at = $3, done_at = $4
FROM UNNEST($1::int8[], $2::int8[]) AS a(id, token)
WHERE q.id = a.id AND q.lease_token = a.token AND q.state = 1",
    unkeyed!(),
    "
RETURNING q.id"
);

/// [`ACK`] of keyed records: returns their keys.
const ACK_KEYED: &str = "
WITH u AS (
    UPDATE {schema}.hookdock_queue q SET state = 3, available_at = $3, done_at = $4
    FROM UNNEST($1::int8[], $2::int8[]) AS a(id, token)
    WHERE q.id = a.id AND q.lease_token = a.token AND q.state = 1
    RETURNING q.id
)
SELECT u.id, e.source, e.order_key, e.order_pos
FROM u JOIN {schema}.hookdock_events e ON e.id = u.id";

/// [`ACK_FORGET`] of keyed records: returns their keys.
const ACK_FORGET_KEYED: &str = "
WITH acked AS (
    DELETE FROM {schema}.hookdock_queue q
    USING UNNEST($1::int8[], $2::int8[]) AS a(id, token)
    WHERE q.id = a.id AND q.lease_token = a.token AND q.state = 1
    RETURNING q.id
)
DELETE FROM {schema}.hookdock_events e USING acked WHERE e.id = acked.id
RETURNING e.id, e.source, e.order_key, e.order_pos";

/// The ack of a store that retains nothing: forgets the records at once. $1 ids, $2 tokens.
const ACK_FORGET: &str = concat!(
    r#"
WITH acked AS (
    DELETE FROM {schema}.hookdock_queue q
    USING UNNEST($1::int8[], $2::int8[]) AS a(id, token)
    WHERE q.id = a.id AND q.lease_token = a.token AND q.state = 1"#,
    unkeyed!(),
    r#"
    RETURNING q.id
), gone AS (
    DELETE FROM {schema}.hookdock_events e USING acked WHERE e.id = acked.id
)
SELECT id FROM acked"#
);

/// $1 id, $2 token, $3 at, $4 error (NULL: a deferral, which gives the attempt back and
/// records no error), $5 now, $6 channel.
macro_rules! retry_update {
    () => {
        "
    UPDATE {schema}.hookdock_queue q
    SET state = 0, available_at = $3, last_error = COALESCE($4, q.last_error),
        attempts = CASE WHEN $4::text IS NULL THEN GREATEST(q.attempts - 1, 0) ELSE q.attempts END
    WHERE q.id = $1 AND q.lease_token = $2 AND q.state = 1"
    };
}

const RETRY: &str = concat!(
    "
WITH u AS (",
    retry_update!(),
    unkeyed!(),
    "
    RETURNING id
), wake AS (
    SELECT pg_notify($6, '') FROM u WHERE $3 <= $5
)
SELECT id, (SELECT count(*) FROM wake) AS woke FROM u"
);

/// [`RETRY`] of a keyed record, $1..$4.
const RETRY_KEYED: &str = keyed!(retry_update!());

macro_rules! dead_letter_update {
    () => {
        "
UPDATE {schema}.hookdock_queue q SET state = 2, dead_reason = $3, dead_at = $4, done_at = $4
WHERE q.id = $1 AND q.lease_token = $2 AND q.state = 1"
    };
}

const DEAD_LETTER: &str = concat!(dead_letter_update!(), unkeyed!(), " RETURNING q.id");

const DEAD_LETTER_KEYED: &str = keyed!(dead_letter_update!());

/// $1 id, $2 token, $3 when it is forgotten, $4 now, $5 the reason: settled as stale.
const SKIP: &str = keyed!(
    "
UPDATE {schema}.hookdock_queue q SET state = 5, available_at = $3, done_at = $4, last_error = $5
WHERE q.id = $1 AND q.lease_token = $2 AND q.state = 1"
);

/// Moves leases that expired on their last attempt to the dead letters (keyed ones in
/// [`PgQueue::expired_keyed`]).
const REAP: &str = concat!(
    "
UPDATE {schema}.hookdock_queue q
SET state = 2, dead_reason = $3, dead_at = $1, done_at = $1
WHERE q.state = 1 AND q.available_at <= $1 AND q.attempts >= $2",
    unkeyed!()
);

/// The dead letters a [`DeadFilter`] picks, oldest first: $1 id, $2 source, $3 event id,
/// $4 text in the reason, $5 after id, $6 limit (each `NULL` for "any"). Listing and
/// replaying share it, so they always pick the same rows.
macro_rules! dead_letter_pick {
    () => {
        "
FROM {schema}.hookdock_queue q
JOIN {schema}.hookdock_events e ON e.id = q.id
WHERE q.state = 2
  AND ($1::int8 IS NULL OR q.id = $1)
  AND ($2::text IS NULL OR e.source = $2)
  AND ($3::text IS NULL OR e.event_id = $3)
  AND ($4::text IS NULL OR strpos(q.dead_reason, $4) > 0)
  AND ($5::int8 IS NULL OR q.id > $5)
ORDER BY q.id
LIMIT $6"
    };
}

const DEAD_LETTERS: &str = concat!(
    "
SELECT q.id, e.source, e.event_id, e.received_at, e.headers, e.body, q.attempts,
       q.dead_reason, q.dead_at, e.event_type, q.origin, e.order_key, e.order_pos",
    dead_letter_pick!()
);

/// $1-$6 as for [`DEAD_LETTERS`], $7 now, $8 the wake channel; returns each replayed
/// record's key (the keyed ones join their keys in the same transaction).
const REPLAY: &str = concat!(
    "
WITH picked AS (
SELECT q.id",
    dead_letter_pick!(),
    "
FOR UPDATE OF q
), u AS (
    UPDATE {schema}.hookdock_queue q
    SET state = 0, attempts = 0, available_at = $7, dead_reason = NULL, dead_at = NULL,
        last_error = NULL, first_attempt_at = NULL, last_attempt_at = NULL, done_at = NULL,
        origin = 1, replays = q.replays + 1
    FROM picked WHERE q.id = picked.id
    RETURNING q.id
), wake AS (
    SELECT pg_notify($8, '') FROM (SELECT 1 FROM u LIMIT 1) AS any_replayed
)
SELECT u.id, e.source, e.order_key, e.order_pos, (SELECT count(*) FROM wake)
FROM u JOIN {schema}.hookdock_events e ON e.id = u.id"
);

/// $1 now, $2 max attempts.
const STATS: &str = "
SELECT
    count(*) FILTER (WHERE state = 0 AND available_at <= $1),
    count(*) FILTER (WHERE state = 0 AND available_at > $1),
    count(*) FILTER (WHERE state = 1 AND available_at > $1),
    count(*) FILTER (WHERE state = 1 AND available_at <= $1 AND attempts < $2),
    count(*) FILTER (WHERE state = 1 AND available_at <= $1 AND attempts >= $2),
    count(*) FILTER (WHERE state = 2)
FROM {schema}.hookdock_queue WHERE state < 3";

/// $1 now. The writability probe: one committed write to a row no other statement touches.
const PROBE: &str = "UPDATE {schema}.hookdock_health SET probed_at = $1 WHERE id = 1";

/// The queue's statements for one schema.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    lease: Sql,
    extend: Sql,
    ack: Sql,
    ack_forget: Sql,
    ack_keyed: Sql,
    ack_forget_keyed: Sql,
    retry: Sql,
    retry_keyed: Sql,
    dead_letter: Sql,
    dead_letter_keyed: Sql,
    skip: Sql,
    expired_keyed: Sql,
    kill: Sql,
    give_way: Sql,
    release: Sql,
    reap: Sql,
    dead_letters: Sql,
    replay: Sql,
    stats: Sql,
    probe: Sql,
}

impl Statements {
    pub(super) fn new(s: &Schema) -> Self {
        Self {
            lease: s.sql(LEASE),
            extend: s.sql(EXTEND),
            ack: s.sql(ACK),
            ack_forget: s.sql(ACK_FORGET),
            ack_keyed: s.sql(ACK_KEYED),
            ack_forget_keyed: s.sql(ACK_FORGET_KEYED),
            retry: s.sql(RETRY),
            retry_keyed: s.sql(RETRY_KEYED),
            dead_letter: s.sql(DEAD_LETTER),
            dead_letter_keyed: s.sql(DEAD_LETTER_KEYED),
            skip: s.sql(SKIP),
            expired_keyed: s.sql(EXPIRED_KEYED),
            kill: s.sql(KILL),
            give_way: s.sql(GIVE_WAY),
            release: s.sql(RELEASE),
            reap: s.sql(REAP),
            dead_letters: s.sql(DEAD_LETTERS),
            replay: s.sql(REPLAY),
            stats: s.sql(STATS),
            probe: s.sql(PROBE),
        }
    }
}

/// A [`Queue`] in PostgreSQL, shared by any number of receiver and worker processes; see the
/// [module docs](super) for how it works and the tables it uses. From [`PgStore::queue`].
///
/// Enqueue resolves once the event is committed ([`Durability::ServerCommit`]). It is also
/// the store's [`EventLog`](crate::store::EventLog): listing, counts and durable replay jobs
/// over the same records. Cheap to clone; its batching tasks belong to the store.
#[derive(Debug, Clone)]
pub struct PgQueue {
    store: PgStore,
    options: QueueOptions,
}

impl PgQueue {
    pub(super) fn new(store: PgStore, options: QueueOptions) -> Self {
        Self { store, options }
    }

    /// The store this queue lives in.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// The options this queue was built with.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    fn sql(&self) -> &Statements {
        &self.store.inner.shared.sql.queue
    }

    fn max_attempts(&self) -> i32 {
        i32::try_from(self.options.max_attempts).unwrap_or(i32::MAX)
    }

    /// Moves leases that expired on their last allowed attempt to the dead letters.
    pub(super) async fn reap(&self) -> Result<(), StoreError> {
        sqlx::query(self.sql().reap.q())
            .bind(self.store.now())
            .bind(self.max_attempts())
            .bind(EXPIRED_ON_LAST_ATTEMPT)
            .execute(self.store.pool())
            .await?;
        self.expired_keyed(None, None).await?;
        Ok(())
    }

    /// Expired leases of keyed records (these `ids`, or any), each in turn under its key's
    /// lock, in one transaction: one on its last attempt goes to the dead letters and its
    /// key moves on; with `lease` (the expiry of new leases) one that an earlier record of
    /// its key arrived behind makes way for it, and the others are leased again. Returns
    /// the records leased and how many were dead-lettered or made way.
    pub(super) async fn expired_keyed(
        &self,
        ids: Option<&[i64]>,
        lease: Option<i64>,
    ) -> Result<(Vec<LeasedRow>, usize), StoreError> {
        let shared = &self.store.inner.shared;
        let (sql, order) = (self.sql(), &shared.sql.order);
        let now = self.store.now();
        let mut tx = self.store.pool().begin().await?;
        let rows = sqlx::query(sql.expired_keyed.q())
            .bind(ids)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let mut expired = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(2)?,
                    r.try_get::<String, _>(3)?,
                    r.try_get::<i64, _>(0)?,
                    r.try_get::<i32, _>(1)?,
                    r.try_get::<i64, _>(4)?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        // Keys locked in key order, as every transaction does.
        expired.sort_unstable();
        let (mut leased, mut moved) = (Vec::new(), 0);
        for (source, key, id, attempts, was_available) in expired {
            let key = (source.as_str(), key.as_str());
            if attempts >= self.max_attempts() {
                sqlx::query(sql.kill.q())
                    .bind(id)
                    .bind(EXPIRED_ON_LAST_ATTEMPT)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                order_keys::next(&mut tx, order, key, now).await?;
                moved += 1;
                continue;
            }
            let Some(expires) = lease else { continue };
            if order_keys::must_give_way(&mut tx, order, id, key).await? {
                sqlx::query(sql.give_way.q())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                order_keys::next(&mut tx, order, key, now).await?;
                moved += 1;
                continue;
            }
            let row = sqlx::query(sql.release.q())
                .bind(id)
                .bind(now)
                .bind(expires)
                .bind(was_available)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = row {
                leased.push(leased_row(&row, expires)?);
            }
        }
        if moved > 0 {
            sqlx::query(NOTIFY)
                .bind(&shared.channel)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((leased, moved))
    }

    /// Settles a keyed record (or one that may be) in a transaction with its key: the
    /// change, then the key's next record (and for a retry due now, the wake-up).
    async fn settle_keyed(&self, lease: &Lease, action: Settle<'_>) -> Result<(), StoreError> {
        let shared = &self.store.inner.shared;
        let (sql, order) = (self.sql(), &shared.sql.order);
        let (id, token) = (lease.message.0, lease_token(lease.token)?);
        let now = self.store.now();
        let mut tx = self.store.pool().begin().await?;
        let q = match action {
            Settle::Retry { at, error } => sqlx::query(sql.retry_keyed.q())
                .bind(id)
                .bind(token)
                .bind(at)
                .bind(error),
            Settle::DeadLetter { reason } => sqlx::query(sql.dead_letter_keyed.q())
                .bind(id)
                .bind(token)
                .bind(reason)
                .bind(now),
            Settle::Skip { reason } => sqlx::query(sql.skip.q())
                .bind(id)
                .bind(token)
                .bind(now.saturating_add(shared.retention))
                .bind(now)
                .bind(reason),
        };
        let Some(row) = q.fetch_optional(&mut *tx).await? else {
            return Err(StoreError::LeaseLost);
        };
        let source: String = row.try_get(0)?;
        let key: Option<String> = row.try_get(1)?;
        let at = match action {
            Settle::Retry { at, .. } => at,
            _ => now,
        };
        let keyed = key.is_some();
        if let Some(key) = key {
            order_keys::next(&mut tx, order, (&source, &key), at).await?;
        }
        if keyed || at <= now {
            sqlx::query(NOTIFY)
                .bind(&shared.channel)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A retry (`error` given: kept, attempt kept) or a deferral (no error: attempt given
    /// back), in one statement that also wakes idle workers if the message is ready now.
    async fn requeue(
        &self,
        lease: &Lease,
        at: SystemTime,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store.check_open()?;
        let row = sqlx::query(self.sql().retry.q())
            .bind(lease.message.0)
            .bind(lease_token(lease.token)?)
            .bind(to_micros(at))
            .bind(error)
            .bind(self.store.now())
            .bind(self.store.inner.schema.channel())
            .fetch_optional(self.store.pool())
            .await?;
        match row {
            Some(_) => Ok(()),
            // Keyed, or lost.
            None => {
                let at = to_micros(at);
                self.settle_keyed(lease, Settle::Retry { at, error }).await
            }
        }
    }
}

/// A settle of [`PgQueue::settle_keyed`].
#[derive(Clone, Copy)]
enum Settle<'a> {
    Retry { at: i64, error: Option<&'a str> },
    DeadLetter { reason: &'a str },
    Skip { reason: &'a str },
}

/// A row of [`LEASE`] (or [`RELEASE`]) of a leased record.
fn leased_row(row: &PgRow, expires: i64) -> Result<LeasedRow, sqlx::Error> {
    Ok(LeasedRow {
        id: row.try_get(0)?,
        event: event_row(row, 3, 11)?,
        attempts: i64::from(row.try_get::<i32, _>(8)?),
        token: row.try_get(9)?,
        last_error: row.try_get(10)?,
        expires,
        watermark: row.try_get(15)?,
    })
}

/// The columns `source, event_id, received_at, headers, body` starting at `at`, and
/// `event_type, origin, order_key, order_pos` starting at `tail`.
pub(super) fn event_row(row: &PgRow, at: usize, tail: usize) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        source: row.try_get(at)?,
        event_id: row.try_get(at + 1)?,
        received_at: row.try_get(at + 2)?,
        headers: row.try_get(at + 3)?,
        body: row.try_get(at + 4)?,
        event_type: row.try_get(tail)?,
        origin: i64::from(row.try_get::<i16, _>(tail + 1)?),
        order_key: row.try_get(tail + 2)?,
        order_pos: row.try_get(tail + 3)?,
    })
}

/// Binds the filter as $1..$6.
fn bind_filter<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    f: &'q DeadFilter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(f.message)
        .bind(f.source.as_deref())
        .bind(f.event_id.as_deref())
        .bind(f.reason.as_deref())
        .bind(f.after)
        .bind(f.limit)
}

/// Marks acked messages handled, if their token is current.
pub(super) struct AckOp {
    shared: Arc<Shared>,
}

impl AckOp {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl AckOp {
    /// Acks keyed records (sorted by id) in one transaction: each key's watermark raised,
    /// then its next record made active. Returns the ids acked.
    async fn ack_keyed(
        &self,
        leases: &[(i64, i64)],
        now: i64,
        forget_at: i64,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let ids: Vec<i64> = leases.iter().map(|l| l.0).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.1).collect();
        let sql = &self.shared.sql;
        let mut tx = self.shared.pool.begin().await?;
        let q = if self.shared.retention == 0 {
            sqlx::query(sql.queue.ack_forget_keyed.q())
                .bind(&ids)
                .bind(&tokens)
        } else {
            sqlx::query(sql.queue.ack_keyed.q())
                .bind(&ids)
                .bind(&tokens)
                .bind(forget_at)
                .bind(now)
        };
        let rows = q.fetch_all(&mut *tx).await?;
        let mut acked = Vec::with_capacity(rows.len());
        let mut keys: Vec<(String, String, Option<i64>)> = Vec::new();
        for row in &rows {
            acked.push(row.try_get::<i64, _>(0)?);
            if let Some(key) = row.try_get::<Option<String>, _>(2)? {
                keys.push((row.try_get(1)?, key, row.try_get(3)?));
            }
        }
        keys.sort_unstable();
        for (source, key, position) in &keys {
            let key = (source.as_str(), key.as_str());
            if let Some(position) = position {
                order_keys::raise_watermark(&mut tx, &sql.order, key, *position).await?;
            }
            order_keys::next(&mut tx, &sql.order, key, now).await?;
        }
        if !keys.is_empty() {
            sqlx::query(NOTIFY)
                .bind(&self.shared.channel)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(acked)
    }
}

impl BatchOp for AckOp {
    type Req = (i64, i64);
    type Resp = ();

    async fn run(&self, leases: Vec<(i64, i64)>) -> Vec<Result<(), StoreError>> {
        // In id order, so concurrent batches lock rows in the same order.
        let mut sorted = leases.clone();
        sorted.sort_unstable();
        let ids: Vec<i64> = sorted.iter().map(|l| l.0).collect();
        let tokens: Vec<i64> = sorted.iter().map(|l| l.1).collect();
        let now = self.shared.now();
        let forget_at = now.saturating_add(self.shared.retention);
        let sql = &self.shared.sql.queue;
        let rows = match on_conflict_retry(|| {
            // A retention of zero forgets a handled event at once.
            let q = if self.shared.retention == 0 {
                sqlx::query(sql.ack_forget.q()).bind(&ids).bind(&tokens)
            } else {
                sqlx::query(sql.ack.q())
                    .bind(&ids)
                    .bind(&tokens)
                    .bind(forget_at)
                    .bind(now)
            };
            q.fetch_all(&self.shared.pool)
        })
        .await
        {
            Ok(rows) => rows,
            Err(e) => return fail_all(leases.len(), e),
        };
        let mut done: HashSet<i64> = rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>(0).ok())
            .collect();
        // The rest are keyed (or lost): acked in a transaction with their keys.
        let rest: Vec<(i64, i64)> = sorted
            .iter()
            .filter(|(id, _)| !done.contains(id))
            .copied()
            .collect();
        if !rest.is_empty() {
            match on_conflict_retry(|| self.ack_keyed(&rest, now, forget_at)).await {
                Ok(acked) => done.extend(acked),
                Err(e) => {
                    let e = std::sync::Arc::new(e);
                    return leases
                        .iter()
                        .map(|(id, _)| {
                            if done.remove(id) {
                                Ok(())
                            } else {
                                Err(super::error::PgError::Shared(e.clone()).into())
                            }
                        })
                        .collect();
                }
            }
        }
        leases
            .iter()
            // The same lease acked twice in one batch: the second finds it settled.
            .map(|(id, _)| {
                if done.remove(id) {
                    Ok(())
                } else {
                    Err(StoreError::LeaseLost)
                }
            })
            .collect()
    }
}

#[async_trait]
impl Queue for PgQueue {
    fn durability(&self) -> Durability {
        Durability::ServerCommit
    }

    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        key::validate_event(&event)?;
        self.store.check_open()?;
        let req = EnqueueReq {
            event,
            max_depth: self.options.max_depth,
        };
        self.store.inner.enqueues.call(req).await
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        self.store.check_open()?;
        let mut out = Vec::new();
        while out.len() < max {
            let now = self.store.now();
            let expires = now.saturating_add(duration_micros(lease_for));
            let want = i64::try_from(max - out.len()).unwrap_or(i64::MAX);
            let rows = sqlx::query(self.sql().lease.q())
                .bind(now)
                .bind(want)
                .bind(expires)
                .bind(self.max_attempts())
                .bind(EXPIRED_ON_LAST_ATTEMPT)
                .fetch_all(self.store.pool())
                .await?;
            let mut killed = 0;
            let mut got = Vec::with_capacity(rows.len());
            let mut held = Vec::new();
            for row in &rows {
                let state: i16 = row.try_get(1)?;
                if state == HELD {
                    held.push(row.try_get::<i64, _>(0)?);
                    continue;
                }
                if i64::from(state) == DEAD {
                    killed += 1;
                    continue;
                }
                let was_available: i64 = row.try_get(2)?;
                let leased = leased_row(row, expires)?;
                got.push(((was_available, leased.id), leased));
            }
            if !held.is_empty() {
                let (again, moved) = self.expired_keyed(Some(&held), Some(expires)).await?;
                killed += moved;
                // The sort key of a lease taken again: when it expired.
                got.extend(again.into_iter().map(|l| ((l.expires, l.id), l)));
            }
            got.sort_by_key(|(k, _)| *k);
            out.extend(
                got.into_iter()
                    .map(|(_, l)| l.into_leased(self.options.max_attempts)),
            );
            // Only go round again if dead-lettering expired last attempts left room.
            if killed == 0 || rows.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        self.store.check_open()?;
        let expires = self.store.now().saturating_add(duration_micros(lease_for));
        let row = sqlx::query(self.sql().extend.q())
            .bind(lease.message.0)
            .bind(lease_token(lease.token)?)
            .bind(expires)
            .fetch_optional(self.store.pool())
            .await?;
        match row {
            Some(_) => Ok(Lease {
                expires_at: from_micros(expires),
                ..*lease
            }),
            None => Err(StoreError::LeaseLost),
        }
    }

    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        self.store.check_open()?;
        let req = (lease.message.0, lease_token(lease.token)?);
        self.store.inner.acks.call(req).await
    }

    async fn skip(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        self.store.check_open()?;
        self.settle_keyed(lease, Settle::Skip { reason }).await
    }

    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        self.requeue(lease, at, Some(error)).await
    }

    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        self.requeue(lease, at, None).await
    }

    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        self.store.check_open()?;
        let row = sqlx::query(self.sql().dead_letter.q())
            .bind(lease.message.0)
            .bind(lease_token(lease.token)?)
            .bind(reason)
            .bind(self.store.now())
            .fetch_optional(self.store.pool())
            .await?;
        match row {
            Some(_) => Ok(()),
            // Keyed, or lost.
            None => {
                self.settle_keyed(lease, Settle::DeadLetter { reason })
                    .await
            }
        }
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        self.store.check_open()?;
        self.reap().await?;
        let filter = DeadFilter::from(filter);
        let rows = bind_filter(sqlx::query(self.sql().dead_letters.q()), &filter)
            .fetch_all(self.store.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DeadRow {
                    id: row.try_get(0)?,
                    event: event_row(row, 1, 9)?,
                    attempts: i64::from(row.try_get::<i32, _>(6)?),
                    reason: row.try_get(7)?,
                    dead_at: row.try_get(8)?,
                }
                .into_dead_letter())
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        self.store.check_open()?;
        self.reap().await?;
        let filter = DeadFilter::from(filter);
        let now = self.store.now();
        let mut tx = self.store.pool().begin().await?;
        let rows = bind_filter(sqlx::query(self.sql().replay.q()), &filter)
            .bind(now)
            .bind(self.store.inner.schema.channel())
            .fetch_all(&mut *tx)
            .await?;
        let mut keyed = Vec::new();
        for row in &rows {
            if let Some(key) = row.try_get::<Option<String>, _>(2)? {
                let source: String = row.try_get(1)?;
                keyed.push((source, key, row.try_get::<i64, _>(0)?, row.try_get(3)?));
            }
        }
        join_all(&mut tx, &self.store.inner.shared.sql.order, keyed, now).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.store.check_open()?;
        let row = sqlx::query(self.sql().stats.q())
            .bind(self.store.now())
            .bind(self.max_attempts())
            .fetch_one(self.store.pool())
            .await?;
        Ok(StateCounts {
            waiting_due: row.try_get(0)?,
            waiting_later: row.try_get(1)?,
            leased_live: row.try_get(2)?,
            leased_expired: row.try_get(3)?,
            leased_expired_last: row.try_get(4)?,
            dead: row.try_get(5)?,
        }
        .into())
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge_expired().await
    }

    /// Updates the one row of `hookdock_health` (migration 4) in a transaction of its own and
    /// waits for the commit (a WAL write and flush): refused by a read-only server or a
    /// standby, by a role that may not write the schema, and failing like an enqueue when the
    /// server is unreachable or its WAL cannot be written. It runs on the pool, beside the
    /// enqueue batcher rather than through it. What it cannot see: a data file that could not
    /// grow (the updated row usually stays on its page), so a tablespace full while the WAL
    /// still has room shows only in enqueues.
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.store.check_open()?;
        let done = sqlx::query(self.sql().probe.q())
            .bind(self.store.now())
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::internal(
                "postgres",
                "the row of hookdock_health is missing",
            ))
        }
    }

    fn wake_signal(&self) -> Option<Box<dyn Wake>> {
        Some(Box::new(self.store.inner.wake.subscribe()))
    }
}

/// Records that became waiting again (replays) join their keys, in key order.
pub(super) async fn join_all(
    conn: &mut sqlx::PgConnection,
    order: &order_keys::Statements,
    mut keyed: Vec<(String, String, i64, Option<i64>)>,
    now: i64,
) -> Result<(), sqlx::Error> {
    keyed.sort_unstable();
    for (source, key, id, position) in &keyed {
        order_keys::join(conn, order, *id, (source, key), *position, now).await?;
    }
    Ok(())
}

impl PgStore {
    /// Forgets what passed its retention, a chunk per statement.
    pub(super) async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.check_open()?;
        let mut total = 0;
        loop {
            let n = events::purge(&self.inner.shared).await?;
            total += n;
            if n < crate::store::sql::PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}
