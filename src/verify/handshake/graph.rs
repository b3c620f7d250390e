//! Microsoft Graph's `validationToken` handshake.

use http::Method;

use super::{challenge, query_value, Answer, Handshake, HandshakeKind, Reply};
use crate::scheme::{Rejection, SignedRequest};

/// Microsoft Graph's endpoint validation: when a subscription is created or renewed, Graph
/// sends `POST <notificationUrl>?validationToken=<token>` (also to a `lifecycleNotificationUrl`)
/// and expects the percent-decoded token back as `text/plain` with `200` within 10 seconds.
///
/// Graph signs nothing about this request, so there is nothing to authenticate: the answer
/// only proves to whoever asked that the endpoint is there. What keeps a stranger's subscription
/// from delivering anything is the `clientState` that
/// [`MicrosoftGraph`](crate::scheme::MicrosoftGraph) checks on every notification. The token is
/// echoed as plain text with `X-Content-Type-Options: nosniff`. An empty token is refused
/// (`bad_handshake`).
///
/// The handshake of [`MicrosoftGraph`](crate::scheme::MicrosoftGraph); usable with a scheme of
/// your own.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct GraphValidation;

impl Handshake for GraphValidation {
    fn unsigned(&self, request: &SignedRequest<'_>) -> Option<Result<Reply, Rejection>> {
        if request.method != Method::POST {
            return None;
        }
        let token = query_value(request, "validationToken")?;
        Some(
            challenge(Some(token), "validationToken is empty")
                .map(|token| Answer::text(HandshakeKind::GraphValidation, token).into()),
        )
    }
}
