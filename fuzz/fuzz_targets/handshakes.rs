//! Feeds arbitrary requests through every scheme that has a handshake, the way the verify
//! layer runs them: the handshake's `unsigned` step, the scheme's `verify`, and the
//! handshake's `verified` step (also on requests that did not verify, since its parsing must
//! hold up on its own). Covers the handshake parsers (Slack, Zoom, Twitch, Discord, Meta,
//! Okta, Microsoft Graph, AWS SNS), Microsoft Graph's `clientState` check, and the SNS message,
//! canonical string and certificate-URL parsers.
//!
//! Starting from a correctly signed handshake (the `signed` flag) lets the fuzzer reach the
//! answers, not only the refusals.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run handshakes`.
//!
//! Besides "never panics", it checks: an answer from the `unsigned` step of Meta only when
//! the verify token matched; an unmodified signed Slack, Zoom or Twitch handshake is answered.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use bytes::Bytes;
use hookdock::scheme::sns::{AwsSns, CertificateSource, FetchError, SnsUrl};
use hookdock::scheme::{IdOrigin, MicrosoftGraph, Preset, Scheme, SignedRequest, Verified};
use hookdock::testing::Signer;
use hookdock::verify::handshake::{MetaSubscribe, Reply};
use hookdock::EventId;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    scheme: u8,
    method: u8,
    query: String,
    body: Vec<u8>,
    headers: Vec<(u8, Vec<u8>)>,
    event_type: Option<String>,
    secret_index: u8,
    signed: Option<u8>,
}

struct Nothing;

#[async_trait::async_trait]
impl CertificateSource for Nothing {
    async fn fetch(&self, _: &SnsUrl) -> Result<Bytes, FetchError> {
        Err(FetchError::Status(404))
    }
}

/// Handshake bodies a signer starts from.
const SEEDS: [&str; 4] = [
    r#"{"token":"t","challenge":"c-1","type":"url_verification"}"#,
    r#"{"payload":{"plainToken":"p-1"},"event":"endpoint.url_validation"}"#,
    r#"{"challenge":"c-2","subscription":{"id":"x"}}"#,
    r#"{"type":1,"id":"1","application_id":"2"}"#,
];

fn schemes() -> &'static (Vec<Box<dyn Scheme>>, Vec<(Preset, Signer)>, Vec<HeaderName>) {
    static SCHEMES: OnceLock<(Vec<Box<dyn Scheme>>, Vec<(Preset, Signer)>, Vec<HeaderName>)> =
        OnceLock::new();
    SCHEMES.get_or_init(|| {
        let signed: Vec<(Preset, Signer)> = [
            Preset::slack(["s"]),
            Preset::zoom(["s", "t"]),
            Preset::twitch(["s"]),
        ]
        .into_iter()
        .map(|p| {
            let p = p.expect("preset");
            let signer = Signer::new(&p).expect("signer");
            (p, signer)
        })
        .collect();
        let mut all: Vec<Box<dyn Scheme>> = vec![
            Box::new(Preset::discord(["d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"]).expect("discord")),
            Box::new(
                Preset::meta(["s"])
                    .expect("meta")
                    .with_handshake(MetaSubscribe::new(["verify-token"]).expect("token")),
            ),
            Box::new(Preset::okta(["Basic abc"]).expect("okta")),
            Box::new(MicrosoftGraph::new(["state"]).expect("graph")),
            Box::new(
                AwsSns::builder(["arn:aws:sns:us-east-1:123456789012:t"])
                    .certificates(Nothing)
                    .build()
                    .expect("sns"),
            ),
        ];
        for (p, _) in &signed {
            all.push(Box::new(p.clone()));
        }
        let names = [
            "content-type",
            "authorization",
            "x-okta-verification-challenge",
            "x-amz-sns-message-type",
            "twitch-eventsub-message-type",
            "twitch-eventsub-message-id",
            "twitch-eventsub-message-timestamp",
            "twitch-eventsub-message-signature",
            "x-slack-signature",
            "x-slack-request-timestamp",
            "x-zm-signature",
            "x-zm-request-timestamp",
            "x-signature-ed25519",
            "x-signature-timestamp",
            "x-hub-signature-256",
        ]
        .map(HeaderName::from_static)
        .to_vec();
        (all, signed, names)
    })
}

fuzz_target!(|input: Input| {
    let (all, signed, names) = schemes();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let method = [Method::POST, Method::GET, Method::PUT][usize::from(input.method) % 3].clone();
    let uri: Uri = format!("/hook?{}", input.query)
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/hook"));

    // A signed handshake (Slack, Zoom or Twitch) as the starting point, or arbitrary parts.
    let (scheme, mut headers, body, unmodified): (&dyn Scheme, HeaderMap, Bytes, bool) =
        match input.signed {
            Some(n) => {
                let k = usize::from(n) % signed.len();
                let (preset, signer) = &signed[k];
                let Ok(mut delivery) = signer
                    .delivery(Bytes::from_static(SEEDS[k].as_bytes()))
                    .timestamp(now)
                    .sign()
                else {
                    return;
                };
                if k == 2 {
                    delivery.headers.insert(
                        "twitch-eventsub-message-type",
                        HeaderValue::from_static("webhook_callback_verification"),
                    );
                }
                let untouched = input.headers.is_empty();
                (preset, delivery.headers, delivery.body, untouched)
            }
            None => {
                let scheme = &*all[usize::from(input.scheme) % all.len()];
                (scheme, HeaderMap::new(), Bytes::from(input.body), false)
            }
        };
    for (n, value) in input.headers {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.insert(names[usize::from(n) % names.len()].clone(), value);
        }
    }
    let request = SignedRequest {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
        now,
    };
    let handshake = scheme.handshake().expect("every scheme here has a handshake");
    if let Some(Ok(_)) = handshake.unsigned(&request) {
        if scheme.name() == "meta" {
            let token = uri.query().unwrap_or_default();
            assert!(token.contains("verify-token"), "Meta answered without its token");
        }
    }
    let verified = scheme.verify(&request);
    if let Err(rejection) = &verified {
        let _ = rejection.to_string();
    }
    let _ = scheme.load_key(&request);
    let verified = verified.unwrap_or_else(|_| {
        Verified::new(scheme.name(), EventId::new("x"), IdOrigin::BodyHash)
            .with_secret_index(usize::from(input.secret_index))
            .with_event_type(input.event_type.map(hookdock::EventType::from))
    });
    let answered = handshake.verified(&request, &verified);
    if unmodified {
        assert!(
            matches!(answered, Some(Ok(Reply::Now(_)))),
            "a signed handshake was not answered"
        );
    }
});
