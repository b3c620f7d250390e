//! Signature schemes: who signed this delivery, and is it fresh?
//!
//! A [`Scheme`] is one provider's signing rule as a pure, synchronous function of the request's
//! method, URI, headers, raw body and the current time. It returns the [`Verified`] identity of
//! the delivery, or a [`Rejection`] whose [`RejectionKind`] says why.
//!
//! The ready-made schemes are [`Preset`]s, one constructor per provider:
//!
//! | provider | constructor | what is signed | replay window (default) | handshake |
//! |---|---|---|---|---|
//! | Standard Webhooks / Svix | [`Preset::standard_webhooks`] (`svix-*` headers too) | HMAC-SHA256 of `id.ts.body`, `webhook-signature: v1,<b64>` | 5 min | — |
//! | Clerk, Resend (Svix) | [`Preset::clerk`], [`Preset::resend`] | as Standard Webhooks; type from the body's `type` | 5 min | — |
//! | OpenAI, Replicate | [`Preset::openai`], [`Preset::replicate`] | as Standard Webhooks | 5 min | — |
//! | Standard Webhooks `v1a` (feature `ed25519`) | `Preset::standard_webhooks_ed25519` | Ed25519 of `id.ts.body`, `v1a,<b64>` | 5 min | — |
//! | GitHub | [`Preset::github`] | HMAC-SHA256 of the body, `X-Hub-Signature-256: sha256=<hex>` | none (unsigned) | — (`ping` is an ordinary, signed delivery) |
//! | Meta (Facebook, Instagram, WhatsApp) | [`Preset::meta`] | HMAC-SHA256 of the body, `X-Hub-Signature-256`; type from `object` | none (unsigned) | `GET ?hub.mode=subscribe` with `MetaSubscribe` |
//! | Bitbucket Cloud | [`Preset::bitbucket_cloud`] | HMAC-SHA256 of the body, `X-Hub-Signature: sha256=<hex>` | none (unsigned) | — |
//! | Intercom | [`Preset::intercom`] | HMAC-SHA1 of the body, `X-Hub-Signature: sha1=<hex>` | none (unsigned) | — |
//! | Stripe | [`Preset::stripe`] | HMAC-SHA256 of `t.body`, `Stripe-Signature: t=..,v1=<hex>` | 5 min | — |
//! | Calendly | [`Preset::calendly`] | HMAC-SHA256 of `t.body`, `Calendly-Webhook-Signature: t=..,v1=` | 3 min | — |
//! | Mux | [`Preset::mux`] | HMAC-SHA256 of `t.body`, `Mux-Signature: t=..,v1=` | 5 min | — |
//! | Slack | [`Preset::slack`] | HMAC-SHA256 of `v0:ts:body`, `X-Slack-Signature: v0=<hex>` | 5 min | `url_verification` (signed) → the challenge |
//! | Zoom | [`Preset::zoom`] | HMAC-SHA256 of `v0:ts:body`, `x-zm-signature: v0=<hex>` | none documented | `endpoint.url_validation` (signed) → `plainToken`, `encryptedToken` |
//! | Twitch EventSub | [`Preset::twitch`] | HMAC-SHA256 of `id ts body`, RFC 3339 timestamp | 10 min | `webhook_callback_verification` (signed) → the challenge |
//! | Paddle | [`Preset::paddle`] | HMAC-SHA256 of `ts:body`, `Paddle-Signature: ts=..;h1=` | 5 s | — |
//! | Discord (feature `ed25519`) | `Preset::discord` | Ed25519 of `ts body`, `X-Signature-Ed25519` | none documented | `PING` (signed) → `{"type":1}` |
//! | SendGrid (feature `p256`) | `Preset::sendgrid` | ECDSA P-256 of `ts body`, `X-Twilio-Email-Event-Webhook-Signature` | none documented | — |
//! | Linear | [`Preset::linear`] | HMAC-SHA256 of the body, `Linear-Signature`; body's `webhookTimestamp` checked | 60 s | — |
//! | Mailgun | [`Preset::mailgun`] | HMAC-SHA256 of the body's `signature.timestamp` + `.token` (not the body) | none documented | — |
//! | Shopify | [`Preset::shopify`] | HMAC-SHA256 of the body, base64 | none (unsigned) | — |
//! | Typeform | [`Preset::typeform`] | HMAC-SHA256 of the body, `Typeform-Signature: sha256=<b64>` | none (unsigned) | — |
//! | Vercel | [`Preset::vercel`] | HMAC-SHA1 of the body, `x-vercel-signature` | none (unsigned) | — |
//! | Lemon Squeezy | [`Preset::lemonsqueezy`] | HMAC-SHA256 of the body, `X-Signature` | none (unsigned) | — |
//! | Coinbase Commerce | [`Preset::coinbase_commerce`] | HMAC-SHA256 of the body, `X-CC-Webhook-Signature` | none (unsigned) | — |
//! | Razorpay | [`Preset::razorpay`] | HMAC-SHA256 of the body, `X-Razorpay-Signature` | none (unsigned) | — |
//! | Paystack | [`Preset::paystack`] | HMAC-SHA512 of the body, `x-paystack-signature` | none (unsigned) | — |
//! | Sentry | [`Preset::sentry`] | HMAC-SHA256 of the body, `Sentry-Hook-Signature` | none (unsigned) | — |
//! | CircleCI | [`Preset::circleci`] | HMAC-SHA256 of the body, `circleci-signature: v1=<hex>` | none (unsigned) | — |
//! | Docusign Connect | [`Preset::docusign`] | HMAC-SHA256 of the body, `X-DocuSign-Signature-1`..`-10` (one per key) | none (unsigned) | — |
//! | PagerDuty v3 | [`Preset::pagerduty`] | HMAC-SHA256 of the body, `X-PagerDuty-Signature: v1=..,v1=..` | none (unsigned) | — |
//! | Twilio (form and JSON bodies) | [`Preset::twilio`] | HMAC-SHA1 of the URL + sorted form parameters (or `bodySHA256`) | none (unsigned) | — |
//! | Square | [`Preset::square`] | HMAC-SHA256 of the notification URL + body | none (unsigned) | — |
//! | HubSpot v3 | [`Preset::hubspot`] | HMAC-SHA256 of method + URI + body + ts (ms) | 5 min | — |
//! | GitLab | [`Preset::gitlab`] | nothing: `X-Gitlab-Token` equals the secret | none | — |
//! | Okta event hooks | [`Preset::okta`] | nothing: the `Authorization` value equals the secret | none | one-time `GET` `X-Okta-Verification-Challenge` (authorized) → `{"verification":..}` |
//! | Microsoft Graph | `MicrosoftGraph::new` | nothing: `clientState` on every notification | none | `?validationToken=` → the token |
//! | AWS SNS (feature `aws-sns`) | `AwsSns::builder(topics)...build()` | RSA (versions 1 and 2) over the canonical string | none (dedupe on `MessageId`) | `SubscriptionConfirmation` (signed; `SubscribeURL` visited only when configured), `UnsubscribeConfirmation` |
//! | anything else | [`GenericHmac`] | configurable | configurable | `Preset::with_handshake` |
//!
//! Every preset:
//!
//! - takes several secrets (rotation) and checks every signature in the header against every
//!   secret, comparing in constant time and without stopping at the first match;
//! - holds its secrets pre-keyed (the HMAC state after absorbing the key), never the secret
//!   text, and prints none of it in `Debug`;
//! - rejects a bad secret (empty, undecodable `whsec_`) when it is built, with a
//!   [`ConfigError`](crate::ConfigError);
//! - has the provider's documented replay window as its default, changeable with
//!   [`Preset::tolerance`] and [`Preset::without_tolerance`].
//!
//! ```
//! use hookdock::scheme::{Preset, Scheme, SignedRequest};
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! let github = Preset::github(["It's a Secret to Everybody"])?;
//! let mut headers = http::HeaderMap::new();
//! headers.insert(
//!     "x-hub-signature-256",
//!     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".parse()?,
//! );
//! headers.insert("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse()?);
//! let uri: http::Uri = "/webhooks/github".parse()?;
//! let request = SignedRequest {
//!     method: &http::Method::POST,
//!     uri: &uri,
//!     headers: &headers,
//!     body: b"Hello, World!",
//!     now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
//! };
//! let verified = github.verify(&request)?;
//! assert_eq!(verified.id.as_str(), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod content;
pub(crate) mod engine;
mod generic;
mod graph;
pub(crate) mod keys;
mod matching;
pub(crate) mod parse;
mod presets;
#[cfg(feature = "aws-sns")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sns")))]
pub mod sns;
pub(crate) mod timestamp;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};

