//! [`StripeEvents`]: Stripe's events list (`GET /v1/events`) as a [`ChangeSource`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::{self, to_unix_seconds, unix_seconds, ApiClient};
use crate::error::ConfigError;
use crate::reconcile::{Change, ChangeSource, FetchedEvent, Page, PollError, PollRequest};

/// Stripe's public API.
pub const STRIPE_API: &str = "https://api.stripe.com";

/// How long Stripe lists events: 30 days.
pub const STRIPE_HORIZON: Duration = Duration::from_secs(30 * 86_400);

/// The most events one list request returns (Stripe's `limit` maximum).
const MAX_LIMIT: usize = 100;

/// The most values Stripe accepts in `types[]`.
const MAX_TYPES: usize = 20;

/// Stripe's events, listed through `GET /v1/events`, as a reconciliation source.
///
/// Each pass lists the events created in the window (`created[gte]`, `created[lte]`), newest
/// first, a page of at most 100 at a time, continuing each page after the last id of the
/// one before (`starting_after`). Every event is returned as a [`FetchedEvent`] whose id is
/// the event's `id` (the id the push path stores Stripe deliveries under), whose type is its
/// `type`, whose time is its `created`, and whose body is the event object byte for byte as
/// the API returned it.
///
/// Stripe keeps events for 30 days ([`STRIPE_HORIZON`]); a cursor whose event aged out while
/// a walk was paused (Stripe answers `400 resource_missing`) is reported as
/// [`PollError::BeyondHorizon`], and the reconciler walks what Stripe still has.
///
/// Note that the list renders each event with the API version it was created with, while a
/// webhook endpoint pinned to another version receives it rendered with that one: the
/// bodies of a pushed and a fetched copy of one event can differ. The id is the same, and
/// the queue's dedupe keys on it.
///
/// ```no_run
/// # fn main() -> Result<(), hookdock::ConfigError> {
/// use hookdock::reconcile::sources::StripeEvents;
/// let stripe = StripeEvents::builder(std::env::var("STRIPE_API_KEY").unwrap_or_default())
///     .types(["invoice.paid", "customer.subscription.updated"])
///     .build()?;
/// # let _ = stripe; Ok(()) }
/// ```
pub struct StripeEvents {
    client: ApiClient,
    name: String,
    types: Vec<String>,
    undelivered_only: bool,
}

impl fmt::Debug for StripeEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeEvents")
            .field("name", &self.name)
            .field("client", &self.client)
            .field("types", &self.types)
            .field("undelivered_only", &self.undelivered_only)
            .finish()
    }
}

/// Builds a [`StripeEvents`]; see [`StripeEvents::builder`].
pub struct StripeEventsBuilder {
    api_key: String,
    base_url: String,
    name: String,
    types: Vec<String>,
    undelivered_only: bool,
}

impl fmt::Debug for StripeEventsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The API key is a secret: never shown.
        f.debug_struct("StripeEventsBuilder")
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .field("types", &self.types)
            .field("undelivered_only", &self.undelivered_only)
            .finish_non_exhaustive()
    }
}

impl StripeEvents {
    /// A builder for a source reading with `api_key` (a secret or restricted key that may
    /// read events), sent as `Authorization: Bearer`.
    pub fn builder(api_key: impl Into<String>) -> StripeEventsBuilder {
        StripeEventsBuilder {
            api_key: api_key.into(),
            base_url: STRIPE_API.to_owned(),
            name: "stripe".to_owned(),
            types: Vec::new(),
            undelivered_only: false,
        }
    }
}

impl StripeEventsBuilder {
    /// The API's base URL (default [`STRIPE_API`]); for tests and proxies.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The source name (default `"stripe"`): it must be the push route's source name, so the
    /// ids of fetched and pushed events meet in the queue's dedupe.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Lists only events of these types (`types[]`, at most 20), the ones the webhook
    /// endpoint subscribes to; by default every type.
    pub fn types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Lists only events Stripe has not delivered to every endpoint (`delivery_success=false`:
    /// those still being retried or given up on); by default every event.
    ///
    /// This saves pages when almost every push succeeds, but it trusts Stripe's view of the
    /// delivery: an event Stripe got a `2xx` for and the receiver still lost (a proxy that
    /// answered for it, a store that acknowledged and then lost the write) is not listed.
    /// It is also about every endpoint of the account: an event another endpoint failed is
    /// listed although this one got it (the dedupe absorbs it).
    pub fn undelivered_only(mut self, undelivered_only: bool) -> Self {
        self.undelivered_only = undelivered_only;
        self
    }

    /// The source.
    pub fn build(self) -> Result<StripeEvents, ConfigError> {
        let client = client::bearer(&self.base_url, &self.api_key, "Stripe API key", &self.name)?;
        if self.types.len() > MAX_TYPES {
            return Err(ConfigError::InvalidValue {
                what: "Stripe event types",
                reason: "Stripe accepts at most 20 types in one list request",
            });
        }
        if self.types.iter().any(String::is_empty) {
            return Err(ConfigError::InvalidValue {
                what: "Stripe event types",
                reason: "a type is empty",
            });
        }
        Ok(StripeEvents {
            client,
            name: self.name,
            types: self.types,
            undelivered_only: self.undelivered_only,
        })
    }
}

/// One page of Stripe's list object; each item kept as the exact bytes it was sent as.
#[derive(Deserialize)]
struct ListPage<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    has_more: bool,
}

