//! hookdock's signer and verifier behind a small JSON protocol, so that scripts in other
//! languages can check them against providers' official libraries (see `tests/interop/`).
//!
//! Reads one JSON array of requests on stdin and writes one JSON array of answers, in order:
//!
//! ```text
//! {"op":"verify","provider":"github","secrets":["..."],"config":{},"method":"POST",
//!  "uri":"/hooks?x=1","headers":[["x-hub-signature-256","sha256=..."]],"body":"...","now":1700000000}
//!   → {"ok":true,"id":"...","secret_index":0} or {"ok":false,"kind":"bad_signature"}
//! {"op":"sign","provider":"github","secrets":["..."],"config":{},"body":"...","timestamp":1700000000,
//!  "id":"...","uri":"/hooks","content_type":"application/json","event_type":"push"}
//!   → {"method":"POST","uri":"/hooks","headers":[["x-hub-signature-256","sha256=..."]],"body":"..."}
//! ```
//!
//! `config` holds `public_url` (Twilio, HubSpot) or `notification_url` (Square). For the
//! public-key schemes (`standard-webhooks-v1a`, `discord`, `sendgrid`) a `sign` request's
//! secret is the private key, and the answer carries the `public_key` to verify with. A
//! request that cannot be carried out gets `{"error":"..."}`.
//!
//! Run: `echo '[...]' | cargo run --example interop --features test-util,ed25519,p256`.

use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use hookdock::scheme::{Preset, Scheme, SignedRequest};
use hookdock::testing::Signer;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Verify {
        #[serde(flatten)]
        scheme: SchemeSpec,
        #[serde(default = "post")]
        method: String,
        #[serde(default = "root")]
        uri: String,
        headers: Vec<(String, String)>,
        body: String,
        now: u64,
    },
    Sign {
        #[serde(flatten)]
        scheme: SchemeSpec,
        body: String,
        timestamp: u64,
        id: Option<String>,
        #[serde(default = "post")]
        method: String,
        #[serde(default = "root")]
        uri: String,
        content_type: Option<String>,
        event_type: Option<String>,
        /// Which of `secrets` signs (default 0).
        #[serde(default)]
        secret_index: usize,
    },
}

#[derive(Deserialize)]
struct SchemeSpec {
    provider: String,
    secrets: Vec<String>,
    #[serde(default)]
    config: serde_json::Map<String, Value>,
}

fn post() -> String {
    "POST".into()
}

fn root() -> String {
    "/".into()
}

type Error = Box<dyn std::error::Error>;

impl SchemeSpec {
    fn config(&self, key: &str) -> Result<&str, Error> {
        self.config
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("provider {} needs config.{key}", self.provider).into())
    }

    fn preset(&self) -> Result<Preset, Error> {
        let s = &self.secrets;
        Ok(match self.provider.as_str() {
            "standard-webhooks" => Preset::standard_webhooks(s)?,
            "standard-webhooks-v1a" => Preset::standard_webhooks_ed25519(s)?,
            "github" => Preset::github(s)?,
            "stripe" => Preset::stripe(s)?,
            "shopify" => Preset::shopify(s)?,
            "slack" => Preset::slack(s)?,
            "twilio" => Preset::twilio(s, self.config("public_url")?)?,
            "gitlab" => Preset::gitlab(s)?,
            "paddle" => Preset::paddle(s)?,
            "square" => Preset::square(s, self.config("notification_url")?)?,
            "hubspot" => Preset::hubspot(s, self.config("public_url")?)?,
            "pagerduty" => Preset::pagerduty(s)?,
            "clerk" => Preset::clerk(s)?,
            "resend" => Preset::resend(s)?,
            "openai" => Preset::openai(s)?,
            "replicate" => Preset::replicate(s)?,
            "discord" => Preset::discord(s)?,
            "sendgrid" => Preset::sendgrid(s)?,
            "razorpay" => Preset::razorpay(s)?,
            "coinbase-commerce" => Preset::coinbase_commerce(s)?,
            "mux" => Preset::mux(s)?,
            other => return Err(format!("unknown provider {other:?}").into()),
        })
    }

    fn signer(&self, index: usize) -> Result<Signer, Error> {
        let secret = self.secrets.get(index).ok_or("no such secret")?;
        Ok(match self.provider.as_str() {
            "gitlab" => Signer::gitlab(secret)?,
            "standard-webhooks-v1a" => Signer::standard_webhooks_ed25519(secret)?,
            // For the public-key schemes, the secret given to sign with is the private key.
            "discord" => Signer::discord(secret)?,
            "sendgrid" => Signer::sendgrid(secret)?,
            _ => Signer::for_secret(&self.preset()?, index)?,
        })
    }
}

fn headers_json(headers: &http::HeaderMap) -> Value {
    Value::Array(
        headers
            .iter()
            .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
            .collect(),
    )
}

fn answer(request: Request) -> Result<Value, Error> {
    match request {
        Request::Verify {
            scheme,
            method,
            uri,
            headers,
            body,
            now,
        } => {
            let preset = scheme.preset()?;
            let mut map = http::HeaderMap::new();
            for (name, value) in headers {
                map.append(
                    http::HeaderName::from_bytes(name.as_bytes())?,
                    http::HeaderValue::from_str(&value)?,
                );
            }
            let method: http::Method = method.parse()?;
            let uri: http::Uri = uri.parse()?;
            let request = SignedRequest {
                method: &method,
                uri: &uri,
                headers: &map,
                body: body.as_bytes(),
                now: UNIX_EPOCH + Duration::from_secs(now),
            };
            Ok(match preset.verify(&request) {
                Ok(v) => json!({
                    "ok": true,
                    "id": v.id.as_str(),
                    "secret_index": v.secret_index,
                    "event_type": v.event_type,
                }),
                Err(r) => json!({"ok": false, "kind": r.kind().as_str(), "detail": r.to_string()}),
            })
        }
        Request::Sign {
            scheme,
            body,
            timestamp,
            id,
            method,
            uri,
            content_type,
            event_type,
            secret_index,
        } => {
            let signer = scheme.signer(secret_index)?;
            let mut delivery = signer
                .delivery(body)
                .timestamp(UNIX_EPOCH + Duration::from_secs(timestamp))
                .method(method.parse()?)
                .uri(uri.parse()?);
            if let Some(id) = id {
                delivery = delivery.id(id);
            }
            if let Some(ct) = content_type {
                delivery = delivery.content_type(ct.parse()?);
            }
            if let Some(et) = event_type {
                delivery = delivery.event_type(et);
            }
            let d = delivery.sign()?;
            Ok(json!({
                "method": d.method.as_str(),
                "uri": d.uri.to_string(),
                "headers": headers_json(&d.headers),
                "body": String::from_utf8_lossy(&d.body),
                "public_key": signer.public_key(),
            }))
        }
    }
}

fn main() -> Result<(), Error> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let requests: Vec<Value> = serde_json::from_str(&input)?;
    let answers: Vec<Value> = requests
        .into_iter()
        .map(|r| {
            serde_json::from_value::<Request>(r)
                .map_err(Error::from)
                .and_then(answer)
                .unwrap_or_else(|e| json!({"error": e.to_string()}))
        })
        .collect();
    println!("{}", serde_json::to_string(&answers)?);
    Ok(())
}
