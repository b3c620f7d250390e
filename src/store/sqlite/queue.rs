//! [`SqliteQueue`]: the [`Queue`] over `hookdock_events`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::events::{self, Action, Enqueue, Lease as LeaseWrite, Replay, Settle};
use super::SqliteStore;
use crate::event::RawEvent;
use crate::store::codec::{duration_micros, encode_headers, from_micros, to_micros};
use crate::store::sql::{lease_token, DeadFilter};
use crate::store::{
    key, DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, Leased, Queue, QueueOptions,
    QueueStats, StoreError, Wake,
};

/// A durable [`Queue`] in a SQLite database; see the [module docs](super) for how it stores.
/// From [`SqliteStore::queue`].
///
/// Cheap to clone; clones share the store's writer thread.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
/// use hookdock::store::{Enqueued, Queue, QueueOptions};
/// use hookdock::RawEvent;
/// use std::time::{Duration, SystemTime};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hookdock.db");
///
/// let queue = SqliteStore::open(&path, SqliteOptions::default())?.queue(QueueOptions::default());
/// let event = RawEvent::new("github", "d-1", SystemTime::now(), "{}");
/// let stored = queue.enqueue(event.clone()).await?; // committed and fsynced
/// assert_eq!(queue.enqueue(event).await?, Enqueued::Duplicate(stored.message()));
/// for leased in queue.lease(100, Duration::from_secs(30)).await? {
///     queue.ack(&leased.lease).await?;
/// }
/// assert_eq!(queue.stats().await?.depth(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    store: SqliteStore,
    options: QueueOptions,
}

impl SqliteQueue {
    pub(super) fn new(store: SqliteStore, options: QueueOptions) -> Self {
        Self { store, options }
    }

    /// The store this queue lives in (to make an idempotency store sharing its writer, or to
    /// close it).
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// This queue's limits.
    pub fn options(&self) -> QueueOptions {
        self.options
    }

    async fn settle(&self, lease: &Lease, action: Action) -> Result<(), StoreError> {
        let settle = Settle {
            id: lease.message.0,
            token: lease_token(lease.token)?,
            action,
        };
        self.store.call(settle).await
    }

    /// A retry or deferral: wakes this process's workers if it is due now.
    async fn requeue(
        &self,
        lease: &Lease,
        at: SystemTime,
        action: Action,
    ) -> Result<(), StoreError> {
        let due = to_micros(at) <= self.store.now();
        self.settle(lease, action).await?;
        if due {
            self.store.wake();
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    fn durability(&self) -> Durability {
        Durability::Fsync
    }

    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        key::validate_event(&event)?;
        let headers = encode_headers(&event.headers);
        let RawEvent {
            id,
            source,
            received_at,
            body,
            event_type,
            origin,
            ordering,
            ..
        } = event;
        let (order_key, order_pos) = match ordering {
            Some(o) => (Some(o.key().to_owned()), o.position()),
            None => (None, None),
        };
        let enqueue = Enqueue {
            source,
            event_id: id.into_string(),
            event_type: event_type.map(|t| t.into_string()),
            origin: origin.code(),
            received_at: to_micros(received_at),
            headers,
            body,
            now: self.store.now(),
            max_depth: self.options.max_depth,
            order_key,
            order_pos,
        };
        let outcome = self.store.call(enqueue).await?;
        if matches!(outcome, Enqueued::New(_)) {
            self.store.wake();
        }
        Ok(outcome)
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.store.now();
        let lease = LeaseWrite {
            max,
            now,
            expires: now.saturating_add(duration_micros(lease_for)),
            max_attempts: self.options.max_attempts,
        };
        let rows = self.store.call(lease).await?;
        Ok(rows
            .into_iter()
            .map(|row| row.into_leased(self.options.max_attempts))
            .collect())
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        let expires = self.store.now().saturating_add(duration_micros(lease_for));
        self.settle(lease, Action::Extend { expires }).await?;
        Ok(Lease {
            expires_at: from_micros(expires),
            ..*lease
        })
    }

    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        let now = self.store.now();
        let retention = self.store.retention();
        let action = Action::Ack {
            forget_at: now.saturating_add(retention),
            now,
            forget: retention == 0,
        };
        self.settle(lease, action).await
    }

    async fn skip(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        let now = self.store.now();
        let retention = self.store.retention();
        let action = Action::Skip {
            forget_at: now.saturating_add(retention),
            now,
            forget: retention == 0,
            reason: reason.to_owned(),
        };
        self.settle(lease, action).await
    }

    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        let action = Action::Retry {
            at: to_micros(at),
            error: error.to_owned(),
        };
        self.requeue(lease, at, action).await
    }

    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        let action = Action::Defer { at: to_micros(at) };
        self.requeue(lease, at, action).await
    }

    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        let action = Action::DeadLetter {
            reason: reason.to_owned(),
            now: self.store.now(),
        };
        self.settle(lease, action).await
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let filter = DeadFilter::from(filter);
        let rows = self
            .store
            .read(move |conn| events::dead_letters(conn, &filter))
            .await?;
        Ok(rows.into_iter().map(|r| r.into_dead_letter()).collect())
    }

    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        let replay = Replay {
            filter: DeadFilter::from(filter),
            now: self.store.now(),
            max_attempts: self.options.max_attempts,
        };
        let n = self.store.call(replay).await?;
        if n > 0 {
            self.store.wake();
        }
        Ok(n)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let now = self.store.now();
        let max_attempts = self.options.max_attempts;
        let counts = self
            .store
            .read(move |conn| events::counts(conn, now, max_attempts))
            .await?;
        Ok(counts.into())
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge_expired().await
    }

    /// A write through the writer thread, group committed and fsynced like any other: it
    /// takes a page and gives it back, and consumes one fencing token (see the module's
    /// "Health" section).
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.store.call(super::probe::Probe).await
    }

    fn wake_signal(&self) -> Option<Box<dyn Wake>> {
        Some(self.store.wake_signal())
    }
}
