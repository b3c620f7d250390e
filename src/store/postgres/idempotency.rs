//! [`PgIdempotencyStore`]: claims on the records of `hookdock_queue`.
//!
//! A claim lives in the `claim_*` columns of the state row of its key's record: for a stored
//! event that is its own record (an update, no second insert under a random key); for a key
//! no event was stored under, a record holding only the claim (`state = 4`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row;

use super::batch::{fail_all, on_conflict_retry, BatchOp};
use super::error::PgError;
use super::events::Shared;
use super::schema::{Schema, Sql};
use super::PgStore;
use crate::store::codec::{duration_micros, from_micros};
use crate::store::sql::{claim_token, token_out, DONE};
use crate::store::{
    key, Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore, StoreError,
};

/// $1 sources, $2 ids, $3 fingerprints, $4 claim expiries, $5 when a record holding only
/// the claim is forgotten if the claim is abandoned, $6 now. Takes the claim where the record
/// has none, or an expired one, or is past its time (then it becomes a claim-only record).
/// Beside each key: whether it was won, its record, and the claim as it stood when the
/// statement began.
const CLAIM: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int8[], $5::int8[])
        WITH ORDINALITY AS t(source, event_id, fingerprint, until, forget_at, ord)
), target AS (
    SELECT input.ord, e.id FROM input
    JOIN {schema}.hookdock_events e ON e.source = input.source AND e.event_id = input.event_id
), won AS (
    UPDATE {schema}.hookdock_queue q SET
        claim_token = nextval('{schema}.hookdock_claim_token_seq'),
        claim_done = false, claim_until = input.until, fingerprint = input.fingerprint,
        result = NULL,
        state = CASE WHEN q.state >= 3 AND q.available_at <= $6 THEN 4 ELSE q.state END,
        available_at = CASE WHEN q.state = 4 OR (q.state >= 3 AND q.available_at <= $6)
                            THEN input.forget_at ELSE q.available_at END
    FROM target JOIN input ON input.ord = target.ord
    WHERE q.id = target.id
      AND (q.claim_token IS NULL OR q.claim_until <= $6
           OR (q.state >= 3 AND q.available_at <= $6))
    RETURNING target.ord, q.claim_token
)
SELECT input.ord, won.claim_token, target.id, cur.state, cur.available_at, cur.claim_token,
       cur.claim_done, cur.claim_until, cur.fingerprint, cur.result
FROM input
LEFT JOIN won ON won.ord = input.ord
LEFT JOIN target ON target.ord = input.ord
LEFT JOIN {schema}.hookdock_queue cur ON won.claim_token IS NULL AND cur.id = target.id
ORDER BY input.ord";

/// Records holding only a claim, for keys without one: $1..$5 as for [`CLAIM`], $6 now.
const CLAIM_ONLY: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int8[], $5::int8[])
        WITH ORDINALITY AS t(source, event_id, fingerprint, until, forget_at, ord)
), ins AS (
    INSERT INTO {schema}.hookdock_events
        (source, event_id, received_at, headers, body, enqueued_at)
    SELECT source, event_id, 0, '', '', $6 FROM input ORDER BY ord
    ON CONFLICT (source, event_id) DO NOTHING
    RETURNING id, source, event_id
), q AS (
    INSERT INTO {schema}.hookdock_queue
        (id, state, available_at, claim_token, claim_done, claim_until, fingerprint)
    SELECT ins.id, 4, input.forget_at, nextval('{schema}.hookdock_claim_token_seq'), false,
           input.until, input.fingerprint
    FROM ins JOIN input ON input.source = ins.source AND input.event_id = ins.event_id
    RETURNING id, claim_token
)
SELECT ins.source, ins.event_id, q.claim_token FROM ins JOIN q ON q.id = ins.id";

/// $1 retained until, then arrays: $2 sources, $3 ids, $4 tokens, $5 results.
const COMPLETE: &str = "
UPDATE {schema}.hookdock_queue q
SET claim_done = true, claim_until = $1, result = c.result,
    available_at = CASE WHEN q.state = 4 THEN $1 ELSE q.available_at END
FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::bytea[]) AS c(source, event_id, token, result)
JOIN {schema}.hookdock_events e ON e.source = c.source AND e.event_id = c.event_id
WHERE q.id = e.id AND q.claim_token = c.token AND NOT q.claim_done
RETURNING e.source, e.event_id";

/// $1 retained until, $2 source, $3 id, $4 token, $5 result.
const COMPLETE_ONE: &str = "
UPDATE {schema}.hookdock_queue q
SET claim_done = true, claim_until = $1, result = $5,
    available_at = CASE WHEN q.state = 4 THEN $1 ELSE q.available_at END
FROM {schema}.hookdock_events e
WHERE e.source = $2 AND e.event_id = $3 AND q.id = e.id AND q.claim_token = $4
  AND NOT q.claim_done
RETURNING q.claim_token";

/// $1 source, $2 id, $3 token: clears the claim, or forgets a record holding only it.
const RELEASE: &str = "
WITH target AS (
    SELECT q.id, q.state FROM {schema}.hookdock_queue q
    JOIN {schema}.hookdock_events e ON q.id = e.id
    WHERE e.source = $1 AND e.event_id = $2 AND q.claim_token = $3 AND NOT q.claim_done
    FOR UPDATE OF q
), cleared AS (
    UPDATE {schema}.hookdock_queue q
    SET claim_token = NULL, claim_until = NULL, fingerprint = NULL
    FROM target WHERE q.id = target.id AND target.state <> 4
    RETURNING q.id
), gone AS (
    DELETE FROM {schema}.hookdock_queue q USING target
    WHERE q.id = target.id AND target.state = 4
    RETURNING q.id
), gone_events AS (
    DELETE FROM {schema}.hookdock_events e USING gone WHERE e.id = gone.id
)
SELECT id FROM cleared UNION ALL SELECT id FROM gone";

/// Rounds a claim may take before giving up (each needs a concurrent change to happen).
const CLAIM_ROUNDS: usize = 16;

/// The idempotency store's statements for one schema.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    claim: Sql,
    claim_only: Sql,
    complete: Sql,
    complete_one: Sql,
    release: Sql,
}

impl Statements {
    pub(super) fn new(s: &Schema) -> Self {
        Self {
            claim: s.sql(CLAIM),
            claim_only: s.sql(CLAIM_ONLY),
            complete: s.sql(COMPLETE),
            complete_one: s.sql(COMPLETE_ONE),
            release: s.sql(RELEASE),
        }
    }
}

/// An [`IdempotencyStore`] in PostgreSQL, shared by any number of worker processes; from
/// [`PgStore::idempotency`].
///
/// **Claim** takes the key in one statement for every concurrent claim of this process:
/// `UPDATE ... SET <new claim> WHERE <the record has no live claim> RETURNING`. PostgreSQL's
/// row lock makes exactly one of any number of concurrent claims of a key win, in any number
/// of processes; a key without a record gets a record holding only the claim (`INSERT ... ON
/// CONFLICT DO NOTHING`, so one of concurrent inserts wins). When a claim does not win, the
/// same statement reads the claim as it stood when the statement began, which tells
/// Completed, InProgress and FingerprintMismatch apart; should that reading be one that could
/// have been taken (a change committed after the statement's snapshot), the claim is simply
/// run again.
///
/// **Complete** and **release** check the token, so a claim that was taken over cannot be
/// completed. [`complete_in`](Self::complete_in) completes inside the caller's own
/// transaction: write the handler's effect and the completion in one commit, and the effect
/// is applied exactly once even if the worker dies at any point.
///
/// Cheap to clone; its batching tasks belong to the store.
#[derive(Debug, Clone)]
pub struct PgIdempotencyStore {
    store: PgStore,
}

