//! Job records in the `jobs` table: created, advanced by the chunk they ride with,
//! changed, and pruned once finished for long enough.

use chrono::{DateTime, Utc};
use redb::ReadableTable;

use super::TxnTables;
use crate::jobs::{JobChange, JobDelta, JobRecord, JobStatus};
use crate::store::{StoreError, tables};

impl TxnTables<'_> {
    pub fn put_job(&mut self, record: &JobRecord) -> Result<(), StoreError> {
        self.jobs
            .insert(record.status.id.as_str(), tables::encode(record).as_slice())?;
        Ok(())
    }

    /// The job's record; a conflict (failing only the command asking) when the job
    /// has been pruned.
    pub fn job(&self, id: &str) -> Result<JobRecord, StoreError> {
        match self.jobs.get(id)? {
            Some(bytes) => tables::decode(bytes.value()),
            None => Err(StoreError::Conflict(format!("job {id} no longer exists"))),
        }
    }

    /// Changes a job's state; its status after.
    pub fn change_job(&mut self, id: &str, change: JobChange) -> Result<JobStatus, StoreError> {
        let mut record = self.job(id)?;
        record.change(change, self.now);
        self.put_job(&record)?;
        Ok(record.status)
    }

    /// Adds a chunk's outcome to its job's record (read by [`Self::job`] before the
    /// chunk ran, so a missing job never leaves a chunk applied).
    pub fn advance_job(
        &mut self,
        mut record: JobRecord,
        delta: JobDelta,
    ) -> Result<(), StoreError> {
        record.advance(delta);
        self.put_job(&record)
    }

    /// Removes jobs finished before `finished_before`; returns them (their spool
    /// files are the caller's to remove).
    pub fn prune_jobs(
        &mut self,
        finished_before: DateTime<Utc>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let mut pruned = Vec::new();
        for entry in self.jobs.iter()? {
            let record: JobRecord = tables::decode(entry?.1.value())?;
            if record
                .status
                .finished_at
                .is_some_and(|at| at < finished_before)
            {
                pruned.push(record);
            }
        }
        for record in &pruned {
            self.jobs.remove(record.status.id.as_str())?;
        }
        Ok(pruned)
    }
}
