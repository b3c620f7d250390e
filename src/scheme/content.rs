//! What a scheme signs: the [`SignedPart`]s of the content, in order, and how each is fed to
//! the MAC (the URL with its public base, HubSpot's decoded escapes).

use std::borrow::Cow;

use http::HeaderMap;

use super::engine::Engine;
use super::SignedRequest;

/// One piece of the signed content, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignedPart {
    /// Fixed bytes, such as a `.` separator or a version prefix.
    Literal(Cow<'static, [u8]>),
    /// The raw value of the id header.
    Id,
    /// The raw text of the timestamp, exactly as sent.
    Timestamp,
    /// The raw body.
    Body,
    /// The request method (`POST`).
    Method,
    /// The configured public URL followed by the request's path and query.
    Url,
}

impl SignedPart {
    /// A literal part from a static string.
    pub const fn lit(s: &'static str) -> Self {
        Self::Literal(Cow::Borrowed(s.as_bytes()))
    }
}

/// What bytes are signed.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// The concatenation of these parts.
    Parts(Vec<SignedPart>),
    /// Twilio: the URL, followed by the sorted form parameters (or, with `bodySHA256` in the
    /// query, the URL alone plus a check of the body's hash), tried with and without the
    /// default port.
    Twilio,
}

impl Content {
    /// Whether `part` is one of the signed parts.
    pub(crate) fn signs(&self, part: &SignedPart) -> bool {
        matches!(self, Self::Parts(parts) if parts.contains(part))
    }
}

impl Engine {
    /// Feeds one signed part to `sink`.
    #[inline]
    pub(crate) fn feed(
        &self,
        part: &SignedPart,
        req: &SignedRequest<'_>,
        id: &[u8],
        ts: &[u8],
        sink: &mut impl FnMut(&[u8]),
    ) {
        match part {
            SignedPart::Literal(bytes) => sink(bytes),
            SignedPart::Id => sink(id),
            SignedPart::Timestamp => sink(ts),
            SignedPart::Body => sink(req.body),
            SignedPart::Method => sink(req.method.as_str().as_bytes()),
            SignedPart::Url => self.feed_url(req, sink),
        }
    }

    /// The public URL followed by the request's path and query.
    pub(crate) fn feed_url(&self, req: &SignedRequest<'_>, sink: &mut impl FnMut(&[u8])) {
        if let Some(base) = &self.public_url {
            sink(base.as_bytes());
        }
        let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if self.decode_uri {
            feed_hubspot_decoded(pq.as_bytes(), sink);
        } else {
            sink(pq.as_bytes());
        }
    }
}

/// HubSpot v3 decodes these escapes in the URI before signing.
fn feed_hubspot_decoded(uri: &[u8], sink: &mut impl FnMut(&[u8])) {
    const DECODED: [(&[u8; 2], u8); 11] = [
        (b"3A", b':'),
        (b"2F", b'/'),
        (b"3F", b'?'),
        (b"40", b'@'),
        (b"21", b'!'),
        (b"24", b'$'),
        (b"27", b'\''),
        (b"28", b'('),
        (b"29", b')'),
        (b"2A", b'*'),
        (b"2C", b','),
    ];
    let mut start = 0;
    let mut i = 0;
    while i < uri.len() {
        if uri[i] == b'%' && i + 2 < uri.len() {
            let code = [
                uri[i + 1].to_ascii_uppercase(),
                uri[i + 2].to_ascii_uppercase(),
            ];
            let hit = DECODED
                .iter()
                .find(|(esc, _)| **esc == code)
                .map(|(_, c)| *c)
                .or((code == *b"3B").then_some(b';'));
            if let Some(c) = hit {
                sink(&uri[start..i]);
                sink(&[c]);
                i += 3;
                start = i;
                continue;
            }
        }
        i += 1;
    }
    sink(&uri[start..]);
}

/// The request's query value for `name`, if present (no percent-decoding needed for the
/// hex values it is used for).
pub(crate) fn query_param<'a>(req: &SignedRequest<'a>, name: &str) -> Option<&'a str> {
    req.uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// True if the content type names a form body.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_decoding() {
        let mut out = Vec::new();
        feed_hubspot_decoded(b"/a%3Ab%2fc%20d%3b%", &mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"/a:b/c%20d;%");
        out.clear();
        feed_hubspot_decoded(b"%4", &mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"%4");
    }
}
