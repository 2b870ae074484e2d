//! Custom field definitions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::{ApiError, AppState};
use crate::model::CustomFieldInput;
use crate::store::{Command, StoreError, Written};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceParams {
    /// Clear stored values the change makes invalid instead of refusing (409).
    #[serde(default)]
    force: bool,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let fields = state
        .blocking(|state| Ok(state.store.custom_fields()?))
        .await?;
    Ok(Json(json!({ "custom_fields": fields })))
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let fields = state
        .blocking(|state| Ok(state.store.custom_fields()?))
        .await?;
    let def = fields.into_iter().find(|d| d.key == key);
    let def = def.ok_or_else(|| ApiError::not_found(format!("custom field {key} not found")))?;
    Ok(Json(json!(def)))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CustomFieldInput>,
) -> Result<Response, ApiError> {
    match state
        .store
        .write(Command::DefineField(input))
        .await?
        .written
    {
        Written::Field(def, _) => Ok((StatusCode::CREATED, Json(def)).into_response()),
        other => Err(ApiError::internal(format!(
            "expected a definition, got {other:?}"
        ))),
    }
}

pub async fn patch(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(params): ApiQuery<ForceParams>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    if !params.force {
        refuse_losses(&state, &key, Some(patch.clone())).await?;
    }
    let command = Command::UpdateField { key, patch };
    match state.store.write(command).await?.written {
        Written::Field(def, cleared) => {
            let mut body = json!(def);
            body["cleared_values"] = json!(cleared);
            Ok(Json(body))
        }
        other => Err(ApiError::internal(format!(
            "expected a definition, got {other:?}"
        ))),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(params): ApiQuery<ForceParams>,
) -> Result<Json<Value>, ApiError> {
    if !params.force {
        refuse_losses(&state, &key, None).await?;
    }
    let command = Command::DeleteField { key: key.clone() };
    match state.store.write(command).await?.written {
        Written::FieldDeleted(cleared) => {
            Ok(Json(json!({"deleted": key, "cleared_values": cleared})))
        }
        other => Err(ApiError::internal(format!(
            "expected a deletion, got {other:?}"
        ))),
    }
}

/// 409 when a change of `key`'s definition (a merge patch, or its deletion) would
/// clear stored values. Counted on a read snapshot: writes go on meanwhile.
async fn refuse_losses(state: &AppState, key: &str, patch: Option<Value>) -> Result<(), ApiError> {
    let field = key.to_string();
    let lost = state
        .blocking(move |state| Ok(state.store.values_lost_by(&field, patch.as_ref())?))
        .await?;
    if lost > 0 {
        return Err(StoreError::Conflict(format!(
            "{lost} contact(s) hold values of '{key}' that would be cleared; repeat with ?force=true to clear them"
        ))
        .into());
    }
    Ok(())
}
