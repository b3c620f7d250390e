//! The stored form of a delivery: [`RawEvent`] and its [`EventId`].

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The identity of an event within its source: the provider's delivery or event id where it
/// sends one, otherwise the lowercase hex SHA-256 of the raw body.
///
/// Queues and idempotency stores key on `(source, EventId)`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id derived from a body when the provider sends none: lowercase hex SHA-256.
    pub fn from_body_hash(body: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(body)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the id.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for EventId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for EventId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One delivery as it is stored: the exact bytes the provider sent and what is needed to
/// identify, re-verify and replay it.
///
/// The body is never re-serialized: replay and re-verification need the original bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The event's identity within its source.
    pub id: EventId,
    /// The name of the source (usually the provider or route, such as `"github"`).
    pub source: String,
    /// When the receiver got the delivery.
    pub received_at: SystemTime,
    /// The request headers worth keeping (see the intake's header policy).
    pub headers: HeaderMap,
    /// The raw request body, byte for byte.
    pub body: Bytes,
}

impl RawEvent {
    /// A new event with no headers.
    pub fn new(
        source: impl Into<String>,
        id: impl Into<EventId>,
        received_at: SystemTime,
        body: impl Into<Bytes>,
    ) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            received_at,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// Adds headers (builder style).
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Encodes the headers in HTTP/1 field syntax, `name: value\r\n` per field, which storage
    /// backends keep as one blob. Header values cannot contain CR or LF, so this is lossless.
    pub fn encode_headers(&self) -> Vec<u8> {
        encode_headers(&self.headers)
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("id", &self.id)
            .field("source", &self.source)
            .field("received_at", &self.received_at)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Encodes headers as `name: value\r\n` lines; see [`RawEvent::encode_headers`].
pub fn encode_headers(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() * 32);
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Decodes what [`encode_headers`] wrote. Lines that are not valid fields are skipped, so a
/// damaged blob loses only its damaged lines.
pub fn decode_headers(blob: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in blob.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, rest) = line.split_at(colon);
        let value = rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..]);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_including_repeats_and_obs_text() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("one"));
        h.append("x-a", HeaderValue::from_static("two: with colon"));
        h.append("x-b", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        h.append("x-empty", HeaderValue::from_static(""));
        assert_eq!(decode_headers(&encode_headers(&h)), h);
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let h = decode_headers(b"x-ok: 1\r\nnot a header line\r\nbad name: 2\r\n");
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-ok"], "1");
    }

    #[test]
    fn body_hash_id_is_lowercase_hex_sha256() {
        assert_eq!(
            EventId::from_body_hash(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
