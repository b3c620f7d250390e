//! Ordering keys over `hookdock_order_keys` (one row per key: its active record and its
//! watermark) and the `order_key`/`order_pos` columns of `hookdock_events` (migration 5).
//!
//! Of a key's pending records (`state < 2`) exactly one is *active*: leased, or waiting at
//! its own `available_at`; the others wait with `available_at` = [`PARKED`], so the lease
//! query never sees them and they count as scheduled.
//!
//! The key's row is its lock. Every function here runs inside a transaction, after the
//! change to the event that calls it and in the same transaction, and first locks the
//! key's row ([`lock`]): joins and settles of one key take turns, other keys run in
//! parallel. Locks are taken in one order everywhere: the settled or replayed queue rows
//! first (by the statement that changes them), then key rows sorted by `(source, key)`.
//! The only queue rows touched while holding a key's lock are its waiting ones (`state =
//! 0`), and a lease that holds one of those never waits for a key, so the order cannot
//! deadlock. A waiting row may still be leased under a key's lock (the lease takes any due
//! row without its key): parking writes `WHERE state = 0` and checks what it did.

use sqlx::{PgConnection, Row};

use super::schema::{Schema, Sql};

/// The `available_at` of a waiting record held behind its key's active one: never due.
pub(super) const PARKED: i64 = i64::MAX;

/// $1 source, $2 key: creates the key's row if new, locks it, returns it.
const LOCK: &str = "
INSERT INTO {schema}.hookdock_order_keys AS k (source, order_key) VALUES ($1, $2)
ON CONFLICT (source, order_key) DO UPDATE SET active = k.active
RETURNING active, watermark";

const SET_ACTIVE: &str = "
UPDATE {schema}.hookdock_order_keys SET active = $3 WHERE source = $1 AND order_key = $2";

/// Never lowers it: `GREATEST` ignores a `NULL`.
const RAISE_WATERMARK: &str = "
UPDATE {schema}.hookdock_order_keys SET watermark = GREATEST(watermark, $3)
WHERE source = $1 AND order_key = $2";

const RECORD: &str = "
SELECT q.state, e.order_pos FROM {schema}.hookdock_queue q
JOIN {schema}.hookdock_events e ON e.id = q.id
WHERE q.id = $1";

/// The key's first pending record by position (none first), then id.
const FIRST: &str = "
SELECT e.id FROM {schema}.hookdock_events e
JOIN {schema}.hookdock_queue q ON q.id = e.id
WHERE e.source = $1 AND e.order_key = $2 AND q.state < 2
ORDER BY e.order_pos NULLS FIRST, e.id
LIMIT 1";

const PARK: &str = "
UPDATE {schema}.hookdock_queue SET available_at = $2 WHERE id = $1 AND state = 0";

const UNPARK: &str = "
UPDATE {schema}.hookdock_queue SET available_at = $2
WHERE id = $1 AND state = 0 AND available_at = $3";

/// The statements of ordering keys for one schema.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    lock: Sql,
    set_active: Sql,
    raise_watermark: Sql,
    record: Sql,
    first: Sql,
    park: Sql,
    unpark: Sql,
}

impl Statements {
    pub(super) fn new(s: &Schema) -> Self {
        Self {
            lock: s.sql(LOCK),
            set_active: s.sql(SET_ACTIVE),
            raise_watermark: s.sql(RAISE_WATERMARK),
            record: s.sql(RECORD),
            first: s.sql(FIRST),
            park: s.sql(PARK),
            unpark: s.sql(UNPARK),
        }
    }
}

/// Where a record sorts among its key's.
fn slot(position: Option<i64>, id: i64) -> (i64, i64) {
    (position.unwrap_or(i64::MIN), id)
}

