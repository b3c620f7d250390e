//! The [`IdempotencyStore`] trait and its types: what remembers which events were handled.
//!
//! The contract is in the [store layer's docs](super#the-idempotency-contract).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use super::StoreError;
use crate::event::EventId;

/// What is made idempotent: one event of one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey {
    /// The event's source.
    pub source: String,
    /// The event's id within its source.
    pub id: EventId,
}

impl IdempotencyKey {
    /// A key.
    pub fn new(source: impl Into<String>, id: impl Into<EventId>) -> Self {
        Self {
            source: source.into(),
            id: id.into(),
        }
    }
}

/// The SHA-256 of an event's body: the same key with a different body is a conflict, not a
/// duplicate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `body`.
    pub fn of(body: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(body).into())
    }

    /// The fingerprint's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(&self.0[..8]))
    }
}

/// A fencing token for a claim: changes every time a key is acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimToken(pub u64);

/// The outcome of [`IdempotencyStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The caller holds the key and should do the work, then complete or release.
    Acquired(ClaimToken),
    /// The work was already done; the stored result, if one was saved.
    Completed(Option<Bytes>),
    /// Someone else holds a live claim until this time.
    InProgress {
        /// When that claim expires.
        until: SystemTime,
    },
    /// The key is held for a different body.
    FingerprintMismatch,
}

/// Remembers which events were handled; see the [store docs](super#the-idempotency-contract) for the contract.
///
/// Object safe; implemented for `Arc<S>`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Tries to take `key` for `lease`.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError>;

    /// Marks the claimed key done, keeping `result` for later duplicates.
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError>;

    /// Gives the claimed key up so the next claim acquires it.
    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError>;

    /// Removes completed keys past the retention period and long-expired claims; returns
    /// how many.
    async fn purge_expired(&self) -> Result<u64, StoreError>;
}

#[async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for std::sync::Arc<S> {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        (**self).claim(key, fingerprint, lease).await
    }
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError> {
        (**self).complete(key, token, result).await
    }
    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        (**self).release(key, token).await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        (**self).purge_expired().await
    }
}
