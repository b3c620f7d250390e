//! The commands.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use clap::Parser;

use crate::clock::unix_millis;
use crate::store::{
    DeadLetterFilter, DeadLetters, EventFilter, LogEntry, MessageId, ReplayJob, ReplayMode,
    Replayer, DEFAULT_PAGE, MAX_PAGE,
};

use super::args::{
    Cli, Command, DbArgs, DeadCommand, DeadListArgs, DeadReplayArgs, EventsCommand, ExportArgs,
    ListArgs, ReplayArgs, ShowArgs, StatsArgs,
};
use super::db::{Db, Target};
use super::error::{CliError, CliResult};
use super::export::{self, Manifest, MANIFEST_FILE, MANIFEST_FORMAT};
use super::filter::{describe, matches_everything};
use super::output::{self, clean, cut, Table};
use super::progress;

pub(crate) fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&CliError::failed(format!("cannot start the runtime: {e}"))),
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) | Err(CliError::Closed) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &CliError) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {e}");
    match e {
        CliError::Usage(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// What every command has: where the database is, and how to print.
struct Ctx {
    target: Target,
    db: DbArgs,
    json: bool,
    now: SystemTime,
    out: BufWriter<std::io::StdoutLock<'static>>,
}

impl Ctx {
    async fn open(&self) -> CliResult<Db> {
        Db::open(&self.target, &self.db).await
    }

    /// Prints one line for a person (not in `--json` mode).
    fn say(&mut self, line: &str) -> CliResult {
        writeln!(self.out, "{line}")?;
        Ok(())
    }
}

async fn execute(cli: Cli) -> CliResult {
    let target = Target::of(&cli.db)?;
    let mut ctx = Ctx {
        target,
        db: cli.db,
        json: cli.json,
        now: SystemTime::now(),
        out: BufWriter::new(std::io::stdout().lock()),
    };
    let result = match &cli.command {
        Command::Events(EventsCommand::List(a)) => list(&mut ctx, a).await,
        Command::Events(EventsCommand::Show(a)) => show(&mut ctx, a).await,
        Command::Events(EventsCommand::Replay(a)) => replay(&mut ctx, a).await,
        Command::Dead(DeadCommand::List(a)) => dead_list(&mut ctx, a).await,
        Command::Dead(DeadCommand::Replay(a)) => dead_replay(&mut ctx, a).await,
        Command::Stats(a) => stats(&mut ctx, a).await,
        Command::Purge => purge(&mut ctx).await,
        Command::Export(a) => export_events(&mut ctx, a).await,
    };
    let flushed = ctx.out.flush().map_err(CliError::from);
    result.and(flushed)
}

/// Runs `body` on the open database and closes it, whatever `body` answered.
macro_rules! with_db {
    ($ctx:expr, |$db:ident| $body:expr) => {{
        let $db = $ctx.open().await?;
        let result: CliResult = async { $body }.await;
        $db.close().await;
        result
    }};
}

fn store_err(what: &str) -> impl Fn(crate::StoreError) -> CliError + '_ {
    move |e| CliError::store(what, &e)
}

// ---------------------------------------------------------------------------------------
// events list

fn entry_table() -> Table {
    Table::new(&[
        ">MESSAGE",
        "SOURCE",
        "EVENT ID",
        "TYPE",
        "STATUS",
        "ORIGIN",
        ">ATTEMPTS",
        "RECEIVED",
        "LAST ERROR",
    ])
}

fn entry_row(e: &LogEntry) -> Vec<String> {
    vec![
        e.message.0.to_string(),
        clean(&e.source),
        cut(e.event_id.as_str(), 40),
        e.event_type
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| cut(t.as_str(), 30)),
        e.status.to_string(),
        e.origin.to_string(),
        e.attempts.to_string(),
        output::time(e.received_at),
        e.last_error
            .as_deref()
            .map_or_else(String::new, |m| cut(m, 50)),
    ]
}

