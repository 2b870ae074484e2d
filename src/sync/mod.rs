//! Sync: the only module that sees both the store and the index.
//!
//! Invariants:
//! - The index commit payload holds the last change-log sequence whose effects the
//!   commit contains; changes are re-read from the log after it, so a restart resumes
//!   exactly and re-applying a change is harmless (delete by id + add).
//! - The store trims the log only up to a sequence the index has durably committed.
//! - An index that is missing, unreadable, of another schema version, or older than
//!   the oldest retained log entry is rebuilt from a store snapshot and swapped in.
//! - `POST /v1/admin/reindex` rebuilds it while the server runs ([`reindex`]).

mod rebuild;
mod reindex;
mod worker;

pub use rebuild::{open_index, rebuild};
pub use reindex::Reindexer;
pub use worker::{SyncHealth, SyncWorker, Tick};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::index::IndexError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("the sync batch panicked: {0}")]
    Panicked(String),
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Most change-log entries applied in one index commit.
    pub batch_max: usize,
    /// Pause after new changes arrive, so a burst lands in one commit.
    pub batch_delay: Duration,
    pub writer_memory_bytes: usize,
    pub writer_threads: usize,
}

/// The running worker thread.
pub struct SyncHandle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SyncHandle {
    pub fn spawn(worker: SyncWorker) -> std::io::Result<SyncHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("sync-worker".into())
                .spawn(move || worker.run(&stop))?
        };
        Ok(SyncHandle { stop, thread })
    }

    /// Asks the worker to apply what is committed, then stop; waits for it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.thread.join().is_err() {
            tracing::error!("sync worker panicked");
        }
    }
}
