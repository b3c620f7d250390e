//! Hostile and broken clients against the receiver example, as a real process on a real
//! SQLite file on 127.0.0.1, driven by a raw TCP client (the requests are malformed on
//! purpose) or by many stalled connections. Each case checks the answer and that nothing
//! unexpected was stored.
//!
//! Every receiver here runs with `HOOKDOCK_WORKER=off` (so stored rows stay to be counted)
//! and one-second header and body timeouts unless a case needs others. Bounds on waiting are
//! timeouts that fail the test, never timing assertions.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use support::{receiver_command, stored_rows, Receiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "hostile-github-secret";
/// How long any one answer may take before the test fails (never expected to be reached).
const BOUND: Duration = Duration::from_secs(20);

/// A receiver on a fresh database with short timeouts and `extra` settings on top.
struct Setup {
    _dir: tempfile::TempDir,
    db: PathBuf,
    receiver: Receiver,
}

impl Setup {
    fn start(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("hostile.db");
        let mut env = vec![
            ("HOOKDOCK_WORKER", "off"),
            ("HOOKDOCK_HEADER_TIMEOUT", "1s"),
            ("HOOKDOCK_BODY_TIMEOUT", "1s"),
        ];
        env.extend_from_slice(extra);
        let receiver = Receiver::start(&db, SECRET, &env);
        Self {
            _dir: dir,
            db,
            receiver,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.receiver.addr
    }

    /// The ids stored under the GitHub route, in order.
    fn stored(&self) -> Vec<String> {
        stored_ids(&self.db)
    }
}

fn stored_ids(db: &Path) -> Vec<String> {
    stored_rows(db)
        .into_iter()
        .map(|((source, id), (count, _))| {
            assert_eq!(source, "github");
            assert_eq!(count, 1, "{id} stored {count} times");
            id
        })
        .collect()
}

fn signature(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A signed GitHub delivery as raw bytes: `id` is written as given (any bytes),
/// `content_length` as given (`None`: the body's), then `extra` header lines, then the body.
fn delivery(id: &[u8], body: &[u8], content_length: Option<usize>, extra: &str) -> Vec<u8> {
    let mut out = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: hookdock.test\r\nContent-Type: \
         application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {}\r\n\
         Content-Length: {}\r\n{extra}X-GitHub-Delivery: ",
        signature(body),
        content_length.unwrap_or(body.len()),
    )
    .into_bytes();
    out.extend_from_slice(id);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

fn body_for(id: &str) -> Vec<u8> {
    format!("{{\"ref\":\"refs/heads/main\",\"delivery\":\"{id}\"}}").into_bytes()
}

/// What came back on one connection.
#[derive(Debug)]
struct Answer {
    text: String,
    /// The server closed the connection (rather than the test giving up waiting).
    closed: bool,
}

impl Answer {
    /// The status of every response, in order.
    fn statuses(&self) -> Vec<u16> {
        self.text
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|r| r.get(..3)?.parse().ok())
            .collect()
    }
}

/// Sends each part (with a pause between parts) on one connection, then reads until the
/// server closes it or [`BOUND`] passes.
async fn exchange(addr: SocketAddr, parts: &[&[u8]]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stream.write_all(part).await.expect("send");
    }
    read_until_closed(&mut stream, BOUND).await
}

