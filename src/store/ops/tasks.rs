//! Catalog changes that touch many contacts, applied in chunks.
//!
//! Changing a custom field's type or options, deleting a field, renaming a company and
//! deleting a company may touch every contact. The command itself commits only the
//! catalog change and a [`CatalogTask`] in the `tasks` table; the writer then runs the
//! task one chunk per transaction between other writes (see
//! [`super::super::writer`]), so no write waits for more than one chunk. A task's
//! progress is stored with each chunk: after a crash it resumes where it stopped.
//!
//! While a field's values are being conformed, a contact loaded by any write is
//! conformed first (see [`TxnTables::load`]), so a write never trips over a value the
//! new definition rejects and that the task has not reached yet.

use std::ops::Bound;

use redb::{ReadableMultimapTable, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TxnTables;
use crate::model::{Contact, CustomFieldDef};
use crate::store::StoreError;
use crate::store::tables;

/// Contact records one conform chunk reads (only holders of the key are decoded).
const CONFORM_CHUNK: usize = 2_000;
/// Members one company chunk re-indexes or unlinks.
const MEMBER_CHUNK: usize = 500;

/// Work left over from a catalog change, as stored in the `tasks` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CatalogTask {
    /// Brings every stored value of `key` in line with its current definition (no
    /// definition: the values go), re-indexing the holders.
    ConformField {
        key: String,
        /// The last contact key handled.
        after: Option<String>,
        cleared: usize,
    },
    /// Re-indexes the members of a renamed company (they are found by its name).
    ReindexCompany {
        company_id: String,
        after: Option<String>,
    },
    /// Unlinks the members of a deleted company.
    UnlinkCompany { company_id: String, unlinked: usize },
}

impl CatalogTask {
    /// Contacts changed so far (values cleared, contacts unlinked).
    pub fn count(&self) -> usize {
        match self {
            CatalogTask::ConformField { cleared, .. } => *cleared,
            CatalogTask::UnlinkCompany { unlinked, .. } => *unlinked,
            CatalogTask::ReindexCompany { .. } => 0,
        }
    }
}

/// What one chunk of a task did.
#[derive(Debug, Clone, Copy)]
pub struct TaskStep {
    pub task: u64,
    pub done: bool,
    /// [`CatalogTask::count`] after the chunk.
    pub count: usize,
}

