//! The [`Worker`]: leases events from a [`Queue`] and runs the handler stack on them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use super::builder::Config;
use super::flow::{Admission, Flow};
use super::report::{BatchReport, Counters, Settled, ShutdownReport, WorkerStats};
use super::stale::Verdict;
use super::{ErrorKind, Event, HandlerError};
use crate::clock::SharedClock;
use crate::metrics_shim::{EventLabels, Timer};
use crate::store::{
    DeadLetters, IdempotencyStore, Lease, LeaseToken, Leased, MessageId, Queue, StoreError, Wake,
};

/// How often a running worker purges its dedupe store unless configured otherwise: hourly.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Reason recorded for work handed back because the worker shut down first.
pub const SHUTDOWN_REASON: &str = "the worker shut down before the handler finished";

/// What the boxed handler stack reports on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ran {
    Handled,
    Duplicate,
}

pub(super) type Handler = BoxCloneSyncService<Event, Ran, HandlerError>;

/// Runs a handler over a [`Queue`]: leases batches, runs the handler stack (dedupe → your
/// service) with bounded concurrency, keeps long work leased, and settles every message.
///
/// | the handler stack returns | the worker |
/// |---|---|
/// | `Ok` (handled, or a completed duplicate skipped by dedupe) | acks |
/// | a [retryable](HandlerError::retry) error, or a panic | retries at now + the [`RetryPolicy`](super::RetryPolicy) delay, or dead-letters on the last attempt |
/// | a [permanent](HandlerError::permanent) error (a decode failure, a fingerprint mismatch) | dead-letters with the error as reason |
/// | a [deferred](ErrorKind::Deferred) error (dedupe found a live claim elsewhere) | hands the message back, to be leased again at the claim's expiry |
///
/// Every time decision (retry times, lease renewal) reads the worker's [`Clock`](crate::clock::Clock); give it the
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
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) queue: Arc<dyn Queue>,
    pub(super) handler: Handler,
    pub(super) config: Config,
    pub(super) clock: SharedClock,
    pub(super) wake: Option<Arc<tokio::sync::Mutex<Box<dyn Wake>>>>,
    pub(super) slots: Arc<Semaphore>,
    pub(super) flow: Flow,
    pub(super) counters: Counters,
    /// How often to purge the queue and the dedupe store (if any) of what is past retention.
    pub(super) purge: Option<(Option<Arc<dyn IdempotencyStore>>, Duration)>,
    /// Where dead letters are reported, if anywhere.
    pub(super) alerts: Option<crate::alert::Alerts>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.shared.config)
            .field("wake", &self.shared.wake.is_some())
            .finish_non_exhaustive()
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
            // Wake for the first message flow control handed back, if that comes sooner.
            let wait = match shared.flow.next_wake() {
                Some(at) => wait.min(at.saturating_duration_since(tokio::time::Instant::now())),
                None => wait,
            };
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

/// Handles one leased message in its `attempt` span (the same field names as the intake's
/// `delivery` span; never the body or a header value).
async fn handle(
    shared: Arc<Shared>,
    in_flight: InFlight,
    leased: Leased,
    slot: Option<OwnedSemaphorePermit>,
) -> Settled {
    let span = tracing::info_span!(
        "attempt",
        source = leased.event.source.as_str(),
        event_id = %leased.event.id,
        event_type = leased.event.event_type.as_ref().map(|t| t.as_str()),
        attempt = leased.attempt,
    );
    tracing::Instrument::instrument(attempt(shared, in_flight, leased, slot), span).await
}

