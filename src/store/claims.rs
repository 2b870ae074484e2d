//! The claim tables: which active contacts hold an identity key
//! ([`IDENTITY_CLAIMS`]) and, for `unique_name`, a folded name ([`NAME_CLAIMS`]).
//!
//! A claim is one row keyed `(claim hash, contact id)`, with no value:
//! - the claim hash is SipHash-1-3 of the claim's text (`channel` U+001F normalized
//!   value, or the folded name) under a fixed key: 8 bytes instead of the text's 25
//!   on average;
//! - the contact id is its ULID's 128 bits instead of its 26 characters.
//!
//! At 1M contacts the 2.4M identity claims took 164 MiB of pages as a multimap of
//! texts and take 56 MiB as these rows (BENCHMARKS.md, "Claims keyed by hash").
//!
//! Invariant: a row `(h, id)` exists exactly when contact `id` is active and holds at
//! least one claim whose text hashes to `h`. Two texts may share a hash, so a row says
//! only that the contact *may* hold a claim: every lookup checks each candidate's
//! record (the claims it carries, or its folded name) before counting it, and a
//! contact's rows are added and removed by hash set, so a collision between two of
//! its own claims never drops a row the other still needs. The hash key is fixed
//! (the file stays readable by any build): finding a text that collides with a
//! chosen victim's would take about 2^64 tries, and a collision found by chance only
//! costs one more record read.

use std::collections::BTreeSet;
use std::hash::Hasher;

use redb::{
    Database, MultimapTableDefinition, MultimapTableHandle, ReadableMultimapTable, ReadableTable,
    TableDefinition,
};

use super::StoreError;
use super::record::{self, Dictionaries};

/// Identity claims of active contacts (see the module docs).
pub const IDENTITY_CLAIMS: TableDefinition<(u64, u128), ()> =
    TableDefinition::new("identity_claims");
/// Folded names of active contacts, for `unique_name` (see the module docs).
pub const NAME_CLAIMS: TableDefinition<(u64, u128), ()> = TableDefinition::new("name_claims");

/// The tables these replaced (text keys, text ids); converted at open by [`migrate`].
pub(super) const LEGACY_IDENTITIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("identities");
pub(super) const LEGACY_NAMES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("names");

/// The fixed SipHash key of claim hashes. Changing it makes every stored claim
/// unfindable: never change it.
const HASH_KEY: (u64, u64) = (0x636f_6e74_6163_7464, 0x636c_6169_6d73_0001);

