//! Property tests for every preset, driven by the test signer:
//!
//! - what the signer signs, the preset accepts (round trip), with the id and timestamp sent;
//! - changing one byte of the body, of the signature header, or of a signed header (timestamp,
//!   id) is rejected, with the kind that change calls for;
//! - arbitrary values in any of the scheme's headers, arbitrary bodies and URIs never panic.
//!
//! Case counts are kept low enough for the whole file to run in seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hookdock::scheme::{
    Algorithm, Encoding, GenericHmac, Preset, RejectionKind, Scheme, SignedPart,
};
use hookdock::testing::{SignedDelivery, Signer};
use http::{HeaderName, HeaderValue, Uri};
use proptest::prelude::*;
use proptest::sample::Index;

const T0: u64 = 1_700_000_000;

/// One preset under test, with a signer for it.
struct Case {
    preset: Preset,
    signer: Signer,
    /// Twilio with form bodies: the provider signs decoded parameters, not bytes.
    form: bool,
    /// The body is covered by the signature (false for GitLab's token).
    body_signed: bool,
    /// Where the id header is signed (Standard Webhooks, the generic case).
    id_signed: bool,
    /// The timestamp is compared in milliseconds (HubSpot, Linear; Twitch's RFC 3339).
    millis: bool,
    /// The timestamp is RFC 3339 text (Twitch).
    rfc3339: bool,
}

