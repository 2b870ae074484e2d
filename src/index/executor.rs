//! Query execution, one segment at a time, without a tree of scorers.
//!
//! A search is a [`Plan`]: the parts of `q` (each a list of [`Probe`]s, best level
//! first), an optional filter (a tantivy query, evaluated once into a bit set) and the
//! status rule. Per segment, [`Plan::evaluate`] produces [`SegmentMatches`]: the bit
//! set of matching documents (alive, of the right status, accepted by the filter,
//! matched by every part) and, per part, the level each document reached.
//!
//! Why not a `BooleanQuery` of `DisjunctionMaxQuery`s: that visits every match of every
//! probe through a heap of up to 16 scorers and checks trigram positions for documents
//! a better probe already matched; on a word a quarter of the contacts hold, that was
//! most of the time (see BENCHMARKS.md). Here every probe walks its posting list once,
//! straight into a level array, and a substring probe checks positions only for
//! documents that are still unmatched and still allowed by everything evaluated so far.
//!
//! Invariant: a document is in [`SegmentMatches::bits`] iff the reference rules of
//! [`super::text_query`] and [`crate::query::evaluate`] accept it, and its score is the
//! reference [`super::text_query::score`].

use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{EnableScoring, FuzzyTermQuery, Query, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{COLLECT_BLOCK_BUFFER_LEN, DocId, DocSet, SegmentReader, TERMINATED, Term};

use super::bits::DocBits;
use super::segment_cache::SegmentCache;

/// One way a part can match, and the level a match gets.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Documents holding the term (an exact word, a prefix, one trigram).
    Term { term: Term, level: u8 },
    /// A substring of 4+ letters: its trigrams at consecutive positions.
    Phrase { terms: Vec<Term>, level: u8 },
    /// A whole word within `distance` edits (transpositions count as one).
    Fuzzy { term: Term, distance: u8, level: u8 },
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

pub struct Plan {
    pub parts: Vec<PartPlan>,
    /// The filter and any listing scope, as one query evaluated into a bit set.
    pub filter: Option<Box<dyn Query>>,
    /// Only active contacts (unless the filter names `status`).
    pub active_only: bool,
}

/// What matched in one segment.
pub struct SegmentMatches {
    pub bits: DocBits,
    /// Per part, the level each document reached (0: none).
    levels: Vec<Vec<u8>>,
}

impl SegmentMatches {
    pub fn count(&self) -> usize {
        self.bits.len()
    }

    /// The relevance of a matching document: the sum of its part levels.
    pub fn score(&self, doc: DocId) -> u32 {
        self.levels
            .iter()
            .map(|levels| u32::from(levels[doc as usize]))
            .sum()
    }
}

/// A plan bound to a searcher: the filter's weight is built once for all segments.
pub struct BoundPlan<'a> {
    plan: &'a Plan,
    filter: Option<Box<dyn Weight>>,
    fuzzy: Vec<Vec<Option<Box<dyn Weight>>>>,
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
            .map(|query| query.weight(scoring))
            .transpose()?;
        let fuzzy = self
            .parts
            .iter()
            .map(|part| {
                part.typo_probes
                    .iter()
                    .map(|probe| match probe {
                        Probe::Fuzzy { term, distance, .. } if typos => {
                            FuzzyTermQuery::new(term.clone(), *distance, true)
                                .weight(scoring)
                                .map(Some)
                        }
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
    ) -> tantivy::Result<SegmentMatches> {
        let max_doc = segment.max_doc();
        let mut allowed = DocBits::clone(&*cache.searchable(segment, self.plan.active_only)?);
        if let Some(filter) = &self.filter {
            let mut accepted = DocBits::empty(max_doc);
            filter.for_each_no_score(segment, &mut |docs| {
                for &doc in docs {
                    accepted.insert(doc);
                }
            })?;
            allowed.intersect(&accepted);
        }
        let mut levels = Vec::with_capacity(self.plan.parts.len());
        for (part, fuzzy) in self.plan.parts.iter().zip(&self.fuzzy) {
            let mut part_levels = vec![0u8; max_doc as usize];
            let mut matched = DocBits::empty(max_doc);
            for probe in &part.probes {
                apply_probe(segment, probe, &allowed, &mut part_levels, &mut matched)?;
            }
            for (probe, weight) in part.typo_probes.iter().zip(fuzzy) {
                if let Some(weight) = weight {
                    let level = probe.level();
                    weight.for_each_no_score(segment, &mut |docs| {
                        for &doc in docs {
                            mark(&mut part_levels, &mut matched, doc, level);
                        }
                    })?;
                }
            }
            allowed.intersect(&matched);
            levels.push(part_levels);
        }
        Ok(SegmentMatches {
            bits: allowed,
            levels,
        })
    }
}

/// Gives `doc` the level unless an earlier (better) probe already did.
fn mark(levels: &mut [u8], matched: &mut DocBits, doc: DocId, level: u8) {
    let slot = &mut levels[doc as usize];
    if *slot == 0 {
        *slot = level;
        matched.insert(doc);
    }
}

fn apply_probe(
    segment: &SegmentReader,
    probe: &Probe,
    allowed: &DocBits,
    levels: &mut [u8],
    matched: &mut DocBits,
) -> tantivy::Result<()> {
    match probe {
        Probe::Term { term, level } => {
            let index = segment.inverted_index(term.field())?;
            if let Some(mut postings) = index.read_postings(term, IndexRecordOption::Basic)? {
                let mut buffer = [0; COLLECT_BLOCK_BUFFER_LEN];
                loop {
                    let filled = postings.fill_buffer(&mut buffer);
                    for &doc in &buffer[..filled] {
                        mark(levels, matched, doc, *level);
                    }
                    if filled < COLLECT_BLOCK_BUFFER_LEN {
                        break;
                    }
                }
            }
        }
        Probe::Phrase { terms, level } => {
            let Some(field) = terms.first().map(Term::field) else {
                return Ok(());
            };
            let index = segment.inverted_index(field)?;
            let mut postings = Vec::with_capacity(terms.len());
            for (offset, term) in terms.iter().enumerate() {
                match index.read_postings(term, IndexRecordOption::WithFreqsAndPositions)? {
                    Some(p) => postings.push((offset as u32, p)),
                    // A trigram absent from the segment: nothing here holds the phrase.
                    None => return Ok(()),
                }
            }
            // The rarest trigram leads; the others are sought to its documents.
            postings.sort_by_key(|(_, p)| p.doc_freq());
            let mut positions: Vec<Vec<u32>> = vec![Vec::new(); postings.len()];
            let (lead, rest) = postings.split_first_mut().expect("a phrase has trigrams");
            let mut doc = lead.1.doc();
            while doc != TERMINATED {
                if levels[doc as usize] == 0
                    && allowed.contains(doc)
                    && rest.iter_mut().all(|(_, p)| reaches(p, doc))
                    && phrase_at(doc, lead, rest, &mut positions)
                {
                    mark(levels, matched, doc, *level);
                }
                doc = lead.1.advance();
            }
        }
        Probe::Fuzzy { .. } => unreachable!("typo probes are applied through their weight"),
    }
    Ok(())
}

/// Moves `postings` to `doc` if it holds it (never backwards: `doc` only grows).
fn reaches(postings: &mut SegmentPostings, doc: DocId) -> bool {
    postings.doc() == doc || (postings.doc() < doc && postings.seek(doc) == doc)
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
