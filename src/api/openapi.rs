//! `GET /openapi.json`: the OpenAPI 3.1 document of the API, generated from the
//! handlers' `#[utoipa::path]` annotations as the router registers them (so a route
//! cannot be served without being documented), plus what every route shares: the
//! bearer key scheme, the error shape with every code, and each route's error
//! answers derived from the key table and the route's kind.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi, RefOr, ResponseBuilder, Schema, Type,
};
use utoipa::{OpenApi as _, ToSchema};

use super::Code;
use crate::auth::{Access, required_role};
use crate::model::{Company, Contact, CustomFieldDef, Inbox};

/// The document's fixed part; paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "contactd",
        description = "Contact search sidecar: canonical contacts in redb, partial-match search in tantivy.",
        license(name = "MIT")
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    security(("api_key" = [])),
    tags(
        (name = "contacts", description = "Single contacts: CRUD, trash, lookup, identify, merge"),
        (name = "search", description = "Search, filters, sorting, facets, cursors"),
        (name = "events", description = "Activity events"),
        (name = "companies", description = "Companies and their contacts"),
        (name = "inboxes", description = "Saved views with live counts"),
        (name = "custom-fields", description = "Custom field definitions"),
        (name = "transfer", description = "Import, export and their jobs"),
        (name = "ops", description = "Health, readiness, stats, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// Every error: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the codes of the `ErrorCode` table.
    pub code: String,
    /// One line a person can act on.
    pub message: String,
    /// Per-field problems (`field`, `message`), a filter's `position`, a limit's name.
    pub details: Vec<Value>,
}

/// `POST /v1/contacts/identify`.
#[derive(Serialize, ToSchema)]
pub struct IdentifyResult {
    pub contact: Contact,
    pub created: bool,
}

/// `POST /v1/contacts/{id}/merge`.
#[derive(Serialize, ToSchema)]
pub struct MergeResult {
    /// The survivor as merged.
    pub contact: Contact,
    /// The other, now `merged`.
    pub merged: Contact,
}

/// `POST /v1/contacts/{id}/unmerge`.
#[derive(Serialize, ToSchema)]
pub struct UnmergeResult {
    pub contact: Contact,
    /// The other contact, active again.
    pub restored: Contact,
}

/// `POST /v1/events`.
#[derive(Serialize, ToSchema)]
pub struct EventBatchResult {
    pub applied: usize,
    /// `{"index", "error": {"code", "message"}}` for each event that did not apply.
    pub failed: Vec<Value>,
    pub seq: u64,
}

#[derive(Serialize, ToSchema)]
pub struct CompanyList {
    pub companies: Vec<Company>,
}

#[derive(Serialize, ToSchema)]
pub struct CompanyDeleted {
    pub deleted: String,
    pub contacts_unlinked: usize,
}

/// Pre-filled recipients of an email to a company.
#[derive(Serialize, ToSchema)]
pub struct Recipients {
    /// The company's address and its favorite contacts'.
    pub to: Vec<String>,
    /// Every other contact's email.
    pub others: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InboxList {
    /// Each inbox, with `count` when `counts=true` (null when the key's field list
    /// cannot read the inbox's filter).
    pub inboxes: Vec<Inbox>,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: String,
}

#[derive(Serialize, ToSchema)]
pub struct CustomFieldList {
    pub custom_fields: Vec<CustomFieldDef>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldDeleted {
    pub deleted: String,
    /// Stored values cleared with the definition.
    pub cleared_values: usize,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// ready, lagging, writer_stopped or sync_failing.
    pub status: String,
    pub lag: u64,
    pub store_seq: u64,
    pub index_seq: u64,
    pub writer: Value,
    pub sync: Value,
}

/// The finished document: the router's paths plus the shared parts.
pub fn document(mut api: OpenApi) -> OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key: `contactd keys create --role agent|manager|owner`",
                ))
                .build(),
        ),
    );
    components
        .schemas
        .insert("ErrorCode".into(), RefOr::T(error_code_schema()));
    for (path, item) in api.paths.paths.iter_mut() {
        let operations = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
            ("PUT", &mut item.put),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                operation.operation_id = Some(operation_id(method, path));
                add_errors(method, path, operation);
            }
        }
    }
    api
}

/// A unique operation id from the method and path: `get_v1_contacts_id`.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<String> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    format!("{}_{}", method.to_lowercase(), words.join("_"))
}

/// `ErrorCode`: every code with its status and meaning (the [`Code`] table).
fn error_code_schema() -> Schema {
    let table: Vec<String> = Code::ALL
        .iter()
        .map(|code| {
            let (name, status, meaning) = code.spec();
            format!("- `{name}` ({}): {meaning}", status.as_u16())
        })
        .collect();
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Code::ALL.iter().map(|c| c.spec().0)))
            .description(Some(table.join("\n")))
            .build(),
    )
}

/// The error answers a route can give, by status, each naming its codes.
fn add_errors(method: &str, path: &str, operation: &mut Operation) {
    let access = required_role(method, path, false);
    let read = method == "GET" || path == "/v1/contacts/search";
    let write = !read;
    let contact_write = write && path.starts_with("/v1/contacts") || path == "/v1/events";
    let mut errors: Vec<Code> = vec![Code::BadRequest, Code::Internal];
    if !matches!(access, Access::Public) {
        errors.extend([Code::Unauthorized, Code::Forbidden]);
    }
    if path.contains('{') {
        errors.push(Code::NotFound);
    }
    if path.contains("/contacts") && read {
        errors.extend([Code::InvalidFilter, Code::LimitExceeded, Code::IndexLagging]);
    }
    if read {
        // Reads wait for a slot of the read gate; only the ops endpoints do not.
        errors.push(Code::Timeout);
        if path != "/v1/stats" && path != "/metrics" && path != "/healthz" && path != "/readyz" {
            errors.push(Code::Overloaded);
        }
    }
    if write {
        errors.extend([
            Code::PayloadTooLarge,
            Code::Overloaded,
            Code::ValidationFailed,
            Code::Conflict,
        ]);
    }
    if contact_write {
        errors.extend([
            Code::IdentityTaken,
            Code::NameTaken,
            Code::VersionMismatch,
            Code::IndexLagging,
        ]);
    }
    if path == "/v1/contacts/import" {
        errors.push(Code::TooManyRequests);
    }
    errors.sort_by_key(|code| (code.spec().1.as_u16(), code.spec().0));
    errors.dedup();
    for status in errors
        .iter()
        .map(|code| code.spec().1.as_u16())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let codes: Vec<String> = errors
            .iter()
            .filter(|code| code.spec().1.as_u16() == status)
            .map(|code| format!("`{}`", code.spec().0))
            .collect();
        let response = ResponseBuilder::new()
            .description(codes.join(", "))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert(RefOr::T(response));
    }
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        text().to_string(),
    )
}

/// The document as JSON text, built once from the router's registrations.
pub fn text() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let (_, api) = super::routes::routes();
        document(api)
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    });
    &DOCUMENT
}

/// The fixed part, for the router to add its paths to.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}
