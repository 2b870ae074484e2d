//! The search index: tantivy only.
//!
//! Owns the schema, text analysis, Contact → document mapping and query execution.
//! Knows nothing of redb or HTTP. The index is a derived copy of the store: every
//! commit carries an [`IndexPayload`] (schema version + last applied change-log
//! sequence) so the sync worker can resume, or decide to rebuild.

pub mod analysis;
mod bits;
mod directory;
pub mod document;
mod duplicates;
mod durability;
mod executor;
pub mod facets;
mod filter;
mod merge_policy;
mod schema;
mod search;
mod segment_cache;
pub mod sort;
pub mod text_query;

pub use document::SearchableText;
pub use schema::{Fields, SCHEMA_VERSION};
pub use search::{SearchPage, SearchRequest};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::index::SegmentId;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use crate::model::{Contact, ContactContext};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error(transparent)]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("cannot open the index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The request's deadline passed; the search stopped.
    #[error("the search ran past the request timeout")]
    TimedOut,
}

/// Stored in every commit: what the index was built with and up to where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPayload {
    pub schema_version: u32,
    pub seq: u64,
}

/// Segments from this size get their orders built ahead of searches ([`SearchIndex::warm`]).
const WARM_MIN_DOCS: usize = 50_000;

/// A full merge of an index of more than twice this many documents makes segments of
/// about this many, two merges at a time (see [`merge_policy::plan_full_merge`]): at
/// about 500 bytes of index a contact, each merge maps about 1 GiB of segment files,
/// so a 10M import's final merge stays within its 4 GiB RSS goal. Up to 4M contacts
/// the full merge is one round into two segments, as before.
const FULL_MERGE_SEGMENT_DOCS: u64 = 2_000_000;

/// The index searches use: replaced whole when an online rebuild swaps a fresh one
/// in (see [`crate::sync`]). A search takes the current one and keeps it to its end,
/// so a swap never cuts one off. A std RwLock: held only to clone or replace the `Arc`.
pub struct SharedIndex(std::sync::RwLock<std::sync::Arc<SearchIndex>>);

impl SharedIndex {
    pub fn new(index: std::sync::Arc<SearchIndex>) -> SharedIndex {
        SharedIndex(std::sync::RwLock::new(index))
    }

    pub fn get(&self) -> std::sync::Arc<SearchIndex> {
        self.0.read().expect("index lock is never poisoned").clone()
    }

    /// Puts `index` in place; returns the one it replaces.
    pub fn replace(&self, index: std::sync::Arc<SearchIndex>) -> std::sync::Arc<SearchIndex> {
        let mut current = self.0.write().expect("index lock is never poisoned");
        index.set_walk_min_matches(current.walk_min_matches());
        std::mem::replace(&mut *current, index)
    }
}

/// An open index with its reader. Cheap to share behind an `Arc`.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    dir: PathBuf,
    segment_cache: segment_cache::SegmentCache,
    /// See `search.walk_min_matches` in config.toml.
    walk_min_matches: std::sync::atomic::AtomicUsize,
    /// A full merge is due or running (see the sync worker); shown in `/v1/stats`.
    merging: std::sync::atomic::AtomicBool,
    /// The syncs the index directory may defer, and the thread making them once
    /// deferring (only the live index's, see [`SearchIndex::defer_syncs`]).
    deferred: std::sync::Arc<directory::DeferredSyncs>,
    background_syncs: std::sync::OnceLock<durability::BackgroundSyncs>,
}

impl SearchIndex {
    /// Creates an empty index in `dir` (which must not hold one).
    pub fn create(dir: &Path) -> Result<SearchIndex, IndexError> {
        std::fs::create_dir_all(dir)?;
        let fields = Fields::build();
        let directory = directory::WritebackDirectory::open(dir)?;
        let deferred = directory.deferred();
        let index = Index::create(
            directory,
            fields.schema.clone(),
            tantivy::IndexSettings::default(),
        )?;
        Self::with_index(index, fields, dir, deferred)
    }

