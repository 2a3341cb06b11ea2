//! `/orgs` and `/orgs/{org}/projects`: the containers of scoped entities.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tether_domain::{derive_identifier, Scope};
use tether_store::{OrgRecord, ProjectRecord, Role};

use super::auth::Caller;
use super::body::{Doc, Format, Reply};
use super::error::ApiResult;
use super::scope::ScopePath;
use super::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerCreate {
    identifier: Option<String>,
    name: String,
    description: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResponse {
    identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    created_at: i64,
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
    body.identifier.clone().unwrap_or_else(|| {
        derive_identifier(&body.name, "org", |c| taken.iter().any(|t| t == c))
    })
}

pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Doc(body): Doc<ContainerCreate>,
) -> ApiResult<Reply<ContainerResponse>> {
    caller.authorize(&state, &Scope::Account, Role::Admin).await?;
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

pub async fn delete_org(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
) -> ApiResult<Response> {
    caller.require(&Scope::Account, Role::Admin)?;
    state.store.delete_org(path.param("org")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

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
