//! Times in query parameters: Unix milliseconds (`1767225600000`) or RFC 3339
//! (`2026-01-01T00:00:00Z`, `2026-01-01T01:00:00.250+01:00`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses a time given as Unix milliseconds (digits only) or as an RFC 3339 date-time; the
/// error says what is wrong, for a `400`.
pub(super) fn parse_time(text: &str) -> Result<SystemTime, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = text
            .parse()
            .map_err(|_| format!("{text:?} is too large for milliseconds since 1970"))?;
        return UNIX_EPOCH
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| format!("{text:?} is too far in the future"));
    }
    crate::rfc3339::parse(text).ok_or_else(|| {
        format!(
            "{text:?} is not a time: expected milliseconds since 1970 (such as \
             1767225600000) or RFC 3339 (such as 2026-01-01T00:00:00Z)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis()
    }

    #[test]
    fn unix_milliseconds_and_rfc3339_name_the_same_instants() {
        for (text, expected) in [
            ("0", 0),
            ("1767225600000", 1_767_225_600_000),
            ("1970-01-01T00:00:00Z", 0),
            ("2026-01-01T00:00:00Z", 1_767_225_600_000),
            ("2026-01-01t00:00:00z", 1_767_225_600_000),
            ("2026-01-01 01:00:00+01:00", 1_767_225_600_000),
            ("2025-12-31T19:30:00-04:30", 1_767_225_600_000),
            ("2026-01-01T00:00:00.250Z", 1_767_225_600_250),
            ("2026-01-01T00:00:00.2509999999Z", 1_767_225_600_250),
            ("2024-02-29T12:00:00Z", 1_709_208_000_000),
            ("2000-03-01T00:00:00Z", 951_868_800_000),
        ] {
            assert_eq!(ms(parse_time(text).expect(text)), expected, "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_formats_named() {
        for text in [
            "",
            "-1",
            "1.5",
            "yesterday",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0100",
            "1969-12-31T23:59:59Z",
            "99999999999999999999999",
        ] {
            let error = parse_time(text).expect_err(text);
            assert!(error.contains(&format!("{text:?}")), "{error}");
        }
        assert!(parse_time("noon").unwrap_err().contains("RFC 3339"));
    }
}
