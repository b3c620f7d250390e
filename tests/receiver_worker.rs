//! End to end over real HTTP and a real database: the receiver example (verify → durable
//! intake → worker with dedupe → demo handler) as a child process, driven by signed GitHub
//! deliveries, with the handler's *effects* counted in a separate file it appends to and
//! fsyncs (one line per applied event), never its calls.
//!
//! - `same_delivery_three_times_is_applied_once`
//! - `killed_mid_handling_is_redelivered_after_lease_expiry_and_applied_once`
//! - `permanent_failure_dead_letters_then_replay_after_fix_applies_once`
//! - `thousand_deliveries_logged_resent_forced_and_purged` (the event log, with the `hookdock`
//!   command-line tool)
//!
//! Each runs twice, from the same body: `sqlite::NAME` on a SQLite file in a temporary
//! directory, and `postgres::NAME` on the PostgreSQL server named by
//! `HOOKDOCK_TEST_POSTGRES_URL`, in a fresh schema (the receiver gets
//! `HOOKDOCK_DATABASE_URL` and `HOOKDOCK_DATABASE_SCHEMA`). Without that variable the
//! PostgreSQL runs print a notice and pass, unless `HOOKDOCK_REQUIRE_POSTGRES=1`.

#[cfg(feature = "postgres")]
mod postgres_support;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::Receiver;

const SECRET: &str = "e2e-worker-github-secret";
/// Short leases, so a killed worker's event comes back within seconds.
const LEASE_MS: &str = "1500";

/// Where one test's receivers keep their queue and claims, and where their effects go.
struct Setup {
    dir: tempfile::TempDir,
    /// Environment for every receiver of the test (the database, the effects file, leases).
    env: Vec<(&'static str, String)>,
    #[cfg(feature = "postgres")]
    postgres: Option<postgres_support::TestDb>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let effects = dir.path().join("effects");
        let effects = effects.to_str().expect("utf-8 path").to_owned();
        Self {
            dir,
            env: vec![
                ("HOOKDOCK_DEMO_EFFECTS", effects),
                ("HOOKDOCK_LEASE_MS", LEASE_MS.to_owned()),
            ],
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }

    /// A SQLite file in a temporary directory.
    fn sqlite() -> Self {
        Self::new()
    }

    /// A fresh schema on the test server; `None` (after a notice) when there is none.
    #[cfg(feature = "postgres")]
    async fn postgres(test: &str) -> Option<Self> {
        let db = postgres_support::TestDb::new(test).await?;
        let mut setup = Self::new();
        setup.env.push(("HOOKDOCK_DATABASE_URL", db.url.clone()));
        setup
            .env
            .push(("HOOKDOCK_DATABASE_SCHEMA", db.schema.clone()));
        setup.postgres = Some(db);
        Some(setup)
    }

    /// The SQLite file (ignored by a receiver on PostgreSQL).
    fn db(&self) -> PathBuf {
        self.dir.path().join("q.db")
    }

    fn effects(&self) -> HashMap<String, usize> {
        effects(&self.dir.path().join("effects"))
    }

    /// Starts a receiver on this test's database with `extra` settings on top.
    fn start(&self, extra: &[(&str, &str)]) -> Receiver {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        let receiver = Receiver::start(&self.db(), SECRET, &env);
        // The banner names the backend: make sure the test runs on the one it claims.
        let queue = receiver.wait_for_line("  queue: ");
        assert!(queue.contains(self.backend()), "{queue}");
        receiver
    }

    /// How the receiver's banner names this test's backend.
    fn backend(&self) -> &'static str {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return "queue: PostgreSQL";
        }
        "queue: SQLite"
    }

    /// Runs the `hookdock` command-line tool on this test's database; its stdout, after
    /// checking it succeeded.
    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookdock"));
        #[cfg(feature = "postgres")]
        if let Some(db) = &self.postgres {
            cmd.env("HOOKDOCK_DATABASE_URL", &db.url)
                .args(["--schema", &db.schema]);
        }
        #[cfg(feature = "postgres")]
        let sqlite = self.postgres.is_none();
        #[cfg(not(feature = "postgres"))]
        let sqlite = true;
        if sqlite {
            cmd.env_remove("HOOKDOCK_DATABASE_URL")
                .arg("--sqlite")
                .arg(self.db());
        }
        let out = cmd.args(args).output().expect("run hookdock");
        assert!(
            out.status.success(),
            "hookdock {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Purges the store as it would be at `now + ahead`: opened on a fake clock.
    async fn purge_at(&self, ahead: Duration) -> u64 {
        use hookdock::store::Queue;
        let clock = hookdock::testing::FakeClock::new(std::time::SystemTime::now() + ahead);
        #[cfg(feature = "postgres")]
        if let Some(db) = &self.postgres {
            use hookdock::store::postgres::{PgOptions, PgStore};
            let options = PgOptions::new().schema(db.schema.clone()).clock(clock);
            let store = PgStore::connect(&db.url, options).await.expect("connect");
            let queue = store.queue(hookdock::store::QueueOptions::default());
            let mut purged = 0;
            loop {
                match queue.purge_expired().await.expect("purge") {
                    0 => break,
                    n => purged += n,
                }
            }
            store.close().await;
            return purged;
        }
        use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
        let store = SqliteStore::open(self.db(), SqliteOptions::new().clock(clock)).expect("open");
        let queue = store.queue(hookdock::store::QueueOptions::default());
        let mut purged = 0;
        loop {
            match queue.purge_expired().await.expect("purge") {
                0 => break,
                n => purged += n,
            }
        }
        store.close().await;
        purged
    }

    /// Drops the test's schema (after the test passed).
    async fn finish(self) {
        #[cfg(feature = "postgres")]
        if let Some(db) = self.postgres {
            db.cleanup().await;
        }
    }
}

