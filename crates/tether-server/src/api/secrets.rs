//! `/secrets`: text secrets. Values go in and never come out: every response is
//! metadata only. (Delegates receive values inside their tasks, not through here.)

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tether_store::{ListQuery, Role, SecretInput, SecretMeta, SecretUpdate, SecretValue};

use super::auth::Caller;
use super::body::{Doc, Format, Reply, RequestBody};
use super::connectors::{check_limit, ListResponse};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;

/// The body of a create. `Debug` is hand-written so the value can never be logged.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretCreate {
    /// Derived from the name when absent; immutable afterwards.
    identifier: Option<String>,
    name: String,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The secret text (at most 1 MiB). Never returned by the API.
    value: String,
    /// Scopes whose connectors may use the secret besides its own, as scope
    /// keys: `account`, `org/<org>` (the org and its projects) or
    /// `project/<org>/<project>`; each within the secret's scope. Absent or
    /// empty: only connectors of the secret's own scope. Delegates receive the
    /// value only when registered at the secret's scope or above, or in a
    /// granted scope.
    #[serde(default)]
    usable_from: Vec<String>,
    /// Hosts the value may be sent to (`10.0.0.1:6443`, `api.example.com`,
    /// `*.example.com`; without a port any port): a connector using the
    /// secret must dial only these (`masterUrl`, and `oidcIssuerUrl` for
    /// OpenIdConnect). Absent or empty: any host.
    #[serde(default)]
    allowed_hosts: Vec<String>,
}

impl RequestBody for SecretCreate {
    const ROLE: Role = Role::Editor;
}

/// The body of an update; `value` absent keeps the stored value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretChange {
    /// When present, must be the identifier of the URL.
    identifier: Option<String>,
    name: String,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The new secret text; absent keeps the stored value.
    value: Option<String>,
    /// Replaces the use grants (see create); absent keeps them, `[]` removes
    /// them all.
    usable_from: Option<Vec<String>>,
    /// Replaces the host binding (see create); absent keeps it, `[]` removes it.
    allowed_hosts: Option<Vec<String>>,
}

impl RequestBody for SecretChange {
    const ROLE: Role = Role::Editor;
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    /// Always `SecretText`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "SecretText")]
    kind: &'static str,
    /// Scopes whose connectors may use the secret besides its own (scope
    /// keys); empty: its own scope only.
    usable_from: Vec<String>,
    /// Hosts the value may be sent to; empty: any.
    allowed_hosts: Vec<String>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
    /// Milliseconds since the Unix epoch.
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
            usable_from: m.usable_from.iter().map(|s| s.key()).collect(),
            allowed_hosts: m.allowed_hosts,
            created_at: m.created_at,
            last_modified_at: m.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page number, from 0 (default 0).
    page: Option<u32>,
    /// Items per page, 1 to 1000 (default 30).
    limit: Option<u32>,
    /// Case-insensitive substring of the name or identifier.
    search: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/secrets",
    tag = "secrets",
    operation_id = "createSecret",
    summary = "Create a text secret",
    description = "Stores a secret encrypted at rest. The response carries its metadata; the value never comes back out.",
    request_body(
        description = "The secret, in JSON or YAML.",
        content((SecretCreate = "application/json"), (SecretCreate = "application/yaml")),
    ),
    responses(
        (status = 201, description = "Created; metadata only.", content((SecretResponse = "application/json"), (SecretResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::Internal),
    ),
)]
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
                usable_from: body.usable_from,
                allowed_hosts: body.allowed_hosts,
            },
        )
        .await?;
    tracing::info!(scope = %path.scope, identifier = %meta.identifier, "secret created");
    Ok(Reply::created(Format::accepted(&headers), meta.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/secrets/{identifier}",
    tag = "secrets",
    operation_id = "getSecret",
    summary = "Read a secret's metadata",
    params(("identifier" = String, Path, description = "The secret's identifier.")),
    responses(
        (status = 200, description = "The secret's metadata (never its value).", content((SecretResponse = "application/json"), (SecretResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/secrets",
    tag = "secrets",
    operation_id = "listSecrets",
    summary = "List secrets",
    params(ListParams),
    responses(
        (status = 200, description = "One page of secrets' metadata.", content((ListResponse<SecretResponse> = "application/json"), (ListResponse<SecretResponse> = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
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
        ListResponse::from_page(page),
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/secrets/{identifier}",
    tag = "secrets",
    operation_id = "updateSecret",
    summary = "Update a secret",
    description = "Replaces name, description and tags, and the value, the use grants (`usableFrom`) and the host binding (`allowedHosts`) when given. Revoking a grant takes effect at once: connectors of that scope are refused when tested, and no delegate there receives the value.",
    params(("identifier" = String, Path, description = "The secret's identifier.")),
    request_body(
        description = "The new metadata and, optionally, the new value, in JSON or YAML.",
        content((SecretChange = "application/json"), (SecretChange = "application/yaml")),
    ),
    responses(
        (status = 200, description = "Updated; metadata only.", content((SecretResponse = "application/json"), (SecretResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::Internal),
    ),
)]
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
                usable_from: body.usable_from,
                allowed_hosts: body.allowed_hosts,
            },
        )
        .await?;
    let grants: Vec<String> = meta.usable_from.iter().map(|s| s.key()).collect();
    tracing::info!(scope = %path.scope, identifier, usable_from = ?grants, allowed_hosts = ?meta.allowed_hosts, "secret updated");
    Ok(Reply::ok(Format::accepted(&headers), meta.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/secrets/{identifier}",
    tag = "secrets",
    operation_id = "deleteSecret",
    summary = "Delete a secret",
    description = "Refused with 409 while connectors reference the secret.",
    params(("identifier" = String, Path, description = "The secret's identifier.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 500, response = super::openapi::Internal),
    ),
)]
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