async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Answer {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(bound, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    Answer {
        text: String::from_utf8_lossy(&received).into_owned(),
        closed,
    }
}

#[tokio::test]
async fn headers_sent_slowly_are_cut_off_at_the_header_timeout() {
    let setup = Setup::start(&[]);
    let full = delivery(b"slow-head", &body_for("slow-head"), None, "");
    // Half the head now, a byte every 300 ms after: the head is never complete within 1 s.
    let mut stream = TcpStream::connect(setup.addr()).await.expect("connect");
    stream.write_all(&full[..40]).await.expect("send");
    let mut cut_off = false;
    for byte in &full[40..] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
    }
    let answer = read_until_closed(&mut stream, BOUND).await;
    assert!(cut_off || answer.closed, "the connection stayed open");
    // hyper closes it without an answer (no request was read).
    assert_eq!(answer.statuses(), Vec::<u16>::new(), "{answer:?}");
    assert!(setup.stored().is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let setup = Setup::start(&[]);
    let mut stream = TcpStream::connect(setup.addr()).await.expect("connect");
    stream
        .write_all(&delivery(b"idle-1", &body_for("idle-1"), None, ""))
        .await
        .expect("send");
    // One answer, then nothing from the client: the server closes the connection.
    let answer = read_until_closed(&mut stream, BOUND).await;
    assert!(answer.closed, "the idle connection stayed open: {answer:?}");
    assert_eq!(answer.statuses(), [200]);
    assert_eq!(setup.stored(), ["idle-1"]);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_gets_408_and_nothing_is_stored() {
    let setup = Setup::start(&[]);
    // Sent slowly: the head and five bytes, then nothing.
    let body = body_for("slow-body");
    let request = delivery(b"slow-body", &body, None, "");
    let slow = request[..request.len() - body.len() + 5].to_vec();
    // A Content-Length longer than the body sent.
    let body = body_for("cl-long");
    let lying = delivery(b"cl-long", &body, Some(body.len() + 100), "");
    for request in [slow, lying] {
        let answer = exchange(setup.addr(), &[&request]).await;
        assert!(answer.closed);
        assert_eq!(answer.statuses(), [408], "{answer:?}");
        assert!(answer.text.contains("body_timeout"), "{}", answer.text);
        assert!(answer.text.contains("connection: close"), "{}", answer.text);
    }
    assert!(setup.stored().is_empty());
}

#[tokio::test]
async fn a_content_length_shorter_than_the_body_is_refused_and_the_rest_is_not_a_request() {
    let setup = Setup::start(&[]);
    let body = body_for("cl-short");
    let answer = exchange(
        setup.addr(),
        &[&delivery(b"cl-short", &body, Some(body.len() - 10), "")],
    )
    .await;
    // The signature covers the whole body, not the prefix read: 401. The 10 bytes left over
    // are read as the next request, which is malformed: hyper's 400, and the connection ends.
    assert_eq!(answer.statuses(), [401, 400], "{answer:?}");
    assert!(answer.text.contains("bad_signature"), "{}", answer.text);
    assert!(answer.closed);
    assert!(setup.stored().is_empty());
}

#[tokio::test]
async fn content_length_and_chunked_together_the_chunked_body_counts_and_nothing_is_smuggled() {
    let setup = Setup::start(&[]);
    let body = body_for("te-and-cl");
    let mut request = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: hookdock.test\r\nX-GitHub-Delivery: \
         te-and-cl\r\nX-Hub-Signature-256: {}\r\nContent-Length: 4\r\nTransfer-Encoding: \
         chunked\r\n\r\n{:x}\r\n",
        signature(&body),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    // A second, valid delivery right behind it: a proxy that trusted the Content-Length
    // would see it as part of the first. It must not be served either.
    let smuggled = delivery(b"smuggled", &body_for("smuggled"), None, "");
    let answer = exchange(setup.addr(), &[&[request, smuggled].concat()]).await;
    // Transfer-Encoding wins (RFC 9112), the body is the chunked one, and hyper closes the
    // connection after a request that carried both.
    assert_eq!(answer.statuses(), [200], "{answer:?}");
    assert!(answer.closed);
    let rows = stored_rows(&setup.db);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[&("github".into(), "te-and-cl".into())].1,
        body,
        "stored the chunked body"
    );
}

#[tokio::test]
async fn oversized_headers_and_uris_get_431_and_a_long_unknown_path_404() {
    let setup = Setup::start(&[]);
    let big_header = [
        &b"POST /webhooks/github HTTP/1.1\r\nHost: hookdock.test\r\nX-Padding: "[..],
        &vec![b'a'; 70 * 1024],
        b"\r\n\r\n",
    ]
    .concat();
    let big_uri = [
        &b"POST /webhooks/"[..],
        &vec![b'a'; 70 * 1024],
        b" HTTP/1.1\r\nHost: hookdock.test\r\n\r\n",
    ]
    .concat();
    for request in [big_header, big_uri] {
        let answer = exchange(setup.addr(), &[&request]).await;
        // Over the 64 KiB head limit: `431` whether the headers or the URI are too long
        // (hyper's own `414`, for URIs over 65534 bytes, only shows with a larger limit).
        assert_eq!(
            answer.statuses(),
            [431],
            "{}",
            &answer.text[..80.min(answer.text.len())]
        );
        assert!(answer.closed);
    }
    let long_path = [
        &b"POST /webhooks/"[..],
        &vec![b'a'; 20 * 1024],
        b" HTTP/1.1\r\nHost: hookdock.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    assert_eq!(
        exchange(setup.addr(), &[&long_path]).await.statuses(),
        [404]
    );
    assert!(setup.stored().is_empty());
}

#[tokio::test]
async fn pipelined_deliveries_are_answered_in_order_and_all_stored() {
    let setup = Setup::start(&[]);
    let ids = ["pipe-1", "pipe-2", "pipe-3", "pipe-1"];
    let mut all = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let close = if i == ids.len() - 1 {
            "Connection: close\r\n"
        } else {
            ""
        };
        all.extend(delivery(id.as_bytes(), &body_for(id), None, close));
    }
    let answer = exchange(setup.addr(), &[&all]).await;
    assert_eq!(answer.statuses(), [200, 200, 200, 200], "{answer:?}");
    // In order: the fourth is the first again, acknowledged as a duplicate.
    let bodies: Vec<&str> = answer
        .text
        .split("\r\n\r\n")
        .skip(1)
        .map(|b| b.split("HTTP/1.1").next().unwrap_or_default())
        .collect();
    assert_eq!(bodies, ["stored\n", "stored\n", "stored\n", "duplicate\n"]);
    assert_eq!(setup.stored(), ["pipe-1", "pipe-2", "pipe-3"]);
}