/// Expands each test body into `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let setup = super::Setup::sqlite();
                    super::$name(&setup).await;
                    setup.finish().await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(setup) = super::Setup::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&setup).await;
                    setup.finish().await;
                }
            )*
        }
    };
}

on_every_backend!(
    same_delivery_three_times_is_applied_once,
    killed_mid_handling_is_redelivered_after_lease_expiry_and_applied_once,
    permanent_failure_dead_letters_then_replay_after_fix_applies_once,
    thousand_deliveries_logged_resent_forced_and_purged,
);

/// How many times each event's effect was applied, from the effects file.
fn effects(path: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        *counts.entry(line.to_owned()).or_default() += 1;
    }
    counts
}

async fn deliver(addr: SocketAddr, id: &str, body: &str) -> u16 {
    deliver_answer(addr, id, body).await.0
}

/// The status and body of the answer to a signed GitHub delivery.
async fn deliver_answer(addr: SocketAddr, id: &str, body: &str) -> (u16, String) {
    support::deliver_github(addr, SECRET, id, body).await
}

async fn admin(addr: SocketAddr, method: &str, path: &str) -> serde_json::Value {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}{path}");
    let request = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    let response = request.send().await.expect("admin route answers");
    assert!(
        response.status().is_success(),
        "{method} {path}: {}",
        response.status()
    );
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).expect("JSON")
}

/// Polls `check` (up to a minute) until it holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn queue_depth(addr: SocketAddr) -> u64 {
    let stats = admin(addr, "GET", "/admin/stats").await;
    ["ready", "leased", "scheduled"]
        .iter()
        .map(|k| stats["queue"][k].as_u64().unwrap_or(u64::MAX / 4))
        .sum()
}

