//! Duplicate candidates from the index: the active contacts holding given match keys
//! or keys of a fragment ([`crate::model::duplicates::key_probes`]), and every group
//! of contacts sharing one key or one fragment, read by walking the key terms of all
//! segments in order.

use tantivy::postings::TermInfo;
use tantivy::schema::IndexRecordOption;
use tantivy::termdict::TermMerger;
use tantivy::{DocSet, InvertedIndexReader, SegmentReader, TERMINATED};

use super::schema::Keys;
use super::{IndexError, SearchIndex};
use crate::model::duplicates::{KeyProbe, fragment_prefix};

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

/// The live ids of the documents of `info` in `segment`.
fn ids_of_term(
    segment: &SegmentReader,
    index: &InvertedIndexReader,
    info: &TermInfo,
    into: &mut Vec<String>,
) -> Result<(), IndexError> {
    let postings = index.read_postings_from_terminfo(info, IndexRecordOption::Basic)?;
    ids_of(segment, all_docs(postings), into)
}

/// The key that follows every key starting with `prefix` (whose last byte is never
/// 0xFF: fragment prefixes end with `@` or a digit, a [`Keys::prefix`] with U+001F).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// The keys of a fragment being gathered while the sorted keys go by.
#[derive(Default)]
struct OpenFragment {
    /// The prefix every key of the fragment starts with.
    prefix: Vec<u8>,
    /// Each key's postings, by segment.
    terms: Vec<(usize, TermInfo)>,
}

/// What the whole-base walk reads postings from, and where it keeps groups.
struct GroupSink<'a> {
    segments: &'a [SegmentReader],
    indexes: &'a [std::sync::Arc<InvertedIndexReader>],
    group_max: usize,
    groups: Vec<Vec<String>>,
}

impl GroupSink<'_> {
    /// Keeps the contacts of `terms` as a group when they are 2 to `group_max`.
    /// Postings are read only for two documents or more (`doc_freq` counts deleted
    /// ones, so it never undercounts): most keys and fragments are one contact's.
    fn offer(&mut self, terms: &[(usize, TermInfo)]) -> Result<(), IndexError> {
        let postings: u32 = terms.iter().map(|(_, info)| info.doc_freq).sum();
        if postings < 2 {
            return Ok(());
        }
        let mut ids = Vec::new();
        for (segment, info) in terms {
            ids_of_term(
                &self.segments[*segment],
                &self.indexes[*segment],
                info,
                &mut ids,
            )?;
        }
        ids.sort();
        ids.dedup();
        if (2..=self.group_max).contains(&ids.len()) {
            self.groups.push(ids);
        }
        Ok(())
    }
}

impl SearchIndex {
    /// The active contacts holding any of the keys `probes` name, each key (or
    /// fragment) skipped when more than `group_max` hold it (too common to suggest
    /// anything).
    pub fn key_holders(
        &self,
        probes: &[KeyProbe],
        group_max: usize,
    ) -> Result<Vec<String>, IndexError> {
        let searcher = self.reader.searcher();
        let mut holders = Vec::new();
        for probe in probes {
            let mut of_key = Vec::new();
            for segment in searcher.segment_readers() {
                let index = segment.inverted_index(self.fields.keys.field)?;
                match probe {
                    KeyProbe::Exact(key) => {
                        let term = self.fields.keys.term(Keys::DUPLICATE, key);
                        if let Some(info) = index.get_term_info(&term)? {
                            ids_of_term(segment, &index, &info, &mut of_key)?;
                        }
                    }
                    KeyProbe::Prefix(prefix) => {
                        let prefix = Keys::text(Keys::DUPLICATE, prefix);
                        let mut keys = index
                            .terms()
                            .range()
                            .ge(prefix.as_bytes())
                            .lt(prefix_end(&prefix))
                            .into_stream()?;
                        while keys.advance() {
                            ids_of_term(segment, &index, keys.value(), &mut of_key)?;
                        }
                    }
                }
            }
            of_key.sort();
            of_key.dedup();
            if of_key.len() <= group_max {
                holders.extend(of_key);
            }
        }
        holders.sort();
        holders.dedup();
        Ok(holders)
    }

    /// Every group of 2 to `group_max` active contacts sharing a match key or a
    /// fragment ([`fragment_prefix`]). Cost follows the number of keys, not of pairs.
    pub fn key_groups(&self, group_max: usize) -> Result<Vec<Vec<String>>, IndexError> {
        let searcher = self.reader.searcher();
        let segments = searcher.segment_readers();
        let indexes = segments
            .iter()
            .map(|segment| segment.inverted_index(self.fields.keys.field))
            .collect::<Result<Vec<_>, _>>()?;
        let within = Keys::prefix(Keys::DUPLICATE);
        let streams = indexes
            .iter()
            .map(|index| {
                let range = index.terms().range().ge(within.as_bytes());
                range.lt(prefix_end(&within)).into_stream()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut merger = TermMerger::new(streams);
        let mut sink = GroupSink {
            segments,
            indexes: &indexes,
            group_max,
            groups: Vec::new(),
        };
        // The fragments whose keys are still going by, outermost first: keys of one
        // prefix come in one run, and a run inside another (a local part holding
        // `@`) ends before it. Closed ones are kept in `spare` for their buffers:
        // nearly every email and phone key opens a fragment of its own.
        let mut fragments: Vec<OpenFragment> = Vec::new();
        let mut spare: Vec<OpenFragment> = Vec::new();
        let mut terms: Vec<(usize, TermInfo)> = Vec::new();
        while merger.advance() {
            let key = &merger.key()[within.len()..];
            while let Some(open) = fragments.pop_if(|open| !key.starts_with(&open.prefix)) {
                sink.offer(&open.terms)?;
                spare.push(open);
            }
            terms.clear();
            terms.extend(merger.current_segment_ords_and_term_infos());
            let fragment = std::str::from_utf8(key).ok().and_then(fragment_prefix);
            if let Some(prefix) = fragment.map(str::as_bytes) {
                match fragments.last_mut() {
                    Some(open) if open.prefix == prefix => open.terms.extend_from_slice(&terms),
                    _ => {
                        let mut open = spare.pop().unwrap_or_default();
                        open.prefix.clear();
                        open.prefix.extend_from_slice(prefix);
                        open.terms.clear();
                        open.terms.extend_from_slice(&terms);
                        fragments.push(open);
                    }
                }
            }
            sink.offer(&terms)?;
        }
        while let Some(open) = fragments.pop() {
            sink.offer(&open.terms)?;
        }
        Ok(sink.groups)
    }
}
