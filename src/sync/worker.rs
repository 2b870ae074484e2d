//! The worker loop: read a batch of changes, apply it, commit with its sequence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::reindex::{Reindexer, Swap, SwapRequests};
use super::{SyncError, SyncOptions};
use crate::index::{IndexUpdater, SearchIndex, SharedIndex};
use crate::signal::SeqSignal;
use crate::store::{Command, Store};

/// What one [`SyncWorker::tick`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Applied the changes up to `up_to` (touching `contacts` contacts) and committed.
    Applied { contacts: usize, up_to: u64 },
    /// Nothing new in the change log.
    Idle,
    /// The next change waits until a load's commits are synced (see
    /// [`crate::store::ChangeBatch::held_back`]); the tick waited up to 100 ms for it.
    HeldBack,
}

/// After this many contacts applied since the last full merge, an idle worker merges
/// the index (into [`FULL_MERGE_THREADS`] segments up to 4M contacts): a bulk load
/// leaves dozens of segments, and every search pays per segment.
const MERGE_AFTER_CONTACTS: usize = 50_000;

/// Merges a full merge runs side by side, one per core (as a rebuild does). Up to 4M
/// contacts it is one round and the index ends with this many segments (at 1M two
/// segments cost the search mix 0.1 ms at p50 over one); a larger index is merged in
/// rounds (see [`IndexUpdater::start_full_merge_round`]).
const FULL_MERGE_THREADS: usize = 2;

/// An index opened with more segments than this (e.g. after `contactd import
/// --data-dir`, which exits without merging) is merged once the worker is idle.
const MAX_SEGMENTS_AT_START: usize = 8;

/// While catching up (see [`SyncWorker::catching_up`]) the worker commits at most
/// this often: each commit is an fsync and a new segment to merge later. Otherwise it
/// commits every batch at once, so single writes stay searchable within
/// milliseconds.
const CATCH_UP_COMMIT_EVERY: Duration = Duration::from_secs(3);

/// Longest wait after a catch-up for an idle moment to start its full merge in
/// (see [`SyncWorker::resume_merges`]).
const LOAD_MERGE_WAIT: Duration = Duration::from_secs(10);

/// A backlog of more changes than this is caught up like a bulk load: merges paused,
/// commits every [`CATCH_UP_COMMIT_EVERY`], one merge at the end. A bulk job over 1M
/// contacts leaves such a backlog; indexed commit by commit with merges running, the
/// merge policy rewrote the large segments (each holding more and more deleted
/// documents) again and again, and merging took over half of the CPU.
const CATCH_UP_BACKLOG: u64 = 50_000;
/// Ticks held back in a row (about 5 s) after which a stopping worker stops anyway.
const HELD_BACK_TICKS_AT_STOP: u32 = 50;
/// While idle, how often the worker asks the writer to trim the change log again.
const IDLE_TRIM_EVERY: Duration = Duration::from_millis(100);
/// How long no write must have come before idle trims start: while writes come,
/// each commit asks for a trim, and trims asked on top would take the writer's time
/// from a load.
const IDLE_TRIM_AFTER_QUIET: Duration = Duration::from_secs(1);

/// Changes applied to the index writer but not committed yet.
#[derive(Debug, Clone, Copy)]
struct Uncommitted {
    up_to: u64,
    contacts: usize,
    since: Instant,
}

/// What readiness reports about the sync worker.
#[derive(Debug, Default)]
pub struct SyncHealth {
    /// Ticks failed in a row (0 while the worker keeps up).
    failing: std::sync::atomic::AtomicU32,
    /// Ticks that panicked since start (each was rolled back and retried).
    panics: std::sync::atomic::AtomicU64,
}

impl SyncHealth {
    pub fn failing(&self) -> u32 {
        self.failing.load(Ordering::SeqCst)
    }

    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::SeqCst)
    }
}

pub struct SyncWorker {
    health: Arc<SyncHealth>,
    store: Store,
    /// The index searches use; `index` is the same one, replaced by a swap.
    shared: Arc<SharedIndex>,
    index: Arc<SearchIndex>,
    updater: IndexUpdater,
    indexed: Arc<SeqSignal>,
    options: SyncOptions,
    applied_since_merge: usize,
    /// The last full merge round left segments for another round.
    full_merge_rounds_left: bool,
    /// The merge in flight, if any.
    merging: Option<Merging>,
    /// The scrub under way, if any (its rounds' merges run one after the other).
    scrub: Option<Scrub>,
    /// When the pending index scrubs were last looked up.
    scrubs_checked: Option<Instant>,
    /// When the worker last asked, while idle, for the change log to be trimmed.
    idle_trim_asked: Option<Instant>,
    /// The store's last committed sequence, and since when it has not moved.
    quiet: (u64, Instant),
    /// When the merge policy's note was last refreshed by an empty commit.
    note_refreshed: Option<Instant>,
    /// The last sequence reported scrubbed: the store records it asynchronously, so
    /// erases up to it may still look pending for a moment.
    reported_scrubbed: u64,
    /// Set while catching up: batches applied, their commit deferred.
    uncommitted: Option<Uncommitted>,
    /// The merge policy is paused (see [`IndexUpdater::pause_merges`]) while catching
    /// up, and after it until the full merge it made due has started.
    merges_paused: bool,
    /// When the last catch-up ended, while its full merge waits for an idle moment.
    catch_up_ended: Option<Instant>,
    /// Fresh indexes to swap in (see [`super::reindex`]).
    requests: SwapRequests,
    reindexer: Reindexer,
}

/// A merge the worker started and a thread waits for.
struct Merging {
    /// Waits for the merge, then reloads and warms the index.
    thread: std::thread::JoinHandle<MergeOutcome>,
    /// A round of a full merge (not of a scrub).
    full: bool,
}

