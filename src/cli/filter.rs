//! Parsing of the command line's values (durations, times, statuses, origins) and the
//! filter they make.

use std::time::{Duration, SystemTime};

use crate::store::{EventFilter, EventStatus, Origin};

use super::args::FilterArgs;
use super::error::{CliError, CliResult};

/// A duration such as `90s`, `2h`, `7d` or `1h 30m`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (expected a duration such as 30s, 15m, 2h, 7d or \"1h 30m\")"))
}

/// An RFC 3339 time such as `2026-12-04T10:00:00Z` or `2026-12-04T12:00:00+02:00` (a space
/// may stand for the `T`; seconds' fractions are allowed).
pub(crate) fn parse_time(s: &str) -> Result<SystemTime, String> {
    let bad = |why: &str| {
        format!(
            "{s:?} is not an RFC 3339 time ({why}); expected for example 2026-12-04T10:00:00Z \
             or 2026-12-04T12:00:00+02:00"
        )
    };
    let s = s.trim();
    // humantime reads UTC times; an explicit offset is taken off first.
    let (local, offset_secs) = split_offset(s).ok_or_else(|| bad("bad UTC offset"))?;
    if local.len() < 19 {
        return Err(bad("too short"));
    }
    let t = humantime::parse_rfc3339_weak(local).map_err(|e| bad(&e.to_string()))?;
    let shifted = if offset_secs >= 0 {
        t.checked_sub(Duration::from_secs(offset_secs.unsigned_abs()))
    } else {
        t.checked_add(Duration::from_secs(offset_secs.unsigned_abs()))
    };
    shifted.ok_or_else(|| bad("out of range"))
}

/// Splits a time into its local part and its UTC offset in seconds (`Z` and no offset are
/// zero); `None` for an offset that is malformed.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(local) = s.strip_suffix(['Z', 'z']) {
        return Some((local, 0));
    }
    // An offset is `+HH:MM` or `-HH:MM` after the time of day (past the date's own dashes).
    let bytes = s.as_bytes();
    if bytes.len() > 6 {
        let at = bytes.len() - 6;
        let sign = bytes[at];
        if (sign == b'+' || sign == b'-') && at >= 19 {
            let hh: i64 = s.get(at + 1..at + 3)?.parse().ok()?;
            let colon = s.get(at + 3..at + 4)?;
            let mm: i64 = s.get(at + 4..)?.parse().ok()?;
            if colon != ":" || hh > 23 || mm > 59 {
                return None;
            }
            let secs = hh * 3600 + mm * 60;
            return Some((&s[..at], if sign == b'+' { secs } else { -secs }));
        }
    }
    Some((s, 0))
}

/// A status name (`pending`, `leased`, `succeeded`, `retrying`, `dead`, `stale`).
pub(crate) fn parse_status(s: &str) -> Result<EventStatus, String> {
    s.trim().parse().map_err(|e| format!("{e}"))
}

/// An origin name (`push`, `replay`, `reconciliation`).
pub(crate) fn parse_origin(s: &str) -> Result<Origin, String> {
    s.trim().parse().map_err(|e| format!("{e}"))
}

impl FilterArgs {
    /// The filter these flags ask for, with `--since` counted back from `now`.
    pub(crate) fn to_filter(&self, now: SystemTime) -> CliResult<EventFilter> {
        let mut filter = EventFilter::all();
        if let Some(source) = &self.source {
            filter = filter.source(source.clone());
        }
        if let Some(t) = &self.event_type {
            filter = filter.event_type(t.clone());
        }
        if let Some(status) = self.status {
            filter = filter.status(status);
        }
        if let Some(origin) = self.origin {
            filter = filter.origin(origin);
        }
        if let Some(since) = self.since {
            let from = now.checked_sub(since).ok_or_else(|| {
                CliError::usage(format!(
                    "--since {} reaches back before the start of time",
                    humantime::format_duration(since)
                ))
            })?;
            filter = filter.received_from(from);
        }
        if let Some(from) = self.from {
            filter = filter.received_from(from);
        }
        if let Some(until) = self.until {
            filter = filter.received_until(until);
        }
        if let (Some(from), Some(until)) = (filter.received_from, filter.received_until) {
            if from >= until {
                return Err(CliError::usage(format!(
                    "the time range is empty: it starts at {} and ends at {} (--until is \
                     exclusive and must come after --from/--since)",
                    humantime::format_rfc3339_seconds(from),
                    humantime::format_rfc3339_seconds(until)
                )));
            }
        }
        Ok(filter)
    }
}

