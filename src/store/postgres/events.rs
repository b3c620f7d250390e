//! Storing and forgetting records: enqueue (batched) and purge, over `hookdock_events` and
//! the state rows of `hookdock_queue` they come with; and every statement of the backend,
//! prepared once per schema.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use super::batch::{fail_all, BatchOp};
use super::error::blames_input;
use super::order_keys;
use super::schema::{Schema, Sql};
use crate::clock::SharedClock;
use crate::event::RawEvent;
use crate::store::codec::{encode_headers, to_micros};
use crate::store::sql::{CLAIM_ONLY, DONE, PURGE_CHUNK};
use crate::store::{Enqueued, MessageId, StoreError};

/// What the batch operations of a store share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) pool: PgPool,
    pub(super) clock: SharedClock,
    /// The retention period, in microseconds.
    pub(super) retention: i64,
    pub(super) sql: Statements,
    /// The NOTIFY channel.
    pub(super) channel: String,
    /// The advisory lock enqueues with a depth limit take.
    pub(super) depth_lock: String,
}

impl Shared {
    pub(super) fn now(&self) -> i64 {
        to_micros(self.clock.now())
    }
}

/// `$1..$5` the events' keys, times and bytes, `$6` now, `$7` the wake channel, `$8` their
/// types, `$9` their origin codes, `$10` their ordering keys, `$11` their positions. A
/// keyed event is stored parked: it joins its key in the same transaction.
const INSERT: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[],
                         $8::text[], $9::int2[], $10::text[], $11::int8[])
        WITH ORDINALITY AS t(source, event_id, received_at, headers, body, event_type, origin,
                             order_key, order_pos, ord)
), ins AS (
    INSERT INTO {schema}.hookdock_events
        (source, event_id, received_at, headers, body, enqueued_at, event_type, order_key,
         order_pos)
    SELECT source, event_id, received_at, headers, body, $6, event_type, order_key, order_pos
    FROM input ORDER BY ord
    ON CONFLICT (source, event_id) DO NOTHING
    RETURNING id, source, event_id
), queued AS (
    INSERT INTO {schema}.hookdock_queue (id, available_at, origin)
    SELECT ins.id,
           CASE WHEN input.order_key IS NULL THEN $6 ELSE 9223372036854775807 END,
           input.origin
    FROM ins JOIN input ON input.source = ins.source AND input.event_id = ins.event_id
), wake AS (
    SELECT pg_notify($7, '') FROM (SELECT 1 FROM ins LIMIT 1) AS any_new
)
SELECT id, source, event_id, (SELECT count(*) FROM wake) AS woke FROM ins";

/// The records of these keys: id, key, state and `available_at`.
const FIND: &str = "
SELECT e.id, e.source, e.event_id, q.state, q.available_at
FROM {schema}.hookdock_events e
JOIN UNNEST($1::text[], $2::text[]) AS k(source, event_id)
  ON e.source = k.source AND e.event_id = k.event_id
JOIN {schema}.hookdock_queue q ON q.id = e.id";

/// Stores events on records that held only a claim: `$1..$4` ids, times and bytes, `$5`
/// now, `$6` the wake channel, `$7` types, `$8` origin codes, `$9` ordering keys, `$10`
/// positions (a keyed one parked, as by [`INSERT`]). The record starts a history of its own
/// (a claim-only record may be what a forgotten event left).
const ATTACH: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::bytea[], $4::bytea[], $7::text[],
                         $8::int2[], $9::text[], $10::int8[])
        AS t(id, received_at, headers, body, event_type, origin, order_key, order_pos)
), q AS (
    UPDATE {schema}.hookdock_queue q SET state = 0,
        available_at = CASE WHEN input.order_key IS NULL THEN $5 ELSE 9223372036854775807 END,
        attempts = 0,
        origin = input.origin, last_error = NULL, dead_reason = NULL, dead_at = NULL,
        first_attempt_at = NULL, last_attempt_at = NULL, done_at = NULL, replays = 0,
        forced_replays = 0
    FROM input WHERE q.id = input.id AND q.state = 4 AND q.available_at > $5
    RETURNING q.id
), e AS (
    UPDATE {schema}.hookdock_events e
    SET received_at = input.received_at, headers = input.headers, body = input.body,
        enqueued_at = $5, event_type = input.event_type, order_key = input.order_key,
        order_pos = input.order_pos
    FROM input JOIN q ON q.id = input.id
    WHERE e.id = input.id
    RETURNING e.id
), wake AS (
    SELECT pg_notify($6, '') FROM (SELECT 1 FROM q LIMIT 1) AS any_new
)
SELECT id, (SELECT count(*) FROM wake) AS woke FROM e";

