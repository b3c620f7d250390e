//! Signing deliveries the way providers do, to test your own endpoints.
//!
//! A [`Signer`] is built from the same [`Preset`] (or [`GenericHmac`](crate::scheme::GenericHmac)
//! scheme) your endpoint verifies with. It signs a body and returns a [`SignedDelivery`]: the
//! method, URI, headers and body a real provider would send, ready to become an
//! [`http::Request`] for your router or to be checked directly with
//! [`Scheme::verify`](crate::Scheme::verify).
//!
//! Signing is not a second implementation of each provider: it is driven by the very
//! specification the preset verifies with (where the signature goes and how it is written,
//! where the timestamp goes, what is signed, where the id goes), so the two cannot drift apart.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

#[cfg(any(feature = "ed25519", feature = "p256"))]
use base64::Engine as _;

use crate::error::ConfigError;
use crate::scheme::engine::{Content, Engine, Field, Keys, SigningKey, TsSource};
use crate::scheme::keys::HmacKey;
use crate::scheme::{Preset, SignedRequest};

/// Signs deliveries for one scheme, as the provider would; for tests.
///
/// Build it from the preset your endpoint verifies with: [`Signer::new`] signs with the first
/// secret, [`Signer::for_secret`] with another (to test a rotation). The preset keeps its
/// secrets only as pre-keyed HMAC states, which is all signing needs. Two schemes keep nothing
/// a sender could sign with, so they have their own constructors: GitLab's token
/// ([`Signer::gitlab`]) and Standard Webhooks `v1a`'s Ed25519 private key
/// ([`Signer::standard_webhooks_ed25519`]).
///
/// ```
/// use hookdock::scheme::{Preset, Scheme};
/// use hookdock::testing::Signer;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let preset = Preset::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?;
/// let signer = Signer::new(&preset)?;
///
/// // Sign now, with a fresh id...
/// let delivery = signer.sign(r#"{"type":"user.created"}"#);
/// assert!(delivery.headers.contains_key("webhook-signature"));
///
/// // ...or at a chosen time with a chosen id.
/// let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let delivery = signer
///     .delivery(r#"{"type":"user.created"}"#)
///     .timestamp(at)
///     .id("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
///     .sign()?;
/// assert_eq!(delivery.headers["webhook-timestamp"], "1700000000");
///
/// // The preset accepts it, and names the id it was given.
/// let verified = preset.verify(&delivery.signed_request(at))?;
/// assert_eq!(verified.id.as_str(), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
///
/// // Turn it into a request for your router (axum's `Body` implements `From<Bytes>`).
/// let request: http::Request<bytes::Bytes> = delivery.into_request();
/// assert_eq!(request.method(), http::Method::POST);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Signer {
    preset: Preset,
    key: Key,
}

#[derive(Clone)]
enum Key {
    Hmac(Box<HmacKey>),
    Token(Vec<u8>),
    #[cfg(feature = "ed25519")]
    Ed25519(Box<ed25519_dalek::SigningKey>),
    #[cfg(feature = "p256")]
    P256(Box<p256::ecdsa::SigningKey>),
}

impl Signer {
    /// A signer using the first secret of `preset`.
    ///
    /// Fails for a GitLab preset (it keeps only a hash of the token; use [`Signer::gitlab`])
    /// and for presets that hold public keys (use [`Signer::standard_webhooks_ed25519`],
    /// [`Signer::discord`] or [`Signer::sendgrid`], which take the private key).
    pub fn new(preset: &Preset) -> Result<Self, ConfigError> {
        Self::for_secret(preset, 0)
    }

