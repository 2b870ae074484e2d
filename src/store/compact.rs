//! Online compaction: a fresh, dense copy of the store file, built while writes go on.
//!
//! redb is copy-on-write and does not zero freed pages, so an erased record's bytes
//! survive in free space until the file is rewritten. The copy, made in key order,
//! also packs the B-tree pages that random inserts leave part empty: the writer runs
//! one after large imports for that alone. A compaction:
//! 1. on the writer thread, between two batches: notes the sequence of the last
//!    commit and starts noting every key (and multimap pair) the writer changes from
//!    then on (a [`Journal`]);
//! 2. on its own thread: copies every table into `<store>.compact` in chunks, each
//!    from a fresh read snapshot, while the writer keeps committing to the old file;
//! 3. catches up: asks the writer for the keys changed so far plus a fresh snapshot
//!    and copies those keys again (value or absence), until a round is small;
//! 4. on the writer thread: copies the last few changed keys, records which erases
//!    the new file is free of, commits durably, renames the copy over the store file
//!    and swaps the open database. Only this step makes writes wait.
//!
//! No snapshot read holds the bytes of a contact erased before step 1, so every erase
//! up to that sequence is scrubbed from the store file; later erases wait for the
//! next compaction. A crash at any point leaves either the old file
//! (and a stray `.compact` file, removed at open) or the complete new one.
//!
//! A **backup** (`POST /v1/admin/snapshot`) is the same copy into a file elsewhere
//! whose step 4 copies the last keys and stops there: the copy holds exactly the
//! store as of that moment, and the live file is left alone.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::time::Instant;

use redb::{
    Database, Key, MultimapTableDefinition, MultimapTableHandle, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition, TableHandle, Value, WriteTransaction,
};

use super::StoreError;
use super::tables::*;
use super::tracked::Journal;

/// Entries copied per transaction of the first pass. Each commits durably: redb
/// reuses the pages a transaction frees only after a durable commit, so a chain of
/// non-durable ones grows the file (a 1M-contact copy reached twice the store's size).
const COPY_CHUNK: usize = 5_000;
/// A catch-up round this small is the last one off the writer thread; the writer
/// copies what changed after it.
const FINAL_ROUND_KEYS: usize = 2_000;
/// Catch-up rounds before handing over whatever is left (under a write rate that
/// outruns the copy, the last round is larger but the compaction still ends).
const MAX_ROUNDS: usize = 16;

/// What the compactor thread asks of the writer.
pub(super) enum Request {
    /// Hand over the keys changed since the last hand-over and a snapshot taken
    /// after the last commit.
    CatchUp(Sender<(Journal, ReadTransaction)>),
    /// The copy is complete up to the last hand-over: finish on the writer thread.
    Finish(Database),
    Failed(StoreError),
}

/// The path of the copy under construction.
pub(super) fn copy_path(store: &Path) -> PathBuf {
    store.with_extension("redb.compact")
}

/// Removes a copy left by a compaction that did not finish (crash or failure).
pub(super) fn remove_stray_copy(store: &Path) -> Result<(), StoreError> {
    remove_if_present(&copy_path(store))
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io(error)),
        _ => Ok(()),
    }
}

/// Runs steps 2 and 3 on a new thread; every outcome arrives as a [`Request`]
/// through `ask` (the writer's queue).
pub(super) fn start(
    live: Arc<Database>,
    target: PathBuf,
    cache_bytes: usize,
    ask: impl Fn(Request) -> bool + Send + 'static,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("store-compactor".into())
        .spawn(move || {
            crate::background::lower_current_thread();
            let started = Instant::now();
            match build_copy(&live, &target, cache_bytes, &ask) {
                Ok(Some(copy)) => {
                    tracing::info!(
                        seconds = started.elapsed().as_secs_f64(),
                        "store copy built; swapping it in"
                    );
                    ask(Request::Finish(copy));
                }
                // The writer is gone (shutdown): the stray copy is removed at open.
                Ok(None) => {}
                Err(error) => {
                    ask(Request::Failed(error));
                }
            }
        })
        .map_err(io)?;
    Ok(())
}