use crate::event::{EventId, EventType};
use crate::verify::handshake::Handshake;

pub use engine::{Encoding, SignedPart};
pub use generic::GenericHmac;
pub use graph::MicrosoftGraph;
pub use keys::Algorithm;
pub use presets::Preset;
#[cfg(feature = "aws-sns")]
pub use sns::AwsSns;

/// The parts of a request a scheme may look at. Borrowed, so checking costs no copies.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI as the server saw it (usually path and query only).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw body, exactly as received.
    pub body: &'a [u8],
    /// The verifier's current time.
    pub now: SystemTime,
}

/// One provider's signing rule.
///
/// A scheme is pure and synchronous: the same request at the same `now` always gets the same
/// answer, and it does no I/O. Implementations must compare secrets in constant time, must try
/// every configured secret, and must never log or print secret material.
///
/// Implemented for [`Preset`], and for `Arc<S>` and `Box<S>` of any scheme (including
/// `dyn Scheme`).
pub trait Scheme: Send + Sync + 'static {
    /// Checks one delivery.
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, Rejection>;

    /// A short, stable name for the scheme (such as `"github"`), used as the default source
    /// name when events are stored.
    fn name(&self) -> &'static str;

    /// The provider's handshake (the challenge requests it sends to check an endpoint), which
    /// the verify layer answers; see [`verify::handshake`](crate::verify::handshake). `None`
    /// (the default) for providers without one.
    fn handshake(&self) -> Option<&dyn Handshake> {
        None
    }

    /// Loads key material that [`verify`](Self::verify) found missing, for the schemes whose
    /// keys are named by the delivery and fetched on first use (AWS SNS: the signing
    /// certificate at `SigningCertURL`).
    ///
    /// Such a scheme answers [`RejectionKind::KeyUnavailable`] from `verify` while the key is
    /// not loaded; the verify layer then awaits this future and verifies once more. `None`
    /// (the default, and the answer of every scheme that holds all its keys) means there is
    /// nothing to load. The future resolves to the rejection to answer with when the key cannot
    /// be had (a URL the scheme does not trust, a fetch that failed).
    fn load_key(&self, request: &SignedRequest<'_>) -> Option<KeyLoad> {
        let _ = request;
        None
    }
}