async fn list(ctx: &mut Ctx, args: &ListArgs) -> CliResult {
    let default_page = if args.all { MAX_PAGE } else { DEFAULT_PAGE };
    let page_size = args.limit.map_or(default_page, |n| n as usize);
    let mut filter = args.filter.to_filter(ctx.now)?.limit(page_size);
    if let Some(before) = args.before {
        filter = filter.before(MessageId(before));
    }
    with_db!(ctx, |db| {
        let fetch = store_err("cannot list the events");
        if !args.all {
            let page = db.log.list(&filter).await.map_err(&fetch)?;
            if ctx.json {
                return output::json(&mut ctx.out, &page);
            }
            if page.entries.is_empty() {
                return ctx.say(&nothing_listed(&filter, args.before.is_some()));
            }
            let mut table = entry_table();
            for e in &page.entries {
                table.row(entry_row(e));
            }
            table.flush(&mut ctx.out)?;
            match page.next {
                Some(next) => ctx.say(&format!(
                    "{} events; more: --before {next}",
                    page.entries.len()
                )),
                None => ctx.say(&format!("{} events", page.entries.len())),
            }
        } else {
            // Every page; JSON is streamed as one document, `{"entries": [...], "next": null}`.
            let mut table = entry_table();
            let mut count = 0u64;
            if ctx.json {
                write!(ctx.out, "{{\"entries\":[")?;
            }
            loop {
                let page = db.log.list(&filter).await.map_err(&fetch)?;
                for e in &page.entries {
                    if ctx.json {
                        if count > 0 {
                            write!(ctx.out, ",")?;
                        }
                        writeln!(ctx.out)?;
                        serde_json::to_writer(&mut ctx.out, e)?;
                    } else {
                        table.row(entry_row(e));
                    }
                    count += 1;
                }
                if !ctx.json && !page.entries.is_empty() {
                    table.flush(&mut ctx.out)?;
                }
                match page.next {
                    Some(next) => filter = filter.before(next),
                    None => break,
                }
            }
            if ctx.json {
                writeln!(ctx.out, "\n],\"next\":null}}")?;
                Ok(())
            } else if count == 0 {
                ctx.say(&nothing_listed(&filter, false))
            } else {
                ctx.say(&format!("{count} events"))
            }
        }
    })
}

fn nothing_listed(filter: &EventFilter, paged: bool) -> String {
    if paged {
        "no more events".to_owned()
    } else if matches_everything(filter) {
        "no events: the log is empty".to_owned()
    } else {
        format!("no events match ({})", describe(filter))
    }
}

// ---------------------------------------------------------------------------------------
// events show

#[derive(serde::Serialize)]
struct Shown<'a> {
    entry: &'a LogEntry,
    headers: Vec<(String, String)>,
    /// The body as text when it is UTF-8.
    body: Option<&'a str>,
    /// The body in base64 when it is not UTF-8.
    body_base64: Option<String>,
}

