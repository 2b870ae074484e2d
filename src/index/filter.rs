//! Compiling a resolved filter into a [`FilterPlan`]: its AND/OR/NOT structure kept
//! as is (evaluated as bit set operations, see [`super::executor`]), each condition a
//! tantivy query. The semantics are those of [`crate::query::evaluate`]; the property
//! tests hold the two together.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, DisjunctionMaxQuery, ExistsQuery, Occur, Query, RangeQuery, RegexQuery,
};
use tantivy::schema::Field;

use super::document::to_tantivy_date;
use super::executor::FilterPlan;
use super::schema::Keys;
use super::search::{term_query, word_tiers};
use super::{Fields, SearchIndex};
use crate::query::{Comparison, FieldRef, ResolvedCondition, ResolvedExpr, Typed};

impl SearchIndex {
    /// The plan selecting what `expr` accepts (without the status rule).
    pub(super) fn filter_plan(&self, expr: &ResolvedExpr) -> FilterPlan {
        compile(&self.fields, expr)
    }
}

fn compile(fields: &Fields, expr: &ResolvedExpr) -> FilterPlan {
    match expr {
        ResolvedExpr::And(items) => {
            FilterPlan::All(items.iter().map(|e| compile(fields, e)).collect())
        }
        ResolvedExpr::Or(items) => {
            FilterPlan::Any(items.iter().map(|e| compile(fields, e)).collect())
        }
        ResolvedExpr::Not(inner) => FilterPlan::Not(Box::new(compile(fields, inner))),
        ResolvedExpr::Condition { field, condition } => FilterPlan::Leaf {
            // Resolved values are absolute (relative times included), so equal keys
            // select equal documents in a segment.
            key: format!("{field:?} {condition:?}"),
            query: condition_query(fields, field, condition),
        },
    }
}

fn negate(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, Box::new(AllQuery)),
        (Occur::MustNot, query),
    ]))
}

fn any_of(queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        queries.into_iter().map(|q| (Occur::Should, q)).collect(),
    ))
}

