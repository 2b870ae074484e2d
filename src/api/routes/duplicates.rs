//! Duplicate suggestions: `GET /v1/contacts/{id}/duplicates` (one contact's likely
//! duplicates, looked up by its match keys) and `GET /v1/duplicates` (every likely
//! pair, by score, paged).
//!
//! Candidates come from the index's match keys ([`crate::model::duplicates`]); each
//! candidate pair is then compared on the stored records. The whole-base list is
//! computed from the key groups and kept until the index moves on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::contacts::in_scope;
use super::search::{admitted, bind_key};
use crate::api::extract::ApiQuery;
use crate::api::scope::{Bound, Within};
use crate::api::{ApiError, AppState};
use crate::model::Contact;
use crate::model::duplicates::{GROUP_MAX, Likeness, Reason, compare, key_probes};

/// The contact fields suggestions compare (a key must read them all).
const COMPARED: [&str; 6] = [
    "name",
    "email",
    "phone",
    "identities",
    "company_id",
    "country",
];
const LIMIT_MAX: usize = 100;
/// Key groups whose contacts are read in one store snapshot.
const GROUPS_PER_READ: usize = 1_000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DuplicatesParams {
    /// 1–100 (default 20).
    limit: Option<usize>,
    /// The previous page's `next_cursor` (`GET /v1/duplicates`).
    cursor: Option<String>,
}

fn limit_of(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(20);
    if (1..=LIMIT_MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!(
            "limit must be between 1 and {LIMIT_MAX}"
        )))
    }
}

/// A likely duplicate of the contact asked about.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    #[schema(value_type = Object)]
    pub contact: Value,
    pub score: f64,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suggestions {
    /// Best first.
    pub duplicates: Vec<Suggestion>,
}

#[utoipa::path(get, path = "/v1/contacts/{id}/duplicates", tag = "contacts",
    params(("id" = String, Path, description = "Contact id"), DuplicatesParams),
    responses((status = 200, description = "Likely duplicates, best first, ready for merge", body = Suggestions)))]
pub async fn of_contact(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DuplicatesParams>,
) -> Result<Json<Suggestions>, ApiError> {
    let limit = limit_of(params.limit)?;
    if params.cursor.is_some() {
        return Err(ApiError::bad_request(
            "cursor pages GET /v1/duplicates; a contact's suggestions come in one page",
        ));
    }
    let duplicates = state
        .blocking(move |state| {
            let key = bind_key(&state, &key)?;
            if let Some(key) = &key {
                key.check_reads(COMPARED, "duplicate suggestions")?;
            }
            let contact = in_scope(&state, key.as_ref(), state.store.get(&id)?)?
                .ok_or_else(|| ApiError::not_found(format!("contact {id} not found")))?;
            suggestions(&state, key.as_ref(), &contact, limit)
        })
        .await?;
    Ok(Json(Suggestions { duplicates }))
}

/// The active contacts most like `contact` (none when it is not active itself).
fn suggestions(
    state: &AppState,
    key: Option<&Bound>,
    contact: &Contact,
    limit: usize,
) -> Result<Vec<Suggestion>, ApiError> {
    if !contact.is_active() {
        return Ok(Vec::new());
    }
    let holders = state
        .index
        .get()
        .key_holders(&key_probes(contact), GROUP_MAX)?;
    let candidates = admitted(state, key, state.store.get_many(&holders)?)?;
    let mut found: Vec<(Likeness, Contact)> = candidates
        .into_iter()
        .filter(Contact::is_active)
        .filter_map(|other| compare(contact, &other).map(|likeness| (likeness, other)))
        .collect();
    found.sort_by(|(a, x), (b, y)| b.score.total_cmp(&a.score).then_with(|| x.id.cmp(&y.id)));
    Ok(found
        .into_iter()
        .take(limit)
        .map(|(likeness, other)| Suggestion {
            contact: serde_json::to_value(&other).unwrap_or_default(),
            score: likeness.score,
            reasons: likeness.reasons,
        })
        .collect())
}

/// A likely duplicate pair of the whole base.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Pair {
    /// The two contacts, smaller id first; each with `id`, `name`, `email`, `phone`,
    /// `company_id` and `country`.
    #[schema(value_type = Vec<Object>)]
    pub contacts: [Value; 2],
    pub score: f64,
    pub reasons: Vec<Reason>,
}

