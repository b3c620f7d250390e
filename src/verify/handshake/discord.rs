//! Discord's `PING`s.

use http::StatusCode;

use super::{Answer, Handshake, HandshakeKind, Reply};
use crate::scheme::{Rejection, SignedRequest, Verified};

/// Discord's endpoint checks, both Ed25519-signed like every request Discord sends:
///
/// - interactions: a `PING` (`{"type":1,...}`, no `event`), sent when the Interactions
///   Endpoint URL is saved and from time to time after, answered `{"type":1}` (`PONG`) as JSON;
/// - webhook events: a `PING` (`{"type":0,...}`), sent when the Webhook Events URL is saved,
///   answered `204 No Content`.
///
/// A webhook *event* also has `"type":1`, but carries an `event` object: it is a delivery and
/// is passed on. The handshake of `Preset::discord` (feature `ed25519`), which
/// reads the body's `type` as the event type while verifying; an unsigned or forged `PING` is
/// refused like any forged request.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct DiscordPing;

impl Handshake for DiscordPing {
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        verified: &Verified,
    ) -> Option<Result<Reply, Rejection>> {
        let kind = verified.event_type.as_ref()?;
        match kind.as_str() {
            "0" => Some(Ok(Answer::empty(
                HandshakeKind::DiscordWebhookPing,
                StatusCode::NO_CONTENT,
            )
            .into())),
            "1" if crate::scheme::parse::json_field(request.body, &["event", "type"]).is_none() => {
                let pong = serde_json::json!({ "type": 1 });
                Some(Ok(Answer::json(HandshakeKind::DiscordPing, &pong).into()))
            }
            _ => None,
        }
    }
}
