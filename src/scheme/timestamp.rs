//! Signed timestamps: where a scheme finds one, how it is written (Unix seconds, Unix
//! milliseconds, RFC 3339), and the replay window it must fall in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;

use super::RejectionKind;

/// Where the signed timestamp is.
#[derive(Debug, Clone)]
pub(crate) enum TsSource {
    /// A header of its own, first present name wins.
    Header(Vec<HeaderName>),
    /// An item of the signature header, after this prefix (`t=`, `ts=`).
    InSignature(&'static [u8]),
    /// A field of a JSON object body (Linear's `webhookTimestamp`, Mailgun's
    /// `signature.timestamp`).
    Json(&'static [&'static str]),
}

/// How the timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsFormat {
    /// Decimal seconds since the Unix epoch.
    Seconds,
    /// Decimal milliseconds since the Unix epoch.
    Millis,
    /// An RFC 3339 date and time (`2021-02-19T23:47:00.8091512Z`), as Twitch sends it.
    Rfc3339,
}

/// The signed timestamp and the replay window.
#[derive(Debug, Clone)]
pub(crate) struct TsSpec {
    pub(crate) source: TsSource,
    pub(crate) format: TsFormat,
    /// The largest allowed distance from `now`, either way; `None` accepts any time.
    pub(crate) tolerance: Option<Duration>,
}

/// A parsed timestamp, in the unit it is compared in: whole seconds for a seconds timestamp
/// (as providers' own libraries compare them), milliseconds otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    value: i64,
    millis: bool,
}

impl TsFormat {
    /// Parses the raw text; `None` if it is not written in this format.
    pub(crate) fn parse(self, raw: &[u8]) -> Option<Stamp> {
        match self {
            Self::Seconds => super::parse::parse_decimal(raw).map(|value| Stamp {
                value,
                millis: false,
            }),
            Self::Millis => super::parse::parse_decimal(raw).map(|value| Stamp {
                value,
                millis: true,
            }),
            Self::Rfc3339 => parse_rfc3339(raw).map(|value| Stamp {
                value,
                millis: true,
            }),
        }
    }

    /// The detail of a rejection for text that does not parse.
    pub(crate) fn malformed_detail(self) -> &'static str {
        match self {
            Self::Seconds | Self::Millis => "timestamp is not a decimal number",
            Self::Rfc3339 => "timestamp is not an RFC 3339 date and time",
        }
    }

    /// The text a sender writes for `at`.
    #[cfg(feature = "test-util")]
    pub(crate) fn format(self, at: SystemTime) -> String {
        let ms = crate::clock::unix_millis(at);
        match self {
            Self::Seconds => ms.div_euclid(1000).to_string(),
            Self::Millis => ms.to_string(),
            Self::Rfc3339 => format_rfc3339(at),
        }
    }
}

impl Stamp {
    /// The time it names (a moment before the epoch counts as the epoch).
    pub(crate) fn time(self) -> SystemTime {
        let value = u64::try_from(self.value).unwrap_or(0);
        UNIX_EPOCH
            + if self.millis {
                Duration::from_millis(value)
            } else {
                Duration::from_secs(value)
            }
    }

    /// Checks the stamp against `now` and a window that is symmetric around it.
    pub(crate) fn check(self, tolerance: Duration, now: SystemTime) -> Result<(), RejectionKind> {
        // Whole seconds (or milliseconds) since the epoch, without 128-bit arithmetic; a `now`
        // before the epoch counts as the epoch.
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        let (now, tolerance) = if self.millis {
            (
                secs.saturating_mul(1000)
                    .saturating_add(i64::from(since.subsec_millis())),
                i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX),
            )
        } else {
            (secs, i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX))
        };
        let age = now.saturating_sub(self.value);
        if age > tolerance {
            Err(RejectionKind::TimestampTooOld)
        } else if age < -tolerance {
            Err(RejectionKind::TimestampInFuture)
        } else {
            Ok(())
        }
    }
}

/// The detail of a rejection for a timestamp outside the window.
pub(crate) fn window_detail(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::TimestampTooOld => "signed timestamp is older than the replay window",
        _ => "signed timestamp is further in the future than the replay window",
    }
}

