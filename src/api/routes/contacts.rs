//! Single-contact routes: CRUD, restore, permanent erase, lookup, identify, merge.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::search::{NameList, bind_key, project, projection};
use crate::api::extract::{ApiJson, ApiQuery, if_match};
use crate::api::openapi::{IdentifyResult, MergeResult, UnmergeResult};
use crate::api::scope::{Bound, Within, visible_fields};
use crate::api::{ApiError, AppState};
use crate::model::{
    Contact, ContactInput, IdentityKey, MergeRequest, is_phone_channel, normalize_email,
    normalize_phone,
};
use crate::store::{Command, WriteAck, Written};

/// Query parameters every write accepts.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// `indexed`: answer once the write is searchable.
    #[param(inline)]
    pub wait: Option<WaitFor>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitFor {
    /// Answer once the write is searchable.
    Indexed,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    #[param(inline)]
    wait: Option<WaitFor>,
    /// Erase now instead of moving to the trash.
    #[serde(default)]
    permanent: bool,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MergeParams {
    #[param(inline)]
    wait: Option<WaitFor>,
    /// Return the merged result without storing it.
    #[serde(default)]
    dry_run: bool,
}

/// The caller's key scope for a single-contact route (typed off the runtime).
pub async fn key_of(state: &AppState, key: Within) -> Result<Option<Bound>, ApiError> {
    if key.0.is_none() {
        return Ok(None);
    }
    state.blocking(move |state| bind_key(&state, &key)).await
}

/// The command under the key's scope guard, when the key has a filter.
pub fn scoped(key: &Option<Bound>, command: Command) -> Command {
    match key.as_ref().and_then(Bound::guard) {
        Some(guard) => Command::Scoped {
            guard,
            command: Box::new(command),
        },
        None => command,
    }
}

/// 403 unless a scoped key may write every field the body sets.
fn check_body(key: &Option<Bound>, body: &Value) -> Result<(), ApiError> {
    if let (Some(key), Value::Object(fields)) = (key, body) {
        let set = fields
            .iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(name, _)| name.as_str());
        key.check_reads(set, "the body")?;
    }
    Ok(())
}

fn input_body(input: &ContactInput) -> Value {
    serde_json::to_value(input).unwrap_or(Value::Null)
}

#[utoipa::path(post, path = "/v1/contacts", tag = "contacts",
    params(WriteParams), request_body = ContactInput,
    responses((status = 201, description = "Created; `Location`, `ETag` and `X-Seq` headers", body = Contact)))]
pub async fn create(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<WriteParams>,
    ApiJson(input): ApiJson<ContactInput>,
) -> Result<Response, ApiError> {
    let key = key_of(&state, key).await?;
    check_body(&key, &input_body(&input))?;
    let command = scoped(&key, Command::Create(Box::new(input)));
    let ack = state.store.write(command).await?;
    let (contact, seq) = contact_of(ack)?;
    state.wait_if_asked(params.wait.as_ref(), seq).await?;
    Ok(contact_response(
        StatusCode::CREATED,
        &contact,
        Some(seq),
        visible_fields(key.as_ref(), None).as_deref(),
    ))
}

/// `GET /v1/contacts/{id}`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Fields to return (`id` always), comma-separated.
    fields: Option<String>,
}

#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id"), GetParams),
    responses((status = 200, description = "The contact, any status; `ETag` is its version", body = Contact)))]
pub async fn get_one(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    let asked = projection(params.fields.map(|f| NameList::Text(f).names()))?;
    let lookup = id.clone();
    let (contact, key) = state
        .blocking(move |state| {
            let key = bind_key(&state, &key)?;
            let contact = state.store.get(&lookup)?;
            Ok((in_scope(&state, key.as_ref(), contact)?, key))
        })
        .await?;
    let contact = contact.ok_or_else(|| ApiError::not_found(format!("contact {id} not found")))?;
    Ok(contact_response(
        StatusCode::OK,
        &contact,
        None,
        visible_fields(key.as_ref(), asked).as_deref(),
    ))
}

/// The contact when the key's scope admits it (outside the scope it does not exist).
pub(super) fn in_scope(
    state: &AppState,
    key: Option<&Bound>,
    contact: Option<Contact>,
) -> Result<Option<Contact>, ApiError> {
    Ok(super::search::admitted(state, key, contact.into_iter().collect())?.pop())
}

#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id"), WriteParams,
           ("If-Match" = Option<String>, Header, description = "Expected version")),
    request_body(content = Object, description = "JSON merge patch (RFC 7396) of writable fields"),
    responses((status = 200, body = Contact)))]
pub async fn patch(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<WriteParams>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let key = key_of(&state, key).await?;
    check_body(&key, &patch)?;
    let command = Command::Patch {
        id,
        patch,
        if_match,
    };
    let ack = state.store.write(scoped(&key, command)).await?;
    finish(&state, params.wait.as_ref(), ack, key.as_ref()).await
}

