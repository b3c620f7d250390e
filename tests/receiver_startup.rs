//! The receiver example's start-up rules, as a real process: it fails closed (empty secrets
//! and tokens, development secrets or open admin routes off loopback are refused, each with
//! its message, before anything listens), and every secret variable takes a list (rotation).
//!
//! Refusals on a non-loopback address (`0.0.0.0:0`) are decided before the receiver binds,
//! so these tests never open a port beyond loopback.

mod support;

use std::path::Path;

use bytes::Bytes;
use hookdock::scheme::Preset;
use hookdock::testing::Signer;
use support::{receiver_command, refusal, stored_rows, Receiver};

/// Every secret set, so a case can remove or blank the one it is about.
const SECRETS: [(&str, &str); 3] = [
    ("HOOKDOCK_GITHUB_SECRET", "startup-github-secret"),
    ("HOOKDOCK_STRIPE_SECRET", "whsec_startup_stripe_secret"),
    (
        "HOOKDOCK_STANDARD_SECRET",
        "whsec_c3RhcnR1cC1zdGFuZGFyZC1zZWNyZXQtMzJieXRlcyE=",
    ),
];

/// Runs a receiver with every secret set, then `env` on top, then `unset` removed; it must
/// refuse to start with exit code 1 and a message containing every one of `expected`.
fn assert_refused(db: &Path, env: &[(&str, &str)], unset: &[&str], expected: &[&str]) {
    let mut cmd = receiver_command(db, SECRETS[0].1, &[]);
    cmd.envs(SECRETS).envs(env.iter().copied());
    for var in unset {
        cmd.env_remove(var);
    }
    let (code, stderr) = refusal(cmd);
    assert_eq!(code, Some(1), "{stderr}");
    for needle in expected {
        assert!(
            stderr.contains(needle),
            "expected {needle:?} in the refusal:\n{stderr}"
        );
    }
    // No secret is echoed back.
    for (_, secret) in SECRETS {
        assert!(!stderr.contains(secret), "{stderr}");
    }
}

#[test]
fn empty_or_blank_secrets_and_tokens_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("refused.db");
    for var in [
        "HOOKDOCK_GITHUB_SECRET",
        "HOOKDOCK_STRIPE_SECRET",
        "HOOKDOCK_STANDARD_SECRET",
        "HOOKDOCK_ADMIN_TOKEN",
    ] {
        for value in ["", "   ", "\t"] {
            assert_refused(
                &db,
                &[(var, value)],
                &[],
                &[&format!("{var} is set but empty")],
            );
        }
        assert_refused(
            &db,
            &[(var, "first,,third")],
            &[],
            &[&format!("{var}: secret #2 of 3 is empty")],
        );
    }
    assert!(!db.exists(), "refused before opening the database");
}

#[test]
fn off_loopback_the_development_secrets_and_open_admin_routes_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("refused.db");
    let public = ("HOOKDOCK_ADDR", "0.0.0.0:0");
    for (var, _) in SECRETS {
        assert_refused(
            &db,
            &[public, ("HOOKDOCK_ADMIN_TOKEN", "t")],
            &[var],
            &[
                &format!("{var} is not set, and this receiver is not on a loopback address"),
                "the development secret is public",
            ],
        );
    }
    // Every secret set, but no admin token.
    assert_refused(
        &db,
        &[public],
        &["HOOKDOCK_ADMIN_TOKEN"],
        &[
            "the admin routes (/admin/stats, /admin/dead, /admin/dead/replay) would be open to \
             anyone who can reach 0.0.0.0:0",
            "set HOOKDOCK_ADMIN_TOKEN, or HOOKDOCK_ADMIN=off",
        ],
    );
    // The limits cannot be turned off there either.
    assert_refused(
        &db,
        &[
            public,
            ("HOOKDOCK_ADMIN_TOKEN", "t"),
            ("HOOKDOCK_LIMITS", "off"),
        ],
        &[],
        &["HOOKDOCK_LIMITS=off", "only allowed on a loopback address"],
    );
    assert!(!db.exists(), "refused before opening the database");
}

#[test]
fn bad_edge_settings_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("refused.db");
    for (var, value, message) in [
        (
            "HOOKDOCK_HEADER_TIMEOUT",
            "10",
            "must be a duration such as 10s or 500ms",
        ),
        (
            "HOOKDOCK_BODY_TIMEOUT",
            "0s",
            "HOOKDOCK_BODY_TIMEOUT must be positive",
        ),
        (
            "HOOKDOCK_MAX_CONNECTIONS",
            "0",
            "max_connections: must be at least 1",
        ),
        (
            "HOOKDOCK_MAX_IN_FLIGHT",
            "many",
            "HOOKDOCK_MAX_IN_FLIGHT must be a whole number",
        ),
        (
            "HOOKDOCK_ROUTES",
            "github,gitlab",
            "unknown route \"gitlab\"",
        ),
        ("HOOKDOCK_ID_FROM_BODY", "githb", "unknown route \"githb\""),
    ] {
        assert_refused(&db, &[(var, value)], &[], &[message]);
    }
}

