//! The event log over the records of `hookdock_events` and `hookdock_queue`: listing,
//! getting one event, counts; [`EventLog`] for [`PgQueue`] (the replay jobs are in
//! `replay_jobs.rs`).
//!
//! Every query reads the two tables the queue writes, by their primary keys (newest first)
//! or the key index; the log adds no index to them, so enqueue pays nothing for it.

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use super::queue::event_row;
use super::schema::{Schema, Sql};
use super::PgQueue;
use crate::event::EventId;
use crate::store::sql::log::{fold_counts, CountRow, EntryRow, LogFilter};
use crate::store::{
    key, EventFilter, EventLog, LogCounts, LogPage, LoggedEvent, ReplayJob, ReplayJobId,
    ReplayMode, StoreError,
};

/// The state a record is in as the log shows it, with `$10` now: a lease that expired is
/// waiting again (the next lease takes it, or dead-letters it if it was the last attempt;
/// the log's queries reap those first).
macro_rules! shown_state {
    () => {
        "(CASE WHEN q.state = 1 AND q.available_at <= $10 THEN 0 ELSE q.state END)"
    };
}
pub(super) use shown_state;

/// The records of events (not claim-only ones) meeting a [`LogFilter`] bound as `$1..$9`
/// (in its order), with `$10` now.
///
/// A status is also given as a plain condition on `state` (the shown state is the stored one,
/// or waiting for a lease that expired), so a query for one status reads the queue's partial
/// index of it (`hookdock_queue_due` for waiting and leased, `hookdock_queue_dead`,
/// `hookdock_queue_forget` for handled) instead of every retained record. Bounds on the id
/// are put on both tables, so that a merge
/// join of their primary keys starts both walks at the bound (a page far back in a large
/// log starts where it should instead of stepping over every newer state row).
macro_rules! log_where {
    () => {
        concat!(
            "
FROM {schema}.hookdock_events e
JOIN {schema}.hookdock_queue q ON q.id = e.id
WHERE q.state <> 4
  AND ($1::text IS NULL OR e.source = $1)
  AND ($2::text IS NULL OR e.event_id = $2)
  AND ($3::text IS NULL OR e.event_type = $3)
  AND ($4::int8 IS NULL OR (",
            shown_state!(),
            " = $4 AND (q.state = $4 OR ($4 = 0 AND q.state = 1))))
  AND ($5::int8 IS NULL OR (q.attempts > 0) = ($5 = 1))
  AND ($6::int8 IS NULL OR q.origin = $6)
  AND ($7::int8 IS NULL OR e.received_at >= $7)
  AND ($8::int8 IS NULL OR e.received_at < $8)
  AND ($9::int8 IS NULL OR (e.id < $9 AND q.id < $9))"
        )
    };
}
pub(super) use log_where;

/// An entry's columns, in the order [`entry_row`] reads them.
macro_rules! entry_columns {
    () => {
        concat!(
            "
SELECT q.id, e.source, e.event_id, e.event_type, e.received_at, q.origin, ",
            shown_state!(),
            "::int2, q.attempts, q.last_error, q.dead_reason, q.first_attempt_at,
       q.last_attempt_at, q.done_at, q.replays, q.forced_replays, octet_length(e.body)"
        )
    };
}

/// $1..$10 the filter and now, $11 the page size.
const LIST: &str = concat!(
    entry_columns!(),
    log_where!(),
    "
ORDER BY e.id DESC
LIMIT $11"
);

/// $1 source, $2 event id, $3 now: the entry, then the headers and body, the type and the
/// origin.
const GET: &str = "
SELECT q.id, e.source, e.event_id, e.event_type, e.received_at, q.origin,
       (CASE WHEN q.state = 1 AND q.available_at <= $3 THEN 0 ELSE q.state END)::int2,
       q.attempts, q.last_error, q.dead_reason, q.first_attempt_at, q.last_attempt_at,
       q.done_at, q.replays, q.forced_replays, octet_length(e.body),
       e.source, e.event_id, e.received_at, e.headers, e.body, e.event_type, q.origin,
       e.order_key, e.order_pos
FROM {schema}.hookdock_events e
JOIN {schema}.hookdock_queue q ON q.id = e.id
WHERE e.source = $1 AND e.event_id = $2 AND q.state <> 4";

/// $1..$10 the filter (`$9` unused) and now: counts by source, type, state and whether
/// tried, with the oldest receipt of the waiting ones (in the same scan: the counts read
/// every matching record anyway).
const COUNTS: &str = concat!(
    "
SELECT e.source, e.event_type, ",
    shown_state!(),
    "::int2 AS shown, (q.attempts > 0) AS tried, count(*),
       min(e.received_at) FILTER (WHERE ",
    shown_state!(),
    " = 0)",
    log_where!(),
    "
GROUP BY 1, 2, 3, 4"
);

/// The log's statements for one schema.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    list: Sql,
    get: Sql,
    counts: Sql,
}

impl Statements {
    pub(super) fn new(s: &Schema) -> Self {
        Self {
            list: s.sql(LIST),
            get: s.sql(GET),
            counts: s.sql(COUNTS),
        }
    }
}

/// Binds a filter as `$1..$9`.
pub(super) fn bind_log<'q>(
    q: Query<'q, Postgres, PgArguments>,
    f: &'q LogFilter,
) -> Query<'q, Postgres, PgArguments> {
    q.bind(f.source.as_deref())
        .bind(f.event_id.as_deref())
        .bind(f.event_type.as_deref())
        .bind(f.state)
        .bind(f.tried)
        .bind(f.origin)
        .bind(f.from)
        .bind(f.until)
        .bind(f.before)
}

