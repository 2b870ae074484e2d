//! `POST /v1/contacts/bulk`: one action on many contacts, by ids or by everything a
//! search matches (not a page of it).
//!
//! The set of contacts is fixed when the request arrives (the index's matches at that
//! moment; contacts created later are not swept in). Up to [`SYNC_MAX`] contacts are
//! answered with the counts; more run as a job (202, progress in `GET /v1/jobs/{id}`).
//! Either way the contacts are sent to the store writer in chunks of [`CHUNK`], each
//! its own short transaction, so other writes interleave with a large bulk; each
//! contact applies whole or not at all.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::contacts::{WaitFor, key_of, scoped};
use super::search::{Built, Scope, SearchParams, at_most, build_request};
use super::transfer::job_response;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::scope::{Bound, Within};
use crate::api::{ApiError, AppState};
use crate::store::{BulkAction, Command, Store, Written};
use crate::transfer::{JobState, Jobs};

/// Contacts answered in the request; more become a job.
pub const SYNC_MAX: usize = 1000;
/// Contacts per writer command (one short transaction each).
const CHUNK: usize = 250;
/// Ids one request may list.
const IDS_MAX: usize = 100_000;

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkActionName {
    Delete,
    Restore,
    AddTags,
    RemoveTags,
    Assign,
    SetFields,
}

/// Which contacts and what to do to them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    action: BulkActionName,
    /// These contacts; or leave out and give `filter` and/or `q` for every match.
    ids: Option<Vec<String>>,
    filter: Option<String>,
    q: Option<String>,
    /// For `add_tags` and `remove_tags`.
    tags: Option<Vec<String>>,
    /// For `assign`: the assignee, or null to unassign.
    #[serde(default)]
    assignee: Option<String>,
    /// For `set_fields`: a merge patch of writable fields.
    fields: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BulkParams {
    /// Count what would change, change nothing.
    #[serde(default)]
    dry_run: bool,
    /// `indexed`: answer once the changes are searchable (synchronous bulks).
    #[param(inline)]
    wait: Option<WaitFor>,
}

/// The outcome of a bulk answered in the request.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    /// Contacts the request selected.
    pub matched: usize,
    pub changed: usize,
    /// Already as asked.
    pub unchanged: usize,
    /// `{"id", "code", "message"}` for each contact that could not be changed.
    pub failed: Vec<Value>,
    pub dry_run: bool,
    /// The change-log sequence after the last chunk (for `min_seq`).
    pub seq: u64,
}

impl BulkRequest {
    /// The action, checked against the fields it needs.
    fn action(&self) -> Result<BulkAction, ApiError> {
        let tags = || match &self.tags {
            Some(tags) if !tags.is_empty() => Ok(tags.clone()),
            _ => Err(ApiError::bad_request(
                "this action needs a non-empty `tags` list",
            )),
        };
        Ok(match self.action {
            BulkActionName::Delete => BulkAction::Delete,
            BulkActionName::Restore => BulkAction::Restore,
            BulkActionName::AddTags => BulkAction::AddTags(tags()?),
            BulkActionName::RemoveTags => BulkAction::RemoveTags(tags()?),
            BulkActionName::Assign => BulkAction::Assign(self.assignee.clone()),
            BulkActionName::SetFields => match &self.fields {
                Some(fields) if !fields.is_empty() => BulkAction::SetFields(fields.clone()),
                _ => {
                    return Err(ApiError::bad_request(
                        "set_fields needs a non-empty `fields` object",
                    ));
                }
            },
        })
    }
}

#[utoipa::path(post, path = "/v1/contacts/bulk", tag = "contacts",
    params(BulkParams), request_body = BulkRequest,
    responses((status = 200, description = "Done (up to 1,000 contacts)", body = BulkResult),
              (status = 202, description = "More than 1,000 contacts: a job; `Location` is the job",
               body = crate::transfer::JobStatus)))]
pub async fn bulk(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<BulkParams>,
    ApiJson(request): ApiJson<BulkRequest>,
) -> Result<Response, ApiError> {
    let action = Arc::new(request.action()?);
    let (ids, key) = select(&state, &request, key).await?;
    if ids.len() <= SYNC_MAX {
        let mut result = BulkResult {
            matched: ids.len(),
            dry_run: params.dry_run,
            seq: state.store.committed().get(),
            ..BulkResult::default()
        };
        for chunk in ids.chunks(CHUNK) {
            let command = chunk_command(&key, &action, chunk.to_vec(), params.dry_run);
            let ack = state.store.write(command).await?;
            result.seq = ack.seq;
            let counts = tally(ack.written)?;
            result.changed += counts.changed;
            result.unchanged += counts.unchanged;
            result.failed.extend(counts.failed);
        }
        if !params.dry_run {
            state
                .wait_if_asked(params.wait.as_ref(), result.seq)
                .await?;
        }
        return Ok(Json(result).into_response());
    }
    let job = state.jobs.create("bulk", params.dry_run);
    state.jobs.update(&job.id, |job| {
        job.state = JobState::Running;
        job.total = Some(ids.len() as u64);
        job.started_at = Some(chrono::Utc::now());
    });
    let (store, jobs, job_id) = (state.store.clone(), state.jobs.clone(), job.id.clone());
    tokio::spawn(async move {
        run_job(&store, &jobs, &job_id, key, action, ids, params.dry_run).await;
    });
    let started = state.jobs.get(&job.id).unwrap_or(job);
    Ok(job_response(StatusCode::ACCEPTED, &started))
}