impl TxnTables<'_> {
    /// Stores a task; the writer runs it after this transaction commits.
    pub(super) fn queue_task(&mut self, task: &CatalogTask) -> Result<u64, StoreError> {
        let id = self.tasks.last()?.map_or(1, |(id, _)| id.value() + 1);
        self.tasks.insert(id, tables::encode(task).as_slice())?;
        if let CatalogTask::ConformField { key, .. } = task {
            self.conforming.insert(key.clone());
        }
        self.queued_task = Some(id);
        Ok(id)
    }

    /// Runs one chunk of the oldest task; `None` when no task waits.
    pub fn run_task_chunk(&mut self) -> Result<Option<TaskStep>, StoreError> {
        let Some((id, task)) = (match self.tasks.first()? {
            Some((id, bytes)) => Some((id.value(), tables::decode::<CatalogTask>(bytes.value())?)),
            None => None,
        }) else {
            return Ok(None);
        };
        let next = match task {
            CatalogTask::ConformField {
                key,
                after,
                cleared,
            } => self.conform_chunk(key, after, cleared)?,
            CatalogTask::ReindexCompany { company_id, after } => {
                self.reindex_chunk(company_id, after)?
            }
            CatalogTask::UnlinkCompany {
                company_id,
                unlinked,
            } => self.unlink_chunk(company_id, unlinked)?,
        };
        let step = match next {
            Progress::Done(count) => {
                self.tasks.remove(id)?;
                TaskStep {
                    task: id,
                    done: true,
                    count,
                }
            }
            Progress::More(task) => {
                self.tasks.insert(id, tables::encode(&task).as_slice())?;
                TaskStep {
                    task: id,
                    done: false,
                    count: task.count(),
                }
            }
        };
        Ok(Some(step))
    }

    fn conform_chunk(
        &mut self,
        key: String,
        after: Option<String>,
        mut cleared: usize,
    ) -> Result<Progress, StoreError> {
        let def = self.defs.get(&key).cloned();
        let needle = key_needle(&key);
        let start = match &after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        let mut holders = Vec::new();
        let mut last = None;
        let mut read = 0;
        for entry in self.contacts.range::<&str>((start, Bound::Unbounded))? {
            let (id, bytes) = entry?;
            read += 1;
            last = Some(id.value().to_string());
            if let Some(contact) = holder_of(id.value(), bytes.value(), &key, &needle, &*self)? {
                holders.push(contact);
            }
            if read == CONFORM_CHUNK {
                break;
            }
        }
        for before in holders {
            let conformed =
                conformed_value(def.as_ref(), &before, &key, self.rules.default_country);
            let mut after = before.clone();
            match conformed {
                Some(value) if Some(&value) == before.custom_fields.get(&key) => {
                    // The type decides how a value is searched: re-index it.
                    self.append_change(&before.id)?;
                    continue;
                }
                Some(value) => {
                    after.custom_fields.insert(key.clone(), value);
                }
                None => {
                    after.custom_fields.remove(&key);
                    cleared += 1;
                }
            }
            after.version += 1;
            after.updated_at = self.now;
            self.save(Some(&before), after, None)?;
        }
        if read < CONFORM_CHUNK {
            self.conforming.remove(&key);
            return Ok(Progress::Done(cleared));
        }
        Ok(Progress::More(CatalogTask::ConformField {
            key,
            after: last,
            cleared,
        }))
    }

    fn reindex_chunk(
        &mut self,
        company_id: String,
        after: Option<String>,
    ) -> Result<Progress, StoreError> {
        let mut chunk = Vec::with_capacity(MEMBER_CHUNK);
        for member in self.company_contacts.get(company_id.as_str())? {
            let member = member?;
            let member = member.value();
            if after.as_deref().is_some_and(|after| member <= after) {
                continue;
            }
            chunk.push(member.to_string());
            if chunk.len() == MEMBER_CHUNK {
                break;
            }
        }
        for member in &chunk {
            self.append_change(member)?;
        }
        if chunk.len() < MEMBER_CHUNK {
            return Ok(Progress::Done(0));
        }
        Ok(Progress::More(CatalogTask::ReindexCompany {
            company_id,
            after: chunk.pop(),
        }))
    }

    fn unlink_chunk(
        &mut self,
        company_id: String,
        mut unlinked: usize,
    ) -> Result<Progress, StoreError> {
        let mut chunk = Vec::with_capacity(MEMBER_CHUNK);
        for member in self.company_contacts.get(company_id.as_str())? {
            chunk.push(member?.value().to_string());
            if chunk.len() == MEMBER_CHUNK {
                break;
            }
        }
        for member in &chunk {
            if let Some(before) = self.load(member)? {
                let mut after = before.clone();
                after.company_id = None;
                after.favorite = false;
                after.version += 1;
                after.updated_at = self.now;
                self.save(Some(&before), after, None)?;
                unlinked += 1;
            }
            // Whatever the record says, the link goes, so every chunk makes progress.
            self.company_contacts
                .remove(company_id.as_str(), member.as_str())?;
        }
        if chunk.len() < MEMBER_CHUNK {
            return Ok(Progress::Done(unlinked));
        }
        Ok(Progress::More(CatalogTask::UnlinkCompany {
            company_id,
            unlinked,
        }))
    }

    /// Conforms the values of the fields being conformed (in memory; the caller's
    /// save stores them).
    pub(super) fn conform_loaded(&self, contact: &mut Contact) {
        for key in &self.conforming {
            if !contact.custom_fields.contains_key(key) {
                continue;
            }
            match conformed_value(self.defs.get(key), contact, key, self.rules.default_country) {
                Some(value) => contact.custom_fields.insert(key.clone(), value),
                None => contact.custom_fields.remove(key),
            };
        }
    }
}

/// Where a task stands after a chunk.
enum Progress {
    /// Finished, with its final count.
    Done(usize),
    More(CatalogTask),
}

/// What a stored record holding custom field `key` contains: `"key":` (see
/// [`crate::store::record::decode_if_may_hold`]).
pub(crate) fn key_needle(key: &str) -> memchr::memmem::Finder<'static> {
    let needle = serde_json::to_string(key).expect("a key serializes") + ":";
    memchr::memmem::Finder::new(needle.as_bytes()).into_owned()
}

/// The contact `id` stored as `raw`, if it holds custom field `key`; only records
/// that may hold it ([`key_needle`]) are decoded.
pub(crate) fn holder_of(
    id: &str,
    raw: &[u8],
    key: &str,
    needle: &memchr::memmem::Finder<'_>,
    dictionaries: &dyn crate::store::record::Dictionaries,
) -> Result<Option<Contact>, StoreError> {
    let contact = crate::store::record::decode_if_may_hold(id, raw, needle, dictionaries)?;
    Ok(contact.filter(|contact| contact.custom_fields.contains_key(key)))
}

/// The value of `key` under `def`, `None` when it has no place there.
pub(crate) fn conformed_value(
    def: Option<&CustomFieldDef>,
    contact: &Contact,
    key: &str,
    default_country: phonenumber::country::Id,
) -> Option<Value> {
    let value = contact.custom_fields.get(key)?;
    def?.normalize(value, default_country).ok()
}

/// Whether changing `before` to `after` may change what stored values are valid.
pub fn changes_values(before: &CustomFieldDef, after: &CustomFieldDef) -> bool {
    before.field_type != after.field_type || before.options != after.options
}
