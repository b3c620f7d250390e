//! What both SQL backends share for the event log: the filter's parameters, the row of an
//! entry, the row of a replay job, and the rule that turns stored codes into a status.

use std::time::SystemTime;

use super::attempts_out;
use crate::event::{EventId, EventType};
use crate::store::codec::{from_micros, to_micros};
use crate::store::{
    EventFilter, EventStatus, LogCount, LogCounts, LogEntry, MessageId, Origin, ReplayJob,
    ReplayJobId, ReplayMode, ReplayState, StoreError,
};

/// The `state` of a record skipped as stale (the ordering work); settled, like `DONE`.
#[allow(dead_code)]
pub(crate) const STALE: i64 = 5;

/// The parameters of an [`EventFilter`], in the order both backends bind them:
///
/// | # | parameter | SQL condition |
/// |---|---|---|
/// | 1 | source | `source = ?` |
/// | 2 | event id | `event_id = ?` |
/// | 3 | event type | `event_type = ?` |
/// | 4 | state code | `state = ?` |
/// | 5 | tried (`0`/`1`, only with state `0`) | `(attempts > 0) = ?` |
/// | 6 | origin code | `origin = ?` |
/// | 7 | received from (µs) | `received_at >= ?` |
/// | 8 | received until (µs) | `received_at < ?` |
/// | 9 | before (message id) | `id < ?` |
/// | 10 | limit | `LIMIT ?` |
///
/// Each is `None` for "any"; every query also excludes records holding only a claim
/// (`state <> 4`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogFilter {
    pub(crate) source: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) state: Option<i64>,
    pub(crate) tried: Option<i64>,
    pub(crate) origin: Option<i64>,
    pub(crate) from: Option<i64>,
    pub(crate) until: Option<i64>,
    pub(crate) before: Option<i64>,
    pub(crate) limit: i64,
}

impl From<&EventFilter> for LogFilter {
    fn from(f: &EventFilter) -> Self {
        let (state, tried) = match f.status {
            None => (None, None),
            Some(s) => state_of(s),
        };
        Self {
            source: f.source.clone(),
            event_id: f.event_id.clone(),
            event_type: f.event_type.clone(),
            state,
            tried,
            origin: f.origin.map(Origin::code),
            from: f.received_from.map(to_micros),
            until: f.received_until.map(to_micros),
            before: f.before.map(|m| m.0),
            limit: i64::try_from(f.page_size()).unwrap_or(i64::MAX),
        }
    }
}

/// The `state` code and the "tried" flag that select a status (the inverse of
/// [`status_of`]).
fn state_of(status: EventStatus) -> (Option<i64>, Option<i64>) {
    match status {
        EventStatus::Pending => (Some(0), Some(0)),
        EventStatus::Retrying => (Some(0), Some(1)),
        EventStatus::Leased => (Some(1), None),
        EventStatus::Dead => (Some(2), None),
        EventStatus::Succeeded => (Some(3), None),
        EventStatus::Stale => (Some(STALE), None),
    }
}

/// An entry as read from either backend (without the body: `body_bytes` is its length).
#[derive(Debug, Clone)]
pub(crate) struct EntryRow {
    pub(crate) id: i64,
    pub(crate) source: String,
    pub(crate) event_id: String,
    pub(crate) event_type: Option<String>,
    pub(crate) received_at: i64,
    pub(crate) origin: i64,
    pub(crate) state: i64,
    pub(crate) attempts: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) dead_reason: Option<String>,
    pub(crate) first_attempt_at: Option<i64>,
    pub(crate) last_attempt_at: Option<i64>,
    pub(crate) done_at: Option<i64>,
    pub(crate) replays: i64,
    pub(crate) forced_replays: i64,
    pub(crate) body_bytes: i64,
}

impl EntryRow {
    /// The entry; `None` for a record that holds only a claim.
    pub(crate) fn into_entry(self) -> Option<LogEntry> {
        let status = status_of(self.state, self.attempts)?;
        let last_error = match status {
            EventStatus::Dead => self.dead_reason.or(self.last_error),
            _ => self.last_error,
        };
        Some(LogEntry {
            message: MessageId(self.id),
            source: self.source,
            event_id: EventId::new(self.event_id),
            event_type: self.event_type.map(EventType::from),
            received_at: from_micros(self.received_at),
            origin: Origin::from_code(self.origin),
            status,
            attempts: attempts_out(self.attempts),
            last_error,
            first_attempt_at: self.first_attempt_at.map(from_micros),
            last_attempt_at: self.last_attempt_at.map(from_micros),
            done_at: self.done_at.map(from_micros),
            replays: attempts_out(self.replays),
            forced_replays: attempts_out(self.forced_replays),
            body_bytes: u64::try_from(self.body_bytes).unwrap_or(0),
        })
    }
}

