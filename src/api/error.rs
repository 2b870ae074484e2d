//! The one error shape of the HTTP contract, the table of its codes, and the mapping
//! from layer errors to it.
//!
//! Every code a response can carry is a [`Code`]: its string, HTTP status and meaning
//! come from [`Code::ALL`]'s one table, which the docs and tests read too. No handler
//! picks a code string or a status of its own.
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

/// Every error code of the API, with its HTTP status and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    InvalidFilter,
    LimitExceeded,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    IdentityTaken,
    NameTaken,
    Conflict,
    VersionMismatch,
    PayloadTooLarge,
    ValidationFailed,
    TooManyRequests,
    IndexLagging,
    Overloaded,
    Timeout,
    Internal,
}

impl Code {
    pub const ALL: [Code; 18] = [
        Code::BadRequest,
        Code::InvalidFilter,
        Code::LimitExceeded,
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::IdentityTaken,
        Code::NameTaken,
        Code::Conflict,
        Code::VersionMismatch,
        Code::PayloadTooLarge,
        Code::ValidationFailed,
        Code::TooManyRequests,
        Code::IndexLagging,
        Code::Overloaded,
        Code::Timeout,
        Code::Internal,
    ];

    /// The code's string, HTTP status and meaning: the one table.
    pub const fn spec(self) -> (&'static str, StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Code::BadRequest => (
                "bad_request",
                S::BAD_REQUEST,
                "malformed JSON, wrong types, unknown query parameter or value",
            ),
            Code::InvalidFilter => (
                "invalid_filter",
                S::BAD_REQUEST,
                "the filter does not parse or names an unknown field; details[0].position is the byte offset",
            ),
            Code::LimitExceeded => (
                "limit_exceeded",
                S::BAD_REQUEST,
                "the input is over a configured limit ([limits] in config.toml); details name the limit",
            ),
            Code::Unauthorized => (
                "unauthorized",
                S::UNAUTHORIZED,
                "missing or unknown API key",
            ),
            Code::Forbidden => (
                "forbidden",
                S::FORBIDDEN,
                "the key's role or scope may not do this",
            ),
            Code::NotFound => (
                "not_found",
                S::NOT_FOUND,
                "no such route, contact, company, inbox, custom field or job",
            ),
            Code::MethodNotAllowed => (
                "method_not_allowed",
                S::METHOD_NOT_ALLOWED,
                "the route exists but not with this method",
            ),
            Code::IdentityTaken => (
                "identity_taken",
                S::CONFLICT,
                "an identity (email, phone, channel handle) already belongs to another active contact; details name it",
            ),
            Code::NameTaken => (
                "name_taken",
                S::CONFLICT,
                "unique_name is on and an active contact has this name",
            ),
            Code::Conflict => (
                "conflict",
                S::CONFLICT,
                "any other state conflict (restore after the window, merge of a merged contact, values a field change would clear, ...)",
            ),
            Code::VersionMismatch => (
                "version_mismatch",
                S::PRECONDITION_FAILED,
                "If-Match did not match the current version",
            ),
            Code::PayloadTooLarge => (
                "payload_too_large",
                S::PAYLOAD_TOO_LARGE,
                "the body is over the configured limit",
            ),
            Code::ValidationFailed => (
                "validation_failed",
                S::UNPROCESSABLE_ENTITY,
                "well-formed input that breaks a rule; details list every broken field",
            ),
            Code::TooManyRequests => (
                "too_many_requests",
                S::TOO_MANY_REQUESTS,
                "as many imports as [limits] imports_max_running allow are running; retry later",
            ),
            Code::Overloaded => (
                "overloaded",
                S::SERVICE_UNAVAILABLE,
                "a queue is full: the store's writes ([limits] writer_queue_max; nothing was written) or the reads waiting for a slot (reads_queue_max); retry later",
            ),
            Code::Timeout => (
                "timeout",
                S::SERVICE_UNAVAILABLE,
                "a read ran past [limits] request_timeout_ms; its work was stopped",
            ),
            Code::IndexLagging => (
                "index_lagging",
                S::SERVICE_UNAVAILABLE,
                "a wait or min_seq request timed out before the index caught up",
            ),
            Code::Internal => (
                "internal",
                S::INTERNAL_SERVER_ERROR,
                "a bug; the message carries the request id that is in the server log",
            ),
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.spec().0
    }

    pub const fn status(self) -> StatusCode {
        self.spec().1
    }

    pub const fn meaning(self) -> &'static str {
        self.spec().2
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// A request refused by the configured limit `key` (a `[limits]` key of
    /// config.toml), counted in `/metrics` by that key.
    pub fn refused(code: Code, key: &'static str, message: impl Into<String>) -> Self {
        metrics::counter!("contactd_rejections_total", "limit" => key).increment(1);
        Self::new(code, message)
    }

    /// An input over the configured limit `key`; the details name it and its value.
    pub fn limit_exceeded(key: &'static str, limit: usize, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::refused(Code::LimitExceeded, key, message.clone()).with_details(vec![
            json!({"limit": key, "max": limit, "message": message}),
        ])
    }

    /// A read refused because `reads_queue_max` reads already wait for a slot.
    pub fn reads_overloaded() -> Self {
        Self::refused(
            Code::Overloaded,
            "reads_queue_max",
            "too many reads are waiting for a slot (reads_queue_max); retry shortly",
        )
    }

    pub fn index_lagging(seq: u64) -> Self {
        Self::new(
            Code::IndexLagging,
            format!("the index did not reach seq {seq} in time; the write itself is stored"),
        )
    }

    /// The request ran past `limits.request_timeout_ms`; its work was stopped.
    pub fn timed_out() -> Self {
        metrics::counter!("contactd_timeouts_total").increment(1);
        Self::new(
            Code::Timeout,
            "the request ran past the configured timeout (request_timeout_ms); its work was stopped",
        )
    }

    /// Logs `cause` and answers a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(Code::Internal, "internal error")
    }

    pub fn with_details(mut self, details: Vec<Value>) -> Self {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details);
        }
        (status, Json(json!({ "error": error }))).into_response()
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
            Code::ValidationFailed,
            format!("invalid value for: {}", fields.join(", ")),
        )
        .with_details(details)
    }
}

