//! Companies, their contacts, and the recipients of an email to them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::search::{Scope, SearchParams, SearchResponse, admitted, bind_key, run_search};
use crate::api::extract::{ApiJson, ApiQuery, if_match};
use crate::api::openapi::{CompanyDeleted, CompanyList, Recipients};
use crate::api::scope::Within;
use crate::api::{ApiError, AppState};
use crate::model::{Company, CompanyInput};
use crate::store::{Command, Written};

fn company_of(written: Written) -> Result<Company, ApiError> {
    match written {
        Written::Company(company) => Ok(company),
        other => Err(ApiError::internal(format!(
            "expected a company, the store answered {other:?}"
        ))),
    }
}

fn company_response(status: StatusCode, company: &Company) -> Response {
    let mut response = (status, Json(company)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", company.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/v1/companies/{}", company.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[utoipa::path(post, path = "/v1/companies", tag = "companies",
    request_body = CompanyInput, responses((status = 201, body = Company)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CompanyInput>,
) -> Result<Response, ApiError> {
    let company = company_of(
        state
            .store
            .write(Command::CreateCompany(input))
            .await?
            .written,
    )?;
    Ok(company_response(StatusCode::CREATED, &company))
}

#[utoipa::path(get, path = "/v1/companies", tag = "companies",
    responses((status = 200, body = CompanyList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<CompanyList>, ApiError> {
    let mut companies = state.blocking(|state| Ok(state.store.companies()?)).await?;
    companies.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    Ok(Json(CompanyList { companies }))
}

async fn load(state: &AppState, id: String) -> Result<Company, ApiError> {
    let found = state.blocking({
        let id = id.clone();
        move |state| Ok(state.store.company(&id)?)
    });
    found
        .await?
        .ok_or_else(|| ApiError::not_found(format!("company {id} not found")))
}

#[utoipa::path(get, path = "/v1/companies/{id}", tag = "companies",
    params(("id" = String, Path, description = "Company id")),
    responses((status = 200, body = Company)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(company_response(StatusCode::OK, &load(&state, id).await?))
}

#[utoipa::path(patch, path = "/v1/companies/{id}", tag = "companies",
    params(("id" = String, Path, description = "Company id"),
           ("If-Match" = Option<String>, Header, description = "Expected version")),
    request_body(content = Object, description = "JSON merge patch of the company"),
    responses((status = 200, body = Company)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let command = Command::PatchCompany {
        id,
        patch,
        if_match: if_match(&headers)?,
    };
    let company = company_of(state.store.write(command).await?.written)?;
    Ok(company_response(StatusCode::OK, &company))
}

#[utoipa::path(delete, path = "/v1/companies/{id}", tag = "companies",
    params(("id" = String, Path, description = "Company id")),
    responses((status = 200, body = CompanyDeleted)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CompanyDeleted>, ApiError> {
    let ack = state
        .store
        .write(Command::DeleteCompany { id: id.clone() })
        .await?;
    let Written::CompanyDeleted(unlinked) = ack.written else {
        return Err(ApiError::internal(
            "company delete answered with another outcome",
        ));
    };
    Ok(Json(CompanyDeleted {
        deleted: id,
        contacts_unlinked: unlinked,
    }))
}

/// Searches the company's contacts (the search parameters of `GET /v1/contacts`).
#[utoipa::path(get, path = "/v1/companies/{id}/contacts", tag = "companies",
    params(("id" = String, Path, description = "Company id"), SearchParams),
    responses((status = 200, body = SearchResponse)))]
pub async fn contacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    key: Within,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    load(&state, id.clone()).await?;
    let scope = Scope {
        company_id: Some(id),
        ..Scope::of_key(key)
    };
    run_search(state, params, scope).await
}

/// The pre-filled recipients of an email to the company: its own address and its
/// favorite contacts' in `to`, every other contact with an email in `others`.
#[utoipa::path(get, path = "/v1/companies/{id}/recipients", tag = "companies",
    params(("id" = String, Path, description = "Company id")),
    responses((status = 200, body = Recipients)))]
pub async fn recipients(
    State(state): State<AppState>,
    Path(id): Path<String>,
    key: Within,
) -> Result<Json<Recipients>, ApiError> {
    let company = load(&state, id.clone()).await?;
    let contacts = state
        .blocking(move |state| {
            let contacts = state.store.company_contacts(&id)?;
            let key = bind_key(&state, &key)?;
            if let Some(key) = &key {
                key.check_reads(["email", "favorite"], "the recipients list")?;
            }
            admitted(&state, key.as_ref(), contacts)
        })
        .await?;
    let mut to: Vec<String> = company.email.into_iter().collect();
    let mut others: Vec<String> = Vec::new();
    for contact in &contacts {
        let Some(email) = &contact.email else {
            continue;
        };
        let list = if contact.favorite {
            &mut to
        } else {
            &mut others
        };
        if !list.contains(email) {
            list.push(email.clone());
        }
    }
    others.retain(|email| !to.contains(email));
    Ok(Json(Recipients { to, others }))
}
