//! The [`Worker`]: leases events from a [`Queue`] and runs the handler stack on them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use super::{DedupeLayer, Deduped, ErrorKind, Event, HandlerError, RetryPolicy};
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::store::{
    DeadLetters, IdempotencyStore, Lease, LeaseToken, Leased, MessageId, Queue, StoreError, Wake,
};

/// How often a running worker purges its dedupe store unless configured otherwise: hourly.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Reason recorded for work handed back because the worker shut down first.
pub const SHUTDOWN_REASON: &str = "the worker shut down before the handler finished";

/// What the boxed handler stack reports on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Handled,
    Duplicate,
}

type Handler = BoxCloneSyncService<Event, Ran, HandlerError>;

/// Runs a handler over a [`Queue`]: leases batches, runs the handler stack (dedupe → your
/// service) with bounded concurrency, keeps long work leased, and settles every message.
///
/// | the handler stack returns | the worker |
/// |---|---|
/// | `Ok` (handled, or a completed duplicate skipped by dedupe) | acks |
/// | a [retryable](HandlerError::retry) error, or a panic | retries at now + the [`RetryPolicy`] delay, or dead-letters on the last attempt |
/// | a [permanent](HandlerError::permanent) error (a decode failure, a fingerprint mismatch) | dead-letters with the error as reason |
/// | a [deferred](ErrorKind::Deferred) error (dedupe found a live claim elsewhere) | hands the message back, to be leased again at the claim's expiry |
///
/// Every time decision (retry times, lease renewal) reads the worker's [`Clock`]; give it the
/// same clock as the queue.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use hookdock::store::{MemoryStore, Queue, QueueOptions};
/// use hookdock::worker::{Event, HandlerError, Worker};
/// use hookdock::RawEvent;
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use tower::service_fn;
///
/// let store = MemoryStore::new();
/// let queue = Arc::new(store.queue(QueueOptions::default()));
/// queue.enqueue(RawEvent::new("github", "d-1", SystemTime::now(), "{}")).await?;
///
/// let worker = Worker::builder(queue.clone())
///     .dedupe(store.idempotency())
///     .build(service_fn(|event: Event| async move {
///         println!("{} {}", event.source(), event.id());
///         Ok::<_, HandlerError>(())
///     }))?;
///
/// // In a service: `let handle = worker.spawn();` ... `handle.shutdown().await;`
/// let report = worker.run_until_idle().await?;
/// assert_eq!(report.succeeded, 1);
/// assert_eq!(queue.stats().await?.depth(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Arc<dyn Queue>,
    handler: Handler,
    config: Config,
    clock: SharedClock,
    wake: Option<Arc<tokio::sync::Mutex<Box<dyn Wake>>>>,
    slots: Arc<Semaphore>,
    counters: Counters,
    /// How often to purge the queue and the dedupe store (if any) of what is past retention.
    purge: Option<(Option<Arc<dyn IdempotencyStore>>, Duration)>,
}

