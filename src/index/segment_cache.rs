//! What is worth computing once per segment and reusing across searches: the
//! documents a search may return at all (alive, and active unless a filter names the
//! status), and the documents of a segment in the order of a sort key.
//!
//! Segments never change; only their deletes grow. So an entry is keyed by the segment
//! and its count of deleted documents where deletes matter, and dropped wholesale when
//! the cache grows past [`MAX_ENTRIES`] (segments merged away are never asked again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::index::SegmentId;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{COLLECT_BLOCK_BUFFER_LEN, DocId, DocSet, SegmentReader};

use super::bits::DocBits;
use super::sort::{SegmentOrder, SortSpec};
use crate::model::Status;

const MAX_ENTRIES: usize = 64;

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
}

#[derive(Clone)]
enum Entry {
    Bits(Arc<DocBits>),
    Order(Arc<SegmentOrder>),
}

/// Shared by every search of one index. A std `Mutex`: it is held only to look up or
/// insert an entry, never while computing one or across an `.await`.
pub struct SegmentCache {
    status: Field,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl SegmentCache {
    pub fn new(status: Field) -> SegmentCache {
        SegmentCache {
            status,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &Key) -> Option<Entry> {
        self.entries
            .lock()
            .expect("the segment cache lock is never poisoned: no panic while held")
            .get(key)
            .cloned()
    }

    fn put(&self, key: Key, entry: Entry) {
        let mut entries = self
            .entries
            .lock()
            .expect("the segment cache lock is never poisoned: no panic while held");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, entry);
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
        if let Some(Entry::Bits(bits)) = self.get(&key) {
            return Ok(bits);
        }
        let mut bits = DocBits::full(segment.max_doc());
        if let Some(alive) = segment.alive_bitset() {
            for doc in 0..segment.max_doc() {
                if !alive.is_alive(doc) {
                    bits.remove(doc);
                }
            }
        }
        if active_only {
            let index = segment.inverted_index(self.status)?;
            for status in Status::ALL.into_iter().filter(|s| *s != Status::Active) {
                let term = tantivy::Term::from_field_text(self.status, status.as_str());
                if let Some(mut postings) = index.read_postings(&term, IndexRecordOption::Basic)? {
                    let mut buffer = [0; COLLECT_BLOCK_BUFFER_LEN];
                    loop {
                        let filled = postings.fill_buffer(&mut buffer);
                        for &doc in &buffer[..filled] {
                            bits.remove(doc);
                        }
                        if filled < COLLECT_BLOCK_BUFFER_LEN {
                            break;
                        }
                    }
                }
            }
        }
        let bits = Arc::new(bits);
        self.put(key, Entry::Bits(bits.clone()));
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
        if let Some(Entry::Order(order)) = self.get(&key) {
            return Ok(order);
        }
        let order = Arc::new(SegmentOrder::build(segment, spec)?);
        self.put(key, Entry::Order(order.clone()));
        Ok(order)
    }
}
