//! The providers' signing rules, each a few lines of configuration over the [engine](super::engine).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::HeaderName;

use super::engine::{
    Content, Encoding, Engine, IdSpec, Keys, SigSpec, SignedPart, TsSource, TsSpec,
};
use super::keys::{collect_secrets, Algorithm, HmacKey, TokenHash};
use super::parse::BASE64_LENIENT;
use super::{Rejection, Scheme, SignedRequest, Verified};
use crate::error::ConfigError;
use base64::Engine as _;

/// A ready-made [`Scheme`] for one provider; see the [module docs](super) for the list.
///
/// Built by one constructor per provider, each taking one or more secrets (several during a
/// rotation; every one is tried). The replay window defaults to the provider's documented
/// tolerance and can be changed with [`tolerance`](Self::tolerance) or turned off with
/// [`without_tolerance`](Self::without_tolerance).
#[derive(Clone)]
pub struct Preset {
    pub(crate) engine: Engine,
}

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn names(list: &[&'static str]) -> Vec<HeaderName> {
    list.iter().map(|n| HeaderName::from_static(n)).collect()
}

fn hmac_keys<I, T>(secrets: I, algorithm: Algorithm) -> Result<Keys, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    collect_secrets(secrets, |_, s| Ok(HmacKey::new(algorithm, s))).map(Keys::Hmac)
}

/// Decodes `<prefix><base64>` secrets (the prefix is optional).
fn prefixed_base64(index: usize, secret: &[u8], prefix: &[u8]) -> Result<Vec<u8>, ConfigError> {
    let body = secret.strip_prefix(prefix).unwrap_or(secret);
    let bytes = BASE64_LENIENT
        .decode(body)
        .map_err(|_| ConfigError::UndecodableSecret {
            index,
            reason: "not valid base64 after the prefix",
        })?;
    if bytes.is_empty() {
        return Err(ConfigError::EmptySecret { index });
    }
    Ok(bytes)
}

/// Splits a URL setting into `scheme://authority` and checks it is absolute `http(s)`.
fn parse_url(what: &'static str, url: &str) -> Result<http::Uri, ConfigError> {
    let uri: http::Uri = url.parse().map_err(|_| ConfigError::InvalidUrl {
        what,
        reason: "not a valid URL",
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(ConfigError::InvalidUrl {
                what,
                reason: "must start with http:// or https://",
            })
        }
    }
    if uri.authority().is_none() {
        return Err(ConfigError::InvalidUrl {
            what,
            reason: "must name a host",
        });
    }
    Ok(uri)
}

/// `scheme://authority` with no path: the part of the URL a proxy may hide from the server.
fn public_base(url: &str) -> Result<String, ConfigError> {
    let uri = parse_url("public URL", url)?;
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        return Err(ConfigError::InvalidUrl {
            what: "public URL",
            reason: "give only scheme and host (the path and query come from the request)",
        });
    }
    Ok(format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", |a| a.as_str())
    ))
}

impl Preset {
    fn hmac(
        name: &'static str,
        keys: Keys,
        signature: SigSpec,
        content: Vec<SignedPart>,
        id: IdSpec,
    ) -> Self {
        Self {
            engine: Engine {
                name,
                keys,
                signature,
                timestamp: None,
                content: Content::Parts(content),
                id,
                event_type: None,
                public_url: None,
                decode_uri: false,
            },
        }
    }

    fn with_timestamp(mut self, source: TsSource, millis: bool, tolerance: Duration) -> Self {
        self.engine.timestamp = Some(TsSpec {
            source,
            millis,
            tolerance: Some(tolerance),
        });
        self
    }

    fn with_event_type(mut self, header: &'static str) -> Self {
        self.engine.event_type = Some(HeaderName::from_static(header));
        self
    }

