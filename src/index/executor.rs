//! Query execution, one segment at a time, without a tree of scorers.
//!
//! A search is a [`Plan`]: the parts of `q` (each a list of [`Probe`]s, best level
//! first), an optional [`FilterPlan`] (its AND/OR/NOT structure as bit set operations
//! over one tantivy query per condition, each condition's bit set cached per segment)
//! and the status rule. Per segment, [`BoundPlan::evaluate`] produces [`SegmentMatches`]: the
//! bit set of matching documents (alive, of the right status, accepted by the filter,
//! matched by every part) and, per part, one bit set per level: the documents whose
//! best match is at that level. Everything is set algebra on 64-document words, so
//! counting and finding the best levels costs a pass over words, not over matches.
//!
//! Why not a `BooleanQuery` of `DisjunctionMaxQuery`s: that visits every match of every
//! probe through a heap of up to 16 scorers and checks trigram positions for documents
//! a better probe already matched; on a word a quarter of the contacts hold, that was
//! most of the time (see BENCHMARKS.md). Here every probe walks its posting list once
//! into a bit set (a large one is cached per segment), and a substring probe checks
//! positions only for documents that are still unmatched and still allowed by
//! everything evaluated so far.
//!
//! Invariant: a document is in [`SegmentMatches::bits`] iff the reference rules of
//! [`super::text_query`] and [`crate::query::evaluate`] accept it, and its score is the
//! reference [`super::text_query::score`].

use std::sync::Arc;

use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{AutomatonWeight, DfaWrapper, EnableScoring, FuzzyTermQuery, Query, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, SegmentReader, TERMINATED, Term};

use super::bits::DocBits;
use super::schema::FormField;
use super::segment_cache::SegmentCache;

/// One way a part can match, and the level a match gets.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Documents holding the term (an exact word, a short prefix, one trigram).
    Term { term: Term, level: u8 },
    /// Terms at these offsets from one another: a substring of 4+ letters (its
    /// trigrams at consecutive positions), or a prefix of 5+ letters (its word start,
    /// then its trigrams past it).
    Phrase { terms: Vec<(u32, Term)>, level: u8 },
    /// A whole word of `form`'s group within `distance` edits (transpositions count
    /// as one).
    Fuzzy {
        form: FormField,
        word: String,
        distance: u8,
        level: u8,
    },
}

impl Probe {
    pub fn level(&self) -> u8 {
        match self {
            Probe::Term { level, .. }
            | Probe::Phrase { level, .. }
            | Probe::Fuzzy { level, .. } => *level,
        }
    }
}

/// One part of `q`: it matches a document when any probe does, at the best level.
#[derive(Debug, Clone, Default)]
pub struct PartPlan {
    /// Best level first (a document takes the level of the first probe matching it).
    probes: Vec<Probe>,
    /// Probes searched only when typos are (see [`super::text_query::TYPO_THRESHOLD`]).
    typo_probes: Vec<Probe>,
}

impl PartPlan {
    pub fn push(&mut self, probe: Probe) {
        match probe {
            Probe::Fuzzy { .. } => self.typo_probes.push(probe),
            _ => self.probes.push(probe),
        }
    }

    pub fn has_typo_probes(&self) -> bool {
        !self.typo_probes.is_empty()
    }
}

/// A filter: its boolean structure, with one tantivy query per condition.
pub enum FilterPlan {
    All(Vec<FilterPlan>),
    Any(Vec<FilterPlan>),
    Not(Box<FilterPlan>),
    /// `key` names what the query selects, for the per-segment cache of its bits.
    Leaf {
        key: String,
        query: Box<dyn Query>,
    },
}

enum BoundFilter<'a> {
    All(Vec<BoundFilter<'a>>),
    Any(Vec<BoundFilter<'a>>),
    Not(Box<BoundFilter<'a>>),
    Leaf {
        key: &'a str,
        weight: Box<dyn Weight>,
    },
}

impl FilterPlan {
    fn bind(&self, scoring: EnableScoring<'_>) -> tantivy::Result<BoundFilter<'_>> {
        Ok(match self {
            FilterPlan::All(items) => BoundFilter::All(bind_all(items, scoring)?),
            FilterPlan::Any(items) => BoundFilter::Any(bind_all(items, scoring)?),
            FilterPlan::Not(inner) => BoundFilter::Not(Box::new(inner.bind(scoring)?)),
            FilterPlan::Leaf { key, query } => BoundFilter::Leaf {
                key,
                weight: query.weight(scoring)?,
            },
        })
    }
}

fn bind_all<'a>(
    items: &'a [FilterPlan],
    scoring: EnableScoring<'_>,
) -> tantivy::Result<Vec<BoundFilter<'a>>> {
    items.iter().map(|item| item.bind(scoring)).collect()
}

impl BoundFilter<'_> {
    /// The documents of `segment` the filter accepts (alive or not: the caller
    /// intersects with the searchable ones).
    fn evaluate(&self, segment: &SegmentReader, cache: &SegmentCache) -> tantivy::Result<DocBits> {
        let max_doc = segment.max_doc();
        Ok(match self {
            BoundFilter::All(items) => {
                let mut bits = DocBits::full(max_doc);
                for item in items {
                    bits.intersect(&item.evaluate(segment, cache)?);
                }
                bits
            }
            BoundFilter::Any(items) => {
                let mut bits = DocBits::empty(max_doc);
                for item in items {
                    bits.union(&item.evaluate(segment, cache)?);
                }
                bits
            }
            BoundFilter::Not(inner) => {
                let mut bits = inner.evaluate(segment, cache)?;
                bits.complement(max_doc);
                bits
            }
            BoundFilter::Leaf { key, weight } => {
                DocBits::clone(
                    &*cache.condition(segment, key, || weight_bits(weight.as_ref(), segment))?,
                )
            }
        })
    }
}

