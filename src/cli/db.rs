//! Finding and opening the database: the checks that keep the tool from creating or
//! touching something that is not hookdock's, and the messages when it cannot open.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::store::postgres::{PgOptions, PgStore};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{EventLog, QueueOptions, StoreError};

use super::args::DbArgs;
use super::error::{CliError, CliResult};

/// The database the command line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (secret: print [`redact`] of it).
    Postgres(String),
}

const NO_DATABASE: &str = "no database given: pass --sqlite PATH or --postgres URL, or set \
     HOOKDOCK_DATABASE_URL (sqlite:PATH, a path, or postgres://user@host/database)";

impl Target {
    /// The target of `--sqlite`, `--postgres` or `HOOKDOCK_DATABASE_URL`, in that order.
    pub(crate) fn of(args: &DbArgs) -> CliResult<Target> {
        if let Some(path) = &args.sqlite {
            return Ok(Target::Sqlite(path.clone()));
        }
        if let Some(url) = &args.postgres {
            if !is_postgres_url(url) {
                return Err(CliError::usage(format!(
                    "--postgres wants a URL starting with postgres:// or postgresql://, got {}",
                    redact(url)
                )));
            }
            return Ok(Target::Postgres(url.clone()));
        }
        match args.database_url.as_deref().map(str::trim) {
            None | Some("") => Err(CliError::usage(NO_DATABASE)),
            Some(url) if is_postgres_url(url) => Ok(Target::Postgres(url.to_owned())),
            Some(url) => {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or(url);
                if path.is_empty() {
                    return Err(CliError::usage(format!(
                        "HOOKDOCK_DATABASE_URL {url:?} names no file"
                    )));
                }
                if path.contains("://") {
                    return Err(CliError::usage(format!(
                        "HOOKDOCK_DATABASE_URL {} is neither sqlite:PATH nor postgres://...",
                        redact(url)
                    )));
                }
                Ok(Target::Sqlite(PathBuf::from(path)))
            }
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with the password of its user info, and any `password=` parameter, replaced by
/// `***`.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                let start = scheme_end + 3 + colon + 1;
                let end = scheme_end + 3 + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    // Query parameters: `password=...` up to the next `&` or `#`.
    let mut redacted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let value_start = i + "password=".len();
        // Only a parameter name: preceded by `?`, `&` or nothing.
        let is_param = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&');
        redacted.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if is_param {
            let end = rest.find(['&', '#']).unwrap_or(rest.len());
            redacted.push_str("***");
            rest = &rest[end..];
        }
    }
    redacted.push_str(rest);
    redacted
}

/// The password in `url`, if any (to scrub from error messages).
fn password_of(url: &str) -> Option<String> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `message` with `url`'s password (raw or as written in the URL) replaced by `***`.
fn scrub(message: &str, url: &str) -> String {
    match password_of(url) {
        Some(pw) if pw.len() >= 3 => message.replace(&pw, "***"),
        _ => message.to_owned(),
    }
}

/// An open database: its queue, which is also its event log.
pub(crate) struct Db {
    pub(crate) log: Arc<dyn EventLog>,
    store: Store,
    label: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    /// Opens `target` as `args` says, refusing anything that is not an existing hookdock
    /// database.
    pub(crate) async fn open(target: &Target, args: &DbArgs) -> CliResult<Db> {
        match target {
            Target::Sqlite(path) => Self::open_sqlite(path, args.busy_timeout),
            Target::Postgres(url) => {
                Self::open_postgres(url, &args.schema, args.connect_timeout).await
            }
        }
    }

    fn open_sqlite(path: &Path, busy_timeout: Duration) -> CliResult<Db> {
        check_sqlite_file(path)?;
        let options = SqliteOptions::default().busy_timeout(busy_timeout);
        let store = SqliteStore::open(path, options)
            .map_err(|e| sqlite_open_error(path, &e, busy_timeout))?;
        Ok(Db {
            log: Arc::new(store.queue(QueueOptions::default())),
            store: Store::Sqlite(store),
            label: path.display().to_string(),
        })
    }

    async fn open_postgres(url: &str, schema: &str, timeout: Duration) -> CliResult<Db> {
        let label = redact(url);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(timeout)
            .connect(url)
            .await
            .map_err(|e| {
                let why = match &e {
                    sqlx::Error::PoolTimedOut => {
                        format!("no answer within {}", humantime::format_duration(timeout))
                    }
                    e => scrub(&e.to_string(), url),
                };
                CliError::failed(format!(
                    "cannot connect to PostgreSQL at {label}: {why} (is the server running and \
                     the URL right? --connect-timeout waits longer)"
                ))
            })?;
        // Never migrates: a schema without hookdock's tables is refused, not created.
        let options = PgOptions::new().schema(schema).migrate(false);
        let store = PgStore::from_pool(pool, options).await.map_err(|e| {
            let mut message = scrub(&source_text(&e), url);
            if message.contains("has no hookdock tables") {
                message = format!(
                    "schema {schema:?} at {label} has no hookdock tables, or lacks migrations \
                     of this hookdock version: check --schema, or start a receiver of this \
                     version on it once (it migrates)"
                );
            }
            CliError::failed(format!("cannot open PostgreSQL at {label}: {message}"))
        })?;
        Ok(Db {
            log: Arc::new(store.queue(QueueOptions::default())),
            store: Store::Postgres(store),
            label,
        })
    }

