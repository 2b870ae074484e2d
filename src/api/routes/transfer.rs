//! Import (spooled upload + background job), job status, and streamed export.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::search::{NameList, Scope, SearchParams, build_request, projection};
use crate::api::extract::ApiQuery;
use crate::api::{ApiError, AppState};
use crate::store::{ImportMode, MatchBy};
use crate::transfer::{
    Format, ImportOptions, JobStatus, csv_header, csv_record, export_row, run_import,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    #[serde(default)]
    mode: ImportMode,
    #[serde(default, rename = "match")]
    match_by: MatchBy,
    #[serde(default)]
    dry_run: bool,
}

fn job_response(status: StatusCode, job: &JobStatus) -> Response {
    let mut response = (status, Json(job)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Streams the upload to a file (constant memory), then imports it in the background.
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
    let job = state.jobs.create("import", params.dry_run);
    let spool_dir = state.config.data_dir.join("imports");
    tokio::fs::create_dir_all(&spool_dir)
        .await
        .map_err(ApiError::internal)?;
    let path = spool_dir.join(format!("{}.upload", job.id));
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(ApiError::internal)?;
    let mut body = request.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    drop(file);

    let options = ImportOptions {
        mode: params.mode,
        match_by: params.match_by,
        dry_run: params.dry_run,
    };
    let runtime = tokio::runtime::Handle::current();
    let (store, jobs, job_id) = (state.store.clone(), state.jobs.clone(), job.id.clone());
    tokio::task::spawn_blocking(move || {
        run_import(&store, &jobs, &job_id, &path, format, options, &runtime)
    });
    Ok(job_response(StatusCode::ACCEPTED, &job))
}

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    format: Option<String>,
    q: Option<String>,
    filter: Option<String>,
    fields: Option<String>,
    sort: Option<String>,
    tz: Option<String>,
}

const EXPORT_PAGE: usize = 1000;

/// Streams every match page by page (constant memory) as NDJSON or CSV.
pub async fn export(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let format = match params.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => Format::Ndjson,
        "csv" => Format::Csv,
        other => {
            return Err(ApiError::bad_request(format!(
                "format must be ndjson or csv, not '{other}'"
            )));
        }
    };
    let search = SearchParams {
        q: params.q,
        filter: params.filter,
        sort: params.sort.or_else(|| Some("created_at:asc".into())),
        limit: Some(EXPORT_PAGE),
        tz: params.tz,
        fields: params.fields.map(NameList::Text),
        ..SearchParams::default()
    };
    // Check everything before the first byte goes out: errors get a proper status.
    let prepared = state
        .blocking(move |state| {
            let defs = state.store.custom_field_defs()?;
            let (request, _) = build_request(&state, &search, &Scope::default(), &defs)?;
            let fields = search.fields.as_ref().map(NameList::names);
            Ok((request, projection(fields)?, defs))
        })
        .await?;
    let (mut request, fields, defs) = prepared;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let header = csv_header(&defs, fields.as_deref());
        let mut first = true;
        loop {
            let page = match state.index.search(&request) {
                Ok(page) => page,
                Err(error) => {
                    let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
                    return;
                }
            };
            let contacts = match state.store.get_many(&page.ids) {
                Ok(contacts) => contacts,
                Err(error) => {
                    let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
                    return;
                }
            };
            let names_status = request.filter.as_ref().is_some_and(|f| f.names_status);
            let mut chunk = Vec::new();
            match format {
                Format::Ndjson => {
                    for contact in contacts.iter().filter(|c| names_status || c.is_active()) {
                        let row = export_row(contact, fields.as_deref());
                        serde_json::to_writer(&mut chunk, &row).expect("rows serialize");
                        chunk.push(b'\n');
                    }
                }
                Format::Csv => {
                    let mut writer = csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(&mut chunk);
                    if first {
                        let _ = writer.write_record(&header);
                    }
                    for contact in contacts.iter().filter(|c| names_status || c.is_active()) {
                        let _ = writer.write_record(csv_record(contact, &header));
                    }
                    let _ = writer.flush();
                }
            }
            first = false;
            if !chunk.is_empty() && sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return; // the client went away
            }
            match page.next {
                Some(after) => request.after = Some(after),
                None => return,
            }
        }
    });
    let stream = tokio_stream_from(receiver);
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let extension = if format == Format::Csv {
        "csv"
    } else {
        "ndjson"
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
