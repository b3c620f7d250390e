//! Durable replay jobs in `hookdock_replay_jobs`: create, step, read, cancel.
//!
//! A step is one transaction: it locks the job's row (`FOR UPDATE`), so steppers of one job
//! in any number of processes take turns and each sees the cursor the previous one
//! committed; picks the next batch of matching records after the cursor; locks and resets
//! the settled ones among them; and moves the cursor past the batch. The batch and the
//! cursor commit together, so a stepper killed at any point leaves either both or neither,
//! and no event is replayed twice by one job.

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::log::{bind_log, log_where, shown_state};
use super::schema::{Schema, Sql};
use super::PgQueue;
use crate::store::sql::log::{filter_json, job_is_done, JobRow, LogFilter};
use crate::store::{EventFilter, ReplayJob, ReplayJobId, ReplayMode, ReplayState, StoreError};

/// The columns of a job, in the order [`job_row`] reads them.
macro_rules! job_columns {
    () => {
        "id, filter, forced, state, through, after, total, replayed, skipped, created_at, \
         updated_at"
    };
}

/// $1..$10 the filter (`$9` unused) and now, $11 the filter as JSON, $12 forced. The job
/// goes up to the newest record matching now (`through`), counting them (`total`); with
/// none it is finished at once.
const CREATE: &str = concat!(
    "
WITH matching AS (
    SELECT count(*) AS total, max(e.id) AS through",
    log_where!(),
    "
)
INSERT INTO {schema}.hookdock_replay_jobs
    (filter, forced, state, through, after, total, created_at, updated_at)
SELECT $11, $12, CASE WHEN through IS NULL THEN 1 ELSE 0 END, through, NULL, total, $10, $10
FROM matching
RETURNING ",
    job_columns!()
);

/// $1 id.
const GET: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM {schema}.hookdock_replay_jobs WHERE id = $1"
);

/// $1 id: the job, locked until the step commits.
const LOCK: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM {schema}.hookdock_replay_jobs WHERE id = $1 FOR UPDATE"
);

/// $1 running only.
const ALL: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM {schema}.hookdock_replay_jobs WHERE NOT $1 OR state = 0 ORDER BY id DESC"
);

/// $1..$10 the filter (`$9` unused) and now, $11 after (exclusive, `NULL` from the start),
/// $12 through, $13 most: the next records the job selects, oldest first.
const PICK: &str = concat!(
    "
SELECT e.id",
    log_where!(),
    "
  AND ($11::int8 IS NULL OR (e.id > $11 AND q.id > $11)) AND e.id <= $12 AND q.id <= $12
ORDER BY e.id
LIMIT $13"
);

/// $1 ids, $2 now, $3 forced, $4 the wake channel: makes the settled ones of these records
/// ready now as replays (returning each one's key, to join it) (in forced mode with their claim reset), locking them in id order
/// (as acks do). A record that changed since it was picked is checked again on its newest
/// version: one no longer settled (replayed meanwhile, say) is left alone.
const RESET: &str = "
WITH picked AS (
    SELECT id FROM {schema}.hookdock_queue
    WHERE id = ANY($1) AND state IN (2, 3, 5)
    ORDER BY id
    FOR UPDATE
), u AS (
    UPDATE {schema}.hookdock_queue q SET
        state = 0, available_at = $2, attempts = 0, last_error = NULL, dead_reason = NULL,
        dead_at = NULL, done_at = NULL, first_attempt_at = NULL, last_attempt_at = NULL,
        origin = 1, replays = q.replays + 1,
        claim_token    = CASE WHEN $3 THEN NULL  ELSE q.claim_token END,
        claim_done     = CASE WHEN $3 THEN false ELSE q.claim_done END,
        claim_until    = CASE WHEN $3 THEN NULL  ELSE q.claim_until END,
        result         = CASE WHEN $3 THEN NULL  ELSE q.result END,
        fingerprint    = CASE WHEN $3 THEN NULL  ELSE q.fingerprint END,
        forced_replays = q.forced_replays + CASE WHEN $3 THEN 1 ELSE 0 END
    FROM picked
    WHERE q.id = picked.id AND q.state IN (2, 3, 5)
    RETURNING q.id
), wake AS (
    SELECT pg_notify($4, '') FROM (SELECT 1 FROM u LIMIT 1) AS any_replayed
)
SELECT u.id, e.source, e.order_key, e.order_pos, (SELECT count(*) FROM wake)
FROM u JOIN {schema}.hookdock_events e ON e.id = u.id";

/// $1 id, $2 after, $3 state, $4 replayed now, $5 skipped now, $6 now.
const ADVANCE: &str = concat!(
    "
UPDATE {schema}.hookdock_replay_jobs
SET after = $2, state = $3, replayed = replayed + $4, skipped = skipped + $5, updated_at = $6
WHERE id = $1
RETURNING ",
    job_columns!()
);

/// $1 id, $2 now: cancels a running job.
const CANCEL: &str = concat!(
    "
UPDATE {schema}.hookdock_replay_jobs SET state = 2, updated_at = $2
WHERE id = $1 AND state = 0
RETURNING ",
    job_columns!()
);

/// The statements of replay jobs for one schema.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    create: Sql,
    get: Sql,
    lock: Sql,
    all: Sql,
    pick: Sql,
    reset: Sql,
    advance: Sql,
    cancel: Sql,
}

