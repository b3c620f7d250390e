//! Schema drift, end to end: captured GitHub pushes (`tests/data/drift/`, written by
//! `hookdock export`), one of three pushes gained a field (`head_commit.verified`) and lost one
//! (`pusher.email`) after the provider changed its payload. Both are reported by the fixture
//! check (`testing::schema`) and by the worker's decode layer (a warning once per new shape
//! naming the paths and no value, and every drifted event to the hook). With the `cli`
//! feature, the same holds for what the real `hookdock export` writes from a SQLite store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hookdock::store::MessageId;
use hookdock::testing::schema::{FixtureCheck, Problem};
use hookdock::worker::{DecodeJsonLayer, DriftReport, DriftReporter, Event, HandlerError};
use hookdock::RawEvent;
use tower::{service_fn, Layer, ServiceExt};

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Push {
    r#ref: String,
    after: String,
    repository: Repository,
    pusher: Pusher,
    head_commit: Commit,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Repository {
    full_name: String,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Pusher {
    name: String,
    #[serde(default)]
    email: String,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Commit {
    id: String,
    message: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/drift")
}

const DRIFTED: &str = "github/push/d-2.json";

#[test]
fn the_fixture_check_reports_the_gained_and_the_lost_field() {
    let report = FixtureCheck::new(fixtures())
        .source("github")
        .event_type("push")
        .run::<Push>();
    assert_eq!(report.checked, 3, "{report}");
    let problems: Vec<(Option<&str>, &Problem)> = report
        .problems
        .iter()
        .map(|p| (p.path.as_deref(), &p.problem))
        .collect();
    assert_eq!(
        problems,
        [
            (
                Some(DRIFTED),
                &Problem::Unknown(vec!["head_commit.verified".into()])
            ),
            (
                Some(DRIFTED),
                &Problem::Missing(vec!["pusher.email".into()])
            ),
        ],
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("github/push/d-2.json (github, push): unknown fields: head_commit.verified")
            && text.contains("github/push/d-2.json (github, push): missing fields: pusher.email"),
        "{text}"
    );
    let panic = std::panic::catch_unwind(|| report.assert_clean()).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a message");
    assert!(message.contains("2 problem(s)"), "{message}");

    // Allowing unknown fields leaves the lost one; the Stripe fixture is not a push at all.
    let lenient = FixtureCheck::new(fixtures())
        .source("github")
        .allow_unknown()
        .run::<Push>();
    assert_eq!(lenient.problems.len(), 1, "{lenient}");
    let stripe = FixtureCheck::new(fixtures()).source("stripe").run::<Push>();
    assert!(
        matches!(stripe.problems.as_slice(), [p] if matches!(p.problem, Problem::Decode(_))),
        "{stripe}"
    );
    assert!(FixtureCheck::new(fixtures())
        .source("gitlab")
        .run::<Push>()
        .to_string()
        .contains("no fixture matched"));
}

/// A `Write` that keeps what the log subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn event(file: &str, n: i64) -> Event<bytes::Bytes> {
    let body = std::fs::read(fixtures().join(file)).unwrap();
    let raw = RawEvent::new(
        "github",
        format!("d-{n}"),
        std::time::SystemTime::now(),
        body,
    )
    .with_event_type("push");
    Event::new(raw, MessageId(n), 1, 10)
}

#[tokio::test]
async fn the_decode_layer_warns_once_per_shape_and_hooks_every_drifted_event() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let reports: Arc<Mutex<Vec<DriftReport>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let reporter =
        DriftReporter::new().hook(move |r: &DriftReport| sink.lock().unwrap().push(r.clone()));
    let handled = Arc::new(Mutex::new(0));
    let count = Arc::clone(&handled);
    let handler = DecodeJsonLayer::<Push>::new()
        .report_drift(reporter)
        .layer(service_fn(move |e: Event<Push>| {
            let count = Arc::clone(&count);
            async move {
                *count.lock().unwrap() += 1;
                Ok::<_, HandlerError>(e.payload().pusher.name.clone())
            }
        }));

    for (n, file) in [(1, "github/push/d-1.json"), (2, DRIFTED), (3, DRIFTED)] {
        let name = handler.clone().oneshot(event(file, n)).await.unwrap();
        assert_eq!(name, "octocat", "drift never fails an event");
    }
    assert_eq!(*handled.lock().unwrap(), 3);

    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 2, "the exact payload is not reported");
    for (r, new) in reports.iter().zip([true, false]) {
        assert_eq!(
            (r.source.as_str(), r.event_type.as_deref()),
            ("github", Some("push"))
        );
        assert_eq!(r.drift.unknown, ["head_commit.verified"]);
        assert_eq!(r.drift.missing, ["pusher.email"]);
        assert_eq!(r.new_shape, new);
        assert!(r.target.ends_with("Push"));
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("schema drift"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per new shape: {logs}");
    assert!(
        warnings[0].contains("head_commit.verified") && warnings[0].contains("pusher.email"),
        "{}",
        warnings[0]
    );
    // The drifted fixture's values never reach the log.
    for value in ["octocat", "Fix the build", "refs/heads/main", "true"] {
        assert!(
            !warnings[0].contains(value),
            "{value} leaked: {}",
            warnings[0]
        );
    }
}

/// What the real `hookdock export` writes is what the check reads: export two pushes from a
/// SQLite store, check them clean, then let one gain a field and lose one.
#[cfg(feature = "cli")]
#[test]
fn what_hookdock_export_writes_is_checked() {
    use hookdock::store::sqlite::{SqliteOptions, SqliteStore};
    use hookdock::store::{Queue, QueueOptions};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookdock.db");
    let out = dir.path().join("fixtures");
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let store = SqliteStore::open(&db, SqliteOptions::new()).unwrap();
            let queue = store.queue(QueueOptions::default());
            for file in ["github/push/d-1.json", "github/push/d-3.json"] {
                let body = std::fs::read(fixtures().join(file)).unwrap();
                let id = Path::new(file).file_stem().unwrap().to_str().unwrap();
                let raw = RawEvent::new("github", id, std::time::SystemTime::now(), body)
                    .with_event_type("push");
                queue.enqueue(raw).await.unwrap();
            }
            store.close().await;
        });
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_hookdock"))
        .args(["--sqlite", db.to_str().unwrap(), "export", "--dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let clean = FixtureCheck::new(&out).event_type("push").run::<Push>();
    assert_eq!(clean.checked, 2, "{clean}");
    clean.assert_clean();

    // The provider changes its payload: one captured push gains a field and loses one.
    let file = out.join("github/push/d-3.json");
    let edit = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        change(&mut json);
        std::fs::write(&file, serde_json::to_vec(&json).unwrap()).unwrap();
    };
    edit(&|json| {
        json["repository"]["visibility"] = "public".into();
        json["pusher"].as_object_mut().unwrap().remove("email");
    });
    let report = FixtureCheck::new(&out).run::<Push>();
    let problems: Vec<(Option<&str>, &Problem)> = report
        .problems
        .iter()
        .map(|p| (p.path.as_deref(), &p.problem))
        .collect();
    assert_eq!(
        problems,
        [
            (
                Some("github/push/d-3.json"),
                &Problem::Unknown(vec!["repository.visibility".into()])
            ),
            (
                Some("github/push/d-3.json"),
                &Problem::Missing(vec!["pusher.email".into()])
            ),
        ],
        "{report}"
    );

    // A required field lost is a decode error, reported as such.
    edit(&|json| {
        json["head_commit"]
            .as_object_mut()
            .unwrap()
            .remove("message");
    });
    let report = FixtureCheck::new(&out).run::<Push>();
    assert!(
        matches!(report.problems.as_slice(), [p] if matches!(&p.problem, Problem::Decode(why) if why.contains("missing field `message`"))),
        "{report}"
    );
}