fn case(name: &str) -> Case {
    let hmac = |preset: Preset| Signer::new(&preset).map(|s| (preset, s));
    let built = match name {
        "standard_webhooks" => hmac(
            Preset::standard_webhooks([
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "whsec_c2Vjb25kIHNlY3JldA==",
            ])
            .unwrap(),
        ),
        "standard_webhooks_ed25519" => {
            Signer::standard_webhooks_ed25519("whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .map(|s| (s.preset().clone(), s))
        }
        "github" => hmac(Preset::github(["It's a Secret to Everybody", "second"]).unwrap()),
        "stripe" => hmac(Preset::stripe(["whsec_test_secret"]).unwrap()),
        "shopify" => hmac(Preset::shopify(["shpss_secret"]).unwrap()),
        "slack" => hmac(Preset::slack(["8f742231b10e8888abcd99yyyzzz85a5"]).unwrap()),
        "twilio_form" | "twilio_json" => {
            hmac(Preset::twilio(["12345"], "https://mycompany.com").unwrap())
        }
        "gitlab" => Signer::gitlab("glpat-secret-token").map(|s| (s.preset().clone(), s)),
        "paddle" => hmac(Preset::paddle(["pdl_ntfset_secret"]).unwrap()),
        "square" => hmac(
            Preset::square(["sq-signature-key"], "https://example.com/webhooks/square").unwrap(),
        ),
        "hubspot" => hmac(Preset::hubspot(["client-secret"], "https://example.com").unwrap()),
        "pagerduty" => hmac(Preset::pagerduty(["pd-secret"]).unwrap()),
        "clerk" => hmac(Preset::clerk(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap()),
        "resend" => hmac(Preset::resend(["whsec_c2Vjb25kIHNlY3JldA=="]).unwrap()),
        "openai" => hmac(Preset::openai(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap()),
        "replicate" => hmac(Preset::replicate(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap()),
        "discord" => {
            Signer::discord("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .map(|s| (s.preset().clone(), s))
        }
        "sendgrid" => Signer::sendgrid("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=")
            .map(|s| (s.preset().clone(), s)),
        "meta" => hmac(Preset::meta(["app-secret", "old-app-secret"]).unwrap()),
        "zoom" => hmac(Preset::zoom(["zoom-secret-token"]).unwrap()),
        "twitch" => hmac(Preset::twitch(["twitch-secret-0123"]).unwrap()),
        "linear" => hmac(Preset::linear(["lin_wh_secret"]).unwrap()),
        "intercom" => hmac(Preset::intercom(["ic-client-secret"]).unwrap()),
        "typeform" => hmac(Preset::typeform(["tf-secret"]).unwrap()),
        "calendly" => hmac(Preset::calendly(["calendly-key"]).unwrap()),
        "bitbucket_cloud" => hmac(Preset::bitbucket_cloud(["bb-secret"]).unwrap()),
        "vercel" => hmac(Preset::vercel(["vercel-secret"]).unwrap()),
        "lemonsqueezy" => hmac(Preset::lemonsqueezy(["ls-secret"]).unwrap()),
        "mux" => hmac(Preset::mux(["mux-secret"]).unwrap()),
        "coinbase_commerce" => hmac(Preset::coinbase_commerce(["cc-secret"]).unwrap()),
        "razorpay" => hmac(Preset::razorpay(["rzp-secret"]).unwrap()),
        "paystack" => hmac(Preset::paystack(["sk_test_x"]).unwrap()),
        "sentry" => hmac(Preset::sentry(["sentry-secret"]).unwrap()),
        "circleci" => hmac(Preset::circleci(["circleci-secret"]).unwrap()),
        "docusign" => hmac(Preset::docusign(["dsk-1", "dsk-2"]).unwrap()),
        "generic" => hmac(
            GenericHmac::new("acme", "x-acme-signature")
                .algorithm(Algorithm::Sha1)
                .encoding(Encoding::Base64)
                .prefix("sha1=")
                .list_separator(b',')
                .timestamp_header("x-acme-timestamp", Duration::from_secs(60))
                .id_header("x-acme-delivery")
                .signed_content([
                    SignedPart::Id,
                    SignedPart::lit(":"),
                    SignedPart::Timestamp,
                    SignedPart::lit(":"),
                    SignedPart::Body,
                ])
                .build(["acme-secret"])
                .unwrap(),
        ),
        other => panic!("no case {other}"),
    };
    let (preset, signer) = built.unwrap();
    Case {
        preset,
        signer,
        form: name == "twilio_form",
        body_signed: name != "gitlab",
        id_signed: matches!(
            name,
            "standard_webhooks"
                | "standard_webhooks_ed25519"
                | "generic"
                | "clerk"
                | "resend"
                | "openai"
                | "replicate"
                | "twitch"
        ),
        millis: matches!(name, "hubspot" | "twitch" | "linear"),
        rfc3339: name == "twitch",
    }
}

impl Case {
    /// The replay window in the timestamp's unit, if the scheme checks one.
    fn window(&self) -> Option<i64> {
        let w = self.preset.replay_window()?;
        Some(if self.millis {
            w.as_millis() as i64
        } else {
            w.as_secs() as i64
        })
    }

    fn sign(&self, body: &[u8], id: &str, at: SystemTime) -> SignedDelivery {
        // Linear's timestamp lives in the body, which the signer rewrites as JSON: the body
        // under test is a field of it.
        let wrapped;
        let body = if self.preset.name() == "linear" {
            wrapped = serde_json::to_vec(&serde_json::json!({
                "data": String::from_utf8_lossy(body)
            }))
            .unwrap();
            &wrapped[..]
        } else {
            body
        };
        let mut d = self
            .signer
            .delivery(Bytes::copy_from_slice(body))
            .timestamp(at)
            .id(id)
            .event_type("test.event")
            .uri(Uri::from_static("/hooks/in?tenant=7"));
        if !self.form && self.preset.name() == "twilio" {
            d = d.content_type(HeaderValue::from_static("application/json"));
        }
        d.sign().unwrap()
    }

    /// The headers whose values are signed, other than the signature header.
    fn signed_headers(&self, d: &SignedDelivery) -> Vec<(HeaderName, SignedKind)> {
        let mut out = Vec::new();
        for name in self.preset.header_names() {
            if !d.headers.contains_key(name) {
                continue;
            }
            let n = name.as_str();
            if n.ends_with("timestamp") && self.rfc3339 {
                out.push((name.clone(), SignedKind::Rfc3339));
            } else if n.ends_with("timestamp") {
                out.push((name.clone(), SignedKind::Timestamp));
            } else if self.id_signed && (n.ends_with("-id") || n.ends_with("delivery")) {
                out.push((name.clone(), SignedKind::Id));
            }
        }
        out
    }

    /// The kind a changed timestamp text must get, following the documented rules: not a
    /// decimal number → malformed; outside the window → too old / in the future; otherwise the
    /// signature (which covers the exact text) no longer matches.
    fn expected_for_timestamp(&self, text: &[u8], now: SystemTime) -> RejectionKind {
        let trimmed = text.trim_ascii();
        if trimmed.is_empty() || trimmed.len() > 18 || !trimmed.iter().all(u8::is_ascii_digit) {
            return RejectionKind::MalformedHeader;
        }
        let value: i64 = std::str::from_utf8(trimmed).unwrap().parse().unwrap();
        let now_ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let now = if self.millis { now_ms } else { now_ms / 1000 };
        match self.window() {
            Some(w) if now - value > w => RejectionKind::TimestampTooOld,
            Some(w) if now - value < -w => RejectionKind::TimestampInFuture,
            _ => RejectionKind::BadSignature,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SignedKind {
    Timestamp,
    Rfc3339,
    Id,
}

fn verify(case: &Case, d: &SignedDelivery, now: SystemTime) -> Result<(), RejectionKind> {
    case.preset
        .verify(&d.signed_request(now))
        .map(|_| ())
        .map_err(|r| r.kind())
}

/// A byte that can appear in a header value (tab, visible ASCII, space, obs-text).
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff]
}

/// Bodies: any bytes, or for Twilio forms `key=value&...` with alphanumeric keys and values.
fn body(form: bool) -> BoxedStrategy<Vec<u8>> {
    if form {
        prop::collection::vec("[a-zA-Z0-9]{1,6}=[a-zA-Z0-9]{0,8}", 0..6)
            .prop_map(|pairs| pairs.join("&").into_bytes())
            .boxed()
    } else {
        prop::collection::vec(any::<u8>(), 0..400).boxed()
    }
}

/// A signing time (with a sub-second part), and where in the replay window to verify it,
/// from -1000 (the window's past edge) to 1000 (its future edge).
fn times() -> impl Strategy<Value = (SystemTime, i64)> {
    (0u64..100_000_000, 0u64..1000, -1000i64..=1000).prop_map(|(s, ms, drift)| {
        (
            UNIX_EPOCH + Duration::from_secs(T0 + s) + Duration::from_millis(ms),
            drift,
        )
    })
}

/// The verifying time for a drift from [`times`]: inside the case's window (a second short of
/// each edge, as seconds-timestamps are compared in whole seconds), or up to a day either way
/// for schemes without a window.
fn verifying_time(case: &Case, at: SystemTime, drift: i64) -> SystemTime {
    let span_ms = match case.preset.replay_window() {
        Some(w) => w.as_millis() as i64 - 1000,
        None => 86_400_000,
    };
    let offset = span_ms * drift / 1000;
    if offset >= 0 {
        at + Duration::from_millis(offset as u64)
    } else {
        at - Duration::from_millis(offset.unsigned_abs())
    }
}

/// 48 cases per property (the whole file runs in seconds); `PROPTEST_CASES=n` for more.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

macro_rules! props {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            fn case() -> Case {
                super::case(stringify!($name))
            }

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn round_trip(
                    body in body(case().form),
                    id in "[a-zA-Z0-9_-]{1,40}",
                    (at, drift) in times(),
                ) {
                    let case = case();
                    let now = verifying_time(&case, at, drift);
                    let d = case.sign(&body, &id, at);
                    let v = case.preset.verify(&d.signed_request(now));
                    let v = v.map_err(|r| TestCaseError::fail(format!("{r} ({:?})", d.headers)))?;
                    prop_assert_eq!(v.scheme, case.preset.name());
                    if case.preset.header_names().any(|n| d.headers.contains_key(n)
                        && d.headers[n] == id.as_str())
                    {
                        prop_assert_eq!(v.id.as_str(), id.as_str());
                    }
                    if case.window().is_some() {
                        let signed = v.timestamp.expect("a signed timestamp");
                        let unit = if case.millis { 1 } else { 1000 };
                        let at_ms = at.duration_since(UNIX_EPOCH).unwrap().as_millis();
                        let got_ms = signed.duration_since(UNIX_EPOCH).unwrap().as_millis();
                        prop_assert_eq!(got_ms, at_ms / unit * unit);
                    }
                }

                #[test]
                fn one_body_byte_changed(
                    body in body(case().form),
                    at_index in any::<Index>(),
                    replacement in any::<u8>(),
                    alnum in "[a-zA-Z0-9]",
                ) {
                    let case = case();
                    let at = UNIX_EPOCH + Duration::from_secs(T0);
                    let mut d = case.sign(&body, "id-1", at);
                    let mut bytes = d.body.to_vec();
                    if case.form {
                        // Only letters and digits: other changes can decode to the same
                        // parameters, which is what Twilio signs.
                        let spots: Vec<usize> = (0..bytes.len())
                            .filter(|&i| bytes[i].is_ascii_alphanumeric())
                            .collect();
                        prop_assume!(!spots.is_empty());
                        let i = spots[at_index.index(spots.len())];
                        let new = alnum.as_bytes()[0];
                        prop_assume!(new != bytes[i]);
                        bytes[i] = new;
                    } else {
                        prop_assume!(!bytes.is_empty());
                        let i = at_index.index(bytes.len());
                        prop_assume!(replacement != bytes[i]);
                        bytes[i] = replacement;
                    }
                    d.body = Bytes::from(bytes);
                    let outcome = verify(&case, &d, at);
                    if case.body_signed {
                        prop_assert_eq!(outcome, Err(RejectionKind::BadSignature));
                    } else {
                        // A token scheme does not cover the body at all.
                        prop_assert_eq!(outcome, Ok(()));
                    }
                }

                #[test]
                fn one_signature_byte_changed(
                    body in body(case().form),
                    at_index in any::<Index>(),
                    replacement in header_byte(),
                ) {
                    let case = case();
                    let at = UNIX_EPOCH + Duration::from_secs(T0);
                    let mut d = case.sign(&body, "id-1", at);
                    let name = case.preset.header_names().next().unwrap().clone();
                    let mut value = d.headers[&name].as_bytes().to_vec();
                    let i = at_index.index(value.len());
                    prop_assume!(value[i] != replacement);
                    let original = value.clone();
                    value[i] = replacement;
                    d.headers.insert(name, HeaderValue::from_bytes(&value).unwrap());

                    // Stripe and Paddle carry the timestamp in the signature header, as the
                    // first item: `t=<ts>,v1=...` / `ts=<ts>;h1=...`.
                    let expected = match embedded_timestamp(&original) {
                        Some((start, end)) if (start..end).contains(&i) => {
                            // The changed byte may itself be the list separator, which ends
                            // the timestamp item early.
                            let sep = if start == 2 { b',' } else { b';' };
                            let item = value[start..].split(|&b| b == sep).next().unwrap_or(&[]);
                            case.expected_for_timestamp(item, at)
                        }
                        // The `t=` prefix or the separator after the timestamp.
                        Some((_, end)) if i <= end => RejectionKind::MalformedHeader,
                        _ => RejectionKind::BadSignature,
                    };
                    prop_assert_eq!(verify(&case, &d, at), Err(expected));
                }

                #[test]
                fn arbitrary_headers_never_panic(
                    start_signed in any::<bool>(),
                    body in prop::collection::vec(any::<u8>(), 0..300),
                    headers in prop::collection::vec(
                        (any::<Index>(), prop::collection::vec(any::<u8>(), 0..120)),
                        0..8,
                    ),
                    path in "/[a-zA-Z0-9/%?&=._~+-]{0,40}",
                    now_secs in any::<u64>(),
                ) {
                    let case = case();
                    let mut d = if start_signed {
                        case.sign(&body, "id-1", UNIX_EPOCH + Duration::from_secs(T0))
                    } else {
                        let mut d = case.sign(b"", "id-1", UNIX_EPOCH);
                        d.headers.clear();
                        d.body = Bytes::from(body);
                        d
                    };
                    if let Ok(uri) = path.parse::<Uri>() {
                        d.uri = uri;
                    }
                    let mut names: Vec<HeaderName> = case.preset.header_names().cloned().collect();
                    names.push(http::header::CONTENT_TYPE);
                    for (which, value) in headers {
                        let name = names[which.index(names.len())].clone();
                        if let Ok(value) = HeaderValue::from_bytes(&value) {
                            d.headers.append(name, value);
                        }
                    }
                    // Any time at all, including ones far outside the window.
                    let now = UNIX_EPOCH
                        .checked_add(Duration::from_secs(now_secs))
                        .unwrap_or(UNIX_EPOCH);
                    let _ = case.preset.verify(&d.signed_request(now));
                }

                #[test]
                fn a_missing_header_is_named(
                    body in body(case().form),
                    which in any::<Index>(),
                ) {
                    let case = case();
                    let at = UNIX_EPOCH + Duration::from_secs(T0);
                    let mut d = case.sign(&body, "id-1", at);
                    // The signature header, and every signed header, is required.
                    let sig = case.preset.header_names().next().unwrap().clone();
                    let mut required = vec![sig];
                    required.extend(case.signed_headers(&d).into_iter().map(|(n, _)| n));
                    let name = required[which.index(required.len())].clone();
                    d.headers.remove(&name);
                    let rejection = case.preset.verify(&d.signed_request(at)).unwrap_err();
                    prop_assert_eq!(rejection.kind(), RejectionKind::MissingHeader);
                    prop_assert_eq!(rejection.header(), Some(&name));
                }
            }
        }
    )*};
}

/// The byte range of the timestamp in a `t=<ts>,...` or `ts=<ts>;...` signature header.
fn embedded_timestamp(value: &[u8]) -> Option<(usize, usize)> {
    let start = if value.starts_with(b"t=") {
        2
    } else if value.starts_with(b"ts=") {
        3
    } else {
        return None;
    };
    let end = start + value[start..].iter().position(|b| !b.is_ascii_digit())?;
    Some((start, end))
}

props!(
    standard_webhooks,
    standard_webhooks_ed25519,
    github,
    stripe,
    shopify,
    slack,
    twilio_form,
    twilio_json,
    gitlab,
    paddle,
    square,
    hubspot,
    pagerduty,
    generic,
    clerk,
    resend,
    openai,
    replicate,
    discord,
    sendgrid,
    meta,
    zoom,
    twitch,
    linear,
    intercom,
    typeform,
    calendly,
    bitbucket_cloud,
    vercel,
    lemonsqueezy,
    mux,
    coinbase_commerce,
    razorpay,
    paystack,
    sentry,
    circleci,
    docusign,
);

/// For the schemes that sign header values (a timestamp header, an id header).
macro_rules! signed_header_props {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn one_signed_header_byte_changed(
                    body in body(false),
                    which in any::<Index>(),
                    at_index in any::<Index>(),
                    replacement in header_byte(),
                ) {
                    let case = super::case(stringify!($name));
                    let at = UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(250);
                    let mut d = case.sign(&body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at);
                    let signed = case.signed_headers(&d);
                    prop_assert!(!signed.is_empty(), "this scheme signs a header");
                    let (name, kind) = signed[which.index(signed.len())].clone();
                    let mut value = d.headers[&name].as_bytes().to_vec();
                    let i = at_index.index(value.len());
                    prop_assume!(value[i] != replacement);
                    // A digit of an RFC 3339 fraction, changed to another digit: still a
                    // valid time, within the window, but not the signed text.
                    let fraction_digit = kind == SignedKind::Rfc3339
                        && i > 20
                        && value[i].is_ascii_digit()
                        && replacement.is_ascii_digit();
                    value[i] = replacement;
                    d.headers.insert(name, HeaderValue::from_bytes(&value).unwrap());
                    let outcome = verify(&case, &d, at);
                    match kind {
                        SignedKind::Timestamp => prop_assert_eq!(
                            outcome,
                            Err(case.expected_for_timestamp(&value, at))
                        ),
                        SignedKind::Id => {
                            prop_assert_eq!(outcome, Err(RejectionKind::BadSignature))
                        }
                        SignedKind::Rfc3339 if fraction_digit => {
                            prop_assert_eq!(outcome, Err(RejectionKind::BadSignature))
                        }
                        // Any other change: malformed, out of the window, or not what was
                        // signed; never accepted.
                        SignedKind::Rfc3339 => prop_assert!(outcome.is_err(), "{outcome:?}"),
                    }
                }

            }
        }
    )*};
}

