//! Wake-ups through `LISTEN/NOTIFY`: idle workers sleep until something is enqueued.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{select, Either};
use sqlx::postgres::{PgListener, PgPool};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::watch;

/// The queue's side: hands out [`PgWakeup`]s and runs the listener while any exists.
#[derive(Debug)]
pub(super) struct WakeSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    channel: String,
    /// Bumped on every notification (and whenever notifications may have been missed).
    tx: watch::Sender<u64>,
    /// Whether a listener task is running; changed only under this lock.
    running: Arc<Mutex<bool>>,
}

impl WakeSource {
    pub(super) fn new(pool: PgPool, channel: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                channel,
                tx: watch::channel(0).0,
                running: Arc::new(Mutex::new(false)),
            }),
        }
    }

    pub(super) fn subscribe(&self) -> PgWakeup {
        PgWakeup {
            rx: self.inner.tx.subscribe(),
            inner: self.inner.clone(),
        }
    }
}

/// A wake-up signal from a [`PgQueue`](super::PgQueue) (its
/// [`wake_signal`](crate::store::Queue::wake_signal)): resolves when any process enqueues or
/// replays events in the queue's schema.
///
/// A worker leases until the queue is empty, then awaits the signal (with a timeout, so
/// that retries scheduled for later are picked up too). A notification sent while the worker
/// was busy is not lost: the next wait then resolves at once. Clones share the listener.
#[derive(Debug, Clone)]
pub(super) struct PgWakeup {
    rx: watch::Receiver<u64>,
    inner: Arc<Inner>,
}

impl PgWakeup {
    /// Waits for the next notification since the last call (or since this signal was
    /// made). Starts the listener on first use. Spurious wake-ups are possible (after the
    /// listener reconnects, for example); the caller just polls the queue again.
    pub(super) async fn notified(&mut self) {
        self.inner.ensure_running();
        if self.rx.changed().await.is_err() {
            // Cannot happen while `self.inner` holds the sender; never spin if it does.
            std::future::pending::<()>().await;
        }
    }
}

impl Inner {
    fn ensure_running(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if !*running {
            *running = true;
            tokio::spawn(listen(
                self.pool.clone(),
                self.channel.clone(),
                self.tx.clone(),
                self.running.clone(),
            ));
        }
    }
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|v| *v = v.wrapping_add(1));
}

/// Listens until no [`PgWakeup`] is left (or the pool is closed).
async fn listen(pool: PgPool, channel: String, tx: watch::Sender<u64>, running: Arc<Mutex<bool>>) {
    let stop = || {
        let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
        if tx.receiver_count() == 0 || pool.is_closed() {
            *r = false;
            true
        } else {
            false
        }
    };
    loop {
        if stop() {
            return;
        }
        let mut listener = match connect(&pool, &channel).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, channel, "hookdock: LISTEN failed; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Anything sent before LISTEN took effect was missed: let the waiters look.
        bump(&tx);
        loop {
            let next = {
                let closed = pin!(tx.closed());
                let recv = pin!(listener.try_recv());
                match select(closed, recv).await {
                    Either::Left(((), _)) => None,
                    Either::Right((r, _)) => Some(r),
                }
            };
            match next {
                // No waiter left (or one just arrived: start over with a fresh connection).
                None => break,
                Some(Ok(Some(_))) => bump(&tx),
                // Connection lost and re-established: notifications may have been missed.
                Some(Ok(None)) => bump(&tx),
                Some(Err(sqlx::Error::PoolClosed)) => {
                    bump(&tx);
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, channel, "hookdock: LISTEN connection failed; reconnecting");
                    bump(&tx);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

impl crate::store::Wake for PgWakeup {
    fn woken(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.notified())
    }
}
