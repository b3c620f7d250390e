//! [`GithubDeliveries`]: a repository webhook's deliveries
//! (`GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`) as a [`ChangeSource`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use super::client::{self, next_link, ApiClient};
use crate::error::ConfigError;
use crate::reconcile::{Change, ChangeSource, Page, PollError, PollRequest};
use crate::scheme::timestamp::parse_rfc3339;

/// GitHub's public REST API.
pub const GITHUB_API: &str = "https://api.github.com";

/// How long GitHub lists a hook's deliveries: 3 days.
pub const GITHUB_HORIZON: Duration = Duration::from_secs(3 * 86_400);

/// The REST API version the source is written against (`X-GitHub-Api-Version`).
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// The most deliveries one list request returns (GitHub's `per_page` maximum).
const MAX_PER_PAGE: usize = 100;

/// A repository webhook's deliveries, as a reconciliation source that has GitHub send the
/// missed ones again.
///
/// GitHub's API lists a hook's deliveries (newest first, `per_page` at most 100, the next
/// page behind a `cursor` in the `Link` header) but not their payloads, so this source does
/// not fetch events: each delivery whose `delivered_at` lies in the window is returned as a
/// [`Change::Redeliver`] with the delivery's `guid` (the `X-GitHub-Delivery` header, the id
/// the push path stores it under) and its numeric id. The reconciler looks each guid up in
/// its own store, the only record of what actually arrived, and for the ones it does not
/// know calls [`redeliver`](ChangeSource::redeliver), which asks GitHub to send the
/// delivery again (`POST …/deliveries/{id}/attempts`) through the push path.
///
/// Every delivery in the window is returned, failed or not: a delivery GitHub saw answered
/// `2xx` may still have been lost before it was stored. Entries with `redelivery: true` are
/// attempts of a delivery listed on its own and are skipped. The walk stops at the first
/// page that reaches deliveries older than the window, or at the last page.
///
/// A cursor GitHub refuses (`400`, `422`) when a walk resumes is reported as
/// [`PollError::BeyondHorizon`], so the reconciler walks the window again from its newest
/// delivery rather than retrying the cursor forever.
///
/// GitHub keeps deliveries for 3 days ([`GITHUB_HORIZON`]). The token needs read and write
/// access to the repository's hooks (a fine-grained token with "Webhooks: write", or a
/// classic token with `admin:repo_hook`). Rate limits (`403`/`429` with
/// `x-ratelimit-remaining: 0`, or `retry-after`) are waited out as GitHub says.
///
/// ```no_run
/// # fn main() -> Result<(), hookdock::ConfigError> {
/// use hookdock::reconcile::sources::GithubDeliveries;
/// let token = std::env::var("GITHUB_TOKEN").unwrap_or_default();
/// let github = GithubDeliveries::builder("octo-org", "octo-repo", 12345678, token).build()?;
/// # let _ = github; Ok(()) }
/// ```
pub struct GithubDeliveries {
    client: ApiClient,
    name: String,
    /// `repos/{owner}/{repo}/hooks/{hook_id}/deliveries`, escaped.
    path: String,
}

impl fmt::Debug for GithubDeliveries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubDeliveries")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("client", &self.client)
            .finish()
    }
}

/// Builds a [`GithubDeliveries`]; see [`GithubDeliveries::builder`].
pub struct GithubDeliveriesBuilder {
    owner: String,
    repo: String,
    hook_id: u64,
    token: String,
    base_url: String,
    name: String,
}

impl fmt::Debug for GithubDeliveriesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: never shown.
        f.debug_struct("GithubDeliveriesBuilder")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .field("hook_id", &self.hook_id)
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl GithubDeliveries {
    /// A builder for the webhook `hook_id` of the repository `owner/repo`, read with `token`
    /// (sent as `Authorization: Bearer`).
    pub fn builder(
        owner: impl Into<String>,
        repo: impl Into<String>,
        hook_id: u64,
        token: impl Into<String>,
    ) -> GithubDeliveriesBuilder {
        GithubDeliveriesBuilder {
            owner: owner.into(),
            repo: repo.into(),
            hook_id,
            token: token.into(),
            base_url: GITHUB_API.to_owned(),
            name: "github".to_owned(),
        }
    }

    fn list_url(&self, per_page: usize, cursor: Option<&str>) -> Result<url::Url, PollError> {
        let mut url = self.client.url(&self.path)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("per_page", &per_page.to_string());
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        Ok(url)
    }
}

impl GithubDeliveriesBuilder {
    /// The API's base URL (default [`GITHUB_API`]; GitHub Enterprise Server:
    /// `https://HOST/api/v3`); for tests and proxies too.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The source name (default `"github"`): it must be the push route's source name, so the
    /// guids the source reports are looked up where the push path stored them.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The source.
    pub fn build(self) -> Result<GithubDeliveries, ConfigError> {
        let client = client::bearer(&self.base_url, &self.token, "GitHub token", &self.name)?;
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !segment_ok(&self.owner) || !segment_ok(&self.repo) {
            return Err(ConfigError::InvalidValue {
                what: "GitHub repository",
                reason: "owner and name must be GitHub names (letters, digits, '-', '_', '.')",
            });
        }
        let client = client
            .with_header(
                http::header::ACCEPT,
                HeaderValue::from_static("application/vnd.github+json"),
            )
            .with_header(
                http::HeaderName::from_static("x-github-api-version"),
                HeaderValue::from_static(GITHUB_API_VERSION),
            );
        Ok(GithubDeliveries {
            client,
            name: self.name,
            path: format!(
                "repos/{}/{}/hooks/{}/deliveries",
                self.owner, self.repo, self.hook_id
            ),
        })
    }
}

