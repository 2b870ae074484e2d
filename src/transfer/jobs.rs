//! Background jobs (imports, large bulk actions): progress and outcome, kept in memory for the life of the
//! process.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors kept per job; the counts go on past it.
pub const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: String,
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
        self.create_within(kind, dry_run, usize::MAX)
            .expect("no bound on unfinished jobs")
    }

    /// Creates a job unless `max_unfinished` jobs of `kind` are queued or running.
    pub fn create_within(
        &self,
        kind: &str,
        dry_run: bool,
        max_unfinished: usize,
    ) -> Option<JobStatus> {
        let mut jobs = self.jobs.lock().expect("jobs mutex is never poisoned");
        let unfinished = jobs
            .values()
            .filter(|job| job.kind == kind)
            .filter(|job| matches!(job.state, JobState::Queued | JobState::Running))
            .count();
        if unfinished >= max_unfinished {
            return None;
        }
        let job = JobStatus {
            id: ulid::Ulid::generate().to_string(),
            kind: kind.into(),
            state: JobState::Queued,
            processed: 0,
            total: None,
            created: 0,
            updated: 0,
            unchanged: 0,
            failed: 0,
            dry_run,
            errors: Vec::new(),
            started_at: None,
            finished_at: None,
        };
        jobs.insert(job.id.clone(), job.clone());
        Some(job)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_jobs_of_a_kind_are_bounded() {
        let jobs = Jobs::default();
        let first = jobs.create_within("import", false, 1).unwrap();
        assert!(jobs.create_within("import", false, 1).is_none());
        assert!(
            jobs.create_within("bulk", false, 1).is_some(),
            "other kinds apart"
        );
        jobs.update(&first.id, |job| job.state = JobState::Done);
        assert!(jobs.create_within("import", false, 1).is_some());
    }
}
