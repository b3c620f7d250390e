//! Zoom's `endpoint.url_validation` handshake.

use std::fmt;

use super::{challenge, Answer, Handshake, HandshakeKind, Reply};
use crate::scheme::engine::Keys;
use crate::scheme::keys::HmacKey;
use crate::scheme::{Rejection, RejectionKind, SignedRequest, Verified};

/// Zoom's endpoint validation: when an event subscription's URL is set, and every 72 hours
/// after, Zoom sends `{"event":"endpoint.url_validation","payload":{"plainToken":..}}`, signed
/// with `x-zm-signature` like any event, and expects
/// `{"plainToken":..,"encryptedToken":..}` back as JSON with `200`, where `encryptedToken` is
/// the hex HMAC-SHA256 of the plain token keyed with the app's secret token.
///
/// The handshake of [`Preset::zoom`](crate::scheme::Preset::zoom): answered only after the
/// signature verified, with the secret token that verified it (during a rotation, the one
/// Zoom signed with). A validation without a `plainToken` is `bad_handshake`.
#[derive(Clone)]
pub struct ZoomUrlValidation {
    keys: Vec<HmacKey>,
}

impl ZoomUrlValidation {
    /// The handshake answering with the preset's HMAC keys (the secret tokens, pre-keyed).
    pub(crate) fn new(keys: &Keys) -> Self {
        let keys = match keys {
            Keys::Hmac(keys) => keys.clone(),
            _ => Vec::new(),
        };
        Self { keys }
    }
}

impl fmt::Debug for ZoomUrlValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoomUrlValidation")
            .field("secrets", &self.keys.len())
            .finish()
    }
}

impl Handshake for ZoomUrlValidation {
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        verified: &Verified,
    ) -> Option<Result<Reply, Rejection>> {
        // The preset reads the body's `event` as the event type while verifying.
        if verified.event_type.as_deref() != Some("endpoint.url_validation") {
            return None;
        }
        let plain = crate::scheme::parse::json_field(request.body, &["payload", "plainToken"]);
        let answer =
            challenge(plain, "endpoint.url_validation without a plainToken").and_then(|plain| {
                let key = self.keys.get(verified.secret_index).ok_or_else(|| {
                    Rejection::new(
                        RejectionKind::BadHandshake,
                        "no secret token to answer with",
                    )
                })?;
                let encrypted = hex::encode(key.mac(plain.as_bytes()).as_bytes());
                let body = serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted });
                Ok(Answer::json(HandshakeKind::ZoomUrlValidation, &body).into())
            });
        Some(answer)
    }
}
