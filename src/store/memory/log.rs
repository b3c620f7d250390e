//! The [`EventLog`] of a [`MemoryQueue`]: the reference implementation of the contract.

use async_trait::async_trait;

use super::lock;
use super::queue::{Message, State, Status};
use crate::event::EventId;
use crate::store::codec::{from_micros, to_micros};
use crate::store::{
    EventFilter, EventLog, EventStatus, IdempotencyKey, LogCount, LogCounts, LogEntry, LogPage,
    LoggedEvent, MemoryQueue, MessageId, ReplayJob, ReplayJobId, ReplayMode, ReplayState,
    StoreError,
};

impl MemoryQueue {
    fn log_state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.store().inner.queue)
    }
}

/// The entry of a stored message at `now` (an expired lease is still shown as leased).
fn entry(id: MessageId, m: &Message) -> LogEntry {
    let mut e = LogEntry::new(id, &m.event);
    e.status = match m.status {
        Status::Waiting if m.attempts > 0 => EventStatus::Retrying,
        Status::Waiting => EventStatus::Pending,
        Status::Leased(_) => EventStatus::Leased,
        Status::Dead { .. } => EventStatus::Dead,
        Status::Done if m.stale => EventStatus::Stale,
        Status::Done => EventStatus::Succeeded,
    };
    e.attempts = m.attempts;
    e.last_error = match &m.status {
        Status::Dead { reason, .. } => Some(reason.clone()),
        _ => m.last_error.clone(),
    };
    e.first_attempt_at = m.first_attempt_at.map(from_micros);
    e.last_attempt_at = m.last_attempt_at.map(from_micros);
    e.done_at = m.done_at.map(from_micros);
    e.replays = m.replays;
    e.forced_replays = m.forced_replays;
    e
}

/// The ids matching `filter`, ascending.
fn matching(s: &State, filter: &EventFilter) -> Vec<MessageId> {
    let mut ids: Vec<MessageId> = s
        .messages
        .iter()
        .filter(|(id, m)| filter.accepts(&entry(**id, m)))
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    ids
}

#[async_trait]
impl EventLog for MemoryQueue {
    async fn list(&self, filter: &EventFilter) -> Result<LogPage, StoreError> {
        let size = filter.page_size();
        let s = self.log_state();
        let mut ids = matching(&s, filter);
        if let Some(before) = filter.before {
            ids.retain(|id| *id < before);
        }
        let entries = ids
            .iter()
            .rev()
            .take(size)
            .map(|id| entry(*id, &s.messages[id]))
            .collect();
        Ok(LogPage::new(entries, size))
    }

    async fn get(&self, source: &str, event_id: &str) -> Result<Option<LoggedEvent>, StoreError> {
        let s = self.log_state();
        let key = (source.to_owned(), EventId::new(event_id));
        let found = s
            .by_key
            .get(&key)
            .and_then(|id| Some((*id, s.messages.get(id)?)));
        Ok(found.map(|(id, m)| LoggedEvent::new(entry(id, m), m.event.clone())))
    }

    async fn counts(&self, filter: &EventFilter) -> Result<LogCounts, StoreError> {
        let s = self.log_state();
        let mut groups: std::collections::HashMap<(String, Option<String>, EventStatus), u64> =
            std::collections::HashMap::new();
        let mut oldest: Option<i64> = None;
        for (id, m) in &s.messages {
            let e = entry(*id, m);
            if !filter.accepts(&e) {
                continue;
            }
            if matches!(e.status, EventStatus::Pending | EventStatus::Retrying) {
                let t = to_micros(e.received_at);
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
            let key = (
                e.source,
                e.event_type.map(|t| t.as_str().to_owned()),
                e.status,
            );
            *groups.entry(key).or_default() += 1;
        }
        let groups = groups
            .into_iter()
            .map(|((source, kind, status), n)| LogCount::new(source, kind, status, n))
            .collect();
        Ok(LogCounts::new(groups, oldest.map(from_micros)))
    }

    async fn create_replay(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        let now = from_micros(self.store().now());
        let mut s = self.log_state();
        let ids = matching(&s, filter);
        let id = ReplayJobId(s.jobs.keys().next_back().map_or(1, |last| last + 1));
        let job = ReplayJob::new(
            id,
            filter.clone(),
            mode,
            ids.last().copied(),
            ids.len() as u64,
            now,
        );
        s.jobs.insert(id.0, job.clone());
        Ok(job)
    }

    async fn step_replay(&self, job: ReplayJobId, max: usize) -> Result<ReplayJob, StoreError> {
        let now = self.store().now();
        let mut s = self.log_state();
        let Some(current) = s.jobs.get(&job.0).cloned() else {
            return Err(StoreError::UnknownReplayJob(job));
        };
        if current.is_over() {
            return Ok(current);
        }
        let Some(through) = current.through else {
            return Ok(current);
        };
        let max = max.max(1);
        let taken: Vec<MessageId> = matching(&s, &current.filter)
            .into_iter()
            .filter(|id| current.after.is_none_or(|a| *id > a) && *id <= through)
            .take(max)
            .collect();
        let mut replayed = Vec::new();
        let mut skipped = 0;
        for id in &taken {
            if s.make_ready(*id, now) {
                replayed.push(*id);
            } else {
                skipped += 1;
            }
        }
        let mut keys = Vec::new();
        if current.mode == ReplayMode::Forced {
            for id in &replayed {
                if let Some(m) = s.messages.get_mut(id) {
                    m.forced_replays += 1;
                    keys.push(IdempotencyKey::new(
                        m.event.source.clone(),
                        m.event.id.clone(),
                    ));
                }
            }
        }
        let mut next = current.clone();
        next.replayed += replayed.len() as u64;
        next.skipped += skipped;
        next.updated_at = from_micros(now);
        if taken.len() < max || taken.last() == Some(&through) {
            next.after = Some(through);
            next.state = ReplayState::Finished;
        } else {
            next.after = taken.last().copied();
        }
        s.jobs.insert(job.0, next.clone());
        // Under the queue's lock (always taken before the claims'), so no worker leases a
        // replayed event before its claim is reset.
        if !keys.is_empty() {
            let mut claims = lock(&self.store().inner.claims);
            for key in &keys {
                claims.reset(key);
            }
        }
        drop(s);
        if !replayed.is_empty() {
            self.store().inner.signal.notify();
        }
        Ok(next)
    }

    async fn replay_job(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        Ok(self.log_state().jobs.get(&job.0).cloned())
    }

    async fn replay_jobs(&self, running_only: bool) -> Result<Vec<ReplayJob>, StoreError> {
        Ok(self
            .log_state()
            .jobs
            .values()
            .rev()
            .filter(|j| !running_only || !j.is_over())
            .cloned()
            .collect())
    }

    async fn cancel_replay(&self, job: ReplayJobId) -> Result<Option<ReplayJob>, StoreError> {
        let now = from_micros(self.store().now());
        let mut s = self.log_state();
        Ok(s.jobs.get_mut(&job.0).map(|j| {
            if !j.is_over() {
                j.state = ReplayState::Cancelled;
                j.updated_at = now;
            }
            j.clone()
        }))
    }
}
