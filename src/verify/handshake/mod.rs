//! Handshakes: the challenge requests some providers send to check an endpoint before (and
//! beside) their deliveries, answered by the verify layer.
//!
//! Several providers will not register an endpoint that cannot answer their handshake. A
//! handshake answered without checking who asked is a hole of its own (an endpoint that echoes
//! anyone's challenge can be subscribed to anything), so the verify layer answers one only as
//! far as the provider lets it be authenticated:
//!
//! | provider | handshake | authenticated by | answer |
//! |---|---|---|---|
//! | Slack | `{"type":"url_verification","challenge":..}` | the delivery's signature | the challenge, `text/plain` |
//! | Zoom | `{"event":"endpoint.url_validation","payload":{"plainToken":..}}` | the delivery's signature (`x-zm-signature`) | `{"plainToken":..,"encryptedToken":hex(HMAC-SHA256(secret, plainToken))}` |
//! | Twitch EventSub | `Twitch-Eventsub-Message-Type: webhook_callback_verification` | the delivery's signature | the body's `challenge`, `text/plain` |
//! | Discord | interactions `{"type":1}` (PING); webhook events `{"type":0}` | the Ed25519 signature | `{"type":1}`; `204 No Content` |
//! | Meta (Facebook, Instagram, WhatsApp) | `GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..` | the verify token you chose, compared in constant time (Meta signs nothing else here) | `hub.challenge`, `text/plain` |
//! | Microsoft Graph | `POST ?validationToken=..` | nothing: Graph does not authenticate it ([`GraphValidation`]) | the decoded token, `text/plain` |
//! | Okta event hooks | `GET` with `X-Okta-Verification-Challenge` | the authorization header you configured, as on every delivery | `{"verification":..}` |
//! | AWS SNS | `SubscriptionConfirmation`, `UnsubscribeConfirmation` | the message's RSA signature and the topic allow-list | `200`, after visiting `SubscribeURL` if configured to |
//!
//! A handshake is never stored and never reaches the inner service: the layer builds the
//! response itself, with an [`Answered`] (scheme and [`HandshakeKind`]) in the response's
//! extensions, as it puts a [`Rejection`] in a refusal's. Answers are
//! logged at `INFO` (scheme, kind, path; never the challenge).
//!
//! # Design
//!
//! A handshake belongs to its provider's [`Scheme`](crate::Scheme): the scheme returns it from
//! [`Scheme::handshake`](crate::Scheme::handshake), so mounting
//! `VerifyLayer::new(Preset::slack(..))` is all it takes for Slack's challenge to be answered.
//! [`VerifyLayer::without_handshake`](super::VerifyLayer::without_handshake) turns answering
//! off (the requests are then verified and passed on, or refused, like any other).
//!
//! A [`Handshake`] is a small sync rule with two entry points, run by the layer after the body
//! is read under the limit:
//!
//! 1. [`unsigned`](Handshake::unsigned), before verification, for the handshakes a provider
//!    does not sign (Meta's `GET`, Graph's `validationToken`): it recognizes the request by
//!    its method and query, checks what authentication the provider offers, and answers or
//!    refuses. Anything it does not recognize goes on to verification.
//! 2. [`verified`](Handshake::verified), after the scheme verified the request, for the
//!    handshakes sent signed like any delivery (Slack, Zoom, Twitch, Discord, Okta, SNS): it
//!    reads the (now authenticated) body or headers and answers, or returns `None` for an
//!    ordinary delivery, which is passed on.
//!
//! An answer is a [`Reply`]: [`Now`](Reply::Now) for every handshake but one, and
//! [`Later`](Reply::Later) for AWS SNS, which first visits the `SubscribeURL` when configured
//! to. Keys that must be fetched before a request can be verified at all (SNS's signing
//! certificate) are not a handshake matter: the scheme asks for them with
//! [`Scheme::load_key`](crate::Scheme::load_key) and stays sync and pure.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use hookdock::scheme::MicrosoftGraph;
//! use hookdock::verify::handshake::{Answered, HandshakeKind};
//! use hookdock::verify::VerifyLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let handler = service_fn(|_: Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(VerifyLayer::new(MicrosoftGraph::new(["client-state-secret"])?))
//!     .service(handler);
//!
//! // Graph checks a new subscription's URL: the token comes back as plain text.
//! let validation = Request::post("/graph?validationToken=Validation%3A%20abc")
//!     .body(Full::new(Bytes::new()))?;
//! let response = svc.oneshot(validation).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let answered = response.extensions().get::<Answered>().unwrap();
//! assert_eq!(answered.kind, HandshakeKind::GraphValidation);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "Validation: abc");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod answer;
mod discord;
mod graph;
mod meta;
mod okta;
mod slack;
#[cfg(feature = "aws-sns")]
mod sns;
mod twitch;
mod zoom;

pub use answer::{Answer, AnswerFuture, Answered, HandshakeKind, Reply};
pub use discord::DiscordPing;
pub use graph::GraphValidation;
pub use meta::MetaSubscribe;
pub use okta::OktaVerification;
pub use slack::SlackUrlVerification;
#[cfg(feature = "aws-sns")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sns")))]
pub use sns::{SnsConfirmation, SnsSubscription};
pub use twitch::TwitchVerification;
pub use zoom::ZoomUrlValidation;

use crate::scheme::{Rejection, RejectionKind, SignedRequest, Verified};

/// One provider's handshake; see the [module docs](self).
///
/// Both methods are sync, cheap for a request that is not a handshake (a method or header
/// check), and must not do I/O; work that needs I/O goes in a [`Reply::Later`]. A handshake
/// that compares a secret (Meta's verify token) compares it in constant time and never logs
/// or prints it.
pub trait Handshake: Send + Sync + 'static {
    /// A handshake the provider does not sign, recognized before verification: `None` if
    /// `request` is not one (it is then verified as usual), else the answer, or the rejection
    /// when its authentication fails. The body has not been verified: do not trust it.
    fn unsigned(&self, request: &SignedRequest<'_>) -> Option<Result<Reply, Rejection>> {
        let _ = request;
        None
    }

    /// A handshake sent signed like any delivery, recognized once the scheme verified
    /// `request`: `None` for an ordinary delivery (it is passed on), else the answer, or the
    /// rejection for a handshake that cannot be answered (no challenge in it).
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        verified: &Verified,
    ) -> Option<Result<Reply, Rejection>> {
        let _ = (request, verified);
        None
    }
}

/// The largest body read for a handshake field: every provider's challenge body is a few
/// hundred bytes, so a larger delivery is never parsed a second time to look for one.
const HANDSHAKE_BODY_MAX: usize = 16 * 1024;

/// The string at `path` in a small JSON body that contains `marker` (a cheap test that skips
/// ordinary deliveries without parsing them).
pub(crate) fn small_json_field(body: &[u8], marker: &[u8], path: &[&str]) -> Option<String> {
    if body.len() > HANDSHAKE_BODY_MAX || !body.windows(marker.len()).any(|w| w == marker) {
        return None;
    }
    crate::scheme::parse::json_field(body, path)
}

/// The challenge of a handshake, or the rejection for one that has none.
pub(crate) fn challenge(value: Option<String>, what: &'static str) -> Result<String, Rejection> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Rejection::new(RejectionKind::BadHandshake, what)),
    }
}

/// The `name` query parameter of `request`, percent-decoded (`+` as a space), if present.
pub(crate) fn query_value(request: &SignedRequest<'_>, name: &str) -> Option<String> {
    let query = request.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
