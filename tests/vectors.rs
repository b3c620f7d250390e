//! Published provider test vectors: every one must verify, or be rejected for exactly the
//! stated reason.
//!
//! Reads `tests/data/providers.json` and `tests/data/providers2.json`, or only the file named
//! by `HOOKDOCK_VECTORS` (either format):
//! `HOOKDOCK_VECTORS=path cargo test --all-features --test vectors`.

use std::time::{Duration, UNIX_EPOCH};

use hookdock::scheme::{Algorithm, Encoding, GenericHmac, Preset, Scheme, SignedRequest};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    provider: String,
    name: String,
    secret: String,
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
    request: Request,
    now: u64,
    expect: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn config<'a>(v: &'a Vector, key: &str) -> &'a str {
    v.config
        .get(key)
        .and_then(|x| x.as_str())
        .unwrap_or_else(|| panic!("vector {:?} lacks config.{key}", v.name))
}

fn scheme_for(v: &Vector) -> Preset {
    let s = [v.secret.as_str()];
    let built = match v.provider.as_str() {
        "github" => Preset::github(s),
        "stripe" => Preset::stripe(s),
        "standard-webhooks" => Preset::standard_webhooks(s),
        "standard-webhooks-v1a" => Preset::standard_webhooks_ed25519(s),
        "slack" => Preset::slack(s),
        "shopify" => Preset::shopify(s),
        "twilio" => Preset::twilio(s, config(v, "public_url")),
        "paddle" => Preset::paddle(s),
        "square" => Preset::square(s, config(v, "notification_url")),
        "hubspot" => Preset::hubspot(s, config(v, "public_url")),
        "pagerduty" => Preset::pagerduty(s),
        "gitlab" => Preset::gitlab(s),
        "discord" => Preset::discord(s),
        "meta" => Preset::meta(s),
        "zoom" => Preset::zoom(s),
        "twitch" => Preset::twitch(s),
        "linear" => Preset::linear(s),
        "intercom" => Preset::intercom(s),
        "mailgun" => Preset::mailgun(s),
        "sendgrid" => Preset::sendgrid(s),
        "typeform" => Preset::typeform(s),
        "calendly" => Preset::calendly(s),
        "bitbucket-cloud" => Preset::bitbucket_cloud(s),
        "vercel" => Preset::vercel(s),
        "lemonsqueezy" => Preset::lemonsqueezy(s),
        "mux" => Preset::mux(s),
        "coinbase-commerce" => Preset::coinbase_commerce(s),
        "razorpay" => Preset::razorpay(s),
        "paystack" => Preset::paystack(s),
        "sentry" => Preset::sentry(s),
        "circleci" => Preset::circleci(s),
        "docusign" => Preset::docusign(s),
        "generic-hmac" => GenericHmac::new("generic-hmac", config(v, "header"))
            .algorithm(match config(v, "algorithm") {
                "sha256" => Algorithm::Sha256,
                "sha1" => Algorithm::Sha1,
                other => panic!("unknown algorithm {other}"),
            })
            .encoding(match config(v, "encoding") {
                "hex" => Encoding::Hex,
                "base64" => Encoding::Base64,
                other => panic!("unknown encoding {other}"),
            })
            .prefix(config(v, "prefix"))
            .build(s),
        other => panic!("vector {:?}: no preset for provider {other:?}", v.name),
    };
    built.unwrap_or_else(|e| panic!("vector {:?}: cannot build scheme: {e}", v.name))
}

#[test]
fn every_published_vector() {
    let paths: Vec<String> = match std::env::var("HOOKDOCK_VECTORS") {
        Ok(path) => vec![path],
        Err(_) => ["providers.json", "providers2.json"]
            .iter()
            .map(|f| format!("{}/tests/data/{f}", env!("CARGO_MANIFEST_DIR")))
            .collect(),
    };
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let file: File =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
        assert!(!file.vectors.is_empty(), "{path} holds no vectors");
        for v in &file.vectors {
            if let Some(failure) = check(v) {
                failures.push(failure);
            }
        }
        println!("{} vectors checked from {path}", file.vectors.len());
    }
    assert!(
        failures.is_empty(),
        "failing vectors:\n{}",
        failures.join("\n")
    );
}

/// Verifies one vector; a description of the mismatch, if any.
fn check(v: &Vector) -> Option<String> {
    let scheme = scheme_for(v);
    let uri: http::Uri = v.request.url.parse().expect("vector URL");
    let method: http::Method = v.request.method.parse().expect("vector method");
    let mut headers = http::HeaderMap::new();
    for (name, value) in &v.request.headers {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value).expect("header value"),
        );
    }
    let request = SignedRequest {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: v.request.body.as_bytes(),
        now: UNIX_EPOCH + Duration::from_secs(v.now),
    };
    let outcome = scheme.verify(&request);
    let ok = match (v.expect.as_str(), &outcome) {
        ("valid", Ok(_)) => true,
        ("invalid", Err(r)) => Some(r.kind().as_str()) == v.reason.as_deref(),
        _ => false,
    };
    (!ok).then(|| {
        format!(
            "{} / {}: expected {} {:?}, got {:?}",
            v.provider, v.name, v.expect, v.reason, outcome
        )
    })
}
