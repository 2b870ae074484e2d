//! A plain bit set of a segment's documents: the matches of a query part, of a filter,
//! of the searchable documents, combined word by word.

use tantivy::{COLLECT_BLOCK_BUFFER_LEN, DocId, DocSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocBits {
    words: Vec<u64>,
}

impl DocBits {
    /// No document.
    pub fn empty(max_doc: DocId) -> DocBits {
        DocBits {
            words: vec![0; (max_doc as usize).div_ceil(64)],
        }
    }

    /// Every document below `max_doc`.
    pub fn full(max_doc: DocId) -> DocBits {
        let mut bits = DocBits {
            words: vec![u64::MAX; (max_doc as usize).div_ceil(64)],
        };
        let tail = max_doc % 64;
        if tail != 0
            && let Some(last) = bits.words.last_mut()
        {
            *last = (1u64 << tail) - 1;
        }
        bits
    }

    /// The documents of a posting list (or any doc set), read block by block.
    pub fn of_docs(max_doc: DocId, docs: &mut impl DocSet) -> DocBits {
        let mut bits = DocBits::empty(max_doc);
        let mut buffer = [0; COLLECT_BLOCK_BUFFER_LEN];
        loop {
            let filled = docs.fill_buffer(&mut buffer);
            for &doc in &buffer[..filled] {
                bits.insert(doc);
            }
            if filled < COLLECT_BLOCK_BUFFER_LEN {
                return bits;
            }
        }
    }

    pub fn insert(&mut self, doc: DocId) {
        self.words[(doc / 64) as usize] |= 1 << (doc % 64);
    }

    pub fn remove(&mut self, doc: DocId) {
        self.words[(doc / 64) as usize] &= !(1 << (doc % 64));
    }

    pub fn contains(&self, doc: DocId) -> bool {
        self.words
            .get((doc / 64) as usize)
            .is_some_and(|word| word & (1 << (doc % 64)) != 0)
    }

    /// Keeps only the documents `other` holds too.
    pub fn intersect(&mut self, other: &DocBits) {
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word &= theirs;
        }
    }

    /// Drops the documents `other` holds.
    pub fn subtract(&mut self, other: &DocBits) {
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word &= !theirs;
        }
    }

    /// How many documents both sets hold.
    pub fn intersection_len(&self, other: &DocBits) -> usize {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
    }

    /// Adds the documents `other` holds.
    pub fn union(&mut self, other: &DocBits) {
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word |= theirs;
        }
    }

    /// Every document below `max_doc` not in the set, and none of those in it.
    pub fn complement(&mut self, max_doc: DocId) {
        for word in &mut self.words {
            *word = !*word;
        }
        let tail = max_doc % 64;
        if tail != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << tail) - 1;
        }
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The documents, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = DocId> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            let base = i as DocId * 64;
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    base + bit
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_agree_with_a_plain_set() {
        let mut a = DocBits::empty(130);
        for doc in [0, 5, 63, 64, 127, 129] {
            a.insert(doc);
        }
        let mut b = DocBits::full(130);
        b.remove(5);
        b.remove(129);
        assert_eq!(b.len(), 128);
        a.intersect(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 63, 64, 127]);
        let mut c = a.clone();
        c.complement(130);
        assert_eq!(c.len(), 126);
        assert!(!c.contains(64) && c.contains(129) && !c.contains(130));
        assert_eq!(c.intersection_len(&a), 0);
        c.union(&a);
        assert_eq!(c, DocBits::full(130));
        c.subtract(&a);
        assert_eq!(c.len(), 126);
        assert_eq!(a.len(), 4);
        assert!(a.contains(64) && !a.contains(5) && !a.contains(500));
        assert_eq!(DocBits::empty(3).len(), 0);
    }
}
