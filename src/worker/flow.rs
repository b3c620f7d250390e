//! Flow control in the worker: rate limits per source, event type or key (feature
//! `rate-limit`) and a cap on the handlers running at once per source.
//!
//! Before the handler runs, an event passes the flow ([`Flow::admit`], awaited inside the
//! heartbeat so its lease stays alive). It first takes one of its source's running slots,
//! then a token from each rate limit that applies to it. Where it has to wait:
//!
//! - a short wait (up to [`WorkerBuilder::max_flow_wait`](super::WorkerBuilder::max_flow_wait))
//!   is spent in its worker slot, but only by a few events per key at once
//!   ([`WAITERS_PER_KEY`] for a rate, the cap itself for a source's slots): enough that the
//!   next token is taken the moment it is due, too few for one limited source's backlog to
//!   fill every worker slot while other sources wait;
//! - any other event is handed back to the queue (`Queue::defer`: no attempt used, never
//!   dropped) to just before the time a token is due for it (one interval, at most half the
//!   longest wait, so that it is back in a slot when the token comes due). The token times
//!   are reserved one interval apart per key, so a backlog comes back as a stream at the limit's rate, not as a herd due at
//!   one instant; events handed back for a source's slots come back after the longest wait,
//!   spread by a random half of it either way.
//!
//! The worker also wakes for the earliest of the times it handed events back to, so a
//! limited stream does not wait for the next idle poll.
//!
//! An event limited by several rates takes their tokens in order; if a later one hands it
//! back, the tokens it took are spent (the configured rates are upper bounds).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[cfg(feature = "rate-limit")]
use crate::limit::{Buckets, RateKey, RateLimit};
use crate::RawEvent;

/// How long an event may wait in its worker slot for the flow unless configured otherwise:
/// 1 second.
pub const DEFAULT_MAX_FLOW_WAIT: Duration = Duration::from_secs(1);

/// How many events of one rate-limit key wait in worker slots at once for a token; the rest
/// are handed back.
pub const WAITERS_PER_KEY: usize = 3;

/// How many handed-back times the worker remembers to wake for (the earliest ones).
const WAKE_TIMES: usize = 4096;

/// The flow settings of a worker, as the builder collects them.
#[derive(Debug, Clone)]
pub(super) struct FlowConfig {
    #[cfg(feature = "rate-limit")]
    pub(super) rates: Vec<RateLimit>,
    pub(super) per_source: Option<usize>,
    pub(super) max_wait: Duration,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            #[cfg(feature = "rate-limit")]
            rates: Vec::new(),
            per_source: None,
            max_wait: DEFAULT_MAX_FLOW_WAIT,
        }
    }
}

/// What the flow decided for an event.
pub(super) enum Admission {
    /// Run the handler now, holding the pass until it is done.
    Run(Pass),
    /// Hand the event back, to be leased again after this long.
    Later(Duration),
}

/// Held while the handler runs: the source's running slot, if capped.
#[derive(Debug)]
pub(super) struct Pass {
    _slot: Option<OwnedSemaphorePermit>,
}

/// One source's running slots under the cap, and how many events wait for one.
struct SourceSlots {
    running: Arc<Semaphore>,
    waiting: usize,
}

/// One event waiting for one of its source's running slots; counted until dropped.
struct SlotWaiter<'a> {
    sources: &'a Mutex<HashMap<String, SourceSlots>>,
    source: &'a str,
}

impl Drop for SlotWaiter<'_> {
    fn drop(&mut self) {
        if let Some(entry) = lock(self.sources).get_mut(self.source) {
            entry.waiting = entry.waiting.saturating_sub(1);
        }
    }
}

/// One rate-limit key: how many events wait in their slots for its token, and the last
/// time reserved for an event handed back.
#[cfg(feature = "rate-limit")]
#[derive(Default)]
struct KeyState {
    waiting: usize,
    reserved: Option<Instant>,
}

#[cfg(feature = "rate-limit")]
struct Rate {
    key: RateKey,
    buckets: Buckets,
    keys: Mutex<HashMap<String, KeyState>>,
}

