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

use super::{SyncError, SyncOptions};
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
    pub fn run(&self, progress: impl FnMut(u64)) -> Result<u64, SyncError> {
        if self.building.swap(true, Ordering::SeqCst) {
            return Err(SyncError::Io(std::io::Error::other(
                "another reindex is running",
            )));
        }
        let outcome = self.build_and_swap(progress);
        self.building.store(false, Ordering::SeqCst);
        outcome
    }

    fn build_and_swap(&self, progress: impl FnMut(u64)) -> Result<u64, SyncError> {
        let (fresh_dir, seq, contacts) =
            super::rebuild::build_beside(&self.store, &self.dir, &self.options, progress)?;
        tracing::info!(
            contacts,
            seq,
            "fresh index built; handing it to the sync worker"
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

/// Removes a fresh index that will not be swapped in.
pub(super) fn discard(fresh_dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(fresh_dir) {
        tracing::warn!(%error, dir = %fresh_dir.display(), "cannot remove an unused fresh index");
    }
}
