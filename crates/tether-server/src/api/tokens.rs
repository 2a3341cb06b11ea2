//! `/tokens`: API tokens bound to a scope and a role. The value is returned once,
//! by the create call; the store keeps only its hash.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tether_store::{Role, TokenRecord};

use super::auth::Caller;
use super::body::{Doc, Format, Reply, RequestBody};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreate {
    name: String,
    #[schema(value_type = super::openapi::RoleName)]
    role: String,
    /// May use the Kubernetes API of the connectors in the token's scope
    /// (`/k8s/...`). A role alone never grants that. Default false.
    #[serde(default)]
    kube_access: bool,
    /// The token stops working this many seconds after its creation; absent:
    /// it works until revoked.
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

impl RequestBody for TokenCreate {
    const ROLE: Role = Role::Admin;
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    id: String,
    name: String,
    #[schema(value_type = super::openapi::RoleName)]
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
    /// Milliseconds since the Unix epoch; absent while the token is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<i64>,
    /// May use the Kubernetes API of connectors in its scope.
    kube_access: bool,
    /// Only this connector's (`<scope key>/<identifier>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    kube_connector: Option<String>,
    /// Milliseconds since the Unix epoch; absent when it does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

impl From<TokenRecord> for TokenResponse {
    fn from(t: TokenRecord) -> Self {
        TokenResponse {
            org_identifier: t.scope.org().map(str::to_string),
            project_identifier: t.scope.project().map(str::to_string),
            id: t.id,
            name: t.name,
            role: t.role.as_str(),
            created_at: t.created_at,
            revoked_at: t.revoked_at,
            kube_access: t.grant.kube_access,
            kube_connector: t.grant.kube_connector,
            expires_at: t.grant.expires_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub(crate) token: TokenResponse,
    /// Shown once; store it now.
    pub(crate) value: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "createToken",
    summary = "Create an API token",
    description = "Creates a token bound to the scope of the URL with the given role. The response carries the token's value, once: the manager keeps only its hash.",
    request_body(
        description = "The name and role of the new token, in JSON or YAML.",
        content((TokenCreate = "application/json"), (TokenCreate = "application/yaml")),
    ),
    responses(
        (status = 201, description = "Created; `value` is shown only here.", content((CreatedToken = "application/json"), (CreatedToken = "application/yaml"))),
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
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(body): Doc<TokenCreate>,
) -> ApiResult<Reply<CreatedToken>> {
    caller.authorize(&state, &path.scope, Role::Admin).await?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role '{}' is not one of viewer, editor, admin",
            body.role
        ))
        .with_field("role")
    })?;
    let expires_at = match body.ttl_seconds {
        Some(0) => {
            return Err(
                ApiError::bad_request("ttlSeconds must be at least 1").with_field("ttlSeconds")
            )
        }
        Some(t) => Some(
            crate::delegates::now_ms().saturating_add((t.min(100 * 365 * 86400) * 1000) as i64),
        ),
        None => None,
    };
    let grant = tether_store::TokenGrant {
        kube_access: body.kube_access,
        kube_connector: None,
        expires_at,
    };
    let (record, value) = state
        .store
        .create_token_with(&body.name, &path.scope, role, grant)
        .await?;
    tracing::info!(scope = %path.scope, id = %record.id, role = role.as_str(), "API token created");
    Ok(Reply::created(
        Format::accepted(&headers),
        CreatedToken {
            token: record.into(),
            value: value.expose().to_string(),
        },
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "listTokens",
    summary = "List the API tokens of the scope",
    responses(
        (status = 200, description = "The tokens (never their values), revoked ones included.", content((Vec<TokenResponse> = "application/json"), (Vec<TokenResponse> = "application/yaml"))),
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
) -> ApiResult<Reply<Vec<TokenResponse>>> {
    caller.authorize(&state, &path.scope, Role::Admin).await?;
    let tokens = state.store.list_tokens(&path.scope).await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        tokens.into_iter().map(Into::into).collect(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "revokeToken",
    summary = "Revoke an API token",
    description = "Revokes the token at once. Needs an admin token whose scope covers the token's; a token out of reach is reported as not found.",
    params(("id" = String, Path, description = "The token's id (not its value).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let token = caller.reach(
        state.store.get_token(&id).await,
        |t| &t.scope,
        &format!("API token '{id}'"),
    )?;
    caller.require(&token.scope, Role::Admin)?;
    state.store.revoke_token(&id).await?;
    // Its proxied streams here end now; other managers notice within a second.
    state.proxy.streams.revoke(&id);
    tracing::info!(id = %id, "API token revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Who the presented token is: lets a client check its setup.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "tokens",
    operation_id = "whoami",
    responses(
        (status = 200, description = "The token that authenticated this request.", content((TokenResponse = "application/json"), (TokenResponse = "application/yaml"))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn whoami(caller: Caller, headers: HeaderMap) -> Reply<TokenResponse> {
    Reply::ok(Format::accepted(&headers), caller.0.into())
}
