//! The stored form of a delivery: [`RawEvent`] and its [`EventId`].

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Text that is either owned or shares a request header's bytes.
///
/// A header value received by hyper is a slice of the connection's read buffer, so keeping
/// it costs a reference count, not an allocation and a copy. Only ASCII values are kept as
/// headers (ASCII is UTF-8, so reading them as text cannot fail); anything else is decoded
/// to an owned `String` once.
#[derive(Clone)]
enum Text {
    Owned(String),
    Header(HeaderValue),
}

impl Text {
    fn from_header(value: &HeaderValue) -> Self {
        if value.as_bytes().is_ascii() {
            Self::Header(value.clone())
        } else {
            Self::Owned(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Owned(s) => s,
            // ASCII, checked in `from_header`: this never falls back.
            Self::Header(v) => std::str::from_utf8(v.as_bytes()).unwrap_or_default(),
        }
    }

    fn into_string(self) -> String {
        match self {
            Self::Owned(s) => s,
            Self::Header(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        }
    }
}

/// Implements the string-like traits of a newtype over [`Text`], all by its text.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// Unwraps the text (copies it if it shares a header's bytes).
            pub fn into_string(self) -> String {
                self.0.into_string()
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state)
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Text::Owned(s.to_owned()))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Text::Owned(s))
            }
        }

        impl From<&HeaderValue> for $name {
            /// Shares the header's bytes when they are ASCII; otherwise decodes them
            /// as UTF-8, replacing invalid sequences with U+FFFD.
            fn from(value: &HeaderValue) -> Self {
                Self(Text::from_header(value))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::from)
            }
        }
    };
}

/// The identity of an event within its source: the provider's delivery or event id where it
/// sends one, otherwise the lowercase hex SHA-256 of the raw body.
///
/// Queues and idempotency stores key on `(source, EventId)`. Equality, ordering, hashing and
/// serialization are those of the text; an id read from a request header shares the header's
/// bytes instead of copying them.
#[derive(Clone)]
pub struct EventId(Text);

impl EventId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(Text::Owned(id.into()))
    }

    /// The id derived from a body when the provider sends none: lowercase hex SHA-256.
    pub fn from_body_hash(body: &[u8]) -> Self {
        use sha2::Digest;
        Self::new(hex::encode(sha2::Sha256::digest(body)))
    }
}

text_newtype!(EventId);

/// The provider's name for what happened (`push`, `invoice.paid`), where it sends one in a
/// header such as `X-GitHub-Event`; see [`Verified::event_type`](crate::scheme::Verified).
///
/// Compares, hashes and prints as its text, and dereferences to `str`.
#[derive(Clone)]
pub struct EventType(Text);

text_newtype!(EventType);

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
    fn ids_from_headers_equal_owned_ids_by_text() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        fn hash(id: &EventId) -> u64 {
            let mut h = DefaultHasher::new();
            id.hash(&mut h);
            h.finish()
        }
        let shared = EventId::from(&HeaderValue::from_static("72d3162e-cc78"));
        let owned = EventId::new("72d3162e-cc78");
        assert_eq!(shared, owned);
        assert_eq!(hash(&shared), hash(&owned));
        assert_eq!(shared.cmp(&owned), std::cmp::Ordering::Equal);
        assert_eq!(shared.as_str(), "72d3162e-cc78");
        assert_eq!(
            format!("{shared} {shared:?}"),
            "72d3162e-cc78 \"72d3162e-cc78\""
        );
        assert_eq!(serde_json::to_string(&shared).unwrap(), "\"72d3162e-cc78\"");
        let back: EventId = serde_json::from_str("\"72d3162e-cc78\"").unwrap();
        assert_eq!(back, shared);
        assert_eq!(shared.clone().into_string(), "72d3162e-cc78");
        assert!(shared < EventId::new("8"));
    }

    #[test]
    fn non_ascii_header_text_is_decoded_once() {
        // UTF-8 is kept as written; other bytes become U+FFFD.
        let utf8 = EventType::from(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert_eq!(utf8.as_str(), "caf\u{e9}");
        let latin1 = EventId::from(&HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(latin1.as_str(), "caf\u{fffd}");
        assert_eq!(latin1, EventId::new("caf\u{fffd}"));
        // Tabs are ASCII: shared, and read back exactly.
        let tab = EventType::from(&HeaderValue::from_static("a\tb"));
        assert_eq!(&*tab, "a\tb");
        assert_eq!(tab, "a\tb");
    }

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

    /// A header value's bytes: visible ASCII, space, tab and obs-text (what `HeaderValue`
    /// accepts), so values may start or end with whitespace and contain `: `.
    fn value_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
        proptest::collection::vec(byte, 0..40)
    }

    proptest::proptest! {
        #[test]
        fn any_header_map_survives_the_stored_form(
            fields in proptest::collection::vec(("[a-z0-9!#$%&'*+.^_`|~-]{1,24}", value_bytes()), 0..12)
        ) {
            let mut h = HeaderMap::new();
            for (name, value) in &fields {
                h.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_bytes(value).unwrap(),
                );
            }
            proptest::prop_assert_eq!(decode_headers(&encode_headers(&h)), h);
        }

        #[test]
        fn any_blob_decodes_to_fields_that_round_trip(
            blob in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b':'),
                    proptest::strategy::Just(b' '),
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(b'\n'),
                    b'a'..=b'e',
                    proptest::num::u8::ANY,
                ],
                0..300,
            )
        ) {
            // A damaged or hand-edited blob never panics; what it yields is stable.
            let h = decode_headers(&blob);
            proptest::prop_assert_eq!(decode_headers(&encode_headers(&h)), h);
        }
    }

    #[test]
    fn body_hash_id_is_lowercase_hex_sha256() {
        assert_eq!(
            EventId::from_body_hash(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
