//! The stored form of a delivery: [`RawEvent`] and its [`EventId`].

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::ordering::OrderingKey;
use crate::store::Origin;

/// Text that is either owned or shares a request header's bytes.
///
/// A header value received by hyper is a slice of the connection's read buffer, so keeping
/// it costs a reference count, not an allocation and a copy. Nothing is ever decoded lossily:
/// a header whose bytes are not UTF-8 keeps them exactly (`NotUtf8`, with a display form for
/// logs), compares by those bytes, and is refused by every store.
#[derive(Clone)]
enum Text {
    Owned(String),
    /// Valid UTF-8 (checked in `from_header`).
    Header(HeaderValue),
    /// Bytes that are not UTF-8, and their display form (invalid sequences as U+FFFD).
    NotUtf8 {
        raw: HeaderValue,
        shown: String,
    },
}

impl Text {
    fn from_header(value: &HeaderValue) -> Self {
        match std::str::from_utf8(value.as_bytes()) {
            Ok(_) => Self::Header(value.clone()),
            Err(_) => Self::NotUtf8 {
                raw: value.clone(),
                shown: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            },
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Owned(s) => s,
            // Checked in `from_header`: this never falls back.
            Self::Header(v) => std::str::from_utf8(v.as_bytes()).unwrap_or_default(),
            Self::NotUtf8 { shown, .. } => shown,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Owned(s) => s.as_bytes(),
            Self::Header(v) | Self::NotUtf8 { raw: v, .. } => v.as_bytes(),
        }
    }

    fn is_utf8(&self) -> bool {
        !matches!(self, Self::NotUtf8 { .. })
    }

    fn into_string(self) -> String {
        match self {
            Self::Owned(s) => s,
            Self::Header(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            Self::NotUtf8 { shown, .. } => shown,
        }
    }
}

/// Implements the string-like traits of a newtype over [`Text`], all by its text.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The text. For a value that came from a header whose bytes are not UTF-8
            /// ([`is_utf8`](Self::is_utf8) is false) this is a display form with invalid
            /// sequences replaced by U+FFFD; [`as_bytes`](Self::as_bytes) has the exact bytes.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The exact bytes, as received.
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }

            /// False if the bytes came from a header and are not UTF-8.
            pub fn is_utf8(&self) -> bool {
                self.0.is_utf8()
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

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl Eq for $name {}

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_bytes().hash(state)
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_bytes().cmp(other.as_bytes())
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
            /// Shares the header's bytes, exactly; bytes that are not UTF-8 are kept as
            /// they are (see [`is_utf8`](Self::is_utf8)), never replaced.
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
    /// The provider's event type, where the scheme reads one (kept in the event log).
    pub event_type: Option<EventType>,
    /// How the event reached the store: pushed by the provider, replayed, or fetched by a
    /// reconciliation pass.
    pub origin: Origin,
    /// The entity the event is about and its position, where the route extracts one: the
    /// queue runs the events of one key one at a time, in order (see [`crate::ordering`]).
    pub ordering: Option<OrderingKey>,
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
            event_type: None,
            origin: Origin::Push,
            ordering: None,
        }
    }

    /// Adds headers (builder style).
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the event type (builder style).
    pub fn with_event_type(mut self, event_type: impl Into<EventType>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Sets the origin (builder style).
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// Sets the ordering key (builder style).
    pub fn with_ordering(mut self, ordering: OrderingKey) -> Self {
        self.ordering = Some(ordering);
        self
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("id", &self.id)
            .field("source", &self.source)
            .field("event_type", &self.event_type)
            .field("origin", &self.origin)
            .field("ordering", &self.ordering)
            .field("received_at", &self.received_at)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
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
    fn header_bytes_are_kept_exactly_never_merged() {
        // UTF-8 is kept as written.
        let utf8 = EventType::from(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert_eq!(utf8.as_str(), "caf\u{e9}");
        assert!(utf8.is_utf8());
        // Other bytes are kept too, shown with U+FFFD, and compared by the bytes: two ids
        // that differ only there stay two ids.
        let ff = EventId::from(&HeaderValue::from_bytes(b"bad-\xff").unwrap());
        let fe = EventId::from(&HeaderValue::from_bytes(b"bad-\xfe").unwrap());
        assert!(!ff.is_utf8());
        assert_eq!(ff.as_str(), "bad-\u{fffd}");
        assert_eq!(ff.as_bytes(), b"bad-\xff");
        assert_ne!(ff, fe);
        assert_ne!(ff, EventId::new("bad-\u{fffd}"));
        // Tabs are ASCII: shared, and read back exactly.
        let tab = EventType::from(&HeaderValue::from_static("a\tb"));
        assert_eq!(&*tab, "a\tb");
        assert_eq!(tab, "a\tb");
    }

    #[test]
    fn body_hash_id_is_lowercase_hex_sha256() {
        assert_eq!(
            EventId::from_body_hash(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