/// The future of [`Scheme::load_key`]: loads a key into the scheme (its cache), or says why it
/// could not.
pub type KeyLoad = Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send + 'static>>;

impl<S: Scheme + ?Sized> Scheme for Arc<S> {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, Rejection> {
        (**self).verify(request)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn handshake(&self) -> Option<&dyn Handshake> {
        (**self).handshake()
    }
    fn load_key(&self, request: &SignedRequest<'_>) -> Option<KeyLoad> {
        (**self).load_key(request)
    }
}

impl<S: Scheme + ?Sized> Scheme for Box<S> {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, Rejection> {
        (**self).verify(request)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn handshake(&self) -> Option<&dyn Handshake> {
        (**self).handshake()
    }
    fn load_key(&self, request: &SignedRequest<'_>) -> Option<KeyLoad> {
        (**self).load_key(request)
    }
}

/// Where a verified event's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdOrigin {
    /// The provider's own delivery or event id (a header, or a field of the body).
    Provider,
    /// The SHA-256 of the body, because the provider sent no id.
    BodyHash,
}

/// The verified identity of a delivery, placed in the request's extensions by the verify layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The scheme that verified it (see [`Scheme::name`]).
    pub scheme: &'static str,
    /// The provider's delivery or event id, or the body's SHA-256.
    pub id: EventId,
    /// Where [`id`](Self::id) came from.
    pub id_origin: IdOrigin,
    /// The provider's timestamp, where it is part of the signature.
    pub timestamp: Option<SystemTime>,
    /// The event type, where the provider sends it in a header (such as `X-GitHub-Event`).
    pub event_type: Option<EventType>,
    /// Which configured secret matched, counting from 0 in the order given (useful to see when
    /// a rotated-out secret stops being used).
    pub secret_index: usize,
}

impl Verified {
    /// A verified identity; for implementors of [`Scheme`].
    pub fn new(scheme: &'static str, id: EventId, id_origin: IdOrigin) -> Self {
        Self {
            scheme,
            id,
            id_origin,
            timestamp: None,
            event_type: None,
            secret_index: 0,
        }
    }

    /// Sets the provider timestamp (builder style).
    pub fn with_timestamp(mut self, timestamp: Option<SystemTime>) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets the event type (builder style).
    pub fn with_event_type(mut self, event_type: Option<EventType>) -> Self {
        self.event_type = event_type;
        self
    }

