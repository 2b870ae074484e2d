//! One imported row: create, or update the contact it matches (upsert).

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{TxnTables, key_list, no_exception};
use crate::model::{Contact, ContactInput, IdentityKey};
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Update the matching contact, else create.
    #[default]
    Upsert,
    /// Always create; a row colliding with a contact is an error.
    Create,
}

/// How an upserted row finds its contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    #[default]
    ExternalId,
    Email,
    /// Any of the row's identities (email, phone, channel handles).
    Identity,
}

/// What a row did (or, in a dry run, would do).
#[derive(Debug, Clone)]
pub struct ImportedRow {
    pub created: bool,
    pub contact: Contact,
}

impl TxnTables<'_> {
    pub fn import_row(
        &mut self,
        input: ContactInput,
        mode: ImportMode,
        match_by: MatchBy,
        dry_run: bool,
    ) -> Result<(ImportedRow, u64), StoreError> {
        let valid = self.validate(input.clone())?;
        let existing = match mode {
            ImportMode::Create => None,
            ImportMode::Upsert => self.matching(
                &valid.external_id,
                &valid.email,
                &valid.identity_keys,
                match_by,
            )?,
        };
        let Some(before) = existing else {
            valid.check_require(self.rules.require)?;
            let id = ulid::Ulid::generate().to_string();
            self.check_claims(&valid, &id, &no_exception)?;
            let keys = key_list(&valid);
            let contact = valid.into_new_contact(id, self.now);
            if dry_run {
                return Ok((
                    ImportedRow {
                        created: true,
                        contact,
                    },
                    self.last_seq(),
                ));
            }
            let (contact, seq) = self.save(None, contact, Some(keys))?;
            return Ok((
                ImportedRow {
                    created: true,
                    contact,
                },
                seq,
            ));
        };
        // The row's fields overwrite, the others stay; created_at is the contact's.
        let mut document = before.writable_json();
        let mut provided = serde_json::to_value(&input).expect("input serializes");
        if let Some(fields) = provided.as_object_mut() {
            fields.remove("created_at");
        }
        json_patch::merge(&mut document, &provided);
        let merged: ContactInput = serde_json::from_value(document)
            .map_err(|e| StoreError::BadRequest(format!("invalid row: {e}")))?;
        let valid = self.validate(merged)?;
        valid.check_require(self.rules.require)?;
        self.check_claims(&valid, &before.id, &no_exception)?;
        let keys = key_list(&valid);
        let mut after = before.clone();
        valid.apply_to(&mut after, self.now);
        if dry_run {
            return Ok((
                ImportedRow {
                    created: false,
                    contact: after,
                },
                self.last_seq(),
            ));
        }
        let (contact, seq) = self.save(Some(&before), after, Some(keys))?;
        Ok((
            ImportedRow {
                created: false,
                contact,
            },
            seq,
        ))
    }

    /// The active contact a row designates, by the chosen key.
    fn matching(
        &self,
        external_id: &Option<String>,
        email: &Option<String>,
        identity_keys: &[(String, IdentityKey)],
        match_by: MatchBy,
    ) -> Result<Option<Contact>, StoreError> {
        let holder = match match_by {
            MatchBy::ExternalId => match external_id {
                Some(external_id) => self
                    .external
                    .get(external_id.as_str())?
                    .map(|h| h.value().to_string()),
                None => None,
            },
            MatchBy::Email => match email {
                Some(email) => self.first_holder(IdentityKey::new("email", email).as_str())?,
                None => None,
            },
            MatchBy::Identity => self.holder_of_any(identity_keys)?,
        };
        Ok(match holder {
            Some(id) => self.load(&id)?.filter(Contact::is_active),
            None => None,
        })
    }
}
