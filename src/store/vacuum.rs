//! Rewriting the store file by copy.
//!
//! redb is copy-on-write and does not zero freed pages, so after an erase the old
//! record's bytes may survive in free space. Rewriting the live data into a new file
//! and renaming it over the old one leaves no copy in the store file. It runs on the
//! writer thread (writes wait meanwhile) and only after a batch that erased a contact.

use std::path::Path;
use std::time::Instant;

use redb::{
    Database, MultimapTableDefinition, ReadTransaction, ReadableDatabase, ReadableMultimapTable,
    ReadableTable, TableDefinition, WriteTransaction,
};

use super::StoreError;
use super::tables::*;

/// Copies every table of `db` into a new file that replaces `path`; returns the new
/// database (the old handle keeps serving readers until they drop it).
pub(super) fn rewrite(
    db: &Database,
    path: &Path,
    cache_bytes: usize,
) -> Result<Database, StoreError> {
    let started = Instant::now();
    let fresh_path = path.with_extension("redb.rewrite");
    let _ = std::fs::remove_file(&fresh_path);
    let fresh = Database::builder()
        .set_cache_size(cache_bytes)
        .create(&fresh_path)?;
    let source = db.begin_read()?;
    let target = fresh.begin_write()?;
    copy(&source, &target, CONTACTS)?;
    copy_multimap(&source, &target, IDENTITIES)?;
    copy_multimap(&source, &target, HELD_IDENTITIES)?;
    copy_multimap(&source, &target, NAMES)?;
    copy(&source, &target, EXTERNAL_IDS)?;
    copy(&source, &target, COMPANIES)?;
    copy_multimap(&source, &target, COMPANY_CONTACTS)?;
    copy(&source, &target, CUSTOM_FIELDS)?;
    copy(&source, &target, MERGES)?;
    copy(&source, &target, TRASH)?;
    copy(&source, &target, INBOXES)?;
    copy(&source, &target, CHANGES)?;
    copy(&source, &target, META)?;
    target.commit()?;
    drop(source);
    std::fs::rename(&fresh_path, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "store file rewritten after an erase"
    );
    Ok(fresh)
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::Storage(redb::Error::Io(error))
}

fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    source: &ReadTransaction,
    target: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let from = source.open_table(table)?;
    let mut to = target.open_table(table)?;
    for entry in from.iter()? {
        let (key, value) = entry?;
        to.insert(key.value(), value.value())?;
    }
    Ok(())
}

fn copy_multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
    source: &ReadTransaction,
    target: &WriteTransaction,
    table: MultimapTableDefinition<K, V>,
) -> Result<(), StoreError> {
    let from = source.open_multimap_table(table)?;
    let mut to = target.open_multimap_table(table)?;
    for entry in from.iter()? {
        let (key, values) = entry?;
        for value in values {
            to.insert(key.value(), value?.value())?;
        }
    }
    Ok(())
}
