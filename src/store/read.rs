//! Read paths: contacts, identity lookups, companies, definitions, change-log batches
//! for the sync worker, full scans.

use std::collections::HashSet;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use super::record::{self, StoredDictionaries};
use super::tables::{self, *};
use super::{Store, StoreError};
use crate::model::{
    Company, Contact, ContactContext, CustomFieldDef, CustomFieldDefs, IdentityKey, Inbox, Status,
};

/// Changes read from one snapshot: every contact changed in `(after, up_to]` with its
/// state at that snapshot, and what indexing them needs.
#[derive(Debug)]
pub struct ChangeBatch {
    pub up_to: u64,
    pub contacts: Vec<Changed>,
    pub context: ContactContext,
    /// `Some(committed)` when the batch ends early because the next change's contact
    /// was changed again by a commit not yet synced: wait for [`Store::committed`] to
    /// pass this value before asking again.
    pub held_back: Option<u64>,
}

/// One contact of a [`ChangeBatch`].
#[derive(Debug)]
pub struct Changed {
    pub id: String,
    /// `None` once erased.
    pub contact: Option<Contact>,
    /// The contact was created within the batch's range: the index has no document
    /// for it yet.
    pub created: bool,
}

/// Contacts per read snapshot of [`Store::scan_chunked`].
const SCAN_CHUNK: usize = 10_000;
/// Longest [`Store::scan_chunked`] waits for a snapshot's commits to be synced.
const SYNC_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) fn last_seq(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(LAST_SEQ)?.map(|v| v.value()).unwrap_or(0))
}

fn get_contact(txn: &ReadTransaction, id: &str) -> Result<Option<Contact>, StoreError> {
    let contacts = txn.open_table(CONTACTS)?;
    let dictionaries = StoredDictionaries::open(txn)?;
    contacts
        .get(id)?
        .map(|bytes| record::decode_contact(id, bytes.value(), &dictionaries))
        .transpose()
}

/// Definitions, and the names of the companies the given contacts point at (all
/// companies when `only` is `None`).
fn context(txn: &ReadTransaction, only: Option<&[&Contact]>) -> Result<ContactContext, StoreError> {
    let mut context = ContactContext::default();
    for entry in txn.open_table(CUSTOM_FIELDS)?.iter()? {
        let (key, bytes) = entry?;
        context
            .defs
            .insert(key.value().to_string(), tables::decode(bytes.value())?);
    }
    let companies = txn.open_table(COMPANIES)?;
    let mut add = |bytes: &[u8]| -> Result<(), StoreError> {
        let company: Company = tables::decode(bytes)?;
        context.company_names.insert(company.id, company.name);
        Ok(())
    };
    match only {
        Some(contacts) => {
            let wanted: HashSet<&str> = contacts
                .iter()
                .filter_map(|c| c.company_id.as_deref())
                .collect();
            for id in wanted {
                if let Some(bytes) = companies.get(id)? {
                    add(bytes.value())?;
                }
            }
        }
        None => {
            for entry in companies.iter()? {
                add(entry?.1.value())?;
            }
        }
    }
    Ok(context)
}

impl Store {
    /// What evaluating a filter on these contacts needs (definitions, their companies).
    pub fn context_of(&self, contacts: &[&Contact]) -> Result<ContactContext, StoreError> {
        context(&self.db().begin_read()?, Some(contacts))
    }

    /// The sequence of the oldest change the log still holds.
    pub fn first_change(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db().begin_read()?;
        Ok(txn
            .open_table(CHANGES)?
            .first()?
            .map(|(seq, _)| seq.value()))
    }

    pub fn get(&self, id: &str) -> Result<Option<Contact>, StoreError> {
        get_contact(&self.db().begin_read()?, id)
    }

