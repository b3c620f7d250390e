//! The command line, as clap reads it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::store::{EventStatus, Origin};

use super::filter::{parse_duration, parse_origin, parse_status, parse_time};

const MAIN_EXAMPLES: &str = "\
Examples:
  hookdock --sqlite hookdock.db stats
  hookdock --sqlite hookdock.db events list --source github --since 2h
  hookdock --sqlite hookdock.db events show github 72d3162e-cc78-11e3-81ab-4c9367dc0958
  hookdock --sqlite hookdock.db dead list
  export HOOKDOCK_DATABASE_URL=postgres://app@db.internal/app
  hookdock --schema hookdock events replay --source stripe --status dead --since 1d

A SQLite file is served by one process at a time: stop the receiver first, or use the
admin routes it mounts. The tool never creates a database.";

/// Operate on hookdock's event log and queue: list, show and replay stored events, the
/// dead letters, stats, purge and fixture export.
#[derive(Debug, Parser)]
#[command(name = "hookdock", version, after_help = MAIN_EXAMPLES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Print one JSON document on stdout instead of tables (no progress bars).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Which database, and how long to wait for it.
#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    /// The SQLite database file (it must exist: the tool never creates one).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "postgres")]
    pub(crate) sqlite: Option<PathBuf>,
    /// The PostgreSQL URL, postgres://user:password@host:port/database (prefer
    /// HOOKDOCK_DATABASE_URL, which other users cannot see in the process list).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) postgres: Option<String>,
    /// The database when neither --sqlite nor --postgres is given: sqlite:PATH, a path, or
    /// postgres://...
    #[arg(
        long = "database-url",
        global = true,
        value_name = "URL",
        env = "HOOKDOCK_DATABASE_URL",
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,
    /// The PostgreSQL schema holding hookdock's tables.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        default_value = "public",
        env = "HOOKDOCK_POSTGRES_SCHEMA"
    )]
    pub(crate) schema: String,
    /// How long to wait for a SQLite file that another process has open.
    #[arg(long, global = true, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub(crate) busy_timeout: Duration,
    /// How long to wait for PostgreSQL to accept a connection.
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The event log: list, show and replay stored events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The dead letters: list them, replay them.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Counts by source, type and status, the oldest waiting event, and the queue's depth.
    #[command(after_help = "\
Examples:
  hookdock --sqlite hookdock.db stats
  hookdock --sqlite hookdock.db stats --source github --since 1d
  hookdock --sqlite hookdock.db stats --json | jq '.counts.total'")]
    Stats(StatsArgs),
    /// Forget every handled event whose retention has passed, now (the receiver also does
    /// it by itself, a chunk at a time).
    #[command(after_help = "\
