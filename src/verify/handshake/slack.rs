//! Slack's `url_verification` handshake.

use super::{challenge, small_json_field, Answer, Handshake, HandshakeKind, Reply};
use crate::scheme::{Rejection, SignedRequest, Verified};

/// Slack Events API's `url_verification`: when a Request URL is set, Slack sends
/// `{"token":..,"challenge":..,"type":"url_verification"}`, signed like any event, and
/// expects the `challenge` back (`200`, as `text/plain`).
///
/// The handshake of [`Preset::slack`](crate::scheme::Preset::slack): it is answered only after
/// the `X-Slack-Signature` verified, so an unsigned or forged challenge is refused like any
/// forged delivery. A `url_verification` without a challenge is `bad_handshake`.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct SlackUrlVerification;

impl Handshake for SlackUrlVerification {
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        _: &Verified,
    ) -> Option<Result<Reply, Rejection>> {
        let kind = small_json_field(request.body, b"url_verification", &["type"])?;
        if kind != "url_verification" {
            return None;
        }
        let value = crate::scheme::parse::json_field(request.body, &["challenge"]);
        Some(
            challenge(value, "url_verification without a challenge")
                .map(|c| Answer::text(HandshakeKind::SlackUrlVerification, c).into()),
        )
    }
}
