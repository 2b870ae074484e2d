//! The filter language: parse → AST → (tantivy query | in-memory evaluation).
//!
//! ```text
//! expr      := or
//! or        := and ( "OR" and )*
//! and       := unary ( "AND" unary )*
//! unary     := "NOT" unary | "(" expr ")" | condition
//! condition := field "=" value | field "!=" value
//!            | field ( ">" | ">=" | "<" | "<=" ) value
//!            | field "IN" list | field "NOT" "IN" list
//!            | field "EXISTS" | field "NOT" "EXISTS"
//!            | field "IS" "EMPTY" | field "IS" "NOT" "EMPTY"
//!            | field "CONTAINS" value | field "NOT" "CONTAINS" value
//!            | field value "TO" value
//! list      := "[" value ( "," value )* "]"
//! value     := quoted string ("…" or '…', backslash escapes) | bare word
//! field     := name | "custom." key | key of a defined custom field
//! ```
//! Keywords are case-insensitive. Time values are dates, RFC 3339 datetimes, `now`,
//! `now±N{m,h,d,w,M,y}`, `today` and `yesterday` (midnight in the request's `tz`),
//! evaluated at query time. Nesting is limited to [`MAX_DEPTH`] levels.
//!
//! [`parse`] only checks syntax; [`resolve`] types every condition against the field
//! catalog (built-in fields + custom field definitions) and reports unknown fields and
//! type mismatches with their byte positions. [`evaluate`] is the plain reference
//! semantics over a contact; the index's compiled query must agree with it (property
//! tested).

mod ast;
mod eval;
mod fields;
mod parse;
mod resolve;

pub use ast::{Comparison, Condition, Expr, Value};
pub use eval::{channels, custom_words, evaluate, evaluate_fields};
pub use fields::{FieldKind, FieldRef, field_ref};
pub use parse::parse;
pub use resolve::{Resolved, ResolvedCondition, ResolvedExpr, TimeContext, Typed, resolve};

/// Deepest nesting of parentheses and NOTs accepted.
pub const MAX_DEPTH: usize = 32;

/// A filter that does not parse or does not type-check, with the byte offset of the
/// problem in the filter string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {position})")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl FilterError {
    pub fn at(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CustomFieldDef, CustomFieldDefs, FieldType};

    fn defs() -> CustomFieldDefs {
        let now = chrono::Utc::now();
        let def = |key: &str, field_type| CustomFieldDef {
            key: key.into(),
            label: key.into(),
            field_type,
            options: vec![],
            group: None,
            placeholder: None,
            created_at: now,
            updated_at: now,
        };
        [
            ("plan", FieldType::Dropdown),
            ("lifetime_value", FieldType::Number),
            ("renewal_date", FieldType::Date),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), def(k, t)))
        .collect()
    }

    fn error_of(filter: &str) -> String {
        let time = TimeContext {
            now: chrono::Utc::now(),
            tz: chrono_tz::UTC,
            default_country: phonenumber::country::Id::FR,
        };
        let outcome =
            parse(filter).and_then(|e| resolve(&e.expect("not empty"), &defs(), &time).map(|_| ()));
        match outcome {
            Ok(()) => "ok".into(),
            Err(e) => format!("{}: {}", e.position, e.message),
        }
    }

    #[test]
    fn error_messages_say_where_and_what_was_expected() {
        let cases = [
            (
                "country = FR AND",
                "16: expected a field name, found the end of the filter",
            ),
            (
                "country FR",
                "10: expected TO in a range (field low TO high), found the end of the filter",
            ),
            (
                "(country = FR",
                "13: expected ')' or AND/OR, found the end of the filter",
            ),
            (
                "tags IN vip",
                "8: expected '[' to start a list, found 'vip'",
            ),
            (
                "tags IN [vip lead]",
                "13: expected ',' or ']' in a list, found 'lead'",
            ),
            (
                "name = \"Dupont",
                "7: unterminated quoted value: add the closing quote",
            ),
            (
                "shoe_size = 42",
                "0: unknown field 'shoe_size': use one of id, external_id, name, email, phone, channel, company_id, favorite, country, language, tags, assignee, status, pending_actions, created_at, updated_at, last_interaction_at, last_interacted_channel, last_incoming_message_at, conversation_opened_at, or custom.<key> of a defined custom field",
            ),
            (
                "country > FR",
                "0: country cannot be compared with >, >=, < or <=: only number and time fields can",
            ),
            (
                "created_at >= last-week",
                "14: created_at: 'last-week' is not a time: use 2026-11-02, 2026-11-02T10:00:00Z, now, now-7d, now+1y, today or yesterday",
            ),
            (
                "created_at > now-7x",
                "13: created_at: 'now-7x' is not a relative time: use now-15m, now-24h, now-7d, now-2w, now-3M or now+1y",
            ),
            (
                "custom.lifetime_value > lots",
                "24: custom.lifetime_value is a number field; 'lots' is not a number",
            ),
            (
                "favorite = maybe",
                "11: favorite is true or false, not 'maybe'",
            ),
            (
                "status = archived",
                "9: status is active, deleted or merged, not 'archived'",
            ),
            (
                "tags CONTAINS vip",
                "0: CONTAINS works on text fields (name, email, phone, text custom fields), not on tags",
            ),
            (
                "country = FR extra",
                "13: expected AND, OR or the end of the filter, found 'extra'",
            ),
            ("country == FR", "9: expected a value, found '='"),
            (
                &format!("{}country = FR{}", "(".repeat(40), ")".repeat(40)),
                "32: filter nests deeper than 32 levels",
            ),
            (
                "NOT assignee EXISTS OR (custom.plan = pro AND custom.lifetime_value > 1000)",
                "ok",
            ),
            (
                "renewal_date 2027-01-01 TO 2027-03-31 AND name CONTAINS \"pont\"",
                "ok",
            ),
            (
                "last_incoming_message_at < now-24h AND channel = whatsapp AND created_at >= now-3M",
                "ok",
            ),
        ];
        let mismatches: Vec<String> = cases
            .iter()
            .filter(|(filter, expected)| error_of(filter) != *expected)
            .map(|(filter, _)| format!("{filter:?} => {:?}", error_of(filter)))
            .collect();
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
