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
pub use eval::{channels, custom_words, evaluate};
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
