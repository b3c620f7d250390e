//! Query strings and request bodies of the admin routes, turned into [`EventFilter`]s and
//! [`ReplayMode`]s, with a `400` naming the parameter for anything unknown or malformed.

use crate::store::{EventFilter, EventStatus, MessageId, Origin, ReplayMode};

use super::error::ApiError;
use super::time::parse_time;

/// The query parameters of the listing routes.
pub(super) const FILTER_PARAMETERS: &[&str] = &[
    "source", "type", "status", "origin", "from", "until", "before", "limit",
];

/// The pairs of a query string, each key at most once; an empty value counts as absent (so a
/// form's empty fields filter nothing). Keys outside `known` are refused.
fn pairs(query: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !known.contains(&key.as_ref()) {
            return Err(ApiError::parameter(
                key,
                format!("unknown parameter; expected one of {}", known.join(", ")),
            ));
        }
        if seen.iter().any(|(k, _)| *k == key) {
            return Err(ApiError::parameter(key, "given more than once"));
        }
        seen.push((key.into_owned(), value.into_owned()));
    }
    seen.retain(|(_, v)| !v.is_empty());
    Ok(seen)
}

/// `?source=&type=&status=&origin=&from=&until=&before=&limit=` as a filter. `from` and
/// `until` are Unix milliseconds or RFC 3339; `before` a message id; `limit` a positive page
/// size (clamped to [`MAX_PAGE`](crate::store::MAX_PAGE)).
pub(super) fn filter(query: Option<&str>) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter::all();
    for (key, value) in pairs(query, FILTER_PARAMETERS)? {
        let bad = |why: String| ApiError::parameter(key.as_str(), why);
        match key.as_str() {
            "source" => filter = filter.source(value),
            "type" => filter = filter.event_type(value),
            "status" => {
                filter = filter.status(
                    value
                        .parse::<EventStatus>()
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            "origin" => {
                filter = filter.origin(value.parse::<Origin>().map_err(|e| bad(e.to_string()))?)
            }
            "from" => filter = filter.received_from(parse_time(&value).map_err(bad)?),
            "until" => filter = filter.received_until(parse_time(&value).map_err(bad)?),
            "before" => {
                let id: i64 = value.parse().map_err(|_| {
                    bad(format!(
                        "{value:?} is not a message id (the `next` of the previous page)"
                    ))
                })?;
                filter = filter.before(MessageId(id));
            }
            _ => {
                let n: usize = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(format!("{value:?} is not a positive whole number")))?;
                filter = filter.limit(n);
            }
        }
    }
    Ok(filter)
}

/// A replay mode by name.
pub(super) fn mode(parameter: &str, text: &str) -> Result<ReplayMode, ApiError> {
    match text {
        "dedupe" => Ok(ReplayMode::Dedupe),
        "forced" => Ok(ReplayMode::Forced),
        other => Err(ApiError::parameter(
            parameter,
            format!("unknown mode {other:?}: expected dedupe or forced"),
        )),
    }
}

/// `?mode=dedupe|forced` (dedupe when absent).
pub(super) fn mode_query(query: Option<&str>) -> Result<ReplayMode, ApiError> {
    match pairs(query, &["mode"])?.pop() {
        Some((_, value)) => mode("mode", &value),
        None => Ok(ReplayMode::Dedupe),
    }
}

/// `?running=true|false` for the list of replay jobs.
pub(super) fn running_query(query: Option<&str>) -> Result<bool, ApiError> {
    match pairs(query, &["running"])?.pop() {
        None => Ok(false),
        Some((_, v)) if v == "true" || v == "1" => Ok(true),
        Some((_, v)) if v == "false" || v == "0" => Ok(false),
        Some((_, v)) => Err(ApiError::parameter(
            "running",
            format!("{v:?} is not true or false"),
        )),
    }
}

/// Refuses any query parameter on a route that takes its filter in the body (so that a
/// `?id=` meant to narrow a replay is never ignored, widening it).
pub(super) fn no_query(query: Option<&str>) -> Result<(), ApiError> {
    match form_urlencoded::parse(query.unwrap_or_default().as_bytes()).next() {
        None => Ok(()),
        Some((key, _)) => Err(ApiError::parameter(
            key,
            "this route takes no query parameters: its filter goes in the JSON body, \
             {\"filter\": {...}, \"mode\": ...}",
        )),
    }
}

/// The fields of [`EventFilter`]'s JSON form a replay body may hold (the page fields are
/// refused: a job takes every matching event).
const BODY_FILTER_FIELDS: &[&str] = &[
    "source",
    "event_id",
    "event_type",
    "status",
    "origin",
    "received_from",
    "received_until",
];

/// What `POST /replays` and `POST /dead/replay` take.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    filter: Option<serde_json::Value>,
    mode: Option<serde_json::Value>,
}

