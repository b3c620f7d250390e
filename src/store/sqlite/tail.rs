//! The tail: the keys of records written since the last merge into the key index.
//!
//! Providers send random delivery ids. Inserting each one into a unique B-tree on
//! `(source, event_id)` as it is stored dirties one leaf page per event in every group commit,
//! and each dirty page is a WAL frame: the index costs more to write than the event. So a new
//! record is written with `keyed = 0`, outside the partial unique index
//! `hookdock_events_key (source, event_id) WHERE keyed = 1`, and the writer thread (the only
//! writer) keeps its key in memory here. Every lookup by key asks the tail first, then the
//! index. Once the tail holds [`SqliteOptions::key_merge_batch`](super::SqliteOptions::key_merge_batch)
//! keys (default [`DEFAULT_KEY_MERGE_BATCH`]), the writer sets `keyed = 1` on all of them,
//! in key order, in [`MERGE_PIECES`] transactions between batches ([`merge_piece`]): the index
//! takes thousands of keys at once and writes each of its pages once for all the keys that
//! land on it, and each piece covers one key range, so the pieces together write no more
//! pages than one merge would. At close one transaction ([`merge`]) indexes whatever is left.
//! A crash loses only the memory; [`merge`] at open indexes what was left unkeyed before
//! anything is looked up.
//!
//! Records with `id <= hookdock_state.keyed_through` are all keyed, so a merge finds the
//! unkeyed ones by a range of the primary key, never by a scan.
//!
//! Changes to the tail follow the transaction they belong to: the engine calls
//! [`Tail::begin`] with the transaction's first new record id, then [`Tail::commit`] after a
//! commit or [`Tail::rollback`] after a rollback. A record written in a transaction has an id
//! from that first one on, so a rollback drops those ids without an undo entry per insert (the
//! hot path allocates only the key it keeps); removals, which are rare, are logged and put
//! back.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::filter::KeyFilter;

/// How many keys the tail holds before they are merged into the key index, unless
/// [`SqliteOptions::key_merge_batch`](super::SqliteOptions::key_merge_batch) says otherwise.
pub const DEFAULT_KEY_MERGE_BATCH: usize = 262_144;

/// A merge runs in this many transactions, each over a range of the keys in index order.
pub(super) const MERGE_PIECES: usize = 8;

/// A key the index does not hold yet, by source then event id.
#[derive(Debug, Default)]
pub(super) struct Tail {
    keys: HashMap<String, HashMap<String, i64>>,
    len: usize,
    /// The first record id of the current transaction.
    first_new: i64,
    /// True once the current transaction has inserted a key.
    inserted: bool,
    /// The keys the current transaction removed, with their ids, in order.
    removed: Vec<(String, String, i64)>,
    /// Every key of the index and the tail, as a [`KeyFilter`]; `None`: every lookup that
    /// misses the tail asks the index.
    filter: Option<KeyFilter>,
}

impl Tail {
    /// An empty tail in front of an index whose keys `filter` holds.
    pub(super) fn with_filter(filter: KeyFilter) -> Self {
        Self {
            filter: Some(filter),
            ..Self::default()
        }
    }

    /// The record id under a key, if it was written since the last merge.
    pub(super) fn get(&self, source: &str, event_id: &str) -> Option<i64> {
        self.keys.get(source)?.get(event_id).copied()
    }

    /// A transaction begins; the records it writes get ids from `first_new` on.
    pub(super) fn begin(&mut self, first_new: i64) {
        self.first_new = first_new;
    }

    /// Records that `id` (a new record of the current transaction) was written under a key,
    /// outside the index.
    pub(super) fn insert(&mut self, source: &str, event_id: &str, id: i64) {
        debug_assert!(id >= self.first_new, "tail insert of an older record");
        if let Some(filter) = &mut self.filter {
            filter.insert(source, event_id);
        }
        self.put(source, event_id, id);
        self.inserted = true;
    }

