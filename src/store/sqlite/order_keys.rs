//! Ordering keys over `hookdock_order_keys` (one row per key: its active record and its
//! watermark) and the `order_key`/`order_pos` columns of `hookdock_events`.
//!
//! Of a key's pending records (`state < 2`) exactly one is *active*: leased, or waiting at
//! its own `available_at`; the others wait with `available_at` = [`PARKED`], so the lease
//! query never sees them and they count as scheduled. Every function here runs inside the
//! writer's transaction, beside the change to the event that calls it.

use rusqlite::{params, Connection, OptionalExtension};

/// The `available_at` of a waiting record held behind its key's active one: never due.
pub(super) const PARKED: i64 = i64::MAX;

const KEY: &str =
    "SELECT active, watermark FROM hookdock_order_keys WHERE source = ?1 AND order_key = ?2";

const SET_ACTIVE: &str = "INSERT INTO hookdock_order_keys (source, order_key, active)
    VALUES (?1, ?2, ?3)
    ON CONFLICT (source, order_key) DO UPDATE SET active = excluded.active";

const RECORD: &str = "SELECT state, order_pos FROM hookdock_events WHERE id = ?1";

/// The key's first pending record by position (none first: SQLite sorts `NULL` first), then id.
const FIRST: &str = "SELECT id, order_pos FROM hookdock_events
    WHERE source = ?1 AND order_key = ?2 AND state < 2
    ORDER BY order_pos, id LIMIT 1";

const PARK: &str = "UPDATE hookdock_events SET available_at = ?2 WHERE id = ?1 AND state = 0";

/// `?4`: the key's watermark, kept on the record while it is active.
const UNPARK: &str = "UPDATE hookdock_events SET available_at = ?2, order_mark = ?4
    WHERE id = ?1 AND state = 0 AND available_at = ?3";

const MARK: &str = "UPDATE hookdock_events SET order_mark = ?2 WHERE id = ?1";

/// The key's active record was settled for good (`?3`: the position acked, if any): the
/// watermark rises and the first pending record becomes active, in one statement; the
/// caller unparks it.
const SETTLED: &str = "UPDATE hookdock_order_keys
    SET watermark = CASE WHEN ?3 IS NULL THEN watermark ELSE max(coalesce(watermark, ?3), ?3) END,
        active = (SELECT id FROM hookdock_events
                  WHERE source = ?1 AND order_key = ?2 AND state < 2
                  ORDER BY order_pos, id LIMIT 1)
    WHERE source = ?1 AND order_key = ?2
    RETURNING active, watermark";

/// Expired leases of keyed records (from the leased index).
const EXPIRED: &str = "SELECT id, source, order_key FROM hookdock_events
    WHERE state = 1 AND available_at <= ?1 AND order_key IS NOT NULL";

/// An expired lease making way: waiting again (its attempt stays counted), parked.
const GIVE_WAY: &str = "UPDATE hookdock_events SET state = 0, token = NULL, available_at = ?2
    WHERE id = ?1 AND state = 1";

/// Where a record sorts among its key's.
fn slot(position: Option<i64>, id: i64) -> (i64, i64) {
    (position.unwrap_or(i64::MIN), id)
}