#[tokio::test]
async fn duplicate_signature_headers_every_value_counts_and_conflicting_ids_are_refused() {
    // Every value of a repeated signature header is checked (issue 17, part 4, landed by
    // the providers work): one good value among them is enough, in either order.
    let setup = Setup::start(&[]);
    let body = body_for("dup-sig");
    let good = signature(&body);
    let bad = format!("sha256={}", "0".repeat(64));
    for (id, first, second, status) in [
        ("dup-good-bad", &good, &bad, 200),
        ("dup-bad-good", &bad, &good, 200),
        ("dup-bad-bad", &bad, &bad, 401),
    ] {
        let extra = format!("X-Hub-Signature-256: {second}\r\nConnection: close\r\n");
        let request = delivery(id.as_bytes(), &body, None, &extra);
        // `delivery` wrote the good signature first; put `first` there instead.
        let request = String::from_utf8(request)
            .expect("ascii")
            .replacen(&good, first, 1);
        let answer = exchange(setup.addr(), &[request.as_bytes()]).await;
        assert_eq!(answer.statuses(), [status], "{id}: {answer:?}");
    }
    // Two different delivery ids on one delivery: which one would be stored? Neither.
    let answer = exchange(
        setup.addr(),
        &[&delivery(
            b"dup-id-1",
            &body,
            None,
            "X-GitHub-Delivery: dup-id-2\r\nConnection: close\r\n",
        )],
    )
    .await;
    assert_eq!(answer.statuses(), [400], "{answer:?}");
    assert!(
        answer.text.contains("conflicting_header"),
        "{}",
        answer.text
    );
    assert_eq!(setup.stored(), ["dup-bad-good", "dup-good-bad"]);
}

