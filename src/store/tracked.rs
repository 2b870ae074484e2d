//! Tables that remember which keys a transaction changed.
//!
//! While an online compaction copies a read snapshot into a new file, the writer keeps
//! committing to the old one. Every table of [`super::ops::TxnTables`] is a [`Tracked`]
//! table: it derefs to the redb table for reads, and its mutating methods note the key
//! before changing it. The writer folds the noted keys into a [`Journal`], and the
//! compactor copies those keys again (value or absence) from a later snapshot. Only
//! `Deref` is implemented, never `DerefMut`, so a mutation that bypasses the journal
//! does not compile.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use redb::{AccessGuard, Key, MultimapTable, ReadableTable, StorageError, Table, Value};

/// Keys changed since a snapshot, by table name, as redb's key bytes.
#[derive(Debug, Default)]
pub struct Journal {
    pub tables: BTreeMap<String, BTreeSet<Vec<u8>>>,
}

impl Journal {
    pub fn len(&self) -> usize {
        self.tables.values().map(BTreeSet::len).sum()
    }

    pub fn absorb(&mut self, table: &str, keys: BTreeSet<Vec<u8>>) {
        if keys.is_empty() {
            return;
        }
        match self.tables.get_mut(table) {
            Some(known) => known.extend(keys),
            None => {
                self.tables.insert(table.to_string(), keys);
            }
        }
    }

    pub fn keys(&self, table: &str) -> Option<&BTreeSet<Vec<u8>>> {
        self.tables.get(table)
    }
}

/// A redb table (or multimap table) plus the keys this transaction changed in it
/// (`None` while no compaction needs them).
pub struct Tracked<T> {
    table: T,
    name: String,
    touched: Option<BTreeSet<Vec<u8>>>,
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
        }
    }

    /// Moves the noted keys into `journal`.
    pub fn drain_into(&mut self, journal: &mut Journal) {
        if let Some(touched) = self.touched.as_mut() {
            journal.absorb(&self.name, std::mem::take(touched));
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
        self.note::<K>(key.borrow());
        self.table.insert(key, value)
    }

    pub fn remove<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<bool, StorageError> {
        self.note::<K>(key.borrow());
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
