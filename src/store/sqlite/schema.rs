//! Connections, pragmas, the schema and its migrations (the module docs describe the schema).

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::error::SqliteError;
use super::SqliteOptions;
use crate::store::codec::duration_micros;

/// The schema version this code reads and writes (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 7;

/// `hookdock_events` under the name `{table}`: version 3 (version 2 without `keyed`, with
/// `UNIQUE (source, event_id)` on every record). Version 4 adds the event log's columns to it
/// ([`V3_TO_V4`]); a new database is made as version 3 and then goes through that step, so
/// there is one definition of every column.
const EVENTS: &str = "
CREATE TABLE {table} (
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
    claim_token  INTEGER,
    claim_done   INTEGER NOT NULL DEFAULT 0,
    claim_until  INTEGER,
    fingerprint  BLOB,
    result       BLOB,
    keyed        INTEGER NOT NULL DEFAULT 1
)";

/// The indexes of `hookdock_events`, version 3.
const EVENT_INDEXES: &str = "
CREATE UNIQUE INDEX hookdock_events_key ON hookdock_events (source, event_id) WHERE keyed = 1;
CREATE INDEX hookdock_events_available ON hookdock_events (available_at, id) WHERE state < 2;
CREATE INDEX hookdock_events_leased ON hookdock_events (available_at) WHERE state = 1;
CREATE INDEX hookdock_events_dead ON hookdock_events (id) WHERE state = 2;
CREATE INDEX hookdock_events_forget ON hookdock_events (available_at) WHERE state >= 3;
";

/// The other tables of a new database, version 3.
const OTHER_TABLES: &str = "
CREATE TABLE hookdock_event_bodies (
    id      INTEGER PRIMARY KEY,
    headers BLOB NOT NULL,
    body    BLOB NOT NULL
);

CREATE TABLE hookdock_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    next_id       INTEGER NOT NULL,
    next_token    INTEGER NOT NULL,
    live          INTEGER NOT NULL,
    keyed_through INTEGER NOT NULL DEFAULT 0
);
INSERT INTO hookdock_state (id, next_id, next_token, live) VALUES (1, 1, 1, 0);
";

