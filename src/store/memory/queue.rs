//! [`MemoryQueue`]: the [`Queue`] of a [`MemoryStore`].

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{lock, MemoryStore};
use crate::event::{EventId, RawEvent};
use crate::store::codec::{duration_micros, from_micros, to_micros};
use crate::store::{
    key, DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, LeaseToken, Leased, MessageId,
    Queue, QueueOptions, QueueStats, StoreError, Wake, EXPIRED_ON_LAST_ATTEMPT,
};

/// A [`Queue`] held in memory: from [`MemoryStore::queue`], or [`MemoryQueue::new`] for one
/// with a store of its own.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hookdock::store::{Enqueued, MemoryQueue, Queue};
/// use hookdock::RawEvent;
/// use std::time::{Duration, SystemTime};
///
/// let queue = MemoryQueue::new();
/// let event = RawEvent::new("github", "d-1", SystemTime::now(), "{}");
/// let stored = queue.enqueue(event.clone()).await?;
/// let batch = queue.lease(10, Duration::from_secs(30)).await?;
/// queue.ack(&batch[0].lease).await?;
/// assert_eq!(queue.stats().await?.depth(), 0);
/// // Handled, and still known for the retention period.
/// assert_eq!(queue.enqueue(event).await?, Enqueued::Duplicate(stored.message()));
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    store: MemoryStore,
    options: QueueOptions,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) messages: HashMap<MessageId, Message>,
    pub(super) by_key: HashMap<(String, EventId), MessageId>,
    /// Every message waiting or leased, by the time it becomes available: its retry time
    /// while waiting, its expiry while leased.
    timeline: BTreeSet<(i64, MessageId)>,
    /// Handled messages, by when they were handled.
    done: BTreeSet<(i64, MessageId)>,
    pub(super) live: u64,
    last_id: i64,
    /// Ordering keys by `(source, key)`.
    keys: HashMap<(String, String), KeyState>,
    /// Replay jobs by id (the event log's).
    pub(super) jobs: std::collections::BTreeMap<i64, crate::store::ReplayJob>,
}

#[derive(Debug)]
pub(super) struct Message {
    pub(super) event: RawEvent,
    /// Retry time (waiting), lease expiry (leased) or when it was handled (done), in µs.
    pub(super) at: i64,
    pub(super) status: Status,
    pub(super) attempts: u32,
    pub(super) last_error: Option<String>,
    /// The event log's history, in µs.
    pub(super) first_attempt_at: Option<i64>,
    pub(super) last_attempt_at: Option<i64>,
    pub(super) done_at: Option<i64>,
    pub(super) replays: u32,
    pub(super) forced_replays: u32,
    /// Settled by [`Queue::skip`] (the event log's `stale`), not handled.
    pub(super) stale: bool,
}

/// One ordering key's state: only its leased message, or else the first of its waiting
/// ones, is on the timeline; the others wait off it (parked) and count as scheduled.
#[derive(Debug, Default)]
struct KeyState {
    /// The largest position acked.
    watermark: Option<i64>,
    /// The waiting messages in order: position (none first), then arrival.
    waiting: BTreeSet<(i64, MessageId)>,
    /// The message under a lease (live or expired), if any.
    leased: Option<MessageId>,
    /// The waiting message now on the timeline, if any.
    scheduled: Option<MessageId>,
}

/// Where a message sorts among its key's: its position (none first), then its id.
fn order_slot(m: &Message, id: MessageId) -> Option<((String, String), (i64, MessageId))> {
    let ordering = m.event.ordering.as_ref()?;
    let key = (m.event.source.clone(), ordering.key().to_owned());
    Some((key, (ordering.position().unwrap_or(i64::MIN), id)))
}

#[derive(Debug, Clone)]
pub(super) enum Status {
    Waiting,
    Leased(u64),
    Dead { reason: String, at: i64 },
    Done,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQueue {
    /// An empty queue with default options, in a [`MemoryStore`] of its own (system clock,
    /// default retention).
    pub fn new() -> Self {
        MemoryStore::new().queue(QueueOptions::default())
    }

    pub(super) fn new_in(store: MemoryStore, options: QueueOptions) -> Self {
        Self { store, options }
    }

    /// The store this queue lives in.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.store.inner.queue)
    }

