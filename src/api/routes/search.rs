//! `GET /v1/contacts`, `POST /v1/contacts/search`, and the shared search pipeline that
//! company and inbox listings use.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::scope::{Bound, Within, visible_fields};
use crate::api::{ApiError, AppState};
use crate::config::LimitsConfig;
use crate::index::SearchRequest;
use crate::index::facets::{FacetCounts, parse_facets};
use crate::index::sort::{decode_cursor, encode_cursor, parse_sort};
use crate::model::{Contact, CustomFieldDefs, Status};
use crate::query::{FilterError, Resolved, ResolvedExpr, TimeContext, parse, resolve};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

/// A comma-separated list, or (in JSON bodies) an array of names.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NameList {
    Text(String),
    List(Vec<String>),
}

impl NameList {
    fn joined(&self) -> String {
        match self {
            NameList::Text(text) => text.clone(),
            NameList::List(items) => items.join(","),
        }
    }

    /// The names, trimmed, blanks dropped.
    pub fn names(&self) -> Vec<String> {
        self.joined()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

/// Search parameters, the same in the query string and in a JSON body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Search text: every word must match name, email, phone, identities, company,
    /// tags, searchable custom fields or notes (prefix, substring, accents, digits).
    pub q: Option<String>,
    /// Filter language, e.g. `country = FR AND created_at > now-7d`.
    pub filter: Option<String>,
    /// `field:asc|desc`, comma-separated; default relevance with `q`, else newest first.
    pub sort: Option<String>,
    /// 1 to 1000 (default 20).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Fields to return (`id` always): comma list, or an array in a body.
    #[param(value_type = Option<String>)]
    pub fields: Option<NameList>,
    /// Facet columns to count over the whole result.
    #[param(value_type = Option<String>)]
    pub facets: Option<NameList>,
    /// Wait until the index has applied this sequence (read-your-writes).
    pub min_seq: Option<u64>,
    /// IANA time zone for plain dates and `today`/`yesterday` in the filter.
    pub tz: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// Contacts (projected by `fields`).
    #[schema(value_type = Vec<Contact>)]
    hits: Vec<Box<RawValue>>,
    total: usize,
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    facets: Option<FacetCounts>,
    took_ms: f64,
    index_seq: u64,
}

/// What a listing adds to the request's own parameters.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub company_id: Option<String>,
    /// A saved filter ANDed with the request's.
    pub filter: Option<String>,
    pub sort: Option<String>,
    pub fields: Option<Vec<String>>,
    /// The caller's key scope, ANDed like the saved filter.
    pub key: Within,
}

impl Scope {
    /// Only what the caller's key scope adds.
    pub fn of_key(key: Within) -> Scope {
        Scope {
            key,
            ..Scope::default()
        }
    }
}

#[utoipa::path(get, path = "/v1/contacts", tag = "search",
    params(SearchParams),
    responses((status = 200, body = SearchResponse)))]
pub async fn search_get(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    run_search(state, params, Scope::of_key(key)).await
}

#[utoipa::path(post, path = "/v1/contacts/search", tag = "search",
    request_body = SearchParams,
    responses((status = 200, body = SearchResponse)))]
pub async fn search_post(
    State(state): State<AppState>,
    key: Within,
    ApiJson(params): ApiJson<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    run_search(state, params, Scope::of_key(key)).await
}

pub fn invalid_filter(error: FilterError) -> ApiError {
    ApiError::new(crate::api::Code::InvalidFilter, error.message.clone()).with_details(vec![
        json!({"position": error.position, "message": error.message}),
    ])
}

/// `actual` within the `[limits]` value `max` of `key`, else 400 `limit_exceeded`.
pub fn at_most(
    actual: usize,
    max: usize,
    key: &'static str,
    message: impl FnOnce(usize) -> String,
) -> Result<(), ApiError> {
    if actual > max {
        return Err(ApiError::limit_exceeded(key, max, message(max)));
    }
    Ok(())
}

/// Parses and types a filter string against the current definitions.
pub fn resolve_filter(
    text: &str,
    defs: &CustomFieldDefs,
    time: &TimeContext,
    limits: &LimitsConfig,
) -> Result<Option<Resolved>, ApiError> {
    at_most(
        text.len(),
        limits.filter_max_bytes,
        "filter_max_bytes",
        |max| format!("the filter is over {max} bytes"),
    )?;
    let Some(expr) = parse(text).map_err(invalid_filter)? else {
        return Ok(None);
    };
    at_most(
        expr.conditions(),
        limits.filter_max_conditions,
        "filter_max_conditions",
        |max| format!("the filter has more than {max} conditions"),
    )?;
    at_most(
        expr.longest_in_list(),
        limits.filter_max_in_values,
        "filter_max_in_values",
        |max| format!("an IN list of the filter has more than {max} values"),
    )?;
    Ok(Some(resolve(&expr, defs, time).map_err(invalid_filter)?))
}