#[tokio::test]
async fn ids_with_control_characters_or_invalid_utf8() {
    let setup = Setup::start(&[]);
    // Control characters other than tab are not allowed in a header value: hyper's 400,
    // before any of hookdock runs.
    for (n, id) in [
        &b"ctl-\x01-id"[..],
        b"ctl-\x7f-id",
        b"ctl-\x00-id",
        b"ctl-\r-id",
    ]
    .into_iter()
    .enumerate()
    {
        let body = body_for(&format!("ctl-{n}"));
        let answer = exchange(
            setup.addr(),
            &[&delivery(id, &body, None, "Connection: close\r\n")],
        )
        .await;
        assert_eq!(answer.statuses(), [400], "{id:?}: {answer:?}");
    }
    // A tab is allowed in a header value, but no backend stores a control character in an
    // id: `400 invalid_event_id`, nothing stored.
    let answer = exchange(
        setup.addr(),
        &[&delivery(
            b"tab\tid",
            &body_for("tab"),
            None,
            "Connection: close\r\n",
        )],
    )
    .await;
    assert_eq!(answer.statuses(), [400]);
    assert!(answer.text.contains("invalid_event_id"), "{answer:?}");

    // Not UTF-8: the id's bytes are kept exactly (never decoded lossily, so two different
    // ids can never collide), and refused: `400 invalid_event_id` for both, nothing stored.
    for (id, body) in [
        (&b"utf8-\xff\xfe"[..], body_for("utf8-a")),
        (b"utf8-\xfe\xff", body_for("utf8-b")),
    ] {
        let answer = exchange(
            setup.addr(),
            &[&delivery(id, &body, None, "Connection: close\r\n")],
        )
        .await;
        assert_eq!(answer.statuses(), [400], "{answer:?}");
        assert!(answer.text.contains("invalid_event_id"), "{answer:?}");
    }
    assert!(setup.stored().is_empty(), "{:?}", setup.stored());
}

#[tokio::test]
async fn wrong_methods_get_405_and_odd_paths_404() {
    let setup = Setup::start(&[]);
    let cases: [(&str, &str, u16); 12] = [
        ("GET", "/webhooks/github", 405),
        ("PUT", "/webhooks/github", 405),
        ("DELETE", "/webhooks/github", 405),
        ("BREW", "/webhooks/github", 405),
        ("POST", "/webhooks/github/", 404),
        ("POST", "/webhooks/GITHUB", 404),
        ("POST", "//webhooks/github", 404),
        ("POST", "/webhooks/%67ithub", 404),
        ("POST", "/../webhooks/github", 404),
        ("POST", "/webhooks", 404),
        ("POST", "*", 404),
        ("OPTIONS", "*", 404),
    ];
    for (method, path, status) in cases {
        let id = format!("odd-{method}-{}", path.replace('/', "_"));
        let request = String::from_utf8(delivery(
            id.as_bytes(),
            &body_for(&id),
            None,
            "Connection: close\r\n",
        ))
        .expect("ascii")
        .replacen("POST /webhooks/github", &format!("{method} {path}"), 1);
        let answer = exchange(setup.addr(), &[request.as_bytes()]).await;
        assert_eq!(answer.statuses(), [status], "{method} {path}: {answer:?}");
        if status == 405 {
            assert!(answer.text.contains("allow: POST"), "{}", answer.text);
        }
    }
    // The same route reached in other spellings is the route: a query, the absolute form.
    for (n, target) in [
        "/webhooks/github?x=1",
        "http://hookdock.test/webhooks/github",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("spelled-{n}");
        let request = String::from_utf8(delivery(
            id.as_bytes(),
            &body_for(&id),
            None,
            "Connection: close\r\n",
        ))
        .expect("ascii")
        .replacen("/webhooks/github", target, 1);
        assert_eq!(
            exchange(setup.addr(), &[request.as_bytes()])
                .await
                .statuses(),
            [200],
            "{target}"
        );
    }
    assert_eq!(setup.stored(), ["spelled-0", "spelled-1"]);
}

