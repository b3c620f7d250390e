//! The `hookdock` command-line tool (feature `cli`): the event log, dead letters, stats,
//! purge and fixture export, over a SQLite file or a PostgreSQL database.
//!
//! The binary (`src/bin/hookdock.rs`) only calls [`main`]; everything it does lives here so
//! that it is tested like the rest of the crate. `hookdock --help` lists the commands, and
//! every command's `--help` has examples.
//!
//! ```text
//! hookdock --sqlite hookdock.db events list --source github --status dead
//! hookdock --sqlite hookdock.db events show github 72d3162e-cc78-11e3-81ab-4c9367dc0958
//! hookdock --sqlite hookdock.db events replay --source stripe --since 2h --force
//! HOOKDOCK_DATABASE_URL=postgres://app@db/app hookdock stats --json
//! ```
//!
//! # Which database
//!
//! `--sqlite PATH`, `--postgres URL`, or `HOOKDOCK_DATABASE_URL` (`sqlite:PATH`, a plain
//! path, or `postgres://...`); `--schema` names the PostgreSQL schema (default `public`).
//! The tool never creates a database: a path with no file, a file that is not a SQLite
//! database, a SQLite database without hookdock's tables, or a PostgreSQL schema that was
//! never migrated is refused with a message saying which. Passwords in URLs are never
//! printed.
//!
//! A SQLite file is served by one store at a time: while a receiver or worker has it open,
//! the tool waits `--busy-timeout` (default 3 s) for the file's lock, then stops with a
//! message saying so (stop the receiver, or use the admin routes it mounts). PostgreSQL has
//! no such limit.
//!
//! Purging forgets what passed the retention recorded when each event was handled (the
//! receiver's retention at that time); the tool has no retention setting of its own.
//!
//! # Output
//!
//! Tables for people; with `--json`, one JSON document on stdout per command (the
//! serialized [`LogPage`](crate::store::LogPage), [`LoggedEvent`](crate::store::LoggedEvent)
//! parts, [`LogCounts`](crate::store::LogCounts), [`ReplayJob`](crate::store::ReplayJob),
//! ...). Progress bars are drawn on stderr, only when it is a terminal and never with
//! `--json`. Errors go to stderr; the exit status is 0 on success, 1 when the command failed
//! (a database that cannot be opened, an unknown event), 2 for a command line that is wrong
//! (an unknown flag, a bad filter value).
//!
//! # The export layout
//!
//! `hookdock export --dir D [filter]` writes each matching event as a fixture for schema
//! tests:
//!
//! ```text
//! D/manifest.json                                  what was exported (see Manifest)
//! D/<source>/<event type or "untyped">/<event id>.json   the raw body, byte for byte, when it is JSON
//! D/<source>/<event type or "untyped">/<event id>.raw    the raw body, byte for byte, otherwise
//! ```
//!
//! Each path segment is the name as stored, with every byte other than ASCII letters,
//! digits, `-`, `_` and `.` (and a leading `.`) written as `%XX`, so no name can leave its
//! folder and two names never share a file; a segment longer than 120 bytes is cut and
//! ends with `~` and 16 hex digits of the SHA-256 of the whole name. The body files hold
//! nothing but the body; the headers, times and status of each event are in
//! [`MANIFEST_FILE`], a [`Manifest`] whose [`ExportedEvent::path`] names its body file
//! (relative to `D`, `/`-separated) and whose [`ExportedEvent::body_sha256`] checks it.
//! An export refuses a folder that already holds a manifest unless `--overwrite` is given.

mod args;
mod db;
mod error;
mod export;
mod filter;
mod output;
mod progress;
mod run;

pub use export::{ExportedEvent, Manifest, MANIFEST_FILE, MANIFEST_FORMAT};

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the `hookdock` tool with the process's arguments; what the binary's `main` calls.
#[doc(hidden)]
pub fn main() -> ExitCode {
    run_with(std::env::args_os())
}

/// Runs the `hookdock` tool with `args` (the first is the program name), printing to
/// stdout and stderr; returns the exit status.
#[doc(hidden)]
pub fn run_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run::run(args)
}
