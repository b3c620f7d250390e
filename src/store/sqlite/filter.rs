//! The key filter: which keys the store may hold, answered from memory.
//!
//! Every enqueue and every claim of a new key first asks whether its key is stored
//! already. The [tail](super::tail) answers for the keys written since the last merge; the
//! others are in the unique key index, and with random delivery ids and a week of events
//! retained, asking it costs a read of one random leaf page that the page cache rarely
//! holds. Almost every such question is about a new key, whose answer is "no".
//!
//! So the writer keeps a Bloom filter of every key in the index or the tail: built at open by
//! walking the key index once, and given each new key as it is written. When the filter says
//! a key is absent, it is absent (a Bloom filter has no false negatives, and no key reaches
//! the index without passing through the tail, which feeds the filter), and the index is not
//! read. When it says "maybe" (a stored key, or a false positive), the index answers as
//! before. A key whose record is deleted stays in the filter: it only costs a false positive.
//!
//! The filter is sized at open for the keys held then plus [`HEADROOM`] merge batches, at
//! [`BITS_PER_KEY`] bits a key (about 15% false positives when full): 0.5 bytes a key, about
//! 3.4 MiB for 6.7 million. Past its size the false-positive rate rises and more lookups fall
//! back to the index, as they all did without it; the next open sizes it again.

use fastbloom::BloomFilter;
use rusqlite::Connection;

/// Bits of filter per key it is sized for.
pub(super) const BITS_PER_KEY: usize = 4;

/// Merge batches of new keys the filter has room for beyond the keys held at open.
pub(super) const HEADROOM: usize = 4;

/// Keys the store may hold; see the [module docs](self).
#[derive(Debug)]
pub(super) struct KeyFilter {
    bloom: BloomFilter,
}

impl KeyFilter {
    /// Builds the filter from the key index. Call it after the open's merge, so that every
    /// record is keyed.
    pub(super) fn load(conn: &Connection, merge_batch: usize) -> rusqlite::Result<Self> {
        let held: i64 = conn.query_row(
            "SELECT count(*) FROM hookdock_events WHERE keyed = 1",
            [],
            |r| r.get(0),
        )?;
        let room = usize::try_from(held)
            .unwrap_or(0)
            .saturating_add(merge_batch.saturating_mul(HEADROOM))
            .max(1024);
        let mut bloom =
            BloomFilter::with_num_bits(room.saturating_mul(BITS_PER_KEY)).expected_items(room);
        let mut keys =
            conn.prepare("SELECT source, event_id FROM hookdock_events WHERE keyed = 1")?;
        let mut rows = keys.query([])?;
        while let Some(row) = rows.next()? {
            let source = row.get_ref(0)?.as_str()?;
            let event_id = row.get_ref(1)?.as_str()?;
            bloom.insert(&(source, event_id));
        }
        Ok(Self { bloom })
    }

    /// A key is written: the filter holds it from now on.
    pub(super) fn insert(&mut self, source: &str, event_id: &str) {
        self.bloom.insert(&(source, event_id));
    }

    /// False only if no record has held this key since the filter was built.
    pub(super) fn may_hold(&self, source: &str, event_id: &str) -> bool {
        self.bloom.contains(&(source, event_id))
    }
}

#[cfg(test)]
mod tests {
    use super::KeyFilter;

    #[test]
    fn holds_what_was_stored_and_inserted_and_rejects_most_of_the_rest() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE hookdock_events (id INTEGER PRIMARY KEY, source TEXT, event_id TEXT,
                 keyed INTEGER);
             INSERT INTO hookdock_events (source, event_id, keyed) VALUES
                 ('github', 'stored', 1), ('github', 'unkeyed', 0);",
        )
        .unwrap();
        let mut filter = KeyFilter::load(&conn, 1000).unwrap();
        assert!(filter.may_hold("github", "stored"));
        filter.insert("stripe", "new");
        assert!(filter.may_hold("stripe", "new"));
        let absent = (0..10_000)
            .filter(|i| !filter.may_hold("github", &format!("absent-{i}")))
            .count();
        assert!(
            absent > 8_000,
            "most absent keys are rejected: {absent} of 10000"
        );
    }
}
