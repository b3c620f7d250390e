//! The PostgreSQL idempotency store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::postgres::PgPool;
use sqlx::Row;

use super::batch::{fail_all, on_conflict_retry, BatchOp, Batcher};
use super::{check_text, millis, store_error, PgBackend, Sql};
use crate::clock::{from_unix_millis, unix_millis, SharedClock};
use crate::error::StoreError;
use crate::idempotency::{
    Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, DEFAULT_RETENTION,
};

/// An [`IdempotencyStore`] in PostgreSQL (table `hookdock_idempotency`), shared by any
/// number of worker processes. Built by [`PgBackend::idempotency_store`].
///
/// **Claim** is one statement: `INSERT ... ON CONFLICT (source, event_id) DO UPDATE SET
/// <new claim> WHERE <the held claim has expired> RETURNING token`. A row comes back only if
/// the caller acquired the key (new, released, past retention, or an abandoned claim taken
/// over), with a fresh fencing token from a sequence. When it does not, the same statement
/// also reads the row as it stood when the statement began (in a `LEFT JOIN` beside the
/// insert), which tells Completed, InProgress and FingerprintMismatch apart. That reading is
/// a state the key really had during the call; should it be one that could have been
/// acquired (the conflicting row was committed after the statement's snapshot was taken),
/// the claim is simply run again. Concurrent claims of one key from this process share a
/// batch statement as separate rounds; from other processes, PostgreSQL's unique index makes
/// exactly one of them insert or update the row.
///
/// **Complete** and **release** check the token in their `WHERE` clause, so a claim that was
/// taken over cannot be completed. [`complete_in`](Self::complete_in) completes inside the
/// caller's own transaction: write the handler's effect and the completion in one commit,
/// and the effect is applied exactly once even if the worker dies at any point.
///
/// Claims and completions from concurrent callers are batched (one statement each for all
/// of them).
#[derive(Debug)]
pub struct PgIdempotencyStore {
    shared: Arc<Shared>,
    claims: Batcher<ClaimOp>,
    completions: Batcher<CompleteOp>,
}

#[derive(Debug, Clone)]
struct Shared {
    pool: PgPool,
    clock: SharedClock,
    retention: Duration,
    claim: Sql,
    complete: Sql,
    complete_one: Sql,
    release: Sql,
    purge: Sql,
}

/// $1 sources, $2 ids, $3 fingerprints, $4 claim expiries, $5 now.
const CLAIM: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int8[])
        WITH ORDINALITY AS t(source, event_id, fingerprint, expires_at, ord)
), won AS (
    INSERT INTO {schema}.hookdock_idempotency AS i
        (source, event_id, fingerprint, token, completed, expires_at)
    SELECT source, event_id, fingerprint,
           nextval('{schema}.hookdock_claim_token_seq'), false, expires_at
    FROM input ORDER BY ord
    ON CONFLICT (source, event_id) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, token = EXCLUDED.token, completed = false,
            expires_at = EXCLUDED.expires_at, completed_at = NULL, result = NULL
        WHERE i.expires_at <= $5
    RETURNING i.source, i.event_id, i.token
)
SELECT input.ord, won.token, cur.fingerprint, cur.completed, cur.expires_at, cur.result
FROM input
LEFT JOIN won ON won.source = input.source AND won.event_id = input.event_id
LEFT JOIN {schema}.hookdock_idempotency cur
    ON won.token IS NULL AND cur.source = input.source AND cur.event_id = input.event_id
ORDER BY input.ord";

/// $1 now, $2 retained until, then arrays: $3 sources, $4 ids, $5 tokens, $6 results.
const COMPLETE: &str = "
UPDATE {schema}.hookdock_idempotency AS i
SET completed = true, completed_at = $1, expires_at = $2, result = c.result
FROM UNNEST($3::text[], $4::text[], $5::int8[], $6::bytea[]) AS c(source, event_id, token, result)
WHERE i.source = c.source AND i.event_id = c.event_id AND i.token = c.token
  AND NOT i.completed
RETURNING i.source, i.event_id";

/// $1 now, $2 retained until, $3 source, $4 id, $5 token, $6 result.
const COMPLETE_ONE: &str = "
UPDATE {schema}.hookdock_idempotency
SET completed = true, completed_at = $1, expires_at = $2, result = $6
WHERE source = $3 AND event_id = $4 AND token = $5 AND NOT completed
RETURNING token";

