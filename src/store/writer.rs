//! The single writer: group commit of queued commands.
//!
//! Callers queue a [`Job`] and wait on its reply. The writer thread takes the first
//! queued job, drains whatever else is already queued (up to `group_commit_max`),
//! applies them all in one write transaction, commits durably once, and only then
//! answers each caller. Throughput therefore grows with concurrency instead of stopping
//! at one fsync per write, and an acknowledged write is always on disk.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use redb::Database;
use serde_json::Value;
use tokio::sync::oneshot;

use super::ops::TxnTables;
use super::{StoreError, StoreOptions};
use crate::model::{Contact, Rules, ValidContact};
use crate::signal::SeqSignal;

/// A write the store can perform.
#[derive(Debug)]
pub enum Command {
    Create(Box<ValidContact>),
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
    /// Drop change-log entries the index has durably applied.
    TrimChanges {
        up_to: u64,
    },
    /// Finish the queued commands, then stop the writer.
    Shutdown,
}

/// A durable write: the stored contact and its change-log sequence.
#[derive(Debug, Clone)]
pub struct WriteAck {
    pub contact: Contact,
    pub seq: u64,
}

pub(super) struct Job {
    pub command: Command,
    pub reply: Option<oneshot::Sender<Result<WriteAck, StoreError>>>,
}

/// What a command produced: a contact for the writes that return one.
type Outcome = Result<Option<WriteAck>, StoreError>;

pub(super) fn spawn(
    db: Arc<Database>,
    committed: Arc<SeqSignal>,
    options: StoreOptions,
) -> Result<(Sender<Job>, JoinHandle<()>), StoreError> {
    let (jobs, queue) = channel();
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(&db, &committed, &queue, &options))
        .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
    Ok((jobs, thread))
}

fn run(db: &Database, committed: &SeqSignal, queue: &Receiver<Job>, options: &StoreOptions) {
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
        let outcomes = match commit_batch(db, &batch, &options.rules) {
            Ok((outcomes, last_seq)) => {
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
                let _ = reply.send(outcome.and_then(|ack| ack.ok_or(StoreError::Closed)));
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
    batch: &[Job],
    rules: &Rules,
) -> Result<(Vec<Outcome>, u64), StoreError> {
    let txn = db.begin_write()?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let last_seq = {
        let mut tables = TxnTables::open(&txn)?;
        for job in batch {
            let outcome = apply(&mut tables, &job.command, rules);
            if let Err(error) = &outcome
                && error.is_internal()
            {
                return Err(outcome.expect_err("checked above"));
            }
            outcomes.push(outcome);
        }
        tables.finish()?
    };
    txn.commit()?;
    Ok((outcomes, last_seq))
}

fn apply(tables: &mut TxnTables<'_>, command: &Command, rules: &Rules) -> Outcome {
    match command {
        Command::Create(valid) => tables.create((**valid).clone(), rules).map(Some),
        Command::Patch {
            id,
            patch,
            if_match,
        } => tables.patch(id, patch, *if_match, rules).map(Some),
        Command::Delete { id, if_match } => tables.delete(id, *if_match).map(Some),
        Command::TrimChanges { up_to } => tables.trim_changes(*up_to).map(|()| None),
        Command::Shutdown => Ok(None),
    }
}
