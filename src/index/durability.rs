//! The live index's deferred syncs (see [`super::directory`]): a background thread
//! makes what the commits wrote durable every interval and says through which
//! sequence the index is durable, so that the change log is trimmed no further. A
//! marker file in the index directory says that a crash may have left index files
//! unsynced; the next open then checks every file's checksum before trusting the
//! index (a damaged one is rebuilt from the store).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::directory::DeferredSyncs;
use crate::signal::SeqSignal;

/// Present in the index directory while syncs are deferred, removed once everything
/// is synced at a clean stop.
pub const UNSYNCED_MARKER: &str = "contactd-unsynced";

/// The thread syncing one index directory, and what it has made durable.
pub struct BackgroundSyncs {
    dir: PathBuf,
    deferred: Arc<DeferredSyncs>,
    indexed: Arc<SeqSignal>,
    /// The highest sequence whose commit is durable.
    durable: Arc<AtomicU64>,
    /// The thread, and what keeps it running: it ends once the sender is dropped
    /// (by [`BackgroundSyncs::finish`], or with the index). It holds nothing of the
    /// index but the set of deferred syncs.
    thread: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl BackgroundSyncs {
    /// Starts deferring the syncs of the index in `dir`, whose last commit (durable,
    /// as every commit before this) holds `indexed`'s current sequence, and syncing
    /// every `every`.
    pub fn start(
        dir: &Path,
        deferred: Arc<DeferredSyncs>,
        indexed: Arc<SeqSignal>,
        every: Duration,
    ) -> std::io::Result<BackgroundSyncs> {
        write_marker(dir)?;
        let durable = Arc::new(AtomicU64::new(indexed.get()));
        deferred.start_deferring();
        let (keep_running, stopped) = mpsc::channel::<()>();
        let thread = {
            let (deferred, indexed, durable) = (deferred.clone(), indexed.clone(), durable.clone());
            std::thread::Builder::new()
                .name("index-syncs".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                        if let Err(error) = sync_through(&deferred, &indexed, &durable) {
                            tracing::warn!(%error, "cannot sync the index files; retrying");
                        }
                    }
                })?
        };
        Ok(BackgroundSyncs {
            dir: dir.to_path_buf(),
            deferred,
            indexed,
            durable,
            thread: Mutex::new(Some((keep_running, thread))),
        })
    }

    /// The highest sequence the index holds durably (every one once finished).
    pub fn durable_through(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }

    /// Syncs what is deferred now, on the calling thread.
    pub fn sync_now(&self) -> std::io::Result<()> {
        sync_through(&self.deferred, &self.indexed, &self.durable)
    }

    /// Stops the thread, syncs everything and removes the marker: at a clean stop,
    /// and before the directory is replaced. Later writes sync as they go.
    pub fn finish(&self) -> std::io::Result<()> {
        let thread = self
            .thread
            .lock()
            .expect("thread lock is never poisoned")
            .take();
        if let Some((keep_running, thread)) = thread {
            drop(keep_running);
            let _ = thread.join();
        }
        self.deferred.stop_deferring();
        self.sync_now()?;
        remove_marker(&self.dir)?;
        self.durable.store(u64::MAX, Ordering::SeqCst);
        Ok(())
    }
}

fn sync_through(
    deferred: &DeferredSyncs,
    indexed: &SeqSignal,
    durable: &AtomicU64,
) -> std::io::Result<()> {
    // Every commit up to `seq` wrote its files and `meta.json` before publishing it.
    let seq = indexed.get();
    deferred.sync_pending()?;
    durable.fetch_max(seq, Ordering::SeqCst);
    Ok(())
}

fn write_marker(dir: &Path) -> std::io::Result<()> {
    let marker = std::fs::File::create(dir.join(UNSYNCED_MARKER))?;
    marker.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

fn remove_marker(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(UNSYNCED_MARKER)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    std::fs::File::open(dir)?.sync_all()
}