/// The worker's flow control; see the [module docs](self).
pub(super) struct Flow {
    #[cfg(feature = "rate-limit")]
    rates: Vec<Rate>,
    cap: Option<(usize, Mutex<HashMap<String, SourceSlots>>)>,
    max_wait: Duration,
    wakes: Mutex<BTreeSet<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a few map operations; a poisoned map is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Flow {
    pub(super) fn new(config: &FlowConfig) -> Self {
        Self {
            #[cfg(feature = "rate-limit")]
            rates: config
                .rates
                .iter()
                .map(|limit| Rate {
                    key: limit.key().clone(),
                    buckets: Buckets::new(limit),
                    keys: Mutex::default(),
                })
                .collect(),
            cap: config.per_source.map(|n| (n, Mutex::default())),
            max_wait: config.max_wait,
            wakes: Mutex::default(),
        }
    }

    pub(super) fn is_off(&self) -> bool {
        #[cfg(feature = "rate-limit")]
        if !self.rates.is_empty() {
            return false;
        }
        self.cap.is_none()
    }

    /// Decides whether `event` runs now (waiting a little if it must) or comes back later.
    pub(super) async fn admit(&self, event: &RawEvent) -> Admission {
        if self.is_off() {
            return Admission::Run(Pass { _slot: None });
        }
        let slot = match self.source_slot(&event.source).await {
            Ok(slot) => slot,
            Err(after) => return self.later(after),
        };
        #[cfg(feature = "rate-limit")]
        for rate in &self.rates {
            let Some(key) = rate.key.of(event) else {
                continue;
            };
            if let Err(after) = self.token(rate, &key).await {
                return self.later(after);
            }
        }
        Admission::Run(Pass { _slot: slot })
    }

    /// The earliest time an event this worker handed back comes due, if any is still ahead.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut wakes = lock(&self.wakes);
        while let Some(first) = wakes.first().copied() {
            if first > now {
                return Some(first);
            }
            wakes.pop_first();
        }
        None
    }

    fn later(&self, after: Duration) -> Admission {
        let at = Instant::now() + after;
        let mut wakes = lock(&self.wakes);
        wakes.insert(at);
        if wakes.len() > WAKE_TIMES {
            wakes.pop_last();
        }
        Admission::Later(after)
    }

    /// One of the source's running slots, waiting for it up to the longest wait if few
    /// others wait; otherwise how long to hand the event back for.
    async fn source_slot(&self, source: &str) -> Result<Option<OwnedSemaphorePermit>, Duration> {
        let Some((cap, sources)) = &self.cap else {
            return Ok(None);
        };
        let running = {
            let mut sources = lock(sources);
            let entry = sources
                .entry(source.to_owned())
                .or_insert_with(|| SourceSlots {
                    running: Arc::new(Semaphore::new(*cap)),
                    waiting: 0,
                });
            if let Ok(permit) = entry.running.clone().try_acquire_owned() {
                return Ok(Some(permit));
            }
            if entry.waiting >= *cap {
                return Err(self.spread(self.max_wait));
            }
            entry.waiting += 1;
            entry.running.clone()
        };
        let waiter = SlotWaiter { sources, source };
        let acquired = tokio::time::timeout(self.max_wait, running.acquire_owned()).await;
        drop(waiter);
        match acquired {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(self.spread(self.max_wait)),
        }
    }

    /// `around`, moved by a random amount of up to half of it either way.
    fn spread(&self, around: Duration) -> Duration {
        let half = around / 2;
        half + around.mul_f64(fastrand::f64())
    }

