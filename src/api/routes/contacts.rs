//! Single-contact CRUD.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::api::extract::{ApiJson, ApiQuery, if_match};
use crate::api::{ApiError, AppState};
use crate::model::{Contact, ContactInput};
use crate::store::{Command, WriteAck};

/// Query parameters every write accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    wait: Option<WaitFor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WaitFor {
    /// Answer once the write is searchable.
    Indexed,
}

pub async fn create(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<WriteParams>,
    ApiJson(input): ApiJson<ContactInput>,
) -> Result<Response, ApiError> {
    let valid = input.validate(&state.rules)?;
    let ack = state.store.write(Command::Create(Box::new(valid))).await?;
    finish_write(&state, &params, StatusCode::CREATED, ack).await
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let contact = {
        let id = id.clone();
        state
            .blocking(move |state| Ok(state.store.get(&id)?))
            .await?
    };
    let contact = contact.ok_or_else(|| ApiError::not_found(format!("no contact with id {id}")))?;
    Ok(contact_response(StatusCode::OK, &contact, None))
}

pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<WriteParams>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let ack = state
        .store
        .write(Command::Patch {
            id,
            patch,
            if_match,
        })
        .await?;
    finish_write(&state, &params, StatusCode::OK, ack).await
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<WriteParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let ack = state.store.write(Command::Delete { id, if_match }).await?;
    finish_write(&state, &params, StatusCode::OK, ack).await
}

/// Honors `?wait=indexed`, then answers with the stored contact, `ETag` and `X-Seq`.
async fn finish_write(
    state: &AppState,
    params: &WriteParams,
    status: StatusCode,
    ack: WriteAck,
) -> Result<Response, ApiError> {
    if matches!(params.wait, Some(WaitFor::Indexed)) {
        state.wait_indexed(ack.seq).await?;
    }
    Ok(contact_response(status, &ack.contact, Some(ack.seq)))
}

fn contact_response(status: StatusCode, contact: &Contact, seq: Option<u64>) -> Response {
    let mut response = (status, axum::Json(contact)).into_response();
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", contact.version)) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(seq) = seq {
        headers.insert("x-seq", HeaderValue::from(seq));
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/v1/contacts/{}", contact.id))
    {
        headers.insert(header::LOCATION, location);
    }
    response
}
