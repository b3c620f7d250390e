//! [`FakeStripe`]: Stripe's events list (`GET /v1/events`) as a local server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::{Faults, Server};

/// A fake of Stripe's events API: `GET /v1/events` as Stripe documents it.
///
/// - Answers Stripe's list object, `{"object":"list","url":"/v1/events","has_more":…,
///   "data":[…]}`, newest first (by `created`, then by the order events were added).
/// - Filters by `created[gte]`, `created[gt]`, `created[lte]`, `created[lt]` (or an exact
///   `created`), `type` (exact, or a prefix ending in `*`), `types[]` and
///   `delivery_success`.
/// - Pages with `starting_after` and `ending_before` (an id it does not hold is
///   `400 resource_missing`) and `limit` (default 10, `1..=100`, else `400`).
/// - Checks the API key (`Authorization: Bearer`, or HTTP Basic with the key as the user):
///   `401` with Stripe's error body otherwise, which names only a masked key.
/// - Serves each event's bytes exactly as stored: [`add_event`](Self::add_event) stores the
///   object pretty-printed, so a client that re-serializes is caught.
///
/// Every handler answers the [`Faults`] queued first.
#[derive(Debug)]
pub struct FakeStripe {
    state: Arc<StripeState>,
    server: Server,
}

#[derive(Debug)]
struct StripeState {
    api_key: String,
    faults: Faults,
    events: Mutex<Vec<StoredEvent>>,
    next_seq: AtomicU64,
    list_requests: AtomicU64,
    events_served: AtomicU64,
}

#[derive(Debug, Clone)]
struct StoredEvent {
    id: String,
    kind: String,
    created: i64,
    seq: u64,
    text: String,
    delivery_success: bool,
}

impl FakeStripe {
    /// Starts the fake on `127.0.0.1`, accepting `api_key`.
    pub async fn start(api_key: impl Into<String>) -> std::io::Result<Self> {
        let state = Arc::new(StripeState {
            api_key: api_key.into(),
            faults: Faults::default(),
            events: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(0),
            list_requests: AtomicU64::new(0),
            events_served: AtomicU64::new(0),
        });
        let router = axum::Router::new()
            .route("/v1/events", axum::routing::get(list))
            .fallback(unknown_url)
            .with_state(Arc::clone(&state));
        let server = Server::start(router).await?;
        Ok(Self { state, server })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The injected answers and the request counters.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Adds an event object: it must have a string `id`, a string `type` and an integer
    /// `created` (Unix seconds). It is served pretty-printed, exactly as
    /// [`event_body`](Self::event_body) returns it.
    ///
    /// # Panics
    ///
    /// If one of those fields is missing.
    pub fn add_event(&self, event: serde_json::Value) {
        let field = |name: &str| event.get(name).cloned();
        let id = field("id")
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("a Stripe event has an id");
        let kind = field("type")
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("a Stripe event has a type");
        let created = field("created")
            .and_then(|v| v.as_i64())
            .expect("a Stripe event has a created time");
        let text = serde_json::to_string_pretty(&event).unwrap_or_default();
        let seq = self.state.next_seq.fetch_add(1, Ordering::SeqCst);
        let mut events = self.state.events.lock().unwrap_or_else(|e| e.into_inner());
        events.retain(|e| e.id != id);
        events.push(StoredEvent {
            id,
            kind,
            created,
            seq,
            text,
            delivery_success: true,
        });
    }

    /// The bytes the fake serves for event `id`.
    pub fn event_body(&self, id: &str) -> Option<String> {
        let events = self.state.events.lock().unwrap_or_else(|e| e.into_inner());
        events.iter().find(|e| e.id == id).map(|e| e.text.clone())
    }

    /// Marks whether every delivery of event `id` succeeded (default `true`), for the
    /// `delivery_success` filter. Returns whether the event is held.
    pub fn set_delivery_success(&self, id: &str, success: bool) -> bool {
        let mut events = self.state.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter_mut()
            .find(|e| e.id == id)
            .map(|e| e.delivery_success = success)
            .is_some()
    }

    /// Drops event `id`, as Stripe does when an event ages out. Returns whether it was held.
    pub fn remove_event(&self, id: &str) -> bool {
        let mut events = self.state.events.lock().unwrap_or_else(|e| e.into_inner());
        let before = events.len();
        events.retain(|e| e.id != id);
        events.len() != before
    }

    /// List requests answered by the fake itself (faults and auth failures not counted).
    pub fn list_requests(&self) -> u64 {
        self.state.list_requests.load(Ordering::SeqCst)
    }

    /// Events served in list pages, counting each time an event was served.
    pub fn events_served(&self) -> u64 {
        self.state.events_served.load(Ordering::SeqCst)
    }
}

/// Stripe's error body.
fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Response {
    let mut detail = serde_json::json!({ "type": kind, "message": message });
    if let Some(code) = code {
        detail["code"] = code.into();
        detail["doc_url"] = format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        )
        .into();
    }
    if let Some(param) = param {
        detail["param"] = param.into();
    }
    json(status, serde_json::json!({ "error": detail }).to_string())
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn unknown_url(State(state): State<Arc<StripeState>>) -> Response {
    if let Some(fault) = state.faults.take() {
        return fault;
    }
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        None,
        "Unrecognized request URL. The fake serves GET /v1/events only.",
    )
}

