//! The write operations, applied inside one write transaction.
//!
//! Invariants:
//! - An operation performs every check before its first mutation, so an operation that
//!   fails leaves the transaction exactly as it found it and the other operations of the
//!   same group commit are unaffected.
//! - Every contact write goes through [`TxnTables::save`], which keeps every secondary
//!   table (identities, names, external ids, company links, trash, counts) consistent
//!   with the record and appends the change to the log.

mod bulk;
mod catalog;
mod contacts;
mod dump;
mod identify;
mod import;
mod jobs;
mod merge;
mod scope;
mod tasks;

pub use bulk::BulkAction;
pub use catalog::patched_def;
pub use dump::{DUMP_FORMAT, DumpLine};
pub use identify::Identified;
pub use import::{ImportMode, ImportedRow, MatchBy};
pub use merge::Merged;
pub use scope::ScopeGuard;
pub use tasks::{CatalogTask, TaskStep, changes_values};
pub(crate) use tasks::{conformed_value, holder_of, key_needle};

use chrono::{DateTime, Utc};
use redb::{
    MultimapTable, MultimapTableHandle, ReadableTable, Table, TableHandle, WriteTransaction,
};

use super::StoreError;
use super::claims::{self, HeldKeys};
use super::tables::{self, *};
use super::tracked::{Journal, Tracked};
use crate::model::{
    Contact, ContactInput, CustomFieldDefs, FieldError, Rules, Status, ValidContact,
    ValidationError, name_key,
};

type Tab<'t, K, V> = Tracked<Table<'t, K, V>>;
type Multi<'t, K, V> = Tracked<MultimapTable<'t, K, V>>;

/// Records read in a write transaction find their dictionaries in it.
impl super::record::Dictionaries for TxnTables<'_> {
    fn dictionary(&self, number: u32) -> Result<std::sync::Arc<[u8]>, StoreError> {
        self.dictionaries_read.get(&*self.dictionaries, number)
    }
}

pub(super) struct TxnTables<'t> {
    contacts: Tab<'t, &'static str, &'static [u8]>,
    /// Identity claims ([`claims`]).
    identities: Tab<'t, (u64, u128), ()>,
    /// Claims of contacts whose records predate format 3 (new records carry theirs).
    held: Multi<'t, &'static str, &'static str>,
    /// Name claims ([`claims`]).
    names: Tab<'t, (u64, u128), ()>,
    external: Tab<'t, &'static str, &'static str>,
    companies: Tab<'t, &'static str, &'static [u8]>,
    company_contacts: Multi<'t, &'static str, &'static str>,
    custom_fields: Tab<'t, &'static str, &'static [u8]>,
    dictionaries: Tab<'t, u32, &'static [u8]>,
    dictionaries_read: super::record::DictionaryCache,
    /// The dictionary of the catalog as it stands, once a record was written (see
    /// [`Self::encoding_dictionary`]); reset when the catalog changes.
    encoding: Option<super::record::Dictionary>,
    merges: Tab<'t, &'static str, &'static [u8]>,
    trash: Tab<'t, &'static str, u64>,
    inboxes: Tab<'t, &'static str, &'static [u8]>,
    changes: Tab<'t, u64, &'static str>,
    meta: Tab<'t, &'static str, u64>,
    scrubs: Tab<'t, u64, u64>,
    tasks: Tab<'t, u64, &'static [u8]>,
    jobs: Tab<'t, &'static str, &'static [u8]>,
    /// Fields whose values a running task is conforming (see [`tasks`]).
    conforming: std::collections::BTreeSet<String>,
    rules: Rules,
    defs: CustomFieldDefs,
    now: DateTime<Utc>,
    last_seq: u64,
    count_delta: [i64; 3],
    /// Set when a contact was erased: its bytes stay in freed pages until a
    /// compaction scrubs the file.
    pub erased: bool,
    /// Set when a custom field definition changed (cached definitions are stale).
    pub defs_changed: bool,
    /// Contacts imports and dump loads wrote in this transaction (a pack of the store
    /// file follows a large load).
    pub imported_rows: u64,
    /// The task the last command queued, if any: its caller is answered when the
    /// task is done.
    pub queued_task: Option<u64>,
    /// The running command's scope (a scoped key's write), see [`scope`].
    guard: Option<scope::Guarding>,
    /// A dry run: every check runs, [`Self::save`] writes nothing.
    pub dry_run: bool,
}