    /// Several contacts from one snapshot, in the order asked; missing ones skipped.
    pub fn get_many(&self, ids: &[String]) -> Result<Vec<Contact>, StoreError> {
        let txn = self.db().begin_read()?;
        let contacts = txn.open_table(CONTACTS)?;
        let dictionaries = StoredDictionaries::open(&txn)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(bytes) = contacts.get(id.as_str())? {
                found.push(record::decode_contact(id, bytes.value(), &dictionaries)?);
            }
        }
        Ok(found)
    }

    /// The contacts of `ids` as JSON (the API's full contact shape), with each one's
    /// status; missing ids are skipped.
    pub fn get_many_json(&self, ids: &[String]) -> Result<Vec<(Status, String)>, StoreError> {
        let txn = self.db().begin_read()?;
        let contacts = txn.open_table(CONTACTS)?;
        let dictionaries = StoredDictionaries::open(&txn)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(bytes) = contacts.get(id.as_str())? {
                let contact = record::decode_contact(id, bytes.value(), &dictionaries)?;
                let text = serde_json::to_string(&contact).expect("contacts serialize");
                found.push((contact.status, text));
            }
        }
        Ok(found)
    }

    /// The active contact holding the first of `keys` that anyone holds.
    pub fn lookup(&self, keys: &[IdentityKey]) -> Result<Option<Contact>, StoreError> {
        let txn = self.db().begin_read()?;
        let claims = txn.open_table(IDENTITY_CLAIMS)?;
        let contacts = txn.open_table(CONTACTS)?;
        let held = txn.open_multimap_table(HELD_IDENTITIES)?;
        let dictionaries = StoredDictionaries::open(&txn)?;
        for key in keys {
            if let Some(holder) = super::claims::identity_holder(
                &claims,
                &contacts,
                &held,
                &dictionaries,
                key.as_str(),
            )? {
                return get_contact(&txn, &holder);
            }
        }
        Ok(None)
    }

    pub fn company(&self, id: &str) -> Result<Option<Company>, StoreError> {
        let txn = self.db().begin_read()?;
        let companies = txn.open_table(COMPANIES)?;
        companies
            .get(id)?
            .map(|bytes| tables::decode(bytes.value()))
            .transpose()
    }

    pub fn companies(&self) -> Result<Vec<Company>, StoreError> {
        let txn = self.db().begin_read()?;
        let mut all = Vec::new();
        for entry in txn.open_table(COMPANIES)?.iter()? {
            all.push(tables::decode(entry?.1.value())?);
        }
        Ok(all)
    }

    /// The active contacts of a company, oldest first.
    pub fn company_contacts(&self, company_id: &str) -> Result<Vec<Contact>, StoreError> {
        let txn = self.db().begin_read()?;
        let members = txn.open_multimap_table(COMPANY_CONTACTS)?;
        let mut contacts = Vec::new();
        for id in members.get(company_id)? {
            if let Some(contact) = get_contact(&txn, id?.value())?.filter(Contact::is_active) {
                contacts.push(contact);
            }
        }
        contacts.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(contacts)
    }

    pub fn inboxes(&self) -> Result<Vec<Inbox>, StoreError> {
        let txn = self.db().begin_read()?;
        let mut all = Vec::new();
        for entry in txn.open_table(INBOXES)?.iter()? {
            all.push(tables::decode(entry?.1.value())?);
        }
        Ok(all)
    }

    pub fn custom_fields(&self) -> Result<Vec<CustomFieldDef>, StoreError> {
        Ok(self.custom_field_defs()?.into_values().collect())
    }

    /// The definitions by key, as validation and filters use them.
    pub fn custom_field_defs(&self) -> Result<CustomFieldDefs, StoreError> {
        let cache = &self.inner.defs;
        // The version is read before the snapshot: a change committed in between
        // bumps it, so what is cached below is never taken for newer than it is.
        let version = cache.version.load(std::sync::atomic::Ordering::SeqCst);
        let lock = || {
            cache
                .cached
                .lock()
                .expect("the definitions cache lock is never poisoned")
        };
        if let Some((cached_version, defs)) = lock().as_ref()
            && *cached_version == version
        {
            return Ok(defs.clone());
        }
        let defs = context(&self.db().begin_read()?, Some(&[]))?.defs;
        *lock() = Some((version, defs.clone()));
        Ok(defs)
    }

    /// Up to `max` changes after `after`, deduplicated by contact, with each contact's
    /// state read from the same snapshot as the log. Only durable changes (up to
    /// [`Store::committed`], read before the snapshot so the snapshot holds them): a
    /// load's unsynced commits are not indexed until they are synced, so the index
    /// never gets ahead of what a restart finds (see [`super::writer`]).
    ///
    /// The snapshot may also hold unsynced commits, and a contact's state in it is
    /// its latest: a contact that one of them changed again is not read until they
    /// are synced. The batch then ends before that contact's first change in range
    /// and says so in [`ChangeBatch::held_back`].
    pub fn changes_after(&self, after: u64, max: usize) -> Result<ChangeBatch, StoreError> {
        let durable = self.committed().get();
        let txn = self.db().begin_read()?;
        let changes = txn.open_table(CHANGES)?;
        let mut in_range: Vec<(u64, String, bool)> = Vec::new();
        if after < durable {
            for entry in changes.range(after + 1..=durable)?.take(max) {
                let (seq, logged) = entry?;
                let (id, created) = tables::logged_change(logged.value());
                in_range.push((seq.value(), id.to_string(), created));
            }
        }
        let mut held_back = None;
        let snapshot_seq = last_seq(&txn)?;
        if snapshot_seq > durable && !in_range.is_empty() {
            let ids: HashSet<&str> = in_range.iter().map(|(_, id, _)| id.as_str()).collect();
            let mut changed_again = HashSet::new();
            for entry in changes.range(durable + 1..=snapshot_seq)? {
                let (_, logged) = entry?;
                let (id, _) = tables::logged_change(logged.value());
                if ids.contains(id) {
                    changed_again.insert(id.to_string());
                }
            }
            if let Some(cut) = in_range
                .iter()
                .position(|(_, id, _)| changed_again.contains(id))
            {
                in_range.truncate(cut);
                held_back = Some(durable);
            }
        }
        let up_to = in_range.last().map_or(after, |(seq, _, _)| *seq);
        let mut seen = HashSet::new();
        let mut batch = Vec::with_capacity(in_range.len());
        // A creation is the contact's first change: when it is in the range it comes
        // before any other change of the contact in it.
        for (_, id, created) in in_range {
            if seen.insert(id.clone()) {
                let contact = get_contact(&txn, &id)?;
                batch.push(Changed {
                    id,
                    contact,
                    created,
                });
            }
        }
        let present: Vec<&Contact> = batch.iter().filter_map(|c| c.contact.as_ref()).collect();
        let context = context(&txn, Some(&present))?;
        Ok(ChangeBatch {
            up_to,
            contacts: batch,
            context,
            held_back,
        })
    }

    /// The oldest sequence still in the change log, if any.
    pub fn first_retained_seq(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db().begin_read()?;
        let changes = txn.open_table(CHANGES)?;
        Ok(changes.first()?.map(|(seq, _)| seq.value()))
    }

    /// How many stored values of custom field `key` a change would clear: a merge
    /// patch of its definition, or its deletion (`None`). Read from one snapshot,
    /// while writes go on; only records holding the key are decoded.
    pub fn values_lost_by(
        &self,
        key: &str,
        patch: Option<&serde_json::Value>,
    ) -> Result<usize, StoreError> {
        let txn = self.db().begin_read()?;
        let current: CustomFieldDef = txn
            .open_table(CUSTOM_FIELDS)?
            .get(key)?
            .map(|bytes| tables::decode(bytes.value()))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("custom field {key}")))?;
        let changed = match patch {
            Some(patch) => {
                let changed = super::ops::patched_def(&current, patch, self.clock().now())?;
                if !super::ops::changes_values(&current, &changed) {
                    return Ok(0);
                }
                Some(changed)
            }
            None => None,
        };
        let needle = super::ops::key_needle(key);
        let dictionaries = StoredDictionaries::open(&txn)?;
        let mut lost = 0;
        for entry in txn.open_table(CONTACTS)?.iter()? {
            let (id, bytes) = entry?;
            if let Some(contact) =
                super::ops::holder_of(id.value(), bytes.value(), key, &needle, &dictionaries)?
                && super::ops::conformed_value(
                    changed.as_ref(),
                    &contact,
                    key,
                    self.inner.default_country,
                )
                .is_none()
            {
                lost += 1;
            }
        }
        Ok(lost)
    }

    /// A job's record.
    pub fn job(&self, id: &str) -> Result<Option<crate::jobs::JobRecord>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(JOBS)?;
        table
            .get(id)?
            .map(|bytes| tables::decode(bytes.value()))
            .transpose()
    }

    /// Up to `query.limit` jobs `query` admits, newest first, and whether more follow.
    pub fn jobs(
        &self,
        query: &crate::jobs::JobQuery,
    ) -> Result<(Vec<crate::jobs::JobStatus>, bool), StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(JOBS)?;
        let mut page = Vec::new();
        let entries = match &query.before {
            Some(before) => table.range::<&str>(..before.as_str())?,
            None => table.range::<&str>(..)?,
        };
        for entry in entries.rev() {
            let record: crate::jobs::JobRecord = tables::decode(entry?.1.value())?;
            if query.admits(&record.status) {
                if page.len() == query.limit {
                    return Ok((page, true));
                }
                page.push(record.status);
            }
        }
        Ok((page, false))
    }

    /// Every job not finished (oldest first): what a restart resumes.
    pub fn unfinished_jobs(&self) -> Result<Vec<crate::jobs::JobRecord>, StoreError> {
        let txn = self.db().begin_read()?;
        let mut unfinished = Vec::new();
        for entry in txn.open_table(JOBS)?.iter()? {
            let record: crate::jobs::JobRecord = tables::decode(entry?.1.value())?;
            if !record.status.state.is_finished() {
                unfinished.push(record);
            }
        }
        Ok(unfinished)
    }

    /// Catalog tasks not done yet (oldest first), with their number.
    pub fn catalog_tasks(&self) -> Result<Vec<(u64, super::CatalogTask)>, StoreError> {
        let txn = self.db().begin_read()?;
        let mut tasks = Vec::new();
        for entry in txn.open_table(TASKS)?.iter()? {
            let (id, bytes) = entry?;
            tasks.push((id.value(), tables::decode(bytes.value())?));
        }
        Ok(tasks)
    }

    /// Calls `visit` for every contact of one snapshot with the context to index it;
    /// returns that snapshot's last sequence, so an index built from the scan resumes
    /// the log exactly after it.
    pub fn scan<E: From<StoreError>>(
        &self,
        mut visit: impl FnMut(Contact, &ContactContext) -> Result<(), E>,
    ) -> Result<u64, E> {
        let txn = self.db().begin_read().map_err(StoreError::from)?;
        let seq = last_seq(&txn)?;
        let context = context(&txn, None)?;
        let contacts = txn.open_table(CONTACTS).map_err(StoreError::from)?;
        let dictionaries = StoredDictionaries::open(&txn)?;
        for entry in contacts.iter().map_err(StoreError::from)? {
            let (id, bytes) = entry.map_err(StoreError::from)?;
            visit(
                record::decode_contact(id.value(), bytes.value(), &dictionaries)?,
                &context,
            )?;
        }
        Ok(seq)
    }

    /// Calls `visit` for every contact, [`SCAN_CHUNK`] at a time, each chunk from a
    /// fresh read snapshot (with its own context) and resuming after the last id;
    /// returns the sequence of the first snapshot. A contact changed during the scan
    /// may be seen before or after its change, so the caller must apply the change
    /// log after the returned sequence *as upserts* to be exact. Unlike [`Store::scan`]
    /// it holds no snapshot for long: one held through a rebuild made the writer's next
    /// commit free minutes of pages at once (a 4.9 s stall at 1M under writes).
    ///
    /// Each snapshot's contacts are visited only once everything it holds is durable
    /// (a load's commits are synced within about a second, see [`super::writer`]):
    /// an index built from them never holds what a crash could take back from the store.
    pub fn scan_chunked<E: From<StoreError>>(
        &self,
        mut visit: impl FnMut(Contact, &ContactContext) -> Result<(), E>,
    ) -> Result<u64, E> {
        // The first snapshot fixes the sequence and the last id: contacts created
        // later (new ids sort last) are the caller's to take from the change log, so
        // the scan ends even under a steady stream of creations.
        let (seq, end) = {
            let txn = self.db().begin_read().map_err(StoreError::from)?;
            let contacts = txn.open_table(CONTACTS).map_err(StoreError::from)?;
            let end = contacts
                .last()
                .map_err(StoreError::from)?
                .map(|(id, _)| id.value().to_string());
            (last_seq(&txn)?, end)
        };
        self.wait_until_synced(seq)?;
        let Some(end) = end else {
            return Ok(seq);
        };
        let mut after: Option<String> = None;
        loop {
            // The snapshot is dropped before the chunk is visited: the visitor may block
            // for seconds (an index writer flushing a segment), and while a snapshot is
            // alive redb frees none of the pages the writer's commits give up.
            let (chunk, context, chunk_seq) = {
                let txn = self.db().begin_read().map_err(StoreError::from)?;
                let contacts = txn.open_table(CONTACTS).map_err(StoreError::from)?;
                let from = match &after {
                    Some(last) => std::ops::Bound::Excluded(last.as_str()),
                    None => std::ops::Bound::Unbounded,
                };
                let range = contacts
                    .range::<&str>((from, std::ops::Bound::Included(end.as_str())))
                    .map_err(StoreError::from)?;
                let dictionaries = StoredDictionaries::open(&txn)?;
                let mut chunk = Vec::with_capacity(SCAN_CHUNK);
                for entry in range.take(SCAN_CHUNK) {
                    let (id, bytes) = entry.map_err(StoreError::from)?;
                    after = Some(id.value().to_string());
                    chunk.push(record::decode_contact(
                        id.value(),
                        bytes.value(),
                        &dictionaries,
                    )?);
                }
                let context = context(&txn, Some(&chunk.iter().collect::<Vec<_>>()))?;
                (chunk, context, last_seq(&txn)?)
            };
            self.wait_until_synced(chunk_seq)?;
            let done = chunk.len() < SCAN_CHUNK;
            for contact in chunk {
                visit(contact, &context)?;
            }
            if done {
                return Ok(seq);
            }
        }
    }

    /// Waits until every commit up to `seq` is durable ([`Store::committed`]). The
    /// writer syncs a load's commits within about a second; a store whose commits
    /// stay unsynced for [`SYNC_WAIT_MAX`] is failing, and the caller hears so.
    fn wait_until_synced(&self, seq: u64) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + SYNC_WAIT_MAX;
        loop {
            let committed = self.committed().get();
            if committed >= seq {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(redb::StorageError::Io(std::io::Error::other(format!(
                    "commits up to {seq} were not synced within {} s",
                    SYNC_WAIT_MAX.as_secs()
                )))
                .into());
            }
            self.committed()
                .wait_past_blocking(committed, std::time::Duration::from_millis(100));
        }
    }

    /// Contacts per status, maintained by the writer.
    pub fn counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        counts(&self.db().begin_read()?)
    }
}

