//! redb table definitions and record encodings.
//!
//! | table              | key                            | value                                  |
//! |--------------------|--------------------------------|----------------------------------------|
//! | `contacts`         | contact id (ULID text)         | the contact, binary ([`super::record`]) |
//! | `identity_claims`  | (hash of `channel` U+001F value, contact id as u128) | none: an active contact holding it ([`super::claims`]) |
//! | `held_identities` (mm) | contact id                 | the identity keys it holds, for records older than format 3 (newer records carry them) |
//! | `name_claims`      | (hash of the folded name, contact id as u128) | none: an active contact with that name |
//! | `external`         | external_id                    | contact id (any status but erased)     |
//! | `companies`        | company id                     | the [`Company`] as JSON                |
//! | `company_contacts` (mm) | company id                | ids of contacts pointing at it         |
//! | `custom_fields`    | field key                      | the definition as JSON                 |
//! | `merges`           | survivor id U+001F other id    | the [`MergeRecord`](crate::model::MergeRecord) as JSON |
//! | `inboxes`          | inbox id                       | the [`Inbox`](crate::model::Inbox) as JSON |
//! | `trash`            | deleted-at millis (13 digits) U+001F id | 0 (ordered by deletion time) |
//! | `changes`          | sequence number (u64)          | id of the contact that changed         |
//! | `meta`             | name                           | u64 (`last_seq`, `count.<status>`, `scrubbed.*`) |
//! | `scrubs`           | change-log sequence of an erase | erased-at millis                      |
//! | `tasks`            | task number (u64)              | a [`CatalogTask`](super::ops::CatalogTask) as JSON |
//! | `jobs`             | job id (ULID text)             | the [`JobRecord`](crate::jobs::JobRecord) as JSON |
//!
//! (mm) = multimap. The change log records *which* contact changed, not its data: the
//! sync worker reads the contact's state from the same read snapshot as the log, so an
//! entry never holds a copy of personal data and erasing a contact never has to
//! rewrite the log.
//!
//! An erase removes the record at once but its bytes survive in freed pages (redb is
//! copy-on-write) and in the index files until a scrub; `scrubs` lists the erases
//! not yet scrubbed from both. `scrubbed.store` is the sequence of the snapshot the
//! last compaction copied, `scrubbed.index` the sequence the index had applied when
//! its last full merge started: an erase is scrubbed from a file once that file's
//! mark is at or past the erase's sequence.

use redb::{Database, MultimapTableDefinition, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

pub const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
/// Which identity keys each contact holds, so they can be released exactly as claimed
/// even if normalization rules (e.g. `default_country`) change later. Only contacts
/// whose record predates format 3 have rows here: newer records carry their claims
/// ([`super::record`]), and a contact's rows go when its record is next written.
pub const HELD_IDENTITIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("held_identities");
pub use super::claims::{IDENTITY_CLAIMS, NAME_CLAIMS};
pub const EXTERNAL_IDS: TableDefinition<&str, &str> = TableDefinition::new("external");
pub const COMPANIES: TableDefinition<&str, &[u8]> = TableDefinition::new("companies");
pub const COMPANY_CONTACTS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("company_contacts");
pub const CUSTOM_FIELDS: TableDefinition<&str, &[u8]> = TableDefinition::new("custom_fields");
/// The dictionaries contact records are compressed against, by number: added on a
/// catalog change, never changed or removed ([`super::record`]).
pub const RECORD_DICTIONARIES: TableDefinition<u32, &[u8]> =
    TableDefinition::new("record_dictionaries");
pub const MERGES: TableDefinition<&str, &[u8]> = TableDefinition::new("merges");
pub const TRASH: TableDefinition<&str, u64> = TableDefinition::new("trash");
pub const INBOXES: TableDefinition<&str, &[u8]> = TableDefinition::new("inboxes");
pub const CHANGES: TableDefinition<u64, &str> = TableDefinition::new("changes");
/// Prefix of a change-log entry that creates its contact (ids never start with it).
/// Such a change needs no delete in the index: the id was never there, because ids
/// are new ULIDs and the index applies the log in order from its committed sequence.
pub const CREATED_MARK: char = '+';

/// A change-log entry's contact id, and whether the change created it.
pub fn logged_change(logged: &str) -> (&str, bool) {
    match logged.strip_prefix(CREATED_MARK) {
        Some(id) => (id, true),
        None => (logged, false),
    }
}

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const SCRUBS: TableDefinition<u64, u64> = TableDefinition::new("scrubs");
pub const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
pub const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");

pub const LAST_SEQ: &str = "last_seq";
pub const SCRUBBED_STORE: &str = "scrubbed.store";
pub const SCRUBBED_INDEX: &str = "scrubbed.index";

pub fn count_key(status: crate::model::Status) -> String {
    format!("count.{}", status.as_str())
}

pub fn pair_key(a: &str, b: &str) -> String {
    format!("{a}\u{1f}{b}")
}

/// Trash entries sort by deletion time, so expired ones are a prefix range.
pub fn trash_key(deleted_at_millis: i64, id: &str) -> String {
    format!("{:013}\u{1f}{id}", deleted_at_millis.max(0))
}

/// Creates every table so read transactions never meet a missing one.
pub fn ensure_created(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(CONTACTS)?;
    txn.open_table(IDENTITY_CLAIMS)?;
    txn.open_multimap_table(HELD_IDENTITIES)?;
    txn.open_table(NAME_CLAIMS)?;
    txn.open_table(EXTERNAL_IDS)?;
    txn.open_table(COMPANIES)?;
    txn.open_multimap_table(COMPANY_CONTACTS)?;
    txn.open_table(CUSTOM_FIELDS)?;
    txn.open_table(RECORD_DICTIONARIES)?;
    txn.open_table(MERGES)?;
    txn.open_table(TRASH)?;
    txn.open_table(INBOXES)?;
    txn.open_table(CHANGES)?;
    txn.open_table(META)?;
    txn.open_table(SCRUBS)?;
    txn.open_table(TASKS)?;
    txn.open_table(JOBS)?;
    txn.commit()?;
    Ok(())
}

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records always serialize")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