    /// Makes a leased message wait until `at`: a retry records its error and keeps the
    /// attempt; a deferral (no error) gives the attempt back.
    fn requeue(
        &self,
        lease: &Lease,
        at: SystemTime,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let to = to_micros(at);
        let mut s = self.state();
        let m = s.current(lease)?;
        let from = m.at;
        m.at = to;
        m.status = Status::Waiting;
        match error {
            Some(error) => m.last_error = Some(error.to_owned()),
            None => m.attempts = m.attempts.saturating_sub(1),
        }
        s.move_to(lease.message, from, to);
        s.release(lease.message, true);
        drop(s);
        if to <= self.store.now() {
            self.store.inner.signal.notify();
        }
        Ok(())
    }
}

impl MemoryQueue {
    /// Acks (`skipped` is `None`) or skips a leased message.
    fn settle_done(&self, lease: &Lease, skipped: Option<&str>) -> Result<(), StoreError> {
        let now = self.store.now();
        let mut s = self.state();
        let m = s.current(lease)?;
        let from = m.at;
        m.at = now;
        m.status = Status::Done;
        m.done_at = Some(now);
        m.stale = skipped.is_some();
        if let Some(reason) = skipped {
            m.last_error = Some(reason.to_owned());
        }
        let position = m.event.ordering.as_ref().and_then(|o| o.position());
        let key = m
            .event
            .ordering
            .as_ref()
            .map(|o| (m.event.source.clone(), o.key().to_owned()));
        s.timeline.remove(&(from, lease.message));
        s.done.insert((now, lease.message));
        s.live -= 1;
        if let (Some(key), Some(position), None) = (key, position, skipped) {
            let state = s.keys.entry(key).or_default();
            state.watermark = Some(state.watermark.map_or(position, |w| w.max(position)));
        }
        s.release(lease.message, false);
        if self.store.retention() == 0 {
            s.forget(lease.message);
        }
        drop(s);
        self.store.inner.signal.notify();
        Ok(())
    }
}

impl State {
    /// The message under `lease`, if its token is current.
    fn current(&mut self, lease: &Lease) -> Result<&mut Message, StoreError> {
        match self.messages.get_mut(&lease.message) {
            Some(m) if matches!(m.status, Status::Leased(t) if t == lease.token.0) => Ok(m),
            _ => Err(StoreError::LeaseLost),
        }
    }

    fn move_to(&mut self, id: MessageId, from: i64, to: i64) {
        self.timeline.remove(&(from, id));
        self.timeline.insert((to, id));
    }

    /// Puts a new or replayed waiting message (already on the timeline) in its key's order.
    fn join_key(&mut self, id: MessageId) {
        let Some(m) = self.messages.get(&id) else {
            return;
        };
        let Some((key, slot)) = order_slot(m, id) else {
            return;
        };
        // Off the timeline until `schedule` finds it first of its key.
        self.timeline.remove(&(m.at, id));
        self.keys
            .entry(key.clone())
            .or_default()
            .waiting
            .insert(slot);
        self.schedule(&key);
    }

    /// A keyed message leaves its lease: `waiting` if it waits again (a retry, a deferral,
    /// an expired lease giving way), else it is settled. Its key's next message is scheduled.
    fn release(&mut self, id: MessageId, waiting: bool) {
        let Some((key, slot)) = self.messages.get(&id).and_then(|m| order_slot(m, id)) else {
            return;
        };
        let state = self.keys.entry(key.clone()).or_default();
        if state.leased == Some(id) {
            state.leased = None;
        }
        state.waiting.remove(&slot);
        if state.scheduled == Some(id) {
            state.scheduled = None;
        }
        if waiting {
            // Still on the timeline at its time; `schedule` takes it off if it is not first.
            state.waiting.insert(slot);
            state.scheduled = Some(id);
        }
        self.schedule(&key);
    }