/// From version 3 to version 4: the event log's columns and the replay jobs' table. Adding
/// columns with a constant default rewrites no row (SQLite reads the default for rows written
/// before), so this is cheap on any database. A dead letter's `done_at` is its `dead_at`; the
/// other times were not recorded before version 4 and stay `NULL`.
const V3_TO_V4: &str = "
ALTER TABLE hookdock_events ADD COLUMN event_type TEXT;
ALTER TABLE hookdock_events ADD COLUMN origin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hookdock_events ADD COLUMN first_attempt_at INTEGER;
ALTER TABLE hookdock_events ADD COLUMN last_attempt_at INTEGER;
ALTER TABLE hookdock_events ADD COLUMN done_at INTEGER;
ALTER TABLE hookdock_events ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hookdock_events ADD COLUMN forced_replays INTEGER NOT NULL DEFAULT 0;
UPDATE hookdock_events SET done_at = dead_at WHERE state = 2;
CREATE TABLE hookdock_replay_jobs (
    id         INTEGER PRIMARY KEY,
    filter     TEXT    NOT NULL,
    forced     INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    through_id INTEGER,
    after_id   INTEGER,
    total      INTEGER NOT NULL,
    replayed   INTEGER NOT NULL DEFAULT 0,
    skipped    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
";

/// From version 4 to version 5: ordering keys. An event's key and position (`NULL` for none;
/// version 4 records have neither), the index that finds a key's waiting events in order,
/// and one row per key holding its active record and watermark (copied onto the record that
/// becomes active, `order_mark`, so a lease reads it with the row). A waiting event held
/// behind its key's first one has `available_at` = [`PARKED`](super::order_keys::PARKED), so no other query changes:
/// it is never due and counts as scheduled.
const V4_TO_V5: &str = "
ALTER TABLE hookdock_events ADD COLUMN order_key TEXT;
ALTER TABLE hookdock_events ADD COLUMN order_pos INTEGER;
ALTER TABLE hookdock_events ADD COLUMN order_mark INTEGER;
CREATE INDEX hookdock_events_order
    ON hookdock_events (source, order_key, order_pos, id)
    WHERE order_key IS NOT NULL AND state < 2;
CREATE TABLE hookdock_order_keys (
    source    TEXT NOT NULL,
    order_key TEXT NOT NULL,
    active    INTEGER,
    watermark INTEGER,
    PRIMARY KEY (source, order_key)
) WITHOUT ROWID;
";

/// From version 5 to version 6: reconciliation's place, one row per source (see
/// [`reconcile_sources`](super::reconcile_sources)). A new table only: no row is rewritten.
const V5_TO_V6: &str = "
CREATE TABLE hookdock_reconcile_sources (
    name          TEXT PRIMARY KEY,
    checkpoint    TEXT,
    checkpoint_at INTEGER,
    report        TEXT,
    report_at     INTEGER
) WITHOUT ROWID;
";

/// From version 6 to version 7: the ordering index holds every keyed record, whatever its
/// state, so that leasing, settling and claiming a keyed record no longer rewrite an entry of
/// it (one page per key touched in each group commit); it changes only when a record is
/// stored or forgotten. A key's pending records are found by walking its entries from the
/// key's *floor* (`floor_pos`, `floor_id`: no pending record of the key sorts before it;
/// `floor_id` `NULL`: the key's first entry), so the walk steps over few settled records.
/// Rebuilding the index reads the table once; no row is rewritten.
const V6_TO_V7: &str = "
DROP INDEX hookdock_events_order;
CREATE INDEX hookdock_events_order
    ON hookdock_events (source, order_key, order_pos, id)
    WHERE order_key IS NOT NULL;
ALTER TABLE hookdock_order_keys ADD COLUMN floor_pos INTEGER;
ALTER TABLE hookdock_order_keys ADD COLUMN floor_id INTEGER;
";

/// The columns version 2 and version 3 of `hookdock_events` share.
const V2_COLUMNS: &str = "id, source, event_id, state, available_at, attempts, token,
    last_error, dead_reason, dead_at, received_at, enqueued_at, claim_token, claim_done,
    claim_until, fingerprint, result";

/// The schema of a new database.
fn create() -> String {
    format!(
        "{};{EVENT_INDEXES}{OTHER_TABLES}{V3_TO_V4}{V4_TO_V5}{V5_TO_V6}{V6_TO_V7}",
        EVENTS.replace("{table}", "hookdock_events")
    )
}

/// From version 2 to version 3: the table is rebuilt (SQLite cannot drop a `UNIQUE`
/// constraint), every record keyed.
fn v2_to_v3() -> String {
    format!(
        "{};
         INSERT INTO hookdock_events_v3 ({V2_COLUMNS}) SELECT {V2_COLUMNS} FROM hookdock_events;
         DROP TABLE hookdock_events;
         ALTER TABLE hookdock_events_v3 RENAME TO hookdock_events;
         {EVENT_INDEXES}
         ALTER TABLE hookdock_state ADD COLUMN keyed_through INTEGER NOT NULL DEFAULT 0;
         UPDATE hookdock_state SET keyed_through = next_id - 1;",
        EVENTS.replace("{table}", "hookdock_events_v3")
    )
}

/// From version 1 (hookdock 0.1: times in milliseconds, claims in a table of their own) to
/// version 2. `?1` is the store's retention in microseconds, `?2` now in microseconds.
const V1_TO_V2: [&str; 8] = [
    // Claims move onto the events' records.
    "ALTER TABLE hookdock_events ADD COLUMN claim_token INTEGER;
     ALTER TABLE hookdock_events ADD COLUMN claim_done INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE hookdock_events ADD COLUMN claim_until INTEGER;
     ALTER TABLE hookdock_events ADD COLUMN fingerprint BLOB;
     ALTER TABLE hookdock_events ADD COLUMN result BLOB;",
    // Milliseconds become microseconds.
    "UPDATE hookdock_events SET available_at = available_at * 1000,
         received_at = received_at * 1000, enqueued_at = enqueued_at * 1000,
         dead_at = dead_at * 1000",
    "UPDATE hookdock_events SET
         claim_token = i.token, claim_done = i.state, claim_until = i.until * 1000,
         fingerprint = i.fingerprint, result = i.result
     FROM hookdock_idempotency AS i
     WHERE i.source = hookdock_events.source AND i.event_id = hookdock_events.event_id",
    // Claims of keys no event is stored under become records holding only the claim.
    "INSERT INTO hookdock_events (id, source, event_id, state, available_at, received_at,
         enqueued_at, claim_token, claim_done, claim_until, fingerprint, result)
     SELECT (SELECT next_id FROM hookdock_state) + row_number() OVER (ORDER BY i.id) - 1,
            i.source, i.event_id, 4,
            i.until * 1000 + CASE WHEN i.state = 1 THEN 0 ELSE ?1 END,
            0, ?2, i.token, i.state, i.until * 1000, i.fingerprint, i.result
     FROM hookdock_idempotency AS i
     WHERE NOT EXISTS (SELECT 1 FROM hookdock_events AS e
                       WHERE e.source = i.source AND e.event_id = i.event_id)",
    // Acked rows (version 1 deleted them soon after) are handled events, remembered for as
    // long as their completed claim is, else forgotten at once.
    "UPDATE hookdock_events SET available_at = CASE WHEN claim_done = 1 THEN claim_until
         ELSE ?2 END WHERE state = 3",
    "DROP TABLE hookdock_idempotency",
    "DROP INDEX hookdock_events_done",
    "CREATE INDEX hookdock_events_forget ON hookdock_events (available_at) WHERE state >= 3",
];

