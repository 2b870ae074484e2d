//! Background jobs: imports, bulk actions over more than a request's worth of
//! contacts, index rebuilds and snapshots.
//!
//! A job's record ([`JobRecord`]: what the API shows, what the job is to do, and how
//! far it got) lives in the store's `jobs` table, so every job survives a restart.
//! Work that changes contacts advances the record **in the same transaction** as the
//! chunk it applied (a [`JobStep`] wrapped around the chunk's command): after a crash
//! the record's cursor is exactly where the committed work ends, so a resumed job
//! neither loses a chunk nor applies one twice.
//!
//! [`Jobs`] is the in-memory side: which jobs run in this process and their cancel
//! flags.

pub mod bulk;
mod registry;

pub use registry::{JobHandle, Jobs, RunningJobsFull};

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{BulkAction, ImportMode, MatchBy};

/// How one run of a job ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Done, failed or cancelled, and recorded so: its spool file may go.
    Finished,
    /// The store closed under it (a shutdown): the job resumes at the next start.
    Interrupted,
}

/// Records how a job ended; `Interrupted` when the store closed first (the job then
/// resumes at the next start).
pub async fn record_end(store: &crate::store::Store, id: &str, change: JobChange) -> RunEnd {
    match store.change_job(id, change).await {
        Ok(_) => RunEnd::Finished,
        Err(_) => RunEnd::Interrupted,
    }
}

/// Errors kept per job; the counts go on past it.
pub const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, not started (an import whose upload is still arriving).
    Queued,
    Running,
    Done,
    Failed,
    /// Stopped by `POST /v1/jobs/{id}/cancel`; the chunks applied before stay applied.
    Cancelled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn parse(text: &str) -> Option<JobState> {
        serde_json::from_value(Value::String(text.into())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// What the API shows of a job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: String,
    /// `import`, `bulk`, `reindex` or `snapshot`.
    pub kind: String,
    pub state: JobState,
    pub processed: u64,
    pub total: Option<u64>,
    pub created: u64,
    pub updated: u64,
    /// Contacts a bulk action found already as asked.
    #[serde(default)]
    pub unchanged: u64,
    pub failed: u64,
    pub dry_run: bool,
    pub errors: Vec<Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times the job was resumed after a restart.
    #[serde(default)]
    pub resumed: u32,
    /// What the job produced, when it produces something (a snapshot's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// What a job is to do: enough to start it again after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobPlan {
    /// Rows of the file at `spool`, which came from `source`.
    Import {
        spool: PathBuf,
        source: ImportSource,
        format: crate::transfer::Format,
        mode: ImportMode,
        match_by: MatchBy,
    },
    /// One action on the ids listed (one per line) in `spool`: the selection fixed
    /// when the job was accepted.
    Bulk {
        spool: PathBuf,
        action: BulkAction,
        /// The filter and fields of the key that asked, re-applied on resume.
        scope: Option<crate::auth::KeyScope>,
    },
    /// Rebuild the index from the store and swap it in.
    Reindex,
    /// A consistent backup of the store into `dir`.
    Snapshot { dir: PathBuf },
}

impl JobPlan {
    pub fn kind(&self) -> &'static str {
        match self {
            JobPlan::Import { .. } => "import",
            JobPlan::Bulk { .. } => "bulk",
            JobPlan::Reindex => "reindex",
            JobPlan::Snapshot { .. } => "snapshot",
        }
    }

    /// The file the server spooled the job's input to, removed when the job ends.
    pub fn spool(&self) -> Option<&std::path::Path> {
        match self {
            JobPlan::Import {
                spool,
                source: ImportSource::Upload,
                ..
            }
            | JobPlan::Bulk { spool, .. } => Some(spool),
            JobPlan::Import { .. } | JobPlan::Reindex | JobPlan::Snapshot { .. } => None,
        }
    }
}

/// Where an import's file came from, which says what becomes of it when the job ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportSource {
    /// An upload the server spooled: removed.
    Upload,
    /// The user's own file (`contactd import --data-dir`): left alone.
    LocalFile,
    /// A file of the drop folder, named `name` there: moved to `done/` or `failed/`
    /// beside a report (see [`crate::drop_folder`]).
    DropFolder { name: String },
}

/// Where a job resumes: for an import the byte offset and line of the next row, for
/// a bulk the number of ids done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCursor {
    pub offset: u64,
    pub line: u64,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub status: JobStatus,
    pub plan: JobPlan,
    pub cursor: JobCursor,
}