impl PgIdempotencyStore {
    pub(super) fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// The store this lives in.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// [`complete`](IdempotencyStore::complete), inside the caller's transaction: the
    /// completion commits (or rolls back) together with whatever else the transaction
    /// wrote, such as the handler's effect. Fails with [`StoreError::ClaimLost`] if the
    /// token is no longer current; roll the transaction back then.
    ///
    /// ```no_run
    /// # async fn demo(store: hookdock::store::postgres::PgIdempotencyStore, pool: sqlx::PgPool,
    /// #   key: hookdock::store::IdempotencyKey, token: hookdock::store::ClaimToken)
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
        let shared = &self.store.inner.shared;
        let row = sqlx::query(shared.sql.claims.complete_one.q())
            .bind(shared.now().saturating_add(shared.retention))
            .bind(&key.source)
            .bind(key.id.as_str())
            .bind(claim_token(token)?)
            .bind(result.as_deref())
            .fetch_optional(conn)
            .await?;
        row.map(|_| ()).ok_or(StoreError::ClaimLost)
    }
}

pub(super) struct ClaimReq {
    key: IdempotencyKey,
    fingerprint: Fingerprint,
    lease: Duration,
}

pub(super) struct ClaimOp {
    shared: Arc<Shared>,
}

impl ClaimOp {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
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
                        None => Err(PgError::Raced("an idempotency claim").into()),
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
            let now = self.shared.now();
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
                        until: from_micros(now.saturating_add(duration_micros(lead.lease))),
                    }),
                    other => Some(other.clone()),
                };
                false
            });
            pending.sort_unstable();
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| StoreError::internal("postgres", "claim left unanswered")))
            .collect()
    }
}

impl ClaimOp {
    /// Runs one claim round for keys that are unique; `None` where the outcome must be
    /// read again.
    async fn claim_round(
        &self,
        reqs: &[ClaimReq],
        round: &[usize],
        now: i64,
    ) -> Result<Vec<Option<Claim>>, sqlx::Error> {
        let claims = &self.shared.sql.claims;
        let sources: Vec<&str> = round.iter().map(|&i| reqs[i].key.source.as_str()).collect();
        let ids: Vec<&str> = round.iter().map(|&i| reqs[i].key.id.as_str()).collect();
        let fps: Vec<&[u8]> = round
            .iter()
            .map(|&i| &reqs[i].fingerprint.as_bytes()[..])
            .collect();
        let until: Vec<i64> = round
            .iter()
            .map(|&i| now.saturating_add(duration_micros(reqs[i].lease)))
            .collect();
        let forget_at: Vec<i64> = until
            .iter()
            .map(|u| u.saturating_add(self.shared.retention))
            .collect();
        let rows = on_conflict_retry(|| {
            sqlx::query(claims.claim.q())
                .bind(&sources)
                .bind(&ids)
                .bind(&fps)
                .bind(&until)
                .bind(&forget_at)
                .bind(now)
                .fetch_all(&self.shared.pool)
        })
        .await?;
        let mut out = vec![None; round.len()];
        let mut absent = Vec::new();
        for row in &rows {
            let ord: i64 = row.try_get(0)?;
            let Some(slot) = usize::try_from(ord - 1).ok().filter(|&s| s < round.len()) else {
                continue;
            };
            if let Some(token) = row.try_get::<Option<i64>, _>(1)? {
                out[slot] = Some(Claim::Acquired(ClaimToken(token_out(token))));
                continue;
            }
            if row.try_get::<Option<i64>, _>(2)?.is_none() {
                absent.push(slot);
                continue;
            }
            let state: Option<i16> = row.try_get(3)?;
            let at: Option<i64> = row.try_get(4)?;
            let token: Option<i64> = row.try_get(5)?;
            let done: Option<bool> = row.try_get(6)?;
            let claim_until: Option<i64> = row.try_get(7)?;
            let fingerprint: Option<Vec<u8>> = row.try_get(8)?;
            let result: Option<Vec<u8>> = row.try_get(9)?;
            let forgotten =
                state.is_some_and(|s| i64::from(s) >= DONE) && at.is_some_and(|a| a <= now);
            out[slot] = match (token, claim_until) {
                // Live when the statement began, and not ours to take.
                (Some(_), Some(until)) if until > now && !forgotten => {
                    let req = &reqs[round[slot]];
                    Some(
                        if fingerprint.as_deref() != Some(&req.fingerprint.as_bytes()[..]) {
                            Claim::FingerprintMismatch
                        } else if done == Some(true) {
                            Claim::Completed(result.map(Bytes::from))
                        } else {
                            Claim::InProgress {
                                until: from_micros(until),
                            }
                        },
                    )
                }
                // Takeable then, taken by someone else since: look again.
                _ => None,
            };
        }
        if !absent.is_empty() {
            let sources: Vec<&str> = absent.iter().map(|&s| sources[s]).collect();
            let ids: Vec<&str> = absent.iter().map(|&s| ids[s]).collect();
            let fps: Vec<&[u8]> = absent.iter().map(|&s| fps[s]).collect();
            let until: Vec<i64> = absent.iter().map(|&s| until[s]).collect();
            let forget_at: Vec<i64> = absent.iter().map(|&s| forget_at[s]).collect();
            let rows = sqlx::query(claims.claim_only.q())
                .bind(&sources)
                .bind(&ids)
                .bind(&fps)
                .bind(&until)
                .bind(&forget_at)
                .bind(now)
                .fetch_all(&self.shared.pool)
                .await?;
            let slots: HashMap<(&str, &str), usize> = absent
                .iter()
                .enumerate()
                .map(|(i, &slot)| ((sources[i], ids[i]), slot))
                .collect();
            for row in &rows {
                let source: &str = row.try_get(0)?;
                let event_id: &str = row.try_get(1)?;
                let token: i64 = row.try_get(2)?;
                if let Some(&slot) = slots.get(&(source, event_id)) {
                    out[slot] = Some(Claim::Acquired(ClaimToken(token_out(token))));
                }
            }
            // Keys another process gave a record meanwhile stay `None`: look again.
        }
        Ok(out)
    }
}