async fn show(ctx: &mut Ctx, args: &ShowArgs) -> CliResult {
    if args.body_only && ctx.json {
        return Err(CliError::usage(
            "--body-only writes the raw body; it cannot be combined with --json",
        ));
    }
    with_db!(ctx, |db| {
        let got = db
            .log
            .get(&args.source, &args.id)
            .await
            .map_err(store_err("cannot read the event"))?;
        let Some(logged) = got else {
            return Err(CliError::failed(format!(
                "no event {}/{} in the log (unknown, or forgotten after its retention)",
                clean(&args.source),
                clean(&args.id)
            )));
        };
        let (entry, event) = (&logged.entry, &logged.event);
        if args.body_only {
            ctx.out.write_all(&event.body)?;
            return Ok(());
        }
        let headers: Vec<(String, String)> = event
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let text = std::str::from_utf8(&event.body).ok();
        if ctx.json {
            let shown = Shown {
                entry,
                headers,
                body: text,
                body_base64: text
                    .is_none()
                    .then(|| base64::engine::general_purpose::STANDARD.encode(&event.body)),
            };
            return output::json(&mut ctx.out, &shown);
        }
        let fields: Vec<(&str, String)> = vec![
            ("message", entry.message.0.to_string()),
            ("source", clean(&entry.source)),
            ("event id", clean(entry.event_id.as_str())),
            (
                "type",
                entry
                    .event_type
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |t| clean(t.as_str())),
            ),
            ("status", entry.status.to_string()),
            ("origin", entry.origin.to_string()),
            ("attempts", entry.attempts.to_string()),
            ("received", output::time(entry.received_at)),
            ("first attempt", output::opt_time(entry.first_attempt_at)),
            ("last attempt", output::opt_time(entry.last_attempt_at)),
            ("done", output::opt_time(entry.done_at)),
            (
                "replays",
                format!("{} ({} forced)", entry.replays, entry.forced_replays),
            ),
            (
                "last error",
                entry
                    .last_error
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), clean),
            ),
        ];
        for (name, value) in fields {
            writeln!(ctx.out, "{:<14}{value}", format!("{name}:"))?;
        }
        writeln!(ctx.out, "\nheaders:")?;
        if headers.is_empty() {
            writeln!(ctx.out, "  (none kept)")?;
        }
        for (name, value) in &headers {
            writeln!(ctx.out, "  {}: {}", clean(name), clean(value))?;
        }
        writeln!(ctx.out, "\nbody ({} bytes):", event.body.len())?;
        match text {
            Some(text) => {
                // Newlines and tabs as they are; other control characters escaped.
                let shown: String = text
                    .chars()
                    .map(|c| {
                        if c.is_control() && c != '\n' && c != '\t' {
                            c.escape_default().to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
                writeln!(ctx.out, "{shown}")?;
            }
            None => writeln!(
                ctx.out,
                "(not UTF-8; write the exact bytes with --body-only, or see body_base64 in --json)"
            )?,
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// events replay

fn replayer(db: &Db, args: &ReplayArgs) -> Replayer {
    let mut r = Replayer::new(db.log.clone());
    if let Some(n) = args.batch {
        r = r.batch_size(n as usize);
    }
    if let Some(n) = args.rate {
        r = r.rate(n);
    }
    r
}

fn job_line(job: &ReplayJob, elapsed: Option<f64>) -> String {
    let mut line = format!(
        "replay job {} ({}): {}; {} replayed, {} skipped (not settled) of {} matching",
        job.id,
        job.mode.as_str(),
        job.state.as_str(),
        job.replayed,
        job.skipped,
        job.total
    );
    if let Some(secs) = elapsed {
        if secs > 0.0 && job.done() > 0 {
            line.push_str(&format!(
                " in {secs:.1} s ({:.0} events/s)",
                job.done() as f64 / secs
            ));
        }
    }
    line
}

async fn replay(ctx: &mut Ctx, args: &ReplayArgs) -> CliResult {
    if args.resume {
        return resume(ctx, args).await;
    }
    let filter = match (&args.source, &args.id) {
        (Some(source), Some(id)) => {
            let flags = args.filter.to_filter(ctx.now)?;
            if !matches_everything(&flags) {
                return Err(CliError::usage(
                    "give either SOURCE ID (one event) or filter flags, not both",
                ));
            }
            EventFilter::event(source.clone(), id.clone())
        }
        _ => args.filter.to_filter(ctx.now)?,
    };
    if matches_everything(&filter) && !args.all {
        return Err(CliError::usage(
            "this replay would select every event in the log: narrow it with --source, --type, \
             --status, --origin, --since, --from or --until (or SOURCE ID for one event), or \
             pass --all to mean it",
        ));
    }
    let mode = if args.force {
        ReplayMode::Forced
    } else {
        ReplayMode::Dedupe
    };
    with_db!(ctx, |db| {
        if let (Some(source), Some(id)) = (&args.source, &args.id) {
            let known = db
                .log
                .get(source, id)
                .await
                .map_err(store_err("cannot read the event"))?;
            if known.is_none() {
                return Err(CliError::failed(format!(
                    "no event {}/{} in the log (unknown, or forgotten after its retention)",
                    clean(source),
                    clean(id)
                )));
            }
        }
        let matching = db
            .log
            .counts(&filter)
            .await
            .map_err(store_err("cannot count the events"))?
            .total();
        if matching == 0 {
            if ctx.json {
                return output::json(
                    &mut ctx.out,
                    &serde_json::json!({ "matched": 0, "job": null }),
                );
            }
            return ctx.say(&format!(
                "no events match ({}): nothing to replay",
                describe(&filter)
            ));
        }
        if args.force && !args.yes {
            confirm(&format!(
                "Force a replay of {matching} events ({})? The handler runs each of them again, \
                 even those it completed.",
                describe(&filter)
            ))?;
        }
        let replayer = replayer(&db, args);
        let job = replayer
            .start(&filter, mode)
            .await
            .map_err(store_err("cannot create the replay job"))?;
        let pb = progress::bar(
            !ctx.json,
            Some(job.total),
            &format!("replay job {}", job.id),
        );
        let started = Instant::now();
        let bar = pb.clone();
        let job = replayer
            .run(job.id, &mut move |j: &ReplayJob| {
                bar.set_length(j.total.max(j.done()));
                bar.set_position(j.done());
            })
            .await
            .map_err(|e| {
                CliError::failed(format!(
                    "replay job {} stopped: {e} (what it did is kept; continue it with \
                     `events replay --resume`)",
                    job.id
                ))
            })?;
        pb.finish_and_clear();
        if ctx.json {
            return output::json(&mut ctx.out, &job);
        }
        ctx.say(&job_line(&job, Some(started.elapsed().as_secs_f64())))
    })
}

/// Asks a person at a terminal to confirm; without one, asks for `--yes`.
fn confirm(question: &str) -> CliResult {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::usage(format!(
            "{question} Confirm with --yes (there is no terminal to ask on)."
        )));
    }
    let mut err = std::io::stderr();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::failed(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::failed("not confirmed: nothing replayed"))
    }
}

async fn resume(ctx: &mut Ctx, args: &ReplayArgs) -> CliResult {
    if !matches_everything(&args.filter.to_filter(ctx.now)?) {
        return Err(CliError::usage(
            "--resume continues the jobs as they were created; it takes no filter",
        ));
    }
    with_db!(ctx, |db| {
        let running = db
            .log
            .replay_jobs(true)
            .await
            .map_err(store_err("cannot list the replay jobs"))?;
        if running.is_empty() {
            if ctx.json {
                return output::json(&mut ctx.out, &Vec::<ReplayJob>::new());
            }
            return ctx.say("no replay job is running: nothing to resume");
        }
        let total: u64 = running.iter().map(|j| j.total).sum();
        let mut done: HashMap<i64, u64> = running.iter().map(|j| (j.id.0, j.done())).collect();
        let pb = progress::bar(
            !ctx.json,
            Some(total),
            &format!("resuming {} replay jobs", running.len()),
        );
        pb.set_position(done.values().sum());
        let bar = pb.clone();
        let started = Instant::now();
        let jobs = replayer(&db, args)
            .resume(&mut move |j: &ReplayJob| {
                done.insert(j.id.0, j.done());
                bar.set_position(done.values().sum());
            })
            .await
            .map_err(store_err("resuming the replay jobs stopped"))?;
        pb.finish_and_clear();
        if ctx.json {
            return output::json(&mut ctx.out, &jobs);
        }
        let elapsed = started.elapsed().as_secs_f64();
        for job in &jobs {
            ctx.say(&job_line(job, Some(elapsed)))?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// dead letters

async fn dead_list(ctx: &mut Ctx, args: &DeadListArgs) -> CliResult {
    let mut filter = DeadLetterFilter::all().limit(args.limit as usize);
    if let Some(source) = &args.source {
        filter = filter.source(source.clone());
    }
    if let Some(text) = &args.reason_contains {
        filter = filter.reason_contains(text.clone());
    }
    if let Some(after) = args.after {
        filter = filter.after(MessageId(after));
    }
    with_db!(ctx, |db| {
        let dead = DeadLetters::new(db.log.clone())
            .list(&filter)
            .await
            .map_err(store_err("cannot list the dead letters"))?;
        let next = (dead.len() >= args.limit as usize)
            .then(|| dead.last().map(|d| d.message))
            .flatten();
        if ctx.json {
            return output::json(
                &mut ctx.out,
                &serde_json::json!({ "dead_letters": dead, "next_after": next }),
            );
        }
        if dead.is_empty() {
            return ctx.say(if args.after.is_some() {
                "no more dead letters"
            } else if filter.matches_all() {
                "no dead letters"
            } else {
                "no dead letters match"
            });
        }
        let mut table = Table::new(&[
            ">MESSAGE",
            "SOURCE",
            "EVENT ID",
            ">ATTEMPTS",
            "DEAD AT",
            "REASON",
        ]);
        for d in &dead {
            table.row(vec![
                d.message.0.to_string(),
                clean(&d.source),
                cut(&d.event_id, 40),
                d.attempts.to_string(),
                output::time(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(d.dead_at_ms.max(0) as u64),
                ),
                cut(&d.reason, 60),
            ]);
        }
        table.flush(&mut ctx.out)?;
        match next {
            Some(n) => ctx.say(&format!("{} dead letters; more: --after {n}", dead.len())),
            None => ctx.say(&format!("{} dead letters", dead.len())),
        }
    })
}

async fn dead_replay(ctx: &mut Ctx, args: &DeadReplayArgs) -> CliResult {
    let mut filter = match args.message {
        Some(m) => DeadLetterFilter::message(MessageId(m)),
        None => DeadLetterFilter::all(),
    };
    if let Some(source) = &args.source {
        filter = filter.source(source.clone());
    }
    if let Some(id) = &args.id {
        filter = filter.event_id(id.clone());
    }
    if let Some(text) = &args.reason_contains {
        filter = filter.reason_contains(text.clone());
    }
    if filter.matches_all() && !args.all {
        return Err(CliError::usage(
            "this would replay every dead letter: narrow it with --message, --source, --id or \
             --reason-contains, or pass --all to mean it",
        ));
    }
    with_db!(ctx, |db| {
        let n = db
            .log
            .replay(&filter)
            .await
            .map_err(store_err("cannot replay the dead letters"))?;
        if n == 0 && (args.message.is_some() || args.id.is_some()) {
            return Err(CliError::failed(
                "no such dead letter (it may have been replayed already: see `events list \
                 --status dead`)",
            ));
        }
        if ctx.json {
            return output::json(&mut ctx.out, &serde_json::json!({ "replayed": n }));
        }
        ctx.say(&match n {
            0 => "no dead letters match: nothing replayed".to_owned(),
            1 => "replayed 1 dead letter: it is ready for the workers again".to_owned(),
            n => format!("replayed {n} dead letters: they are ready for the workers again"),
        })
    })
}

// ---------------------------------------------------------------------------------------
// stats

async fn stats(ctx: &mut Ctx, args: &StatsArgs) -> CliResult {
    let filter = args.filter.to_filter(ctx.now)?;
    with_db!(ctx, |db| {
        let counts = db
            .log
            .counts(&filter)
            .await
            .map_err(store_err("cannot count the events"))?;
        let queue = db
            .log
            .stats()
            .await
            .map_err(store_err("cannot read the queue's stats"))?;
        let jobs = db
            .log
            .replay_jobs(true)
            .await
            .map_err(store_err("cannot list the replay jobs"))?;
        if ctx.json {
            return output::json(
                &mut ctx.out,
                &serde_json::json!({
                    "counts": counts,
                    "queue": queue,
                    "running_replay_jobs": jobs,
                }),
            );
        }
        if counts.groups.is_empty() {
            ctx.say(&if matches_everything(&filter) {
                "no events: the log is empty".to_owned()
            } else {
                format!("no events match ({})", describe(&filter))
            })?;
        } else {
            let mut table = Table::new(&["SOURCE", "TYPE", "STATUS", ">COUNT"]);
            for g in &counts.groups {
                table.row(vec![
                    clean(&g.source),
                    g.event_type
                        .as_deref()
                        .map_or_else(|| "-".to_owned(), |t| cut(t, 40)),
                    g.status.to_string(),
                    g.count.to_string(),
                ]);
            }
            table.flush(&mut ctx.out)?;
            ctx.say(&format!("\ntotal: {} events", counts.total()))?;
            if let Some(t) = counts.oldest_pending {
                let line = format!(
                    "oldest waiting: received {} ({} ago)",
                    output::time(t),
                    output::age(SystemTime::now(), t)
                );
                ctx.say(&line)?;
            }
        }
        ctx.say(&format!(
            "queue: {} ready, {} scheduled, {} leased, {} dead",
            queue.ready, queue.scheduled, queue.leased, queue.dead
        ))?;
        for job in &jobs {
            ctx.say(&job_line(job, None))?;
        }
        if !jobs.is_empty() {
            ctx.say("(continue running replay jobs with `events replay --resume`)")?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// purge

async fn purge(ctx: &mut Ctx) -> CliResult {
    with_db!(ctx, |db| {
        let pb = progress::bar(!ctx.json, None, "forgetting events past their retention");
        let mut total = 0u64;
        loop {
            let n = db
                .log
                .purge_expired()
                .await
                .map_err(store_err("cannot purge"))?;
            if n == 0 {
                break;
            }
            total += n;
            pb.inc(n);
        }
        // The SQLite writer's own housekeeping may have forgotten some meanwhile.
        total += db.purged_by_housekeeping();
        pb.finish_and_clear();
        if ctx.json {
            return output::json(&mut ctx.out, &serde_json::json!({ "purged": total }));
        }
        ctx.say(&match total {
            0 => "nothing to purge: no handled event is past its retention".to_owned(),
            1 => "forgot 1 event past its retention".to_owned(),
            n => format!("forgot {n} events past their retention"),
        })
    })
}

// ---------------------------------------------------------------------------------------
// export

async fn export_events(ctx: &mut Ctx, args: &ExportArgs) -> CliResult {
    let filter = args.filter.to_filter(ctx.now)?;
    let dir = &args.dir;
    let manifest_path = dir.join(MANIFEST_FILE);
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::failed(format!(
            "--dir {} is a file, not a folder",
            dir.display()
        )));
    }
    if manifest_path.exists() && !args.overwrite {
        return Err(CliError::failed(format!(
            "{} holds an earlier export ({MANIFEST_FILE}): pass --overwrite to replace it, or \
             choose another --dir",
            dir.display()
        )));
    }
    let write_err = |path: &std::path::Path, e: std::io::Error| {
        CliError::failed(format!("cannot write {}: {e}", path.display()))
    };
    with_db!(ctx, |db| {
        let total = db
            .log
            .counts(&filter)
            .await
            .map_err(store_err("cannot count the events"))?
            .total();
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        let pb = progress::bar(!ctx.json, Some(total), "exporting");
        let mut events = Vec::new();
        let mut page_filter = filter.clone().limit(MAX_PAGE);
        loop {
            let page = db
                .log
                .list(&page_filter)
                .await
                .map_err(store_err("cannot list the events"))?;
            for e in &page.entries {
                let got = db
                    .log
                    .get(&e.source, e.event_id.as_str())
                    .await
                    .map_err(store_err("cannot read an event"))?;
                // Forgotten since it was listed: nothing to export.
                if let Some(logged) = got {
                    let exported = export::entry(&logged);
                    let path = export::file_in(dir, &exported.path);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
                    }
                    std::fs::write(&path, &logged.event.body).map_err(|e| write_err(&path, e))?;
                    events.push(exported);
                }
                pb.inc(1);
            }
            match page.next {
                Some(next) => page_filter = page_filter.before(next),
                None => break,
            }
        }
        pb.finish_and_clear();
        events.sort_by(|a, b| a.path.cmp(&b.path));
        let count = events.len();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            exported_at_ms: unix_millis(SystemTime::now()),
            events,
        };
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| CliError::failed(format!("cannot encode the manifest: {e}")))?;
        std::fs::write(&manifest_path, text).map_err(|e| write_err(&manifest_path, e))?;
        if ctx.json {
            return output::json(
                &mut ctx.out,
                &serde_json::json!({
                    "dir": dir.display().to_string(),
                    "manifest": manifest_path.display().to_string(),
                    "exported": count,
                }),
            );
        }
        if count == 0 {
            return ctx.say(&format!(
                "no events match ({}): nothing exported (wrote an empty {})",
                describe(&filter),
                manifest_path.display()
            ));
        }
        ctx.say(&format!(
            "exported {count} events to {} (manifest: {})",
            dir.display(),
            manifest_path.display()
        ))
    })
}
