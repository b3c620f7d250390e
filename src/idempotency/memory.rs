//! The in-memory idempotency store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, DEFAULT_RETENTION};
use crate::clock::{from_unix_millis, unix_millis, SharedClock};
use crate::error::StoreError;
use crate::Clock;

/// An [`IdempotencyStore`] held in memory; for tests and single-process examples.
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    records: Mutex<HashMap<IdempotencyKey, Record>>,
    next_token: std::sync::atomic::AtomicU64,
    clock: SharedClock,
    retention: Duration,
}

#[derive(Debug)]
struct Record {
    fingerprint: Fingerprint,
    token: u64,
    /// Claim expiry (in progress) or end of retention (completed), Unix milliseconds.
    until: i64,
    result: Option<Option<Bytes>>,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl MemoryIdempotencyStore {
    /// An empty store with the default retention and the system clock.
    pub fn new() -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
            next_token: std::sync::atomic::AtomicU64::new(1),
            clock: SharedClock::default(),
            retention: DEFAULT_RETENTION,
        }
    }

    /// Reads time from `clock` (builder style).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Keeps completed keys for `retention` (builder style).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdempotencyKey, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let now = unix_millis(self.clock.now());
        let mut records = self.lock();
        if let Some(r) = records.get(key).filter(|r| r.until > now) {
            if r.fingerprint != *fingerprint {
                return Ok(Claim::FingerprintMismatch);
            }
            return Ok(match &r.result {
                Some(result) => Claim::Completed(result.clone()),
                None => Claim::InProgress {
                    until: from_unix_millis(r.until),
                },
            });
        }
        // Unknown, released, past retention, or an abandoned claim: acquire it.
        let token = self
            .next_token
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        records.insert(
            key.clone(),
            Record {
                fingerprint: *fingerprint,
                token,
                until: now.saturating_add(millis(lease)),
                result: None,
            },
        );
        Ok(Claim::Acquired(ClaimToken(token)))
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError> {
        let now = unix_millis(self.clock.now());
        let mut records = self.lock();
        match records.get_mut(key) {
            Some(r) if r.token == token.0 && r.result.is_none() => {
                r.result = Some(result);
                r.until = now.saturating_add(millis(self.retention));
                Ok(())
            }
            _ => Err(StoreError::ClaimLost),
        }
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        let mut records = self.lock();
        match records.get(key) {
            Some(r) if r.token == token.0 && r.result.is_none() => {
                records.remove(key);
                Ok(())
            }
            _ => Err(StoreError::ClaimLost),
        }
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = unix_millis(self.clock.now());
        let retention = millis(self.retention);
        let mut records = self.lock();
        let before = records.len();
        records.retain(|_, r| match r.result {
            Some(_) => r.until > now,
            None => r.until.saturating_add(retention) > now,
        });
        Ok((before - records.len()) as u64)
    }
}