async fn same_delivery_three_times_is_applied_once(setup: &Setup) {
    let receiver = setup.start(&[]);
    let addr = receiver.addr;
    let body = r#"{"ref":"refs/heads/main","after":"abc123"}"#;
    for n in 1..=3u64 {
        // Each delivery comes after the previous one was handled and acked: the store still
        // knows the id, so the second and third are answered `duplicate` and never stored.
        let expected = if n == 1 { "stored\n" } else { "duplicate\n" };
        assert_eq!(
            deliver_answer(addr, "dup-1", body).await,
            (200, expected.to_owned())
        );
        eventually("the delivery is handled", || async {
            let stats = admin(addr, "GET", "/admin/stats").await;
            queue_depth(addr).await == 0 && stats["worker"]["succeeded"].as_u64() == Some(1)
        })
        .await;
    }
    assert_eq!(setup.effects().get("github/dup-1"), Some(&1));
    assert_eq!(setup.effects().len(), 1);
    let stats = admin(addr, "GET", "/admin/stats").await;
    assert_eq!(stats["worker"]["leased"], 1, "leased once: {stats}");
    receiver.stop();
}

async fn killed_mid_handling_is_redelivered_after_lease_expiry_and_applied_once(setup: &Setup) {
    // The first process takes a minute per event: it is killed in the middle.
    let slow = setup.start(&[("HOOKDOCK_DEMO_DELAY_MS", "60000")]);
    assert_eq!(deliver(slow.addr, "crash-1", r#"{"n":1}"#).await, 200);
    let first = slow.wait_for_line("handling github/crash-1");
    assert!(first.ends_with("attempt=1"), "{first}");
    slow.kill();
    assert!(setup.effects().is_empty(), "killed before the effect");

    // A new process: the event comes back once the dead worker's lease expires.
    let fixed = setup.start(&[]);
    let addr = fixed.addr;
    eventually("the redelivered event is applied", || async {
        setup.effects().contains_key("github/crash-1") && queue_depth(addr).await == 0
    })
    .await;
    let again = fixed.printed("handling github/crash-1");
    assert!(
        again.iter().any(|l| l.ends_with("attempt=2")),
        "redelivered as the second attempt: {again:?}"
    );
    assert_eq!(setup.effects().get("github/crash-1"), Some(&1));
    // And it stays applied once: nothing else is pending or dead.
    let stats = admin(addr, "GET", "/admin/stats").await;
    assert_eq!(stats["queue"]["dead"], 0);
    fixed.stop();
    assert_eq!(setup.effects().get("github/crash-1"), Some(&1));
}

async fn permanent_failure_dead_letters_then_replay_after_fix_applies_once(setup: &Setup) {
    let broken = setup.start(&[
        ("HOOKDOCK_DEMO_FAIL_RATE", "1"),
        ("HOOKDOCK_DEMO_FAIL_KIND", "permanent"),
    ]);
    let body = r#"{"action":"opened","number":7}"#;
    assert_eq!(deliver(broken.addr, "perm-1", body).await, 200);
    let addr = broken.addr;
    eventually("the event is dead-lettered", || async {
        let dead = admin(addr, "GET", "/admin/dead").await;
        dead["entries"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let dead = admin(addr, "GET", "/admin/dead?source=github").await;
    let letter = &dead["entries"][0];
    assert_eq!(letter["event_id"], "perm-1");
    assert_eq!(letter["attempts"], 1);
    let reason = letter["last_error"].as_str().expect("reason");
    assert!(
        reason.starts_with("permanent failure: demo failure"),
        "{reason}"
    );
    assert!(setup.effects().is_empty());
    broken.stop();

    // The handler is fixed (the new process does not fail); replay that one event.
    let fixed = setup.start(&[]);
    let addr = fixed.addr;
    let replayed = admin(addr, "POST", "/admin/events/github/perm-1/replay").await;
    assert_eq!(replayed["replayed"], 1);
    eventually("the replayed event is applied", || async {
        setup.effects().contains_key("github/perm-1") && queue_depth(addr).await == 0
    })
    .await;
    assert_eq!(
        admin(addr, "GET", "/admin/dead").await["entries"],
        serde_json::json!([])
    );
    // Nothing more to replay, and a late duplicate from the provider is skipped.
    assert_eq!(
        admin(addr, "POST", "/admin/dead/replay").await["replayed"],
        0
    );
    assert_eq!(
        deliver_answer(addr, "perm-1", body).await,
        (200, "duplicate\n".to_owned())
    );
    assert_eq!(queue_depth(addr).await, 0, "the duplicate is not stored");
    fixed.stop();
    assert_eq!(setup.effects().get("github/perm-1"), Some(&1));
    assert_eq!(setup.effects().len(), 1);
}

/// The event log end to end: 1,000 deliveries are handled; 100 of them sent again answer
/// `duplicate` and are not applied again; `hookdock events list --source github --json`
/// lists all 1,000 with their status; a forced replay of 10 applies exactly those 10 once
/// more; past the retention window (a fake clock) the purge removes them all.
async fn thousand_deliveries_logged_resent_forced_and_purged(setup: &Setup) {
    let receiver = setup.start(&[]);
    let addr = receiver.addr;
    let ids: Vec<String> = (0..1000).map(|i| format!("log-{i:04}")).collect();
    let body = |id: &str| format!(r#"{{"ref":"refs/heads/main","after":"{id}"}}"#);
    for chunk in ids.chunks(50) {
        let answers = futures_util::future::join_all(
            chunk
                .iter()
                .map(|id| async move { deliver_answer(addr, id, &body(id)).await }),
        )
        .await;
        for (id, answer) in chunk.iter().zip(answers) {
            assert_eq!(answer, (200, "stored\n".to_owned()), "{id}");
        }
    }
    eventually("all 1,000 are applied", || async {
        setup.effects().len() == 1000 && queue_depth(addr).await == 0
    })
    .await;

    for id in &ids[..100] {
        assert_eq!(
            deliver_answer(addr, id, &body(id)).await,
            (200, "duplicate\n".to_owned()),
            "a resend of {id}, still in the log"
        );
    }
    assert_eq!(queue_depth(addr).await, 0, "no resend is stored");

    for id in &ids[100..110] {
        let job = admin(
            addr,
            "POST",
            &format!("/admin/events/github/{id}/replay?mode=forced"),
        )
        .await;
        assert_eq!(job["replayed"], 1, "{job}");
    }
    eventually("the 10 forced replays are applied", || async {
        setup.effects().values().sum::<usize>() == 1010 && queue_depth(addr).await == 0
    })
    .await;
    let stats = admin(addr, "GET", "/admin/stats").await;
    assert_eq!(stats["worker"]["succeeded"], 1010, "{stats}");
    receiver.stop();
    let effects = setup.effects();
    for (i, id) in ids.iter().enumerate() {
        let want = if (100..110).contains(&i) { 2 } else { 1 };
        assert_eq!(effects.get(&format!("github/{id}")), Some(&want), "{id}");
    }
    assert_eq!(effects.len(), 1000);

    let listed: serde_json::Value = serde_json::from_str(
        &setup.cli(&["events", "list", "--source", "github", "--all", "--json"]),
    )
    .expect("JSON");
    let entries = listed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1000, "every delivery is in the log");
    let mut forced = Vec::new();
    for e in entries {
        assert_eq!(e["status"], "succeeded", "{e}");
        assert_eq!(e["event_type"], "push", "{e}");
        if e["forced_replays"] == 1 {
            assert_eq!(e["origin"], "replay", "{e}");
            forced.push(e["event_id"].as_str().expect("id").to_owned());
        } else {
            assert_eq!(
                (&e["origin"], &e["replays"]),
                (&serde_json::json!("push"), &serde_json::json!(0)),
                "{e}"
            );
        }
    }
    forced.sort();
    assert_eq!(
        forced,
        ids[100..110].to_vec(),
        "the log says which were forced"
    );

    let day = Duration::from_secs(24 * 3600);
    assert_eq!(
        setup.purge_at(6 * day).await,
        0,
        "within the 7-day window nothing goes"
    );
    assert_eq!(
        setup.purge_at(8 * day).await,
        1000,
        "past it, every handled event goes"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&setup.cli(&["events", "list", "--source", "github", "--json"]))
            .expect("JSON");
    assert_eq!(
        listed["entries"],
        serde_json::json!([]),
        "purged from the log"
    );
}
