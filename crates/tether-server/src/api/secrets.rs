//! `/secrets`: text secrets. Values go in and never come out: every response is
//! metadata only. (Delegates receive values inside their tasks, not through here.)

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tether_store::{ListQuery, Role, SecretInput, SecretMeta, SecretUpdate, SecretValue};

use super::auth::Caller;
use super::body::{Doc, Format, Reply};
use super::connectors::{check_limit, ListResponse};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;

/// The body of a create. `Debug` is hand-written so the value can never be logged.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretCreate {
    identifier: Option<String>,
    name: String,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    value: String,
}

/// The body of an update; `value` absent keeps the stored value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretChange {
    identifier: Option<String>,
    name: String,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    value: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretResponse {
    identifier: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    created_at: i64,
    last_modified_at: i64,
}

impl From<SecretMeta> for SecretResponse {
    fn from(m: SecretMeta) -> Self {
        SecretResponse {
            org_identifier: m.scope.org().map(str::to_string),
            project_identifier: m.scope.project().map(str::to_string),
            identifier: m.identifier,
            name: m.name,
            description: m.description,
            tags: m.tags,
            kind: "SecretText",
            created_at: m.created_at,
            last_modified_at: m.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    page: Option<u32>,
    limit: Option<u32>,
    search: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(body): Doc<SecretCreate>,
) -> ApiResult<Reply<SecretResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let meta = state
        .store
        .create_secret(
            &path.scope,
            SecretInput {
                identifier: body.identifier,
                name: body.name,
                description: body.description,
                tags: body.tags,
                value: SecretValue::new(body.value),
            },
        )
        .await?;
    tracing::info!(scope = %path.scope, identifier = %meta.identifier, "secret created");
    Ok(Reply::created(Format::accepted(&headers), meta.into()))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
) -> ApiResult<Reply<SecretResponse>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let meta = state
        .store
        .get_secret_meta(&path.scope, path.param("identifier"))
        .await?;
    Ok(Reply::ok(Format::accepted(&headers), meta.into()))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Reply<ListResponse<SecretResponse>>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = state
        .store
        .list_secrets(
            &path.scope,
            ListQuery {
                page: p.page.unwrap_or(0),
                limit: check_limit(p.limit)?,
                search: p.search,
            },
        )
        .await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        ListResponse {
            items: page.items.into_iter().map(Into::into).collect(),
            total: page.total,
            page: page.page,
            limit: page.limit,
        },
    ))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(body): Doc<SecretChange>,
) -> ApiResult<Reply<SecretResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let identifier = path.param("identifier");
    if let Some(id) = body.identifier.as_deref().filter(|id| *id != identifier) {
        return Err(ApiError::bad_request(format!(
            "the identifier of a secret cannot change: the URL names '{identifier}', the body '{id}'"
        ))
        .with_field("identifier"));
    }
    let meta = state
        .store
        .update_secret(
            &path.scope,
            identifier,
            SecretUpdate {
                name: body.name,
                description: body.description,
                tags: body.tags,
                value: body.value.map(SecretValue::new),
            },
        )
        .await?;
    Ok(Reply::ok(Format::accepted(&headers), meta.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
) -> ApiResult<Response> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let identifier = path.param("identifier");
    state.store.delete_secret(&path.scope, identifier).await?;
    tracing::info!(scope = %path.scope, identifier, "secret deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
