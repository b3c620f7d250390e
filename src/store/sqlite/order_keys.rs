//! Ordering keys over `hookdock_order_keys` and the `order_key`, `order_pos` and
//! `order_mark` columns of `hookdock_events`.
//!
//! Of a key's pending records (`state < 2`) exactly one is *active*: leased, or waiting at
//! its own `available_at`; the others wait with `available_at` = [`PARKED`], so the lease
//! query never sees them and they count as scheduled.
//!
//! The watermark travels with the work: the active record carries it (`order_mark`, set when
//! it becomes active; nothing else of its key can move it meanwhile), and settling it hands
//! the new watermark to the next record it unparks. Only a key left with nothing pending
//! writes its row (the watermark, for the key's next event). So draining a key costs one
//! write more than draining unordered events: the unpark. The row's `active` is a hint,
//! checked before use and refound from the key's pending records when it is out of date.
//!
//! Every function here runs inside the writer's transaction, beside the change to the event
//! that calls it.

use rusqlite::{params, Connection, OptionalExtension};

/// The `available_at` of a waiting record held behind its key's active one: never due.
pub(super) const PARKED: i64 = i64::MAX;

const KEY: &str =
    "SELECT active, watermark FROM hookdock_order_keys WHERE source = ?1 AND order_key = ?2";

const SET_ACTIVE: &str = "INSERT INTO hookdock_order_keys (source, order_key, active)
    VALUES (?1, ?2, ?3)
    ON CONFLICT (source, order_key) DO UPDATE SET active = excluded.active";

/// The key is left with nothing pending: its watermark is kept on its row.
const IDLE: &str = "INSERT INTO hookdock_order_keys (source, order_key, active, watermark)
    VALUES (?1, ?2, NULL, ?3)
    ON CONFLICT (source, order_key) DO UPDATE SET active = NULL, watermark = excluded.watermark";

/// A record, if it is its key's active one (pending and not parked).
const ACTIVE_BY_ID: &str = "SELECT id, state, order_pos, order_mark FROM hookdock_events
    WHERE id = ?1 AND state < 2 AND available_at <> 9223372036854775807";

/// The key's active record other than `?3` (the record joining), found among its pending
/// ones when the hint is out of date.
const ACTIVE_BY_KEY: &str = "SELECT id, state, order_pos, order_mark FROM hookdock_events
    WHERE source = ?1 AND order_key = ?2 AND state < 2 AND available_at <> 9223372036854775807
        AND id <> ?3
    ORDER BY order_pos, id LIMIT 1";

/// The key's first pending record by position (none first: SQLite sorts `NULL` first), then id.
const FIRST: &str = "SELECT id FROM hookdock_events
    WHERE source = ?1 AND order_key = ?2 AND state < 2
    ORDER BY order_pos, id LIMIT 1";

const PARK: &str = "UPDATE hookdock_events SET available_at = ?2 WHERE id = ?1 AND state = 0";

/// Makes a parked record active, waiting from `?2`, with the watermark `?4`.
const UNPARK: &str = "UPDATE hookdock_events SET available_at = ?2, order_mark = ?4
    WHERE id = ?1 AND state = 0 AND available_at = ?3";

const MARK: &str = "UPDATE hookdock_events SET order_mark = ?2 WHERE id = ?1";

/// Expired leases of keyed records (from the leased index).
const EXPIRED: &str = "SELECT id, source, order_key, order_mark FROM hookdock_events
    WHERE state = 1 AND available_at <= ?1 AND order_key IS NOT NULL";

/// An expired lease making way: waiting again (its attempt stays counted), parked.
const GIVE_WAY: &str = "UPDATE hookdock_events SET state = 0, token = NULL, available_at = ?2
    WHERE id = ?1 AND state = 1";

/// A key's active record: id, state, position, the watermark it carries.
type Active = (i64, i64, Option<i64>, Option<i64>);

/// Where a record sorts among its key's.
fn slot(position: Option<i64>, id: i64) -> (i64, i64) {
    (position.unwrap_or(i64::MIN), id)
}