    /// A signer using secret number `index` (from 0, in the order given to the preset).
    pub fn for_secret(preset: &Preset, index: usize) -> Result<Self, ConfigError> {
        let key = match &preset.engine.keys {
            Keys::Hmac(keys) => Key::Hmac(Box::new(keys.get(index).cloned().ok_or(
                ConfigError::InvalidValue {
                    what: "secret index",
                    reason: "the preset has fewer secrets",
                },
            )?)),
            Keys::Token(_) => {
                return Err(ConfigError::InvalidValue {
                    what: "signer",
                    reason: "a GitLab preset keeps only a hash of its token: use Signer::gitlab",
                })
            }
            #[cfg(feature = "ed25519")]
            Keys::Ed25519(_) => {
                return Err(ConfigError::InvalidValue {
                    what: "signer",
                    reason: "an Ed25519 preset holds public keys: use \
                             Signer::standard_webhooks_ed25519 or Signer::discord",
                })
            }
            #[cfg(feature = "p256")]
            Keys::P256(_) => {
                return Err(ConfigError::InvalidValue {
                    what: "signer",
                    reason: "a SendGrid preset holds public keys: use Signer::sendgrid",
                })
            }
        };
        Ok(Self {
            preset: preset.clone(),
            key,
        })
    }

    /// A GitLab signer: sends `token` in `X-Gitlab-Token`, as GitLab does.
    pub fn gitlab(token: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let token = token.as_ref();
        Ok(Self {
            preset: Preset::gitlab([token])?,
            key: Key::Token(token.to_vec()),
        })
    }

    /// A Standard Webhooks `v1a` signer from an Ed25519 private key: `whsk_` (optional)
    /// followed by the base64 of the 32-byte seed, or of the 64-byte seed and public key.
    /// [`public_key`](Self::public_key) gives the `whpk_` key a receiver verifies with.
    #[cfg(feature = "ed25519")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
    pub fn standard_webhooks_ed25519(private_key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let undecodable = |reason| ConfigError::UndecodableSecret { index: 0, reason };
        let text = private_key.as_ref();
        let text = text.strip_prefix(b"whsk_").unwrap_or(text);
        let bytes = crate::scheme::parse::BASE64_LENIENT
            .decode(text)
            .map_err(|_| undecodable("not valid base64 after the prefix"))?;
        let seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .filter(|_| matches!(bytes.len(), 32 | 64))
            .ok_or_else(|| undecodable("an Ed25519 private key is 32 or 64 bytes"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        if bytes.len() == 64 && bytes[32..] != key.verifying_key().to_bytes() {
            return Err(undecodable(
                "the public half does not belong to the private key",
            ));
        }
        let public = format!(
            "whpk_{}",
            crate::scheme::parse::BASE64.encode(key.verifying_key().to_bytes())
        );
        Ok(Self {
            preset: Preset::standard_webhooks_ed25519([public])?,
            key: Key::Ed25519(Box::new(key)),
        })
    }

    /// A Discord interactions signer from an Ed25519 private key (the hex of its 32-byte
    /// seed; Discord never shows one, so this is for tests). Its preset is
    /// [`Preset::discord`] with the matching public key, which
    /// [`public_key`](Self::public_key) gives as hex.
    #[cfg(feature = "ed25519")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
    pub fn discord(private_key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let seed: [u8; 32] = hex::decode(private_key.as_ref().trim_ascii())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(ConfigError::UndecodableSecret {
                index: 0,
                reason: "an Ed25519 private key is 64 hex digits",
            })?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Ok(Self {
            preset: Preset::discord([hex::encode(key.verifying_key().to_bytes())])?,
            key: Key::Ed25519(Box::new(key)),
        })
    }

    /// A SendGrid Event Webhook signer from an ECDSA P-256 private key (the base64 of its
    /// PKCS#8 DER form, or of its 32-byte scalar; SendGrid never shows one, so this is for
    /// tests). Its preset is [`Preset::sendgrid`] with the matching public key, which
    /// [`public_key`](Self::public_key) gives as base64 DER, the form SendGrid shows.
    #[cfg(feature = "p256")]
    #[cfg_attr(docsrs, doc(cfg(feature = "p256")))]
    pub fn sendgrid(private_key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
        let undecodable = |reason| ConfigError::UndecodableSecret { index: 0, reason };
        let bytes = crate::scheme::parse::BASE64_LENIENT
            .decode(private_key.as_ref().trim_ascii())
            .map_err(|_| undecodable("not valid base64"))?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&bytes)
            .or_else(|_| p256::ecdsa::SigningKey::from_slice(&bytes))
            .map_err(|_| undecodable("not a P-256 private key (PKCS#8 DER or 32-byte scalar)"))?;
        let public = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|_| undecodable("the public key cannot be encoded"))?;
        Ok(Self {
            preset: Preset::sendgrid([crate::scheme::parse::BASE64.encode(public.as_bytes())])?,
            key: Key::P256(Box::new(key)),
        })
    }

