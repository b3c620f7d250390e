//! AWS SNS (feature `aws-sns`): messages signed with RSA by AWS, checked with the signing
//! certificate named in the message, for the topics you allow.
//!
//! An SNS message to an HTTP(S) endpoint is a JSON body that carries its own signature:
//! `SignatureVersion` `1` (SHA1withRSA) or `2` (SHA256withRSA) over a canonical string of the
//! documented fields, verifiable with the X.509 certificate at `SigningCertURL`. [`AwsSns`]
//! checks, in order:
//!
//! 1. the `x-amz-sns-message-type` header is present (`missing_header`) and equals the body's
//!    `Type` (`malformed_header`), and the body is an SNS message (`malformed_body`);
//! 2. `SigningCertURL` is `https://sns.<region>.amazonaws.com/<...>.pem` (or
//!    `.amazonaws.com.cn` for the China regions); any other URL is refused as `untrusted_key`
//!    **without being fetched**;
//! 3. `TopicArn` is one of the topics you allowed (`sender_not_allowed`, 403). AWS signs the
//!    messages of every account's topics alike, so without this anyone could subscribe your
//!    endpoint to a topic of their own and send you validly signed messages;
//! 4. the certificate is loaded: from the cache, or through the [`CertificateSource`]
//!    (asynchronously, once per URL however many deliveries wait, bounded in number; a fetch
//!    that fails is `key_unavailable`, answered `503` with `Retry-After`);
//! 5. it is valid at the verifier's time and, with [trust anchors](AwsSnsBuilder::trust_anchors),
//!    issued by one of them (`untrusted_key`); the signature verifies (`bad_signature`).
//!
//! The event id is `MessageId`. SNS signs a `Timestamp` but retries for as long as the
//! subscription's delivery policy says, so there is no replay window: a replayed message has
//! the same `MessageId` and is absorbed by the dedupe layer.
//!
//! # The scheme stays sync
//!
//! [`Scheme::verify`] does no I/O: a certificate not yet cached makes it answer
//! `key_unavailable`, and [`Scheme::load_key`] hands the verify layer a future that fetches the
//! certificate into the cache; the layer awaits it and verifies again. Calling `verify`
//! directly, load the key the same way first (see [`AwsSns::load`]).
//!
//! # Handshakes
//!
//! `SubscriptionConfirmation` and `UnsubscribeConfirmation` are answered by the verify layer
//! (never stored), after the same checks as a notification. A subscription is confirmed, by
//! visiting its `SubscribeURL` (itself checked to be an SNS `ConfirmSubscription` URL), only
//! when a [`SubscriptionConfirmer`] is configured; the answer is `200` once SNS confirmed,
//! `503` with `Retry-After` when the visit failed. Without a confirmer the answer is `200`, the
//! subscription stays pending, and the response's extensions carry an [`SnsSubscription`]
//! with the `SubscribeURL` for you to confirm it yourself.
//!
//! ```
//! use hookdock::scheme::sns::{AwsSns, CertificateSource, FetchError, SnsUrl};
//! use bytes::Bytes;
//!
//! struct Pinned(Bytes);
//!
//! #[async_trait::async_trait]
//! impl CertificateSource for Pinned {
//!     async fn fetch(&self, _url: &SnsUrl) -> Result<Bytes, FetchError> {
//!         Ok(self.0.clone())
//!     }
//! }
//!
//! let sns = AwsSns::builder(["arn:aws:sns:us-east-1:123456789012:orders"])
//!     .certificates(Pinned(Bytes::new()))
//!     .build()?;
//! assert_eq!(hookdock::Scheme::name(&sns), "aws-sns");
//! # Ok::<(), hookdock::ConfigError>(())
//! ```

mod certificate;
#[cfg(feature = "aws-sns-https")]
mod https;
pub(crate) mod message;
mod source;
mod url;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use http::HeaderName;

use self::certificate::{Anchor, CertificateCache};
use self::message::Message;
use super::{IdOrigin, KeyLoad, Rejection, RejectionKind, Scheme, SignedRequest, Verified};
use crate::error::ConfigError;
use crate::event::EventId;
use crate::verify::handshake::{Handshake, SnsConfirmation};

