//! Searching: a [`SearchRequest`] → a [`Plan`] (see [`super::executor`]) → per
//! segment matches → the exact total, the facet counts and the page.
//!
//! The page: with a sort whose last key has a [`SegmentOrder`] (every date, name and
//! custom sort, and relevance followed by one of them), a large result is paged by
//! walking that order and taking the first matches met, so the cost follows the page
//! rather than the match count; small results are ranked match by match.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{EnableScoring, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Searcher, Term};

use super::analysis::{
    MIN_SUBSTRING, SHORT_PREFIX, WORD_START_LEN, marked, run_start, trigrams, word_start,
};
use super::executor::{FilterPlan, PartPlan, Plan, Probe, SegmentMatches};
use super::facets::{FacetCounts, Facets};
use super::schema::{FormField, TextGroup};
use super::sort::{After, SegmentOrder, SortField, SortSpec, SortedPage, encode_score};
use super::text_query::{
    Group, MatchTier, QueryPart, TYPO_THRESHOLD, WHOLE_VALUE, level, parse, typo_distance,
};
use super::{IndexError, SearchIndex};
use crate::query::Resolved;

/// Below this many matches in a segment, ranking every match is cheaper than walking
/// the segment's order (which costs about the segment's size over the match density).
/// The default of `search.walk_min_matches`.
pub(super) const WALK_MIN_MATCHES: usize = 2048;

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub q: String,
    pub filter: Option<Resolved>,
    /// Only contacts of this company.
    pub company_id: Option<String>,
    /// `None`: relevance for a text query, else newest first.
    pub sort: Option<Vec<SortSpec>>,
    /// Start after this position (keyset cursor).
    pub after: Option<After>,
    pub limit: usize,
    /// Facet columns to count over the whole result.
    pub facets: Vec<String>,
    /// Work stops with [`IndexError::TimedOut`] once this passes (the request's
    /// timeout): checked between probes and segments.
    pub deadline: Option<std::time::Instant>,
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Contact ids, in order.
    pub ids: Vec<String>,
    /// Every match, not only the page.
    pub total: usize,
    /// Where the next page starts, when there is one.
    pub next: Option<After>,
    pub facets: FacetCounts,
    pub took_ms: f64,
}

