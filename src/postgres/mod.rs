//! PostgreSQL backend: a [`Queue`](crate::queue::Queue) and an
//! [`IdempotencyStore`](crate::idempotency::IdempotencyStore) for many receivers and workers
//! sharing one database.
//!
//! Moving from the embedded SQLite default to PostgreSQL is a change of constructor: both
//! types keep the same contracts and pass the same conformance suites.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hookdock::postgres::PgBackend;
//! use hookdock::queue::{Queue, QueueOptions};
//!
//! // From a URL, or `PgBackend::from_pool(pool)` with the pool your service already has.
//! let pg = PgBackend::connect("postgres://app@localhost/app")
//!     .await?
//!     .with_schema("hookdock")?; // default: `public`
//! pg.migrate().await?; // idempotent; safe to run from every process at start-up
//!
//! let queue = pg.queue(QueueOptions::default().max_attempts(8));
//! let dedupe = pg.idempotency_store();
//! let wake = queue.wake_notify().await; // LISTEN/NOTIFY, for `WorkerBuilder::wake_on`
//! # let _ = (dedupe, wake);
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! [`PgBackend::migrate`] applies the embedded migrations ([`MIGRATIONS`], also readable as
//! plain SQL files under `migrations/postgres/` in the crate) inside one transaction, under an
//! advisory lock, and records them in `hookdock_migrations`. Every table name starts with
//! `hookdock_`; the schema is configurable ([`PgBackend::with_schema`]) and validated as a
//! plain lowercase identifier, so no unchecked text is ever put into SQL.
//!
//! | table | one row per | key columns |
//! |---|---|---|
//! | `hookdock_events` | stored event, from enqueue until ack (then deleted); never updated | `id` (the [`MessageId`](crate::queue::MessageId)), `(source, event_id)` unique, `received_at_ns`, `headers`, `body` (the raw bytes) |
//! | `hookdock_queue` | the delivery state of the event with the same `id` | `state` (0 waiting, 1 leased, 2 dead), `available_at` (retry time or lease expiry), `attempts`, `lease_token`, `last_error`, `dead_reason` |
//! | `hookdock_idempotency` | claimed `(source, event_id)` | `fingerprint`, `token` (fencing), `completed`, `expires_at` (claim expiry or end of retention), `result` |
//! | `hookdock_migrations` | applied migration | `version`, `checksum` |
//!
//! The delivery state lives in its own table of small rows so that a lease, retry or
//! extension rewrites about 60 bytes instead of the whole delivery: a lease of 256 events
//! measured about 2 ms and 130 KB of WAL this way, against 4 to 13 ms and 1.5 MB with the
//! state beside the body. Enqueue and ack write both tables in one statement.
//!
//! Times are `BIGINT` Unix milliseconds (`received_at_ns`: nanoseconds) taken from the
//! [`Clock`] given to the backend, never the server's `now()`: every process agrees with the
//! clock it was handed, and tests move time by hand. For a human:
//! `SELECT e.id, e.source, e.event_id, q.state, q.attempts, to_timestamp(q.available_at /
//! 1000.0) FROM hookdock_events e JOIN hookdock_queue q USING (id)`.
//!
//! # How it works
//!
//! - **Enqueue** is batched: concurrent calls are collected by a background task and stored
//!   with one multi-row `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT (source, event_id) DO
//!   NOTHING RETURNING`: one round trip and one commit for all of them, which also sends one
//!   `NOTIFY`. Each caller's future resolves when that commit is done
//!   ([`Durability::ServerCommit`](crate::queue::Durability::ServerCommit)). Duplicates get the
//!   existing message's id. With a depth limit, batches take a transaction-scoped advisory
//!   lock and count the waiting messages first, so the limit is exact across processes.
//! - **Lease** takes a batch with `SELECT ... ORDER BY available_at, id LIMIT n FOR UPDATE
//!   SKIP LOCKED` and updates it in the same statement: concurrent workers in any number of
//!   processes never wait for each other and never get the same message. Each lease bumps the
//!   row's `lease_token`, the fencing token every settling statement checks. A lease that
//!   expired on the last allowed attempt is moved to the dead letters by the next lease (and
//!   before listing or replaying dead letters).
//! - **Ack** is batched like enqueue (one `DELETE ... USING UNNEST(...)` for all concurrent
//!   acks); so are idempotency **claims** and **completions**.
//! - **Wake-ups**: enqueue, replay and a retry due now `NOTIFY` the channel
//!   `hookdock_<schema>` (in the same commit); [`PgQueue::wake_signal`] returns a
//!   [`PgWakeup`] that a worker awaits when the queue is empty, instead of polling fast, and
//!   [`PgQueue::wake_notify`] the same as a `tokio::sync::Notify` for
//!   [`WorkerBuilder::wake_on`](crate::worker::WorkerBuilder::wake_on). The listener holds
//!   one pooled connection for `LISTEN`.
//! - **Claims** are one `INSERT ... ON CONFLICT (source, event_id) DO UPDATE ... WHERE
//!   <expired> RETURNING` statement; see [`PgIdempotencyStore`].
//!   [`PgIdempotencyStore::complete_in`] completes a claim inside the application's own
//!   transaction, so a handler whose effect is in the same database applies it exactly
//!   once even if its process dies at any point.
//!
//! # Keeping a busy queue table healthy
//!
//! A queue table churns: every event is inserted, updated by each lease and retry, and
//! deleted by its ack. Dead row versions pile up in the table and in the index the lease
//! query walks, and a lease that has to step over many of them gets slower. The migration
//! sets per-table storage parameters for this; adjust them with `ALTER TABLE ... SET (...)`:
//!
//! - `fillfactor = 70` on `hookdock_queue` (80 on `hookdock_idempotency`) leaves room on each
//!   page so updated versions stay on the same page.
//! - `autovacuum_vacuum_scale_factor = 0` with `autovacuum_vacuum_threshold = 10000`:
//!   vacuum after a fixed number of dead rows instead of the default 20% of the table, which
//!   on a queue that drains to near-empty means "rarely", and on a large backlog means
//!   millions of dead rows. `autovacuum_vacuum_insert_*` likewise for insert-only bursts.
//! - `autovacuum_vacuum_cost_delay = 0`: vacuum of these hot tables is not throttled.
//! - Partial indexes: `hookdock_queue_due (available_at, id) WHERE state < 2` holds only
//!   messages that can be leased, so dead letters never slow the lease query, and
//!   `hookdock_queue_dead (id) WHERE state = 2` serves listing and replay.
//! - The state is split from the body (above), so the rows that churn are small: more of
//!   them per page, less WAL, and quicker vacuums.
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
mod idempotency;
mod queue;
mod wake;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor, Row};

