//! [`PaddleEvents`]: Paddle Billing's event stream.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::{self, ApiClient};
use crate::error::ConfigError;
use crate::reconcile::{Change, ChangeSource, FetchedEvent, Page, PollError, PollRequest};
use crate::rfc3339::parse as parse_rfc3339;

/// Paddle Billing's API (live); the sandbox is `https://sandbox-api.paddle.com`.
pub const PADDLE_API: &str = "https://api.paddle.com";
/// How far back Paddle keeps events: 90 days.
pub const PADDLE_HORIZON: Duration = Duration::from_secs(90 * 24 * 3600);
/// The most events Paddle returns in one page.
const MAX_PER_PAGE: usize = 200;
/// Marks a cursor of a walk newest first (the first window, with nothing carried).
const DESC: &str = "desc:";

/// Paddle Billing's event stream: `GET /events?after=&per_page=&order_by=id[ASC]`.
///
/// Each event becomes a [`FetchedEvent`] with its `event_id` as event id (what the push
/// path stores a Paddle notification under: the body's `event_id`), `event_type` as event
/// type, `occurred_at` as the time it happened, and the whole event object of the list,
/// byte for byte as the API returned it, as body.
///
/// Paddle lists events by id and pages forward from an id (`after`), with no time filter.
/// So the source walks:
///
/// - **the first window** (nothing carried) newest first (`order_by=id[DESC]`), skipping
///   events after the window's end, until the first event older than its start;
/// - **every later window** oldest first (`order_by=id[ASC]`) from the last event id the
///   previous window saw, skipping events older than the window's start (the overlap) and
///   stopping at the first one after its end.
///
/// The cursor of a window's last page is the newest event id seen within it, and the
/// reconciler hands it to the next window's first poll (see the
/// [`ChangeSource`] contract). Events listed late with an id older than that cursor are not
/// seen again; Paddle's ids grow with time, so that takes a clock skew on Paddle's side.
///
/// ```no_run
/// # fn main() -> Result<(), hookdock::ConfigError> {
/// use hookdock::reconcile::sources::PaddleEvents;
///
/// let source = PaddleEvents::builder("pdl_live_apikey_...").build()?;
/// # let _ = source; Ok(()) }
/// ```
pub struct PaddleEvents {
    client: ApiClient,
    name: String,
    horizon: Duration,
}

impl fmt::Debug for PaddleEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaddleEvents")
            .field("client", &self.client)
            .field("name", &self.name)
            .field("horizon", &self.horizon)
            .finish()
    }
}

/// Builds a [`PaddleEvents`]; see [`PaddleEvents::builder`].
pub struct PaddleEventsBuilder {
    api_key: String,
    base_url: String,
    name: String,
    horizon: Duration,
}

impl fmt::Debug for PaddleEventsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The API key is a credential: never shown.
        f.debug_struct("PaddleEventsBuilder")
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .field("horizon", &self.horizon)
            .finish_non_exhaustive()
    }
}

impl PaddleEvents {
    /// A source reading Paddle's events with `api_key`, sent as `Authorization: Bearer`
    /// (it needs the `event.read` permission).
    pub fn builder(api_key: impl Into<String>) -> PaddleEventsBuilder {
        PaddleEventsBuilder {
            api_key: api_key.into(),
            base_url: PADDLE_API.to_owned(),
            name: "paddle".to_owned(),
            horizon: PADDLE_HORIZON,
        }
    }
}

impl PaddleEventsBuilder {
    /// The API's base URL (default [`PADDLE_API`]; the sandbox's, or a test's fake).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The source name, the push route's (default `"paddle"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How far back Paddle keeps events (default [`PADDLE_HORIZON`], 90 days).
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon;
        self
    }

    /// The source, or what is wrong with the settings.
    pub fn build(self) -> Result<PaddleEvents, ConfigError> {
        client::check_horizon(self.horizon)?;
        let client = client::bearer(&self.base_url, &self.api_key, "Paddle API key", &self.name)?
            .with_header(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/json"),
            );
        Ok(PaddleEvents {
            client,
            name: self.name,
            horizon: self.horizon,
        })
    }
}

#[derive(Deserialize)]
struct ListResponse<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    meta: Meta,
}

#[derive(Deserialize)]
struct Meta {
    pagination: Pagination,
}

#[derive(Deserialize)]
struct Pagination {
    has_more: bool,
}