The retention of each event was fixed when it was handled (the receiver's retention then);
this command deletes what is past it, in bounded chunks, until nothing is left.

Examples:
  hookdock --sqlite hookdock.db purge
  hookdock --sqlite hookdock.db purge --json")]
    Purge,
    /// Write matching events as fixture files for schema tests (raw bodies byte for byte,
    /// and a manifest with their headers and metadata).
    #[command(after_help = "\
Layout:
  DIR/manifest.json                                   every exported event: path, headers, times, status, sha256
  DIR/<source>/<event type or untyped>/<event id>.json  the raw body, when it is JSON
  DIR/<source>/<event type or untyped>/<event id>.raw   the raw body, otherwise
Names are percent-encoded where they hold anything but letters, digits, '-', '_' and '.'.

Examples:
  hookdock --sqlite hookdock.db export --dir fixtures --source github
  hookdock --sqlite hookdock.db export --dir fixtures --type invoice.paid --since 7d")]
    Export(ExportArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// List events, newest first, a page at a time.
    #[command(after_help = "\
Examples:
  hookdock --sqlite hookdock.db events list
  hookdock --sqlite hookdock.db events list --source github --status dead --since 2h
  hookdock --sqlite hookdock.db events list --limit 50 --before 1234   # the next page
  hookdock --sqlite hookdock.db events list --all --json > events.json")]
    List(ListArgs),
    /// Show one event: what happened to it, its headers and its raw body.
    #[command(after_help = "\
Examples:
  hookdock --sqlite hookdock.db events show github 72d3162e-cc78-11e3-81ab-4c9367dc0958
  hookdock --sqlite hookdock.db events show stripe evt_123 --body-only > body.json
  hookdock --sqlite hookdock.db events show stripe evt_123 --json")]
    Show(ShowArgs),
    /// Replay one event or every event matching a filter, as a durable, resumable job.
    #[command(after_help = "\
Through dedupe (the default), a replayed event reaches the handler only if it never
completed (a dead letter, say). With --force the completed claims are reset, so the handler
runs every replayed event again (for recovering from a handler bug). Events still pending,
leased or retrying are left alone (they run anyway) and counted as skipped.

Examples:
  hookdock --sqlite hookdock.db events replay github 72d3162e-cc78-11e3-81ab-4c9367dc0958
  hookdock --sqlite hookdock.db events replay --source stripe --status dead --since 1d
  hookdock --sqlite hookdock.db events replay --source github --type push --from 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z --force --yes --rate 50
  hookdock --sqlite hookdock.db events replay --all --force      # every event: asks first
  hookdock --sqlite hookdock.db events replay --resume           # jobs a crash interrupted")]
    Replay(ReplayArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// List the dead letters, oldest first, with their reasons.
    #[command(after_help = "\
Examples:
  hookdock --sqlite hookdock.db dead list
  hookdock --sqlite hookdock.db dead list --source stripe --reason-contains timeout
  hookdock --sqlite hookdock.db dead list --after 1234      # the next page")]
    List(DeadListArgs),
    /// Make dead letters ready again (original bytes and id, attempts back to zero).
    #[command(after_help = "\
Examples:
  hookdock --sqlite hookdock.db dead replay --message 1234
  hookdock --sqlite hookdock.db dead replay --source stripe --id evt_123
  hookdock --sqlite hookdock.db dead replay --source stripe
  hookdock --sqlite hookdock.db dead replay --all")]
    Replay(DeadReplayArgs),
}

/// The conditions of a filter.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct FilterArgs {
    /// Only events of this source (as the receiver names it: github, stripe, ...).
    #[arg(long, value_name = "SOURCE")]
    pub(crate) source: Option<String>,
    /// Only events of this provider event type (push, invoice.paid, ...).
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) event_type: Option<String>,
    /// Only events in this status: pending, leased, succeeded, retrying, dead, stale.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub(crate) status: Option<EventStatus>,
    /// Only events of this origin: push, replay, reconciliation.
    #[arg(long, value_name = "ORIGIN", value_parser = parse_origin)]
    pub(crate) origin: Option<Origin>,
    /// Only events received within this long ago (30m, 2h, 7d, ...).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "from")]
    pub(crate) since: Option<Duration>,
    /// Only events received at or after this time (RFC 3339: 2026-12-04T10:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) from: Option<SystemTime>,
    /// Only events received before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) until: Option<SystemTime>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Entries per page (at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: Option<u32>,
    /// Start after this message id: the cursor the previous page printed.
    #[arg(long, value_name = "MESSAGE", conflicts_with = "all")]
    pub(crate) before: Option<i64>,
    /// Walk every page instead of printing one.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The event's source.
    pub(crate) source: String,
    /// The event's id within its source.
    pub(crate) id: String,
    /// Write only the raw body to stdout, byte for byte.
    #[arg(long)]
    pub(crate) body_only: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Replay one event: its source (with ID).
    #[arg(id = "event_source", value_name = "SOURCE", requires = "event_id")]
    pub(crate) source: Option<String>,
    /// Replay one event: its id.
    #[arg(id = "event_id", value_name = "ID")]
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Reset completed claims so the handler runs the events again.
    #[arg(long)]
    pub(crate) force: bool,
    /// Do not ask before a forced replay.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Allow a filter that matches every event.
    #[arg(long)]
    pub(crate) all: bool,
    /// Replay at most N events per second (default: as fast as the store takes them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rate: Option<u32>,
    /// Events per step of the job, each step one transaction (default 500).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch: Option<u32>,
    /// Continue every replay job still running (after a crash or an interrupt).
    #[arg(long, conflicts_with_all = ["event_source", "force", "all"])]
    pub(crate) resume: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DeadListArgs {
    /// Only dead letters of this source.
    #[arg(long, value_name = "SOURCE")]
    pub(crate) source: Option<String>,
    /// Only dead letters whose reason contains this text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason_contains: Option<String>,
    /// Entries per page (at most 1000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: u32,
    /// Start after this message id: the cursor the previous page printed.
    #[arg(long, value_name = "MESSAGE")]
    pub(crate) after: Option<i64>,
}

#[derive(Debug, Args)]
pub(crate) struct DeadReplayArgs {
    /// Only the dead letter with this message id.
    #[arg(long, value_name = "MESSAGE")]
    pub(crate) message: Option<i64>,
    /// Only dead letters of this source.
    #[arg(long, value_name = "SOURCE")]
    pub(crate) source: Option<String>,
    /// Only the dead letter with this event id (with --source).
    #[arg(long, value_name = "ID", requires = "source")]
    pub(crate) id: Option<String>,
    /// Only dead letters whose reason contains this text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason_contains: Option<String>,
    /// Replay every dead letter (required when no other condition is given).
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The folder to write the fixtures into (created if needed).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Write into a folder that holds an earlier export (its files are replaced).
    #[arg(long)]
    pub(crate) overwrite: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