#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id"), DeleteParams,
           ("If-Match" = Option<String>, Header, description = "Expected version")),
    responses((status = 200, description = "Moved to the trash (the contact), or erased (`{\"erased\": id}` with `permanent=true`, owner only)", body = Contact)))]
pub async fn delete(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let key = key_of(&state, key).await?;
    let command = if params.permanent {
        Command::Erase { id, if_match }
    } else {
        Command::Delete { id, if_match }
    };
    let ack = state.store.write(scoped(&key, command)).await?;
    if params.permanent {
        let (contact, seq) = contact_of(ack)?;
        state.wait_if_asked(params.wait.as_ref(), seq).await?;
        let mut response = Json(json!({"erased": contact.id})).into_response();
        response
            .headers_mut()
            .insert("x-seq", HeaderValue::from(seq));
        return Ok(response);
    }
    finish(&state, params.wait.as_ref(), ack, key.as_ref()).await
}

#[utoipa::path(post, path = "/v1/contacts/{id}/restore", tag = "contacts",
    params(("id" = String, Path, description = "Contact id"), WriteParams,
           ("If-Match" = Option<String>, Header, description = "Expected version")),
    responses((status = 200, body = Contact)))]
pub async fn restore(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<WriteParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let key = key_of(&state, key).await?;
    let command = scoped(&key, Command::Restore { id, if_match });
    let ack = state.store.write(command).await?;
    finish(&state, params.wait.as_ref(), ack, key.as_ref()).await
}

/// Exactly one of: `email`, `phone`, or `channel` with `value`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LookupParams {
    email: Option<String>,
    phone: Option<String>,
    channel: Option<String>,
    value: Option<String>,
}

/// Exact identity resolution: the active contact holding the identity, or 404.
#[utoipa::path(get, path = "/v1/contacts/lookup", tag = "contacts",
    params(LookupParams),
    responses((status = 200, description = "The active contact holding the identity", body = Contact)))]
pub async fn lookup(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<LookupParams>,
) -> Result<Response, ApiError> {
    let country = state.live.rules().default_country;
    let bad = |m: String| ApiError::bad_request(m);
    // What a scoped key must be able to read to look up by it.
    let by: &[&str] = if params.email.is_some() {
        &["email", "identities"]
    } else if params.phone.is_some() {
        &["phone", "identities"]
    } else {
        &["identities"]
    };
    let keys: Vec<IdentityKey> = match (params.email, params.phone, params.channel, params.value) {
        (Some(email), None, None, None) => vec![IdentityKey::new(
            "email",
            &normalize_email(&email).map_err(bad)?,
        )],
        (None, Some(phone), None, None) => {
            let phone = normalize_phone(&phone, country).map_err(bad)?;
            ["phone", "whatsapp", "sms", "viber", "signal"]
                .iter()
                .map(|channel| IdentityKey::for_phone(channel, &phone))
                .collect()
        }
        (None, None, Some(channel), Some(value)) => {
            let channel = channel.trim().to_lowercase();
            let key = if channel == "email" {
                IdentityKey::new("email", &normalize_email(&value).map_err(bad)?)
            } else if is_phone_channel(&channel) {
                IdentityKey::for_phone(&channel, &normalize_phone(&value, country).map_err(bad)?)
            } else {
                IdentityKey::new(&channel, &value.trim().to_lowercase())
            };
            vec![key]
        }
        _ => {
            return Err(bad(
                "give exactly one of: email, phone, or channel and value".into(),
            ));
        }
    };
    let (found, key) = state
        .blocking(move |state| {
            let key = bind_key(&state, &key)?;
            if let Some(key) = &key {
                key.check_reads(by.iter().copied(), "the lookup")?;
            }
            let found = state.store.lookup(&keys)?;
            Ok((in_scope(&state, key.as_ref(), found)?, key))
        })
        .await?;
    let contact =
        found.ok_or_else(|| ApiError::not_found("no active contact has this identity"))?;
    Ok(contact_response(
        StatusCode::OK,
        &contact,
        None,
        visible_fields(key.as_ref(), None).as_deref(),
    ))
}

/// Find-or-create from identities seen on a conversation or form.
#[utoipa::path(post, path = "/v1/contacts/identify", tag = "contacts",
    params(WriteParams), request_body = ContactInput,
    responses((status = 200, description = "Found (empty fields filled)", body = IdentifyResult),
              (status = 201, description = "Created", body = IdentifyResult)))]