use crate::clock::SharedClock;
use crate::error::{ConfigError, StoreError};
use crate::Clock;

pub use idempotency::PgIdempotencyStore;
pub use queue::PgQueue;
/// A `sqlx` PostgreSQL connection (for [`PgIdempotencyStore::complete_in`]).
pub use sqlx::postgres::PgConnection as Connection;
/// The `sqlx` connection pool type this backend runs on.
pub use sqlx::postgres::PgPool as Pool;
pub use wake::PgWakeup;

/// One embedded migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// Version number, applied in increasing order.
    pub version: i32,
    /// File name under `migrations/postgres/` in the crate.
    pub name: &'static str,
    /// The SQL, with unqualified names (run with `search_path` set to the schema).
    pub sql: &'static str,
}

/// The embedded migrations, in the order [`PgBackend::migrate`] applies them.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "0001_hookdock_init.sql",
    sql: include_str!("../../migrations/postgres/0001_hookdock_init.sql"),
}];

/// Most events (or acks, claims, completions) written by one batch statement, by default.
pub const DEFAULT_BATCH_SIZE: usize = 512;

/// The longest schema name accepted: the notification channel `hookdock_<schema>` must fit
/// PostgreSQL's 63-byte identifier limit.
pub const MAX_SCHEMA_LEN: usize = 54;

