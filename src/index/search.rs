//! Query execution: `q` parts → tantivy queries with ranking tiers, top-k and count.
//!
//! Every part becomes a disjunction (max) of constant-score queries, one per field
//! group and match tier; parts are combined with Must, so scores add up across parts.
//! A tier's score dominates the field weight ([`TIER_STEP`] > any weight), which gives
//! the ranking exact > prefix > substring, then name > email > phone > the rest.

use std::time::Instant;

use std::sync::Arc;

use tantivy::Term;
use tantivy::collector::Count;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, DisjunctionMaxQuery, FuzzyTermQuery, Occur,
    PhraseQuery, Query, TermQuery,
};
use tantivy::schema::IndexRecordOption;

use super::analysis::{MAX_PREFIX, MIN_SUBSTRING, trigrams};
use super::facets::{FacetCounts, Facets};
use super::schema::TextGroup;
use super::sort::{After, SortSpec, SortedPage};
use super::text_query::{QueryPart, parse, typo_distance};
use super::{IndexError, SearchIndex};
use crate::query::Resolved;

const TIER_STEP: f32 = 2.0;
const EXACT: f32 = 4.0 * TIER_STEP;
const PREFIX: f32 = 3.0 * TIER_STEP;
const SUBSTRING: f32 = 2.0 * TIER_STEP;
const TYPO: f32 = TIER_STEP;

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
        let query = self.build_query(request);
        let specs = Arc::new(
            request
                .sort
                .clone()
                .unwrap_or_else(|| SortSpec::default_for(query.has_text)),
        );
        let page = SortedPage {
            specs,
            after: request.after.clone().map(Arc::new),
            limit: request.limit.max(1),
        };
        let facets = Facets {
            columns: request.facets.clone(),
        };
        let (total, page, facets) = searcher.search(&query.query, &(Count, page, facets))?;
        let next = (page.remaining > page.hits.len())
            .then(|| {
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
            facets,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// How many contacts match (for inbox counts).
    pub fn count(&self, request: &SearchRequest) -> Result<usize, IndexError> {
        let query = self.build_query(request);
        Ok(self.reader.searcher().search(&query.query, &Count)?)
    }

    fn build_query(&self, request: &SearchRequest) -> BuiltQuery {
        let fields = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let names_status = request.filter.as_ref().is_some_and(|f| f.names_status);
        if !names_status {
            let active = Term::from_field_text(fields.status, "active");
            clauses.push((Occur::Must, scored(term_query(active), 0.0)));
        }
        if let Some(company_id) = &request.company_id {
            let term = Term::from_field_text(fields.keywords.company_id, company_id);
            clauses.push((Occur::Must, scored(term_query(term), 0.0)));
        }
        if let Some(filter) = &request.filter {
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(self.filter_query(&filter.expr), 0.0)),
            ));
        }
        let parts = parse(&request.q);
        for part in &parts {
            clauses.push((Occur::Must, Box::new(self.part_query(part))));
        }
        if clauses.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        BuiltQuery {
            query: BooleanQuery::new(clauses),
            has_text: !parts.is_empty(),
        }
    }

    fn part_query(&self, part: &QueryPart) -> DisjunctionMaxQuery {
        let fields = &self.fields;
        let mut disjuncts: Vec<Box<dyn Query>> = Vec::new();
        match part {
            QueryPart::Word { alternatives } => {
                for alternative in alternatives {
                    for group in fields.text_groups() {
                        word_tiers(group, alternative, &mut disjuncts);
                        typo_tier(group, alternative, &mut disjuncts);
                    }
                }
            }
            QueryPart::Phone {
                digits,
                international: true,
                ..
            } => {
                let term = Term::from_field_text(fields.phone_international, digits);
                disjuncts.push(scored(term_query(term), PREFIX + fields.phone.weight));
            }
            QueryPart::Phone {
                digits, as_word, ..
            } => {
                word_tiers(fields.phone, digits, &mut disjuncts);
                if let Some(word) = as_word {
                    for group in [fields.name, fields.email, fields.other] {
                        word_tiers(group, word, &mut disjuncts);
                    }
                }
            }
        }
        DisjunctionMaxQuery::new(disjuncts)
    }
}

struct BuiltQuery {
    query: BooleanQuery,
    has_text: bool,
}

/// Exact, prefix and substring queries of one word on one field group.
pub(super) fn word_tiers(group: TextGroup, word: &str, out: &mut Vec<Box<dyn Query>>) {
    let weight = group.weight;
    out.push(scored(
        term_query(Term::from_field_text(group.words, word)),
        EXACT + weight,
    ));
    if word.len() <= MAX_PREFIX {
        let term = Term::from_field_text(group.prefixes, word);
        out.push(scored(term_query(term), PREFIX + weight));
    }
    if word.len() == MIN_SUBSTRING {
        let term = Term::from_field_text(group.trigrams, word);
        out.push(scored(term_query(term), SUBSTRING + weight));
    } else if word.len() > MIN_SUBSTRING {
        let terms = trigrams(word)
            .map(|g| Term::from_field_text(group.trigrams, g))
            .collect();
        out.push(scored(PhraseQuery::new(terms), SUBSTRING + weight));
    }
}

/// Whole-word matches with typos: one edit from five letters, two from nine.
fn typo_tier(group: TextGroup, word: &str, out: &mut Vec<Box<dyn Query>>) {
    if let Some(distance) = typo_distance(word) {
        let term = Term::from_field_text(group.words, word);
        out.push(scored(
            FuzzyTermQuery::new(term, distance, true),
            TYPO + group.weight,
        ));
    }
}

pub(super) fn term_query(term: Term) -> TermQuery {
    TermQuery::new(term, IndexRecordOption::Basic)
}

pub(super) fn scored(query: impl Query, score: f32) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(Box::new(query), score))
}