/// A replay request body, `{ "filter": EventFilter, "mode": "dedupe" | "forced" }`: the
/// filter in [`EventFilter`]'s JSON form (times in microseconds since 1970), every field
/// checked so that a misspelt one is refused rather than widening the replay. `None` for an
/// absent filter (an empty body included).
pub(super) fn replay_body(bytes: &[u8]) -> Result<(Option<EventFilter>, ReplayMode), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, ReplayMode::Dedupe));
    }
    let body: ReplayBody = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not {{\"filter\": {{...}}, \"mode\": \"dedupe\"|\"forced\"}}: {e}"
        ))
    })?;
    let mode = match body.mode {
        None | Some(serde_json::Value::Null) => ReplayMode::Dedupe,
        Some(serde_json::Value::String(text)) => mode("mode", &text).map_err(|_| {
            ApiError::BadRequest(format!("unknown mode {text:?}: expected dedupe or forced"))
        })?,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "mode must be \"dedupe\" or \"forced\", not {other}"
            )))
        }
    };
    let filter = match body.filter {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(fields)) => {
            if let Some(field) = fields
                .keys()
                .find(|k| !BODY_FILTER_FIELDS.contains(&k.as_str()))
            {
                return Err(ApiError::BadRequest(format!(
                    "filter field {field:?} is not allowed here; expected any of {}",
                    BODY_FILTER_FIELDS.join(", ")
                )));
            }
            let mut fields = fields;
            // `EventFilter`'s time fields have no serde default: absent means null.
            for time in ["received_from", "received_until"] {
                fields.entry(time).or_insert(serde_json::Value::Null);
            }
            let filter: EventFilter = serde_json::from_value(serde_json::Value::Object(fields))
                .map_err(|e| ApiError::BadRequest(format!("bad filter: {e}")))?;
            Some(filter)
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "filter must be a JSON object, not {other}"
            )))
        }
    };
    Ok((filter, mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    fn refused(query: &str) -> (String, String) {
        match filter(Some(query)) {
            Err(ApiError::BadParameter { parameter, why }) => (parameter, why),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn a_query_becomes_the_filter_it_names() {
        let f = filter(Some(
            "source=github&type=push&status=dead&origin=replay&from=1000&until=2026-01-01T00:00:00Z&before=42&limit=5000",
        ))
        .unwrap();
        assert_eq!(f.source.as_deref(), Some("github"));
        assert_eq!(f.event_type.as_deref(), Some("push"));
        assert_eq!(f.status, Some(EventStatus::Dead));
        assert_eq!(f.origin, Some(Origin::Replay));
        assert_eq!(
            f.received_from,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
        );
        assert!(f.received_until.is_some());
        assert_eq!(f.before, Some(MessageId(42)));
        assert_eq!(f.page_size(), crate::store::MAX_PAGE);
        // Empty values (a form's blank fields) filter nothing.
        assert_eq!(
            filter(Some("source=&type=&status=")).unwrap(),
            EventFilter::all()
        );
        assert_eq!(filter(None).unwrap(), EventFilter::all());
        // Percent-encoded values are decoded.
        assert_eq!(
            filter(Some("source=a%2Fb")).unwrap().source.as_deref(),
            Some("a/b")
        );
    }

    #[test]
    fn bad_parameters_are_named_with_the_reason() {
        let (p, why) = refused("status=exploded");
        assert_eq!(p, "status");
        assert!(why.contains("pending, leased, succeeded"), "{why}");
        let (p, why) = refused("origin=mars");
        assert_eq!(p, "origin");
        assert!(why.contains("push, replay, reconciliation"), "{why}");
        let (p, why) = refused("from=yesterday");
        assert_eq!(p, "from");
        assert!(why.contains("RFC 3339"), "{why}");
        assert_eq!(refused("until=-5").0, "until");
        assert_eq!(refused("before=x").0, "before");
        assert_eq!(refused("limit=0").0, "limit");
        assert_eq!(refused("limit=ten").0, "limit");
        let (p, why) = refused("sorce=github");
        assert_eq!(p, "sorce");
        assert!(why.contains("unknown parameter"), "{why}");
        let (p, why) = refused("source=a&source=b");
        assert_eq!(p, "source");
        assert!(why.contains("more than once"), "{why}");
    }

    #[test]
    fn modes_and_flags() {
        assert_eq!(mode_query(None).unwrap(), ReplayMode::Dedupe);
        assert_eq!(mode_query(Some("mode=forced")).unwrap(), ReplayMode::Forced);
        assert!(mode_query(Some("mode=force")).is_err());
        assert!(mode_query(Some("nope=1")).is_err());
        assert!(running_query(Some("running=true")).unwrap());
        assert!(!running_query(None).unwrap());
        assert!(running_query(Some("running=maybe")).is_err());
    }

    #[test]
    fn replay_bodies_refuse_what_would_widen_the_replay() {
        assert_eq!(replay_body(b"").unwrap(), (None, ReplayMode::Dedupe));
        let (f, m) =
            replay_body(br#"{"filter": {"source": "github", "status": "dead"}, "mode": "forced"}"#)
                .unwrap();
        assert_eq!(m, ReplayMode::Forced);
        assert_eq!(
            f,
            Some(
                EventFilter::all()
                    .source("github")
                    .status(EventStatus::Dead)
            )
        );
        for bad in [
            &br#"{"filter": {"type": "push"}}"#[..],
            br#"{"filter": {"limit": 5}}"#,
            br#"{"filter": {"status": "exploded"}}"#,
            br#"{"filter": [1]}"#,
            br#"{"filter": {}, "mode": "force"}"#,
            br#"{"filter": {}, "mode": 1}"#,
            br#"{"filtre": {}}"#,
            b"not json",
        ] {
            let error = replay_body(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(
                error.into_response().status(),
                axum::http::StatusCode::BAD_REQUEST
            );
        }
    }
}