/// A connection to the database hookdock uses, with the schema and clock its queue and
/// idempotency store work in.
///
/// Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct PgBackend {
    pool: PgPool,
    schema: Arc<Schema>,
    clock: SharedClock,
    batch_size: usize,
}

/// A validated schema name and the names derived from it.
#[derive(Debug)]
pub(crate) struct Schema {
    name: String,
    /// `"name"`: safe to put into SQL (the name is checked to be `[a-z_][a-z0-9_]*`).
    quoted: String,
    /// The NOTIFY channel.
    channel: String,
}

impl Schema {
    fn new(name: &str) -> Result<Self, ConfigError> {
        validate_schema(name)?;
        Ok(Self {
            name: name.to_owned(),
            quoted: format!("\"{name}\""),
            channel: format!("hookdock_{name}"),
        })
    }

    /// Replaces `{schema}` in a SQL template with the quoted schema name.
    pub(crate) fn sql(&self, template: &'static str) -> Sql {
        Sql(Arc::from(template.replace("{schema}", &self.quoted)))
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }
}

/// A SQL statement for one schema, cheap to clone into a query.
#[derive(Debug, Clone)]
pub(crate) struct Sql(Arc<str>);

impl Sql {
    pub(crate) fn q(&self) -> AssertSqlSafe<Arc<str>> {
        // Safe: built from a constant template and a validated identifier.
        AssertSqlSafe(self.0.clone())
    }
}

fn validate_schema(name: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::InvalidValue {
        what: "PostgreSQL schema",
        reason,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("must not be empty")),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return Err(invalid("must start with a lowercase ASCII letter or '_'"))
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(invalid(
            "may contain only lowercase ASCII letters, digits and '_'",
        ));
    }
    if name.len() > MAX_SCHEMA_LEN {
        return Err(invalid("is longer than 54 bytes"));
    }
    if name.starts_with("pg_") {
        return Err(invalid(
            "names starting with 'pg_' are reserved by PostgreSQL",
        ));
    }
    Ok(())
}

impl PgBackend {
    /// Uses a pool the application already has, with schema `public` and the system clock.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            schema: Arc::new(Schema {
                name: "public".to_owned(),
                quoted: "\"public\"".to_owned(),
                channel: "hookdock_public".to_owned(),
            }),
            clock: SharedClock::default(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Connects a new pool (10 connections) to `url`, such as
    /// `postgres://user:password@host:5432/database`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await
            .map_err(store_error)?;
        Ok(Self::from_pool(pool))
    }

    /// Works in schema `name` instead of `public` (builder style). The name must be a plain
    /// lowercase identifier (`[a-z_][a-z0-9_]*`, at most [`MAX_SCHEMA_LEN`] bytes, not
    /// starting with `pg_`); [`migrate`](Self::migrate) creates the schema if needed.
    pub fn with_schema(mut self, name: &str) -> Result<Self, ConfigError> {
        self.schema = Arc::new(Schema::new(name)?);
        Ok(self)
    }

    /// Reads time from `clock` instead of the system clock (builder style).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Writes at most `n` events, acks, claims or completions per batch statement (builder
    /// style; default [`DEFAULT_BATCH_SIZE`], at least 1).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The connection pool, to share with the application (for example to write a handler's
    /// effect in the same transaction as [`PgIdempotencyStore::complete_in`]).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema.name
    }

    /// Applies the embedded [`MIGRATIONS`] not yet applied in this schema, creating the
    /// schema if needed. Safe to run concurrently from many processes (they serialize on an
    /// advisory lock); fails if an applied migration's SQL differs from the embedded one.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_inner().await.map_err(|e| match e {
            MigrateError::Sql(e) => store_error(e),
            MigrateError::Changed(version) => StoreError::Corrupt(format!(
                "migration {version} in schema {} was applied with different SQL",
                self.schema.name
            )),
        })
    }

    async fn migrate_inner(&self) -> Result<(), MigrateError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("hookdock migrate {}", self.schema.name))
            .execute(&mut *tx)
            .await?;
        let exists = sqlx::query("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1")
            .bind(&self.schema.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            tx.execute(AssertSqlSafe(format!(
                "CREATE SCHEMA {}",
                self.schema.quoted
            )))
            .await?;
        }
        tx.execute(AssertSqlSafe(format!(
            "SET LOCAL search_path TO {}",
            self.schema.quoted
        )))
        .await?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS hookdock_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                checksum   TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
        let applied = sqlx::query("SELECT version, checksum FROM hookdock_migrations")
            .fetch_all(&mut *tx)
            .await?;
        for m in MIGRATIONS {
            let checksum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(m.sql));
            let stored = applied
                .iter()
                .find(|r| r.try_get::<i32, _>(0).ok() == Some(m.version));
            if let Some(row) = stored {
                if row.try_get::<String, _>(1)? != checksum {
                    return Err(MigrateError::Changed(m.version));
                }
                continue;
            }
            tx.execute(m.sql).await?;
            sqlx::query(
                "INSERT INTO hookdock_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(checksum)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A queue in this schema with these options. Its background tasks (batching, wake-ups)
    /// start on first use, on the Tokio runtime of the caller.
    pub fn queue(&self, options: crate::queue::QueueOptions) -> PgQueue {
        PgQueue::new(self.clone(), options)
    }

    /// An idempotency store in this schema, with the default retention
    /// ([`DEFAULT_RETENTION`](crate::idempotency::DEFAULT_RETENTION)).
    pub fn idempotency_store(&self) -> PgIdempotencyStore {
        PgIdempotencyStore::new(self.clone())
    }
}