/// The fields of a listed delivery the source reads.
#[derive(Deserialize)]
struct Delivery {
    id: u64,
    guid: String,
    delivered_at: String,
    #[serde(default)]
    redelivery: bool,
}

/// A delivery's `delivered_at` as a time.
fn delivered_at(text: &str) -> Option<SystemTime> {
    let millis = parse_rfc3339(text.as_bytes())?;
    Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).ok()?))
}

/// `at` without its fraction of a second.
fn whole_seconds(at: SystemTime) -> SystemTime {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The `cursor` parameter of a `Link` header's next URL.
fn next_cursor(link: &str) -> Option<String> {
    let url = url::Url::parse(link).ok()?;
    let cursor = url
        .query_pairs()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.into_owned());
    cursor.filter(|c| !c.is_empty())
}

#[async_trait]
impl ChangeSource for GithubDeliveries {
    fn name(&self) -> &str {
        &self.name
    }

    fn horizon(&self) -> Duration {
        GITHUB_HORIZON
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        let url = self.list_url(request.limit.clamp(1, MAX_PER_PAGE), request.cursor)?;
        let answer = if request.cursor.is_some() {
            // A cursor GitHub no longer takes: the walk starts the window again.
            let refused = |status: StatusCode, _: &[u8]| {
                (status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY)
                    .then_some(PollError::BeyondHorizon)
            };
            self.client.get_refined(url, refused).await?
        } else {
            self.client.get(url).await?
        };
        // GitHub lists whole seconds: a delivery in the window's first second is in it.
        let since = whole_seconds(request.since);
        let deliveries: Vec<Delivery> = serde_json::from_slice(&answer.body).map_err(|e| {
            PollError::transient(format!("GitHub's deliveries list could not be read: {e}"))
        })?;
        let mut changes = Vec::new();
        let mut reached_older = false;
        for delivery in deliveries {
            let Some(at) = delivered_at(&delivery.delivered_at) else {
                return Err(PollError::transient(format!(
                    "GitHub delivery {} has an unreadable delivered_at",
                    delivery.id
                )));
            };
            if at < since {
                reached_older = true;
                continue;
            }
            if at > request.until || delivery.redelivery {
                continue;
            }
            changes.push(Change::Redeliver {
                id: delivery.guid.into(),
                handle: delivery.id.to_string(),
            });
        }
        if reached_older {
            return Ok(Page::last(changes, None));
        }
        // The next page is asked for by its cursor against the configured base URL; a URL
        // from a header is never followed as is (the token goes only where configured).
        match next_link(&answer.headers) {
            None => Ok(Page::last(changes, None)),
            Some(link) => match next_cursor(&link) {
                Some(cursor) => Ok(Page::more(changes, cursor)),
                None => Err(PollError::Rejected {
                    status: None,
                    message: "GitHub's next page link has no cursor".into(),
                }),
            },
        }
    }

    async fn redeliver(&self, handle: &str) -> Result<(), PollError> {
        if handle.is_empty() || !handle.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PollError::Rejected {
                status: None,
                message: format!("not a GitHub delivery id: {handle:?}"),
            });
        }
        let url = self
            .client
            .url(&format!("{}/{handle}/attempts", self.path))?;
        self.client.post(url, None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_at_and_cursors_are_read() {
        assert_eq!(
            delivered_at("2019-06-03T00:57:16Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_559_523_436))
        );
        assert_eq!(delivered_at("yesterday"), None);
        assert_eq!(
            next_cursor(
                "https://api.github.com/repos/o/r/hooks/1/deliveries?per_page=2&cursor=v1_12"
            )
            .as_deref(),
            Some("v1_12")
        );
        assert_eq!(
            next_cursor("https://api.github.com/repos/o/r/hooks/1/deliveries?page=2"),
            None
        );
    }

    #[test]
    fn the_builder_checks_names_and_hides_the_token() {
        assert!(GithubDeliveries::builder("o", "r", 1, "").build().is_err());
        assert!(GithubDeliveries::builder("o/../x", "r", 1, "t")
            .build()
            .is_err());
        let builder = GithubDeliveries::builder("octo-org", "octo.repo", 7, "ghp_secretvalue");
        assert!(!format!("{builder:?}").contains("secretvalue"));
        let source = builder.build().expect("builds");
        assert!(!format!("{source:?}").contains("secretvalue"));
        assert_eq!(source.name(), "github");
        assert_eq!(source.path, "repos/octo-org/octo.repo/hooks/7/deliveries");
    }
}