impl<'t> TxnTables<'t> {
    /// Opens every table; `tracking` notes changed keys for a running compaction.
    pub fn open(
        txn: &'t WriteTransaction,
        rules: &Rules,
        now: DateTime<Utc>,
        tracking: bool,
    ) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let last_seq = meta.get(LAST_SEQ)?.map(|v| v.value()).unwrap_or(0);
        let custom_fields = txn.open_table(CUSTOM_FIELDS)?;
        let mut defs = CustomFieldDefs::new();
        for entry in custom_fields.iter()? {
            let (key, bytes) = entry?;
            defs.insert(key.value().to_string(), tables::decode(bytes.value())?);
        }
        fn tab<'t, K: redb::Key + 'static, V: redb::Value + 'static>(
            txn: &'t WriteTransaction,
            def: redb::TableDefinition<'static, K, V>,
            tracking: bool,
        ) -> Result<Tab<'t, K, V>, StoreError> {
            Ok(Tracked::new(txn.open_table(def)?, def.name(), tracking))
        }
        fn multi<'t, K: redb::Key + 'static, V: redb::Key + 'static>(
            txn: &'t WriteTransaction,
            def: redb::MultimapTableDefinition<'static, K, V>,
            tracking: bool,
        ) -> Result<Multi<'t, K, V>, StoreError> {
            Ok(Tracked::new(
                txn.open_multimap_table(def)?,
                def.name(),
                tracking,
            ))
        }
        let tasks = tab(txn, TASKS, tracking)?;
        let mut conforming = std::collections::BTreeSet::new();
        for entry in tasks.iter()? {
            if let CatalogTask::ConformField { key, .. } = tables::decode(entry?.1.value())? {
                conforming.insert(key);
            }
        }
        Ok(TxnTables {
            contacts: tab(txn, CONTACTS, tracking)?,
            identities: tab(txn, claims::IDENTITY_CLAIMS, tracking)?,
            held: multi(txn, HELD_IDENTITIES, tracking)?,
            names: tab(txn, claims::NAME_CLAIMS, tracking)?,
            external: tab(txn, EXTERNAL_IDS, tracking)?,
            companies: tab(txn, COMPANIES, tracking)?,
            company_contacts: multi(txn, COMPANY_CONTACTS, tracking)?,
            custom_fields: Tracked::new(custom_fields, CUSTOM_FIELDS.name(), tracking),
            dictionaries: tab(txn, RECORD_DICTIONARIES, tracking)?,
            dictionaries_read: Default::default(),
            encoding: None,
            merges: tab(txn, MERGES, tracking)?,
            trash: tab(txn, TRASH, tracking)?,
            inboxes: tab(txn, INBOXES, tracking)?,
            changes: tab(txn, CHANGES, tracking)?,
            meta: Tracked::new(meta, META.name(), tracking),
            scrubs: tab(txn, SCRUBS, tracking)?,
            jobs: tab(txn, JOBS, tracking)?,
            tasks,
            conforming,
            rules: rules.clone(),
            defs,
            now,
            last_seq,
            count_delta: [0; 3],
            erased: false,
            defs_changed: false,
            imported_rows: 0,
            queued_task: None,
            guard: None,
            dry_run: false,
        })
    }

    /// Writes the sequence and status counters and moves the changed keys into
    /// `journal` (when tracking); call once before commit.
    pub fn finish(mut self, journal: &mut Journal) -> Result<(u64, bool), StoreError> {
        self.meta.insert(LAST_SEQ, self.last_seq)?;
        for (status, delta) in Status::ALL.into_iter().zip(self.count_delta) {
            if delta != 0 {
                let key = tables::count_key(status);
                let current = self.meta.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
                self.meta
                    .insert(key.as_str(), current.saturating_add_signed(delta))?;
            }
        }
        self.contacts.drain_into(journal);
        self.identities.drain_into(journal);
        self.held.drain_into(journal);
        self.names.drain_into(journal);
        self.external.drain_into(journal);
        self.companies.drain_into(journal);
        self.company_contacts.drain_into(journal);
        self.custom_fields.drain_into(journal);
        self.dictionaries.drain_into(journal);
        self.merges.drain_into(journal);
        self.trash.drain_into(journal);
        self.inboxes.drain_into(journal);
        self.changes.drain_into(journal);
        self.meta.drain_into(journal);
        self.scrubs.drain_into(journal);
        self.tasks.drain_into(journal);
        self.jobs.drain_into(journal);
        Ok((self.last_seq, self.erased))
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Notes that the catalog changed in this transaction: cached definitions
    /// elsewhere are stale, and records written from now on use a dictionary of the
    /// new catalog.
    fn catalog_changed(&mut self) {
        self.defs_changed = true;
        self.encoding = None;
    }

    /// The dictionary of the current catalog, stored under the next number unless
    /// the newest stored dictionary is already the same bytes.
    fn encoding_dictionary(&mut self) -> Result<super::record::Dictionary, StoreError> {
        if let Some(dictionary) = &self.encoding {
            return Ok(dictionary.clone());
        }
        let bytes = super::record::catalog_dictionary(&self.defs);
        let newest = super::record::newest_dictionary(&*self.dictionaries)?;
        let dictionary = match newest {
            Some(newest) if *newest.bytes == *bytes => newest,
            newest => {
                let number = newest.map_or(1, |d| d.number + 1);
                self.dictionaries.insert(number, bytes.as_slice())?;
                super::record::Dictionary {
                    number,
                    bytes: bytes.into(),
                }
            }
        };
        self.encoding = Some(dictionary.clone());
        Ok(dictionary)
    }

    /// A stored contact, its values of fields being conformed already conformed.
    pub fn load(&self, id: &str) -> Result<Option<Contact>, StoreError> {
        let Some(bytes) = self.contacts.get(id)? else {
            return Ok(None);
        };
        let mut contact = super::record::decode_contact(id, bytes.value(), self)?;
        if !self.conforming.is_empty() {
            self.conform_loaded(&mut contact);
        }
        Ok(Some(contact))
    }

    /// The contact, checked against `If-Match`; `NotFound` when absent.
    fn load_versioned(&self, id: &str, if_match: Option<u64>) -> Result<Contact, StoreError> {
        let contact = self
            .load(id)?
            .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))?;
        self.check_seen(&contact)?;
        if let Some(expected) = if_match
            && expected != contact.version
        {
            return Err(StoreError::VersionMismatch {
                current: contact.version,
            });
        }
        Ok(contact)
    }

    /// An active contact, checked against `If-Match`.
    fn load_active(&self, id: &str, if_match: Option<u64>) -> Result<Contact, StoreError> {
        let contact = self.load_versioned(id, if_match)?;
        if !contact.is_active() {
            let hint = match contact.status {
                Status::Merged => "; it was merged into another contact",
                _ => "; restore it first",
            };
            return Err(StoreError::Conflict(format!(
                "contact {id} is {}{hint}",
                contact.status.as_str()
            )));
        }
        Ok(contact)
    }

    /// Validates input with the current custom field definitions and companies.
    fn validate(&self, input: ContactInput) -> Result<ValidContact, StoreError> {
        let company_id = input.company_id.clone();
        let mut details = Vec::new();
        let valid = input
            .validate(&self.rules, &self.defs)
            .map_err(|e| details = e.details)
            .ok();
        if let Some(company_id) = company_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            && self.companies.get(company_id)?.is_none()
        {
            details.push(FieldError {
                field: "company_id".into(),
                message: format!("no company with id {company_id}"),
            });
        }
        match valid {
            Some(valid) if details.is_empty() => Ok(valid),
            _ => Err(ValidationError { details }.into()),
        }
    }

    /// Refuses identities, external ids and (when `unique_name`) names held by other
    /// active contacts. `may_hold(holder, key)` says which holders do not count.
    fn check_claims(
        &self,
        valid: &ValidContact,
        owner: &str,
        may_hold: &dyn Fn(&str, &str) -> bool,
    ) -> Result<(), StoreError> {
        let other_holder = |holder: &str, key: &str| holder != owner && !may_hold(holder, key);
        if let Some(external_id) = &valid.external_id
            && let Some(holder) = self.external.get(external_id.as_str())?
            && other_holder(holder.value(), external_id)
        {
            return Err(StoreError::ExternalIdTaken(holder.value().to_string()));
        }
        if self.rules.unique_identities {
            let mut taken = Vec::new();
            for (field, key) in &valid.identity_keys {
                for holder in claims::candidates(&*self.identities, key.as_str())? {
                    if other_holder(&holder, key.as_str())
                        && self.holds_identity(&holder, key.as_str())?
                    {
                        taken.push((field.clone(), holder));
                        break;
                    }
                }
            }
            if !taken.is_empty() {
                return Err(StoreError::IdentityTaken(taken));
            }
        }
        if self.rules.unique_name
            && let Some(name) = &valid.name
        {
            let key = name_key(name);
            for holder in claims::candidates(&*self.names, &key)? {
                if other_holder(&holder, &key) && self.holds_name(&holder, &key)? {
                    return Err(StoreError::NameTaken(holder));
                }
            }
        }
        Ok(())
    }

    /// The contact holding `key`, if any.
    fn first_holder(&self, key: &str) -> Result<Option<String>, StoreError> {
        claims::identity_holder(&*self.identities, &*self.contacts, &*self.held, self, key)
    }

    /// Whether contact `id` holds identity `key` (a claim row only says it may).
    fn holds_identity(&self, id: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.held_keys(id)?.holds(key))
    }

    /// Whether contact `id` is active under the folded name `key`.
    fn holds_name(&self, id: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.load(id)?.is_some_and(|contact| {
            contact.is_active() && contact.name.as_deref().map(name_key).as_deref() == Some(key)
        }))
    }

    /// The contact holding the first of `keys` that anyone holds.
    fn holder_of_any(
        &self,
        keys: &[(String, crate::model::IdentityKey)],
    ) -> Result<Option<String>, StoreError> {
        for (_, key) in keys {
            if let Some(holder) = self.first_holder(key.as_str())? {
                return Ok(Some(holder));
            }
        }
        Ok(None)
    }

    /// The identity keys contact `id` holds: from its record, or for a record older
    /// than format 3 from `held_identities` (then `legacy` is true).
    fn held_keys(&self, id: &str) -> Result<HeldKeys, StoreError> {
        claims::held_keys(&*self.contacts, &*self.held, self, id)
    }

    /// Stores `after` (replacing `before`), keeps every secondary table in step, and
    /// appends the change. `identity_keys`: the keys an active contact now holds
    /// (`None` keeps the ones it holds); a contact that is not active holds none.
    fn save(
        &mut self,
        before: Option<&Contact>,
        after: Contact,
        identity_keys: Option<Vec<String>>,
    ) -> Result<(Contact, u64), StoreError> {
        if self.guard.is_some() {
            if let Some(before) = before {
                self.check_seen(before)?;
            }
            self.check_result(&after)?;
        }
        if self.dry_run {
            return Ok((after, self.last_seq));
        }
        let id = after.id.as_str();
        // A new contact has no record yet, so nothing to look up.
        let held = match before {
            Some(_) => self.held_keys(id)?,
            None => HeldKeys::default(),
        };
        let new_keys = match (after.is_active(), identity_keys) {
            (false, _) => Vec::new(),
            (true, Some(keys)) => keys,
            (true, None) => held.keys.clone(),
        };
        // Rows go by hash: two claims of one contact may share one (see [`claims`]).
        let id_bits = claims::id_bits(id)?;
        let held_hashes = claims::claim_hashes(held.keys.iter().map(String::as_str));
        let new_hashes = claims::claim_hashes(new_keys.iter().map(String::as_str));
        for hash in held_hashes.difference(&new_hashes) {
            self.identities.remove((*hash, id_bits))?;
        }
        for hash in new_hashes.difference(&held_hashes) {
            self.identities.insert((*hash, id_bits), ())?;
        }
        if held.legacy {
            // The record written below carries the claims from now on.
            self.held.remove_all(id)?;
        }

        let active_name = |c: &Contact| c.name.as_deref().filter(|_| c.is_active()).map(name_key);
        let (old_name, new_name) = (before.and_then(active_name), active_name(&after));
        if old_name != new_name {
            if let Some(old) = old_name {
                self.names.remove((claims::claim_hash(&old), id_bits))?;
            }
            if let Some(new) = new_name {
                self.names.insert((claims::claim_hash(&new), id_bits), ())?;
            }
        }

        let old_external = before.and_then(|c| c.external_id.clone());
        if old_external != after.external_id {
            if let Some(old) = old_external
                && self
                    .external
                    .get(old.as_str())?
                    .is_some_and(|h| h.value() == id)
            {
                self.external.remove(old.as_str())?;
            }
            if let Some(new) = &after.external_id {
                self.external.insert(new.as_str(), id)?;
            }
        }

        let old_company = before.and_then(|c| c.company_id.clone());
        if old_company != after.company_id {
            if let Some(old) = old_company {
                self.company_contacts.remove(old.as_str(), id)?;
            }
            if let Some(new) = &after.company_id {
                self.company_contacts.insert(new.as_str(), id)?;
            }
        }

        if let Some(deleted_at) = before.and_then(|c| c.deleted_at) {
            self.trash
                .remove(tables::trash_key(deleted_at.timestamp_millis(), id).as_str())?;
        }
        if let Some(deleted_at) = after.deleted_at {
            self.trash.insert(
                tables::trash_key(deleted_at.timestamp_millis(), id).as_str(),
                0,
            )?;
        }

        if let Some(before) = before {
            self.count(before.status, -1);
        }
        self.count(after.status, 1);
        let dictionary = self.encoding_dictionary()?;
        self.contacts.insert(
            id,
            super::record::encode_contact(&after, &new_keys, &dictionary).as_slice(),
        )?;
        let seq = match before {
            None => self.append_creation(id)?,
            Some(_) => self.append_change(id)?,
        };
        Ok((after, seq))
    }

    /// Removes every trace of a contact: record, claims, links, merge snapshots.
    fn erase(&mut self, contact: &Contact) -> Result<u64, StoreError> {
        let id = contact.id.as_str();
        let held = self.held_keys(id)?;
        let id_bits = claims::id_bits(id)?;
        for hash in claims::claim_hashes(held.keys.iter().map(String::as_str)) {
            self.identities.remove((hash, id_bits))?;
        }
        if held.legacy {
            self.held.remove_all(id)?;
        }
        if let Some(name) = &contact.name {
            self.names
                .remove((claims::claim_hash(&name_key(name)), id_bits))?;
        }
        if let Some(external) = &contact.external_id
            && self
                .external
                .get(external.as_str())?
                .is_some_and(|h| h.value() == id)
        {
            self.external.remove(external.as_str())?;
        }
        if let Some(company) = &contact.company_id {
            self.company_contacts.remove(company.as_str(), id)?;
        }
        if let Some(deleted_at) = contact.deleted_at {
            self.trash
                .remove(tables::trash_key(deleted_at.timestamp_millis(), id).as_str())?;
        }
        // Merge snapshots hold copies of the contact's data: the pairs where it
        // survived (a key range) and the one where it was absorbed.
        let mut pairs = Vec::new();
        let survived = tables::pair_key(id, "");
        let survived_end = format!("{id}\u{20}");
        for entry in self
            .merges
            .range(survived.as_str()..survived_end.as_str())?
        {
            pairs.push(entry?.0.value().to_string());
        }
        if let Some(survivor) = &contact.merged_into {
            pairs.push(tables::pair_key(survivor, id));
        }
        for pair in pairs {
            self.merges.remove(pair.as_str())?;
        }
        self.contacts.remove(id)?;
        self.count(contact.status, -1);
        self.erased = true;
        let seq = self.append_change(id)?;
        // The erase is immediate in every answer; the bytes left in freed pages of
        // the store and in the index files wait for a scrub, due by this time.
        let erased_at = u64::try_from(self.now.timestamp_millis()).unwrap_or(0);
        self.scrubs.insert(seq, erased_at)?;
        Ok(seq)
    }

    fn append_change(&mut self, id: &str) -> Result<u64, StoreError> {
        self.last_seq += 1;
        self.changes.insert(self.last_seq, id)?;
        Ok(self.last_seq)
    }

    /// The change that creates a contact: marked (see [`tables::CREATED_MARK`]) so the
    /// index adds its document without first deleting one that cannot exist.
    fn append_creation(&mut self, id: &str) -> Result<u64, StoreError> {
        self.last_seq += 1;
        let marked = format!("{}{id}", tables::CREATED_MARK);
        self.changes.insert(self.last_seq, marked.as_str())?;
        Ok(self.last_seq)
    }

    /// Records that the index holds nothing of the erases up to `through`, and forgets
    /// the erases both files are now free of.
    pub fn mark_index_scrubbed(&mut self, through: u64) -> Result<(), StoreError> {
        let mark = |meta: &Tab<'t, &'static str, u64>, key: &str| -> Result<u64, StoreError> {
            Ok(meta.get(key)?.map_or(0, |v| v.value()))
        };
        let index_mark = mark(&self.meta, SCRUBBED_INDEX)?.max(through);
        let store_mark = mark(&self.meta, SCRUBBED_STORE)?;
        self.meta.insert(SCRUBBED_INDEX, index_mark)?;
        let mut done = Vec::new();
        for entry in self.scrubs.range(..=index_mark.min(store_mark))? {
            done.push(entry?.0.value());
        }
        for seq in done {
            self.scrubs.remove(seq)?;
        }
        Ok(())
    }

    /// Drops change-log entries up to `up_to` (the index has durably applied them),
    /// at most [`TRIM_MAX`] of them (the worker asks again after its next commit).
    pub fn trim_changes(&mut self, up_to: u64) -> Result<(), StoreError> {
        let Some(first) = self.changes.first()?.map(|(seq, _)| seq.value()) else {
            return Ok(());
        };
        self.changes
            .remove_through(up_to.min(first.saturating_add(TRIM_MAX - 1)))?;
        Ok(())
    }

    fn count(&mut self, status: Status, delta: i64) {
        let slot = Status::ALL
            .iter()
            .position(|s| *s == status)
            .expect("ALL lists every status");
        self.count_delta[slot] += delta;
    }
}

/// Change-log entries one trim drops: after a long pause (an online reindex holds the
/// trimming) the backlog is hundreds of thousands, and dropping them in one
/// transaction stalled the writes behind it.
const TRIM_MAX: u64 = 10_000;

fn key_list(valid: &ValidContact) -> Vec<String> {
    valid
        .identity_keys
        .iter()
        .map(|(_, key)| key.as_str().to_string())
        .collect()
}

fn no_exception(_: &str, _: &str) -> bool {
    false
}
