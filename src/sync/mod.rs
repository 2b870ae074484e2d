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
    /// The live index writer's indexing budget (shared by its threads).
    pub writer_memory_bytes: usize,
    /// A rebuild's indexing budget: each thread's share becomes a segment when full,
    /// so at 2 GiB a 1M rebuild writes two segments and needs no merge at all.
    pub rebuild_memory_bytes: usize,
    pub writer_threads: usize,
    /// How often the live index's files are synced; zero syncs at every commit
    /// (see `index::directory`).
    pub index_sync_every: Duration,
}

/// The running worker thread.
pub struct SyncHandle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SyncHandle {
    /// Starts the worker thread at background priority (see [`crate::background`]);
    /// `build` runs on it, so the tantivy writer's indexing and merge threads it
    /// creates run at that priority too. Returns once the worker is built.
    pub fn spawn(
        build: impl FnOnce() -> Result<SyncWorker, SyncError> + Send + 'static,
    ) -> Result<(SyncHandle, Arc<SyncHealth>, Reindexer), SyncError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (built_tx, built_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("sync-worker".into())
                .spawn(move || {
                    crate::background::lower_current_thread();
                    let worker = match build() {
                        Ok(worker) => worker,
                        Err(error) => {
                            let _ = built_tx.send(Err(error));
                            return;
                        }
                    };
                    let _ = built_tx.send(Ok((worker.health(), worker.reindexer())));
                    worker.run(&stop)
                })?
        };
        match built_rx.recv() {
            Ok(Ok((health, reindexer))) => Ok((SyncHandle { stop, thread }, health, reindexer)),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(SyncError::Panicked(
                    "the sync worker panicked while starting".into(),
                ))
            }
        }
    }

    /// Asks the worker to apply what is committed, then stop; waits for it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.thread.join().is_err() {
            tracing::error!("sync worker panicked");
        }
    }
}
