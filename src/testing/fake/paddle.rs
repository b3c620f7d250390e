//! [`FakePaddle`]: Paddle Billing's event stream, `GET /events`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::value::RawValue;

use super::{Faults, Server};
use crate::rfc3339::format as format_rfc3339;

/// The most events Paddle lists in one page.
const MAX_PER_PAGE: usize = 200;
/// Paddle's default page size.
const DEFAULT_PER_PAGE: usize = 50;

/// A fake Paddle Billing API holding events.
///
/// It follows Paddle's documented listing: `Authorization: Bearer <api key>` (else `403`
/// with Paddle's `{"error":{"type","code","detail","documentation_url"},"meta"}` body:
/// `authentication_missing`, `authentication_malformed` or `invalid_token`), `per_page`
/// defaults to 50 and a larger number than 200 gets 200 (a number below 1 or not a number
/// is a `400`), `order_by` is `id[ASC]` (the default here) or `id[DESC]`, and `after` lists
/// the events after an event id in that order. Each page's `meta.pagination` has
/// `per_page`, `next` (the URL of the page after it, `after` its last id), `has_more` and
/// `estimated_total`.
#[derive(Debug)]
pub struct FakePaddle {
    state: Arc<PaddleState>,
    server: Server,
}

#[derive(Debug)]
struct PaddleState {
    api_key: String,
    events: Mutex<Vec<Stored>>,
    base: Mutex<String>,
    requests: AtomicU64,
    faults: Faults,
}

#[derive(Debug, Clone)]
struct Stored {
    id: String,
    item: Box<RawValue>,
}

impl FakePaddle {
    /// Starts a fake serving callers presenting `api_key`.
    pub async fn start(api_key: impl Into<String>) -> std::io::Result<Self> {
        let state = Arc::new(PaddleState {
            api_key: api_key.into(),
            events: Mutex::new(Vec::new()),
            base: Mutex::new(String::new()),
            requests: AtomicU64::new(0),
            faults: Faults::default(),
        });
        let router = axum::Router::new()
            .route("/events", get(list))
            .with_state(Arc::clone(&state));
        let server = Server::start(router).await?;
        *state.base.lock().unwrap_or_else(|e| e.into_inner()) = server.url();
        Ok(Self { state, server })
    }

    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The injected faults and the request counters.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Adds event `event_id` (Paddle's ids grow with time: give ids that sort as the events
    /// happened) of `event_type` that occurred at `at`, with the entity `data` (JSON, kept
    /// byte for byte). Returns the event object exactly as the listing will serve it.
    ///
    /// # Panics
    ///
    /// If `data` is not JSON (a mistake in the test).
    pub fn add_event(
        &self,
        event_id: impl Into<String>,
        event_type: &str,
        at: SystemTime,
        data: &str,
    ) -> String {
        let id = event_id.into();
        let data = RawValue::from_string(data.to_owned()).expect("the data must be JSON");
        let notification = format!("ntf_{}", id.trim_start_matches("evt_"));
        let item = Item {
            event_id: &id,
            event_type,
            occurred_at: format_rfc3339(at),
            notification_id: &notification,
            data: &data,
        };
        let text = serde_json::to_string(&item).unwrap_or_default();
        let item = RawValue::from_string(text.clone()).expect("serialized JSON parses");
        let mut events = self.state.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push(Stored { id, item });
        text
    }
}

#[derive(Serialize)]
struct Item<'a> {
    event_id: &'a str,
    event_type: &'a str,
    occurred_at: String,
    notification_id: &'a str,
    data: &'a RawValue,
}

#[derive(Serialize)]
struct ListPage<'a> {
    data: Vec<&'a RawValue>,
    meta: Meta,
}

#[derive(Serialize)]
struct Meta {
    request_id: String,
    pagination: Pagination,
}

#[derive(Serialize)]
struct Pagination {
    per_page: usize,
    next: String,
    has_more: bool,
    estimated_total: usize,
}

fn request_id(state: &PaddleState) -> String {
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    format!("00000000-0000-4000-8000-{n:012}")
}

fn error(state: &PaddleState, status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "type": "request_error",
            "code": code,
            "detail": detail,
            "documentation_url": format!("https://developer.paddle.com/errors/shared/{code}"),
        },
        "meta": { "request_id": request_id(state) },
    });
    json(status, body.to_string())
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn list(
    State(state): State<Arc<PaddleState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(fault) = state.faults.take() {
        return fault;
    }
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return error(
            &state,
            StatusCode::FORBIDDEN,
            "authentication_missing",
            "Authentication header missing.",
        );
    };
    let Some(key) = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return error(
            &state,
            StatusCode::FORBIDDEN,
            "authentication_malformed",
            "Authentication header included, but incorrectly formatted.",
        );
    };
    if key != state.api_key {
        return error(
            &state,
            StatusCode::FORBIDDEN,
            "invalid_token",
            "Authentication token is invalid.",
        );
    }
    let per_page = match query.get("per_page").map(|p| p.parse::<usize>()) {
        None => DEFAULT_PER_PAGE,
        Some(Ok(n)) if n >= 1 => n.min(MAX_PER_PAGE),
        Some(_) => {
            return error(
                &state,
                StatusCode::BAD_REQUEST,
                "invalid_field",
                "per_page must be a number of at least 1.",
            )
        }
    };
    let descending = match query.get("order_by").map(String::as_str) {
        None | Some("id[ASC]") => false,
        Some("id[DESC]") => true,
        Some(_) => {
            return error(
                &state,
                StatusCode::BAD_REQUEST,
                "invalid_field",
                "order_by must be id[ASC] or id[DESC].",
            )
        }
    };
    let events = state
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut events = events;
    events.sort_by(|a, b| a.id.cmp(&b.id));
    if descending {
        events.reverse();
    }
    let after = query.get("after");
    let listed: Vec<&Stored> = events
        .iter()
        .filter(|e| match after {
            None => true,
            Some(after) if descending => e.id.as_str() < after.as_str(),
            Some(after) => e.id.as_str() > after.as_str(),
        })
        .collect();
    let total = listed.len();
    let page: Vec<&Stored> = listed.into_iter().take(per_page).collect();
    let next_after = page
        .last()
        .map(|e| e.id.clone())
        .or_else(|| after.cloned())
        .unwrap_or_default();
    let base = state.base.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let order = if descending {
        "id%5BDESC%5D"
    } else {
        "id%5BASC%5D"
    };
    let body = ListPage {
        data: page.iter().map(|e| e.item.as_ref()).collect(),
        meta: Meta {
            request_id: request_id(&state),
            pagination: Pagination {
                per_page,
                next: format!(
                    "{base}/events?after={next_after}&per_page={per_page}&order_by={order}"
                ),
                has_more: total > page.len(),
                estimated_total: total,
            },
        },
    };
    json(
        StatusCode::OK,
        serde_json::to_string(&body).unwrap_or_default(),
    )
}
