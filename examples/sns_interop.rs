//! hookdock's AWS SNS signer and verifier for `tests/interop/sns.mjs`, which checks them
//! against AWS's own `sns-validator` (npm) and an independent signer (Node's `crypto`).
//!
//! ```text
//! sns_interop sign <private-key.pem> <cert-url> <1|2> <Notification|SubscriptionConfirmation|UnsubscribeConfirmation>
//!   → prints the signed message body
//! sns_interop verify <certificate.pem> <cert-url> < body
//!   → prints `valid <MessageId>`, `answered <status>` (a handshake), or the rejection's kind
//! ```
//!
//! `verify` serves the certificate at `cert-url` from memory, accepts the body's own topic,
//! and runs the message through the verify layer, as a receiver would.
//!
//! Run: `cargo run --example sns_interop --features test-util,aws-sns -- sign key.pem ...`.

use std::io::Read;
use std::process::ExitCode;

use bytes::Bytes;
use hookdock::scheme::sns::AwsSns;
use hookdock::scheme::{Rejection, Verified};
use hookdock::testing::{SnsSigner, StaticCertificates};
use hookdock::verify::VerifyLayer;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, ServiceExt};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:interop";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["sign", key, url, version, kind] => sign(key, url, version, kind),
        ["verify", cert, url] => verify(cert, url),
        _ => Err("usage: sns_interop sign <key.pem> <cert-url> <1|2> <Type> | verify <cert.pem> <cert-url> < body".into()),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sns_interop: {error}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn sign(key: &str, url: &str, version: &str, kind: &str) -> Result<String, String> {
    let mut signer = SnsSigner::new(&read(key)?, url).map_err(|e| e.to_string())?;
    if version == "1" {
        signer = signer.version1();
    }
    let subscribe = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:interop&Token=2336412f37fb687f5d51e6e241d09c8";
    Ok(match kind {
        "Notification" => signer.notification(
            TOPIC,
            "da41e39f-ea4d-435a-b922-c6aae3915ebe",
            "{\"order\":\"A-1042\"}\nwith a newline, \"quotes\" and ünïcödé",
            Some("Order placed"),
        ),
        "SubscriptionConfirmation" => signer.confirmation(
            false,
            TOPIC,
            "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "2336412f37fb687f5d51e6e241d09c8",
            subscribe,
        ),
        "UnsubscribeConfirmation" => signer.confirmation(
            true,
            TOPIC,
            "47138184-6831-46b8-8f7c-afc488602d7d",
            "2336412f37fb687f5d51e6e241d09c8",
            subscribe,
        ),
        other => return Err(format!("unknown message type {other}")),
    })
}

fn verify(cert: &str, url: &str) -> Result<String, String> {
    let mut body = String::new();
    std::io::stdin()
        .read_to_string(&mut body)
        .map_err(|e| e.to_string())?;
    let message: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let topic = message["TopicArn"].as_str().unwrap_or(TOPIC).to_owned();
    let kind = message["Type"].as_str().unwrap_or_default().to_owned();
    let source = StaticCertificates::new().with(url, read(cert)?);
    let sns = AwsSns::builder([topic])
        .certificates(source)
        .build()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let inner = service_fn(|req: Request<Full<Bytes>>| async move {
            let id = req
                .extensions()
                .get::<Verified>()
                .map(|v| v.id.as_str().to_owned())
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(id))))
        });
        let svc = tower_layer::Layer::layer(&VerifyLayer::new(sns), inner);
        let request = Request::post("/sns")
            .header("x-amz-sns-message-type", kind)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = svc.oneshot(request).await.map_err(|e| e.to_string())?;
        if let Some(rejection) = response.extensions().get::<Rejection>() {
            return Ok(rejection.kind().as_str().to_owned());
        }
        if response
            .extensions()
            .get::<hookdock::verify::handshake::Answered>()
            .is_some()
        {
            return Ok(format!("answered {}", response.status().as_u16()));
        }
        if response.status() != StatusCode::OK {
            return Err(format!("unexpected status {}", response.status()));
        }
        let id = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(format!("valid {}", String::from_utf8_lossy(&id)))
    })
}
