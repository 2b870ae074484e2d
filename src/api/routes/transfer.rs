//! Import (spooled upload + background job), job status, and streamed export.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::search::{Built, NameList, Scope, SearchParams, build_request, projection};
use crate::api::extract::ApiQuery;
use crate::api::scope::Within;
use crate::api::{ApiError, AppState, Code};
use crate::config::LimitsConfig;
use crate::jobs::{ImportSource, JobChange, JobPlan, JobQuery, JobRecord, JobState, JobStatus};
use crate::store::Command;
use crate::store::{ImportMode, MatchBy};
use crate::transfer::{Admits, EXPORT_PAGE, Export, Format};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `upsert` (default) or `create`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    mode: ImportMode,
    /// What an upsert matches by: `external_id`, `email`, `identity`.
    #[serde(default, rename = "match")]
    #[param(value_type = Option<String>)]
    match_by: MatchBy,
    #[serde(default)]
    dry_run: bool,
}

pub(super) fn job_response(status: StatusCode, job: &JobStatus) -> Response {
    let mut response = (status, Json(job)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Streams the upload to a file (constant memory), then imports it in the background.
#[utoipa::path(post, path = "/v1/contacts/import", tag = "transfer",
    params(ImportParams),
    request_body(description = "CSV (`text/csv`) or NDJSON (`application/x-ndjson`) rows",
                 content((String = "text/csv"), (String = "application/x-ndjson"))),
    responses((status = 202, description = "Import job started; `Location` is the job", body = JobStatus)))]
pub async fn import(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ImportParams>,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match content_type.as_str() {
        "text/csv" => Format::Csv,
        "application/x-ndjson" | "application/ndjson" => Format::Ndjson,
        other => {
            return Err(ApiError::bad_request(format!(
                "Content-Type must be text/csv or application/x-ndjson, not '{other}'"
            )));
        }
    };
    let config = state.config();
    let limits = &config.limits;
    let id = ulid::Ulid::generate().to_string();
    let job = state
        .jobs
        .register(&id, "import", limits.imports_max_running)
        .map_err(|full| {
            ApiError::refused(
                Code::TooManyRequests,
                "imports_max_running",
                format!("{full} (imports_max_running); retry when one is done"),
            )
        })?;
    let spool_dir = config.spool_dir();
    let path = spool_dir.join(format!("{id}.upload"));
    let plan = JobPlan::Import {
        spool: path.clone(),
        source: ImportSource::Upload,
        format,
        mode: params.mode,
        match_by: params.match_by,
    };
    // Recorded before the upload arrives, so a restart during it lists the job (as
    // failed: an upload cut off cannot resume).
    let record = JobRecord::new(id.clone(), plan, params.dry_run, state.clock.now());
    state
        .store
        .write(Command::PutJob(Box::new(record.clone())))
        .await?;
    if let Err(error) = spool_upload(request, &spool_dir, &path, limits).await {
        let change = JobChange::failed(&error.message);
        state.store.change_job(&id, change).await?;
        if let Err(cause) = tokio::fs::remove_file(&path).await
            && cause.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%cause, path = %path.display(), "could not remove a refused upload");
        }
        return Err(error);
    }
    let status = crate::api::jobs::start(&state, job, record).await?;
    Ok(job_response(StatusCode::ACCEPTED, &status))
}

/// Writes the body to `path`, refusing (413) a body over `import_max_bytes` or a line
/// over `import_max_line_bytes` as soon as it arrives, so neither the disk nor the
/// parser ever holds more.
pub(super) async fn spool_upload(
    request: Request,
    spool_dir: &std::path::Path,
    path: &std::path::Path,
    limits: &LimitsConfig,
) -> Result<(), ApiError> {
    tokio::fs::create_dir_all(spool_dir)
        .await
        .map_err(ApiError::internal)?;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let too_large = |key, message: String| ApiError::refused(Code::PayloadTooLarge, key, message);
    let (mut total, mut line) = (0u64, 0usize);
    let mut body = request.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        total += chunk.len() as u64;
        if total > limits.import_max_bytes {
            return Err(too_large(
                "import_max_bytes",
                format!(
                    "the upload is over {} bytes (import_max_bytes)",
                    limits.import_max_bytes
                ),
            ));
        }
        // `line` carries the length of the line the previous chunk ended in.
        let mut pieces = chunk.split(|b| *b == b'\n').peekable();
        let mut continues_line = true;
        while let Some(piece) = pieces.next() {
            let length = piece.len() + if continues_line { line } else { 0 };
            continues_line = false;
            if length > limits.import_max_line_bytes {
                return Err(too_large(
                    "import_max_line_bytes",
                    format!(
                        "a line of the upload is over {} bytes (import_max_line_bytes)",
                        limits.import_max_line_bytes
                    ),
                ));
            }
            if pieces.peek().is_none() {
                line = length;
            }
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    // The job resumes from this file after a crash: it must be on disk before the
    // job is recorded as running.
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok(())
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobStatus)))]
pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, ApiError> {
    let record = state
        .blocking(move |state| Ok(state.store.job(&id)?.ok_or(id)))
        .await?;
    record
        .map(|record| Json(record.status))
        .map_err(|id| ApiError::not_found(format!("job {id} not found")))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsParams {
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    state: Option<String>,
    /// `import`, `bulk`, `reindex` or `snapshot`.
    kind: Option<String>,
    /// 1–100 (default 20).
    limit: Option<usize>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct JobsPage {
    pub jobs: Vec<JobStatus>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

const JOB_KINDS: [&str; 4] = ["import", "bulk", "reindex", "snapshot"];

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsParams),
    responses((status = 200, body = JobsPage)))]