#[tokio::test]
async fn beyond_the_in_flight_limit_deliveries_get_503_with_retry_after() {
    let setup = Setup::start(&[
        ("HOOKDOCK_MAX_IN_FLIGHT", "2"),
        ("HOOKDOCK_BODY_TIMEOUT", "3s"),
    ]);
    // Two deliveries whose bodies never finish hold both places.
    let mut holders = Vec::new();
    for id in ["hold-1", "hold-2"] {
        let body = body_for(id);
        let request = delivery(id.as_bytes(), &body, None, "");
        let mut stream = TcpStream::connect(setup.addr()).await.expect("connect");
        stream
            .write_all(&request[..request.len() - 3])
            .await
            .expect("send");
        holders.push(stream);
    }
    // Give the receiver the heads (the places are taken when a head has been read).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = body_for("third");
    let answer = exchange(
        setup.addr(),
        &[&delivery(b"third", &body, None, "Connection: close\r\n")],
    )
    .await;
    assert_eq!(answer.statuses(), [503], "{answer:?}");
    assert!(answer.text.contains("retry-after: 5"), "{}", answer.text);
    // The holders time out (408); then there is room again.
    for mut stream in holders {
        let answer = read_until_closed(&mut stream, BOUND).await;
        assert_eq!(answer.statuses(), [408], "{answer:?}");
    }
    let answer = exchange(
        setup.addr(),
        &[&delivery(b"third", &body, None, "Connection: close\r\n")],
    )
    .await;
    assert_eq!(answer.statuses(), [200]);
    assert_eq!(setup.stored(), ["third"]);
}

/// Opens `n` connections that each send half a request head and then nothing.
async fn stalled(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: hookdock.test\r\n")
            .await
            .expect("send");
        streams.push(stream);
    }
    streams
}

/// Sends one signed delivery on a new connection; its status, and how long it took.
async fn deliver(addr: SocketAddr, id: &str) -> (Vec<u16>, Duration) {
    let started = Instant::now();
    let answer = exchange(
        addr,
        &[&delivery(
            id.as_bytes(),
            &body_for(id),
            None,
            "Connection: close\r\n",
        )],
    )
    .await;
    (answer.statuses(), started.elapsed())
}

#[tokio::test]
async fn at_the_connection_limit_the_oldest_idle_connection_makes_room() {
    let setup = Setup::start(&[
        ("HOOKDOCK_MAX_CONNECTIONS", "3"),
        ("HOOKDOCK_HEADER_TIMEOUT", "60s"),
    ]);
    let mut oldest = stalled(setup.addr(), 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (statuses, _) = deliver(setup.addr(), "room-1").await;
    assert_eq!(statuses, [200]);
    // The first stalled connection was closed for it (well before its 60 s timeout).
    let first = read_until_closed(&mut oldest[0], BOUND).await;
    assert!(first.closed, "the oldest stalled connection is still open");
    assert!(first.statuses().is_empty());
    assert_eq!(setup.stored(), ["room-1"]);
}

#[tokio::test]
async fn with_256_file_descriptors_300_stalled_connections_do_not_stop_a_delivery() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("fds.db");
    // The receiver under `ulimit -n 256`, with its default connection limit (1024): accept
    // runs out of descriptors first, and must make room by closing stalled connections.
    // Stalled connections are never timed out during the test (60 s).
    let inner = receiver_command(
        &db,
        SECRET,
        &[
            ("HOOKDOCK_WORKER", "off"),
            ("HOOKDOCK_HEADER_TIMEOUT", "60s"),
        ],
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 256 && exec \"$0\"")
        .arg(inner.get_program());
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let receiver = Receiver::spawn(cmd);
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", receiver.pid())).unwrap_or_default();
    if cfg!(target_os = "linux") {
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("limits");
        assert!(line.contains(" 256 "), "{line}");
    }

    let stalled = stalled(receiver.addr, 300).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (statuses, took) = tokio::time::timeout(BOUND, deliver(receiver.addr, "fds-1"))
        .await
        .expect("the delivery was answered");
    assert_eq!(statuses, [200]);
    println!("answered in {took:?} with 300 stalled connections and 256 file descriptors");
    // And again, with the stalled connections still open.
    let (statuses, took) = tokio::time::timeout(BOUND, deliver(receiver.addr, "fds-2"))
        .await
        .expect("the second delivery was answered");
    assert_eq!(statuses, [200]);
    println!("the second in {took:?}");
    drop(stalled);
    assert_eq!(stored_ids(&db), ["fds-1", "fds-2"]);
    let mut receiver = receiver;
    receiver.terminate();
    let status = receiver.wait_exit(BOUND).expect("exited");
    assert!(status.success(), "{status:?}");
    // The room was made by closing stalled connections, not by luck.
    let report = receiver.printed("edge: ").pop().expect("edge report");
    let closed: u64 = report
        .split(" closed to make room")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(closed > 0, "{report}");
    println!("{report}");
}

