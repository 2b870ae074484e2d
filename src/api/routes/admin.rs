//! `POST /v1/admin/reindex` and `POST /v1/admin/snapshot`: owner-only maintenance,
//! each a job (202, progress in `GET /v1/jobs/{id}`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::transfer::job_response;
use crate::api::{ApiError, AppState, Code};
use crate::jobs::{JobPlan, JobRecord};

fn already_running(kind: &str) -> ApiError {
    ApiError::new(
        Code::Conflict,
        format!("a {kind} job is running; wait for it (GET /v1/jobs?kind={kind}&state=running)"),
    )
}

/// Rebuilds the index from the store in the background; searches keep answering
/// from the current index until the fresh one, caught up, is swapped in.
#[utoipa::path(post, path = "/v1/admin/reindex", tag = "admin",
    responses((status = 202, description = "Reindex job started; `Location` is the job",
               body = crate::jobs::JobStatus)))]
pub async fn reindex(State(state): State<AppState>) -> Result<Response, ApiError> {
    start(&state, JobPlan::Reindex).await
}

/// Writes a consistent copy of the store to a new directory under the configured
/// `jobs.backups_dir` (the job's `output`); `contactd restore DIR --data-dir …`
/// restores it.
#[utoipa::path(post, path = "/v1/admin/snapshot", tag = "admin",
    responses((status = 202, description = "Snapshot job started; `Location` is the job",
               body = crate::jobs::JobStatus)))]
pub async fn snapshot(State(state): State<AppState>) -> Result<Response, ApiError> {
    start(
        &state,
        JobPlan::Snapshot {
            dir: Default::default(),
        },
    )
    .await
}

async fn start(state: &AppState, plan: JobPlan) -> Result<Response, ApiError> {
    let id = ulid::Ulid::generate().to_string();
    let kind = plan.kind();
    let job = state
        .jobs
        .register(&id, kind, 1)
        .map_err(|_| already_running(kind))?;
    let plan = match plan {
        JobPlan::Snapshot { .. } => JobPlan::Snapshot {
            dir: state.config().backups_dir().join(format!("snapshot-{id}")),
        },
        other => other,
    };
    let mut record = JobRecord::new(id, plan, false, state.clock.now());
    if let JobPlan::Snapshot { dir } = &record.plan {
        record.status.output = Some(dir.display().to_string());
    }
    let status = crate::api::jobs::start(state, job, record).await?;
    Ok(job_response(StatusCode::ACCEPTED, &status))
}
