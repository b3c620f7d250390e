//! The event log's reads over `hookdock_events` (listing, one event, counts), and
//! [`EventLog`] for [`SqliteQueue`]; the replay jobs' table is in
//! [`replay_jobs`](super::replay_jobs).
//!
//! Every read runs on the reader connection, in one read transaction (one snapshot), and
//! never waits for the writer. The records are read where the queue keeps them; the event log
//! adds no index, so an enqueue writes exactly what it wrote before the log existed:
//!
//! - **Listing** walks the primary key backwards from the page's cursor (`id < before`),
//!   newest first, and stops once the page is full: a page costs the rows it skips over,
//!   never a sort. A filter on the dead status walks the dead letters' index instead, and a
//!   filter naming one key (`source` and `event_id`) is answered by the key lookup below.
//! - **One event by key.** The reader cannot see the writer's [tail](super::tail) (the keys
//!   written since the last merge into the key index, which live in the writer thread's
//!   memory). It does not need to: every record not yet in the key index has an id above
//!   `hookdock_state.keyed_through`, so one statement asks the key index (`keyed = 1`) and
//!   scans that range of the primary key (the tail's length: up to about twice
//!   [`SqliteOptions::key_merge_batch`](super::SqliteOptions::key_merge_batch) records, while a merge runs) for the unkeyed ones. Both halves read one snapshot, so a merge running
//!   meanwhile cannot hide the record. The writer is never asked.
//! - **Counts** read every matching record (on the reader, off the hot path); the age of the
//!   oldest waiting event walks the partial index of waiting records
//!   (`hookdock_events_available`), which holds the backlog and nothing retained.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::replay_jobs::{self, CancelJob, CreateJob, StepJob};
use super::SqliteQueue;
use crate::store::sql::log::{filter_json, fold_counts, CountRow, EntryRow, LogFilter};
use crate::store::sql::EventRow;
use crate::store::{
    EventFilter, EventLog, LogCounts, LogPage, LoggedEvent, ReplayJob, ReplayJobId, ReplayMode,
    StoreError,
};

/// The columns of an entry, in [`EntryRow`]'s order, from `hookdock_events AS e` joined with
/// `hookdock_event_bodies AS b`.
const ENTRY: &str = "e.id, e.source, e.event_id, e.event_type, e.received_at, e.origin,
    e.state, e.attempts, e.last_error, e.dead_reason, e.first_attempt_at, e.last_attempt_at,
    e.done_at, e.replays, e.forced_replays, coalesce(length(b.body), 0)";

/// How many columns [`ENTRY`] has.
const ENTRY_COLUMNS: usize = 16;

/// The conditions of a [`LogFilter`], parameters `?1`..`?8` in its order; records holding
/// only a claim are never events.
pub(super) const MATCH: &str = "state <> 4
    AND (?1 IS NULL OR source = ?1)
    AND (?2 IS NULL OR event_id = ?2)
    AND (?3 IS NULL OR event_type = ?3)
    AND (?4 IS NULL OR state = ?4)
    AND (?5 IS NULL OR (attempts > 0) = ?5)
    AND (?6 IS NULL OR origin = ?6)
    AND (?7 IS NULL OR received_at >= ?7)
    AND (?8 IS NULL OR received_at < ?8)";

/// A page: `?9` before (or none), `?10` limit. The bound on `id` is always given (the largest
/// id when there is no cursor), so the walk is a range of the primary key. `dead_only` (a
/// filter on the dead status) walks the dead letters' index (`hookdock_events_dead`, by id)
/// instead, so listing dead letters never reads through the retained events.
fn list_sql(dead_only: bool) -> String {
    let dead = if dead_only { "e.state = 2 AND " } else { "" };
    format!(
        "SELECT {ENTRY} FROM hookdock_events AS e
         LEFT JOIN hookdock_event_bodies AS b ON b.id = e.id
         WHERE {dead}e.id < coalesce(?9, 9223372036854775807) AND {MATCH}
         ORDER BY e.id DESC LIMIT ?10"
    )
}

/// The record under a key, in or out of the key index: `?1` source, `?2` event id.
pub(super) const KEY_ID: &str = "
    SELECT id FROM hookdock_events WHERE source = ?1 AND event_id = ?2 AND keyed = 1
    UNION ALL
    SELECT id FROM hookdock_events
    WHERE id > (SELECT keyed_through FROM hookdock_state WHERE id = 1)
      AND keyed = 0 AND source = ?1 AND event_id = ?2";

/// One entry with its bytes, by id (`?1`).
fn get_sql() -> String {
    format!(
        "SELECT {ENTRY}, b.headers, b.body, e.order_key, e.order_pos FROM hookdock_events AS e
         LEFT JOIN hookdock_event_bodies AS b ON b.id = e.id
         WHERE e.id = ?1 AND e.state <> 4"
    )
}

