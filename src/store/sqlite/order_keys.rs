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
//! writes its watermark on its row (for the key's next event). The row's `active` is a hint,
//! checked before use and refound from the key's records when it is out of date.
//!
//! # What a drain writes
//!
//! A key's records are found through `hookdock_events_order`, which holds every keyed record
//! whatever its state: leasing, claiming and settling a record never rewrite its entry there
//! (a partial index on `state` would, one page per key touched, in every group commit). A
//! walk over the key's entries starts at the key's *floor* (`floor_pos`, `floor_id` on its
//! row): no pending record of the key sorts before it. A record joining below the floor
//! lowers it; a walk that stepped over [`FLOOR_LAG`] settled records or more raises it to the
//! record it found. So settling a key's active record costs one write besides its own (the
//! unpark of the next one), and a write of the small key row now and then.
//!
//! A record unparked after its predecessor was settled becomes due from when it was stored
//! (`enqueued_at`), not from the settle: leases take the oldest due records first, so the
//! records of one group commit sit near each other in the table, as unordered ones do, instead
//! of being spread over every key's next record.
//!
//! Every function here runs inside the writer's transaction, beside the change to the event
//! that calls it.

use rusqlite::{params, Connection, OptionalExtension};

/// The `available_at` of a waiting record held behind its key's active one: never due.
pub(super) const PARKED: i64 = i64::MAX;

/// A walk that stepped over this many records that are not pending moves the key's floor up
/// to the record it found (one write of the key's row).
const FLOOR_LAG: usize = 8;

const KEY: &str = "SELECT active, watermark, floor_pos, floor_id FROM hookdock_order_keys
    WHERE source = ?1 AND order_key = ?2";

/// `?3` the active record, `?4`, `?5` the floor.
const SET_ACTIVE: &str = "INSERT INTO hookdock_order_keys
        (source, order_key, active, floor_pos, floor_id)
    VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (source, order_key) DO UPDATE SET active = excluded.active,
        floor_pos = excluded.floor_pos, floor_id = excluded.floor_id";

/// Lowers the floor of a key that has a row.
const SET_FLOOR: &str = "UPDATE hookdock_order_keys SET floor_pos = ?3, floor_id = ?4
    WHERE source = ?1 AND order_key = ?2";

/// The key is left with nothing pending: its watermark is kept on its row, `?4`, `?5` the
/// floor.
const IDLE: &str = "INSERT INTO hookdock_order_keys
        (source, order_key, active, watermark, floor_pos, floor_id)
    VALUES (?1, ?2, NULL, ?3, ?4, ?5)
    ON CONFLICT (source, order_key) DO UPDATE SET active = NULL,
        watermark = excluded.watermark, floor_pos = excluded.floor_pos,
        floor_id = excluded.floor_id";

/// A record, if it is its key's active one (pending and not parked).
const ACTIVE_BY_ID: &str = "SELECT id, state, order_pos, order_mark FROM hookdock_events
    WHERE id = ?1 AND state < 2 AND available_at <> 9223372036854775807";

/// A key's records without a position from id `?3` on, in order (they sort first).
const WALK_UNPOSITIONED: &str =
    "SELECT id, order_pos, state, available_at, order_mark FROM hookdock_events
    WHERE source = ?1 AND order_key = ?2 AND order_pos IS NULL AND id >= ?3
    ORDER BY order_pos, id";

/// A key's records with a position from (`?3`, `?4`) on, in order.
const WALK_POSITIONED: &str =
    "SELECT id, order_pos, state, available_at, order_mark FROM hookdock_events
    WHERE source = ?1 AND order_key = ?2 AND (order_pos, id) >= (?3, ?4)
    ORDER BY order_pos, id";

const PARK: &str = "UPDATE hookdock_events SET available_at = ?2 WHERE id = ?1 AND state = 0";

/// Makes a parked record active, waiting from `?2`, with the watermark `?4`.
const UNPARK: &str = "UPDATE hookdock_events SET available_at = ?2, order_mark = ?4
    WHERE id = ?1 AND state = 0 AND available_at = ?3";

/// Makes a parked record active, due from when it was stored (at the latest `?2`), with the
/// watermark `?4`.
const UNPARK_DUE: &str =
    "UPDATE hookdock_events SET available_at = MIN(enqueued_at, ?2), order_mark = ?4
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

/// Where a record sorts among its key's: by position (none first), then id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Slot {
    position: Option<i64>,
    id: i64,
}

impl Slot {
    /// Where record `id` at `position` sorts.
    pub(super) fn of(position: Option<i64>, id: i64) -> Self {
        Self { position, id }
    }

