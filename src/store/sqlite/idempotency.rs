//! [`SqliteIdempotencyStore`]: claims on the records of `hookdock_events`.
//!
//! A claim lives in the `claim_*` columns of the record of its key: for a stored event that
//! is its own record (no second insert under a random key); for a key no event was stored
//! under, a record holding only the claim (`state = 4`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, OptionalExtension};

use super::engine::{Answer, Tx, Write};
use super::events::{forget, forgotten};
use super::tail::locate;
use super::SqliteStore;
use crate::store::codec::{duration_micros, from_micros};
use crate::store::sql::{claim_token, token_out, CLAIM_ONLY};
use crate::store::{
    key, Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, StoreError,
};

/// The claim columns of a key's record, by its id.
const HELD: &str = "SELECT id, state, available_at, claim_token, claim_done, claim_until,
        fingerprint, result
    FROM hookdock_events WHERE id = ?1";

/// `?1` id, `?2` token, `?3` claim expiry, `?4` fingerprint, `?5` when a record holding only
/// the claim is forgotten if the claim is abandoned.
const TAKE: &str = "UPDATE hookdock_events
    SET claim_token = ?2, claim_done = 0, claim_until = ?3, fingerprint = ?4, result = NULL,
        available_at = CASE WHEN state = 4 THEN ?5 ELSE available_at END
    WHERE id = ?1";

/// `?1` source, `?2` event id, `?3` now, `?4` token, `?5` claim expiry, `?6` fingerprint,
/// `?7` forget-at.
/// `?8` record id; the key waits in the [`Tail`](super::tail) until the next merge.
const CLAIM_ONLY_RECORD: &str = "INSERT INTO hookdock_events (id, source, event_id, state,
        available_at, received_at, enqueued_at, claim_token, claim_done, claim_until,
        fingerprint, keyed)
    VALUES (?8, ?1, ?2, 4, ?7, 0, ?3, ?4, 0, ?5, ?6, 0)";

/// `?1` record id, `?2` token, `?3` retained until, `?4` result.
const COMPLETE: &str = "UPDATE hookdock_events
    SET claim_done = 1, claim_until = ?3, result = ?4,
        available_at = CASE WHEN state = 4 THEN ?3 ELSE available_at END
    WHERE id = ?1 AND claim_token = ?2 AND claim_done = 0";

/// `?1` record id, `?2` token.
const RELEASE_ONLY: &str = "DELETE FROM hookdock_events
    WHERE id = ?1 AND claim_token = ?2 AND claim_done = 0 AND state = 4";

const RELEASE: &str = "UPDATE hookdock_events
    SET claim_token = NULL, claim_until = NULL, fingerprint = NULL
    WHERE id = ?1 AND claim_token = ?2 AND claim_done = 0";

/// A key's record as a claim sees it: the columns of [`HELD`], in order.
struct Held {
    id: i64,
    state: i64,
    available_at: i64,
    claim: Option<i64>,
    done: i64,
    until: Option<i64>,
    fingerprint: Option<Vec<u8>>,
    result: Option<Vec<u8>>,
}

impl Held {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            state: r.get(1)?,
            available_at: r.get(2)?,
            claim: r.get(3)?,
            done: r.get(4)?,
            until: r.get(5)?,
            fingerprint: r.get(6)?,
            result: r.get(7)?,
        })
    }
}

/// Takes a key.
pub(super) struct ClaimKey {
    source: String,
    event_id: String,
    fingerprint: [u8; 32],
    now: i64,
    until: i64,
    retention: i64,
}