    /// Opens the index in `dir` when it is usable by this build: it exists, its schema
    /// version matches, its last commit carries a payload and, when the last process
    /// that deferred its syncs did not stop cleanly, every file's checksum matches.
    /// Anything else means the index must be rebuilt; the reason is returned as `Err`
    /// text.
    pub fn open_usable(dir: &Path) -> Result<(SearchIndex, IndexPayload), String> {
        if !dir.join("meta.json").exists() {
            return Err("no index".into());
        }
        let open = || -> Result<SearchIndex, IndexError> {
            let directory = directory::WritebackDirectory::open(dir)?;
            let deferred = directory.deferred();
            let index = Index::open(directory)?;
            Self::with_index(index, Fields::build(), dir, deferred)
        };
        let index = open().map_err(|e| format!("unreadable index: {e}"))?;
        if dir.join(durability::UNSYNCED_MARKER).exists() {
            index.check_files_after_unclean_stop()?;
        }
        let payload = index
            .payload()
            .map_err(|e| format!("unreadable index metadata: {e}"))?
            .ok_or("index has no commit payload")?;
        if payload.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "index schema version {} differs from {SCHEMA_VERSION}",
                payload.schema_version
            ));
        }
        if index.index.schema() != index.fields.schema {
            return Err("index schema differs from this build's".into());
        }
        Ok((index, payload))
    }

    /// After a crash while syncs were deferred, the files a commit named may not all
    /// have reached the disk: each file of the last commit must read back whole.
    fn check_files_after_unclean_stop(&self) -> Result<(), String> {
        let started = std::time::Instant::now();
        let damaged = self
            .index
            .validate_checksum()
            .map_err(|e| format!("index files unreadable after an unclean stop: {e}"))?;
        if !damaged.is_empty() {
            return Err(format!(
                "{} index files damaged by an unclean stop",
                damaged.len()
            ));
        }
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "index files checked after an unclean stop"
        );
        Ok(())
    }

    fn with_index(
        index: Index,
        fields: Fields,
        dir: &Path,
        deferred: std::sync::Arc<directory::DeferredSyncs>,
    ) -> Result<SearchIndex, IndexError> {
        analysis::register_tokenizers(index.tokenizers());
        // Manual reload: the sync worker reloads right after each commit, so a change
        // is searchable as soon as it is committed (the polling policy adds ~500 ms).
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            segment_cache: segment_cache::SegmentCache::new(fields.keys),
            walk_min_matches: std::sync::atomic::AtomicUsize::new(search::WALK_MIN_MATCHES),
            merging: std::sync::atomic::AtomicBool::new(false),
            fields,
            dir: dir.to_path_buf(),
            deferred,
            background_syncs: std::sync::OnceLock::new(),
        })
    }

    /// Makes commits searchable without waiting for the disk: the live index's
    /// files are synced in the background every `every` (see `directory`). Its last
    /// commit holds `indexed`'s current sequence. Call once, on the live index.
    pub fn defer_syncs(
        &self,
        indexed: std::sync::Arc<crate::signal::SeqSignal>,
        every: std::time::Duration,
    ) -> Result<(), IndexError> {
        let syncs =
            durability::BackgroundSyncs::start(&self.dir, self.deferred.clone(), indexed, every)?;
        if self.background_syncs.set(syncs).is_err() {
            tracing::warn!("the index's syncs were already deferred");
        }
        Ok(())
    }

    /// The highest sequence the index holds durably: the change log may be trimmed
    /// through it. Every commit is durable unless syncs are deferred.
    pub fn durable_through(&self) -> u64 {
        self.background_syncs
            .get()
            .map_or(u64::MAX, durability::BackgroundSyncs::durable_through)
    }

    /// Syncs what is deferred now (before reporting erased bytes gone).
    pub fn sync_deferred(&self) -> Result<(), IndexError> {
        if let Some(syncs) = self.background_syncs.get() {
            syncs.sync_now()?;
        }
        Ok(())
    }

    /// Syncs everything and stops deferring, leaving the directory marked clean: at
    /// a clean stop, and before an online rebuild replaces the directory.
    pub fn finish_deferred_syncs(&self) -> Result<(), IndexError> {
        if let Some(syncs) = self.background_syncs.get() {
            syncs.finish()?;
        }
        Ok(())
    }

    /// The payload of the last commit, if any.
    pub fn payload(&self) -> Result<Option<IndexPayload>, IndexError> {
        let metas = self.index.load_metas()?;
        Ok(metas
            .payload
            .and_then(|p| serde_json::from_str::<IndexPayload>(&p).ok()))
    }

    /// A writer for the sync worker (tantivy allows one per index).
    pub fn updater(&self, memory_bytes: usize, threads: usize) -> Result<IndexUpdater, IndexError> {
        let writer: IndexWriter<TantivyDocument> = self
            .index
            .writer_with_num_threads(threads.max(1), memory_bytes)?;
        let merges = merge_policy::MergeControl::default();
        writer.set_merge_policy(merges.policy(FULL_MERGE_SEGMENT_DOCS / 2));
        Ok(IndexUpdater {
            writer,
            fields: self.fields.clone(),
            merges,
            full_merge_segment_docs: FULL_MERGE_SEGMENT_DOCS,
        })
    }

    /// From this many matches in a segment, sorted pages walk the sort order.
    pub fn walk_min_matches(&self) -> usize {
        self.walk_min_matches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_walk_min_matches(&self, matches: usize) {
        self.walk_min_matches
            .store(matches, std::sync::atomic::Ordering::Relaxed);
    }

    /// Builds what the first sorted searches over large segments would otherwise
    /// build: the segment order of the default sort (newest first), the one every
    /// listing without `q` and every ranked page uses.
    pub fn warm(&self) -> Result<(), IndexError> {
        let searcher = self.reader.searcher();
        let newest = sort::SortSpec::default_for(false)
            .pop()
            .expect("the default sort has a key");
        for segment in searcher.segment_readers() {
            if segment.max_doc() as usize >= WARM_MIN_DOCS {
                self.segment_cache.order(segment, &newest)?;
            }
        }
        Ok(())
    }

    /// Makes the last commit visible to searches.
    pub fn reload(&self) -> Result<(), IndexError> {
        Ok(self.reader.reload()?)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Documents visible to searches (every status).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Segments visible to searches (each costs every search a little).
    pub fn num_segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// The documents of each segment visible to searches, fewest first.
    #[cfg(test)]
    pub fn segment_docs(&self) -> Vec<u32> {
        let mut docs: Vec<_> = self
            .reader
            .searcher()
            .segment_readers()
            .iter()
            .map(|segment| segment.num_docs())
            .collect();
        docs.sort_unstable();
        docs
    }

    /// Whether a full merge is due or running.
    pub fn merging(&self) -> bool {
        self.merging.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_merging(&self, merging: bool) {
        self.merging
            .store(merging, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A merge started in tantivy's merge threads: the merged segment's meta, when it happened.
pub type MergeFuture = tantivy::FutureResult<Option<tantivy::index::SegmentMeta>>;

/// Applies changes to the index; owned by the sync worker.
pub struct IndexUpdater {
    writer: IndexWriter<TantivyDocument>,
    fields: Fields,
    /// Holds the writer's merge policy and knows which segments no merge holds.
    merges: merge_policy::MergeControl,
    /// [`FULL_MERGE_SEGMENT_DOCS`], smaller in tests.
    full_merge_segment_docs: u64,
}

/// The merges a full merge round started, and whether another round has work.
pub struct MergeRound {
    pub merges: Vec<MergeFuture>,
    pub more: bool,
}

impl IndexUpdater {
    /// Replaces the contact's document (delete by id + add, applied in one commit).
    pub fn upsert(
        &mut self,
        contact: &Contact,
        context: &ContactContext,
    ) -> Result<(), IndexError> {
        self.remove(&contact.id);
        self.add(contact, context)
    }

    /// Adds a document without deleting first (for building a fresh index).
    pub fn add(&mut self, contact: &Contact, context: &ContactContext) -> Result<(), IndexError> {
        self.writer
            .add_document(document::to_document(contact, context, &self.fields))?;
        Ok(())
    }

    pub fn remove(&mut self, id: &str) {
        self.writer.delete_term(self.fields.keys.term("id", id));
    }

    /// Commits everything added so far with `seq` as the applied sequence. Every
    /// commit goes through here: a plain `commit()` would drop the payload.
    pub fn commit(&mut self, seq: u64) -> Result<(), IndexError> {
        let payload = IndexPayload {
            schema_version: SCHEMA_VERSION,
            seq,
        };
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&serde_json::to_string(&payload).expect("payload serializes"));
        prepared.commit()?;
        Ok(())
    }

    /// While catching up with a large lag the merge policy is paused: segments would
    /// be merged again and again as the load goes on (40% of a bulk load's CPU), where
    /// one full merge once caught up touches every document once.
    pub fn pause_merges(&mut self, paused: bool) {
        self.merges.hold(paused);
    }

    /// Drops everything added since the last commit (after a failed commit); merges
    /// are no longer paused.
    pub fn rollback(&mut self) -> Result<(), IndexError> {
        self.writer.rollback()?;
        // tantivy's rollback builds a new writer with the default merge policy.
        self.merges.hold(false);
        self.merges.forget_offer();
        self.writer
            .set_merge_policy(self.merges.policy(self.full_merge_segment_docs / 2));
        Ok(())
    }

    /// Starts the next round of a full merge of the searchable segments that no merge
    /// holds, on `threads` of tantivy's merge threads side by side (one merge is
    /// single-threaded: a 1M-document merge into one segment took 50 s on one core
    /// while the other idled). See [`merge_policy::plan_full_merge`] for the rounds:
    /// up to [`FULL_MERGE_SEGMENT_DOCS`] × `threads` documents, there is one. The
    /// policy goes on merging the segments committed meanwhile (tantivy never offers it
    /// a segment in a merge; see [`merge_policy`]).
    pub fn start_full_merge_round(&mut self, threads: usize) -> Result<MergeRound, IndexError> {
        self.with_policy_held(|updater| updater.start_planned_round(threads))
    }

    /// Runs `start` (which reads the note and starts merges) with the policy held, so
    /// that no merge of the policy's starts between the two.
    fn with_policy_held<T>(&mut self, start: impl FnOnce(&mut Self) -> T) -> T {
        let held = self.merges.hold(true);
        let started = start(self);
        self.merges.hold(held);
        started
    }

    fn start_planned_round(&mut self, threads: usize) -> Result<MergeRound, IndexError> {
        let segments = self.free_or_searchable_segments()?;
        let round = merge_policy::plan_full_merge(segments, threads, self.full_merge_segment_docs);
        Ok(MergeRound {
            merges: round
                .groups
                .iter()
                .map(|ids| self.writer.merge(ids))
                .collect(),
            more: round.more,
        })
    }

    /// Makes a full merge of more than `threads × docs` documents go in rounds of
    /// merges of about `docs` (tests use small indexes).
    #[cfg(test)]
    pub fn set_full_merge_segment_docs(&mut self, docs: u64) {
        self.full_merge_segment_docs = docs;
        self.writer.set_merge_policy(self.merges.policy(docs / 2));
    }

    /// The segments that hold deleted documents as of the last commit: what a scrub
    /// rewrites (see [`IndexUpdater::start_scrub_round`]). `None` while one of them is
    /// in a merge: a merge that started before the deletion keeps the deleted
    /// document in its output (only marked deleted), so the scrub waits for it.
    pub fn plan_scrub(&self) -> Result<Option<HashSet<SegmentId>>, IndexError> {
        let free: HashSet<_> = self
            .free_or_searchable_segments()?
            .into_iter()
            .map(|segment| segment.id)
            .collect();
        let with_deletes: HashSet<_> = self
            .writer
            .index()
            .searchable_segment_metas()?
            .into_iter()
            .filter(|meta| meta.has_deletes())
            .map(|meta| meta.id())
            .collect();
        Ok(with_deletes.is_subset(&free).then_some(with_deletes))
    }

    /// Starts the next round of a scrub: rewrites the segments of `pending` that no
    /// merge holds without their deleted documents, on `threads` merge threads at most
    /// (see [`merge_policy::plan_scrub_round`]), and takes them out of `pending`, as
    /// well as the segments merged away since (no merge held them when the scrub was
    /// planned, so the merge that took one started after and dropped its deletions).
    /// Leaving the segments without deletions alone keeps the merges small and out of
    /// the way of the merge policy's own. Starts nothing while every pending segment
    /// is in one of the policy's merges.
    pub fn start_scrub_round(
        &mut self,
        pending: &mut HashSet<SegmentId>,
        threads: usize,
    ) -> Result<Vec<MergeFuture>, IndexError> {
        self.with_policy_held(|updater| updater.start_planned_scrub(pending, threads))
    }

    fn start_planned_scrub(
        &mut self,
        pending: &mut HashSet<SegmentId>,
        threads: usize,
    ) -> Result<Vec<MergeFuture>, IndexError> {
        let free = self.free_or_searchable_segments()?;
        let present: HashSet<_> = self
            .writer
            .index()
            .searchable_segment_ids()?
            .into_iter()
            .collect();
        pending.retain(|id| present.contains(id));
        let free_pending = free
            .into_iter()
            .filter(|segment| pending.contains(&segment.id))
            .collect();
        let groups =
            merge_policy::plan_scrub_round(free_pending, threads, self.full_merge_segment_docs);
        for id in groups.iter().flatten() {
            pending.remove(id);
        }
        Ok(groups.iter().map(|ids| self.writer.merge(ids)).collect())
    }

    /// The segments no merge holds, as of the policy's last offer (every searchable
    /// segment before any offer: no merge can have started then).
    fn free_or_searchable_segments(&self) -> Result<Vec<merge_policy::FreeSegment>, IndexError> {
        Ok(match self.merges.free_segments() {
            Some(free) => free,
            None => self
                .writer
                .index()
                .searchable_segment_metas()?
                .iter()
                .map(merge_policy::FreeSegment::of)
                .collect(),
        })
    }

    /// Starts merging the `count` smallest searchable segments, as the merge policy
    /// would: tests use it to race the worker's full merge.
    #[cfg(test)]
    pub fn merge_smallest_segments(&mut self, count: usize) -> Result<MergeFuture, IndexError> {
        let mut metas = self.writer.index().searchable_segment_metas()?;
        metas.sort_by_key(|meta| meta.num_docs());
        let ids: Vec<_> = metas.iter().take(count).map(|meta| meta.id()).collect();
        Ok(self.writer.merge(&ids))
    }

    /// Removes the files no segment uses any more (after a merge).
    pub fn collect_garbage(&mut self) -> Result<(), IndexError> {
        self.writer.garbage_collect_files().wait()?;
        Ok(())
    }

    /// Waits for background merges to finish (used after a bulk build).
    pub fn wait_merging_threads(self) -> Result<(), IndexError> {
        Ok(self.writer.wait_merging_threads()?)
    }
}