pub fn time_context(state: &AppState, tz: Option<&str>) -> Result<TimeContext, ApiError> {
    let tz = match tz {
        Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
            ApiError::bad_request(format!(
                "tz '{name}' is not an IANA time zone (like Europe/Paris)"
            ))
        })?,
        None => chrono_tz::UTC,
    };
    Ok(TimeContext {
        now: state.clock.now(),
        tz,
        default_country: state.live.rules().default_country,
    })
}

/// The caller's key scope typed against the current definitions (blocking: reads
/// them); `None` without a scoped key.
pub fn bind_key(state: &AppState, key: &Within) -> Result<Option<Bound>, ApiError> {
    if key.0.is_none() {
        return Ok(None);
    }
    let defs = state.store.custom_field_defs()?;
    key.bind(&defs, &time_context(state, None)?)
}

/// A search checked and typed.
pub struct Built {
    /// What the index runs.
    pub request: SearchRequest,
    /// What a cursor is bound to (see [`build_request`]).
    pub order: String,
    /// The caller's key scope, typed.
    pub key: Option<Bound>,
}

/// Every parameter checked and typed, the caller's key scope ANDed in.
pub fn build_request(
    state: &AppState,
    params: &SearchParams,
    scope: &Scope,
    defs: &CustomFieldDefs,
) -> Result<Built, ApiError> {
    let config = state.config();
    let limits = &config.limits;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let time = time_context(state, params.tz.as_deref())?;
    let saved = scope
        .filter
        .as_deref()
        .map(|f| resolve_filter(f, defs, &time, limits))
        .transpose()?
        .flatten();
    let asked = params
        .filter
        .as_deref()
        .map(|f| resolve_filter(f, defs, &time, limits))
        .transpose()?
        .flatten();
    let key = scope.key.bind(defs, &time)?;
    if let Some(key) = &key {
        for filter in saved.iter().chain(&asked) {
            key.check_filter(filter)?;
        }
    }
    let key_filter = key.as_ref().and_then(|key| key.filter.clone());
    let filter = [key_filter, saved, asked]
        .into_iter()
        .flatten()
        .reduce(|a, b| Resolved {
            names_status: a.names_status || b.names_status,
            expr: ResolvedExpr::And(vec![a.expr, b.expr]),
        });
    let sort_text = params.sort.clone().or_else(|| scope.sort.clone());
    let sort_keys = sort_text.as_deref().map_or(0, |text| {
        text.split(',').filter(|key| !key.trim().is_empty()).count()
    });
    at_most(sort_keys, limits.sort_max_keys, "sort_max_keys", |max| {
        format!("sort by at most {max} keys")
    })?;
    let sort = sort_text
        .as_deref()
        .map(|s| parse_sort(s, defs))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let facets = match &params.facets {
        Some(list) => parse_facets(&list.joined(), defs).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    if let Some(key) = &key {
        key.check_sort(sort.as_deref().unwrap_or_default())?;
        key.check_facets(&facets)?;
        key.check_q(params.q.as_deref().unwrap_or_default())?;
    }
    let q = params.q.clone().unwrap_or_default();
    at_most(q.len(), limits.q_max_bytes, "q_max_bytes", |max| {
        format!("q is over {max} bytes")
    })?;
    at_most(
        q.split_whitespace().count(),
        limits.q_max_words,
        "q_max_words",
        |max| format!("q has more than {max} words"),
    )?;
    // A cursor is only valid for the order and result set it came from.
    let order = format!(
        "{}|{}|{}|{}|{}|{}",
        sort_text.unwrap_or_default(),
        q,
        scope.filter.clone().unwrap_or_default(),
        params.filter.clone().unwrap_or_default(),
        scope.company_id.clone().unwrap_or_default(),
        scope
            .key
            .0
            .as_ref()
            .and_then(|key| key.filter.clone())
            .unwrap_or_default()
    );
    let after = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor(c, &order))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let request = SearchRequest {
        q,
        filter,
        company_id: scope.company_id.clone(),
        sort,
        after,
        limit,
        facets,
        deadline: Some(Instant::now() + config.request_timeout()),
    };
    Ok(Built {
        request,
        order,
        key,
    })
}

