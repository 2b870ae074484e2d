//! The web dashboard at `/`: a page, a script and a style sheet compiled into the
//! binary (no build step, nothing fetched at run time). The page is public; what it
//! shows comes from the API with the key the user enters (kept in the browser tab's
//! session storage, never in a URL), or with none when the server has no keys.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// Only this origin's own files and API: no inline code, no third party.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change with the binary; revalidating them costs little on loopback.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html")))]
pub async fn page() -> Response {
    asset_response("text/html; charset=utf-8", PAGE)
}

#[utoipa::path(get, path = "/assets/{file}", tag = "dashboard",
    params(("file" = String, Path, description = "`app.js` or `style.css`")),
    responses((status = 200, description = "A dashboard asset")))]
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    match file.as_str() {
        "app.js" => Ok(asset_response("text/javascript; charset=utf-8", SCRIPT)),
        "style.css" => Ok(asset_response("text/css; charset=utf-8", STYLE)),
        _ => Err(ApiError::not_found(format!("no dashboard asset {file}"))),
    }
}
