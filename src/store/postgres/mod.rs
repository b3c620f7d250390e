//! The PostgreSQL backend: [`PgStore`], a [`Queue`](crate::store::Queue) with its
//! [`EventLog`](crate::store::EventLog) and an
//! [`IdempotencyStore`](crate::store::IdempotencyStore) for many receivers and workers sharing
//! one database.
//!
//! Moving from the embedded SQLite default to PostgreSQL is a change of constructor: the
//! stores have the same shape and pass the same conformance suites.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hookdock::store::postgres::{PgOptions, PgStore};
//! use hookdock::store::QueueOptions;
//!
//! // From a URL, or `PgStore::from_pool(pool, options)` with the pool your service has.
//! // Either applies the migrations (idempotent; safe from every process at start-up).
//! let pg = PgStore::connect("postgres://app@localhost/app", PgOptions::new().schema("hookdock")).await?;
//! let queue = pg.queue(QueueOptions::default().max_attempts(8));
//! let dedupe = pg.idempotency();
//! # let _ = (queue, dedupe);
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! Opening applies the embedded migrations ([`MIGRATIONS`], also readable as plain SQL files
//! under `migrations/postgres/` in the crate) inside one transaction, under an advisory
//! lock, and records them in `hookdock_migrations`; a schema migrated by a newer hookdock is
//! refused. Every table name starts with `hookdock_`; the schema is configurable
//! ([`PgOptions::schema`]) and validated as a plain lowercase identifier, so no unchecked
//! text is ever put into SQL.
//!
//! | table | one row per | key columns |
//! |---|---|---|
//! | `hookdock_events` | key `(source, event_id)`, from enqueue until forgotten; never updated but to store an event on a record that held only a claim | `id` (the [`MessageId`](crate::store::MessageId)), `(source, event_id)` unique, `received_at`, `headers`, `body` (the raw bytes), `event_type`, `order_key` and `order_pos` (the [ordering key](crate::ordering) and position, migration 5) |
//! | `hookdock_queue` | the state of the record with the same `id` | `state` (0 waiting, 1 leased, 2 dead, 3 handled, 4 holds only a claim, 5 stale), `available_at` (retry time, lease expiry, or when a handled record is forgotten), `attempts`, `lease_token`, `last_error`, `dead_reason`; the dedupe claim: `claim_token`, `claim_done`, `claim_until`, `fingerprint`, `result`; the log's history: `origin` (0 push, 1 replay, 2 reconciliation), `first_attempt_at`, `last_attempt_at`, `done_at`, `replays`, `forced_replays` |
//! | `hookdock_order_keys` | [ordering key](crate::ordering) seen, kept after its events are forgotten (migration 5) | `(source, order_key)` primary key, `active` (the id of its one pending record that is leased or waiting at its own time), `watermark` (the largest position acked) |
//! | `hookdock_replay_jobs` | durable replay job | `filter` (JSON), `forced`, `state` (0 running, 1 finished, 2 cancelled), `through`, `after` (the cursor), `total`, `replayed`, `skipped` |
//! | `hookdock_reconcile_sources` | [reconciliation](crate::reconcile) source (migration 6) | `name` primary key, `checkpoint` (`BYTEA`: the reconciler's opaque checkpoint, byte for byte), `checkpoint_at`, `report` (the last [`PassReport`](crate::reconcile::PassReport) as JSON), `report_at` |
//! | `hookdock_health` | nothing: one row, rewritten by [`check_writable`](crate::store::Queue::check_writable) (migration 4) | `probed_at` (the last probe) |
//! | `hookdock_migrations` | applied migration | `version`, `checksum` |
//!
//! The state lives in its own table of small rows so that a lease, a retry or a claim
//! rewrites about 100 bytes instead of the whole delivery, and never touches the unique key
//! index: PostgreSQL writes a new entry in every index of a table for each updated row unless
//! the update is "HOT", and updating `state` never is. So the key index of
//! `hookdock_events` gets exactly one entry per event, at enqueue: the event's one insert
//! under a random key; the claim of the dedupe layer updates the same record.
//!
//! Times are `BIGINT` Unix microseconds taken from the [`Clock`] handed to the
//! store, never the server's `now()`: every process agrees with the clock it was handed, and
//! tests move time by hand. For a human: `SELECT e.id, e.source, e.event_id, q.state,
//! q.attempts, to_timestamp(q.available_at / 1e6) FROM hookdock_events e JOIN hookdock_queue
//! q USING (id)`.
//!
//! # How it works
//!
//! - **Enqueue** is batched: concurrent calls are collected by a background task and stored
//!   with one multi-row `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT (source, event_id) DO
//!   NOTHING RETURNING`: one round trip and one commit for all of them, which also sends one
//!   `NOTIFY`. Each caller's future resolves when that commit is done
//!   ([`Durability::ServerCommit`](crate::store::Durability::ServerCommit)). Duplicates get
//!   the known message's id. With a depth limit, batches take a transaction-scoped advisory
//!   lock and count the waiting messages first, so the limit is exact across processes. A
//!   batch that fails because of one event's data is run again one event at a time, so one
//!   bad event never fails its neighbours.
//! - **Lease** takes a batch with `SELECT ... ORDER BY available_at, id LIMIT n FOR UPDATE
//!   SKIP LOCKED` and updates it in the same statement: concurrent workers in any number of
//!   processes never wait for each other and never get the same message. Each lease bumps the
//!   row's `lease_token`, the fencing token every settling statement checks. A lease that
//!   expired on the last allowed attempt is moved to the dead letters by the next lease (and
//!   before listing or replaying dead letters).
//! - **Ack** is batched like enqueue (one `UPDATE ... FROM UNNEST(...)` for all concurrent
//!   acks); so are idempotency **claims** and **completions**.
//! - **Wake-ups**: enqueue, replay and a retry due now `NOTIFY` the channel
//!   `hookdock_<schema>` (in the same commit); the queue's
//!   [`wake_signal`](crate::store::Queue::wake_signal) listens to it, so idle workers in
//!   every process wake at once instead of polling fast. The listener holds one pooled
//!   connection for `LISTEN` while any worker waits.
//! - **Forgetting**: [`Queue::purge_expired`](crate::store::Queue::purge_expired) (the worker
//!   calls it hourly) deletes handled records past their retention, a chunk per statement.
//! - **The event log** ([`EventLog`](crate::store::EventLog) for [`PgQueue`]) reads the same
//!   two tables and adds no index to them (each would be written by every enqueue): a listing
//!   walks both primary keys backwards from its page's bound (a merge join), a lookup goes
//!   through the key index, the age of the oldest waiting event comes from the lease index.
//!   Counts and the total of a new replay job scan what the filter selects. The history
//!   columns are written by the statements that already write the row (lease, ack, retry,
//!   dead letter), so the hot paths keep their statement and round-trip counts. With a
//!   retention of zero an ack deletes the record in the same statement.
//! - **Replay jobs** step in one transaction each: the job's row is locked (`FOR UPDATE`), so
//!   steppers of one job in any number of processes take turns; the next batch of records
//!   after the cursor is picked, the settled ones among them locked in id order (as acks lock
//!   them) and made ready as replays (in forced mode with the claim reset), and the cursor
//!   moved, all in one commit, which also sends the `NOTIFY`. A job killed at any point is
//!   stepped again from the cursor it committed, so no event is replayed twice by one job.
//! - **Ordering keys** (migration 5): of a key's pending records one is active, the others
//!   wait parked at `available_at` = `i64::MAX`, so the lease query is unchanged and
//!   parked records count as scheduled. The key's row in `hookdock_order_keys` is its lock,
//!   taken in the transaction of each change that moves the key: a keyed event is inserted
//!   parked and joins its key before the enqueue commits; an ack (raising the watermark), a
//!   skip, a retry, a deferral or a dead letter of a keyed record makes the key's first
//!   pending record (by `order_pos NULLS FIRST, id`, from the partial index
//!   `hookdock_events_order`) active in the same commit; replays join. One key's changes
//!   take turns; other keys run in parallel, and no global lock exists. Unkeyed records keep
//!   their one-statement paths: the batched ack and the settling statements exclude keyed
//!   records, which then take the keyed path. A lease leaves an expired keyed lease locked
//!   but unchanged and settles it under its key right after: dead-lettered on its last
//!   attempt, made to wait behind an earlier record that arrived while it was leased, or
//!   leased again. Each lease of a keyed event returns its key's watermark.
//! - **Reconciliation** ([`CheckpointStore`](crate::store::CheckpointStore) for
//!   [`PgQueue`]): a checkpoint or a report is one upsert into `hookdock_reconcile_sources`.
//!   The leadership of a source is a session-level advisory lock,
//!   `pg_try_advisory_lock(hashtextextended('hookdock.reconcile:<schema>:<name>', 0))`, held
//!   by a connection taken out of the pool for the leader alone; its
//!   [`holds`](crate::store::Leadership::holds) is a `SELECT 1` on that connection. Dropping
//!   the leadership closes the connection, and a leader that dies loses it: either way the
//!   server releases the lock and another process's next try takes the source over. One
//!   pooled connection per source led is out of the pool for as long as it is led.
//! - [`PgIdempotencyStore::complete_in`] completes a claim inside the application's own
//!   transaction, so a handler whose effect is in the same database applies it exactly once
//!   even if its process dies at any point.
//!
//! # Keeping a busy queue table healthy
//!
//! A queue table churns: every event is inserted, and its state updated by each lease,
//! retry, claim and ack. Dead row versions pile up in the table and in the index the lease
//! query walks, and a lease that has to step over many of them gets slower. The migrations
//! set per-table storage parameters for this; adjust them with `ALTER TABLE ... SET (...)`:
//!
//! - `fillfactor = 70` on `hookdock_queue` leaves room on each page so updated versions stay
//!   on the same page.
//! - `autovacuum_vacuum_scale_factor = 0` with `autovacuum_vacuum_threshold = 5000`:
//!   vacuum after a fixed number of dead rows instead of the default 20% of the table, which
//!   on a queue that drains to near-empty means "rarely", and on a large backlog means
//!   millions of dead rows. `autovacuum_vacuum_insert_*` likewise for insert-only bursts.
//! - `autovacuum_vacuum_cost_delay = 0`: vacuum of these hot tables is not throttled.
//! - Partial indexes: `hookdock_queue_due (available_at, id) WHERE state < 2` holds only
//!   messages that can be leased, so dead letters and handled records never slow the lease
//!   query; `hookdock_queue_dead (id) WHERE state = 2` serves listing and replay;
//!   `hookdock_queue_forget (available_at) WHERE state >= 3` the purge.
//!
//! Server-wide, for a busy queue: lower `autovacuum_naptime` (for example `10s`; it is
//! per-database, not per-table), and above all avoid long-running transactions and idle
//! `idle in transaction` sessions anywhere on the server: vacuum cannot remove any row
//! version newer than the oldest open snapshot, so one forgotten transaction makes the queue
//! table and its indexes grow without bound (set `idle_in_transaction_session_timeout`).
//! Check with `SELECT n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables WHERE
//! relname IN ('hookdock_queue', 'hookdock_events')`.
//!
//! Requires PostgreSQL 13 or later. No TLS is enabled by this crate's `sqlx` dependency;
//! enable one of `sqlx`'s TLS features in your own `Cargo.toml` to connect over TLS.

mod batch;
mod error;
mod events;
mod idempotency;
mod log;
mod order_keys;
mod queue;
mod reconcile_sources;
mod replay_jobs;
mod schema;
mod wake;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

pub use idempotency::PgIdempotencyStore;
pub use queue::PgQueue;
pub use schema::{Migration, MAX_SCHEMA_LEN, MIGRATIONS};

use crate::clock::SharedClock;
use crate::error::ConfigError;
use crate::store::codec::duration_micros;
use crate::store::{QueueOptions, StoreError, DEFAULT_RETENTION};
use crate::Clock;
use batch::Batcher;
use schema::Schema;

/// Most events (or acks, claims, completions) written by one batch statement, by default.
pub const DEFAULT_BATCH_SIZE: usize = 512;

/// Settings of a [`PgStore`]. Every setting has a sensible default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgOptions {
    schema: String,
    clock: SharedClock,
    retention: Duration,
    batch_size: usize,
    max_connections: u32,
    migrate: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            schema: "public".to_owned(),
            clock: SharedClock::default(),
            retention: DEFAULT_RETENTION,
            batch_size: DEFAULT_BATCH_SIZE,
            max_connections: 10,
            migrate: true,
        }
    }
}

