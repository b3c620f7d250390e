//! Reconciliation, the hybrid pattern: a poll that asks the provider's API what changed and
//! backfills what the push path dropped into the same idempotent pipeline.
//!
//! Webhooks are the fast path; they are not a reliable one. A receiver down during a deploy,
//! a proxy that dropped a request, a provider that gave up retrying: each is an event lost
//! for good unless something asks the provider what it sent. A [`Reconciler`] does, every
//! interval (default [`DEFAULT_EVERY`], 15 minutes, jittered), for each [`ChangeSource`]:
//!
//! 1. it takes the source's leadership from the [`CheckpointStore`] (one process of many
//!    walks a source: a PostgreSQL advisory lock; on SQLite the process that owns the file),
//! 2. opens a window from where the last one ended, less an overlap
//!    ([`DEFAULT_OVERLAP`]) for clock skew and late listings, to now; what lies beyond the
//!    provider's [horizon](ChangeSource::horizon) is reported as a [`Gap`], never silent,
//! 3. walks it a page at a time (memory stays flat however much changed), storing each
//!    fetched event into the queue with origin [`Origin::Reconciliation`]: an event the push
//!    path already stored is a duplicate and counts as *known*, a new one as *recovered*;
//!    a delivery the provider can resend (GitHub) and the store does not know is asked for
//!    again through the push path (a *redelivery*),
//! 4. moves the checkpoint after each page, once the page's events are stored: a pass killed
//!    at any point resumes where it was, and what it sees twice the dedupe absorbs,
//! 5. honours the provider's rate limits (`429` + `Retry-After`) and backs off on failures,
//! 6. returns a [`PassReport`] (seen, known, recovered, redeliveries, gaps, duration), logs it,
//!    stores it as the source's last report (the admin stats show it) and records the
//!    recovery rate: the push path's unreliability, healthy under 0.1%, an
//!    [`Alert::RecoveryRate`](crate::alert::Alert::RecoveryRate) over 1% by default.
//!
//! The worker then handles recovered events like pushed ones: the same queue, dedupe layer
//! and handler.
//!
//! Sources for Stripe, GitHub, Standard Webhooks/Svix, Paddle and a generic paginated JSON
//! API are in `reconcile::sources` (feature `reconcile`); write your own by implementing
//! [`ChangeSource`].
//!
//! [`Origin::Reconciliation`]: crate::store::Origin::Reconciliation
//! [`CheckpointStore`]: crate::store::CheckpointStore

mod pass;
mod reconciler;
mod report;
mod source;
#[cfg(feature = "reconcile")]
#[cfg_attr(docsrs, doc(cfg(feature = "reconcile")))]
pub mod sources;

pub use reconciler::{
    PassOutcome, ReconcileError, Reconciler, ReconcilerBuilder, ReconcilerHandle, DEFAULT_EVERY,
    DEFAULT_OVERLAP, DEFAULT_PAGE_SIZE,
};
pub use report::{Gap, PassReport};
pub use source::{Change, ChangeSource, FetchedEvent, Page, PollError, PollRequest};