#[tokio::test]
async fn sigterm_with_stalled_clients_exits_within_the_deadline_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("term.db");
    let mut receiver = Receiver::start(
        &db,
        SECRET,
        &[
            ("HOOKDOCK_WORKER", "off"),
            ("HOOKDOCK_HEADER_TIMEOUT", "120s"),
            ("HOOKDOCK_BODY_TIMEOUT", "120s"),
            ("HOOKDOCK_SHUTDOWN_DEADLINE", "2s"),
        ],
    );
    let addr = receiver.addr;
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let id = format!("term-{n}");
        assert_eq!(deliver(addr, &id).await.0, [200]);
        acknowledged.push(id);
    }
    // Clients that hold on: heads never finished, bodies never finished, keep-alives idling.
    let _heads = stalled(addr, 50).await;
    let mut bodies = Vec::new();
    for n in 0..5 {
        let id = format!("never-{n}");
        let request = delivery(id.as_bytes(), &body_for(&id), None, "");
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&request[..request.len() - 3])
            .await
            .expect("send");
        bodies.push(stream);
    }
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(&delivery(b"idle", &body_for("idle"), None, ""))
        .await
        .expect("send");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    acknowledged.push("idle".into());
    // One delivery that is in flight at SIGTERM and finishes before the deadline.
    let late = delivery(b"late", &body_for("late"), None, "");
    let mut finishing = TcpStream::connect(addr).await.expect("connect");
    finishing
        .write_all(&late[..late.len() - 3])
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;

    receiver.terminate();
    let terminated = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    finishing
        .write_all(&late[late.len() - 3..])
        .await
        .expect("send the rest");
    let answer = read_until_closed(&mut finishing, BOUND).await;
    assert_eq!(answer.statuses(), [200], "in flight at SIGTERM: {answer:?}");
    acknowledged.push("late".into());

    let status = receiver
        .wait_exit(Duration::from_secs(30))
        .expect("the receiver exited after SIGTERM");
    let took = terminated.elapsed();
    assert!(status.success(), "{status:?}");
    println!("exited {took:?} after SIGTERM (shutdown deadline 2 s)");
    let report = receiver
        .printed("edge: ")
        .pop()
        .expect("the edge report is printed");
    assert!(
        report.contains(" 55 connections closed at the shutdown deadline"),
        "{report}"
    );
    // Every stalled client was cut off.
    for mut stream in bodies {
        let answer = read_until_closed(&mut stream, BOUND).await;
        assert!(answer.closed && answer.statuses().is_empty(), "{answer:?}");
    }
    acknowledged.sort();
    assert_eq!(
        stored_ids(&db),
        acknowledged,
        "stored exactly what was acknowledged"
    );
}
