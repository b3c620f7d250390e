//! Bearer tokens: a read-only and a read-write set, kept only as SHA-256 digests and
//! compared in constant time.

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;

/// A configured token: only its digest is kept, so comparing digests of a fixed size leaks
/// neither the token's bytes nor its length.
#[derive(Clone)]
pub(super) struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub(super) fn of(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

/// Who may do what.
#[derive(Clone)]
pub(super) struct Access {
    read: Vec<TokenDigest>,
    write: Vec<TokenDigest>,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("read_tokens", &self.read.len())
            .field("write_tokens", &self.write.len())
            .finish()
    }
}

/// What a request is allowed, by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    None,
    Read,
    Write,
}

/// Which kind of route a check guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    Read,
    Write,
}

impl Access {
    pub(super) fn new(read: Vec<TokenDigest>, write: Vec<TokenDigest>) -> Self {
        Self { read, write }
    }

    /// No token configured: every route is open (loopback only, checked at build).
    pub(super) fn is_open(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }

    /// The role of a presented token: every configured digest is compared, whatever
    /// matches, so the time taken does not say which (or whether one) did.
    fn role(&self, given: &[u8]) -> Role {
        let given = TokenDigest::of(given);
        let any = |set: &[TokenDigest]| {
            set.iter()
                .fold(Choice::from(0), |acc, t| acc | t.0.ct_eq(&given.0))
        };
        let write = any(&self.write);
        let read = any(&self.read);
        if bool::from(write) {
            Role::Write
        } else if bool::from(read) {
            Role::Read
        } else {
            Role::None
        }
    }

    /// Allows or refuses a request to a route needing `need`.
    pub(super) fn check(&self, headers: &HeaderMap, need: Need) -> Result<(), ApiError> {
        if self.is_open() {
            return open_check(headers, need);
        }
        let Some(token) = bearer(headers) else {
            return Err(ApiError::Unauthorized { wrong: false });
        };
        match (self.role(token), need) {
            (Role::None, _) => Err(ApiError::Unauthorized { wrong: true }),
            (Role::Read, Need::Write) => Err(ApiError::Forbidden(
                "this token is read-only: the route needs a read-write token",
            )),
            _ => Ok(()),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Open routes (no token, on loopback) still refuse what a web page could make a browser
/// send: a request from another site (any `Origin` header on a write route, which a page
/// can send without the reader's consent), and a `Host` that is not a loopback name (a DNS
/// rebinding page reaching the loopback port under its own name).
fn open_check(headers: &HeaderMap, need: Need) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host.is_empty() && !is_loopback_host(host) {
        return Err(ApiError::Forbidden(
            "open admin routes (no token configured) answer only requests addressed to a \
             loopback host (localhost, 127.0.0.1, [::1])",
        ));
    }
    if need == Need::Write && headers.contains_key(header::ORIGIN) {
        return Err(ApiError::Forbidden(
            "open admin routes (no token configured) refuse browser requests (an Origin \
             header) on write routes",
        ));
    }
    Ok(())
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The middleware of the read routes.
pub(super) async fn require_read(
    State(access): State<std::sync::Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    guarded(&access, Need::Read, request, next).await
}

/// The middleware of the write routes.
pub(super) async fn require_write(
    State(access): State<std::sync::Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    guarded(&access, Need::Write, request, next).await
}

async fn guarded(access: &Access, need: Need, request: Request, next: Next) -> Response {
    let mut response = match access.check(request.headers(), need) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    // Event bodies and headers are the providers' data: no cache keeps them.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn status(result: Result<(), ApiError>) -> StatusCode {
        match result {
            Ok(()) => StatusCode::OK,
            Err(e) => e.into_response().status(),
        }
    }

    #[test]
    fn the_token_matrix() {
        let access = Access::new(
            vec![TokenDigest::of(b"reader")],
            vec![TokenDigest::of(b"writer"), TokenDigest::of(b"writer-old")],
        );
        let cases = [
            (None, StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
            (
                Some("Bearer nope"),
                StatusCode::UNAUTHORIZED,
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some("Bearer reade"),
                StatusCode::UNAUTHORIZED,
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some("Basic reader"),
                StatusCode::UNAUTHORIZED,
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some("Bearer "),
                StatusCode::UNAUTHORIZED,
                StatusCode::UNAUTHORIZED,
            ),
            (Some("Bearer reader"), StatusCode::OK, StatusCode::FORBIDDEN),
            (
                Some("bearer  reader "),
                StatusCode::OK,
                StatusCode::FORBIDDEN,
            ),
            (Some("Bearer writer"), StatusCode::OK, StatusCode::OK),
            (Some("Bearer writer-old"), StatusCode::OK, StatusCode::OK),
        ];
        for (auth, read, write) in cases {
            let h = match auth {
                Some(a) => headers(&[("authorization", a)]),
                None => HeaderMap::new(),
            };
            assert_eq!(status(access.check(&h, Need::Read)), read, "{auth:?}");
            assert_eq!(status(access.check(&h, Need::Write)), write, "{auth:?}");
        }
        let debug = format!("{access:?}");
        assert!(
            !debug.contains("reader") && !debug.contains("writer"),
            "{debug}"
        );
    }

    #[test]
    fn open_routes_refuse_browsers_and_foreign_hosts() {
        let open = Access::new(vec![], vec![]);
        for host in [
            "localhost:3000",
            "127.0.0.1:8080",
            "[::1]:9",
            "LOCALHOST",
            "127.1.2.3",
        ] {
            let h = headers(&[("host", host)]);
            assert_eq!(
                status(open.check(&h, Need::Write)),
                StatusCode::OK,
                "{host}"
            );
        }
        for host in [
            "evil.example:3000",
            "10.0.0.1",
            "[::1",
            "localhost.evil.example",
        ] {
            let h = headers(&[("host", host)]);
            assert_eq!(
                status(open.check(&h, Need::Read)),
                StatusCode::FORBIDDEN,
                "{host}"
            );
        }
        let browser = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(status(open.check(&browser, Need::Read)), StatusCode::OK);
        assert_eq!(
            status(open.check(&browser, Need::Write)),
            StatusCode::FORBIDDEN
        );
        // With tokens, a browser holding one is as good as any client.
        let guarded = Access::new(vec![], vec![TokenDigest::of(b"w")]);
        let browser = headers(&[
            ("origin", "http://ui.example"),
            ("authorization", "Bearer w"),
        ]);
        assert_eq!(status(guarded.check(&browser, Need::Write)), StatusCode::OK);
    }
}
