//! Which request headers are stored with an event: [`HeaderPolicy`].

use std::fmt;

use http::header::{self, HeaderName};
use http::HeaderMap;

/// Decides which request headers are stored with an event (per header name).
///
/// Hop-by-hop headers are never stored whatever the policy says: they describe the
/// connection to this receiver, not the delivery (`Connection`, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, and every header the
/// `Connection` header names). The policy decides about the rest.
///
/// Implemented for [`DefaultHeaderPolicy`] and for closures `Fn(&HeaderName) -> bool`:
///
/// ```
/// use hookdock::intake::HeaderPolicy;
/// use http::HeaderName;
///
/// // Keep only the headers GitHub signs or identifies deliveries with.
/// let github_only = |name: &HeaderName| name.as_str().starts_with("x-github-")
///     || name == "x-hub-signature-256"
///     || name == "content-type";
/// assert!(github_only.keep(&HeaderName::from_static("x-github-delivery")));
/// assert!(!github_only.keep(&HeaderName::from_static("user-agent")));
/// ```
pub trait HeaderPolicy: Send + Sync + 'static {
    /// True to store the header `name` with the event.
    fn keep(&self, name: &HeaderName) -> bool;
}

impl<F> HeaderPolicy for F
where
    F: Fn(&HeaderName) -> bool + Send + Sync + 'static,
{
    fn keep(&self, name: &HeaderName) -> bool {
        self(name)
    }
}

/// Credentials dropped by [`DefaultHeaderPolicy`]: they authorize the sender to this
/// receiver and must not sit in the queue's database. `X-Gitlab-Token` is GitLab's shared
/// secret itself, sent in clear; storing it would store the secret.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-gitlab-token",
    "x-api-key",
];

/// Connection-level headers, never stored.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The default [`HeaderPolicy`]: keep every header except credentials
/// ([`CREDENTIAL_HEADERS`]).
///
/// Keeping everything else keeps what re-verification needs for every provider (signature,
/// id and timestamp headers, `Content-Type`, `Host`) without knowing the provider. Adjust
/// with [`drop_header`](Self::drop_header) and [`keep_header`](Self::keep_header):
///
/// ```
/// use hookdock::intake::{DefaultHeaderPolicy, HeaderPolicy};
/// use http::HeaderName;
///
/// let policy = DefaultHeaderPolicy::new().drop_header("x-forwarded-for");
/// assert!(!policy.keep(&HeaderName::from_static("x-forwarded-for")));
/// assert!(!policy.keep(&HeaderName::from_static("authorization")));
/// assert!(policy.keep(&HeaderName::from_static("x-hub-signature-256")));
/// ```
#[derive(Clone)]
pub struct DefaultHeaderPolicy {
    dropped: Vec<HeaderName>,
}

impl DefaultHeaderPolicy {
    /// Drops the [`CREDENTIAL_HEADERS`], keeps the rest.
    pub fn new() -> Self {
        Self {
            dropped: CREDENTIAL_HEADERS
                .iter()
                .map(|n| HeaderName::from_static(n))
                .collect(),
        }
    }

    /// Also drops `name` (builder style). A name that is not a valid header name matches no
    /// header, so there is nothing to drop.
    pub fn drop_header(mut self, name: &str) -> Self {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            if !self.dropped.contains(&name) {
                self.dropped.push(name);
            }
        }
        self
    }

    /// Keeps `name` after all, even if it is in the default drop list (builder style).
    pub fn keep_header(mut self, name: &str) -> Self {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            self.dropped.retain(|n| *n != name);
        }
        self
    }
}

impl Default for DefaultHeaderPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderPolicy for DefaultHeaderPolicy {
    fn keep(&self, name: &HeaderName) -> bool {
        !self.dropped.contains(name)
    }
}

impl fmt::Debug for DefaultHeaderPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHeaderPolicy")
            .field(
                "dropped",
                &self.dropped.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The headers to store: the request's own map, minus hop-by-hop headers and whatever
/// `policy` refuses, removed in place (nothing is copied or allocated when every header is
/// kept, the usual case).
pub(super) fn select(mut headers: HeaderMap, policy: &dyn HeaderPolicy) -> HeaderMap {
    let mut dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name) || !policy.keep(name))
        .cloned()
        .collect();
    // Headers named by `Connection` are hop-by-hop too (RFC 9110, section 7.6.1).
    dropped.extend(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
    );
    for name in &dropped {
        headers.remove(name);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn default_keeps_provider_headers_and_drops_credentials_and_hop_by_hop() {
        let h = map(&[
            ("x-hub-signature-256", "sha256=00"),
            ("x-github-delivery", "d-1"),
            ("webhook-timestamp", "1700000000"),
            ("content-type", "application/json"),
            ("authorization", "Bearer x"),
            ("cookie", "a=b"),
            ("x-gitlab-token", "secret"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
            ("accept", "a"),
            ("accept", "b"),
        ]);
        let kept = select(h, &DefaultHeaderPolicy::new());
        let mut names: Vec<&str> = kept.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "content-type",
                "webhook-timestamp",
                "x-github-delivery",
                "x-hub-signature-256",
            ]
        );
        assert_eq!(kept.get_all("accept").iter().count(), 2);
    }

    #[test]
    fn policy_is_configurable() {
        let h = map(&[
            ("authorization", "Bearer x"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        let kept = select(
            h.clone(),
            &DefaultHeaderPolicy::new()
                .keep_header("authorization")
                .drop_header("x-forwarded-for"),
        );
        assert!(kept.contains_key("authorization"));
        assert!(!kept.contains_key("x-forwarded-for"));
        let none = select(h, &|_: &HeaderName| false);
        assert!(none.is_empty());
    }

    #[test]
    fn hop_by_hop_is_dropped_even_when_the_policy_keeps_everything() {
        let h = map(&[("upgrade", "h2c"), ("te", "trailers"), ("x-a", "1")]);
        let kept = select(h, &|_: &HeaderName| true);
        assert_eq!(kept.len(), 1);
    }
}