    /// A token from `rate` for `key`, waiting for it in the slot when it is due soon and few
    /// others wait; otherwise how long to hand the event back for (its reserved time).
    #[cfg(feature = "rate-limit")]
    async fn token(&self, rate: &Rate, key: &str) -> Result<(), Duration> {
        let started = Instant::now();
        loop {
            let wait = match rate.buckets.take(key) {
                Ok(()) => return Ok(()),
                Err(wait) => wait,
            };
            let waiter = {
                let mut keys = lock(&rate.keys);
                if keys.len() > SWEEP_KEYS {
                    let now = Instant::now();
                    keys.retain(|_, s| s.waiting > 0 || s.reserved.is_some_and(|at| at > now));
                }
                let state = keys.entry(key.to_owned()).or_default();
                let in_time = started.elapsed() + wait <= self.max_wait;
                if !in_time || state.waiting >= WAITERS_PER_KEY {
                    let interval = rate.buckets.interval();
                    let lead = interval.min(self.max_wait / 2);
                    return Err(reserve(state, interval, wait, lead));
                }
                state.waiting += 1;
                Waiter {
                    keys: &rate.keys,
                    key,
                }
            };
            tokio::time::sleep(wait).await;
            drop(waiter);
        }
    }
}

/// Above this many keys a rate's map of keys drops those with nothing waiting or reserved.
#[cfg(feature = "rate-limit")]
const SWEEP_KEYS: usize = 1024;

/// One event waiting in its slot for a key's token; counted until dropped (the wait
/// finished, or the task was aborted).
#[cfg(feature = "rate-limit")]
struct Waiter<'a> {
    keys: &'a Mutex<HashMap<String, KeyState>>,
    key: &'a str,
}

#[cfg(feature = "rate-limit")]
impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(state) = lock(self.keys).get_mut(self.key) {
            state.waiting = state.waiting.saturating_sub(1);
        }
    }
}

/// Reserves the next free token time for `state`'s key: one interval after the last
/// reserved, and after the tokens its waiting events will take. Returns how long from now to
/// hand the event back for: `lead` before that time, so it is leased again and waits in its
/// slot when its token comes due, rather than losing time to a late lease.
#[cfg(feature = "rate-limit")]
fn reserve(state: &mut KeyState, interval: Duration, wait: Duration, lead: Duration) -> Duration {
    let now = Instant::now();
    let earliest = now + wait + interval * state.waiting as u32;
    let at = match state.reserved {
        Some(last) if last + interval > earliest => last + interval,
        _ => earliest,
    };
    state.reserved = Some(at);
    (at - now).saturating_sub(lead)
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "rate-limit"))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn hand_backs_are_spread_one_interval_apart_not_due_at_once() {
        let interval = Duration::from_millis(20);
        let mut state = KeyState::default();
        let wait = Duration::from_millis(5);
        let times: Vec<Duration> = (0..5)
            .map(|_| reserve(&mut state, interval, wait, Duration::ZERO))
            .collect();
        assert_eq!(times[0], wait);
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], interval);
        }
        // Waiting events take the next tokens first; the lead brings an event back early.
        let mut state = KeyState {
            waiting: 2,
            reserved: None,
        };
        let lead = Duration::from_millis(10);
        assert_eq!(
            reserve(&mut state, interval, wait, lead),
            wait + 2 * interval - lead
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_key_hands_back_instead_of_filling_slots() {
        let flow = Flow::new(&FlowConfig {
            rates: vec![RateLimit::per_second(1, 1).unwrap()],
            per_source: None,
            max_wait: Duration::from_secs(5),
        });
        let event = RawEvent::new("s", "e", std::time::SystemTime::UNIX_EPOCH, "{}");
        assert!(matches!(flow.admit(&event).await, Admission::Run(_)));
        // The next tokens are 1, 2 and 3 s away: within the wait, so three wait in their
        // slots; the fourth is handed back (to its token at 4 s, one interval ahead).
        let waiting: Vec<_> = (0..WAITERS_PER_KEY)
            .map(|_| {
                let flow = &flow;
                let event = &event;
                Box::pin(async move { flow.admit(event).await })
            })
            .collect();
        let mut waiting = futures_util::future::join_all(waiting);
        // Let the waiters register.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(futures_util::FutureExt::poll_unpin(&mut waiting, &mut cx).is_pending());
        match flow.admit(&event).await {
            Admission::Later(after) => assert_eq!(after, Duration::from_secs(3)),
            Admission::Run(_) => panic!("a fourth waiter"),
        }
        assert!(flow.next_wake().is_some());
        let admitted = waiting.await;
        assert!(admitted.iter().all(|a| matches!(a, Admission::Run(_))));
    }
}