    /// Before every record.
    const BOTTOM: Slot = Slot {
        position: None,
        id: i64::MIN,
    };
}

/// A key's row.
struct KeyRow {
    hint: Option<i64>,
    watermark: Option<i64>,
    floor: Slot,
}

fn key_row(conn: &Connection, source: &str, key: &str) -> rusqlite::Result<Option<KeyRow>> {
    conn.prepare_cached(KEY)?
        .query_row(params![source, key], |r| {
            let floor_id: Option<i64> = r.get(3)?;
            Ok(KeyRow {
                hint: r.get(0)?,
                watermark: r.get(1)?,
                floor: match floor_id {
                    Some(id) => Slot::of(r.get(2)?, id),
                    None => Slot::BOTTOM,
                },
            })
        })
        .optional()
}

/// A record met on a walk.
struct Met {
    id: i64,
    position: Option<i64>,
    state: i64,
    parked: bool,
    mark: Option<i64>,
}

impl Met {
    fn pending(&self) -> bool {
        self.state < 2
    }
}

/// Walks the key's records in order from `floor`, up to the first that `wanted` picks; also
/// says how many it stepped over.
fn walk(
    conn: &Connection,
    source: &str,
    key: &str,
    floor: Slot,
    wanted: impl Fn(&Met) -> bool,
) -> rusqlite::Result<(Option<Met>, usize)> {
    let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Met> {
        Ok(Met {
            id: r.get(0)?,
            position: r.get(1)?,
            state: r.get(2)?,
            parked: r.get::<_, i64>(3)? == PARKED,
            mark: r.get(4)?,
        })
    };
    let mut stepped = 0;
    if floor.position.is_none() {
        let mut stmt = conn.prepare_cached(WALK_UNPOSITIONED)?;
        let mut rows = stmt.query(params![source, key, floor.id])?;
        while let Some(row) = rows.next()? {
            let met = read(row)?;
            if wanted(&met) {
                return Ok((Some(met), stepped));
            }
            stepped += 1;
        }
    }
    let (position, id) = match floor.position {
        Some(p) => (p, floor.id),
        None => (i64::MIN, i64::MIN),
    };
    let mut stmt = conn.prepare_cached(WALK_POSITIONED)?;
    let mut rows = stmt.query(params![source, key, position, id])?;
    while let Some(row) = rows.next()? {
        let met = read(row)?;
        if wanted(&met) {
            return Ok((Some(met), stepped));
        }
        stepped += 1;
    }
    Ok((None, stepped))
}

/// The key's first pending record other than `except`, from the floor.
fn first(
    conn: &Connection,
    source: &str,
    key: &str,
    except: i64,
) -> rusqlite::Result<(Option<Met>, usize, Slot)> {
    let floor = key_row(conn, source, key)?.map_or(Slot::BOTTOM, |r| r.floor);
    let (met, stepped) = walk(conn, source, key, floor, |m| m.pending() && m.id != except)?;
    Ok((met, stepped, floor))
}

/// The key's active record other than `joining`, if any, and its row.
fn active(
    conn: &Connection,
    source: &str,
    key: &str,
    joining: i64,
) -> rusqlite::Result<(Option<Active>, Option<KeyRow>)> {
    let Some(row) = key_row(conn, source, key)? else {
        return Ok((None, None));
    };
    let read = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
    let hinted = match row.hint.filter(|&h| h != joining) {
        Some(id) => conn
            .prepare_cached(ACTIVE_BY_ID)?
            .query_row(params![id], read)
            .optional()?,
        None => None,
    };
    let found = match hinted {
        Some(a) => Some(a),
        None => walk(conn, source, key, row.floor, |m| {
            m.pending() && !m.parked && m.id != joining
        })?
        .0
        .map(|m| (m.id, m.state, m.position, m.mark)),
    };
    Ok((found, Some(row)))
}

fn set_active(
    conn: &Connection,
    source: &str,
    key: &str,
    id: i64,
    floor: Slot,
) -> rusqlite::Result<()> {
    conn.prepare_cached(SET_ACTIVE)?
        .execute(params![source, key, id, floor.position, floor.id])?;
    Ok(())
}

fn park(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(PARK)?.execute(params![id, PARKED])?;
    Ok(())
}

/// Makes `id` active from `at` with `watermark` (from when it was stored, at the latest `at`,
/// if `due`); a record that was not parked (it was the active one waiting for a retry) keeps
/// its time.
fn activate(
    conn: &Connection,
    id: i64,
    at: i64,
    due: bool,
    watermark: Option<i64>,
) -> rusqlite::Result<()> {
    let sql = if due { UNPARK_DUE } else { UNPARK };
    let n = conn
        .prepare_cached(sql)?
        .execute(params![id, at, PARKED, watermark])?;
    if n == 0 {
        conn.prepare_cached(MARK)?.execute(params![id, watermark])?;
    }
    Ok(())
}