pub struct Plan {
    pub parts: Vec<PartPlan>,
    /// The filter and any listing scope.
    pub filter: Option<FilterPlan>,
    /// Only active contacts (unless the filter names `status`).
    pub active_only: bool,
    /// Whether the levels of each part are kept (only a relevance sort reads them).
    pub ranked: bool,
    /// See [`super::SearchRequest::deadline`].
    pub deadline: Option<std::time::Instant>,
}

impl Plan {
    /// Fails once the request's deadline has passed, so a search cut off by the
    /// request timeout stops working too (the blocking thread is not otherwise told).
    pub fn check_deadline(&self) -> Result<(), super::IndexError> {
        match self.deadline {
            Some(deadline) if std::time::Instant::now() >= deadline => {
                Err(super::IndexError::TimedOut)
            }
            _ => Ok(()),
        }
    }
}

/// A term probe whose posting list is at least this long has its bit set cached per
/// segment (one-letter prefixes, common words: what every keystroke repeats).
const CACHED_PROBE_MIN_DOCS: u32 = 4096;

/// One part's matches: per level, best first, the documents whose best match is at
/// that level (the sets are disjoint).
#[derive(Default)]
pub struct PartMatches {
    levels: Vec<(u8, DocBits)>,
}

impl PartMatches {
    /// The best level of `doc` (0: no match).
    fn level_of(&self, doc: DocId) -> u8 {
        self.levels
            .iter()
            .find(|(_, bits)| bits.contains(doc))
            .map_or(0, |(level, _)| *level)
    }
}

/// What matched in one segment.
pub struct SegmentMatches {
    pub bits: DocBits,
    /// Per part, its levels; empty when the plan is not ranked.
    parts: Vec<PartMatches>,
}

impl SegmentMatches {
    pub fn count(&self) -> usize {
        self.bits.len()
    }

    /// The relevance of a matching document: the sum of its part levels.
    pub fn score(&self, doc: DocId) -> u32 {
        self.parts
            .iter()
            .map(|part| u32::from(part.level_of(doc)))
            .sum()
    }

