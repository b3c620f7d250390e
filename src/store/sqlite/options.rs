//! [`SqliteOptions`] and [`WriterStats`].

use std::time::Duration;

use crate::clock::SharedClock;
use crate::store::DEFAULT_RETENTION;
use crate::Clock;

/// Settings of a [`SqliteStore`](super::SqliteStore). Every setting has a sensible default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    pub(super) clock: SharedClock,
    pub(super) max_batch: usize,
    pub(super) channel_capacity: usize,
    pub(super) cache_size_kib: u32,
    pub(super) page_size: u32,
    pub(super) checkpoint_interval: Duration,
    pub(super) wal_restart_pages: u32,
    pub(super) journal_size_limit: u64,
    pub(super) max_size: Option<u64>,
    pub(super) busy_timeout: Duration,
    pub(super) retention: Duration,
    pub(super) key_merge_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            clock: SharedClock::default(),
            max_batch: 1024,
            channel_capacity: 8192,
            cache_size_kib: 2 * 1024,
            page_size: 4096,
            checkpoint_interval: Duration::from_millis(100),
            wal_restart_pages: 16 * 1024,
            journal_size_limit: 64 * 1024 * 1024,
            max_size: None,
            busy_timeout: Duration::from_secs(5),
            retention: DEFAULT_RETENTION,
            key_merge_batch: super::tail::DEFAULT_KEY_MERGE_BATCH,
        }
    }
}

impl SqliteOptions {
    /// The defaults: system clock, 7-day retention, batches of up to 1024 operations, a
    /// channel of 8192.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads time (lease expiry, retry times, retention) from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Most operations committed in one transaction (at least 1). Default 1024. `1` turns
    /// group commit off: one transaction and one fsync per operation (for comparison).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// How many operations may wait for the writer (at least 1); callers beyond that wait
    /// for room, so memory stays bounded under any load. Default 8192.
    pub fn channel_capacity(mut self, n: usize) -> Self {
        self.channel_capacity = n.max(1);
        self
    }

    /// Page cache of the writer connection, in KiB. Default 2048 (2 MiB).
    ///
    /// The cache is a bounded buffer that fills as the writer touches pages, so a process's
    /// memory grows until the cache is full and then stays flat. The default is small so that
    /// it fills early: with it, a worker draining a 100,000-event backlog peaks within 10%
    /// of the memory it needs for a 10,000-event one (with 8 MiB, the 10,000-event database
    /// did not fill the cache and the larger backlog peaked 15–26% higher), and intake and
    /// drain throughput measured the same (the hot pages of a queue are its newest rows and
    /// the index leaves next to them; the operating system's page cache holds the rest).
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = kib;
        self
    }

    /// Page size of a database this store creates, in bytes: a power of two from 512 to
    /// 65536 (SQLite ignores any other value and keeps 4096). Default 4096. An existing
    /// database keeps the page size it was created with.
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }

    /// Least time between two background checkpoints. Default 100 ms.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// WAL size, in pages, past which the writer checkpoints once itself between two batches
    /// so that the WAL can start over. Default 16384 (64 MiB with 4 KiB pages).
    pub fn wal_restart_pages(mut self, pages: u32) -> Self {
        self.wal_restart_pages = pages.max(1);
        self
    }

    /// Size the WAL file is trimmed to when it starts over (`journal_size_limit`), in bytes.
    /// Default 64 MiB.
    pub fn journal_size_limit(mut self, bytes: u64) -> Self {
        self.journal_size_limit = bytes;
        self
    }

    /// Caps the database file at about this many bytes (`max_page_count`); writes beyond it
    /// fail with [`StoreError::Unavailable`](crate::StoreError::Unavailable) (SQLite's "database or disk is full"), exactly as a
    /// full disk would. Default: no cap.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// How long a handled event and a completed claim are remembered (default
    /// [`DEFAULT_RETENTION`], 7 days; see [Retention](crate::store#retention)). The writer
    /// forgets what has passed it by itself, a chunk at a time between batches. A change
    /// applies to what is handled after it.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How many new keys wait in the writer's memory before they are merged into the key
    /// index (at least 1; default [`DEFAULT_KEY_MERGE_BATCH`](super::DEFAULT_KEY_MERGE_BATCH),
    /// 262,144). A merge dirties each index page that one of its keys lands on, and with
    /// random delivery ids that is almost every page of a large index: the more keys one
    /// merge carries, the fewer pages it writes per key. With a week of retained events the
    /// index is large, so the default is high: at 1,000,000 retained events, intake was
    /// 0.56× of retention off merging 16,384 keys at a time, 0.71× with 131,072 and
    /// 0.82× with 262,144 (0.93× with the key filter too; the retention benchmark in the
    /// README). The cost is memory,
    /// about 80 bytes per waiting key (about 20 MiB at the default), and a
    /// [`get`](crate::store::EventLog::get) from the event log that scans the records still
    /// waiting. A merge runs between
    /// batches in eight pieces, each a transaction over one eighth of the keys in index
    /// order, so no batch waits for a whole merge.
    pub fn key_merge_batch(mut self, keys: usize) -> Self {
        self.key_merge_batch = keys.max(1);
        self
    }

    /// How long to wait for a lock held by someone else: SQLite's own locks (a `sqlite3`
    /// shell writing to the file, say), and at [`SqliteStore::open`](super::SqliteStore::open)
    /// the file's one-store lock while another store lets go of it. Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// Counters of the writer thread, from
/// [`SqliteStore::writer_stats`](super::SqliteStore::writer_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Write transactions committed (each one fsync).
    pub transactions: u64,
    /// Operations answered (enqueues, leases, acks, claims, ...).
    pub operations: u64,
    /// Batches that failed as a whole and were run again one operation per transaction.
    pub failed_batches: u64,
    /// Records forgotten after their retention (purged).
    pub purged: u64,
}

impl WriterStats {
    /// Operations per transaction: how much group commit is saving.
    pub fn mean_batch(&self) -> f64 {
        if self.transactions == 0 {
            0.0
        } else {
            self.operations as f64 / self.transactions as f64
        }
    }
}
