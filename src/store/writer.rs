//! The single writer: group commit of queued commands.
//!
//! Callers queue a [`Job`] and wait on its reply. The writer thread takes the first
//! queued job, drains whatever else is already queued (up to `group_commit_max`),
//! applies them all in one write transaction, commits durably once, and only then
//! answers each caller. Throughput therefore grows with concurrency instead of stopping
//! at one fsync per write, and an acknowledged write is always on disk. A load's
//! batches ([`Job::Background`]) wait in a backlog of the writer's own and yield to
//! the other writes, so those do not queue behind thousands of rows.
//!
//! A commit of a load's batches alone is not synced to the disk (redb's
//! `Durability::None`) unless the oldest unsynced one is [`LOAD_SYNC_EVERY`] old; the
//! next commit of anything else, or an empty one as soon as the writer has nothing
//! queued, makes them durable (waiting for the disk was 14% of a load's store time).
//! Nothing a load's unsynced commit holds has been acknowledged to anyone: the import
//! job's cursor advances in the same transactions, so after a crash the job resumes
//! from the last durable one. Invariant: [`Shared::committed`] is only ever published
//! for durable commits, and the sync worker reads the change log only up to it and no
//! contact that an unsynced commit changed again ([`super::ChangeBatch::held_back`];
//! a chunked scan waits for each snapshot's sync), so the index never gets ahead of
//! what a restart would find in the store.
//!
//! An erase is acknowledged as soon as it commits: the record is gone from every
//! answer. Its bytes may survive in freed pages until a compaction (see [`compact`])
//! rewrites the file; the writer starts one when the oldest unscrubbed erase is half
//! the configured bound old, keeps committing while it copies, and pauses only for
//! its final swap. A failed compaction is retried after a pause.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase};
use serde_json::Value;
use tokio::sync::oneshot;

use super::compact;
use super::ops::{Identified, Merged, TaskStep, TxnTables};
use super::tables::SCRUBBED_STORE;
use super::tracked::Journal;
use super::{StoreError, StoreOptions};
use crate::model::{
    Company, CompanyInput, Contact, ContactInput, CustomFieldDef, CustomFieldInput, Event, Inbox,
    Side,
};
use crate::signal::SeqSignal;

/// A write the store can perform.
#[derive(Debug)]
pub enum Command {
    /// A contact command of a scoped key: see [`super::ScopeGuard`].
    Scoped {
        guard: Arc<super::ScopeGuard>,
        command: Box<Command>,
    },
    Create(Box<ContactInput>),
    /// A JSON merge patch (RFC 7396), checked against `if_match` when given.
    Patch {
        id: String,
        patch: Value,
        if_match: Option<u64>,
    },
    Delete {
        id: String,
        if_match: Option<u64>,
    },
    Restore {
        id: String,
        if_match: Option<u64>,
    },
    /// Permanent erase: the record, its claims, merge snapshots; a scrub of the
    /// files follows within the configured bound.
    Erase {
        id: String,
        if_match: Option<u64>,
    },
    Identify(Box<ContactInput>),
    Events {
        id: String,
        events: Vec<Event>,
    },
    /// Independent events for many contacts; each applies or fails on its own.
    EventsBatch(Vec<(String, Event)>),
    /// One action on a chunk of contacts; each applies whole or fails on its own.
    /// A dry run checks everything and writes nothing.
    Bulk {
        action: Arc<super::BulkAction>,
        ids: Vec<String>,
        dry_run: bool,
    },
    Merge {
        id: String,
        other_id: String,
        keep: BTreeMap<String, Side>,
        if_match: Option<u64>,
        dry_run: bool,
    },
    Unmerge {
        id: String,
        other_id: String,
    },
    DefineField(CustomFieldInput),
    /// Change a definition. Whether values would be lost is checked before (see
    /// [`super::Store::values_lost_by`]); values it rejects are cleared.
    UpdateField {
        key: String,
        patch: Value,
    },
    /// Delete a definition and clear its values.
    DeleteField {
        key: String,
    },
    CreateCompany(CompanyInput),
    PatchCompany {
        id: String,
        patch: Value,
        if_match: Option<u64>,
    },
    DeleteCompany {
        id: String,
    },
    /// Create (no `expected_version`) or replace a validated inbox.
    PutInbox {
        inbox: Box<Inbox>,
        expected_version: Option<u64>,
    },
    DeleteInbox {
        id: String,
    },
    /// Rows of an import, each applied whole or refused on its own.
    ImportBatch {
        rows: Vec<ContactInput>,
        mode: super::ImportMode,
        match_by: super::MatchBy,
        dry_run: bool,
    },
    /// Records of a dump, into a store that must be empty when `first`.
    Load {
        lines: Vec<super::DumpLine>,
        first: bool,
    },
    /// Record a new job.
    PutJob(Box<crate::jobs::JobRecord>),
    ChangeJob {
        id: String,
        change: crate::jobs::JobChange,
    },
    /// `command`, with its outcome added to a job's record in the same transaction:
    /// the record's cursor is always where the committed work ends.
    Step {
        step: crate::jobs::JobStep,
        command: Box<Command>,
    },
    /// Remove jobs finished before this time.
    PruneJobs {
        finished_before: DateTime<Utc>,
    },
    /// Erase up to `limit` deleted contacts whose restore window has passed.
    PurgeExpired {
        limit: usize,
    },
    /// The index has no bytes of contacts erased up to `through` any more.
    IndexScrubbed {
        through: u64,
    },
    /// Drop change-log entries the index has durably applied.
    TrimChanges {
        up_to: u64,
    },
    /// Finish the queued commands, then stop the writer.
    Shutdown,
    /// Panics inside the batch's transaction: tests the writer's panic boundary.
    #[cfg(test)]
    PanicForTest,
    /// Says so on `holding`, then keeps the writer until `release` is signalled: lets
    /// a test queue jobs while the writer is busy.
    #[cfg(test)]
    HoldForTest {
        holding: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    },
}

/// What a command produced.
#[derive(Debug)]
pub enum Written {
    Contact(Box<Contact>),
    Identified(Box<Identified>),
    /// What each row of an import batch did, in order.
    Imported(Vec<Result<super::ImportedRow, StoreError>>),
    Merged(Box<Merged>),
    Events(Vec<Result<Contact, StoreError>>),
    /// What a bulk action did to each contact of its chunk: whether it changed it.
    Bulk(Vec<(String, Result<bool, StoreError>)>),
    /// A definition and how many contacts lost their value.
    Field(CustomFieldDef, usize),
    FieldDeleted(usize),
    Company(Company),
    /// How many contacts were unlinked.
    CompanyDeleted(usize),
    Inbox(Box<Inbox>),
    Purged(usize),
    /// Records of a dump stored.
    Loaded(usize),
    Job(Box<crate::jobs::JobStatus>),
    PrunedJobs(Vec<crate::jobs::JobRecord>),
    Nothing,
}