mod signed_headers {
    use super::*;

    signed_header_props!(
        standard_webhooks,
        standard_webhooks_ed25519,
        slack,
        hubspot,
        generic,
        clerk,
        discord,
        sendgrid,
        zoom,
        twitch,
    );
}

/// Every rejection kind the published vectors name is produced, is distinct, carries the
/// name the vectors use, and maps to the documented status.
#[test]
fn every_vector_rejection_kind_is_distinguishable() {
    let preset = Preset::stripe(["whsec_x"]).unwrap();
    let signer = Signer::new(&preset).unwrap();
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    let kind = |d: &SignedDelivery, now: SystemTime| {
        preset.verify(&d.signed_request(now)).unwrap_err().kind()
    };
    let good = signer.delivery("{}").timestamp(at).sign().unwrap();

    let mut missing = good.clone();
    missing.headers.clear();
    let mut malformed = good.clone();
    malformed.headers.insert(
        "stripe-signature",
        HeaderValue::from_static("v1=00,t=notanumber"),
    );
    let mut bad = good.clone();
    bad.body = Bytes::from_static(b"{ }");

    let mut conflicting = good.clone();
    let other = signer
        .delivery("{}")
        .timestamp(at + Duration::from_secs(1))
        .sign()
        .unwrap();
    conflicting.headers.append(
        "stripe-signature",
        other.headers["stripe-signature"].clone(),
    );

    let produced = [
        (kind(&conflicting, at), "conflicting_header"),
        (kind(&missing, at), "missing_header"),
        (kind(&malformed, at), "malformed_header"),
        (kind(&bad, at), "bad_signature"),
        (
            kind(&good, at + Duration::from_secs(301)),
            "timestamp_too_old",
        ),
        (
            kind(&good, at - Duration::from_secs(301)),
            "timestamp_in_future",
        ),
    ];
    for (i, (kind, name)) in produced.iter().enumerate() {
        assert_eq!(kind.as_str(), *name);
        for (other, _) in &produced[i + 1..] {
            assert_ne!(kind, other);
        }
        let status = if matches!(*name, "malformed_header" | "conflicting_header") {
            400
        } else {
            401
        };
        assert_eq!(kind.status().as_u16(), status, "{name}");
    }
}

