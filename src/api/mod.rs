//! The HTTP API: axum only.
//!
//! Owns routing, extraction, the error shape and the middleware stack (request ids,
//! tracing, API keys, body limit, panics → 500). Handlers never touch redb or tantivy on the
//! async runtime: store and index calls run on `spawn_blocking`, writes await the
//! store's writer thread.

mod admission;
mod auth;
mod dashboard;
mod error;
mod extract;
pub mod jobs;
mod metrics;
pub mod openapi;
mod request_id;
mod routes;
mod scope;
mod state;

pub use error::{ApiError, Code};
pub use routes::{ExportParams, prepare_export};
pub use state::AppState;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Answers a read (a GET or a search) still running after `request_timeout_ms` with
/// 503 `timeout`; the search itself stops at the same deadline (it checks
/// [`crate::index::SearchRequest::deadline`]). Writes are bounded by the writer's
/// queue instead: cutting one off would not undo it. A streamed export is past this
/// point once its first bytes are out.
async fn time_limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_read = request.method() == axum::http::Method::GET
        || request.uri().path() == "/v1/contacts/search";
    if !is_read {
        return next.run(request).await;
    }
    let limit = state.config().request_timeout();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timed_out().into_response(),
    }
}

/// The full application router with its middleware.
pub fn router(state: AppState) -> Router {
    let max_body = state.config().max_body_bytes;
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, request_id::MakeUlidRequestId))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // The path only: query strings carry what people search for and look up
            // (names, emails, phones), which must not outlive an erase in the logs.
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(axum::middleware::from_fn(request_id::name_internal_errors))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(DefaultBodyLimit::max(max_body));
    metrics::handle();
    routes::routes()
        .0
        // Route layers run last-added first: every matched request is counted
        // (refused ones too), then its key is checked, then reads get their deadline.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            time_limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check_key,
        ))
        .route_layer(axum::middleware::from_fn(metrics::record_requests))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .with_state(state)
        .layer(middleware)
}
