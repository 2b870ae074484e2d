//! Tables that remember which keys a transaction changed.
//!
//! While an online compaction copies a read snapshot into a new file, the writer keeps
//! committing to the old one. Every table of [`super::ops::TxnTables`] is a [`Tracked`]
//! table: it derefs to the redb table for reads, and its mutating methods note the key
//! before changing it. The writer folds the noted keys into a [`Journal`], and the
//! compactor copies those keys again (value or absence) from a later snapshot. Only
//! `Deref` is implemented, never `DerefMut`, so a mutation that bypasses the journal
//! does not compile.
//!
//! A multimap insert or remove notes the pair and whether it is now present, not the
//! key: a key such as a common name holds thousands of values, and copying them all
//! again for each new holder made the catch-up slower than the writes. The last note
//! of a pair is its state once the transaction commits; a commit that fails after its
//! notes were journaled fails the running compaction (see the writer). `remove_all`
//! notes the whole key, which is copied again from the snapshot instead.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use redb::{AccessGuard, Key, MultimapTable, ReadableTable, StorageError, Table, Value};

/// A multimap pair (key bytes, value bytes) and whether it is present after the change.
pub type Pairs = BTreeMap<(Vec<u8>, Vec<u8>), bool>;

/// Keys (and multimap pairs) changed since a snapshot, by table name, as redb's bytes.
#[derive(Debug, Default)]
pub struct Journal {
    pub tables: BTreeMap<String, BTreeSet<Vec<u8>>>,
    pub pairs: BTreeMap<String, Pairs>,
}

impl Journal {
    pub fn len(&self) -> usize {
        self.tables.values().map(BTreeSet::len).sum::<usize>()
            + self.pairs.values().map(BTreeMap::len).sum::<usize>()
    }

    pub fn absorb(&mut self, table: &str, keys: BTreeSet<Vec<u8>>, pairs: Pairs) {
        if !keys.is_empty() {
            self.tables
                .entry(table.to_string())
                .or_default()
                .extend(keys);
        }
        if !pairs.is_empty() {
            // Later notes overwrite earlier ones: the last state of a pair wins.
            self.pairs
                .entry(table.to_string())
                .or_default()
                .extend(pairs);
        }
    }

    pub fn keys(&self, table: &str) -> Option<&BTreeSet<Vec<u8>>> {
        self.tables.get(table)
    }

    pub fn pairs(&self, table: &str) -> Option<&Pairs> {
        self.pairs.get(table)
    }
}

/// A redb table (or multimap table) plus the keys this transaction changed in it
/// (`None` while no compaction needs them).
pub struct Tracked<T> {
    table: T,
    name: String,
    touched: Option<BTreeSet<Vec<u8>>>,
    /// Multimap pairs changed, with their state after the change.
    touched_pairs: Option<Pairs>,
}

impl<T> Deref for Tracked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.table
    }
}

impl<T> Tracked<T> {
    pub fn new(table: T, name: &str, tracking: bool) -> Self {
        Tracked {
            table,
            name: name.to_string(),
            touched: tracking.then(BTreeSet::new),
            touched_pairs: tracking.then(BTreeMap::new),
        }
    }

    /// Moves the noted keys and pairs into `journal`.
    pub fn drain_into(&mut self, journal: &mut Journal) {
        if let (Some(touched), Some(pairs)) = (self.touched.as_mut(), self.touched_pairs.as_mut()) {
            journal.absorb(&self.name, std::mem::take(touched), std::mem::take(pairs));
        }
    }

    fn note_pair<K: Key, V: Key>(
        &mut self,
        key: &K::SelfType<'_>,
        value: &V::SelfType<'_>,
        present: bool,
    ) {
        if let Some(pairs) = self.touched_pairs.as_mut() {
            let key = K::as_bytes(key).as_ref().to_vec();
            let value = V::as_bytes(value).as_ref().to_vec();
            pairs.insert((key, value), present);
        }
    }

    fn note<K: Key>(&mut self, key: &K::SelfType<'_>) {
        if let Some(touched) = self.touched.as_mut() {
            touched.insert(K::as_bytes(key).as_ref().to_vec());
        }
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> Tracked<Table<'t, K, V>> {
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        self.note::<K>(key.borrow());
        self.table.insert(key, value)
    }

    pub fn remove<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        self.note::<K>(key.borrow());
        self.table.remove(key)
    }
}

impl<'t, K: Key + 'static, V: Key + 'static> Tracked<MultimapTable<'t, K, V>> {
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<bool, StorageError> {
        self.note_pair::<K, V>(key.borrow(), value.borrow(), true);
        self.table.insert(key, value)
    }

    pub fn remove<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<bool, StorageError> {
        self.note_pair::<K, V>(key.borrow(), value.borrow(), false);
        self.table.remove(key, value)
    }

    pub fn remove_all<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<(), StorageError> {
        self.note::<K>(key.borrow());
        self.table.remove_all(key)?;
        Ok(())
    }
}

impl<'t> Tracked<Table<'t, u64, &'static str>> {
    /// Removes every entry with a key up to `last` (change-log trimming).
    pub fn remove_through(&mut self, last: u64) -> Result<(), StorageError> {
        if self.touched.is_some() {
            let mut keys = Vec::new();
            for entry in self.table.range(..=last)? {
                keys.push(entry?.0.value());
            }
            for key in keys {
                self.note::<u64>(&key);
            }
        }
        self.table.retain_in(..=last, |_, _| false)
    }
}
