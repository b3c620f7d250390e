//! The PostgreSQL queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;
use tokio::sync::Notify;

use super::batch::{fail_all, on_conflict_retry, BatchOp, Batcher};
use super::wake::{PgWakeup, WakeSource};
use super::{check_text, from_unix_nanos, millis, store_error, unix_nanos, PgBackend, Sql};
use crate::clock::{from_unix_millis, unix_millis, SharedClock};
use crate::error::StoreError;
use crate::event::{decode_headers, RawEvent};
use crate::queue::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, LeaseToken, Leased, MessageId,
    Queue, QueueOptions, QueueStats, EXPIRED_ON_LAST_ATTEMPT,
};

/// A [`Queue`] in PostgreSQL, shared by any number of receiver and worker processes; see the
/// [module docs](super) for how it works and the table it uses.
///
/// Enqueue resolves once the event is committed ([`Durability::ServerCommit`]). Built by
/// [`PgBackend::queue`]. Cheap to share behind an `Arc`; background tasks stop when it is
/// dropped.
#[derive(Debug)]
pub struct PgQueue {
    shared: Arc<Shared>,
    enqueues: Batcher<EnqueueOp>,
    acks: Batcher<AckOp>,
    wake: WakeSource,
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    clock: SharedClock,
    options: QueueOptions,
    sql: QueueSql,
    channel: String,
}

#[derive(Debug)]
struct QueueSql {
    insert: Sql,
    find: Sql,
    depth: Sql,
    lease: Sql,
    extend: Sql,
    ack: Sql,
    retry: Sql,
    dead_letter: Sql,
    reap: Sql,
    dead_letters: Sql,
    replay: Sql,
    stats: Sql,
}

/// How often the [`PgQueue::wake_notify`] forwarder checks whether anyone still holds it.
const FORWARD_CHECK: Duration = Duration::from_secs(5);

const INSERT: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[])
        WITH ORDINALITY AS t(source, event_id, received_at_ns, headers, body, ord)
), ins AS (
    INSERT INTO {schema}.hookdock_events
        (source, event_id, received_at_ns, headers, body, enqueued_at)
    SELECT source, event_id, received_at_ns, headers, body, $6 FROM input ORDER BY ord
    ON CONFLICT (source, event_id) DO NOTHING
    RETURNING id, source, event_id
), queued AS (
    INSERT INTO {schema}.hookdock_queue (id, available_at) SELECT id, $6 FROM ins
), wake AS (
    SELECT pg_notify($7, '') FROM (SELECT 1 FROM ins LIMIT 1) AS any_new
)
SELECT id, source, event_id, (SELECT count(*) FROM wake) AS woke FROM ins";

const FIND: &str = "
SELECT e.id, e.source, e.event_id
FROM {schema}.hookdock_events e
JOIN UNNEST($1::text[], $2::text[]) AS k(source, event_id)
  ON e.source = k.source AND e.event_id = k.event_id";

/// Taken before counting, in its own statement: the count's snapshot must start after the
/// previous holder committed.
const DEPTH_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

const DEPTH: &str = "SELECT count(*) FROM {schema}.hookdock_queue WHERE state < 2";

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
        dead_at      = CASE WHEN q.state = 1 AND q.attempts >= $4 THEN $1 ELSE NULL END
    FROM picked
    WHERE q.id = picked.id
    RETURNING q.id, q.state, picked.available_at AS was_available, q.attempts, q.lease_token,
              q.last_error
)
SELECT l.id, l.state, l.was_available, e.source, e.event_id, e.received_at_ns, e.headers,
       e.body, l.attempts, l.lease_token, l.last_error
FROM leased l
LEFT JOIN {schema}.hookdock_events e ON e.id = l.id AND l.state = 1";

const EXTEND: &str = "
UPDATE {schema}.hookdock_queue SET available_at = $3
WHERE id = $1 AND lease_token = $2 AND state = 1
RETURNING id";