/// Opens a plain connection (used as is by the checkpoint thread).
pub(super) fn open(path: &Path, options: &SqliteOptions) -> Result<Connection, SqliteError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(64);
    // Every connection that may write or checkpoint syncs fully; on macOS that takes
    // F_FULLFSYNC (a plain fsync there does not flush the drive's cache). No effect elsewhere.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA fullfsync = ON; PRAGMA checkpoint_fullfsync = ON",
    )?;
    Ok(conn)
}

/// Opens the writing connection: WAL, `synchronous=FULL` (set by [`open`]), no automatic
/// checkpoints, and the schema brought up to date.
pub(super) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, SqliteError> {
    let conn = open(path, options)?;
    // Only takes effect on a database that has no page yet; must come before WAL mode,
    // which writes the first page.
    conn.execute_batch(&format!("PRAGMA page_size = {}", options.page_size))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    let pragmas = [
        ("wal_autocheckpoint", "0".to_owned()),
        ("journal_size_limit", options.journal_size_limit.to_string()),
        ("cache_size", format!("-{}", options.cache_size_kib)),
        ("temp_store", "MEMORY".to_owned()),
    ];
    for (name, value) in pragmas {
        conn.execute_batch(&format!("PRAGMA {name} = {value}"))?;
    }
    if let Some(bytes) = options.max_size {
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (bytes / u64::try_from(page_size.max(512)).unwrap_or(4096)).max(1);
        conn.execute_batch(&format!("PRAGMA max_page_count = {pages}"))?;
    }
    migrate(&conn, path, options)?;
    Ok(conn)
}

/// Opens a connection for reading.
pub(super) fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection, SqliteError> {
    let conn = open(path, options)?;
    conn.execute_batch("PRAGMA query_only = 1; PRAGMA temp_store = MEMORY")?;
    Ok(conn)
}

/// Creates the schema in an empty database, migrates an older one, refuses a newer one,
/// and re-derives the counters kept in `hookdock_state` from the rows; in one transaction.
fn migrate(conn: &Connection, path: &Path, options: &SqliteOptions) -> Result<(), SqliteError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = migrate_in_transaction(conn, path, options);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(SqliteError::from);
    result.and(ended)
}

fn migrate_in_transaction(
    conn: &Connection,
    path: &Path,
    options: &SqliteOptions,
) -> Result<(), SqliteError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => {
            let existing: Option<String> = conn
                .query_row(
                    "SELECT name FROM sqlite_schema WHERE name = 'hookdock_events'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if existing.is_some() {
                return Err(SqliteError::Unversioned {
                    path: path.to_owned(),
                });
            }
            conn.execute_batch(&create())?;
        }
        1..=3 => {
            if version == 1 {
                v1_to_v2(conn, options)?;
            }
            if version <= 2 {
                conn.execute_batch(&v2_to_v3())?;
            }
            conn.execute_batch(V3_TO_V4)?;
            conn.execute_batch(V4_TO_V5)?;
            conn.execute_batch(V5_TO_V6)?;
            conn.execute_batch(V6_TO_V7)?;
        }
        4 => {
            conn.execute_batch(V4_TO_V5)?;
            conn.execute_batch(V5_TO_V6)?;
            conn.execute_batch(V6_TO_V7)?;
        }
        5 => {
            conn.execute_batch(V5_TO_V6)?;
            conn.execute_batch(V6_TO_V7)?;
        }
        6 => conn.execute_batch(V6_TO_V7)?,
        SCHEMA_VERSION => {}
        found => {
            return Err(SqliteError::SchemaTooNew {
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
    }
    if version != SCHEMA_VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    // The counters are derived data: recompute them so that a file edited by hand (an
    // operator deleting rows in the sqlite3 shell) cannot make ids or tokens repeat or the
    // depth limit drift.
    conn.execute(
        "UPDATE hookdock_state SET
             next_id = max(next_id, coalesce((SELECT max(id) FROM hookdock_events), 0) + 1),
             next_token = max(next_token,
                 coalesce((SELECT max(token) FROM hookdock_events), 0) + 1,
                 coalesce((SELECT max(claim_token) FROM hookdock_events), 0) + 1),
             live = (SELECT count(*) FROM hookdock_events WHERE state < 2)
         WHERE id = ?1",
        params![1],
    )?;
    // What a crash left outside the key index goes in before anything is looked up.
    super::tail::merge(conn, &[])?;
    Ok(())
}

fn v1_to_v2(conn: &Connection, options: &SqliteOptions) -> Result<(), SqliteError> {
    let retention = duration_micros(options.retention);
    let now = crate::store::codec::to_micros(options.clock.now());
    for step in V1_TO_V2 {
        if step.contains("?1") || step.contains("?2") {
            let mut stmt = conn.prepare(step)?;
            let n = stmt.parameter_count();
            let values = [retention, now];
            stmt.execute(rusqlite::params_from_iter(&values[..n]))?;
        } else {
            conn.execute_batch(step)?;
        }
    }
    Ok(())
}
