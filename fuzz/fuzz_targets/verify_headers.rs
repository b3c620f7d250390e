//! Feeds arbitrary header values, bodies, URIs and clocks through every preset's `verify`,
//! starting either from nothing or from a correctly signed delivery (so the fuzzer also
//! reaches the signature comparison, the id, type and timestamp extraction from JSON bodies,
//! Mailgun's signature inside the body, Twitch's RFC 3339 timestamps, DocuSign's numbered
//! headers, SendGrid's DER signatures, repeated headers, Twilio's form parsing and HubSpot's
//! URI decoding).
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run verify_headers`.
//!
//! Besides "never panics", it checks: an unmodified signed delivery verifies at its signing
//! time, and an accepted delivery names the scheme that accepted it.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use bytes::Bytes;
use hookdock::scheme::{Algorithm, Encoding, GenericHmac, Preset, Scheme, SignedPart};
use hookdock::testing::Signer;
use http::{HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    scheme: u8,
    signed: bool,
    body: Vec<u8>,
    id: String,
    sign_at: u32,
    now_offset: i32,
    json_content: bool,
    path: String,
    method: u8,
    edits: Vec<Edit>,
}

#[derive(Debug, Arbitrary)]
enum Edit {
    Set(u8, Vec<u8>),
    Append(u8, Vec<u8>),
    Remove(u8),
}

struct Target {
    preset: Preset,
    signer: Signer,
}

fn targets() -> &'static (Vec<Target>, Vec<HeaderName>) {
    static TARGETS: OnceLock<(Vec<Target>, Vec<HeaderName>)> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let url = "https://example.com";
        let hmac = [
            Preset::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
            Preset::github(["s"]),
            Preset::stripe(["whsec_s"]),
            Preset::shopify(["s"]),
            Preset::slack(["s"]),
            Preset::twilio(["s"], url),
            Preset::paddle(["s"]),
            Preset::square(["s"], "https://example.com/hooks/square"),
            Preset::hubspot(["s"], url),
            Preset::pagerduty(["s"]),
            Preset::clerk(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
            Preset::meta(["s"]),
            Preset::zoom(["s"]),
            Preset::twitch(["s"]),
            Preset::linear(["s"]),
            Preset::intercom(["s"]),
            Preset::mailgun(["s"]),
            Preset::typeform(["s"]),
            Preset::calendly(["s"]),
            Preset::bitbucket_cloud(["s"]),
            Preset::vercel(["s"]),
            Preset::lemonsqueezy(["s"]),
            Preset::mux(["s"]),
            Preset::coinbase_commerce(["s"]),
            Preset::razorpay(["s"]),
            Preset::paystack(["s"]),
            Preset::sentry(["s"]),
            Preset::circleci(["s"]),
            Preset::docusign(["s", "t"]),
            GenericHmac::new("generic", "x-sig")
                .algorithm(Algorithm::Sha1)
                .encoding(Encoding::Base64)
                .prefix("v=")
                .list_separator(b' ')
                .timestamp_header("x-ts", Duration::from_secs(60))
                .timestamp_in_millis()
                .id_header("x-id")
                .public_url(url)
                .signed_content([
                    SignedPart::Method,
                    SignedPart::Url,
                    SignedPart::Id,
                    SignedPart::Timestamp,
                    SignedPart::Body,
                ])
                .build(["s"]),
        ];
        let mut targets: Vec<Target> = hmac
            .into_iter()
            .map(|p| {
                let preset = p.expect("preset");
                let signer = Signer::new(&preset).expect("signer");
                Target { preset, signer }
            })
            .collect();
        for signer in [
            Signer::gitlab("token").expect("gitlab"),
            Signer::standard_webhooks_ed25519("whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .expect("v1a"),
            Signer::discord("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .expect("discord"),
            Signer::sendgrid("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=").expect("sendgrid"),
        ] {
            targets.push(Target {
                preset: signer.preset().clone(),
                signer,
            });
        }
        let mut names: Vec<HeaderName> = targets
            .iter()
            .flat_map(|t| t.preset.header_names().cloned())
            .collect();
        names.push(http::header::CONTENT_TYPE);
        names.push(HeaderName::from_static("x-unrelated"));
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        (targets, names)
    })
}

fuzz_target!(|input: Input| {
    let (targets, names) = targets();
    let target = &targets[usize::from(input.scheme) % targets.len()];
    let sign_at = UNIX_EPOCH + Duration::from_secs(1_600_000_000 + u64::from(input.sign_at));
    let method = [Method::POST, Method::GET, Method::PUT][usize::from(input.method) % 3].clone();
    let uri: Uri = input.path.parse().unwrap_or_else(|_| Uri::from_static("/"));

    let mut builder = target
        .signer
        .delivery(Bytes::from(input.body))
        .timestamp(sign_at)
        .method(method)
        .uri(uri);
    if !input.id.is_empty() {
        builder = builder.id(input.id);
    }
    if input.json_content {
        builder = builder.content_type(HeaderValue::from_static("application/json"));
    }
    let Ok(mut delivery) = builder.sign() else {
        return;
    };
    if !input.signed {
        delivery.headers.clear();
    }

    let unmodified = input.signed && input.edits.is_empty() && input.now_offset == 0;
    for edit in input.edits {
        match edit {
            Edit::Set(n, v) => {
                let name = names[usize::from(n) % names.len()].clone();
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    delivery.headers.insert(name, v);
                }
            }
            Edit::Append(n, v) => {
                let name = names[usize::from(n) % names.len()].clone();
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    delivery.headers.append(name, v);
                }
            }
            Edit::Remove(n) => {
                delivery.headers.remove(&names[usize::from(n) % names.len()]);
            }
        }
    }

    let offset = Duration::from_secs(u64::from(input.now_offset.unsigned_abs()));
    let now = if input.now_offset >= 0 {
        sign_at + offset
    } else {
        sign_at - offset
    };
    match target.preset.verify(&delivery.signed_request(now)) {
        Ok(verified) => assert_eq!(verified.scheme, target.preset.name()),
        Err(rejection) => {
            assert!(!unmodified, "a signed delivery was refused: {rejection}");
            let _ = rejection.to_string();
        }
    }
});
