//! What every HTTP source shares: one HTTPS client (hyper with rustls: the `ring` provider and
//! the Mozilla roots, as the SNS fetcher), the provider's auth header (never shown in
//! `Debug`), a timeout and an answer size limit, the mapping of answers to [`PollError`]s,
//! `Retry-After` and `x-ratelimit-*` handling, and `Link` header cursors.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::error::ConfigError;
use crate::reconcile::PollError;

/// How long one API request may take, answer included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read (a page of 100 Stripe events is well under 2 MiB).
pub(crate) const MAX_ANSWER: usize = 32 * 1024 * 1024;

const USER_AGENT: &str = concat!("hookdock/", env!("CARGO_PKG_VERSION"), " (reconciliation)");

/// The answer to an API request that succeeded (`2xx`).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// An HTTP client for one provider API: a base URL, an auth header, and the provider's
/// rate-limit state.
#[derive(Clone)]
pub(crate) struct ApiClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Url,
    auth: Option<(http::HeaderName, HeaderValue)>,
    extra: HeaderMap,
    /// No request before this instant (the provider said its budget is spent).
    pause_until: Arc<Mutex<Option<tokio::time::Instant>>>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth.as_ref().map(|(name, _)| name))
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for the API at `base` (an absolute `http`/`https` URL).
    pub(crate) fn new(base: &str) -> Result<Self, ConfigError> {
        let mut base = Url::parse(base).map_err(|_| ConfigError::InvalidUrl {
            what: "API base URL",
            reason: "not an absolute URL",
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ConfigError::InvalidUrl {
                what: "API base URL",
                reason: "must be an http or https URL",
            });
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // `http` as well as `https`: a base URL may point at a local proxy or a test fake.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|_| ConfigError::InvalidValue {
                what: "TLS configuration",
                reason: "the ring provider supports no default protocol version",
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            http,
            base,
            auth: None,
            extra: HeaderMap::new(),
            pause_until: Arc::new(Mutex::new(None)),
        })
    }

    /// Sends `value` as header `name` on every request, marked sensitive (never logged).
    pub(crate) fn with_auth(
        mut self,
        name: http::HeaderName,
        value: &str,
    ) -> Result<Self, ConfigError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| ConfigError::InvalidValue {
            what: "API credential",
            reason: "not a valid header value",
        })?;
        value.set_sensitive(true);
        self.auth = Some((name, value));
        Ok(self)
    }

    /// Sends a fixed header on every request (an API version, an `Accept`).
    pub(crate) fn with_header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.extra.insert(name, value);
        self
    }

    /// The URL of `path` (relative to the base, no leading `/`).
    pub(crate) fn url(&self, path: &str) -> Result<Url, PollError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| PollError::Rejected {
                status: None,
                message: format!("bad API path: {e}"),
            })
    }

    /// A `GET` of `url`.
    pub(crate) async fn get(&self, url: Url) -> Result<Answer, PollError> {
        self.send(Method::GET, url, None).await
    }

    /// A `POST` of `url` with a JSON body (or none).
    pub(crate) async fn post(&self, url: Url, json: Option<Bytes>) -> Result<Answer, PollError> {
        self.send(Method::POST, url, json).await
    }

    /// A `GET` of `url` whose failed answers `refine` sees first: a provider's error code
    /// can mean more than its status (Stripe's `resource_missing` for an aged-out cursor).
    pub(crate) async fn get_refined(
        &self,
        url: Url,
        refine: impl FnOnce(StatusCode, &[u8]) -> Option<PollError>,
    ) -> Result<Answer, PollError> {
        let (status, headers, body) = self.exchange(Method::GET, url, None).await?;
        if !status.is_success() {
            if let Some(error) = refine(status, &body) {
                return Err(error);
            }
        }
        classify(status, headers, body)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<Bytes>,
    ) -> Result<Answer, PollError> {
        let (status, headers, body) = self.exchange(method, url, json).await?;
        classify(status, headers, body)
    }

    /// Sends one request and reads the whole answer, noting the rate-limit budget.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        json: Option<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), PollError> {
        let pause = *self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = pause {
            tokio::time::sleep_until(until).await;
        }
        let uri: http::Uri = url.as_str().parse().map_err(|_| PollError::Rejected {
            status: None,
            message: "the API URL is not a valid URI".into(),
        })?;
        let mut request = http::Request::builder().method(method).uri(uri);
        if let Some(headers) = request.headers_mut() {
            headers.extend(self.extra.clone());
            headers.insert(
                http::header::USER_AGENT,
                HeaderValue::from_static(USER_AGENT),
            );
            if let Some((name, value)) = &self.auth {
                headers.insert(name.clone(), value.clone());
            }
            if json.is_some() {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
        }
        let request = request
            .body(Full::new(json.unwrap_or_default()))
            .map_err(PollError::transient)?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(PollError::transient)?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        PollError::Rejected {
                            status: Some(parts.status.as_u16()),
                            message: format!("the answer is larger than {MAX_ANSWER} bytes"),
                        }
                    } else {
                        PollError::Transient(e)
                    }
                })?
                .to_bytes();
            Ok::<_, PollError>((parts.status, parts.headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| PollError::transient(format!("no answer within {REQUEST_TIMEOUT:?}")))??;
        self.note_budget(&headers);
        Ok((status, headers, body))
    }

    /// Pauses the next request when the provider says the budget is spent
    /// (`x-ratelimit-remaining: 0` with `x-ratelimit-reset`).
    fn note_budget(&self, headers: &HeaderMap) {
        if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
            if let Some(wait) = reset_in(headers) {
                *self.pause_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(tokio::time::Instant::now() + wait.min(Duration::from_secs(3600)));
            }
        } else {
            *self.pause_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// The client every source's builder starts from: the checks they share (a credential and
/// a source name given), the API at `base`, `credential` sent as `Authorization: Bearer`.
pub(crate) fn bearer(
    base: &str,
    credential: &str,
    what: &'static str,
    name: &str,
) -> Result<ApiClient, ConfigError> {
    if credential.is_empty() {
        return Err(ConfigError::Missing(what));
    }
    if name.is_empty() {
        return Err(ConfigError::Missing("source name"));
    }
    ApiClient::new(base)?.with_auth(http::header::AUTHORIZATION, &format!("Bearer {credential}"))
}

/// A horizon must be positive.
pub(crate) fn check_horizon(horizon: Duration) -> Result<(), ConfigError> {
    if horizon.is_zero() {
        return Err(ConfigError::InvalidValue {
            what: "horizon",
            reason: "must be positive",
        });
    }
    Ok(())
}

/// Maps an answer to success or the [`PollError`] it means.
pub(crate) fn classify(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, PollError> {
    if status.is_success() {
        return Ok(Answer { headers, body });
    }
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && header_u64(&headers, "x-ratelimit-remaining") == Some(0));
    if limited {
        return Err(PollError::RateLimited {
            retry_after: retry_after(&headers).or_else(|| reset_in(&headers)),
        });
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Err(PollError::transient(format!(
            "the provider answered {status}"
        )));
    }
    Err(PollError::Rejected {
        status: Some(status.as_u16()),
        message: error_message(&body),
    })
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The wait until `x-ratelimit-reset` (Unix seconds, as GitHub sends it).
fn reset_in(headers: &HeaderMap) -> Option<Duration> {
    let reset = header_u64(headers, "x-ratelimit-reset")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A short message from a provider's error body: its `message` or `error.message` (or
/// `detail`, `error.detail`), else the first 200 bytes.
fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        for pointer in [
            "/error/message",
            "/message",
            "/error/detail",
            "/detail",
            "/error",
        ] {
            if let Some(text) = value.pointer(pointer).and_then(|v| v.as_str()) {
                return text.chars().take(200).collect();
            }
        }
    }
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// The `rel="next"` URL of a `Link` header (RFC 8288), as GitHub pages.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(http::header::LINK) {
        let value = value.to_str().ok()?;
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return target
                    .strip_prefix('<')
                    .and_then(|t| t.strip_suffix('>'))
                    .map(str::to_owned);
            }
        }
    }
    None
}

/// A Unix time in seconds as a `SystemTime`.
pub(crate) fn unix_seconds(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// A `SystemTime` as Unix seconds.
pub(crate) fn to_unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date waits nothing"
        );
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn answers_map_to_errors() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, h, Bytes::new()),
            Err(PollError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(2)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
            Err(PollError::Transient(_))
        ));
        let body = Bytes::from_static(
            br#"{"error":{"message":"Invalid API Key provided","type":"invalid_request_error"}}"#,
        );
        match classify(StatusCode::UNAUTHORIZED, HeaderMap::new(), body) {
            Err(PollError::Rejected {
                status: Some(401),
                message,
            }) => assert_eq!(message, "Invalid API Key provided"),
            other => panic!("{other:?}"),
        }
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, h, Bytes::new()),
            Err(PollError::RateLimited { .. })
        ));
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/repos/o/r/hooks/1/deliveries?cursor=v1_12&per_page=2>; rel=\"next\", <https://x/first>; rel=\"first\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/repos/o/r/hooks/1/deliveries?cursor=v1_12&per_page=2")
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