/// The contacts a request names: its ids (de-duplicated), or every match of its
/// search within the caller's key scope; and that scope, typed once for both.
async fn select(
    state: &AppState,
    request: &BulkRequest,
    key: Within,
) -> Result<(Vec<String>, Option<Bound>), ApiError> {
    match (&request.ids, &request.filter, &request.q) {
        (Some(ids), None, None) => {
            at_most(ids.len(), IDS_MAX, "bulk ids", |max| {
                format!("list at most {max} ids, or select by filter")
            })?;
            let mut seen = std::collections::HashSet::new();
            let ids = ids
                .iter()
                .filter(|id| seen.insert(id.as_str()))
                .cloned()
                .collect();
            Ok((ids, key_of(state, key).await?))
        }
        (None, filter, q) if filter.is_some() || q.is_some() => {
            let search = SearchParams {
                q: q.clone(),
                filter: filter.clone(),
                ..SearchParams::default()
            };
            let scope = Scope::of_key(key);
            state
                .blocking(move |state| {
                    let defs = state.store.custom_field_defs()?;
                    let Built {
                        mut request, key, ..
                    } = build_request(&state, &search, &scope, &defs)?;
                    request.deadline = None;
                    Ok((state.index.matching_ids(&request)?, key))
                })
                .await
        }
        _ => Err(ApiError::bad_request(
            "give either `ids`, or `filter` and/or `q` (every match)",
        )),
    }
}

fn chunk_command(
    key: &Option<Bound>,
    action: &Arc<BulkAction>,
    ids: Vec<String>,
    dry_run: bool,
) -> Command {
    scoped(
        key,
        Command::Bulk {
            action: action.clone(),
            ids,
            dry_run,
        },
    )
}

/// What a chunk did.
struct ChunkCounts {
    changed: usize,
    unchanged: usize,
    /// `{"id", "code", "message"}` per contact that failed.
    failed: Vec<Value>,
}

fn tally(written: Written) -> Result<ChunkCounts, ApiError> {
    let Written::Bulk(results) = written else {
        return Err(ApiError::internal("bulk answered with another outcome"));
    };
    let mut counts = ChunkCounts {
        changed: 0,
        unchanged: 0,
        failed: Vec::new(),
    };
    for (id, result) in results {
        match result {
            Ok(true) => counts.changed += 1,
            Ok(false) => counts.unchanged += 1,
            Err(error) => {
                let error = ApiError::from(error);
                counts
                    .failed
                    .push(json!({"id": id, "code": error.code, "message": error.message}));
            }
        }
    }
    Ok(counts)
}

/// A large bulk in the background: chunk by chunk, waiting for room in the writer's
/// queue (never refused as overloaded), progress in the job.
async fn run_job(
    store: &Store,
    jobs: &Jobs,
    job_id: &str,
    key: Option<Bound>,
    action: Arc<BulkAction>,
    ids: Vec<String>,
    dry_run: bool,
) {
    for chunk in ids.chunks(CHUNK) {
        let command = chunk_command(&key, &action, chunk.to_vec(), dry_run);
        let counts = match store.write_when_room(command).await {
            Ok(ack) => tally(ack.written),
            Err(error) => Err(ApiError::from(error)),
        };
        let failed = counts.is_err();
        // One update per chunk: the job's lock is taken once, not once per contact.
        jobs.update(job_id, |job| match counts {
            Ok(counts) => {
                job.processed += chunk.len() as u64;
                job.updated += counts.changed as u64;
                job.unchanged += counts.unchanged as u64;
                job.failed += counts.failed.len() as u64;
                let room = crate::transfer::MAX_ERRORS.saturating_sub(job.errors.len());
                job.errors.extend(counts.failed.into_iter().take(room));
            }
            Err(error) => {
                job.state = JobState::Failed;
                job.finished_at = Some(chrono::Utc::now());
                job.errors.push(json!({"message": error.message}));
            }
        });
        if failed {
            return;
        }
    }
    jobs.update(job_id, |job| {
        job.state = JobState::Done;
        job.finished_at = Some(chrono::Utc::now());
    });
}