#[derive(Deserialize)]
struct Event {
    event_id: String,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// Where a walk is.
enum Walk {
    /// Newest first, after `after` (none: from the newest), having seen `top` as the newest
    /// id within the window.
    Desc {
        after: Option<String>,
        top: Option<String>,
    },
    /// Oldest first, after `after`.
    Asc { after: String },
}

impl Walk {
    fn parse(cursor: Option<&str>) -> Self {
        match cursor {
            None => Walk::Desc {
                after: None,
                top: None,
            },
            Some(text) => match text.strip_prefix(DESC) {
                Some(rest) => {
                    let (after, top) = match rest.split_once(':') {
                        Some((after, top)) => (after, Some(top.to_owned())),
                        None => (rest, None),
                    };
                    Walk::Desc {
                        after: Some(after.to_owned()),
                        top,
                    }
                }
                None => Walk::Asc {
                    after: text.to_owned(),
                },
            },
        }
    }
}

fn desc_cursor(after: &str, top: Option<&str>) -> String {
    match top {
        Some(top) => format!("{DESC}{after}:{top}"),
        None => format!("{DESC}{after}"),
    }
}

#[async_trait]
impl ChangeSource for PaddleEvents {
    fn name(&self) -> &str {
        &self.name
    }

    fn horizon(&self) -> Duration {
        self.horizon
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        let walk = Walk::parse(request.cursor);
        let mut url = self.client.url("events")?;
        {
            let mut query = url.query_pairs_mut();
            let (order, after) = match &walk {
                Walk::Desc { after, .. } => ("id[DESC]", after.as_deref()),
                Walk::Asc { after } => ("id[ASC]", Some(after.as_str())),
            };
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            query.append_pair(
                "per_page",
                &request.limit.clamp(1, MAX_PER_PAGE).to_string(),
            );
            query.append_pair("order_by", order);
        }
        let answer = self.client.get(url).await?;
        let list: ListResponse<'_> = serde_json::from_slice(&answer.body).map_err(|e| {
            PollError::transient(format!(
                "Paddle answered an event list that does not parse: {e}"
            ))
        })?;
        let mut changes = Vec::with_capacity(list.data.len());
        match walk {
            Walk::Desc { after, mut top } => {
                let mut last = after;
                for raw in list.data {
                    let event = parse_event(raw)?;
                    let at = event.occurred_at.as_deref().and_then(parse_rfc3339);
                    last = Some(event.event_id.clone());
                    if at.is_some_and(|at| at > request.until) {
                        continue;
                    }
                    if at.is_some_and(|at| at < request.since) {
                        return Ok(Page::last(changes, top));
                    }
                    if top.is_none() {
                        top = Some(event.event_id.clone());
                    }
                    changes.push(Change::Event(fetched(event, at, raw)));
                }
                match last {
                    Some(last) if list.meta.pagination.has_more => {
                        Ok(Page::more(changes, desc_cursor(&last, top.as_deref())))
                    }
                    _ => Ok(Page::last(changes, top)),
                }
            }
            Walk::Asc { after } => {
                let mut last = after;
                for raw in list.data {
                    let event = parse_event(raw)?;
                    let at = event.occurred_at.as_deref().and_then(parse_rfc3339);
                    if at.is_some_and(|at| at > request.until) {
                        // Oldest first: the rest belongs to the next window, which starts
                        // after the last event seen in this one.
                        return Ok(Page::last(changes, Some(last)));
                    }
                    last = event.event_id.clone();
                    if at.is_some_and(|at| at < request.since) {
                        continue;
                    }
                    changes.push(Change::Event(fetched(event, at, raw)));
                }
                if list.meta.pagination.has_more {
                    Ok(Page::more(changes, last))
                } else {
                    Ok(Page::last(changes, Some(last)))
                }
            }
        }
    }
}

fn parse_event(raw: &RawValue) -> Result<Event, PollError> {
    serde_json::from_str(raw.get()).map_err(|e| PollError::Rejected {
        status: None,
        message: format!("Paddle listed an event without a usable event_id: {e}"),
    })
}

fn fetched(event: Event, at: Option<std::time::SystemTime>, raw: &RawValue) -> FetchedEvent {
    let mut fetched =
        FetchedEvent::new(event.event_id, Bytes::copy_from_slice(raw.get().as_bytes()));
    if let Some(event_type) = event.event_type {
        fetched = fetched.with_type(event_type);
    }
    if let Some(at) = at {
        fetched = fetched.with_occurred_at(at);
    }
    fetched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_name_the_walk() {
        assert!(matches!(
            Walk::parse(None),
            Walk::Desc {
                after: None,
                top: None
            }
        ));
        assert!(matches!(Walk::parse(Some("evt_01")), Walk::Asc { after } if after == "evt_01"));
        let c = desc_cursor("evt_05", Some("evt_09"));
        assert!(
            matches!(Walk::parse(Some(&c)), Walk::Desc { after: Some(a), top: Some(t) } if a == "evt_05" && t == "evt_09")
        );
        let c = desc_cursor("evt_05", None);
        assert!(
            matches!(Walk::parse(Some(&c)), Walk::Desc { after: Some(a), top: None } if a == "evt_05")
        );
    }
}
