//! [`Answer`]: the response to a handshake, [`HandshakeKind`]: which handshake it was, and
//! [`Answered`]: what the layer puts in the response's extensions.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// Which handshake a request was; in [`Answered`], and as a stable name in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeKind {
    /// Slack Events API `url_verification`.
    SlackUrlVerification,
    /// Zoom `endpoint.url_validation`.
    ZoomUrlValidation,
    /// Twitch EventSub `webhook_callback_verification`.
    TwitchCallbackVerification,
    /// Discord interactions `PING` (type 1), answered `{"type":1}`.
    DiscordPing,
    /// Discord webhook events `PING` (type 0), answered `204 No Content`.
    DiscordWebhookPing,
    /// Meta (Facebook, Instagram, WhatsApp) `GET ?hub.mode=subscribe`.
    MetaSubscribe,
    /// Microsoft Graph `?validationToken=`.
    GraphValidation,
    /// Okta event hooks' one-time `GET` with `X-Okta-Verification-Challenge`.
    OktaVerification,
    /// AWS SNS `SubscriptionConfirmation`.
    SnsSubscriptionConfirmation,
    /// AWS SNS `UnsubscribeConfirmation`.
    SnsUnsubscribeConfirmation,
    /// A handshake of a scheme of your own, by name.
    Custom(&'static str),
}

impl HandshakeKind {
    /// A stable snake_case name (`"slack_url_verification"`, ...), as used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SlackUrlVerification => "slack_url_verification",
            Self::ZoomUrlValidation => "zoom_url_validation",
            Self::TwitchCallbackVerification => "twitch_callback_verification",
            Self::DiscordPing => "discord_ping",
            Self::DiscordWebhookPing => "discord_webhook_ping",
            Self::MetaSubscribe => "meta_subscribe",
            Self::GraphValidation => "graph_validation",
            Self::OktaVerification => "okta_verification",
            Self::SnsSubscriptionConfirmation => "sns_subscription_confirmation",
            Self::SnsUnsubscribeConfirmation => "sns_unsubscribe_confirmation",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for HandshakeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Put in the extensions of every response the verify layer built to answer a handshake (like
/// a [`Rejection`](crate::scheme::Rejection) for a refusal), for logging and tests. Its
/// presence means the request was answered and never reached the inner service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answered {
    /// The scheme whose handshake it was (see [`Scheme::name`](crate::Scheme::name)).
    pub scheme: &'static str,
    /// Which handshake.
    pub kind: HandshakeKind,
}

/// The response to a handshake: a status, a content type, a small body, and any typed details
/// for the response's extensions.
///
/// Every answer is sent with `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`
/// (a challenge is echoed text, so it must never be taken for HTML).
pub struct Answer {
    kind: HandshakeKind,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    extensions: Extensions,
}

impl Answer {
    /// `200 OK` with `body` as `text/plain; charset=utf-8`.
    pub fn text(kind: HandshakeKind, body: impl Into<Bytes>) -> Self {
        Self::with_body(
            kind,
            HeaderValue::from_static("text/plain; charset=utf-8"),
            body.into(),
        )
    }

    /// `200 OK` with `value` as `application/json`.
    pub fn json(kind: HandshakeKind, value: &serde_json::Value) -> Self {
        // Serializing a `Value` cannot fail (its map keys are strings).
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self::with_body(
            kind,
            HeaderValue::from_static("application/json"),
            Bytes::from(body),
        )
    }

    /// `status` with no body.
    pub fn empty(kind: HandshakeKind, status: StatusCode) -> Self {
        Self {
            kind,
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            extensions: Extensions::new(),
        }
    }

    fn with_body(kind: HandshakeKind, content_type: HeaderValue, body: Bytes) -> Self {
        Self::empty(kind, StatusCode::OK)
            .header(CONTENT_TYPE, content_type)
            .with_bytes(body)
    }

    fn with_bytes(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// Adds a response header (builder style), such as `Retry-After` on a `503`.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Changes the status (builder style).
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a typed detail to the response's extensions (builder style), beside [`Answered`].
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// Which handshake this answers.
    pub fn kind(&self) -> HandshakeKind {
        self.kind
    }

    /// The status it is sent with.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The body it is sent with.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The response, with `body` made from the answer's bytes.
    pub(crate) fn into_response<B>(
        self,
        scheme: &'static str,
        body: impl FnOnce(Bytes) -> B,
    ) -> Response<B> {
        let mut response = Response::new(body(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        *headers = self.headers;
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        let extensions = response.extensions_mut();
        extensions.extend(self.extensions);
        extensions.insert(Answered {
            scheme,
            kind: self.kind,
        });
        response
    }
}

impl fmt::Debug for Answer {
    // The body is left out: it echoes what the provider sent, and may be derived from a secret
    // (Zoom's `encryptedToken`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// How a [`Handshake`](super::Handshake) answers: now, or once some work is done (AWS SNS
/// visits the `SubscribeURL` first, when configured to).
pub enum Reply {
    /// Answer at once.
    Now(Answer),
    /// Answer with what this future resolves to.
    Later(AnswerFuture),
}

/// The future of a [`Reply::Later`].
pub type AnswerFuture = Pin<Box<dyn Future<Output = Answer> + Send + 'static>>;

impl From<Answer> for Reply {
    fn from(answer: Answer) -> Self {
        Self::Now(answer)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Now(answer) => f.debug_tuple("Reply::Now").field(answer).finish(),
            Self::Later(_) => f.write_str("Reply::Later(..)"),
        }
    }
}
