//! `/orgs` and `/orgs/{org}/projects`: the containers of scoped entities.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tether_domain::{derive_identifier, Scope};
use tether_store::{OrgRecord, ProjectRecord, Role};

use super::auth::Caller;
use super::body::{Doc, Format, Reply, RequestBody};
use super::error::ApiResult;
use super::scope::ScopePath;
use super::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerCreate {
    /// Derived from the name when absent; immutable afterwards.
    identifier: Option<String>,
    name: String,
    description: Option<String>,
}

/// Orgs are created by account admins, projects by admins of their org.
impl RequestBody for ContainerCreate {
    const ROLE: Role = Role::Admin;
}

/// An org, or a project (which has `orgIdentifier`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResponse {
    identifier: String,
    /// The project's org; absent for an org.
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
    /// Milliseconds since the Unix epoch.
    last_modified_at: i64,
}

impl From<OrgRecord> for ContainerResponse {
    fn from(o: OrgRecord) -> Self {
        ContainerResponse {
            identifier: o.identifier,
            org_identifier: None,
            name: o.name,
            description: o.description,
            created_at: o.created_at,
            last_modified_at: o.updated_at,
        }
    }
}

impl From<ProjectRecord> for ContainerResponse {
    fn from(p: ProjectRecord) -> Self {
        ContainerResponse {
            identifier: p.identifier,
            org_identifier: Some(p.org_identifier),
            name: p.name,
            description: p.description,
            created_at: p.created_at,
            last_modified_at: p.updated_at,
        }
    }
}

fn identifier_for(body: &ContainerCreate, taken: &[String]) -> String {
    body.identifier
        .clone()
        .unwrap_or_else(|| derive_identifier(&body.name, "org", |c| taken.iter().any(|t| t == c)))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs",
    tag = "orgs",
    operation_id = "createOrg",
    summary = "Create an org",
    description = "Needs an admin token of the account.",
    request_body(
        description = "The new org, in JSON or YAML.",
        content((ContainerCreate = "application/json"), (ContainerCreate = "application/yaml")),
    ),
    responses(
        (status = 201, description = "Created.", content((ContainerResponse = "application/json"), (ContainerResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Doc(body): Doc<ContainerCreate>,
) -> ApiResult<Reply<ContainerResponse>> {
    caller
        .authorize(&state, &Scope::Account, Role::Admin)
        .await?;
    let taken: Vec<String> = state
        .store
        .list_orgs()
        .await?
        .into_iter()
        .map(|o| o.identifier)
        .collect();
    let id = identifier_for(&body, &taken);
    let org = state
        .store
        .create_org(&id, &body.name, body.description.as_deref())
        .await?;
    Ok(Reply::created(Format::accepted(&headers), org.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs",
    tag = "orgs",
    operation_id = "listOrgs",
    summary = "List orgs",
    responses(
        (status = 200, description = "The orgs the token can see.", content((Vec<ContainerResponse> = "application/json"), (Vec<ContainerResponse> = "application/yaml"))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Reply<Vec<ContainerResponse>>> {
    let orgs = state.store.list_orgs().await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        orgs.into_iter()
            .filter(|o| {
                caller.can_see(&Scope::Org(o.identifier.clone()))
                    || caller.0.scope.org() == Some(o.identifier.as_str())
            })
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}",
    tag = "orgs",
    operation_id = "getOrg",
    summary = "Read an org",
    params(("org" = String, Path, description = "The org's identifier.")),
    responses(
        (status = 200, description = "The org.", content((ContainerResponse = "application/json"), (ContainerResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
) -> ApiResult<Reply<ContainerResponse>> {
    let org = path.param("org").to_string();
    // A project token may read its own org's record.
    if caller.0.scope.org() != Some(org.as_str()) {
        caller.require(&path.scope, Role::Viewer)?;
    }
    let record = state.store.get_org(&org).await?;
    Ok(Reply::ok(Format::accepted(&headers), record.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}",
    tag = "orgs",
    operation_id = "deleteOrg",
    summary = "Delete an org",
    description = "Needs an admin token of the account. Refused with 409 while the org holds projects, connectors or secrets.",
    params(("org" = String, Path, description = "The org's identifier.")),
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
pub async fn delete_org(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
) -> ApiResult<Response> {
    caller.require(&Scope::Account, Role::Admin)?;
    state.store.delete_org(path.param("org")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/projects",
    tag = "orgs",
    operation_id = "createProject",
    summary = "Create a project",
    description = "Needs an admin token of the org or the account.",
    params(("org" = String, Path, description = "The org's identifier.")),
    request_body(
        description = "The new project, in JSON or YAML.",
        content((ContainerCreate = "application/json"), (ContainerCreate = "application/yaml")),
    ),
    responses(
        (status = 201, description = "Created.", content((ContainerResponse = "application/json"), (ContainerResponse = "application/yaml"))),
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
pub async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(body): Doc<ContainerCreate>,
) -> ApiResult<Reply<ContainerResponse>> {
    caller.authorize(&state, &path.scope, Role::Admin).await?;
    let org = path.param("org");
    let taken: Vec<String> = state
        .store
        .list_projects(org)
        .await?
        .into_iter()
        .map(|p| p.identifier)
        .collect();
    let id = identifier_for(&body, &taken);
    let project = state
        .store
        .create_project(org, &id, &body.name, body.description.as_deref())
        .await?;
    Ok(Reply::created(Format::accepted(&headers), project.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/projects",
    tag = "orgs",
    operation_id = "listProjects",
    summary = "List the projects of an org",
    params(("org" = String, Path, description = "The org's identifier.")),
    responses(
        (status = 200, description = "The projects the token can see.", content((Vec<ContainerResponse> = "application/json"), (Vec<ContainerResponse> = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
) -> ApiResult<Reply<Vec<ContainerResponse>>> {
    let org = path.param("org");
    if caller.0.scope.org() != Some(org) {
        caller.authorize(&state, &path.scope, Role::Viewer).await?;
    }
    let projects = state.store.list_projects(org).await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        projects
            .into_iter()
            .filter(|p| caller.can_see(&p.scope()))
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/projects/{project}",
    tag = "orgs",
    operation_id = "getProject",
    summary = "Read a project",
    params(("org" = String, Path, description = "The org's identifier."), ("project" = String, Path, description = "The project's identifier.")),
    responses(
        (status = 200, description = "The project.", content((ContainerResponse = "application/json"), (ContainerResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
) -> ApiResult<Reply<ContainerResponse>> {
    caller.require(&path.scope, Role::Viewer)?;
    let record = state
        .store
        .get_project(path.param("org"), path.param("project"))
        .await?;
    Ok(Reply::ok(Format::accepted(&headers), record.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/projects/{project}",
    tag = "orgs",
    operation_id = "deleteProject",
    summary = "Delete a project",
    description = "Needs an admin token of the org or the account. Refused with 409 while the project holds connectors or secrets.",
    params(("org" = String, Path, description = "The org's identifier."), ("project" = String, Path, description = "The project's identifier.")),
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
pub async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
) -> ApiResult<Response> {
    let org_scope = Scope::Org(path.param("org").to_string());
    caller.require(&org_scope, Role::Admin)?;
    state
        .store
        .delete_project(path.param("org"), path.param("project"))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
