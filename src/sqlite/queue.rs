//! [`SqliteQueue`]: the [`Queue`] over `hookdock_events`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::params;

use super::writer::{dead_filter_params, Request, Response, DEAD_FILTER};
use super::{sql_error, unexpected, SqliteOptions, SqliteStore};
use crate::clock::{from_unix_millis, unix_millis};
use crate::error::StoreError;
use crate::event::{decode_headers, RawEvent};
use crate::queue::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, Leased, MessageId, Queue,
    QueueOptions, QueueStats,
};

/// A durable [`Queue`] in a SQLite database; see the [module docs](super) for how it stores.
///
/// Cheap to clone; clones share the store's writer thread.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hookdock::queue::{Enqueued, Queue};
/// use hookdock::sqlite::SqliteQueue;
/// use hookdock::RawEvent;
/// use std::time::{Duration, SystemTime};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hookdock.db");
///
/// let queue = SqliteQueue::open(&path)?;
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

    /// Opens the database at `path` with default [`SqliteOptions`] and returns a queue with
    /// default [`QueueOptions`]. Use [`SqliteStore::open`] to choose options or to share the
    /// database with an idempotency store.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(SqliteStore::open(path, SqliteOptions::default())?.queue(QueueOptions::default()))
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

    fn expiry(&self, lease_for: Duration) -> (i64, i64) {
        let now = self.store.now_ms();
        let ms = i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX);
        (now, now.saturating_add(ms))
    }

    /// The stored form of a lease token: a token this store cannot have issued is simply
    /// not current.
    fn fence(lease: &Lease) -> Result<(i64, i64), StoreError> {
        let token = i64::try_from(lease.token.0).map_err(|_| StoreError::LeaseLost)?;
        Ok((lease.message.0, token))
    }

    async fn settle(&self, request: Request) -> Result<(), StoreError> {
        match self.store.call(request).await? {
            Response::Done => Ok(()),
            _ => Err(unexpected("a settle")),
        }
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    fn durability(&self) -> Durability {
        Durability::Fsync
    }

    async fn enqueue(&self, event: RawEvent) -> Result<Enqueued, StoreError> {
        let headers = event.encode_headers();
        let RawEvent {
            id,
            source,
            received_at,
            body,
            ..
        } = event;
        let request = Request::Enqueue {
            source,
            event_id: id.into_string(),
            received_at: unix_millis(received_at),
            headers,
            body,
            now: self.store.now_ms(),
            max_depth: self.options.max_depth,
        };
        match self.store.call(request).await? {
            Response::Enqueued(outcome) => Ok(outcome),
            _ => Err(unexpected("enqueue")),
        }
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (now, expires) = self.expiry(lease_for);
        let request = Request::Lease {
            max,
            now,
            expires,
            max_attempts: self.options.max_attempts,
        };
        match self.store.call(request).await? {
            Response::Leased(rows) => Ok(rows
                .into_iter()
                .map(|row| row.into_leased(self.options.max_attempts))
                .collect()),
            _ => Err(unexpected("lease")),
        }
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<Lease, StoreError> {
        let (id, token) = Self::fence(lease)?;
        let (_, expires) = self.expiry(lease_for);
        self.settle(Request::Extend { id, token, expires }).await?;
        Ok(Lease {
            expires_at: from_unix_millis(expires),
            ..*lease
        })
    }

    async fn ack(&self, lease: &Lease) -> Result<(), StoreError> {
        let (id, token) = Self::fence(lease)?;
        self.settle(Request::Ack { id, token }).await
    }

    async fn retry(&self, lease: &Lease, at: SystemTime, error: &str) -> Result<(), StoreError> {
        let (id, token) = Self::fence(lease)?;
        self.settle(Request::Retry {
            id,
            token,
            at: unix_millis(at),
            error: Some(error.to_owned()),
        })
        .await
    }

    async fn defer(&self, lease: &Lease, at: SystemTime) -> Result<(), StoreError> {
        let (id, token) = Self::fence(lease)?;
        self.settle(Request::Retry {
            id,
            token,
            at: unix_millis(at),
            error: None,
        })
        .await
    }

    async fn dead_letter(&self, lease: &Lease, reason: &str) -> Result<(), StoreError> {
        let (id, token) = Self::fence(lease)?;
        self.settle(Request::DeadLetter {
            id,
            token,
            reason: reason.to_owned(),
            now: self.store.now_ms(),
        })
        .await
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let filter = filter.clone();
        self.store
            .read(move |conn| {
                let sql = format!(
                    "SELECT e.id, e.source, e.event_id, e.received_at, b.headers, b.body,
                            e.dead_reason, e.attempts, e.dead_at
                     FROM (SELECT * FROM hookdock_events WHERE {DEAD_FILTER}) AS e
                     LEFT JOIN hookdock_event_bodies AS b ON b.id = e.id
                     ORDER BY e.id"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
                let (m, s, e, r, a, l) = dead_filter_params(&filter);
                let rows = stmt
                    .query_map(params![m, s, e, r, a, l], |r| {
                        let headers: Vec<u8> = r.get::<_, Option<_>>(4)?.unwrap_or_default();
                        let body: Vec<u8> = r.get::<_, Option<_>>(5)?.unwrap_or_default();
                        let event = RawEvent {
                            source: r.get(1)?,
                            id: r.get::<_, String>(2)?.into(),
                            received_at: from_unix_millis(r.get(3)?),
                            headers: decode_headers(&headers),
                            body: Bytes::from(body),
                        };
                        Ok(DeadLetter::new(
                            MessageId(r.get(0)?),
                            event,
                            r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                            r.get(7)?,
                            from_unix_millis(r.get::<_, Option<i64>>(8)?.unwrap_or(0)),
                        ))
                    })
                    .map_err(sql_error)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(sql_error)
            })
            .await
    }

    async fn replay(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        let request = Request::Replay {
            filter: filter.clone(),
            now: self.store.now_ms(),
        };
        match self.store.call(request).await? {
            Response::Count(n) => Ok(n),
            _ => Err(unexpected("replay")),
        }
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let now = self.store.now_ms();
        let max_attempts = self.options.max_attempts;
        self.store
            .read(move |conn| {
                // One statement, so one snapshot; every count is answered from an index.
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT
                           (SELECT count(*) FROM hookdock_events WHERE state < 2),
                           (SELECT count(*) FROM hookdock_events
                              WHERE state < 2 AND available_at <= ?1),
                           (SELECT count(*) FROM hookdock_events
                              WHERE state = 1 AND available_at > ?1),
                           (SELECT count(*) FROM hookdock_events
                              WHERE state = 1 AND available_at <= ?1 AND attempts >= ?2),
                           (SELECT count(*) FROM hookdock_events WHERE state = 2)",
                    )
                    .map_err(sql_error)?;
                let counts = stmt
                    .query_row(params![now, max_attempts], |r| {
                        let get = |i| r.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                        Ok([get(0)?, get(1)?, get(2)?, get(3)?, get(4)?])
                    })
                    .map_err(sql_error)?;
                let [waiting, available, leased, expired_last, dead] = counts;
                Ok(QueueStats {
                    ready: available.saturating_sub(expired_last),
                    leased,
                    scheduled: waiting.saturating_sub(available).saturating_sub(leased),
                    // A lease that expired on the last attempt is a dead letter already; the
                    // next lease moves it there.
                    dead: dead + expired_last,
                })
            })
            .await
    }
}
