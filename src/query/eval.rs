//! The reference semantics of a filter over one contact. The index's compiled query
//! must select exactly the contacts this accepts (property tested).
//!
//! A missing value never satisfies `=`, a comparison, `IN` or `CONTAINS`; `!=` is the
//! negation of `=` (so it matches contacts without the field, as in Meilisearch).
//! `email CONTAINS` and `phone CONTAINS` look at every email/phone of the contact
//! (identities included), like `q` does; `=` compares the primary value.

use chrono::{DateTime, Utc};

use super::ast::Comparison;
use super::fields::FieldRef;
use super::resolve::{Resolved, ResolvedCondition, ResolvedExpr, Typed};
use crate::index::SearchableText;
use crate::index::text_query::word_match;
use crate::model::{Contact, ContactContext, FieldType, fold_ascii, name_key, parse_time};

pub fn evaluate(resolved: &Resolved, contact: &Contact, context: &ContactContext) -> bool {
    (resolved.names_status || contact.is_active()) && eval(&resolved.expr, contact, context)
}

/// The expression alone, whatever the contact's status (a scoped key's writes).
pub fn evaluate_fields(expr: &ResolvedExpr, contact: &Contact, context: &ContactContext) -> bool {
    eval(expr, contact, context)
}

fn eval(expr: &ResolvedExpr, contact: &Contact, context: &ContactContext) -> bool {
    match expr {
        ResolvedExpr::And(items) => items.iter().all(|e| eval(e, contact, context)),
        ResolvedExpr::Or(items) => items.iter().any(|e| eval(e, contact, context)),
        ResolvedExpr::Not(inner) => !eval(inner, contact, context),
        ResolvedExpr::Condition { field, condition } => holds(field, condition, contact, context),
    }
}