/// Contacts per status in `txn`'s snapshot.
pub(super) fn counts(txn: &ReadTransaction) -> Result<Vec<(Status, u64)>, StoreError> {
    let meta = txn.open_table(META)?;
    Status::ALL
        .into_iter()
        .map(|status| {
            let count = meta.get(tables::count_key(status).as_str())?;
            Ok((status, count.map(|v| v.value()).unwrap_or(0)))
        })
        .collect()
}

/// Erases not yet scrubbed from the files, for `/v1/stats` and the index's scrubber.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScrubStatus {
    /// Erases whose bytes the store file may still hold.
    pub pending_store: u64,
    /// Erases whose words the index files may still hold.
    pub pending_index: u64,
    /// The oldest of either: its change-log sequence and when it was erased.
    pub oldest_seq: Option<u64>,
    pub oldest_erased_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The first erase after the `mark` meta key (`scrubbed.store` or `scrubbed.index`):
/// its sequence and erased-at millis.
pub(super) fn oldest_unscrubbed(
    txn: &ReadTransaction,
    mark: &str,
) -> Result<Option<(u64, u64)>, StoreError> {
    let meta = txn.open_table(META)?;
    let after = meta.get(mark)?.map_or(0, |v| v.value());
    let scrubs = txn.open_table(SCRUBS)?;
    let first = scrubs.range(after.saturating_add(1)..)?.next();
    Ok(match first {
        Some(entry) => {
            let (seq, at) = entry?;
            Some((seq.value(), at.value()))
        }
        None => None,
    })
}

