//! Custom field definitions and companies.
//!
//! Changing a definition re-validates the stored values: values the new definition
//! rejects make the change a 409 unless forced, in which case they are cleared through
//! the change log (so the index follows); values it accepts are re-normalized.

use serde_json::Value;

use redb::ReadableTable;

use super::TxnTables;
use crate::model::{Company, CompanyInput, Contact, CustomFieldDef, CustomFieldInput, Inbox};
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
        let def = input.validate(self.now, None)?;
        self.store_def(def)
    }

    pub fn update_field(
        &mut self,
        key: &str,
        patch: &Value,
        force: bool,
    ) -> Result<(CustomFieldDef, usize), StoreError> {
        let current = self
            .defs
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("custom field {key}")))?;
        if patch.get("key").is_some_and(|k| k != key) {
            return Err(StoreError::BadRequest(
                "a custom field's key cannot change".into(),
            ));
        }
        let mut document = serde_json::to_value(&current).expect("a definition serializes");
        json_patch::merge(&mut document, patch);
        if let Value::Object(map) = &mut document {
            map.remove("created_at");
            map.remove("updated_at");
        }
        let input: CustomFieldInput = serde_json::from_value(document)
            .map_err(|e| StoreError::BadRequest(format!("invalid custom field: {e}")))?;
        let def = input.validate(self.now, Some(current.created_at))?;
        let cleared = self.conform_values(key, Some(&def), force)?;
        Ok((self.store_def(def)?, cleared))
    }

    pub fn delete_field(&mut self, key: &str, force: bool) -> Result<usize, StoreError> {
        if !self.defs.contains_key(key) {
            return Err(StoreError::NotFound(format!("custom field {key}")));
        }
        let cleared = self.conform_values(key, None, force)?;
        self.custom_fields.remove(key)?;
        self.defs.remove(key);
        self.defs_changed = true;
        Ok(cleared)
    }

    fn store_def(&mut self, def: CustomFieldDef) -> Result<CustomFieldDef, StoreError> {
        self.custom_fields
            .insert(def.key.as_str(), tables::encode(&def).as_slice())?;
        self.defs.insert(def.key.clone(), def.clone());
        self.defs_changed = true;
        Ok(def)
    }

    /// Brings every stored value of `key` in line with `def` (`None`: the field goes
    /// away). Refuses (409) when values would be lost unless `force`; returns how many
    /// contacts lost their value. Contacts keeping a value are re-indexed, since the
    /// type decides how a value is searched.
    fn conform_values(
        &mut self,
        key: &str,
        def: Option<&CustomFieldDef>,
        force: bool,
    ) -> Result<usize, StoreError> {
        let mut users: Vec<(Contact, Option<Value>)> = Vec::new();
        for entry in self.contacts.iter()? {
            let (_, bytes) = entry?;
            let contact: Contact = tables::decode(bytes.value())?;
            if let Some(value) = contact.custom_fields.get(key) {
                let conformed =
                    def.and_then(|d| d.normalize(value, self.rules.default_country).ok());
                users.push((contact, conformed));
            }
        }
        let lost = users.iter().filter(|(_, v)| v.is_none()).count();
        if lost > 0 && !force {
            return Err(StoreError::Conflict(format!(
                "{lost} contact(s) hold values of '{key}' that would be cleared; repeat with ?force=true to clear them"
            )));
        }
        for (before, conformed) in users {
            let mut after = before.clone();
            match conformed {
                Some(value) if Some(&value) == before.custom_fields.get(key) => {
                    self.append_change(&before.id)?;
                    continue;
                }
                Some(value) => after.custom_fields.insert(key.to_string(), value),
                None => after.custom_fields.remove(key),
            };
            after.version += 1;
            after.updated_at = self.now;
            self.save(Some(&before), after, None)?;
        }
        Ok(lost)
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
            for contact_id in self.company_members(id)? {
                self.append_change(&contact_id)?;
            }
        }
        Ok(after)
    }

    /// Deletes a company and unlinks its contacts (through the change log).
    pub fn delete_company(&mut self, id: &str) -> Result<usize, StoreError> {
        self.load_company(id)?;
        let members = self.company_members(id)?;
        for contact_id in &members {
            if let Some(before) = self.load(contact_id)? {
                let mut after = before.clone();
                after.company_id = None;
                after.favorite = false;
                after.version += 1;
                after.updated_at = self.now;
                self.save(Some(&before), after, None)?;
            }
        }
        self.companies.remove(id)?;
        Ok(members.len())
    }
}