const RELEASE: &str = "
DELETE FROM {schema}.hookdock_idempotency
WHERE source = $1 AND event_id = $2 AND token = $3 AND NOT completed
RETURNING token";

/// $1 now, $2 now minus retention, $3 chunk size. Completed keys past retention, and claims
/// that expired more than a retention period ago.
const PURGE: &str = "
DELETE FROM {schema}.hookdock_idempotency
WHERE (source, event_id) IN (
    SELECT source, event_id FROM {schema}.hookdock_idempotency
    WHERE expires_at <= $1 AND (completed OR expires_at <= $2)
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)";

/// Rows deleted per purge statement, so a large purge never holds one long transaction.
const PURGE_CHUNK: i64 = 10_000;

/// Rounds a claim may take before giving up (each needs a concurrent change to happen).
const CLAIM_ROUNDS: usize = 16;

impl PgIdempotencyStore {
    pub(crate) fn new(backend: PgBackend) -> Self {
        let s = &backend.schema;
        let shared = Arc::new(Shared {
            pool: backend.pool.clone(),
            clock: backend.clock.clone(),
            retention: DEFAULT_RETENTION,
            claim: s.sql(CLAIM),
            complete: s.sql(COMPLETE),
            complete_one: s.sql(COMPLETE_ONE),
            release: s.sql(RELEASE),
            purge: s.sql(PURGE),
        });
        Self::assemble(shared, backend.batch_size)
    }

    fn assemble(shared: Arc<Shared>, batch_size: usize) -> Self {
        Self {
            claims: Batcher::new(
                ClaimOp {
                    shared: shared.clone(),
                },
                batch_size,
            ),
            completions: Batcher::new(
                CompleteOp {
                    shared: shared.clone(),
                },
                batch_size,
            ),
            shared,
        }
    }

    /// Keeps completed keys for `retention` instead of
    /// [`DEFAULT_RETENTION`] (builder style). Make it at least as long as
    /// the longest time a sender may redeliver an event.
    pub fn with_retention(self, retention: Duration) -> Self {
        let mut shared = (*self.shared).clone();
        shared.retention = retention;
        Self::assemble(Arc::new(shared), self.claims.max_batch())
    }

    /// The connection pool this store uses.
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// Shuts the store down gracefully: waits until every claim and completion already
    /// submitted is committed and answered. Does not close the pool.
    pub async fn close(self) {
        self.claims.close().await;
        self.completions.close().await;
    }

    /// The retention period.
    pub fn retention(&self) -> Duration {
        self.shared.retention
    }

    /// [`complete`](IdempotencyStore::complete), inside the caller's transaction: the
    /// completion commits (or rolls back) together with whatever else the transaction
    /// wrote, such as the handler's effect. Fails with [`StoreError::ClaimLost`] if the
    /// token is no longer current; roll the transaction back then.
    ///
    /// ```no_run
    /// # async fn demo(store: hookdock::postgres::PgIdempotencyStore, pool: hookdock::postgres::Pool,
    /// #   key: hookdock::idempotency::IdempotencyKey, token: hookdock::idempotency::ClaimToken)
    /// #   -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("UPDATE accounts SET paid = true WHERE invoice = $1")
    ///     .bind(key.id.as_str())
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store.complete_in(&mut tx, &key, token, None).await?; // ClaimLost: dropping tx rolls back
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn complete_in(
        &self,
        conn: &mut sqlx::PgConnection,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError> {
        let now = unix_millis(self.shared.clock.now());
        let row = sqlx::query(self.shared.complete_one.q())
            .bind(now)
            .bind(now.saturating_add(millis(self.shared.retention)))
            .bind(&key.source)
            .bind(key.id.as_str())
            .bind(claim_i64(token))
            .bind(result.as_deref())
            .fetch_optional(conn)
            .await
            .map_err(store_error)?;
        row.map(|_| ()).ok_or(StoreError::ClaimLost)
    }
}

fn claim_i64(t: ClaimToken) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

struct ClaimReq {
    key: IdempotencyKey,
    fingerprint: Fingerprint,
    lease: Duration,
}

struct ClaimOp {
    shared: Arc<Shared>,
}

impl BatchOp for ClaimOp {
    type Req = ClaimReq;
    type Resp = Claim;

