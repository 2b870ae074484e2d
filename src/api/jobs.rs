//! Starting the runner of a job: one the API just accepted, or one a restart found
//! unfinished; and forgetting finished jobs after `jobs.keep_finished_secs`.
//!
//! A runner that stops because the store closed (a shutdown) leaves its job running
//! in the record: the next start resumes it from its cursor. Every other end (done,
//! failed, cancelled) is recorded, and then the job's spool file is removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::scope::Within;
use super::{ApiError, AppState};
use crate::jobs::{ImportSource, JobChange, JobHandle, JobPlan, JobRecord, JobState, RunEnd, bulk};
use crate::store::{Command, ScopeGuard, StoreError};
use crate::transfer::{ImportOptions, run_import};

/// Jobs of one kind a restart may resume at once (imports are bounded when accepted).
const RESUMED_MAX: usize = usize::MAX;

/// A contact a bulk chunk could not change, as the API shows it.
pub fn bulk_failure(error: &StoreError) -> Value {
    let error = ApiError::from(error);
    json!({"code": error.code, "message": error.message})
}

/// Records a new job as running and starts its runner; `record.plan`'s spool file,
/// if any, is written and synced already. Returns the job's status.
pub async fn start(
    state: &AppState,
    job: JobHandle,
    mut record: JobRecord,
) -> Result<crate::jobs::JobStatus, ApiError> {
    record.change(JobChange::Start, state.clock.now());
    state
        .store
        .write(Command::PutJob(Box::new(record.clone())))
        .await?;
    let status = record.status.clone();
    launch(state, job, record);
    Ok(status)
}

/// Starts the runner of a recorded job in the background.
pub fn launch(state: &AppState, job: JobHandle, record: JobRecord) {
    let JobRecord {
        status,
        plan,
        cursor,
    } = record;
    let dry_run = status.dry_run;
    let state = state.clone();
    match plan {
        JobPlan::Import {
            spool,
            source,
            format,
            mode,
            match_by,
        } => {
            let runtime = tokio::runtime::Handle::current();
            let options = ImportOptions {
                mode,
                match_by,
                dry_run,
            };
            tokio::task::spawn_blocking(move || {
                let end = run_import(
                    &state.store,
                    &job,
                    &spool,
                    format,
                    options,
                    cursor,
                    &runtime,
                );
                if end != RunEnd::Finished {
                    return;
                }
                match source {
                    ImportSource::Upload => remove_spool(&spool),
                    ImportSource::LocalFile => {}
                    ImportSource::DropFolder { name } => {
                        crate::drop_folder::file_away(&state, &job.id, &spool, &name)
                    }
                }
            });
        }
        JobPlan::Bulk {
            spool,
            action,
            scope,
        } => {
            tokio::spawn(async move {
                let end = match bulk_inputs(&state, &spool, scope).await {
                    Ok((ids, guard)) => {
                        let work = bulk::BulkWork {
                            ids: &ids,
                            action: Arc::new(action),
                            guard,
                            dry_run,
                        };
                        bulk::run(&state.store, &job, work, cursor, bulk_failure).await
                    }
                    Err(reason) => finish(&state, &job.id, JobChange::failed(reason)).await,
                };
                if end == RunEnd::Finished {
                    remove_spool(&spool);
                }
            });
        }
        JobPlan::Reindex => {
            tokio::spawn(async move {
                let outcome = run_reindex(&state, &job).await;
                let change = match outcome {
                    Ok(()) => JobChange::done(),
                    Err(error) => JobChange::failed(error.message),
                };
                finish(&state, &job.id, change).await;
            });
        }
        JobPlan::Snapshot { dir } => {
            tokio::spawn(async move {
                let outcome = run_snapshot(&state, &dir).await;
                let change = match outcome {
                    Ok(()) => JobChange::done(),
                    Err(error) => {
                        remove_partial(&dir);
                        JobChange::failed(error.message)
                    }
                };
                finish(&state, &job.id, change).await;
            });
        }
    }
}

