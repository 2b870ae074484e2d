//! Route table.

mod admin;
mod bulk;
mod companies;
mod contacts;
mod custom_fields;
pub(crate) mod duplicates;
mod events;
mod inboxes;
mod ops;
mod search;
mod transfer;

pub use contacts::WaitFor;
pub(crate) use search::bind_key;
pub use transfer::{ExportParams, prepare_export};

use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// Every route, and the OpenAPI paths of the same registrations.
pub fn routes() -> (axum::Router<AppState>, OpenApi) {
    OpenApiRouter::with_openapi(super::openapi::base())
        .routes(routes!(super::openapi::serve))
        .routes(routes!(super::dashboard::page))
        .routes(routes!(super::dashboard::asset))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::stats))
        .routes(routes!(super::metrics::render))
        .routes(routes!(contacts::create, search::search_get))
        .routes(routes!(search::search_post))
        .routes(routes!(bulk::bulk))
        .routes(routes!(contacts::lookup))
        .routes(routes!(transfer::import))
        .routes(routes!(transfer::export))
        .routes(routes!(transfer::jobs))
        .routes(routes!(transfer::job))
        .routes(routes!(transfer::cancel_job))
        .routes(routes!(admin::reindex))
        .routes(routes!(admin::snapshot))
        .routes(routes!(admin::dump))
        .routes(routes!(admin::load))
        .routes(routes!(contacts::identify))
        .routes(routes!(
            contacts::get_one,
            contacts::patch,
            contacts::delete
        ))
        .routes(routes!(contacts::restore))
        .routes(routes!(duplicates::of_contact))
        .routes(routes!(duplicates::all_pairs))
        .routes(routes!(contacts::merge))
        .routes(routes!(contacts::unmerge))
        .routes(routes!(events::contact_event))
        .routes(routes!(events::batch))
        .routes(routes!(companies::create, companies::list))
        .routes(routes!(
            companies::get_one,
            companies::patch,
            companies::delete
        ))
        .routes(routes!(companies::contacts))
        .routes(routes!(companies::recipients))
        .routes(routes!(inboxes::list, inboxes::create))
        .routes(routes!(inboxes::get_one, inboxes::patch, inboxes::delete))
        .routes(routes!(inboxes::contacts))
        .routes(routes!(custom_fields::list, custom_fields::create))
        .routes(routes!(
            custom_fields::get_one,
            custom_fields::patch,
            custom_fields::delete
        ))
        .split_for_parts()
}
