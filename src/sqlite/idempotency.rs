//! [`SqliteIdempotencyStore`]: the [`IdempotencyStore`] over `hookdock_idempotency`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::writer::{Request, Response};
use super::{unexpected, SqliteStore};
use crate::error::StoreError;
use crate::idempotency::{
    Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, DEFAULT_RETENTION,
};

/// How many keys one purge transaction deletes, so a large purge never holds the writer
/// (and the intake path behind it) for long.
pub(super) const PURGE_CHUNK: usize = 4096;

/// A durable [`IdempotencyStore`] in a SQLite database, sharing the database and the writer
/// thread (and so the group commits) of the [`SqliteStore`] it was made from.
///
/// Cheap to clone.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hookdock::idempotency::{Claim, Fingerprint, IdempotencyKey, IdempotencyStore};
/// use hookdock::sqlite::{SqliteOptions, SqliteStore};
/// use std::time::Duration;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hookdock.db");
///
/// let store = SqliteStore::open(&path, SqliteOptions::default())?;
/// let dedupe = store.idempotency();
/// let key = IdempotencyKey::new("github", "d-1");
/// let fp = Fingerprint::of(b"{}");
/// let Claim::Acquired(token) = dedupe.claim(&key, &fp, Duration::from_secs(30)).await? else {
///     panic!("a new key is acquired");
/// };
/// // ... do the work once ...
/// dedupe.complete(&key, token, None).await?;
/// assert_eq!(dedupe.claim(&key, &fp, Duration::from_secs(30)).await?, Claim::Completed(None));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteIdempotencyStore {
    store: SqliteStore,
    retention: Duration,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SqliteIdempotencyStore {
    pub(super) fn new(store: SqliteStore) -> Self {
        Self {
            store,
            retention: DEFAULT_RETENTION,
        }
    }

    /// Keeps completed keys for `retention` (builder style). Default
    /// [`DEFAULT_RETENTION`] (72 hours).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The store this lives in.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn fence(token: ClaimToken) -> Result<i64, StoreError> {
        i64::try_from(token.0).map_err(|_| StoreError::ClaimLost)
    }
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let now = self.store.now_ms();
        let request = Request::Claim {
            source: key.source.clone(),
            event_id: key.id.as_str().to_owned(),
            fingerprint: *fingerprint.as_bytes(),
            now,
            until: now.saturating_add(millis(lease)),
        };
        match self.store.call(request).await? {
            Response::Claim(claim) => Ok(claim),
            _ => Err(unexpected("claim")),
        }
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError> {
        let request = Request::Complete {
            source: key.source.clone(),
            event_id: key.id.as_str().to_owned(),
            token: Self::fence(token)?,
            result,
            until: self.store.now_ms().saturating_add(millis(self.retention)),
        };
        match self.store.call(request).await? {
            Response::Done => Ok(()),
            _ => Err(unexpected("complete")),
        }
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        let request = Request::Release {
            source: key.source.clone(),
            event_id: key.id.as_str().to_owned(),
            token: Self::fence(token)?,
        };
        match self.store.call(request).await? {
            Response::Done => Ok(()),
            _ => Err(unexpected("release")),
        }
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.store.now_ms();
        let mut total = 0;
        loop {
            let request = Request::Purge {
                now,
                retention: millis(self.retention),
                limit: PURGE_CHUNK,
            };
            match self.store.call(request).await? {
                Response::Count(n) => {
                    total += n;
                    if n < PURGE_CHUNK as u64 {
                        return Ok(total);
                    }
                }
                _ => return Err(unexpected("purge")),
            }
        }
    }
}
