//! Reading an event's [`OrderingKey`] from its verified request: [`ExtractOrdering`], the
//! configurable [`JsonOrdering`], and ready ones for the providers that send a usable event
//! time or version.

use std::fmt;

use http::{HeaderMap, HeaderName};
use serde_json::Value;

use super::OrderingKey;
use crate::scheme::timestamp::parse_rfc3339;

/// Reads the ordering key of a verified delivery from its headers and raw body; given to
/// [`IntakeBuilder::ordering`](crate::intake::IntakeBuilder::ordering).
///
/// It runs after verification, on the exact bytes that were verified. `None` means the
/// event has no key: it is stored and runs unordered (the intake logs it at `DEBUG`). A
/// closure `Fn(&HeaderMap, &[u8]) -> Option<OrderingKey>` is one.
pub trait ExtractOrdering: Send + Sync + 'static {
    /// The key of one delivery, if it has one.
    fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Option<OrderingKey>;
}

impl<F> ExtractOrdering for F
where
    F: Fn(&HeaderMap, &[u8]) -> Option<OrderingKey> + Send + Sync + 'static,
{
    fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Option<OrderingKey> {
        self(headers, body)
    }
}

/// How a position is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PositionFormat {
    /// Unix seconds, a JSON number or decimal text (Stripe's `created`).
    Seconds,
    /// Unix milliseconds.
    Millis,
    /// An RFC 3339 date and time (Paddle's `occurred_at`, Shopify's `X-Shopify-Triggered-At`),
    /// kept to the millisecond.
    Rfc3339,
    /// A version number, used as it is (Square's object `version`).
    Version,
}

impl PositionFormat {
    /// The position of a raw value: microseconds for times, the number for versions.
    fn read(self, raw: &str) -> Option<i64> {
        let raw = raw.trim();
        match self {
            Self::Seconds => raw.parse::<i64>().ok()?.checked_mul(1_000_000),
            Self::Millis => raw.parse::<i64>().ok()?.checked_mul(1_000),
            Self::Rfc3339 => parse_rfc3339(raw.as_bytes())?.checked_mul(1_000),
            Self::Version => raw.parse().ok(),
        }
    }
}

#[derive(Clone)]
enum PositionFrom {
    None,
    Field(String, PositionFormat),
    Header(HeaderName, PositionFormat),
    /// Square: `data.object.<data.type>.version`.
    SquareVersion,
}

/// An [`ExtractOrdering`] over a JSON body: the key at a [JSON pointer], and the position at
/// another pointer or in a header.
///
/// [JSON pointer]: https://www.rfc-editor.org/rfc/rfc6901
///
/// ```
/// use hookdock::ordering::{ExtractOrdering, JsonOrdering, PositionFormat};
/// use http::HeaderMap;
///
/// // A provider sending {"entity": {"id": "acct_1"}, "sequence": 42}.
/// let extract = JsonOrdering::new("/entity/id").position("/sequence", PositionFormat::Version);
/// let key = extract.extract(&HeaderMap::new(), br#"{"entity":{"id":"acct_1"},"sequence":42}"#).unwrap();
/// assert_eq!((key.key(), key.position()), ("acct_1", Some(42)));
/// // No key where it should be: no ordering (the event still runs).
/// assert!(extract.extract(&HeaderMap::new(), b"{}").is_none());
/// ```
#[derive(Clone)]
pub struct JsonOrdering {
    key: String,
    position: PositionFrom,
}

impl fmt::Debug for JsonOrdering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let position = match &self.position {
            PositionFrom::None => "none".to_owned(),
            PositionFrom::Field(p, format) => format!("{p} ({format:?})"),
            PositionFrom::Header(h, format) => format!("header {h} ({format:?})"),
            PositionFrom::SquareVersion => "data.object.<type>.version".to_owned(),
        };
        f.debug_struct("JsonOrdering")
            .field("key", &self.key)
            .field("position", &position)
            .finish()
    }
}

impl JsonOrdering {
    /// The key at `pointer` (a string, or a number written as text); no position.
    pub fn new(pointer: impl Into<String>) -> Self {
        Self {
            key: pointer.into(),
            position: PositionFrom::None,
        }
    }

    /// The position at `pointer`, written as `format` (builder style).
    pub fn position(mut self, pointer: impl Into<String>, format: PositionFormat) -> Self {
        self.position = PositionFrom::Field(pointer.into(), format);
        self
    }

    /// The position in the header `name`, written as `format` (builder style).
    pub fn position_header(mut self, name: HeaderName, format: PositionFormat) -> Self {
        self.position = PositionFrom::Header(name, format);
        self
    }
}

/// A JSON scalar as text: strings as they are, numbers in decimal.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ExtractOrdering for JsonOrdering {
    fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Option<OrderingKey> {
        let json: Value = serde_json::from_slice(body).ok()?;
        let key = OrderingKey::new(text(json.pointer(&self.key)?)?);
        let position = match &self.position {
            PositionFrom::None => None,
            PositionFrom::Field(pointer, format) => json
                .pointer(pointer)
                .and_then(text)
                .and_then(|t| format.read(&t)),
            PositionFrom::Header(name, format) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|t| format.read(t)),
            PositionFrom::SquareVersion => {
                let kind = json.pointer("/data/type")?.as_str()?;
                json.get("data")?
                    .get("object")?
                    .get(kind)?
                    .get("version")
                    .and_then(Value::as_i64)
            }
        };
        Some(match position {
            Some(p) => key.version(p),
            None => key,
        })
    }
}