    /// The public key a receiver verifies this signer's signatures with, written the way the
    /// provider shows it: `whpk_...` for Standard Webhooks `v1a`, hex for Discord, base64 DER
    /// for SendGrid; `None` for secret-key schemes.
    pub fn public_key(&self) -> Option<String> {
        match &self.key {
            #[cfg(feature = "ed25519")]
            Key::Ed25519(key) if self.engine().name == "discord" => {
                Some(hex::encode(key.verifying_key().to_bytes()))
            }
            #[cfg(feature = "ed25519")]
            Key::Ed25519(key) => Some(format!(
                "whpk_{}",
                crate::scheme::parse::BASE64.encode(key.verifying_key().to_bytes())
            )),
            #[cfg(feature = "p256")]
            Key::P256(key) => {
                use p256::pkcs8::EncodePublicKey as _;
                let der = key.verifying_key().to_public_key_der().ok()?;
                Some(crate::scheme::parse::BASE64.encode(der.as_bytes()))
            }
            _ => None,
        }
    }

    /// The preset that verifies what this signer signs (the one it was built from, or for
    /// [`gitlab`](Self::gitlab) and [`standard_webhooks_ed25519`](Self::standard_webhooks_ed25519)
    /// one built from the same token or public key).
    pub fn preset(&self) -> &Preset {
        &self.preset
    }

    /// Signs `body` now, as a `POST /` with a fresh delivery id; see [`delivery`](Self::delivery)
    /// to choose the time, id, event type, URI or content type.
    pub fn sign(&self, body: impl Into<Bytes>) -> SignedDelivery {
        // The defaults always make valid header values and URIs, so this cannot fail; the
        // fallback keeps the promise of never panicking all the same.
        self.delivery(body)
            .sign()
            .unwrap_or_else(|_| SignedDelivery::empty())
    }

    /// Starts a delivery of `body` whose details can be chosen before signing.
    pub fn delivery(&self, body: impl Into<Bytes>) -> DeliveryBuilder<'_> {
        let twilio = matches!(self.engine().content, Content::Twilio);
        DeliveryBuilder {
            signer: self,
            body: body.into(),
            method: Method::POST,
            uri: Uri::from_static("/"),
            timestamp: None,
            id: None,
            event_type: None,
            content_type: HeaderValue::from_static(if twilio {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            }),
        }
    }

    fn engine(&self) -> &Engine {
        &self.preset.engine
    }

    fn signing_key(&self) -> SigningKey<'_> {
        match &self.key {
            Key::Hmac(key) => SigningKey::Hmac(key),
            Key::Token(token) => SigningKey::Token(token),
            #[cfg(feature = "ed25519")]
            Key::Ed25519(key) => SigningKey::Ed25519(key),
            #[cfg(feature = "p256")]
            Key::P256(key) => SigningKey::P256(key),
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.engine().name)
            .finish_non_exhaustive()
    }
}

/// A delivery being prepared by [`Signer::delivery`]; [`sign`](Self::sign) finishes it.
#[derive(Debug)]
#[must_use]
pub struct DeliveryBuilder<'s> {
    signer: &'s Signer,
    body: Bytes,
    method: Method,
    uri: Uri,
    timestamp: Option<SystemTime>,
    id: Option<String>,
    event_type: Option<String>,
    content_type: HeaderValue,
}

