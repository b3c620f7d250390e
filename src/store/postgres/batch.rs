//! Group commit for PostgreSQL: concurrent calls of one kind (enqueue, ack, claim, complete)
//! are collected by one background task and written by one statement.
//!
//! A caller sends its request with a oneshot for the answer and awaits it. The task takes
//! everything pending (up to the batch size), runs it as one batch, answers every caller,
//! and repeats: while one batch is in the database the next one gathers, so batches grow
//! with load and a lone caller pays one round trip.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::error::PgError;
use crate::store::StoreError;

/// One kind of batched operation.
pub(super) trait BatchOp: Send + Sync + 'static {
    /// One caller's request.
    type Req: Send + 'static;
    /// One caller's answer.
    type Resp: Send + 'static;

    /// Runs a batch; returns exactly one result per request, in order.
    fn run(
        &self,
        reqs: Vec<Self::Req>,
    ) -> impl Future<Output = Vec<Result<Self::Resp, StoreError>>> + Send;
}

/// How many times the task yields to let more requests arrive before running a batch.
const LINGER_YIELDS: usize = 8;

type Job<O> = (
    <O as BatchOp>::Req,
    oneshot::Sender<Result<<O as BatchOp>::Resp, StoreError>>,
);

/// The handle callers use; the task starts on first use and stops when the handle is dropped
/// or closed (after finishing what was sent).
pub(super) struct Batcher<O: BatchOp> {
    op: Arc<O>,
    max: usize,
    /// `None` before the first call; `Some(None)` once closed.
    task: Mutex<Option<Option<Task<O>>>>,
}

struct Task<O: BatchOp> {
    tx: mpsc::Sender<Job<O>>,
    handle: tokio::task::JoinHandle<()>,
}

impl<O: BatchOp> std::fmt::Debug for Batcher<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl<O: BatchOp> Batcher<O> {
    pub(super) fn new(op: O, max: usize) -> Self {
        Self {
            op: Arc::new(op),
            max: max.max(1),
            task: Mutex::new(None),
        }
    }

    /// Stops taking requests and waits until every request already taken is answered.
    pub(super) async fn close(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(None)
            .flatten();
        if let Some(Task { tx, handle }) = task {
            drop(tx);
            let _ = handle.await;
        }
    }

    /// The operation.
    #[cfg(test)]
    pub(super) fn op(&self) -> &O {
        &self.op
    }

    /// Submits one request and waits for its answer. Dropping the future after the request
    /// was taken into a batch does not undo it.
    pub(super) async fn call(&self, req: O::Req) -> Result<O::Resp, StoreError> {
        let tx = {
            let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
            let task = task.get_or_insert_with(|| {
                let (tx, rx) = mpsc::channel(self.max.saturating_mul(4));
                let handle = tokio::spawn(run(self.op.clone(), rx, self.max));
                Some(Task { tx, handle })
            });
            match task {
                Some(task) => task.tx.clone(),
                None => return Err(StoreError::Closed),
            }
        };
        let (reply, answer) = oneshot::channel();
        tx.send((req, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run<O: BatchOp>(op: Arc<O>, mut rx: mpsc::Receiver<Job<O>>, max: usize) {
    let mut jobs = Vec::with_capacity(max);
    while rx.recv_many(&mut jobs, max).await > 0 {
        // Callers woken together (a worker's batch of handlers) submit one after another,
        // possibly from another thread: while more keep arriving, let them, so they share
        // this batch instead of each starting the next one. A lone caller pays one yield.
        for _ in 0..LINGER_YIELDS {
            if jobs.len() >= max {
                break;
            }
            tokio::task::yield_now().await;
            if rx.is_empty() {
                break;
            }
            let room = max - jobs.len();
            rx.recv_many(&mut jobs, room).await;
        }
        let (reqs, replies): (Vec<_>, Vec<_>) = jobs
            .drain(..)
            // A caller that went away before its batch started gets nothing done for it.
            .filter(|(_, reply)| !reply.is_closed())
            .unzip();
        if reqs.is_empty() {
            continue;
        }
        let n = reqs.len();
        let timer = crate::metrics_shim::Timer::start();
        let mut results = op.run(reqs).await;
        crate::metrics_shim::committed("postgres", timer, n);
        debug_assert_eq!(results.len(), n);
        results.resize_with(n, || {
            Err(StoreError::internal(
                "postgres",
                "a batch returned too few results",
            ))
        });
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Runs `attempt` again (up to three times in all) when PostgreSQL aborted it as a
/// deadlock victim or a serialization failure: a batch statement locks many rows, and two
/// batches touching the same rows in another order is possible, if rare. Nothing of an
/// aborted statement was applied, so running it again is safe.
pub(super) async fn on_conflict_retry<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(sqlx::Error::Database(e))
                if tries < 3 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tracing::debug!(error = %e, "hookdock: batch statement aborted by a conflict; running it again");
            }
            other => return other,
        }
    }
}

/// Gives every request in a failed batch its own copy of the error, keeping the source.
pub(super) fn fail_all<T>(n: usize, error: sqlx::Error) -> Vec<Result<T, StoreError>> {
    let shared = Arc::new(error);
    (0..n)
        .map(|_| Err(PgError::Shared(shared.clone()).into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Doubles numbers; records batch sizes.
    struct Double {
        batches: std::sync::Mutex<Vec<usize>>,
        calls: AtomicUsize,
    }

    impl BatchOp for Double {
        type Req = u32;
        type Resp = u32;
        async fn run(&self, reqs: Vec<u32>) -> Vec<Result<u32, StoreError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.batches.lock().unwrap().push(reqs.len());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            reqs.into_iter().map(|r| Ok(r * 2)).collect()
        }
    }

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_answers() {
        let b = Arc::new(Batcher::new(
            Double {
                batches: Default::default(),
                calls: AtomicUsize::new(0),
            },
            16,
        ));
        let tasks: Vec<_> = (0..100u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.call(i).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            assert_eq!(r.unwrap(), i * 2);
        }
        let batches = b.op().batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 100);
        assert!(batches.iter().all(|&n| n <= 16), "{batches:?}");
        assert!(
            b.op().calls.load(Ordering::SeqCst) < 100,
            "no batching happened: {batches:?}"
        );
    }

    #[test]
    fn a_failed_batch_gives_each_caller_the_error_with_its_source() {
        let errs = fail_all::<()>(3, sqlx::Error::Protocol("boom".into()));
        assert_eq!(errs.len(), 3);
        for e in errs {
            let e = e.unwrap_err();
            assert!(e.is_transient(), "{e:?}");
            assert!(e.to_string().contains("boom"));
        }
        assert!(matches!(
            fail_all::<()>(1, sqlx::Error::PoolClosed)[0],
            Err(StoreError::Closed)
        ));
    }
}
