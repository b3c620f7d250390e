//! [`MemoryIdempotencyStore`]: the [`IdempotencyStore`] of a [`MemoryStore`].

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{lock, MemoryStore};
use crate::store::codec::{duration_micros, from_micros};
use crate::store::{
    key, Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, StoreError,
};

/// An [`IdempotencyStore`] held in memory: from [`MemoryStore::idempotency`], or
/// [`MemoryIdempotencyStore::new`] for one with a store of its own.
#[derive(Debug, Clone)]
pub struct MemoryIdempotencyStore {
    store: MemoryStore,
}

#[derive(Debug, Default)]
pub(super) struct State {
    records: HashMap<IdempotencyKey, Record>,
}

#[derive(Debug)]
struct Record {
    fingerprint: Fingerprint,
    token: u64,
    /// Claim expiry (in progress) or end of retention (completed), in µs.
    until: i64,
    result: Option<Option<Bytes>>,
}

impl State {
    /// Forgets the claim on `key` (a forced replay); true if there was one.
    pub(super) fn reset(&mut self, key: &IdempotencyKey) -> bool {
        self.records.remove(key).is_some()
    }
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIdempotencyStore {
    /// An empty store, in a [`MemoryStore`] of its own (system clock, default retention).
    pub fn new() -> Self {
        MemoryStore::new().idempotency()
    }

    pub(super) fn new_in(store: MemoryStore) -> Self {
        Self { store }
    }

    /// The store this lives in.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.store.inner.claims)
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
        key::validate(&key.source, &key.id)?;
        let now = self.store.now();
        let mut s = self.state();
        if let Some(r) = s.records.get(key).filter(|r| r.until > now) {
            if r.fingerprint != *fingerprint {
                return Ok(Claim::FingerprintMismatch);
            }
            return Ok(match &r.result {
                Some(result) => Claim::Completed(result.clone()),
                None => Claim::InProgress {
                    until: from_micros(r.until),
                },
            });
        }
        // Unknown, released, past retention, or an abandoned claim: acquire it.
        let token = self.store.token();
        s.records.insert(
            key.clone(),
            Record {
                fingerprint: *fingerprint,
                token,
                until: now.saturating_add(duration_micros(lease)),
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
        let until = self.store.now().saturating_add(self.store.retention());
        let mut s = self.state();
        match s.records.get_mut(key) {
            Some(r) if r.token == token.0 && r.result.is_none() => {
                r.result = Some(result);
                r.until = until;
                Ok(())
            }
            _ => Err(StoreError::ClaimLost),
        }
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        let mut s = self.state();
        match s.records.get(key) {
            Some(r) if r.token == token.0 && r.result.is_none() => {
                s.records.remove(key);
                Ok(())
            }
            _ => Err(StoreError::ClaimLost),
        }
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.store.now();
        let retention = self.store.retention();
        let mut s = self.state();
        let before = s.records.len();
        s.records.retain(|_, r| match r.result {
            Some(_) => r.until > now,
            None => r.until.saturating_add(retention) > now,
        });
        Ok((before - s.records.len()) as u64)
    }
}