/// A claim's holder as a message names it; an empty id is a holder outside the
/// caller's scope (see [`crate::store::ScopeGuard`]).
fn holder_name(holder: &str) -> String {
    if holder.is_empty() {
        "another contact".to_string()
    } else {
        format!("contact {holder}")
    }
}

fn holder_detail(field: &str, holder: &str, message: &str) -> Value {
    let mut detail = json!({"field": field, "message": message});
    if !holder.is_empty() {
        detail["contact_id"] = json!(holder);
    }
    detail
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::from(&error)
    }
}

impl From<&StoreError> for ApiError {
    fn from(error: &StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Validation(v) => v.clone().into(),
            StoreError::IdentityTaken(taken) => {
                let details = taken
                    .iter()
                    .map(|(field, holder)| {
                        let mut detail = json!({"field": field,
                            "message": format!("already belongs to {}", holder_name(holder))});
                        if !holder.is_empty() {
                            detail["contact_id"] = json!(holder);
                        }
                        detail
                    })
                    .collect();
                ApiError::new(
                    Code::IdentityTaken,
                    format!("identity already belongs to {}", holder_name(&taken[0].1)),
                )
                .with_details(details)
            }
            StoreError::NameTaken(holder) => ApiError::new(
                Code::NameTaken,
                format!(
                    "an active contact with this name exists: {}",
                    holder_name(holder)
                ),
            )
            .with_details(vec![holder_detail(
                "name",
                holder,
                "name already in use (unique_name is on)",
            )]),
            StoreError::ExternalIdTaken(holder) => ApiError::new(
                Code::Conflict,
                format!("external_id already belongs to {}", holder_name(holder)),
            )
            .with_details(vec![holder_detail("external_id", holder, "already in use")]),
            StoreError::OutOfScope => ApiError::new(
                Code::Forbidden,
                "this key may not leave a contact outside its scope (the key's filter must \
                 still select the contact after the change); nothing was written",
            ),
            StoreError::VersionMismatch { current } => ApiError::new(
                Code::VersionMismatch,
                format!("If-Match did not match; the current version is {current}"),
            ),
            StoreError::Conflict(message) => ApiError::new(Code::Conflict, message.clone()),
            StoreError::BadRequest(message) => ApiError::bad_request(message.clone()),
            StoreError::Overloaded => ApiError::refused(
                Code::Overloaded,
                "writer_queue_max",
                "the write queue is full; nothing was written, retry shortly",
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> Self {
        match error {
            IndexError::TimedOut => ApiError::timed_out(),
            other => ApiError::internal(other),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's error table lists every code with its status, and nothing else.
    #[test]
    fn the_readme_lists_every_code_with_its_status() {
        let readme = include_str!("../../README.md");
        let listed: Vec<(u16, &str)> = readme
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let status = cells.get(1)?.parse::<u16>().ok()?;
                let code = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((status, code))
            })
            .collect();
        let table: Vec<(u16, &str)> = Code::ALL
            .iter()
            .map(|code| (code.status().as_u16(), code.as_str()))
            .collect();
        for entry in &table {
            assert!(listed.contains(entry), "README misses {entry:?}");
        }
        for entry in &listed {
            assert!(table.contains(entry), "README lists {entry:?}, not a code");
        }
    }
}