    /// Forgets a key (its record was deleted).
    pub(super) fn remove(&mut self, source: &str, event_id: &str) {
        if let Some(id) = self.take(source, event_id) {
            self.removed
                .push((source.to_owned(), event_id.to_owned(), id));
        }
    }

    /// How many keys wait outside the index.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The transaction that made the changes since the last call committed: keep them.
    pub(super) fn commit(&mut self) {
        self.inserted = false;
        self.removed.clear();
    }

    /// The transaction that made the changes since the last call rolled back: undo them.
    pub(super) fn rollback(&mut self) {
        let first_new = self.first_new;
        if self.inserted {
            for ids in self.keys.values_mut() {
                ids.retain(|_, id| *id < first_new);
            }
            self.keys.retain(|_, ids| !ids.is_empty());
            self.len = self.keys.values().map(HashMap::len).sum();
        }
        // A removed key of the transaction's own records is gone with the rollback anyway.
        while let Some((source, event_id, id)) = self.removed.pop() {
            if id < first_new {
                self.put(&source, &event_id, id);
            }
        }
        self.commit();
    }

    /// The record ids of the tail in the key index's order (`source`, then `event_id`, byte
    /// by byte, as SQLite's `BINARY` collation compares them).
    pub(super) fn ids_in_key_order(&self) -> Vec<i64> {
        let mut sources: Vec<_> = self.keys.iter().collect();
        sources.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut ids = Vec::with_capacity(self.len);
        for (_, keys) in sources {
            let mut keys: Vec<_> = keys.iter().collect();
            keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
            ids.extend(keys.into_iter().map(|(_, id)| *id));
        }
        ids
    }

    /// The keys of records up to `through` are all in the index now (after the last
    /// committed [`merge_piece`]); later ones still wait.
    pub(super) fn forget_through(&mut self, through: i64) {
        for ids in self.keys.values_mut() {
            ids.retain(|_, id| *id > through);
        }
        self.keys.retain(|_, ids| !ids.is_empty());
        self.len = self.keys.values().map(HashMap::len).sum();
        self.commit();
    }

    /// Every key is in the index now (after a committed [`merge`]).
    pub(super) fn clear(&mut self) {
        self.keys.clear();
        self.len = 0;
        self.commit();
    }

    fn put(&mut self, source: &str, event_id: &str, id: i64) {
        let ids = match self.keys.get_mut(source) {
            Some(ids) => ids,
            None => self.keys.entry(source.to_owned()).or_default(),
        };
        if ids.insert(event_id.to_owned(), id).is_none() {
            self.len += 1;
        }
    }

    fn take(&mut self, source: &str, event_id: &str) -> Option<i64> {
        let ids = self.keys.get_mut(source)?;
        let id = ids.remove(event_id)?;
        if ids.is_empty() {
            self.keys.remove(source);
        }
        self.len -= 1;
        Some(id)
    }
}

/// The id of the record under a key, from the tail or else from the key index.
pub(super) fn locate(
    conn: &Connection,
    tail: &Tail,
    source: &str,
    event_id: &str,
) -> rusqlite::Result<Option<i64>> {
    if let Some(id) = tail.get(source, event_id) {
        return Ok(Some(id));
    }
    if tail
        .filter
        .as_ref()
        .is_some_and(|f| !f.may_hold(source, event_id))
    {
        // No record has had this key since the filter was built: nothing to read.
        return Ok(None);
    }
    conn.prepare_cached(KEY)?
        .query_row(params![source, event_id], |r| r.get(0))
        .optional()
}

/// Looks a key up in the index (`keyed = 1` lets SQLite use the partial index).
const KEY: &str =
    "SELECT id FROM hookdock_events WHERE source = ?1 AND event_id = ?2 AND keyed = 1";