pub use crate::verify::handshake::SnsSubscription;
#[cfg(feature = "aws-sns-https")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sns-https")))]
pub use https::HttpsFetcher;
pub use source::{CertificateSource, FetchError, SubscriptionConfirmer};
pub use url::{SnsUrl, SnsUrlError};

const NAME: &str = "aws-sns";

/// The header SNS names the message type in.
pub(crate) static MESSAGE_TYPE: HeaderName = HeaderName::from_static("x-amz-sns-message-type");

/// The AWS SNS scheme; see the [module docs](self). Cloning is cheap (one [`Arc`]); clones
/// share the certificate cache.
#[derive(Clone)]
pub struct AwsSns {
    shared: Arc<Shared>,
}

struct Shared {
    topics: Vec<String>,
    cache: Arc<CertificateCache>,
    handshake: SnsConfirmation,
}

impl AwsSns {
    /// A builder for a scheme accepting messages of `topics` (their full ARNs, such as
    /// `arn:aws:sns:us-east-1:123456789012:orders`); at least one is required.
    pub fn builder<I, T>(topics: I) -> AwsSnsBuilder
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        AwsSnsBuilder {
            topics: topics.into_iter().map(Into::into).collect(),
            source: None,
            confirmer: None,
            anchors: Vec::new(),
        }
    }

    /// Loads the signing certificate `request` names, if it is not cached yet: what the verify
    /// layer does through [`Scheme::load_key`], for calling [`Scheme::verify`] directly.
    pub async fn load(&self, request: &SignedRequest<'_>) -> Result<(), Rejection> {
        match self.load_key(request) {
            Some(load) => load.await,
            None => Ok(()),
        }
    }

    fn check<'r>(&self, request: &SignedRequest<'r>) -> Result<(Message<'r>, SnsUrl), Rejection> {
        let header = request
            .headers
            .get(&MESSAGE_TYPE)
            .ok_or_else(|| Rejection::missing(&MESSAGE_TYPE))?;
        let message = Message::parse(request.body)?;
        message.message_type()?;
        if header.as_bytes() != message.kind.as_bytes() {
            return Err(Rejection::new(
                RejectionKind::MalformedHeader,
                "the message type header does not match the body's Type",
            )
            .with_header(MESSAGE_TYPE.clone()));
        }
        let url = SnsUrl::signing_certificate(&message.signing_cert_url).map_err(|_| {
            Rejection::new(
                RejectionKind::UntrustedKey,
                "SigningCertURL is not an https .pem URL on sns.<region>.amazonaws.com",
            )
        })?;
        if !self.shared.topics.iter().any(|t| *t == message.topic_arn) {
            return Err(Rejection::new(
                RejectionKind::SenderNotAllowed,
                "TopicArn is not one of the allowed topics",
            ));
        }
        Ok((message, url))
    }
}

impl Scheme for AwsSns {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, Rejection> {
        let (message, url) = self.check(request)?;
        let version = message.version()?;
        let certificate = self.shared.cache.get(url.as_str()).ok_or_else(|| {
            Rejection::new(
                RejectionKind::KeyUnavailable,
                "the signing certificate is not loaded",
            )
        })?;
        let signature = crate::scheme::parse::BASE64_LENIENT
            .decode(message.signature.as_bytes())
            .map_err(|_| Rejection::new(RejectionKind::BadSignature, "Signature is not base64"))?;
        certificate.verify(version, &message.string_to_sign()?, &signature, request.now)?;
        Ok(Verified::new(
            NAME,
            EventId::new(message.message_id.into_owned()),
            IdOrigin::Provider,
        ))
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn handshake(&self) -> Option<&dyn Handshake> {
        Some(&self.shared.handshake)
    }