/// A field's values on a contact, typed.
enum Values {
    Strs(Vec<String>),
    Num(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
}

fn values(field: &FieldRef, contact: &Contact) -> Values {
    let one = |v: Option<&String>| Values::Strs(v.into_iter().cloned().collect());
    match field {
        FieldRef::Builtin(name) => match *name {
            "id" => Values::Strs(vec![contact.id.clone()]),
            "external_id" => one(contact.external_id.as_ref()),
            "name" => Values::Strs(contact.name.iter().map(|n| name_key(n)).collect()),
            "email" => one(contact.email.as_ref()),
            "phone" => Values::Strs(
                contact
                    .phone
                    .iter()
                    .map(|p| {
                        contact
                            .phone_e164
                            .clone()
                            .unwrap_or_else(|| p.chars().filter(char::is_ascii_digit).collect())
                    })
                    .collect(),
            ),
            "channel" => Values::Strs(channels(contact)),
            "company_id" => one(contact.company_id.as_ref()),
            "favorite" => Values::Bool(Some(contact.favorite)),
            "country" => one(contact.country.as_ref()),
            "language" => one(contact.language.as_ref()),
            "tags" => Values::Strs(contact.tags.iter().map(|t| t.to_lowercase()).collect()),
            "assignee" => one(contact.assignee.as_ref()),
            "status" => Values::Strs(vec![contact.status.as_str().to_string()]),
            "pending_actions" => Values::Strs(contact.pending_actions.clone()),
            "created_at" => Values::Time(Some(contact.created_at)),
            "updated_at" => Values::Time(Some(contact.updated_at)),
            "last_interaction_at" => Values::Time(contact.last_interaction_at),
            "last_interacted_channel" => one(contact.last_interacted_channel.as_ref()),
            "last_incoming_message_at" => Values::Time(contact.last_incoming_message_at),
            "conversation_opened_at" => Values::Time(contact.conversation_opened_at),
            other => unreachable!("unknown built-in field {other}"),
        },
        FieldRef::Custom { key, field_type } => {
            let value = contact.custom_fields.get(key);
            match field_type {
                FieldType::Number => Values::Num(value.and_then(|v| v.as_f64())),
                FieldType::Checkbox => Values::Bool(value.and_then(|v| v.as_bool())),
                FieldType::Date | FieldType::Datetime => Values::Time(
                    value
                        .and_then(|v| v.as_str())
                        .and_then(|s| parse_time(s).ok()),
                ),
                FieldType::Multiselect => Values::Strs(
                    value
                        .and_then(|v| v.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .map(String::from)
                        .collect(),
                ),
                _ => Values::Strs(
                    value
                        .and_then(|v| v.as_str())
                        .map(String::from)
                        .into_iter()
                        .collect(),
                ),
            }
        }
    }
}

/// Every channel a contact can be reached on: identities plus email/phone.
pub fn channels(contact: &Contact) -> Vec<String> {
    let mut channels: Vec<String> = contact
        .identities
        .iter()
        .map(|i| i.channel.clone())
        .collect();
    channels.extend(contact.email.as_ref().map(|_| "email".to_string()));
    channels.extend(contact.phone.as_ref().map(|_| "phone".to_string()));
    channels.sort_unstable();
    channels.dedup();
    channels
}

fn equals(values: &Values, typed: &Typed) -> bool {
    match (values, typed) {
        (Values::Strs(items), Typed::Str(v)) => items.iter().any(|i| i == v),
        (Values::Num(Some(n)), Typed::Num(v)) => n == v,
        (Values::Bool(Some(b)), Typed::Bool(v)) => b == v,
        (Values::Time(Some(t)), Typed::Time { start, end }) => start <= t && t < end,
        _ => false,
    }
}

fn compare(values: &Values, comparison: Comparison, typed: &Typed) -> bool {
    match comparison {
        Comparison::Eq => equals(values, typed),
        Comparison::Ne => !equals(values, typed),
        _ => match (values, typed) {
            (Values::Num(Some(n)), Typed::Num(v)) => match comparison {
                Comparison::Gt => n > v,
                Comparison::Ge => n >= v,
                Comparison::Lt => n < v,
                _ => n <= v,
            },
            (Values::Time(Some(t)), Typed::Time { start, end }) => match comparison {
                Comparison::Gt => t >= end,
                Comparison::Ge => t >= start,
                Comparison::Lt => t < start,
                _ => t < end,
            },
            _ => false,
        },
    }
}

fn exists(values: &Values) -> bool {
    match values {
        Values::Strs(items) => !items.is_empty(),
        Values::Num(v) => v.is_some(),
        Values::Bool(v) => v.is_some(),
        Values::Time(v) => v.is_some(),
    }
}

fn holds(
    field: &FieldRef,
    condition: &ResolvedCondition,
    contact: &Contact,
    context: &ContactContext,
) -> bool {
    if let ResolvedCondition::Contains(words) = condition {
        return contains(field, words, contact, context);
    }
    let values = values(field, contact);
    match condition {
        ResolvedCondition::Compare(comparison, typed) => compare(&values, *comparison, typed),
        ResolvedCondition::In(list) => list.iter().any(|typed| equals(&values, typed)),
        ResolvedCondition::Exists => exists(&values),
        ResolvedCondition::IsEmpty => !exists(&values),
        ResolvedCondition::Range(low, high) => {
            compare(&values, Comparison::Ge, low) && compare(&values, Comparison::Le, high)
        }
        ResolvedCondition::Contains(_) => unreachable!("handled above"),
    }
}

/// Every word must match a word of the field: exactly, by prefix, or as a substring
/// from three characters (the `q` rule).
fn contains(
    field: &FieldRef,
    words: &[String],
    contact: &Contact,
    context: &ContactContext,
) -> bool {
    let field_words: Vec<String> = match field {
        FieldRef::Builtin("name") | FieldRef::Builtin("email") | FieldRef::Builtin("phone") => {
            let text = SearchableText::of(contact, context);
            match field {
                FieldRef::Builtin("name") => text.name,
                FieldRef::Builtin("email") => text.email,
                _ => text.phone,
            }
        }
        FieldRef::Custom { key, field_type } => {
            custom_words(*field_type, contact.custom_fields.get(key))
        }
        _ => Vec::new(),
    };
    words
        .iter()
        .all(|w| field_words.iter().any(|f| word_match(w, f).is_some()))
}

/// The words of a custom text-like value as `CONTAINS` sees them.
pub fn custom_words(field_type: FieldType, value: Option<&serde_json::Value>) -> Vec<String> {
    let Some(text) = value.and_then(|v| v.as_str()) else {
        return Vec::new();
    };
    if field_type == FieldType::Phone {
        return vec![text.chars().filter(char::is_ascii_digit).collect()];
    }
    let mut words = Vec::new();
    for raw in crate::index::analysis::raw_words(text) {
        for word in fold_ascii(raw) {
            if !words.contains(&word) {
                words.push(word);
            }
        }
    }
    words
}
