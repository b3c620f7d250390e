//! [`FakeGithub`]: a repository webhook's deliveries API as a local server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Faults, Server};

/// The REST API version the fake serves.
const API_VERSION: &str = "2022-11-28";

/// A fake of GitHub's webhook deliveries API for one repository hook, as GitHub documents
/// it:
///
/// - `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`: an array of deliveries
///   (`id`, `guid`, `delivered_at`, `redelivery`, `duration`, `status`, `status_code`,
///   `event`, `action`, `installation_id`, `repository_id`), newest first, `per_page`
///   (default 30, at most 100) and a `Link` header whose `rel="next"` URL carries a
///   `cursor`;
/// - `POST /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}/attempts`:
///   `202 Accepted`; the request is recorded (drain them with
///   [`take_redeliveries`](Self::take_redeliveries) and deliver them through the push path)
///   and listed as a new delivery with `redelivery: true`, as GitHub lists it;
/// - the token (`Authorization: Bearer` or `token`) is checked: `401` with GitHub's
///   `{"message":"Bad credentials",…}` otherwise; another repository or hook is `404`;
///   an `X-GitHub-Api-Version` other than `2022-11-28` is `400`.
///
/// Every handler answers the [`Faults`] queued first.
#[derive(Debug)]
pub struct FakeGithub {
    state: Arc<GithubState>,
    server: Server,
}

/// One delivery the fake lists.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FakeDelivery {
    /// The delivery's numeric id.
    pub id: u64,
    /// The guid (`X-GitHub-Delivery`), shared by a delivery and its redeliveries.
    pub guid: String,
    /// The event (`X-GitHub-Event`).
    pub event: String,
    /// The payload's `action`, where the event has one.
    pub action: Option<String>,
    /// When GitHub delivered it (listed in whole seconds).
    pub delivered_at: SystemTime,
    /// Whether this is an attempt of an earlier delivery.
    pub redelivery: bool,
    /// What the receiver answered (`0`: no answer).
    pub status_code: u16,
}

#[derive(Debug)]
struct GithubState {
    owner: String,
    repo: String,
    hook_id: u64,
    token: String,
    repository_id: u64,
    base: OnceLock<String>,
    faults: Faults,
    deliveries: Mutex<Vec<FakeDelivery>>,
    next_id: AtomicU64,
    list_requests: AtomicU64,
    redelivery_requests: AtomicU64,
    redelivered: Mutex<Vec<FakeDelivery>>,
}