/// Rebuilds the index from the store beside the live one and swaps it in; progress
/// (contacts indexed) goes to the job as it builds.
async fn run_reindex(state: &AppState, job: &JobHandle) -> Result<(), ApiError> {
    let total = state
        .blocking_ungated(|state| Ok(state.store.counts()?.iter().map(|(_, n)| n).sum::<u64>()))
        .await?;
    let id = job.id.clone();
    state.store.change_job(&id, JobChange::Total(total)).await?;
    let reindexer = state.reindexer.clone();
    let store = state.store.clone();
    let seq = tokio::task::spawn_blocking(move || {
        reindexer.run(|processed| {
            let change = JobChange::Progress(processed);
            store.write_detached(Command::ChangeJob {
                id: id.clone(),
                change,
            });
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| ApiError::internal(format!("reindex failed: {error}")))?;
    let change = JobChange::Progress(total);
    state.store.change_job(&job.id, change).await?;
    tracing::info!(seq, "reindex done");
    Ok(())
}

/// Name of the file in a snapshot directory that describes it.
pub const SNAPSHOT_MANIFEST: &str = "snapshot.json";
/// Name of the store file in a snapshot directory.
pub const SNAPSHOT_STORE: &str = "contacts.redb";

/// Copies the store into `dir` (consistent as of one moment, writes going on
/// meanwhile) and describes it in a manifest; restore with `contactd restore`.
async fn run_snapshot(state: &AppState, dir: &Path) -> Result<(), ApiError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(ApiError::internal)?;
    let seq = state.store.backup(dir.join(SNAPSHOT_STORE)).await?;
    let manifest = json!({
        "format": 1,
        "seq": seq,
        "taken_at": state.clock.now(),
        "contactd": env!("CARGO_PKG_VERSION"),
    });
    let path = dir.join(SNAPSHOT_MANIFEST);
    let text = serde_json::to_vec_pretty(&manifest).map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        std::fs::write(&path, text)?;
        std::fs::File::open(&path)?.sync_all()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(())
}

/// A bulk job's selection (from its spool) and its key's scope, typed again.
async fn bulk_inputs(
    state: &AppState,
    spool: &Path,
    scope: Option<crate::auth::KeyScope>,
) -> Result<(Vec<String>, Option<Arc<ScopeGuard>>), String> {
    let text = tokio::fs::read_to_string(spool)
        .await
        .map_err(|e| format!("cannot read the job's selection: {e}"))?;
    let ids = text.lines().map(str::to_string).collect();
    let key = Within(scope.map(Arc::new));
    let bound = state
        .blocking_ungated(move |state| super::routes::bind_key(&state, &key))
        .await
        .map_err(|e| format!("the key's scope no longer applies: {}", e.message))?;
    Ok((ids, bound.and_then(|bound| bound.guard())))
}

/// Records a job's end.
async fn finish(state: &AppState, id: &str, change: JobChange) -> RunEnd {
    crate::jobs::record_end(&state.store, id, change).await
}

fn remove_spool(spool: &Path) {
    if let Err(error) = std::fs::remove_file(spool)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %spool.display(), "cannot remove a job's spool file");
    }
}

fn remove_partial(dir: &Path) {
    if dir.exists()
        && let Err(error) = std::fs::remove_dir_all(dir)
    {
        tracing::warn!(%error, dir = %dir.display(), "cannot remove an unfinished snapshot");
    }
}

/// At start: resumes every job a previous process left running, from its cursor;
/// fails the ones that cannot resume (an upload that never finished arriving, a
/// snapshot cut off) with the reason; removes spool files no job needs.
pub async fn resume_unfinished(state: &AppState) -> Result<(), ApiError> {
    let unfinished = state
        .blocking_ungated(|state| Ok(state.store.unfinished_jobs()?))
        .await?;
    let mut needed: Vec<PathBuf> = Vec::new();
    for record in unfinished {
        let id = record.status.id.clone();
        let cannot_resume = match (&record.status.state, &record.plan) {
            (JobState::Queued, _) => {
                Some("the server stopped before the job started (its upload was incomplete)")
            }
            (_, JobPlan::Snapshot { dir }) => {
                remove_partial(dir);
                Some("the server stopped while the snapshot was written; take a new one")
            }
            _ => None,
        };
        if let Some(reason) = cannot_resume {
            tracing::warn!(job = %id, reason, "job cannot resume");
            finish(state, &id, JobChange::failed(reason)).await;
            continue;
        }
        let Ok(job) = state.jobs.register(&id, record.plan.kind(), RESUMED_MAX) else {
            continue;
        };
        state.store.change_job(&id, JobChange::Resume).await?;
        tracing::info!(job = %id, kind = record.plan.kind(), cursor = ?record.cursor, "resuming a job");
        needed.extend(record.plan.spool().map(Path::to_path_buf));
        launch(state, job, record);
    }
    remove_orphan_spools(&state.config().spool_dir(), &needed);
    Ok(())
}

/// Removes files of the spool directory no unfinished job reads (left by a crash
/// between writing a spool and recording its job, or by a pruned job).
fn remove_orphan_spools(dir: &Path, needed: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !needed.contains(&path) {
            remove_spool(&path);
        }
    }
}

/// Forgets finished jobs older than `jobs.keep_finished_secs`, until `stop` turns
/// true. Looks every quarter of that time, between once a second and once a minute.
pub async fn prune_finished(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        // At most a century: any longer keeps every job anyway.
        let keep = state
            .config()
            .jobs
            .keep_finished_secs
            .min(100 * 365 * 86_400);
        let every = std::time::Duration::from_secs(keep / 4).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
        );
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let finished_before = state
            .clock
            .now()
            .checked_sub_signed(chrono::Duration::seconds(keep as i64))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        match state
            .store
            .write_when_room(Command::PruneJobs { finished_before })
            .await
        {
            Ok(ack) => {
                if let crate::store::Written::PrunedJobs(pruned) = ack.written {
                    for record in &pruned {
                        if let Some(spool) = record.plan.spool() {
                            remove_spool(spool);
                        }
                    }
                    if !pruned.is_empty() {
                        tracing::info!(count = pruned.len(), "forgot finished jobs");
                    }
                }
            }
            Err(error) => tracing::error!(%error, "pruning finished jobs failed"),
        }
    }
}