/// A scrub of the index files, in rounds (see [`IndexUpdater::start_scrub_round`]).
struct Scrub {
    /// The sequence applied when it was planned: once every pending segment has been
    /// rewritten, no segment holds a document deleted up to it.
    started_at: u64,
    /// The segments that held deletions then and have not been rewritten yet.
    pending: std::collections::HashSet<tantivy::index::SegmentId>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MergeOutcome {
    Merged,
    /// Another merge took one of its segments first; nothing changed.
    LostRace,
    Failed,
}

impl SyncWorker {
    /// `indexed` must hold the sequence the index's last commit applied.
    pub fn new(
        store: Store,
        shared: Arc<SharedIndex>,
        indexed: Arc<SeqSignal>,
        options: SyncOptions,
    ) -> Result<SyncWorker, SyncError> {
        let index = shared.get();
        let (reindexer, requests) =
            super::reindex::pair(store.clone(), index.dir().to_path_buf(), options.clone());
        let parts = Parts {
            health: Arc::default(),
            store,
            shared,
            indexed,
            options,
            requests,
            reindexer,
        };
        parts.assemble(index)
    }

    /// Builds fresh indexes and swaps them in through this worker.
    pub fn reindexer(&self) -> Reindexer {
        self.reindexer.clone()
    }

    /// The worker's health, shared with readiness.
    pub fn health(&self) -> Arc<SyncHealth> {
        self.health.clone()
    }

    /// One step: apply the next batch of changes, and commit (making it searchable)
    /// unless a bulk load runs and the last commit is recent (see
    /// [`CATCH_UP_COMMIT_EVERY`]).
    pub fn tick(&mut self) -> Result<Tick, SyncError> {
        let applied = self
            .uncommitted
            .map_or_else(|| self.indexed.get(), |u| u.up_to);
        let batch = self.store.changes_after(applied, self.options.batch_max)?;
        if let Some(committed) = batch.held_back
            && batch.up_to == applied
        {
            // Synced within about a second; not idle, so merges stay as they are.
            self.store
                .committed()
                .wait_past_blocking(committed, Duration::from_millis(100));
            return Ok(Tick::HeldBack);
        }
        if batch.up_to == applied {
            let Some(pending) = self.uncommitted else {
                return Ok(Tick::Idle);
            };
            let wait = CATCH_UP_COMMIT_EVERY.saturating_sub(pending.since.elapsed());
            if self.catching_up(applied) && !wait.is_zero() {
                // The load goes on: wait for its next rows rather than commit.
                self.store
                    .committed()
                    .wait_past_blocking(applied, wait.min(Duration::from_millis(100)));
                return Ok(Tick::Applied {
                    contacts: 0,
                    up_to: applied,
                });
            }
            let (contacts, up_to) = self.commit()?;
            // A load that only paused between batches is still a load.
            if !self.catching_up(applied) {
                self.resume_merges(false);
            }
            return Ok(Tick::Applied { contacts, up_to });
        }
        let result = (|| {
            for change in &batch.contacts {
                match &change.contact {
                    // Deletes are looked up in every segment at commit: a load of new
                    // contacts skips them.
                    Some(contact) if change.created => self.updater.add(contact, &batch.context)?,
                    Some(contact) => self.updater.upsert(contact, &batch.context)?,
                    None => self.updater.remove(&change.id),
                }
            }
            Ok::<(), crate::index::IndexError>(())
        })();
        if let Err(error) = result {
            self.forget_uncommitted()?;
            return Err(error.into());
        }
        let pending = self.uncommitted.get_or_insert(Uncommitted {
            up_to: batch.up_to,
            contacts: 0,
            since: Instant::now(),
        });
        pending.up_to = batch.up_to;
        pending.contacts += batch.contacts.len();
        let since = pending.since;
        let catching_up = self.catching_up(batch.up_to);
        if catching_up {
            self.pause_merges();
            if since.elapsed() < CATCH_UP_COMMIT_EVERY {
                return Ok(Tick::Applied {
                    contacts: batch.contacts.len(),
                    up_to: batch.up_to,
                });
            }
        }
        let (contacts, up_to) = self.commit()?;
        if !catching_up {
            self.resume_merges(false);
        }
        Ok(Tick::Applied { contacts, up_to })
    }

    /// Whether to index like a bulk load: while one runs (see [`Store::bulk_load`]),
    /// or while the index lags more than [`CATCH_UP_BACKLOG`] changes behind the
    /// store after `applied`.
    fn catching_up(&self, applied: u64) -> bool {
        self.store.bulk_loading()
            || self.store.committed().get().saturating_sub(applied) > CATCH_UP_BACKLOG
    }

    fn pause_merges(&mut self) {
        self.catch_up_ended = None;
        if !self.merges_paused {
            self.updater.pause_merges(true);
            self.merges_paused = true;
        }
    }

    /// Resumes the merge policy after a catch-up (`idle`: nothing is left to apply).
    /// A catch-up that made a full merge due keeps the policy held until that merge
    /// has started, at the next idle moment or [`LOAD_MERGE_WAIT`] after the catch-up
    /// ended without one, so that it names every segment of the load. Resumed at once,
    /// the policy merged a third of a 1M load's segments by itself, and the import
    /// exited with that merge cut short; started at once, the full merge missed the
    /// load's last rows. A full merge does not hold the policy otherwise: it leaves out
    /// the segments the policy is merging (see
    /// [`IndexUpdater::start_full_merge_round`]), and under a flood of writes holding
    /// the policy until an idle moment left hundreds of segments.
    fn resume_merges(&mut self, idle: bool) {
        if !self.merges_paused {
            return;
        }
        if self.full_merge_due() {
            let ended = *self.catch_up_ended.get_or_insert_with(Instant::now);
            if !idle && ended.elapsed() < LOAD_MERGE_WAIT {
                return;
            }
            self.start_merges(true);
            // Held while a scrub merges first (the full merge starts after it), and
            // between the rounds of a large full merge while no writes come (the
            // policy would merge the load's other segments by itself, only for the
            // next round to merge them again). Under writes, once a merge runs, the
            // policy goes on so that commits do not pile up segments.
            if self.full_merge_due() && (idle || self.merging.is_none()) {
                return;
            }
        }
        self.catch_up_ended = None;
        self.updater.pause_merges(false);
        self.merges_paused = false;
    }

    fn full_merge_due(&self) -> bool {
        self.applied_since_merge >= MERGE_AFTER_CONTACTS || self.full_merge_rounds_left
    }