/// A record `id` of `key` that just became pending and waiting (a new event, a replay)
/// joins its key: it becomes the active one, or is parked behind it, or, if it sorts before
/// an active one that is only waiting, takes its place and its watermark. A record sorting
/// below the key's floor lowers it.
pub(super) fn join(
    conn: &Connection,
    id: i64,
    source: &str,
    key: &str,
    position: Option<i64>,
) -> rusqlite::Result<()> {
    let joining = Slot::of(position, id);
    let (current, row) = active(conn, source, key, id)?;
    let floor = row.as_ref().map_or(joining, |r| r.floor.min(joining));
    let lowered = row.as_ref().is_some_and(|r| joining < r.floor);
    let park_joining = |conn: &Connection| -> rusqlite::Result<()> {
        park(conn, id)?;
        if lowered {
            conn.prepare_cached(SET_FLOOR)?.execute(params![
                source,
                key,
                floor.position,
                floor.id
            ])?;
        }
        Ok(())
    };
    let watermark = match current {
        None => row.and_then(|r| r.watermark),
        Some((_, 1, _, _)) => return park_joining(conn),
        Some((a, _, a_position, a_mark)) if joining < Slot::of(a_position, a) => {
            park(conn, a)?;
            a_mark
        }
        Some(_) => return park_joining(conn),
    };
    set_active(conn, source, key, id, floor)?;
    conn.prepare_cached(MARK)?.execute(params![id, watermark])?;
    Ok(())
}

/// The key's active record, at `slot`, was settled for good (acked with position `acked`,
/// skipped, dead-lettered), carrying `mark`: the next record in order becomes active (due
/// from when it was stored, at the latest `now`) with the watermark raised by the ack; with
/// none left the key's row keeps the watermark. One write, and now and then one of the key's
/// row to move its floor up.
pub(super) fn settled(
    conn: &Connection,
    source: &str,
    key: &str,
    slot: Slot,
    acked: Option<i64>,
    mark: Option<i64>,
    now: i64,
) -> rusqlite::Result<()> {
    let watermark = match (mark, acked) {
        (Some(m), Some(a)) => Some(m.max(a)),
        (m, a) => m.or(a),
    };
    let (next, stepped, floor) = first(conn, source, key, slot.id)?;
    match next {
        Some(next) => {
            activate(conn, next.id, now, true, watermark)?;
            if stepped >= FLOOR_LAG {
                set_active(conn, source, key, next.id, Slot::of(next.position, next.id))?;
            }
            Ok(())
        }
        None => {
            // Nothing is pending: any floor holds (a record joining below it lowers it); the
            // settled record's, or the old one if higher, keeps the next walk short.
            let floor = floor.max(slot);
            conn.prepare_cached(IDLE)?.execute(params![
                source,
                key,
                watermark,
                floor.position,
                floor.id
            ])?;
            Ok(())
        }
    }
}

/// The key's active record `id`, carrying `mark`, waits again (a retry or a deferral): it
/// stays active unless an earlier record of its key arrived while it was leased, which then
/// goes first, at `at`.
pub(super) fn requeued(
    conn: &Connection,
    id: i64,
    source: &str,
    key: &str,
    mark: Option<i64>,
    at: i64,
) -> rusqlite::Result<()> {
    let floor = key_row(conn, source, key)?.map_or(Slot::BOTTOM, |r| r.floor);
    let (first, _) = walk(conn, source, key, floor, Met::pending)?;
    if let Some(f) = first.filter(|f| f.id != id) {
        park(conn, id)?;
        activate(conn, f.id, at, false, mark)?;
        set_active(conn, source, key, f.id, floor)?;
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
        let floor = key_row(conn, &source, &key)?.map_or(Slot::BOTTOM, |r| r.floor);
        let (first, _) = walk(conn, &source, &key, floor, Met::pending)?;
        if let Some(f) = first.filter(|f| f.id != id) {
            conn.prepare_cached(GIVE_WAY)?
                .execute(params![id, PARKED])?;
            activate(conn, f.id, now, false, mark)?;
            set_active(conn, &source, &key, f.id, floor)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) const ALL_SQL: [&str; 13] = [
    KEY,
    SET_ACTIVE,
    SET_FLOOR,
    IDLE,
    ACTIVE_BY_ID,
    WALK_UNPOSITIONED,
    WALK_POSITIONED,
    PARK,
    UNPARK,
    UNPARK_DUE,
    MARK,
    EXPIRED,
    GIVE_WAY,
];