impl Write for ClaimKey {
    type Output = Claim;
    const ONLY_FOR_CALLER: bool = true;

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<Claim>> {
        let conn = tx.conn;
        let held = match locate(conn, tx.tail, &self.source, &self.event_id)? {
            None => None,
            Some(id) => conn
                .prepare_cached(HELD)?
                .query_row(params![id], Held::from_row)
                .optional()?,
        };
        let token = tx.state.token();
        // An abandoned claim-only record is forgotten a retention period after its claim
        // expires.
        let forget_at = self.until.saturating_add(self.retention);
        let record = match held {
            Some(held) if forgotten(held.state, held.available_at, self.now) => {
                forget(tx, held.id, &self.source, &self.event_id)?;
                None
            }
            other => other,
        };
        let Some(Held {
            id,
            claim,
            done,
            until,
            fingerprint,
            result,
            ..
        }) = record
        else {
            let id = tx.state.next_id;
            tx.state.next_id += 1;
            conn.prepare_cached(CLAIM_ONLY_RECORD)?.execute(params![
                self.source,
                self.event_id,
                self.now,
                token,
                self.until,
                &self.fingerprint[..],
                forget_at,
                id
            ])?;
            tx.tail.insert(&self.source, &self.event_id, id);
            return Ok(Ok(Claim::Acquired(ClaimToken(token_out(token)))));
        };
        if let (Some(_), Some(until)) = (claim, until) {
            if until > self.now {
                // Live: held, or completed within the retention period.
                let same = fingerprint.as_deref() == Some(&self.fingerprint[..]);
                return Ok(Ok(match (same, done) {
                    (false, _) => Claim::FingerprintMismatch,
                    (true, 1) => Claim::Completed(result.map(Bytes::from)),
                    (true, _) => Claim::InProgress {
                        until: from_micros(until),
                    },
                }));
            }
        }
        // No claim, released, expired, or completed past retention: take it.
        conn.prepare_cached(TAKE)?.execute(params![
            id,
            token,
            self.until,
            &self.fingerprint[..],
            forget_at
        ])?;
        Ok(Ok(Claim::Acquired(ClaimToken(token_out(token)))))
    }
}

/// Completes a claim, fenced by its token.
pub(super) struct Complete {
    source: String,
    event_id: String,
    token: i64,
    until: i64,
    result: Option<Bytes>,
}

impl Write for Complete {
    type Output = ();

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<()>> {
        let Some(id) = locate(tx.conn, tx.tail, &self.source, &self.event_id)? else {
            return Ok(Err(StoreError::ClaimLost));
        };
        let n = tx.conn.prepare_cached(COMPLETE)?.execute(params![
            id,
            self.token,
            self.until,
            self.result.as_deref()
        ])?;
        Ok(if n == 1 {
            Ok(())
        } else {
            Err(StoreError::ClaimLost)
        })
    }
}

/// Releases a claim, fenced by its token: a record holding only the claim is forgotten.
pub(super) struct Release {
    source: String,
    event_id: String,
    token: i64,
}

impl Write for Release {
    type Output = ();

    fn apply(&self, tx: &mut Tx<'_>) -> rusqlite::Result<Answer<()>> {
        let Some(id) = locate(tx.conn, tx.tail, &self.source, &self.event_id)? else {
            return Ok(Err(StoreError::ClaimLost));
        };
        let fenced = params![id, self.token];
        let mut n = tx.conn.prepare_cached(RELEASE_ONLY)?.execute(fenced)?;
        if n == 1 {
            tx.tail.remove(&self.source, &self.event_id);
        } else {
            n = tx.conn.prepare_cached(RELEASE)?.execute(fenced)?;
        }
        Ok(if n == 1 {
            Ok(())
        } else {
            Err(StoreError::ClaimLost)
        })
    }
}

/// A durable [`IdempotencyStore`] in a SQLite database, sharing the database and the writer
/// thread (and so the group commits) of the [`SqliteStore`] it was made from; from
/// [`SqliteStore::idempotency`].
///
/// Cheap to clone.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hookdock::store::{Claim, Fingerprint, IdempotencyKey, IdempotencyStore};
/// use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
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
}

impl SqliteIdempotencyStore {
    pub(super) fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The store this lives in.
    pub fn store(&self) -> &SqliteStore {
        &self.store
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
        key::validate(&key.source, &key.id)?;
        let now = self.store.now();
        self.store
            .call(ClaimKey {
                source: key.source.clone(),
                event_id: key.id.as_str().to_owned(),
                fingerprint: *fingerprint.as_bytes(),
                now,
                until: now.saturating_add(duration_micros(lease)),
                retention: self.store.retention(),
            })
            .await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError> {
        self.store
            .call(Complete {
                source: key.source.clone(),
                event_id: key.id.as_str().to_owned(),
                token: claim_token(token)?,
                until: self.store.now().saturating_add(self.store.retention()),
                result,
            })
            .await
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        self.store
            .call(Release {
                source: key.source.clone(),
                event_id: key.id.as_str().to_owned(),
                token: claim_token(token)?,
            })
            .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge_expired().await
    }
}

/// Records holding only a claim are in `state` [`CLAIM_ONLY`], as the SQL above writes it.
const _: () = assert!(CLAIM_ONLY == 4);

#[cfg(test)]
pub(super) const ALL_SQL: [&str; 6] = [
    HELD,
    TAKE,
    CLAIM_ONLY_RECORD,
    COMPLETE,
    RELEASE_ONLY,
    RELEASE,
];
