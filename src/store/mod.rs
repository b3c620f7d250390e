//! The store layer: the traits every backend implements, their one error, the in-memory
//! backend, dead-letter administration, and the backends themselves.
//!
//! | item | what it is |
//! |---|---|
//! | [`Queue`] | the durable hand-off between intake and the worker |
//! | [`IdempotencyStore`] | what remembers which events were handled (the worker's dedupe layer claims in it) |
//! | [`StoreError`] | the one error of both, with an [`ErrorKind`] that says what to do |
//! | [`key`] | the rules for `(source, event id)` every backend shares |
//! | [`MemoryStore`] | both traits in memory, for tests and examples |
//! | `sqlite::SqliteStore` (feature `sqlite`) | both in one SQLite file: one writer thread, group commit, WAL, `synchronous=FULL` |
//! | `postgres::PgStore` (feature `postgres`) | both in PostgreSQL, for many receivers and workers |
//! | [`EventLog`] | every stored event with its status and history: list, get, count, replay jobs |
//! | [`Replayer`] | runs replay jobs in paced batches and resumes them after a restart |
//! | [`DeadLetters`] | lists and replays dead letters, for admin routes and tools |
//! | [`CheckpointStore`] | reconciliation's checkpoints, last reports and leadership, per source; every backend's queue is one (leadership in process on memory and SQLite, a session advisory lock on PostgreSQL) |
//! | [`codec`] | how times and headers are encoded, for backend implementors |
//!
//! Every backend has the same shape: open it (`SqliteStore::open(path, options)`,
//! `PgStore::connect(url, options)`, `MemoryStore::new()`), then take a queue
//! (`store.queue(QueueOptions)`) and an idempotency store (`store.idempotency()`) from it;
//! both share the store's clock, retention and connections. `store.close()` finishes what
//! was sent and stops.
//!
//! # One record per event, one dedupe path
//!
//! A delivery is identified by `(source, event id)`, and every backend keeps **one record
//! per key**: the stored event with its delivery state, and, when the worker's dedupe layer
//! claims it, the claim on the same record. Duplicates are absorbed once, at intake: the
//! record's unique key makes an enqueue of a known key answer [`Enqueued::Duplicate`]
//! without storing anything, for as long as the store knows the key (while the event
//! waits, is leased or dead, and for the [retention](#retention) period after it was
//! handled). The dedupe layer's claim of a stored event then updates that record rather than
//! inserting a second one, so an event pays for one insert under a random key on the hot
//! paths (the provider's delivery id is random: each such insert writes a random page of the
//! key index). The SQLite backend defers even that one: new keys wait in the writer's memory
//! and are merged into the key index thousands at a time (`store::sqlite`, "New keys wait
//! outside the key index"). Claims of keys no event was stored under (an idempotency store
//! used on its own) make a record holding only the claim; an enqueue of that key later stores
//! the event on it.
//!
//! What the dedupe layer still guards against is running the handler twice for one stored
//! event: a redelivery after a crash, a lease that expired while the handler was still
//! running, a replay, or a store used by several queues.
//!
//! # Retention
//!
//! A handled event (acked) is kept, raw bytes, headers and history included, for the
//! store's retention period (default [`DEFAULT_RETENTION`], 7 days: longer than Stripe's
//! three days of retries, Svix's ~28 hours and GitHub's manual redelivery window, and long
//! enough to find and replay what a handler bug broke), and a completed claim for the same
//! period after its completion. Within it, the [event log](#the-event-log-contract) lists
//! it, a resend answers `duplicate` and a claim answers [`Claim::Completed`]; after it, the
//! key is forgotten (`purge_expired` removes the record, in bounded chunks, off the hot
//! path): a resend is stored and handled as a new event. A retention of zero forgets an
//! event when it is acked.
//!
//! # The queue contract
//!
//! Every backend (memory, SQLite, PostgreSQL, yours) keeps these promises, and the shared
//! conformance suite in `hookdock::testing` (feature `test-util`) checks each of them:
//!
//! 1. **Enqueue is durable and idempotent.** [`Queue::enqueue`] resolves only once the event
//!    is stored at the [`Durability`] the backend declares. An event whose source or id
//!    breaks the [`key`] rules is refused with [`StoreError::Invalid`] before anything is
//!    written, and never fails the other events written with it. A key the store knows
//!    (above) stores nothing and returns [`Enqueued::Duplicate`] with the known
//!    [`MessageId`]. When the queue holds its configured maximum of waiting messages, a new
//!    event is refused with [`StoreError::Full`] and nothing is stored.
//! 2. **Leases are exclusive and fenced.** [`Queue::lease`] hands out up to `max` ready
//!    messages (oldest first, best effort), each with an expiry and a fresh [`LeaseToken`],
//!    and counts an attempt. No message ever has two live leases. A token stays current until
//!    the message is leased again, acked, retried, or dead-lettered; using a token that is no
//!    longer current with [`extend`](Queue::extend), [`ack`](Queue::ack),
//!    [`retry`](Queue::retry) or [`dead_letter`](Queue::dead_letter) fails with
//!    [`StoreError::LeaseLost`] and changes nothing. A lease that expired but was not yet
//!    taken by anyone else may still be settled with its token.
//! 3. **Expired leases come back.** When a lease expires, the message is ready again and the
//!    next lease gets it with a new token and the next attempt number, unless that expired
//!    lease was its last allowed attempt ([`QueueOptions::max_attempts`]); then it goes to the
//!    dead letters with the reason [`EXPIRED_ON_LAST_ATTEMPT`].
//! 4. **Settling.** `ack` marks the message handled: it is never leased again, leaves the
//!    counts, and its key is remembered as above. `retry` makes it ready again at the given
//!    time (not before), keeping its attempt count and recording the error.
//!    [`defer`](Queue::defer) does the same but gives back the attempt the lease counted, so
//!    the next lease carries the same attempt number (for work that was not tried at all,
//!    such as an event whose idempotency claim is held elsewhere, or one handed back at
//!    shutdown). `dead_letter` parks it with a reason; it is never leased again until
//!    replayed.
//! 5. **Dead letters are replayable.** [`Queue::dead_letters`] lists them with reasons and
//!    attempt counts; [`Queue::replay`] makes the matching ones ready again with their
//!    original bytes, id and source, and the attempt count reset to zero.
//! 6. **Stats** ([`Queue::stats`]) count messages by state; an expired lease counts as ready,
//!    or as dead if it expired on the last allowed attempt. Handled messages are not counted.
//! 7. **Times round-trip** to the microsecond at least (a received-at time, a retry time).
//! 8. **Ordering keys.** Events with an [ordering key](crate::ordering) (the key rules of
//!    [`key`] apply to it too) are leased one at a time per `(source, key)` and in order,
//!    late arrivals go first unless their key's first event is already leased, the key's
//!    watermark moves only forward and only by `ack`, and each [`Leased`] carries its key's
//!    watermark; the [`crate::ordering`] module docs state each promise. [`Queue::skip`]
//!    settles a stale event: like `ack`, without moving the watermark, recorded as stale.
//!    A key's order survives restarts and holds across every process sharing the store.
//!
//! # The idempotency contract
//!
//! 1. **Claim is one atomic conditional write.** [`IdempotencyStore::claim`] on a key returns:
//!    - [`Claim::Acquired`] with a fresh [`ClaimToken`] if the key is unknown, was released,
//!      its completion is past the retention period, or its in-progress claim has expired
//!      (a takeover); the claim is then held for the lease duration given;
//!    - [`Claim::FingerprintMismatch`] if the key is held (in progress or completed) for a
//!      body with a different [`Fingerprint`];
//!    - [`Claim::Completed`], with the stored result if any, if the key was completed within
//!      the retention period;
//!    - [`Claim::InProgress`] with the claim's expiry if someone else holds a live claim.
//!
//!    Of any number of concurrent claims of one key, exactly one is `Acquired`. A key that
//!    breaks the [`key`] rules is refused with [`StoreError::Invalid`].
//! 2. **Complete and release are fenced.** [`complete`](IdempotencyStore::complete) and
//!    [`release`](IdempotencyStore::release) succeed only with the token of the current
//!    claim; otherwise they fail with [`StoreError::ClaimLost`] and change nothing. Release
//!    forgets the claim, so the next claim acquires it. A claim past its lease may still be
//!    completed or released with its token as long as nobody has taken it over.
//! 3. **Retention.** A completed key is remembered for the retention period and
//!    [`purge_expired`](IdempotencyStore::purge_expired) removes it after that, along with
//!    in-progress claims that expired more than a retention period ago.
//!
//! Times are read from the store's [`Clock`](crate::Clock), so tests move time by hand.
//!
//! # The event log contract
//!
//! [`EventLog`] is implemented by each backend's queue type, over the same records.
//!
//! 1. **Every stored event is in the log** from its enqueue until [`purge_expired`]
//!    forgets it: a succeeded event the retention period after it was acked (at once with a
//!    retention of zero); a dead letter stays until it is replayed. A record holding only a
//!    claim is not an event and is never listed or counted.
//! 2. **Each entry tells its history** ([`LogEntry`]): its [`EventStatus`] (pending until
//!    first leased; leased; retrying once an attempt failed and it waits again; succeeded
//!    once acked; dead once dead-lettered; stale from the ordering work), attempts, the last
//!    error (the last retry's error, or the dead-letter reason), when it was first and last
//!    leased, when it was done, how often it was replayed and forced, its [`Origin`] and
//!    event type as stored.
//! 3. **Listing is newest first with keyset pages.** [`EventLog::list`] returns entries
//!    matching every condition of the [`EventFilter`], by message id descending, at most
//!    [`EventFilter::page_size`]; a full page's [`LogPage::next`] passed as
//!    [`EventFilter::before`] continues it, so a walk never repeats or skips an entry that
//!    stayed in the log.
//! 4. **Get** returns the raw body and headers exactly as stored, for `(source, event id)`.
//! 5. **Counts** group the matching events by source, type and status, and give the receipt
//!    time of the oldest one waiting (pending or retrying).
//! 6. **Replay is a durable job.** [`EventLog::create_replay`] stores a [`ReplayJob`] over
//!    the events matching its filter, up to the newest message at that time;
//!    [`EventLog::step_replay`] walks them oldest first, a batch at a time. A settled event
//!    (succeeded, dead, stale) is made ready now with its original bytes and id, attempts
//!    back to zero, origin [`Origin::Replay`], and `replays` counted; in
//!    [`ReplayMode::Forced`] its completed claim is also reset (the next claim acquires it,
//!    so the handler runs again) and `forced_replays` counted. An event not settled is left
//!    alone and counted as skipped. Each batch and the move of the job's cursor commit
//!    together: a job killed at any point and stepped again never replays an event twice.
//!    A job whose cursor passed its last event is finished; a cancelled one never steps.
//!    [`Queue::replay`] (dead letters) marks what it replays the same way.
//!
//! [`purge_expired`]: Queue::purge_expired
//!
//! # Errors
//!
//! [`StoreError::kind`] tells a caller what to do: retry later ([`ErrorKind::Transient`]:
//! a full queue, a failed disk or connection, a closed store), never retry
//! ([`ErrorKind::InvalidInput`]), drop what the lost lease or claim was doing
//! ([`ErrorKind::Fenced`]), or report a bug ([`ErrorKind::Internal`]). Intake answers them
//! `503` + `Retry-After`, `400` with a reason, and `500`.

