//! Lossless migration: every record of the store as NDJSON lines (`contactd export
//! --all`, `GET /v1/admin/dump`), and loading them into an empty store (`contactd
//! import --all`, `POST /v1/admin/load`), which gives back the same server: ids,
//! versions, status (the trash with its deletion times), merges and their undo
//! snapshots, companies, custom field definitions and inboxes.
//!
//! A dump is read from one snapshot, so it is consistent. Each contact carries the
//! identity keys it holds, so a load claims exactly what the source claimed whatever
//! its normalization rules. The index is not dumped: the load's change log rebuilds it.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::TxnTables;
use crate::model::{Company, Contact, CustomFieldDef, Inbox, MergeRecord};
use crate::store::tables::{self, *};
use crate::store::{Store, StoreError};

/// The version of the dump format this build writes and reads.
pub const DUMP_FORMAT: u32 = 1;

/// One line of a dump.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DumpLine {
    /// The first line.
    Header {
        format: u32,
        /// The change-log sequence the dump holds.
        seq: u64,
        taken_at: DateTime<Utc>,
    },
    CustomField {
        record: CustomFieldDef,
    },
    Company {
        record: Company,
    },
    Inbox {
        record: Inbox,
    },
    Contact {
        record: Box<Contact>,
        /// The identity keys an active contact holds.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        identity_keys: Vec<String>,
    },
    /// An undoable merge of `other` into `survivor`.
    Merge {
        survivor: String,
        other: String,
        record: Box<MergeRecord>,
    },
}

impl Store {
    /// Calls `emit` with every record of one snapshot, header first, definitions,
    /// companies and inboxes before the contacts that use them, merges last.
    /// Refused while a custom field change is still being applied to stored values.
    pub fn dump<E: From<StoreError>>(
        &self,
        mut emit: impl FnMut(DumpLine) -> Result<(), E>,
    ) -> Result<u64, E> {
        let txn = self.db().begin_read().map_err(StoreError::from)?;
        if txn
            .open_table(TASKS)
            .map_err(StoreError::from)?
            .len()
            .map_err(StoreError::from)?
            > 0
        {
            return Err(StoreError::Conflict(
                "a custom field change is still being applied to stored contacts; dump once \
                 /v1/stats lists no running catalog task"
                    .into(),
            )
            .into());
        }
        let seq = crate::store::read::last_seq(&txn)?;
        emit(DumpLine::Header {
            format: DUMP_FORMAT,
            seq,
            taken_at: self.clock().now(),
        })?;
        let read = |e: redb::StorageError| E::from(StoreError::from(e));
        let table = |e: redb::TableError| E::from(StoreError::from(e));
        /// Every record of a JSON table, decoded.
        fn records<T: serde::de::DeserializeOwned>(
            txn: &redb::ReadTransaction,
            def: redb::TableDefinition<&str, &[u8]>,
        ) -> Result<Vec<T>, StoreError> {
            let mut records = Vec::new();
            for entry in txn.open_table(def)?.iter()? {
                records.push(tables::decode(entry?.1.value())?);
            }
            Ok(records)
        }
        for record in records(&txn, CUSTOM_FIELDS)? {
            emit(DumpLine::CustomField { record })?;
        }
        for record in records(&txn, COMPANIES)? {
            emit(DumpLine::Company { record })?;
        }
        for record in records(&txn, INBOXES)? {
            emit(DumpLine::Inbox { record })?;
        }
        let held = txn.open_multimap_table(HELD_IDENTITIES).map_err(table)?;
        let dictionaries = crate::store::record::StoredDictionaries::open(&txn)?;
        for entry in txn
            .open_table(CONTACTS)
            .map_err(table)?
            .iter()
            .map_err(read)?
        {
            let (id, bytes) = entry.map_err(read)?;
            let (record, carried) =
                crate::store::record::decode_record(id.value(), bytes.value(), &dictionaries)?;
            let identity_keys = match carried {
                Some(keys) => keys,
                None => {
                    let mut keys = Vec::new();
                    for key in held.get(id.value()).map_err(read)? {
                        keys.push(key.map_err(read)?.value().to_string());
                    }
                    keys
                }
            };
            emit(DumpLine::Contact {
                record: Box::new(record),
                identity_keys,
            })?;
        }
        for entry in txn
            .open_table(MERGES)
            .map_err(table)?
            .iter()
            .map_err(read)?
        {
            let (key, bytes) = entry.map_err(read)?;
            let Some((survivor, other)) = key.value().split_once('\u{1f}') else {
                return Err(StoreError::Corrupt(format!("merge key {:?}", key.value())).into());
            };
            emit(DumpLine::Merge {
                survivor: survivor.to_string(),
                other: other.to_string(),
                record: Box::new(tables::decode(bytes.value())?),
            })?;
        }
        Ok(seq)
    }
}

