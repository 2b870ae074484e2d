//! Route table.

mod companies;
mod contacts;
mod custom_fields;
mod events;
mod inboxes;
mod ops;
mod search;
mod transfer;

pub use contacts::WaitFor;
pub use transfer::{ExportParams, prepare_export};

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
        .route("/v1/contacts/lookup", get(contacts::lookup))
        .route("/v1/contacts/import", post(transfer::import))
        .route("/v1/contacts/export", get(transfer::export))
        .route("/v1/jobs/{id}", get(transfer::job))
        .route("/v1/contacts/identify", post(contacts::identify))
        .route(
            "/v1/contacts/{id}",
            get(contacts::get_one)
                .patch(contacts::patch)
                .delete(contacts::delete),
        )
        .route("/v1/contacts/{id}/restore", post(contacts::restore))
        .route("/v1/contacts/{id}/merge", post(contacts::merge))
        .route("/v1/contacts/{id}/unmerge", post(contacts::unmerge))
        .route("/v1/contacts/{id}/events", post(events::contact_event))
        .route("/v1/events", post(events::batch))
        .route(
            "/v1/companies",
            post(companies::create).get(companies::list),
        )
        .route(
            "/v1/companies/{id}",
            get(companies::get_one)
                .patch(companies::patch)
                .delete(companies::delete),
        )
        .route("/v1/companies/{id}/contacts", get(companies::contacts))
        .route("/v1/companies/{id}/recipients", get(companies::recipients))
        .route("/v1/inboxes", get(inboxes::list).post(inboxes::create))
        .route(
            "/v1/inboxes/{id}",
            get(inboxes::get_one)
                .patch(inboxes::patch)
                .delete(inboxes::delete),
        )
        .route("/v1/inboxes/{id}/contacts", get(inboxes::contacts))
        .route(
            "/v1/custom-fields",
            get(custom_fields::list).post(custom_fields::create),
        )
        .route(
            "/v1/custom-fields/{key}",
            get(custom_fields::get_one)
                .patch(custom_fields::patch)
                .delete(custom_fields::delete),
        )
}