const ACK: &str = "
WITH gone AS (
    DELETE FROM {schema}.hookdock_queue q
    USING UNNEST($1::int8[], $2::int8[]) AS a(id, token)
    WHERE q.id = a.id AND q.lease_token = a.token AND q.state = 1
    RETURNING q.id
)
DELETE FROM {schema}.hookdock_events e USING gone WHERE e.id = gone.id
RETURNING e.id";

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
UPDATE {schema}.hookdock_queue SET state = 2, dead_reason = $3, dead_at = $4
WHERE id = $1 AND lease_token = $2 AND state = 1
RETURNING id";

/// Moves leases that expired on their last attempt to the dead letters.
const REAP: &str = "
UPDATE {schema}.hookdock_queue
SET state = 2, dead_reason = $3, dead_at = $1
WHERE state = 1 AND available_at <= $1 AND attempts >= $2";

/// The dead letters a [`DeadLetterFilter`](crate::queue::DeadLetterFilter) picks, oldest
/// first: $1 id, $2 source, $3 event id, $4 text in the reason, $5 after id, $6 limit (each
/// `NULL` for "any"). Listing and replaying share it, so they always pick the same rows.
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
SELECT q.id, e.source, e.event_id, e.received_at_ns, e.headers, e.body, q.attempts,
       q.dead_reason, q.dead_at",
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
    SET state = 0, attempts = 0, available_at = $7, dead_reason = NULL, dead_at = NULL
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
    count(*) FILTER (WHERE state = 0 AND available_at <= $1)
      + count(*) FILTER (WHERE state = 1 AND available_at <= $1 AND attempts < $2),
    count(*) FILTER (WHERE state = 1 AND available_at > $1),
    count(*) FILTER (WHERE state = 0 AND available_at > $1),
    count(*) FILTER (WHERE state = 2)
      + count(*) FILTER (WHERE state = 1 AND available_at <= $1 AND attempts >= $2)
FROM {schema}.hookdock_queue";

impl PgQueue {
    pub(crate) fn new(backend: PgBackend, options: QueueOptions) -> Self {
        let s = &backend.schema;
        let shared = Arc::new(Shared {
            pool: backend.pool.clone(),
            clock: backend.clock.clone(),
            options,
            channel: s.channel().to_owned(),
            sql: QueueSql {
                insert: s.sql(INSERT),
                find: s.sql(FIND),
                depth: s.sql(DEPTH),
                lease: s.sql(LEASE),
                extend: s.sql(EXTEND),
                ack: s.sql(ACK),
                retry: s.sql(RETRY),
                dead_letter: s.sql(DEAD_LETTER),
                reap: s.sql(REAP),
                dead_letters: s.sql(DEAD_LETTERS),
                replay: s.sql(REPLAY),
                stats: s.sql(STATS),
            },
        });
        Self {
            enqueues: Batcher::new(
                EnqueueOp {
                    shared: shared.clone(),
                    lock_key: format!("hookdock depth {}", s.name),
                },
                backend.batch_size,
            ),
            acks: Batcher::new(
                AckOp {
                    shared: shared.clone(),
                },
                backend.batch_size,
            ),
            wake: WakeSource::new(backend.pool.clone(), s.channel().to_owned()),
            shared,
        }
    }

    /// A wake-up signal: resolves [`PgWakeup::notified`] when events are enqueued or
    /// replayed by any process (through `LISTEN/NOTIFY`), so an idle worker can wait for it
    /// instead of polling fast. The first call starts a listener that holds one connection
    /// of the pool; it stops when the queue and every signal are dropped. A lost listener
    /// connection also wakes the waiters (notifications may have been missed).
    ///
    /// Workers should still poll now and then (retries scheduled for later do not notify).
    pub fn wake_signal(&self) -> PgWakeup {
        self.wake.subscribe()
    }