#[tokio::test]
async fn on_loopback_unset_secrets_are_the_printed_development_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("dev.db");
    let mut cmd = receiver_command(&db, "unused", &[("HOOKDOCK_WORKER", "off")]);
    for (var, _) in SECRETS {
        cmd.env_remove(var);
    }
    cmd.env_remove("HOOKDOCK_ADMIN_TOKEN");
    let receiver = Receiver::spawn(cmd);
    for (var, _) in SECRETS {
        let line = receiver.wait_for_line(var);
        assert!(line.contains("using the development secret"), "{line}");
    }
    let admin = receiver.wait_for_line("  admin: ");
    assert!(
        admin.contains("open, on this loopback address only"),
        "{admin}"
    );
    // The printed test command works: it is signed with the development secret.
    let curl = receiver.wait_for_line("curl -i ");
    let signature = curl
        .split("X-Hub-Signature-256: ")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("signature in the command");
    let body = curl
        .split("-d '")
        .nth(1)
        .and_then(|s| s.strip_suffix('\''))
        .expect("body in the command");
    let response = reqwest::Client::new()
        .post(format!("http://{}/webhooks/github", receiver.addr))
        .header("x-hub-signature-256", signature)
        .header("x-github-delivery", "dev-1")
        .body(body.to_owned())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    receiver.stop();
}

/// Sends `delivery` to `route`; the status.
async fn send(addr: std::net::SocketAddr, route: &str, signer: &Signer, id: &str) -> u16 {
    let delivery = signer
        .delivery(Bytes::from(format!(
            "{{\"id\":\"{id}\",\"type\":\"test\"}}"
        )))
        .id(id)
        .sign()
        .expect("signed");
    reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/{route}"))
        .headers(delivery.headers)
        .body(delivery.body)
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_receiver_with_two_secrets_accepts_deliveries_signed_with_either() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("rotation.db");
    let github = ["github-new-secret", "github-old-secret"];
    let stripe = ["whsec_new_stripe_secret", "whsec_old_stripe_secret"];
    let standard = [
        "whsec_bmV3LXN0YW5kYXJkLXNlY3JldC0zMi1ieXRlcyEhIQ==",
        "whsec_b2xkLXN0YW5kYXJkLXNlY3JldC0zMi1ieXRlcyEhIQ==",
    ];
    // Comma-separated, with the spaces people type around commas.
    let receiver = Receiver::start(
        &db,
        &github.join(", "),
        &[
            ("HOOKDOCK_WORKER", "off"),
            ("HOOKDOCK_STRIPE_SECRET", &stripe.join(",")),
            ("HOOKDOCK_STANDARD_SECRET", &standard.join(" , ")),
        ],
    );
    let banner = receiver.wait_for_line("HOOKDOCK_GITHUB_SECRET");
    assert!(banner.contains("2 secrets"), "{banner}");

    let presets = [
        ("github", Preset::github(github).expect("valid")),
        ("stripe", Preset::stripe(stripe).expect("valid")),
        (
            "standard",
            Preset::standard_webhooks(standard).expect("valid"),
        ),
    ];
    let mut expected = Vec::new();
    for (route, preset) in &presets {
        for index in 0..2 {
            let signer = Signer::for_secret(preset, index).expect("signer");
            let id = format!("{route}-secret-{index}");
            assert_eq!(send(receiver.addr, route, &signer, &id).await, 200, "{id}");
            expected.push((route.to_string(), id));
        }
        // A third secret is neither.
        let stranger = match *route {
            "github" => Preset::github(["github-other-secret"]),
            "stripe" => Preset::stripe(["whsec_other_stripe_secret"]),
            _ => Preset::standard_webhooks(["whsec_b3RoZXItc3RhbmRhcmQtc2VjcmV0LTMyLWJ5dGVzISE="]),
        }
        .expect("valid");
        let signer = Signer::new(&stranger).expect("signer");
        assert_eq!(
            send(receiver.addr, route, &signer, &format!("{route}-x")).await,
            401
        );
    }
    receiver.stop();
    let sources = |name: &str| match name {
        "standard" => "standard-webhooks".to_owned(),
        other => other.to_owned(),
    };
    let mut stored: Vec<(String, String)> = stored_rows(&db).into_keys().collect();
    stored.sort();
    let mut expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(route, id)| (sources(&route), id))
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn id_from_body_stores_a_replayed_github_delivery_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("replay.db");
    let secret = "replay-github-secret";
    let receiver = Receiver::start(
        &db,
        secret,
        &[
            ("HOOKDOCK_WORKER", "off"),
            ("HOOKDOCK_ID_FROM_BODY", "github"),
        ],
    );
    let signer = Signer::new(&Preset::github([secret]).expect("valid")).expect("signer");
    // One captured delivery, re-sent under four new delivery ids (GitHub does not sign
    // the id): one event.
    for id in ["captured", "forged-1", "forged-2", "forged-3"] {
        let delivery = signer
            .delivery(Bytes::from_static(b"{\"action\":\"opened\",\"number\":7}"))
            .id(id)
            .event_type("pull_request")
            .sign()
            .expect("signed");
        let response = reqwest::Client::new()
            .post(format!("http://{}/webhooks/github", receiver.addr))
            .headers(delivery.headers)
            .body(delivery.body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
    }
    receiver.stop();
    let rows = stored_rows(&db);
    assert_eq!(rows.len(), 1, "{:?}", rows.keys());
    let ((_, id), _) = rows.into_iter().next().expect("one row");
    assert_eq!(id.len(), 64, "the body's SHA-256 in hex: {id}");
}
