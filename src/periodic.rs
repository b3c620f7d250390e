//! The one sampling loop behind [`QueueWatch`](crate::alert::QueueWatch) and
//! `metrics::QueueGauges`: sample at once, then every interval, on a task of its own.

use std::future::Future;
use std::time::Duration;

use crate::store::StoreError;

/// Spawns a task that awaits `sample` at once and then every `every` (a late tick is taken
/// late, not twice); a failed sample is logged with `what` and tried again at the next tick.
/// The task runs until its handle is aborted.
pub(crate) fn spawn<S, F>(
    every: Duration,
    what: &'static str,
    mut sample: S,
) -> tokio::task::JoinHandle<()>
where
    S: FnMut() -> F + Send + 'static,
    F: Future<Output = Result<(), StoreError>> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = sample().await {
                tracing::warn!(%error, "{what}: reading the event log's counts failed");
            }
        }
    })
}
