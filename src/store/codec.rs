//! How events are encoded in storage, for backend implementors: every backend in this crate
//! stores times and headers this way, and a backend of your own may too.
//!
//! - **Times** are whole microseconds since the Unix epoch in an `i64`
//!   ([`to_micros`], [`from_micros`]): sub-millisecond, as the conformance suite checks, and
//!   good until the year 294,000. Times before the epoch are stored as 0.
//! - **Headers** are one blob in HTTP/1 field syntax, `name: value\r\n` per field
//!   ([`encode_headers`], [`decode_headers`]); header values cannot hold CR or LF, so this is
//!   lossless, and repeated fields keep their order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

/// Microseconds since the Unix epoch, saturating; times before the epoch map to 0.
pub fn to_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `us` microseconds after the Unix epoch; negative values map to the epoch.
pub fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// A duration in microseconds, saturating.
pub fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Encodes headers as `name: value\r\n` lines.
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
    fn micros_round_trip_below_the_millisecond_and_saturate() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000);
        assert_eq!(to_micros(t), 1_700_000_000_123_456);
        assert_eq!(from_micros(to_micros(t)), t);
        assert_eq!(to_micros(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(from_micros(-5), UNIX_EPOCH);
        assert_eq!(duration_micros(Duration::MAX), i64::MAX);
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
}