    /// [Standard Webhooks](https://www.standardwebhooks.com/) `v1` (HMAC-SHA256), as sent by
    /// Svix and the services built on it (Clerk, Resend, ...).
    ///
    /// Secrets are `whsec_<base64>` (the prefix is optional). Reads the `webhook-id`,
    /// `webhook-timestamp` and `webhook-signature` headers, or their `svix-` equivalents. The
    /// signature header is a space-separated list of `v1,<base64>`; any one matching is enough.
    /// The event id is `webhook-id`. Replay window: 5 minutes either way.
    pub fn standard_webhooks<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(secrets, |i, s| {
            Ok(HmacKey::new(
                Algorithm::Sha256,
                &prefixed_base64(i, s, b"whsec_")?,
            ))
        })?;
        Ok(Self::standard(Keys::Hmac(keys), "standard-webhooks", "v1,"))
    }

    /// Standard Webhooks `v1a`: Ed25519 signatures, verified with the sender's public keys
    /// (`whpk_<base64>` of the 32-byte key; the prefix is optional). Otherwise as
    /// [`standard_webhooks`](Self::standard_webhooks).
    #[cfg(feature = "ed25519")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
    pub fn standard_webhooks_ed25519<I, T>(public_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(public_keys, |index, s| {
            let bytes = prefixed_base64(index, s, b"whpk_")?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| ConfigError::UndecodableSecret {
                    index,
                    reason: "an Ed25519 public key is 32 bytes",
                })?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
                ConfigError::UndecodableSecret {
                    index,
                    reason: "not a valid Ed25519 public key",
                }
            })
        })?;
        Ok(Self::standard(
            Keys::Ed25519(keys),
            "standard-webhooks-v1a",
            "v1a,",
        ))
    }

    fn standard(keys: Keys, name: &'static str, prefix: &'static str) -> Self {
        Self::hmac(
            name,
            keys,
            SigSpec {
                headers: names(&["webhook-signature", "svix-signature"]),
                list_sep: Some(b' '),
                prefix: Cow::Borrowed(prefix.as_bytes()),
                encoding: Encoding::Base64,
            },
            vec![
                SignedPart::Id,
                SignedPart::lit("."),
                SignedPart::Timestamp,
                SignedPart::lit("."),
                SignedPart::Body,
            ],
            IdSpec {
                headers: names(&["webhook-id", "svix-id"]),
                json: None,
            },
        )
        .with_timestamp(
            TsSource::Header(names(&["webhook-timestamp", "svix-timestamp"])),
            false,
            FIVE_MINUTES,
        )
    }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body. The event id is
    /// `X-GitHub-Delivery` (kept on redelivery) and the type `X-GitHub-Event`. GitHub signs no
    /// timestamp, so there is no replay window.
    pub fn github<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "github",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-hub-signature-256"]),
                list_sep: None,
                prefix: Cow::Borrowed(b"sha256="),
                encoding: Encoding::Hex,
            },
            vec![SignedPart::Body],
            IdSpec {
                headers: names(&["x-github-delivery"]),
                json: None,
            },
        )
        .with_event_type("x-github-event"))
    }

    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 of `t.body`; any
    /// `v1` matching is enough. The secret is the endpoint's `whsec_...` string, used as-is.
    /// The event id is the body's `id` (`evt_...`). Replay window: 5 minutes.
    pub fn stripe<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "stripe",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["stripe-signature"]),
                list_sep: Some(b','),
                prefix: Cow::Borrowed(b"v1="),
                encoding: Encoding::Hex,
            },
            vec![
                SignedPart::Timestamp,
                SignedPart::lit("."),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["id"]),
            },
        )
        .with_timestamp(TsSource::InSignature(b"t="), false, FIVE_MINUTES))
    }

    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>`, HMAC-SHA256 of the body with the app's
    /// client secret. The event id is `X-Shopify-Event-Id` (else `X-Shopify-Webhook-Id`) and
    /// the type `X-Shopify-Topic`. No signed timestamp.
    pub fn shopify<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "shopify",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-shopify-hmac-sha256"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            vec![SignedPart::Body],
            IdSpec {
                headers: names(&["x-shopify-event-id", "x-shopify-webhook-id"]),
                json: None,
            },
        )
        .with_event_type("x-shopify-topic"))
    }

    /// Slack: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 of `v0:<ts>:<body>` with the app's
    /// signing secret, timestamp in `X-Slack-Request-Timestamp`. The event id is the body's
    /// `event_id` (Events API), else the body's hash. Replay window: 5 minutes.
    pub fn slack<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "slack",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-slack-signature"]),
                list_sep: None,
                prefix: Cow::Borrowed(b"v0="),
                encoding: Encoding::Hex,
            },
            vec![
                SignedPart::lit("v0:"),
                SignedPart::Timestamp,
                SignedPart::lit(":"),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["event_id"]),
            },
        )
        .with_timestamp(
            TsSource::Header(names(&["x-slack-request-timestamp"])),
            false,
            FIVE_MINUTES,
        ))
    }

    /// Twilio: `X-Twilio-Signature: <base64>`, HMAC-SHA1 with the auth token over the full URL
    /// followed by the form parameters sorted by name (each name then its value). For JSON
    /// bodies Twilio adds `bodySHA256=<hex>` to the query and signs the URL alone; the body's
    /// hash is then checked too. A non-empty body that is neither a form
    /// (`Content-Type: application/x-www-form-urlencoded`) nor covered by `bodySHA256` is
    /// rejected, since the signature would not cover it. The URL is tried with and without the
    /// default port, as Twilio may sign either.
    ///
    /// Twilio signs the decoded form parameters, not the body's bytes: two bodies that decode
    /// to the same parameters (`a=x+y` and `a=x%20y`) carry the same signature.
    ///
    /// `public_url` is the scheme and host Twilio calls (`https://example.com`); the path and
    /// query come from the request, so the scheme works behind a proxy that rewrites the host.
    /// The event id is `I-Twilio-Idempotency-Token`, else the body's hash.
    pub fn twilio<I, T>(auth_tokens: I, public_url: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut preset = Self::hmac(
            "twilio",
            hmac_keys(auth_tokens, Algorithm::Sha1)?,
            SigSpec {
                headers: names(&["x-twilio-signature"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            Vec::new(),
            IdSpec {
                headers: names(&["i-twilio-idempotency-token"]),
                json: None,
            },
        );
        preset.engine.content = Content::Twilio;
        preset.engine.public_url = Some(public_base(public_url)?);
        Ok(preset)
    }

    /// GitLab: the `X-Gitlab-Token` header must equal the webhook's secret token (compared in
    /// constant time, as SHA-256 digests so lengths do not show). The event id is
    /// `Idempotency-Key` (kept across retries), else `X-Gitlab-Event-UUID`; the type is
    /// `X-Gitlab-Event`.
    pub fn gitlab<I, T>(tokens: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(tokens, |_, s| Ok(TokenHash::new(s)))?;
        Ok(Self::hmac(
            "gitlab",
            Keys::Token(keys),
            SigSpec {
                headers: names(&["x-gitlab-token"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Hex,
            },
            Vec::new(),
            IdSpec {
                headers: names(&["idempotency-key", "x-gitlab-event-uuid"]),
                json: None,
            },
        )
        .with_event_type("x-gitlab-event"))
    }

    /// Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]`, HMAC-SHA256 of
    /// `ts:body`. The event id is the body's `event_id`. Replay window: 5 seconds, as in
    /// Paddle's SDKs.
    pub fn paddle<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "paddle",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["paddle-signature"]),
                list_sep: Some(b';'),
                prefix: Cow::Borrowed(b"h1="),
                encoding: Encoding::Hex,
            },
            vec![
                SignedPart::Timestamp,
                SignedPart::lit(":"),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["event_id"]),
            },
        )
        .with_timestamp(TsSource::InSignature(b"ts="), false, Duration::from_secs(5)))
    }

    /// Square: `X-Square-HmacSha256-Signature: <base64>`, HMAC-SHA256 of the notification URL
    /// (exactly as registered with Square) followed by the body. The event id is the body's
    /// `event_id`. No signed timestamp.
    pub fn square<I, T>(signature_keys: I, notification_url: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        parse_url("notification URL", notification_url)?;
        Ok(Self::hmac(
            "square",
            hmac_keys(signature_keys, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-square-hmacsha256-signature"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            vec![
                SignedPart::Literal(Cow::Owned(notification_url.as_bytes().to_vec())),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["event_id"]),
            },
        ))
    }

    /// HubSpot v3: `X-HubSpot-Signature-v3: <base64>`, HMAC-SHA256 with the app's client
    /// secret of method + URI + body + timestamp, the timestamp in milliseconds in
    /// `X-HubSpot-Request-Timestamp`. The URI is `public_url` (scheme and host) followed by the
    /// request's path and query, with the escapes HubSpot decodes (`%3A`, `%2F`, ...) decoded.
    /// HubSpot batches events in one array body, so the id is the body's hash. Replay window:
    /// 5 minutes.
    pub fn hubspot<I, T>(client_secrets: I, public_url: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut preset = Self::hmac(
            "hubspot",
            hmac_keys(client_secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-hubspot-signature-v3"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            vec![
                SignedPart::Method,
                SignedPart::Url,
                SignedPart::Body,
                SignedPart::Timestamp,
            ],
            IdSpec::default(),
        )
        .with_timestamp(
            TsSource::Header(names(&["x-hubspot-request-timestamp"])),
            true,
            FIVE_MINUTES,
        );
        preset.engine.public_url = Some(public_base(public_url)?);
        preset.engine.decode_uri = true;
        Ok(preset)
    }

    /// PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of the body;
    /// any `v1` matching is enough (PagerDuty lists one per active secret). The event id is
    /// `X-Webhook-Id`, else the body's `event.id`. No signed timestamp.
    pub fn pagerduty<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "pagerduty",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-pagerduty-signature"]),
                list_sep: Some(b','),
                prefix: Cow::Borrowed(b"v1="),
                encoding: Encoding::Hex,
            },
            vec![SignedPart::Body],
            IdSpec {
                headers: names(&["x-webhook-id"]),
                json: Some(&["event", "id"]),
            },
        ))
    }

    /// Sets the replay window: a signed timestamp further than this from now, either way, is
    /// rejected. Has no effect on schemes whose signature carries no timestamp.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        if let Some(ts) = &mut self.engine.timestamp {
            ts.tolerance = Some(tolerance);
        }
        self
    }

    /// Turns the replay window off: any signed timestamp is accepted (it must still parse).
    pub fn without_tolerance(mut self) -> Self {
        if let Some(ts) = &mut self.engine.timestamp {
            ts.tolerance = None;
        }
        self
    }

    /// The replay window, if the scheme signs a timestamp and the window is on.
    pub fn replay_window(&self) -> Option<Duration> {
        self.engine.timestamp.as_ref().and_then(|t| t.tolerance)
    }

    /// Every header this scheme reads: signature, timestamp, id and event-type headers (each
    /// with its alternative names), and `Content-Type` where it changes what is signed
    /// (Twilio). These are the headers to keep with a stored event so that it can be
    /// verified again later.
    pub fn header_names(&self) -> impl Iterator<Item = &HeaderName> + '_ {
        let e = &self.engine;
        let timestamp = match e.timestamp.as_ref().map(|t| &t.source) {
            Some(TsSource::Header(names)) => &names[..],
            _ => &[],
        };
        static CONTENT_TYPE: [HeaderName; 1] = [http::header::CONTENT_TYPE];
        let content_type: &[HeaderName] = match e.content {
            Content::Twilio => &CONTENT_TYPE,
            Content::Parts(_) => &[],
        };
        e.signature
            .headers
            .iter()
            .chain(timestamp)
            .chain(&e.id.headers)
            .chain(&e.event_type)
            .chain(content_type)
    }

    /// How many secrets (or keys) are configured.
    pub fn secret_count(&self) -> usize {
        self.engine.keys.len()
    }
}

