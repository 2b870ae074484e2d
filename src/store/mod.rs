//! The canonical store: contacts in redb, with the change log written in the same
//! transaction as every change (outbox pattern).
//!
//! Owns the redb file and nothing else: no tantivy, no HTTP. All writes go through one
//! writer thread that group-commits queued commands (see [`writer`]); reads use MVCC
//! read transactions from any thread. Every call here blocks: async callers use
//! `spawn_blocking`.

mod claims;
mod compact;
mod error;
mod ops;
mod read;
mod record;
mod tables;
mod tracked;
mod writer;

pub use error::StoreError;
pub use ops::{
    BulkAction, CatalogTask, DUMP_FORMAT, DumpLine, Identified, ImportMode, ImportedRow, MatchBy,
    Merged, ScopeGuard,
};
pub use read::{ChangeBatch, Changed, ScrubStatus};
pub use writer::{Command, CompactionStatus, WriteAck, WriterHealth, Written};

use std::path::{Path, PathBuf};
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

use crate::model::Rules;
use crate::signal::SeqSignal;

/// Store tuning from the config.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most commands folded into one durable transaction.
    pub group_commit_max: usize,
    pub cache_bytes: usize,
    pub rules: Rules,
    pub clock: crate::clock::Clock,
    /// An erased contact's bytes leave the store and index files within this time.
    pub scrub_within: std::time::Duration,
    /// Rows imported since the file was last rewritten that make the writer rewrite
    /// it densely once loads pause (with at least a quarter of the store); 0 never.
    pub compact_after_import_rows: u64,
    /// Commands waiting for the writer; [`Store::write`] answers
    /// [`StoreError::Overloaded`] beyond (a bounded queue instead of a growing one).
    pub queue_max: usize,
}

/// Expired contacts erased per transaction by [`Store::purge_expired`].
const PURGE_CHUNK: usize = 256;

/// A cheap-to-clone handle on the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The custom field definitions as last read, valid while `version` has not moved;
/// the writer bumps it after every commit that changed a definition. Every search
/// needs the definitions, and reading them from redb was ~80 µs of each.
#[derive(Default)]
pub(crate) struct DefsCache {
    version: std::sync::atomic::AtomicU64,
    // A std Mutex: held only to copy the map in or out.
    cached: Mutex<Option<(u64, crate::model::CustomFieldDefs)>>,
}

