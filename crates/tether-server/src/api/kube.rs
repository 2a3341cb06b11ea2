//! Using a connector's cluster through tether: short-lived tokens for a
//! kubeconfig (`POST …/connectors/{identifier}/kubeconfig`) and the audit log
//! of proxied requests (`GET …/audit`).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tether_domain::Scope;
use tether_store::{AuditEntry, AuditQuery, Role, TokenGrant};

use super::auth::Caller;
use super::body::{Format, Reply};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::tokens::CreatedToken;
use super::AppState;

/// Default and longest life of a kubeconfig's token.
const DEFAULT_TTL: u64 = 3600;
const MAX_TTL: u64 = 7 * 24 * 3600;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KubeconfigParams {
    /// Life of the token in seconds (default 3600, at most 7 days, and never
    /// past the calling token's own expiry).
    ttl_seconds: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigAccess {
    /// The connector's Kubernetes API on this manager: append it to the
    /// manager's URL for the kubeconfig's `server`.
    pub server_path: String,
    /// The CA (PEM) of the manager's HTTPS certificate, for the kubeconfig's
    /// `certificate-authority-data`; absent when the manager serves plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// A token limited to this connector's Kubernetes API, expiring.
    #[serde(flatten)]
    pub created: CreatedToken,
}

/// Where a connector's Kubernetes API is served.
pub fn server_path(scope: &Scope, identifier: &str) -> String {
    match scope {
        Scope::Account => format!("/k8s/connectors/{identifier}"),
        Scope::Org(o) => format!("/k8s/orgs/{o}/connectors/{identifier}"),
        Scope::Project { org, project } => {
            format!("/k8s/orgs/{org}/projects/{project}/connectors/{identifier}")
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors/{identifier}/kubeconfig",
    tag = "connectors",
    operation_id = "createConnectorKubeconfigToken",
    summary = "A short-lived token for a connector's Kubernetes API",
    description = "Creates a token that may only use this connector's Kubernetes API (`serverPath`), named like the calling token \
(so in `Impersonate` mode the cluster sees the same `tether:<name>`), in the connector's scope, expiring after `ttlSeconds`. \
The caller needs a token with the `kubeAccess` grant covering the connector, or an admin token of the scope. \
`tether connector kubeconfig ID` turns the answer into a kubeconfig.",
    params(
        ("identifier" = String, Path, description = "The connector's identifier."),
        KubeconfigParams,
    ),
    responses(
        (status = 201, description = "The token (its value shown once) and the path of the connector's Kubernetes API.", content((KubeconfigAccess = "application/json"), (KubeconfigAccess = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn kubeconfig(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    params: Result<Query<KubeconfigParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Reply<KubeconfigAccess>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let identifier = path.param("identifier");
    let token = &caller.0;
    let granted = token.grant.allows_connector(&path.scope, identifier);
    if !granted && token.role < Role::Admin {
        return Err(ApiError::forbidden(format!(
            "this token may not use the Kubernetes API of connector '{identifier}': it needs the kubeAccess grant (`tether token create --kube-access`) or the admin role"
        )));
    }
    // Exists, in this scope.
    state.store.get_connector(&path.scope, identifier).await?;
    let ttl = params.ttl_seconds.unwrap_or(DEFAULT_TTL);
    if ttl == 0 || ttl > MAX_TTL {
        return Err(
            ApiError::bad_request(format!("ttlSeconds must be between 1 and {MAX_TTL}"))
                .with_field("ttlSeconds"),
        );
    }
    let mut expires_at = crate::delegates::now_ms() + (ttl * 1000) as i64;
    if let Some(own) = token.grant.expires_at {
        expires_at = expires_at.min(own);
    }
    let grant = TokenGrant {
        kube_access: true,
        kube_connector: Some(TokenGrant::connector_key(&path.scope, identifier)),
        expires_at: Some(expires_at),
    };
    let (record, value) = state
        .store
        .create_token_with(&token.name, &path.scope, Role::Viewer, grant)
        .await?;
    tracing::info!(scope = %path.scope, connector = %identifier, id = %record.id, "kubeconfig token created");
    Ok(Reply::created(
        Format::accepted(&headers),
        KubeconfigAccess {
            server_path: server_path(&path.scope, identifier),
            certificate_authority: state.proxy.settings.tls.as_ref().map(|t| t.ca_pem.clone()),
            created: CreatedToken {
                token: record.into(),
                value: value.expose().to_string(),
            },
        },
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this connector's requests.
    connector: Option<String>,
    /// Only requests of tokens with this name.
    caller: Option<String>,
    /// Only requests started at or after this time (milliseconds since the Unix epoch).
    since: Option<i64>,
    /// Only requests answered with this HTTP status.
    status: Option<u16>,
    /// At most this many entries, 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// One proxied request or session. Never a header, a body or a credential.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub ended_at: i64,
    pub token_id: String,
    /// The token's name.
    pub caller: String,
    pub connector: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_id: Option<String>,
    pub verb: String,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `exec`, `attach` or `portforward` for an upgraded session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The container an exec or attach names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The program an exec runs: the first word of its command; its
    /// arguments are never recorded (they can carry secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The ports of a port-forward, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
    pub status: u16,
    pub duration_ms: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<AuditEntry> for AuditRecord {
    fn from(e: AuditEntry) -> Self {
        AuditRecord {
            id: e.id,
            started_at: e.started_at,
            ended_at: e.ended_at,
            token_id: e.token_id,
            caller: e.caller,
            connector: e.connector,
            delegate_id: e.delegate_id,
            verb: e.verb,
            method: e.method,
            path: e.path,
            namespace: e.namespace,
            resource: e.resource,
            name: e.name,
            session: e.session,
            container: e.container,
            program: e.program,
            ports: e.ports,
            status: e.status,
            duration_ms: e.duration_ms,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            error: e.error,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditRecord>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "connectors",
    operation_id = "listAudit",
    summary = "Proxied Kubernetes requests",
    description = "The audit log of the Kubernetes API used through connectors of exactly this scope, newest first: who, which connector and delegate, verb, path, namespace, resource, status, duration and bytes each way. Needs an admin token. The manager keeps entries for `--audit-retention` (default 90 days).",
    params(AuditParams),
    responses(
        (status = 200, description = "The entries, newest first.", content((AuditList = "application/json"), (AuditList = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Reply<AuditList>> {
    caller.authorize(&state, &path.scope, Role::Admin).await?;
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000").with_field("limit"));
    }
    let items = state
        .store
        .list_audit(
            &path.scope,
            &AuditQuery {
                connector: p.connector,
                caller: p.caller,
                since: p.since,
                status: p.status,
                limit,
            },
        )
        .await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        AuditList {
            items: items.into_iter().map(Into::into).collect(),
        },
    ))
}
