//! What the verify layer does with one buffered request: answer a handshake, refuse it, load a
//! key first, or pass it on verified. The one place where the scheme and its handshake meet.

use super::handshake::{Answer, AnswerFuture, Reply};
use crate::scheme::{KeyLoad, Rejection, RejectionKind, Scheme, SignedRequest, Verified};

/// The decision for one request.
pub(crate) enum Outcome {
    /// Verified and not a handshake: call the inner service.
    Pass(Verified),
    /// Refused.
    Reject(Rejection),
    /// A handshake, answered now.
    Answer(Answer),
    /// A handshake, answered when the future resolves.
    AnswerLater(AnswerFuture),
    /// The scheme needs a key loaded first; decide again (with `loaded`) once it is.
    Load(KeyLoad),
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        match reply {
            Reply::Now(answer) => Self::Answer(answer),
            Reply::Later(future) => Self::AnswerLater(future),
        }
    }
}

/// Decides: an unsigned handshake is answered (or refused) before verification; anything else
/// must verify; a verified handshake is answered; the rest passes. `handshakes` off skips both
/// handshake steps. `loaded` says a key was loaded for this request already, so a second
/// `key_unavailable` is final.
pub(crate) fn decide<V: Scheme + ?Sized>(
    scheme: &V,
    handshakes: bool,
    request: &SignedRequest<'_>,
    loaded: bool,
) -> Outcome {
    let handshake = if handshakes { scheme.handshake() } else { None };
    if let Some(reply) = handshake.and_then(|h| h.unsigned(request)) {
        return match reply {
            Ok(reply) => reply.into(),
            Err(rejection) => Outcome::Reject(rejection),
        };
    }
    match scheme.verify(request) {
        Ok(verified) => match handshake.and_then(|h| h.verified(request, &verified)) {
            Some(Ok(reply)) => reply.into(),
            Some(Err(rejection)) => Outcome::Reject(rejection),
            None => Outcome::Pass(verified),
        },
        Err(rejection) if rejection.kind() == RejectionKind::KeyUnavailable && !loaded => {
            match scheme.load_key(request) {
                Some(load) => Outcome::Load(load),
                None => Outcome::Reject(rejection),
            }
        }
        Err(rejection) => Outcome::Reject(rejection),
    }
}