    /// The wake-up signal as a [`tokio::sync::Notify`], for
    /// [`WorkerBuilder::wake_on`](crate::worker::WorkerBuilder::wake_on): every notification
    /// wakes the workers waiting on it, and leaves a permit for one that was busy.
    ///
    /// Starts a small task that forwards [`wake_signal`](Self::wake_signal); it stops within
    /// seconds once every clone of the returned `Arc` is dropped.
    ///
    /// ```no_run
    /// # async fn demo(pg: hookdock::postgres::PgBackend) -> Result<(), Box<dyn std::error::Error>> {
    /// use hookdock::queue::QueueOptions;
    /// use hookdock::worker::Worker;
    ///
    /// let queue = pg.queue(QueueOptions::default());
    /// let wake = queue.wake_notify().await;
    /// let worker = Worker::builder(queue)
    ///     .idempotency(pg.idempotency_store())
    ///     .wake_on(wake)
    ///     .build(tower::service_fn(|_event: hookdock::worker::Event| async {
    ///         Ok::<_, hookdock::worker::HandlerError>(())
    ///     }))?;
    /// let handle = worker.spawn();
    /// # drop(handle); Ok(()) }
    /// ```
    pub async fn wake_notify(&self) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        let weak = Arc::downgrade(&notify);
        let mut wake = self.wake_signal();
        tokio::spawn(async move {
            loop {
                let woke = tokio::time::timeout(FORWARD_CHECK, wake.notified())
                    .await
                    .is_ok();
                let Some(notify) = weak.upgrade() else {
                    return;
                };
                if woke {
                    notify.notify_waiters();
                    notify.notify_one();
                }
            }
        });
        notify
    }

    /// The connection pool this queue uses.
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// Shuts the queue down gracefully: waits until every enqueue and ack already submitted
    /// is committed and answered. Does not close the pool (it may be shared with the
    /// application); call [`PgPool::close`](sqlx::Pool::close) for that.
    pub async fn close(self) {
        self.enqueues.close().await;
        self.acks.close().await;
    }

    /// The options this queue was built with.
    pub fn options(&self) -> &QueueOptions {
        &self.shared.options
    }

    fn now(&self) -> i64 {
        unix_millis(self.shared.clock.now())
    }
}

impl Shared {
    fn max_attempts(&self) -> i32 {
        i32::try_from(self.options.max_attempts).unwrap_or(i32::MAX)
    }
}

/// Decodes the columns `source, event_id, received_at_ns, headers, body` starting at `at`.
fn decode_event(row: &PgRow, at: usize) -> Result<RawEvent, sqlx::Error> {
    let source: String = row.try_get(at)?;
    let event_id: String = row.try_get(at + 1)?;
    let received: i64 = row.try_get(at + 2)?;
    let headers: Vec<u8> = row.try_get(at + 3)?;
    let body: Vec<u8> = row.try_get(at + 4)?;
    Ok(RawEvent::new(
        source,
        event_id,
        from_unix_nanos(received),
        Bytes::from(body),
    )
    .with_headers(decode_headers(&headers)))
}

fn attempts(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// Stores a batch of events with unique keys; one [`Enqueued`] or error per event.
struct EnqueueOp {
    shared: Arc<Shared>,
    lock_key: String,
}

impl BatchOp for EnqueueOp {
    type Req = RawEvent;
    type Resp = Enqueued;

    async fn run(&self, events: Vec<RawEvent>) -> Vec<Result<Enqueued, StoreError>> {
        // The same key twice in one batch: the first stores it, the others are duplicates of
        // it (as if they had arrived just after).
        let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
        let mut unique = Vec::with_capacity(events.len());
        let mut dup_of = vec![None; events.len()];
        for (i, e) in events.iter().enumerate() {
            match first.entry((e.source.as_str(), e.id.as_str())) {
                std::collections::hash_map::Entry::Occupied(o) => dup_of[i] = Some(*o.get()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(unique.len());
                    unique.push(e);
                }
            }
        }
        let stored = match self.shared.options.max_depth {
            None => self.store(&unique).await,
            Some(limit) => self.store_limited(&unique, limit).await,
        };
        let stored = match stored {
            Ok(s) => s,
            Err(e) => return fail_all(events.len(), e),
        };
        let mut out = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let slot = first[&(e.source.as_str(), e.id.as_str())];
            out.push(match (&stored[slot], dup_of[i]) {
                (Ok(r), Some(_)) => Ok(Enqueued::Duplicate(r.message())),
                (Ok(r), None) => Ok(*r),
                (Err(depth), _) => Err(StoreError::Full { depth: *depth }),
            });
        }
        out
    }
}