impl SearchIndex {
    /// Runs a search on the current searcher. Blocking: call from a blocking thread.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        let started = Instant::now();
        let searcher = self.reader.searcher();
        let plan = self.plan(request);
        let matches = self.evaluate(&searcher, &plan)?;
        let total = matches.iter().map(SegmentMatches::count).sum();
        let specs = Arc::new(
            request
                .sort
                .clone()
                .unwrap_or_else(|| SortSpec::default_for(!plan.parts.is_empty())),
        );
        let limit = request.limit.max(1);
        // One more than the page: whether it exists says if there is a next page.
        let pager = SortedPage {
            specs: specs.clone(),
            after: request.after.clone().map(Arc::new),
            limit: limit + 1,
        };
        let facets = Facets {
            columns: request.facets.clone(),
        };
        let mut pages = Vec::with_capacity(matches.len());
        let mut facet_counts = Vec::new();
        for (ord, (segment, matched)) in searcher.segment_readers().iter().zip(&matches).enumerate()
        {
            let ord = ord as u32;
            plan.check_deadline()?;
            if !request.facets.is_empty() {
                let mut counter = facets.for_segment(ord, segment)?;
                for doc in matched.bits.iter() {
                    counter.collect(doc, 0.0);
                }
                facet_counts.push(counter.harvest());
            }
            let mut page = pager.for_segment(ord, segment)?;
            self.collect_page(segment, matched, &specs, &mut page)?;
            pages.push(page.harvest());
        }
        let mut page = pager.merge_fruits(pages)?;
        let next = (page.hits.len() > limit)
            .then(|| {
                page.hits.truncate(limit);
                page.hits.last().map(|(key, id)| After {
                    key: key.clone(),
                    id: id.clone(),
                })
            })
            .flatten();
        Ok(SearchPage {
            ids: page.hits.into_iter().map(|(_, id)| id).collect(),
            total,
            next,
            facets: facets.merge_fruits(facet_counts)?,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The ids of every contact the request matches, in no order (no page, no
    /// limit): what a bulk action by filter works through, fixed when it starts.
    pub fn matching_ids(&self, request: &SearchRequest) -> Result<Vec<String>, IndexError> {
        let searcher = self.reader.searcher();
        let plan = self.plan(request);
        let matches = self.evaluate(&searcher, &plan)?;
        let mut ids = Vec::with_capacity(matches.iter().map(SegmentMatches::count).sum());
        for (segment, matched) in searcher.segment_readers().iter().zip(&matches) {
            plan.check_deadline()?;
            let Some(column) = segment.fast_fields().str(super::schema::ID)? else {
                continue;
            };
            let mut text = String::new();
            for doc in matched.bits.iter() {
                if let Some(ord) = column.term_ords(doc).next() {
                    text.clear();
                    column.ord_to_str(ord, &mut text)?;
                    ids.push(text.clone());
                }
            }
        }
        Ok(ids)
    }

    /// How many contacts match (for inbox counts).
    pub fn count(&self, request: &SearchRequest) -> Result<usize, IndexError> {
        let searcher = self.reader.searcher();
        let plan = self.plan(request);
        let matches = self.evaluate(&searcher, &plan)?;
        Ok(matches.iter().map(SegmentMatches::count).sum())
    }

    /// Every segment's matches; with typo matches too when there are fewer than
    /// [`TYPO_THRESHOLD`] without them.
    fn evaluate(
        &self,
        searcher: &Searcher,
        plan: &Plan,
    ) -> Result<Vec<SegmentMatches>, IndexError> {
        let scoring = EnableScoring::disabled_from_searcher(searcher);
        let run = |typos: bool| -> Result<Vec<SegmentMatches>, IndexError> {
            let bound = plan.bind(scoring, typos)?;
            searcher
                .segment_readers()
                .iter()
                .map(|segment| bound.evaluate(segment, &self.segment_cache))
                .collect()
        };
        let strict = run(false)?;
        let found: usize = strict.iter().map(SegmentMatches::count).sum();
        if found < TYPO_THRESHOLD && plan.allows_typos() {
            run(true)
        } else {
            Ok(strict)
        }
    }

    /// Feeds one segment's matches to its page collector: all of them, or for a large
    /// result only those met first in the order of the last sort key.
    fn collect_page(
        &self,
        segment: &tantivy::SegmentReader,
        matched: &SegmentMatches,
        specs: &[SortSpec],
        page: &mut super::sort::SortedPageSegment,
    ) -> Result<(), IndexError> {
        let walk_min = self.walk_min_matches.load(Ordering::Relaxed);
        let walkable = matched.count() >= walk_min;
        match specs {
            [only] if walkable && SegmentOrder::supports(only) => {
                let order = self.segment_cache.order(segment, only)?;
                let wanted = page.capacity();
                page.collect_in_order(&order, 0.0, true, wanted, |doc| matched.bits.contains(doc));
            }
            [first, then]
                if walkable && !SegmentOrder::supports(first) && SegmentOrder::supports(then) =>
            {
                let order = self.segment_cache.order(segment, then)?;
                collect_by_relevance(matched, &order, walk_min, page);
            }
            _ => {
                for doc in matched.bits.iter() {
                    page.offer(doc, matched.score(doc) as f32);
                }
            }
        }
        Ok(())
    }

    fn plan(&self, request: &SearchRequest) -> Plan {
        let fields = &self.fields;
        let mut scope = Vec::new();
        if let Some(company_id) = &request.company_id {
            let term = fields.keys.term("company_id", company_id);
            scope.push(FilterPlan::Leaf {
                key: format!("company_id = {company_id}"),
                query: Box::new(term_query(term)),
            });
        }
        if let Some(filter) = &request.filter {
            scope.push(self.filter_plan(&filter.expr));
        }
        let filter = match scope.len() {
            0 => None,
            1 => scope.pop(),
            _ => Some(FilterPlan::All(scope)),
        };
        let parts: Vec<PartPlan> = parse(&request.q)
            .iter()
            .map(|part| self.part_plan(part))
            .collect();
        let ranked = match &request.sort {
            Some(specs) => specs.iter().any(|s| s.field == SortField::Relevance),
            None => !parts.is_empty(),
        };
        Plan {
            parts,
            filter,
            active_only: !request.filter.as_ref().is_some_and(|f| f.names_status),
            ranked,
            deadline: request.deadline,
        }
    }

    fn part_plan(&self, part: &QueryPart) -> PartPlan {
        let fields = &self.fields;
        let mut plan = PartPlan::default();
        match part {
            QueryPart::Word { alternatives } => {
                let mut probes = Vec::new();
                for alternative in alternatives {
                    for group in fields.text_groups() {
                        word_probes(group, alternative, &mut probes);
                        if let Some(distance) = typo_distance(alternative) {
                            probes.push(Probe::Fuzzy {
                                form: group.words,
                                word: alternative.clone(),
                                distance,
                                level: level(MatchTier::Typo, group.group),
                            });
                        }
                    }
                }
                push_best_first(&mut plan, probes);
            }
            QueryPart::Phone {
                digits,
                international: true,
                ..
            } => {
                let whole = fields.handles.words.term(&format!("+{digits}"));
                push_best_first(
                    &mut plan,
                    vec![
                        Probe::Term {
                            term: whole,
                            level: WHOLE_VALUE,
                        },
                        // International forms are the phone group's marked words.
                        prefix_probe(
                            fields.phone,
                            digits,
                            level(MatchTier::Prefix, Group::Phone),
                            Lead::Marked,
                        ),
                    ],
                );
            }
            QueryPart::Phone {
                digits, as_word, ..
            } => {
                let whole = fields.phone.words.term(digits);
                let mut probes = vec![Probe::Term {
                    term: whole,
                    level: WHOLE_VALUE,
                }];
                word_probes(fields.phone, digits, &mut probes);
                if let Some(word) = as_word {
                    for group in [fields.name, fields.email, fields.other] {
                        word_probes(group, word, &mut probes);
                    }
                }
                push_best_first(&mut plan, probes);
            }
            QueryPart::Fragment { text } => {
                let whole = fields.handles.words.term(text);
                let mut probes = vec![Probe::Term {
                    term: whole,
                    level: WHOLE_VALUE,
                }];
                word_probes(fields.handles, text, &mut probes);
                // The emails' trigrams are the email group's: the start of a whole
                // email, and a piece of one.
                let (prefix, substring) = (
                    level(MatchTier::Prefix, Group::Email),
                    level(MatchTier::Substring, Group::Email),
                );
                if text.len() > SHORT_PREFIX {
                    let trigrams = fields.email.trigrams;
                    probes.push(long_prefix_probe(trigrams, text, prefix, Lead::Word));
                }
                probes.extend(substring_probe(fields.email.trigrams, text, substring));
                push_best_first(&mut plan, probes);
            }
        }
        plan
    }
}

/// Pages a relevance-then-key sort. Scores are few: from the best score down, a score
/// whose matches all fit the page is taken whole; the score that completes the page
/// is walked in the key's order when it has many matches, so only the first ones met
/// are ranked. With one part, the count and the matches of each score are set
/// algebra; with several, every match's score is summed once.
fn collect_by_relevance(
    matched: &SegmentMatches,
    order: &SegmentOrder,
    walk_min: usize,
    page: &mut super::sort::SortedPageSegment,
) {
    let mut counts = matched.score_counts().unwrap_or_else(|| {
        let mut by_score: Vec<usize> = Vec::new();
        for doc in matched.bits.iter() {
            let score = matched.score(doc) as usize;
            if score >= by_score.len() {
                by_score.resize(score + 1, 0);
            }
            by_score[score] += 1;
        }
        by_score
            .into_iter()
            .enumerate()
            .filter(|(_, count)| *count > 0)
            .map(|(score, count)| (score as u32, count))
            .collect()
    });
    counts.sort_by_key(|&(score, _)| std::cmp::Reverse(score));
    // The documents with a score: their own set when one part makes the score.
    let offer_all = |page: &mut super::sort::SortedPageSegment, score: u32| -> usize {
        match matched.with_score(score) {
            Some(bits) => bits
                .iter()
                .filter(|&doc| page.offer(doc, score as f32))
                .count(),
            None => matched
                .bits
                .iter()
                .filter(|&doc| matched.score(doc) == score && page.offer(doc, score as f32))
                .count(),
        }
    };
    let cursor = page.cursor_relevance().flatten();
    let mut wanted = page.capacity();
    for (score, count) in counts {
        if wanted == 0 {
            break;
        }
        let encoded = encode_score(score);
        if cursor.is_some_and(|c| encoded > c) {
            continue; // better than the cursor: served by earlier pages
        }
        let cursor_applies = cursor == Some(encoded);
        let taken = if count >= walk_min && (cursor_applies || count > wanted) {
            let with_score = matched.with_score(score);
            page.collect_in_order(order, score as f32, cursor_applies, wanted, |doc| {
                match &with_score {
                    Some(bits) => bits.contains(doc),
                    None => matched.bits.contains(doc) && matched.score(doc) == score,
                }
            })
        } else {
            offer_all(page, score)
        };
        wanted = wanted.saturating_sub(taken);
    }
}

/// Sorts probes best level first (a document takes the first level it meets).
fn push_best_first(plan: &mut PartPlan, mut probes: Vec<Probe>) {
    probes.sort_by_key(|probe| std::cmp::Reverse(probe.level()));
    for probe in probes {
        plan.push(probe);
    }
}

/// Exact, prefix and substring probes of one word on one field group.
fn word_probes(group: TextGroup, word: &str, out: &mut Vec<Probe>) {
    out.push(Probe::Term {
        term: group.words.term(word),
        level: level(MatchTier::Exact, group.group),
    });
    let prefix = level(MatchTier::Prefix, group.group);
    // The words of whole handles start either the handle or an inner run.
    let leads: &[Lead] = match group.handle_trigrams && word.len() > SHORT_PREFIX {
        true => &[Lead::Word, Lead::InnerRun],
        false => &[Lead::Word],
    };
    for lead in leads {
        out.push(prefix_probe(group, word, prefix, *lead));
    }
    out.extend(substring_probe(
        group.trigrams,
        word,
        level(MatchTier::Substring, group.group),
    ));
}

/// The documents holding `word` inside a word of a trigram field (from
/// [`MIN_SUBSTRING`] bytes: a trigram, or the phrase of its trigrams).
fn substring_probe(trigrams: FormField, word: &str, level: u8) -> Option<Probe> {
    match word.len() {
        MIN_SUBSTRING => Some(Probe::Term {
            term: trigrams.term(word),
            level,
        }),
        length if length > MIN_SUBSTRING => Some(Probe::Phrase {
            terms: trigram_terms(trigrams, word).collect(),
            level,
        }),
        _ => None,
    }
}

/// Which word start a prefix probe looks for (see [`super::analysis`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// A word's start, `^`.
    Word,
    /// A word inside a handle after its first, [`super::analysis::RUN_START`].
    InnerRun,
    /// A marked word's start, [`super::analysis::MARK`].
    Marked,
}

impl Lead {
    /// The short prefix term of `prefix`.
    fn short(self, prefix: &str) -> String {
        match self {
            Lead::Word | Lead::InnerRun => prefix.to_string(),
            Lead::Marked => marked(prefix),
        }
    }

    /// The start term of a word whose first [`WORD_START_LEN`] bytes are `start`.
    fn start(self, start: &str) -> String {
        match self {
            Lead::Word => word_start(start),
            Lead::InnerRun => run_start(start),
            Lead::Marked => marked(start),
        }
    }
}

/// The documents holding a word of `group` that starts with `prefix` (see
/// [`super::analysis`]): a short prefix is an edge gram; a 4-byte one a word start;
/// a longer one its word start followed by its trigrams past it.
fn prefix_probe(group: TextGroup, prefix: &str, level: u8, lead: Lead) -> Probe {
    if prefix.len() <= SHORT_PREFIX {
        return Probe::Term {
            term: group.short_prefixes.term(&lead.short(prefix)),
            level,
        };
    }
    long_prefix_probe(group.trigrams, prefix, level, lead)
}

/// [`prefix_probe`] of a prefix longer than [`SHORT_PREFIX`], on a trigram field.
fn long_prefix_probe(trigrams: FormField, prefix: &str, level: u8, lead: Lead) -> Probe {
    let start = trigrams.term(&lead.start(&prefix[..WORD_START_LEN]));
    if prefix.len() == WORD_START_LEN {
        return Probe::Term { term: start, level };
    }
    // The word start covers bytes 0..4, the trigrams from byte 2 on cover the rest.
    let terms = std::iter::once((0, start))
        .chain(trigram_terms(trigrams, prefix).skip(WORD_START_LEN - MIN_SUBSTRING + 1))
        .collect();
    Probe::Phrase { terms, level }
}

/// The trigram terms of `word` in a trigram field, each with its offset in the word
/// (the phrase positions of [`Probe::Phrase`]).
fn trigram_terms(form: FormField, word: &str) -> impl Iterator<Item = (u32, Term)> + '_ {
    trigrams(word)
        .zip(0..)
        .map(move |(gram, offset)| (offset, form.term(gram)))
}

/// The exact, prefix and substring forms of one word on one field group, as a query
/// (for `CONTAINS` in filters).
pub(super) fn word_tiers(group: TextGroup, word: &str, out: &mut Vec<Box<dyn Query>>) {
    let mut probes = Vec::new();
    word_probes(group, word, &mut probes);
    for probe in probes {
        match probe {
            Probe::Term { term, .. } => out.push(Box::new(term_query(term))),
            Probe::Phrase { terms, .. } => {
                let terms = terms
                    .into_iter()
                    .map(|(offset, term)| (offset as usize, term))
                    .collect();
                out.push(Box::new(tantivy::query::PhraseQuery::new_with_offset(
                    terms,
                )))
            }
            Probe::Fuzzy { .. } => {}
        }
    }
}

pub(super) fn term_query(term: Term) -> TermQuery {
    TermQuery::new(term, IndexRecordOption::Basic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContactContext;

    /// A search whose deadline has passed stops with `TimedOut` instead of running
    /// on after its request was answered.
    #[test]
    fn a_search_past_its_deadline_stops() {
        let dir = tempfile::TempDir::new().unwrap();
        let index = SearchIndex::create(dir.path()).unwrap();
        let mut updater = index.updater(20 << 20, 1).unwrap();
        for contact in crate::model::sample_contacts() {
            updater.add(&contact, &ContactContext::default()).unwrap();
        }
        updater.commit(2).unwrap();
        index.reload().unwrap();
        let mut request = SearchRequest {
            q: String::new(),
            filter: None,
            company_id: None,
            sort: None,
            after: None,
            limit: 20,
            facets: Vec::new(),
            deadline: Some(Instant::now() + std::time::Duration::from_secs(60)),
        };
        assert_eq!(index.search(&request).unwrap().total, 1);
        request.deadline = Some(Instant::now() - std::time::Duration::from_millis(1));
        assert!(matches!(index.search(&request), Err(IndexError::TimedOut)));
    }
}