/// Keeps only the asked fields (plus `id`); unknown names are a 400.
pub fn projection(fields: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(fields) = fields else {
        return Ok(None);
    };
    let known = crate::model::contact_field_names();
    if let Some(unknown) = fields.iter().find(|f| !known.contains(f)) {
        return Err(ApiError::bad_request(format!(
            "unknown field '{unknown}' in fields: use {}",
            known.join(", ")
        )));
    }
    Ok(Some(fields))
}

/// Each facet column's `max` most frequent values (ties by value); the counts stay
/// exact.
fn most_frequent(facets: FacetCounts, max: usize) -> FacetCounts {
    facets
        .into_iter()
        .map(|(column, counts)| {
            if counts.len() <= max {
                return (column, counts);
            }
            let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            ranked.truncate(max);
            (column, ranked.into_iter().collect())
        })
        .collect()
}

/// The contacts inside the key's scope (all of them without a key).
pub fn admitted(
    state: &AppState,
    key: Option<&Bound>,
    contacts: Vec<Contact>,
) -> Result<Vec<Contact>, ApiError> {
    let Some(key) = key else {
        return Ok(contacts);
    };
    let context = state
        .store
        .context_of(&contacts.iter().collect::<Vec<_>>())?;
    Ok(contacts
        .into_iter()
        .filter(|contact| key.admits(contact, &context))
        .collect())
}

pub fn project(contact: &Contact, fields: Option<&[String]>) -> Value {
    let full = serde_json::to_value(contact).expect("a contact serializes");
    let Some(fields) = fields else { return full };
    let Value::Object(map) = full else {
        unreachable!("a contact is an object")
    };
    let mut projected = Map::new();
    projected.insert("id".into(), map["id"].clone());
    for field in fields {
        projected.insert(
            field.clone(),
            map.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(projected)
}

/// Runs a search within `scope`.
pub async fn run_search(
    state: AppState,
    params: SearchParams,
    scope: Scope,
) -> Result<Json<SearchResponse>, ApiError> {
    if let Some(seq) = params.min_seq {
        // Sequences come from acknowledged writes (X-Seq): one past the store's is
        // not a lag to wait out but a wrong number.
        let committed = state.store.committed().get();
        if seq > committed {
            return Err(ApiError::bad_request(format!(
                "min_seq {seq} is ahead of the store (at {committed}): use the X-Seq of a write"
            )));
        }
        state.wait_indexed(seq).await?;
    }
    let response = state
        .blocking(move |state| {
            let started = Instant::now();
            let defs = state.store.custom_field_defs()?;
            let Built {
                request,
                order,
                key,
            } = build_request(&state, &params, &scope, &defs)?;
            let fields = params.fields.as_ref().map(NameList::names);
            let fields = visible_fields(key.as_ref(), projection(fields.or(scope.fields.clone()))?);
            let names_status = request.filter.as_ref().is_some_and(|f| f.names_status);
            let index_seq = state.indexed.get();
            let page = state.index.get().search(&request)?;
            // The store is the source of truth for what is shown; a contact that left
            // the result since the index saw it (erased, deleted, out of the key's
            // scope) is dropped. Whole contacts are written as JSON once and passed on
            // as raw values.
            let hits: Vec<Box<RawValue>> = match (fields.as_deref(), &key) {
                (None, None) => state
                    .store
                    .get_many_json(&page.ids)?
                    .into_iter()
                    .filter(|(status, _)| names_status || *status == Status::Active)
                    .map(|(_, record)| RawValue::from_string(record))
                    .collect::<Result<_, _>>()
                    .map_err(|e| ApiError::internal(e.to_string()))?,
                (fields, key) => {
                    let contacts: Vec<Contact> = state
                        .store
                        .get_many(&page.ids)?
                        .into_iter()
                        .filter(|c| names_status || c.is_active())
                        .collect();
                    let admitted = admitted(&state, key.as_ref(), contacts)?;
                    admitted
                        .iter()
                        .map(|c| serde_json::value::to_raw_value(&project(c, fields)))
                        .collect::<Result<_, _>>()
                        .map_err(|e| ApiError::internal(e.to_string()))?
                }
            };
            let facet_max = state.config().limits.facet_max_values;
            let facets: Option<FacetCounts> =
                (!request.facets.is_empty()).then(|| most_frequent(page.facets.clone(), facet_max));
            Ok(SearchResponse {
                hits,
                total: page.total,
                next_cursor: page.next.as_ref().map(|after| encode_cursor(after, &order)),
                facets,
                took_ms: started.elapsed().as_secs_f64() * 1000.0,
                index_seq,
            })
        })
        .await?;
    Ok(Json(response))
}