/// Every case the header-level properties run over.
const ALL_CASES: &[&str] = &[
    "standard_webhooks",
    "standard_webhooks_ed25519",
    "github",
    "stripe",
    "shopify",
    "slack",
    "twilio_form",
    "twilio_json",
    "gitlab",
    "paddle",
    "square",
    "hubspot",
    "pagerduty",
    "generic",
    "clerk",
    "resend",
    "openai",
    "replicate",
    "discord",
    "sendgrid",
    "meta",
    "zoom",
    "twitch",
    "linear",
    "intercom",
    "typeform",
    "calendly",
    "bitbucket_cloud",
    "vercel",
    "lemonsqueezy",
    "mux",
    "coinbase_commerce",
    "razorpay",
    "paystack",
    "sentry",
    "circleci",
    "docusign",
];

/// A signature header value that no longer matches: its last letter or digit changed.
fn spoiled(value: &HeaderValue) -> HeaderValue {
    spoiled_at(value, 0)
}

/// `value` with its `nth` letter or digit from the end changed.
fn spoiled_at(value: &HeaderValue, nth: usize) -> HeaderValue {
    let mut bytes = value.as_bytes().to_vec();
    let i = (0..bytes.len())
        .rev()
        .filter(|&i| bytes[i].is_ascii_alphanumeric())
        .nth(nth)
        .expect("a signature has letters or digits");
    bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
    HeaderValue::from_bytes(&bytes).unwrap()
}

