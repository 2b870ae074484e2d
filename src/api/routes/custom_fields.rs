//! Custom field definitions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::search::at_most;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::openapi::{CustomFieldList, FieldDeleted};
use crate::api::{ApiError, AppState};
use crate::model::CustomFieldDef;
use crate::model::CustomFieldInput;
use crate::store::{Command, StoreError, Written};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForceParams {
    /// Clear stored values the change makes invalid instead of refusing (409).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(get, path = "/v1/custom-fields", tag = "custom-fields",
    responses((status = 200, body = CustomFieldList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<CustomFieldList>, ApiError> {
    let custom_fields = state
        .blocking(|state| Ok(state.store.custom_fields()?))
        .await?;
    Ok(Json(CustomFieldList { custom_fields }))
}

#[utoipa::path(get, path = "/v1/custom-fields/{key}", tag = "custom-fields",
    params(("key" = String, Path, description = "Field key")),
    responses((status = 200, body = CustomFieldDef)))]
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

#[utoipa::path(post, path = "/v1/custom-fields", tag = "custom-fields",
    request_body = CustomFieldInput, responses((status = 201, body = CustomFieldDef)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CustomFieldInput>,
) -> Result<Response, ApiError> {
    check_options(&state, input.options.as_ref().map_or(0, Vec::len))?;
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

#[utoipa::path(patch, path = "/v1/custom-fields/{key}", tag = "custom-fields",
    params(("key" = String, Path, description = "Field key"), ForceParams),
    request_body(content = Object, description = "JSON merge patch of the definition"),
    responses((status = 200, description = "The definition and `cleared_values`", body = CustomFieldDef)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(params): ApiQuery<ForceParams>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    check_options(&state, patch["options"].as_array().map_or(0, Vec::len))?;
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

#[utoipa::path(delete, path = "/v1/custom-fields/{key}", tag = "custom-fields",
    params(("key" = String, Path, description = "Field key"), ForceParams),
    responses((status = 200, body = FieldDeleted)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(params): ApiQuery<ForceParams>,
) -> Result<Json<FieldDeleted>, ApiError> {
    if !params.force {
        refuse_losses(&state, &key, None).await?;
    }
    let command = Command::DeleteField { key: key.clone() };
    match state.store.write(command).await?.written {
        Written::FieldDeleted(cleared) => Ok(Json(FieldDeleted {
            deleted: key,
            cleared_values: cleared,
        })),
        other => Err(ApiError::internal(format!(
            "expected a deletion, got {other:?}"
        ))),
    }
}

/// 400 `limit_exceeded` for a definition with more options than `limits.options_max`.
fn check_options(state: &AppState, options: usize) -> Result<(), ApiError> {
    at_most(
        options,
        state.config().limits.options_max,
        "options_max",
        |max| format!("a definition has at most {max} options"),
    )
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
