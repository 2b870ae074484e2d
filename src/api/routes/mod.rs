//! Route table.

mod contacts;
mod ops;
mod search;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/v1/stats", get(ops::stats))
        .route(
            "/v1/contacts",
            post(contacts::create).get(search::search_get),
        )
        .route("/v1/contacts/search", post(search::search_post))
        .route(
            "/v1/contacts/{id}",
            get(contacts::get_one)
                .patch(contacts::patch)
                .delete(contacts::delete),
        )
}
