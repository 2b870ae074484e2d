//! redb table definitions and record encodings.
//!
//! | table        | key                        | value                                  |
//! |--------------|----------------------------|----------------------------------------|
//! | `contacts`   | contact id (ULID text)     | the [`Contact`] as JSON                |
//! | `identities` | `channel` U+001F value     | id of the active contact holding it    |
//! | `external`   | external_id                | contact id (any status but erased)     |
//! | `changes`    | sequence number (u64)      | id of the contact that changed         |
//! | `meta`       | name                       | u64 (`last_seq`, `count.<status>`)     |
//! | `held_identities` (multimap) | contact id | the identity keys it holds |
//!
//! The change log records *which* contact changed, not its data: the sync worker reads
//! the contact's state from the same read snapshot as the log, so an entry never holds
//! a copy of personal data and erasing a contact never has to rewrite the log.

use redb::{Database, MultimapTableDefinition, TableDefinition};

use super::StoreError;
use crate::model::Contact;

pub const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
pub const IDENTITIES: TableDefinition<&str, &str> = TableDefinition::new("identities");
pub const EXTERNAL_IDS: TableDefinition<&str, &str> = TableDefinition::new("external");
pub const CHANGES: TableDefinition<u64, &str> = TableDefinition::new("changes");
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Which identity keys each contact holds, so they can be released exactly as claimed
/// even if normalization rules (e.g. `default_country`) change later.
pub const HELD_IDENTITIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("held_identities");

pub const LAST_SEQ: &str = "last_seq";

pub fn count_key(status: crate::model::Status) -> String {
    format!("count.{}", status.as_str())
}

/// Creates every table so read transactions never meet a missing one.
pub fn ensure_created(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(CONTACTS)?;
    txn.open_table(IDENTITIES)?;
    txn.open_table(EXTERNAL_IDS)?;
    txn.open_table(CHANGES)?;
    txn.open_table(META)?;
    txn.open_multimap_table(HELD_IDENTITIES)?;
    txn.commit()?;
    Ok(())
}

pub fn encode_contact(contact: &Contact) -> Vec<u8> {
    serde_json::to_vec(contact).expect("a contact always serializes")
}

pub fn decode_contact(bytes: &[u8]) -> Result<Contact, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