/// True if `filter` selects every event (page fields aside).
pub(crate) fn matches_everything(filter: &EventFilter) -> bool {
    let bare = EventFilter {
        before: None,
        limit: None,
        ..filter.clone()
    };
    bare == EventFilter::all()
}

/// A one-line description of a filter, for messages: `source=github status=dead`.
pub(crate) fn describe(filter: &EventFilter) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &filter.source {
        parts.push(format!("source={s}"));
    }
    if let Some(id) = &filter.event_id {
        parts.push(format!("id={id}"));
    }
    if let Some(t) = &filter.event_type {
        parts.push(format!("type={t}"));
    }
    if let Some(s) = filter.status {
        parts.push(format!("status={s}"));
    }
    if let Some(o) = filter.origin {
        parts.push(format!("origin={o}"));
    }
    if let Some(t) = filter.received_from {
        parts.push(format!("from={}", humantime::format_rfc3339_seconds(t)));
    }
    if let Some(t) = filter.received_until {
        parts.push(format!("until={}", humantime::format_rfc3339_seconds(t)));
    }
    if parts.is_empty() {
        "every event".to_owned()
    } else {
        super::output::clean(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_with_and_without_offsets() {
        // 2026-12-04T10:00:00Z
        let ten = at(1_796_378_400);
        for (text, want) in [
            ("2026-12-04T10:00:00Z", ten),
            ("2026-12-04T10:00:00z", ten),
            ("2026-12-04 10:00:00Z", ten),
            ("2026-12-04T10:00:00", ten),
            ("2026-12-04T12:00:00+02:00", ten),
            ("2026-12-04T07:30:00-02:30", ten),
            ("2026-12-04T10:00:00.250Z", ten + Duration::from_millis(250)),
        ] {
            assert_eq!(parse_time(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "2026-12-04",
            "2026-13-04T10:00:00Z",
            "2026-12-04T10:00:00+25:00",
            "2026-12-04T10:00:00+0200",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_and_names() {
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("soon").unwrap_err().contains("7d"));
        assert_eq!(parse_status("dead"), Ok(EventStatus::Dead));
        let e = parse_status("bogus").unwrap_err();
        assert!(e.contains("pending, leased, succeeded"), "{e}");
        assert_eq!(parse_origin("replay"), Ok(Origin::Replay));
        assert!(parse_origin("pull").unwrap_err().contains("reconciliation"));
    }

    #[test]
    fn filters_from_flags() {
        let now = at(1_000_000);
        let args = FilterArgs {
            source: Some("github".into()),
            since: Some(Duration::from_secs(3600)),
            status: Some(EventStatus::Dead),
            ..FilterArgs::default()
        };
        let f = args.to_filter(now).unwrap();
        assert_eq!(f.source.as_deref(), Some("github"));
        assert_eq!(f.received_from, Some(at(1_000_000 - 3600)));
        assert!(!matches_everything(&f));
        assert_eq!(
            describe(&f),
            "source=github status=dead from=1970-01-12T12:46:40Z"
        );

        let all = FilterArgs::default().to_filter(now).unwrap();
        assert!(matches_everything(&all.limit(5)));

        let empty = FilterArgs {
            from: Some(at(10)),
            until: Some(at(10)),
            ..FilterArgs::default()
        };
        assert!(matches!(empty.to_filter(now), Err(CliError::Usage(_))));
    }
}
