//! The one error shape of the HTTP contract, and the table from layer errors to it.
//!
//! A 500 never reveals internals: the cause is logged and the client gets a generic
//! message; [`super::request_id`] adds the request id to that message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::index::IndexError;
use crate::model::ValidationError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn index_lagging(seq: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "index_lagging",
            format!("the index did not reach seq {seq} in time; the write itself is stored"),
        )
    }

    /// Logs `cause` and answers a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    pub fn with_details(mut self, details: Vec<Value>) -> Self {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let details = error
            .details
            .iter()
            .map(|d| json!({"field": d.field, "message": d.message}))
            .collect();
        let fields: Vec<&str> = error.details.iter().map(|d| d.field.as_str()).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("invalid value for: {}", fields.join(", ")),
        )
        .with_details(details)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Validation(v) => v.into(),
            StoreError::IdentityTaken(taken) => {
                let details = taken
                    .iter()
                    .map(|(field, holder)| {
                        json!({"field": field, "contact_id": holder,
                               "message": format!("already belongs to contact {holder}")})
                    })
                    .collect();
                ApiError::new(
                    StatusCode::CONFLICT,
                    "identity_taken",
                    format!("identity already belongs to contact {}", taken[0].1),
                )
                .with_details(details)
            }
            StoreError::NameTaken(holder) => ApiError::new(
                StatusCode::CONFLICT,
                "name_taken",
                format!("an active contact with this name exists: {holder}"),
            )
            .with_details(vec![json!({"field": "name", "contact_id": holder,
                                      "message": "name already in use (unique_name is on)"})]),
            StoreError::ExternalIdTaken(holder) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("external_id already belongs to contact {holder}"),
            )
            .with_details(vec![json!({"field": "external_id", "contact_id": holder,
                                      "message": "already in use"})]),
            StoreError::VersionMismatch { current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                format!("If-Match did not match; the current version is {current}"),
            ),
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            StoreError::BadRequest(message) => ApiError::bad_request(message),
            other => ApiError::internal(other),
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> Self {
        ApiError::internal(error)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::internal(error)
    }
}
