//! Import (spooled upload + background job), job status, and streamed export.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::search::{Built, NameList, Scope, SearchParams, build_request, projection};
use crate::api::extract::ApiQuery;
use crate::api::scope::Within;
use crate::api::{ApiError, AppState, Code};
use crate::config::LimitsConfig;
use crate::store::{ImportMode, MatchBy};
use crate::transfer::{
    Admits, EXPORT_PAGE, Export, Format, ImportOptions, JobState, JobStatus, run_import,
};

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
    let Some(job) = state
        .jobs
        .create_within("import", params.dry_run, limits.imports_max_running)
    else {
        return Err(ApiError::refused(
            Code::TooManyRequests,
            "imports_max_running",
            format!(
                "{} imports are running (imports_max_running); retry when one is done",
                limits.imports_max_running
            ),
        ));
    };
    let spool_dir = config.data_dir.join("imports");
    let path = spool_dir.join(format!("{}.upload", job.id));
    let spooled = spool_upload(request, &spool_dir, &path, limits).await;
    if let Err(error) = spooled {
        // The job never ran: it must not count against imports_max_running.
        state.jobs.update(&job.id, |job| {
            job.state = JobState::Failed;
            job.finished_at = Some(chrono::Utc::now());
            job.errors.push(json!({"message": error.message}));
        });
        if let Err(cause) = tokio::fs::remove_file(&path).await
            && cause.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%cause, path = %path.display(), "could not remove a refused upload");
        }
        return Err(error);
    }

    let options = ImportOptions {
        mode: params.mode,
        match_by: params.match_by,
        dry_run: params.dry_run,
    };
    let runtime = tokio::runtime::Handle::current();
    let (store, jobs, job_id) = (state.store.clone(), state.jobs.clone(), job.id.clone());
    tokio::task::spawn_blocking(move || {
        run_import(&store, &jobs, &job_id, &path, format, options, &runtime);
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(%error, path = %path.display(), "could not remove a spooled import file");
        }
    });
    Ok(job_response(StatusCode::ACCEPTED, &job))
}

/// Writes the body to `path`, refusing (413) a body over `import_max_bytes` or a line
/// over `import_max_line_bytes` as soon as it arrives, so neither the disk nor the
/// parser ever holds more.
async fn spool_upload(
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
    Ok(())
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "transfer",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobStatus)))]
pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, ApiError> {
    state
        .jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
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
        if let Err(error) = export.run(&state.index, &state.store, emit) {
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