    /// How many matches have each score, best first; `None` when that needs a visit
    /// of every match (several parts: scores are sums).
    pub fn score_counts(&self) -> Option<Vec<(u32, usize)>> {
        match self.parts.as_slice() {
            [] => Some(vec![(0, self.count())]),
            [part] => Some(
                part.levels
                    .iter()
                    .map(|(level, bits)| (u32::from(*level), bits.intersection_len(&self.bits)))
                    .filter(|(_, count)| *count > 0)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The matches with this score, when a single part makes the score (see
    /// [`Self::score_counts`]): set algebra instead of a score per document.
    pub fn with_score(&self, score: u32) -> Option<DocBits> {
        match self.parts.as_slice() {
            [part] => {
                let mut bits = part
                    .levels
                    .iter()
                    .find(|(level, _)| u32::from(*level) == score)
                    .map(|(_, bits)| bits.clone())?;
                bits.intersect(&self.bits);
                Some(bits)
            }
            _ => None,
        }
    }
}

/// A plan bound to a searcher: the filter's weight is built once for all segments.
pub struct BoundPlan<'a> {
    plan: &'a Plan,
    filter: Option<BoundFilter<'a>>,
    fuzzy: Vec<Vec<Option<Box<dyn Weight>>>>,
}

/// The terms of `form`'s group within `distance` edits of `word`: tantivy's
/// Levenshtein automaton of the word, after the group's tag (an edit of the tag
/// would reach another group's words).
fn typo_weight(form: FormField, word: &str, distance: u8) -> tantivy::Result<Box<dyn Weight>> {
    let untagged = Term::from_field_text(form.field, word);
    let words = FuzzyTermQuery::new(untagged, distance, true).automaton()?;
    let automaton = AfterTag {
        tag: form.tag as u8,
        words,
    };
    Ok(Box::new(AutomatonWeight::<AfterTag>::new(
        form.field,
        Arc::new(automaton),
    )))
}

/// Accepts a tag byte, then what `words` accepts.
struct AfterTag {
    tag: u8,
    words: DfaWrapper,
}

/// Where an [`AfterTag`] is: before the first byte, past a first byte that is not
/// the tag (nothing can match), or inside the word's automaton.
#[derive(Clone, Copy)]
enum TagState {
    Start,
    Other,
    Words(u32),
}

impl tantivy_fst::Automaton for AfterTag {
    type State = TagState;

    fn start(&self) -> TagState {
        TagState::Start
    }

    fn is_match(&self, state: &TagState) -> bool {
        matches!(state, TagState::Words(inner) if self.words.is_match(inner))
    }

    fn can_match(&self, state: &TagState) -> bool {
        match state {
            TagState::Start => true,
            TagState::Other => false,
            TagState::Words(inner) => self.words.can_match(inner),
        }
    }

    fn accept(&self, state: &TagState, byte: u8) -> TagState {
        match state {
            TagState::Start if byte == self.tag => TagState::Words(self.words.start()),
            TagState::Start | TagState::Other => TagState::Other,
            TagState::Words(inner) => TagState::Words(self.words.accept(inner, byte)),
        }
    }
}

impl Plan {
    pub fn bind<'a>(
        &'a self,
        scoring: EnableScoring<'_>,
        typos: bool,
    ) -> tantivy::Result<BoundPlan<'a>> {
        let filter = self
            .filter
            .as_ref()
            .map(|filter| filter.bind(scoring))
            .transpose()?;
        let fuzzy = self
            .parts
            .iter()
            .map(|part| {
                part.typo_probes
                    .iter()
                    .map(|probe| match probe {
                        Probe::Fuzzy {
                            form,
                            word,
                            distance,
                            ..
                        } if typos => typo_weight(*form, word, *distance).map(Some),
                        _ => Ok(None),
                    })
                    .collect::<tantivy::Result<Vec<_>>>()
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(BoundPlan {
            plan: self,
            filter,
            fuzzy,
        })
    }

    /// Whether some part could match with typos.
    pub fn allows_typos(&self) -> bool {
        self.parts.iter().any(PartPlan::has_typo_probes)
    }
}

impl BoundPlan<'_> {
    /// Everything that matches in `segment`.
    pub fn evaluate(
        &self,
        segment: &SegmentReader,
        cache: &SegmentCache,
    ) -> Result<SegmentMatches, super::IndexError> {
        let max_doc = segment.max_doc();
        let mut allowed = DocBits::clone(&*cache.searchable(segment, self.plan.active_only)?);
        if let Some(filter) = &self.filter {
            allowed.intersect(&filter.evaluate(segment, cache)?);
        }
        let mut parts = Vec::with_capacity(self.plan.parts.len());
        for (part, fuzzy) in self.plan.parts.iter().zip(&self.fuzzy) {
            let mut levels = PartMatches::default();
            let mut matched = DocBits::empty(max_doc);
            for probe in &part.probes {
                self.plan.check_deadline()?;
                let found = probe_bits(segment, probe, &allowed, &matched, cache)?;
                add_level(&mut levels, &mut matched, probe.level(), found);
            }
            for (probe, weight) in part.typo_probes.iter().zip(fuzzy) {
                if let Some(weight) = weight {
                    let found = weight_bits(weight.as_ref(), segment)?;
                    add_level(&mut levels, &mut matched, probe.level(), found);
                }
            }
            allowed.intersect(&matched);
            if self.plan.ranked {
                parts.push(levels);
            }
        }
        Ok(SegmentMatches {
            bits: allowed,
            parts,
        })
    }
}

/// The documents a tantivy query matches in `segment` (deleted ones included).
fn weight_bits(weight: &dyn Weight, segment: &SegmentReader) -> tantivy::Result<DocBits> {
    let mut bits = DocBits::empty(segment.max_doc());
    weight.for_each_no_score(segment, &mut |docs| {
        for &doc in docs {
            bits.insert(doc);
        }
    })?;
    Ok(bits)
}

/// Records the documents `found` at `level` that no better level already holds.
fn add_level(levels: &mut PartMatches, matched: &mut DocBits, level: u8, mut found: DocBits) {
    found.subtract(matched);
    if found.len() == 0 {
        return;
    }
    matched.union(&found);
    match levels.levels.iter_mut().find(|(l, _)| *l == level) {
        Some((_, bits)) => bits.union(&found),
        None => levels.levels.push((level, found)),
    }
}

/// The documents a probe matches in `segment`. A phrase probe only checks the
/// documents `allowed` and not yet `matched` (the others are decided already).
fn probe_bits(
    segment: &SegmentReader,
    probe: &Probe,
    allowed: &DocBits,
    matched: &DocBits,
    cache: &SegmentCache,
) -> tantivy::Result<DocBits> {
    let max_doc = segment.max_doc();
    match probe {
        Probe::Term { term, .. } => {
            let index = segment.inverted_index(term.field())?;
            let Some(info) = index.get_term_info(term)? else {
                return Ok(DocBits::empty(max_doc));
            };
            let read = || -> tantivy::Result<DocBits> {
                let mut postings =
                    index.read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
                Ok(DocBits::of_docs(max_doc, &mut postings))
            };
            if info.doc_freq >= CACHED_PROBE_MIN_DOCS {
                let key = format!("term {:?}", term);
                Ok(DocBits::clone(&*cache.condition(segment, &key, read)?))
            } else {
                read()
            }
        }
        Probe::Phrase { terms, .. } => {
            let mut bits = DocBits::empty(max_doc);
            let Some(field) = terms.first().map(|(_, term)| term.field()) else {
                return Ok(bits);
            };
            let index = segment.inverted_index(field)?;
            let mut postings = Vec::with_capacity(terms.len());
            for (offset, term) in terms {
                match index.read_postings(term, IndexRecordOption::WithFreqsAndPositions)? {
                    Some(p) => postings.push((*offset, p)),
                    // A trigram absent from the segment: nothing here holds the phrase.
                    None => return Ok(bits),
                }
            }
            // The rarest trigram leads; the others are sought to its documents.
            postings.sort_by_key(|(_, p)| p.doc_freq());
            let mut positions: Vec<Vec<u32>> = vec![Vec::new(); postings.len()];
            let (lead, rest) = postings.split_first_mut().expect("a phrase has trigrams");
            // Leapfrog: every list jumps to the furthest document any of them is on,
            // so only documents holding all trigrams are visited.
            let mut doc = lead.1.doc();
            while doc != TERMINATED {
                if matched.contains(doc) || !allowed.contains(doc) {
                    doc = lead.1.advance();
                    continue;
                }
                let furthest = rest
                    .iter_mut()
                    .map(|(_, p)| if p.doc() < doc { p.seek(doc) } else { p.doc() })
                    .max()
                    .unwrap_or(doc);
                if furthest != doc {
                    doc = lead.1.seek(furthest);
                    continue;
                }
                if phrase_at(doc, lead, rest, &mut positions) {
                    bits.insert(doc);
                }
                doc = lead.1.advance();
            }
            Ok(bits)
        }
        Probe::Fuzzy { .. } => unreachable!("typo probes are applied through their weight"),
    }
}

/// Whether the trigrams sit at consecutive positions in `doc` (every posting list is
/// on `doc`). `offset` is a trigram's place in the phrase.
fn phrase_at(
    doc: DocId,
    lead: &mut (u32, SegmentPostings),
    rest: &mut [(u32, SegmentPostings)],
    positions: &mut [Vec<u32>],
) -> bool {
    debug_assert!(rest.iter().all(|(_, p)| p.doc() == doc));
    lead.1.positions(&mut positions[0]);
    for (i, (_, postings)) in rest.iter_mut().enumerate() {
        postings.positions(&mut positions[i + 1]);
    }
    let offsets: Vec<u32> = std::iter::once(lead.0)
        .chain(rest.iter().map(|(o, _)| *o))
        .collect();
    positions[0].iter().any(|&p| {
        let Some(start) = p.checked_sub(offsets[0]) else {
            return false;
        };
        offsets
            .iter()
            .zip(positions.iter())
            .skip(1)
            .all(|(offset, list)| list.binary_search(&(start + offset)).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use tantivy::schema::Field;
    use tantivy_fst::{IntoStreamer, Streamer};

    use super::*;

    /// A typo probe reaches words of its own group within the distance, never the
    /// same word under another group's tag.
    #[test]
    fn a_typo_probe_stays_in_its_group() {
        let terms = [
            "Ehelena", "Ehelene", "Nhelen", "Nhelene", "Nmarie", "Ohelene",
        ];
        let map = tantivy_fst::Map::from_iter(terms.iter().map(|t| (t, 0))).expect("sorted");
        let untagged = Term::from_field_text(Field::from_field_id(0), "helena");
        let words = FuzzyTermQuery::new(untagged, 1, true)
            .automaton()
            .expect("automaton");
        let mut stream = map.search(AfterTag { tag: b'N', words }).into_stream();
        let mut found = Vec::new();
        while let Some((term, _)) = stream.next() {
            found.push(String::from_utf8(term.to_vec()).expect("utf-8"));
        }
        assert_eq!(found, ["Nhelen", "Nhelene"]);
    }
}