/// `Err(depth)`: refused, the queue is full.
type Stored = Result<Enqueued, u64>;

impl EnqueueOp {
    /// Inserts with `ON CONFLICT DO NOTHING` and looks up the ids of the conflicting rows.
    /// A conflicting row that is gone by the time it is looked up (acked meanwhile) is
    /// inserted again, so every event ends up stored or found.
    async fn store(&self, events: &[&RawEvent]) -> Result<Vec<Stored>, sqlx::Error> {
        let mut conn = self.shared.pool.acquire().await?;
        let mut out: Vec<Option<Stored>> = vec![None; events.len()];
        let mut pending: Vec<usize> = (0..events.len()).collect();
        for _round in 0..8 {
            if pending.is_empty() {
                break;
            }
            let batch: Vec<&RawEvent> = pending.iter().map(|&i| events[i]).collect();
            for (slot, id) in self.insert(&mut conn, &batch).await? {
                out[pending[slot]] = Some(Ok(Enqueued::New(id)));
            }
            pending.retain(|&i| out[i].is_none());
            if pending.is_empty() {
                break;
            }
            let batch: Vec<&RawEvent> = pending.iter().map(|&i| events[i]).collect();
            for (slot, id) in self.find(&mut conn, &batch).await? {
                out[pending[slot]] = Some(Ok(Enqueued::Duplicate(id)));
            }
            pending.retain(|&i| out[i].is_none());
        }
        if !pending.is_empty() {
            return Err(sqlx::Error::Protocol(
                "enqueue: conflicting rows kept disappearing; giving up".into(),
            ));
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// With a depth limit: one transaction holding an advisory lock (so concurrent
    /// enqueuers, in any process, count and insert one after the other), storing only as
    /// many new events as fit.
    async fn store_limited(
        &self,
        events: &[&RawEvent],
        limit: u64,
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let sql = &self.shared.sql;
        let mut tx = self.shared.pool.begin().await?;
        sqlx::query(DEPTH_LOCK)
            .bind(&self.lock_key)
            .execute(&mut *tx)
            .await?;
        let depth: i64 = sqlx::query_scalar(sql.depth.q())
            .fetch_one(&mut *tx)
            .await?;
        let depth = u64::try_from(depth).unwrap_or(0);
        let mut out: Vec<Option<Stored>> = vec![None; events.len()];
        for (slot, id) in self.find(&mut tx, events).await? {
            out[slot] = Some(Ok(Enqueued::Duplicate(id)));
        }
        let room = usize::try_from(limit.saturating_sub(depth)).unwrap_or(usize::MAX);
        let admit: Vec<usize> = (0..events.len())
            .filter(|&i| out[i].is_none())
            .take(room)
            .collect();
        let batch: Vec<&RawEvent> = admit.iter().map(|&i| events[i]).collect();
        // Under the lock nobody else inserts, and nothing found above can be missing here.
        for (slot, id) in self.insert(&mut tx, &batch).await? {
            out[admit[slot]] = Some(Ok(Enqueued::New(id)));
        }
        tx.commit().await?;
        let full = depth + admit.len() as u64;
        Ok(out.into_iter().map(|o| o.unwrap_or(Err(full))).collect())
    }

    /// Inserts; returns `(index in events, id)` for each row stored.
    async fn insert(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&RawEvent],
    ) -> Result<Vec<(usize, MessageId)>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = unix_millis(self.shared.clock.now());
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let received: Vec<i64> = events.iter().map(|e| unix_nanos(e.received_at)).collect();
        let headers: Vec<Vec<u8>> = events.iter().map(|e| e.encode_headers()).collect();
        let bodies: Vec<&[u8]> = events.iter().map(|e| &e.body[..]).collect();
        let rows = sqlx::query(self.shared.sql.insert.q())
            .bind(&sources)
            .bind(&ids)
            .bind(&received)
            .bind(&headers)
            .bind(&bodies)
            .bind(now)
            .bind(&self.shared.channel)
            .fetch_all(&mut *conn)
            .await?;
        match_keys(events, &rows)
    }