/// Milliseconds since the epoch of an RFC 3339 date and time
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, `T` and `Z` in either case, from year
/// 1970 on); digits of the fraction past milliseconds are dropped. `None` for anything else,
/// including out-of-range fields (month 13, February 30, hour 24).
pub(crate) fn parse_rfc3339(raw: &[u8]) -> Option<i64> {
    let s = raw.trim_ascii();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = s.get(range)?;
        digits.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let punct = |i: usize, c: &[u8]| s.get(i).is_some_and(|b| c.contains(b));
    if !(punct(4, b"-") && punct(7, b"-") && punct(10, b"Tt") && punct(13, b":") && punct(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if punct(i, b".") {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in i - start..3 {
            millis *= 10;
        }
    }
    let offset = match s.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    Some(secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `at` as RFC 3339 in UTC with nanoseconds, as Twitch writes it.
#[cfg(any(test, feature = "test-util"))]
fn format_rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn secs(value: i64) -> Stamp {
        Stamp {
            value,
            millis: false,
        }
    }

    #[test]
    fn window_is_inclusive_and_symmetric() {
        let tol = Duration::from_secs(300);
        assert_eq!(secs(1000).check(tol, at(1300)), Ok(()));
        assert_eq!(
            secs(1000).check(tol, at(1301)),
            Err(RejectionKind::TimestampTooOld)
        );
        assert_eq!(secs(1000).check(tol, at(700)), Ok(()));
        assert_eq!(
            secs(1000).check(tol, at(699)),
            Err(RejectionKind::TimestampInFuture)
        );
        // Sub-second parts of `now` do not count against a seconds timestamp.
        assert_eq!(
            secs(1000).check(tol, at(1300) + Duration::from_millis(999)),
            Ok(())
        );
        let ms = |value| Stamp {
            value,
            millis: true,
        };
        assert_eq!(
            ms(1_000_000).check(Duration::from_millis(5), at(1000)),
            Ok(())
        );
        assert_eq!(
            ms(999_994).check(Duration::from_millis(5), at(1000)),
            Err(RejectionKind::TimestampTooOld)
        );
        // Absurd values do not overflow.
        assert_eq!(secs(0).check(Duration::MAX, at(1000)), Ok(()));
    }

    #[test]
    fn rfc3339_dates() {
        let p = |s: &str| parse_rfc3339(s.as_bytes());
        assert_eq!(p("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(p("2020-12-13T14:15:16.1718Z"), Some(1_607_868_916_171));
        assert_eq!(p("2021-02-19T23:47:00.8091512Z"), Some(1_613_778_420_809));
        assert_eq!(p("2023-03-09T04:44:48.062323705Z"), Some(1_678_337_088_062));
        assert_eq!(p("2023-03-09t04:44:48.5z"), Some(1_678_337_088_500));
        assert_eq!(p("2023-03-09T06:44:48+02:00"), Some(1_678_337_088_000));
        assert_eq!(p("2023-03-08T23:44:48-05:00"), Some(1_678_337_088_000));
        assert_eq!(p("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        for bad in [
            "",
            "yesterday",
            "2023-03-09",
            "2023-03-09T04:44:48",
            "2023-03-09 04:44:48Z",
            "2023-13-09T04:44:48Z",
            "2023-02-29T04:44:48Z",
            "2023-03-09T24:00:00Z",
            "2023-03-09T04:60:00Z",
            "2023-03-09T04:44:48.Z",
            "2023-03-09T04:44:48+0200",
            "2023-03-09T04:44:48+24:00",
            "1969-12-31T23:59:59Z",
            "2023-03-09T04:44:48Zjunk",
            "+023-03-09T04:44:48Z",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_round_trip() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..10_000 {
            let t = UNIX_EPOCH
                + Duration::from_secs(rng.u64(0..8_000_000_000))
                + Duration::from_nanos(rng.u64(0..1_000_000_000));
            let text = format_rfc3339(t);
            let ms = t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
            assert_eq!(parse_rfc3339(text.as_bytes()), Some(ms), "{text}");
        }
        assert_eq!(format_rfc3339(at(0)), "1970-01-01T00:00:00.000000000Z");
    }
}