/// Locks the key's row (creating it if new); returns its active record and watermark.
pub(super) async fn lock(
    conn: &mut PgConnection,
    sql: &Statements,
    source: &str,
    key: &str,
) -> Result<(Option<i64>, Option<i64>), sqlx::Error> {
    let row = sqlx::query(sql.lock.q())
        .bind(source)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

async fn set_active(
    conn: &mut PgConnection,
    sql: &Statements,
    source: &str,
    key: &str,
    id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql.set_active.q())
        .bind(source)
        .bind(key)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Parks a waiting record; false if it was not waiting (leased meanwhile, say).
async fn park(conn: &mut PgConnection, sql: &Statements, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(sql.park.q())
        .bind(id)
        .bind(PARKED)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes a parked record wait from `now`; one waiting at its own time is left alone.
async fn unpark(
    conn: &mut PgConnection,
    sql: &Statements,
    id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql.unpark.q())
        .bind(id)
        .bind(now)
        .bind(PARKED)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn first(
    conn: &mut PgConnection,
    sql: &Statements,
    source: &str,
    key: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(sql.first.q())
        .bind(source)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
}

/// A record `id` of `key` that just became waiting (a new event, inserted parked; a
/// replay, waiting at `now`) joins its key: it becomes the active one (waiting from
/// `now`), or is parked behind it, or, if it sorts before an active one that is only
/// waiting, takes its place. Locks the key.
pub(super) async fn join(
    conn: &mut PgConnection,
    sql: &Statements,
    id: i64,
    (source, key): (&str, &str),
    position: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (active, _) = lock(conn, sql, source, key).await?;
    let current = match active.filter(|&a| a != id) {
        Some(a) => sqlx::query(sql.record.q())
            .bind(a)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| {
                Ok::<_, sqlx::Error>((a, r.try_get::<i16, _>(0)?, r.try_get::<Option<i64>, _>(1)?))
            })
            .transpose()?
            .filter(|(_, state, _)| *state < 2),
        None => None,
    };
    let take_over = match current {
        None => true,
        Some((_, 1, _)) => false,
        Some((a, _, a_position)) if slot(position, id) < slot(a_position, a) => {
            // A lease may have taken it since it was read: then it holds the key.
            park(conn, sql, a).await?
        }
        Some(_) => false,
    };
    if take_over {
        unpark(conn, sql, id, now).await?;
        set_active(conn, sql, source, key, Some(id)).await
    } else {
        park(conn, sql, id).await.map(drop)
    }
}

/// The key's active record left (settled, or waiting again after a retry or deferral): the
/// first pending record by order becomes active, waiting from `now` if it was parked. A
/// retried record that still comes first stays active at its retry time. Locks the key.
pub(super) async fn next(
    conn: &mut PgConnection,
    sql: &Statements,
    (source, key): (&str, &str),
    now: i64,
) -> Result<(), sqlx::Error> {
    let (active, _) = lock(conn, sql, source, key).await?;
    let first = first(conn, sql, source, key).await?;
    if let (Some(a), Some(f)) = (active, first) {
        if a != f {
            park(conn, sql, a).await?;
        }
    }
    if let Some(f) = first {
        unpark(conn, sql, f, now).await?;
    }
    set_active(conn, sql, source, key, first).await
}

/// An ack of a record at `position` raises its key's watermark (never lowers it). Run
/// under the key's lock (before [`next`]).
pub(super) async fn raise_watermark(
    conn: &mut PgConnection,
    sql: &Statements,
    (source, key): (&str, &str),
    position: i64,
) -> Result<(), sqlx::Error> {
    lock(conn, sql, source, key).await?;
    sqlx::query(sql.raise_watermark.q())
        .bind(source)
        .bind(key)
        .bind(position)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An expired lease `id` of `key`, re-checked and locked by the caller: true if an earlier
/// record of its key arrived while it was leased and it must make way (the caller parks it
/// as waiting, its attempt still counted, and calls [`next`]). Locks the key.
pub(super) async fn must_give_way(
    conn: &mut PgConnection,
    sql: &Statements,
    id: i64,
    (source, key): (&str, &str),
) -> Result<bool, sqlx::Error> {
    lock(conn, sql, source, key).await?;
    Ok(first(conn, sql, source, key)
        .await?
        .is_some_and(|f| f != id))
}
