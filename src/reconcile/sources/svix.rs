//! [`SvixMessages`]: the messages a Standard Webhooks sender sent, listed through Svix's API.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::{self, ApiClient};
use crate::error::ConfigError;
use crate::reconcile::{Change, ChangeSource, FetchedEvent, Page, PollError, PollRequest};
use crate::rfc3339::{format as format_rfc3339, parse as parse_rfc3339};

/// Svix's API.
pub const SVIX_API: &str = "https://api.svix.com";
/// How far back [`SvixMessages`] looks by default: 90 days, the window Svix's message listing
/// covers by default. What a sender keeps depends on its retention settings; set
/// [`SvixMessagesBuilder::horizon`] to match yours.
pub const SVIX_HORIZON: Duration = Duration::from_secs(90 * 24 * 3600);
/// The most messages Svix returns in one page.
const MAX_LIMIT: usize = 250;

/// The messages of one Svix application:
/// `GET /api/v1/app/{app_id}/msg?limit=&before=&iterator=&with_content=true`, newest first.
///
/// The [Standard Webhooks](https://www.standardwebhooks.com/) specification covers how a
/// webhook is signed and delivered, and leaves the sender's API to the sender; this source
/// follows Svix's. A sender offering the same listing elsewhere is read by pointing
/// [`base_url`](SvixMessagesBuilder::base_url) at it.
///
/// Each message becomes a [`FetchedEvent`] with the message's `id` as event id (the
/// `webhook-id` header the push path stores Standard Webhooks deliveries under), `eventType`
/// as event type, `timestamp` as the time it happened, and the `payload` object as body,
/// byte for byte as the API returned it. The walk asks for messages `before` the window's
/// end (Svix documents that `before` and `after` cannot be combined) and stops at the first
/// message older than its start; pages follow Svix's `iterator` until
/// a page says `done`. A message listed without its payload (expunged) is skipped with a
/// warning: there is no body to store.
///
/// ```no_run
/// # fn main() -> Result<(), hookdock::ConfigError> {
/// use hookdock::reconcile::sources::SvixMessages;
///
/// let source = SvixMessages::builder("sk_test_...", "app_2Z3...").build()?;
/// # let _ = source; Ok(()) }
/// ```
pub struct SvixMessages {
    client: ApiClient,
    app_id: String,
    name: String,
    horizon: Duration,
}

impl fmt::Debug for SvixMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvixMessages")
            .field("client", &self.client)
            .field("app_id", &self.app_id)
            .field("name", &self.name)
            .field("horizon", &self.horizon)
            .finish()
    }
}

/// Builds a [`SvixMessages`]; see [`SvixMessages::builder`].
pub struct SvixMessagesBuilder {
    token: String,
    app_id: String,
    base_url: String,
    name: String,
    horizon: Duration,
}

impl fmt::Debug for SvixMessagesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never shown.
        f.debug_struct("SvixMessagesBuilder")
            .field("app_id", &self.app_id)
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .field("horizon", &self.horizon)
            .finish_non_exhaustive()
    }
}

impl SvixMessages {
    /// A source reading application `app_id` (its id or uid) with the API `token`, sent as
    /// `Authorization: Bearer`.
    pub fn builder(token: impl Into<String>, app_id: impl Into<String>) -> SvixMessagesBuilder {
        SvixMessagesBuilder {
            token: token.into(),
            app_id: app_id.into(),
            base_url: SVIX_API.to_owned(),
            name: "svix".to_owned(),
            horizon: SVIX_HORIZON,
        }
    }
}

impl SvixMessagesBuilder {
    /// The API's base URL (default [`SVIX_API`]; a region's or a self-hosted server's, or a
    /// test's fake).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The source name, the push route's (default `"svix"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How far back the sender keeps messages (default [`SVIX_HORIZON`], 90 days).
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon;
        self
    }

    /// The source, or what is wrong with the settings.
    pub fn build(self) -> Result<SvixMessages, ConfigError> {
        if self.app_id.is_empty() {
            return Err(ConfigError::Missing("Svix application id"));
        }
        client::check_horizon(self.horizon)?;
        let client = client::bearer(&self.base_url, &self.token, "Svix API token", &self.name)?
            .with_header(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/json"),
            );
        Ok(SvixMessages {
            client,
            app_id: self.app_id,
            name: self.name,
            horizon: self.horizon,
        })
    }
}

#[derive(Deserialize)]
struct ListResponse<'a> {
    #[serde(borrow)]
    data: Vec<Message<'a>>,
    #[serde(default)]
    iterator: Option<String>,
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    id: String,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[async_trait]
impl ChangeSource for SvixMessages {
    fn name(&self) -> &str {
        &self.name
    }

    fn horizon(&self) -> Duration {
        self.horizon
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        let mut url = self.client.url("api/v1/app/")?;
        url.path_segments_mut()
            .map_err(|()| PollError::Rejected {
                status: None,
                message: "bad API base URL".into(),
            })?
            .pop_if_empty()
            .push(&self.app_id)
            .push("msg");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &request.limit.clamp(1, MAX_LIMIT).to_string());
            query.append_pair("with_content", "true");
            // `before` is exclusive: a millisecond past the window's (inclusive) end.
            let before = request.until + Duration::from_millis(1);
            query.append_pair("before", &format_rfc3339(before));
            if let Some(cursor) = request.cursor {
                query.append_pair("iterator", cursor);
            }
        }
        let answer = self.client.get(url).await?;
        let list: ListResponse<'_> = serde_json::from_slice(&answer.body).map_err(|e| {
            PollError::transient(format!(
                "Svix answered a message list that does not parse: {e}"
            ))
        })?;
        let mut changes = Vec::with_capacity(list.data.len());
        let mut past_start = false;
        for message in list.data {
            let at = message.timestamp.as_deref().and_then(parse_rfc3339);
            if at.is_some_and(|at| at > request.until) {
                continue;
            }
            if at.is_some_and(|at| at < request.since) {
                // Newest first: everything after this is older still.
                past_start = true;
                break;
            }
            let Some(payload) = message.payload else {
                tracing::warn!(source = %self.name, id = %message.id, "a Svix message was listed without its payload; skipped");
                continue;
            };
            changes.push(Change::Event(fetched(
                message.id,
                message.event_type,
                at,
                payload,
            )));
        }
        if past_start || list.done {
            return Ok(Page::last(changes, None));
        }
        match list.iterator {
            Some(iterator) if Some(iterator.as_str()) != request.cursor => {
                Ok(Page::more(changes, iterator))
            }
            _ => {
                tracing::warn!(source = %self.name, "Svix listed more messages without a new iterator; ending the walk");
                Ok(Page::last(changes, None))
            }
        }
    }
}

fn fetched(
    id: String,
    event_type: Option<String>,
    at: Option<SystemTime>,
    payload: &RawValue,
) -> FetchedEvent {
    let mut event = FetchedEvent::new(id, Bytes::copy_from_slice(payload.get().as_bytes()));
    if let Some(event_type) = event_type {
        event = event.with_type(event_type);
    }
    if let Some(at) = at {
        event = event.with_occurred_at(at);
    }
    event
}
