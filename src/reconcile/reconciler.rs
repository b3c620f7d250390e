//! The [`Reconciler`]: its settings, its schedule, and the leadership of each source.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::pass::Pass;
use super::report::PassReport;
use super::source::{ChangeSource, FetchedEvent};
use crate::alert::Alerts;
use crate::clock::{Clock, SystemClock};
use crate::ordering::OrderingKey;
use crate::store::{CheckpointStore, EventLog, Leadership, StoreError};

/// How often a pass runs by default: every 15 minutes, as the seeds advise.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(15 * 60);
/// How far a window reaches back into the previous one by default, for clock skew and
/// events the provider lists late.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(5 * 60);
/// The most changes asked for in one page by default (Stripe's maximum).
pub const DEFAULT_PAGE_SIZE: usize = 100;

type OrderingFn = dyn Fn(&FetchedEvent) -> Option<OrderingKey> + Send + Sync;

/// The reconciler's settings, shared with each pass.
pub(super) struct Settings {
    pub(super) every: Duration,
    pub(super) jitter: f64,
    pub(super) overlap: Duration,
    pub(super) first_window: Duration,
    pub(super) page_size: usize,
    pub(super) max_retries: u32,
    pub(super) max_rate_limit_waits: u32,
    pub(super) backoff_base: Duration,
    pub(super) max_wait: Duration,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) ordering: Option<Arc<OrderingFn>>,
}

impl Settings {
    /// Exponential backoff with full jitter for the `attempt`th failure in a row.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_wait);
        cap.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// The time to the next pass: the interval, less up to `jitter` of it, so passes of
    /// many processes spread out and none waits longer than one interval.
    fn next_in(&self) -> Duration {
        self.every.mul_f64(1.0 - self.jitter * fastrand::f64())
    }
}

/// Builds a [`Reconciler`]; see [`Reconciler::builder`].
pub struct ReconcilerBuilder {
    log: Arc<dyn EventLog>,
    checkpoints: Arc<dyn CheckpointStore>,
    sources: Vec<Arc<dyn ChangeSource>>,
    settings: Settings,
    alerts: Option<Alerts>,
}

