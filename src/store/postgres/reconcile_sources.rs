//! Reconciliation's place in `hookdock_reconcile_sources` (migration 6), and the leadership
//! of each source: the [`CheckpointStore`] of a [`PgQueue`].
//!
//! One row per source name holds its checkpoint and its last [`PassReport`] (as JSON text),
//! each with the time it was written. A save is one upsert in a transaction of its own on a
//! pooled connection, resolved once the server committed it
//! ([`Durability::ServerCommit`](crate::store::Durability::ServerCommit)). The checkpoint is
//! kept as `BYTEA`, the string's UTF-8 bytes, so an opaque string comes back exactly, NUL
//! included (PostgreSQL's `TEXT` refuses NUL).
//!
//! # Leadership
//!
//! Many processes share one database, so leading a source takes a lock on the server: a
//! session-level advisory lock, `pg_try_advisory_lock(hashtextextended('hookdock.reconcile:'
//! || schema || ':' || name, 0))`. The key's namespace keeps it apart from the locks of the
//! application and of hookdock's other uses; the schema keeps the stores of two schemas on
//! one server apart.
//!
//! A session-level lock belongs to a connection, not a transaction, so the leadership takes
//! a **dedicated connection** out of the pool ([`PoolConnection::detach`]): the pool never
//! lends it to anyone else, and the lock lives exactly as long as the connection.
//! [`try_lead`](CheckpointStore::try_lead) asks on a pooled connection; if the lock is taken
//! by another session, the connection goes back to the pool holding nothing, else it is
//! detached and kept by the returned [`Leadership`].
//! [`holds`](Leadership::holds) runs `SELECT 1` on that connection (a session never loses a
//! session lock it did not release, so a live session is a held lock), answering `false` if
//! it fails or takes longer than [`HOLDS_TIMEOUT`]; a connection that failed once is closed,
//! so the lock is surely released. Dropping the leadership releases the lock and closes its
//! connection: on a task that runs `pg_advisory_unlock` and then closes the connection
//! (without a runtime, the connection is simply dropped, which ends the session and its
//! lock). Until that task is done, a `try_lead` of the same name in this process waits for it
//! (at most [`HOLDS_TIMEOUT`]), so the next try after a drop takes the source. A process that
//! dies (even by `SIGKILL`) loses its connection, the server ends its session and the lock,
//! and the next `try_lead` of another process takes the source over.
//!
//! [`PoolConnection::detach`]: sqlx::pool::PoolConnection::detach

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::Row;

use super::schema::{Schema, Sql};
use super::PgQueue;
use crate::reconcile::PassReport;
use crate::store::{key, CheckpointStore, Leadership, StoreError};

/// The longest [`Leadership::holds`] waits for the server before it answers `false`.
pub(super) const HOLDS_TIMEOUT: Duration = Duration::from_secs(5);

/// $1 name, $2 checkpoint bytes, $3 now.
const SAVE_CHECKPOINT: &str = "INSERT INTO {schema}.hookdock_reconcile_sources
        (name, checkpoint, checkpoint_at) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET
        checkpoint = excluded.checkpoint, checkpoint_at = excluded.checkpoint_at";

/// $1 name, $2 the report as JSON, $3 now.
const SAVE_REPORT: &str = "INSERT INTO {schema}.hookdock_reconcile_sources
        (name, report, report_at) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET report = excluded.report, report_at = excluded.report_at";

/// $1 name.
const CHECKPOINT: &str =
    "SELECT checkpoint FROM {schema}.hookdock_reconcile_sources WHERE name = $1";

/// Every last report, ordered by the bytes of the name (as Rust orders strings), whatever
/// the database's collation.
const REPORTS: &str = "SELECT name, report FROM {schema}.hookdock_reconcile_sources
    WHERE report IS NOT NULL ORDER BY name COLLATE \"C\"";

/// $1 the lock's name: whether this session took it.
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))";

/// $1 the lock's name.
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended($1, 0))";

/// The releases under way in this process, by lock name: each resolves (its sender is
/// dropped) once the lock is released.
#[derive(Debug, Default, Clone)]
pub(super) struct Releases(Arc<Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>>);

impl Releases {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::sync::watch::Receiver<()>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (at most [`HOLDS_TIMEOUT`]) for a release of `lock` under way.
    async fn wait(&self, lock: &str) {
        let pending = self.map().get(lock).cloned();
        if let Some(mut rx) = pending {
            let _ = tokio::time::timeout(HOLDS_TIMEOUT, rx.changed()).await;
        }
    }
}

/// The statements of reconciliation for one schema.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    save_checkpoint: Sql,
    save_report: Sql,
    checkpoint: Sql,
    reports: Sql,
    /// The advisory lock names' prefix, `hookdock.reconcile:<schema>:`.
    lock_prefix: String,
}