fn build_copy(
    live: &Database,
    target: &Path,
    cache_bytes: usize,
    ask: &impl Fn(Request) -> bool,
) -> Result<Option<Database>, StoreError> {
    let started = Instant::now();
    remove_if_present(target)?;
    let copy = Database::builder()
        .set_cache_size(cache_bytes)
        .create(target)?;
    copy_all(live, &copy, COPY_CHUNK)?;
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "snapshot copied"
    );
    for _ in 0..MAX_ROUNDS {
        let (reply, answer) = channel();
        if !ask(Request::CatchUp(reply)) {
            return Ok(None);
        }
        let Ok((journal, snapshot)) = answer.recv() else {
            return Ok(None);
        };
        let keys = journal.len();
        let round_started = Instant::now();
        // Any snapshot from the hand-over on holds these keys as of then or later;
        // later changes are in the next journal.
        drop(snapshot);
        apply_journal(Source::Fresh(live), &copy, &journal, true)?;
        tracing::debug!(
            keys,
            ms = round_started.elapsed().as_secs_f64() * 1e3,
            "catch-up round copied"
        );
        if keys <= FINAL_ROUND_KEYS {
            break;
        }
    }
    Ok(Some(copy))
}

/// Step 4, on the writer thread: `source` is the live database (nothing can commit
/// to it meanwhile), `journal` the keys changed since the last hand-over, and
/// `snapshot_seq` the sequence of the copied snapshot.
pub(super) fn finish(
    source: &Database,
    copy: Database,
    journal: &Journal,
    snapshot_seq: u64,
    store_path: &Path,
) -> Result<Database, StoreError> {
    let started = Instant::now();
    {
        let latest = source.begin_read()?;
        // Not paced: every write waits for this step.
        apply_journal(Source::Fixed(&latest), &copy, journal, false)?;
        let txn = copy.begin_write()?;
        tracing::debug!(
            keys = journal.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "last keys copied"
        );
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(SCRUBBED_STORE, snapshot_seq)?;
            let index_mark = meta.get(SCRUBBED_INDEX)?.map_or(0, |v| v.value());
            let mut scrubs = txn.open_table(SCRUBS)?;
            scrubs.retain_in(..=snapshot_seq.min(index_mark), |_, _| false)?;
        }
        txn.commit()?;
    }
    tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "copy committed");
    std::fs::rename(copy_path(store_path), store_path).map_err(io)?;
    if let Some(dir) = store_path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(copy)
}

/// Step 4 of a backup, on the writer thread: copies the keys changed since the last
/// hand-over from `source` (nothing commits to it meanwhile) into `copy`. Returns the
/// sequence the backup holds.
pub(super) fn finish_backup(
    source: &Database,
    copy: &Database,
    journal: &Journal,
) -> Result<u64, StoreError> {
    let latest = source.begin_read()?;
    apply_journal(Source::Fixed(&latest), copy, journal, false)?;
    super::read::last_seq(&latest)
}