    /// Commits the applied batches and publishes their sequence.
    fn commit(&mut self) -> Result<(usize, u64), SyncError> {
        let Some(pending) = self.uncommitted else {
            return Ok((0, self.indexed.get()));
        };
        let started = Instant::now();
        if let Err(error) = self.updater.commit(pending.up_to) {
            self.forget_uncommitted()?;
            return Err(error.into());
        }
        self.uncommitted = None;
        self.index.reload()?;
        self.indexed.publish(pending.up_to);
        metrics::histogram!("contactd_index_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("contactd_index_documents_total").increment(pending.contacts as u64);
        self.applied_since_merge += pending.contacts;
        if self.full_merge_due() {
            self.publish_merging();
        }
        self.trim_changes(pending.up_to);
        tracing::debug!(
            contacts = pending.contacts,
            up_to = pending.up_to,
            commit_ms = started.elapsed().as_millis() as u64,
            "index commit"
        );
        Ok((pending.contacts, pending.up_to))
    }

    /// Asks the writer to drop the change log through `up_to`, or through what the
    /// index holds durably if less (a crash may lose the commits after it). The
    /// writer drops at most 10,000 entries a time.
    fn trim_changes(&mut self, up_to: u64) {
        let up_to = up_to.min(self.index.durable_through());
        // A fresh index being built resumes the log from an older sequence.
        if !self.requests.building.load(Ordering::SeqCst) {
            self.store.write_detached(Command::TrimChanges { up_to });
        }
    }

    /// While idle, asks again for the log to be trimmed as long as it holds applied
    /// changes: each commit asks once, so after a load (a commit every few seconds,
    /// then none) 670,000 entries of a 1M load stayed in the store file for good.
    fn trim_applied_changes(&mut self) {
        let committed = self.store.committed().get();
        if committed != self.quiet.0 {
            self.quiet = (committed, Instant::now());
        }
        if self.quiet.1.elapsed() < IDLE_TRIM_AFTER_QUIET
            || self
                .idle_trim_asked
                .is_some_and(|asked| asked.elapsed() < IDLE_TRIM_EVERY)
        {
            return;
        }
        // Only what the index holds durably may go (as `trim_changes` caps it).
        let through = self.indexed.get().min(self.index.durable_through());
        match self.store.first_change() {
            Ok(Some(first)) if first <= through => {
                self.idle_trim_asked = Some(Instant::now());
                self.trim_changes(through);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the change log's first entry"),
        }
    }

    /// Drops the uncommitted batches; the next tick re-reads them from the log.
    fn forget_uncommitted(&mut self) -> Result<(), SyncError> {
        self.uncommitted = None;
        self.merges_paused = false;
        self.updater.rollback()?;
        Ok(())
    }

    /// Merges in the background, one round of merges at a time: when caught up
    /// (`idle`), the whole index after a bulk load (dozens of segments, and every
    /// search pays per segment); idle or not, the segments with deletions when an
    /// erase is due to leave the index files (a merge drops deleted documents and the
    /// terms only they had; a steady stream of writes must not hold a scrub past its
    /// bound), before any full merge. A thread waits for the round's merges, then
    /// reloads the reader and warms the new segments, while searches and indexing go
    /// on.
    fn start_merges(&mut self, idle: bool) {
        if self
            .merging
            .as_ref()
            .is_some_and(|m| m.thread.is_finished())
        {
            let merging = self.merging.take().expect("checked above");
            let outcome = merging.thread.join().unwrap_or(MergeOutcome::Failed);
            // The merged segments' files (or a dropped merge's output) stay until
            // collected (a commit would too).
            if let Err(error) = self.updater.collect_garbage() {
                tracing::warn!(%error, "cannot remove the files of merged segments");
            }
            if !merging.full && outcome != MergeOutcome::Merged {
                // Its segments still hold their deletions: plan the scrub again.
                self.scrub = None;
            }
            if merging.full && outcome != MergeOutcome::Merged {
                // So that the next full merge names the failed merge's segments too.
                self.reoffer_segments();
            }
            if merging.full && outcome == MergeOutcome::Failed {
                // Not tried round after round: the next full merge falls due with
                // the next writes.
                self.full_merge_rounds_left = false;
            }
            if merging.full && outcome == MergeOutcome::LostRace {
                // Another merge took one of its segments and has ended (the policy's
                // merges are left out, so only a merge started by hand can), so the
                // next idle tick tries again.
                self.applied_since_merge = self.applied_since_merge.max(MERGE_AFTER_CONTACTS);
            }
            self.publish_merging();
        }
        if self.merging.is_some() {
            return;
        }
        if self.scrub.is_none() && self.index_scrub_due() {
            match self.updater.plan_scrub() {
                Ok(Some(segments)) => {
                    self.scrub = Some(Scrub {
                        started_at: self.indexed.get(),
                        pending: segments,
                    })
                }
                // A merge holds a segment with deletions, or so the note says:
                // planned again at the next check, a second later.
                Ok(None) => self.refresh_merge_note(),
                Err(error) => tracing::warn!(%error, "cannot plan a scrub of the index"),
            }
        }
        let full = self.scrub.is_none();
        let merges = if let Some(scrub) = &mut self.scrub {
            if scrub.pending.is_empty() {
                // Every segment that held a deletion when it was planned has been
                // rewritten since: only a scrub names them all (a full merge leaves
                // out the policy's merges, a round's large segments and groups of one
                // segment).
                let through = scrub.started_at;
                // The rewritten files, and the removal of the old ones, reach the
                // disk before the erases are reported gone.
                if let Err(error) = self.index.sync_deferred() {
                    tracing::warn!(%error, "cannot sync the scrubbed index; retrying");
                    return;
                }
                self.scrub = None;
                self.mark_scrubbed(through);
                return self.publish_merging();
            }
            self.updater
                .start_scrub_round(&mut scrub.pending, FULL_MERGE_THREADS)
        } else if idle && self.full_merge_due() {
            // Reset here only: a full merge that falls due while a scrub merges
            // starts once the scrub has ended.
            self.applied_since_merge = 0;
            // Side by side, one per core: a single merge is single-threaded (at 10M
            // one merge into one segment took 11 minutes while the other core idled).
            self.updater
                .start_full_merge_round(FULL_MERGE_THREADS)
                .map(|round| {
                    self.full_merge_rounds_left = round.more;
                    round.merges
                })
        } else {
            return;
        };
        let merges = match merges {
            Ok(merges) if !merges.is_empty() => merges,
            // A scrub whose segments are all in the policy's merges waits for them.
            Ok(_) => {
                if !full {
                    self.refresh_merge_note();
                }
                return self.publish_merging();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start merging the index");
                return self.publish_merging();
            }
        };
        let index = self.index.clone();
        let waiter = std::thread::Builder::new()
            .name("index-merge".into())
            .spawn(move || {
                let started = Instant::now();
                // A merge that loses a race with another merge over a segment fails
                // harmlessly: the segments stay as they were, and it is tried again.
                // Every merge is waited for, also after one failed: one still running
                // holds its segments, and a full merge planned again meanwhile would
                // leave them out and end with a segment too many.
                let waited: Vec<_> = merges.into_iter().map(|m| m.wait()).collect();
                let merged: Result<Vec<_>, _> = waited.into_iter().collect();
                if let Err(error) = index.reload().and_then(|()| index.warm()) {
                    tracing::warn!(%error, "cannot reload the index after a merge");
                }
                match merged {
                    Ok(_) => {
                        tracing::info!(
                            seconds = started.elapsed().as_secs_f64(),
                            segments = index.num_segments(),
                            "index merged"
                        );
                        MergeOutcome::Merged
                    }
                    // What tantivy answers when a merged segment was merged away.
                    Err(tantivy::TantivyError::InvalidArgument(reason)) => {
                        tracing::info!(%reason, "index merge lost a race; will try again");
                        MergeOutcome::LostRace
                    }
                    Err(error) => {
                        tracing::warn!(%error, "index merge failed");
                        MergeOutcome::Failed
                    }
                }
            });
        match waiter {
            Ok(thread) => self.merging = Some(Merging { thread, full }),
            Err(error) => tracing::warn!(%error, "cannot start the merge thread"),
        }
        self.publish_merging();
    }

    /// Makes tantivy offer the merge policy its segments again (see
    /// `index::merge_policy`) by an empty commit, when nothing is left uncommitted
    /// (the next commit will). It offers them only at a commit or at a merge's end,
    /// and a merge that fails ends without one: until then the note leaves out the
    /// failed merge's segments.
    fn reoffer_segments(&mut self) {
        if self.uncommitted.is_some() {
            return;
        }
        if let Err(error) = self.updater.commit(self.indexed.get()) {
            tracing::warn!(%error, "cannot commit the index to offer its segments again");
        }
    }

    /// [`SyncWorker::reoffer_segments`] for a scrub waiting on segments the note
    /// leaves out, at most once a second: with no writes coming, a scrub waited for
    /// them for good.
    fn refresh_merge_note(&mut self) {
        if self.uncommitted.is_some()
            || self
                .note_refreshed
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.note_refreshed = Some(Instant::now());
        self.reoffer_segments();
    }

    /// What `/v1/stats` shows as `index_merging` (and `contactd bench` waits on): a
    /// merge in flight, a scrub under way, or a full merge due. Only the worker sets
    /// it, from its own state: a merge that has ended shows as ended at the next tick,
    /// when the worker has joined it (and knows whether a full merge is due again).
    fn publish_merging(&self) {
        self.index
            .set_merging(self.merging.is_some() || self.scrub.is_some() || self.full_merge_due());
    }

    /// Whether an erase the index has applied is due to leave its files (half the
    /// scrub bound after it, so one merge serves the erases of that half). Looked up
    /// at most once a second.
    fn index_scrub_due(&mut self) -> bool {
        if self
            .scrubs_checked
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        self.scrubs_checked = Some(Instant::now());
        let oldest = match self.store.oldest_index_scrub() {
            Ok(oldest) => oldest,
            Err(error) => {
                tracing::warn!(%error, "cannot read the pending index scrubs");
                return false;
            }
        };
        let Some((seq, erased_at)) = oldest else {
            return false;
        };
        let half_bound = self.store.scrub_within() / 2;
        let due =
            erased_at.saturating_add(u64::try_from(half_bound.as_millis()).unwrap_or(u64::MAX));
        let now = u64::try_from(self.store.clock().now().timestamp_millis()).unwrap_or(0);
        seq > self.reported_scrubbed && seq <= self.indexed.get() && now >= due
    }

    /// A merge of every segment with deletions (or of every segment) that started with
    /// `through` applied has scrubbed every erase up to it from the index files.
    fn mark_scrubbed(&mut self, through: u64) {
        self.reported_scrubbed = self.reported_scrubbed.max(through);
        tracing::info!(through, "erased contacts scrubbed from the index files");
        self.store
            .write_detached(Command::IndexScrubbed { through });
    }

    /// Ticks until `stop` is set and every committed change is applied.
    pub fn run(mut self, stop: &AtomicBool) {
        // Ticks failed in a row: readiness reads it, and the retry backs off by it.
        let mut failures = 0u32;
        // Ticks held back in a row (each waits up to 100 ms for a sync).
        let mut held_back_ticks = 0u32;
        loop {
            if let Ok(swap) = self.requests.swaps.try_recv() {
                match self.swap_in(swap) {
                    Some(worker) => self = worker,
                    None => return,
                }
            }
            let ticked = crate::boundary::catch(|| self.tick()).unwrap_or_else(|message| {
                self.health.panics.fetch_add(1, Ordering::SeqCst);
                // What the panicking batch added is dropped; the next tick reads it
                // again from the change log.
                if let Err(error) = self.forget_uncommitted() {
                    tracing::error!(%error, "cannot roll back after a panic");
                }
                Err(SyncError::Panicked(message))
            });
            failures = if ticked.is_ok() { 0 } else { failures + 1 };
            if !matches!(ticked, Ok(Tick::HeldBack)) {
                held_back_ticks = 0;
            }
            self.health.failing.store(failures, Ordering::SeqCst);
            match ticked {
                Ok(Tick::Applied { .. }) => self.start_merges(false),
                Ok(Tick::HeldBack) => {
                    held_back_ticks += 1;
                    // The writer syncs within about a second. At a stop, a sync that
                    // does not come (a failing disk) must not hang it: what is applied
                    // is committed, the rest stays in the change log for the next start.
                    if stop.load(Ordering::SeqCst) && held_back_ticks >= HELD_BACK_TICKS_AT_STOP {
                        if self.uncommitted.is_some()
                            && let Err(error) = self.commit()
                        {
                            tracing::error!(%error, "cannot commit the index at stop");
                        }
                        break;
                    }
                }
                Ok(Tick::Idle) => {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    self.resume_merges(true);
                    self.start_merges(true);
                    self.trim_applied_changes();
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
                    tracing::error!(%error, failures, "sync tick failed; retrying");
                    if stop.load(Ordering::SeqCst) && failures >= 3 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200 * u64::from(failures.min(25))));
                }
            }
        }
        if let Some(merging) = self.merging.take() {
            let _ = merging.thread.join();
        }
        if let Err(error) = self.index.finish_deferred_syncs() {
            tracing::error!(%error, "cannot sync the index at stop; it is checked at the next start");
        }
        tracing::debug!(indexed = self.indexed.get(), "sync worker stopped");
    }