impl Statements {
    pub(super) fn new(s: &Schema) -> Self {
        Self {
            save_checkpoint: s.sql(SAVE_CHECKPOINT),
            save_report: s.sql(SAVE_REPORT),
            checkpoint: s.sql(CHECKPOINT),
            reports: s.sql(REPORTS),
            lock_prefix: format!("hookdock.reconcile:{}:", s.name),
        }
    }
}

fn sql(queue: &PgQueue) -> &Statements {
    &queue.store().inner.shared.sql.reconcile
}

/// A held leadership: the dedicated connection whose session holds the advisory lock.
#[derive(Debug)]
struct Held {
    name: String,
    /// The advisory lock's name.
    lock: String,
    /// `None` once a check failed and the connection was closed.
    conn: tokio::sync::Mutex<Option<PgConnection>>,
    releases: Releases,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.get_mut().take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Dropping the connection ends the session, and the lock with it.
            return;
        };
        let (done, pending) = tokio::sync::watch::channel(());
        self.releases
            .map()
            .insert(self.lock.clone(), pending.clone());
        let (lock, releases) = (self.lock.clone(), self.releases.clone());
        runtime.spawn(async move {
            let unlock = sqlx::query(UNLOCK).bind(&lock).execute(&mut conn);
            if tokio::time::timeout(HOLDS_TIMEOUT, unlock)
                .await
                .is_ok_and(|r| r.is_ok())
            {
                let _ = tokio::time::timeout(HOLDS_TIMEOUT, sqlx::Connection::close(conn)).await;
            }
            let mut map = releases.map();
            if map.get(&lock).is_some_and(|rx| rx.same_channel(&pending)) {
                map.remove(&lock);
            }
            drop(done);
        });
    }
}

#[async_trait]
impl Leadership for Held {
    async fn holds(&self) -> bool {
        let mut conn = self.conn.lock().await;
        let Some(c) = conn.as_mut() else {
            return false;
        };
        let alive = tokio::time::timeout(HOLDS_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *c))
            .await
            .is_ok_and(|r| r.is_ok());
        if !alive {
            tracing::warn!(source = %self.name, "reconciliation lock session gone");
            // Closing it makes sure the server ends the session and its lock.
            *conn = None;
        }
        alive
    }
}

#[async_trait]
impl CheckpointStore for PgQueue {
    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        key::validate_source(name)?;
        self.store().check_open()?;
        let row = sqlx::query(sql(self).checkpoint.q())
            .bind(name)
            .fetch_optional(self.store().pool())
            .await?;
        let Some(bytes) = row
            .map(|r| r.try_get::<Option<Vec<u8>>, _>(0))
            .transpose()?
        else {
            return Ok(None);
        };
        bytes
            .map(|b| {
                String::from_utf8(b).map_err(|e| {
                    StoreError::internal("postgres", format!("the checkpoint of {name:?}: {e}"))
                })
            })
            .transpose()
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: &str) -> Result<(), StoreError> {
        key::validate_source(name)?;
        self.store().check_open()?;
        sqlx::query(sql(self).save_checkpoint.q())
            .bind(name)
            .bind(checkpoint.as_bytes())
            .bind(self.store().now())
            .execute(self.store().pool())
            .await?;
        Ok(())
    }

    async fn save_report(&self, report: &PassReport) -> Result<(), StoreError> {
        key::validate_source(&report.source)?;
        self.store().check_open()?;
        let json = serde_json::to_string(report)
            .map_err(|e| StoreError::internal("postgres", format!("pass report: {e}")))?;
        sqlx::query(sql(self).save_report.q())
            .bind(&report.source)
            .bind(json)
            .bind(self.store().now())
            .execute(self.store().pool())
            .await?;
        Ok(())
    }

    async fn reports(&self) -> Result<Vec<PassReport>, StoreError> {
        self.store().check_open()?;
        let rows = sqlx::query(sql(self).reports.q())
            .fetch_all(self.store().pool())
            .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0)?;
                let json: String = row.try_get(1)?;
                serde_json::from_str(&json).map_err(|e| {
                    StoreError::internal("postgres", format!("the last report of {name:?}: {e}"))
                })
            })
            .collect()
    }

    async fn try_lead(&self, name: &str) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        key::validate_source(name)?;
        self.store().check_open()?;
        let lock = format!("{}{name}", sql(self).lock_prefix);
        let releases = &self.store().inner.releases;
        releases.wait(&lock).await;
        let mut conn = self.store().pool().acquire().await?;
        let taken = sqlx::query_scalar::<_, bool>(TRY_LOCK)
            .bind(&lock)
            .fetch_one(&mut *conn)
            .await;
        match taken {
            // Nothing held: the connection goes back to the pool.
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(Box::new(Held {
                name: name.to_owned(),
                lock,
                conn: tokio::sync::Mutex::new(Some(conn.detach())),
                releases: releases.clone(),
            }))),
            Err(e) => {
                // Whether the lock was taken is unknown: close the session, so it is not.
                drop(conn.detach());
                Err(e.into())
            }
        }
    }
}
