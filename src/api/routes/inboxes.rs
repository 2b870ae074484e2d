//! Saved inboxes: CRUD, live counts, and their contacts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::search::{
    Scope, SearchParams, SearchResponse, build_request, projection, resolve_filter, run_search,
    time_context,
};
use crate::api::extract::{ApiJson, ApiQuery, if_match};
use crate::api::openapi::{Deleted, InboxList};
use crate::api::scope::Within;
use crate::api::{ApiError, AppState, Code};
use crate::index::sort::parse_sort;
use crate::model::{ALL_INBOX, CustomFieldDefs, Inbox, InboxInput, ValidationError};
use crate::store::{Command, Written};

fn defs(state: &AppState) -> Result<CustomFieldDefs, ApiError> {
    Ok(state.store.custom_field_defs()?)
}

/// Checks an inbox when it is saved, so a broken filter never reaches read time.
fn validate(
    state: &AppState,
    input: InboxInput,
    id: String,
    created_at: chrono::DateTime<chrono::Utc>,
) -> Result<Inbox, ApiError> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ValidationError::single("name", "is required (at most 200 characters)").into());
    }
    let defs = defs(state)?;
    let filter = input.filter.unwrap_or_default();
    resolve_filter(
        &filter,
        &defs,
        &time_context(state, None)?,
        &state.config().limits,
    )?;
    let sort = input.sort.filter(|s| !s.trim().is_empty());
    if let Some(sort) = &sort {
        parse_sort(sort, &defs).map_err(ApiError::bad_request)?;
    }
    let columns = input.columns.unwrap_or_default();
    projection(Some(columns.clone()))?;
    Ok(Inbox {
        id,
        name,
        filter,
        sort,
        columns,
        created_at,
        updated_at: created_at,
        version: 0,
    })
}

async fn load(state: &AppState, id: &str) -> Result<Inbox, ApiError> {
    if id == ALL_INBOX {
        return Ok(Inbox::all(state.clock.now()));
    }
    let wanted = id.to_string();
    let found = state
        .blocking(move |state| Ok(state.store.inboxes()?.into_iter().find(|i| i.id == wanted)))
        .await?;
    found.ok_or_else(|| ApiError::not_found(format!("inbox {id} not found")))
}

fn inbox_of(written: Written) -> Result<Inbox, ApiError> {
    match written {
        Written::Inbox(inbox) => Ok(*inbox),
        other => Err(ApiError::internal(format!(
            "expected an inbox, the store answered {other:?}"
        ))),
    }
}

fn built_in() -> ApiError {
    ApiError::new(
        crate::api::Code::Conflict,
        "the built-in inbox 'all' cannot be changed",
    )
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Add each inbox's live count of contacts.
    #[serde(default)]
    counts: bool,
}

#[utoipa::path(get, path = "/v1/inboxes", tag = "inboxes",
    params(ListParams), responses((status = 200, body = InboxList)))]
pub async fn list(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let body = state
        .blocking(move |state| {
            let mut inboxes = vec![Inbox::all(state.clock.now())];
            let mut saved = state.store.inboxes()?;
            saved.sort_by(|a, b| {
                a.name
                    .to_lowercase()
                    .cmp(&b.name.to_lowercase())
                    .then(a.id.cmp(&b.id))
            });
            inboxes.extend(saved);
            let defs = defs(&state)?;
            let mut listed = Vec::with_capacity(inboxes.len());
            for inbox in inboxes {
                let mut entry = json!(inbox);
                if params.counts {
                    let scope = Scope {
                        filter: Some(inbox.filter.clone()),
                        key: key.clone(),
                        ..Scope::default()
                    };
                    // Counted within the caller's key scope; an inbox whose filter
                    // reads a field the key may not read has no count for it.
                    match build_request(&state, &SearchParams::default(), &scope, &defs) {
                        Ok(built) => {
                            entry["count"] = json!(state.index.get().count(&built.request)?)
                        }
                        Err(error) if error.code == Code::Forbidden => entry["count"] = Value::Null,
                        Err(error) => return Err(error),
                    }
                }
                listed.push(entry);
            }
            Ok(json!({ "inboxes": listed }))
        })
        .await?;
    Ok(Json(body))
}

#[utoipa::path(post, path = "/v1/inboxes", tag = "inboxes",
    request_body = InboxInput, responses((status = 201, body = Inbox)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<InboxInput>,
) -> Result<Response, ApiError> {
    let inbox = state
        .blocking(move |state| {
            validate(
                &state,
                input,
                ulid::Ulid::generate().to_string(),
                state.clock.now(),
            )
        })
        .await?;
    let command = Command::PutInbox {
        inbox: Box::new(inbox),
        expected_version: None,
    };
    let inbox = inbox_of(state.store.write(command).await?.written)?;
    Ok((StatusCode::CREATED, Json(inbox)).into_response())
}

#[utoipa::path(get, path = "/v1/inboxes/{id}", tag = "inboxes",
    params(("id" = String, Path, description = "Inbox id (`all` is built in)")),
    responses((status = 200, body = Inbox)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Inbox>, ApiError> {
    Ok(Json(load(&state, &id).await?))
}

#[utoipa::path(patch, path = "/v1/inboxes/{id}", tag = "inboxes",
    params(("id" = String, Path, description = "Inbox id"),
           ("If-Match" = Option<String>, Header, description = "Expected version")),
    request_body(content = Object, description = "JSON merge patch of the inbox"),
    responses((status = 200, body = Inbox)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Inbox>, ApiError> {
    if id == ALL_INBOX {
        return Err(built_in());
    }
    let current = load(&state, &id).await?;
    if !patch.is_object() {
        return Err(ApiError::bad_request("a merge patch must be a JSON object"));
    }
    let expected = if_match(&headers)?.unwrap_or(current.version);
    let mut document = current.writable_json();
    json_patch::merge(&mut document, &patch);
    let input: InboxInput = serde_json::from_value(document)
        .map_err(|e| ApiError::bad_request(format!("invalid patch: {e}")))?;
    let inbox = state
        .blocking(move |state| validate(&state, input, current.id, current.created_at))
        .await?;
    let command = Command::PutInbox {
        inbox: Box::new(inbox),
        expected_version: Some(expected),
    };
    Ok(Json(inbox_of(state.store.write(command).await?.written)?))
}

#[utoipa::path(delete, path = "/v1/inboxes/{id}", tag = "inboxes",
    params(("id" = String, Path, description = "Inbox id")),
    responses((status = 200, body = Deleted)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id == ALL_INBOX {
        return Err(built_in());
    }
    state
        .store
        .write(Command::DeleteInbox { id: id.clone() })
        .await?;
    Ok(Json(json!({ "deleted": id })))
}

/// The inbox's contacts: its filter ANDed with the request's, its sort and columns as
/// defaults.
#[utoipa::path(get, path = "/v1/inboxes/{id}/contacts", tag = "inboxes",
    params(("id" = String, Path, description = "Inbox id"), SearchParams),
    responses((status = 200, body = SearchResponse)))]
pub async fn contacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    key: Within,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let inbox = load(&state, &id).await?;
    let scope = Scope {
        filter: Some(inbox.filter),
        sort: inbox.sort,
        fields: (!inbox.columns.is_empty()).then_some(inbox.columns),
        company_id: None,
        key,
    };
    run_search(state, params, scope).await
}