    /// Swaps in the fresh index of `swap` (see [`super::reindex`]): catches it up on the
    /// change log, closes the live writer, moves the fresh index into the index
    /// directory and publishes it. Returns the worker on the new index, or on the old
    /// one when the fresh one cannot be swapped in; `None` only when neither opens (the
    /// worker stops and readiness reports the lag).
    fn swap_in(mut self, swap: Swap) -> Option<SyncWorker> {
        let Swap {
            fresh_dir,
            seq,
            done,
        } = swap;
        // The reindex thread caught the fresh index up to within a few thousand
        // changes; the rest is applied here, while the live index waits.
        let caught_up = super::reindex::catch_up(&self.store, &self.options, &fresh_dir, seq, 0);
        let up_to = match caught_up {
            Ok(up_to) => up_to,
            Err(error) => {
                super::reindex::discard(&fresh_dir);
                let _ = done.send(Err(format!("cannot catch the fresh index up: {error}")));
                return Some(self);
            }
        };
        if let Some(merging) = self.merging.take() {
            let _ = merging.thread.join();
        }
        let dir = self.index.dir().to_path_buf();
        // Its thread syncs by name in the directory about to hold the fresh index.
        if let Err(error) = self.index.finish_deferred_syncs() {
            tracing::warn!(%error, "cannot sync the replaced index");
        }
        let SyncWorker {
            health,
            store,
            shared,
            indexed,
            options,
            requests,
            reindexer,
            updater,
            ..
        } = self;
        // Nothing may write into the index directory once it is moved.
        if let Err(error) = updater.wait_merging_threads() {
            tracing::warn!(%error, "closing the replaced index writer");
        }
        let parts = Parts {
            health,
            store,
            shared,
            indexed,
            options,
            requests,
            reindexer,
        };
        let moved = super::rebuild::put_in_place(&fresh_dir, &dir).map(|replaced| {
            if let Some(old_dir) = replaced {
                super::rebuild::remove_in_background(old_dir);
            }
        });
        let opened = SearchIndex::open_usable(&dir);
        match (moved, opened) {
            (Ok(()), Ok((index, payload))) => {
                let index = Arc::new(index);
                if let Err(error) = index.warm() {
                    tracing::warn!(%error, "cannot warm the fresh index");
                }
                match parts.assemble(index.clone()) {
                    Ok(worker) => {
                        worker.shared.replace(index);
                        worker.indexed.publish(payload.seq);
                        tracing::info!(seq = payload.seq, "fresh index swapped in");
                        let _ = done.send(Ok(up_to));
                        Some(worker)
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot open a writer on the fresh index");
                        let _ = done.send(Err(error.to_string()));
                        None
                    }
                }
            }
            (moved, opened) => {
                let reason = match (moved, opened) {
                    (Err(error), _) => format!("cannot move the fresh index in place: {error}"),
                    (_, Err(reason)) => format!("the fresh index does not open: {reason}"),
                    _ => String::new(),
                };
                tracing::error!(%reason, "swapping the fresh index in failed");
                super::reindex::discard(&fresh_dir);
                let _ = done.send(Err(reason));
                // Go on with whatever index the directory holds.
                let (index, _) = SearchIndex::open_usable(&dir)
                    .map_err(
                        |reason| tracing::error!(%reason, "no usable index after a failed swap"),
                    )
                    .ok()?;
                let index = Arc::new(index);
                let worker = parts.assemble(index.clone()).ok()?;
                worker.shared.replace(index);
                Some(worker)
            }
        }
    }
}

/// What a worker keeps across an index swap.
struct Parts {
    health: Arc<SyncHealth>,
    store: Store,
    shared: Arc<SharedIndex>,
    indexed: Arc<SeqSignal>,
    options: SyncOptions,
    requests: SwapRequests,
    reindexer: Reindexer,
}

impl Parts {
    fn assemble(self, index: Arc<SearchIndex>) -> Result<SyncWorker, SyncError> {
        let updater = index.updater(
            self.options.writer_memory_bytes,
            self.options.writer_threads,
        )?;
        if !self.options.index_sync_every.is_zero() {
            index.defer_syncs(self.indexed.clone(), self.options.index_sync_every)?;
        }
        let applied_since_merge = if index.num_segments() > MAX_SEGMENTS_AT_START {
            MERGE_AFTER_CONTACTS
        } else {
            0
        };
        let worker = SyncWorker {
            health: self.health,
            store: self.store,
            shared: self.shared,
            index,
            updater,
            indexed: self.indexed,
            options: self.options,
            applied_since_merge,
            full_merge_rounds_left: false,
            merging: None,
            scrub: None,
            scrubs_checked: None,
            note_refreshed: None,
            idle_trim_asked: None,
            quiet: (0, Instant::now()),
            reported_scrubbed: 0,
            uncommitted: None,
            merges_paused: false,
            catch_up_ended: None,
            requests: self.requests,
            reindexer: self.reindexer,
        };
        Ok(worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn contact(n: usize) -> Box<crate::model::ContactInput> {
        let input = serde_json::json!({"name": format!("Merge Race {n}"),
                                       "email": format!("race{n}@merge.example")});
        Box::new(serde_json::from_value(input).unwrap())
    }

    /// A store and its sync worker in `dir`, with one indexing thread: each commit
    /// makes one segment.
    fn worker_in(dir: &tempfile::TempDir) -> (Store, SyncWorker) {
        let mut config = Config::default();
        // Every commit durable, so trims follow commits at once (see the test of
        // deferred syncs).
        config.sync.index_sync_every_ms = 0;
        worker_with(dir, config)
    }

    fn worker_with(dir: &tempfile::TempDir, config: Config) -> (Store, SyncWorker) {
        let store = Store::open(&dir.path().join("c.redb"), config.store_options()).unwrap();
        let worker = worker_on(&store, dir, &config);
        (store, worker)
    }

    /// A sync worker for `store`, its index in `dir` (opened or rebuilt).
    fn worker_on(store: &Store, dir: &tempfile::TempDir, config: &Config) -> SyncWorker {
        let options = SyncOptions {
            writer_threads: 1,
            ..config.sync_options()
        };
        let index_dir = dir.path().join("index");
        tokio::task::block_in_place(|| {
            let (index, applied) = super::super::open_index(store, &index_dir, &options)?;
            let shared = Arc::new(SharedIndex::new(Arc::new(index)));
            SyncWorker::new(
                store.clone(),
                shared,
                Arc::new(SeqSignal::new(applied)),
                options,
            )
        })
        .unwrap()
    }

    /// A full merge that is due waits for an idle moment without holding the merge
    /// policy: under a flood of writes that left no idle moment, holding it added a
    /// segment a commit (497 at 1M after 30 s), and every search paid for each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_due_full_merge_leaves_the_merge_policy_running_until_it_starts() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, mut worker) = worker_in(&dir);
        worker.applied_since_merge = MERGE_AFTER_CONTACTS;
        const COMMITS: usize = 24;
        for n in 0..COMMITS {
            store.write(Command::Create(contact(n))).await.unwrap();
            let ticked = tokio::task::block_in_place(|| worker.tick()).unwrap();
            assert!(matches!(ticked, Tick::Applied { contacts: 1, .. }));
        }
        assert!(worker.full_merge_due() && !worker.merges_paused);
        // The policy's merges (eight one-contact segments at a time) end on their own.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            worker.index.reload().unwrap();
            if worker.index.num_segments() <= COMMITS / 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} segments after {COMMITS} commits: the policy was held",
                worker.index.num_segments()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(worker.index.num_docs(), COMMITS as u64);
        store.shutdown();
    }

