//! Small, allocation-free parsers shared by every scheme: header lookup, signature lists,
//! timestamps, digest decoding, and id extraction from a JSON body.

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
#[cfg(any(test, feature = "test-util"))]
use base64::Engine as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// Standard base64 for signatures: canonical padding required, as providers send it and as
/// their libraries compare it (so one signature has exactly one spelling). Decoding goes
/// through [`decode_base64`], which accepts exactly what this engine accepts.
#[cfg(any(test, feature = "test-util"))]
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

/// Largest signature we decode: an Ed25519 signature (64 bytes) or a DER-encoded ECDSA P-256
/// signature (at most 72 bytes); anything longer cannot match.
#[cfg(any(test, feature = "ed25519", feature = "p256"))]
pub(crate) const MAX_SIG: usize = 72;

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
    #[cfg(any(test, feature = "ed25519", feature = "p256"))]
    #[inline]
    pub(crate) fn decode(self, text: &[u8], out: &mut [u8; MAX_SIG]) -> Option<usize> {
        match self {
            Self::Hex => decode_hex(text, out, &HEX_LOWER),
            Self::HexUpper => decode_hex(text, out, &HEX_UPPER),
            Self::Base64 => decode_base64(text, out),
        }
    }

    /// Writes `bytes` (at most [`MAX_MAC`]: a MAC) as text in this encoding, exactly as a provider
    /// would: lowercase or uppercase hex, or canonical padded base64.
    #[inline]
    pub(crate) fn encode_into(self, bytes: &[u8], out: &mut Text) {
        let bytes = &bytes[..bytes.len().min(MAX_MAC)];
        out.len = match self {
            Self::Hex | Self::HexUpper => {
                let table = if self == Self::Hex {
                    &HEX_PAIRS_LOWER
                } else {
                    &HEX_PAIRS_UPPER
                };
                for (pair, &b) in out.bytes.as_chunks_mut::<2>().0.iter_mut().zip(bytes) {
                    *pair = table[usize::from(b)];
                }
                bytes.len() * 2
            }
            Self::Base64 => encode_base64(bytes, &mut out.bytes),
        } as u8;
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

/// The largest MAC written with [`Encoding::encode_into`] (HMAC-SHA512).
pub(crate) const MAX_MAC: usize = 64;

/// A MAC written as text, as it appears in a signature header.
#[derive(Clone, Copy)]
pub(crate) struct Text {
    bytes: [u8; 2 * MAX_MAC],
    len: u8,
}

impl Text {
    pub(crate) const EMPTY: Text = Text {
        bytes: [0; 2 * MAX_MAC],
        len: 0,
    };

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Each byte's two hex digits.
const fn hex_pairs(digits: &[u8; 16]) -> [[u8; 2]; 256] {
    let mut table = [[0; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [digits[i >> 4], digits[i & 15]];
        i += 1;
    }
    table
}

static HEX_PAIRS_LOWER: [[u8; 2]; 256] = hex_pairs(b"0123456789abcdef");
static HEX_PAIRS_UPPER: [[u8; 2]; 256] = hex_pairs(b"0123456789ABCDEF");

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Canonical padded base64 of `bytes` into `out`; returns the length written. `out` holds
/// the encoding of up to 95 bytes.
#[inline]
fn encode_base64(bytes: &[u8], out: &mut [u8; 2 * MAX_MAC]) -> usize {
    let (groups, rest) = bytes.as_chunks::<3>();
    let mut o = 0;
    for g in groups {
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        out[o..o + 4].copy_from_slice(&[
            BASE64_ALPHABET[(n >> 18) as usize & 63],
            BASE64_ALPHABET[(n >> 12) as usize & 63],
            BASE64_ALPHABET[(n >> 6) as usize & 63],
            BASE64_ALPHABET[n as usize & 63],
        ]);
        o += 4;
    }
    if !rest.is_empty() {
        let n = u32::from(rest[0]) << 16 | rest.get(1).map_or(0, |&b| u32::from(b) << 8);
        out[o..o + 4].copy_from_slice(&[
            BASE64_ALPHABET[(n >> 18) as usize & 63],
            BASE64_ALPHABET[(n >> 12) as usize & 63],
            if rest.len() == 2 {
                BASE64_ALPHABET[(n >> 6) as usize & 63]
            } else {
                b'='
            },
            b'=',
        ]);
        o += 4;
    }
    o
}

/// Values of the standard base64 alphabet; 0xff for anything else (`=` included).
#[cfg(any(test, feature = "ed25519", feature = "p256"))]
static BASE64_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Decodes canonical, padded standard base64 (what [`BASE64`] accepts) into `out`: the length
/// is a multiple of 4, `=` appears only as the final one or two characters, and the bits the
/// padding leaves over are zero. `None` otherwise, or past [`MAX_SIG`] bytes.
///
/// A table-driven decoder for the few dozen characters of a signature: the general-purpose
/// engine's setup costs more than the decoding itself at this size. It visits every character
/// whatever they are, like the hex decoder.
#[cfg(any(test, feature = "ed25519", feature = "p256"))]
#[inline]
fn decode_base64(text: &[u8], out: &mut [u8; MAX_SIG]) -> Option<usize> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let pad = match text {
        [.., b'=', b'='] => 2,
        [.., b'='] => 1,
        _ => 0,
    };
    let len = text.len() / 4 * 3 - pad;
    if len > MAX_SIG {
        return None;
    }
    let (full, last) = match text.len() {
        0 => return Some(0),
        n => text.split_at(n - 4),
    };
    let mut bad = 0u8;
    let mut o = 0;
    for quad in full.as_chunks::<4>().0 {
        let v = quad.map(|c| BASE64_VALUES[usize::from(c)]);
        bad |= v[0] | v[1] | v[2] | v[3];
        let n = u32::from(v[0] & 0x3f) << 18
            | u32::from(v[1] & 0x3f) << 12
            | u32::from(v[2] & 0x3f) << 6
            | u32::from(v[3] & 0x3f);
        out[o..o + 3].copy_from_slice(&n.to_be_bytes()[1..]);
        o += 3;
    }
    // The last quad: its padding becomes `A` (zero bits), which must then be spare bits only.
    let mut v = [0u8; 4];
    for (i, (slot, &c)) in v.iter_mut().zip(last).enumerate() {
        *slot = if i >= 4 - pad {
            0
        } else {
            BASE64_VALUES[usize::from(c)]
        };
    }
    bad |= v[0] | v[1] | v[2] | v[3];
    bad |= match pad {
        1 => u8::from(v[2] & 0x03 != 0) << 7,
        2 => u8::from(v[1] & 0x0f != 0) << 7,
        _ => 0,
    };
    let n = u32::from(v[0] & 0x3f) << 18
        | u32::from(v[1] & 0x3f) << 12
        | u32::from(v[2] & 0x3f) << 6
        | u32::from(v[3] & 0x3f);
    out[o..o + 3 - pad].copy_from_slice(&n.to_be_bytes()[1..4 - pad]);
    (bad & 0xc0 == 0).then_some(len)
}

/// Nibble values of hex digits, lowercase (`HEX_LOWER`) or uppercase (`HEX_UPPER`) letters
/// only; 0xff for anything else.
#[cfg(any(test, feature = "ed25519", feature = "p256"))]
const fn hex_table(a: u8) -> [u8; 256] {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[(a + i) as usize] = 10 + i;
        i += 1;
    }
    table
}

#[cfg(any(test, feature = "ed25519", feature = "p256"))]
static HEX_LOWER: [u8; 256] = hex_table(b'a');
#[cfg(any(test, feature = "ed25519", feature = "p256"))]
static HEX_UPPER: [u8; 256] = hex_table(b'A');

/// Decodes hex digits through `table`; `None` for an odd length, a non-digit, or more than
/// [`MAX_SIG`] bytes.
#[cfg(any(test, feature = "ed25519", feature = "p256"))]
#[inline]
fn decode_hex(text: &[u8], out: &mut [u8; MAX_SIG], table: &[u8; 256]) -> Option<usize> {
    if !text.len().is_multiple_of(2) || text.len() / 2 > MAX_SIG {
        return None;
    }
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = (table[usize::from(pair[0])], table[usize::from(pair[1])]);
        bad |= (hi | lo) & 0xf0;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    (bad == 0).then_some(text.len() / 2)
}

/// Splits a header value into trimmed, non-empty items on `sep`; with no separator the whole
/// (trimmed) value is the one item.
#[inline]
pub(crate) fn items(value: &[u8], sep: Option<u8>) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || loop {
        let current = rest?;
        let (item, next) = match sep.and_then(|s| memchr::memchr(s, current)) {
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

/// Reads the strings (or integers, as their decimal text) at several paths of a JSON object
/// body in one pass, without building a tree: `out[i]` gets the first value found at
/// `paths[i]`. The reading stops as soon as every path has its value (most providers put the
/// id and type first, so most of the body is never scanned). Nothing is written when the body
/// is not a JSON object, or is not valid JSON up to where the reading stopped; a path left
/// empty or absent leaves its slot as it was.
pub(crate) fn json_fields(body: &[u8], paths: &[&[&str]], out: &mut [Option<String>]) {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return;
    }
    let active: Vec<(usize, &[&str])> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .map(|(i, p)| (i, *p))
        .collect();
    if active.is_empty() {
        return;
    }
    let mut found: Vec<Option<String>> = vec![None; out.len()];
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = PathsSeed {
        active: &active,
        all: &active,
        out: &mut found,
    };
    // Stopping early is an error to serde: it counts as success when every path was found.
    let complete =
        seed.deserialize(&mut de).is_ok() || active.iter().all(|&(i, _)| found[i].is_some());
    if complete {
        for (slot, value) in out.iter_mut().zip(found) {
            if value.is_some() {
                *slot = value;
            }
        }
    }
}

/// The string (or integer) at `path` in a JSON object body; see [`json_fields`].
pub(crate) fn json_field(body: &[u8], path: &[&str]) -> Option<String> {
    let mut out = [None];
    json_fields(body, &[path], &mut out);
    out[0].take()
}

/// The paths still being looked for below the current value (each with its slot), and the
/// slots.
struct PathsSeed<'a, 'p> {
    active: &'a [(usize, &'p [&'p str])],
    /// Every path of the whole reading: when all have a value, it stops.
    all: &'a [(usize, &'p [&'p str])],
    out: &'a mut [Option<String>],
}

impl PathsSeed<'_, '_> {
    /// Stores a leaf value in every slot whose path ends here.
    fn leaf(self, value: impl FnOnce() -> String) {
        let mut value = Some(value);
        let mut text = None;
        for &(i, path) in self.active {
            if path.is_empty() && self.out[i].is_none() {
                if let Some(make) = value.take() {
                    text = Some(make());
                }
                self.out[i] = text.clone();
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for PathsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PathsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object, string or number")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let PathsSeed { active, all, out } = self;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let below: Vec<(usize, &[&str])> = active
                .iter()
                .filter(|(i, p)| out[*i].is_none() && p.first().is_some_and(|h| *h == key))
                .map(|&(i, p)| (i, &p[1..]))
                .collect();
            if below.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(PathsSeed {
                    active: &below,
                    all,
                    out: &mut *out,
                })?;
                if all.iter().all(|&(i, _)| out[i].is_some()) {
                    return Err(serde::de::Error::custom("every field found"));
                }
            }
        }
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.leaf(|| v.to_owned());
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.leaf(|| v.to_string());
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.leaf(|| v.to_string());
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
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
    fn base64_decoder_agrees_with_the_base64_crate() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        let mut buf = [0u8; MAX_SIG];
        let mut reference = [0u8; 80];
        // Canonical encodings of every length round-trip.
        for len in 0..=MAX_SIG {
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let text = BASE64.encode(&bytes);
            assert_eq!(
                decode_base64(text.as_bytes(), &mut buf),
                Some(len),
                "{text}"
            );
            assert_eq!(buf[..len], bytes[..]);
        }
        // Random and mutated strings: accepted exactly when the strict engine accepts them,
        // with the same bytes.
        for round in 0..200_000 {
            let text: Vec<u8> = if round % 2 == 0 {
                let len = rng.usize(0..24);
                (0..len)
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect()
            } else {
                let bytes: Vec<u8> = (0..rng.usize(0..70)).map(|_| rng.u8(..)).collect();
                let mut text = BASE64.encode(&bytes).into_bytes();
                if !text.is_empty() {
                    let i = rng.usize(..text.len());
                    text[i] = if rng.bool() {
                        alphabet[rng.usize(..alphabet.len())]
                    } else {
                        rng.u8(..)
                    };
                }
                text
            };
            let ours = decode_base64(&text, &mut buf);
            let theirs = BASE64
                .decode_slice(&text, &mut reference)
                .ok()
                .filter(|&n| n <= MAX_SIG);
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&text));
            if let Some(n) = ours {
                assert_eq!(buf[..n], reference[..n]);
            }
        }
    }

    #[test]
    fn encoding_matches_the_reference_crates() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut text = Text::EMPTY;
        for len in 0..=MAX_MAC {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
                Encoding::Hex.encode_into(&bytes, &mut text);
                assert_eq!(text.as_bytes(), hex::encode(&bytes).as_bytes());
                Encoding::HexUpper.encode_into(&bytes, &mut text);
                assert_eq!(text.as_bytes(), hex::encode_upper(&bytes).as_bytes());
                Encoding::Base64.encode_into(&bytes, &mut text);
                assert_eq!(text.as_bytes(), BASE64.encode(&bytes).as_bytes());
                // What is written decodes back to the same bytes.
                let mut back = [0u8; MAX_SIG];
                for enc in [Encoding::Hex, Encoding::HexUpper, Encoding::Base64] {
                    enc.encode_into(&bytes, &mut text);
                    assert_eq!(enc.decode(text.as_bytes(), &mut back), Some(len));
                    assert_eq!(back[..len], bytes[..]);
                }
            }
        }
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
        // Several paths in one pass, sharing prefixes; the first occurrence wins.
        let body = br#"{"s":{"t":"1","k":"tok"},"e":{"event":"opened","id":9},"s":{"t":"2"}}"#;
        let mut out = [None, None, None, None, None];
        json_fields(
            body,
            &[&["s", "t"], &["s", "k"], &["e", "event"], &["e", "id"], &[]],
            &mut out,
        );
        assert_eq!(
            out,
            [
                Some("1".into()),
                Some("tok".into()),
                Some("opened".into()),
                Some("9".into()),
                None
            ]
        );
        // Reading stops once every field is found: what follows is not read.
        let mut out = [None];
        json_fields(br#"{"id":"x","#, &[&["id"]], &mut out);
        assert_eq!(out, [Some("x".into())]);
        // Invalid JSON before every field was found writes nothing.
        let mut out = [None, None];
        json_fields(br#"{"id":"x","#, &[&["id"], &["type"]], &mut out);
        assert_eq!(out, [None, None]);
    }
}