impl TxnTables<'_> {
    /// Stores the records of a dump. With `first`, the store must hold no contact,
    /// company, definition, inbox or merge. Every record is checked before any is
    /// written, so a refused chunk changes nothing.
    pub fn load_dump(&mut self, lines: Vec<DumpLine>, first: bool) -> Result<usize, StoreError> {
        if first
            && (!self.contacts.is_empty()?
                || !self.companies.is_empty()?
                || !self.custom_fields.is_empty()?
                || !self.inboxes.is_empty()?
                || !self.merges.is_empty()?)
        {
            return Err(StoreError::Conflict(
                "a dump loads only into an empty server: this one holds records".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for line in &lines {
            let (kind, key, present) = match line {
                DumpLine::Header { .. } => continue,
                DumpLine::CustomField { record } => (
                    "custom field",
                    record.key.clone(),
                    self.custom_fields.get(record.key.as_str())?.is_some(),
                ),
                DumpLine::Company { record } => (
                    "company",
                    record.id.clone(),
                    self.companies.get(record.id.as_str())?.is_some(),
                ),
                DumpLine::Inbox { record } => (
                    "inbox",
                    record.id.clone(),
                    self.inboxes.get(record.id.as_str())?.is_some(),
                ),
                DumpLine::Contact { record, .. } => {
                    crate::store::claims::check_id(&record.id)?;
                    (
                        "contact",
                        record.id.clone(),
                        self.contacts.get(record.id.as_str())?.is_some(),
                    )
                }
                DumpLine::Merge {
                    survivor, other, ..
                } => {
                    let key = tables::pair_key(survivor, other);
                    let present = self.merges.get(key.as_str())?.is_some();
                    ("merge", key, present)
                }
            };
            if present || !seen.insert((kind, key.clone())) {
                return Err(StoreError::Conflict(format!(
                    "the dump holds {kind} {key} twice"
                )));
            }
        }
        let count = lines.len();
        for line in lines {
            match line {
                DumpLine::Header { .. } => {}
                DumpLine::CustomField { record } => {
                    self.custom_fields
                        .insert(record.key.as_str(), tables::encode(&record).as_slice())?;
                    self.defs.insert(record.key.clone(), record);
                    self.catalog_changed();
                }
                DumpLine::Company { record } => {
                    self.companies
                        .insert(record.id.as_str(), tables::encode(&record).as_slice())?;
                }
                DumpLine::Inbox { record } => {
                    self.inboxes
                        .insert(record.id.as_str(), tables::encode(&record).as_slice())?;
                }
                DumpLine::Contact {
                    record,
                    identity_keys,
                } => {
                    self.save(None, *record, Some(identity_keys))?;
                    self.imported_rows += 1;
                }
                DumpLine::Merge {
                    survivor,
                    other,
                    record,
                } => {
                    let key = tables::pair_key(&survivor, &other);
                    self.merges
                        .insert(key.as_str(), tables::encode(&*record).as_slice())?;
                }
            }
        }
        Ok(count)
    }
}