/// Deletes the records whose time to be forgotten has come: `$1` ids (or `NULL` for the
/// oldest), `$2` now, `$3` most.
const FORGET: &str = "
WITH picked AS (
    SELECT id FROM {schema}.hookdock_queue
    WHERE state >= 3 AND available_at <= $2 AND ($1::int8[] IS NULL OR id = ANY($1))
    ORDER BY available_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM {schema}.hookdock_queue q USING picked WHERE q.id = picked.id RETURNING q.id
)
DELETE FROM {schema}.hookdock_events e USING gone WHERE e.id = gone.id";

/// Taken before counting, in its own statement: the count's snapshot must start after the
/// previous holder committed.
const DEPTH_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

const DEPTH: &str = "SELECT count(*) FROM {schema}.hookdock_queue WHERE state < 2";

/// Every statement of the backend for one schema.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    pub(super) insert: Sql,
    pub(super) find: Sql,
    pub(super) attach: Sql,
    pub(super) forget: Sql,
    pub(super) depth: Sql,
    pub(super) queue: super::queue::Statements,
    pub(super) claims: super::idempotency::Statements,
    pub(super) log: super::log::Statements,
    pub(super) jobs: super::replay_jobs::Statements,
    pub(super) order: super::order_keys::Statements,
    pub(super) reconcile: super::reconcile_sources::Statements,
}

impl Statements {
    pub(super) fn new(schema: &Schema) -> Self {
        Self {
            insert: schema.sql(INSERT),
            find: schema.sql(FIND),
            attach: schema.sql(ATTACH),
            forget: schema.sql(FORGET),
            depth: schema.sql(DEPTH),
            queue: super::queue::Statements::new(schema),
            claims: super::idempotency::Statements::new(schema),
            log: super::log::Statements::new(schema),
            jobs: super::replay_jobs::Statements::new(schema),
            order: super::order_keys::Statements::new(schema),
            reconcile: super::reconcile_sources::Statements::new(schema),
        }
    }
}

/// Forgets up to [`PURGE_CHUNK`] records past their time, oldest first; returns how many.
pub(super) async fn purge(shared: &Shared) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(shared.sql.forget.q())
        .bind(None::<Vec<i64>>)
        .bind(shared.now())
        .bind(PURGE_CHUNK as i64)
        .execute(&shared.pool)
        .await?;
    Ok(done.rows_affected())
}

/// One event to store, with the queue's depth limit.
pub(super) struct EnqueueReq {
    pub(super) event: RawEvent,
    pub(super) max_depth: Option<u64>,
}

/// Stores a batch of events; one [`Enqueued`] or error per event.
pub(super) struct EnqueueOp {
    shared: Arc<Shared>,
}

impl EnqueueOp {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl BatchOp for EnqueueOp {
    type Req = EnqueueReq;
    type Resp = Enqueued;

    async fn run(&self, reqs: Vec<EnqueueReq>) -> Vec<Result<Enqueued, StoreError>> {
        // Queues with different depth limits share the store's batcher: one sub-batch each.
        let mut groups: HashMap<Option<u64>, Vec<usize>> = HashMap::new();
        for (i, r) in reqs.iter().enumerate() {
            groups.entry(r.max_depth).or_default().push(i);
        }
        let mut out: Vec<Option<Result<Enqueued, StoreError>>> =
            (0..reqs.len()).map(|_| None).collect();
        for (limit, members) in groups {
            let events: Vec<&RawEvent> = members.iter().map(|&i| &reqs[i].event).collect();
            let mut results = self.group(&events, limit).await;
            // One event's data failed the statement: each alone, so it fails by itself.
            if events.len() > 1 && results.iter().any(|r| r.as_ref().is_err_and(is_input)) {
                results = Vec::with_capacity(events.len());
                for e in &events {
                    results.extend(self.group(std::slice::from_ref(e), limit).await);
                }
            }
            for (i, r) in members.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::internal("postgres", "unanswered"))))
            .collect()
    }
}