pub async fn jobs(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<JobsParams>,
) -> Result<Json<JobsPage>, ApiError> {
    let job_state = params
        .state
        .map(|text| {
            JobState::parse(&text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "state must be queued, running, done, failed or cancelled, not '{text}'"
                ))
            })
        })
        .transpose()?;
    if let Some(kind) = &params.kind
        && !JOB_KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "kind must be one of {}, not '{kind}'",
            JOB_KINDS.join(", ")
        )));
    }
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 100"));
    }
    if let Some(cursor) = &params.cursor
        && ulid::Ulid::from_string(cursor).is_err()
    {
        return Err(ApiError::bad_request("cursor is not one this server gave"));
    }
    let query = JobQuery {
        state: job_state,
        kind: params.kind,
        before: params.cursor,
        limit,
    };
    let (jobs, more) = state
        .blocking(move |state| Ok(state.store.jobs(&query)?))
        .await?;
    let next_cursor = more
        .then(|| jobs.last().map(|job| job.id.clone()))
        .flatten();
    Ok(Json(JobsPage { jobs, next_cursor }))
}

/// Stops a queued or running job after its current chunk (what was applied stays
/// applied); 409 when the job has finished.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, description = "The job stops after its current chunk", body = JobStatus)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = id.clone();
    let Some(record) = state
        .blocking(move |state| Ok(state.store.job(&lookup)?))
        .await?
    else {
        return Err(ApiError::not_found(format!("job {id} not found")));
    };
    if matches!(record.plan, JobPlan::Reindex | JobPlan::Snapshot { .. }) {
        return Err(ApiError::new(
            Code::Conflict,
            format!("a {} job cannot be cancelled", record.plan.kind()),
        ));
    }
    if record.status.state.is_finished() || !state.jobs.cancel(&id) {
        return Err(ApiError::new(
            Code::Conflict,
            format!(
                "job {id} has already ended ({})",
                record.status.state.as_str()
            ),
        ));
    }
    Ok(job_response(StatusCode::ACCEPTED, &record.status))
}

/// The query of an export (`GET /v1/contacts/export`, `contactd export`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    pub format: Option<String>,
    pub q: Option<String>,
    pub filter: Option<String>,
    pub fields: Option<String>,
    pub sort: Option<String>,
    pub tz: Option<String>,
}

/// Checks an export's parameters and plans it (blocking: reads the definitions);
/// `key` is the caller's key scope.
pub fn prepare_export(
    state: &AppState,
    params: ExportParams,
    key: Within,
) -> Result<Export, ApiError> {
    let format = match params.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => Format::Ndjson,
        "csv" => Format::Csv,
        other => {
            return Err(ApiError::bad_request(format!(
                "format must be ndjson or csv, not '{other}'"
            )));
        }
    };
    // Every contact, in no asked order: streamed from one store snapshot.
    let everything = params.q.is_none() && params.filter.is_none() && params.sort.is_none();
    let search = SearchParams {
        q: params.q,
        filter: params.filter,
        sort: params.sort.or_else(|| Some("created_at:asc".into())),
        limit: Some(EXPORT_PAGE),
        tz: params.tz,
        fields: params.fields.map(NameList::Text),
        ..SearchParams::default()
    };
    let defs = state.store.custom_field_defs()?;
    let Built {
        mut request, key, ..
    } = build_request(state, &search, &Scope::of_key(key), &defs)?;
    // An export streams for as long as it takes; each page is a small search.
    request.deadline = None;
    let mut fields = projection(search.fields.as_ref().map(NameList::names))?;
    let mut admits: Option<Admits> = None;
    if let Some(key) = key {
        fields = key.visible_fields(fields);
        admits = Some(Box::new(move |contact, context| {
            key.admits(contact, context)
        }));
    }
    Ok(Export {
        request: (!everything).then_some(request),
        format,
        fields,
        defs,
        admits,
    })
}

/// Streams every match page by page (constant memory) as NDJSON or CSV.
#[utoipa::path(get, path = "/v1/contacts/export", tag = "transfer",
    params(ExportParams),
    responses((status = 200, description = "Every match, streamed", content(
        (String = "application/x-ndjson"), (String = "text/csv")))))]
pub async fn export(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    // Check everything before the first byte goes out: errors get a proper status.
    let export = state
        .blocking(move |state| prepare_export(&state, params, key))
        .await?;
    let format = export.format;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let emit = |chunk: Vec<u8>| sender.blocking_send(Ok(Bytes::from(chunk))).is_ok();
        if let Err(error) = export.run(&state.index.get(), &state.store, emit) {
            tracing::error!(%error, "export failed midway");
            let _ = sender.blocking_send(Err(std::io::Error::other(error)));
        }
    });
    let stream = tokio_stream_from(receiver);
    let (content_type, extension) = match format {
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"contacts.{extension}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn tokio_stream_from(
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