impl Scheme for Preset {
    #[inline]
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, Rejection> {
        self.engine.verify(request)
    }

    fn name(&self) -> &'static str {
        self.engine.name
    }
}

impl fmt::Debug for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preset")
            .field("scheme", &self.engine.name)
            .field("secrets", &self.engine.keys.len())
            .field("replay_window", &self.replay_window())
            .finish_non_exhaustive()
    }
}

/// The messages Twilio may have signed for this request: the URL as configured and with the
/// default port toggled, each followed by the sorted form parameters. Empty when the body's
/// hash does not match a `bodySHA256` in the query (so nothing can match).
pub(crate) fn twilio_variants(
    engine: &Engine,
    req: &SignedRequest<'_>,
) -> Result<Vec<Vec<u8>>, Rejection> {
    let base = engine.public_url.as_deref().unwrap_or_default();
    let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut suffix = Vec::new();
    if let Some(expected) = super::engine::query_param(req, "bodySHA256") {
        use sha2::Digest;
        // Twilio's libraries compare the lowercase hex digest as text.
        let actual = hex::encode(sha2::Sha256::digest(req.body));
        if actual != expected {
            return Ok(Vec::new());
        }
    } else if super::engine::is_form(req.headers) {
        let mut params: Vec<(Cow<'_, str>, Cow<'_, str>)> =
            form_urlencoded::parse(req.body).collect();
        params.sort();
        for (k, v) in params {
            suffix.extend_from_slice(k.as_bytes());
            suffix.extend_from_slice(v.as_bytes());
        }
    } else if !req.body.is_empty() {
        // Neither form parameters nor a `bodySHA256`: the signature would cover the URL
        // alone, so these body bytes are not authenticated. Twilio never sends this.
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(2);
    for base in std::iter::once(Some(base.to_owned())).chain([toggle_default_port(base)]) {
        let Some(base) = base else { continue };
        let mut message = Vec::with_capacity(base.len() + pq.len() + suffix.len());
        message.extend_from_slice(base.as_bytes());
        message.extend_from_slice(pq.as_bytes());
        message.extend_from_slice(&suffix);
        out.push(message);
    }
    Ok(out)
}

/// `https://host` ⇄ `https://host:443` (and `http` with 80); `None` for other ports.
fn toggle_default_port(base: &str) -> Option<String> {
    let (scheme, authority) = base.split_once("://")?;
    let default = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    // An IPv6 literal ends in `]`; a port follows the last `:` after it.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rfind(':') {
        Some(i) => {
            let (host, port) = authority.split_at(host_end + i);
            (&port[1..] == default).then(|| format!("{scheme}://{host}"))
        }
        None => Some(format!("{scheme}://{authority}:{default}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_secrets_fail_at_construction() {
        let empty: [&str; 0] = [];
        assert_eq!(Preset::github(empty).unwrap_err(), ConfigError::NoSecrets);
        assert_eq!(
            Preset::stripe([""]).unwrap_err(),
            ConfigError::EmptySecret { index: 0 }
        );
        assert!(matches!(
            Preset::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_%%%"])
                .unwrap_err(),
            ConfigError::UndecodableSecret { index: 1, .. }
        ));
        assert_eq!(
            Preset::standard_webhooks(["whsec_"]).unwrap_err(),
            ConfigError::EmptySecret { index: 0 }
        );
        assert!(matches!(
            Preset::twilio(["t"], "ftp://x").unwrap_err(),
            ConfigError::InvalidUrl { .. }
        ));
        assert!(matches!(
            Preset::twilio(["t"], "https://x/path").unwrap_err(),
            ConfigError::InvalidUrl { .. }
        ));
        assert!(matches!(
            Preset::square(["t"], "/relative").unwrap_err(),
            ConfigError::InvalidUrl { .. }
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        // `whsec_` + base64("topsecretvalue!!"), so the decoded key is recognizable too.
        let sw = "whsec_dG9wc2VjcmV0dmFsdWUhIQ==";
        let plain = "topsecretvalue!!";
        let url = "https://example.com";
        let presets = [
            Preset::standard_webhooks([sw]).unwrap(),
            Preset::github([plain]).unwrap(),
            Preset::stripe([plain]).unwrap(),
            Preset::shopify([plain]).unwrap(),
            Preset::slack([plain]).unwrap(),
            Preset::twilio([plain], url).unwrap(),
            Preset::gitlab([plain]).unwrap(),
            Preset::paddle([plain]).unwrap(),
            Preset::square([plain], url).unwrap(),
            Preset::hubspot([plain], url).unwrap(),
            Preset::pagerduty([plain]).unwrap(),
            crate::scheme::GenericHmac::new("acme", "x-sig")
                .build([plain])
                .unwrap(),
        ];
        for p in presets {
            for s in [format!("{p:?}"), format!("{p:#?}")] {
                for needle in ["topsecret", "dG9wc2Vj", "whsec_"] {
                    assert!(!s.contains(needle), "{s}");
                }
                assert!(s.contains(p.engine.name), "{s}");
            }
        }
    }

    #[test]
    fn tolerance_settings() {
        let p = Preset::stripe(["s"]).unwrap();
        assert_eq!(p.replay_window(), Some(FIVE_MINUTES));
        let p = p.tolerance(Duration::from_secs(60));
        assert_eq!(p.replay_window(), Some(Duration::from_secs(60)));
        assert_eq!(p.without_tolerance().replay_window(), None);
        assert_eq!(Preset::github(["s"]).unwrap().replay_window(), None);
    }

    #[test]
    fn header_names_cover_what_is_read() {
        let names = |p: Preset| -> Vec<String> {
            p.header_names().map(|n| n.as_str().to_owned()).collect()
        };
        assert_eq!(
            names(Preset::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap()),
            [
                "webhook-signature",
                "svix-signature",
                "webhook-timestamp",
                "svix-timestamp",
                "webhook-id",
                "svix-id"
            ]
        );
        assert_eq!(
            names(Preset::github(["s"]).unwrap()),
            ["x-hub-signature-256", "x-github-delivery", "x-github-event"]
        );
        assert_eq!(names(Preset::stripe(["s"]).unwrap()), ["stripe-signature"]);
        assert_eq!(
            names(Preset::twilio(["s"], "https://a.com").unwrap()),
            [
                "x-twilio-signature",
                "i-twilio-idempotency-token",
                "content-type"
            ]
        );
    }

    #[test]
    fn port_toggling() {
        assert_eq!(
            toggle_default_port("https://a.com").as_deref(),
            Some("https://a.com:443")
        );
        assert_eq!(
            toggle_default_port("https://a.com:443").as_deref(),
            Some("https://a.com")
        );
        assert_eq!(
            toggle_default_port("http://a.com").as_deref(),
            Some("http://a.com:80")
        );
        assert_eq!(toggle_default_port("https://a.com:8443"), None);
        assert_eq!(
            toggle_default_port("https://[::1]").as_deref(),
            Some("https://[::1]:443")
        );
    }
}