/// True for an error [`blames_input`] would pin on one event.
fn is_input(e: &StoreError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(sql) = s.downcast_ref::<sqlx::Error>() {
            return blames_input(sql);
        }
        source = s.source();
    }
    false
}

/// `Err(depth)`: refused, the queue is full.
type Stored = Result<Enqueued, u64>;

/// What a key's record means to an enqueue.
enum Known {
    /// Waiting, leased, dead, or handled and still remembered.
    Held(MessageId),
    /// Holds only a claim: the event is stored on it.
    ClaimOnly(MessageId),
    /// Past its time: forget it, then store anew.
    Forgotten(MessageId),
}

impl EnqueueOp {
    /// Stores events with one depth limit; the same key twice in one batch: the first stores
    /// it, the others are duplicates of it (as if they had arrived just after).
    async fn group(
        &self,
        events: &[&RawEvent],
        limit: Option<u64>,
    ) -> Vec<Result<Enqueued, StoreError>> {
        let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
        let mut unique = Vec::with_capacity(events.len());
        let mut dup_of = vec![false; events.len()];
        for (i, e) in events.iter().enumerate() {
            match first.entry((e.source.as_str(), e.id.as_str())) {
                std::collections::hash_map::Entry::Occupied(_) => dup_of[i] = true,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(unique.len());
                    unique.push(*e);
                }
            }
        }
        let stored = match limit {
            None => self.store(&unique).await,
            Some(limit) => self.store_limited(&unique, limit).await,
        };
        let stored = match stored {
            Ok(s) => s,
            Err(e) => return fail_all(events.len(), e),
        };
        events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let slot = first[&(e.source.as_str(), e.id.as_str())];
                match (&stored[slot], dup_of[i]) {
                    (Ok(r), true) => Ok(Enqueued::Duplicate(r.message())),
                    (Ok(r), false) => Ok(*r),
                    (Err(depth), _) => Err(StoreError::Full { depth: *depth }),
                }
            })
            .collect()
    }

    /// Inserts with `ON CONFLICT DO NOTHING`, then settles the conflicts: a held key is a
    /// duplicate, a claim-only record takes the event, a forgotten record is deleted and the
    /// event inserted again. Goes round while records change under it.
    async fn store(&self, events: &[&RawEvent]) -> Result<Vec<Stored>, sqlx::Error> {
        if events.iter().all(|e| e.ordering.is_none()) {
            let mut conn = self.shared.pool.acquire().await?;
            return self.store_on(&mut conn, events).await;
        }
        // Keyed events are stored parked and join their keys before anything commits.
        let mut tx = self.shared.pool.begin().await?;
        let out = self.store_on(&mut tx, events).await?;
        self.join_new(&mut tx, events, &out).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// [`store`](Self::store) on one connection (or in one transaction).
    async fn store_on(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&RawEvent],
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let mut out: Vec<Option<Stored>> = vec![None; events.len()];
        let mut pending: Vec<usize> = (0..events.len()).collect();
        for _round in 0..8 {
            let batch: Vec<&RawEvent> = pending.iter().map(|&i| events[i]).collect();
            for (slot, id) in self.insert(conn, &batch).await? {
                out[pending[slot]] = Some(Ok(Enqueued::New(id)));
            }
            pending.retain(|&i| out[i].is_none());
            if pending.is_empty() {
                break;
            }
            let batch: Vec<&RawEvent> = pending.iter().map(|&i| events[i]).collect();
            let known = self.find(conn, &batch).await?;
            let (mut attach, mut forget) = (Vec::new(), Vec::new());
            for (slot, record) in known {
                match record {
                    Known::Held(id) => out[pending[slot]] = Some(Ok(Enqueued::Duplicate(id))),
                    Known::ClaimOnly(id) => attach.push((slot, id)),
                    Known::Forgotten(id) => forget.push(id),
                }
            }
            for (slot, id) in self.attach(conn, &batch, &attach).await? {
                out[pending[slot]] = Some(Ok(Enqueued::New(id)));
            }
            self.forget(conn, &forget).await?;
            pending.retain(|&i| out[i].is_none());
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            return Err(sqlx::Error::Protocol(
                "enqueue: conflicting records kept changing; giving up".into(),
            ));
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// With a depth limit: one transaction holding an advisory lock (so concurrent
    /// enqueuers with limits, in any process, count and insert one after the other), storing
    /// only as many new events as fit.
    async fn store_limited(
        &self,
        events: &[&RawEvent],
        limit: u64,
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let sql = &self.shared.sql;
        let mut tx = self.shared.pool.begin().await?;
        sqlx::query(DEPTH_LOCK)
            .bind(&self.shared.depth_lock)
            .execute(&mut *tx)
            .await?;
        let depth: i64 = sqlx::query_scalar(sql.depth.q())
            .fetch_one(&mut *tx)
            .await?;
        let depth = u64::try_from(depth).unwrap_or(0);
        let mut out: Vec<Option<Stored>> = vec![None; events.len()];
        let (mut claim_only, mut forget) = (HashMap::new(), Vec::new());
        for (slot, record) in self.find(&mut tx, events).await? {
            match record {
                Known::Held(id) => out[slot] = Some(Ok(Enqueued::Duplicate(id))),
                Known::ClaimOnly(id) => {
                    claim_only.insert(slot, id);
                }
                Known::Forgotten(id) => forget.push(id),
            }
        }
        self.forget(&mut tx, &forget).await?;
        let room = usize::try_from(limit.saturating_sub(depth)).unwrap_or(usize::MAX);
        let admit: Vec<usize> = (0..events.len())
            .filter(|&i| out[i].is_none())
            .take(room)
            .collect();
        let (attach, insert): (Vec<usize>, Vec<usize>) =
            admit.iter().partition(|i| claim_only.contains_key(i));
        let attach: Vec<(usize, MessageId)> = attach.iter().map(|&i| (i, claim_only[&i])).collect();
        for (slot, id) in self.attach(&mut tx, events, &attach).await? {
            out[slot] = Some(Ok(Enqueued::New(id)));
        }
        let batch: Vec<&RawEvent> = insert.iter().map(|&i| events[i]).collect();
        // Under the lock no limited enqueue inserts, and nothing found above can be missing.
        for (slot, id) in self.insert(&mut tx, &batch).await? {
            out[insert[slot]] = Some(Ok(Enqueued::New(id)));
        }
        self.join_new(&mut tx, events, &out_stored(&out)).await?;
        tx.commit().await?;
        let full = depth + admit.len() as u64;
        Ok(out.into_iter().map(|o| o.unwrap_or(Err(full))).collect())
    }

    /// The keyed events just stored (parked) join their keys, a key at a time in key order
    /// (the order every transaction locks keys in), in batch order within a key.
    async fn join_new(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&RawEvent],
        stored: &[Stored],
    ) -> Result<(), sqlx::Error> {
        let mut joins: Vec<(&str, &str, usize, i64, Option<i64>)> = events
            .iter()
            .zip(stored)
            .enumerate()
            .filter_map(|(i, (e, s))| match (s, &e.ordering) {
                (Ok(Enqueued::New(id)), Some(o)) => {
                    Some((e.source.as_str(), o.key(), i, id.0, o.position()))
                }
                _ => None,
            })
            .collect();
        joins.sort_unstable();
        let now = self.shared.now();
        let sql = &self.shared.sql.order;
        for (source, key, _, id, position) in joins {
            order_keys::join(conn, sql, id, (source, key), position, now).await?;
        }
        Ok(())
    }

    /// Inserts; returns `(index in events, id)` for each record stored.
    async fn insert(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&RawEvent],
    ) -> Result<Vec<(usize, MessageId)>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let received: Vec<i64> = events.iter().map(|e| to_micros(e.received_at)).collect();
        let headers: Vec<Vec<u8>> = events.iter().map(|e| encode_headers(&e.headers)).collect();
        let bodies: Vec<&[u8]> = events.iter().map(|e| &e.body[..]).collect();
        let types: Vec<Option<&str>> = events.iter().map(|e| type_of(e)).collect();
        let origins: Vec<i16> = events.iter().map(|e| origin_of(e)).collect();
        let (order_keys, order_pos): (Vec<Option<&str>>, Vec<Option<i64>>) =
            events.iter().map(|e| ordering_of(e)).unzip();
        let rows = sqlx::query(self.shared.sql.insert.q())
            .bind(&sources)
            .bind(&ids)
            .bind(&received)
            .bind(&headers)
            .bind(&bodies)
            .bind(self.shared.now())
            .bind(&self.shared.channel)
            .bind(&types)
            .bind(&origins)
            .bind(&order_keys)
            .bind(&order_pos)
            .fetch_all(&mut *conn)
            .await?;
        match_keys(events, &rows)
    }

    /// The records of these keys; `(index in events, what it is)` for each found.
    async fn find(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&RawEvent],
    ) -> Result<Vec<(usize, Known)>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.shared.now();
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let rows = sqlx::query(self.shared.sql.find.q())
            .bind(&sources)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        let found = match_keys(events, &rows)?;
        found
            .into_iter()
            .zip(&rows)
            .map(|((slot, id), row)| {
                let state: i16 = row.try_get(3)?;
                let at: i64 = row.try_get(4)?;
                let state = i64::from(state);
                Ok((
                    slot,
                    if state >= DONE && at <= now {
                        Known::Forgotten(id)
                    } else if state == CLAIM_ONLY {
                        Known::ClaimOnly(id)
                    } else {
                        Known::Held(id)
                    },
                ))
            })
            .collect()
    }

    /// Stores events on records that held only a claim; `(index in events, id)` for each.
    async fn attach(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&RawEvent],
        targets: &[(usize, MessageId)],
    ) -> Result<Vec<(usize, MessageId)>, sqlx::Error> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = targets.iter().map(|(_, id)| id.0).collect();
        let received: Vec<i64> = targets
            .iter()
            .map(|&(i, _)| to_micros(events[i].received_at))
            .collect();
        let headers: Vec<Vec<u8>> = targets
            .iter()
            .map(|&(i, _)| encode_headers(&events[i].headers))
            .collect();
        let bodies: Vec<&[u8]> = targets.iter().map(|&(i, _)| &events[i].body[..]).collect();
        let types: Vec<Option<&str>> = targets.iter().map(|&(i, _)| type_of(events[i])).collect();
        let origins: Vec<i16> = targets.iter().map(|&(i, _)| origin_of(events[i])).collect();
        let (order_keys, order_pos): (Vec<Option<&str>>, Vec<Option<i64>>) =
            targets.iter().map(|&(i, _)| ordering_of(events[i])).unzip();
        let rows = sqlx::query(self.shared.sql.attach.q())
            .bind(&ids)
            .bind(&received)
            .bind(&headers)
            .bind(&bodies)
            .bind(self.shared.now())
            .bind(&self.shared.channel)
            .bind(&types)
            .bind(&origins)
            .bind(&order_keys)
            .bind(&order_pos)
            .fetch_all(&mut *conn)
            .await?;
        let stored: std::collections::HashSet<i64> =
            rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
        Ok(targets
            .iter()
            .filter(|(_, id)| stored.contains(&id.0))
            .copied()
            .collect())
    }

    /// Deletes these records if their time to be forgotten has come.
    async fn forget(
        &self,
        conn: &mut sqlx::PgConnection,
        ids: &[MessageId],
    ) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        sqlx::query(self.shared.sql.forget.q())
            .bind(Some(&ids))
            .bind(self.shared.now())
            .bind(ids.len() as i64)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// The event's type as stored.
fn type_of(e: &RawEvent) -> Option<&str> {
    e.event_type.as_ref().map(|t| t.as_str())
}

/// The event's ordering key and position as stored.
fn ordering_of(e: &RawEvent) -> (Option<&str>, Option<i64>) {
    match &e.ordering {
        Some(o) => (Some(o.key()), o.position()),
        None => (None, None),
    }
}

/// What [`EnqueueOp::store_limited`] decided so far, for [`EnqueueOp::join_new`]: an
/// undecided event (refused as full) stored nothing.
fn out_stored(out: &[Option<Stored>]) -> Vec<Stored> {
    out.iter().map(|o| o.unwrap_or(Err(0))).collect()
}

/// The event's origin code as stored.
fn origin_of(e: &RawEvent) -> i16 {
    // The codes are 0..=2.
    i16::try_from(e.origin.code()).unwrap_or(0)
}

/// Matches rows `(id, source, event_id, ...)` back to the events (whose keys are unique);
/// in row order.
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
        match index.get(&(source, event_id)) {
            Some(&i) => out.push((i, MessageId(id))),
            None => {
                return Err(sqlx::Error::Protocol(
                    "a returned key matches no event of the batch".into(),
                ))
            }
        }
    }
    Ok(out)
}
