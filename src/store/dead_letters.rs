//! The admin side of the dead letters: [`DeadLetters`].

use std::fmt;
use std::sync::Arc;

use super::{DeadLetter, DeadLetterFilter, MessageId, Queue, StoreError};
use crate::clock::unix_millis;

/// Lists and replays a queue's dead letters; a thin, serializable layer over
/// [`Queue::dead_letters`] and [`Queue::replay`] for admin routes and tools.
///
/// A replayed event keeps its original bytes, id and source and starts again at attempt 1;
/// it goes through the worker's whole stack again, dedupe included (a permanent failure
/// released its claim, so the fixed handler runs it; an event that was in fact completed is
/// skipped as a duplicate).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hookdock::store::{DeadLetterFilter, DeadLetters, MemoryQueue, Queue};
/// use hookdock::RawEvent;
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
///
/// let queue = Arc::new(MemoryQueue::new());
/// queue.enqueue(RawEvent::new("github", "d-1", SystemTime::now(), "{}")).await?;
/// let leased = queue.lease(1, Duration::from_secs(30)).await?;
/// queue.dead_letter(&leased[0].lease, "permanent failure: no such customer").await?;
///
/// let admin = DeadLetters::new(queue.clone());
/// let dead = admin.list(&DeadLetterFilter::all()).await?;
/// assert_eq!(dead[0].event_id, "d-1");
/// assert_eq!(dead[0].reason, "permanent failure: no such customer");
/// assert!(admin.replay_one(dead[0].message).await?);
/// assert_eq!(queue.stats().await?.ready, 1);
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    queue: Arc<dyn Queue>,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters").finish_non_exhaustive()
    }
}

/// One dead letter, without its body: what an admin listing shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DeadLetterInfo {
    /// The queue's message id (what [`DeadLetters::replay_one`] takes).
    pub message: MessageId,
    /// The event's source.
    pub source: String,
    /// The event's id within its source.
    pub event_id: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub dead_at_ms: i64,
    /// When the receiver got it, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The body's length in bytes.
    pub body_bytes: usize,
}

impl From<&DeadLetter> for DeadLetterInfo {
    fn from(dead: &DeadLetter) -> Self {
        Self {
            message: dead.message,
            source: dead.event.source.clone(),
            event_id: dead.event.id.to_string(),
            reason: dead.reason.clone(),
            attempts: dead.attempts,
            dead_at_ms: unix_millis(dead.dead_at),
            received_at_ms: unix_millis(dead.event.received_at),
            body_bytes: dead.event.body.len(),
        }
    }
}

impl DeadLetters {
    /// The dead letters of `queue`.
    pub fn new(queue: impl Queue) -> Self {
        Self {
            queue: Arc::new(queue),
        }
    }

    /// Lists the dead letters matching `filter`, oldest first, with reasons and attempts.
    pub async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterInfo>, StoreError> {
        let dead = self.queue.dead_letters(filter).await?;
        Ok(dead.iter().map(DeadLetterInfo::from).collect())
    }

    /// The full dead letters matching `filter`, bodies included.
    pub async fn get(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        self.queue.dead_letters(filter).await
    }

    /// Replays one message; false if it is not in the dead letters.
    pub async fn replay_one(&self, message: MessageId) -> Result<bool, StoreError> {
        Ok(self
            .queue
            .replay(&DeadLetterFilter::message(message))
            .await?
            > 0)
    }

    /// Replays the dead letters matching `filter`; returns how many.
    pub async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        self.queue.replay(filter).await
    }

    /// Replays every dead letter; returns how many.
    pub async fn replay_all(&self) -> Result<u64, StoreError> {
        self.queue.replay(&DeadLetterFilter::all()).await
    }
}