/// Counts by source, type, state and "tried".
fn counts_sql() -> String {
    format!(
        "SELECT source, event_type, state, attempts > 0, count(*) FROM hookdock_events
         WHERE {MATCH} GROUP BY source, event_type, state, attempts > 0"
    )
}

/// The receipt time of the oldest waiting event (`state = 0`), through the partial index of
/// waiting records (`state < 2` lets SQLite use it).
fn oldest_sql() -> String {
    format!(
        "SELECT min(received_at) FROM hookdock_events
         WHERE state < 2 AND state = 0 AND {MATCH}"
    )
}

/// The newest matching event and how many match: what a new replay job selects.
fn selection_sql() -> String {
    format!("SELECT max(id), count(*) FROM hookdock_events WHERE {MATCH}")
}

/// The parameters `?1`..`?8` of a filter.
pub(super) fn match_params(f: &LogFilter) -> [rusqlite::types::Value; 8] {
    use rusqlite::types::Value;
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    [
        text(&f.source),
        text(&f.event_id),
        text(&f.event_type),
        int(f.state),
        int(f.tried),
        int(f.origin),
        int(f.from),
        int(f.until),
    ]
}

/// An entry from the columns of [`ENTRY`] starting at `at`.
fn entry_row(r: &Row<'_>, at: usize) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        id: r.get(at)?,
        source: r.get(at + 1)?,
        event_id: r.get(at + 2)?,
        event_type: r.get(at + 3)?,
        received_at: r.get(at + 4)?,
        origin: r.get(at + 5)?,
        state: r.get(at + 6)?,
        attempts: r.get(at + 7)?,
        last_error: r.get(at + 8)?,
        dead_reason: r.get(at + 9)?,
        first_attempt_at: r.get(at + 10)?,
        last_attempt_at: r.get(at + 11)?,
        done_at: r.get(at + 12)?,
        replays: r.get(at + 13)?,
        forced_replays: r.get(at + 14)?,
        body_bytes: r.get(at + 15)?,
    })
}

/// The id of the record under a key, as the reader sees it (see the module docs).
pub(super) fn key_id(
    conn: &Connection,
    source: &str,
    event_id: &str,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(KEY_ID)?
        .query_row(params![source, event_id], |r| r.get(0))
        .optional()
}

/// One event with its bytes, by key; `None` for an unknown key or a record holding only a
/// claim.
fn get(
    conn: &Connection,
    source: &str,
    event_id: &str,
) -> rusqlite::Result<Option<(EntryRow, EventRow)>> {
    let Some(id) = key_id(conn, source, event_id)? else {
        return Ok(None);
    };
    conn.prepare_cached(&get_sql())?
        .query_row(params![id], |r| {
            let entry = entry_row(r, 0)?;
            let event = EventRow {
                source: entry.source.clone(),
                event_id: entry.event_id.clone(),
                received_at: entry.received_at,
                headers: r
                    .get::<_, Option<Vec<u8>>>(ENTRY_COLUMNS)?
                    .unwrap_or_default(),
                body: r
                    .get::<_, Option<Vec<u8>>>(ENTRY_COLUMNS + 1)?
                    .unwrap_or_default(),
                event_type: entry.event_type.clone(),
                origin: entry.origin,
                order_key: r.get(ENTRY_COLUMNS + 2)?,
                order_pos: r.get(ENTRY_COLUMNS + 3)?,
            };
            Ok((entry, event))
        })
        .optional()
}

/// A page of entries, newest first.
fn list(conn: &Connection, f: &LogFilter) -> rusqlite::Result<Vec<EntryRow>> {
    let mut values: Vec<rusqlite::types::Value> = match_params(f).into();
    values.push(f.before.into());
    values.push(f.limit.into());
    let mut stmt = conn.prepare_cached(&list_sql(f.state == Some(2)))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| entry_row(r, 0))?;
    rows.collect()
}

/// Rows of counts: source, type, state, tried, count; and the oldest waiting receipt time.
type CountRows = (Vec<(String, Option<String>, i64, bool, i64)>, Option<i64>);

fn counts(conn: &Connection, f: &LogFilter) -> rusqlite::Result<CountRows> {
    let values = match_params(f);
    let mut stmt = conn.prepare_cached(&counts_sql())?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let oldest = conn
        .prepare_cached(&oldest_sql())?
        .query_row(rusqlite::params_from_iter(values.iter()), |r| r.get(0))?;
    Ok((rows, oldest))
}

