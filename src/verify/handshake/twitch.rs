//! Twitch EventSub's `webhook_callback_verification` handshake.

use http::HeaderName;

use super::{challenge, Answer, Handshake, HandshakeKind, Reply};
use crate::scheme::{Rejection, SignedRequest, Verified};

static MESSAGE_TYPE: HeaderName = HeaderName::from_static("twitch-eventsub-message-type");

/// Twitch EventSub's callback verification: when a subscription is created, Twitch sends a
/// message with `Twitch-Eventsub-Message-Type: webhook_callback_verification`, signed like any
/// notification, and expects the body's `challenge` back, raw, as `text/plain` with `200`.
///
/// The handshake of [`Preset::twitch`](crate::scheme::Preset::twitch): answered only after the
/// signature (and the 10-minute window) verified. A verification without a challenge is
/// `bad_handshake`.
///
/// A `revocation` message (`Twitch-Eventsub-Message-Type: revocation`: Twitch ended the
/// subscription because authorization was revoked, the user was removed, or the callback kept
/// failing) is **not** a handshake: it is verified and stored like a notification, and the
/// intake's `2xx` is the acknowledgement Twitch asks for. Its body has the `subscription`
/// (with the reason in `status`) and no `event`, and its stored headers keep
/// `Twitch-Eventsub-Message-Type`, so a handler can tell it apart and subscribe again; an
/// endpoint that answered it without storing it would lose the only notice that events have
/// stopped.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct TwitchVerification;

impl Handshake for TwitchVerification {
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        _: &Verified,
    ) -> Option<Result<Reply, Rejection>> {
        if request.headers.get(&MESSAGE_TYPE)? != "webhook_callback_verification" {
            return None;
        }
        let value = crate::scheme::parse::json_field(request.body, &["challenge"]);
        Some(
            challenge(value, "webhook_callback_verification without a challenge")
                .map(|c| Answer::text(HandshakeKind::TwitchCallbackVerification, c).into()),
        )
    }
}
