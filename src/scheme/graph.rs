//! [`MicrosoftGraph`]: change notifications authenticated by their `clientState`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use super::keys::{collect_secrets, match_token, TokenHash};
use super::{IdOrigin, Rejection, RejectionKind, Scheme, SignedRequest, Verified};
use crate::error::ConfigError;
use crate::event::EventId;
use crate::verify::handshake::{GraphValidation, Handshake};

/// Microsoft Graph change notifications.
///
/// Graph signs no basic change notification. What authenticates one is the `clientState`
/// you set when creating the subscription: Graph copies it into every notification of the
/// body's `value` array, and this scheme requires **every** notification's `clientState` to
/// equal one of the configured states (compared in constant time, as SHA-256 digests so
/// lengths do not show). Several states can be configured for subscriptions that share the
/// URL or during a change of state. A body that is not a notification collection
/// (`{"value":[...]}` with at least one notification) is `malformed_body`; a missing or
/// unknown `clientState` is `bad_signature`.
///
/// Because the token is inside the body, the body is parsed before it is authenticated (under
/// the layer's body limit, with no tree built beyond the `clientState` fields). Graph batches
/// notifications and sends no delivery id, so the event id is the body's SHA-256.
///
/// Its handshake is [`GraphValidation`] (the `validationToken` echo), answered by the verify
/// layer. Lifecycle notifications (`reauthorizationRequired`, `subscriptionRemoved`, `missed`)
/// carry the same `clientState` and are verified and stored the same way. The JWTs of rich
/// notifications (`validationTokens`) are not checked.
///
/// ```
/// use hookdock::scheme::{MicrosoftGraph, Scheme, SignedRequest};
/// use std::time::SystemTime;
///
/// let graph = MicrosoftGraph::new(["secretClientValue"])?;
/// let body = br#"{"value":[{"subscriptionId":"7f105c7d","clientState":"secretClientValue","changeType":"created","resource":"Users/abc/Messages/def"}]}"#;
/// let uri: http::Uri = "/graph".parse()?;
/// let request = SignedRequest {
///     method: &http::Method::POST,
///     uri: &uri,
///     headers: &http::HeaderMap::new(),
///     body,
///     now: SystemTime::now(),
/// };
/// assert!(graph.verify(&request).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MicrosoftGraph {
    states: Vec<TokenHash>,
    handshake: GraphValidation,
}

impl MicrosoftGraph {
    /// A scheme accepting notifications whose `clientState` is one of `client_states`.
    pub fn new<I, T>(client_states: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self {
            states: collect_secrets(client_states, |_, s| Ok(TokenHash::new(s)))?,
            handshake: GraphValidation,
        })
    }
}

const NAME: &str = "microsoft-graph";

#[derive(Deserialize)]
struct Collection<'a> {
    #[serde(borrow)]
    value: Vec<Notification<'a>>,
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(rename = "clientState", borrow, default)]
    client_state: Option<Cow<'a, str>>,
}

impl Scheme for MicrosoftGraph {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, Rejection> {
        let collection: Collection<'_> = serde_json::from_slice(request.body).map_err(|_| {
            Rejection::new(
                RejectionKind::MalformedBody,
                "not a Microsoft Graph notification collection",
            )
        })?;
        if collection.value.is_empty() {
            return Err(Rejection::new(
                RejectionKind::MalformedBody,
                "the notification collection is empty",
            ));
        }
        let mut first = None;
        for notification in &collection.value {
            let presented = notification.client_state.as_deref().map(str::as_bytes);
            match match_token(&self.states, presented) {
                Some(index) => {
                    first.get_or_insert(index);
                }
                None => {
                    return Err(Rejection::new(
                        RejectionKind::BadSignature,
                        "a notification's clientState matches no configured client state",
                    ))
                }
            }
        }
        Ok(Verified::new(
            NAME,
            EventId::from_body_hash(request.body),
            IdOrigin::BodyHash,
        )
        .with_secret_index(first.unwrap_or(0)))
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn handshake(&self) -> Option<&dyn Handshake> {
        Some(&self.handshake)
    }
}

impl fmt::Debug for MicrosoftGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicrosoftGraph")
            .field("client_states", &self.states.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn verify(graph: &MicrosoftGraph, body: &str) -> Result<Verified, RejectionKind> {
        let uri: http::Uri = "/graph".parse().unwrap();
        let headers = http::HeaderMap::new();
        graph
            .verify(&SignedRequest {
                method: &http::Method::POST,
                uri: &uri,
                headers: &headers,
                body: body.as_bytes(),
                now: SystemTime::now(),
            })
            .map_err(|r| r.kind())
    }

    #[test]
    fn every_notification_must_carry_a_known_state() {
        let graph = MicrosoftGraph::new(["old-state", "new-state"]).unwrap();
        let ok = verify(
            &graph,
            r#"{"value":[{"clientState":"new-state"},{"clientState":"old-state"}]}"#,
        )
        .unwrap();
        assert_eq!(ok.secret_index, 1);
        assert_eq!(ok.id_origin, IdOrigin::BodyHash);
        // Escaped JSON strings are compared decoded.
        assert!(verify(&graph, r#"{"value":[{"clientState":"new\u002dstate"}]}"#).is_ok());
        for (body, kind) in [
            (
                r#"{"value":[{"clientState":"new-state"},{"clientState":"other"}]}"#,
                RejectionKind::BadSignature,
            ),
            (
                r#"{"value":[{"changeType":"created"}]}"#,
                RejectionKind::BadSignature,
            ),
            (
                r#"{"value":[{"clientState":"new-state!"}]}"#,
                RejectionKind::BadSignature,
            ),
            (r#"{"value":[]}"#, RejectionKind::MalformedBody),
            (r#"{"other":1}"#, RejectionKind::MalformedBody),
            (
                r#"{"value":[{"clientState":7}]}"#,
                RejectionKind::MalformedBody,
            ),
            ("not json", RejectionKind::MalformedBody),
            ("", RejectionKind::MalformedBody),
        ] {
            assert_eq!(verify(&graph, body).unwrap_err(), kind, "{body}");
        }
    }

    #[test]
    fn debug_shows_no_state() {
        let graph = MicrosoftGraph::new(["topsecretstate"]).unwrap();
        assert!(!format!("{graph:?}").contains("topsecret"));
        assert!(MicrosoftGraph::new([""]).is_err());
    }
}