impl DefsCache {
    pub(crate) fn invalidate(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Inner {
    db: writer::SharedDb,
    defs: Arc<DefsCache>,
    path: PathBuf,
    scrub_within: std::time::Duration,
    clock: crate::clock::Clock,
    compaction: writer::SharedStatus,
    /// Shared (weakly) with the writer, which hands clones to a compactor thread.
    jobs: Arc<std::sync::mpsc::SyncSender<writer::Job>>,
    // A std Mutex: taken once at shutdown to join the writer thread.
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    committed: Arc<SeqSignal>,
    /// The country of numbers without one (conforming phone values).
    default_country: phonenumber::country::Id,
    /// Bulk loads (imports) running; see [`Store::bulk_load`].
    bulk_loads: Arc<std::sync::atomic::AtomicUsize>,
    health: Arc<writer::WriterHealth>,
    /// Jobs sent and not yet taken by the writer (for `/metrics`).
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Rules changed by a config reload, for the writer to take before its next batch.
    pending_rules: Arc<Mutex<Option<Rules>>>,
}

/// Held while a bulk load runs (see [`Store::bulk_load`]).
pub struct BulkLoad(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for BulkLoad {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Store {
    /// Opens (or creates) the redb file and starts the writer thread.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        compact::remove_stray_copy(path)?;
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)?;
        tables::ensure_created(&db)?;
        let migrated = claims::migrate(&db)?;
        if migrated != claims::Migrated::default() {
            tracing::info!(
                identity_claims = migrated.identity_claims,
                name_claims = migrated.name_claims,
                "claim tables converted to hashed rows (store of an earlier version)"
            );
        }
        let last_seq = read::last_seq(&db.begin_read()?)?;
        let db: writer::SharedDb = Arc::new(RwLock::new(Arc::new(db)));
        let committed = Arc::new(SeqSignal::new(last_seq));
        let defs = Arc::new(DefsCache::default());
        let compaction = writer::SharedStatus::default();
        let health = Arc::new(writer::WriterHealth::default());
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let pending_rules = Arc::new(Mutex::new(None));
        let bulk_loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (jobs, queue) = std::sync::mpsc::sync_channel(options.queue_max);
        let jobs = Arc::new(jobs);
        let scrub_within = options.scrub_within;
        let default_country = options.rules.default_country;
        let clock = options.clock.clone();
        let writer_thread = writer::spawn(
            writer::Shared {
                db: db.clone(),
                committed: committed.clone(),
                defs: defs.clone(),
                status: compaction.clone(),
                queue: Arc::downgrade(&jobs),
                health: health.clone(),
                queued: queued.clone(),
                pending_rules: pending_rules.clone(),
                bulk_loads: bulk_loads.clone(),
            },
            options,
            path.to_path_buf(),
            queue,
            migrated.identity_claims + migrated.name_claims,
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                defs,
                path: path.to_path_buf(),
                scrub_within,
                clock,
                compaction,
                jobs,
                writer_thread: Mutex::new(Some(writer_thread)),
                committed,
                bulk_loads,
                default_country,
                health,
                queued,
                pending_rules,
            }),
        })
    }

    /// Marks a bulk load (an import) as running until the guard drops. Meanwhile the
    /// sync worker commits the index every few seconds instead of after every batch
    /// and pauses merging, so a load is indexed in large segments merged once.
    pub fn bulk_load(&self) -> BulkLoad {
        let loads = self.inner.bulk_loads.clone();
        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        BulkLoad(loads)
    }

    /// Whether a bulk load is running.
    pub fn bulk_loading(&self) -> bool {
        self.inner
            .bulk_loads
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    }

    /// Queues a write and waits (asynchronously) for its durable commit; a full queue
    /// answers [`StoreError::Overloaded`] at once, with nothing queued.
    pub async fn write(&self, command: Command) -> Result<WriteAck, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = writer::Job::Write {
            command,
            reply: Some(reply),
        };
        match self.try_queue(job).map_err(|refused| *refused) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`Store::write`], but waits for room in the queue: for background work
    /// (imports, purges) that should slow down rather than fail.
    pub async fn write_when_room(&self, command: Command) -> Result<WriteAck, StoreError> {
        let (reply, answer) = oneshot::channel();
        let mut job = writer::Job::Write {
            command,
            reply: Some(reply),
        };
        loop {
            match self.try_queue(job).map_err(|refused| *refused) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    job = back;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
            }
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until the store file is not being compacted and no pack is pending,
    /// counting what the writes acknowledged so far call for (the pack after a load):
    /// an offline import waits for it before closing the store, which would abandon
    /// the copy. A failed attempt ends the wait with its error message (attempts are
    /// retried after a pause of up to a minute).
    pub async fn wait_for_compaction(&self) -> Result<Option<String>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let store = self.clone();
        let sent =
            tokio::task::spawn_blocking(move || store.queue_waiting(writer::Job::Barrier(reply)))
                .await
                .unwrap_or(false);
        if !sent {
            return Err(StoreError::Closed);
        }
        answer.await.map_err(|_| StoreError::Closed)?;
        let failures = self.compaction_status().failures;
        loop {
            let status = self.compaction_status();
            if status.failures > failures {
                return Ok(Some(status.last_error.unwrap_or_default()));
            }
            if !(status.running || status.pack_pending) {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Copies the store into a new file at `target` while writes go on (see
    /// [`compact`]); answers once the copy is complete and durable, with the
    /// change-log sequence it holds. One copy runs at a time (scrubs included).
    pub async fn backup(&self, target: PathBuf) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = writer::Job::Backup { target, reply };
        let store = self.clone();
        let sent = tokio::task::spawn_blocking(move || store.queue_waiting(job))
            .await
            .unwrap_or(false);
        if !sent {
            return Err(StoreError::Closed);
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Changes a job's state (waiting for room in the queue, like other background
    /// work); its status after.
    pub async fn change_job(
        &self,
        id: &str,
        change: crate::jobs::JobChange,
    ) -> Result<WriteAck, StoreError> {
        let id = id.to_string();
        self.write_when_room(Command::ChangeJob { id, change })
            .await
    }

    /// Queues a load's batch at once, blocking the calling thread while the queue is
    /// full (call from a blocking thread), and returns its answer to await later. The
    /// writer commits such batches in the order they were queued, yielding to the
    /// other writes waiting (see [`writer::Job::Background`]): a load keeps the writer
    /// busy with several batches queued while it reads the next rows, and an
    /// interactive write does not wait behind them.
    pub fn queue_background(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<WriteAck, StoreError>> + use<> {
        let (reply, answer) = oneshot::channel();
        let sent = self.queue_waiting(writer::Job::Background {
            command,
            reply: Some(reply),
        });
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            answer.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Queues a write without waiting for it (used for change-log trimming).
    pub fn write_detached(&self, command: Command) {
        // A closed writer means we are shutting down; the command can be dropped.
        self.queue_waiting(writer::Job::Write {
            command,
            reply: None,
        });
    }

    /// Erases every contact past its restore window, a short transaction per
    /// [`PURGE_CHUNK`] so other writes interleave; returns how many.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let ack = self
                .write_when_room(Command::PurgeExpired { limit: PURGE_CHUNK })
                .await?;
            let Written::Purged(count) = ack.written else {
                return Ok(total);
            };
            total += count;
            if count < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// The bound within which an erase is scrubbed from the files.
    pub fn scrub_within(&self) -> std::time::Duration {
        self.inner.scrub_within
    }

    /// The clock writes are stamped with.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.inner.clock
    }

    /// How the store-file compactions went.
    pub fn compaction_status(&self) -> CompactionStatus {
        self.inner
            .compaction
            .lock()
            .expect("status mutex is never poisoned")
            .clone()
    }

    /// New validation rules (a config reload); writes from the next batch on use them.
    pub fn set_rules(&self, rules: Rules) {
        *self.inner.pending_rules.lock().expect("never poisoned") = Some(rules);
    }

    /// Jobs waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.inner.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends a job to the writer without waiting for room; counted in the depth. A
    /// refusal hands the job back (boxed: refusals are rare, jobs large).
    fn try_queue(&self, job: writer::Job) -> Result<(), Box<TrySendError<writer::Job>>> {
        self.inner
            .queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.jobs.try_send(job).map_err(|refused| {
            self.inner
                .queued
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(refused)
        })
    }

    /// Sends a job to the writer, waiting for room; false when the writer is gone.
    fn queue_waiting(&self, job: writer::Job) -> bool {
        self.inner
            .queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self.inner.jobs.send(job).is_ok();
        if !sent {
            self.inner
                .queued
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        sent
    }

    /// The writer thread's state, for readiness.
    pub fn writer_health(&self) -> &writer::WriterHealth {
        &self.inner.health
    }

    pub fn committed(&self) -> &Arc<SeqSignal> {
        &self.inner.committed
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops the writer after the commands already queued and waits for it.
    pub fn shutdown(&self) {
        self.queue_waiting(writer::Job::Write {
            command: Command::Shutdown,
            reply: None,
        });
        let handle = self
            .inner
            .writer_thread
            .lock()
            .expect("writer-thread mutex is never poisoned")
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }

    /// The current database (replaced when a compaction swaps in a fresh file).
    pub(crate) fn db(&self) -> Arc<Database> {
        self.inner
            .db
            .read()
            .expect("db lock is never poisoned")
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Contact;
    use redb::ReadableTableMetadata;

    async fn create(store: &Store, input: serde_json::Value) -> Result<Contact, StoreError> {
        let input = Box::new(serde_json::from_value(input).unwrap());
        match store.write(Command::Create(input)).await?.written {
            Written::Contact(contact) => Ok(*contact),
            other => panic!("a create answered {other:?}"),
        }
    }

    fn record_of(store: &Store, id: &str) -> (Contact, Option<Vec<String>>) {
        let txn = store.db().begin_read().unwrap();
        let contacts = txn.open_table(tables::CONTACTS).unwrap();
        let dictionaries = record::StoredDictionaries::open(&txn).unwrap();
        record::decode_record(
            id,
            contacts.get(id).unwrap().unwrap().value(),
            &dictionaries,
        )
        .unwrap()
    }

    /// The dictionary numbers of the records of `ids`, and how many dictionaries
    /// the store holds.
    fn dictionaries_of(store: &Store, ids: &[&str]) -> (Vec<u8>, u64) {
        let txn = store.db().begin_read().unwrap();
        let contacts = txn.open_table(tables::CONTACTS).unwrap();
        let numbers = ids
            .iter()
            .map(|id| {
                let record = contacts.get(*id).unwrap().unwrap().value().to_vec();
                assert_eq!(record[0], 4, "records are written compressed");
                record[1]
            })
            .collect();
        let stored = txn.open_table(tables::RECORD_DICTIONARIES).unwrap();
        (numbers, stored.len().unwrap())
    }

    fn email_key(email: &str) -> crate::model::IdentityKey {
        crate::model::IdentityKey::new("email", email)
    }

    /// A claim row says only that a contact may hold a claim: a row under the
    /// hash of an email the contact does not hold (what a hash collision leaves)
    /// neither refuses that email to another contact nor answers a lookup of it.
    #[tokio::test]
    async fn a_claim_row_counts_only_when_its_contact_holds_the_claim() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut options = crate::config::Config::default().store_options();
        options.rules.unique_name = true;
        let store = Store::open(&dir.path().join("c.redb"), options).unwrap();
        let holder = create(
            &store,
            serde_json::json!({"name": "Ada Holder", "email": "held@claims.example"}),
        )
        .await
        .unwrap();
        let txn = store.db().begin_write().unwrap();
        {
            let id = claims::id_bits(&holder.id).unwrap();
            let mut identities = txn.open_table(tables::IDENTITY_CLAIMS).unwrap();
            let collided = claims::claim_hash(email_key("free@claims.example").as_str());
            identities.insert((collided, id), ()).unwrap();
            let mut names = txn.open_table(tables::NAME_CLAIMS).unwrap();
            let collided = claims::claim_hash(&crate::model::name_key("Bea Free"));
            names.insert((collided, id), ()).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(
            store.lookup(&[email_key("free@claims.example")]).unwrap(),
            None
        );
        let found = store.lookup(&[email_key("held@claims.example")]).unwrap();
        assert_eq!(found.map(|c| c.id), Some(holder.id.clone()));
        create(
            &store,
            serde_json::json!({"name": "Bea Free", "email": "free@claims.example"}),
        )
        .await
        .expect("neither the email nor the name is held");
        let refused = create(&store, serde_json::json!({"email": "held@claims.example"})).await;
        assert!(
            matches!(refused, Err(StoreError::IdentityTaken(ref taken))
                         if taken[0].1 == holder.id),
            "{refused:?}"
        );
        let refused = create(
            &store,
            serde_json::json!({"name": "ada holder", "email": "other@claims.example"}),
        )
        .await;
        assert!(
            matches!(refused, Err(StoreError::NameTaken(ref id)) if *id == holder.id),
            "{refused:?}"
        );
        store.shutdown();
    }

    /// A store of an earlier version keeps its claims as multimaps of texts: the
    /// first open converts them to claim rows, which then refuse, release and look
    /// up exactly as before.
    #[tokio::test]
    async fn claims_of_an_earlier_version_are_converted_at_open() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("c.redb");
        let mut options = crate::config::Config::default().store_options();
        options.rules.unique_name = true;
        let store = Store::open(&path, options.clone()).unwrap();
        let kept = create(
            &store,
            serde_json::json!({"name": "Old Kept", "email": "kept@old.example",
                               "phone": "+33 6 12 34 56 78"}),
        )
        .await
        .unwrap();
        let gone = create(
            &store,
            serde_json::json!({"name": "Old Gone", "email": "gone@old.example"}),
        )
        .await
        .unwrap();
        store.shutdown();
        drop(store);

        // Write the claims back as the earlier version stored them.
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut identities = txn.open_multimap_table(claims::LEGACY_IDENTITIES).unwrap();
            let mut names = txn.open_multimap_table(claims::LEGACY_NAMES).unwrap();
            for (contact, keys) in [
                (
                    &kept,
                    vec!["email\u{1f}kept@old.example", "phone\u{1f}+33612345678"],
                ),
                (&gone, vec!["email\u{1f}gone@old.example"]),
            ] {
                for key in keys {
                    identities.insert(key, contact.id.as_str()).unwrap();
                }
                let name = crate::model::name_key(contact.name.as_deref().unwrap());
                names.insert(name.as_str(), contact.id.as_str()).unwrap();
            }
        }
        txn.delete_table(tables::IDENTITY_CLAIMS).unwrap();
        txn.delete_table(tables::NAME_CLAIMS).unwrap();
        txn.commit().unwrap();
        drop(db);

        let store = Store::open(&path, options).unwrap();
        {
            let txn = store.db().begin_read().unwrap();
            let legacy: Vec<String> = txn
                .list_multimap_tables()
                .unwrap()
                .map(|t| redb::MultimapTableHandle::name(&t).to_string())
                .collect();
            assert_eq!(
                legacy,
                ["company_contacts", "held_identities"],
                "the old tables are gone"
            );
            assert_eq!(
                txn.open_table(tables::IDENTITY_CLAIMS)
                    .unwrap()
                    .len()
                    .unwrap(),
                3
            );
            assert_eq!(
                txn.open_table(tables::NAME_CLAIMS).unwrap().len().unwrap(),
                2
            );
        }
        let found = store.lookup(&[email_key("kept@old.example")]).unwrap();
        assert_eq!(found.map(|c| c.id), Some(kept.id.clone()));
        for taken in [
            serde_json::json!({"phone": "+33612345678"}),
            serde_json::json!({"name": "OLD KEPT", "email": "new@old.example"}),
        ] {
            let refused = create(&store, taken.clone()).await;
            assert!(
                matches!(
                    refused,
                    Err(StoreError::IdentityTaken(_) | StoreError::NameTaken(_))
                ),
                "{taken} is held: {refused:?}"
            );
        }
        store
            .write(Command::Erase {
                id: gone.id.clone(),
                if_match: None,
            })
            .await
            .unwrap();
        create(
            &store,
            serde_json::json!({"name": "Old Gone", "email": "gone@old.example"}),
        )
        .await
        .expect("the erase released the converted claims");
        store.shutdown();
    }

    /// A catalog change that alters the dictionary adds one, a label change does
    /// not; records keep reading with the dictionary they were written with, here
    /// and in a backup (a copy of every table).
    #[tokio::test]
    async fn records_read_back_with_the_dictionary_of_the_catalog_they_were_written_under() {
        let dir = tempfile::TempDir::new().unwrap();
        let options = crate::config::Config::default().store_options();
        let store = Store::open(&dir.path().join("c.redb"), options.clone()).unwrap();
        let define = |input: serde_json::Value| {
            Some(Command::DefineField(serde_json::from_value(input).unwrap()))
        };
        let steps = [
            (None, "none@catalog.example", serde_json::json!({})),
            (
                define(
                    serde_json::json!({"key": "plan", "label": "Plan", "type": "dropdown",
                                          "options": ["free", "enterprise"]}),
                ),
                "plan@catalog.example",
                serde_json::json!({"plan": "enterprise"}),
            ),
            (
                Some(Command::UpdateField {
                    key: "plan".into(),
                    patch: serde_json::json!({"label": "Billing plan"}),
                }),
                "same@catalog.example",
                serde_json::json!({"plan": "free"}),
            ),
            (
                define(serde_json::json!({"key": "seats", "label": "Seats", "type": "number"})),
                "seated@catalog.example",
                serde_json::json!({"plan": "free", "seats": 3}),
            ),
        ];
        let mut contacts = Vec::new();
        for (catalog_change, email, custom_fields) in steps {
            if let Some(change) = catalog_change {
                store.write(change).await.unwrap();
            }
            let input = serde_json::json!({"email": email, "custom_fields": custom_fields});
            contacts.push(create(&store, input).await.unwrap());
        }
        let ids: Vec<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(dictionaries_of(&store, &ids), (vec![1, 2, 2, 3], 3));
        for contact in &contacts {
            assert_eq!(store.get(&contact.id).unwrap().as_ref(), Some(contact));
        }

        let copy = dir.path().join("backup.redb");
        store.backup(copy.clone()).await.unwrap();
        store.shutdown();
        let restored = Store::open(&copy, options).unwrap();
        assert_eq!(dictionaries_of(&restored, &ids), (vec![1, 2, 2, 3], 3));
        for contact in &contacts {
            assert_eq!(restored.get(&contact.id).unwrap().as_ref(), Some(contact));
        }
        restored.shutdown();
    }

    /// Records written before format 3 keep their contact's claims in
    /// `held_identities`: a change releases them from there and moves the claims
    /// into the record, and an erase releases them too.
    #[tokio::test]
    async fn claims_of_records_older_than_format_3_are_released_and_carried_over() {
        let dir = tempfile::TempDir::new().unwrap();
        let options = crate::config::Config::default().store_options();
        let store = Store::open(&dir.path().join("c.redb"), options).unwrap();
        let kept = create(
            &store,
            serde_json::json!({"name": "Old A", "email": "a@old.example",
                               "phone": "+33 6 12 34 56 78"}),
        )
        .await
        .unwrap();
        let erased = create(&store, serde_json::json!({"email": "b@old.example"}))
            .await
            .unwrap();

        // Rewrite both as an earlier version stored them.
        let records = [kept.id.as_str(), erased.id.as_str()].map(|id| (id, record_of(&store, id)));
        let txn = store.db().begin_write().unwrap();
        {
            let mut contacts = txn.open_table(tables::CONTACTS).unwrap();
            let mut held = txn.open_multimap_table(tables::HELD_IDENTITIES).unwrap();
            for (id, (contact, keys)) in records {
                let keys = keys.expect("a new record carries its claims");
                contacts
                    .insert(id, record::encode_contact_v2(&contact).as_slice())
                    .unwrap();
                for key in keys {
                    held.insert(id, key.as_str()).unwrap();
                }
            }
        }
        txn.commit().unwrap();
        assert_eq!(record_of(&store, &kept.id).1, None);

        let patch = serde_json::json!({"email": "a2@old.example"});
        store
            .write(Command::Patch {
                id: kept.id.clone(),
                patch,
                if_match: None,
            })
            .await
            .unwrap();
        store
            .write(Command::Erase {
                id: erased.id.clone(),
                if_match: None,
            })
            .await
            .unwrap();

        for free in ["a@old.example", "b@old.example"] {
            create(&store, serde_json::json!({ "email": free }))
                .await
                .unwrap_or_else(|e| panic!("{free} was not released: {e}"));
        }
        for taken in [
            serde_json::json!({"email": "a2@old.example"}),
            serde_json::json!({"phone": "+33612345678"}),
        ] {
            let refused = create(&store, taken.clone()).await;
            assert!(
                matches!(refused, Err(StoreError::IdentityTaken(_))),
                "{taken} is held: {refused:?}"
            );
        }
        let (_, claims) = record_of(&store, &kept.id);
        let mut claims = claims.expect("the rewritten record carries its claims");
        claims.sort();
        assert_eq!(
            claims,
            ["email\u{1f}a2@old.example", "phone\u{1f}+33612345678"]
        );
        let txn = store.db().begin_read().unwrap();
        let held = txn.open_multimap_table(tables::HELD_IDENTITIES).unwrap();
        assert_eq!(held.len().unwrap(), 0, "no claims are left behind");
        store.shutdown();
    }
}
