//! A scoped key's filter inside the write transaction.
//!
//! The API checks a scoped key's contacts before it writes, but only the writer sees
//! the contact as the write finds it and as the write leaves it. While a command runs
//! under a [`ScopeGuard`]:
//! - a contact it loads by id that the filter does not select is "not found", so a
//!   scoped key learns nothing of contacts outside its scope (not even their status
//!   or version);
//! - a contact it would leave outside the scope is refused
//!   ([`StoreError::OutOfScope`]) before the command's first mutation;
//! - a claim error (identity, name or external id taken) names the holder only when
//!   the holder is inside the scope.
//!
//! The filter is evaluated on the contact's fields, never its status: the trash and
//! merged records are reached by id (restore, unmerge) like active ones.

use std::cell::RefCell;
use std::sync::Arc;

use redb::ReadableTable;

use super::TxnTables;
use crate::model::{Company, Contact, ContactContext};
use crate::query::{ResolvedExpr, evaluate_fields};
use crate::store::StoreError;
use crate::store::tables;

/// The filter a scoped key's writes must stay within (resolved by the API against
/// the definitions of the moment).
#[derive(Debug, Clone)]
pub struct ScopeGuard {
    pub filter: ResolvedExpr,
}

/// The guard of the running command and what evaluating it needs, built once per
/// command: the definitions, and company names as contacts of those companies come.
pub(super) struct Guarding {
    guard: Arc<ScopeGuard>,
    context: RefCell<ContactContext>,
}

impl TxnTables<'_> {
    /// Runs the next operations under `guard` until [`Self::leave_scope`].
    pub(in crate::store) fn enter_scope(&mut self, guard: Arc<ScopeGuard>) {
        let context = ContactContext {
            defs: self.defs.clone(),
            company_names: Default::default(),
        };
        self.guard = Some(Guarding {
            guard,
            context: RefCell::new(context),
        });
    }

    pub(in crate::store) fn leave_scope(&mut self) {
        self.guard = None;
    }

    fn in_scope(&self, contact: &Contact) -> Result<bool, StoreError> {
        let Some(guarding) = &self.guard else {
            return Ok(true);
        };
        let mut context = guarding.context.borrow_mut();
        if let Some(company_id) = &contact.company_id
            && !context.company_names.contains_key(company_id)
            && let Some(bytes) = self.companies.get(company_id.as_str())?
        {
            let company: Company = tables::decode(bytes.value())?;
            context.company_names.insert(company.id, company.name);
        }
        Ok(evaluate_fields(&guarding.guard.filter, contact, &context))
    }

    /// A contact the command found: outside the scope it does not exist.
    pub(super) fn check_seen(&self, contact: &Contact) -> Result<(), StoreError> {
        if self.in_scope(contact)? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("contact {}", contact.id)))
        }
    }

    /// A contact as the command would leave it: it must stay inside the scope.
    pub(super) fn check_result(&self, contact: &Contact) -> Result<(), StoreError> {
        if self.in_scope(contact)? {
            Ok(())
        } else {
            Err(StoreError::OutOfScope)
        }
    }

    /// Hides holders outside the scope in a claim error (their id becomes empty).
    pub(in crate::store) fn redact_holders(&self, error: StoreError) -> StoreError {
        if self.guard.is_none() {
            return error;
        }
        let visible = |holder: String| -> String {
            match self.load(&holder) {
                Ok(Some(contact)) if self.in_scope(&contact).unwrap_or(false) => holder,
                _ => String::new(),
            }
        };
        match error {
            StoreError::IdentityTaken(taken) => StoreError::IdentityTaken(
                taken
                    .into_iter()
                    .map(|(field, holder)| (field, visible(holder)))
                    .collect(),
            ),
            StoreError::NameTaken(holder) => StoreError::NameTaken(visible(holder)),
            StoreError::ExternalIdTaken(holder) => StoreError::ExternalIdTaken(visible(holder)),
            other => other,
        }
    }
}