    async fn run(&self, reqs: Vec<ClaimReq>) -> Vec<Result<Claim, StoreError>> {
        let mut out: Vec<Option<Claim>> = vec![None; reqs.len()];
        let mut pending: Vec<usize> = (0..reqs.len()).collect();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            if rounds > CLAIM_ROUNDS {
                return (0..reqs.len())
                    .map(|i| match out[i].take() {
                        Some(c) => Ok(c),
                        None => Err(StoreError::storage(
                            "idempotency claim kept racing with concurrent changes; giving up",
                        )),
                    })
                    .collect();
            }
            // One round: each key at most once (its first pending request leads), in key
            // order so concurrent batches lock rows in the same order.
            let mut leaders: HashMap<&IdempotencyKey, usize> = HashMap::new();
            for &i in &pending {
                leaders.entry(&reqs[i].key).or_insert(i);
            }
            let mut round: Vec<usize> = leaders.values().copied().collect();
            round.sort_by(|&a, &b| reqs[a].key.cmp(&reqs[b].key));
            let now = unix_millis(self.shared.clock.now());
            let results = match self.claim_round(&reqs, &round, now).await {
                Ok(results) => results,
                Err(e) => {
                    let mut errs = fail_all::<Claim>(reqs.len(), e).into_iter();
                    return out
                        .into_iter()
                        .map(|o| match (o, errs.next()) {
                            (Some(c), _) => Ok(c),
                            (None, Some(e)) => e,
                            (None, None) => Err(StoreError::Closed),
                        })
                        .collect();
                }
            };
            let outcome: HashMap<&IdempotencyKey, (usize, Option<Claim>)> = round
                .iter()
                .zip(results)
                .map(|(&i, r)| (&reqs[i].key, (i, r)))
                .collect();
            // The others with the same key see the state the leader left, as if they had
            // run just after it.
            pending.retain(|&i| {
                let Some((leader, Some(claim))) = outcome.get(&reqs[i].key) else {
                    return true; // the leader must look again; so must they
                };
                if i == *leader {
                    out[i] = Some(claim.clone());
                    return false;
                }
                let lead = &reqs[*leader];
                let same_body = reqs[i].fingerprint == lead.fingerprint;
                out[i] = match claim {
                    _ if same_body && matches!(claim, Claim::FingerprintMismatch) => {
                        Some(Claim::FingerprintMismatch)
                    }
                    // The held body differs from the leader's: this one may match it.
                    Claim::FingerprintMismatch => return true,
                    _ if !same_body => Some(Claim::FingerprintMismatch),
                    Claim::Acquired(_) => Some(Claim::InProgress {
                        until: from_unix_millis(now.saturating_add(millis(lead.lease))),
                    }),
                    other => Some(other.clone()),
                };
                false
            });
            pending.sort_unstable();
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| StoreError::storage("claim left unanswered")))
            .collect()
    }
}

impl ClaimOp {
    /// Runs one claim statement for keys that are unique; `None` where the outcome must be
    /// read again.
    async fn claim_round(
        &self,
        reqs: &[ClaimReq],
        round: &[usize],
        now: i64,
    ) -> Result<Vec<Option<Claim>>, sqlx::Error> {
        let sources: Vec<&str> = round.iter().map(|&i| reqs[i].key.source.as_str()).collect();
        let ids: Vec<&str> = round.iter().map(|&i| reqs[i].key.id.as_str()).collect();
        let fps: Vec<&[u8]> = round
            .iter()
            .map(|&i| &reqs[i].fingerprint.as_bytes()[..])
            .collect();
        let until: Vec<i64> = round
            .iter()
            .map(|&i| now.saturating_add(millis(reqs[i].lease)))
            .collect();
        let rows = on_conflict_retry(|| {
            sqlx::query(self.shared.claim.q())
                .bind(&sources)
                .bind(&ids)
                .bind(&fps)
                .bind(&until)
                .bind(now)
                .fetch_all(&self.shared.pool)
        })
        .await?;
        let mut out = vec![None; round.len()];
        for row in &rows {
            let ord: i64 = row.try_get(0)?;
            let Some(slot) = usize::try_from(ord - 1).ok().filter(|&s| s < round.len()) else {
                continue;
            };
            let won: Option<i64> = row.try_get(1)?;
            if let Some(token) = won {
                out[slot] = Some(Claim::Acquired(ClaimToken(
                    u64::try_from(token).unwrap_or(0),
                )));
                continue;
            }
            let fingerprint: Option<Vec<u8>> = row.try_get(2)?;
            let completed: Option<bool> = row.try_get(3)?;
            let expires: Option<i64> = row.try_get(4)?;
            let result: Option<Vec<u8>> = row.try_get(5)?;
            out[slot] = match (fingerprint, completed, expires) {
                // Live when the statement began, and not ours to take.
                (Some(fp), Some(completed), Some(expires)) if expires > now => {
                    let req = &reqs[round[slot]];
                    Some(if fp[..] != req.fingerprint.as_bytes()[..] {
                        Claim::FingerprintMismatch
                    } else if completed {
                        Claim::Completed(result.map(Bytes::from))
                    } else {
                        Claim::InProgress {
                            until: from_unix_millis(expires),
                        }
                    })
                }
                // Committed by someone else after our snapshot: look again.
                _ => None,
            };
        }
        Ok(out)
    }
}

