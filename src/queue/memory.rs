//! The in-memory queue: for tests, examples, and as the reference for the contract.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, LeaseToken, Leased, MessageId,
    Queue, QueueOptions, QueueStats, EXPIRED_ON_LAST_ATTEMPT,
};
use crate::clock::{from_unix_millis, unix_millis, SharedClock};
use crate::error::StoreError;
use crate::event::{EventId, RawEvent};
use crate::Clock;

/// A [`Queue`] held in memory. Nothing survives the process: [`Durability::Volatile`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hookdock::queue::{MemoryQueue, Queue};
/// use hookdock::RawEvent;
/// use std::time::{Duration, SystemTime};
///
/// let queue = MemoryQueue::new();
/// queue.enqueue(RawEvent::new("github", "d-1", SystemTime::now(), "{}")).await?;
/// let batch = queue.lease(10, Duration::from_secs(30)).await?;
/// assert_eq!(batch.len(), 1);
/// queue.ack(&batch[0].lease).await?;
/// assert_eq!(queue.stats().await?.depth(), 0);
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<State>,
    clock: SharedClock,
    options: QueueOptions,
}

#[derive(Debug, Default)]
struct State {
    messages: HashMap<MessageId, Message>,
    by_key: HashMap<(String, EventId), MessageId>,
    /// Every message not in the dead letters, by the time it becomes available: its retry
    /// time while waiting, its expiry while leased.
    timeline: BTreeSet<(i64, MessageId)>,
    live: u64,
    next_id: i64,
    next_token: u64,
}

#[derive(Debug)]
struct Message {
    event: RawEvent,
    /// Retry time (waiting) or lease expiry (leased), in Unix milliseconds.
    at: i64,
    status: Status,
    attempts: u32,
    last_error: Option<String>,
}

#[derive(Debug, Clone)]
enum Status {
    Waiting,
    Leased(u64),
    Dead { reason: String, at: i64 },
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQueue {
    /// An empty queue with default options and the system clock.
    pub fn new() -> Self {
        Self::with_options(QueueOptions::default())
    }

    /// An empty queue with these options.
    pub fn with_options(options: QueueOptions) -> Self {
        Self {
            state: Mutex::new(State {
                next_id: 1,
                next_token: 1,
                ..State::default()
            }),
            clock: SharedClock::default(),
            options,
        }
    }

    /// Reads time from `clock` instead of the system clock (builder style).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // breaks the contract (every update is a few field writes), so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> i64 {
        unix_millis(self.clock.now())
    }

    /// Makes a leased message wait until `at`: a retry records its error and keeps the
    /// attempt; a deferral (no error) gives the attempt back.
    fn requeue(
        &self,
        lease: &Lease,
        at: SystemTime,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let to = unix_millis(at);
        let mut s = self.lock();
        let m = s.current(lease)?;
        let from = m.at;
        m.at = to;
        m.status = Status::Waiting;
        match error {
            Some(error) => m.last_error = Some(error.to_owned()),
            None => m.attempts = m.attempts.saturating_sub(1),
        }
        s.move_to(lease.message, from, to);
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

    fn kill(&mut self, id: MessageId, reason: String, now: i64) {
        if let Some(m) = self.messages.get_mut(&id) {
            if !matches!(m.status, Status::Dead { .. }) {
                self.timeline.remove(&(m.at, id));
                m.status = Status::Dead { reason, at: now };
                self.live -= 1;
            }
        }
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    fn durability(&self) -> Durability {
        Durability::Volatile
    }

    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        let now = self.now();
        let mut s = self.lock();
        let key = (event.source.clone(), event.id.clone());
        if let Some(id) = s.by_key.get(&key) {
            return Ok(Enqueued::Duplicate(*id));
        }
        if let Some(limit) = self.options.max_depth {
            if s.live >= limit {
                return Err(StoreError::Full { depth: s.live });
            }
        }
        let id = MessageId(s.next_id);
        s.next_id += 1;
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
            },
        );
        Ok(Enqueued::New(id))
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        let now = self.now();
        let expires = now.saturating_add(i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX));
        let mut s = self.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(at, id)) = s.timeline.first() else {
                break;
            };
            if at > now {
                break;
            }
            let attempts = s.messages[&id].attempts;
            let was_leased = matches!(s.messages[&id].status, Status::Leased(_));
            if was_leased && attempts >= self.options.max_attempts {
                s.kill(id, EXPIRED_ON_LAST_ATTEMPT.to_owned(), now);
                continue;
            }
            let token = s.next_token;
            s.next_token += 1;
            s.move_to(id, at, expires);
            let m = s.messages.get_mut(&id).ok_or(StoreError::NotFound)?;
            m.at = expires;
            m.status = Status::Leased(token);
            m.attempts += 1;
            out.push(
                Leased::new(
                    Lease {
                        message: id,
                        token: LeaseToken(token),
                        expires_at: from_unix_millis(expires),
                    },
                    m.event.clone(),
                    m.attempts,
                    self.options.max_attempts,
                )
                .with_last_error(m.last_error.clone()),
            );
        }
        Ok(out)
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        let now = self.now();
        let expires = now.saturating_add(i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX));
        let mut s = self.lock();
        let m = s.current(lease)?;
        let from = m.at;
        m.at = expires;
        s.move_to(lease.message, from, expires);
        Ok(Lease {
            expires_at: from_unix_millis(expires),
            ..*lease
        })
    }

    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut s = self.lock();
        let at = s.current(lease)?.at;
        s.timeline.remove(&(at, lease.message));
        if let Some(m) = s.messages.remove(&lease.message) {
            s.by_key.remove(&(m.event.source, m.event.id));
            s.live -= 1;
        }
        Ok(())
    }

    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        self.requeue(lease, at, Some(error))
    }

    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        self.requeue(lease, at, None)
    }

    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        let now = self.now();
        let mut s = self.lock();
        s.current(lease)?;
        s.kill(lease.message, reason.to_owned(), now);
        Ok(())
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let s = self.lock();
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
                        from_unix_millis(*at),
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
        let now = self.now();
        let mut s = self.lock();
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
            if let Some(m) = s.messages.get_mut(id) {
                m.status = Status::Waiting;
                m.attempts = 0;
                m.at = now;
            }
            s.timeline.insert((now, *id));
            s.live += 1;
        }
        Ok(ids.len() as u64)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let now = self.now();
        let s = self.lock();
        let mut stats = QueueStats::default();
        for m in s.messages.values() {
            match m.status {
                Status::Dead { .. } => stats.dead += 1,
                Status::Waiting if m.at <= now => stats.ready += 1,
                Status::Waiting => stats.scheduled += 1,
                Status::Leased(_) if m.at > now => stats.leased += 1,
                Status::Leased(_) if m.attempts >= self.options.max_attempts => stats.dead += 1,
                Status::Leased(_) => stats.ready += 1,
            }
        }
        Ok(stats)
    }
}
