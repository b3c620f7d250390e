//! [`Replayer`]: runs the event log's durable replay jobs in bounded, paced batches.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{EventFilter, EventLog, ReplayJob, ReplayJobId, ReplayMode, StoreError};

/// Events per [`step_replay`](EventLog::step_replay) unless configured otherwise.
pub const DEFAULT_REPLAY_BATCH: usize = 500;

/// Runs replay jobs over an [`EventLog`]: creates them, steps them a bounded batch at a time
/// at a limited rate, reports progress after each batch, and resumes the jobs a restart
/// left running.
///
/// Each step commits its batch with the job's cursor, so a replayer killed at any point
/// and started again ([`resume`](Self::resume)) goes on where the job stopped and never
/// replays an event twice for one job.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use hookdock::store::{
///     EventFilter, EventLog, EventStatus, MemoryQueue, Queue, ReplayMode, Replayer,
/// };
/// use hookdock::RawEvent;
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
///
/// let queue = Arc::new(MemoryQueue::new());
/// for i in 0..3 {
///     let id = format!("d-{i}");
///     queue.enqueue(RawEvent::new("github", id, SystemTime::now(), "{}")).await?;
/// }
/// for leased in queue.lease(3, Duration::from_secs(30)).await? {
///     queue.ack(&leased.lease).await?;
/// }
///
/// // A handler bug is fixed: run the three again, even though they completed.
/// let replayer = Replayer::new(queue.clone()).batch_size(2).rate(1_000);
/// let job = replayer
///     .replay(&EventFilter::all().source("github"), ReplayMode::Forced)
///     .await?;
/// assert_eq!((job.replayed, job.skipped), (3, 0));
/// let page = queue.list(&EventFilter::all().status(EventStatus::Pending)).await?;
/// assert!(page.entries.iter().all(|e| e.forced_replays == 1));
/// # Ok::<(), hookdock::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Replayer {
    log: Arc<dyn EventLog>,
    batch: usize,
    rate: Option<u32>,
}

impl fmt::Debug for Replayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayer")
            .field("batch", &self.batch)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Replayer {
    /// A replayer over `log` (an `Arc` of a backend's queue works), in batches of
    /// [`DEFAULT_REPLAY_BATCH`], at no rate limit.
    pub fn new(log: impl EventLog) -> Self {
        Self {
            log: Arc::new(log),
            batch: DEFAULT_REPLAY_BATCH,
            rate: None,
        }
    }

    /// Events per batch (at least 1); each batch is one transaction.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// At most `events_per_second` events selected per second (at least 1), so a large
    /// replay does not flood the workers; the pause comes between batches.
    pub fn rate(mut self, events_per_second: u32) -> Self {
        self.rate = Some(events_per_second.max(1));
        self
    }

    /// Creates a durable job over the events matching `filter`; nothing runs until
    /// [`run`](Self::run).
    pub async fn start(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        let job = self.log.create_replay(filter, mode).await?;
        tracing::info!(
            job = %job.id,
            mode = job.mode.as_str(),
            total = job.total,
            "replay job created"
        );
        Ok(job)
    }

    /// Steps `job` until it is over (finished or cancelled), calling `progress` after each
    /// batch; returns the job as it ended. A job that is over already returns at once.
    pub async fn run(
        &self,
        job: ReplayJobId,
        progress: &mut (dyn FnMut(&ReplayJob) + Send),
    ) -> Result<ReplayJob, StoreError> {
        let mut done_before = match self.log.replay_job(job).await? {
            Some(j) => j.done(),
            None => return Err(StoreError::UnknownReplayJob(job)),
        };
        loop {
            let started = tokio::time::Instant::now();
            let now = self.log.step_replay(job, self.batch).await?;
            progress(&now);
            if now.is_over() {
                tracing::info!(
                    job = %now.id,
                    state = now.state.as_str(),
                    replayed = now.replayed,
                    skipped = now.skipped,
                    "replay job over"
                );
                return Ok(now);
            }
            if let Some(rate) = self.rate {
                let went = now.done().saturating_sub(done_before).max(1);
                let due = Duration::from_secs_f64(went as f64 / f64::from(rate));
                tokio::time::sleep_until(started + due).await;
            }
            done_before = now.done();
        }
    }

    /// Creates a job over `filter` and runs it to the end.
    pub async fn replay(
        &self,
        filter: &EventFilter,
        mode: ReplayMode,
    ) -> Result<ReplayJob, StoreError> {
        let job = self.start(filter, mode).await?;
        self.run(job.id, &mut |_| {}).await
    }

    /// Runs every job still running (oldest first), as after a restart; returns them as
    /// they ended.
    pub async fn resume(
        &self,
        progress: &mut (dyn FnMut(&ReplayJob) + Send),
    ) -> Result<Vec<ReplayJob>, StoreError> {
        let mut running = self.log.replay_jobs(true).await?;
        running.reverse();
        let mut out = Vec::with_capacity(running.len());
        for job in running {
            tracing::info!(job = %job.id, done = job.done(), total = job.total, "resuming replay job");
            out.push(self.run(job.id, progress).await?);
        }
        Ok(out)
    }
}