#[derive(Debug, Clone)]
struct Config {
    concurrency: usize,
    batch_size: usize,
    lease_for: Duration,
    retry: RetryPolicy,
    poll_min: Duration,
    poll_max: Duration,
    shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch_size: 64,
            lease_for: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            poll_min: Duration::from_millis(50),
            poll_max: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.shared.config)
            .field("wake", &self.shared.wake.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Worker`]; see [`Worker::builder`].
pub struct WorkerBuilder {
    queue: Arc<dyn Queue>,
    dedupe: Option<DedupeLayer>,
    purge_every: Option<Duration>,
    config: Config,
    clock: SharedClock,
    wake: Option<Box<dyn Wake>>,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("dedupe", &self.dedupe)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A builder for a worker over `queue` (any [`Queue`], including `Arc<dyn Queue>`).
    pub fn builder(queue: impl Queue) -> WorkerBuilder {
        WorkerBuilder {
            queue: Arc::new(queue),
            dedupe: None,
            purge_every: Some(DEFAULT_PURGE_INTERVAL),
            config: Config::default(),
            clock: SharedClock::default(),
            wake: None,
        }
    }
}

impl WorkerBuilder {
    /// Puts a [`DedupeLayer`] over the handler, so it sees each event once in effect: an
    /// [`IdempotencyStore`] as it is (the default claim lease), or a layer from
    /// [`DedupeLayer::builder`].
    ///
    /// Without dedupe the worker still retries and dead-letters, but a stored event that is
    /// delivered again (after a crash, a lease that expired mid-handler, a replay) runs the
    /// handler again.
    pub fn dedupe(mut self, dedupe: impl Into<DedupeLayer>) -> Self {
        self.dedupe = Some(dedupe.into());
        self
    }

    /// Most events handled at once (default 64).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    /// Most events leased in one call (default 64); a lease never asks for more than the free
    /// handler slots.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// How long each lease lasts (default 30 s). Work still running after two thirds of it
    /// has its lease extended, again and again, so a slow handler keeps its message.
    pub fn lease_for(mut self, lease: Duration) -> Self {
        self.config.lease_for = lease;
        self
    }

    /// When to retry a retryable failure (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// How often to poll an empty queue: from `min` after the last event, doubling up to
    /// `max` while the queue stays empty (default 50 ms to 1 s). A [wake-up
    /// signal](Self::wake_on) cuts the wait short.
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.config.poll_min = min;
        self.config.poll_max = max;
        self
    }

    /// How often a running worker purges its queue and dedupe store of what is past the
    /// store's retention ([`Queue::purge_expired`], [`IdempotencyStore::purge_expired`];
    /// default hourly, `None` to leave it to you).
    pub fn purge_interval(mut self, every: Option<Duration>) -> Self {
        self.purge_every = every;
        self
    }

    /// How long a shutdown waits for in-flight handlers before abandoning them and handing
    /// their messages back (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Reads time from `clock` (default: the system clock). Use the queue's clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Wakes an idle worker when `signal` fires, instead of waiting for the next poll. By
    /// default the worker uses the queue's own signal ([`Queue::wake_signal`]: every backend
    /// in this crate has one); this replaces it, for example with an
    /// `Arc<tokio::sync::Notify>` you notify yourself. See [`Wake`].
    pub fn wake_on(mut self, signal: impl Wake) -> Self {
        self.wake = Some(Box::new(signal));
        self
    }

    /// Builds the worker around `handler`: a `tower::Service<Event>` whose error converts into
    /// [`HandlerError`]. For a typed handler, wrap it in
    /// [`DecodeJsonLayer`](super::DecodeJsonLayer) first.
    pub fn build<S>(self, handler: S) -> Result<Worker, ConfigError>
    where
        S: Service<Event> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Response: Send + 'static,
        S::Error: Into<HandlerError>,
    {
        self.validate()?;
        let handler: Handler = match &self.dedupe {
            Some(layer) => {
                BoxCloneSyncService::new(layer.layer(handler).map_response(|r| match r {
                    Deduped::Handled(_) => Ran::Handled,
                    Deduped::Duplicate(_) => Ran::Duplicate,
                }))
            }
            None => BoxCloneSyncService::new(
                handler
                    .map_response(|_| Ran::Handled)
                    .map_err(Into::<HandlerError>::into),
            ),
        };
        let wake = self.wake.or_else(|| self.queue.wake_signal());
        Ok(Worker {
            shared: Arc::new(Shared {
                queue: self.queue,
                handler,
                slots: Arc::new(Semaphore::new(self.config.concurrency)),
                config: self.config,
                clock: self.clock,
                wake: wake.map(|signal| Arc::new(tokio::sync::Mutex::new(signal))),
                counters: Counters::default(),
                purge: self
                    .purge_every
                    .map(|every| (self.dedupe.as_ref().map(|l| l.store().clone()), every)),
            }),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        let bad = |what, reason| Err(ConfigError::InvalidValue { what, reason });
        if c.concurrency == 0 || c.concurrency > Semaphore::MAX_PERMITS {
            return bad(
                "worker concurrency",
                "must be between 1 and Semaphore::MAX_PERMITS",
            );
        }
        if c.batch_size == 0 {
            return bad("worker batch size", "must be at least 1");
        }
        if c.lease_for.is_zero() {
            return bad("worker lease", "must be positive");
        }
        if c.poll_min.is_zero() || c.poll_min > c.poll_max {
            return bad(
                "worker poll interval",
                "min must be positive and not above max",
            );
        }
        Ok(())
    }
}

/// How one message was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settled {
    /// Handled and acked.
    Acked,
    /// A completed duplicate: acked without running the handler.
    Duplicate,
    /// Scheduled for another attempt at this time.
    Retried(SystemTime),
    /// Handed back until this time without being handled (someone else holds its claim).
    Deferred(SystemTime),
    /// Moved to the dead letters with this reason.
    DeadLettered(String),
    /// Settling failed (the lease was lost, or the queue failed); the message comes back
    /// when its lease expires.
    Unsettled(String),
}

/// Counts of what one [`Worker::run_once`] (or [`Worker::run_until_idle`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BatchReport {
    /// Messages leased.
    pub leased: u64,
    /// Handled and acked.
    pub succeeded: u64,
    /// Completed duplicates acked without running the handler.
    pub duplicates: u64,
    /// Scheduled for another attempt.
    pub retried: u64,
    /// Handed back because their claim is held elsewhere.
    pub deferred: u64,
    /// Moved to the dead letters.
    pub dead_lettered: u64,
    /// Could not be settled (they come back when their lease expires).
    pub unsettled: u64,
}

impl BatchReport {
    fn add(&mut self, settled: &Settled) {
        match settled {
            Settled::Acked => self.succeeded += 1,
            Settled::Duplicate => self.duplicates += 1,
            Settled::Retried(_) => self.retried += 1,
            Settled::Deferred(_) => self.deferred += 1,
            Settled::DeadLettered(_) => self.dead_lettered += 1,
            Settled::Unsettled(_) => self.unsettled += 1,
        }
    }

    fn merge(&mut self, other: &BatchReport) {
        self.leased += other.leased;
        self.succeeded += other.succeeded;
        self.duplicates += other.duplicates;
        self.retried += other.retried;
        self.deferred += other.deferred;
        self.dead_lettered += other.dead_lettered;
        self.unsettled += other.unsettled;
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// In-flight handlers that finished (and were settled) within the shutdown timeout.
    pub finished: u64,
    /// Messages whose handler did not finish in time: handed back to the queue, ready now.
    pub given_back: Vec<MessageId>,
    /// Messages that could not be handed back (they return when their lease expires).
    pub give_back_failed: u64,
}

/// Running totals since the worker was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Messages leased.
    pub leased: u64,
    /// Lease calls that returned at least one message (`leased / leases` is the mean batch).
    pub leases: u64,
    /// Handled and acked.
    pub succeeded: u64,
    /// Completed duplicates acked without running the handler.
    pub duplicates: u64,
    /// Scheduled for another attempt.
    pub retried: u64,
    /// Handed back because their claim is held elsewhere.
    pub deferred: u64,
    /// Moved to the dead letters.
    pub dead_lettered: u64,
    /// Handlers that panicked (counted in `retried` or `dead_lettered` too).
    pub panicked: u64,
    /// Messages that could not be settled.
    pub unsettled: u64,
    /// Messages handed back at shutdown.
    pub given_back: u64,
    /// Lease calls that failed.
    pub lease_errors: u64,
    /// Handled events and dedupe keys purged after their retention.
    pub purged: u64,
    /// Handlers running now.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
struct Counters {
    leased: AtomicU64,
    leases: AtomicU64,
    succeeded: AtomicU64,
    duplicates: AtomicU64,
    retried: AtomicU64,
    deferred: AtomicU64,
    dead_lettered: AtomicU64,
    panicked: AtomicU64,
    unsettled: AtomicU64,
    given_back: AtomicU64,
    lease_errors: AtomicU64,
    purged: AtomicU64,
    in_flight: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn record(&self, settled: &Settled) {
        let counter = match settled {
            Settled::Acked => &self.succeeded,
            Settled::Duplicate => &self.duplicates,
            Settled::Retried(_) => &self.retried,
            Settled::Deferred(_) => &self.deferred,
            Settled::DeadLettered(_) => &self.dead_lettered,
            Settled::Unsettled(_) => &self.unsettled,
        };
        Self::bump(counter, 1);
    }

    fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            leased: get(&self.leased),
            leases: get(&self.leases),
            succeeded: get(&self.succeeded),
            duplicates: get(&self.duplicates),
            retried: get(&self.retried),
            deferred: get(&self.deferred),
            dead_lettered: get(&self.dead_lettered),
            panicked: get(&self.panicked),
            unsettled: get(&self.unsettled),
            given_back: get(&self.given_back),
            lease_errors: get(&self.lease_errors),
            purged: get(&self.purged),
            in_flight: get(&self.in_flight),
        }
    }
}

/// The leases of the messages one run is handling, kept current by the heartbeat, so a
/// shutdown can hand back what did not finish.
///
/// Keyed by the message and the token it was leased with: should a lease be lost and the
/// message leased again by this same run, the two are tracked apart.
type InFlight = Arc<Mutex<HashMap<Slot, Lease>>>;

/// A leased message as this run first got it.
type Slot = (MessageId, LeaseToken);

fn lock(in_flight: &InFlight) -> std::sync::MutexGuard<'_, HashMap<Slot, Lease>> {
    // Every update is one map operation; a poisoned map is still consistent.
    in_flight.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decrements the in-flight gauge however the task ends (finished or aborted).
struct InFlightGuard {
    shared: Arc<Shared>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.shared
            .counters
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// Running totals since the worker was built.
    pub fn stats(&self) -> WorkerStats {
        self.shared.counters.snapshot()
    }

    /// The queue the worker leases from.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.shared.queue
    }

    /// Leases one batch (up to the batch size and the free handler slots), handles every
    /// message in it, and returns what happened. For tests, cron-style draining, and tools;
    /// services use [`spawn`](Self::spawn) or [`run`](Self::run).
    pub async fn run_once(&self) -> Result<BatchReport, StoreError> {
        let shared = &self.shared;
        let max = shared.config.batch_size.min(shared.config.concurrency);
        let batch = shared.queue.lease(max, shared.config.lease_for).await?;
        Counters::bump(&shared.counters.leased, batch.len() as u64);
        Counters::bump(&shared.counters.leases, u64::from(!batch.is_empty()));
        let mut report = BatchReport {
            leased: batch.len() as u64,
            ..BatchReport::default()
        };
        let in_flight = InFlight::default();
        let mut tasks = JoinSet::new();
        for leased in batch {
            let slot = shared.slots.clone().acquire_owned().await.ok();
            tasks.spawn(handle(shared.clone(), in_flight.clone(), leased, slot));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(settled) => report.add(&settled),
                Err(error) => {
                    tracing::error!(%error, "worker task failed");
                    report.unsettled += 1;
                }
            }
        }
        Ok(report)
    }

    /// Calls [`run_once`](Self::run_once) until a lease comes back empty (nothing is ready
    /// now; retries scheduled for later stay scheduled), and returns the totals.
    pub async fn run_until_idle(&self) -> Result<BatchReport, StoreError> {
        let mut total = BatchReport::default();
        loop {
            let report = self.run_once().await?;
            if report.leased == 0 {
                return Ok(total);
            }
            total.merge(&report);
        }
    }

    /// Runs on the current task until `shutdown` resolves, then shuts down gracefully: stops
    /// leasing, waits up to the shutdown timeout for in-flight handlers, and hands back the
    /// messages of those that did not finish (ready again now).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> ShutdownReport {
        let shared = self.shared;
        let config = &shared.config;
        let in_flight = InFlight::default();
        let mut tasks: JoinSet<Settled> = JoinSet::new();
        let mut idle = config.poll_min;
        let purger = shared.purge.clone().map(|(store, every)| {
            let shared = shared.clone();
            tokio::spawn(purge_periodically(shared, store, every))
        });
        tokio::pin!(shutdown);
        loop {
            while tasks.try_join_next().is_some() {}
            // Wait for a free slot, then take every free slot up to the batch size.
            let first = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                slot = shared.slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let mut slots = vec![first];
            while slots.len() < config.batch_size {
                match shared.slots.clone().try_acquire_owned() {
                    Ok(slot) => slots.push(slot),
                    Err(_) => break,
                }
            }
            let wait = match shared.queue.lease(slots.len(), config.lease_for).await {
                Ok(batch) if !batch.is_empty() => {
                    idle = config.poll_min;
                    Counters::bump(&shared.counters.leased, batch.len() as u64);
                    Counters::bump(&shared.counters.leases, 1);
                    for leased in batch {
                        let slot = slots.pop();
                        tasks.spawn(handle(shared.clone(), in_flight.clone(), leased, slot));
                    }
                    continue;
                }
                Ok(_) => idle,
                Err(error) => {
                    Counters::bump(&shared.counters.lease_errors, 1);
                    tracing::warn!(%error, "leasing from the queue failed; backing off");
                    idle
                }
            };
            drop(slots);
            idle = (idle * 2).min(config.poll_max);
            let woken = async {
                match &shared.wake {
                    Some(signal) => signal.lock().await.woken().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = woken => idle = config.poll_min,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(purger) = purger {
            purger.abort();
        }
        drain(&shared, tasks, &in_flight).await
    }

    /// Runs the worker on a new task; stop it with [`WorkerHandle::shutdown`]. Dropping the
    /// handle shuts the worker down too.
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = self.clone();
        let join = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        WorkerHandle {
            stop: Some(stop),
            join,
            worker,
        }
    }
}

/// A running worker; see [`Worker::spawn`].
#[derive(Debug)]
pub struct WorkerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<ShutdownReport>,
    worker: Worker,
}

impl WorkerHandle {
    /// Running totals.
    pub fn stats(&self) -> WorkerStats {
        self.worker.stats()
    }

    /// The worker (for its stats and queue).
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Shuts down gracefully (see [`Worker::run`]) and returns what happened.
    pub async fn shutdown(mut self) -> ShutdownReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.join).await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, "worker task failed");
                ShutdownReport::default()
            }
        }
    }
}

/// Waits for in-flight work up to the shutdown timeout, abandons the rest, and hands its
/// messages back.
async fn drain(
    shared: &Arc<Shared>,
    mut tasks: JoinSet<Settled>,
    in_flight: &InFlight,
) -> ShutdownReport {
    let mut report = ShutdownReport::default();
    let deadline = tokio::time::sleep(shared.config.shutdown_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(_) => report.finished += 1,
                None => break,
            },
            _ = &mut deadline => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    let leftovers: Vec<Lease> = lock(in_flight).drain().map(|(_, lease)| lease).collect();
    let now = shared.clock.now();
    for lease in leftovers {
        match give_back(&*shared.queue, &lease, now, SHUTDOWN_REASON).await {
            Ok(()) => report.given_back.push(lease.message),
            // Settled just before it was abandoned.
            Err(StoreError::LeaseLost) => {}
            Err(error) => {
                tracing::warn!(message = %lease.message, %error, "could not hand back a message at shutdown; it returns when its lease expires");
                report.give_back_failed += 1;
            }
        }
    }
    report.given_back.sort();
    Counters::bump(&shared.counters.given_back, report.given_back.len() as u64);
    report
}

/// Makes a message ready again at `at` without it having been handled, giving back the
/// attempt its lease counted ([`Queue::defer`]); `reason` is only logged.
async fn give_back(
    queue: &dyn Queue,
    lease: &Lease,
    at: SystemTime,
    reason: &str,
) -> Result<(), StoreError> {
    tracing::debug!(message = %lease.message, reason, "handing a message back without using an attempt");
    queue.defer(lease, at).await
}

/// Handles one leased message: runs the handler under a heartbeat, then settles.
async fn handle(
    shared: Arc<Shared>,
    in_flight: InFlight,
    leased: Leased,
    slot: Option<OwnedSemaphorePermit>,
) -> Settled {
    Counters::bump(&shared.counters.in_flight, 1);
    let _guard = InFlightGuard {
        shared: shared.clone(),
        _slot: slot,
    };
    let message = leased.lease.message;
    let (attempt, max_attempts) = (leased.attempt, leased.max_attempts);
    let last = leased.is_last_attempt();
    let slot = (message, leased.lease.token);
    lock(&in_flight).insert(slot, leased.lease);

    let call = AssertUnwindSafe(shared.handler.clone().oneshot(Event::from(leased))).catch_unwind();
    let outcome = heartbeat(&shared, &in_flight, slot, call).await;
    let lease = lock(&in_flight).get(&slot).copied();
    let Some(lease) = lease else {
        // Not reachable: only this task removes its entry.
        return Settled::Unsettled("lease not tracked".into());
    };

    let error = match outcome {
        Ok(Ok(ran)) => {
            let settled = match ran {
                Ran::Handled => Settled::Acked,
                Ran::Duplicate => Settled::Duplicate,
            };
            let result = shared.queue.ack(&lease).await;
            return finish(&shared, &in_flight, slot, &lease, result, settled);
        }
        Ok(Err(error)) => error,
        Err(panic) => {
            Counters::bump(&shared.counters.panicked, 1);
            HandlerError::retry(format!("handler panicked: {}", panic_message(&*panic)))
        }
    };
    let now = shared.clock.now();
    let (result, settled) = match error.kind() {
        ErrorKind::Deferred { until } => {
            let reason = error.to_string();
            let at = until.max(now);
            (
                give_back(&*shared.queue, &lease, at, &reason).await,
                Settled::Deferred(at),
            )
        }
        ErrorKind::Permanent => {
            let reason = error.to_string();
            (
                shared.queue.dead_letter(&lease, &reason).await,
                Settled::DeadLettered(reason),
            )
        }
        _ if last => {
            let reason = format!("{error} (attempt {attempt} of {max_attempts}: no attempts left)");
            (
                shared.queue.dead_letter(&lease, &reason).await,
                Settled::DeadLettered(reason),
            )
        }
        _ => {
            let policy = &shared.config.retry;
            let delay = match error.requested_delay() {
                Some(delay) => policy.requested(delay),
                None => policy.delay(attempt),
            };
            let at = now + delay;
            (
                shared.queue.retry(&lease, at, &error.to_string()).await,
                Settled::Retried(at),
            )
        }
    };
    finish(&shared, &in_flight, slot, &lease, result, settled)
}

fn finish(
    shared: &Shared,
    in_flight: &InFlight,
    slot: Slot,
    lease: &Lease,
    result: Result<(), StoreError>,
    settled: Settled,
) -> Settled {
    lock(in_flight).remove(&slot);
    let settled = match result {
        Ok(()) => settled,
        Err(error) => {
            tracing::warn!(message = %lease.message, %error, outcome = ?settled, "could not settle a message; it returns when its lease expires");
            Settled::Unsettled(error.to_string())
        }
    };
    shared.counters.record(&settled);
    settled
}

/// Polls `work` to completion, extending the message's lease whenever two thirds of it have
/// passed.
async fn heartbeat<F: Future>(
    shared: &Shared,
    in_flight: &InFlight,
    slot: Slot,
    work: F,
) -> F::Output {
    let message = slot.0;
    let lease_for = shared.config.lease_for;
    // Check the clock at least this often, so renewal follows the clock even when it is not
    // the system clock (a fake clock in tests, a clock corrected by NTP).
    let check_every = (lease_for / 6).max(Duration::from_millis(1));
    tokio::pin!(work);
    // After a failed extension, when to try again.
    let mut pause: Option<Duration> = None;
    let mut extended = false;
    loop {
        let Some(lease) = lock(in_flight).get(&slot).copied() else {
            return work.await;
        };
        let renew_at = lease
            .expires_at
            .checked_sub(lease_for / 3)
            .unwrap_or(lease.expires_at);
        let wait = match pause.take() {
            Some(pause) => pause,
            None => renew_at
                .duration_since(shared.clock.now())
                .unwrap_or(Duration::ZERO)
                .min(check_every),
        };
        // Never extend twice without a pause, even if the queue's idea of the time puts the
        // renewed lease in the past already (a clock skewed against the database's).
        let wait = if extended {
            wait.max(check_every)
        } else {
            wait
        };
        if !wait.is_zero() {
            tokio::select! {
                output = &mut work => return output,
                _ = tokio::time::sleep(wait) => {}
            }
            if shared.clock.now() < renew_at {
                extended = false;
                continue;
            }
        }
        extended = true;
        match shared.queue.extend(&lease, lease_for).await {
            Ok(renewed) => {
                lock(in_flight).insert(slot, renewed);
            }
            Err(StoreError::LeaseLost) => {
                tracing::warn!(%message, "lease lost while the handler runs; its outcome will not be recorded here");
                return work.await;
            }
            Err(error) => {
                tracing::warn!(%message, %error, "could not extend a lease; trying again shortly");
                pause = Some((lease_for / 10).max(Duration::from_millis(10)));
            }
        }
    }
}

/// Purges the queue and the dedupe store every `every` (the first purge right away) until
/// aborted.
async fn purge_periodically(
    shared: Arc<Shared>,
    store: Option<Arc<dyn IdempotencyStore>>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let queue = shared.queue.purge_expired().await;
        let claims = match &store {
            Some(store) => store.purge_expired().await,
            None => Ok(0),
        };
        for (what, outcome) in [("handled events", queue), ("idempotency keys", claims)] {
            match outcome {
                Ok(purged) => {
                    Counters::bump(&shared.counters.purged, purged);
                    if purged > 0 {
                        tracing::debug!(purged, "purged {what} past their retention");
                    }
                }
                Err(error) => tracing::warn!(%error, "purging {what} failed"),
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

impl Worker {
    /// The admin view of the worker's dead letters.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters::new(self.shared.queue.clone())
    }
}