impl JobRecord {
    pub fn new(id: String, plan: JobPlan, dry_run: bool, now: DateTime<Utc>) -> JobRecord {
        JobRecord {
            status: JobStatus {
                id,
                kind: plan.kind().into(),
                state: JobState::Queued,
                processed: 0,
                total: None,
                created: 0,
                updated: 0,
                unchanged: 0,
                failed: 0,
                dry_run,
                errors: Vec::new(),
                created_at: now,
                started_at: None,
                finished_at: None,
                resumed: 0,
                output: None,
            },
            plan,
            cursor: JobCursor::default(),
        }
    }

    /// Adds what one chunk did and moves the cursor past it.
    pub fn advance(&mut self, delta: JobDelta) {
        let status = &mut self.status;
        status.processed += delta.processed;
        status.created += delta.created;
        status.updated += delta.updated;
        status.unchanged += delta.unchanged;
        status.failed += delta.failed;
        let room = MAX_ERRORS.saturating_sub(status.errors.len());
        status.errors.extend(delta.errors.into_iter().take(room));
        self.cursor = delta.cursor;
    }

    /// Applies a state change at `now`.
    pub fn change(&mut self, change: JobChange, now: DateTime<Utc>) {
        let status = &mut self.status;
        match change {
            JobChange::Start => {
                status.state = JobState::Running;
                status.started_at.get_or_insert(now);
            }
            JobChange::Resume => {
                status.state = JobState::Running;
                status.resumed += 1;
            }
            JobChange::Total(total) => status.total = Some(total),
            JobChange::Progress(processed) => status.processed = processed,
            JobChange::Output(output) => status.output = Some(output),
            JobChange::Finish { state, error } => {
                status.state = state;
                status.finished_at = Some(now);
                if let Some(message) = error
                    && status.errors.len() < MAX_ERRORS
                {
                    status
                        .errors
                        .push(serde_json::json!({"line": null, "field": null, "message": message}));
                }
            }
        }
    }
}

/// What one chunk of a job did, and the cursor after it.
#[derive(Debug, Default)]
pub struct JobDelta {
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub errors: Vec<Value>,
    pub cursor: JobCursor,
}

/// A change of a job's state (written through the store's writer).
#[derive(Debug, Clone)]
pub enum JobChange {
    Start,
    /// Started again after a restart.
    Resume,
    Total(u64),
    /// Units done so far, for jobs that do not advance by [`JobStep`]s.
    Progress(u64),
    Output(String),
    /// Done, failed (with the reason) or cancelled.
    Finish {
        state: JobState,
        error: Option<String>,
    },
}

impl JobChange {
    pub fn failed(error: impl std::fmt::Display) -> JobChange {
        JobChange::Finish {
            state: JobState::Failed,
            error: Some(error.to_string()),
        }
    }

    pub fn done() -> JobChange {
        JobChange::Finish {
            state: JobState::Done,
            error: None,
        }
    }
}

/// Turns the outcome of the command a step wraps into the job's delta; runs on the
/// store's writer, inside the transaction that commits the command.
pub struct JobStep {
    pub job_id: String,
    pub delta: Box<dyn FnOnce(&crate::store::Written) -> JobDelta + Send>,
}

impl std::fmt::Debug for JobStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStep")
            .field("job_id", &self.job_id)
            .finish_non_exhaustive()
    }
}

/// Which jobs a listing shows (`GET /v1/jobs`), newest first.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Only jobs older than this id (the previous page's last).
    pub before: Option<String>,
    pub limit: usize,
}

impl JobQuery {
    pub fn admits(&self, status: &JobStatus) -> bool {
        self.state.is_none_or(|state| status.state == state)
            && self.kind.as_ref().is_none_or(|kind| &status.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_moves_the_cursor_and_keeps_at_most_max_errors() {
        let mut record = JobRecord::new("j".into(), JobPlan::Reindex, false, Utc::now());
        let errors = vec![serde_json::json!({"message": "x"}); MAX_ERRORS + 5];
        record.advance(JobDelta {
            processed: 10,
            failed: (MAX_ERRORS + 5) as u64,
            errors,
            cursor: JobCursor {
                offset: 99,
                line: 7,
            },
            ..JobDelta::default()
        });
        assert_eq!(record.status.errors.len(), MAX_ERRORS);
        assert_eq!(record.status.failed, (MAX_ERRORS + 5) as u64);
        assert_eq!(
            record.cursor,
            JobCursor {
                offset: 99,
                line: 7
            }
        );
        record.change(JobChange::done(), Utc::now());
        assert!(record.status.state.is_finished());
        assert_eq!(JobState::parse("cancelled"), Some(JobState::Cancelled));
        assert_eq!(JobState::parse("nope"), None);
    }
}