    /// Keeps exactly one of a key's messages on the timeline: the leased one, else the
    /// first waiting one.
    fn schedule(&mut self, key: &(String, String)) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        let first = if state.leased.is_some() {
            None
        } else {
            state.waiting.first().map(|&(_, id)| id)
        };
        if state.scheduled == first {
            return;
        }
        let (off, on) = (state.scheduled, first);
        state.scheduled = first;
        for (id, put) in [(off, false), (on, true)] {
            let Some(id) = id else { continue };
            let Some(at) = self.messages.get(&id).map(|m| m.at) else {
                continue;
            };
            if put {
                self.timeline.insert((at, id));
            } else {
                self.timeline.remove(&(at, id));
            }
        }
    }

    /// True if a waiting keyed message is held off the timeline behind its key's first.
    fn parked(&self, id: MessageId, m: &Message) -> bool {
        matches!(m.status, Status::Waiting)
            && m.event.ordering.is_some()
            && !self.timeline.contains(&(m.at, id))
    }

    /// The watermark of a keyed message's key.
    fn watermark(&self, m: &Message) -> Option<i64> {
        let ordering = m.event.ordering.as_ref()?;
        self.keys
            .get(&(m.event.source.clone(), ordering.key().to_owned()))
            .and_then(|k| k.watermark)
    }

    fn kill(&mut self, id: MessageId, reason: String, now: i64) {
        if let Some(m) = self.messages.get_mut(&id) {
            if matches!(m.status, Status::Waiting | Status::Leased(_)) {
                self.timeline.remove(&(m.at, id));
                m.status = Status::Dead { reason, at: now };
                m.done_at = Some(now);
                self.live -= 1;
                self.release(id, false);
            }
        }
    }

    /// Makes a settled message (dead, done or stale) ready now as a replay; false if it is
    /// not settled.
    pub(super) fn make_ready(&mut self, id: MessageId, now: i64) -> bool {
        let Some(m) = self.messages.get_mut(&id) else {
            return false;
        };
        let from_done = match m.status {
            Status::Dead { .. } => false,
            Status::Done => true,
            Status::Waiting | Status::Leased(_) => return false,
        };
        if from_done {
            self.done.remove(&(m.at, id));
        }
        m.status = Status::Waiting;
        m.attempts = 0;
        m.at = now;
        m.last_error = None;
        m.first_attempt_at = None;
        m.last_attempt_at = None;
        m.done_at = None;
        m.replays += 1;
        m.stale = false;
        m.event.origin = crate::store::Origin::Replay;
        self.timeline.insert((now, id));
        self.live += 1;
        self.join_key(id);
        true
    }

    /// Forgets a handled message.
    fn forget(&mut self, id: MessageId) {
        if let Some(m) = self.messages.remove(&id) {
            self.done.remove(&(m.at, id));
            self.by_key.remove(&(m.event.source, m.event.id));
        }
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    fn durability(&self) -> Durability {
        Durability::Volatile
    }

    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        key::validate_event(&event)?;
        let now = self.store.now();
        let retention = self.store.retention();
        let mut s = self.state();
        let key = (event.source.clone(), event.id.clone());
        if let Some(&id) = s.by_key.get(&key) {
            match &s.messages[&id] {
                m if matches!(m.status, Status::Done) && m.at.saturating_add(retention) <= now => {
                    s.forget(id);
                }
                _ => return Ok(Enqueued::Duplicate(id)),
            }
        }
        if let Some(limit) = self.options.max_depth {
            if s.live >= limit {
                return Err(StoreError::Full { depth: s.live });
            }
        }
        s.last_id += 1;
        let id = MessageId(s.last_id);
        s.by_key.insert(key, id);
        s.timeline.insert((now, id));
        s.live += 1;
        s.messages.insert(
            id,
            Message {
                event,
                at: now,
                status: Status::Waiting,
                attempts: 0,
                last_error: None,
                first_attempt_at: None,
                last_attempt_at: None,
                done_at: None,
                replays: 0,
                forced_replays: 0,
                stale: false,
            },
        );
        s.join_key(id);
        drop(s);
        self.store.inner.signal.notify();
        Ok(Enqueued::New(id))
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        let now = self.store.now();
        let expires = now.saturating_add(duration_micros(lease_for));
        let mut s = self.state();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(at, id)) = s.timeline.first() else {
                break;
            };
            if at > now {
                break;
            }
            let Some(m) = s.messages.get(&id) else {
                s.timeline.remove(&(at, id));
                continue;
            };
            if matches!(m.status, Status::Leased(_)) && m.attempts >= self.options.max_attempts {
                s.kill(id, EXPIRED_ON_LAST_ATTEMPT.to_owned(), now);
                continue;
            }
            if m.event.ordering.is_some() {
                if matches!(m.status, Status::Leased(_)) {
                    // An expired lease waits again, so that an earlier event of its key that
                    // arrived meanwhile goes first.
                    if let Some(m) = s.messages.get_mut(&id) {
                        m.status = Status::Waiting;
                    }
                    s.release(id, true);
                    continue;
                }
                if let Some((key, slot)) = order_slot(m, id) {
                    let state = s.keys.entry(key).or_default();
                    state.waiting.remove(&slot);
                    state.scheduled = None;
                    state.leased = Some(id);
                }
            }
            let watermark = s.messages.get(&id).and_then(|m| s.watermark(m));
            let token = self.store.token();
            s.move_to(id, at, expires);
            let Some(m) = s.messages.get_mut(&id) else {
                continue;
            };
            m.at = expires;
            m.status = Status::Leased(token);
            m.attempts += 1;
            m.first_attempt_at.get_or_insert(now);
            m.last_attempt_at = Some(now);
            let lease = Lease {
                message: id,
                token: LeaseToken(token),
                expires_at: from_micros(expires),
            };
            out.push(
                Leased::new(
                    lease,
                    m.event.clone(),
                    m.attempts,
                    self.options.max_attempts,
                )
                .with_last_error(m.last_error.clone())
                .with_watermark(watermark),
            );
        }
        Ok(out)
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        let expires = self.store.now().saturating_add(duration_micros(lease_for));
        let mut s = self.state();
        let m = s.current(lease)?;
        let from = m.at;
        m.at = expires;
        s.move_to(lease.message, from, expires);
        Ok(Lease {
            expires_at: from_micros(expires),
            ..*lease
        })
    }

    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        self.settle_done(lease, None)
    }

    async fn skip(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        self.settle_done(lease, Some(reason))
    }

    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        self.requeue(lease, at, Some(error))
    }

    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        self.requeue(lease, at, None)
    }

    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        let now = self.store.now();
        let mut s = self.state();
        s.current(lease)?;
        s.kill(lease.message, reason.to_owned(), now);
        Ok(())
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let now = self.store.now();
        let mut s = self.state();
        reap(&mut s, now, self.options.max_attempts);
        let mut out: Vec<DeadLetter> = s
            .messages
            .iter()
            .filter_map(|(id, m)| match &m.status {
                Status::Dead { reason, at } if filter.accepts(*id, &m.event, reason) => {
                    Some(DeadLetter::new(
                        *id,
                        m.event.clone(),
                        reason.clone(),
                        m.attempts,
                        from_micros(*at),
                    ))
                }
                _ => None,
            })
            .collect();
        out.sort_by_key(|d| d.message);
        out.truncate(filter.limit.unwrap_or(usize::MAX));
        Ok(out)
    }

    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        let now = self.store.now();
        let mut s = self.state();
        reap(&mut s, now, self.options.max_attempts);
        let mut ids: Vec<MessageId> = s
            .messages
            .iter()
            .filter(|(id, m)| {
                matches!(&m.status, Status::Dead { reason, .. } if filter.accepts(**id, &m.event, reason))
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids.truncate(filter.limit.unwrap_or(usize::MAX));
        for id in &ids {
            s.make_ready(*id, now);
        }
        drop(s);
        if !ids.is_empty() {
            self.store.inner.signal.notify();
        }
        Ok(ids.len() as u64)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let now = self.store.now();
        let s = self.state();
        let mut stats = QueueStats::default();
        for (id, m) in &s.messages {
            match m.status {
                Status::Done => {}
                Status::Dead { .. } => stats.dead += 1,
                Status::Waiting if s.parked(*id, m) => stats.scheduled += 1,
                Status::Waiting if m.at <= now => stats.ready += 1,
                Status::Waiting => stats.scheduled += 1,
                Status::Leased(_) if m.at > now => stats.leased += 1,
                Status::Leased(_) if m.attempts >= self.options.max_attempts => stats.dead += 1,
                Status::Leased(_) => stats.ready += 1,
            }
        }
        Ok(stats)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let cutoff = self.store.now().saturating_sub(self.store.retention());
        let mut s = self.state();
        let expired: Vec<MessageId> = s
            .done
            .iter()
            .take_while(|(at, _)| *at <= cutoff)
            .map(|(_, id)| *id)
            .collect();
        for id in &expired {
            s.forget(*id);
        }
        Ok(expired.len() as u64)
    }

    /// Memory takes every write (until the process runs out of it): `Ok`, once the state's
    /// lock could be taken.
    async fn check_writable(&self) -> Result<(), StoreError> {
        drop(self.state());
        Ok(())
    }

    fn wake_signal(&self) -> Option<Box<dyn Wake>> {
        Some(self.store.inner.signal.subscribe())
    }
}

/// Moves leases that expired on their last allowed attempt to the dead letters.
fn reap(s: &mut State, now: i64, max_attempts: u32) {
    let expired: Vec<MessageId> = s
        .timeline
        .iter()
        .take_while(|(at, _)| *at <= now)
        .filter(|(_, id)| {
            s.messages.get(id).is_some_and(|m| {
                matches!(m.status, Status::Leased(_)) && m.attempts >= max_attempts
            })
        })
        .map(|(_, id)| *id)
        .collect();
    for id in expired {
        s.kill(id, EXPIRED_ON_LAST_ATTEMPT.to_owned(), now);
    }
}