    /// The change log is trimmed through what the index holds even when no commit
    /// comes to ask: after a load, commits stop and most of the log stayed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_worker_trims_the_applied_change_log() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, mut worker) = worker_in(&dir);
        // Applied and committed while a rebuild holds the trimming.
        worker.requests.building.store(true, Ordering::SeqCst);
        for n in 0..5 {
            store.write(Command::Create(contact(n))).await.unwrap();
        }
        let ticked = tokio::task::block_in_place(|| worker.tick()).unwrap();
        assert!(matches!(ticked, Tick::Applied { contacts: 5, .. }));
        // Lets the idle trim run as if no write had come for `quiet`, then writes
        // once: the writer takes commands in order, so any trim asked is done then.
        // Answers the change log's first sequence.
        async fn idle_trim(store: &Store, worker: &mut SyncWorker, quiet: Duration) -> u64 {
            worker.quiet = (store.committed().get(), Instant::now() - quiet);
            worker.idle_trim_asked = None;
            tokio::task::block_in_place(|| worker.trim_applied_changes());
            let next = store.committed().get() as usize;
            store.write(Command::Create(contact(next))).await.unwrap();
            store.first_change().unwrap().unwrap()
        }
        let quiet = IDLE_TRIM_AFTER_QUIET;
        assert_eq!(
            idle_trim(&store, &mut worker, quiet).await,
            1,
            "held: a rebuild"
        );
        worker.requests.building.store(false, Ordering::SeqCst);
        // Not while writes come: each commit asks for its own trim.
        let writing = Duration::ZERO;
        assert_eq!(
            idle_trim(&store, &mut worker, writing).await,
            1,
            "writes came"
        );
        assert_eq!(
            idle_trim(&store, &mut worker, quiet).await,
            6,
            "only the changes the index has not applied are left"
        );
        store.shutdown();
    }

