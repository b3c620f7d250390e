//! Connections, pragmas and the schema (see the module docs for its description).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{sql_error, SqliteOptions};
use crate::error::StoreError;

/// The schema version this code reads and writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE hookdock_events (
    id           INTEGER PRIMARY KEY,
    source       TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    state        INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    token        INTEGER,
    last_error   TEXT,
    dead_reason  TEXT,
    dead_at      INTEGER,
    received_at  INTEGER NOT NULL,
    enqueued_at  INTEGER NOT NULL,
    UNIQUE (source, event_id)
);
CREATE INDEX hookdock_events_available ON hookdock_events (available_at, id) WHERE state < 2;
CREATE INDEX hookdock_events_leased ON hookdock_events (available_at) WHERE state = 1;
CREATE INDEX hookdock_events_dead ON hookdock_events (id) WHERE state = 2;
CREATE INDEX hookdock_events_done ON hookdock_events (id) WHERE state = 3;

CREATE TABLE hookdock_event_bodies (
    id      INTEGER PRIMARY KEY,
    headers BLOB NOT NULL,
    body    BLOB NOT NULL
);

CREATE TABLE hookdock_idempotency (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    token       INTEGER NOT NULL,
    state       INTEGER NOT NULL,
    until       INTEGER NOT NULL,
    result      BLOB,
    UNIQUE (source, event_id)
);
CREATE INDEX hookdock_idempotency_until ON hookdock_idempotency (until);

CREATE TABLE hookdock_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_id    INTEGER NOT NULL,
    next_token INTEGER NOT NULL,
    live       INTEGER NOT NULL
);
INSERT INTO hookdock_state (id, next_id, next_token, live) VALUES (1, 1, 1, 0);
";

/// Opens a plain connection (used as is by the checkpoint thread).
pub(crate) fn open(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_error)?;
    conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    // Every connection that may write or checkpoint syncs fully; on macOS that takes
    // F_FULLFSYNC (a plain fsync there does not flush the drive's cache). No effect elsewhere.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA fullfsync = ON; PRAGMA checkpoint_fullfsync = ON",
    )
    .map_err(sql_error)?;
    Ok(conn)
}

/// Opens the writing connection: WAL, `synchronous=FULL` (set by [`open`]), no automatic
/// checkpoints, and the schema brought up to date.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = open(path, options)?;
    // Only takes effect on a database that has no page yet; must come before WAL mode,
    // which writes the first page.
    conn.execute_batch(&format!("PRAGMA page_size = {}", options.page_size))
        .map_err(sql_error)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::storage(format!(
            "SQLite database {} cannot use WAL mode (journal mode is {mode:?}); \
             hookdock needs a file on a local disk",
            path.display()
        )));
    }
    let pragmas = [
        ("wal_autocheckpoint", "0".to_owned()),
        ("journal_size_limit", options.journal_size_limit.to_string()),
        ("cache_size", format!("-{}", options.cache_size_kib)),
        ("temp_store", "MEMORY".to_owned()),
    ];
    for (name, value) in pragmas {
        conn.execute_batch(&format!("PRAGMA {name} = {value}"))
            .map_err(sql_error)?;
    }
    if let Some(bytes) = options.max_size {
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sql_error)?;
        let pages = (bytes / u64::try_from(page_size.max(512)).unwrap_or(4096)).max(1);
        conn.execute_batch(&format!("PRAGMA max_page_count = {pages}"))
            .map_err(sql_error)?;
    }
    migrate(&conn, path)?;
    Ok(conn)
}

/// Opens a connection for reading or checkpointing.
pub(crate) fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = open(path, options)?;
    conn.execute_batch("PRAGMA query_only = 1; PRAGMA temp_store = MEMORY")
        .map_err(sql_error)?;
    Ok(conn)
}

/// Creates the schema in an empty database, checks the version of an existing one, and
/// re-derives the counters kept in `hookdock_state` from the rows.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
    let result = migrate_in_transaction(conn, path);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(sql_error);
    result.and(ended)
}

fn migrate_in_transaction(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_error)?;
    match version {
        0 => {
            let existing: Option<String> = conn
                .query_row(
                    "SELECT name FROM sqlite_schema WHERE name = 'hookdock_events'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            if existing.is_some() {
                return Err(StoreError::storage(format!(
                    "{} has hookdock tables but no schema version; refusing to touch it",
                    path.display()
                )));
            }
            conn.execute_batch(SCHEMA_V1).map_err(sql_error)?;
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(sql_error)?;
        }
        SCHEMA_VERSION => {}
        newer => {
            return Err(StoreError::storage(format!(
                "{} has hookdock schema version {newer}, newer than the {SCHEMA_VERSION} \
                 this version of hookdock knows",
                path.display()
            )));
        }
    }
    // The counters are derived data: recompute them so that a file edited by hand (an
    // operator deleting rows in the sqlite3 shell) cannot make ids or tokens repeat or the
    // depth limit drift.
    conn.execute(
        "UPDATE hookdock_state SET
             next_id = max(next_id, coalesce((SELECT max(id) FROM hookdock_events), 0) + 1),
             next_token = max(next_token,
                 coalesce((SELECT max(token) FROM hookdock_events), 0) + 1,
                 coalesce((SELECT max(token) FROM hookdock_idempotency), 0) + 1),
             live = (SELECT count(*) FROM hookdock_events WHERE state < 2)
         WHERE id = 1",
        [],
    )
    .map_err(sql_error)?;
    Ok(())
}
