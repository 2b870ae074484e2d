//! Opening the index at start, and rebuilding it from the store.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{SyncError, SyncOptions};
use crate::index::{IndexError, SearchIndex};
use crate::store::Store;

/// Opens the index in `dir`, or rebuilds it when it cannot resume from the store's
/// change log. Returns the index and the sequence it has applied.
pub fn open_index(
    store: &Store,
    dir: &Path,
    options: &SyncOptions,
) -> Result<(SearchIndex, u64), SyncError> {
    remove_leftovers(dir)?;
    let reason = match SearchIndex::open_usable(dir) {
        Ok((index, payload)) => {
            let store_seq = store.committed().get();
            let oldest = store.first_retained_seq()?;
            if payload.seq > store_seq {
                format!(
                    "index is at seq {} but the store only at {store_seq}",
                    payload.seq
                )
            } else if oldest.is_some_and(|oldest| oldest > payload.seq + 1) {
                format!(
                    "change log no longer holds what follows seq {}",
                    payload.seq
                )
            } else {
                return Ok((index, payload.seq));
            }
        }
        Err(reason) => reason,
    };
    tracing::info!(%reason, dir = %dir.display(), "rebuilding the index from the store");
    rebuild(store, dir, options)
}

/// Merges a rebuild runs side by side, one per core; up to 4M contacts the rebuilt
/// index ends with this many segments (larger ones are merged in rounds, see
/// [`crate::index::IndexUpdater::start_full_merge_round`]). A search walks every segment: at 1M
/// contacts two cost the mix 0.1 ms at p50 over one, while merging into one took as
/// long again as indexing.
const REBUILD_MERGE_THREADS: usize = 2;

/// Builds a fresh index from one store snapshot in a sibling directory, commits it
/// with the snapshot's sequence, and swaps it into `dir` (nothing may have `dir`
/// open: this runs at start).
pub fn rebuild(
    store: &Store,
    dir: &Path,
    options: &SyncOptions,
) -> Result<(SearchIndex, u64), SyncError> {
    let started = Instant::now();
    let (fresh_dir, seq, contacts) = build_beside(store, dir, options, |_| {})?;
    // Removed before returning: an offline `reindex` or `restore` exits right after,
    // and a thread of its own would die with the process, leaving the old index on disk.
    // The new index is in place either way: one left behind is removed at next start.
    if let Some(old_dir) = put_in_place(&fresh_dir, dir)? {
        remove_replaced(&old_dir);
    }
    let (index, payload) = SearchIndex::open_usable(dir).map_err(|reason| {
        std::io::Error::other(format!("the rebuilt index does not open: {reason}"))
    })?;
    tracing::info!(
        contacts,
        seq = payload.seq,
        seconds = started.elapsed().as_secs_f64(),
        "index rebuilt"
    );
    Ok((index, seq))
}

/// Builds a complete index of one store snapshot in a new directory beside `dir`
/// (closed when this returns); returns the directory, the snapshot's sequence and
/// the contacts indexed. `progress` hears the count every 50,000 contacts.
pub fn build_beside(
    store: &Store,
    dir: &Path,
    options: &SyncOptions,
    mut progress: impl FnMut(u64),
) -> Result<(PathBuf, u64, u64), SyncError> {
    let fresh_dir = sibling(dir, "rebuild");
    let built = (|| {
        let index = SearchIndex::create(&fresh_dir)?;
        // Each indexing thread's buffer becomes a segment when its share of the budget
        // is full, and segments are not merged while the rebuild runs (merging them as
        // they came was 40% of its CPU). What the buffers hold at the end needs no
        // merge: at 1M contacts a 3 GiB budget left two segments and the rebuild took
        // 66–70 s, against 84–88 s with 1 GiB, which left four to merge. The default is
        // 2 GiB: the threads' buffers fill together and each segment's writing needs
        // about half its buffer again, so at 10M the process peaked at 4.3 GiB with
        // 3 GiB and at 3.7 GiB with 2.5 GiB; 2 GiB still holds 1M whole.
        let mut updater = index.updater(options.rebuild_memory_bytes, options.writer_threads)?;
        updater.pause_merges(true);
        let mut contacts = 0u64;
        let seq = store.scan_chunked(|contact, context| -> Result<(), SyncError> {
            updater.add(&contact, context)?;
            contacts += 1;
            if contacts.is_multiple_of(50_000) {
                tracing::info!(contacts, "rebuilding");
                progress(contacts);
            }
            Ok(())
        })?;
        updater.commit(seq)?;
        loop {
            let round = updater.start_full_merge_round(REBUILD_MERGE_THREADS)?;
            for merge in round.merges {
                merge.wait().map_err(IndexError::from)?;
            }
            // The merged segments' files go before the next round maps its own.
            updater.collect_garbage()?;
            if !round.more {
                break;
            }
        }
        updater.wait_merging_threads()?;
        Ok::<_, SyncError>((seq, contacts))
    })();
    match built {
        Ok((seq, contacts)) => Ok((fresh_dir, seq, contacts)),
        Err(error) => {
            let _ = std::fs::remove_dir_all(&fresh_dir);
            Err(error)
        }
    }
}

/// Moves the closed index in `fresh_dir` to `dir`. What `dir` held is renamed aside
/// (its files stay readable by whoever has them open until they let go) and that
/// directory is returned for the caller to remove: at once when nothing waits, or on a
/// thread of its own when writes and searches go on (see [`remove_in_background`]).
pub fn put_in_place(fresh_dir: &Path, dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let replaced = if dir.exists() {
        let old_dir = sibling(dir, "old");
        std::fs::rename(dir, &old_dir)?;
        Some(old_dir)
    } else {
        None
    };
    std::fs::rename(fresh_dir, dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(replaced)
}

/// Removes a replaced index directory without making the caller wait for it. It is
/// only clean-up: a failure is logged, and whatever is left (also after a crash) is
/// removed by [`remove_leftovers`] at the next start.
pub fn remove_in_background(old_dir: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("index-remove-old".into())
        .spawn(move || remove_replaced(&old_dir));
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start removing a replaced index");
    }
}

/// Removes a replaced index directory; a failure is logged (clean-up only).
fn remove_replaced(old_dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(old_dir) {
        tracing::warn!(%error, dir = %old_dir.display(), "cannot remove a replaced index");
    }
}

fn sibling(dir: &Path, purpose: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.{purpose}-{}", ulid::Ulid::generate()))
}

/// Removes half-built or half-swapped directories left by a crash during a rebuild.
fn remove_leftovers(dir: &Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    if !parent.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if entry_name.starts_with(&prefix)
            && (entry_name.contains(".rebuild-") || entry_name.contains(".old-"))
        {
            tracing::info!(path = %entry.path().display(), "removing a leftover index directory");
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
