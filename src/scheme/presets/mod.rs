//! The providers' signing rules, each a few lines of configuration over the
//! [engine](super::engine), in one file per signing shape:
//!
//! - [`standard_webhooks`]: Standard Webhooks (`v1`, `v1a`);
//! - [`body`]: an HMAC of the body alone, or a shared token (GitHub, Shopify, PagerDuty, GitLab);
//! - [`timestamped`]: an HMAC of a timestamp and the body (Stripe, Slack, Paddle);
//! - [`url`]: an HMAC that covers the URL called (Twilio, Square, HubSpot).
//!
//! This file holds [`Preset`] itself, the settings every preset shares, and the helpers the
//! constructors are written with.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use base64::Engine as _;

use super::engine::{
    Content, Encoding, Engine, Field, IdSpec, Keys, SigSpec, SignedPart, TsFormat, TsSource, TsSpec,
};
use super::keys::{collect_secrets, Algorithm, HmacKey};
use super::parse::BASE64_LENIENT;
use super::{Rejection, Scheme, SignedRequest, Verified};
use crate::error::ConfigError;
use crate::verify::handshake::Handshake;

mod body;
mod standard_webhooks;
mod timestamped;
mod url;

pub(crate) use url::twilio_variants;

mod public_key;
mod signed_fields;

/// A ready-made [`Scheme`] for one provider; see the [module docs](super) for the list.
///
/// Built by one constructor per provider, each taking one or more secrets (several during a
/// rotation; every one is tried). The replay window defaults to the provider's documented
/// tolerance and can be changed with [`tolerance`](Self::tolerance) or turned off with
/// [`without_tolerance`](Self::without_tolerance).
///
/// A preset whose provider sends a [handshake](crate::verify::handshake) carries it, and the
/// verify layer answers it.
#[derive(Clone)]
pub struct Preset {
    pub(crate) engine: Engine,
    pub(crate) handshake: Option<Arc<dyn Handshake>>,
}

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn names(list: &[&'static str]) -> Vec<HeaderName> {
    list.iter().map(|n| HeaderName::from_static(n)).collect()
}

/// A signature in the first present of `headers`, written `<prefix><encoded signature>`.
fn sig(headers: &[&'static str], prefix: &'static str, encoding: Encoding) -> SigSpec {
    SigSpec {
        headers: names(headers),
        every_header: false,
        json: None,
        list_sep: None,
        prefix: Cow::Borrowed(prefix.as_bytes()),
        encoding,
    }
}

/// As [`sig`], the header holding a list of items separated by `sep`.
fn sig_list(header: &'static str, sep: u8, prefix: &'static str, encoding: Encoding) -> SigSpec {
    SigSpec {
        list_sep: Some(sep),
        ..sig(&[header], prefix, encoding)
    }
}

/// The event id is in the first present of these headers.
fn id_header(list: &[&'static str]) -> IdSpec {
    IdSpec {
        headers: names(list),
        json: None,
    }
}

/// The event id is this field of the JSON body.
fn id_field(path: &'static [&'static str]) -> IdSpec {
    IdSpec {
        headers: Vec::new(),
        json: Some(path),
    }
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
    fn scheme(
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
                id_from_body_hash: false,
            },
            handshake: None,
        }
    }

    /// Signs a timestamp, read from `source`, written as `format`, and checked against a replay
    /// window of `tolerance` (`None`: the provider documents none).
    fn with_timestamp(
        mut self,
        source: TsSource,
        format: TsFormat,
        tolerance: Option<Duration>,
    ) -> Self {
        self.engine.timestamp = Some(TsSpec {
            source,
            format,
            tolerance,
        });
        self
    }

    /// The event type is in this header.
    fn with_event_type(mut self, header: &'static str) -> Self {
        self.engine.event_type = Some(Field::Header(HeaderName::from_static(header)));
        self
    }

    /// The event type is this field of the JSON body.
    fn with_event_type_field(mut self, path: &'static [&'static str]) -> Self {
        self.engine.event_type = Some(Field::Json(path));
        self
    }

    /// Sets the [handshake](crate::verify::handshake) the verify layer answers for this preset
    /// (builder style), replacing the provider's own if it has one. To stop answering it, use
    /// [`VerifyLayer::without_handshake`](crate::verify::VerifyLayer::without_handshake).
    pub fn with_handshake(mut self, handshake: impl Handshake) -> Self {
        self.handshake = Some(Arc::new(handshake));
        self
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

    /// Makes the event id the SHA-256 of the body (builder style), ignoring the provider's
    /// delivery id: [`Verified::id_origin`](super::Verified::id_origin) is then
    /// [`IdOrigin::BodyHash`](super::IdOrigin::BodyHash).
    ///
    /// For providers that sign the body's bytes but not their delivery id (GitHub, Shopify,
    /// PagerDuty, Bitbucket Cloud, Razorpay, Sentry; Linear within its 60-second window):
    /// anyone holding one captured delivery can send it again under new ids, and each copy
    /// would be stored and handled as a new event. With the id taken from the body, every
    /// copy has the same id and the queue and the dedupe layer absorb them, for as long as
    /// they keep the id. It helps less elsewhere: Twilio signs the decoded form parameters,
    /// so a copy re-encoded (`%61` for `a`) has another hash; GitLab's and Okta's token is
    /// the secret itself, so a captured delivery lets its holder send any body.
    ///
    /// The trade-off: two deliveries with byte-identical bodies are one event. Most
    /// providers' bodies carry something unique (an event id, a timestamp, a commit), but a
    /// provider that sends the same body for two distinct events (GitHub's `ping` of one
    /// hook, a repeated status callback) has the second one skipped as a duplicate; and a
    /// provider's own redelivery of an event whose body changed (it should not) is stored
    /// as a new event.
    ///
    /// ```
    /// use hookdock::scheme::{IdOrigin, Preset, Scheme, SignedRequest};
    /// use std::time::UNIX_EPOCH;
    ///
    /// let github = Preset::github(["It's a Secret to Everybody"])?.id_from_body_hash();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert(
    ///     "x-hub-signature-256",
    ///     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".parse()?,
    /// );
    /// let uri: http::Uri = "/webhooks/github".parse()?;
    /// let mut ids = Vec::new();
    /// for delivery in ["72d3162e-cc78-11e3-81ab-4c9367dc0958", "forged-new-id"] {
    ///     headers.insert("x-github-delivery", delivery.parse()?);
    ///     let request = SignedRequest {
    ///         method: &http::Method::POST,
    ///         uri: &uri,
    ///         headers: &headers,
    ///         body: b"Hello, World!",
    ///         now: UNIX_EPOCH,
    ///     };
    ///     let verified = github.verify(&request)?;
    ///     assert_eq!(verified.id_origin, IdOrigin::BodyHash);
    ///     ids.push(verified.id);
    /// }
    /// // A replay under a new delivery id is the same event.
    /// assert_eq!(ids[0], ids[1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id_from_body_hash(mut self) -> Self {
        self.engine.id_from_body_hash = true;
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
            .chain(match &e.event_type {
                Some(Field::Header(name)) => std::slice::from_ref(name),
                _ => &[],
            })
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

    fn handshake(&self) -> Option<&dyn Handshake> {
        self.handshake.as_deref()
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
}