/// Runs the handler under a heartbeat, then settles, and records what happened.
async fn attempt(
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
    let labels =
        EventLabels::of(&leased.event).event_time(shared.config.staleness.event_time(&leased));

    // A stale event is settled before flow control: skipping it takes no token.
    let stale = match shared.config.staleness.judge(&leased, shared.clock.now()) {
        Verdict::Run { stale } => stale,
        Verdict::Skip(reason, why) => {
            labels.skipped(why);
            let lease = leased.lease;
            tracing::debug!(message = %lease.message, %reason, "skipping a stale event");
            let result = shared.queue.skip(&lease, &reason).await;
            let settled = finish(&shared, &in_flight, slot, &lease, result, Settled::Skipped);
            record(&shared, &labels, &settled, None);
            return settled;
        }
    };
    // Only kept when a dead letter would be reported.
    let named = shared
        .alerts
        .as_ref()
        .map(|_| (leased.event.source.clone(), leased.event.id.to_string()));

    // Without limits admission is immediate: no heartbeat (a lock and a timer) around it.
    let admission = shared.flow.admit(&leased.event);
    let admitted = if shared.flow.is_off() {
        admission.await
    } else {
        heartbeat(&shared, &in_flight, slot, admission).await
    };
    let _pass = match admitted {
        Admission::Run(pass) => pass,
        Admission::Later(after) => {
            return hand_back(&shared, &in_flight, slot, &labels, after).await
        }
    };
    let event = Event::from(leased).with_stale(stale);
    let call = AssertUnwindSafe(shared.handler.clone().oneshot(event)).catch_unwind();
    let timer = Timer::start();
    let outcome = heartbeat(&shared, &in_flight, slot, call).await;
    labels.ran(timer);
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
            let settled = finish(&shared, &in_flight, slot, &lease, result, settled);
            record(&shared, &labels, &settled, None);
            return settled;
        }
        Ok(Err(error)) => error,
        Err(panic) => {
            Counters::bump(&shared.counters.panicked, 1);
            HandlerError::retry(format!("handler panicked: {}", panic_message(&*panic)))
        }
    };
    let now = shared.clock.now();
    let mut cause = None;
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
            cause = Some("permanent");
            let reason = error.to_string();
            (
                shared.queue.dead_letter(&lease, &reason).await,
                Settled::DeadLettered(reason),
            )
        }
        _ if last => {
            cause = Some("exhausted");
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
    let settled = finish(&shared, &in_flight, slot, &lease, result, settled);
    record(&shared, &labels, &settled, cause);
    if let (Settled::DeadLettered(reason), Some(alerts), Some((source, id))) =
        (&settled, &shared.alerts, named)
    {
        alerts.dead_letter(source, id, reason);
    }
    settled
}

/// Hands a message back that flow control holds for `after` (no attempt used).
async fn hand_back(
    shared: &Shared,
    in_flight: &InFlight,
    slot: Slot,
    labels: &EventLabels,
    after: Duration,
) -> Settled {
    let Some(lease) = lock(in_flight).get(&slot).copied() else {
        return Settled::Unsettled("lease not tracked".into());
    };
    let at = shared.clock.now() + after;
    let result = give_back(
        &*shared.queue,
        &lease,
        at,
        "flow control: over a rate limit or a source's cap",
    )
    .await;
    let settled = finish(
        shared,
        in_flight,
        slot,
        &lease,
        result,
        Settled::Deferred(at),
    );
    record(shared, labels, &settled, None);
    settled
}

/// Records how an attempt was settled; `cause` says why a dead letter is one.
fn record(shared: &Shared, labels: &EventLabels, settled: &Settled, cause: Option<&'static str>) {
    labels.settled(settled.as_str());
    match settled {
        Settled::Acked | Settled::Duplicate => labels.done("succeeded", shared.clock.now()),
        Settled::Retried(_) => labels.retried(),
        Settled::DeadLettered(_) => {
            labels.dead_lettered(cause.unwrap_or("permanent"));
            labels.done("dead", shared.clock.now());
        }
        Settled::Skipped => labels.done("stale", shared.clock.now()),
        Settled::Deferred(_) | Settled::Unsettled(_) => {}
    }
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
        for (what, outcome) in [("events", queue), ("idempotency_keys", claims)] {
            match outcome {
                Ok(purged) => {
                    Counters::bump(&shared.counters.purged, purged);
                    crate::metrics_shim::purged(what, purged);
                    if purged > 0 {
                        tracing::debug!(purged, what, "purged past their retention");
                    }
                }
                Err(error) => tracing::warn!(%error, what, "purging failed"),
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
