//! Deploys through a connector: `POST /connectors/{identifier}/deploy` queues
//! a `deploy` task for a delegate chosen by the connector's selectors (the
//! delegate runs pre-flight, apply, prune and the steady-state watch, and
//! streams its progress as task events: `GET /tasks/{id}/events`);
//! `GET /connectors/{identifier}/releases` lists the releases the manager has
//! seen finish, newest first. The releases themselves live in the cluster.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use tether_domain::Scope;
use tether_store::{ReleaseRecord, Role, Store};

use super::auth::Caller;
use super::body::{Doc, Format, Reply};
use super::delegates::TaskResponse;
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;
use crate::delegates::payload;

/// One manifest file.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestFile {
    /// Where it came from (a path), for messages.
    source: String,
    /// Its text: multi-document YAML or JSON.
    text: String,
}

impl super::body::RequestBody for DeployCreate {
    const ROLE: Role = Role::Editor;
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployCreate {
    #[serde(default)]
    manifests: Vec<ManifestFile>,
    /// For namespaced objects that name none, and where the release is kept (default `default`).
    namespace: Option<String>,
    /// Release name (default: the first object's name).
    release: Option<String>,
    #[serde(default)]
    prune: bool,
    /// Limit for applying and reaching steady state, ms (default 600000).
    timeout_ms: Option<u64>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force_conflicts: bool,
    /// Deploy this earlier revision's manifests again (0: the one before the latest).
    rollback_to: Option<u32>,
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors/{identifier}/deploy",
    tag = "connectors",
    operation_id = "deployThroughConnector",
    summary = "Deploy manifests through a connector",
    description = "Queues a `deploy` task on a delegate chosen by the connector's `delegateSelectors` and answers at once with the task. The delegate runs pre-flight (kinds, permissions, server-side dry run: every problem at once, nothing changed), records release N in the cluster, applies with server-side apply, prunes (with `prune`), and watches the objects until steady or a diagnosed failure. Follow it with `GET /api/v1/tasks/{id}/events`; its `output` is the deploy report (`outcome`: `deployed`, `dryRun`, `refused`, `failed`).",
    params(("identifier" = String, Path, description = "The connector's identifier.")),
    request_body(content((DeployCreate = "application/json"), (DeployCreate = "application/yaml"))),
    responses(
        (status = 201, description = "Queued.", content((TaskResponse = "application/json"), (TaskResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::NoEligibleDelegate),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(body): Doc<DeployCreate>,
) -> ApiResult<Reply<TaskResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let identifier = path.param("identifier").to_string();
    let record = state.store.get_connector(&path.scope, &identifier).await?;
    // The connector's secrets as the store resolves them (use grants and host
    // binding checked, like a build's or a test's): refused here, before any
    // delegate, and only delegates that may receive them are eligible.
    let carried = payload::connector_carries(&state.store, &path.scope, &record.connector).await?;
    if body.manifests.is_empty() && body.rollback_to.is_none() {
        return Err(
            ApiError::bad_request("no manifests: pass at least one file").with_field("manifests"),
        );
    }
    let timeout = Duration::from_millis(body.timeout_ms.unwrap_or(600_000).clamp(1_000, 3_600_000));
    let request = json!({
        "manifests": body.manifests.iter().map(|m| json!({"source": m.source, "text": m.text})).collect::<Vec<_>>(),
        "namespace": body.namespace,
        "release": body.release,
        "prune": body.prune,
        "timeoutMs": timeout.as_millis() as u64,
        "dryRun": body.dry_run,
        "forceConflicts": body.force_conflicts,
        "rollbackTo": body.rollback_to,
    });
    let task = state
        .broker
        .submit(
            payload::DEPLOY,
            &path.scope,
            // `requestedBy`: the token's name, shown in the release history.
            json!({ "scope": path.scope.key(), "connector": identifier, "request": request, "secretAccess": carried, "requestedBy": caller.0.name }),
            record.connector.spec.delegate_selectors.clone(),
            // Pre-flight and the release record on top of the steady-state limit.
            timeout + Duration::from_secs(120),
        )
        .await?;
    Ok(Reply::created(Format::accepted(&headers), task.into()))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReleaseParams {
    /// Only the releases of this name.
    name: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors/{identifier}/releases",
    tag = "connectors",
    operation_id = "listReleases",
    summary = "List the releases deployed through a connector",
    params(("identifier" = String, Path, description = "The connector's identifier."), ReleaseParams),
    responses(
        (status = 200, description = "The releases, by name, newest revision first.", body = Value),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn releases(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    params: Result<Query<ReleaseParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Reply<Value>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let identifier = path.param("identifier").to_string();
    state.store.get_connector(&path.scope, &identifier).await?;
    let items = state
        .store
        .list_releases(&path.scope, &identifier, params.name.as_deref())
        .await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        json!({ "items": items }),
    ))
}

/// What a release's summary lists of its objects: kind, namespace, name and
/// how each ended (no spec, no data: a Secret's values never get here).
fn objects(output: &Value) -> Value {
    let list = output["objects"].as_array().into_iter().flatten();
    Value::Array(
        list.map(|o| {
            json!({
                "kind": o["kind"],
                "namespace": o["namespace"],
                "name": o["name"],
                "status": o["status"],
            })
        })
        .collect(),
    )
}

/// A deploy task finished: keep the summary of its release. Called once per
/// stored result; the row's key (revision) keeps a release recorded once.
pub(crate) async fn task_finished(store: &Store, task_id: &str) {
    let Ok(task) = store.get_task(task_id).await else {
        return;
    };
    if task.kind != payload::DEPLOY {
        return;
    }
    let Some(output) = task.output.as_ref() else {
        return;
    };
    let rel = &output["release"];
    let (Some(name), Some(ns), Some(revision)) = (
        rel["name"].as_str(),
        rel["namespace"].as_str(),
        rel["revision"].as_u64(),
    ) else {
        return; // refused before any release was recorded
    };
    let scope = Scope::from_key(task.payload["scope"].as_str().unwrap_or_default())
        .unwrap_or(task.scope.clone());
    let record = ReleaseRecord {
        connector: task.payload["connector"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        namespace: ns.to_string(),
        name: name.to_string(),
        revision: revision as u32,
        status: rel["status"].as_str().unwrap_or("unknown").to_string(),
        task_id: task.id.clone(),
        summary: json!({
            "outcome": output["outcome"],
            "summary": output["summary"],
            "release": rel,
            "durationMs": output["durationMs"],
            "requestedBy": task.payload["requestedBy"],
            "rollbackTo": task.payload["request"]["rollbackTo"],
            "objects": objects(output),
        }),
        created_at: 0,
    };
    if let Err(e) = store.record_release(&scope, &record).await {
        tracing::warn!(error = %e, task = %task_id, "cannot record the release summary");
    }
}
