//! The replay jobs of the event log, in `hookdock_replay_jobs`: creating, stepping and
//! cancelling them (writes, on the writer thread) and reading them (on the reader).
//!
//! A step is one write, so its batch of events and the move of the job's cursor commit in
//! the same transaction: a process killed at any point leaves either both or neither, and the
//! job stepped again after a restart goes on from its cursor without making an event ready
//! twice. A step takes the next matching events after the cursor in message order, walking
//! the primary key; to keep the writer's transaction short whatever the filter, it looks at
//! no more than [`STEP_SPAN`] message ids per step (a selective filter over a large log then
//! takes more, shorter steps, each of which moves the cursor). A filter naming one key
//! (`source` and `event_id`) goes straight to its record through the writer's key lookup.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::engine::{Answer, Tx, Write};
use super::events::{CLAIM_RESET, REPLAYED};
use super::log::{match_params, MATCH};
use super::tail::locate;
use crate::store::sql::log::{job_is_done, JobRow, LogFilter};
use crate::store::sql::DONE;
use crate::store::{EventFilter, ReplayState, StoreError};

/// The most message ids one step looks at: scanning this many records for a filter that
/// matches none of them takes about 2 ms (measured on a log of a million records), about
/// the cost of the commit's own fsync, so a step never stalls intake for long.
pub(super) const STEP_SPAN: i64 = 16_384;

const COLUMNS: &str = "id, filter, forced, state, through_id, after_id, total, replayed,
    skipped, created_at, updated_at";

/// `?1` filter, `?2` forced, `?3` state, `?4` through, `?5` total, `?6` now.
fn insert_sql() -> String {
    format!(
        "INSERT INTO hookdock_replay_jobs
             (filter, forced, state, through_id, after_id, total, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?6)
         RETURNING {COLUMNS}"
    )
}

fn job_sql() -> String {
    format!("SELECT {COLUMNS} FROM hookdock_replay_jobs WHERE id = ?1")
}

/// Every job (`?1 = 0`) or the running ones, newest first. The table holds a few rows per
/// operator action: a scan.
fn jobs_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM hookdock_replay_jobs WHERE (?1 = 0 OR state = 0)
         ORDER BY id DESC"
    )
}

/// The events a step takes: the filter's `?1`..`?8`, then `?9` after, `?10` up to, `?11`
/// limit; a range of the primary key.
fn pick_sql() -> String {
    format!(
        "SELECT id, state FROM hookdock_events
         WHERE id > ?9 AND id <= ?10 AND {MATCH}
         ORDER BY id LIMIT ?11"
    )
}

/// Makes one settled event (`?1` its id, `?2` now) ready again.
fn replay_sql(forced: bool) -> String {
    let reset = if forced {
        format!(", {CLAIM_RESET}")
    } else {
        String::new()
    };
    format!(
        "UPDATE hookdock_events SET {REPLAYED}, available_at = ?2{reset} WHERE id = ?1
         RETURNING source, order_key, order_pos"
    )
}

/// `?1` id, `?2` after, `?3` state, `?4` replayed more, `?5` skipped more, `?6` now.
const ADVANCE: &str = "UPDATE hookdock_replay_jobs
    SET after_id = ?2, state = ?3, replayed = replayed + ?4, skipped = skipped + ?5,
        updated_at = ?6
    WHERE id = ?1";

/// `?1` id, `?2` now.
const CANCEL: &str = "UPDATE hookdock_replay_jobs SET state = 2, updated_at = ?2
    WHERE id = ?1 AND state = 0";

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get(0)?,
        filter: r.get(1)?,
        forced: r.get(2)?,
        state: r.get(3)?,
        through: r.get(4)?,
        after: r.get(5)?,
        total: r.get(6)?,
        replayed: r.get(7)?,
        skipped: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// One job; on any connection.
pub(super) fn job(conn: &Connection, id: i64) -> rusqlite::Result<Option<JobRow>> {
    conn.prepare_cached(&job_sql())?
        .query_row(params![id], job_row)
        .optional()
}

/// The jobs, newest first; on the reader.
pub(super) fn jobs(conn: &Connection, running_only: bool) -> rusqlite::Result<Vec<JobRow>> {
    let mut stmt = conn.prepare_cached(&jobs_sql())?;
    let rows = stmt.query_map(params![running_only], job_row)?;
    rows.collect()
}

/// The error for a job id the store does not hold: it can never be stepped.
fn unknown_job(id: i64) -> StoreError {
    StoreError::UnknownReplayJob(crate::store::ReplayJobId(id))
}

/// Stores a new job over what the reader counted.
pub(super) struct CreateJob {
    /// The filter as [`filter_json`](crate::store::sql::log::filter_json) stores it.
    pub(super) filter: String,
    pub(super) forced: bool,
    /// The newest matching message id when the job was created (`None`: nothing matched).
    pub(super) through: Option<i64>,
    pub(super) total: i64,
    pub(super) now: i64,
}