/// A durable write: what it produced and the change-log sequence after it.
#[derive(Debug)]
pub struct WriteAck {
    pub written: Written,
    pub seq: u64,
}

/// A group commit taking this long is logged at debug level, with whether a compaction
/// was running (an import batch of 2,048 rows takes longer: that is expected).
const SLOW_COMMIT: Duration = Duration::from_millis(100);
/// Longest a load's commits stay unsynced (see the module docs): the most of a load a
/// crash can take back, and how far the index may lag behind the load.
const LOAD_SYNC_EVERY: Duration = Duration::from_secs(1);
/// How long no load may have run before a pack of the store file starts.
const PACK_QUIET: Duration = Duration::from_secs(5);

/// The shorter of two waits, where `None` is no deadline.
fn sooner(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the writer thread receives.
pub(super) enum Job {
    Write {
        command: Command,
        reply: Option<oneshot::Sender<Outcome>>,
    },
    /// A write that yields to the others, for a load's batches of thousands of rows:
    /// kept in the writer's backlog, in the order queued, and committed together in
    /// a group commit of their own when [`Job::Write`]s wait (at most every other
    /// commit, so that neither kind starves). So an interactive write waits for at
    /// most the group commit under way, not for every batch queued before it.
    Background {
        command: Command,
        reply: Option<oneshot::Sender<Outcome>>,
    },
    /// A step of a running compaction (see [`compact`]).
    Compactor(compact::Request),
    /// Copy the store into `target` (a backup), answering with the sequence it holds.
    Backup {
        target: std::path::PathBuf,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Answered once every job queued before it is handled and the compaction status
    /// shows what they call for: running, or a pack pending (see
    /// [`super::Store::wait_for_compaction`]).
    Barrier(oneshot::Sender<()>),
}

type Outcome = Result<WriteAck, StoreError>;

/// The open database, swapped when a compaction finishes. A std RwLock: held only to
/// clone or replace the `Arc`, never across an await.
pub(super) type SharedDb = Arc<RwLock<Arc<Database>>>;

/// How the last compaction went, for `/v1/stats` and the maintenance bench.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactionStatus {
    pub running: bool,
    /// Imports wrote enough rows for a pack of the store file, which starts once
    /// no load has run for a few seconds (or runs now: see `running`).
    pub pack_pending: bool,
    /// Failed attempts since the last success (each is retried).
    pub failures: u32,
    pub last_error: Option<String>,
    /// The last successful one: whole duration and the part writes waited for.
    pub last_seconds: Option<f64>,
    pub last_swap_ms: Option<f64>,
    pub completed: u64,
}

/// Shared with [`super::Store`] for reporting; a std Mutex held only to copy or
/// update the status.
pub(super) type SharedStatus = Arc<std::sync::Mutex<CompactionStatus>>;

pub(super) struct Shared {
    pub db: SharedDb,
    pub committed: Arc<SeqSignal>,
    pub defs: Arc<super::DefsCache>,
    pub status: SharedStatus,
    /// The queue's sender, for the compactor thread (weak, so dropping the store
    /// still closes the queue).
    pub queue: std::sync::Weak<std::sync::mpsc::SyncSender<Job>>,
    pub health: Arc<WriterHealth>,
    /// Write jobs sent and not yet taken (the store counts them in, the writer out).
    pub queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Rules from a config reload, taken before the next batch.
    pub pending_rules: Arc<std::sync::Mutex<Option<crate::model::Rules>>>,
    /// Bulk loads running (see [`super::Store::bulk_load`]): a load is packed once
    /// none runs.
    pub bulk_loads: Arc<std::sync::atomic::AtomicUsize>,
}

/// What readiness reports about the writer thread.
#[derive(Debug, Default)]
pub struct WriterHealth {
    running: std::sync::atomic::AtomicBool,
    panics: std::sync::atomic::AtomicU64,
}

impl WriterHealth {
    /// Whether the writer thread is taking commands.
    pub fn running(&self) -> bool {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Batches (or task chunks) that panicked and were failed since start.
    pub fn panics(&self) -> u64 {
        self.panics.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Marks the writer stopped when its thread ends, however it ends.
struct RunningMark(Arc<WriterHealth>);

impl Drop for RunningMark {
    fn drop(&mut self) {
        self.0
            .running
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs `work` under a panic boundary: a panic becomes [`StoreError::Panicked`] (the
/// transaction it was in is dropped, so nothing of it is committed) and is counted.
fn unless_panicked<T>(
    health: &WriterHealth,
    work: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    crate::boundary::catch(work).unwrap_or_else(|message| {
        health
            .panics
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(StoreError::Panicked(message))
    })
}

/// `rewritten_rows`: rows a conversion at open rewrote, counted like a load's toward
/// a pack of the file (the old tables' pages are free but still in it).
pub(super) fn spawn(
    shared: Shared,
    options: StoreOptions,
    path: std::path::PathBuf,
    queue: Receiver<Job>,
    rewritten_rows: u64,
) -> Result<JoinHandle<()>, StoreError> {
    let health = shared.health.clone();
    health
        .running
        .store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let _mark = RunningMark(health);
            let mut writer = Writer::new(shared, options, path);
            writer.count_imported(rewritten_rows);
            writer.run(&queue)
        })
        .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))
}

/// A compaction in progress: the snapshot it copies and the keys changed since.
struct Compaction {
    snapshot_seq: u64,
    journal: Journal,
    started: Instant,
    purpose: Purpose,
}

/// What a compaction's copy is for.
enum Purpose {
    /// Replaces the store file with the copy: scrubs erased contacts' bytes and packs
    /// the B-tree pages densely (see [`Replacement`]).
    Replace(Replacement),
    /// A backup in `target`; the caller waits on `reply`.
    Backup {
        target: std::path::PathBuf,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// Why the store file is replaced (both reasons get both effects).
#[derive(Debug, Clone, Copy)]
enum Replacement {
    /// Erases are due to leave the file.
    Scrub,
    /// Imports wrote many rows since the last rewrite. A load inserts keys at random
    /// places (identities, names) and splits pages into halves that later inserts
    /// fill only in part: at 1M contacts the file was 1,071 MiB, a copy in key order
    /// 707 MiB.
    Pack,
}

impl Replacement {
    fn describe(self) -> &'static str {
        match self {
            Replacement::Scrub => "compacting the store file to scrub erased contacts",
            Replacement::Pack => {
                "compacting the store file to pack the pages a load left part empty"
            }
        }
    }
}

struct Writer {
    shared: Shared,
    options: StoreOptions,
    path: std::path::PathBuf,
    compaction: Option<Compaction>,
    /// Erased-at of the oldest erase the store file may still hold bytes of.
    oldest_unscrubbed: Option<DateTime<Utc>>,
    /// No new compaction before this (after a failure).
    retry_at: Option<Instant>,
    /// Catalog tasks wait in the `tasks` table (see [`super::ops::CatalogTask`]).
    tasks_pending: bool,
    /// No task chunk before this (after a failure).
    task_retry_at: Option<Instant>,
    /// Callers answered when their command's task is done, with the command's ack.
    awaiting_tasks: std::collections::HashMap<u64, (oneshot::Sender<Outcome>, WriteAck)>,
    /// Backups asked for, started one at a time when no compaction runs.
    backups:
        std::collections::VecDeque<(std::path::PathBuf, oneshot::Sender<Result<u64, StoreError>>)>,
    /// Rows imports wrote since the store file was last replaced.
    imported_rows: u64,
    /// Those rows call for a pack (see [`Writer::count_imported`]).
    pack_wanted: bool,
    /// When the writer last saw a load running.
    load_seen_at: Option<Instant>,
    /// [`Job::Background`] writes received and not yet committed, oldest first.
    background: std::collections::VecDeque<(Command, Option<oneshot::Sender<Outcome>>)>,
    /// The last group commit held other writes and left the backlog waiting: the next
    /// one takes the backlog, whatever else waits (so a write flood cannot starve a
    /// load).
    background_passed_over: bool,
    /// [`Job::Barrier`]s received, answered once the backlog is empty too.
    barriers: Vec<oneshot::Sender<()>>,
    /// The last sequence a load's unsynced commits wrote, and when the first of them
    /// committed; `None` while every commit is durable (see the module docs).
    unsynced: Option<(u64, Instant)>,
    /// When to try syncing them again after a failure ([`LOAD_SYNC_EVERY`] later).
    sync_retry_at: Option<Instant>,
}

impl Writer {
    fn new(shared: Shared, options: StoreOptions, path: std::path::PathBuf) -> Writer {
        let mut writer = Writer {
            shared,
            options,
            path,
            compaction: None,
            oldest_unscrubbed: None,
            retry_at: None,
            // Checked by the first chunk: tasks left by an earlier run resume.
            tasks_pending: true,
            task_retry_at: None,
            awaiting_tasks: std::collections::HashMap::new(),
            backups: std::collections::VecDeque::new(),
            imported_rows: 0,
            pack_wanted: false,
            load_seen_at: None,
            background: std::collections::VecDeque::new(),
            background_passed_over: false,
            barriers: Vec::new(),
            unsynced: None,
            sync_retry_at: None,
        };
        writer.reload_unscrubbed();
        writer
    }

    fn db(&self) -> Arc<Database> {
        self.shared
            .db
            .read()
            .expect("db lock is never poisoned")
            .clone()
    }

    fn run(mut self, queue: &Receiver<Job>) {
        let mut stopping = false;
        let mut disconnected = false;
        // Once every sender is gone, the backlog is still committed before stopping.
        while !(stopping || (disconnected && self.background.is_empty())) {
            self.note_loads();
            // Unsynced load commits are synced before the writer waits for work.
            let wait = sooner(
                sooner(self.until_compaction_due(), self.until_task_due()),
                self.until_sync_due(),
            );
            let first = if disconnected {
                None
            } else if !self.background.is_empty() {
                // Background work is ready: take what else is queued, never wait.
                queue.try_recv().ok()
            } else {
                match wait {
                    Some(wait) => match queue.recv_timeout(wait) {
                        Ok(job) => Some(job),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                    None => match queue.recv() {
                        Ok(job) => Some(job),
                        Err(_) => break,
                    },
                }
            };
            if let Some(rules) = self
                .shared
                .pending_rules
                .lock()
                .expect("never poisoned")
                .take()
            {
                self.options.rules = rules;
            }
            let mut writes = Vec::new();
            let mut requests = Vec::new();
            let nothing_queued = first.is_none();
            let mut next = first;
            while let Some(job) = next {
                match job {
                    Job::Write { command, reply } => {
                        self.shared
                            .queued
                            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        writes.push((command, reply));
                    }
                    Job::Background { command, reply } => {
                        self.shared
                            .queued
                            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        self.background.push_back((command, reply));
                    }
                    Job::Compactor(request) => requests.push(request),
                    Job::Backup { target, reply } => {
                        self.shared
                            .queued
                            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        self.backups.push_back((target, reply));
                    }
                    Job::Barrier(reply) => self.barriers.push(reply),
                }
                next = if writes.len() < self.options.group_commit_max {
                    match queue.try_recv() {
                        Ok(job) => Some(job),
                        Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Disconnected) => {
                            disconnected = true;
                            None
                        }
                    }
                } else {
                    None
                };
            }
            // Writes of anyone but a load are acknowledged, so their commit is durable.
            let load_only = writes.is_empty();
            let shutdown_at = writes
                .iter()
                .position(|(command, _)| matches!(command, Command::Shutdown));
            stopping = shutdown_at.is_some();
            if let Some(at) = shutdown_at {
                // The background writes queued before the shutdown are committed too.
                writes.splice(at..at, self.background.drain(..));
            } else if writes.is_empty() || self.background_passed_over {
                // Large commits load fastest (a 1M load took 16% longer at one batch a
                // commit), so the backlog goes in whole, except when other writes wait
                // and the last commit was not theirs alone: those are committed first.
                self.background_passed_over = false;
                writes.extend(self.background.drain(..));
            } else {
                self.background_passed_over = !self.background.is_empty();
            }
            if !writes.is_empty() {
                let sync_overdue = self
                    .unsynced
                    .is_some_and(|(_, oldest)| oldest.elapsed() >= LOAD_SYNC_EVERY);
                self.write(writes, !load_only || stopping || sync_overdue);
            } else if nothing_queued && self.until_sync_due() == Some(Duration::ZERO) {
                // Nothing was queued: the load paused or ended.
                self.sync_load_commits();
            }
            for request in requests {
                self.serve_compactor(request);
            }
            // One chunk between batches: a write waits for one chunk at most.
            if !stopping && self.until_task_due() == Some(Duration::ZERO) {
                self.run_task_chunk();
            }
            self.maybe_start_compaction();
            if self.background.is_empty() {
                for reply in self.barriers.drain(..) {
                    let _ = reply.send(());
                }
            }
        }
        self.sync_load_commits();
        tracing::debug!("store writer stopped");
    }

    /// Makes a load's unsynced commits durable with an empty durable commit, and
    /// publishes their sequence. On failure they stay unsynced: the writer tries again
    /// a second later, and any commit of other writes is durable meanwhile.
    fn sync_load_commits(&mut self) {
        let Some((last_seq, _)) = self.unsynced else {
            return;
        };
        let synced = self
            .db()
            .begin_write()
            .map_err(StoreError::from)
            .and_then(|txn| txn.commit().map_err(StoreError::from));
        match synced {
            Ok(()) => self.publish_durable(last_seq),
            Err(error) => {
                tracing::error!(%error, "syncing a load's commits failed; retrying in a second");
                self.sync_retry_at = Some(Instant::now() + LOAD_SYNC_EVERY);
            }
        }
    }

    /// Everything up to `last_seq` is durable: nothing is left unsynced, and the
    /// sequence is published as committed.
    fn publish_durable(&mut self, last_seq: u64) {
        self.unsynced = None;
        self.sync_retry_at = None;
        self.shared.committed.publish(last_seq);
    }

    /// How long until unsynced load commits are to be synced (see
    /// [`Writer::sync_load_commits`]); `None` when there are none.
    fn until_sync_due(&self) -> Option<Duration> {
        self.unsynced?;
        Some(self.sync_retry_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        }))
    }

    /// Runs `commit` on the open database with the journal of the running compaction
    /// (a scratch one when none runs: nothing needs the changed keys then).
    fn with_journal<T>(
        &mut self,
        commit: impl FnOnce(&Database, &StoreOptions, &mut Journal) -> T,
    ) -> T {
        let current = self.db();
        let mut scratch = Journal::default();
        let journal = match self.compaction.as_mut() {
            Some(compaction) => &mut compaction.journal,
            None => &mut scratch,
        };
        commit(&current, &self.options, journal)
    }

    /// Commits a batch and answers its callers; unsynced unless `durable` (only a
    /// load's batches alone may be, see the module docs).
    fn write(
        &mut self,
        mut batch: Vec<(Command, Option<oneshot::Sender<Outcome>>)>,
        durable: bool,
    ) {
        let tracking = self.compaction.is_some();
        let started = Instant::now();
        let health = self.shared.health.clone();
        let committed = unless_panicked(&health, || {
            self.with_journal(|db, options, journal| {
                commit_batch(db, &mut batch, options, tracking, durable, journal)
            })
        });
        let took = started.elapsed();
        metrics::histogram!("contactd_store_commit_seconds").record(took.as_secs_f64());
        metrics::counter!("contactd_store_commands_total").increment(batch.len() as u64);
        if took >= SLOW_COMMIT {
            tracing::debug!(
                ms = took.as_secs_f64() * 1e3,
                commands = batch.len(),
                compacting = tracking,
                "slow group commit"
            );
        }
        let outcomes = match committed {
            Ok(Committed {
                outcomes,
                last_seq,
                erased,
                defs_changed,
                imported_rows,
            }) => {
                self.count_imported(imported_rows);
                if defs_changed {
                    self.shared.defs.invalidate();
                }
                if erased && self.oldest_unscrubbed.is_none() {
                    self.oldest_unscrubbed = Some(self.options.clock.now());
                }
                if durable {
                    self.publish_durable(last_seq);
                } else {
                    let oldest = self
                        .unsynced
                        .map_or_else(Instant::now, |(_, oldest)| oldest);
                    self.unsynced = Some((last_seq, oldest));
                }
                outcomes
            }
            Err(error) => {
                tracing::error!(%error, commands = batch.len(), "group commit failed");
                self.journal_unreliable();
                let failed = || match &error {
                    StoreError::Panicked(message) => StoreError::Panicked(message.clone()),
                    other => StoreError::Corrupt(other.to_string()),
                };
                batch.iter().map(|_| (Err(failed()), None)).collect()
            }
        };
        for ((_, reply), (outcome, task)) in batch.into_iter().zip(outcomes) {
            match (task, outcome) {
                (Some(task), Ok(ack)) => {
                    self.tasks_pending = true;
                    if let Some(reply) = reply {
                        self.awaiting_tasks.insert(task, (reply, ack));
                    }
                }
                (_, outcome) => {
                    if let Some(reply) = reply {
                        // The caller may have gone away (client disconnected); the
                        // write stands.
                        let _ = reply.send(outcome);
                    }
                }
            }
        }
    }

    /// Runs one chunk of the oldest catalog task in its own transaction, and answers
    /// the command that queued the task once it is done.
    fn run_task_chunk(&mut self) {
        let tracking = self.compaction.is_some();
        let health = self.shared.health.clone();
        let chunk = unless_panicked(&health, || {
            self.with_journal(|db, options, journal| {
                commit_task_chunk(db, options, tracking, journal)
            })
        });
        match chunk {
            Ok((None, _)) => self.tasks_pending = false,
            Ok((Some(step), last_seq)) => {
                self.task_retry_at = None;
                self.shared.committed.publish(last_seq);
                if step.done {
                    tracing::info!(task = step.task, count = step.count, "catalog task done");
                    if let Some((reply, ack)) = self.awaiting_tasks.remove(&step.task) {
                        let written = match ack.written {
                            Written::Field(def, _) => Written::Field(def, step.count),
                            Written::FieldDeleted(_) => Written::FieldDeleted(step.count),
                            Written::CompanyDeleted(_) => Written::CompanyDeleted(step.count),
                            other => other,
                        };
                        let _ = reply.send(Ok(WriteAck {
                            written,
                            seq: last_seq,
                        }));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "a catalog task chunk failed; retrying in a second");
                self.journal_unreliable();
                self.task_retry_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    /// How long the queue may be waited on before a task chunk is due; `None` when no
    /// task waits.
    fn until_task_due(&self) -> Option<Duration> {
        if !self.tasks_pending {
            return None;
        }
        Some(self.task_retry_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        }))
    }

    /// How long the queue may be waited on before a compaction is due; `None` when
    /// none is pending.
    fn until_compaction_due(&self) -> Option<Duration> {
        if self.compaction.is_some() {
            return None;
        }
        sooner(self.until_scrub_due(), self.until_pack_due())
    }

    /// How long until the oldest unscrubbed erase is due for a compaction.
    fn until_scrub_due(&self) -> Option<Duration> {
        let oldest = self.oldest_unscrubbed?;
        // Compacting at half the bound batches the erases of that half.
        let due = oldest + chrono::Duration::from_std(self.options.scrub_within / 2).ok()?;
        let mut wait = (due - self.options.clock.now())
            .to_std()
            .unwrap_or_default();
        if let Some(retry_at) = self.retry_at {
            wait = wait.max(retry_at.saturating_duration_since(Instant::now()));
        }
        Some(wait)
    }

    /// How long until a wanted pack may start: once no load has been seen for
    /// [`PACK_QUIET`] (a pack that started between two files of a series would copy
    /// the store while the next file's rows pour in) and no failure pauses
    /// compactions. Never zero while a load runs, so the writer does not spin.
    fn until_pack_due(&self) -> Option<Duration> {
        if !self.pack_wanted {
            return None;
        }
        let now = Instant::now();
        let quiet_from = self.load_seen_at.map(|at| at + PACK_QUIET);
        let from = quiet_from.max(self.retry_at).unwrap_or(now);
        Some(from.saturating_duration_since(now))
    }

    /// Notes a running load (called at every turn of the writer's loop).
    fn note_loads(&mut self) {
        let loading = self
            .shared
            .bulk_loads
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0;
        if loading {
            self.load_seen_at = Some(Instant::now());
        }
    }

    /// Adds the rows a commit imported and decides whether a pack is wanted: enough
    /// rows since the last rewrite, and at least a quarter of the store (a small load
    /// into a large store is not worth a copy of it).
    fn count_imported(&mut self, rows: u64) {
        self.imported_rows += rows;
        let threshold = self.options.compact_after_import_rows;
        if rows == 0 || threshold == 0 || self.imported_rows < threshold {
            return;
        }
        let counts = self
            .db()
            .begin_read()
            .map_err(StoreError::from)
            .and_then(|txn| super::read::counts(&txn));
        match counts {
            Ok(counts) => {
                let total: u64 = counts.iter().map(|(_, count)| count).sum();
                self.set_pack_wanted(self.imported_rows.saturating_mul(4) >= total);
            }
            Err(error) => tracing::error!(%error, "cannot read the contact counts"),
        }
    }

    fn set_pack_wanted(&mut self, wanted: bool) {
        self.pack_wanted = wanted;
        self.status().pack_pending = wanted;
    }

    /// Starts a compaction when none runs: a scrub when one is due, else the oldest
    /// backup asked for, else a pack after a load.
    fn maybe_start_compaction(&mut self) {
        if self.compaction.is_some() {
            return;
        }
        self.note_loads();
        let purpose = if self.until_scrub_due() == Some(Duration::ZERO) {
            Purpose::Replace(Replacement::Scrub)
        } else if let Some((target, reply)) = self.backups.pop_front() {
            Purpose::Backup { target, reply }
        } else if self.until_pack_due() == Some(Duration::ZERO) {
            Purpose::Replace(Replacement::Pack)
        } else {
            return;
        };
        let Some(queue) = self.shared.queue.upgrade() else {
            return;
        };
        let queue = (*queue).clone();
        let ask = move |request| queue.send(Job::Compactor(request)).is_ok();
        let target = match &purpose {
            Purpose::Replace(_) => compact::copy_path(&self.path),
            Purpose::Backup { target, .. } => target.clone(),
        };
        let started = (|| {
            let live = self.db();
            let snapshot_seq = super::read::last_seq(&live.begin_read()?)?;
            compact::start(live, target, self.options.cache_bytes, ask)?;
            Ok::<u64, StoreError>(snapshot_seq)
        })();
        let replacement = match purpose {
            Purpose::Replace(why) => Some(why),
            Purpose::Backup { .. } => None,
        };
        self.compaction = Some(Compaction {
            snapshot_seq: started.as_ref().copied().unwrap_or_default(),
            journal: Journal::default(),
            started: Instant::now(),
            purpose,
        });
        match started {
            Ok(snapshot_seq) if let Some(why) = replacement => {
                tracing::info!(
                    snapshot_seq,
                    imported_rows = self.imported_rows,
                    "{}",
                    why.describe()
                );
                self.status().running = true;
            }
            Ok(snapshot_seq) => tracing::info!(snapshot_seq, "copying the store for a backup"),
            Err(error) => self.compaction_failed(error),
        }
    }

    fn serve_compactor(&mut self, request: compact::Request) {
        let Some(mut compaction) = self.compaction.take() else {
            return;
        };
        match request {
            compact::Request::CatchUp(reply) => {
                let journal = std::mem::take(&mut compaction.journal);
                match self.db().begin_read() {
                    Ok(snapshot) => {
                        let _ = reply.send((journal, snapshot));
                        self.compaction = Some(compaction);
                    }
                    Err(error) => {
                        self.compaction = Some(compaction);
                        self.compaction_failed(error.into());
                    }
                }
            }
            compact::Request::Finish(copy) => match compaction.purpose {
                Purpose::Backup { target, reply } => {
                    match compact::finish_backup(&self.db(), &copy, &compaction.journal) {
                        Ok(seq) => close_backup(copy, target, reply, seq),
                        Err(error) => {
                            drop(copy);
                            let _ = std::fs::remove_file(&target);
                            let _ = reply.send(Err(error));
                        }
                    }
                }
                Purpose::Replace(_) => {
                    let swap_started = Instant::now();
                    let current = self.db();
                    match compact::finish(
                        &current,
                        copy,
                        &compaction.journal,
                        compaction.snapshot_seq,
                        &self.path,
                    ) {
                        Ok(fresh) => {
                            let replaced = std::mem::replace(
                                &mut *self.shared.db.write().expect("db lock is never poisoned"),
                                Arc::new(fresh),
                            );
                            drop(current);
                            retire(replaced);
                            let swap = swap_started.elapsed();
                            let seconds = compaction.started.elapsed().as_secs_f64();
                            tracing::info!(
                                seconds,
                                swap_ms = swap.as_secs_f64() * 1e3,
                                scrubbed_through = compaction.snapshot_seq,
                                "store file compacted"
                            );
                            self.retry_at = None;
                            // The copy holds every row imported so far, packed.
                            self.imported_rows = 0;
                            self.pack_wanted = false;
                            let mut status = self.status();
                            *status = CompactionStatus {
                                running: false,
                                pack_pending: false,
                                failures: 0,
                                last_error: None,
                                last_seconds: Some(seconds),
                                last_swap_ms: Some(swap.as_secs_f64() * 1e3),
                                completed: status.completed + 1,
                            };
                            drop(status);
                            self.reload_unscrubbed();
                        }
                        Err(error) => self.compaction_failed(error),
                    }
                }
            },
            compact::Request::Failed(error) => {
                self.compaction = Some(compaction);
                self.compaction_failed(error);
            }
        }
    }

    /// A transaction failed, possibly after noting its changes in the journal: the
    /// running compaction can no longer trust it (see [`super::tracked`]) and starts
    /// over later.
    fn journal_unreliable(&mut self) {
        if self.compaction.is_some() {
            self.compaction_failed(StoreError::Corrupt(
                "a write failed during the compaction".into(),
            ));
        }
    }

    /// Gives up the running compaction; the erases stay pending and a new attempt
    /// starts after a pause.
    fn compaction_failed(&mut self, error: StoreError) {
        if let Some(Compaction {
            purpose: Purpose::Backup { target, reply },
            ..
        }) = self.compaction.take()
        {
            tracing::error!(%error, "copying the store for a backup failed");
            let _ = std::fs::remove_file(&target);
            let _ = reply.send(Err(error));
            return;
        }
        tracing::error!(%error, "compacting the store file failed; it will be retried");
        self.compaction = None;
        let retry =
            (self.options.scrub_within / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        self.retry_at = Some(Instant::now() + retry);
        let _ = compact::remove_stray_copy(&self.path);
        let mut status = self.status();
        status.running = false;
        status.failures += 1;
        status.last_error = Some(error.to_string());
    }

    /// Reads which erases the store file may still hold bytes of.
    fn reload_unscrubbed(&mut self) {
        let oldest = self
            .db()
            .begin_read()
            .map_err(StoreError::from)
            .and_then(|txn| super::read::oldest_unscrubbed(&txn, SCRUBBED_STORE));
        match oldest {
            Ok(oldest) => {
                self.oldest_unscrubbed = oldest.map(|(_, at)| {
                    i64::try_from(at)
                        .ok()
                        .and_then(DateTime::from_timestamp_millis)
                        .unwrap_or_default()
                })
            }
            Err(error) => tracing::error!(%error, "cannot read the pending scrubs"),
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, CompactionStatus> {
        self.shared
            .status
            .lock()
            .expect("status mutex is never poisoned")
    }
}

/// Applies every command in one transaction. An internal error aborts the whole batch
/// (nothing is committed, every caller gets an error); a user error only fails its own
/// command, which by the [`TxnTables`] invariant has changed nothing. With
/// `tracking`, the keys it changed are added to `journal`.
fn commit_batch(
    db: &Database,
    batch: &mut [(Command, Option<oneshot::Sender<Outcome>>)],
    options: &StoreOptions,
    tracking: bool,
    durable: bool,
    journal: &mut Journal,
) -> Result<Committed, StoreError> {
    let mut txn = db.begin_write()?;
    if !durable {
        txn.set_durability(redb::Durability::None)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    let (last_seq, erased, defs_changed, imported_rows) = {
        let mut tables = TxnTables::open(&txn, &options.rules, options.clock.now(), tracking)?;
        for (command, _) in batch.iter_mut() {
            let command = std::mem::replace(command, Command::Shutdown);
            let outcome = apply(&mut tables, command);
            if let Err(error) = &outcome
                && error.is_internal()
            {
                return Err(outcome.expect_err("checked above"));
            }
            outcomes.push((outcome, tables.queued_task.take()));
        }
        let (defs_changed, imported_rows) = (tables.defs_changed, tables.imported_rows);
        let (last_seq, erased) = tables.finish(journal)?;
        (last_seq, erased, defs_changed, imported_rows)
    };
    txn.commit()?;
    Ok(Committed {
        outcomes,
        last_seq,
        erased,
        defs_changed,
        imported_rows,
    })
}

/// What a group commit did.
struct Committed {
    /// Each command's outcome, and the catalog task it queued, if any.
    outcomes: Vec<(Outcome, Option<u64>)>,
    last_seq: u64,
    /// A contact was erased (its bytes wait for a scrub).
    erased: bool,
    /// A custom field definition changed.
    defs_changed: bool,
    /// Rows imports wrote.
    imported_rows: u64,
}

/// One chunk of the oldest catalog task in its own transaction: what it did and the
/// sequence after it.
fn commit_task_chunk(
    db: &Database,
    options: &StoreOptions,
    tracking: bool,
    journal: &mut Journal,
) -> Result<(Option<TaskStep>, u64), StoreError> {
    let txn = db.begin_write()?;
    let (step, last_seq) = {
        let mut tables = TxnTables::open(&txn, &options.rules, options.clock.now(), tracking)?;
        let step = tables.run_task_chunk()?;
        if step.is_none() {
            return Ok((None, tables.last_seq()));
        }
        let (last_seq, _) = tables.finish(journal)?;
        (step, last_seq)
    };
    txn.commit()?;
    Ok((step, last_seq))
}

fn apply(tables: &mut TxnTables<'_>, command: Command) -> Outcome {
    let contact = |(contact, seq): (Contact, u64)| WriteAck {
        written: Written::Contact(Box::new(contact)),
        seq,
    };
    let seq_now = |tables: &TxnTables<'_>| tables.last_seq();
    Ok(match command {
        Command::Scoped { guard, command } => {
            tables.enter_scope(guard);
            let outcome = apply(tables, *command).map_err(|e| tables.redact_holders(e));
            tables.leave_scope();
            return outcome;
        }
        Command::Create(input) => contact(tables.create(*input)?),
        Command::Patch {
            id,
            patch,
            if_match,
        } => contact(tables.patch(&id, &patch, if_match)?),
        Command::Delete { id, if_match } => contact(tables.delete(&id, if_match)?),
        Command::Restore { id, if_match } => contact(tables.restore(&id, if_match)?),
        Command::Erase { id, if_match } => contact(tables.erase_contact(&id, if_match)?),
        Command::Identify(input) => {
            let (identified, seq) = tables.identify(*input)?;
            WriteAck {
                written: Written::Identified(Box::new(identified)),
                seq,
            }
        }
        Command::Events { id, events } => contact(tables.apply_events(&id, &events)?),
        Command::EventsBatch(events) => {
            let mut results = Vec::with_capacity(events.len());
            for (id, event) in events {
                match tables.apply_events(&id, std::slice::from_ref(&event)) {
                    Err(error) if error.is_internal() => return Err(error),
                    result => results.push(result.map(|(c, _)| c)),
                }
            }
            WriteAck {
                written: Written::Events(results),
                seq: seq_now(tables),
            }
        }
        Command::Bulk {
            action,
            ids,
            dry_run,
        } => {
            tables.dry_run = dry_run;
            let mut results = Vec::with_capacity(ids.len());
            for id in ids {
                match tables.bulk_one(&action, &id) {
                    Err(error) if error.is_internal() => {
                        tables.dry_run = false;
                        return Err(error);
                    }
                    result => {
                        let result = result.map_err(|e| tables.redact_holders(e));
                        results.push((id, result));
                    }
                }
            }
            tables.dry_run = false;
            WriteAck {
                written: Written::Bulk(results),
                seq: seq_now(tables),
            }
        }
        Command::Merge {
            id,
            other_id,
            keep,
            if_match,
            dry_run,
        } => {
            let (merged, seq) = tables.merge(&id, &other_id, &keep, if_match, dry_run)?;
            WriteAck {
                written: Written::Merged(Box::new(merged)),
                seq,
            }
        }
        Command::Unmerge { id, other_id } => {
            let (merged, seq) = tables.unmerge(&id, &other_id)?;
            WriteAck {
                written: Written::Merged(Box::new(merged)),
                seq,
            }
        }
        Command::DefineField(input) => {
            let def = tables.define_field(input)?;
            WriteAck {
                written: Written::Field(def, 0),
                seq: seq_now(tables),
            }
        }
        Command::UpdateField { key, patch } => {
            let (def, _) = tables.update_field(&key, &patch)?;
            WriteAck {
                written: Written::Field(def, 0),
                seq: seq_now(tables),
            }
        }
        Command::DeleteField { key } => {
            tables.delete_field(&key)?;
            WriteAck {
                written: Written::FieldDeleted(0),
                seq: seq_now(tables),
            }
        }
        Command::CreateCompany(input) => WriteAck {
            written: Written::Company(tables.create_company(input)?),
            seq: seq_now(tables),
        },
        Command::PatchCompany {
            id,
            patch,
            if_match,
        } => {
            let company = tables.patch_company(&id, &patch, if_match)?;
            WriteAck {
                written: Written::Company(company),
                seq: seq_now(tables),
            }
        }
        Command::DeleteCompany { id } => {
            tables.delete_company(&id)?;
            WriteAck {
                written: Written::CompanyDeleted(0),
                seq: seq_now(tables),
            }
        }
        Command::PutInbox {
            inbox,
            expected_version,
        } => {
            let inbox = tables.put_inbox(*inbox, expected_version)?;
            WriteAck {
                written: Written::Inbox(Box::new(inbox)),
                seq: seq_now(tables),
            }
        }
        Command::DeleteInbox { id } => {
            tables.delete_inbox(&id)?;
            WriteAck {
                written: Written::Nothing,
                seq: seq_now(tables),
            }
        }
        Command::ImportBatch {
            rows,
            mode,
            match_by,
            dry_run,
        } => {
            let mut results = Vec::with_capacity(rows.len());
            for row in rows {
                match tables.import_row(row, mode, match_by, dry_run) {
                    Err(error) if error.is_internal() => return Err(error),
                    result => results.push(result.map(|(row, _)| row)),
                }
            }
            if !dry_run {
                tables.imported_rows += results.iter().filter(|row| row.is_ok()).count() as u64;
            }
            WriteAck {
                written: Written::Imported(results),
                seq: seq_now(tables),
            }
        }
        Command::IndexScrubbed { through } => {
            tables.mark_index_scrubbed(through)?;
            WriteAck {
                written: Written::Nothing,
                seq: seq_now(tables),
            }
        }
        Command::Load { lines, first } => WriteAck {
            written: Written::Loaded(tables.load_dump(lines, first)?),
            seq: seq_now(tables),
        },
        Command::PutJob(record) => {
            tables.put_job(&record)?;
            WriteAck {
                written: Written::Job(Box::new(record.status)),
                seq: seq_now(tables),
            }
        }
        Command::ChangeJob { id, change } => WriteAck {
            written: Written::Job(Box::new(tables.change_job(&id, change)?)),
            seq: seq_now(tables),
        },
        Command::Step { step, command } => {
            let record = tables.job(&step.job_id)?;
            let ack = apply(tables, *command)?;
            tables.advance_job(record, (step.delta)(&ack.written))?;
            ack
        }
        Command::PruneJobs { finished_before } => WriteAck {
            written: Written::PrunedJobs(tables.prune_jobs(finished_before)?),
            seq: seq_now(tables),
        },
        Command::PurgeExpired { limit } => {
            let purged = tables.purge_expired(limit)?;
            WriteAck {
                written: Written::Purged(purged),
                seq: seq_now(tables),
            }
        }
        Command::TrimChanges { up_to } => {
            tables.trim_changes(up_to)?;
            WriteAck {
                written: Written::Nothing,
                seq: seq_now(tables),
            }
        }
        #[cfg(test)]
        Command::PanicForTest => panic!("a command panicked (test)"),
        #[cfg(test)]
        Command::HoldForTest { holding, release } => {
            let _ = holding.send(());
            let _ = release.recv();
            WriteAck {
                written: Written::Nothing,
                seq: seq_now(tables),
            }
        }
        Command::Shutdown => WriteAck {
            written: Written::Nothing,
            seq: seq_now(tables),
        },
    })
}

/// Closes a finished backup on a thread of its own, then answers its caller with the
/// sequence it holds (a backup is done only once closed).
fn close_backup(
    copy: Database,
    target: std::path::PathBuf,
    reply: oneshot::Sender<Result<u64, StoreError>>,
    seq: u64,
) {
    let spawned = std::thread::Builder::new()
        .name("store-backup-close".into())
        .spawn(move || {
            let closed = compact::close_backup(copy, &target).map(|()| seq);
            if closed.is_err() {
                let _ = std::fs::remove_file(&target);
            }
            let _ = reply.send(closed);
        });
    // Without a thread the copy and the reply are dropped: the caller hears that the
    // backup failed.
    if let Err(error) = spawned {
        tracing::error!(%error, "no thread for closing a backup");
    }
}

/// Closes a database replaced by a compaction on a thread of its own. redb's close
/// records the allocator state and trims the file, with fsyncs: about 0.8 s at 1M
/// contacts, which every queued write waited for when the writer closed it. The file
/// was already renamed over, so the close only writes to an unlinked inode; the last
/// reader holding the `Arc` (if any) closes it instead, off the writer either way.
fn retire(replaced: Arc<Database>) {
    let spawned = std::thread::Builder::new()
        .name("store-retire".into())
        .spawn(move || drop(replaced));
    if let Err(error) = spawned {
        tracing::warn!(%error, "no thread for closing the replaced store file: closed here");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Store;

    fn contact_input(email: &str) -> Box<crate::model::ContactInput> {
        Box::new(
            serde_json::from_value(serde_json::json!({"name": "Panic Test", "email": email}))
                .unwrap(),
        )
    }

    /// A store in a fresh directory (kept as long as the directory is).
    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("c.redb");
        let store = Store::open(&path, Config::default().store_options()).unwrap();
        (dir, store)
    }

    /// Queues `batches` import batches of 500 rows as a load does (from a blocking
    /// thread), and returns their answers.
    async fn queue_import_batches(
        store: &Store,
        batches: usize,
    ) -> Vec<impl Future<Output = Result<WriteAck, StoreError>> + use<>> {
        let queuing = store.clone();
        tokio::task::spawn_blocking(move || {
            (0..batches)
                .map(|batch| queuing.queue_background(import_batch(batch * 500, 500)))
                .collect()
        })
        .await
        .unwrap()
    }

    fn import_batch(first: usize, rows: usize) -> Command {
        Command::ImportBatch {
            rows: (first..first + rows)
                .map(|i| *contact_input(&format!("row{i}@load.example")))
                .collect(),
            mode: crate::store::ImportMode::Create,
            match_by: crate::store::MatchBy::default(),
            dry_run: false,
        }
    }

    /// A write queued behind a load's batches waits for the group commit under way,
    /// not for the batches queued before it; the batches still commit in order.
    #[tokio::test]
    async fn a_write_goes_ahead_of_queued_background_batches() {
        let (_dir, store) = temp_store();
        let (holding, held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel();
        let hold = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write(Command::HoldForTest {
                        holding,
                        release: released,
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || held.recv().unwrap())
            .await
            .unwrap();
        // The writer is busy: queue three batches, then a write.
        let batches = queue_import_batches(&store, 3).await;
        let write = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write(Command::Create(contact_input("interactive@x.example")))
                    .await
            }
        });
        while store.queue_depth() < 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.send(()).unwrap();
        hold.await.unwrap().unwrap();
        let write = write.await.unwrap().unwrap();
        let mut batch_seqs = Vec::new();
        for batch in batches {
            let ack = batch.await.unwrap();
            let Written::Imported(rows) = ack.written else {
                panic!("an import batch answers with its rows: {:?}", ack.written);
            };
            assert_eq!(rows.len(), 500);
            assert!(rows.iter().all(Result::is_ok));
            batch_seqs.push(ack.seq);
        }
        assert!(batch_seqs.is_sorted(), "{batch_seqs:?}");
        assert!(
            write.seq < batch_seqs[0],
            "the write ({}) waited for the batches queued before it: {batch_seqs:?}",
            write.seq
        );
        store.shutdown();
    }

    /// A load's commits are unsynced and not published as committed (so not indexed)
    /// until synced; the writer syncs them as soon as it has nothing queued, without
    /// waiting for another write.
    #[tokio::test]
    async fn a_loads_commits_are_published_once_synced() {
        let (_dir, store) = temp_store();
        let before = store.committed().get();
        let batches = queue_import_batches(&store, 3).await;
        let mut last_seq = before;
        for batch in batches {
            last_seq = batch.await.unwrap().seq;
        }
        assert!(last_seq > before);
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.committed().get() < last_seq {
            assert!(
                Instant::now() < deadline,
                "the load's commits were never synced"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(store.committed().get(), last_seq);
        let changes = store.changes_after(before, usize::MAX).unwrap();
        assert_eq!(changes.up_to, last_seq, "every synced change is read");
        store.shutdown();
    }

    /// Commits `command` as a load's commit that is not synced yet: durability off,
    /// and (done behind the writer's back) neither published nor synced by it. The
    /// writer's next commit of anything syncs it.
    fn commit_unsynced(store: &Store, command: Command) -> u64 {
        let committed = commit_batch(
            &store.db(),
            &mut [(command, None)],
            &Config::default().store_options(),
            false,
            false,
            &mut Journal::default(),
        )
        .unwrap();
        assert!(
            committed.outcomes[0].0.is_ok(),
            "{:?}",
            committed.outcomes[0].0
        );
        committed.last_seq
    }

    async fn create(store: &Store, email: &str) -> (String, u64) {
        let ack = store
            .write(Command::Create(contact_input(email)))
            .await
            .unwrap();
        let Written::Contact(contact) = ack.written else {
            panic!("a create answers with the contact: {:?}", ack.written);
        };
        (contact.id, ack.seq)
    }

    fn rename(id: &str, name: &str) -> Command {
        Command::Patch {
            id: id.to_string(),
            patch: serde_json::json!({ "name": name }),
            if_match: None,
        }
    }

    /// A durable change whose contact an unsynced commit changed again is not read
    /// (its state in the snapshot is the unsynced one) until that commit is synced;
    /// the changes before it are.
    #[tokio::test]
    async fn a_contact_changed_again_unsynced_is_held_back_until_synced() {
        let (_dir, store) = temp_store();
        let before = store.committed().get();
        let (first, first_seq) = create(&store, "first@x.example").await;
        let (second, _) = create(&store, "second@x.example").await;
        let unsynced = commit_unsynced(&store, rename(&second, "Unsynced Name"));
        assert!(store.committed().get() < unsynced);

        let batch = store.changes_after(before, usize::MAX).unwrap();
        assert_eq!(batch.up_to, first_seq, "ends before the second contact");
        let ids: Vec<&str> = batch.contacts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, [first.as_str()]);
        assert_eq!(batch.held_back, Some(store.committed().get()));
        let again = store.changes_after(first_seq, usize::MAX).unwrap();
        assert_eq!((again.up_to, again.contacts.len()), (first_seq, 0));
        assert!(again.held_back.is_some());

        // Any commit of the writer's syncs it.
        let (_, last) = create(&store, "third@x.example").await;
        let batch = store.changes_after(first_seq, usize::MAX).unwrap();
        assert_eq!((batch.up_to, batch.held_back), (last, None));
        let renamed = batch.contacts.iter().find(|c| c.id == second).unwrap();
        let name = renamed.contact.as_ref().unwrap().name.as_deref();
        assert_eq!(name, Some("Unsynced Name"));
        store.shutdown();
    }

    /// A chunked scan visits a snapshot only once everything in it is synced.
    #[tokio::test]
    async fn a_chunked_scan_waits_until_its_snapshot_is_synced() {
        let (_dir, store) = temp_store();
        let (id, _) = create(&store, "scanned@x.example").await;
        let unsynced = commit_unsynced(&store, rename(&id, "Unsynced Name"));
        let (names_sender, names) = std::sync::mpsc::channel();
        let scanning = store.clone();
        let scan = std::thread::spawn(move || {
            scanning.scan_chunked(|contact, _| -> Result<(), StoreError> {
                names_sender.send(contact.name).unwrap();
                Ok(())
            })
        });
        let early = names.recv_timeout(Duration::from_millis(300));
        assert!(early.is_err(), "visited before synced: {early:?}");
        create(&store, "syncs@x.example").await;
        assert_eq!(scan.join().unwrap().unwrap(), unsynced);
        let names: Vec<_> = names.try_iter().collect();
        assert!(
            names.contains(&Some("Unsynced Name".to_string())),
            "{names:?}"
        );
        store.shutdown();
    }

    /// A shutdown commits the background batches queued before it.
    #[tokio::test]
    async fn a_shutdown_commits_the_background_batches_first() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("c.redb");
        let store = Store::open(&path, Config::default().store_options()).unwrap();
        let queuing = store.clone();
        let batches = tokio::task::spawn_blocking(move || {
            let batches: Vec<_> = (0..3)
                .map(|batch| queuing.queue_background(import_batch(batch * 500, 500)))
                .collect();
            queuing.shutdown();
            batches
        })
        .await
        .unwrap();
        for batch in batches {
            batch.await.expect("committed before the writer stopped");
        }
        drop(store);
        let reopened = Store::open(&path, Config::default().store_options()).unwrap();
        let stored: u64 = reopened.counts().unwrap().iter().map(|(_, n)| n).sum();
        assert_eq!(stored, 1_500);
        reopened.shutdown();
    }

    /// A batch that panics fails only its own callers; the writer keeps committing.
    #[tokio::test]
    async fn a_panicking_batch_fails_alone_and_the_writer_lives_on() {
        let (_dir, store) = temp_store();
        store
            .write(Command::Create(contact_input("before@x.example")))
            .await
            .unwrap();
        let seq_before = store.committed().get();

        let failed = store.write(Command::PanicForTest).await.unwrap_err();
        assert!(matches!(failed, StoreError::Panicked(_)), "{failed:?}");
        assert!(failed.is_internal());
        assert_eq!(store.writer_health().panics(), 1);
        assert!(store.writer_health().running());
        assert_eq!(
            store.committed().get(),
            seq_before,
            "nothing of the batch was committed"
        );

        let after = store
            .write(Command::Create(contact_input("after@x.example")))
            .await
            .unwrap();
        assert!(after.seq > seq_before);
        assert!(store.writer_health().running());
        store.shutdown();
        assert!(!store.writer_health().running());
    }
}