impl DeliveryBuilder<'_> {
    /// The signed timestamp (default: now). Ignored by schemes that sign none.
    pub fn timestamp(mut self, at: SystemTime) -> Self {
        self.timestamp = Some(at);
        self
    }

    /// The delivery id, sent in the scheme's id header (`webhook-id`, `X-GitHub-Delivery`,
    /// ...; default: a fresh random id). Ignored by schemes whose id is in the body (Stripe,
    /// Slack, Paddle, Square): put it in the body you sign.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The event type, sent in the scheme's event-type header (`X-GitHub-Event`,
    /// `X-Shopify-Topic`, `X-Gitlab-Event`); not sent unless set. Ignored by other schemes.
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// The method (default `POST`); HubSpot signs it.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// The path and query the delivery is sent to (default `/`); Twilio and HubSpot sign them
    /// after the preset's public URL.
    pub fn uri(mut self, uri: Uri) -> Self {
        self.uri = uri;
        self
    }

    /// The `Content-Type` (default `application/json`, or a form for Twilio). For Twilio a
    /// form body is signed as sorted parameters; any other non-empty body gets a
    /// `bodySHA256` query parameter, as Twilio does for JSON.
    pub fn content_type(mut self, content_type: HeaderValue) -> Self {
        self.content_type = content_type;
        self
    }

    /// Signs the delivery. Fails only if the id or event type is not a valid header value.
    pub fn sign(self) -> Result<SignedDelivery, http::Error> {
        let signer = self.signer;
        let engine = signer.engine();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, self.content_type);

        let mut uri = self.uri;
        if matches!(engine.content, Content::Twilio)
            && !self.body.is_empty()
            && !crate::scheme::engine::is_form(&headers)
        {
            uri = with_body_sha256(&uri, &self.body)?;
        }

        let at = self.timestamp.unwrap_or_else(SystemTime::now);
        let ts_text = engine.timestamp.as_ref().map(|spec| spec.format.format(at));
        // A signature carried in the body (Mailgun) signs fields of the body, which the
        // signer writes; so does a timestamp the body carries (Linear).
        let in_body = engine.signature.json.is_some();
        let id_text = match (engine.id.headers.first(), engine.id.json) {
            (Some(name), _) => {
                let id = self.id.unwrap_or_else(random_id);
                headers.insert(name.clone(), HeaderValue::try_from(id.as_str())?);
                Some(id)
            }
            (None, Some(_)) if in_body => Some(self.id.unwrap_or_else(random_id)),
            _ => None,
        };
        if let (Some(Field::Header(name)), Some(event_type)) = (&engine.event_type, self.event_type)
        {
            headers.insert(name.clone(), HeaderValue::try_from(event_type)?);
        }
        let mut body = self.body;
        let mut fields: Vec<(&[&str], serde_json::Value)> = Vec::new();
        if let (Some(spec), Some(ts)) = (&engine.timestamp, &ts_text) {
            match &spec.source {
                TsSource::Header(names) => {
                    if let Some(name) = names.first() {
                        headers.insert(name.clone(), HeaderValue::try_from(ts.as_str())?);
                    }
                }
                // Mailgun writes its signed timestamp as a string, Linear as a number.
                TsSource::Json(path) if in_body => fields.push((path, ts.as_str().into())),
                TsSource::Json(path) => fields.push((
                    path,
                    ts.parse::<u64>().map_or(ts.as_str().into(), Into::into),
                )),
                TsSource::InSignature(_) => {}
            }
        }
        if let (Some(path), Some(id), true) = (engine.id.json, &id_text, in_body) {
            fields.push((path, id.as_str().into()));
        }
        body = with_json_fields(&body, &fields);

        let request = SignedRequest {
            method: &self.method,
            uri: &uri,
            headers: &headers,
            body: &body,
            now: SystemTime::UNIX_EPOCH,
        };
        let signature = engine.sign(
            signer.signing_key(),
            &request,
            id_text.as_deref().unwrap_or_default().as_bytes(),
            ts_text.as_deref().unwrap_or_default().as_bytes(),
        );
        match (engine.signature.json, signature) {
            (Some(path), Some(value)) => {
                let value = String::from_utf8_lossy(&value).into_owned();
                body = with_json_fields(&body, &[(path, value.into())]);
            }
            (None, Some(value)) => {
                if let Some(name) = engine.signature.headers.first() {
                    headers.insert(name.clone(), HeaderValue::try_from(value)?);
                }
            }
            (_, None) => {}
        }
        Ok(SignedDelivery {
            method: self.method,
            uri,
            headers,
            body,
        })
    }
}

