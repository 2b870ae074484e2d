//! Background jobs (imports): progress and outcome, kept in memory for the life of the
//! process.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors kept per job; the counts go on past it.
pub const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub kind: String,
    pub state: JobState,
    pub processed: u64,
    pub total: Option<u64>,
    pub created: u64,
    pub updated: u64,
    pub failed: u64,
    pub dry_run: bool,
    pub errors: Vec<Value>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct Jobs {
    // A std Mutex: held for a lookup or a counter update, never across an await.
    jobs: Mutex<HashMap<String, JobStatus>>,
}

impl Jobs {
    pub fn create(&self, kind: &str, dry_run: bool) -> JobStatus {
        let job = JobStatus {
            id: ulid::Ulid::generate().to_string(),
            kind: kind.into(),
            state: JobState::Queued,
            processed: 0,
            total: None,
            created: 0,
            updated: 0,
            failed: 0,
            dry_run,
            errors: Vec::new(),
            started_at: None,
            finished_at: None,
        };
        self.jobs
            .lock()
            .expect("jobs mutex is never poisoned")
            .insert(job.id.clone(), job.clone());
        job
    }

    pub fn get(&self, id: &str) -> Option<JobStatus> {
        self.jobs
            .lock()
            .expect("jobs mutex is never poisoned")
            .get(id)
            .cloned()
    }

    pub fn update(&self, id: &str, change: impl FnOnce(&mut JobStatus)) {
        if let Some(job) = self
            .jobs
            .lock()
            .expect("jobs mutex is never poisoned")
            .get_mut(id)
        {
            change(job);
        }
    }
}