fn key_row(
    conn: &Connection,
    source: &str,
    key: &str,
) -> rusqlite::Result<Option<(Option<i64>, Option<i64>)>> {
    conn.prepare_cached(KEY)?
        .query_row(params![source, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

fn set_active(conn: &Connection, source: &str, key: &str, id: Option<i64>) -> rusqlite::Result<()> {
    conn.prepare_cached(SET_ACTIVE)?
        .execute(params![source, key, id])?;
    Ok(())
}

fn park(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(PARK)?.execute(params![id, PARKED])?;
    Ok(())
}

/// A record `id` of `key` that just became pending and waiting at `now` (a new event, a
/// replay) joins its key: it becomes the active one, or is parked behind it, or, if it sorts
/// before an active one that is only waiting, takes its place.
pub(super) fn join(
    conn: &Connection,
    id: i64,
    source: &str,
    key: &str,
    position: Option<i64>,
) -> rusqlite::Result<()> {
    let active = key_row(conn, source, key)?.and_then(|(active, _)| active);
    let current = match active.filter(|&a| a != id) {
        Some(a) => conn
            .prepare_cached(RECORD)?
            .query_row(params![a], |r| {
                Ok((a, r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .optional()?
            .filter(|(_, state, _)| *state < 2),
        None => None,
    };
    let becomes_active = match current {
        None => true,
        Some((_, 1, _)) => false,
        Some((a, _, a_position)) if slot(position, id) < slot(a_position, a) => {
            park(conn, a)?;
            true
        }
        Some(_) => false,
    };
    if !becomes_active {
        return park(conn, id);
    }
    set_active(conn, source, key, Some(id))?;
    let watermark = watermark(conn, source, key)?;
    conn.prepare_cached(MARK)?.execute(params![id, watermark])?;
    Ok(())
}

/// The key's active record was settled for good (acked at `acked`, skipped, dead-lettered):
/// the watermark rises by the ack, and the first pending record becomes active, waiting
/// from `now`. Two statements, whatever the key's backlog.
pub(super) fn settled(
    conn: &Connection,
    source: &str,
    key: &str,
    acked: Option<i64>,
    now: i64,
) -> rusqlite::Result<()> {
    let row: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached(SETTLED)?
        .query_row(params![source, key, acked], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((Some(next), watermark)) = row {
        conn.prepare_cached(UNPARK)?
            .execute(params![next, now, PARKED, watermark])?;
    }
    Ok(())
}

/// The key's active record left (settled, or waiting again after a retry or deferral): the
/// first pending record by order becomes active, waiting from `now` if it was parked. A
/// retried record that still comes first stays active at its retry time.
pub(super) fn next(conn: &Connection, source: &str, key: &str, now: i64) -> rusqlite::Result<()> {
    let first: Option<i64> = conn
        .prepare_cached(FIRST)?
        .query_row(params![source, key], |r| r.get(0))
        .optional()?;
    let active = key_row(conn, source, key)?.and_then(|(active, _)| active);
    if let (Some(a), Some(f)) = (active, first) {
        if a != f {
            park(conn, a)?;
        }
    }
    set_active(conn, source, key, first)?;
    if let Some(f) = first {
        let watermark = watermark(conn, source, key)?;
        conn.prepare_cached(UNPARK)?
            .execute(params![f, now, PARKED, watermark])?;
        conn.prepare_cached(MARK)?.execute(params![f, watermark])?;
    }
    Ok(())
}

/// The key's watermark.
pub(super) fn watermark(
    conn: &Connection,
    source: &str,
    key: &str,
) -> rusqlite::Result<Option<i64>> {
    Ok(key_row(conn, source, key)?.and_then(|(_, watermark)| watermark))
}

/// Expired leases of keyed records give way to an earlier record of their key that arrived
/// while they were leased: parked, the earlier one active from `now`. Runs before a lease.
pub(super) fn give_way(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    let expired: Vec<(i64, String, String)> = conn
        .prepare_cached(EXPIRED)?
        .query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, source, key) in expired {
        let first: Option<i64> = conn
            .prepare_cached(FIRST)?
            .query_row(params![source, key], |r| r.get(0))
            .optional()?;
        if let Some(f) = first.filter(|&f| f != id) {
            conn.prepare_cached(GIVE_WAY)?
                .execute(params![id, PARKED])?;
            let watermark = watermark(conn, &source, &key)?;
            conn.prepare_cached(UNPARK)?
                .execute(params![f, now, PARKED, watermark])?;
            set_active(conn, &source, &key, Some(f))?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) const ALL_SQL: [&str; 10] = [
    MARK, SETTLED, KEY, SET_ACTIVE, RECORD, FIRST, PARK, UNPARK, EXPIRED, GIVE_WAY,
];
