//! The pluggable I/O of the SNS scheme: where signing certificates come from, and who visits a
//! `SubscribeURL`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::SnsUrl;

/// Fetches AWS SNS signing certificates: the PEM document at a `SigningCertURL`.
///
/// The scheme calls it only with an [`SnsUrl`] (an `https` URL on `sns.<region>.amazonaws.com`
/// whose path is a `.pem`), only when the certificate is not already cached, and once per URL
/// however many deliveries wait for it. A fetch that fails, or takes more than 10 seconds, is
/// not cached: the delivery is answered `503` with `Retry-After` and SNS's retry tries again.
///
/// `HttpsFetcher` (feature `aws-sns-https`) fetches over HTTPS; tests
/// serve certificates from memory (`hookdock::testing::StaticCertificates`, feature
/// `test-util`).
#[async_trait]
pub trait CertificateSource: Send + Sync + 'static {
    /// The PEM-encoded X.509 certificate at `url`.
    async fn fetch(&self, url: &SnsUrl) -> Result<Bytes, FetchError>;
}

/// Confirms an AWS SNS subscription by visiting its `SubscribeURL` (an HTTP `GET`), as SNS
/// asks of a new HTTP(S) subscriber.
///
/// Called only when the scheme was configured with one
/// ([`AwsSnsBuilder::confirm_subscriptions`](super::AwsSnsBuilder::confirm_subscriptions)),
/// for a `SubscriptionConfirmation` whose signature verified and whose topic is allowed, and
/// with an [`SnsUrl`] whose query is `Action=ConfirmSubscription`.
#[async_trait]
pub trait SubscriptionConfirmer: Send + Sync + 'static {
    /// Visits `url`; `Ok` once SNS answered `2xx`.
    async fn confirm(&self, url: &SnsUrl) -> Result<(), FetchError>;
}

#[async_trait]
impl<T: CertificateSource + ?Sized> CertificateSource for Arc<T> {
    async fn fetch(&self, url: &SnsUrl) -> Result<Bytes, FetchError> {
        (**self).fetch(url).await
    }
}

#[async_trait]
impl<T: SubscriptionConfirmer + ?Sized> SubscriptionConfirmer for Arc<T> {
    async fn confirm(&self, url: &SnsUrl) -> Result<(), FetchError> {
        (**self).confirm(url).await
    }
}

/// Why a certificate fetch or a subscription confirmation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server answered with a status other than `2xx`.
    #[error("the server answered {0}")]
    Status(u16),
    /// The answer was larger than the fetcher accepts.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
    /// The connection or the request failed.
    #[error("the request failed: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}