/// The API key a request carries: a bearer token, or the user of HTTP Basic.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_owned())
}

/// A key as Stripe's error shows it: its prefix and last four characters.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

/// One created bound of the filter.
#[derive(Default)]
struct Filter {
    gte: Option<i64>,
    gt: Option<i64>,
    lte: Option<i64>,
    lt: Option<i64>,
    exact: Option<i64>,
    types: Vec<String>,
    delivery_success: Option<bool>,
}

impl Filter {
    fn matches(&self, e: &StoredEvent) -> bool {
        let created_ok = self.gte.is_none_or(|t| e.created >= t)
            && self.gt.is_none_or(|t| e.created > t)
            && self.lte.is_none_or(|t| e.created <= t)
            && self.lt.is_none_or(|t| e.created < t)
            && self.exact.is_none_or(|t| e.created == t);
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| match t.strip_suffix('*') {
                Some(prefix) => e.kind.starts_with(prefix),
                None => &e.kind == t,
            });
        let delivery_ok = self
            .delivery_success
            .is_none_or(|d| e.delivery_success == d);
        created_ok && type_ok && delivery_ok
    }
}

async fn list(
    State(state): State<Arc<StripeState>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(fault) = state.faults.take() {
        return fault;
    }
    match presented_key(&headers) {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                None,
                "You did not provide an API key. Provide it in the Authorization header as a bearer token.",
            )
        }
        Some(key) if key != state.api_key => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                None,
                &format!("Invalid API Key provided: {}", masked(&key)),
            )
        }
        Some(_) => {}
    }
    state.list_requests.fetch_add(1, Ordering::SeqCst);

    let mut filter = Filter::default();
    let mut limit = 10i64;
    let mut starting_after = None;
    let mut ending_before = None;
    for (name, value) in &params {
        let int = |param: &str| {
            value.parse::<i64>().map_err(|_| {
                Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_invalid_integer"),
                    Some(param),
                    &format!("Invalid integer: {value}"),
                ))
            })
        };
        let parsed = match name.as_str() {
            "created[gte]" => int(name).map(|v| filter.gte = Some(v)),
            "created[gt]" => int(name).map(|v| filter.gt = Some(v)),
            "created[lte]" => int(name).map(|v| filter.lte = Some(v)),
            "created[lt]" => int(name).map(|v| filter.lt = Some(v)),
            "created" => int(name).map(|v| filter.exact = Some(v)),
            "limit" => int(name).map(|v| limit = v),
            "type" | "types[]" => {
                filter.types.push(value.clone());
                Ok(())
            }
            "delivery_success" => {
                filter.delivery_success = Some(value == "true");
                Ok(())
            }
            "starting_after" => {
                starting_after = Some(value.clone());
                Ok(())
            }
            "ending_before" => {
                ending_before = Some(value.clone());
                Ok(())
            }
            _ => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_unknown"),
                Some(name),
                &format!("Received unknown parameter: {name}"),
            ))),
        };
        if let Err(response) = parsed {
            return *response;
        }
    }
    if !(1..=100).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
            Some("limit"),
            "This value must be between 1 and 100.",
        );
    }
    if starting_after.is_some() && ending_before.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid_string"),
            Some("ending_before"),
            "Only one of starting_after and ending_before can be given.",
        );
    }
    let limit = usize::try_from(limit).unwrap_or(10);

    let mut all = state
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    all.sort_by_key(|e| std::cmp::Reverse((e.created, e.seq)));
    let position = |id: &str| all.iter().position(|e| e.id == id);
    let (chosen, has_more): (Vec<&StoredEvent>, bool) = match (&starting_after, &ending_before) {
        (Some(id), _) | (_, Some(id)) if position(id).is_none() => {
            let param = if starting_after.is_some() {
                "starting_after"
            } else {
                "ending_before"
            };
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                Some(param),
                &format!("No such event: '{id}'"),
            );
        }
        (_, Some(id)) => {
            let end = position(id).unwrap_or(0);
            let before: Vec<&StoredEvent> =
                all[..end].iter().filter(|e| filter.matches(e)).collect();
            let start = before.len().saturating_sub(limit);
            (before[start..].to_vec(), start > 0)
        }
        (after, None) => {
            let start = after.as_deref().and_then(position).map_or(0, |p| p + 1);
            let mut rest = all[start..].iter().filter(|e| filter.matches(e));
            let chosen: Vec<&StoredEvent> = rest.by_ref().take(limit).collect();
            let more = rest.next().is_some();
            (chosen, more)
        }
    };
    state
        .events_served
        .fetch_add(chosen.len() as u64, Ordering::SeqCst);
    let data: Vec<&str> = chosen.iter().map(|e| e.text.as_str()).collect();
    let body = format!(
        "{{\"object\":\"list\",\"url\":\"/v1/events\",\"has_more\":{has_more},\"data\":[{}]}}",
        data.join(",")
    );
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_masked() {
        assert_eq!(
            masked("sk_test_abcdefghijkl1234"),
            "sk_test_************1234"
        );
        assert_eq!(masked("short"), "*****");
    }
}