    /// Finds stored events with these keys; returns `(index in events, id)` for each found.
    async fn find(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&RawEvent],
    ) -> Result<Vec<(usize, MessageId)>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let rows = sqlx::query(self.shared.sql.find.q())
            .bind(&sources)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        match_keys(events, &rows)
    }
}

/// Matches rows `(id, source, event_id, ...)` back to the events (whose keys are unique).
fn match_keys(
    events: &[&RawEvent],
    rows: &[PgRow],
) -> Result<Vec<(usize, MessageId)>, sqlx::Error> {
    let index: HashMap<(&str, &str), usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.source.as_str(), e.id.as_str()), i))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get(0)?;
        let source: &str = row.try_get(1)?;
        let event_id: &str = row.try_get(2)?;
        if let Some(&i) = index.get(&(source, event_id)) {
            out.push((i, MessageId(id)));
        }
    }
    Ok(out)
}

/// Deletes acked messages whose token is current.
struct AckOp {
    shared: Arc<Shared>,
}

impl BatchOp for AckOp {
    type Req = Lease;
    type Resp = ();

    async fn run(&self, leases: Vec<Lease>) -> Vec<Result<(), StoreError>> {
        // In id order, so concurrent batches lock rows in the same order.
        let mut sorted: Vec<&Lease> = leases.iter().collect();
        sorted.sort_by_key(|l| l.message);
        let ids: Vec<i64> = sorted.iter().map(|l| l.message.0).collect();
        let tokens: Vec<i64> = sorted.iter().map(|l| token_i64(l.token)).collect();
        let rows = match on_conflict_retry(|| {
            sqlx::query(self.shared.sql.ack.q())
                .bind(&ids)
                .bind(&tokens)
                .fetch_all(&self.shared.pool)
        })
        .await
        {
            Ok(rows) => rows,
            Err(e) => return fail_all(leases.len(), e),
        };
        let mut deleted: std::collections::HashSet<i64> = rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>(0).ok())
            .collect();
        leases
            .iter()
            // The same lease acked twice in one batch: the second finds it gone.
            .map(|l| {
                if deleted.remove(&l.message.0) {
                    Ok(())
                } else {
                    Err(StoreError::LeaseLost)
                }
            })
            .collect()
    }
}

fn token_i64(t: LeaseToken) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// Binds the filter as $1..$6.
fn bind_filter<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    f: &'q DeadLetterFilter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let limit = f
        .limit
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
        .unwrap_or(i64::MAX);
    q.bind(f.message.map(|m| m.0))
        .bind(f.source.as_deref())
        .bind(f.event_id.as_ref().map(|id| id.as_str()))
        .bind(f.reason_contains.as_deref())
        .bind(f.after.map(|m| m.0))
        .bind(limit)
}

