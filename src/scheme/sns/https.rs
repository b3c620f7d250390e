//! [`HttpsFetcher`]: the default HTTPS client of the SNS scheme (feature `aws-sns-https`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::USER_AGENT;
use http::HeaderValue;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{CertificateSource, FetchError, SnsUrl, SubscriptionConfirmer};
use crate::error::ConfigError;

/// The longest a certificate fetch or a subscription confirmation may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read: a signing certificate is under 2 KiB.
const MAX_ANSWER: usize = 64 * 1024;

/// Fetches SNS signing certificates and visits `SubscribeURL`s over HTTPS: hyper with rustls
/// (the `ring` provider) trusting the Mozilla roots (`webpki-roots`), `https` only, no
/// redirects followed, a 5 s timeout and a 64 KiB answer limit. The scheme hands it only
/// [`SnsUrl`]s, so it only ever talks to `sns.<region>.amazonaws.com`.
///
/// The default [`CertificateSource`] of [`AwsSns`](super::AwsSns) when the feature is on; pass
/// it to [`confirm_subscriptions`](super::AwsSnsBuilder::confirm_subscriptions) to confirm
/// subscriptions too. Clones share one connection pool.
#[derive(Clone)]
pub struct HttpsFetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpsFetcher {
    /// A fetcher with its own connection pool.
    pub fn new() -> Result<Self, ConfigError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|_| ConfigError::InvalidValue {
                what: "TLS configuration",
                reason: "the ring provider supports no default protocol version",
            })?
            .https_only()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn get(&self, url: &SnsUrl) -> Result<Bytes, FetchError> {
        let request = http::Request::get(url.uri().clone())
            .header(USER_AGENT, HeaderValue::from_static("hookdock"))
            .body(Empty::new())
            .map_err(|e| FetchError::Transport(Box::new(e)))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Transport(Box::new(e)))?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge(MAX_ANSWER)
                    } else {
                        FetchError::Transport(e)
                    }
                })?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

#[async_trait]
impl CertificateSource for HttpsFetcher {
    async fn fetch(&self, url: &SnsUrl) -> Result<Bytes, FetchError> {
        self.get(url).await
    }
}

#[async_trait]
impl SubscriptionConfirmer for HttpsFetcher {
    async fn confirm(&self, url: &SnsUrl) -> Result<(), FetchError> {
        self.get(url).await.map(|_| ())
    }
}

impl fmt::Debug for HttpsFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsFetcher")
            .field("timeout", &TIMEOUT)
            .finish_non_exhaustive()
    }
}