/// The key's active record other than `joining`, if any, and the watermark kept on its row.
fn active(
    conn: &Connection,
    source: &str,
    key: &str,
    joining: i64,
) -> rusqlite::Result<(Option<Active>, Option<i64>)> {
    let row: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached(KEY)?
        .query_row(params![source, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((hint, watermark)) = row else {
        return Ok((None, None));
    };
    let read = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
    let hinted = match hint.filter(|&h| h != joining) {
        Some(id) => conn
            .prepare_cached(ACTIVE_BY_ID)?
            .query_row(params![id], read)
            .optional()?,
        None => None,
    };
    let found = match hinted {
        Some(a) => Some(a),
        None => conn
            .prepare_cached(ACTIVE_BY_KEY)?
            .query_row(params![source, key, joining], read)
            .optional()?,
    };
    Ok((found, watermark))
}

fn set_active(conn: &Connection, source: &str, key: &str, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(SET_ACTIVE)?
        .execute(params![source, key, id])?;
    Ok(())
}

fn park(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(PARK)?.execute(params![id, PARKED])?;
    Ok(())
}

/// Makes `id` active from `now` with `watermark`; a record that was not parked (it was the
/// active one waiting for a retry) keeps its time.
fn activate(conn: &Connection, id: i64, now: i64, watermark: Option<i64>) -> rusqlite::Result<()> {
    let n = conn
        .prepare_cached(UNPARK)?
        .execute(params![id, now, PARKED, watermark])?;
    if n == 0 {
        conn.prepare_cached(MARK)?.execute(params![id, watermark])?;
    }
    Ok(())
}

fn first(conn: &Connection, source: &str, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(FIRST)?
        .query_row(params![source, key], |r| r.get(0))
        .optional()
}

/// A record `id` of `key` that just became pending and waiting (a new event, a replay)
/// joins its key: it becomes the active one, or is parked behind it, or, if it sorts before
/// an active one that is only waiting, takes its place and its watermark.
pub(super) fn join(
    conn: &Connection,
    id: i64,
    source: &str,
    key: &str,
    position: Option<i64>,
) -> rusqlite::Result<()> {
    let (current, idle_watermark) = active(conn, source, key, id)?;
    let watermark = match current {
        None => idle_watermark,
        Some((_, 1, _, _)) => return park(conn, id),
        Some((a, _, a_position, a_mark)) if slot(position, id) < slot(a_position, a) => {
            park(conn, a)?;
            a_mark
        }
        Some(_) => return park(conn, id),
    };
    set_active(conn, source, key, id)?;
    conn.prepare_cached(MARK)?.execute(params![id, watermark])?;
    Ok(())
}

/// The key's active record was settled for good (acked at `acked`, skipped, dead-lettered),
/// carrying `mark`: the next record in order becomes active from `now` with the watermark
/// raised by the ack; with none left the key's row keeps the watermark. One write.
pub(super) fn settled(
    conn: &Connection,
    source: &str,
    key: &str,
    acked: Option<i64>,
    mark: Option<i64>,
    now: i64,
) -> rusqlite::Result<()> {
    let watermark = match (mark, acked) {
        (Some(m), Some(a)) => Some(m.max(a)),
        (m, a) => m.or(a),
    };
    match first(conn, source, key)? {
        Some(next) => activate(conn, next, now, watermark),
        None => {
            conn.prepare_cached(IDLE)?
                .execute(params![source, key, watermark])?;
            Ok(())
        }
    }
}

/// The key's active record `id`, carrying `mark`, waits again (a retry or a deferral): it
/// stays active unless an earlier record of its key arrived while it was leased, which then
/// goes first.
pub(super) fn requeued(
    conn: &Connection,
    id: i64,
    source: &str,
    key: &str,
    mark: Option<i64>,
    now: i64,
) -> rusqlite::Result<()> {
    if let Some(f) = first(conn, source, key)?.filter(|&f| f != id) {
        park(conn, id)?;
        activate(conn, f, now, mark)?;
        set_active(conn, source, key, f)?;
    }
    Ok(())
}

/// Expired leases of keyed records give way to an earlier record of their key that arrived
/// while they were leased: parked, the earlier one active from `now`. Runs before a lease.
pub(super) fn give_way(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    let expired: Vec<(i64, String, String, Option<i64>)> = conn
        .prepare_cached(EXPIRED)?
        .query_map(params![now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, source, key, mark) in expired {
        if let Some(f) = first(conn, &source, &key)?.filter(|&f| f != id) {
            conn.prepare_cached(GIVE_WAY)?
                .execute(params![id, PARKED])?;
            activate(conn, f, now, mark)?;
            set_active(conn, &source, &key, f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) const ALL_SQL: [&str; 11] = [
    KEY,
    SET_ACTIVE,
    IDLE,
    ACTIVE_BY_ID,
    ACTIVE_BY_KEY,
    FIRST,
    PARK,
    UNPARK,
    MARK,
    EXPIRED,
    GIVE_WAY,
];
