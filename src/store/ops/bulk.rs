//! Bulk actions: one action applied to many contacts, each contact whole or not at
//! all, by the same operations as single writes (so the same validation, claims and
//! scope checks). A bulk command carries a chunk of ids; callers send large bulks in
//! chunks so that other writes interleave.

use serde_json::{Map, Value, json};

use super::TxnTables;
use crate::model::Status;
use crate::store::StoreError;

/// What a bulk action does to each contact.
#[derive(Debug, Clone, PartialEq)]
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
            BulkAction::AddTags(tags) => {
                let mut new = self.load_active(id, None)?.tags;
                for tag in tags {
                    if !new.iter().any(|t| same_tag(t, tag)) {
                        new.push(tag.clone());
                    }
                }
                json!({ "tags": new })
            }
            BulkAction::RemoveTags(tags) => {
                let mut new = self.load_active(id, None)?.tags;
                new.retain(|t| !tags.iter().any(|tag| same_tag(t, tag)));
                json!({ "tags": new })
            }
            BulkAction::Assign(assignee) => json!({ "assignee": assignee }),
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
}
