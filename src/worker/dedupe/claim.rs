//! [`HeldClaim`]: the dedupe layer's claim, handed to the handler.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::store::{ClaimToken, IdempotencyKey};

/// The claim the [`Dedupe`](super::Dedupe) layer holds on the event a handler is running
/// for: the key `(source, event id)` and the claim's fencing token. The handler reads it with
/// [`Event::claim`](crate::worker::Event::claim).
///
/// # Completing the claim in the handler's own transaction
///
/// After a successful handler the layer completes the claim itself, in a separate write. A
/// process that dies between the handler's effect and that write leaves the claim
/// unfinished, and the redelivered event runs the handler again. A handler whose effect lives
/// in the same database as the idempotency store closes that gap by completing the claim in
/// the transaction that writes the effect (for PostgreSQL,
/// `store::postgres::PgIdempotencyStore::complete_in`):
/// either both commit or neither does, so the effect is applied exactly once even if the
/// process dies at any point. After the commit it calls [`mark_completed`](Self::mark_completed)
/// so the layer does not complete (or release) the claim again. The
/// [worker docs](crate::worker#exactly-once-across-a-crash) show the whole handler.
///
/// The claim is plain data: nothing here depends on the backend. Clones are cheap (one
/// reference count) and share the completed flag.
#[derive(Clone)]
pub struct HeldClaim(Arc<Inner>);

struct Inner {
    key: IdempotencyKey,
    token: ClaimToken,
    completed: AtomicBool,
}

impl HeldClaim {
    /// A claim on `key` with `token`, not marked completed. The dedupe layer makes one per
    /// acquired claim; tests of a handler can make their own.
    pub fn new(key: IdempotencyKey, token: ClaimToken) -> Self {
        Self(Arc::new(Inner {
            key,
            token,
            completed: AtomicBool::new(false),
        }))
    }

    /// The claimed key: the event's source and id.
    pub fn key(&self) -> &IdempotencyKey {
        &self.0.key
    }

    /// The claim's fencing token: completing with it succeeds only while the claim is
    /// current.
    pub fn token(&self) -> ClaimToken {
        self.0.token
    }

    /// Tells the dedupe layer that the handler has completed this claim itself, in a
    /// transaction that has **committed**: the layer then neither completes nor releases it.
    /// Call it only after the commit succeeded (if the commit fails, return the error instead
    /// and let the layer release the claim).
    pub fn mark_completed(&self) {
        self.0.completed.store(true, Ordering::Release);
    }

    /// True once [`mark_completed`](Self::mark_completed) was called (on this claim or a
    /// clone).
    pub fn is_completed(&self) -> bool {
        self.0.completed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for HeldClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldClaim")
            .field("key", self.key())
            .field("token", &self.token())
            .field("completed", &self.is_completed())
            .finish()
    }
}
