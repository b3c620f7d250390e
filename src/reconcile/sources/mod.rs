//! Ready [`ChangeSource`](super::ChangeSource)s for providers' APIs (feature `reconcile`),
//! over one HTTPS client (hyper with rustls).
//!
//! | source | API | horizon | what it returns |
//! |---|---|---|---|
//! | [`StripeEvents`] | `GET /v1/events` (`created` window, `starting_after` pages of up to 100) | 30 days | each event, its bytes as listed |
//! | [`GithubDeliveries`] | `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries` (`Link` cursors) | 3 days | each delivery's guid, redelivered on request (`POST …/attempts`) |
//! | [`SvixMessages`] | Svix `GET /api/v1/app/{app_id}/msg` (Standard Webhooks senders on Svix) | 90 days (the sender's retention) | each message's `payload`, under the message id (`webhook-id`) |
//! | [`PaddleEvents`] | Paddle Billing `GET /events` | 90 days | each event object, under its `event_id` |
//! | [`JsonSource`] | any paginated JSON API, from configuration | configured | each item (or a part of it), under the id a JSON pointer names |
//!
//! Each source takes its API base URL (the provider's public one by default), so tests and
//! proxies can point it elsewhere; credentials are sent as sensitive headers and never
//! appear in `Debug` output, logs or errors.

mod client;
mod generic;
mod github;
mod paddle;
mod stripe;
mod svix;

pub use generic::{AuthHeader, CursorFrom, JsonSource, JsonSourceBuilder, JsonSourceConfig};
pub use github::{
    GithubDeliveries, GithubDeliveriesBuilder, GITHUB_API, GITHUB_API_VERSION, GITHUB_HORIZON,
};
pub use paddle::{PaddleEvents, PaddleEventsBuilder, PADDLE_API, PADDLE_HORIZON};
pub use stripe::{StripeEvents, StripeEventsBuilder, STRIPE_API, STRIPE_HORIZON};
pub use svix::{SvixMessages, SvixMessagesBuilder, SVIX_API, SVIX_HORIZON};
