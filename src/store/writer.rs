//! The single writer: group commit of queued commands.
//!
//! Callers queue a [`Job`] and wait on its reply. The writer thread takes the first
//! queued job, drains whatever else is already queued (up to `group_commit_max`),
//! applies them all in one write transaction, commits durably once, and only then
//! answers each caller. Throughput therefore grows with concurrency instead of stopping
//! at one fsync per write, and an acknowledged write is always on disk.
//!
//! A batch that erased a contact is followed by a rewrite of the file (see
//! [`super::vacuum`]) before its callers are answered, so an acknowledged erase leaves
//! no copy of the data in the redb file.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use redb::Database;
use serde_json::Value;
use tokio::sync::oneshot;

use super::ops::{Identified, Merged, TxnTables};
use super::{StoreError, StoreOptions, vacuum};
use crate::model::{
    Company, CompanyInput, Contact, ContactInput, CustomFieldDef, CustomFieldInput, Event, Inbox,
    Side,
};
use crate::signal::SeqSignal;

/// A write the store can perform.
#[derive(Debug)]
pub enum Command {
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
    /// Permanent erase: the record, its claims, merge snapshots; the file is rewritten.
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
    UpdateField {
        key: String,
        patch: Value,
        force: bool,
    },
    DeleteField {
        key: String,
        force: bool,
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
    /// One row of an import.
    Import {
        input: Box<ContactInput>,
        mode: super::ImportMode,
        match_by: super::MatchBy,
        dry_run: bool,
    },
    /// Erase deleted contacts whose restore window has passed.
    PurgeExpired,
    /// Drop change-log entries the index has durably applied.
    TrimChanges {
        up_to: u64,
    },
    /// Finish the queued commands, then stop the writer.
    Shutdown,
}

/// What a command produced.
#[derive(Debug)]
pub enum Written {
    Contact(Box<Contact>),
    Identified(Box<Identified>),
    Imported(Box<super::ImportedRow>),
    Merged(Box<Merged>),
    Events(Vec<Result<Contact, StoreError>>),
    /// A definition and how many contacts lost their value.
    Field(CustomFieldDef, usize),
    FieldDeleted(usize),
    Company(Company),
    /// How many contacts were unlinked.
    CompanyDeleted(usize),
    Inbox(Box<Inbox>),
    Purged(usize),
    Nothing,
}

/// A durable write: what it produced and the change-log sequence after it.
#[derive(Debug)]
pub struct WriteAck {
    pub written: Written,
    pub seq: u64,
}

pub(super) struct Job {
    pub command: Command,
    pub reply: Option<oneshot::Sender<Result<WriteAck, StoreError>>>,
}

type Outcome = Result<WriteAck, StoreError>;

/// The open database, swapped when the file is rewritten. A std RwLock: held only to
/// clone or replace the `Arc`, never across an await.
pub(super) type SharedDb = Arc<RwLock<Arc<Database>>>;

pub(super) fn spawn(
    db: SharedDb,
    committed: Arc<SeqSignal>,
    defs: Arc<super::DefsCache>,
    options: StoreOptions,
    path: std::path::PathBuf,
) -> Result<(Sender<Job>, JoinHandle<()>), StoreError> {
    let (jobs, queue) = channel();
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(&db, &committed, &defs, &queue, &options, &path))
        .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
    Ok((jobs, thread))
}

fn run(
    db: &SharedDb,
    committed: &SeqSignal,
    defs: &super::DefsCache,
    queue: &Receiver<Job>,
    options: &StoreOptions,
    path: &std::path::Path,
) {
    let mut stopping = false;
    while !stopping {
        let Ok(first) = queue.recv() else { break };
        let mut batch = vec![first];
        while batch.len() < options.group_commit_max {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        stopping = batch.iter().any(|j| matches!(j.command, Command::Shutdown));
        let current = db.read().expect("db lock is never poisoned").clone();
        let outcomes = match commit_batch(&current, &mut batch, options) {
            Ok((outcomes, last_seq, erased, defs_changed)) => {
                if defs_changed {
                    defs.invalidate();
                }
                if erased {
                    match vacuum::rewrite(&current, path, options.cache_bytes) {
                        Ok(fresh) => {
                            *db.write().expect("db lock is never poisoned") = Arc::new(fresh)
                        }
                        Err(error) => {
                            tracing::error!(%error, "rewriting the store after an erase failed")
                        }
                    }
                }
                committed.publish(last_seq);
                outcomes
            }
            Err(error) => {
                tracing::error!(%error, commands = batch.len(), "group commit failed");
                batch
                    .iter()
                    .map(|_| Err(StoreError::Corrupt(error.to_string())))
                    .collect()
            }
        };
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            if let Some(reply) = job.reply {
                // The caller may have gone away (client disconnected); the write stands.
                let _ = reply.send(outcome);
            }
        }
    }
    tracing::debug!("store writer stopped");
}

/// Applies every command in one transaction. An internal error aborts the whole batch
/// (nothing is committed, every caller gets an error); a user error only fails its own
/// command, which by the [`TxnTables`] invariant has changed nothing.
fn commit_batch(
    db: &Database,
    batch: &mut [Job],
    options: &StoreOptions,
) -> Result<(Vec<Outcome>, u64, bool, bool), StoreError> {
    let txn = db.begin_write()?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let (last_seq, erased, defs_changed) = {
        let mut tables = TxnTables::open(&txn, &options.rules, options.clock.now())?;
        for job in batch.iter_mut() {
            let command = std::mem::replace(&mut job.command, Command::Shutdown);
            let outcome = apply(&mut tables, command);
            if let Err(error) = &outcome
                && error.is_internal()
            {
                return Err(outcome.expect_err("checked above"));
            }
            outcomes.push(outcome);
        }
        let defs_changed = tables.defs_changed;
        let (last_seq, erased) = tables.finish()?;
        (last_seq, erased, defs_changed)
    };
    txn.commit()?;
    Ok((outcomes, last_seq, erased, defs_changed))
}

fn apply(tables: &mut TxnTables<'_>, command: Command) -> Outcome {
    let contact = |(contact, seq): (Contact, u64)| WriteAck {
        written: Written::Contact(Box::new(contact)),
        seq,
    };
    let seq_now = |tables: &TxnTables<'_>| tables.last_seq();
    Ok(match command {
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
        Command::UpdateField { key, patch, force } => {
            let (def, cleared) = tables.update_field(&key, &patch, force)?;
            WriteAck {
                written: Written::Field(def, cleared),
                seq: seq_now(tables),
            }
        }
        Command::DeleteField { key, force } => {
            let cleared = tables.delete_field(&key, force)?;
            WriteAck {
                written: Written::FieldDeleted(cleared),
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
            let unlinked = tables.delete_company(&id)?;
            WriteAck {
                written: Written::CompanyDeleted(unlinked),
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
        Command::Import {
            input,
            mode,
            match_by,
            dry_run,
        } => {
            let (row, seq) = tables.import_row(*input, mode, match_by, dry_run)?;
            WriteAck {
                written: Written::Imported(Box::new(row)),
                seq,
            }
        }
        Command::PurgeExpired => {
            let purged = tables.purge_expired()?;
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
        Command::Shutdown => WriteAck {
            written: Written::Nothing,
            seq: seq_now(tables),
        },
    })
}
