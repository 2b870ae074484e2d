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
use serde_json::{Map, Value};

use tokio::io::AsyncWriteExt;

use super::contacts::{WaitFor, key_of};
use super::search::{Built, Scope, SearchParams, at_most, build_request};
use super::transfer::job_response;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::jobs::bulk_failure;
use crate::api::scope::{Bound, Within};
use crate::api::{ApiError, AppState};
use crate::jobs::bulk::{CHUNK, chunk_command, tally};
use crate::jobs::{JobPlan, JobRecord};
use crate::store::BulkAction;

/// Contacts answered in the request; more become a job.
pub const SYNC_MAX: usize = 1000;
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
               body = crate::jobs::JobStatus)))]
pub async fn bulk(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<BulkParams>,
    ApiJson(request): ApiJson<BulkRequest>,
) -> Result<Response, ApiError> {
    let action = Arc::new(request.action()?);
    let scope = key.0.as_deref().cloned();
    let (ids, key) = select(&state, &request, key).await?;
    let guard = key.as_ref().and_then(Bound::guard);
    if ids.len() <= SYNC_MAX {
        let mut result = BulkResult {
            matched: ids.len(),
            dry_run: params.dry_run,
            seq: state.store.committed().get(),
            ..BulkResult::default()
        };
        for chunk in ids.chunks(CHUNK) {
            let command = chunk_command(guard.as_ref(), &action, chunk.to_vec(), params.dry_run);
            let ack = state.store.write(command).await?;
            result.seq = ack.seq;
            let counts = tally(&ack.written, bulk_failure);
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
    let id = ulid::Ulid::generate().to_string();
    let job = state
        .jobs
        .register(&id, "bulk", usize::MAX)
        .map_err(ApiError::internal)?;
    let spool = state.config().spool_dir().join(format!("{id}.ids"));
    write_selection(&spool, &ids).await?;
    let plan = JobPlan::Bulk {
        spool,
        action: (*action).clone(),
        scope,
    };
    let mut record = JobRecord::new(id, plan, params.dry_run, state.clock.now());
    record.status.total = Some(ids.len() as u64);
    let status = crate::api::jobs::start(&state, job, record).await?;
    Ok(job_response(StatusCode::ACCEPTED, &status))
}

/// Writes a job's selection, one id per line, and syncs it: the job resumes from it.
async fn write_selection(path: &std::path::Path, ids: &[String]) -> Result<(), ApiError> {
    let mut text = String::with_capacity(ids.len() * 27);
    for id in ids {
        text.push_str(id);
        text.push('\n');
    }
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(ApiError::internal)?;
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    file.write_all(text.as_bytes())
        .await
        .map_err(ApiError::internal)?;
    file.sync_all().await.map_err(ApiError::internal)
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
                    Ok((state.index.get().matching_ids(&request)?, key))
                })
                .await
        }
        _ => Err(ApiError::bad_request(
            "give either `ids`, or `filter` and/or `q` (every match)",
        )),
    }
}
