//! Contact lifecycle: create, patch, soft delete, restore, erase, purge of the trash.

use chrono::Duration;
use serde_json::Value;

use redb::ReadableTable;

use super::{TxnTables, key_list, no_exception};
use crate::model::{Contact, ContactInput, Status};
use crate::store::StoreError;
use crate::store::tables;

/// Fields a merge patch may not touch: computed or managed by the server.
const READ_ONLY_FIELDS: [&str; 11] = [
    "id",
    "display_name",
    "phone_e164",
    "pending_actions",
    "status",
    "merged_into",
    "deleted_at",
    "created_at",
    "updated_at",
    "version",
    "conversation_closed_at",
];

impl TxnTables<'_> {
    pub fn create(&mut self, input: ContactInput) -> Result<(Contact, u64), StoreError> {
        let valid = self.validate(input)?;
        valid.check_require(self.rules.require)?;
        let id = ulid::Ulid::generate().to_string();
        self.check_claims(&valid, &id, &no_exception)?;
        let keys = key_list(&valid);
        let contact = valid.into_new_contact(id, self.now);
        self.save(None, contact, Some(keys))
    }

    pub fn patch(
        &mut self,
        id: &str,
        patch: &Value,
        if_match: Option<u64>,
    ) -> Result<(Contact, u64), StoreError> {
        let before = self.load_active(id, if_match)?;
        let Value::Object(fields) = patch else {
            return Err(StoreError::BadRequest(
                "a merge patch must be a JSON object".into(),
            ));
        };
        if let Some(field) = fields
            .keys()
            .find(|k| READ_ONLY_FIELDS.contains(&k.as_str()))
        {
            return Err(StoreError::BadRequest(format!(
                "field '{field}' is read-only"
            )));
        }
        let mut document = before.writable_json();
        json_patch::merge(&mut document, patch);
        let input: ContactInput = serde_json::from_value(document)
            .map_err(|e| StoreError::BadRequest(format!("invalid patch: {e}")))?;
        let valid = self.validate(input)?;
        if fields.contains_key("email") || fields.contains_key("phone") {
            valid.check_require(self.rules.require)?;
        }
        self.check_claims(&valid, id, &no_exception)?;
        let keys = key_list(&valid);
        let mut after = before.clone();
        valid.apply_to(&mut after, self.now);
        self.save(Some(&before), after, Some(keys))
    }

    /// Soft delete: the contact goes to the trash and releases its identities.
    pub fn delete(
        &mut self,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<(Contact, u64), StoreError> {
        let before = self.load_active(id, if_match)?;
        let mut after = before.clone();
        after.status = Status::Deleted;
        after.deleted_at = Some(self.now);
        self.touch(&mut after);
        self.save(Some(&before), after, None)
    }

    /// Back from the trash, if the window allows and its identities are still free.
    pub fn restore(
        &mut self,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<(Contact, u64), StoreError> {
        let before = self.load_versioned(id, if_match)?;
        let Some(deleted_at) = before
            .deleted_at
            .filter(|_| before.status == Status::Deleted)
        else {
            return Err(StoreError::Conflict(format!(
                "contact {id} is {}, not deleted",
                before.status.as_str()
            )));
        };
        let window = self.rules.restore_window_days;
        if window == 0 {
            return Err(StoreError::Conflict(
                "deletion is final (restore_window_days = 0)".into(),
            ));
        }
        if self.now > deleted_at + Duration::days(i64::from(window)) {
            return Err(StoreError::Conflict(format!(
                "contact {id} was deleted more than {window} days ago and can no longer be restored"
            )));
        }
        let valid = self.validate(before.to_input())?;
        self.check_claims(&valid, id, &no_exception)?;
        let mut after = before.clone();
        after.status = Status::Active;
        after.deleted_at = None;
        self.touch(&mut after);
        self.save(Some(&before), after, Some(key_list(&valid)))
    }

    /// Permanent erase, whatever the status: returns the erased contact.
    pub fn erase_contact(
        &mut self,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<(Contact, u64), StoreError> {
        let contact = self.load_versioned(id, if_match)?;
        let seq = self.erase(&contact)?;
        Ok((contact, seq))
    }

    /// Erases up to `limit` deleted contacts whose restore window has passed (oldest
    /// first); returns how many. Callers repeat until fewer than `limit` come back,
    /// so a large purge is many short transactions that other writes interleave with.
    pub fn purge_expired(&mut self, limit: usize) -> Result<usize, StoreError> {
        let cutoff = self.now - Duration::days(i64::from(self.rules.restore_window_days));
        let end = tables::trash_key(cutoff.timestamp_millis() + 1, "");
        let mut expired = Vec::new();
        for entry in self.trash.range(..end.as_str())?.take(limit) {
            let (key, _) = entry?;
            if let Some(id) = key.value().split('\u{1f}').nth(1) {
                expired.push(id.to_string());
            }
        }
        for id in &expired {
            if let Some(contact) = self.load(id)? {
                self.erase(&contact)?;
            }
        }
        Ok(expired.len())
    }

    /// Marks a change: new version, new `updated_at`, recomputed fields.
    pub(super) fn touch(&self, contact: &mut Contact) {
        contact.version += 1;
        contact.updated_at = self.now;
        contact.refresh_computed();
    }
}