/// Closes a complete backup and syncs its directory. redb's close records the
/// allocator state with fsyncs (about 0.8 s at 1M contacts): off the writer thread.
pub(super) fn close_backup(copy: Database, target: &Path) -> Result<(), StoreError> {
    drop(copy);
    if let Some(dir) = target.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// Commits a chunk of the copy durably; when `paced`, then leaves the disk to the live
/// writer for as long as the commit held it (a copy committing back to back kept the
/// writer's own fsyncs waiting).
fn commit_chunk(txn: WriteTransaction, paced: bool) -> Result<(), StoreError> {
    let committing = Instant::now();
    txn.commit()?;
    if paced {
        std::thread::sleep(committing.elapsed());
    }
    Ok(())
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::Storage(redb::Error::Io(error))
}

/// Calls `$each!(table_definition)` for every table (plain and multimap apart).
macro_rules! each_table {
    ($plain:expr, $multi:expr) => {{
        $plain(CONTACTS)?;
        $plain(IDENTITY_CLAIMS)?;
        $multi(HELD_IDENTITIES)?;
        $plain(NAME_CLAIMS)?;
        $plain(EXTERNAL_IDS)?;
        $plain(COMPANIES)?;
        $multi(COMPANY_CONTACTS)?;
        $plain(CUSTOM_FIELDS)?;
        $plain(RECORD_DICTIONARIES)?;
        $plain(MERGES)?;
        $plain(TRASH)?;
        $plain(INBOXES)?;
        $plain(CHANGES)?;
        $plain(META)?;
        $plain(SCRUBS)?;
        $plain(TASKS)?;
        $plain(JOBS)?;
    }};
}

/// Copies every table of `live` into `target`, `chunk` entries per transaction.
fn copy_all(live: &Database, target: &Database, chunk: usize) -> Result<(), StoreError> {
    ensure_created(target)?;
    each_table!(|def| copy_table(live, target, def, chunk), |def| {
        copy_multimap(live, target, def, chunk)
    });
    Ok(())
}

/// Where a catch-up reads the changed keys from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// A fresh snapshot of the live database per chunk (rounds off the writer thread:
    /// a snapshot held through a whole round made the writer's next commit free the
    /// pages of those seconds at once, a 0.2 s stall).
    Fresh(&'a Database),
    /// This snapshot (the final step: nothing commits meanwhile).
    Fixed(&'a ReadTransaction),
}

/// Runs `read` on a snapshot of `source`.
fn with_snapshot<T>(
    source: Source<'_>,
    read: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match source {
        Source::Fixed(snapshot) => read(snapshot),
        Source::Fresh(live) => read(&live.begin_read()?),
    }
}

/// Copies the keys changed since the last hand-over, each in its state in `source`,
/// in durable chunks (one large commit of a catch-up round made the live writer's
/// fsyncs wait a quarter of a second behind it).
fn apply_journal(
    source: Source<'_>,
    target: &Database,
    journal: &Journal,
    paced: bool,
) -> Result<(), StoreError> {
    each_table!(
        |def| catch_up_table(source, target, def, journal, paced),
        |def| {
            catch_up_multimap(source, target, def, journal, paced)?;
            catch_up_pairs(target, def, journal, paced)
        }
    );
    Ok(())
}

/// The keys after `last` (redb's bytes of the last key copied), or every key.
fn keys_after<K: Key + 'static>(
    last: &Option<Vec<u8>>,
) -> (Bound<K::SelfType<'_>>, Bound<K::SelfType<'_>>) {
    match last {
        Some(last) => (Bound::Excluded(K::from_bytes(last)), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// Copies a table chunk by chunk, each chunk from a fresh snapshot of `live`, resuming
/// after the last key copied. Fresh snapshots are as good as the first one: every key
/// changed since the compaction began is in the journal and is copied again from a
/// later snapshot, and a key not in it holds the same value in every snapshot since.
/// They let redb reuse the pages the writer frees meanwhile, where one long snapshot
/// made the first commit after the copy free 40 s worth of pages at once.
fn copy_table<K: Key + 'static, V: Value + 'static>(
    live: &Database,
    target: &Database,
    def: TableDefinition<K, V>,
    chunk: usize,
) -> Result<(), StoreError> {
    let mut resume_after: Option<Vec<u8>> = None;
    loop {
        let txn = target.begin_write()?;
        let mut copied = 0;
        // The live snapshot ends with this block, before the copy's durable commit and
        // its pause: redb frees no page while a snapshot that could read it is alive.
        {
            let snapshot = live.begin_read()?;
            let from = snapshot.open_table(def)?;
            let entries = from.range(keys_after::<K>(&resume_after))?;
            let mut to = txn.open_table(def)?;
            let mut last = None;
            for entry in entries.take(chunk) {
                let (key, value) = entry?;
                to.insert(key.value(), value.value())?;
                last = Some(key);
                copied += 1;
            }
            if let Some(key) = last {
                resume_after = Some(K::as_bytes(&key.value()).as_ref().to_vec());
            }
        }
        commit_chunk(txn, true)?;
        if copied < chunk {
            return Ok(());
        }
    }
}

/// Copies a multimap table like [`copy_table`], a chunk ending after a whole key.
fn copy_multimap<K: Key + 'static, V: Key + 'static>(
    live: &Database,
    target: &Database,
    def: MultimapTableDefinition<K, V>,
    chunk: usize,
) -> Result<(), StoreError> {
    let mut resume_after: Option<Vec<u8>> = None;
    loop {
        let txn = target.begin_write()?;
        let mut copied = 0;
        let mut exhausted = true;
        // As in `copy_table`, the live snapshot ends before the commit.
        {
            let snapshot = live.begin_read()?;
            let from = snapshot.open_multimap_table(def)?;
            let entries = from.range(keys_after::<K>(&resume_after))?;
            let mut to = txn.open_multimap_table(def)?;
            for entry in entries {
                let (key, values) = entry?;
                for value in values {
                    to.insert(key.value(), value?.value())?;
                    copied += 1;
                }
                if copied >= chunk {
                    resume_after = Some(K::as_bytes(&key.value()).as_ref().to_vec());
                    exhausted = false;
                    break;
                }
            }
        }
        commit_chunk(txn, true)?;
        if exhausted {
            return Ok(());
        }
    }
}

fn catch_up_table<K: Key + 'static, V: Value + 'static>(
    source: Source<'_>,
    target: &Database,
    def: TableDefinition<K, V>,
    journal: &Journal,
    paced: bool,
) -> Result<(), StoreError> {
    let Some(keys) = journal.keys(def.name()) else {
        return Ok(());
    };
    let keys: Vec<&Vec<u8>> = keys.iter().collect();
    for chunk in keys.chunks(COPY_CHUNK) {
        let txn = target.begin_write()?;
        with_snapshot(source, |snapshot| {
            let from = snapshot.open_table(def)?;
            let mut to = txn.open_table(def)?;
            for bytes in chunk {
                match from.get(K::from_bytes(bytes))? {
                    Some(value) => to.insert(K::from_bytes(bytes), value.value())?,
                    None => to.remove(K::from_bytes(bytes))?,
                };
            }
            Ok(())
        })?;
        commit_chunk(txn, paced)?;
    }
    Ok(())
}

fn catch_up_multimap<K: Key + 'static, V: Key + 'static>(
    source: Source<'_>,
    target: &Database,
    def: MultimapTableDefinition<K, V>,
    journal: &Journal,
    paced: bool,
) -> Result<(), StoreError> {
    let Some(keys) = journal.keys(def.name()) else {
        return Ok(());
    };
    let keys: Vec<&Vec<u8>> = keys.iter().collect();
    for chunk in keys.chunks(COPY_CHUNK) {
        let txn = target.begin_write()?;
        with_snapshot(source, |snapshot| {
            let from = snapshot.open_multimap_table(def)?;
            let mut to = txn.open_multimap_table(def)?;
            for bytes in chunk {
                to.remove_all(K::from_bytes(bytes))?;
                for value in from.get(K::from_bytes(bytes))? {
                    to.insert(K::from_bytes(bytes), value?.value())?;
                }
            }
            Ok(())
        })?;
        commit_chunk(txn, paced)?;
    }
    Ok(())
}

/// Applies the multimap pairs noted since the last round, each in its last state;
/// keys copied whole (above) already hold their snapshot state.
fn catch_up_pairs<K: Key + 'static, V: Key + 'static>(
    target: &Database,
    def: MultimapTableDefinition<K, V>,
    journal: &Journal,
    paced: bool,
) -> Result<(), StoreError> {
    let Some(pairs) = journal.pairs(def.name()) else {
        return Ok(());
    };
    let whole = journal.keys(def.name());
    let pairs: Vec<_> = pairs
        .iter()
        .filter(|((key, _), _)| !whole.is_some_and(|whole| whole.contains(key)))
        .collect();
    for chunk in pairs.chunks(COPY_CHUNK) {
        let txn = target.begin_write()?;
        {
            let mut to = txn.open_multimap_table(def)?;
            for ((key, value), present) in chunk {
                if **present {
                    to.insert(K::from_bytes(key), V::from_bytes(value))?;
                } else {
                    to.remove(K::from_bytes(key), V::from_bytes(value))?;
                }
            }
        }
        commit_chunk(txn, paced)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableMultimapTable;

    /// The contacts and company links, entry by entry, for comparing two files.
    fn dump(db: &Database) -> Vec<(String, String)> {
        let txn = db.begin_read().unwrap();
        let mut entries = Vec::new();
        for entry in txn.open_table(CONTACTS).unwrap().iter().unwrap() {
            let (id, record) = entry.unwrap();
            let record = String::from_utf8(record.value().to_vec()).unwrap();
            entries.push((id.value().to_string(), record));
        }
        for entry in txn
            .open_multimap_table(COMPANY_CONTACTS)
            .unwrap()
            .iter()
            .unwrap()
        {
            let (company, ids) = entry.unwrap();
            for id in ids {
                entries.push((company.value().to_string(), id.unwrap().value().to_string()));
            }
        }
        entries
    }

    /// The copy resumes after the last key of each chunk, in plain and multimap tables
    /// (a multimap chunk ends after a whole key, even one holding many values).
    #[test]
    fn a_chunked_copy_holds_every_entry_once() {
        let dir = tempfile::TempDir::new().unwrap();
        let live = Database::create(dir.path().join("live.redb")).unwrap();
        ensure_created(&live).unwrap();
        let txn = live.begin_write().unwrap();
        {
            let mut contacts = txn.open_table(CONTACTS).unwrap();
            let mut members = txn.open_multimap_table(COMPANY_CONTACTS).unwrap();
            for n in 0..1_000 {
                let id = format!("c{n:04}");
                contacts
                    .insert(id.as_str(), format!("record {n}").as_bytes())
                    .unwrap();
                // One company of a third of the contacts, the others of a few each.
                let company = if n % 3 == 0 {
                    "large".to_string()
                } else {
                    format!("k{}", n % 50)
                };
                members.insert(company.as_str(), id.as_str()).unwrap();
            }
        }
        txn.commit().unwrap();
        let copy = Database::create(dir.path().join("copy.redb")).unwrap();
        copy_all(&live, &copy, 7).unwrap();
        let copied = dump(&copy);
        assert_eq!(copied.len(), 2_000);
        assert_eq!(copied, dump(&live));
    }
}
