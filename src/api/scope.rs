//! Scoped keys in the API: what a key's filter and field list change in each route.
//!
//! A scoped key ([`crate::auth::KeyScope`]) reaches only the contacts its filter selects
//! and only the fields its list names:
//! - searches, counts, facets, inbox counts and exports AND the filter into the query,
//!   and hits are checked again against the store's record (the index may lag);
//! - a single contact outside the scope is 404, whatever the route (no existence
//!   leak); writes carry a [`ScopeGuard`] that the store checks inside the write;
//! - output shows only readable fields; a filter, sort, facet, lookup or body naming a
//!   field the key cannot read is 403, and so is `q` unless the key reads every field
//!   `q` searches (a match on a hidden field would reveal its value).
//!
//! The filter is typed per request against the definitions of the moment: a key whose
//! filter no longer types (its custom field was deleted) is refused (403), never
//! widened.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, Code};
use crate::auth::{Caller, KeyScope};
use crate::index::sort::{SortField, SortSpec};
use crate::model::{Contact, ContactContext, CustomFieldDefs};
use crate::query::{
    FieldRef, Resolved, ResolvedExpr, TimeContext, evaluate_fields, parse, resolve,
};
use crate::store::ScopeGuard;

/// The contact fields `q` searches (see [`crate::index::SearchableText::of`]).
const Q_FIELDS: [&str; 8] = [
    "name",
    "email",
    "phone",
    "identities",
    "company_id",
    "tags",
    "custom_fields",
    "notes",
];

/// The caller's key scope, if its key has one (extracted from the key check).
#[derive(Debug, Clone, Default)]
pub struct Within(pub Option<Arc<KeyScope>>);

impl<S: Send + Sync> FromRequestParts<S> for Within {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Within(
            parts
                .extensions
                .get::<Caller>()
                .and_then(|caller| caller.scope.clone()),
        ))
    }
}

/// A key scope typed for one request.
#[derive(Debug, Clone)]
pub struct Bound {
    scope: Arc<KeyScope>,
    pub filter: Option<Resolved>,
}

impl Within {
    /// Types the key's filter; `None` for an unscoped caller.
    pub fn bind(
        &self,
        defs: &CustomFieldDefs,
        time: &TimeContext,
    ) -> Result<Option<Bound>, ApiError> {
        let Some(scope) = &self.0 else {
            return Ok(None);
        };
        let filter = match &scope.filter {
            None => None,
            Some(text) => {
                let refused = |message: String| {
                    ApiError::new(
                        Code::Forbidden,
                        format!(
                            "this key's filter no longer applies ({message}): ask an owner to fix the key"
                        ),
                    )
                };
                let expr = parse(text)
                    .map_err(|e| refused(e.message))?
                    .ok_or_else(|| refused("it is empty".into()))?;
                Some(resolve(&expr, defs, time).map_err(|e| refused(e.message))?)
            }
        };
        Ok(Some(Bound {
            scope: scope.clone(),
            filter,
        }))
    }
}

impl Bound {
    /// Whether the contact is inside the scope (whatever its status).
    pub fn admits(&self, contact: &Contact, context: &ContactContext) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| evaluate_fields(&filter.expr, contact, context))
    }

    /// What the store checks inside a write.
    pub fn guard(&self) -> Option<Arc<ScopeGuard>> {
        self.filter.as_ref().map(|filter| {
            Arc::new(ScopeGuard {
                filter: filter.expr.clone(),
            })
        })
    }

    /// 403 unless the key may read every contact field in `fields`; `what` names
    /// what asked for them.
    pub fn check_reads<'a>(
        &self,
        fields: impl IntoIterator<Item = &'a str>,
        what: &str,
    ) -> Result<(), ApiError> {
        for field in fields {
            if !self.scope.can_read(field) {
                return Err(ApiError::new(
                    Code::Forbidden,
                    format!("this key may not read '{field}', which {what} uses"),
                ));
            }
        }
        Ok(())
    }

    /// 403 unless the key reads every field of the filter.
    pub fn check_filter(&self, filter: &Resolved) -> Result<(), ApiError> {
        let mut fields = Vec::new();
        filter_fields(&filter.expr, &mut fields);
        self.check_reads(fields, "the filter")
    }

    pub fn check_sort(&self, specs: &[SortSpec]) -> Result<(), ApiError> {
        let fields = specs.iter().filter_map(|spec| match &spec.field {
            SortField::Relevance => None,
            SortField::Name => Some("name"),
            SortField::Date(name) => Some(*name),
            SortField::CustomNumber(_) | SortField::CustomDate(_) => Some("custom_fields"),
        });
        self.check_reads(fields, "the sort")
    }

    pub fn check_facets(&self, facets: &[String]) -> Result<(), ApiError> {
        let fields = facets.iter().flat_map(|name| match name.as_str() {
            "channel" => vec!["identities", "email", "phone"],
            custom if custom.starts_with("custom.") => vec!["custom_fields"],
            other => vec![other],
        });
        self.check_reads(fields, "the facets")
    }

    pub fn check_q(&self, q: &str) -> Result<(), ApiError> {
        if q.trim().is_empty() {
            return Ok(());
        }
        self.check_reads(Q_FIELDS, "q (it searches name, email, phone, identities, company, tags, custom fields and notes; filter with CONTAINS on readable fields instead)")
    }

    /// The fields to show: the asked ones (all when none are asked) that the key
    /// may read; `None` shows the whole contact.
    pub fn visible_fields(&self, asked: Option<Vec<String>>) -> Option<Vec<String>> {
        let Some(readable) = &self.scope.fields else {
            return asked;
        };
        Some(match asked {
            Some(asked) => asked
                .into_iter()
                .filter(|f| self.scope.can_read(f))
                .collect(),
            None => readable.clone(),
        })
    }
}

/// The fields to show a caller: [`Bound::visible_fields`], or the asked ones without
/// a scoped key.
pub fn visible_fields(key: Option<&Bound>, asked: Option<Vec<String>>) -> Option<Vec<String>> {
    match key {
        Some(key) => key.visible_fields(asked),
        None => asked,
    }
}

/// The contact fields a filter reads.
fn filter_fields(expr: &ResolvedExpr, into: &mut Vec<&'static str>) {
    match expr {
        ResolvedExpr::And(items) | ResolvedExpr::Or(items) => {
            items.iter().for_each(|e| filter_fields(e, into));
        }
        ResolvedExpr::Not(inner) => filter_fields(inner, into),
        ResolvedExpr::Condition { field, .. } => match field {
            FieldRef::Custom { .. } => into.push("custom_fields"),
            // `channel` lists every way to reach a contact; `email`/`phone` CONTAINS
            // also look at identities.
            FieldRef::Builtin("channel") => into.extend(["identities", "email", "phone"]),
            FieldRef::Builtin(name @ ("email" | "phone")) => into.extend([*name, "identities"]),
            FieldRef::Builtin(name) => into.push(name),
        },
    }
}
