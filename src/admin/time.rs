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
    rfc3339(text).ok_or_else(|| {
        format!(
            "{text:?} is not a time: expected milliseconds since 1970 (such as \
             1767225600000) or RFC 3339 (such as 2026-01-01T00:00:00Z)"
        )
    })
}

/// A fixed-width run of ASCII digits as a number.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u32, |n, b| {
        n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (eras of 400 years:
/// 146 097 days each).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t`, `z` and a space separator accepted.
fn rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        // Nanoseconds: the first nine digits, the rest ignored.
        for (i, d) in fraction[..len].iter().take(9).enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &fraction[len..];
    }
    let offset_seconds: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
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
