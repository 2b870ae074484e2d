//! The worker loop: read a batch of changes, apply it, commit with its sequence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{SyncError, SyncOptions};
use crate::index::{IndexUpdater, SearchIndex};
use crate::signal::SeqSignal;
use crate::store::{Command, Store};

/// What one [`SyncWorker::tick`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Applied the changes up to `up_to` (touching `contacts` contacts) and committed.
    Applied { contacts: usize, up_to: u64 },
    /// Nothing new in the change log.
    Idle,
}

/// After this many contacts applied since the last full merge, an idle worker merges
/// the index into one segment: a bulk load leaves dozens of segments, and every search
/// pays per segment.
const MERGE_AFTER_CONTACTS: usize = 50_000;

pub struct SyncWorker {
    store: Store,
    index: Arc<SearchIndex>,
    updater: IndexUpdater,
    indexed: Arc<SeqSignal>,
    options: SyncOptions,
    applied_since_merge: usize,
    /// The thread waiting for a full merge to finish (then reloading and warming).
    merging: Option<std::thread::JoinHandle<()>>,
}

impl SyncWorker {
    /// `indexed` must hold the sequence the index's last commit applied.
    pub fn new(
        store: Store,
        index: Arc<SearchIndex>,
        indexed: Arc<SeqSignal>,
        options: SyncOptions,
    ) -> Result<SyncWorker, SyncError> {
        let updater = index.updater(options.writer_memory_bytes, options.writer_threads)?;
        Ok(SyncWorker {
            store,
            index,
            updater,
            indexed,
            options,
            applied_since_merge: 0,
            merging: None,
        })
    }

    /// One step: apply the next batch of changes and make it searchable.
    pub fn tick(&mut self) -> Result<Tick, SyncError> {
        let applied = self.indexed.get();
        let batch = self.store.changes_after(applied, self.options.batch_max)?;
        if batch.up_to == applied {
            return Ok(Tick::Idle);
        }
        let started = Instant::now();
        let erased = batch.contacts.iter().any(|(_, c)| c.is_none());
        let result = (|| {
            for (id, contact) in &batch.contacts {
                match contact {
                    Some(contact) => self.updater.upsert(contact, &batch.context)?,
                    None => self.updater.remove(id),
                }
            }
            self.updater.commit(batch.up_to)?;
            if erased {
                // An erased contact's words must leave the index files, not only be
                // marked deleted.
                self.updater.purge_deleted()?;
            }
            Ok::<(), crate::index::IndexError>(())
        })();
        if let Err(error) = result {
            // Forget the partial batch; the next tick re-reads it from the log.
            self.updater.rollback()?;
            return Err(error.into());
        }
        self.index.reload()?;
        self.indexed.publish(batch.up_to);
        self.applied_since_merge += batch.contacts.len();
        if self.applied_since_merge >= MERGE_AFTER_CONTACTS {
            self.index.set_merging(true);
        }
        self.store
            .write_detached(Command::TrimChanges { up_to: batch.up_to });
        tracing::debug!(
            contacts = batch.contacts.len(),
            up_to = batch.up_to,
            commit_ms = started.elapsed().as_millis() as u64,
            "index commit"
        );
        Ok(Tick::Applied {
            contacts: batch.contacts.len(),
            up_to: batch.up_to,
        })
    }

    /// When caught up after many changes (a bulk load), starts merging the index into
    /// one segment in the background; a thread waits for it, then reloads the reader
    /// and warms the new segment, while searches and indexing go on.
    fn merge_when_idle(&mut self) {
        if self.merging.as_ref().is_some_and(|t| t.is_finished()) {
            self.merging = None;
            // The merged segments' files stay until collected (a commit would too).
            if let Err(error) = self.updater.collect_garbage() {
                tracing::warn!(%error, "cannot remove the files of merged segments");
            }
        }
        if self.applied_since_merge < MERGE_AFTER_CONTACTS
            || self.merging.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.applied_since_merge = 0;
        let merge = match self.updater.merge_all() {
            Ok(Some(merge)) => merge,
            Ok(None) => return self.index.set_merging(false),
            Err(error) => {
                tracing::warn!(%error, "cannot start merging the index");
                return self.index.set_merging(false);
            }
        };
        let index = self.index.clone();
        let waiter = std::thread::Builder::new()
            .name("index-merge".into())
            .spawn(move || {
                let started = Instant::now();
                // A merge that loses a race with the merge policy over a segment fails
                // harmlessly: the segments stay as they were.
                let merged = merge.wait();
                if let Err(error) = index.reload().and_then(|()| index.warm()) {
                    tracing::warn!(%error, "cannot reload the index after a merge");
                }
                index.set_merging(false);
                if let Err(error) = merged {
                    tracing::debug!(%error, "full index merge skipped");
                    return;
                }
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    "index merged into one segment"
                );
            });
        match waiter {
            Ok(thread) => self.merging = Some(thread),
            Err(error) => {
                tracing::warn!(%error, "cannot start the merge thread");
                self.index.set_merging(false);
            }
        }
    }

    /// Ticks until `stop` is set and every committed change is applied.
    pub fn run(mut self, stop: &AtomicBool) {
        let mut failures = 0u32;
        loop {
            match self.tick() {
                Ok(Tick::Applied { .. }) => failures = 0,
                Ok(Tick::Idle) => {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    self.merge_when_idle();
                    let seen = self.indexed.get();
                    let now = self
                        .store
                        .committed()
                        .wait_past_blocking(seen, Duration::from_millis(100));
                    if now > seen && !self.options.batch_delay.is_zero() {
                        std::thread::sleep(self.options.batch_delay);
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::error!(%error, failures, "sync tick failed; retrying");
                    if stop.load(Ordering::SeqCst) && failures >= 3 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200 * u64::from(failures.min(25))));
                }
            }
        }
        if let Some(merging) = self.merging.take() {
            let _ = merging.join();
        }
        tracing::debug!(indexed = self.indexed.get(), "sync worker stopped");
    }
}
