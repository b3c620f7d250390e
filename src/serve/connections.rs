//! The open connections: how many, which are busy, and closing the oldest idle one to make
//! room for a new one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// One open connection, as the accept loop and its own task see it.
#[derive(Debug, Default)]
pub(super) struct Slot {
    /// Requests of this connection from head read to response written.
    busy: AtomicUsize,
    /// Told to close (made room for a newer connection, or the shutdown deadline passed).
    close: Notify,
}

impl Slot {
    /// Marks a request in flight until the guard is dropped.
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Resolves once the connection was told to close.
    pub(super) async fn closed(&self) {
        self.close.notified().await;
    }
}

/// A request in flight on its connection; see [`Slot::busy`].
#[derive(Debug)]
pub(super) struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every open connection, oldest first.
#[derive(Debug, Default)]
pub(super) struct Connections {
    open: Mutex<Open>,
    /// Registered connections not yet dropped, including those told to close.
    alive: AtomicUsize,
    /// Woken when the last one is dropped.
    empty: Notify,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    slots: BTreeMap<u64, Arc<Slot>>,
}

impl Connections {
    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        // The map stays consistent whatever panicked while it was held.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many connections are open (not counting those told to close).
    pub(super) fn len(&self) -> usize {
        self.open().slots.len()
    }

    /// Registers a new connection; it is counted until the returned entry is dropped.
    pub(super) fn add(self: &Arc<Self>) -> Entry {
        let slot = Arc::new(Slot::default());
        self.alive.fetch_add(1, Ordering::AcqRel);
        let mut open = self.open();
        let id = open.next;
        open.next += 1;
        open.slots.insert(id, Arc::clone(&slot));
        Entry {
            connections: Arc::clone(self),
            id,
            slot,
        }
    }

    /// Tells the oldest connection without a request in flight to close; false if every
    /// connection is busy.
    pub(super) fn close_oldest_idle(&self) -> bool {
        let mut open = self.open();
        let Some(id) = open
            .slots
            .iter()
            .find(|(_, slot)| slot.is_idle())
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(slot) = open.slots.remove(&id) {
            slot.close.notify_one();
        }
        true
    }

    /// Tells every connection to close; returns how many there were.
    pub(super) fn close_all(&self) -> usize {
        let slots = std::mem::take(&mut self.open().slots);
        for slot in slots.values() {
            slot.close.notify_one();
        }
        slots.len()
    }

    /// Resolves once every registered connection is gone, including those told to close.
    pub(super) async fn all_gone(&self) {
        loop {
            // Created before the check, so a notice between the two is not missed.
            let notified = self.empty.notified();
            if self.alive.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A registered connection; deregisters it when dropped.
#[derive(Debug)]
pub(super) struct Entry {
    connections: Arc<Connections>,
    id: u64,
    pub(super) slot: Arc<Slot>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let connections = &self.connections;
        connections.open().slots.remove(&self.id);
        if connections.alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            connections.empty.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_is_the_one_closed() {
        let connections = Arc::new(Connections::default());
        let first = connections.add();
        let second = connections.add();
        let third = connections.add();
        let busy = first.slot.busy();
        assert_eq!(connections.len(), 3);
        assert!(connections.close_oldest_idle());
        // `second` was told to close: no longer counted, and its task sees the notice.
        assert_eq!(connections.len(), 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(second.slot.closed());
        assert!(connections.close_oldest_idle()); // then `third`
        assert!(!connections.close_oldest_idle(), "`first` is busy");
        drop(busy);
        assert!(connections.close_oldest_idle());
        assert_eq!(connections.len(), 0);
        drop((first, second));
        let gone = connections.all_gone();
        drop(third);
        rt.block_on(gone);
    }
}