/// Stripe: the object the event is about (`data.object.id`), at the event's `created` time
/// (seconds). Stripe's event ids are not ordered; `created` is.
pub fn stripe() -> JsonOrdering {
    JsonOrdering::new("/data/object/id").position("/created", PositionFormat::Seconds)
}

/// Shopify: the resource (`admin_graphql_api_id`, as every REST webhook body carries it) at
/// the `X-Shopify-Triggered-At` time.
pub fn shopify() -> JsonOrdering {
    JsonOrdering::new("/admin_graphql_api_id").position_header(
        HeaderName::from_static("x-shopify-triggered-at"),
        PositionFormat::Rfc3339,
    )
}

/// Square: the object (`data.id`) at its `version` (`data.object.<data.type>.version`).
pub fn square() -> JsonOrdering {
    JsonOrdering {
        key: "/data/id".to_owned(),
        position: PositionFrom::SquareVersion,
    }
}

/// Paddle Billing: the entity (`data.id`) at the event's `occurred_at`.
pub fn paddle() -> JsonOrdering {
    JsonOrdering::new("/data/id").position("/occurred_at", PositionFormat::Rfc3339)
}

/// Standard Webhooks (and Svix): the key at `key_pointer` of your payload, at the payload's
/// `timestamp`, the time of the event (not the `webhook-timestamp` header, which is the time
/// of the attempt).
pub fn standard_webhooks(key_pointer: impl Into<String>) -> JsonOrdering {
    JsonOrdering::new(key_pointer).position("/timestamp", PositionFormat::Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn key(e: &JsonOrdering, headers: &HeaderMap, body: &str) -> Option<(String, Option<i64>)> {
        e.extract(headers, body.as_bytes())
            .map(|k| (k.key().to_owned(), k.position()))
    }

    #[test]
    fn the_providers_documented_payloads() {
        let none = HeaderMap::new();
        let stripe_body = r#"{"id":"evt_1","object":"event","created":1700000000,
            "type":"customer.updated","data":{"object":{"id":"cus_9","object":"customer"}}}"#;
        assert_eq!(
            key(&stripe(), &none, stripe_body),
            Some(("cus_9".into(), Some(1_700_000_000_000_000)))
        );

        let mut shop = HeaderMap::new();
        shop.insert(
            "x-shopify-triggered-at",
            HeaderValue::from_static("2023-11-14T22:13:20.123Z"),
        );
        let order = r#"{"id":820982911946154500,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508"}"#;
        assert_eq!(
            key(&shopify(), &shop, order),
            Some((
                "gid://shopify/Order/820982911946154508".into(),
                Some(1_700_000_000_123_000)
            ))
        );
        assert_eq!(
            key(&shopify(), &none, order).map(|k| k.1),
            Some(None),
            "no header: no position"
        );

        let square_body = r#"{"merchant_id":"M","type":"payment.updated","event_id":"e",
            "data":{"type":"payment","id":"PAY_1","object":{"payment":{"id":"PAY_1","version":7}}}}"#;
        assert_eq!(
            key(&square(), &none, square_body),
            Some(("PAY_1".into(), Some(7)))
        );

        let paddle_body = r#"{"event_id":"evt_01","event_type":"subscription.updated",
            "occurred_at":"2023-11-14T22:13:20.000000Z","data":{"id":"sub_01"}}"#;
        assert_eq!(
            key(&paddle(), &none, paddle_body),
            Some(("sub_01".into(), Some(1_700_000_000_000_000)))
        );

        let sw = r#"{"type":"invoice.paid","timestamp":"2023-11-14T22:13:20Z","data":{"invoice":"in_1"}}"#;
        assert_eq!(
            key(&standard_webhooks("/data/invoice"), &none, sw),
            Some(("in_1".into(), Some(1_700_000_000_000_000)))
        );
    }

    #[test]
    fn bad_input_gives_no_key_or_no_position_never_a_panic() {
        let none = HeaderMap::new();
        for body in [
            "",
            "not json",
            "[]",
            "{\"data\":{\"object\":{\"id\":{}}}}",
            "\u{0}",
        ] {
            assert_eq!(key(&stripe(), &none, body), None, "{body:?}");
        }
        let bad_time = r#"{"created":"soon","data":{"object":{"id":"cus_1"}}}"#;
        assert_eq!(
            key(&stripe(), &none, bad_time),
            Some(("cus_1".into(), None))
        );
        let huge = r#"{"created":99999999999999999,"data":{"object":{"id":"cus_1"}}}"#;
        assert_eq!(
            key(&stripe(), &none, huge),
            Some(("cus_1".into(), None)),
            "overflow: no position"
        );
        let closure =
            |_: &HeaderMap, body: &[u8]| (!body.is_empty()).then(|| OrderingKey::new("x"));
        assert!(closure.extract(&none, b"1").is_some());
    }
}