/// The hash a claim text is stored under.
pub fn claim_hash(text: &str) -> u64 {
    let mut hasher = siphasher::sip::SipHasher13::new_with_keys(HASH_KEY.0, HASH_KEY.1);
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// The hashes of a contact's claim texts, each once.
pub fn claim_hashes<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeSet<u64> {
    texts.into_iter().map(claim_hash).collect()
}

/// A contact id as stored in a claim row: its ULID's bits. Every id the store assigns
/// is a ULID in canonical text; anything else is refused before it is stored
/// ([`check_id`]), so here it means a damaged store.
pub fn id_bits(id: &str) -> Result<u128, StoreError> {
    parse_id(id).ok_or_else(|| StoreError::Corrupt(format!("contact id {id:?} is not a ULID")))
}

/// Refuses an id that is not a ULID in canonical text (a dump's ids are checked).
pub fn check_id(id: &str) -> Result<(), StoreError> {
    match parse_id(id) {
        Some(_) => Ok(()),
        None => Err(StoreError::BadRequest(format!(
            "contact id {id:?} is not a ULID in upper case (26 characters)"
        ))),
    }
}

fn parse_id(id: &str) -> Option<u128> {
    let ulid = ulid::Ulid::from_string(id).ok()?;
    (ulid.to_string() == id).then_some(ulid.0)
}

/// The text of an id read from a claim row.
pub fn id_text(bits: u128) -> String {
    ulid::Ulid(bits).to_string()
}

/// The contacts with a row under `text`'s hash, in id order: candidates to check.
pub fn candidates(
    table: &impl ReadableTable<(u64, u128), ()>,
    text: &str,
) -> Result<Vec<String>, StoreError> {
    let hash = claim_hash(text);
    let mut ids = Vec::new();
    for entry in table.range((hash, 0)..=(hash, u128::MAX))? {
        ids.push(id_text(entry?.0.value().1));
    }
    Ok(ids)
}

/// The identity keys a stored contact holds.
#[derive(Debug, Default)]
pub struct HeldKeys {
    pub keys: Vec<String>,
    /// Read from `held_identities`: the record predates format 3, whose records carry
    /// their claims.
    pub legacy: bool,
}

/// The identity keys contact `id` holds: from its record, or for a record older than
/// format 3 from `held_identities`. Nothing for a contact that is not stored.
pub fn held_keys(
    contacts: &impl ReadableTable<&'static str, &'static [u8]>,
    held: &impl ReadableMultimapTable<&'static str, &'static str>,
    dictionaries: &dyn Dictionaries,
    id: &str,
) -> Result<HeldKeys, StoreError> {
    let Some(bytes) = contacts.get(id)? else {
        return Ok(HeldKeys::default());
    };
    if let Some(keys) = record::decode_claims(bytes.value(), dictionaries)? {
        return Ok(HeldKeys {
            keys,
            legacy: false,
        });
    }
    let mut keys = Vec::new();
    for key in held.get(id)? {
        keys.push(key?.value().to_string());
    }
    Ok(HeldKeys { keys, legacy: true })
}

/// The first candidate under `key` that holds it.
pub fn identity_holder(
    claims: &impl ReadableTable<(u64, u128), ()>,
    contacts: &impl ReadableTable<&'static str, &'static [u8]>,
    held: &impl ReadableMultimapTable<&'static str, &'static str>,
    dictionaries: &dyn Dictionaries,
    key: &str,
) -> Result<Option<String>, StoreError> {
    for candidate in candidates(claims, key)? {
        if held_keys(contacts, held, dictionaries, &candidate)?
            .keys
            .iter()
            .any(|held| held == key)
        {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// What [`migrate`] converted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    pub identity_claims: u64,
    pub name_claims: u64,
}

/// Converts the claim tables of an earlier version (a multimap of text keys to text
/// ids) into claim rows, in one transaction, and deletes them. Runs at open, before
/// the writer starts; a store without them is left as it is.
pub fn migrate(db: &Database) -> Result<Migrated, StoreError> {
    let txn = db.begin_write()?;
    let present: Vec<String> = txn
        .list_multimap_tables()?
        .map(|table| table.name().to_string())
        .collect();
    let mut migrated = Migrated::default();
    for (legacy, claims, count) in [
        (
            LEGACY_IDENTITIES,
            IDENTITY_CLAIMS,
            &mut migrated.identity_claims,
        ),
        (LEGACY_NAMES, NAME_CLAIMS, &mut migrated.name_claims),
    ] {
        if !present.iter().any(|name| name == legacy.name()) {
            continue;
        }
        let mut rows = Vec::new();
        {
            let table = txn.open_multimap_table(legacy)?;
            for entry in table.iter()? {
                let (text, ids) = entry?;
                let hash = claim_hash(text.value());
                for id in ids {
                    rows.push((hash, id_bits(id?.value())?));
                }
            }
        }
        // In key order, so the new table's pages fill as a packed copy's do.
        rows.sort_unstable();
        let mut table = txn.open_table(claims)?;
        for row in &rows {
            table.insert(row, ())?;
        }
        *count = rows.len() as u64;
        drop(table);
        txn.delete_multimap_table(legacy)?;
    }
    txn.commit()?;
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_only_canonical_ulids_are_ids() {
        let id = ulid::Ulid::generate().to_string();
        assert_eq!(id_text(id_bits(&id).unwrap()), id);
        for bad in ["", "c0001", &id.to_lowercase(), &format!("{id}0")] {
            assert!(check_id(bad).is_err(), "{bad:?}");
            assert!(id_bits(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn claim_hashes_are_stable() {
        // Stored hashes must never change between builds.
        assert_eq!(claim_hash("email\u{1f}a@b.example"), 0x71a5_852c_cac6_655c);
        assert_ne!(claim_hash("a"), claim_hash("b"));
    }
}