    fn load_key(&self, request: &SignedRequest<'_>) -> Option<KeyLoad> {
        let (_, url) = self.check(request).ok()?;
        if self.shared.cache.get(url.as_str()).is_some() {
            return None;
        }
        Some(Box::pin(Arc::clone(&self.shared.cache).load(url)))
    }
}

impl fmt::Debug for AwsSns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSns")
            .field("topics", &self.shared.topics)
            .field("confirms_subscriptions", &self.shared.handshake.confirms())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AwsSns`] scheme.
pub struct AwsSnsBuilder {
    topics: Vec<String>,
    source: Option<Arc<dyn CertificateSource>>,
    confirmer: Option<Arc<dyn SubscriptionConfirmer>>,
    anchors: Vec<Vec<u8>>,
}

impl AwsSnsBuilder {
    /// Where signing certificates come from. Required, unless feature `aws-sns-https` is on,
    /// where it defaults to an `HttpsFetcher`.
    pub fn certificates(mut self, source: impl CertificateSource) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Confirms subscriptions of the allowed topics by visiting their `SubscribeURL` with
    /// `confirmer` (an `HttpsFetcher` with feature `aws-sns-https`). Off by
    /// default: a `SubscriptionConfirmation` is then answered `200` and left pending.
    pub fn confirm_subscriptions(mut self, confirmer: impl SubscriptionConfirmer) -> Self {
        self.confirmer = Some(Arc::new(confirmer));
        self
    }

    /// Requires each signing certificate to be issued by one of these CA certificates (PEM),
    /// checked with their RSA keys, beside the `sns.<region>.amazonaws.com` host over HTTPS
    /// (which is all the check there is without them). Useful to pin the CA that issues AWS's
    /// SNS certificates, and in tests with a CA of your own.
    pub fn trust_anchors<I, T>(mut self, ca_certificates: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.anchors = ca_certificates
            .into_iter()
            .map(|c| c.as_ref().to_vec())
            .collect();
        self
    }

    /// The scheme; fails without topics, with a topic that is not an SNS topic ARN, with an
    /// undecodable trust anchor, or without a certificate source.
    pub fn build(self) -> Result<AwsSns, ConfigError> {
        if self.topics.is_empty() {
            return Err(ConfigError::Missing("at least one allowed SNS topic ARN"));
        }
        if self.topics.iter().any(|t| !is_topic_arn(t)) {
            return Err(ConfigError::InvalidValue {
                what: "SNS topic",
                reason: "not a topic ARN (arn:<partition>:sns:<region>:<account>:<name>)",
            });
        }
        let anchors = self
            .anchors
            .iter()
            .enumerate()
            .map(|(i, pem)| Anchor::from_pem(i, pem))
            .collect::<Result<Vec<_>, _>>()?;
        let source = match self.source {
            Some(source) => source,
            None => default_source()?,
        };
        Ok(AwsSns {
            shared: Arc::new(Shared {
                topics: self.topics,
                cache: Arc::new(CertificateCache::new(source, anchors)),
                handshake: SnsConfirmation::new(self.confirmer),
            }),
        })
    }
}

impl fmt::Debug for AwsSnsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSnsBuilder")
            .field("topics", &self.topics)
            .field("certificates", &self.source.is_some())
            .field("confirms_subscriptions", &self.confirmer.is_some())
            .field("trust_anchors", &self.anchors.len())
            .finish()
    }
}

#[cfg(feature = "aws-sns-https")]
fn default_source() -> Result<Arc<dyn CertificateSource>, ConfigError> {
    Ok(Arc::new(HttpsFetcher::new()?))
}

#[cfg(not(feature = "aws-sns-https"))]
fn default_source() -> Result<Arc<dyn CertificateSource>, ConfigError> {
    Err(ConfigError::Missing(
        "an SNS certificate source (AwsSnsBuilder::certificates, or feature aws-sns-https)",
    ))
}

/// `arn:<partition>:sns:<region>:<account>:<name>`.
fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && parts[3..].iter().all(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_mistakes_fail_at_build() {
        let none: [&str; 0] = [];
        assert!(matches!(
            AwsSns::builder(none).build(),
            Err(ConfigError::Missing(_))
        ));
        assert!(matches!(
            AwsSns::builder(["orders"]).build(),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(is_topic_arn("arn:aws-cn:sns:cn-north-1:123456789012:t"));
        assert!(!is_topic_arn("arn:aws:sqs:us-east-1:123456789012:t"));
    }
}
