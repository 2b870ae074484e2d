//! Owner-only maintenance: `POST /v1/admin/reindex` and `POST /v1/admin/snapshot`
//! (each a job: 202, progress in `GET /v1/jobs/{id}`), and the lossless migration
//! pair `GET /v1/admin/dump` / `POST /v1/admin/load`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::transfer::{job_response, spool_upload};
use crate::api::{ApiError, AppState, Code};
use crate::jobs::{JobPlan, JobRecord};
use crate::transfer::{LoadSummary, MigrateError, load_dump, write_dump};

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

/// Streams every record of the store (one snapshot) as NDJSON, for `POST
/// /v1/admin/load` or `contactd import --all` on another server.
#[utoipa::path(get, path = "/v1/admin/dump", tag = "admin",
    responses((status = 200, description = "The dump, streamed: a header line, then one record per line",
               content((String = "application/x-ndjson")))))]
pub async fn dump(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            sender: &sender,
            buffer: Vec::with_capacity(CHUNK_BYTES),
        };
        let written =
            write_dump(&state.store, &mut out).and_then(|_| Ok(std::io::Write::flush(&mut out)?));
        if let Err(error) = written {
            tracing::error!(%error, "dump failed midway");
            let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"contactd-dump.ndjson\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Bytes sent to the client per chunk of a dump.
const CHUNK_BYTES: usize = 256 * 1024;

/// A `Write` that sends full chunks down a channel (blocking; a client gone is a
/// broken pipe).
struct ChannelWriter<'a> {
    sender: &'a tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl std::io::Write for ChannelWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// Loads a dump (`GET /v1/admin/dump`, `contactd export --all`) into this server,
/// which must hold no contact, company, custom field, inbox or merge (409
/// otherwise). Answers once every record is stored, with the counts.
#[utoipa::path(post, path = "/v1/admin/load", tag = "admin",
    request_body(description = "A dump", content((String = "application/x-ndjson"))),
    responses((status = 200, body = LoadSummary)))]
pub async fn load(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let config = state.config();
    let spool_dir = config.spool_dir();
    let path = spool_dir.join(format!("{}.dump", ulid::Ulid::generate()));
    let spooled = spool_upload(request, &spool_dir, &path, &config.limits).await;
    let loaded = match spooled {
        Ok(()) => {
            let runtime = tokio::runtime::Handle::current();
            let path = path.clone();
            state
                .blocking(move |state| {
                    let file = std::fs::File::open(&path).map_err(ApiError::internal)?;
                    load_dump(&state.store, std::io::BufReader::new(file), &runtime).map_err(
                        |error| match error {
                            MigrateError::Malformed { .. } => {
                                ApiError::bad_request(error.to_string())
                            }
                            MigrateError::Store(error) => ApiError::from(error),
                            MigrateError::Io(error) => ApiError::internal(error),
                        },
                    )
                })
                .await
        }
        Err(error) => Err(error),
    };
    if let Err(error) = tokio::fs::remove_file(&path).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %path.display(), "cannot remove a spooled dump");
    }
    Ok(Json(loaded?).into_response())
}
