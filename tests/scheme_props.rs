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
    /// The timestamp is in milliseconds (HubSpot).
    millis: bool,
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
            "standard_webhooks" | "standard_webhooks_ed25519" | "generic"
        ),
        millis: name == "hubspot",
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
            if n.ends_with("timestamp") {
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
                    value[i] = replacement;
                    d.headers.insert(name, HeaderValue::from_bytes(&value).unwrap());
                    let expected = match kind {
                        SignedKind::Timestamp => case.expected_for_timestamp(&value, at),
                        SignedKind::Id => RejectionKind::BadSignature,
                    };
                    prop_assert_eq!(verify(&case, &d, at), Err(expected));
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
        generic
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

    let produced = [
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
        let status = if *name == "malformed_header" {
            400
        } else {
            401
        };
        assert_eq!(kind.status().as_u16(), status, "{name}");
    }
}