/// A signed delivery: what a provider would send.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedDelivery {
    /// The method.
    pub method: Method,
    /// The path and query (Twilio's `bodySHA256` included).
    pub uri: Uri,
    /// The signature, timestamp, id and event-type headers the provider sends, and
    /// `Content-Type`.
    pub headers: HeaderMap,
    /// The body, unchanged.
    pub body: Bytes,
}

impl SignedDelivery {
    fn empty() -> Self {
        Self {
            method: Method::POST,
            uri: Uri::from_static("/"),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// The delivery as a scheme sees it, checked at `now`.
    pub fn signed_request(&self, now: SystemTime) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body: &self.body,
            now,
        }
    }

    /// The delivery as an HTTP request, with any body type made from [`Bytes`] (such as
    /// `axum::body::Body` or `http_body_util::Full<Bytes>`).
    pub fn into_request<B: From<Bytes>>(self) -> http::Request<B> {
        let mut request = http::Request::new(B::from(self.body));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }

    /// The value of a header, if present (a shorthand for tests).
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.get(name)
    }
}

/// `uri` with `bodySHA256=<hex of the body's SHA-256>` added to the query, as Twilio sends
/// non-form bodies.
fn with_body_sha256(uri: &Uri, body: &[u8]) -> Result<Uri, http::Error> {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(body));
    let path = uri.path();
    let pq = match uri.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}&bodySHA256={digest}"),
        _ => format!("{path}?bodySHA256={digest}"),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse()?);
    Ok(Uri::from_parts(parts)?)
}

/// `body` with each value set at its path, when there are any: the body is read as a JSON
/// object (anything else counts as an empty one) and written again (keys in sorted order).
fn with_json_fields(body: &Bytes, fields: &[(&[&str], serde_json::Value)]) -> Bytes {
    if fields.is_empty() {
        return body.clone();
    }
    let mut root = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => serde_json::Value::Object(serde_json::Map::new()),
    };
    for (path, value) in fields {
        let mut node = &mut root;
        for key in path.iter() {
            if !node.is_object() {
                *node = serde_json::Value::Object(serde_json::Map::new());
            }
            match node {
                serde_json::Value::Object(map) => {
                    node = map.entry(*key).or_insert(serde_json::Value::Null);
                }
                _ => break,
            }
        }
        *node = value.clone();
    }
    Bytes::from(serde_json::to_vec(&root).unwrap_or_default())
}

