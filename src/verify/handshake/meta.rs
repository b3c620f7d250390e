//! Meta's `hub.challenge` subscription check.

use std::fmt;

use http::Method;

use super::{challenge, query_value, Answer, Handshake, HandshakeKind, Reply};
use crate::error::ConfigError;
use crate::scheme::keys::{collect_secrets, match_token, TokenHash};
use crate::scheme::{Rejection, RejectionKind, SignedRequest};

/// Meta's (Facebook, Instagram, Messenger, WhatsApp) verification request: when a webhook's
/// callback URL is set, Meta sends
/// `GET <callback>?hub.mode=subscribe&hub.verify_token=<token>&hub.challenge=<challenge>` and
/// expects the challenge back with `200`.
///
/// Meta signs nothing in this request: the only authentication is the verify token, a string
/// you choose and enter beside the callback URL. It is compared with the configured tokens in
/// constant time (as SHA-256 digests, so lengths do not show); a missing or different token is
/// `bad_signature` and the challenge is not echoed. A `hub.mode` other than `subscribe` or an
/// empty challenge is `bad_handshake`. Deliveries (`POST`, `X-Hub-Signature-256`) go on to
/// [`Preset::meta`](crate::scheme::Preset::meta)'s signature check.
///
/// The verify token is yours, not Meta's, so it is configured here:
///
/// ```
/// use hookdock::scheme::Preset;
/// use hookdock::verify::handshake::MetaSubscribe;
///
/// let meta = Preset::meta(["app secret"])?
///     .with_handshake(MetaSubscribe::new(["my verify token"])?);
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct MetaSubscribe {
    tokens: Vec<TokenHash>,
}

impl MetaSubscribe {
    /// Accepts the verification requests that carry one of `verify_tokens` (several while you
    /// change it).
    pub fn new<I, T>(verify_tokens: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self {
            tokens: collect_secrets(verify_tokens, |_, t| Ok(TokenHash::new(t)))?,
        })
    }
}

impl fmt::Debug for MetaSubscribe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaSubscribe")
            .field("verify_tokens", &self.tokens.len())
            .finish()
    }
}

impl Handshake for MetaSubscribe {
    fn unsigned(&self, request: &SignedRequest<'_>) -> Option<Result<Reply, Rejection>> {
        if request.method != Method::GET {
            return None;
        }
        let mode = query_value(request, "hub.mode")?;
        let presented = query_value(request, "hub.verify_token");
        if match_token(&self.tokens, presented.as_deref().map(str::as_bytes)).is_none() {
            return Some(Err(Rejection::new(
                RejectionKind::BadSignature,
                "hub.verify_token matches no configured verify token",
            )));
        }
        if mode != "subscribe" {
            return Some(Err(Rejection::new(
                RejectionKind::BadHandshake,
                "hub.mode is not subscribe",
            )));
        }
        let value = query_value(request, "hub.challenge");
        Some(
            challenge(value, "hub.challenge is empty")
                .map(|c| Answer::text(HandshakeKind::MetaSubscribe, c).into()),
        )
    }
}
