//! Duplicate candidates from the index: the active contacts holding given match keys
//! ([`crate::model::duplicates::match_keys`]), and every group of contacts sharing
//! one key, read by walking the key terms of all segments in order.

use tantivy::schema::IndexRecordOption;
use tantivy::termdict::TermMerger;
use tantivy::{DocSet, SegmentReader, TERMINATED, Term};

use super::{IndexError, SearchIndex};

/// The id of every live document of `docs` in `segment`.
fn ids_of(
    segment: &SegmentReader,
    docs: impl IntoIterator<Item = tantivy::DocId>,
    into: &mut Vec<String>,
) -> Result<(), IndexError> {
    let Some(column) = segment.fast_fields().str(super::schema::ID)? else {
        return Ok(());
    };
    let mut text = String::new();
    for doc in docs {
        if segment.is_deleted(doc) {
            continue;
        }
        if let Some(ord) = column.term_ords(doc).next() {
            text.clear();
            column.ord_to_str(ord, &mut text)?;
            into.push(text.clone());
        }
    }
    Ok(())
}

fn all_docs(mut postings: impl DocSet) -> Vec<tantivy::DocId> {
    let mut docs = Vec::new();
    let mut doc = postings.doc();
    while doc != TERMINATED {
        docs.push(doc);
        doc = postings.advance();
    }
    docs
}

impl SearchIndex {
    /// The active contacts holding any of `keys`, each key skipped when more than
    /// `group_max` hold it (too common to suggest anything).
    pub fn key_holders(
        &self,
        keys: &[String],
        group_max: usize,
    ) -> Result<Vec<String>, IndexError> {
        let searcher = self.reader.searcher();
        let mut holders = Vec::new();
        for key in keys {
            let term = Term::from_field_text(self.fields.duplicate_keys, key);
            let mut of_key = Vec::new();
            for segment in searcher.segment_readers() {
                let index = segment.inverted_index(self.fields.duplicate_keys)?;
                if let Some(postings) = index.read_postings(&term, IndexRecordOption::Basic)? {
                    ids_of(segment, all_docs(postings), &mut of_key)?;
                }
            }
            if of_key.len() <= group_max {
                holders.extend(of_key);
            }
        }
        holders.sort();
        holders.dedup();
        Ok(holders)
    }

    /// Every group of 2 to `group_max` active contacts sharing a match key. Cost
    /// follows the number of keys, not of pairs.
    pub fn key_groups(&self, group_max: usize) -> Result<Vec<Vec<String>>, IndexError> {
        let searcher = self.reader.searcher();
        let segments = searcher.segment_readers();
        let indexes = segments
            .iter()
            .map(|segment| segment.inverted_index(self.fields.duplicate_keys))
            .collect::<Result<Vec<_>, _>>()?;
        let streams = indexes
            .iter()
            .map(|index| index.terms().stream())
            .collect::<Result<Vec<_>, _>>()?;
        let mut merger = TermMerger::new(streams);
        let mut groups = Vec::new();
        while merger.advance() {
            let infos: Vec<_> = merger.current_segment_ords_and_term_infos().collect();
            let postings: u32 = infos.iter().map(|(_, info)| info.doc_freq).sum();
            // Deleted documents still count in `doc_freq`: a key held once can only
            // shrink, and one held by many is checked after deletions.
            if postings < 2 {
                continue;
            }
            let mut group = Vec::new();
            for (segment, info) in infos {
                let postings = indexes[segment]
                    .read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
                ids_of(&segments[segment], all_docs(postings), &mut group)?;
            }
            if (2..=group_max).contains(&group.len()) {
                group.sort();
                groups.push(group);
            }
        }
        Ok(groups)
    }
}
