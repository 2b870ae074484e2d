//! Query execution: `q` parts → tantivy queries with ranking tiers, top-k and count.
//!
//! Every part becomes a disjunction (max) of constant-score queries, one per field
//! group and match tier; parts are combined with Must, so scores add up across parts.
//! A tier's score dominates the field weight ([`TIER_STEP`] > any weight), which gives
//! the ranking exact > prefix > substring, then name > email > phone > the rest.

use std::time::Instant;

use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, DisjunctionMaxQuery, Occur, PhraseQuery, Query,
    TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{Order, Term};

use super::analysis::{MAX_PREFIX, MIN_SUBSTRING, trigrams};
use super::schema::{CREATED_AT, ID, TextGroup};
use super::text_query::{QueryPart, parse};
use super::{IndexError, SearchIndex};

const TIER_STEP: f32 = 2.0;
const EXACT: f32 = 3.0 * TIER_STEP;
const PREFIX: f32 = 2.0 * TIER_STEP;
const SUBSTRING: f32 = TIER_STEP;

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub q: String,
    pub limit: usize,
    /// Only contacts of this company.
    pub company_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Contact ids, best first.
    pub ids: Vec<String>,
    /// Every match, not only the page.
    pub total: usize,
    pub took_ms: f64,
}

impl SearchIndex {
    /// Runs a search on the current searcher. Blocking: call from a blocking thread.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        let started = Instant::now();
        let searcher = self.reader.searcher();
        let query = self.build_query(request);
        let limit = request.limit.max(1);
        let (total, ids) = if query.has_text {
            let top = TopDocs::with_limit(limit).order_by((
                (SortBySimilarityScore, Order::Desc),
                (
                    SortByStaticFastValue::<tantivy::DateTime>::for_field(CREATED_AT),
                    Order::Desc,
                ),
                (SortByString::for_field(ID), Order::Asc),
            ));
            let (total, hits) = searcher.search(&query.query, &(Count, top))?;
            (
                total,
                hits.into_iter().filter_map(|((_, _, id), _)| id).collect(),
            )
        } else {
            let top = TopDocs::with_limit(limit).order_by((
                (
                    SortByStaticFastValue::<tantivy::DateTime>::for_field(CREATED_AT),
                    Order::Desc,
                ),
                (SortByString::for_field(ID), Order::Asc),
            ));
            let (total, hits) = searcher.search(&query.query, &(Count, top))?;
            (
                total,
                hits.into_iter().filter_map(|((_, id), _)| id).collect(),
            )
        };
        Ok(SearchPage {
            ids,
            total,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn build_query(&self, request: &SearchRequest) -> BuiltQuery {
        let fields = &self.fields;
        let active = Term::from_field_text(fields.status, "active");
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, scored(term_query(active), 0.0))];
        if let Some(company_id) = &request.company_id {
            let term = Term::from_field_text(fields.keywords.company_id, company_id);
            clauses.push((Occur::Must, scored(term_query(term), 0.0)));
        }
        let parts = parse(&request.q);
        for part in &parts {
            clauses.push((Occur::Must, Box::new(self.part_query(part))));
        }
        if parts.is_empty() {
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
fn word_tiers(group: TextGroup, word: &str, out: &mut Vec<Box<dyn Query>>) {
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

fn term_query(term: Term) -> TermQuery {
    TermQuery::new(term, IndexRecordOption::Basic)
}

fn scored(query: impl Query, score: f32) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(Box::new(query), score))
}