struct CompleteReq {
    key: IdempotencyKey,
    token: ClaimToken,
    result: Option<Bytes>,
}

struct CompleteOp {
    shared: Arc<Shared>,
}

impl BatchOp for CompleteOp {
    type Req = CompleteReq;
    type Resp = ();

    async fn run(&self, reqs: Vec<CompleteReq>) -> Vec<Result<(), StoreError>> {
        let now = unix_millis(self.shared.clock.now());
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by(|&a, &b| reqs[a].key.cmp(&reqs[b].key));
        let sources: Vec<&str> = order.iter().map(|&i| reqs[i].key.source.as_str()).collect();
        let ids: Vec<&str> = order.iter().map(|&i| reqs[i].key.id.as_str()).collect();
        let tokens: Vec<i64> = order.iter().map(|&i| claim_i64(reqs[i].token)).collect();
        let results: Vec<Option<&[u8]>> =
            order.iter().map(|&i| reqs[i].result.as_deref()).collect();
        let rows = match on_conflict_retry(|| {
            sqlx::query(self.shared.complete.q())
                .bind(now)
                .bind(now.saturating_add(millis(self.shared.retention)))
                .bind(&sources)
                .bind(&ids)
                .bind(&tokens)
                .bind(&results)
                .fetch_all(&self.shared.pool)
        })
        .await
        {
            Ok(rows) => rows,
            Err(e) => return fail_all(reqs.len(), e),
        };
        let mut done: HashMap<(String, String), usize> = HashMap::new();
        for row in &rows {
            if let (Ok(s), Ok(id)) = (row.try_get::<String, _>(0), row.try_get::<String, _>(1)) {
                *done.entry((s, id)).or_default() += 1;
            }
        }
        // Each completed row answers one request with its key (the first with the current
        // token; a second completion of the same claim finds it already completed).
        reqs.iter()
            .map(|r| {
                let k = (r.key.source.clone(), r.key.id.as_str().to_owned());
                match done.get_mut(&k) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        Ok(())
                    }
                    _ => Err(StoreError::ClaimLost),
                }
            })
            .collect()
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        check_text("idempotency key source", &key.source)?;
        check_text("idempotency key id", key.id.as_str())?;
        self.claims
            .call(ClaimReq {
                key: key.clone(),
                fingerprint: *fingerprint,
                lease,
            })
            .await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        result: Option<Bytes>,
    ) -> Result<(), StoreError> {
        check_text("idempotency key source", &key.source)?;
        check_text("idempotency key id", key.id.as_str())?;
        self.completions
            .call(CompleteReq {
                key: key.clone(),
                token,
                result,
            })
            .await
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        let row = sqlx::query(self.shared.release.q())
            .bind(&key.source)
            .bind(key.id.as_str())
            .bind(claim_i64(token))
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(store_error)?;
        row.map(|_| ()).ok_or(StoreError::ClaimLost)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = unix_millis(self.shared.clock.now());
        let cutoff = now.saturating_sub(millis(self.shared.retention));
        let mut total = 0u64;
        loop {
            let done = sqlx::query(self.shared.purge.q())
                .bind(now)
                .bind(cutoff)
                .bind(PURGE_CHUNK)
                .execute(&self.shared.pool)
                .await
                .map_err(store_error)?
                .rows_affected();
            total += done;
            if done < u64::try_from(PURGE_CHUNK).unwrap_or(u64::MAX) {
                return Ok(total);
            }
        }
    }
}