impl PgOptions {
    /// The defaults: schema `public`, the system clock, 7-day retention, batches of up to
    /// [`DEFAULT_BATCH_SIZE`], migrations applied at open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Works in schema `name` instead of `public`. The name must be a plain lowercase
    /// identifier (`[a-z_][a-z0-9_]*`, at most [`MAX_SCHEMA_LEN`] bytes, not starting with
    /// `pg_`); opening fails with [`StoreError::Internal`] otherwise, and creates the schema
    /// if needed.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// Reads time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// How long a handled event and a completed claim are remembered (default
    /// [`DEFAULT_RETENTION`], 7 days; see [Retention](crate::store#retention)).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Writes at most `n` events, acks, claims or completions per batch statement (default
    /// [`DEFAULT_BATCH_SIZE`], at least 1).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The size of the pool [`PgStore::connect`] makes (default 10; ignored by
    /// [`PgStore::from_pool`]).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Whether opening applies the migrations (default `true`). With `false`, apply the SQL
    /// files under `migrations/postgres/` with your own tool (with `search_path` set to the
    /// schema, recording each in `hookdock_migrations` as [`MIGRATIONS`] lists it); opening
    /// then only checks that they are all applied.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }
}

/// A connection pool to the database hookdock uses, with the schema, clock and retention its
/// queues and idempotency stores work in, and the batching tasks they share.
///
/// Cheap to clone: clones share the pool and the tasks.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The pool, clock, retention and statements.
    shared: Arc<events::Shared>,
    schema: Schema,
    enqueues: Batcher<events::EnqueueOp>,
    acks: Batcher<queue::AckOp>,
    claims: Batcher<idempotency::ClaimOp>,
    completions: Batcher<idempotency::CompleteOp>,
    wake: wake::WakeSource,
    closed: AtomicBool,
    /// Reconciliation leaderships being released.
    releases: reconcile_sources::Releases,
}