impl FakeGithub {
    /// Starts the fake on `127.0.0.1` for the hook `hook_id` of `owner/repo`, accepting
    /// `token`.
    pub async fn start(
        owner: impl Into<String>,
        repo: impl Into<String>,
        hook_id: u64,
        token: impl Into<String>,
    ) -> std::io::Result<Self> {
        let state = Arc::new(GithubState {
            owner: owner.into(),
            repo: repo.into(),
            hook_id,
            token: token.into(),
            repository_id: 1_296_269,
            base: OnceLock::new(),
            faults: Faults::default(),
            deliveries: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(12_000_000_000),
            list_requests: AtomicU64::new(0),
            redelivery_requests: AtomicU64::new(0),
            redelivered: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .route(
                "/repos/{owner}/{repo}/hooks/{hook_id}/deliveries",
                axum::routing::get(list),
            )
            .route(
                "/repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}/attempts",
                axum::routing::post(redeliver),
            )
            .fallback(not_found)
            .with_state(Arc::clone(&state));
        let server = Server::start(router).await?;
        let _ = state.base.set(server.url());
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

    /// Adds a delivery of `event` with `guid`, delivered at `delivered_at` and answered
    /// `status_code` by the receiver; returns its numeric id.
    pub fn add_delivery(
        &self,
        guid: impl Into<String>,
        event: impl Into<String>,
        delivered_at: SystemTime,
        status_code: u16,
    ) -> u64 {
        self.push(FakeDelivery {
            id: 0,
            guid: guid.into(),
            event: event.into(),
            action: None,
            delivered_at,
            redelivery: false,
            status_code,
        })
    }

    fn push(&self, mut delivery: FakeDelivery) -> u64 {
        delivery.id = self.state.next_id.fetch_add(1, Ordering::SeqCst);
        let id = delivery.id;
        self.state
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivery);
        id
    }

    /// Every delivery listed, newest first.
    pub fn deliveries(&self) -> Vec<FakeDelivery> {
        sorted(
            &self
                .state
                .deliveries
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// The deliveries a redelivery was asked for since the last call (the original ones,
    /// in the order asked), for the test to deliver through the push path.
    pub fn take_redeliveries(&self) -> Vec<FakeDelivery> {
        std::mem::take(
            &mut *self
                .state
                .redelivered
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// List requests answered by the fake itself (faults and auth failures not counted).
    pub fn list_requests(&self) -> u64 {
        self.state.list_requests.load(Ordering::SeqCst)
    }

    /// Redeliveries accepted.
    pub fn redelivery_requests(&self) -> u64 {
        self.state.redelivery_requests.load(Ordering::SeqCst)
    }
}

/// Newest first: by delivery time, then by id.
fn sorted(deliveries: &[FakeDelivery]) -> Vec<FakeDelivery> {
    let mut all = deliveries.to_vec();
    all.sort_by_key(|d| std::cmp::Reverse((d.delivered_at, d.id)));
    all
}

fn message(status: StatusCode, text: &str) -> Response {
    let body = serde_json::json!({
        "message": text,
        "documentation_url": "https://docs.github.com/rest/repos/webhooks",
        "status": status.as_u16().to_string(),
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn not_found(State(state): State<Arc<GithubState>>) -> Response {
    if let Some(fault) = state.faults.take() {
        return fault;
    }
    message(StatusCode::NOT_FOUND, "Not Found")
}

/// Checks the token, the API version and the hook a request names: the refusal, if any.
fn refusal(
    state: &GithubState,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    hook: &str,
) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .map(str::trim);
    if token != Some(state.token.as_str()) {
        return Some(message(StatusCode::UNAUTHORIZED, "Bad credentials"));
    }
    if let Some(version) = headers.get("x-github-api-version") {
        if version.as_bytes() != API_VERSION.as_bytes() {
            return Some(message(StatusCode::BAD_REQUEST, "Unsupported API version"));
        }
    }
    if owner != state.owner || repo != state.repo || hook != state.hook_id.to_string() {
        return Some(message(StatusCode::NOT_FOUND, "Not Found"));
    }
    None
}

async fn list(
    State(state): State<Arc<GithubState>>,
    Path((owner, repo, hook)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(fault) = state.faults.take() {
        return fault;
    }
    if let Some(response) = refusal(&state, &headers, &owner, &repo, &hook) {
        return response;
    }
    state.list_requests.fetch_add(1, Ordering::SeqCst);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let per_page = param("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let all = sorted(&state.deliveries.lock().unwrap_or_else(|e| e.into_inner()));
    let start = match param("cursor") {
        None => 0,
        Some(cursor) => {
            let after = cursor
                .strip_prefix("v1_")
                .and_then(|id| id.parse::<u64>().ok());
            match after.and_then(|id| all.iter().position(|d| d.id == id)) {
                Some(p) => p + 1,
                None => return message(StatusCode::BAD_REQUEST, "Invalid cursor"),
            }
        }
    };
    let page: Vec<&FakeDelivery> = all[start..].iter().take(per_page).collect();
    let items: Vec<serde_json::Value> = page
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "guid": d.guid,
                "delivered_at": rfc3339_seconds(d.delivered_at),
                "redelivery": d.redelivery,
                "duration": 0.27,
                "status": if (200..300).contains(&d.status_code) {
                    "OK".to_owned()
                } else {
                    format!("Invalid HTTP Response: {}", d.status_code)
                },
                "status_code": d.status_code,
                "event": d.event,
                "action": d.action,
                "installation_id": null,
                "repository_id": state.repository_id,
                "throttled_at": null,
            })
        })
        .collect();
    let mut response =
        (StatusCode::OK, serde_json::Value::Array(items).to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static(API_VERSION),
    );
    if let (Some(last), true) = (page.last(), start + page.len() < all.len()) {
        let base = state.base.get().map(String::as_str).unwrap_or_default();
        let link = format!(
            "<{base}/repos/{}/{}/hooks/{}/deliveries?per_page={per_page}&cursor=v1_{}>; rel=\"next\"",
            state.owner, state.repo, state.hook_id, last.id
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    response
}

async fn redeliver(
    State(state): State<Arc<GithubState>>,
    Path((owner, repo, hook, delivery_id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(fault) = state.faults.take() {
        return fault;
    }
    if let Some(response) = refusal(&state, &headers, &owner, &repo, &hook) {
        return response;
    }
    let Ok(id) = delivery_id.parse::<u64>() else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut deliveries = state.deliveries.lock().unwrap_or_else(|e| e.into_inner());
    let Some(original) = deliveries.iter().find(|d| d.id == id).cloned() else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    state.redelivery_requests.fetch_add(1, Ordering::SeqCst);
    deliveries.push(FakeDelivery {
        id: state.next_id.fetch_add(1, Ordering::SeqCst),
        redelivery: true,
        delivered_at: SystemTime::now(),
        status_code: 200,
        ..original.clone()
    });
    drop(deliveries);
    state
        .redelivered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(original);
    let mut response = (StatusCode::ACCEPTED, "{}").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `at` as GitHub writes times: RFC 3339 in UTC, whole seconds (`2019-06-03T00:57:16Z`).
fn rfc3339_seconds(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // The proleptic Gregorian date of a day count, through 400-year eras that start on
    // 1 March (so the leap day ends each year).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_written_as_github_does() {
        assert_eq!(
            rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(1_559_523_436)),
            "2019-06-03T00:57:16Z"
        );
        assert_eq!(rfc3339_seconds(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