impl Write for CreateJob {
    type Output = JobRow;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<JobRow>> {
        let state = match self.through {
            Some(_) => ReplayState::Running,
            None => ReplayState::Finished,
        };
        let row = tx.conn.prepare_cached(&insert_sql())?.query_row(
            params![
                self.filter,
                self.forced,
                state.code(),
                self.through,
                self.total,
                self.now
            ],
            job_row,
        )?;
        Ok(Ok(row))
    }
}

/// Replays a job's next batch and moves its cursor, in one transaction.
pub(super) struct StepJob {
    pub(super) job: i64,
    pub(super) max: usize,
    pub(super) now: i64,
}

impl Write for StepJob {
    /// The job after the step, and how many events it made ready.
    type Output = (JobRow, u64);

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<(JobRow, u64)>> {
        let Some(row) = job(tx.conn, self.job)? else {
            return Ok(Err(unknown_job(self.job)));
        };
        if row.state != ReplayState::Running.code() || self.max == 0 {
            return Ok(Ok((row, 0)));
        }
        let filter: EventFilter = match serde_json::from_str(&row.filter) {
            Ok(f) => f,
            Err(e) => {
                return Ok(Err(StoreError::internal(
                    "sqlite",
                    format!("replay job {}: {e}", row.id),
                )))
            }
        };
        let (Some(through), false) = (row.through, job_is_done(row.after, row.through)) else {
            return self.advance(tx, &row, row.through, 0, 0);
        };
        let after = row.after.unwrap_or(0);
        let max = i64::try_from(self.max).unwrap_or(i64::MAX);
        // The range of ids this step looks at, and where the cursor goes if it finds fewer
        // than `max` events there.
        let (from, upto) = match (&filter.source, &filter.event_id) {
            (Some(source), Some(event_id)) => match locate(tx.conn, tx.tail, source, event_id)? {
                Some(id) if id > after && id <= through => (id - 1, id),
                _ => (through, through),
            },
            _ => (after, through.min(after.saturating_add(STEP_SPAN))),
        };
        let picked: Vec<(i64, i64)> = {
            let mut values: Vec<rusqlite::types::Value> =
                match_params(&LogFilter::from(&filter)).into();
            values.extend([from.into(), upto.into(), max.into()]);
            let mut stmt = tx.conn.prepare_cached(&pick_sql())?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let cursor = match picked.last() {
            Some(&(last, _)) if picked.len() as i64 >= max => last,
            _ => match (&filter.source, &filter.event_id) {
                (Some(_), Some(_)) => through,
                _ => upto,
            },
        };
        let mut replay = tx.conn.prepare_cached(&replay_sql(row.forced))?;
        let (mut replayed, mut skipped) = (0u64, 0u64);
        for (id, state) in picked {
            if is_settled(state) {
                let keyed: Option<(String, Option<String>, Option<i64>)> = replay
                    .query_row(params![id, self.now], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?;
                if let Some((source, Some(key), position)) = keyed {
                    super::order_keys::join(tx.conn, id, &source, &key, position)?;
                }
                replayed += 1;
            } else {
                skipped += 1;
            }
        }
        drop(replay);
        tx.state.live += i64::try_from(replayed).unwrap_or(0);
        self.advance(tx, &row, Some(cursor), replayed, skipped)
    }
}

/// Dead (`2`), handled ([`DONE`]) or stale (`5`).
fn is_settled(state: i64) -> bool {
    state == 2 || state == DONE || state == crate::store::sql::log::STALE
}

impl StepJob {
    /// Moves the cursor to `after`, finishing the job once it passed `through`.
    fn advance(
        &self,
        tx: &mut Tx<'_>,
        row: &JobRow,
        after: Option<i64>,
        replayed: u64,
        skipped: u64,
    ) -> rusqlite::Result<Answer<(JobRow, u64)>> {
        let state = if job_is_done(after, row.through) {
            ReplayState::Finished
        } else {
            ReplayState::Running
        };
        tx.conn.prepare_cached(ADVANCE)?.execute(params![
            row.id,
            after,
            state.code(),
            i64::try_from(replayed).unwrap_or(i64::MAX),
            i64::try_from(skipped).unwrap_or(i64::MAX),
            self.now
        ])?;
        let Some(row) = job(tx.conn, row.id)? else {
            return Ok(Err(unknown_job(row.id)));
        };
        Ok(Ok((row, replayed)))
    }
}

/// Cancels a running job; answers the job as it is after (`None` if unknown).
pub(super) struct CancelJob {
    pub(super) job: i64,
    pub(super) now: i64,
}

impl Write for CancelJob {
    type Output = Option<JobRow>;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<Option<JobRow>>> {
        tx.conn
            .prepare_cached(CANCEL)?
            .execute(params![self.job, self.now])?;
        Ok(Ok(job(tx.conn, self.job)?))
    }
}

#[cfg(test)]
pub(super) fn all_sql() -> Vec<String> {
    vec![
        insert_sql(),
        job_sql(),
        pick_sql(),
        replay_sql(false),
        replay_sql(true),
        ADVANCE.to_owned(),
        CANCEL.to_owned(),
    ]
}

/// The jobs' listing scans its small table by design.
#[cfg(test)]
pub(super) fn scanning_sql() -> Vec<String> {
    vec![jobs_sql()]
}
