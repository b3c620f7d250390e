//! Ready [`ChangeSource`](super::ChangeSource)s for providers' APIs (feature `reconcile`),
//! over one HTTPS client (hyper with rustls).
//!
//! | source | API | horizon | what it returns |
//! |---|---|---|---|
//! | [`StripeEvents`] | `GET /v1/events` (`created` window, `starting_after` pages of up to 100) | 30 days | each event, its bytes as listed |
//! | [`GithubDeliveries`] | `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries` (`Link` cursors) | 3 days | each delivery's guid, redelivered on request (`POST …/attempts`) |
//!
//! Each source takes its API base URL (the provider's public one by default), so tests and
//! proxies can point it elsewhere; credentials are sent as sensitive headers and never
//! appear in `Debug` output, logs or errors.

mod client;
mod github;
mod stripe;

pub use github::{
    GithubDeliveries, GithubDeliveriesBuilder, GITHUB_API, GITHUB_API_VERSION, GITHUB_HORIZON,
};
pub use stripe::{StripeEvents, StripeEventsBuilder, STRIPE_API, STRIPE_HORIZON};
