//! AWS SNS's subscription handshakes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};

use super::{Answer, Handshake, HandshakeKind, Reply};
use crate::scheme::sns::message::{Message, MessageType};
use crate::scheme::sns::{FetchError, SnsUrl, SubscriptionConfirmer, MESSAGE_TYPE};
use crate::scheme::{Rejection, RejectionKind, SignedRequest, Verified};

/// In the extensions of the answer to an AWS SNS `SubscriptionConfirmation`: the topic, the
/// `SubscribeURL`, and whether the layer confirmed the subscription. With no confirmer
/// configured it is not confirmed, and visiting `subscribe_url` (or calling SNS's
/// `ConfirmSubscription` with the token in it) is up to you. The URL carries the
/// subscription's token: it is not logged.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnsSubscription {
    /// The topic's ARN.
    pub topic_arn: String,
    /// The `SubscribeURL` (an `https` `ConfirmSubscription` URL on an SNS host).
    pub subscribe_url: String,
    /// True once the layer visited `subscribe_url` and SNS answered `2xx`.
    pub confirmed: bool,
}

impl fmt::Debug for SnsSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsSubscription")
            .field("topic_arn", &self.topic_arn)
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

/// AWS SNS's `SubscriptionConfirmation` and `UnsubscribeConfirmation`, answered once the
/// [`AwsSns`](crate::scheme::sns::AwsSns) scheme verified them (signature, certificate URL,
/// allowed topic); see the [SNS module docs](crate::scheme::sns).
///
/// A subscription is confirmed only with a [`SubscriptionConfirmer`]: `200` once SNS answered
/// the `SubscribeURL`, `503` with `Retry-After` when that failed (SNS sends the confirmation
/// again; also after 10 s without an answer). Without one, `200` and an unconfirmed [`SnsSubscription`] in the extensions. A
/// `SubscribeURL` that is not an SNS `ConfirmSubscription` URL is `untrusted_key` and never
/// visited. An `UnsubscribeConfirmation` is acknowledged with `200`.
pub struct SnsConfirmation {
    confirmer: Option<Arc<dyn SubscriptionConfirmer>>,
}

impl SnsConfirmation {
    pub(crate) fn new(confirmer: Option<Arc<dyn SubscriptionConfirmer>>) -> Self {
        Self { confirmer }
    }

    pub(crate) fn confirms(&self) -> bool {
        self.confirmer.is_some()
    }
}

impl fmt::Debug for SnsConfirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsConfirmation")
            .field("confirms", &self.confirms())
            .finish()
    }
}

/// Seconds SNS is asked to wait before sending a confirmation again after a failed visit.
const CONFIRM_RETRY_AFTER: &str = "10";

/// The longest a visit to a `SubscribeURL` may take, whatever the confirmer (SNS itself waits
/// 15 s for the answer).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

impl Handshake for SnsConfirmation {
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        _: &Verified,
    ) -> Option<Result<Reply, Rejection>> {
        // The scheme checked that the header equals the body's Type: a notification is
        // recognized without parsing the body again.
        let header = request.headers.get(&MESSAGE_TYPE)?.to_str().ok()?;
        match MessageType::parse(header)? {
            MessageType::Notification => None,
            MessageType::UnsubscribeConfirmation => Some(Ok(Answer::empty(
                HandshakeKind::SnsUnsubscribeConfirmation,
                StatusCode::OK,
            )
            .into())),
            MessageType::SubscriptionConfirmation => Some(self.subscription(request)),
        }
    }
}

impl SnsConfirmation {
    fn subscription(&self, request: &SignedRequest<'_>) -> Result<Reply, Rejection> {
        let message = Message::parse(request.body)?;
        let url = message
            .subscribe_url
            .as_deref()
            .and_then(|u| SnsUrl::subscribe(u).ok())
            .ok_or_else(|| {
                Rejection::new(
                    RejectionKind::UntrustedKey,
                    "SubscribeURL is not an https ConfirmSubscription URL on an SNS host",
                )
            })?;
        let topic_arn = message.topic_arn.into_owned();
        let kind = HandshakeKind::SnsSubscriptionConfirmation;
        let subscription = |confirmed| SnsSubscription {
            topic_arn: topic_arn.clone(),
            subscribe_url: url.as_str().to_owned(),
            confirmed,
        };
        let Some(confirmer) = self.confirmer.clone() else {
            tracing::info!(
                topic = %topic_arn,
                "SNS subscription confirmation received; not confirming (no confirmer configured)"
            );
            let answer = Answer::empty(kind, StatusCode::OK).extension(subscription(false));
            return Ok(answer.into());
        };
        let pending = subscription(true);
        Ok(Reply::Later(Box::pin(async move {
            let visit = tokio::time::timeout(CONFIRM_TIMEOUT, confirmer.confirm(&url)).await;
            match visit.unwrap_or(Err(FetchError::Timeout)) {
                Ok(()) => {
                    tracing::info!(topic = %pending.topic_arn, "SNS subscription confirmed");
                    Answer::empty(kind, StatusCode::OK).extension(pending)
                }
                Err(error) => {
                    tracing::warn!(
                        topic = %pending.topic_arn,
                        %error,
                        "SNS subscription confirmation failed"
                    );
                    Answer::text(kind, "the subscription could not be confirmed now\n")
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .header(RETRY_AFTER, HeaderValue::from_static(CONFIRM_RETRY_AFTER))
                        .extension(SnsSubscription {
                            confirmed: false,
                            ..pending
                        })
                }
            }
        })))
    }
}