    /// While the index's syncs are deferred, the change log is trimmed only through
    /// what the index holds on disk; after a crash the next open checks every file
    /// of the last commit, and refuses a damaged one (it is then rebuilt).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_index_syncs_bound_the_trim_and_a_crash_is_checked() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut config = Config::default();
        config.sync.index_sync_every_ms = 3_600_000;
        let (store, mut worker) = worker_with(&dir, config.clone());
        let index_dir = dir.path().join("index");
        assert!(index_dir.join("contactd-unsynced").exists());
        for n in 0..5 {
            store.write(Command::Create(contact(n))).await.unwrap();
        }
        let ticked = tokio::task::block_in_place(|| worker.tick()).unwrap();
        assert!(matches!(ticked, Tick::Applied { contacts: 5, .. }));
        assert_eq!(worker.indexed.get(), 5);
        assert_eq!(worker.index.durable_through(), 0, "no pass yet");
        // The commit asked for a trim; the writer takes commands in order.
        store.write(Command::Create(contact(5))).await.unwrap();
        assert_eq!(store.first_change().unwrap(), Some(1), "kept: not durable");

        worker.index.sync_deferred().unwrap();
        assert_eq!(worker.index.durable_through(), 5);
        worker.trim_changes(5);
        store.write(Command::Create(contact(6))).await.unwrap();
        assert_eq!(store.first_change().unwrap(), Some(6));