/// The columns of [`entry_columns`] starting at 0.
fn entry_row(row: &PgRow) -> Result<EntryRow, sqlx::Error> {
    Ok(EntryRow {
        id: row.try_get(0)?,
        source: row.try_get(1)?,
        event_id: row.try_get(2)?,
        event_type: row.try_get(3)?,
        received_at: row.try_get(4)?,
        origin: i64::from(row.try_get::<i16, _>(5)?),
        state: i64::from(row.try_get::<i16, _>(6)?),
        attempts: i64::from(row.try_get::<i32, _>(7)?),
        last_error: row.try_get(8)?,
        dead_reason: row.try_get(9)?,
        first_attempt_at: row.try_get(10)?,
        last_attempt_at: row.try_get(11)?,
        done_at: row.try_get(12)?,
        replays: i64::from(row.try_get::<i32, _>(13)?),
        forced_replays: i64::from(row.try_get::<i32, _>(14)?),
        body_bytes: i64::from(row.try_get::<i32, _>(15)?),
    })
}

impl PgQueue {
    fn log_sql(&self) -> &Statements {
        &self.store().inner.shared.sql.log
    }
}

#[async_trait]
impl EventLog for PgQueue {
    async fn list(&self, filter: &EventFilter) -> Result<LogPage, StoreError> {
        self.store().check_open()?;
        self.reap().await?;
        let f = LogFilter::from(filter);
        let rows = bind_log(sqlx::query(self.log_sql().list.q()), &f)
            .bind(self.store().now())
            .bind(f.limit)
            .fetch_all(self.store().pool())
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(entry) = entry_row(row)?.into_entry() {
                entries.push(entry);
            }
        }
        Ok(LogPage::new(entries, filter.page_size()))
    }

    async fn get(&self, source: &str, event_id: &str) -> Result<Option<LoggedEvent>, StoreError> {
        key::validate(source, &EventId::new(event_id))?;
        self.store().check_open()?;
        self.reap().await?;
        let row = sqlx::query(self.log_sql().get.q())
            .bind(source)
            .bind(event_id)
            .bind(self.store().now())
            .fetch_optional(self.store().pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let event = event_row(&row, 16, 21)?.into_event();
        Ok(entry_row(&row)?
            .into_entry()
            .map(|entry| LoggedEvent::new(entry, event)))
    }

    async fn counts(&self, filter: &EventFilter) -> Result<LogCounts, StoreError> {
        self.store().check_open()?;
        self.reap().await?;
        let f = LogFilter {
            before: None,
            ..LogFilter::from(filter)
        };
        let rows = bind_log(sqlx::query(self.log_sql().counts.q()), &f)
            .bind(self.store().now())
            .fetch_all(self.store().pool())
            .await?;
        let mut counted = Vec::with_capacity(rows.len());
        let mut oldest: Option<i64> = None;
        for row in &rows {
            let waiting_since: Option<i64> = row.try_get(5)?;
            if let Some(t) = waiting_since {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
            counted.push(CountRow {
                source: row.try_get(0)?,
                event_type: row.try_get(1)?,
                state: i64::from(row.try_get::<i16, _>(2)?),
                tried: row.try_get(3)?,
                count: row.try_get(4)?,
            });
        }
        Ok(fold_counts(counted, oldest))
    }

    async fn create_replay(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        self.store().check_open()?;
        self.reap().await?;
        super::replay_jobs::create(self, filter, mode).await
    }

    async fn step_replay(&self, job: ReplayJobId, max: usize) -> Result<ReplayJob, StoreError> {
        self.store().check_open()?;
        self.reap().await?;
        super::replay_jobs::step(self, job, max).await
    }

    async fn replay_job(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        self.store().check_open()?;
        super::replay_jobs::get(self, job).await
    }

    async fn replay_jobs(&self, running_only: bool) -> Result<Vec<ReplayJob>, StoreError> {
        self.store().check_open()?;
        super::replay_jobs::all(self, running_only).await
    }

    async fn cancel_replay(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        self.store().check_open()?;
        super::replay_jobs::cancel(self, job).await
    }
}
