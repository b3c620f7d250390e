//! The receiver's reconciliation (built with `--features reconcile`): a poll of the
//! providers' APIs that stores what the push routes missed into the same queue, every
//! `HOOKDOCK_RECONCILE_EVERY` seconds.
//!
//! | variable | default |
//! |---|---|
//! | `HOOKDOCK_STRIPE_API_KEY` | unset: Stripe is not reconciled. Set: a (restricted, read-only) Stripe API key; its events (`GET /v1/events`) are walked into the `stripe` route's source |
//! | `HOOKDOCK_STRIPE_API_BASE` | `https://api.stripe.com` |
//! | `HOOKDOCK_GITHUB_TOKEN` | unset: GitHub is not reconciled. Set: a token that may read and redeliver the hook's deliveries; deliveries the store does not know are redelivered through the push route |
//! | `HOOKDOCK_GITHUB_HOOK` | `owner/repo/hook_id`, required with the token |
//! | `HOOKDOCK_GITHUB_API_BASE` | `https://api.github.com` |
//! | `HOOKDOCK_RECONCILE_EVERY` | `900` (seconds between passes; each wait shortened by up to 10% jitter) |
//! | `HOOKDOCK_RECONCILE_PAGE` | `100` (changes asked for per page) |
//!
//! The first pass of a source looks back one interval; each next one starts where the last
//! ended, less five minutes. `GET /admin/stats` shows each source's last report and recovery
//! rate; `POST /admin/reconcile/{source}` runs a pass now.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use hookdock::alert::Alerts;
use hookdock::reconcile::sources::{GithubDeliveries, StripeEvents};
use hookdock::reconcile::Reconciler;
use hookdock::store::{CheckpointStore, EventLog};

use crate::config::{env, parse};

/// The reconciliation settings read from the environment.
pub struct ReconcileConfig {
    stripe: Option<StripeEvents>,
    github: Option<GithubDeliveries>,
    every: Duration,
    page: usize,
}

impl ReconcileConfig {
    /// Reads the variables above; a half-configured source (a token without its hook) or a
    /// bad value is an error naming the variable.
    pub fn from_env() -> Result<Self, Box<dyn Error>> {
        let stripe = match env("HOOKDOCK_STRIPE_API_KEY") {
            None => None,
            Some(key) => {
                let mut builder = StripeEvents::builder(key.trim());
                if let Some(base) = env("HOOKDOCK_STRIPE_API_BASE") {
                    builder = builder.base_url(base);
                }
                Some(
                    builder
                        .build()
                        .map_err(|e| format!("HOOKDOCK_STRIPE_API_BASE: {e}"))?,
                )
            }
        };
        let github = match env("HOOKDOCK_GITHUB_TOKEN") {
            None => None,
            Some(token) => {
                let hook = env("HOOKDOCK_GITHUB_HOOK")
                    .ok_or("HOOKDOCK_GITHUB_TOKEN is set but HOOKDOCK_GITHUB_HOOK (owner/repo/hook_id) is not")?;
                let parts: Vec<&str> = hook.split('/').collect();
                let [owner, repo, id] = parts.as_slice() else {
                    return Err(format!(
                        "HOOKDOCK_GITHUB_HOOK must be owner/repo/hook_id, not {hook:?}"
                    )
                    .into());
                };
                let id: u64 = id.parse().map_err(|_| {
                    format!("HOOKDOCK_GITHUB_HOOK: the hook id {id:?} is not a number")
                })?;
                let mut builder = GithubDeliveries::builder(*owner, *repo, id, token.trim());
                if let Some(base) = env("HOOKDOCK_GITHUB_API_BASE") {
                    builder = builder.base_url(base);
                }
                Some(
                    builder
                        .build()
                        .map_err(|e| format!("HOOKDOCK_GITHUB_API_BASE: {e}"))?,
                )
            }
        };
        let every: u64 = parse("HOOKDOCK_RECONCILE_EVERY", 900, "a whole number of seconds")?;
        if every == 0 {
            return Err("HOOKDOCK_RECONCILE_EVERY must be at least 1 second".into());
        }
        let page: usize = parse("HOOKDOCK_RECONCILE_PAGE", 100, "a whole number")?;
        if !(1..=100).contains(&page) {
            return Err("HOOKDOCK_RECONCILE_PAGE must be from 1 to 100".into());
        }
        Ok(Self {
            stripe,
            github,
            every: Duration::from_secs(every),
            page,
        })
    }

    /// The reconciler over the configured sources, or `None` when none is.
    pub fn reconciler(
        self,
        log: Arc<dyn EventLog>,
        checkpoints: Arc<dyn CheckpointStore>,
        alerts: Alerts,
    ) -> Option<Reconciler> {
        if self.stripe.is_none() && self.github.is_none() {
            return None;
        }
        let mut builder = Reconciler::builder(log, checkpoints)
            .every(self.every)
            .page_size(self.page)
            .alerts(alerts);
        if let Some(stripe) = self.stripe {
            builder = builder.source(stripe);
        }
        if let Some(github) = self.github {
            builder = builder.source(github);
        }
        Some(builder.build())
    }

    /// Lines for the start-up banner (never a key or token).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.stripe.is_some() {
            lines.push(format!(
                "  reconcile: stripe events every {}s",
                self.every.as_secs()
            ));
        }
        if self.github.is_some() {
            lines.push(format!(
                "  reconcile: github hook deliveries every {}s",
                self.every.as_secs()
            ));
        }
        lines
    }
}