        // A crash: the marker stays, so the next open reads every file back.
        drop(worker);
        let (index, payload) = SearchIndex::open_usable(&index_dir).unwrap();
        assert_eq!(payload.seq, 5);
        drop(index);
        let postings = std::fs::read_dir(&index_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        let mut bytes = std::fs::read(&postings).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&postings, bytes).unwrap();
        let refused = SearchIndex::open_usable(&index_dir).err().unwrap();
        assert!(refused.contains("damaged by an unclean stop"), "{refused}");

        // A clean stop syncs everything and removes the marker.
        std::fs::remove_dir_all(&index_dir).unwrap();
        let worker = worker_on(&store, &dir, &config);
        assert!(index_dir.join("contactd-unsynced").exists());
        let stop = AtomicBool::new(true);
        tokio::task::block_in_place(|| worker.run(&stop));
        assert!(!index_dir.join("contactd-unsynced").exists());
        store.shutdown();
    }

    /// As a load leaves the worker (the policy held, a full merge due), then creates
    /// contacts `numbers`, each applied and committed at once.
    async fn end_a_load_then_create(
        store: &Store,
        worker: &mut SyncWorker,
        numbers: std::ops::Range<usize>,
    ) {
        worker.pause_merges();
        worker.applied_since_merge = MERGE_AFTER_CONTACTS;
        for n in numbers {
            store.write(Command::Create(contact(n))).await.unwrap();
            tokio::task::block_in_place(|| worker.tick()).unwrap();
        }
    }

    /// After a catch-up that made a full merge due, the policy stays held until that
    /// merge has started: at the next idle moment, or [`LOAD_MERGE_WAIT`] after the
    /// catch-up when writes leave no idle moment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_catch_up_the_policy_waits_for_its_full_merge() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, mut worker) = worker_in(&dir);
        // Writes go on after the load: the policy stays held, and no merge starts yet.
        end_a_load_then_create(&store, &mut worker, 0..3).await;
        assert!(worker.merges_paused && worker.merging.is_none());
        assert!(worker.full_merge_due());

        // Past the wait, the full merge starts anyway and the policy runs again.
        worker.catch_up_ended = Some(Instant::now() - LOAD_MERGE_WAIT);
        tokio::task::block_in_place(|| worker.resume_merges(false));
        assert!(!worker.merges_paused);
        assert!(worker.merging.as_ref().is_some_and(|merging| merging.full));
        assert!(!worker.full_merge_due());

        // A second catch-up ending at an idle moment starts its full merge at once
        // (once the first has ended).
        let deadline = Instant::now() + Duration::from_secs(60);
        while worker.merging.is_some() {
            assert!(
                Instant::now() < deadline,
                "the first full merge never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::task::block_in_place(|| worker.start_merges(false));
        }
        end_a_load_then_create(&store, &mut worker, 3..6).await;
        assert!(worker.merges_paused && worker.merging.is_none());
        tokio::task::block_in_place(|| worker.resume_merges(true));
        assert!(!worker.merges_paused);
        assert!(worker.merging.as_ref().is_some_and(|merging| merging.full));
        store.shutdown();
    }

    /// A full merge that another merge beat to one of its segments is started again
    /// (tantivy drops the loser's result), and the merge policy resumes once the full
    /// merge has ended. The racing merge is started by hand: the policy's own merges
    /// are left out of a full merge (see `crate::index::merge_policy`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_merge_that_lost_a_race_is_started_again() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, mut worker) = worker_in(&dir);
        // As after a load: a full merge is due.
        worker.applied_since_merge = MERGE_AFTER_CONTACTS;
        // Two one-contact segments (the racing merge's), then two of 2,000: two
        // levels of two segments, fewer than the policy merges at once.
        let mut created = 0;
        for segment in 0..4 {
            let size = if segment < 2 { 1 } else { 2_000 };
            let writes =
                (created..created + size).map(|n| store.write(Command::Create(contact(n))));
            for ack in futures_util::future::join_all(writes).await {
                ack.unwrap();
            }
            created += size;
            let ticked = tokio::task::block_in_place(|| worker.tick()).unwrap();
            assert!(matches!(ticked, Tick::Applied { .. }));
        }
        assert_eq!(worker.index.num_segments(), 4);

        // A merge of the two small segments, as the policy may have started before it
        // was paused, runs while the worker starts merging every segment.
        let racing = worker.updater.merge_smallest_segments(2).unwrap();
        tokio::task::block_in_place(|| worker.start_merges(true));
        // Whichever merge loses, its segments stay as they were.
        let _ = tokio::task::block_in_place(|| racing.wait());
        let deadline = Instant::now() + Duration::from_secs(60);
        while worker.merging.is_some() || worker.full_merge_due() {
            assert!(Instant::now() < deadline, "the index was never merged");
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::task::block_in_place(|| worker.start_merges(true));
        }
        assert!(
            worker.index.num_segments() <= FULL_MERGE_THREADS,
            "{} segments: the full merge was not started again",
            worker.index.num_segments()
        );
        assert_eq!(worker.index.num_docs(), created as u64);
        assert!(
            !worker.merges_paused,
            "the policy resumes after the full merge"
        );
        assert!(!worker.index.merging(), "/v1/stats no longer shows a merge");
        store.shutdown();
    }

    /// A load of twelve one-contact segments, full merges of more than 2 × 4 documents
    /// going in rounds of merges of about 4.
    async fn end_a_large_load(store: &Store, worker: &mut SyncWorker) {
        end_a_load_then_create(store, worker, 0..12).await;
        worker.updater.set_full_merge_segment_docs(4);
        assert_eq!(worker.index.num_segments(), 12);
    }

    /// Runs the worker's idle merge steps until no merge runs or is due, calling
    /// `after_each` after every step.
    async fn merge_while_idle(worker: &mut SyncWorker, mut after_each: impl FnMut(&SyncWorker)) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while worker.merging.is_some() || worker.full_merge_due() {
            assert!(Instant::now() < deadline, "the rounds never ended");
            tokio::task::block_in_place(|| {
                worker.resume_merges(true);
                worker.start_merges(true);
            });
            after_each(worker);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A full merge of a large index goes in rounds of bounded merges (each maps its
    /// segments' files, and at 10M two merges of half the index mapped 5.3 GiB). While
    /// nothing is written the policy stays held until the last round has started, so
    /// that it does not merge segments the next round merges again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_full_merge_goes_in_rounds_with_the_policy_held_while_idle() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, mut worker) = worker_in(&dir);
        end_a_large_load(&store, &mut worker).await;
        merge_while_idle(&mut worker, |worker| {
            if worker.full_merge_due() {
                assert!(worker.merges_paused, "the policy ran between rounds");
                assert!(worker.index.merging(), "/v1/stats shows the merge");
            }
        })
        .await;
        assert!(
            !worker.merges_paused,
            "the policy runs after the last round"
        );
        // One round makes at most two merges: twelve segments become three of four
        // contacts only in a second round.
        assert_eq!(worker.index.segment_docs(), vec![4, 4, 4]);
        assert_eq!(worker.index.num_docs(), 12);
        assert!(!worker.index.merging());
        store.shutdown();
    }

    /// Under writes, the policy held after a catch-up runs again once the first round
    /// of its full merge has started, although rounds are left: held through every
    /// round, commits would pile up segments for minutes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_writes_the_policy_runs_once_a_large_full_merge_has_started() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, mut worker) = worker_in(&dir);
        end_a_large_load(&store, &mut worker).await;
        worker.catch_up_ended = Some(Instant::now() - LOAD_MERGE_WAIT);
        tokio::task::block_in_place(|| worker.resume_merges(false));
        assert!(worker.merging.as_ref().is_some_and(|merging| merging.full));
        assert!(worker.full_merge_rounds_left && worker.full_merge_due());
        assert!(!worker.merges_paused);
        // The worker stops with its merge joined; the rounds left go with it.
        while worker.merging.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::task::block_in_place(|| worker.start_merges(false));
        }
        store.shutdown();
    }

    /// A full merge does not report erases scrubbed: it may leave the erased contact's
    /// segment alone (here a large segment, left out of the rounds). Only a scrub
    /// merge, which names every segment with deletions, does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_merge_reports_no_erase_scrubbed() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, mut worker) = worker_in(&dir);
        worker.pause_merges();
        worker.applied_since_merge = MERGE_AFTER_CONTACTS;
        worker.updater.set_full_merge_segment_docs(4);
        // A segment of four contacts, then ten of one.
        let writes = (0..4).map(|n| store.write(Command::Create(contact(n))));
        let mut large = Vec::new();
        for ack in futures_util::future::join_all(writes).await {
            if let crate::store::Written::Contact(contact) = ack.unwrap().written {
                large.push(contact.id);
            }
        }
        tokio::task::block_in_place(|| worker.tick()).unwrap();
        for n in 4..14 {
            store.write(Command::Create(contact(n))).await.unwrap();
            tokio::task::block_in_place(|| worker.tick()).unwrap();
        }
        store
            .write(Command::Erase {
                id: large[0].clone(),
                if_match: None,
            })
            .await
            .unwrap();
        tokio::task::block_in_place(|| worker.tick()).unwrap();
        assert_eq!(worker.index.segment_docs(), [vec![1; 10], vec![3]].concat());

        merge_while_idle(&mut worker, |_| {}).await;
        assert_eq!(worker.index.segment_docs().len(), 4);
        // What the worker reports goes through the writer's queue: a write after it
        // has landed once acknowledged.
        store.write(Command::Create(contact(14))).await.unwrap();
        assert!(
            store.oldest_index_scrub().unwrap().is_some(),
            "the erased contact's segment was not merged, yet its scrub was reported"
        );
        store.shutdown();
    }

    /// A scrub rewrites every segment with deletions, in rounds of two bounded merges
    /// (each of these segments alone here), and reports the erases scrubbed only
    /// after its last round.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scrub_goes_in_rounds_and_reports_after_the_last() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut config = Config::default();
        // Due at once.
        config.store.scrub_within_secs = 0;
        let (store, mut worker) = worker_with(&dir, config);
        // Merges of at most three documents: two segments of two do not fit in one.
        worker.updater.set_full_merge_segment_docs(3);
        // Held, or the policy would rewrite these segments itself (a third of each
        // deleted is past its ratio), and the scrub would wait for its merges.
        worker.updater.pause_merges(true);
        // Three segments of three contacts; one contact of each erased.
        let mut erased = Vec::new();
        for segment in 0..3 {
            let writes =
                (segment * 3..segment * 3 + 3).map(|n| store.write(Command::Create(contact(n))));
            let acks = futures_util::future::join_all(writes).await;
            if let crate::store::Written::Contact(contact) = &acks[0].as_ref().unwrap().written {
                erased.push(contact.id.clone());
            }
            tokio::task::block_in_place(|| worker.tick()).unwrap();
        }
        for id in erased {
            store
                .write(Command::Erase { id, if_match: None })
                .await
                .unwrap();
        }
        tokio::task::block_in_place(|| worker.tick()).unwrap();
        assert_eq!(worker.index.segment_docs(), vec![2, 2, 2]);

        tokio::task::block_in_place(|| worker.start_merges(false));
        let first_round = worker.scrub.as_ref().expect("a scrub is under way");
        assert_eq!(
            first_round.pending.len(),
            1,
            "two merges in the first round"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while worker.scrub.is_some() || worker.merging.is_some() {
            assert!(Instant::now() < deadline, "the scrub never ended");
            assert!(
                store.oldest_index_scrub().unwrap().is_some(),
                "reported before its last round ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::task::block_in_place(|| worker.start_merges(false));
        }
        assert_eq!(
            worker.updater.plan_scrub().unwrap(),
            Some(Default::default())
        );
        assert_eq!(worker.index.segment_docs(), vec![2, 2, 2]);
        // The report goes through the writer's queue: it has landed once a later write
        // is acknowledged.
        store.write(Command::Create(contact(9))).await.unwrap();
        assert!(store.oldest_index_scrub().unwrap().is_none());
        store.shutdown();
    }
}