/// What a new job over `f` selects: the newest matching event's id and the matching count.
fn selection(conn: &Connection, f: &LogFilter) -> rusqlite::Result<(Option<i64>, i64)> {
    conn.prepare_cached(&selection_sql())?
        .query_row(rusqlite::params_from_iter(match_params(f)), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
}

/// Runs `f` in one read transaction (one snapshot of the database).
fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = conn.unchecked_transaction()?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// The one key a filter names, if it names one.
fn key_of(filter: &EventFilter) -> Option<(String, String)> {
    Some((filter.source.clone()?, filter.event_id.clone()?))
}

fn entry_of(row: EntryRow) -> Result<crate::store::LogEntry, StoreError> {
    row.into_entry()
        .ok_or_else(|| StoreError::internal("sqlite", "a claim-only record read as an event"))
}

#[async_trait]
impl EventLog for SqliteQueue {
    async fn list(&self, filter: &EventFilter) -> Result<LogPage, StoreError> {
        let size = filter.page_size();
        if let Some((source, event_id)) = key_of(filter) {
            // One key: the key lookup, then the other conditions on the one entry.
            let found = self
                .store()
                .read(move |conn| snapshot(conn, |c| get(c, &source, &event_id)))
                .await?;
            let mut entries = Vec::new();
            if let Some((row, _)) = found {
                let entry = entry_of(row)?;
                let before = filter.before.is_none_or(|b| entry.message < b);
                if before && filter.accepts(&entry) {
                    entries.push(entry);
                }
            }
            return Ok(LogPage::new(entries, size));
        }
        let f = LogFilter::from(filter);
        let rows = self.store().read(move |conn| list(conn, &f)).await?;
        let entries = rows
            .into_iter()
            .map(entry_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LogPage::new(entries, size))
    }

    async fn get(&self, source: &str, event_id: &str) -> Result<Option<LoggedEvent>, StoreError> {
        let (source, event_id) = (source.to_owned(), event_id.to_owned());
        let found = self
            .store()
            .read(move |conn| snapshot(conn, |c| get(c, &source, &event_id)))
            .await?;
        match found {
            None => Ok(None),
            Some((entry, event)) => {
                Ok(Some(LoggedEvent::new(entry_of(entry)?, event.into_event())))
            }
        }
    }

    async fn counts(&self, filter: &EventFilter) -> Result<LogCounts, StoreError> {
        let f = LogFilter::from(filter);
        let (rows, oldest) = self
            .store()
            .read(move |conn| snapshot(conn, |c| counts(c, &f)))
            .await?;
        let rows = rows
            .into_iter()
            .map(|(source, event_type, state, tried, count)| CountRow {
                source,
                event_type,
                state,
                tried,
                count,
            })
            .collect();
        Ok(fold_counts(rows, oldest))
    }

    async fn create_replay(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        // What the job selects is counted on the reader, so that a large count never holds
        // the writer; the writer then stores the job. `through` is the newest matching
        // event: events stored in between have larger ids and are not selected.
        let (through, total) = match key_of(filter) {
            Some((source, event_id)) => {
                let filter = filter.clone();
                self.store()
                    .read(move |conn| {
                        snapshot(conn, |c| {
                            let matching = get(c, &source, &event_id)?
                                .and_then(|(row, _)| row.into_entry())
                                .filter(|e| filter.accepts(e));
                            Ok(match matching {
                                Some(e) => (Some(e.message.0), 1),
                                None => (None, 0),
                            })
                        })
                    })
                    .await?
            }
            None => {
                let f = LogFilter::from(filter);
                self.store().read(move |conn| selection(conn, &f)).await?
            }
        };
        let create = CreateJob {
            filter: filter_json(filter),
            forced: mode == ReplayMode::Forced,
            through,
            total,
            now: self.store().now(),
        };
        self.store().call(create).await?.into_job("sqlite")
    }

    async fn step_replay(&self, job: ReplayJobId, max: usize) -> Result<ReplayJob, StoreError> {
        let step = StepJob {
            job: job.0,
            max,
            now: self.store().now(),
        };
        let (row, replayed) = self.store().call(step).await?;
        if replayed > 0 {
            self.store().wake();
        }
        row.into_job("sqlite")
    }

    async fn replay_job(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        let row = self
            .store()
            .read(move |conn| replay_jobs::job(conn, job.0))
            .await?;
        row.map(|r| r.into_job("sqlite")).transpose()
    }

    async fn replay_jobs(&self, running_only: bool) -> Result<Vec<ReplayJob>, StoreError> {
        let rows = self
            .store()
            .read(move |conn| replay_jobs::jobs(conn, running_only))
            .await?;
        rows.into_iter().map(|r| r.into_job("sqlite")).collect()
    }

    async fn cancel_replay(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        let cancel = CancelJob {
            job: job.0,
            now: self.store().now(),
        };
        let row = self.store().call(cancel).await?;
        row.map(|r| r.into_job("sqlite")).transpose()
    }
}

#[cfg(test)]
pub(super) fn all_sql() -> Vec<String> {
    vec![
        list_sql(false),
        KEY_ID.to_owned(),
        get_sql(),
        oldest_sql(),
        list_sql(true),
    ]
}

/// Statements that read every matching record by design (counts), checked apart.
#[cfg(test)]
pub(super) fn scanning_sql() -> Vec<String> {
    vec![counts_sql(), selection_sql()]
}
