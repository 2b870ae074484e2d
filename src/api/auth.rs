//! The key check in front of every route: what a route needs comes from
//! [`crate::auth::required_role`]; a missing or unknown key is 401, a key whose role
//! is too low 403. The caller is then available to handlers as an extension.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Code};
use crate::auth::{Access, required_role, scoped_key_may};

pub async fn check_key(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = matched
        .as_ref()
        .map_or(request.uri().path(), MatchedPath::as_str);
    let permanent = request.uri().query().is_some_and(asks_permanent);
    let access = required_role(request.method().as_str(), route, permanent);
    let open = match access {
        Access::Public => true,
        Access::Metrics => state.config().auth.public_metrics,
        Access::Role(_) => false,
    };
    let keys = state.live.keys();
    if open || keys.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(caller) = presented.and_then(|key| keys.authenticate(key)) else {
        let message = match presented {
            None => "this route needs an API key: send Authorization: Bearer <key>",
            Some(_) => "unknown API key",
        };
        let mut response = ApiError::new(Code::Unauthorized, message).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    if let Access::Role(needed) = access
        && caller.role < needed
    {
        return ApiError::new(
            Code::Forbidden,
            format!(
                "the key '{}' is an {} key; this needs {}",
                caller.name,
                caller.role.as_str(),
                needed.as_str()
            ),
        )
        .into_response();
    }
    if caller.scope.is_some() && !scoped_key_may(request.method().as_str(), route) {
        return ApiError::new(
            Code::Forbidden,
            format!(
                "the key '{}' is scoped to some contacts; this route works on the whole base",
                caller.name
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(caller.clone());
    next.run(request).await
}

/// Whether a query string may ask for an erase (which needs an owner): any
/// `permanent` parameter whose decoded value is not `false`, so that an encoded
/// `%74rue` or an undecodable query never slips through as a soft delete. Fails
/// closed: the handler refuses what it cannot parse anyway.
fn asks_permanent(query: &str) -> bool {
    let uri = format!("/?{query}");
    let Ok(uri) = uri.parse::<axum::http::Uri>() else {
        return true;
    };
    match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(axum::extract::Query(pairs)) => pairs
            .iter()
            .any(|(name, value)| name == "permanent" && value != "false"),
        Err(_) => true,
    }
}
