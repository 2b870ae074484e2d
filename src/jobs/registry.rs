//! The jobs running in this process: at most a configured number per kind, each with
//! a cancel flag its runner checks between chunks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Refused: as many jobs of that kind as allowed are running.
#[derive(Debug, thiserror::Error)]
#[error("{max} {kind} jobs are running")]
pub struct RunningJobsFull {
    pub kind: &'static str,
    pub max: usize,
}

#[derive(Debug, Default)]
pub struct Jobs {
    // A std Mutex: held to insert, look up or remove, never across an await.
    running: Mutex<HashMap<String, Running>>,
}

#[derive(Debug)]
struct Running {
    kind: &'static str,
    cancel: Arc<AtomicBool>,
}

impl Jobs {
    /// Registers job `id` of `kind` as running here, unless `max` of that kind are.
    pub fn register(
        self: &Arc<Self>,
        id: &str,
        kind: &'static str,
        max: usize,
    ) -> Result<JobHandle, RunningJobsFull> {
        let mut running = self.running.lock().expect("jobs mutex is never poisoned");
        if running.values().filter(|job| job.kind == kind).count() >= max {
            return Err(RunningJobsFull { kind, max });
        }
        let cancel = Arc::new(AtomicBool::new(false));
        running.insert(
            id.to_string(),
            Running {
                kind,
                cancel: cancel.clone(),
            },
        );
        Ok(JobHandle {
            id: id.to_string(),
            cancel,
            jobs: self.clone(),
        })
    }

    /// Asks a job running here to stop after its current chunk; `false` when no job
    /// of that id runs here.
    pub fn cancel(&self, id: &str) -> bool {
        let running = self.running.lock().expect("jobs mutex is never poisoned");
        match running.get(id) {
            Some(job) => {
                job.cancel.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.running
            .lock()
            .expect("jobs mutex is never poisoned")
            .contains_key(id)
    }
}

/// A job's registration: held by its runner, released when the runner drops it.
#[derive(Debug)]
pub struct JobHandle {
    pub id: String,
    cancel: Arc<AtomicBool>,
    jobs: Arc<Jobs>,
}

impl JobHandle {
    /// Whether a cancel was asked for.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.jobs
            .running
            .lock()
            .expect("jobs mutex is never poisoned")
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_jobs_of_a_kind_are_bounded_until_their_handle_goes() {
        let jobs = Arc::new(Jobs::default());
        let first = jobs.register("a", "import", 1).unwrap();
        assert!(jobs.register("b", "import", 1).is_err());
        let other_kind = jobs.register("c", "bulk", 1).unwrap();
        assert!(jobs.cancel("a") && first.cancelled() && !other_kind.cancelled());
        drop(first);
        assert!(!jobs.cancel("a"));
        assert!(jobs.register("b", "import", 1).is_ok());
    }
}
