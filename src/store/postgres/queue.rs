//! [`PgQueue`]: the delivery state in `hookdock_queue`: lease, settle, dead letters, counts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::batch::{fail_all, on_conflict_retry, BatchOp};
use super::events::{self, EnqueueReq, Shared};
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
    SELECT id, available_at FROM {schema}.hookdock_queue
    WHERE state < 2 AND available_at <= $1
    ORDER BY available_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
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
    WHERE q.id = picked.id
    RETURNING q.id, q.state, picked.available_at AS was_available, q.attempts, q.lease_token,
              q.last_error, q.origin
)
SELECT l.id, l.state, l.was_available, e.source, e.event_id, e.received_at, e.headers,
       e.body, l.attempts, l.lease_token, l.last_error, e.event_type, l.origin
FROM leased l
LEFT JOIN {schema}.hookdock_events e ON e.id = l.id AND l.state = 1";

const EXTEND: &str = "
UPDATE {schema}.hookdock_queue SET available_at = $3
WHERE id = $1 AND lease_token = $2 AND state = 1
RETURNING id";

/// $1 ids, $2 tokens, $3 when the handled records are forgotten, $4 now.
const ACK: &str = "
UPDATE {schema}.hookdock_queue q SET state = 3, available_at = $3, done_at = $4
FROM UNNEST($1::int8[], $2::int8[]) AS a(id, token)
WHERE q.id = a.id AND q.lease_token = a.token AND q.state = 1
RETURNING q.id";

/// The ack of a store that retains nothing: forgets the records at once. $1 ids, $2 tokens.
const ACK_FORGET: &str = "
WITH acked AS (
    DELETE FROM {schema}.hookdock_queue q
    USING UNNEST($1::int8[], $2::int8[]) AS a(id, token)
    WHERE q.id = a.id AND q.lease_token = a.token AND q.state = 1
    RETURNING q.id
), gone AS (
    DELETE FROM {schema}.hookdock_events e USING acked WHERE e.id = acked.id
)
SELECT id FROM acked";

/// $1 id, $2 token, $3 at, $4 error (NULL: a deferral, which gives the attempt back and
/// records no error), $5 now, $6 channel.
const RETRY: &str = "
WITH u AS (
    UPDATE {schema}.hookdock_queue
    SET state = 0, available_at = $3, last_error = COALESCE($4, last_error),
        attempts = CASE WHEN $4::text IS NULL THEN GREATEST(attempts - 1, 0) ELSE attempts END
    WHERE id = $1 AND lease_token = $2 AND state = 1
    RETURNING id
), wake AS (
    SELECT pg_notify($6, '') FROM u WHERE $3 <= $5
)
SELECT id, (SELECT count(*) FROM wake) AS woke FROM u";

const DEAD_LETTER: &str = "
UPDATE {schema}.hookdock_queue SET state = 2, dead_reason = $3, dead_at = $4, done_at = $4
WHERE id = $1 AND lease_token = $2 AND state = 1
RETURNING id";

/// Moves leases that expired on their last attempt to the dead letters.
const REAP: &str = "
UPDATE {schema}.hookdock_queue
SET state = 2, dead_reason = $3, dead_at = $1, done_at = $1
WHERE state = 1 AND available_at <= $1 AND attempts >= $2";

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
       q.dead_reason, q.dead_at, e.event_type, q.origin",
    dead_letter_pick!()
);

/// $1-$6 as for [`DEAD_LETTERS`], $7 now, $8 the wake channel.
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
SELECT count(*), (SELECT count(*) FROM wake) FROM u"
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
    retry: Sql,
    dead_letter: Sql,
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
            retry: s.sql(RETRY),
            dead_letter: s.sql(DEAD_LETTER),
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
        row.map(|_| ()).ok_or(StoreError::LeaseLost)
    }
}

/// The columns `source, event_id, received_at, headers, body` starting at `at`, and
/// `event_type, origin` starting at `tail`.
pub(super) fn event_row(row: &PgRow, at: usize, tail: usize) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        source: row.try_get(at)?,
        event_id: row.try_get(at + 1)?,
        received_at: row.try_get(at + 2)?,
        headers: row.try_get(at + 3)?,
        body: row.try_get(at + 4)?,
        event_type: row.try_get(tail)?,
        origin: i64::from(row.try_get::<i16, _>(tail + 1)?),
        // FIXME(ordering): PostgreSQL columns come next in this branch.
        order_key: None,
        order_pos: None,
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
            for row in &rows {
                let state: i16 = row.try_get(1)?;
                if i64::from(state) == DEAD {
                    killed += 1;
                    continue;
                }
                let was_available: i64 = row.try_get(2)?;
                let leased = LeasedRow {
                    id: row.try_get(0)?,
                    event: event_row(row, 3, 11)?,
                    attempts: i64::from(row.try_get::<i32, _>(8)?),
                    token: row.try_get(9)?,
                    last_error: row.try_get(10)?,
                    expires,
                    watermark: None,
                };
                got.push(((was_available, leased.id), leased));
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

    async fn skip(&self, _lease: &Lease, _reason: &str) -> Result<(), StoreError> {
        // FIXME(ordering): not yet on this backend; the branch does not merge before it is.
        Err(StoreError::Closed)
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
        row.map(|_| ()).ok_or(StoreError::LeaseLost)
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
        let row = bind_filter(sqlx::query(self.sql().replay.q()), &filter)
            .bind(self.store.now())
            .bind(self.store.inner.schema.channel())
            .fetch_one(self.store.pool())
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
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
