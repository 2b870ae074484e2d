//! The write operations, applied inside one write transaction.
//!
//! Invariant: an operation performs every check before its first mutation, so an
//! operation that fails leaves the transaction exactly as it found it and the other
//! operations of the same group commit are unaffected.

use chrono::Utc;
use redb::{MultimapTable, ReadableMultimapTable, ReadableTable, Table, WriteTransaction};
use serde_json::Value;

use super::tables::{
    self, CHANGES, CONTACTS, EXTERNAL_IDS, HELD_IDENTITIES, IDENTITIES, LAST_SEQ, META,
};
use super::{StoreError, WriteAck};
use crate::model::{Contact, ContactInput, IdentityKey, Rules, Status, ValidContact};

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
    "identity_keys",
];

pub(super) struct TxnTables<'t> {
    contacts: Table<'t, &'static str, &'static [u8]>,
    identities: Table<'t, &'static str, &'static str>,
    held: MultimapTable<'t, &'static str, &'static str>,
    external: Table<'t, &'static str, &'static str>,
    changes: Table<'t, u64, &'static str>,
    meta: Table<'t, &'static str, u64>,
    last_seq: u64,
    count_delta: [i64; 3],
}

impl<'t> TxnTables<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let last_seq = meta.get(LAST_SEQ)?.map(|v| v.value()).unwrap_or(0);
        Ok(TxnTables {
            contacts: txn.open_table(CONTACTS)?,
            identities: txn.open_table(IDENTITIES)?,
            held: txn.open_multimap_table(HELD_IDENTITIES)?,
            external: txn.open_table(EXTERNAL_IDS)?,
            changes: txn.open_table(CHANGES)?,
            meta,
            last_seq,
            count_delta: [0; 3],
        })
    }

    /// Writes the sequence and status counters; call once before commit.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        self.meta.insert(LAST_SEQ, self.last_seq)?;
        for (status, delta) in Status::ALL.into_iter().zip(self.count_delta) {
            if delta != 0 {
                let key = tables::count_key(status);
                let current = self.meta.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
                let updated = current.saturating_add_signed(delta);
                self.meta.insert(key.as_str(), updated)?;
            }
        }
        Ok(self.last_seq)
    }

    pub fn create(&mut self, valid: ValidContact, rules: &Rules) -> Result<WriteAck, StoreError> {
        valid.check_require(rules.require)?;
        let id = ulid::Ulid::generate().to_string();
        self.check_external_id(valid.external_id.as_deref(), &id)?;
        self.check_identities(&valid.identity_keys, &id)?;
        let keys = key_list(&valid);
        let contact = valid.into_new_contact(id, crate::model::truncate_to_millis(Utc::now()));
        self.count(contact.status, 1);
        self.claim(&contact, &[], &keys)?;
        self.put(contact)
    }

    pub fn patch(
        &mut self,
        id: &str,
        patch: &Value,
        if_match: Option<u64>,
        rules: &Rules,
    ) -> Result<WriteAck, StoreError> {
        let mut contact = self.active_contact(id, if_match)?;
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
        let mut document = contact.writable_json();
        json_patch::merge(&mut document, patch);
        let input: ContactInput = serde_json::from_value(document)
            .map_err(|e| StoreError::BadRequest(format!("invalid patch: {e}")))?;
        let valid = input.validate(rules)?;
        if fields.contains_key("email") || fields.contains_key("phone") {
            valid.check_require(rules.require)?;
        }
        self.check_external_id(valid.external_id.as_deref(), id)?;
        self.check_identities(&valid.identity_keys, id)?;
        let old_keys = self.held_keys(id)?;
        let new_keys = key_list(&valid);
        valid.apply_to(&mut contact, crate::model::truncate_to_millis(Utc::now()));
        self.claim(&contact, &old_keys, &new_keys)?;
        self.put(contact)
    }

    /// Soft delete: the contact goes to the trash and releases its identities.
    pub fn delete(&mut self, id: &str, if_match: Option<u64>) -> Result<WriteAck, StoreError> {
        let mut contact = self.active_contact(id, if_match)?;
        let old_keys = self.held_keys(id)?;
        let now = crate::model::truncate_to_millis(Utc::now());
        self.count(Status::Active, -1);
        self.count(Status::Deleted, 1);
        contact.status = Status::Deleted;
        contact.deleted_at = Some(now);
        contact.updated_at = now;
        contact.version += 1;
        for key in &old_keys {
            self.identities.remove(key.as_str())?;
        }
        self.held.remove_all(id)?;
        self.put(contact)
    }

    /// Drops change-log entries up to `up_to` (the index has durably applied them).
    pub fn trim_changes(&mut self, up_to: u64) -> Result<(), StoreError> {
        self.changes.retain_in(..=up_to, |_, _| false)?;
        Ok(())
    }

    fn active_contact(&self, id: &str, if_match: Option<u64>) -> Result<Contact, StoreError> {
        let contact = self
            .contacts
            .get(id)?
            .map(|bytes| tables::decode_contact(bytes.value()))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        if let Some(expected) = if_match
            && expected != contact.version
        {
            return Err(StoreError::VersionMismatch {
                current: contact.version,
            });
        }
        if !contact.is_active() {
            return Err(StoreError::Conflict(format!(
                "contact {id} is {}; restore it first",
                contact.status.as_str()
            )));
        }
        Ok(contact)
    }

    fn check_external_id(&self, external_id: Option<&str>, owner: &str) -> Result<(), StoreError> {
        if let Some(external_id) = external_id
            && let Some(holder) = self.external.get(external_id)?
            && holder.value() != owner
        {
            return Err(StoreError::ExternalIdTaken(holder.value().to_string()));
        }
        Ok(())
    }

    /// Every identity of `keys` held by another active contact, reported at once.
    fn check_identities(
        &self,
        keys: &[(String, IdentityKey)],
        owner: &str,
    ) -> Result<(), StoreError> {
        let mut taken = Vec::new();
        for (field, key) in keys {
            if let Some(holder) = self.identities.get(key.as_str())?
                && holder.value() != owner
            {
                taken.push((field.clone(), holder.value().to_string()));
            }
        }
        if taken.is_empty() {
            Ok(())
        } else {
            Err(StoreError::IdentityTaken(taken))
        }
    }

    fn held_keys(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for key in self.held.get(id)? {
            keys.push(key?.value().to_string());
        }
        Ok(keys)
    }

    /// Moves the contact's identity and external-id claims from `old` to `new`.
    fn claim(
        &mut self,
        contact: &Contact,
        old: &[String],
        new: &[String],
    ) -> Result<(), StoreError> {
        for key in old.iter().filter(|k| !new.contains(k)) {
            self.identities.remove(key.as_str())?;
            self.held.remove(contact.id.as_str(), key.as_str())?;
        }
        for key in new {
            self.identities.insert(key.as_str(), contact.id.as_str())?;
            self.held.insert(contact.id.as_str(), key.as_str())?;
        }
        let previous = self
            .contacts
            .get(contact.id.as_str())?
            .map(|bytes| tables::decode_contact(bytes.value()))
            .transpose()?
            .and_then(|c| c.external_id);
        if previous != contact.external_id {
            if let Some(previous) = previous {
                self.external.remove(previous.as_str())?;
            }
            if let Some(external_id) = &contact.external_id {
                self.external
                    .insert(external_id.as_str(), contact.id.as_str())?;
            }
        }
        Ok(())
    }

    /// Stores the contact and appends its change to the log.
    fn put(&mut self, contact: Contact) -> Result<WriteAck, StoreError> {
        self.last_seq += 1;
        let bytes = tables::encode_contact(&contact);
        self.contacts
            .insert(contact.id.as_str(), bytes.as_slice())?;
        self.changes.insert(self.last_seq, contact.id.as_str())?;
        Ok(WriteAck {
            contact,
            seq: self.last_seq,
        })
    }

    fn count(&mut self, status: Status, delta: i64) {
        let slot = Status::ALL
            .iter()
            .position(|s| *s == status)
            .expect("ALL lists every status");
        self.count_delta[slot] += delta;
    }
}

fn key_list(valid: &ValidContact) -> Vec<String> {
    valid
        .identity_keys
        .iter()
        .map(|(_, key)| key.as_str().to_string())
        .collect()
}