/// The fields of an event a [`FetchedEvent`] needs.
#[derive(Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    created: Option<i64>,
}

/// Stripe's error body: `{"error": {"type", "code", "param", "message"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    param: Option<String>,
}

/// Whether a failed answer says the `starting_after` event no longer exists.
fn cursor_aged_out(status: StatusCode, body: &[u8]) -> bool {
    if status != StatusCode::BAD_REQUEST && status != StatusCode::NOT_FOUND {
        return false;
    }
    serde_json::from_slice::<ErrorBody>(body).is_ok_and(|b| {
        b.error.code.as_deref() == Some("resource_missing")
            && b.error
                .param
                .as_deref()
                .is_none_or(|p| p == "starting_after")
    })
}

#[async_trait]
impl ChangeSource for StripeEvents {
    fn name(&self) -> &str {
        &self.name
    }

    fn horizon(&self) -> Duration {
        STRIPE_HORIZON
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        let mut url = self.client.url("v1/events")?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("created[gte]", &to_unix_seconds(request.since).to_string())
                .append_pair("created[lte]", &to_unix_seconds(request.until).to_string())
                .append_pair("limit", &request.limit.clamp(1, MAX_LIMIT).to_string());
            if let Some(cursor) = request.cursor {
                query.append_pair("starting_after", cursor);
            }
            for kind in &self.types {
                query.append_pair("types[]", kind);
            }
            if self.undelivered_only {
                query.append_pair("delivery_success", "false");
            }
        }
        let answer = if request.cursor.is_some() {
            let aged_out = |status, body: &[u8]| {
                cursor_aged_out(status, body).then_some(PollError::BeyondHorizon)
            };
            self.client.get_refined(url, aged_out).await?
        } else {
            self.client.get(url).await?
        };
        let body = answer.body;
        let list: ListPage<'_> = serde_json::from_slice(&body).map_err(|e| {
            PollError::transient(format!("Stripe's events list could not be read: {e}"))
        })?;
        let mut changes = Vec::with_capacity(list.data.len());
        let mut last_id = None;
        for raw in &list.data {
            let head: EventHead = serde_json::from_str(raw.get()).map_err(|e| {
                PollError::transient(format!("a Stripe event could not be read: {e}"))
            })?;
            // The raw value borrows from `body`: its bytes are a slice of the answer, shared
            // rather than copied.
            let mut event =
                FetchedEvent::new(head.id.as_str(), body.slice_ref(raw.get().as_bytes()));
            if let Some(kind) = head.kind {
                event = event.with_type(kind);
            }
            if let Some(created) = head.created {
                event = event.with_occurred_at(unix_seconds(created));
            }
            changes.push(Change::Event(event));
            last_id = Some(head.id);
        }
        Ok(match last_id {
            Some(last) if list.has_more => Page::more(changes, last),
            _ => Page::last(changes, None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_cursor_is_told_apart_from_other_errors() {
        let missing = br#"{"error":{"code":"resource_missing","param":"starting_after","message":"No such event","type":"invalid_request_error"}}"#;
        assert!(cursor_aged_out(StatusCode::BAD_REQUEST, missing));
        let other = br#"{"error":{"code":"parameter_invalid_integer","param":"limit","type":"invalid_request_error"}}"#;
        assert!(!cursor_aged_out(StatusCode::BAD_REQUEST, other));
        assert!(!cursor_aged_out(StatusCode::UNAUTHORIZED, missing));
        assert!(!cursor_aged_out(StatusCode::BAD_REQUEST, b"not json"));
    }

    #[test]
    fn the_builder_checks_and_hides_the_key() {
        assert!(matches!(
            StripeEvents::builder("").build(),
            Err(ConfigError::Missing(_))
        ));
        let too_many = StripeEvents::builder("sk_test_x").types((0..21).map(|i| format!("t.{i}")));
        assert!(too_many.build().is_err());
        let builder = StripeEvents::builder("sk_test_secretvalue");
        assert!(!format!("{builder:?}").contains("secretvalue"));
        let source = builder.build().expect("builds");
        assert!(!format!("{source:?}").contains("secretvalue"));
        assert_eq!(source.name(), "stripe");
    }
}
