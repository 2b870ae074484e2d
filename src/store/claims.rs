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

impl HeldKeys {
    /// Whether `key` is one of them (a claim row only says the contact may hold it).
    pub fn holds(&self, key: &str) -> bool {
        self.keys.iter().any(|held| held == key)
    }
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
        if held_keys(contacts, held, dictionaries, &candidate)?.holds(key) {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Rows [`migrate`] sorts and inserts at a time (32 MiB): sorted runs fill pages
/// better than hash order, and a 10M store's 34M claims need not be held at once.
const MIGRATION_BATCH: usize = 1 << 20;

/// Inserts `rows` in key order and empties it; how many there were.
fn insert_sorted(
    table: &mut redb::Table<'_, (u64, u128), ()>,
    rows: &mut Vec<(u64, u128)>,
) -> Result<u64, StoreError> {
    rows.sort_unstable();
    for row in rows.iter() {
        table.insert(row, ())?;
    }
    let inserted = rows.len() as u64;
    rows.clear();
    Ok(inserted)
}

/// What [`migrate`] converted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    pub identity_claims: u64,
    pub name_claims: u64,
}

/// Converts the claim tables of an earlier version (a multimap of text keys to text
/// ids) into claim rows, in one transaction, and deletes them. Runs at open, before
/// the writer starts; a store without them is left as it is. The converted store is
/// packed afterwards (the writer counts the rows like a load's).
pub fn migrate(db: &Database) -> Result<Migrated, StoreError> {
    migrate_in_batches(db, MIGRATION_BATCH)
}

fn migrate_in_batches(db: &Database, batch: usize) -> Result<Migrated, StoreError> {
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
        {
            let legacy_table = txn.open_multimap_table(legacy)?;
            let mut table = txn.open_table(claims)?;
            let mut rows = Vec::new();
            for entry in legacy_table.iter()? {
                let (text, ids) = entry?;
                let hash = claim_hash(text.value());
                for id in ids {
                    rows.push((hash, id_bits(id?.value())?));
                }
                if rows.len() >= batch {
                    *count += insert_sorted(&mut table, &mut rows)?;
                }
            }
            *count += insert_sorted(&mut table, &mut rows)?;
        }
        txn.delete_multimap_table(legacy)?;
    }
    txn.commit()?;
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    #[test]
    fn ids_round_trip_and_only_canonical_ulids_are_ids() {
        let id = ulid::Ulid::generate().to_string();
        assert_eq!(id_text(id_bits(&id).unwrap()), id);
        for bad in ["", "c0001", &id.to_lowercase(), &format!("{id}0")] {
            assert!(check_id(bad).is_err(), "{bad:?}");
            assert!(id_bits(bad).is_err(), "{bad:?}");
        }
    }

    /// Every claim of the earlier multimaps becomes one row, across batches, and the
    /// multimaps are gone.
    #[test]
    fn migration_converts_every_claim_in_batches() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = Database::create(dir.path().join("c.redb")).unwrap();
        let ids: Vec<String> = (0..7).map(|_| ulid::Ulid::generate().to_string()).collect();
        let txn = db.begin_write().unwrap();
        {
            let mut identities = txn.open_multimap_table(LEGACY_IDENTITIES).unwrap();
            for (n, id) in ids.iter().enumerate() {
                // Two holders of one key (`unique_identities` off), one key each else.
                let key = format!("email\u{1f}{}@claims.example", n.min(5));
                identities.insert(key.as_str(), id.as_str()).unwrap();
            }
            let mut names = txn.open_multimap_table(LEGACY_NAMES).unwrap();
            names.insert("ada", ids[0].as_str()).unwrap();
        }
        txn.commit().unwrap();

        let migrated = migrate_in_batches(&db, 2).unwrap();
        assert_eq!(
            migrated,
            Migrated {
                identity_claims: 7,
                name_claims: 1
            }
        );
        let txn = db.begin_read().unwrap();
        let claims = txn.open_table(IDENTITY_CLAIMS).unwrap();
        // Candidates come in id order (ids made in one millisecond are not).
        let mut both = vec![ids[5].clone(), ids[6].clone()];
        both.sort();
        assert_eq!(
            candidates(&claims, "email\u{1f}5@claims.example").unwrap(),
            both
        );
        for (n, id) in ids.iter().enumerate().take(5) {
            let key = format!("email\u{1f}{n}@claims.example");
            assert_eq!(candidates(&claims, &key).unwrap(), std::slice::from_ref(id));
        }
        let names = txn.open_table(NAME_CLAIMS).unwrap();
        assert_eq!(candidates(&names, "ada").unwrap(), [ids[0].clone()]);
        assert_eq!(txn.list_multimap_tables().unwrap().count(), 0);
        drop(txn);
        assert_eq!(migrate(&db).unwrap(), Migrated::default(), "once only");
    }

    #[test]
    fn claim_hashes_are_stable() {
        // Stored hashes must never change between builds.
        assert_eq!(claim_hash("email\u{1f}a@b.example"), 0x71a5_852c_cac6_655c);
        assert_ne!(claim_hash("a"), claim_hash("b"));
    }
}