    /// Records this process's SQLite writer forgot by itself since it opened (its
    /// housekeeping purges too); 0 for PostgreSQL.
    pub(crate) fn purged_by_housekeeping(&self) -> u64 {
        match &self.store {
            Store::Sqlite(s) => s.writer_stats().purged,
            Store::Postgres(_) => 0,
        }
    }

    /// Finishes what was sent and closes the store.
    pub(crate) async fn close(self) {
        match self.store {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// The text of a store error without its "backend failed" wrapper.
fn source_text(e: &StoreError) -> String {
    match std::error::Error::source(e) {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Refuses a path that is not an existing SQLite database holding hookdock's tables, before
/// the store opens it (opening would create a database, or add tables to someone else's).
fn check_sqlite_file(path: &Path) -> CliResult {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::failed(format!(
            "no database at {shown}: the file does not exist (the tool never creates one; \
             check the path, or start the receiver once to create it)"
        )),
        _ => CliError::failed(format!("cannot read {shown}: {e}")),
    })?;
    if meta.is_dir() {
        return Err(CliError::failed(format!(
            "{shown} is a directory, not a SQLite database file"
        )));
    }
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path)
        .map_err(|e| CliError::failed(format!("cannot read {shown}: {e}")))?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CliError::failed(format!("cannot read {shown}: {e}"))),
        }
    }
    if got == 0 {
        return Err(CliError::failed(format!(
            "{shown} is empty: not a hookdock database"
        )));
    }
    if got < head.len() || &head != SQLITE_MAGIC {
        return Err(CliError::failed(format!(
            "{shown} is not a SQLite database (is it the right file?)"
        )));
    }
    // A SQLite database: does it hold hookdock's tables? (A newer or unversioned schema is
    // left for the store to report, with the versions.)
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = rusqlite::Connection::open_with_flags(path, flags) else {
        return Ok(());
    };
    let _ = conn.busy_timeout(Duration::from_secs(1));
    let version: rusqlite::Result<i64> = conn.query_row("PRAGMA user_version", [], |r| r.get(0));
    let tables: rusqlite::Result<i64> = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'hookdock%'",
        [],
        |r| r.get(0),
    );
    if let (Ok(0), Ok(0)) = (version, tables) {
        return Err(CliError::failed(format!(
            "{shown} is a SQLite database without hookdock tables: not a hookdock database \
             (the tool does not add tables to it)"
        )));
    }
    Ok(())
}

/// The message for a SQLite store that would not open.
fn sqlite_open_error(path: &Path, e: &StoreError, waited: Duration) -> CliError {
    let text = source_text(e);
    let shown = path.display();
    if text.contains("in use by another hookdock store") {
        return CliError::failed(format!(
            "{shown} is open in another process (a running receiver or worker holds its lock; \
             waited {}). A SQLite file is served by one process at a time: stop that process \
             and run this again, or use the admin routes it mounts; --busy-timeout waits longer",
            humantime::format_duration(waited)
        ));
    }
    CliError::failed(format!("cannot open {shown}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sqlite: Option<&str>, postgres: Option<&str>, url: Option<&str>) -> DbArgs {
        DbArgs {
            sqlite: sqlite.map(PathBuf::from),
            postgres: postgres.map(str::to_owned),
            database_url: url.map(str::to_owned),
            schema: "public".into(),
            busy_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn targets_from_flags_and_urls() {
        let t = |s, p, u| Target::of(&args(s, p, u));
        assert_eq!(
            t(Some("a.db"), None, Some("postgres://x/y")).unwrap(),
            Target::Sqlite("a.db".into())
        );
        assert_eq!(
            t(None, None, Some("sqlite:/var/h.db")).unwrap(),
            Target::Sqlite("/var/h.db".into())
        );
        assert_eq!(
            t(None, None, Some("sqlite:///var/h.db")).unwrap(),
            Target::Sqlite("/var/h.db".into())
        );
        assert_eq!(
            t(None, None, Some("h.db")).unwrap(),
            Target::Sqlite("h.db".into())
        );
        assert_eq!(
            t(None, None, Some("postgresql://u@h/d")).unwrap(),
            Target::Postgres("postgresql://u@h/d".into())
        );
        let none = t(None, None, None).unwrap_err().to_string();
        assert!(
            none.contains("--sqlite PATH") && none.contains("HOOKDOCK_DATABASE_URL"),
            "{none}"
        );
        let wrong = t(None, None, Some("mysql://u:hunter22@h/d"))
            .unwrap_err()
            .to_string();
        assert!(!wrong.contains("hunter22"), "{wrong}");
        let wrong = t(None, Some("h.db"), None).unwrap_err().to_string();
        assert!(wrong.contains("postgres://"), "{wrong}");
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(
            redact("postgres://a:p@ss@db/app"),
            "postgres://a:***@db/app"
        );
        assert_eq!(
            redact("postgres://db/app?user=a&password=s3cret&sslmode=off"),
            "postgres://db/app?user=a&password=***&sslmode=off"
        );
        assert_eq!(
            password_of("postgres://a:p@ss@db/app").as_deref(),
            Some("p@ss")
        );
        assert_eq!(
            scrub("auth failed for s3cret", "postgres://a:s3cret@h/d"),
            "auth failed for ***"
        );
    }

    #[test]
    fn a_sqlite_database_of_someone_else_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let e = check_sqlite_file(&path).unwrap_err().to_string();
        assert!(e.contains("without hookdock tables"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
