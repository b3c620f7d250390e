//! Okta event hooks' one-time verification.

use http::{HeaderName, Method};

use super::{challenge, Answer, Handshake, HandshakeKind, Reply};
use crate::scheme::{Rejection, SignedRequest, Verified};

static CHALLENGE: HeaderName = HeaderName::from_static("x-okta-verification-challenge");

/// Okta event hooks' one-time verification: when a hook is created (or verified again), Okta
/// sends `GET <hook URL>` with `X-Okta-Verification-Challenge: <value>` and expects
/// `{"verification":"<value>"}` back as JSON with `200`.
///
/// The handshake of [`Preset::okta`](crate::scheme::Preset::okta): Okta sends the
/// `Authorization` value you configured with this request as with every delivery, and the
/// preset checks it (in constant time) before the challenge is answered, so a request without
/// it, or with another value, is refused. A `GET` with an empty challenge is `bad_handshake`.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct OktaVerification;

impl Handshake for OktaVerification {
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        _: &Verified,
    ) -> Option<Result<Reply, Rejection>> {
        if request.method != Method::GET {
            return None;
        }
        let value = request.headers.get(&CHALLENGE)?;
        let value = value.to_str().ok().map(str::to_owned);
        Some(
            challenge(value, "X-Okta-Verification-Challenge is empty or not text").map(|v| {
                let answer = serde_json::json!({ "verification": v });
                Answer::json(HandshakeKind::OktaVerification, &answer).into()
            }),
        )
    }
}