/// Puts the records written since the last merge into the key index, in the caller's
/// transaction; returns how many. `in_key_order` (the tail's ids, from
/// [`Tail::ids_in_key_order`]) are keyed one by one first, so that the index takes its new
/// keys in its own order and walks its pages once, front to back, instead of jumping to a
/// random page for each; then whatever else is left unkeyed (after a crash, everything) is
/// keyed by a range of the primary key. A duplicate key among them (which the writer never
/// writes) fails with a constraint error and the transaction changes nothing.
pub(super) fn merge(conn: &Connection, in_key_order: &[i64]) -> rusqlite::Result<usize> {
    let mut n = 0;
    let mut one = conn.prepare_cached(KEY_ONE)?;
    for id in in_key_order {
        n += one.execute(params![id])?;
    }
    n += conn.prepare_cached(UNKEYED)?.execute([])?;
    conn.prepare_cached(MERGED_THROUGH)?.execute([])?;
    Ok(n)
}

/// Puts one piece of a merge into the key index, in the caller's transaction: the records
/// `ids` (a range of [`Tail::ids_in_key_order`]), keyed one by one. The last piece passes
/// `through`, the newest record id of the merge: every record up to it is keyed then (the
/// tail held every unkeyed one), so `keyed_through` moves there. Returns how many records
/// were keyed (a record deleted since is skipped).
pub(super) fn merge_piece(
    conn: &Connection,
    ids: &[i64],
    through: Option<i64>,
) -> rusqlite::Result<usize> {
    let mut n = 0;
    let mut one = conn.prepare_cached(KEY_ONE)?;
    for id in ids {
        n += one.execute(params![id])?;
    }
    if let Some(through) = through {
        conn.prepare_cached(KEYED_THROUGH)?
            .execute(params![through])?;
    }
    Ok(n)
}

const KEYED_THROUGH: &str =
    "UPDATE hookdock_state SET keyed_through = max(keyed_through, ?1) WHERE id = 1";

const KEY_ONE: &str = "UPDATE hookdock_events SET keyed = 1 WHERE id = ?1 AND keyed = 0";

/// Indexes the records past `keyed_through`, found by their primary key.
const UNKEYED: &str = "UPDATE hookdock_events SET keyed = 1
    WHERE id > (SELECT keyed_through FROM hookdock_state WHERE id = 1) AND keyed = 0";

const MERGED_THROUGH: &str = "UPDATE hookdock_state SET keyed_through = next_id - 1 WHERE id = 1";

#[cfg(test)]
pub(super) const ALL_SQL: [&str; 5] = [KEY, KEY_ONE, UNKEYED, MERGED_THROUGH, KEYED_THROUGH];

#[cfg(test)]
mod tests {
    use super::Tail;

    #[test]
    fn rollback_undoes_inserts_and_removals_in_reverse() {
        let mut tail = Tail::default();
        tail.begin(1);
        tail.insert("github", "a", 1);
        tail.commit();
        tail.begin(2);
        tail.insert("github", "b", 2);
        tail.remove("github", "a");
        tail.insert("stripe", "a", 3);
        tail.remove("github", "b");
        assert_eq!(tail.len(), 1);
        tail.rollback();
        assert_eq!(tail.get("github", "a"), Some(1));
        assert_eq!(tail.get("github", "b"), None);
        assert_eq!(tail.get("stripe", "a"), None);
        assert_eq!(tail.len(), 1);
    }

    #[test]
    fn committed_changes_stay_and_clear_empties() {
        let mut tail = Tail::default();
        tail.begin(1);
        tail.insert("github", "a", 1);
        tail.insert("github", "b", 2);
        tail.remove("github", "a");
        tail.remove("github", "missing");
        tail.commit();
        tail.rollback();
        assert_eq!(
            (tail.get("github", "a"), tail.get("github", "b")),
            (None, Some(2))
        );
        assert_eq!(tail.len(), 1);
        tail.clear();
        assert_eq!((tail.len(), tail.get("github", "b")), (0, None));
    }

    #[test]
    fn ids_come_in_the_order_of_their_keys() {
        let mut tail = Tail::default();
        for (source, id, n) in [
            ("stripe", "a", 1),
            ("github", "b", 2),
            ("github", "a\u{e9}", 3),
        ] {
            tail.insert(source, id, n);
        }
        tail.insert("github", "B", 4);
        assert_eq!(tail.ids_in_key_order(), [4, 3, 2, 1]);
    }
}
