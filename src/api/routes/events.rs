//! Activity events: one contact's, or a batch across contacts.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::contacts::{WriteParams, finish, key_of, scoped};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::openapi::EventBatchResult;
use crate::api::scope::Within;
use crate::api::{ApiError, AppState};
use crate::model::Contact;
use crate::model::EventInput;
use crate::store::{Command, Written};

const MAX_BATCH: usize = 10_000;

#[utoipa::path(post, path = "/v1/contacts/{id}/events", tag = "events",
    params(("id" = String, Path, description = "Contact id"), WriteParams),
    request_body = EventInput,
    responses((status = 200, body = Contact)))]
pub async fn contact_event(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<WriteParams>,
    ApiJson(event): ApiJson<EventInput>,
) -> Result<Response, ApiError> {
    let event = event.validate(state.clock.now(), "")?;
    let key = key_of(&state, key).await?;
    let command = Command::Events {
        id,
        events: vec![event],
    };
    let ack = state.store.write(scoped(&key, command)).await?;
    finish(&state, params.wait.as_ref(), ack, key.as_ref()).await
}

/// One event of a batch; its event fields are checked strictly when parsed as
/// [`EventInput`] (serde cannot deny unknown fields next to `flatten`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchEvent {
    contact_id: String,
    /// The fields of an event (`type`, `channel`, `at`).
    #[serde(flatten)]
    #[schema(value_type = EventInput)]
    event: Value,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    events: Vec<BatchEvent>,
}

/// Applies each event on its own: a bad or unknown one is reported, the rest apply.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body = EventBatch,
    responses((status = 200, body = EventBatchResult)))]
pub async fn batch(
    State(state): State<AppState>,
    key: Within,
    ApiJson(batch): ApiJson<EventBatch>,
) -> Result<Json<Value>, ApiError> {
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_BATCH} events per batch"
        )));
    }
    let now = state.clock.now();
    let mut failed = Vec::new();
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (index, item) in batch.events.into_iter().enumerate() {
        let parsed = serde_json::from_value::<EventInput>(item.event)
            .map_err(|e| ApiError::bad_request(e.to_string()))
            .and_then(|input| {
                input
                    .validate(now, &format!("events[{index}]."))
                    .map_err(ApiError::from)
            });
        match parsed {
            Ok(event) => {
                valid.push((item.contact_id, event));
                positions.push(index);
            }
            Err(error) => failed.push(
                json!({"index": index, "error": {"code": error.code, "message": error.message}}),
            ),
        }
    }
    // A scoped key's events for contacts outside its scope fail one by one as not found.
    let key = key_of(&state, key).await?;
    let ack = state
        .store
        .write(scoped(&key, Command::EventsBatch(valid)))
        .await?;
    let Written::Events(results) = ack.written else {
        return Err(ApiError::internal("events answered with another outcome"));
    };
    let mut applied = 0;
    for (index, result) in positions.into_iter().zip(results) {
        match result {
            Ok(_) => applied += 1,
            Err(error) => {
                let error = ApiError::from(error);
                failed.push(json!({"index": index, "error": {"code": error.code, "message": error.message}}));
            }
        }
    }
    failed.sort_by_key(|f| f["index"].as_u64());
    Ok(Json(
        json!({"applied": applied, "failed": failed, "seq": ack.seq}),
    ))
}