impl PgStore {
    /// Connects a new pool ([`PgOptions::max_connections`]) to `url`, such as
    /// `postgres://user:password@host:5432/database`, and opens the store on it (see
    /// [`from_pool`](Self::from_pool)).
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .connect(url)
            .await?;
        Self::from_pool(pool, options).await
    }

    /// Opens the store on a pool the application already has: validates the schema name,
    /// applies the migrations (or, with [`PgOptions::migrate`] off, checks that they are
    /// applied), and refuses a schema migrated by a newer hookdock.
    pub async fn from_pool(pool: PgPool, options: PgOptions) -> Result<Self, StoreError> {
        let schema = Schema::new(&options.schema).map_err(config)?;
        if options.migrate {
            schema.migrate(&pool).await?;
        } else {
            schema.check(&pool).await?;
        }
        let shared = Arc::new(events::Shared {
            pool: pool.clone(),
            clock: options.clock,
            retention: duration_micros(options.retention),
            sql: events::Statements::new(&schema),
            channel: schema.channel().to_owned(),
            depth_lock: format!("hookdock depth {}", schema.name),
        });
        let batch = options.batch_size;
        Ok(Self {
            inner: Arc::new(Inner {
                enqueues: Batcher::new(events::EnqueueOp::new(shared.clone()), batch),
                acks: Batcher::new(queue::AckOp::new(shared.clone()), batch),
                claims: Batcher::new(idempotency::ClaimOp::new(shared.clone()), batch),
                completions: Batcher::new(idempotency::CompleteOp::new(shared.clone()), batch),
                wake: wake::WakeSource::new(pool, schema.channel().to_owned()),
                shared,
                schema,
                closed: AtomicBool::new(false),
                releases: reconcile_sources::Releases::default(),
            }),
        })
    }

    /// A queue in this store with these options. Its background tasks (batching, wake-ups)
    /// start on first use, on the Tokio runtime of the caller.
    pub fn queue(&self, options: QueueOptions) -> PgQueue {
        PgQueue::new(self.clone(), options)
    }

    /// An idempotency store in this store, sharing its records.
    pub fn idempotency(&self) -> PgIdempotencyStore {
        PgIdempotencyStore::new(self.clone())
    }

    /// The connection pool, to share with the application (for example to write a handler's
    /// effect in the same transaction as [`PgIdempotencyStore::complete_in`]).
    pub fn pool(&self) -> &PgPool {
        &self.inner.shared.pool
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.inner.schema.name
    }

    /// Stops the store gracefully: every enqueue, ack, claim and completion already submitted
    /// is committed and answered, and later calls answer [`StoreError::Closed`]. Does not
    /// close the pool (it may be shared with the application); call
    /// [`PgPool::close`](sqlx::Pool::close) for that.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.enqueues.close().await;
        self.inner.acks.close().await;
        self.inner.claims.close().await;
        self.inner.completions.close().await;
    }

    fn now(&self) -> i64 {
        self.inner.shared.now()
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}

fn config(e: ConfigError) -> StoreError {
    StoreError::internal("postgres", e)
}
