//! Bulk actions as commands: a chunk of ids under the caller's scope, its outcome
//! counted; and the job that sends a large selection chunk by chunk.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{JobChange, JobCursor, JobDelta, JobHandle, JobState, JobStep, RunEnd};
use crate::store::{BulkAction, Command, ScopeGuard, Store, StoreError, Written};

/// Contacts per writer command (one short transaction each).
pub const CHUNK: usize = 250;

/// The command applying `action` to `ids`, under `guard` when the caller's key has a
/// filter.
pub fn chunk_command(
    guard: Option<&Arc<ScopeGuard>>,
    action: &Arc<BulkAction>,
    ids: Vec<String>,
    dry_run: bool,
) -> Command {
    let command = Command::Bulk {
        action: action.clone(),
        ids,
        dry_run,
    };
    match guard {
        Some(guard) => Command::Scoped {
            guard: guard.clone(),
            command: Box::new(command),
        },
        None => command,
    }
}

/// What a chunk did.
#[derive(Debug, Default)]
pub struct ChunkCounts {
    pub changed: usize,
    pub unchanged: usize,
    /// `{"id", "code", "message"}` per contact that failed.
    pub failed: Vec<Value>,
}

/// Describes a contact a chunk could not change (`{"code", "message"}` as the API
/// shows errors).
pub type Describe = fn(&StoreError) -> Value;

/// Counts a bulk chunk's outcome.
pub fn tally(written: &Written, describe: Describe) -> ChunkCounts {
    let mut counts = ChunkCounts::default();
    if let Written::Bulk(results) = written {
        for (id, result) in results {
            match result {
                Ok(true) => counts.changed += 1,
                Ok(false) => counts.unchanged += 1,
                Err(error) => {
                    let mut failure = describe(error);
                    failure["id"] = json!(id);
                    counts.failed.push(failure);
                }
            }
        }
    }
    counts
}

/// What a bulk job applies: `action` to `ids`, under the caller's `guard`.
pub struct BulkWork<'a> {
    pub ids: &'a [String],
    pub action: Arc<BulkAction>,
    pub guard: Option<Arc<ScopeGuard>>,
    pub dry_run: bool,
}

/// Sends `work.ids[from..]` chunk by chunk, waiting for room in the writer's queue
/// (never refused as overloaded); each chunk advances the job's record in its own
/// transaction. Stops between chunks when the job is cancelled.
pub async fn run(
    store: &Store,
    job: &JobHandle,
    work: BulkWork<'_>,
    from: JobCursor,
    describe: Describe,
) -> RunEnd {
    let BulkWork {
        ids,
        action,
        guard,
        dry_run,
    } = work;
    let start = usize::try_from(from.offset)
        .unwrap_or(usize::MAX)
        .min(ids.len());
    let mut done = start;
    let mut end = JobChange::done();
    for chunk in ids[start..].chunks(CHUNK) {
        if job.cancelled() {
            end = JobChange::Finish {
                state: JobState::Cancelled,
                error: None,
            };
            break;
        }
        done += chunk.len();
        let after = JobCursor {
            offset: done as u64,
            line: 0,
        };
        let step = JobStep {
            job_id: job.id.clone(),
            delta: Box::new(move |written| {
                let counts = tally(written, describe);
                JobDelta {
                    processed: (counts.changed + counts.unchanged + counts.failed.len()) as u64,
                    updated: counts.changed as u64,
                    unchanged: counts.unchanged as u64,
                    failed: counts.failed.len() as u64,
                    errors: counts.failed,
                    cursor: after,
                    ..JobDelta::default()
                }
            }),
        };
        let command = Command::Step {
            step,
            command: Box::new(chunk_command(
                guard.as_ref(),
                &action,
                chunk.to_vec(),
                dry_run,
            )),
        };
        match store.write_when_room(command).await {
            Ok(_) => {}
            Err(StoreError::Closed) => return RunEnd::Interrupted,
            Err(error) => {
                end = JobChange::failed(format!("storage failed: {error}"));
                break;
            }
        }
    }
    super::record_end(store, &job.id, end).await
}
