//! Read paths: single contacts, change-log batches for the sync worker, full scans.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use super::tables::{self, CHANGES, CONTACTS, META};
use super::{Store, StoreError};
use crate::model::{Contact, Status};

/// Changes read from one snapshot: every contact changed in `(after, up_to]` with its
/// state at that snapshot (`None` once erased).
#[derive(Debug)]
pub struct ChangeBatch {
    pub up_to: u64,
    pub contacts: Vec<(String, Option<Contact>)>,
}

pub(super) fn last_seq(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(tables::LAST_SEQ)?.map(|v| v.value()).unwrap_or(0))
}

impl Store {
    pub fn get(&self, id: &str) -> Result<Option<Contact>, StoreError> {
        let txn = self.db().begin_read()?;
        let contacts = txn.open_table(CONTACTS)?;
        contacts
            .get(id)?
            .map(|bytes| tables::decode_contact(bytes.value()))
            .transpose()
    }

    /// Several contacts from one snapshot, in the order asked; missing ones skipped.
    pub fn get_many(&self, ids: &[String]) -> Result<Vec<Contact>, StoreError> {
        let txn = self.db().begin_read()?;
        let contacts = txn.open_table(CONTACTS)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(bytes) = contacts.get(id.as_str())? {
                found.push(tables::decode_contact(bytes.value())?);
            }
        }
        Ok(found)
    }

    /// Up to `max` changes after `after`, deduplicated by contact, with each contact's
    /// state read from the same snapshot as the log.
    pub fn changes_after(&self, after: u64, max: usize) -> Result<ChangeBatch, StoreError> {
        let txn = self.db().begin_read()?;
        let changes = txn.open_table(CHANGES)?;
        let contacts = txn.open_table(CONTACTS)?;
        let mut up_to = after;
        let mut ids: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in changes.range(after + 1..)?.take(max) {
            let (seq, id) = entry?;
            up_to = seq.value();
            if seen.insert(id.value().to_string()) {
                ids.push(id.value().to_string());
            }
        }
        let mut batch = Vec::with_capacity(ids.len());
        for id in ids {
            let contact = contacts
                .get(id.as_str())?
                .map(|bytes| tables::decode_contact(bytes.value()))
                .transpose()?;
            batch.push((id, contact));
        }
        Ok(ChangeBatch {
            up_to,
            contacts: batch,
        })
    }

    /// The oldest sequence still in the change log, if any.
    pub fn first_retained_seq(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db().begin_read()?;
        let changes = txn.open_table(CHANGES)?;
        Ok(changes.first()?.map(|(seq, _)| seq.value()))
    }

    /// Calls `visit` for every contact of one snapshot; returns that snapshot's last
    /// sequence, so an index built from the scan resumes the log exactly after it.
    pub fn scan<E: From<StoreError>>(
        &self,
        mut visit: impl FnMut(Contact) -> Result<(), E>,
    ) -> Result<u64, E> {
        let txn = self.db().begin_read().map_err(StoreError::from)?;
        let seq = last_seq(&txn)?;
        let contacts = txn.open_table(CONTACTS).map_err(StoreError::from)?;
        for entry in contacts.iter().map_err(StoreError::from)? {
            let (_, bytes) = entry.map_err(StoreError::from)?;
            visit(tables::decode_contact(bytes.value())?)?;
        }
        Ok(seq)
    }

    /// Contacts per status, maintained by the writer.
    pub fn counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let txn = self.db().begin_read()?;
        let meta = txn.open_table(META)?;
        Status::ALL
            .into_iter()
            .map(|status| {
                let count = meta.get(tables::count_key(status).as_str())?;
                Ok((status, count.map(|v| v.value()).unwrap_or(0)))
            })
            .collect()
    }
}