fn all_of(queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        queries.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

fn condition_query(
    fields: &Fields,
    field: &FieldRef,
    condition: &ResolvedCondition,
) -> Box<dyn Query> {
    match condition {
        ResolvedCondition::Compare(Comparison::Eq, typed) => equals(fields, field, typed),
        ResolvedCondition::Compare(Comparison::Ne, typed) => negate(equals(fields, field, typed)),
        ResolvedCondition::Compare(comparison, typed) => match comparison {
            Comparison::Gt | Comparison::Ge => {
                range(fields, field, lower(*comparison, typed), Bound::Unbounded)
            }
            _ => range(fields, field, Bound::Unbounded, upper(*comparison, typed)),
        },
        ResolvedCondition::In(values) => {
            any_of(values.iter().map(|v| equals(fields, field, v)).collect())
        }
        ResolvedCondition::Exists => exists(fields, field),
        ResolvedCondition::IsEmpty => negate(exists(fields, field)),
        ResolvedCondition::Range(low, high) => range(
            fields,
            field,
            lower(Comparison::Ge, low),
            upper(Comparison::Le, high),
        ),
        ResolvedCondition::Contains(words) => {
            all_of(words.iter().map(|w| contains(fields, field, w)).collect())
        }
    }
}

/// The lower bound of `> value` / `>= value`. A time is the interval `[start, end)`:
/// after it means from `end`, at or after it from `start`.
fn lower(comparison: Comparison, typed: &Typed) -> Bound<Typed> {
    match (typed, comparison) {
        (Typed::Time { end, .. }, Comparison::Gt) => Bound::Included(instant(*end)),
        (Typed::Time { start, .. }, _) => Bound::Included(instant(*start)),
        (other, Comparison::Gt) => Bound::Excluded(other.clone()),
        (other, _) => Bound::Included(other.clone()),
    }
}

/// The upper bound of `< value` / `<= value`.
fn upper(comparison: Comparison, typed: &Typed) -> Bound<Typed> {
    match (typed, comparison) {
        (Typed::Time { start, .. }, Comparison::Lt) => Bound::Excluded(instant(*start)),
        (Typed::Time { end, .. }, _) => Bound::Excluded(instant(*end)),
        (other, Comparison::Lt) => Bound::Excluded(other.clone()),
        (other, _) => Bound::Included(other.clone()),
    }
}

fn instant(at: chrono::DateTime<chrono::Utc>) -> Typed {
    Typed::Time { start: at, end: at }
}

/// The fast column of a built-in field, if it has one: ranges and `EXISTS` read it.
/// `email` and `phone` have terms only (a column of every email served nothing
/// else), and every built-in's equality terms are in [`super::schema::Keys`].
fn builtin_column(fields: &Fields, name: &str) -> Option<Field> {
    let k = &fields.keywords;
    let d = &fields.dates;
    Some(match name {
        "id" => fields.id,
        "external_id" => k.external_id,
        "name" => fields.name_sort,
        "email" | "phone" => return None,
        "channel" => k.channel,
        "company_id" => k.company_id,
        "favorite" => fields.favorite,
        "country" => k.country,
        "language" => k.language,
        "tags" => k.tags,
        "assignee" => k.assignee,
        "status" => fields.status,
        "pending_actions" => k.pending_actions,
        "created_at" => d.created_at,
        "updated_at" => d.updated_at,
        "last_interaction_at" => d.last_interaction_at,
        "last_interacted_channel" => k.last_interacted_channel,
        "last_incoming_message_at" => d.last_incoming_message_at,
        "conversation_opened_at" => d.conversation_opened_at,
        other => unreachable!("unknown built-in field {other}"),
    })
}

/// The term of `typed` for `field`: a built-in's lookup term in
/// [`super::schema::Keys`] for strings and booleans, its column's term for instants
/// (ranges), a JSON path term for custom fields.
fn term(fields: &Fields, field: &FieldRef, typed: &Typed) -> Term {
    match field {
        FieldRef::Builtin(name) => match typed {
            Typed::Str(s) => fields.keys.term(name, s),
            Typed::Bool(b) => fields.keys.term(name, if *b { "true" } else { "false" }),
            Typed::Time { start, .. } => Term::from_field_date(
                builtin_column(fields, name).expect("a date field has a column"),
                to_tantivy_date(*start),
            ),
            // No built-in field is a number; its text matches nothing.
            Typed::Num(n) => fields.keys.term(name, &n.to_string()),
        },
        FieldRef::Custom { key, .. } => {
            let mut term = Term::from_field_json_path(fields.custom, key, false);
            match typed {
                Typed::Str(s) => term.append_type_and_str(s),
                Typed::Num(n) => term.append_type_and_fast_value(*n),
                Typed::Bool(b) => term.append_type_and_fast_value(*b),
                Typed::Time { start, .. } => {
                    term.append_type_and_fast_value(to_tantivy_date(*start))
                }
            }
            term
        }
    }
}

fn equals(fields: &Fields, field: &FieldRef, typed: &Typed) -> Box<dyn Query> {
    match typed {
        Typed::Time { .. } | Typed::Num(_) => range(
            fields,
            field,
            lower(Comparison::Ge, typed),
            upper(Comparison::Le, typed),
        ),
        _ => Box::new(term_query(term(fields, field, typed))),
    }
}

fn range(
    fields: &Fields,
    field: &FieldRef,
    lower: Bound<Typed>,
    upper: Bound<Typed>,
) -> Box<dyn Query> {
    if let FieldRef::Builtin(name) = field {
        match builtin_column(fields, name) {
            // A string range on a column compares the column's values.
            Some(column) => {
                let to_term = |bound: Bound<Typed>| {
                    bound.map(|typed| match typed {
                        Typed::Str(s) => Term::from_field_text(column, &s),
                        Typed::Bool(b) => Term::from_field_bool(column, b),
                        other => term(fields, field, &other),
                    })
                };
                return Box::new(RangeQuery::new(to_term(lower), to_term(upper)));
            }
            // Without a column: a range of its lookup terms, within its name.
            None => {
                let keys = fields.keys;
                let lower = match lower {
                    Bound::Unbounded => Bound::Included(keys.term(name, "")),
                    bound => bound.map(|typed| term(fields, field, &typed)),
                };
                let upper = match upper {
                    Bound::Unbounded => Bound::Excluded(keys.end(name)),
                    bound => bound.map(|typed| term(fields, field, &typed)),
                };
                return Box::new(RangeQuery::new(lower, upper));
            }
        }
    }
    let to_term = |bound: Bound<Typed>| bound.map(|typed| term(fields, field, &typed));
    Box::new(RangeQuery::new(to_term(lower), to_term(upper)))
}

fn exists(fields: &Fields, field: &FieldRef) -> Box<dyn Query> {
    let name = match field {
        FieldRef::Builtin("favorite") => return Box::new(AllQuery),
        FieldRef::Builtin(name) => match builtin_column(fields, name) {
            Some(column) => fields.schema.get_field_name(column).to_string(),
            None => return Box::new(term_query(fields.keys.term(Keys::PRESENT, name))),
        },
        FieldRef::Custom { key, .. } => format!("custom.{key}"),
    };
    Box::new(ExistsQuery::new(name, false))
}

/// One word matched partially in a text field (the `q` rule on that field alone).
fn contains(fields: &Fields, field: &FieldRef, word: &str) -> Box<dyn Query> {
    let group = match field {
        FieldRef::Builtin("name") => Some(fields.name),
        FieldRef::Builtin("email") => Some(fields.email),
        FieldRef::Builtin("phone") => Some(fields.phone),
        _ => None,
    };
    if let Some(group) = group {
        let mut tiers = Vec::new();
        word_tiers(group, word, &mut tiers);
        return Box::new(DisjunctionMaxQuery::new(tiers));
    }
    let FieldRef::Custom { key, .. } = field else {
        unreachable!("CONTAINS is resolved only on text fields")
    };
    // Keys are a-z0-9_ and words are folded ASCII alphanumerics: nothing to escape.
    // The name is a-z and _ too.
    let within = Keys::CUSTOM_WORD;
    let pattern = if word.len() >= crate::index::analysis::MIN_SUBSTRING {
        format!("{within}\\x1f{key}\\x1f.*{word}.*")
    } else {
        format!("{within}\\x1f{key}\\x1f{word}.*")
    };
    match RegexQuery::from_pattern(&pattern, fields.keys.field) {
        Ok(query) => Box::new(query),
        Err(_) => Box::new(BooleanQuery::new(Vec::new())),
    }
}