pub(super) struct CompleteReq {
    key: IdempotencyKey,
    token: i64,
    result: Option<Bytes>,
}

pub(super) struct CompleteOp {
    shared: Arc<Shared>,
}

impl CompleteOp {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl BatchOp for CompleteOp {
    type Req = CompleteReq;
    type Resp = ();

    async fn run(&self, reqs: Vec<CompleteReq>) -> Vec<Result<(), StoreError>> {
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by(|&a, &b| reqs[a].key.cmp(&reqs[b].key));
        let sources: Vec<&str> = order.iter().map(|&i| reqs[i].key.source.as_str()).collect();
        let ids: Vec<&str> = order.iter().map(|&i| reqs[i].key.id.as_str()).collect();
        let tokens: Vec<i64> = order.iter().map(|&i| reqs[i].token).collect();
        let results: Vec<Option<&[u8]>> =
            order.iter().map(|&i| reqs[i].result.as_deref()).collect();
        let until = self.shared.now().saturating_add(self.shared.retention);
        let rows = match on_conflict_retry(|| {
            sqlx::query(self.shared.sql.claims.complete.q())
                .bind(until)
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
        key::validate(&key.source, &key.id)?;
        self.store.check_open()?;
        self.store
            .inner
            .claims
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
        key::validate(&key.source, &key.id).map_err(|_| StoreError::ClaimLost)?;
        self.store.check_open()?;
        self.store
            .inner
            .completions
            .call(CompleteReq {
                key: key.clone(),
                token: claim_token(token)?,
                result,
            })
            .await
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), StoreError> {
        key::validate(&key.source, &key.id).map_err(|_| StoreError::ClaimLost)?;
        self.store.check_open()?;
        let shared = &self.store.inner.shared;
        let row = sqlx::query(shared.sql.claims.release.q())
            .bind(&key.source)
            .bind(key.id.as_str())
            .bind(claim_token(token)?)
            .fetch_optional(&shared.pool)
            .await?;
        row.map(|_| ()).ok_or(StoreError::ClaimLost)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge_expired().await
    }
}