enum MigrateError {
    Sql(sqlx::Error),
    Changed(i32),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

/// Maps a database error to the store error, keeping it as the source.
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolClosed => StoreError::Closed,
        e => StoreError::storage(e),
    }
}

/// PostgreSQL `text` cannot hold a NUL character. Checked per call, before a value joins a
/// batch, so one such value fails its own call rather than every call batched with it.
pub(crate) fn check_text(what: &str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::storage(format!(
            "{what} contains a NUL character, which PostgreSQL text cannot store"
        )));
    }
    Ok(())
}

/// Milliseconds in a duration, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Nanoseconds since the Unix epoch, saturating (times before the epoch map to 0).
pub(crate) fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ns` nanoseconds after the Unix epoch; negative values map to the epoch.
pub(crate) fn from_unix_nanos(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        for ok in [
            "public",
            "hookdock",
            "_x",
            "a1_b2",
            &"s".repeat(MAX_SCHEMA_LEN),
        ] {
            assert!(validate_schema(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            "Public",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "a;drop table x",
            "pg_temp",
            "é",
            &"s".repeat(MAX_SCHEMA_LEN + 1),
        ] {
            assert!(
                matches!(validate_schema(bad), Err(ConfigError::InvalidValue { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn sql_templates_get_the_quoted_schema() {
        let s = Schema::new("tenant_7").unwrap();
        assert_eq!(
            s.sql("SELECT 1 FROM {schema}.hookdock_events").0.as_ref(),
            "SELECT 1 FROM \"tenant_7\".hookdock_events"
        );
        assert_eq!(s.channel(), "hookdock_tenant_7");
    }

    #[tokio::test]
    async fn the_default_schema_is_what_validation_would_build() {
        let default = PgBackend::from_pool(
            PgPoolOptions::new()
                .connect_lazy("postgres://x@localhost/x")
                .unwrap(),
        );
        let built = Schema::new("public").unwrap();
        assert_eq!(default.schema.name, built.name);
        assert_eq!(default.schema.quoted, built.quoted);
        assert_eq!(default.schema.channel, built.channel);
    }

    #[test]
    fn nul_characters_are_refused_before_batching() {
        assert!(check_text("event id", "evt_1").is_ok());
        let err = check_text("event id", "evt\u{0}1").unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn nanos_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(from_unix_nanos(unix_nanos(t)), t);
        assert_eq!(unix_nanos(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn migrations_are_ordered_and_qualified_nowhere() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        for m in MIGRATIONS {
            // Names are unqualified so the file runs in any schema.
            assert!(!m.sql.contains("public."), "{} qualifies a name", m.name);
            assert!(m.sql.contains("CREATE TABLE hookdock_"));
        }
    }
}