/// A replay job as stored by either backend: the filter as JSON, times in µs.
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) filter: String,
    pub(crate) forced: bool,
    pub(crate) state: i64,
    pub(crate) through: Option<i64>,
    pub(crate) after: Option<i64>,
    pub(crate) total: i64,
    pub(crate) replayed: i64,
    pub(crate) skipped: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl JobRow {
    /// The job; an error if its stored filter no longer parses.
    pub(crate) fn into_job(self, backend: &'static str) -> Result<ReplayJob, StoreError> {
        let filter: EventFilter = serde_json::from_str(&self.filter)
            .map_err(|e| StoreError::internal(backend, format!("replay job {}: {e}", self.id)))?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let mut job = ReplayJob::new(
            ReplayJobId(self.id),
            filter,
            if self.forced {
                ReplayMode::Forced
            } else {
                ReplayMode::Dedupe
            },
            self.through.map(MessageId),
            n(self.total),
            from_micros(self.created_at),
        );
        job.state = ReplayState::from_code(self.state);
        job.after = self.after.map(MessageId);
        job.replayed = n(self.replayed);
        job.skipped = n(self.skipped);
        job.updated_at = from_micros(self.updated_at);
        Ok(job)
    }
}

/// The filter as a job stores it (page fields dropped).
pub(crate) fn filter_json(filter: &EventFilter) -> String {
    let f = EventFilter {
        before: None,
        limit: None,
        ..filter.clone()
    };
    serde_json::to_string(&f).unwrap_or_else(|_| "{}".to_owned())
}

/// True if a job with cursor `after` and bound `through` has nothing left.
pub(crate) fn job_is_done(after: Option<i64>, through: Option<i64>) -> bool {
    match (after, through) {
        (_, None) => true,
        (Some(a), Some(t)) => a >= t,
        (None, Some(_)) => false,
    }
}

/// Now, for jobs' times.
#[allow(dead_code)]
pub(crate) fn now_micros(now: SystemTime) -> i64 {
    to_micros(now)
}

/// The status of a stored record from the columns both SQL backends keep: `state` (the
/// codes above and in the SQL module) and `attempts`; `None` for a record holding only a claim.
pub(crate) fn status_of(state: i64, attempts: i64) -> Option<EventStatus> {
    Some(match state {
        0 if attempts > 0 => EventStatus::Retrying,
        0 => EventStatus::Pending,
        1 => EventStatus::Leased,
        2 => EventStatus::Dead,
        3 => EventStatus::Succeeded,
        5 => EventStatus::Stale,
        _ => return None,
    })
}

/// One row of either backend's count query: a (source, type, state, tried) group and its
/// size.
#[derive(Debug, Clone)]
pub(crate) struct CountRow {
    pub(crate) source: String,
    pub(crate) event_type: Option<String>,
    pub(crate) state: i64,
    pub(crate) tried: bool,
    pub(crate) count: i64,
}

/// The counts of a count query's rows: (state, tried) pairs that name one status are added
/// up (a dead letter tried or not is dead), records holding only a claim are left out.
pub(crate) fn fold_counts(rows: Vec<CountRow>, oldest_pending: Option<i64>) -> LogCounts {
    let mut groups: std::collections::BTreeMap<
        (String, Option<String>, &'static str),
        (EventStatus, u64),
    > = std::collections::BTreeMap::new();
    for row in rows {
        let Some(status) = status_of(row.state, i64::from(row.tried)) else {
            continue;
        };
        let slot = groups
            .entry((row.source, row.event_type, status.as_str()))
            .or_insert((status, 0));
        slot.1 += u64::try_from(row.count).unwrap_or(0);
    }
    let groups = groups
        .into_iter()
        .map(|((source, event_type, _), (status, n))| LogCount::new(source, event_type, status, n))
        .collect();
    LogCounts::new(groups, oldest_pending.map(from_micros))
}