impl Store {
    /// The oldest erase the index files may still hold: sequence, erased-at millis.
    pub fn oldest_index_scrub(&self) -> Result<Option<(u64, u64)>, StoreError> {
        oldest_unscrubbed(&self.db().begin_read()?, SCRUBBED_INDEX)
    }

    pub fn scrub_status(&self) -> Result<ScrubStatus, StoreError> {
        let txn = self.db().begin_read()?;
        let meta = txn.open_table(META)?;
        let mark =
            |key: &str| -> Result<u64, StoreError> { Ok(meta.get(key)?.map_or(0, |v| v.value())) };
        let (store_mark, index_mark) = (mark(SCRUBBED_STORE)?, mark(SCRUBBED_INDEX)?);
        let scrubs = txn.open_table(SCRUBS)?;
        let mut status = ScrubStatus::default();
        for entry in scrubs.range(store_mark.min(index_mark).saturating_add(1)..)? {
            let (seq, at) = entry?;
            let (seq, at) = (seq.value(), at.value());
            if status.oldest_seq.is_none() {
                status.oldest_seq = Some(seq);
                status.oldest_erased_at = i64::try_from(at)
                    .ok()
                    .and_then(chrono::DateTime::from_timestamp_millis);
            }
            if seq > store_mark {
                status.pending_store += 1;
            }
            if seq > index_mark {
                status.pending_index += 1;
            }
        }
        Ok(status)
    }
}