impl ReconcilerBuilder {
    /// Adds a source. Each source has its own checkpoint, leadership and schedule.
    pub fn source(mut self, source: impl ChangeSource) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Adds a shared source.
    pub fn shared_source(mut self, source: Arc<dyn ChangeSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// How often each source is walked (default [`DEFAULT_EVERY`]). Each wait is shortened
    /// by up to the jitter, never lengthened.
    pub fn every(mut self, every: Duration) -> Self {
        self.settings.every = every.max(Duration::from_millis(1));
        self
    }

    /// The share of the interval a wait may be shortened by, `0.0..=0.5` (default `0.1`).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.settings.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 0.5)
        } else {
            0.1
        };
        self
    }

    /// How far each window reaches back into the previous one (default
    /// [`DEFAULT_OVERLAP`]); what it sees twice the queue's dedupe absorbs.
    pub fn overlap(mut self, overlap: Duration) -> Self {
        self.settings.overlap = overlap;
        self
    }

    /// How far back the very first pass of a source looks (default: one interval). Older
    /// changes are left alone, so adding reconciliation to a running receiver does not
    /// replay the provider's whole history into the handler.
    pub fn first_window(mut self, window: Duration) -> Self {
        self.settings.first_window = window;
        self
    }

    /// The most changes asked for per page (default [`DEFAULT_PAGE_SIZE`]).
    pub fn page_size(mut self, size: usize) -> Self {
        self.settings.page_size = size.max(1);
        self
    }

    /// How many failures in a row a pass tries again before it stops (default 5), and the
    /// first backoff (default 1 s, doubling, with jitter).
    pub fn retries(mut self, max_retries: u32, backoff: Duration) -> Self {
        self.settings.max_retries = max_retries;
        self.settings.backoff_base = backoff;
        self
    }

    /// The longest wait for a rate limit or a backoff (default 5 minutes), and how many
    /// rate-limit waits one pass accepts before it stops (default 100).
    pub fn max_wait(mut self, max_wait: Duration, max_rate_limit_waits: u32) -> Self {
        self.settings.max_wait = max_wait;
        self.settings.max_rate_limit_waits = max_rate_limit_waits;
        self
    }

    /// The clock windows are read from (default the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.settings.clock = Arc::new(clock);
        self
    }

    /// The ordering key of a fetched event, for routes with ordering (the same key the
    /// push route's extractor gives).
    pub fn ordering(
        mut self,
        extract: impl Fn(&FetchedEvent) -> Option<OrderingKey> + Send + Sync + 'static,
    ) -> Self {
        self.settings.ordering = Some(Arc::new(extract));
        self
    }

    /// Fires [`Alert::RecoveryRate`](crate::alert::Alert::RecoveryRate) after a pass whose
    /// recovery rate is over the alerts' threshold.
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The reconciler.
    pub fn build(self) -> Reconciler {
        let mut settings = self.settings;
        if settings.first_window.is_zero() {
            settings.first_window = settings.every;
        }
        Reconciler {
            inner: Arc::new(Inner {
                log: self.log,
                checkpoints: self.checkpoints,
                sources: self.sources,
                settings,
                alerts: self.alerts,
                leaders: Mutex::new(HashMap::new()),
                last: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl fmt::Debug for ReconcilerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcilerBuilder")
            .field(
                "sources",
                &self
                    .sources
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

struct Inner {
    log: Arc<dyn EventLog>,
    checkpoints: Arc<dyn CheckpointStore>,
    sources: Vec<Arc<dyn ChangeSource>>,
    settings: Settings,
    alerts: Option<Alerts>,
    leaders: Mutex<HashMap<String, Arc<dyn Leadership>>>,
    last: Mutex<HashMap<String, PassReport>>,
}

/// The reconciliation poll: walks each [`ChangeSource`] every interval and stores what the
/// push path missed into the same queue, so the worker's dedupe and handler see it like any
/// pushed event. See the [module docs](super).
#[derive(Clone)]
pub struct Reconciler {
    inner: Arc<Inner>,
}

impl fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconciler")
            .field("sources", &self.source_names())
            .field("every", &self.inner.settings.every)
            .finish_non_exhaustive()
    }
}

/// What [`Reconciler::run_once`] did with one source.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PassOutcome {
    /// This process leads the source and walked it.
    Ran(PassReport),
    /// Another process leads the source; nothing was done.
    NotLeader,
}

impl PassOutcome {
    /// The report, if the pass ran.
    pub fn report(&self) -> Option<&PassReport> {
        match self {
            PassOutcome::Ran(report) => Some(report),
            PassOutcome::NotLeader => None,
        }
    }
}

/// Why [`Reconciler::run_once`] could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// No source of that name was added.
    #[error("no reconciliation source named {0:?}")]
    UnknownSource(String),
    /// The checkpoint store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Reconciler {
    /// A reconciler storing into `log` (the push path's queue) with its checkpoints in
    /// `checkpoints` (usually the same backend's queue: every backend's queue type
    /// implements both).
    pub fn builder(
        log: Arc<dyn EventLog>,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> ReconcilerBuilder {
        ReconcilerBuilder {
            log,
            checkpoints,
            sources: Vec::new(),
            settings: Settings {
                every: DEFAULT_EVERY,
                jitter: 0.1,
                overlap: DEFAULT_OVERLAP,
                first_window: Duration::ZERO,
                page_size: DEFAULT_PAGE_SIZE,
                max_retries: 5,
                max_rate_limit_waits: 100,
                backoff_base: Duration::from_secs(1),
                max_wait: Duration::from_secs(300),
                clock: Arc::new(SystemClock),
                ordering: None,
            },
            alerts: None,
        }
    }

    /// The names of the sources, in the order they were added.
    pub fn source_names(&self) -> Vec<String> {
        self.inner
            .sources
            .iter()
            .map(|s| s.name().to_owned())
            .collect()
    }

    /// The last report of each source this reconciler ran, by source name.
    pub fn last_reports(&self) -> Vec<PassReport> {
        let last = self.inner.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut reports: Vec<_> = last.values().cloned().collect();
        reports.sort_by(|a, b| a.source.cmp(&b.source));
        reports
    }

    /// Runs one pass over the source `name` now, if this process leads it.
    pub async fn run_once(&self, name: &str) -> Result<PassOutcome, ReconcileError> {
        let source = self
            .inner
            .sources
            .iter()
            .find(|s| s.name() == name)
            .cloned()
            .ok_or_else(|| ReconcileError::UnknownSource(name.to_owned()))?;
        let Some(leadership) = self.lead(name).await? else {
            return Ok(PassOutcome::NotLeader);
        };
        let inner = &self.inner;
        let report = Pass {
            source: source.as_ref(),
            log: inner.log.as_ref(),
            checkpoints: inner.checkpoints.as_ref(),
            leadership: leadership.as_ref(),
            settings: &inner.settings,
        }
        .run()
        .await?;
        self.finish(&report).await;
        Ok(PassOutcome::Ran(report))
    }

    /// Holds (or takes) the leadership of `name`.
    async fn lead(&self, name: &str) -> Result<Option<Arc<dyn Leadership>>, StoreError> {
        let held = self
            .inner
            .leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        if let Some(leadership) = held {
            if leadership.holds().await {
                return Ok(Some(leadership));
            }
            tracing::warn!(source = name, "reconciliation leadership lost");
            self.inner
                .leaders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
        }
        let Some(leadership) = self.inner.checkpoints.try_lead(name).await? else {
            return Ok(None);
        };
        let leadership: Arc<dyn Leadership> = Arc::from(leadership);
        tracing::info!(source = name, "leading reconciliation");
        self.inner
            .leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), Arc::clone(&leadership));
        Ok(Some(leadership))
    }

    /// Logs, keeps, stores and measures a finished pass.
    async fn finish(&self, report: &PassReport) {
        let rate = report.recovery_rate();
        match &report.error {
            None => tracing::info!(
                source = %report.source, seen = report.seen, known = report.known,
                recovered = report.recovered, redeliveries = report.redeliveries,
                gaps = report.gaps.len(), rate, duration = ?report.duration,
                "reconciliation pass done"
            ),
            Some(error) => tracing::warn!(
                source = %report.source, seen = report.seen, recovered = report.recovered,
                redeliveries = report.redeliveries, error = %error,
                "reconciliation pass stopped early; it resumes from its checkpoint"
            ),
        }
        for gap in &report.gaps {
            tracing::error!(source = %report.source, from = ?gap.from, to = ?gap.to,
                "reconciliation gap: the provider no longer keeps these changes");
        }
        crate::metrics_shim::reconcile_pass(report);
        if let Some(alerts) = &self.inner.alerts {
            if report.seen > 0 {
                alerts.recovery_rate(&report.source, rate);
            }
        }
        if let Err(error) = self.inner.checkpoints.save_report(report).await {
            tracing::warn!(source = %report.source, %error, "storing the reconciliation report failed");
        }
        self.inner
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(report.source.clone(), report.clone());
    }

    /// Runs every source on its schedule until `shutdown` resolves: a pass at once, then one
    /// every interval (jittered); a pass that stopped early is tried again sooner, backing
    /// off. A process that does not lead a source tries to take it over every interval.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut tasks = tokio::task::JoinSet::new();
        for source in self.source_names() {
            let me = self.clone();
            tasks.spawn(async move { me.schedule(source).await });
        }
        shutdown.await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.inner
            .leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    async fn schedule(&self, name: String) {
        let mut failures = 0u32;
        loop {
            let wait = match self.run_once(&name).await {
                Ok(PassOutcome::Ran(report)) if report.completed() => {
                    failures = 0;
                    self.inner.settings.next_in()
                }
                Ok(PassOutcome::NotLeader) => self.inner.settings.next_in(),
                Ok(PassOutcome::Ran(_)) | Err(_) => {
                    failures += 1;
                    self.inner
                        .settings
                        .backoff(failures)
                        .min(self.inner.settings.every)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs the reconciler on a new task; stop it with [`ReconcilerHandle::shutdown`].
    pub fn spawn(self) -> ReconcilerHandle {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let reconciler = self.clone();
        let join = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        ReconcilerHandle {
            stop: Some(stop),
            join,
            reconciler,
        }
    }
}

/// A running reconciler; see [`Reconciler::spawn`].
#[derive(Debug)]
pub struct ReconcilerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<()>,
    reconciler: Reconciler,
}

impl ReconcilerHandle {
    /// The reconciler (for its last reports).
    pub fn reconciler(&self) -> &Reconciler {
        &self.reconciler
    }

    /// Stops it: a pass under way stops where it is (its checkpoint keeps its place) and
    /// the leaderships are released.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.join).await;
    }
}
