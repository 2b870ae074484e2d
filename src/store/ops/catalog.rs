//! Custom field definitions and companies.
//!
//! Changing a definition's type or options re-validates the stored values: values it
//! accepts are re-normalized, the others cleared, through the change log (so the index
//! follows). Whether values would be lost (409 unless forced) is checked on a read
//! snapshot before the change ([`crate::store::Store::values_lost_by`]). The stored
//! values, and the contacts of a renamed or deleted company, are handled by a
//! [`CatalogTask`] in chunks after the change commits.

use serde_json::Value;

use redb::ReadableTable;

use super::TxnTables;
use super::tasks::{CatalogTask, changes_values};
use crate::model::{Company, CompanyInput, CustomFieldDef, CustomFieldInput, Inbox};
use crate::store::StoreError;
use crate::store::tables;

impl TxnTables<'_> {
    pub fn define_field(&mut self, input: CustomFieldInput) -> Result<CustomFieldDef, StoreError> {
        if self.defs.contains_key(&input.key) {
            return Err(StoreError::Conflict(format!(
                "custom field '{}' already exists",
                input.key
            )));
        }
        if self.conforming.contains(&input.key) {
            // Its deletion is still clearing values: a new field of the same key must
            // not inherit the old values the task has not reached yet.
            return Err(StoreError::Conflict(format!(
                "custom field '{}' was deleted and its values are still being cleared; retry shortly",
                input.key
            )));
        }
        let def = input.validate(self.now, None)?;
        self.store_def(def)
    }

    /// Applies a merge patch to a definition; values it changes the meaning of are
    /// conformed by a task.
    pub fn update_field(
        &mut self,
        key: &str,
        patch: &Value,
    ) -> Result<(CustomFieldDef, Option<u64>), StoreError> {
        let current = self
            .defs
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("custom field {key}")))?;
        let def = patched_def(&current, patch, self.now)?;
        let task = if changes_values(&current, &def) {
            Some(self.queue_task(&CatalogTask::ConformField {
                key: key.to_string(),
                after: None,
                cleared: 0,
            })?)
        } else {
            None
        };
        Ok((self.store_def(def)?, task))
    }

    /// Deletes a definition; a task clears its values.
    pub fn delete_field(&mut self, key: &str) -> Result<u64, StoreError> {
        if !self.defs.contains_key(key) {
            return Err(StoreError::NotFound(format!("custom field {key}")));
        }
        self.custom_fields.remove(key)?;
        self.defs.remove(key);
        self.catalog_changed();
        self.queue_task(&CatalogTask::ConformField {
            key: key.to_string(),
            after: None,
            cleared: 0,
        })
    }

    fn store_def(&mut self, def: CustomFieldDef) -> Result<CustomFieldDef, StoreError> {
        self.custom_fields
            .insert(def.key.as_str(), tables::encode(&def).as_slice())?;
        self.defs.insert(def.key.clone(), def.clone());
        self.catalog_changed();
        Ok(def)
    }

    /// Stores a validated inbox; `expected_version` guards an update.
    pub fn put_inbox(
        &mut self,
        mut inbox: Inbox,
        expected_version: Option<u64>,
    ) -> Result<Inbox, StoreError> {
        let current: Option<Inbox> = self
            .inboxes
            .get(inbox.id.as_str())?
            .map(|bytes| tables::decode(bytes.value()))
            .transpose()?;
        match (&current, expected_version) {
            (None, Some(_)) => return Err(StoreError::NotFound(format!("inbox {}", inbox.id))),
            (Some(current), Some(expected)) if current.version != expected => {
                return Err(StoreError::VersionMismatch {
                    current: current.version,
                });
            }
            (Some(_), None) => {
                return Err(StoreError::Conflict(format!("inbox {} exists", inbox.id)));
            }
            _ => {}
        }
        inbox.version = current.map_or(1, |c| c.version + 1);
        inbox.updated_at = self.now;
        self.inboxes
            .insert(inbox.id.as_str(), tables::encode(&inbox).as_slice())?;
        Ok(inbox)
    }

    pub fn delete_inbox(&mut self, id: &str) -> Result<(), StoreError> {
        match self.inboxes.remove(id)? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("inbox {id}"))),
        }
    }

    pub fn load_company(&self, id: &str) -> Result<Company, StoreError> {
        self.companies
            .get(id)?
            .map(|bytes| tables::decode(bytes.value()))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("company {id}")))
    }

    pub fn create_company(&mut self, input: CompanyInput) -> Result<Company, StoreError> {
        let mut company = Company::empty(ulid::Ulid::generate().to_string(), self.now);
        input.apply_to(&mut company, self.now)?;
        self.companies
            .insert(company.id.as_str(), tables::encode(&company).as_slice())?;
        Ok(company)
    }

    /// Updates a company; a new name re-indexes its contacts (they are found by it).
    pub fn patch_company(
        &mut self,
        id: &str,
        patch: &Value,
        if_match: Option<u64>,
    ) -> Result<Company, StoreError> {
        let before = self.load_company(id)?;
        if let Some(expected) = if_match
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        if !patch.is_object() {
            return Err(StoreError::BadRequest(
                "a merge patch must be a JSON object".into(),
            ));
        }
        let mut document = before.writable_json();
        json_patch::merge(&mut document, patch);
        let input: CompanyInput = serde_json::from_value(document)
            .map_err(|e| StoreError::BadRequest(format!("invalid patch: {e}")))?;
        let mut after = before.clone();
        input.apply_to(&mut after, self.now)?;
        self.companies
            .insert(id, tables::encode(&after).as_slice())?;
        if after.name != before.name {
            self.queue_task(&CatalogTask::ReindexCompany {
                company_id: id.to_string(),
                after: None,
            })?;
        }
        Ok(after)
    }

    /// Deletes a company; a task unlinks its contacts (through the change log).
    pub fn delete_company(&mut self, id: &str) -> Result<u64, StoreError> {
        self.load_company(id)?;
        self.companies.remove(id)?;
        self.queue_task(&CatalogTask::UnlinkCompany {
            company_id: id.to_string(),
            unlinked: 0,
        })
    }
}

/// `current` with a merge patch applied, validated; the key cannot change.
pub fn patched_def(
    current: &CustomFieldDef,
    patch: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CustomFieldDef, StoreError> {
    if patch.get("key").is_some_and(|k| k != current.key.as_str()) {
        return Err(StoreError::BadRequest(
            "a custom field's key cannot change".into(),
        ));
    }
    let mut document = serde_json::to_value(current).expect("a definition serializes");
    json_patch::merge(&mut document, patch);
    if let Value::Object(map) = &mut document {
        map.remove("created_at");
        map.remove("updated_at");
    }
    let input: CustomFieldInput = serde_json::from_value(document)
        .map_err(|e| StoreError::BadRequest(format!("invalid custom field: {e}")))?;
    Ok(input.validate(now, Some(current.created_at))?)
}
