//! What is worth computing once per segment and reusing across searches: the
//! documents a search may return at all (alive, and active unless a filter names the
//! status), the documents of a segment in the order of a sort key, and the documents
//! each filter condition or large term selects (saved inboxes and screens repeat the
//! same conditions, as Elasticsearch's filter cache assumes).
//!
//! Segments never change; only their deletes grow. So an entry is keyed by the segment
//! and its count of deleted documents where deletes matter; past a bound, the
//! least recently used entry goes (segments merged away are never asked again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::index::SegmentId;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, SegmentReader};

use super::bits::DocBits;
use super::schema::Keys;
use super::sort::{SegmentOrder, SortSpec};
use crate::model::Status;

/// Bytes of searchable sets and orders kept (an order is 4 bytes a document, a set
/// 1/8): a few per live segment. Held apart from the condition sets, so the churn of
/// the many conditions and words people type never evicts an order (costly to
/// rebuild).
const SEGMENT_CACHE_BYTES: usize = 256 << 20;
/// Bytes of condition and large-term sets kept.
const CONDITION_CACHE_BYTES: usize = 128 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Searchable {
        segment: SegmentId,
        deleted: DocId,
        active_only: bool,
    },
    Order {
        segment: SegmentId,
        spec: String,
    },
    Condition {
        segment: SegmentId,
        key: String,
    },
}

#[derive(Clone)]
enum Entry {
    Bits(Arc<DocBits>),
    Order(Arc<SegmentOrder>),
}

/// Shared by every search of one index. A std `Mutex`: it is held only to look up or
/// insert an entry, never while computing one or across an `.await`.
pub struct SegmentCache {
    /// Where the status terms are (see [`super::schema::Keys`]).
    keys: Keys,
    segments: Lru,
    conditions: Lru,
}

/// Entries with the tick of their last use; past `budget` bytes, the least recently
/// used go (the newest entry always stays).
struct Lru {
    budget: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, (Entry, u64)>,
    tick: u64,
    bytes: usize,
}

impl Entry {
    fn bytes(&self) -> usize {
        match self {
            Entry::Bits(bits) => bits.bytes(),
            Entry::Order(order) => order.bytes(),
        }
    }
}

impl Lru {
    fn new(budget: usize) -> Lru {
        Lru {
            budget,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .expect("the segment cache lock is never poisoned: no panic while held")
    }

    fn get(&self, key: &Key) -> Option<Entry> {
        let mut entries = self.lock();
        entries.tick += 1;
        let tick = entries.tick;
        entries.map.get_mut(key).map(|(entry, used)| {
            *used = tick;
            entry.clone()
        })
    }

    fn put(&self, key: Key, entry: Entry) {
        let mut entries = self.lock();
        let size = entry.bytes();
        if let Some((replaced, _)) = entries.map.remove(&key) {
            entries.bytes -= replaced.bytes();
        }
        while entries.bytes + size > self.budget
            && let Some(oldest) = entries
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
        {
            if let Some((gone, _)) = entries.map.remove(&oldest) {
                entries.bytes -= gone.bytes();
            }
        }
        entries.tick += 1;
        let tick = entries.tick;
        entries.map.insert(key, (entry, tick));
        entries.bytes += size;
    }
}

impl Lru {
    /// The bit set cached under `key`, computed (and kept) the first time.
    fn bits_or(
        &self,
        key: Key,
        compute: impl FnOnce() -> tantivy::Result<DocBits>,
    ) -> tantivy::Result<Arc<DocBits>> {
        if let Some(Entry::Bits(bits)) = self.get(&key) {
            return Ok(bits);
        }
        let bits = Arc::new(compute()?);
        self.put(key, Entry::Bits(bits.clone()));
        Ok(bits)
    }
}

impl SegmentCache {
    pub fn new(keys: Keys) -> SegmentCache {
        SegmentCache {
            keys,
            segments: Lru::new(SEGMENT_CACHE_BYTES),
            conditions: Lru::new(CONDITION_CACHE_BYTES),
        }
    }

    /// The documents of `segment` a filter condition selects, computed by `compute`
    /// the first time `key` is asked.
    pub fn condition(
        &self,
        segment: &SegmentReader,
        key: &str,
        compute: impl FnOnce() -> tantivy::Result<DocBits>,
    ) -> tantivy::Result<Arc<DocBits>> {
        let key = Key::Condition {
            segment: segment.segment_id(),
            key: key.to_string(),
        };
        self.conditions.bits_or(key, compute)
    }

    /// The alive documents of `segment`, only the active ones when `active_only`.
    pub fn searchable(
        &self,
        segment: &SegmentReader,
        active_only: bool,
    ) -> tantivy::Result<Arc<DocBits>> {
        let key = Key::Searchable {
            segment: segment.segment_id(),
            deleted: segment.num_deleted_docs(),
            active_only,
        };
        self.segments
            .bits_or(key, || self.compute_searchable(segment, active_only))
    }

    fn compute_searchable(
        &self,
        segment: &SegmentReader,
        active_only: bool,
    ) -> tantivy::Result<DocBits> {
        let mut bits = DocBits::full(segment.max_doc());
        if let Some(alive) = segment.alive_bitset() {
            for doc in 0..segment.max_doc() {
                if !alive.is_alive(doc) {
                    bits.remove(doc);
                }
            }
        }
        if active_only {
            let index = segment.inverted_index(self.keys.field)?;
            for status in Status::ALL.into_iter().filter(|s| *s != Status::Active) {
                let term = self.keys.term("status", status.as_str());
                if let Some(mut postings) = index.read_postings(&term, IndexRecordOption::Basic)? {
                    bits.subtract(&DocBits::of_docs(segment.max_doc(), &mut postings));
                }
            }
        }
        Ok(bits)
    }

    /// Every document of `segment` in the order of one sort key (see [`SegmentOrder`]).
    pub fn order(
        &self,
        segment: &SegmentReader,
        spec: &SortSpec,
    ) -> tantivy::Result<Arc<SegmentOrder>> {
        let key = Key::Order {
            segment: segment.segment_id(),
            spec: format!("{spec:?}"),
        };
        if let Some(Entry::Order(order)) = self.segments.get(&key) {
            return Ok(order);
        }
        let order = Arc::new(SegmentOrder::build(segment, spec)?);
        self.segments.put(key, Entry::Order(order.clone()));
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(segment: SegmentId, name: &str) -> Key {
        Key::Condition {
            segment,
            key: name.to_string(),
        }
    }

    #[test]
    fn the_least_recently_used_entries_go_past_the_byte_budget() {
        let segment = SegmentId::generate_random();
        let bits = || Entry::Bits(Arc::new(DocBits::empty(1024))); // 128 bytes
        let lru = Lru::new(3 * 128);
        for name in ["a", "b", "c"] {
            lru.put(key(segment, name), bits());
        }
        assert!(lru.get(&key(segment, "a")).is_some(), "a is used again");
        lru.put(key(segment, "d"), bits());
        assert!(
            lru.get(&key(segment, "b")).is_none(),
            "b was the least recent"
        );
        for name in ["a", "c", "d"] {
            assert!(lru.get(&key(segment, name)).is_some(), "{name} stays");
        }
        // Replacing an entry does not count it twice.
        lru.put(key(segment, "d"), bits());
        assert_eq!(lru.lock().bytes, 3 * 128);
        // An entry larger than the budget still stays, alone.
        lru.put(
            key(segment, "big"),
            Entry::Bits(Arc::new(DocBits::empty(64 * 1024))),
        );
        assert_eq!(lru.lock().map.len(), 1);
    }
}