/// Issue 17: a repeated signature header is checked value by value, whatever the order, and
/// with the same rules as one value (any match is enough; no match is `bad_signature`).
#[test]
fn every_value_of_a_repeated_signature_header_is_checked() {
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    for name in ALL_CASES {
        let case = case(name);
        let good = case.sign(b"{\"id\":\"evt_1\",\"event_id\":\"e1\"}", "id-1", at);
        let sig = case.preset.header_names().next().unwrap().clone();
        let value = good.headers[&sig].clone();
        let bad = spoiled(&value);
        for (order, values, expected) in [
            ("good, bad", [value.clone(), bad.clone()], Ok(())),
            ("bad, good", [bad.clone(), value.clone()], Ok(())),
            (
                "bad, bad",
                [bad.clone(), spoiled_at(&value, 1)],
                Err(RejectionKind::BadSignature),
            ),
        ] {
            let mut d = good.clone();
            d.headers.remove(&sig);
            for v in values {
                d.headers.append(sig.clone(), v);
            }
            assert_eq!(verify(&case, &d, at), expected, "{name}: {order}");
        }
    }
}

/// Issue 17: two different values of the id header (or of a signed timestamp header) cannot
/// both be the delivery's; the request is refused as `conflicting_header` (400). The same
/// value twice is one value.
#[test]
fn conflicting_id_and_timestamp_headers_are_refused() {
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    let mut checked = 0;
    for name in ALL_CASES {
        let case = case(name);
        let good = case.sign(b"{}", "id-1", at);
        for header in case.preset.header_names().skip(1) {
            let n = header.as_str();
            let single = n.ends_with("-id")
                || n.ends_with("delivery")
                || n.ends_with("uuid")
                || n.ends_with("timestamp")
                || n.ends_with("idempotency-key");
            let Some(value) = good.headers.get(header).filter(|_| single).cloned() else {
                continue;
            };
            let mut same = good.clone();
            same.headers.append(header.clone(), value.clone());
            assert_eq!(verify(&case, &same, at), Ok(()), "{name}: {n} twice");
            let mut other = good.clone();
            other.headers.append(header.clone(), spoiled(&value));
            let rejection = case.preset.verify(&other.signed_request(at)).unwrap_err();
            assert_eq!(
                rejection.kind(),
                RejectionKind::ConflictingHeader,
                "{name}: {n}"
            );
            assert_eq!(rejection.header(), Some(header));
            assert_eq!(rejection.status().as_u16(), 400);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} headers checked");
}

/// Stripe-style headers carry the timestamp inside: two values must agree on it.
#[test]
fn signature_values_with_different_timestamps_conflict() {
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    for name in ["stripe", "paddle", "calendly", "mux"] {
        let case = case(name);
        let first = case.sign(b"{}", "id-1", at);
        let second = case.sign(b"{}", "id-1", at + Duration::from_secs(1));
        let sig = case.preset.header_names().next().unwrap().clone();
        let mut d = first.clone();
        d.headers.append(sig.clone(), second.headers[&sig].clone());
        assert_eq!(
            verify(&case, &d, at),
            Err(RejectionKind::ConflictingHeader),
            "{name}"
        );
    }
}

/// Mailgun signs fields of the body (`signature.timestamp` and `.token`), not the body.
mod mailgun {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&Preset::mailgun(["key-3ax6xnjp29jd6fds4gc373sgvjxteol0"]).unwrap()).unwrap()
    }

    fn body(event: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "event-data": {"event": event, "id": "CPgfbmQMTCKtHW6uIWtuVe"}
        }))
        .unwrap()
    }

    fn field_path(d: &SignedDelivery, field: &str) -> (serde_json::Value, String) {
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        let text = v["signature"][field].as_str().unwrap().to_owned();
        (v, text)
    }

    fn with_field(d: &SignedDelivery, field: &str, text: &str) -> SignedDelivery {
        let (mut v, _) = field_path(d, field);
        v["signature"][field] = text.into();
        let mut d = d.clone();
        d.body = Bytes::from(serde_json::to_vec(&v).unwrap());
        d
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn round_trip(token in "[a-z0-9]{20,50}", secs in 0u64..100_000_000) {
            let at = UNIX_EPOCH + Duration::from_secs(T0 + secs);
            let d = signer().delivery(body("delivered")).timestamp(at).id(token.clone()).sign().unwrap();
            let v = signer().preset().verify(&d.signed_request(at)).unwrap();
            prop_assert_eq!(v.id.as_str(), token.as_str());
            prop_assert_eq!(v.event_type.as_deref(), Some("delivered"));
            prop_assert_eq!(v.timestamp, Some(at - Duration::from_nanos(u64::from(at.duration_since(UNIX_EPOCH).unwrap().subsec_nanos()))));
        }

        #[test]
        fn one_signed_field_byte_changed(
            field in prop::sample::select(vec!["signature", "token", "timestamp"]),
            at_index in any::<Index>(),
            replacement in "[a-z0-9]",
        ) {
            let at = UNIX_EPOCH + Duration::from_secs(T0);
            let d = signer().delivery(body("opened")).timestamp(at).sign().unwrap();
            let (_, text) = field_path(&d, field);
            let mut bytes = text.into_bytes();
            let i = at_index.index(bytes.len());
            prop_assume!(bytes[i] != replacement.as_bytes()[0]);
            bytes[i] = replacement.as_bytes()[0];
            let changed = with_field(&d, field, &String::from_utf8(bytes.clone()).unwrap());
            let expected = if field == "timestamp" && !bytes.iter().all(u8::is_ascii_digit) {
                RejectionKind::MalformedHeader
            } else {
                RejectionKind::BadSignature
            };
            prop_assert_eq!(
                signer().preset().verify(&changed.signed_request(at)).map(|_| ()).map_err(|r| r.kind()),
                Err(expected)
            );
        }
    }

    #[test]
    fn the_event_data_is_not_signed_but_the_token_dedupes_a_replay() {
        let at = UNIX_EPOCH + Duration::from_secs(T0);
        let d = signer()
            .delivery(body("opened"))
            .timestamp(at)
            .id("tok-1")
            .sign()
            .unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        v["event-data"]["event"] = "clicked".into();
        let mut forged = d.clone();
        forged.body = Bytes::from(serde_json::to_vec(&v).unwrap());
        let verified = signer()
            .preset()
            .verify(&forged.signed_request(at))
            .unwrap();
        assert_eq!(
            verified.id.as_str(),
            "tok-1",
            "same id as the original delivery"
        );
    }

    #[test]
    fn a_missing_signature_is_missing() {
        let at = UNIX_EPOCH + Duration::from_secs(T0);
        for body in [&b"{\"event-data\":{}}"[..], b"not json", b""] {
            let mut d = signer().delivery("{}").timestamp(at).sign().unwrap();
            d.body = Bytes::copy_from_slice(body);
            let r = signer().preset().verify(&d.signed_request(at)).unwrap_err();
            assert_eq!(r.kind(), RejectionKind::MissingHeader);
            assert_eq!(r.header(), None);
        }
    }
}
