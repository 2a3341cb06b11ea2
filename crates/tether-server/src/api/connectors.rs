//! `/connectors`: create, read, list, update (create-or-update with PUT, as
//! `tether connector apply` uses it) and delete `K8sCluster` connectors.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tether_domain::connector::{ConnectivityState, ConnectivityStatus};
use tether_domain::{Connector, ConnectorDocument, Scope};
use tether_store::{ConnectorQuery, ConnectorRecord, ConnectorSort, Role, MAX_LIMIT};

use super::auth::Caller;
use super::body::{Doc, Format, Reply, RequestBody};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;

impl RequestBody for ConnectorDocument {
    const ROLE: Role = Role::Editor;
}

/// A connector as the API returns it: the document plus what the manager knows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorResponse {
    pub connector: Connector,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub last_modified_at: i64,
    /// The result of the last connection test.
    pub status: ConnectivityStatus,
}

impl From<ConnectorRecord> for ConnectorResponse {
    fn from(r: ConnectorRecord) -> Self {
        ConnectorResponse {
            connector: r.connector,
            created_at: r.created_at,
            last_modified_at: r.last_modified_at,
            status: r.status,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    /// Items matching the query, over all pages.
    pub total: u64,
    /// This page's number, from 0.
    pub page: u32,
    /// Items per page.
    pub limit: u32,
}

impl<T> ListResponse<T> {
    /// A store page, each item turned into its API shape.
    pub fn from_page<R: Into<T>>(page: tether_store::Page<R>) -> Self {
        ListResponse {
            items: page.items.into_iter().map(Into::into).collect(),
            total: page.total,
            page: page.page,
            limit: page.limit,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page number, from 0 (default 0).
    page: Option<u32>,
    /// Items per page, 1 to 1000 (default 30).
    limit: Option<u32>,
    /// Case-insensitive substring of the name or identifier.
    search: Option<String>,
    /// `ManualConfig` or `InheritFromDelegate` (case-insensitive).
    credential_type: Option<String>,
    /// `ServiceAccount`, `UsernamePassword`, `ClientKeyCert` or `OpenIdConnect` (case-insensitive).
    auth_type: Option<String>,
    /// Last connection test result: `SUCCESS`, `FAILURE`, `PARTIAL`, `UNKNOWN` or `PENDING`.
    status: Option<String>,
    /// `name` (default), `created` or `updated`.
    sort: Option<String>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
}

/// The limit after checking it, so a client asking for too much is told rather
/// than silently clamped.
pub fn check_limit(limit: Option<u32>) -> ApiResult<Option<u32>> {
    match limit {
        Some(0) => Err(ApiError::bad_request("limit must be at least 1").with_field("limit")),
        Some(l) if l > MAX_LIMIT => Err(ApiError::bad_request(format!(
            "limit {l} is above the maximum of {MAX_LIMIT}; page through the results instead"
        ))
        .with_field("limit")),
        other => Ok(other),
    }
}

/// Puts the path's scope into the document, refusing a document that names another.
fn place_in_scope(connector: &mut Connector, scope: &Scope) -> ApiResult<()> {
    let doc_scope = Scope::from_parts(
        connector.org_identifier.as_deref(),
        connector.project_identifier.as_deref(),
    )
    .map_err(|e| ApiError::bad_request(e).with_field("connector.projectIdentifier"))?;
    let named_any = connector.org_identifier.is_some();
    if named_any && &doc_scope != scope {
        return Err(ApiError::bad_request(format!(
            "the document belongs to {doc_scope} but was sent to the endpoint of {scope}; send it to the matching URL or drop orgIdentifier/projectIdentifier"
        ))
        .with_field("connector.orgIdentifier"));
    }
    connector.org_identifier = scope.org().map(str::to_string);
    connector.project_identifier = scope.project().map(str::to_string);
    Ok(())
}

/// Starts the test that follows a create or replace (the record then shows
/// `PENDING`), unless the manager runs without it.
async fn test_in_background(state: &AppState, scope: &Scope, record: &mut ConnectorRecord) {
    let identifier = record.identifier().to_string();
    if let Some(status) =
        crate::connectivity::test_after_change(state, scope, &identifier, &record.status).await
    {
        record.status = status;
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors",
    tag = "connectors",
    operation_id = "createConnector",
    summary = "Create a connector",
    description = "Creates a connector in the scope of the URL. Without `identifier`, one is derived from the name. Every secret reference must resolve to a secret the scope may use. The connection test then runs in the background: the response shows `status.status` `PENDING` until its result is stored (unless the manager runs with `--test-on-change=false`).",
    request_body(
        description = "A connector document (`connector:` envelope), in JSON or YAML. `orgIdentifier`/`projectIdentifier` may be omitted; when present they must match the URL.",
        content((ConnectorDocument = "application/json"), (ConnectorDocument = "application/yaml")),
    ),
    responses(
        (status = 201, description = "Created.", content((ConnectorResponse = "application/json"), (ConnectorResponse = "application/yaml"))),
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
    Doc(doc): Doc<ConnectorDocument>,
) -> ApiResult<Reply<ConnectorResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let mut connector = doc.connector;
    place_in_scope(&mut connector, &path.scope)?;
    let mut record = state.store.create_connector(connector).await?;
    tracing::info!(scope = %path.scope, identifier = record.identifier(), "connector created");
    test_in_background(&state, &path.scope, &mut record).await;
    Ok(Reply::created(Format::accepted(&headers), record.into()))
}

/// PUT creates the connector when it does not exist (201) and replaces it when it
/// does (200). The identifier in the body, when present, must match the URL.
#[utoipa::path(
    put,
    path = "/api/v1/connectors/{identifier}",
    tag = "connectors",
    operation_id = "putConnector",
    summary = "Create or replace a connector",
    description = "Creates the connector when it does not exist (201) and replaces it when it does (200), as `tether connector apply` does. The identifier in the body, when present, must match the URL. Either way the connection test then runs in the background, as after a create.",
    params(("identifier" = String, Path, description = "The connector's identifier.")),
    request_body(
        description = "A connector document (`connector:` envelope), in JSON or YAML. `orgIdentifier`/`projectIdentifier` may be omitted; when present they must match the URL.",
        content((ConnectorDocument = "application/json"), (ConnectorDocument = "application/yaml")),
    ),
    responses(
        (status = 200, description = "Replaced.", content((ConnectorResponse = "application/json"), (ConnectorResponse = "application/yaml"))),
        (status = 201, description = "Created.", content((ConnectorResponse = "application/json"), (ConnectorResponse = "application/yaml"))),
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
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(doc): Doc<ConnectorDocument>,
) -> ApiResult<Reply<ConnectorResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let identifier = path.param("identifier").to_string();
    let mut connector = doc.connector;
    place_in_scope(&mut connector, &path.scope)?;
    match &connector.identifier {
        Some(id) if *id != identifier => {
            return Err(ApiError::bad_request(format!(
                "the identifier of a connector cannot change: the URL names '{identifier}', the document '{id}'"
            ))
            .with_field("connector.identifier"))
        }
        _ => connector.identifier = Some(identifier),
    }
    let mut up = state.store.upsert_connector(connector).await?;
    test_in_background(&state, &path.scope, &mut up.record).await;
    let format = Format::accepted(&headers);
    Ok(if up.created {
        Reply::created(format, up.record.into())
    } else {
        Reply::ok(format, up.record.into())
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors/{identifier}",
    tag = "connectors",
    operation_id = "getConnector",
    summary = "Read a connector",
    params(("identifier" = String, Path, description = "The connector's identifier.")),
    responses(
        (status = 200, description = "The connector.", content((ConnectorResponse = "application/json"), (ConnectorResponse = "application/yaml"))),
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
) -> ApiResult<Reply<ConnectorResponse>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let record = state
        .store
        .get_connector(&path.scope, path.param("identifier"))
        .await?;
    Ok(Reply::ok(Format::accepted(&headers), record.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "connectors",
    operation_id = "listConnectors",
    summary = "List connectors",
    description = "One page of the connectors of the scope, filtered and sorted.",
    params(ListParams),
    responses(
        (status = 200, description = "One page of connectors.", content((ListResponse<ConnectorResponse> = "application/json"), (ListResponse<ConnectorResponse> = "application/yaml"))),
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
) -> ApiResult<Reply<ListResponse<ConnectorResponse>>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let sort = match p.sort.as_deref() {
        None | Some("name") => ConnectorSort::Name,
        Some("created") => ConnectorSort::Created,
        Some("updated") => ConnectorSort::Updated,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort '{other}' is not one of name, created, updated"
            ))
            .with_field("sort"))
        }
    };
    let desc = match p.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(
                ApiError::bad_request(format!("order '{other}' is not asc or desc"))
                    .with_field("order"),
            )
        }
    };
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(ConnectivityState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status '{s}' is not one of SUCCESS, FAILURE, PARTIAL, UNKNOWN, PENDING"
            ))
            .with_field("status")
        })?),
    };
    let query = ConnectorQuery {
        page: p.page.unwrap_or(0),
        limit: check_limit(p.limit)?,
        search: p.search,
        credential_type: p.credential_type,
        auth_type: p.auth_type,
        status,
        sort,
        desc,
    };
    let page = state.store.list_connectors(&path.scope, query).await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        ListResponse::from_page(page),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/connectors/{identifier}",
    tag = "connectors",
    operation_id = "deleteConnector",
    summary = "Delete a connector",
    params(("identifier" = String, Path, description = "The connector's identifier.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
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
    state
        .store
        .delete_connector(&path.scope, identifier)
        .await?;
    tracing::info!(scope = %path.scope, identifier, "connector deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
