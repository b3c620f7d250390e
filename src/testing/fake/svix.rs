//! [`FakeSvix`]: Svix's message listing, `GET /api/v1/app/{app_id}/msg`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Faults, Server};
use crate::rfc3339::{format as format_rfc3339, parse as parse_rfc3339};

/// The most messages Svix lists in one page.
const MAX_LIMIT: usize = 250;
/// Svix's default page size.
const DEFAULT_LIMIT: usize = 50;

/// A fake Svix API holding one application's messages.
///
/// It follows Svix's documented listing: `Authorization: Bearer <token>` (else `401` with
/// Svix's `{"code","detail"}` body), an unknown application is a `404`, `limit` is 1 to
/// 250 (default 50; else `422` with a validation error body), `before` and `after` are
/// RFC 3339 times (not both at once), messages come newest first, and `iterator` (the last
/// message id of the previous page) continues a listing until a page says `done`.
/// `with_content=false` leaves payloads out.
#[derive(Debug)]
pub struct FakeSvix {
    state: Arc<SvixState>,
    server: Server,
}

#[derive(Debug)]
struct SvixState {
    token: String,
    app_id: String,
    messages: Mutex<Vec<Stored>>,
    faults: Faults,
}

#[derive(Debug, Clone)]
struct Stored {
    id: String,
    event_type: String,
    at: SystemTime,
    payload: Box<RawValue>,
}

impl FakeSvix {
    /// Starts a fake serving application `app_id` to callers presenting `token`.
    pub async fn start(
        token: impl Into<String>,
        app_id: impl Into<String>,
    ) -> std::io::Result<Self> {
        let state = Arc::new(SvixState {
            token: token.into(),
            app_id: app_id.into(),
            messages: Mutex::new(Vec::new()),
            faults: Faults::default(),
        });
        let router = axum::Router::new()
            .route("/api/v1/app/{app_id}/msg", get(list))
            .with_state(Arc::clone(&state));
        let server = Server::start(router).await?;
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

    /// Adds a message `id` of `event_type` sent at `at`; `payload` (JSON) is listed byte for
    /// byte as given.
    ///
    /// # Panics
    ///
    /// If `payload` is not JSON (a mistake in the test).
    pub fn add_message(
        &self,
        id: impl Into<String>,
        event_type: impl Into<String>,
        at: SystemTime,
        payload: &str,
    ) {
        let payload = RawValue::from_string(payload.to_owned()).expect("the payload must be JSON");
        let mut messages = self
            .state
            .messages
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        messages.push(Stored {
            id: id.into(),
            event_type: event_type.into(),
            at,
            payload,
        });
    }
}

fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    json(
        status,
        serde_json::json!({ "code": code, "detail": detail }).to_string(),
    )
}

fn invalid(field: &str, msg: &str) -> Response {
    let body = serde_json::json!({
        "detail": [{ "loc": ["query", field], "msg": msg, "type": "value_error" }]
    });
    json(StatusCode::UNPROCESSABLE_ENTITY, body.to_string())
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
    State(state): State<Arc<SvixState>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(fault) = state.faults.take() {
        return fault;
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(state.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "Invalid token",
        );
    }
    if app_id != state.app_id {
        return error(StatusCode::NOT_FOUND, "not_found", "Entity not found");
    }
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return invalid("limit", "limit must be between 1 and 250"),
    };
    let time = |name: &str| {
        query
            .get(name)
            .map(|t| parse_rfc3339(t).ok_or(name.to_owned()))
            .transpose()
    };
    let (before, after) = match (time("before"), time("after")) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(name), _) | (_, Err(name)) => return invalid(&name, "invalid datetime"),
    };
    if before.is_some() && after.is_some() {
        return invalid("before", "before and after cannot be used simultaneously");
    }
    let with_content = query.get("with_content").is_none_or(|v| v != "false");
    let mut messages: Vec<Stored> = state
        .messages
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|m| before.is_none_or(|b| m.at < b) && after.is_none_or(|a| m.at > a))
        .cloned()
        .collect();
    // Newest first; ids break ties the same way.
    messages.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    if let Some(iterator) = query.get("iterator") {
        let Some(position) = messages.iter().position(|m| &m.id == iterator) else {
            return invalid("iterator", "invalid iterator");
        };
        messages.drain(..=position);
    }
    let done = messages.len() <= limit;
    messages.truncate(limit);
    let page = ListPage {
        data: messages
            .iter()
            .map(|m| Item {
                id: &m.id,
                event_type: &m.event_type,
                event_id: None,
                channels: None,
                timestamp: format_rfc3339(m.at),
                tags: Vec::new(),
                payload: with_content.then_some(m.payload.as_ref()),
            })
            .collect(),
        iterator: messages.last().map(|m| m.id.clone()),
        prev_iterator: messages.first().map(|m| format!("-{}", m.id)),
        done,
    };
    let body = serde_json::to_string(&page).unwrap_or_default();
    json(StatusCode::OK, body)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListPage<'a> {
    data: Vec<Item<'a>>,
    iterator: Option<String>,
    prev_iterator: Option<String>,
    done: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    id: &'a str,
    event_type: &'a str,
    event_id: Option<&'a str>,
    channels: Option<Vec<String>>,
    timestamp: String,
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
}
