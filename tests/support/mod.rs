//! Running the receiver example as a real process, for the end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Builds the receiver example once, with the same features and profile as the test (so the
/// library is not built twice); returns its executable.
pub fn receiver_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let features: Vec<&str> = [
            ("sqlite", cfg!(feature = "sqlite")),
            ("serve", cfg!(feature = "serve")),
            ("admin", cfg!(feature = "admin")),
            ("metrics", cfg!(feature = "metrics")),
            ("postgres", cfg!(feature = "postgres")),
            ("ed25519", cfg!(feature = "ed25519")),
            ("test-util", cfg!(feature = "test-util")),
            ("reconcile", cfg!(feature = "reconcile")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "--example",
            "receiver",
            "--message-format=json",
            "--no-default-features",
            "--features",
            &features.join(","),
        ]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let output = cmd.output().expect("run cargo");
        assert!(
            output.status.success(),
            "building the receiver failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| {
                msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "receiver"
            })
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the receiver executable")
    })
}

/// A running receiver process, with everything it printed on stdout.
pub struct Receiver {
    child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

/// The receiver's command over `db` on a free loopback port, with `env` on top of a GitHub
/// secret (`RUST_LOG=warn`).
pub fn receiver_command(db: &Path, github_secret: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(receiver_binary());
    cmd.env("HOOKDOCK_ADDR", "127.0.0.1:0")
        .env("HOOKDOCK_DB", db)
        .env("HOOKDOCK_GITHUB_SECRET", github_secret)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    cmd
}

/// Runs a receiver `cmd` that must refuse to start: its exit code and what it printed on
/// stderr. Fails the test if it starts listening instead (or has not stopped within 60 s).
pub fn refusal(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the receiver");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the receiver did not stop: it was meant to refuse to start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("collect output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("listening on"),
        "the receiver started when it should have refused:\n{stdout}"
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl Receiver {
    /// Starts the receiver on a free port over `db`, with `env` on top of a GitHub secret.
    pub fn start(db: &Path, github_secret: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(receiver_command(db, github_secret, env))
    }

    /// Starts `cmd` (a receiver, perhaps wrapped in a shell) and waits for its address.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the receiver");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        // Reads the address, then keeps every line (and the child never blocks on stdout).
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_owned());
                    }
                }
                sink.lock().expect("lines").push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the receiver printed its address")
            .parse()
            .expect("a socket address");
        Self { child, addr, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines printed so far that contain `needle`.
    pub fn printed(&self, needle: &str) -> Vec<String> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits (up to a minute) until a printed line contains `needle`.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.printed(needle).into_iter().next() {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver never printed {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to finish or release anything.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, and wait for the graceful exit.
    pub fn stop(mut self) {
        self.terminate();
        let exit = self.child.wait().expect("reap");
        assert!(exit.success(), "graceful exit, got {exit:?}");
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it is still
    /// running (the test decides what that means).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // A failing test must not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stored rows of a receiver's SQLite file: (source, event_id) → (row count, body of one
/// row).
pub fn stored_rows(db: &Path) -> std::collections::BTreeMap<(String, String), (i64, Vec<u8>)> {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    let mut stmt = conn
        .prepare(
            "SELECT e.source, e.event_id, COUNT(*), MIN(b.body) FROM hookdock_events e \
             JOIN hookdock_event_bodies b ON b.id = e.id GROUP BY e.source, e.event_id",
        )
        .expect("query");
    let rows = stmt
        .query_map([], |row| {
            Ok((
                (row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                (row.get::<_, i64>(2)?, row.get::<_, Vec<u8>>(3)?),
            ))
        })
        .expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

/// The completed dedupe claims of a receiver's SQLite file: (source, event_id).
pub fn completed_claims(db: &Path) -> std::collections::BTreeSet<(String, String)> {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    let mut stmt = conn
        .prepare("SELECT source, event_id FROM hookdock_events WHERE claim_done = 1")
        .expect("query");
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

/// Posts a GitHub `push` delivery signed with `secret` to the receiver's `/webhooks/github`;
/// the answer's status and body.
#[cfg(feature = "test-util")]
pub async fn deliver_github(
    addr: std::net::SocketAddr,
    secret: &str,
    id: &str,
    body: &str,
) -> (u16, String) {
    use hookdock::{scheme::Preset, testing::Signer};
    let signer = Signer::new(&Preset::github([secret]).expect("secret")).expect("signer");
    let delivery = signer
        .delivery(body.to_owned())
        .id(id)
        .event_type("push")
        .sign()
        .expect("signed");
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/github"))
        .headers(delivery.headers)
        .body(delivery.body)
        .send()
        .await
        .expect("the receiver answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
