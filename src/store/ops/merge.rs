//! Merge and unmerge in the store: claims move between the two contacts, and the
//! pre-merge snapshot is kept in the `merges` table so an unmerge survives restarts.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::{TxnTables, key_list};
use crate::model::{Contact, MergeRecord, Side, Status, merge, unmerge_survivor};
use crate::store::StoreError;
use crate::store::tables::{self, pair_key};

/// A merge's outcome: the survivor as stored (or as it would be, for a dry run).
#[derive(Debug, Clone)]
pub struct Merged {
    pub survivor: Contact,
    pub other: Contact,
}

impl TxnTables<'_> {
    pub fn merge(
        &mut self,
        id: &str,
        other_id: &str,
        keep: &BTreeMap<String, Side>,
        if_match: Option<u64>,
        dry_run: bool,
    ) -> Result<(Merged, u64), StoreError> {
        if id == other_id {
            return Err(StoreError::Conflict(
                "a contact cannot be merged into itself".into(),
            ));
        }
        let this = self.load_active(id, if_match)?;
        let other = self
            .load(other_id)?
            .ok_or_else(|| StoreError::NotFound(format!("contact {other_id}")))?;
        self.check_seen(&other)?;
        if other.status != Status::Active {
            let into = other
                .merged_into
                .as_deref()
                .map(|s| format!(" into {s}"))
                .unwrap_or_default();
            return Err(StoreError::Conflict(format!(
                "contact {other_id} is {}{into} and cannot be merged",
                other.status.as_str()
            )));
        }
        let mut survivor = merge(&this, &other, keep)?;
        let valid = self.validate(survivor.to_input())?;
        let others_claim = |holder: &str, _: &str| holder == other_id;
        self.check_claims(&valid, id, &others_claim)?;
        survivor.version += 1;
        survivor.updated_at = self.now;
        survivor.refresh_computed();

        let mut absorbed = other.clone();
        absorbed.status = Status::Merged;
        absorbed.merged_into = Some(id.to_string());
        if absorbed.external_id.is_some() && absorbed.external_id == survivor.external_id {
            // The survivor took it over; it comes back on unmerge.
            absorbed.external_id = None;
        }
        absorbed.version += 1;
        absorbed.updated_at = self.now;
        // Both saves below check their contact; checked here too so that neither
        // happens when the second would be refused.
        self.check_result(&survivor)?;
        self.check_result(&absorbed)?;
        if dry_run {
            return Ok((
                Merged {
                    survivor,
                    other: absorbed,
                },
                self.last_seq(),
            ));
        }
        // The other releases its claims first, so the survivor can take them over.
        let (absorbed, _) = self.save(Some(&other), absorbed, None)?;
        let (survivor, seq) = self.save(Some(&this), survivor, Some(key_list(&valid)))?;
        let record = MergeRecord {
            survivor_before: this,
            survivor_after: survivor.clone(),
            other_before: other,
            merged_at: self.now,
        };
        self.merges.insert(
            pair_key(id, other_id).as_str(),
            tables::encode(&record).as_slice(),
        )?;
        Ok((
            Merged {
                survivor,
                other: absorbed,
            },
            seq,
        ))
    }

    pub fn unmerge(&mut self, id: &str, other_id: &str) -> Result<(Merged, u64), StoreError> {
        let current = self.load_active(id, None)?;
        let record: MergeRecord = match self.merges.get(pair_key(id, other_id).as_str())? {
            Some(bytes) => tables::decode(bytes.value())?,
            None => {
                return Err(StoreError::Conflict(format!(
                    "contact {other_id} was not merged into {id} (or was unmerged already)"
                )));
            }
        };
        let merged_other = self
            .load(other_id)?
            .ok_or_else(|| StoreError::NotFound(format!("contact {other_id}")))?;
        self.check_seen(&merged_other)?;
        if merged_other.status != Status::Merged || merged_other.merged_into.as_deref() != Some(id)
        {
            return Err(StoreError::Conflict(format!(
                "contact {other_id} is no longer merged into {id}"
            )));
        }

        let mut survivor = unmerge_survivor(&current, &record);
        survivor.version = current.version + 1;
        survivor.updated_at = self.now;
        survivor.refresh_computed();
        let survivor_valid = self.validate(survivor.to_input())?;
        let survivor_keys = key_list(&survivor_valid);

        let mut restored = record.other_before.clone();
        restored.status = Status::Active;
        restored.merged_into = None;
        restored.version = merged_other.version + 1;
        restored.updated_at = self.now;
        let restored_valid = self.validate(restored.to_input())?;
        // The survivor gives back what it no longer holds after the unmerge.
        let released =
            |holder: &str, key: &str| holder == id && !survivor_keys.iter().any(|k| k == key);
        self.check_claims(&restored_valid, other_id, &released)?;
        self.check_claims(&survivor_valid, id, &|holder, _| holder == other_id)?;
        self.check_result(&survivor)?;
        self.check_result(&restored)?;

        let (survivor, _) = self.save(Some(&current), survivor, Some(survivor_keys))?;
        let (restored, seq) = self.save(
            Some(&merged_other),
            restored,
            Some(key_list(&restored_valid)),
        )?;
        self.merges.remove(pair_key(id, other_id).as_str())?;
        Ok((
            Merged {
                survivor,
                other: restored,
            },
            seq,
        ))
    }
}