    /// Sets which secret matched (builder style).
    pub fn with_secret_index(mut self, index: usize) -> Self {
        self.secret_index = index;
        self
    }
}

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// A header the scheme needs is absent (or, for a scheme that signs fields of the body,
    /// such as Mailgun, a field it needs).
    MissingHeader,
    /// A header is present but cannot be parsed (such as a non-numeric timestamp).
    MalformedHeader,
    /// A signature is present but matches no configured secret (including empty, truncated,
    /// undecodable or wrong-version signatures).
    BadSignature,
    /// The signed timestamp is older than the replay window allows.
    TimestampTooOld,
    /// The signed timestamp is further in the future than the replay window allows.
    TimestampInFuture,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body could not be read from the connection.
    BodyUnreadable,
    /// The body did not arrive within the verify layer's body timeout (a client sending it
    /// too slowly, or announcing more bytes than it sends).
    BodyTimeout,
    /// The body cannot be read where the scheme must read it: the signed fields of a body
    /// that carries its own signature (AWS SNS), or the tokens in it (Microsoft Graph's
    /// `clientState`). Checked only for schemes that must parse before they can verify.
    MalformedBody,
    /// A handshake that cannot be answered: its challenge is missing or empty.
    BadHandshake,
    /// The delivery names a key this scheme does not trust: an AWS SNS `SigningCertURL` that
    /// is not `https://sns.<region>.amazonaws.com/...` (never fetched), or a certificate that
    /// is not valid now.
    UntrustedKey,
    /// The delivery is authentic but from a sender this scheme was not configured to accept
    /// (an AWS SNS topic not in the allowed list).
    SenderNotAllowed,
    /// The key needed to check the delivery could not be loaded now (the certificate fetch
    /// failed); the provider's retry may succeed. Answered `503` with `Retry-After`.
    KeyUnavailable,
    /// A header that must have one value (a delivery id, a signed timestamp) is repeated with
    /// different values, or the signature header carries different timestamps: which one the
    /// sender meant cannot be told.
    ConflictingHeader,
}

impl RejectionKind {
    /// A stable snake_case name (`"bad_signature"`, ...), as used in logs and test vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::MalformedHeader => "malformed_header",
            Self::BadSignature => "bad_signature",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TimestampInFuture => "timestamp_in_future",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyUnreadable => "body_unreadable",
            Self::BodyTimeout => "body_timeout",
            Self::MalformedBody => "malformed_body",
            Self::BadHandshake => "bad_handshake",
            Self::UntrustedKey => "untrusted_key",
            Self::SenderNotAllowed => "sender_not_allowed",
            Self::KeyUnavailable => "key_unavailable",
            Self::ConflictingHeader => "conflicting_header",
        }
    }

    /// The HTTP status the verify layer answers with: 400 for a malformed or conflicting
    /// header, a malformed or unreadable body or a handshake without its challenge, 413 for a
    /// body over the limit, 408 for a body that did not arrive in time, 403 for a sender not
    /// allowed, 503 for a key that could not be loaded now, 401 otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedHeader
            | Self::ConflictingHeader
            | Self::BodyUnreadable
            | Self::MalformedBody
            | Self::BadHandshake => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::SenderNotAllowed => StatusCode::FORBIDDEN,
            Self::KeyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused delivery: the kind, the header concerned if any, and a short explanation.
///
/// Never contains secret material or signature values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    header: Option<HeaderName>,
    detail: Cow<'static, str>,
}

impl Rejection {
    /// A rejection of the given kind.
    pub fn new(kind: RejectionKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            header: None,
            detail: detail.into(),
        }
    }

    /// Names the header concerned (builder style).
    pub fn with_header(mut self, header: HeaderName) -> Self {
        self.header = Some(header);
        self
    }

    /// Why the delivery was refused.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The header concerned, if any.
    pub fn header(&self) -> Option<&HeaderName> {
        self.header.as_ref()
    }

    /// A short human-readable explanation.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The HTTP status for this rejection; see [`RejectionKind::status`].
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    pub(crate) fn missing(header: &HeaderName) -> Self {
        Self::new(RejectionKind::MissingHeader, "required header is absent")
            .with_header(header.clone())
    }

    /// A field of the body the scheme needs is absent (`missing_header` with no header).
    pub(crate) fn missing_field(detail: &'static str) -> Self {
        Self::new(RejectionKind::MissingHeader, detail)
    }

    pub(crate) fn with_optional_header(self, header: Option<&HeaderName>) -> Self {
        match header {
            Some(h) => self.with_header(h.clone()),
            None => self,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(h) = &self.header {
            write!(f, " ({h})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl std::error::Error for Rejection {}
