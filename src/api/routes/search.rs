//! `GET /v1/contacts` and `POST /v1/contacts/search`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::{ApiError, AppState};
use crate::index::SearchRequest;
use crate::model::Contact;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

/// Search parameters, the same in the query string and in a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    /// Wait until the index has applied this sequence (read-your-writes).
    min_seq: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct SearchResponse {
    hits: Vec<Contact>,
    total: usize,
    next_cursor: Option<String>,
    took_ms: f64,
    index_seq: u64,
}

pub async fn search_get(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    run_search(state, params, None).await
}

pub async fn search_post(
    State(state): State<AppState>,
    ApiJson(params): ApiJson<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    run_search(state, params, None).await
}

/// Runs a search, optionally among one company's contacts.
pub async fn run_search(
    state: AppState,
    params: SearchParams,
    company_id: Option<String>,
) -> Result<Json<SearchResponse>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    if let Some(seq) = params.min_seq {
        state.wait_indexed(seq).await?;
    }
    let request = SearchRequest {
        q: params.q.unwrap_or_default(),
        limit,
        company_id,
    };
    let response = state
        .blocking(move |state| {
            let started = Instant::now();
            let index_seq = state.indexed.get();
            let page = state.index.search(&request)?;
            // The store is the source of truth for what is shown; a contact changed
            // since the index saw it is shown as it is now, and leaves the page if it
            // is no longer active (the index catches up within one commit).
            let hits: Vec<Contact> = state
                .store
                .get_many(&page.ids)?
                .into_iter()
                .filter(Contact::is_active)
                .collect();
            Ok(SearchResponse {
                hits,
                total: page.total,
                next_cursor: None,
                took_ms: started.elapsed().as_secs_f64() * 1000.0,
                index_seq,
            })
        })
        .await?;
    Ok(Json(response))
}
