//! Request ids: every request gets one (or keeps the caller's `x-request-id`), it is
//! in the request's log span and the response header, and a 500 names it so an
//! operator can find the logged cause.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestId, RequestId};

use super::{ApiError, REQUEST_ID};

#[derive(Clone, Copy)]
pub struct MakeUlidRequestId;

impl MakeRequestId for MakeUlidRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::generate().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Rewrites every 500 into the contract's shape with the request id in its message.
pub async fn name_internal_errors(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    ApiError::new(
        super::error::Code::Internal,
        format!("internal error (request id {id}); the cause is in the server log"),
    )
    .into_response()
}