pub async fn identify(
    State(state): State<AppState>,
    key: Within,
    ApiQuery(params): ApiQuery<WriteParams>,
    ApiJson(input): ApiJson<ContactInput>,
) -> Result<Response, ApiError> {
    let key = key_of(&state, key).await?;
    check_body(&key, &input_body(&input))?;
    let command = scoped(&key, Command::Identify(Box::new(input)));
    let ack = state.store.write(command).await?;
    let Written::Identified(identified) = ack.written else {
        return Err(ApiError::internal("identify answered with another outcome"));
    };
    state.wait_if_asked(params.wait.as_ref(), ack.seq).await?;
    let status = if identified.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body =
        json!({"contact": shown(&identified.contact, key.as_ref()), "created": identified.created});
    Ok(with_seq(
        (status, Json(body)).into_response(),
        &identified.contact,
        ack.seq,
    ))
}

#[utoipa::path(post, path = "/v1/contacts/{id}/merge", tag = "contacts",
    params(("id" = String, Path, description = "The contact that stays"), MergeParams,
           ("If-Match" = Option<String>, Header, description = "Expected version of the survivor")),
    request_body = MergeRequest,
    responses((status = 200, body = MergeResult)))]
pub async fn merge(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<MergeParams>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<MergeRequest>,
) -> Result<Response, ApiError> {
    let key = key_of(&state, key).await?;
    if let Some(key) = &key {
        key.check_reads(request.keep.keys().map(String::as_str), "keep")?;
    }
    let command = Command::Merge {
        id,
        other_id: request.other_id,
        keep: request.keep,
        if_match: if_match(&headers)?,
        dry_run: params.dry_run,
    };
    let ack = state.store.write(scoped(&key, command)).await?;
    merged_response(&state, params.wait.as_ref(), ack, "merged", key.as_ref()).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnmergeRequest {
    other_id: String,
}

#[utoipa::path(post, path = "/v1/contacts/{id}/unmerge", tag = "contacts",
    params(("id" = String, Path, description = "The survivor of the merge"), WriteParams),
    request_body = UnmergeRequest,
    responses((status = 200, body = UnmergeResult)))]
pub async fn unmerge(
    State(state): State<AppState>,
    key: Within,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<WriteParams>,
    ApiJson(request): ApiJson<UnmergeRequest>,
) -> Result<Response, ApiError> {
    let key = key_of(&state, key).await?;
    let command = Command::Unmerge {
        id,
        other_id: request.other_id,
    };
    let ack = state.store.write(scoped(&key, command)).await?;
    merged_response(&state, params.wait.as_ref(), ack, "restored", key.as_ref()).await
}

async fn merged_response(
    state: &AppState,
    wait: Option<&WaitFor>,
    ack: WriteAck,
    other_name: &str,
    key: Option<&Bound>,
) -> Result<Response, ApiError> {
    let Written::Merged(merged) = ack.written else {
        return Err(ApiError::internal("merge answered with another outcome"));
    };
    state.wait_if_asked(wait, ack.seq).await?;
    let body =
        json!({"contact": shown(&merged.survivor, key), other_name: shown(&merged.other, key)});
    Ok(with_seq(
        Json(body).into_response(),
        &merged.survivor,
        ack.seq,
    ))
}

/// Honors `?wait=indexed`, then answers with the stored contact.
pub async fn finish(
    state: &AppState,
    wait: Option<&WaitFor>,
    ack: WriteAck,
    key: Option<&Bound>,
) -> Result<Response, ApiError> {
    let (contact, seq) = contact_of(ack)?;
    state.wait_if_asked(wait, seq).await?;
    Ok(contact_response(
        StatusCode::OK,
        &contact,
        Some(seq),
        visible_fields(key, None).as_deref(),
    ))
}

pub fn contact_of(ack: WriteAck) -> Result<(Contact, u64), ApiError> {
    match ack.written {
        Written::Contact(contact) => Ok((*contact, ack.seq)),
        other => Err(ApiError::internal(format!(
            "expected a contact, the store answered {other:?}"
        ))),
    }
}

/// The contact as the caller may see it: only its key's readable fields.
fn shown(contact: &Contact, key: Option<&Bound>) -> Value {
    project(contact, visible_fields(key, None).as_deref())
}

/// The contact projected to `fields` (all when `None`), with its `ETag`, and its
/// `X-Seq` (and `Location` when created) after a write.
pub fn contact_response(
    status: StatusCode,
    contact: &Contact,
    seq: Option<u64>,
    fields: Option<&[String]>,
) -> Response {
    let mut response = (status, Json(project(contact, fields))).into_response();
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/v1/contacts/{}", contact.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    match seq {
        Some(seq) => with_seq(response, contact, seq),
        None => with_etag(response, contact),
    }
}

fn with_etag(mut response: Response, contact: &Contact) -> Response {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", contact.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn with_seq(response: Response, contact: &Contact, seq: u64) -> Response {
    let mut response = with_etag(response, contact);
    response
        .headers_mut()
        .insert("x-seq", HeaderValue::from(seq));
    response
}