impl Pair {
    fn ids(&self) -> (&str, &str) {
        fn id(contact: &Value) -> &str {
            contact["id"].as_str().unwrap_or_default()
        }
        (id(&self.contacts[0]), id(&self.contacts[1]))
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PairsPage {
    /// Best first.
    pub pairs: Vec<Pair>,
    /// Pairs in all.
    pub total: usize,
    pub next_cursor: Option<String>,
}

/// The whole-base pairs and the index sequence they were computed at.
pub type PairsCache = std::sync::Mutex<Option<(u64, Arc<Vec<Pair>>)>>;

#[utoipa::path(get, path = "/v1/duplicates", tag = "contacts",
    params(DuplicatesParams),
    responses((status = 200, description = "Likely duplicate pairs of the whole base, best first", body = PairsPage)))]
pub async fn all_pairs(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<DuplicatesParams>,
) -> Result<Json<PairsPage>, ApiError> {
    let limit = limit_of(params.limit)?;
    let after = params.cursor.as_deref().map(parse_cursor).transpose()?;
    let pairs = state.blocking(|state| current_pairs(&state)).await?;
    let start = match &after {
        None => 0,
        Some((score, a, b)) => pairs.partition_point(|pair| {
            let (x, y) = pair.ids();
            pair.score > *score || (pair.score == *score && (x, y) <= (a.as_str(), b.as_str()))
        }),
    };
    let page: Vec<Pair> = pairs.iter().skip(start).take(limit).cloned().collect();
    let next_cursor = (start + page.len() < pairs.len())
        .then(|| page.last().map(cursor_of))
        .flatten();
    Ok(Json(PairsPage {
        pairs: page,
        total: pairs.len(),
        next_cursor,
    }))
}

fn cursor_of(pair: &Pair) -> String {
    let (a, b) = pair.ids();
    format!("{}~{a}~{b}", pair.score)
}

fn parse_cursor(cursor: &str) -> Result<(f64, String, String), ApiError> {
    let bad = || ApiError::bad_request("cursor is not one this server gave");
    let mut parts = cursor.split('~');
    let score = parts
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(bad)?;
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    Ok((score, a.to_string(), b.to_string()))
}

/// The pairs as of the index's current sequence: computed again only when the index
/// has applied changes since the last computation.
fn current_pairs(state: &AppState) -> Result<Arc<Vec<Pair>>, ApiError> {
    let seq = state.indexed.get();
    if let Some((at, pairs)) = &*state.duplicates.lock().expect("never poisoned")
        && *at == seq
    {
        return Ok(pairs.clone());
    }
    let started = std::time::Instant::now();
    let groups = state.index.get().key_groups(GROUP_MAX)?;
    let mut compared = std::collections::HashSet::new();
    let mut pairs = Vec::new();
    // Contacts are read a batch of groups at a time (one read transaction each).
    for batch in groups.chunks(GROUPS_PER_READ) {
        let mut ids: Vec<String> = batch.iter().flatten().cloned().collect();
        ids.sort();
        ids.dedup();
        let contacts: std::collections::HashMap<String, Contact> = state
            .store
            .get_many(&ids)?
            .into_iter()
            .filter(Contact::is_active)
            .map(|contact| (contact.id.clone(), contact))
            .collect();
        for group in batch {
            for (i, a) in group.iter().enumerate() {
                for b in &group[i + 1..] {
                    if !compared.insert((a.clone(), b.clone())) {
                        continue;
                    }
                    let (Some(x), Some(y)) = (contacts.get(a), contacts.get(b)) else {
                        continue;
                    };
                    if let Some(likeness) = compare(x, y) {
                        pairs.push(Pair {
                            contacts: [brief(x), brief(y)],
                            score: likeness.score,
                            reasons: likeness.reasons,
                        });
                    }
                }
            }
        }
    }
    pairs.sort_by(|p, q| {
        q.score
            .total_cmp(&p.score)
            .then_with(|| p.ids().cmp(&q.ids()))
    });
    tracing::info!(
        groups = groups.len(),
        candidates = compared.len(),
        pairs = pairs.len(),
        ms = started.elapsed().as_millis() as u64,
        "duplicate pairs computed"
    );
    let pairs = Arc::new(pairs);
    *state.duplicates.lock().expect("never poisoned") = Some((seq, pairs.clone()));
    Ok(pairs)
}

fn brief(contact: &Contact) -> Value {
    json!({
        "id": contact.id, "name": contact.name, "email": contact.email,
        "phone": contact.phone, "company_id": contact.company_id, "country": contact.country,
    })
}
