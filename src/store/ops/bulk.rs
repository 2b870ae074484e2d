//! Bulk actions: one action applied to many contacts, each contact whole or not at
//! all, by the same operations as single writes (so the same validation, claims and
//! scope checks). A bulk command carries a chunk of ids; callers send large bulks in
//! chunks so that other writes interleave.

use serde_json::{Map, Value};

use super::TxnTables;
use crate::model::{ContactInput, Status};
use crate::store::StoreError;

/// What a bulk action does to each contact.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Soft delete (to the trash).
    Delete,
    /// Back from the trash.
    Restore,
    AddTags(Vec<String>),
    RemoveTags(Vec<String>),
    /// Set (or with `None` clear) the assignee.
    Assign(Option<String>),
    /// A merge patch of writable fields, as `PATCH /v1/contacts/{id}` takes.
    SetFields(Map<String, Value>),
}

fn same_tag(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

impl TxnTables<'_> {
    /// Applies `action` to one contact: whether it changed it (`false`: it already
    /// was as asked).
    pub fn bulk_one(&mut self, action: &BulkAction, id: &str) -> Result<bool, StoreError> {
        let patch = match action {
            BulkAction::Delete => {
                if self.load_versioned(id, None)?.status == Status::Deleted {
                    return Ok(false);
                }
                self.delete(id, None)?;
                return Ok(true);
            }
            BulkAction::Restore => {
                if self.load_versioned(id, None)?.is_active() {
                    return Ok(false);
                }
                self.restore(id, None)?;
                return Ok(true);
            }
            BulkAction::AddTags(_) | BulkAction::RemoveTags(_) | BulkAction::Assign(_) => {
                return self.retag_or_assign(action, id);
            }
            BulkAction::SetFields(fields) => Value::Object(fields.clone()),
        };
        let before = self.load_active(id, None)?;
        let mut document = before.writable_json();
        json_patch::merge(&mut document, &patch);
        if document == before.writable_json() {
            return Ok(false);
        }
        self.patch(id, &patch, None)?;
        Ok(true)
    }

    /// Tags and the assignee hold no claim and no other field depends on them: only
    /// the new values are validated (a whole-contact validation parses its phones),
    /// and the contact keeps its identities.
    fn retag_or_assign(&mut self, action: &BulkAction, id: &str) -> Result<bool, StoreError> {
        let before = self.load_active(id, None)?;
        let mut input = ContactInput::default();
        match action {
            BulkAction::AddTags(tags) => {
                let mut new = before.tags.clone();
                for tag in tags {
                    if !new.iter().any(|t| same_tag(t, tag)) {
                        new.push(tag.clone());
                    }
                }
                input.tags = Some(new);
            }
            BulkAction::RemoveTags(tags) => {
                let mut new = before.tags.clone();
                new.retain(|t| !tags.iter().any(|tag| same_tag(t, tag)));
                input.tags = Some(new);
            }
            BulkAction::Assign(assignee) => input.assignee = assignee.clone(),
            _ => unreachable!("only tags and the assignee"),
        }
        let valid = input.validate(&self.rules, &self.defs)?;
        let mut after = before.clone();
        match action {
            BulkAction::Assign(_) => after.assignee = valid.assignee,
            _ => after.tags = valid.tags,
        }
        if after.tags == before.tags && after.assignee == before.assignee {
            return Ok(false);
        }
        self.touch(&mut after);
        self.save(Some(&before), after, None)?;
        Ok(true)
    }
}