/// A random delivery id in the UUID v4 format.
fn random_id() -> String {
    let mut b: [u8; 16] = fastrand::u128(..).to_le_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::{GenericHmac, Rejection, RejectionKind, Scheme, SignedPart, Verified};
    use std::time::{Duration, UNIX_EPOCH};

    const AT: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn check(preset: &Preset, d: &SignedDelivery) -> Result<Verified, Rejection> {
        preset.verify(&d.signed_request(at(AT)))
    }

    /// Every HMAC preset, built from one secret and from two (signing with the second).
    fn hmac_presets() -> Vec<Preset> {
        let sw = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        vec![
            Preset::standard_webhooks([sw]).unwrap(),
            Preset::github(["gh"]).unwrap(),
            Preset::stripe(["whsec_stripe"]).unwrap(),
            Preset::shopify(["sh"]).unwrap(),
            Preset::slack(["sl"]).unwrap(),
            Preset::twilio(["tw"], "https://example.com").unwrap(),
            Preset::paddle(["pd"]).unwrap(),
            Preset::square(["sq"], "https://example.com/hooks/square").unwrap(),
            Preset::hubspot(["hs"], "https://example.com").unwrap(),
            Preset::pagerduty(["pg"]).unwrap(),
            GenericHmac::new("acme", "x-acme-signature")
                .prefix("sha1=")
                .algorithm(crate::scheme::Algorithm::Sha1)
                .encoding(crate::scheme::Encoding::Base64)
                .timestamp_header("x-acme-time", Duration::from_secs(60))
                .id_header("x-acme-id")
                .signed_content([
                    SignedPart::Id,
                    SignedPart::lit(":"),
                    SignedPart::Timestamp,
                    SignedPart::lit(":"),
                    SignedPart::Body,
                ])
                .build(["acme"])
                .unwrap(),
        ]
    }

    #[test]
    fn every_hmac_preset_verifies_what_it_signs() {
        for preset in hmac_presets() {
            let signer = Signer::new(&preset).unwrap();
            for body in [
                &b"{\"id\":\"evt_1\",\"event_id\":\"e1\"}"[..],
                b"",
                b"a=1&b=2",
            ] {
                let d = signer
                    .delivery(Bytes::copy_from_slice(body))
                    .timestamp(at(AT))
                    .uri(Uri::from_static("/hooks/x?q=1"))
                    .sign()
                    .unwrap();
                let v = check(&preset, &d)
                    .unwrap_or_else(|e| panic!("{}: {e} ({:?})", preset.engine.name, d.headers));
                assert_eq!(v.scheme, preset.engine.name);
                assert_eq!(v.secret_index, 0);
            }
        }
    }

    #[test]
    fn headers_are_where_the_provider_puts_them() {
        let gh = Signer::new(&Preset::github(["It's a Secret to Everybody"]).unwrap()).unwrap();
        let d = gh
            .delivery("Hello, World!")
            .id("72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .event_type("ping")
            .sign()
            .unwrap();
        // GitHub's documented example signature.
        assert_eq!(
            d.headers["x-hub-signature-256"],
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert_eq!(
            d.headers["x-github-delivery"],
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        assert_eq!(d.headers["x-github-event"], "ping");

        let stripe = Signer::new(&Preset::stripe(["whsec_x"]).unwrap()).unwrap();
        let d = stripe.delivery("{}").timestamp(at(AT)).sign().unwrap();
        let sig = d.headers["stripe-signature"].to_str().unwrap();
        assert!(sig.starts_with("t=1700000000,v1="), "{sig}");
        assert_eq!(sig.len(), "t=1700000000,v1=".len() + 64);

        let paddle = Signer::new(&Preset::paddle(["p"]).unwrap()).unwrap();
        let d = paddle.delivery("{}").timestamp(at(AT)).sign().unwrap();
        assert!(d.headers["paddle-signature"]
            .to_str()
            .unwrap()
            .starts_with("ts=1700000000;h1="));

        let hubspot = Signer::new(&Preset::hubspot(["h"], "https://example.com").unwrap()).unwrap();
        let d = hubspot.delivery("[]").timestamp(at(AT)).sign().unwrap();
        assert_eq!(d.headers["x-hubspot-request-timestamp"], "1700000000000");

        let sw = Signer::new(
            &Preset::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap(),
        )
        .unwrap();
        let d = sw.sign("{}");
        let id = d.headers["webhook-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_ne!(sw.sign("{}").headers["webhook-id"], id, "fresh ids");
        assert!(d.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,"));
    }

    #[test]
    fn standard_webhooks_published_vector() {
        // The example in the Standard Webhooks specification.
        let preset = Preset::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap();
        let d = Signer::new(&preset)
            .unwrap()
            .delivery(r#"{"test": 2432232314}"#)
            .id("msg_p5jXN8AQM9LWM0D4loKWxJek")
            .timestamp(at(1_614_265_330))
            .sign()
            .unwrap();
        assert_eq!(
            d.headers["webhook-signature"],
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_signs_with_the_chosen_secret() {
        let preset = Preset::github(["old", "new"]).unwrap();
        let d = Signer::for_secret(&preset, 1).unwrap().sign("x");
        assert_eq!(check(&preset, &d).unwrap().secret_index, 1);
        let only_old = Preset::github(["old"]).unwrap();
        assert_eq!(
            check(&only_old, &d).unwrap_err().kind(),
            RejectionKind::BadSignature
        );
        assert!(Signer::for_secret(&preset, 2).is_err());
    }

    #[test]
    fn timestamps_are_signed_where_chosen() {
        let preset = Preset::slack(["s"]).unwrap();
        let signer = Signer::new(&preset).unwrap();
        let old = signer.delivery("x").timestamp(at(AT - 301)).sign().unwrap();
        assert_eq!(
            check(&preset, &old).unwrap_err().kind(),
            RejectionKind::TimestampTooOld
        );
        let v = check(
            &preset,
            &signer.delivery("x").timestamp(at(AT - 300)).sign().unwrap(),
        )
        .unwrap();
        assert_eq!(v.timestamp, Some(at(AT - 300)));
    }

    #[test]
    fn twilio_form_and_json_bodies() {
        let preset = Preset::twilio(["tok"], "https://example.com").unwrap();
        let signer = Signer::new(&preset).unwrap();
        let form = signer
            .delivery("To=%2B1555&Body=hi+there&From=x")
            .uri(Uri::from_static("/sms?x=1"))
            .sign()
            .unwrap();
        assert_eq!(form.uri, "/sms?x=1");
        check(&preset, &form).unwrap();

        let json = signer
            .delivery("{\"a\":1}")
            .content_type(HeaderValue::from_static("application/json"))
            .uri(Uri::from_static("/sms?x=1"))
            .sign()
            .unwrap();
        assert_eq!(
            json.uri.query(),
            Some("x=1&bodySHA256=015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862")
        );
        check(&preset, &json).unwrap();

        // A JSON body without `bodySHA256` is not covered by the signature: refused.
        let mut bare = json.clone();
        bare.uri = Uri::from_static("/sms?x=1");
        let signed_url_only = signer
            .delivery(Bytes::new())
            .content_type(HeaderValue::from_static("application/json"))
            .uri(Uri::from_static("/sms?x=1"))
            .sign()
            .unwrap();
        check(&preset, &signed_url_only).unwrap();
        bare.headers = signed_url_only.headers;
        assert_eq!(
            check(&preset, &bare).unwrap_err().kind(),
            RejectionKind::BadSignature
        );
    }

    #[test]
    fn gitlab_sends_the_token() {
        let signer = Signer::gitlab("glpat-token").unwrap();
        let d = signer
            .delivery("{}")
            .event_type("Push Hook")
            .sign()
            .unwrap();
        assert_eq!(d.headers["x-gitlab-token"], "glpat-token");
        assert_eq!(d.headers["x-gitlab-event"], "Push Hook");
        let v = check(&Preset::gitlab(["other", "glpat-token"]).unwrap(), &d).unwrap();
        assert_eq!(v.secret_index, 1);
        assert_eq!(v.event_type.as_deref(), Some("Push Hook"));
        assert!(Signer::new(signer.preset()).is_err(), "a hash cannot sign");
    }

    #[cfg(feature = "ed25519")]
    #[test]
    fn ed25519_signs_and_verifies() {
        use base64::Engine as _;
        let seed = crate::scheme::parse::BASE64.encode([7u8; 32]);
        let signer = Signer::standard_webhooks_ed25519(format!("whsk_{seed}")).unwrap();
        let public = signer.public_key().unwrap();
        let preset = Preset::standard_webhooks_ed25519([public.as_str()]).unwrap();
        let d = signer.delivery("{}").timestamp(at(AT)).sign().unwrap();
        assert!(d.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1a,"));
        check(&preset, &d).unwrap();
        check(signer.preset(), &d).unwrap();

        // The 64-byte (seed and public key) form is accepted when the halves agree.
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let mut both = [7u8; 32].to_vec();
        both.extend_from_slice(&key.verifying_key().to_bytes());
        let again =
            Signer::standard_webhooks_ed25519(crate::scheme::parse::BASE64.encode(&both)).unwrap();
        assert_eq!(again.public_key().unwrap(), public);
        both[40] ^= 1;
        assert!(
            Signer::standard_webhooks_ed25519(crate::scheme::parse::BASE64.encode(&both)).is_err()
        );
        assert!(Signer::standard_webhooks_ed25519("whsk_AAAA").is_err());
        assert!(Signer::new(&preset).is_err(), "a public key cannot sign");
    }

    #[test]
    fn bad_header_values_are_errors() {
        let signer = Signer::new(&Preset::github(["s"]).unwrap()).unwrap();
        assert!(signer.delivery("x").id("bad\nid").sign().is_err());
        assert!(signer.delivery("x").event_type("bad\0").sign().is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let signer = Signer::gitlab("super-secret-token").unwrap();
        let s = format!("{signer:?}");
        assert!(!s.contains("super-secret"), "{s}");
        assert!(s.contains("gitlab"), "{s}");
    }
}
