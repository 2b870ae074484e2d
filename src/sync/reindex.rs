//! Online reindex: a fresh index is built from one store snapshot beside the live one
//! while searches and indexing go on, then the sync worker catches it up on the change
//! log and swaps it in between two ticks.
//!
//! Invariants:
//! - While a rebuild runs, the change log is not trimmed (the fresh index resumes from
//!   the snapshot's sequence, older than what the live index has applied).
//! - The swap publishes the fresh index only once it has applied at least everything
//!   the live one had, so no answer after the swap is older than one before it.
//! - Searches that took the old index keep it (and its files) to their end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use super::{SyncError, SyncOptions};
use crate::index::SearchIndex;
use crate::store::Store;

/// A fresh index ready in `fresh_dir` at `seq`, for the worker to swap in; `done`
/// hears the sequence it was swapped in at.
pub(super) struct Swap {
    pub fresh_dir: PathBuf,
    pub seq: u64,
    pub done: tokio::sync::oneshot::Sender<Result<u64, String>>,
}

/// Builds fresh indexes and hands them to the sync worker.
#[derive(Clone)]
pub struct Reindexer {
    swaps: Sender<Swap>,
    /// Set while a rebuild runs: the worker does not trim the change log meanwhile.
    building: Arc<AtomicBool>,
    store: Store,
    dir: PathBuf,
    options: SyncOptions,
}

/// What the worker keeps of a [`Reindexer`].
pub(super) struct SwapRequests {
    pub swaps: Receiver<Swap>,
    pub building: Arc<AtomicBool>,
}

pub(super) fn pair(store: Store, dir: PathBuf, options: SyncOptions) -> (Reindexer, SwapRequests) {
    let (swaps, requests) = channel();
    let building = Arc::new(AtomicBool::new(false));
    (
        Reindexer {
            swaps,
            building: building.clone(),
            store,
            dir,
            options,
        },
        SwapRequests {
            swaps: requests,
            building,
        },
    )
}

impl Reindexer {
    /// Rebuilds the index from the store and swaps it in (blocking: run on a blocking
    /// thread; one at a time). `progress` hears the contacts indexed so far. Returns
    /// the sequence the fresh index was swapped in at.
    pub fn run(&self, progress: impl FnMut(u64) + Send) -> Result<u64, SyncError> {
        if self.building.swap(true, Ordering::SeqCst) {
            return Err(SyncError::Io(std::io::Error::other(
                "another reindex is running",
            )));
        }
        // At background priority: a reindex takes every core for minutes.
        let outcome = crate::background::run("reindex", || self.build_and_swap(progress))
            .map_err(SyncError::Io)
            .and_then(|outcome| outcome);
        self.building.store(false, Ordering::SeqCst);
        outcome
    }

    fn build_and_swap(&self, progress: impl FnMut(u64) + Send) -> Result<u64, SyncError> {
        let (fresh_dir, built_at, contacts) =
            super::rebuild::build_beside(&self.store, &self.dir, &self.options, progress)?;
        // Writes went on while it was built: catch up here, so the sync worker (and
        // with it write → searchable) pauses only for the last few changes.
        let seq = match catch_up(&self.store, &self.options, &fresh_dir, built_at, SWAP_GAP) {
            Ok(seq) => seq,
            Err(error) => {
                discard(&fresh_dir);
                return Err(error);
            }
        };
        tracing::info!(
            contacts,
            built_at,
            seq,
            "fresh index built and caught up; swapping it in"
        );
        let (done, answer) = tokio::sync::oneshot::channel();
        let swap = Swap {
            fresh_dir: fresh_dir.clone(),
            seq,
            done,
        };
        if self.swaps.send(swap).is_err() {
            let _ = std::fs::remove_dir_all(&fresh_dir);
            return Err(stopped());
        }
        answer
            .blocking_recv()
            .map_err(|_| stopped())?
            .map_err(|message| SyncError::Io(std::io::Error::other(message)))
    }
}

fn stopped() -> SyncError {
    SyncError::Io(std::io::Error::other(
        "the sync worker stopped before the swap",
    ))
}

/// Changes the fresh index may still lack when it is handed to the sync worker.
const SWAP_GAP: u64 = 5_000;

/// Applies the change log after `from` to the closed index in `fresh_dir` until it
/// lacks at most `gap` of the changes the store has committed, then commits and
/// closes it; returns the sequence it reached. Creations are applied as upserts: the
/// chunked scan may have seen a contact created after `from`.
pub(super) fn catch_up(
    store: &Store,
    options: &SyncOptions,
    fresh_dir: &Path,
    from: u64,
    gap: u64,
) -> Result<u64, SyncError> {
    let (index, _) = SearchIndex::open_usable(fresh_dir).map_err(std::io::Error::other)?;
    let mut updater = index.updater(options.writer_memory_bytes, options.writer_threads)?;
    let mut applied = from;
    while store.committed().get().saturating_sub(applied) > gap {
        let batch = store.changes_after(applied, options.batch_max)?;
        if batch.up_to == applied {
            match batch.held_back {
                Some(committed) => {
                    store
                        .committed()
                        .wait_past_blocking(committed, Duration::from_millis(100));
                    continue;
                }
                None => break,
            }
        }
        for change in &batch.contacts {
            match &change.contact {
                Some(contact) => updater.upsert(contact, &batch.context)?,
                None => updater.remove(&change.id),
            }
        }
        applied = batch.up_to;
    }
    updater.commit(applied)?;
    updater.wait_merging_threads()?;
    Ok(applied)
}

/// Removes a fresh index that will not be swapped in.
pub(super) fn discard(fresh_dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(fresh_dir) {
        tracing::warn!(%error, dir = %fresh_dir.display(), "cannot remove an unused fresh index");
    }
}