mod checkpoints;
pub mod codec;
mod dead_letters;
mod error;
mod idempotency;
pub mod key;
mod log;
mod memory;
mod queue;
mod replay;
mod wake;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

use std::time::Duration;

pub use checkpoints::{CheckpointStore, Leadership};
pub use dead_letters::{DeadLetterInfo, DeadLetters};
pub use error::{BoxError, ErrorKind, InvalidInput, KeyPart, KeyProblem, StoreError};
pub use idempotency::{Claim, ClaimToken, Fingerprint, IdempotencyKey, IdempotencyStore};
pub use log::{
    EventFilter, EventLog, EventStatus, LogCount, LogCounts, LogEntry, LogPage, LoggedEvent,
    Origin, ReplayJob, ReplayJobId, ReplayMode, ReplayState, UnknownName, DEFAULT_PAGE, MAX_PAGE,
};
pub use memory::{MemoryIdempotencyStore, MemoryQueue, MemoryStore};
pub use queue::{
    DeadLetter, DeadLetterFilter, Durability, Enqueued, Lease, LeaseToken, Leased, MessageId,
    Queue, QueueOptions, QueueStats, EXPIRED_ON_LAST_ATTEMPT,
};
pub use replay::{Replayer, DEFAULT_REPLAY_BATCH};
pub use wake::Wake;

pub(crate) use wake::Signal;

/// How long a handled event and a completed claim are kept unless configured otherwise:
/// 7 days (see [Retention](self#retention)).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
