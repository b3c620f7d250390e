//! The `hookdock` binary, run as a person or a script would, against real SQLite files
//! prepared with the library (enqueue, lease, ack, dead-letter through `SqliteQueue`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use hookdock::cli::Manifest;
use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
use hookdock::store::{
    Claim, EventFilter, Fingerprint, IdempotencyKey, IdempotencyStore, Queue, QueueOptions,
    ReplayMode, Replayer,
};
use hookdock::testing::FakeClock;
use hookdock::RawEvent;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hookdock");

/// A body that is not UTF-8 and ends with a newline: what `--body-only` must keep exactly.
const BINARY_BODY: &[u8] = b"\x00\xffpayload\r\n\x1b[2J\n";

/// What one run printed and how it ended.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr: {}",
                self.out(),
                self.stderr
            )
        })
    }

    fn ok(self) -> Self {
        assert_eq!(
            self.code,
            0,
            "stdout:\n{}\nstderr:\n{}",
            self.out(),
            self.stderr
        );
        self
    }
}

fn hookdock(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .args(args)
        .env_remove("HOOKDOCK_DATABASE_URL")
        .env_remove("HOOKDOCK_POSTGRES_SCHEMA")
        .output()
        .expect("run the hookdock binary");
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `hookdock --sqlite DB args...`
fn on(db: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--sqlite", db.to_str().expect("utf-8 temp path")];
    all.extend_from_slice(args);
    hookdock(&all)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A database holding three handled GitHub pushes (claims completed by a dedupe layer),
/// one Stripe dead letter and one handled Stripe event with a binary body. Times come from
/// `clock`, or the system clock.
fn prepare(path: &Path, clock: Option<FakeClock>) {
    runtime().block_on(async {
        let mut options = SqliteOptions::default();
        let now = match &clock {
            Some(c) => {
                options = options.clock(c.clone());
                hookdock::Clock::now(c)
            }
            None => SystemTime::now(),
        };
        let store = SqliteStore::open(path, options).expect("open");
        let queue = store.queue(QueueOptions::default());
        let dedupe = store.idempotency();
        for (i, id) in ["gh-1", "gh-2", "gh-3"].into_iter().enumerate() {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-github-event", http::HeaderValue::from_static("push"));
            headers.insert(
                "x-github-delivery",
                http::HeaderValue::from_str(id).unwrap(),
            );
            let body = format!("{{\"ref\":\"refs/heads/main\",\"n\":{i}}}");
            let event = RawEvent::new("github", id, now - Duration::from_secs(60 - i as u64), body)
                .with_headers(headers)
                .with_event_type("push");
            queue.enqueue(event).await.expect("enqueue");
        }
        let dead = RawEvent::new("stripe", "st-1", now, "{\"type\":\"invoice.paid\"}")
            .with_event_type("invoice.paid");
        queue.enqueue(dead).await.expect("enqueue");
        let binary = RawEvent::new("stripe", "st-2", now, BINARY_BODY);
        queue.enqueue(binary).await.expect("enqueue");

        let leased = queue
            .lease(10, Duration::from_secs(60))
            .await
            .expect("lease");
        assert_eq!(leased.len(), 5);
        for l in leased {
            let key = IdempotencyKey::new(l.event.source.clone(), l.event.id.clone());
            if l.event.id.as_str() == "st-1" {
                queue
                    .dead_letter(&l.lease, "permanent failure: no such customer")
                    .await
                    .expect("dead letter");
                continue;
            }
            let fp = Fingerprint::of(&l.event.body);
            match dedupe
                .claim(&key, &fp, Duration::from_secs(60))
                .await
                .expect("claim")
            {
                Claim::Acquired(token) => {
                    dedupe.complete(&key, token, None).await.expect("complete")
                }
                other => panic!("unexpected claim {other:?}"),
            }
            queue.ack(&l.lease).await.expect("ack");
        }
        store.close().await;
    });
}

fn prepared() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hookdock.db");
    prepare(&db, None);
    (dir, db)
}

// ---------------------------------------------------------------------------------------
// A new user's first tries

#[test]
fn every_command_has_useful_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["events"],
        &["events", "list"],
        &["events", "show"],
        &["events", "replay"],
        &["dead"],
        &["dead", "list"],
        &["dead", "replay"],
        &["stats"],
        &["purge"],
        &["export"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let run = hookdock(&args).ok();
        let out = run.out();
        assert!(out.contains("Usage: hookdock"), "{command:?}:\n{out}");
        let leaf =
            command.len() == 2 || matches!(command.first(), Some(&"stats" | &"purge" | &"export"));
        if leaf || command.is_empty() {
            assert!(
                out.contains("Examples:"),
                "{command:?} has no examples:\n{out}"
            );
        }
    }
    let version = hookdock(&["--version"]).ok();
    assert!(version.out().contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn no_database_given() {
    let run = hookdock(&["events", "list"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--sqlite PATH"), "{}", run.stderr);
    assert!(
        run.stderr.contains("HOOKDOCK_DATABASE_URL"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn a_wrong_path_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    for args in [
        &["events", "list"][..],
        &["stats"],
        &["purge"],
        &["dead", "list"],
    ] {
        let run = on(&missing, args);
        assert_eq!(run.code, 1, "{args:?}");
        assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
        assert!(run.stderr.contains("nope.db"), "{}", run.stderr);
    }
    assert!(!missing.exists(), "the tool created a database");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the tool left files"
    );

    // The same through HOOKDOCK_DATABASE_URL.
    let out = Command::new(BIN)
        .args(["stats"])
        .env(
            "HOOKDOCK_DATABASE_URL",
            format!("sqlite:{}", missing.display()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are not the tables you are looking for\n").unwrap();
    let run = on(&text, &["events", "list"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("is not a SQLite database"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&text).unwrap(),
        b"these are not the tables you are looking for\n",
        "the file was changed"
    );

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let run = on(&empty, &["stats"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is empty"), "{}", run.stderr);
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

    let run = on(dir.path(), &["stats"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
}

#[test]
fn a_newer_schema_version_is_refused_with_both_versions() {
    let (dir, db) = prepared();
    // A copy with `PRAGMA user_version` (the big-endian u32 at byte 60 of the header) set
    // high, as a newer hookdock would leave it. The store checkpointed at close, so the main
    // file alone is the whole database.
    let newer = dir.path().join("newer.db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&newer, &bytes).unwrap();

    let run = on(&newer, &["events", "list"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("schema version 99"), "{}", run.stderr);
    assert!(run.stderr.contains("newer than the"), "{}", run.stderr);
    assert!(run.stderr.contains("upgrade hookdock"), "{}", run.stderr);
    // The supported version is named too: the one the prepared file has.
    let supported = u32::from_be_bytes(std::fs::read(&db).unwrap()[60..64].try_into().unwrap());
    assert!(
        run.stderr.contains(&format!("the {supported} ")),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&newer).unwrap(),
        bytes,
        "the newer file was changed"
    );
}

#[test]
fn an_empty_database_lists_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookdock.db");
    runtime().block_on(async {
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        store.close().await;
    });
    let run = on(&db, &["events", "list"]).ok();
    assert!(run.out().contains("the log is empty"), "{}", run.out());
    let run = on(&db, &["events", "list", "--source", "github"]).ok();
    assert!(
        run.out().contains("no events match (source=github)"),
        "{}",
        run.out()
    );
    let page = on(&db, &["events", "list", "--json"]).ok().json();
    assert_eq!(page["entries"], serde_json::json!([]));
    assert_eq!(page["next"], Value::Null);
    let all = on(&db, &["events", "list", "--all", "--json"]).ok().json();
    assert_eq!(all["entries"], serde_json::json!([]));
    assert!(on(&db, &["stats"]).ok().out().contains("the log is empty"));
    assert!(on(&db, &["dead", "list"])
        .ok()
        .out()
        .contains("no dead letters"));
    assert!(on(&db, &["purge"]).ok().out().contains("nothing to purge"));
    let run = on(&db, &["events", "show", "github", "x"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no event github/x in the log"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_filters_name_what_is_allowed() {
    let (_dir, db) = prepared();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--status", "bogus"],
            "pending, leased, succeeded, retrying, dead, stale",
        ),
        (&["--origin", "pull"], "push, replay, reconciliation"),
        (&["--since", "lately"], "7d"),
        (&["--from", "yesterday"], "RFC 3339"),
        (&["--until", "2026-13-01T00:00:00Z"], "RFC 3339"),
        (&["--limit", "0"], "--limit"),
        (
            &[
                "--from",
                "2026-12-02T00:00:00Z",
                "--until",
                "2026-12-01T00:00:00Z",
            ],
            "time range is empty",
        ),
    ];
    for (flags, says) in cases {
        let mut args = vec!["events", "list"];
        args.extend_from_slice(flags);
        let run = on(&db, &args);
        assert_eq!(run.code, 2, "{flags:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{flags:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn a_database_held_by_a_receiver_gives_a_helpful_message() {
    let (_dir, db) = prepared();
    let rt = runtime();
    let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
    let run = on(&db, &["--busy-timeout", "200ms", "events", "list"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("open in another process"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("admin routes"), "{}", run.stderr);
    rt.block_on(store.close());
    // Once the receiver let go, it opens.
    on(&db, &["events", "list"]).ok();
}

#[test]
fn an_unreachable_postgres_never_shows_the_password() {
    // Port 1 on loopback: nothing listens there.
    let url = "postgres://app:hunter22secret@127.0.0.1:1/app";
    let run = hookdock(&["--postgres", url, "--connect-timeout", "2s", "stats"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot connect to PostgreSQL"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("postgres://app:***@127.0.0.1:1/app"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter22secret"), "{}", run.stderr);

    let run = hookdock(&["--postgres", "mysql://app:hunter22secret@h/app", "stats"]);
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("hunter22secret"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------
// Reading the log

#[test]
fn events_list_for_scripts_and_people() {
    let (_dir, db) = prepared();
    let page = on(&db, &["events", "list", "--source", "github", "--json"])
        .ok()
        .json();
    let entries = page["entries"].as_array().unwrap();
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gh-3", "gh-2", "gh-1"], "newest first");
    for e in entries {
        assert_eq!(e["source"], "github");
        assert_eq!(e["event_type"], "push");
        assert_eq!(e["status"], "succeeded");
        assert_eq!(e["origin"], "push");
        assert_eq!(e["attempts"], 1);
        assert!(e["done_at_ms"].is_i64());
    }
    assert_eq!(page["next"], Value::Null);

    let dead = on(&db, &["events", "list", "--status", "dead", "--json"])
        .ok()
        .json();
    let dead = dead["entries"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event_id"], "st-1");
    assert_eq!(dead[0]["last_error"], "permanent failure: no such customer");

    let typed = on(&db, &["events", "list", "--type", "invoice.paid", "--json"])
        .ok()
        .json();
    assert_eq!(typed["entries"].as_array().unwrap().len(), 1);
    let old = on(
        &db,
        &[
            "events", "list", "--since", "10s", "--source", "github", "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(
        old["entries"].as_array().unwrap().len(),
        0,
        "received a minute ago"
    );

    // A page at a time, with the cursor printed for the next.
    let first = on(&db, &["events", "list", "--limit", "2", "--json"])
        .ok()
        .json();
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let next = first["next"].as_i64().expect("a cursor");
    let human = on(&db, &["events", "list", "--limit", "2"]).ok().out();
    assert!(human.contains(&format!("more: --before {next}")), "{human}");
    let rest = on(
        &db,
        &[
            "events",
            "list",
            "--limit",
            "2",
            "--before",
            &next.to_string(),
            "--json",
        ],
    )
    .ok()
    .json();
    let all = on(&db, &["events", "list", "--all", "--limit", "2", "--json"])
        .ok()
        .json();
    let count = |v: &Value| v["entries"].as_array().unwrap().len();
    assert_eq!(count(&all), 5);
    assert!(count(&rest) >= 1);

    // The table: a header and one aligned row per event.
    let table = on(&db, &["events", "list"]).ok().out();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("MESSAGE") || lines[0].trim_start().starts_with("MESSAGE"),
        "{table}"
    );
    assert!(
        lines[0].contains("EVENT ID") && lines[0].contains("STATUS"),
        "{table}"
    );
    assert_eq!(lines.len(), 1 + 5 + 1, "{table}");
    let status_at = lines[0].find("STATUS").unwrap();
    for line in &lines[1..6] {
        let rest = &line[status_at..];
        assert!(
            ["succeeded", "dead"].iter().any(|s| rest.starts_with(s)),
            "misaligned: {line}"
        );
    }
    assert!(lines[6].contains("5 events"), "{table}");
}

#[test]
fn events_show_prints_everything_and_the_raw_body_exactly() {
    let (_dir, db) = prepared();
    let run = on(&db, &["events", "show", "stripe", "st-2", "--body-only"]).ok();
    assert_eq!(run.stdout, BINARY_BODY);

    let shown = on(&db, &["events", "show", "github", "gh-2"]).ok().out();
    for want in [
        "source:       github",
        "event id:     gh-2",
        "type:         push",
        "status:       succeeded",
        "x-github-event: push",
        "x-github-delivery: gh-2",
        "{\"ref\":\"refs/heads/main\",\"n\":1}",
    ] {
        assert!(shown.contains(want), "missing {want:?} in\n{shown}");
    }

    let binary = on(&db, &["events", "show", "stripe", "st-2"]).ok().out();
    assert!(binary.contains("not UTF-8"), "{binary}");
    assert!(!binary.contains('\u{1b}'), "an escape reached the terminal");

    let json = on(&db, &["events", "show", "stripe", "st-2", "--json"])
        .ok()
        .json();
    assert_eq!(json["entry"]["event_id"], "st-2");
    assert_eq!(json["body"], Value::Null);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(json["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, BINARY_BODY);
    let json = on(&db, &["events", "show", "github", "gh-1", "--json"])
        .ok()
        .json();
    assert_eq!(json["body"], "{\"ref\":\"refs/heads/main\",\"n\":0}");
    assert_eq!(json["headers"][0][0], "x-github-event");

    let run = on(
        &db,
        &["events", "show", "github", "gh-1", "--body-only", "--json"],
    );
    assert_eq!(run.code, 2);
}

#[test]
fn stats_for_scripts_and_people() {
    let (_dir, db) = prepared();
    let stats = on(&db, &["stats", "--json"]).ok().json();
    assert_eq!(stats["counts"]["total"], 5);
    let groups = stats["counts"]["groups"].as_array().unwrap();
    let find = |source: &str, status: &str| {
        groups
            .iter()
            .filter(|g| g["source"] == source && g["status"] == status)
            .map(|g| g["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(find("github", "succeeded"), 3);
    assert_eq!(find("stripe", "dead"), 1);
    assert_eq!(find("stripe", "succeeded"), 1);
    assert_eq!(stats["counts"]["oldest_pending_ms"], Value::Null);
    assert_eq!(stats["queue"]["dead"], 1);
    assert_eq!(stats["queue"]["ready"], 0);

    let github = on(&db, &["stats", "--source", "github", "--json"])
        .ok()
        .json();
    assert_eq!(github["counts"]["total"], 3);

    let human = on(&db, &["stats"]).ok().out();
    assert!(human.contains("total: 5 events"), "{human}");
    assert!(
        human.contains("queue: 0 ready, 0 scheduled, 0 leased, 1 dead"),
        "{human}"
    );
}

// ---------------------------------------------------------------------------------------
// Changing the log

#[test]
fn dead_letters_listed_then_replayed_are_ready_again() {
    let (_dir, db) = prepared();
    let dead = on(&db, &["dead", "list", "--json"]).ok().json();
    let dead = dead["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event_id"], "st-1");
    assert_eq!(dead[0]["reason"], "permanent failure: no such customer");
    assert_eq!(dead[0]["attempts"], 1);
    let human = on(&db, &["dead", "list"]).ok().out();
    assert!(
        human.contains("permanent failure: no such customer"),
        "{human}"
    );

    // No filter: refused.
    let run = on(&db, &["dead", "replay"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--all"), "{}", run.stderr);

    let replayed = on(
        &db,
        &[
            "dead", "replay", "--source", "stripe", "--id", "st-1", "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(replayed["replayed"], 1);
    let entry = on(&db, &["events", "show", "stripe", "st-1", "--json"])
        .ok()
        .json();
    assert_eq!(entry["entry"]["status"], "pending");
    assert_eq!(entry["entry"]["attempts"], 0);
    assert_eq!(entry["entry"]["origin"], "replay");
    assert!(on(&db, &["dead", "list"])
        .ok()
        .out()
        .contains("no dead letters"));

    // It is ready for a worker, with its original bytes.
    runtime().block_on(async {
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        let queue = store.queue(QueueOptions::default());
        let leased = queue.lease(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(leased.len(), 1);
        assert_eq!(leased[0].event.id.as_str(), "st-1");
        assert_eq!(
            leased[0].event.body.as_ref(),
            b"{\"type\":\"invoice.paid\"}"
        );
        store.close().await;
    });

    // Again: nothing left to replay for that id.
    let run = on(
        &db,
        &["dead", "replay", "--source", "stripe", "--id", "st-1"],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no such dead letter"), "{}", run.stderr);
}

#[test]
fn a_forced_replay_resets_the_claims_of_exactly_the_selected_events() {
    let (_dir, db) = prepared();
    // Refusals first: everything without --all, forced without a terminal or --yes.
    let run = on(&db, &["events", "replay", "--force", "--yes"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("every event"), "{}", run.stderr);
    let run = on(&db, &["events", "replay", "--source", "github", "--force"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert!(run.stderr.contains("3 events"), "{}", run.stderr);

    let job = on(
        &db,
        &[
            "events", "replay", "--source", "github", "--force", "--yes", "--batch", "2", "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(job["state"], "finished");
    assert_eq!(job["mode"], "forced");
    assert_eq!(job["total"], 3);
    assert_eq!(job["replayed"], 3);
    assert_eq!(job["skipped"], 0);

    let page = on(&db, &["events", "list", "--source", "github", "--json"])
        .ok()
        .json();
    for e in page["entries"].as_array().unwrap() {
        assert_eq!(e["status"], "pending", "{e}");
        assert_eq!(e["origin"], "replay");
        assert_eq!(e["replays"], 1);
        assert_eq!(e["forced_replays"], 1);
        assert_eq!(e["attempts"], 0);
    }
    // The handled Stripe event was not selected: still succeeded, never replayed.
    let st2 = on(&db, &["events", "show", "stripe", "st-2", "--json"])
        .ok()
        .json();
    assert_eq!(st2["entry"]["status"], "succeeded");
    assert_eq!(st2["entry"]["replays"], 0);

    // A handler behind dedupe runs the three again: their claims are acquired anew.
    runtime().block_on(async {
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        let queue = store.queue(QueueOptions::default());
        let dedupe = store.idempotency();
        let leased = queue.lease(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(leased.len(), 3);
        for l in &leased {
            let key = IdempotencyKey::new(l.event.source.clone(), l.event.id.clone());
            let claim = dedupe
                .claim(
                    &key,
                    &Fingerprint::of(&l.event.body),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            assert!(matches!(claim, Claim::Acquired(_)), "{claim:?}");
        }
        store.close().await;
    });

    // One event by SOURCE ID, through dedupe: the leased events are skipped, not replayed.
    let one = on(&db, &["events", "replay", "github", "gh-1", "--json"])
        .ok()
        .json();
    assert_eq!(one["total"], 1);
    assert_eq!(one["mode"], "dedupe");
    let run = on(&db, &["events", "replay", "github", "nope"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no event github/nope"),
        "{}",
        run.stderr
    );
}

#[test]
fn replay_resume_finishes_an_interrupted_job() {
    let (_dir, db) = prepared();
    // A job created and never run, as a killed replay leaves it.
    runtime().block_on(async {
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        let queue = std::sync::Arc::new(store.queue(QueueOptions::default()));
        let job = Replayer::new(queue)
            .start(&EventFilter::all().source("stripe"), ReplayMode::Dedupe)
            .await
            .unwrap();
        assert_eq!(job.total, 2);
        store.close().await;
    });
    let stats = on(&db, &["stats"]).ok().out();
    assert!(stats.contains("--resume"), "{stats}");
    let jobs = on(&db, &["events", "replay", "--resume", "--json"])
        .ok()
        .json();
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "finished");
    assert_eq!(jobs[0]["replayed"], 2);
    let again = on(&db, &["events", "replay", "--resume"]).ok().out();
    assert!(again.contains("nothing to resume"), "{again}");
}

#[test]
fn purge_forgets_what_passed_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookdock.db");
    // Handled eight days ago with the default 7-day retention: past it now.
    let clock = FakeClock::new(SystemTime::now() - Duration::from_secs(8 * 86_400));
    prepare(&db, Some(clock));
    assert_eq!(
        on(&db, &["stats", "--json"]).ok().json()["counts"]["total"],
        5
    );

    let purged = on(&db, &["purge", "--json"]).ok().json();
    assert_eq!(purged["purged"], 4, "the four handled events");
    let left = on(&db, &["events", "list", "--json"]).ok().json();
    let left = left["entries"].as_array().unwrap();
    assert_eq!(left.len(), 1, "the dead letter stays");
    assert_eq!(left[0]["event_id"], "st-1");
    let again = on(&db, &["purge"]).ok().out();
    assert!(again.contains("nothing to purge"), "{again}");

    // A fresh database keeps its events: nothing is past the retention.
    let (_fresh_dir, fresh) = prepared();
    assert_eq!(on(&fresh, &["purge", "--json"]).ok().json()["purged"], 0);
}

#[test]
fn export_writes_fixtures_byte_for_byte_with_a_manifest() {
    let (dir, db) = prepared();
    let out = dir.path().join("fixtures");
    let run = on(&db, &["export", "--dir", out.to_str().unwrap()]).ok();
    assert!(run.out().contains("exported 5 events"), "{}", run.out());

    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.format, hookdock::cli::MANIFEST_FORMAT);
    let paths: Vec<&str> = manifest.events.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "github/push/gh-1.json",
            "github/push/gh-2.json",
            "github/push/gh-3.json",
            "stripe/invoice.paid/st-1.json",
            "stripe/untyped/st-2.raw",
        ]
    );
    assert_eq!(
        std::fs::read(out.join("github/push/gh-2.json")).unwrap(),
        b"{\"ref\":\"refs/heads/main\",\"n\":1}"
    );
    assert_eq!(
        std::fs::read(out.join("stripe/untyped/st-2.raw")).unwrap(),
        BINARY_BODY
    );
    let gh2 = &manifest.events[1];
    assert_eq!(gh2.event_id, "gh-2");
    assert_eq!(gh2.event_type.as_deref(), Some("push"));
    assert_eq!(
        gh2.headers,
        [
            ("x-github-event".to_owned(), "push".to_owned()),
            ("x-github-delivery".to_owned(), "gh-2".to_owned())
        ]
    );
    assert_eq!(
        gh2.body_bytes,
        b"{\"ref\":\"refs/heads/main\",\"n\":1}".len() as u64
    );
    for e in &manifest.events {
        let body = std::fs::read(out.join(&e.path)).unwrap();
        assert_eq!(body.len() as u64, e.body_bytes);
    }

    // An earlier export is not overwritten by accident; a filter narrows a new one.
    let run = on(&db, &["export", "--dir", out.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--overwrite"), "{}", run.stderr);
    let json = on(
        &db,
        &[
            "export",
            "--dir",
            out.to_str().unwrap(),
            "--overwrite",
            "--status",
            "dead",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(json["exported"], 1);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.events.len(), 1);
    assert_eq!(manifest.events[0].path, "stripe/invoice.paid/st-1.json");
}

// ---------------------------------------------------------------------------------------
// PostgreSQL (skipped without HOOKDOCK_TEST_POSTGRES_URL, like the other PostgreSQL tests)

mod postgres_support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_commands_on_postgres() {
    let db = test_db!("cli_postgres");
    let queue = db.store.queue(QueueOptions::default());
    let dedupe = db.store.idempotency();
    let now = hookdock::Clock::now(&db.clock);
    for id in ["gh-1", "gh-2", "gh-3"] {
        let event = RawEvent::new("github", id, now, format!("{{\"id\":\"{id}\"}}"))
            .with_event_type("push");
        queue.enqueue(event).await.unwrap();
    }
    queue
        .enqueue(RawEvent::new("stripe", "st-1", now, "{}"))
        .await
        .unwrap();
    queue
        .enqueue(RawEvent::new("stripe", "st-2", now, BINARY_BODY))
        .await
        .unwrap();
    for l in queue.lease(10, Duration::from_secs(60)).await.unwrap() {
        if l.event.id.as_str() == "st-1" {
            queue
                .dead_letter(&l.lease, "permanent failure")
                .await
                .unwrap();
            continue;
        }
        let key = IdempotencyKey::new(l.event.source.clone(), l.event.id.clone());
        if let Claim::Acquired(token) = dedupe
            .claim(
                &key,
                &Fingerprint::of(&l.event.body),
                Duration::from_secs(60),
            )
            .await
            .unwrap()
        {
            dedupe.complete(&key, token, None).await.unwrap();
        }
        queue.ack(&l.lease).await.unwrap();
    }

    let pg = |args: &[&str]| {
        let mut all = vec![
            "--postgres",
            db.url.as_str(),
            "--schema",
            db.schema.as_str(),
        ];
        all.extend_from_slice(args);
        hookdock(&all)
    };
    let page = pg(&["events", "list", "--source", "github", "--json"])
        .ok()
        .json();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries
        .iter()
        .all(|e| e["status"] == "succeeded" && e["event_type"] == "push"));
    assert_eq!(
        pg(&["events", "show", "stripe", "st-2", "--body-only"])
            .ok()
            .stdout,
        BINARY_BODY
    );
    assert_eq!(pg(&["stats", "--json"]).ok().json()["counts"]["total"], 5);
    let dead = pg(&["dead", "list", "--json"]).ok().json();
    assert_eq!(dead["dead_letters"][0]["event_id"], "st-1");
    assert_eq!(
        pg(&["dead", "replay", "--source", "stripe", "--id", "st-1", "--json"])
            .ok()
            .json()["replayed"],
        1
    );
    let job = pg(&[
        "events", "replay", "--source", "github", "--force", "--yes", "--json",
    ])
    .ok()
    .json();
    assert_eq!(job["replayed"], 3);
    assert_eq!(job["state"], "finished");
    // The claims were reset: a dedupe layer runs them again.
    for id in ["gh-1", "gh-2", "gh-3"] {
        let key = IdempotencyKey::new("github", id);
        let body = format!("{{\"id\":\"{id}\"}}");
        let claim = dedupe
            .claim(
                &key,
                &Fingerprint::of(body.as_bytes()),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(matches!(claim, Claim::Acquired(_)), "{id}: {claim:?}");
    }
    // Handled under the fake clock, long before the tool's own clock: only st-2 is still
    // handled (the rest were replayed), and it is past its retention.
    assert_eq!(pg(&["purge", "--json"]).ok().json()["purged"], 1);
    let out = tempfile::tempdir().unwrap();
    let exported = pg(&[
        "export",
        "--dir",
        out.path().to_str().unwrap(),
        "--source",
        "github",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(exported["exported"], 3);
    assert_eq!(
        std::fs::read(out.path().join("github/push/gh-2.json")).unwrap(),
        b"{\"id\":\"gh-2\"}"
    );

    // A schema that was never migrated is refused, and not created.
    let missing = format!("{}_none", db.schema);
    let run = hookdock(&[
        "--postgres",
        db.url.as_str(),
        "--schema",
        missing.as_str(),
        "stats",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("has no hookdock tables"),
        "{}",
        run.stderr
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&missing)
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!(tables, 0);
    db.cleanup().await;
}