#[async_trait]
impl Queue for PgQueue {
    fn durability(&self) -> Durability {
        Durability::ServerCommit
    }

    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        check_text("event source", &event.source)?;
        check_text("event id", event.id.as_str())?;
        self.enqueues.call(event).await
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        let s = &self.shared;
        let mut out = Vec::new();
        while out.len() < max {
            let now = self.now();
            let want = i64::try_from(max - out.len()).unwrap_or(i64::MAX);
            let rows = sqlx::query(s.sql.lease.q())
                .bind(now)
                .bind(want)
                .bind(now.saturating_add(millis(lease_for)))
                .bind(s.max_attempts())
                .bind(EXPIRED_ON_LAST_ATTEMPT)
                .fetch_all(&s.pool)
                .await
                .map_err(store_error)?;
            let mut killed = 0;
            let mut got = Vec::with_capacity(rows.len());
            for row in &rows {
                let state: i16 = row.try_get(1).map_err(store_error)?;
                if state == 2 {
                    killed += 1;
                    continue;
                }
                let was_available: i64 = row.try_get(2).map_err(store_error)?;
                let id: i64 = row.try_get(0).map_err(store_error)?;
                let event = decode_event(row, 3).map_err(store_error)?;
                let attempt: i32 = row.try_get(8).map_err(store_error)?;
                let token: i64 = row.try_get(9).map_err(store_error)?;
                let last_error: Option<String> = row.try_get(10).map_err(store_error)?;
                let lease = Lease {
                    message: MessageId(id),
                    token: LeaseToken(u64::try_from(token).unwrap_or(0)),
                    expires_at: from_unix_millis(now.saturating_add(millis(lease_for))),
                };
                got.push((
                    (was_available, id),
                    Leased::new(lease, event, attempts(attempt), s.options.max_attempts)
                        .with_last_error(last_error),
                ));
            }
            got.sort_by_key(|(k, _)| *k);
            out.extend(got.into_iter().map(|(_, l)| l));
            // Only go round again if dead-lettering expired last attempts left room.
            if killed == 0 || rows.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        let expires = self.now().saturating_add(millis(lease_for));
        let row = sqlx::query(self.shared.sql.extend.q())
            .bind(lease.message.0)
            .bind(token_i64(lease.token))
            .bind(expires)
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(store_error)?;
        match row {
            Some(_) => Ok(Lease {
                expires_at: from_unix_millis(expires),
                ..*lease
            }),
            None => Err(StoreError::LeaseLost),
        }
    }

    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        self.acks.call(*lease).await
    }

    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        self.requeue(lease, at, Some(error)).await
    }

    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        self.requeue(lease, at, None).await
    }
    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        let row = sqlx::query(self.shared.sql.dead_letter.q())
            .bind(lease.message.0)
            .bind(token_i64(lease.token))
            .bind(reason)
            .bind(self.now())
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(store_error)?;
        row.map(|_| ()).ok_or(StoreError::LeaseLost)
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        self.reap().await?;
        let rows = bind_filter(sqlx::query(self.shared.sql.dead_letters.q()), filter)
            .fetch_all(&self.shared.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                let event = decode_event(row, 1)?;
                let attempt: i32 = row.try_get(6)?;
                let reason: Option<String> = row.try_get(7)?;
                let at: Option<i64> = row.try_get(8)?;
                Ok(DeadLetter::new(
                    MessageId(id),
                    event,
                    reason.unwrap_or_default(),
                    attempts(attempt),
                    from_unix_millis(at.unwrap_or(0)),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(store_error)
    }

    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        self.reap().await?;
        let row = bind_filter(sqlx::query(self.shared.sql.replay.q()), filter)
            .bind(self.now())
            .bind(&self.shared.channel)
            .fetch_one(&self.shared.pool)
            .await
            .map_err(store_error)?;
        let n: i64 = row.try_get(0).map_err(store_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let row = sqlx::query(self.shared.sql.stats.q())
            .bind(self.now())
            .bind(self.shared.max_attempts())
            .fetch_one(&self.shared.pool)
            .await
            .map_err(store_error)?;
        let get = |i: usize| -> Result<u64, StoreError> {
            let n: i64 = row.try_get(i).map_err(store_error)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(QueueStats {
            ready: get(0)?,
            leased: get(1)?,
            scheduled: get(2)?,
            dead: get(3)?,
        })
    }
}

impl PgQueue {
    /// Moves leases that expired on their last allowed attempt to the dead letters.
    async fn reap(&self) -> Result<(), StoreError> {
        sqlx::query(self.shared.sql.reap.q())
            .bind(self.now())
            .bind(self.shared.max_attempts())
            .bind(EXPIRED_ON_LAST_ATTEMPT)
            .execute(&self.shared.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

impl PgQueue {
    /// A retry (`error` given: kept, attempt kept) or a deferral (no error: attempt given
    /// back), in one statement that also wakes idle workers if the message is ready now.
    async fn requeue(
        &self,
        lease: &Lease,
        at: SystemTime,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(self.shared.sql.retry.q())
            .bind(lease.message.0)
            .bind(token_i64(lease.token))
            .bind(unix_millis(at))
            .bind(error)
            .bind(self.now())
            .bind(&self.shared.channel)
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(store_error)?;
        row.map(|_| ()).ok_or(StoreError::LeaseLost)
    }
}
