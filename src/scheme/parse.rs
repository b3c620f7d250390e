//! Small, allocation-free parsers shared by every scheme: header lookup, signature lists,
//! timestamps, digest decoding, and id extraction from a JSON body.

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// Standard base64 for signatures: canonical padding required, as providers send it and as
/// their libraries compare it (so one signature has exactly one spelling).
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Standard base64 for configured secrets and keys: padding optional, so a secret pasted
/// without its `=` still works.
pub(crate) const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Largest signature we decode; anything longer cannot match a 32- or 64-byte value.
pub(crate) const MAX_SIG: usize = 64;

/// How a signature is written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// Lowercase hexadecimal, as providers send it and as their own libraries compare it
    /// (an uppercase digit is a different signature).
    Hex,
    /// Uppercase hexadecimal, for the rare provider that sends it.
    HexUpper,
    /// Standard base64 (`+/`), with its `=` padding.
    Base64,
}

impl Encoding {
    /// Decodes `text` into `out`, returning the decoded length, or `None` if `text` is not valid
    /// in this encoding or decodes to more than [`MAX_SIG`] bytes.
    #[inline]
    pub(crate) fn decode(self, text: &[u8], out: &mut [u8; MAX_SIG]) -> Option<usize> {
        match self {
            Self::Hex => decode_hex(text, out, b'a'),
            Self::HexUpper => decode_hex(text, out, b'A'),
            Self::Base64 => {
                if text.len() > MAX_SIG * 4 / 3 + 4 {
                    return None;
                }
                BASE64.decode_slice(text, out).ok()
            }
        }
    }

    /// Encodes bytes as text.
    #[cfg(feature = "test-util")]
    pub(crate) fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Hex => hex::encode(bytes),
            Self::HexUpper => hex::encode_upper(bytes),
            Self::Base64 => BASE64.encode(bytes),
        }
    }
}

/// Decodes hex digits whose letters are in one case (`a` is `b'a'` or `b'A'`).
#[inline]
fn decode_hex(text: &[u8], out: &mut [u8; MAX_SIG], a: u8) -> Option<usize> {
    if !text.len().is_multiple_of(2) || text.len() / 2 > MAX_SIG {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        _ if c >= a && c < a + 6 => Some(c - a + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(text.len() / 2)
}

/// The first of `names` present in `headers`, with its value.
#[inline]
pub(crate) fn find_header<'h, 'n>(
    headers: &'h HeaderMap,
    names: &'n [HeaderName],
) -> Option<(&'n HeaderName, &'h HeaderValue)> {
    names
        .iter()
        .find_map(|n| headers.get(n).map(|value| (n, value)))
}

/// Splits a header value into trimmed, non-empty items on `sep`; with no separator the whole
/// (trimmed) value is the one item.
#[inline]
pub(crate) fn items(value: &[u8], sep: Option<u8>) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || loop {
        let current = rest?;
        let (item, next) = match sep.and_then(|s| current.iter().position(|&b| b == s)) {
            Some(i) => (&current[..i], Some(&current[i + 1..])),
            None => (current, None),
        };
        rest = next;
        let item = item.trim_ascii();
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Parses a non-negative decimal integer of at most 18 digits (no sign, no spaces inside).
#[inline]
pub(crate) fn parse_decimal(text: &[u8]) -> Option<i64> {
    let text = text.trim_ascii();
    if text.is_empty() || text.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some(n)
}

/// Reads the string (or number) at `path` in a JSON object body, without building a tree.
/// Returns `None` when the body is not a JSON object or the path is absent.
pub(crate) fn json_field(body: &[u8], path: &[&str]) -> Option<String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' || path.is_empty() {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    PathSeed(path).deserialize(&mut de).ok().flatten()
}

struct PathSeed<'p>(&'p [&'p str]);

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PathSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object, string or number")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.split_first() {
                Some((head, tail)) if found.is_none() && key == *head => {
                    found = map.next_value_seed(PathSeed(tail))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| v.to_owned()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| v.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_trim_and_skip_empties() {
        let v: Vec<&[u8]> = items(b" a , ,b,", Some(b',')).collect();
        assert_eq!(v, [&b"a"[..], b"b"]);
        let v: Vec<&[u8]> = items(b"  whole value ", None).collect();
        assert_eq!(v, [&b"whole value"[..]]);
        assert_eq!(items(b"   ", None).count(), 0);
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"1614265330"), Some(1_614_265_330));
        assert_eq!(parse_decimal(b" 42 "), Some(42));
        for bad in [
            &b""[..],
            b"-1",
            b"12a",
            b"1 2",
            b"9999999999999999999",
            b"+5",
        ] {
            assert_eq!(
                parse_decimal(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn decoding_rejects_garbage_and_oversize() {
        let mut buf = [0u8; MAX_SIG];
        assert_eq!(Encoding::Hex.decode(b"abcd", &mut buf), Some(2));
        assert_eq!(buf[..2], [0xab, 0xcd]);
        assert_eq!(Encoding::Hex.decode(b"09af", &mut buf), Some(2));
        assert_eq!(buf[..2], [0x09, 0xaf]);
        assert_eq!(
            Encoding::Hex.decode(b"ABCD", &mut buf),
            None,
            "case is part of it"
        );
        assert_eq!(Encoding::Hex.decode(b"ag", &mut buf), None);
        assert_eq!(Encoding::HexUpper.decode(b"ABCD", &mut buf), Some(2));
        assert_eq!(buf[..2], [0xab, 0xcd]);
        assert_eq!(Encoding::HexUpper.decode(b"abcd", &mut buf), None);
        assert_eq!(Encoding::HexUpper.decode(b"AG", &mut buf), None);
        assert_eq!(Encoding::Hex.decode(b"abc", &mut buf), None);
        assert_eq!(Encoding::Hex.decode(b"zz", &mut buf), None);
        assert_eq!(Encoding::Hex.decode(&[b'a'; 200], &mut buf), None);
        assert_eq!(Encoding::Base64.decode(b"AAEC", &mut buf), Some(3));
        assert_eq!(Encoding::Base64.decode(b"AAE=", &mut buf), Some(2));
        assert_eq!(
            Encoding::Base64.decode(b"AAE", &mut buf),
            None,
            "padding is required"
        );
        assert_eq!(
            Encoding::Base64.decode(b"AAF=", &mut buf),
            None,
            "non-zero spare bits"
        );
        assert_eq!(Encoding::Base64.decode(b"!!!!", &mut buf), None);
        assert_eq!(Encoding::Base64.decode(&[b'A'; 400], &mut buf), None);
        assert_eq!(Encoding::Base64.decode(b"", &mut buf), Some(0));
    }

    #[test]
    fn json_paths() {
        let body = br#"{"a":1,"id":"evt_1","nested":{"x":[1,{"id":"no"}],"id":"inner"},"n":7}"#;
        assert_eq!(json_field(body, &["id"]).as_deref(), Some("evt_1"));
        assert_eq!(
            json_field(body, &["nested", "id"]).as_deref(),
            Some("inner")
        );
        assert_eq!(json_field(body, &["n"]).as_deref(), Some("7"));
        assert_eq!(json_field(body, &["nested"]), None);
        assert_eq!(json_field(body, &["missing"]), None);
        assert_eq!(
            json_field(br#"{"i\u0064":"escaped"}"#, &["id"]).as_deref(),
            Some("escaped")
        );
        assert_eq!(json_field(b"token=abc&x=1", &["id"]), None);
        assert_eq!(json_field(b"{\"id\":", &["id"]), None);
        assert_eq!(json_field(b"[{\"id\":\"x\"}]", &["id"]), None);
    }
}