impl Statements {
    pub(super) fn new(s: &Schema) -> Self {
        Self {
            create: s.sql(CREATE),
            get: s.sql(GET),
            lock: s.sql(LOCK),
            all: s.sql(ALL),
            pick: s.sql(PICK),
            reset: s.sql(RESET),
            advance: s.sql(ADVANCE),
            cancel: s.sql(CANCEL),
        }
    }
}

fn sql(queue: &PgQueue) -> &Statements {
    &queue.store().inner.shared.sql.jobs
}

/// The columns of [`job_columns`] starting at 0, as a job.
fn job_row(row: &PgRow) -> Result<ReplayJob, StoreError> {
    JobRow {
        id: row.try_get(0)?,
        filter: row.try_get(1)?,
        forced: row.try_get(2)?,
        state: i64::from(row.try_get::<i16, _>(3)?),
        through: row.try_get(4)?,
        after: row.try_get(5)?,
        total: row.try_get(6)?,
        replayed: row.try_get(7)?,
        skipped: row.try_get(8)?,
        created_at: row.try_get(9)?,
        updated_at: row.try_get(10)?,
    }
    .into_job("postgres")
}

/// The filter a job selects with: page fields dropped.
fn selection(filter: &EventFilter) -> LogFilter {
    LogFilter {
        before: None,
        ..LogFilter::from(filter)
    }
}

/// Stores a new job over what matches `filter` now.
pub(super) async fn create(
    queue: &PgQueue,
    filter: &EventFilter,
    mode: ReplayMode,
) -> Result<ReplayJob, StoreError> {
    let f = selection(filter);
    let row = bind_log(sqlx::query(sql(queue).create.q()), &f)
        .bind(queue.store().now())
        .bind(filter_json(filter))
        .bind(mode == ReplayMode::Forced)
        .fetch_one(queue.store().pool())
        .await?;
    job_row(&row)
}

/// One job, if known.
pub(super) async fn get(
    queue: &PgQueue,
    job: ReplayJobId,
) -> Result<Option<ReplayJob>, StoreError> {
    let row = sqlx::query(sql(queue).get.q())
        .bind(job.0)
        .fetch_optional(queue.store().pool())
        .await?;
    row.as_ref().map(job_row).transpose()
}

/// Every job, newest first.
pub(super) async fn all(queue: &PgQueue, running_only: bool) -> Result<Vec<ReplayJob>, StoreError> {
    let rows = sqlx::query(sql(queue).all.q())
        .bind(running_only)
        .fetch_all(queue.store().pool())
        .await?;
    rows.iter().map(job_row).collect()
}

/// Cancels a running job; the job as it is after, `None` if unknown.
pub(super) async fn cancel(
    queue: &PgQueue,
    job: ReplayJobId,
) -> Result<Option<ReplayJob>, StoreError> {
    let row = sqlx::query(sql(queue).cancel.q())
        .bind(job.0)
        .bind(queue.store().now())
        .fetch_optional(queue.store().pool())
        .await?;
    match row {
        Some(row) => job_row(&row).map(Some),
        // Over already (returned unchanged), or unknown.
        None => get(queue, job).await,
    }
}

/// Replays the job's next batch of at most `max` (at least 1) records, in one transaction
/// with the move of its cursor.
pub(super) async fn step(
    queue: &PgQueue,
    job: ReplayJobId,
    max: usize,
) -> Result<ReplayJob, StoreError> {
    let statements = sql(queue);
    let store = queue.store();
    let mut tx = store.pool().begin().await?;
    let Some(row) = sqlx::query(statements.lock.q())
        .bind(job.0)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Err(StoreError::UnknownReplayJob(job));
    };
    let current = job_row(&row)?;
    let (Some(through), ReplayState::Running) = (current.through, current.state) else {
        // Over: unchanged (the transaction rolls back, releasing the lock).
        return Ok(current);
    };
    let max = max.max(1);
    let now = store.now();
    let f = selection(&current.filter);
    let after = current.after.map(|m| m.0);
    let picked: Vec<i64> = bind_log(sqlx::query(statements.pick.q()), &f)
        .bind(now)
        .bind(after)
        .bind(through.0)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    // The NOTIFY (if any were replayed) is sent at commit.
    let replayed = if picked.is_empty() {
        0
    } else {
        let rows = sqlx::query(statements.reset.q())
            .bind(&picked)
            .bind(now)
            .bind(current.mode == ReplayMode::Forced)
            .bind(store.inner.schema.channel())
            .fetch_all(&mut *tx)
            .await?;
        // Keyed records join their keys in the same transaction.
        let mut keyed = Vec::new();
        for row in &rows {
            if let Some(key) = row.try_get::<Option<String>, _>(2)? {
                let source: String = row.try_get(1)?;
                keyed.push((source, key, row.try_get::<i64, _>(0)?, row.try_get(3)?));
            }
        }
        super::queue::join_all(&mut tx, &store.inner.shared.sql.order, keyed, now).await?;
        i64::try_from(rows.len()).unwrap_or(i64::MAX)
    };
    let skipped = i64::try_from(picked.len()).unwrap_or(i64::MAX) - replayed;
    // A short batch means nothing is left up to `through`.
    let next = match picked.last() {
        Some(&last) if picked.len() >= max => last,
        _ => through.0,
    };
    let state = if job_is_done(Some(next), Some(through.0)) {
        ReplayState::Finished
    } else {
        ReplayState::Running
    };
    let row = sqlx::query(statements.advance.q())
        .bind(job.0)
        .bind(next)
        .bind(i16::try_from(state.code()).unwrap_or(0))
        .bind(replayed)
        .bind(skipped)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    let updated = job_row(&row)?;
    tx.commit().await?;
    Ok(updated)
}
