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
mod tests;
