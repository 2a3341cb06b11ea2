//! Builds through a connector: `POST /connectors/{identifier}/builds` queues a
//! `build` task for a delegate chosen by the connector's selectors (the
//! delegate runs the `builds` pre-flight, creates the build's Secret,
//! workspace claim and Pod, streams the log as task events, and deletes the
//! objects in every outcome); `GET /connectors/{identifier}/builds` lists the
//! newest builds with their outcome. `POST /tasks/{id}/cancel` cancels any
//! task (a build cleans up first).
//!
//! `secretEnv` names tether secrets: each is checked like a connector's
//! reference (usable from the build's scope by its use grants, and bound to
//! no host), and delegates that may not receive one are not eligible; the
//! value is resolved at hand-over for the one delegate that runs the build.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use tether_store::Role;

use super::auth::Caller;
use super::body::{Doc, Format, Reply};
use super::delegates::TaskResponse;
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;
use crate::delegates::payload::{self, Carried};

impl super::body::RequestBody for BuildCreate {
    const ROLE: Role = Role::Editor;
}

/// A sidecar service: a container of the build's pod, reachable from the
/// build at `localhost:PORT`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildService {
    image: String,
    port: u16,
    /// Its command (default: the image's).
    #[serde(default)]
    command: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildCreate {
    image: String,
    /// The command and its arguments (default: the image's).
    #[serde(default)]
    command: Vec<String>,
    /// Default `default`.
    namespace: Option<String>,
    /// Plain environment variables.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Environment variables from tether secrets: name -> secret reference (`x`, `org.x`, `account.x`).
    #[serde(default)]
    secret_env: BTreeMap<String, String>,
    /// A workspace volume of this size (`1Gi`) at `/workspace`.
    workspace: Option<String>,
    #[serde(default)]
    services: Vec<BuildService>,
    /// Limit for the build, ms (default 1800000; at most 6 hours).
    timeout_ms: Option<u64>,
}

fn valid_env_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate(body: &BuildCreate) -> Result<(), ApiError> {
    if body.image.trim().is_empty() {
        return Err(ApiError::bad_request("no image: pass the build's image").with_field("image"));
    }
    for (field, names) in [("env", &body.env), ("secretEnv", &body.secret_env)] {
        for k in names.keys() {
            if !valid_env_name(k) {
                return Err(ApiError::bad_request(format!(
                    "'{k}' is not an environment variable name: use letters, digits and _, not starting with a digit"
                ))
                .with_field(format!("{field}.{k}")));
            }
        }
    }
    if let Some(k) = body.env.keys().find(|k| body.secret_env.contains_key(*k)) {
        return Err(ApiError::bad_request(format!(
            "{k} is both a plain and a secret env variable: keep one"
        ))
        .with_field(format!("secretEnv.{k}")));
    }
    if let Some(ws) = &body.workspace {
        let ok = ws
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<u64>()
            .is_ok_and(|n| n > 0);
        if !ok {
            return Err(ApiError::bad_request(format!(
                "workspace size '{ws}' is not a quantity: write e.g. 1Gi or 500Mi"
            ))
            .with_field("workspace"));
        }
    }
    for (i, s) in body.services.iter().enumerate() {
        if s.image.trim().is_empty() || s.port == 0 {
            return Err(
                ApiError::bad_request("a service needs an image and a port (1-65535)")
                    .with_field(format!("services[{i}]")),
            );
        }
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors/{identifier}/builds",
    tag = "connectors",
    operation_id = "buildThroughConnector",
    summary = "Run a build step as a pod through a connector",
    description = "Queues a `build` task on a delegate chosen by the connector's `delegateSelectors` and answers at once with the task. The delegate checks the `builds` permissions (SelfSubjectAccessReview; nothing is created when one is missing), creates a Secret with the `secretEnv` values (the pod refers to them by key: no value is in the Pod object), an optional workspace claim and the Pod (each service a container of the same pod, at `localhost:PORT`), streams the build container's log as `log` events (`GET /api/v1/tasks/{id}/events`), and deletes every object labelled `tether.dev/build=<task id>` in every outcome (if its delegate is lost, the build is not run again: the task fails with `DELEGATE_LOST` at once and a `buildCleanup` task, named in `error`, deletes what it left on the next eligible delegate). Its `output` is the build report (`outcome`: `succeeded`, `failed`, `error`, `timedOut`, `cancelled`; `exitCode`). Each `secretEnv` secret must be usable from the connector's scope (use grants) and bound to no host (403 `SECRET_USE_DENIED`).",
    params(("identifier" = String, Path, description = "The connector's identifier.")),
    request_body(content((BuildCreate = "application/json"), (BuildCreate = "application/yaml"))),
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
    Doc(body): Doc<BuildCreate>,
) -> ApiResult<Reply<TaskResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let identifier = path.param("identifier").to_string();
    let record = state.store.get_connector(&path.scope, &identifier).await?;
    validate(&body)?;
    let mut carried =
        payload::connector_carries(&state.store, &path.scope, &record.connector).await?;
    let on_lost = cleanup_follow_up(
        &path.scope,
        &identifier,
        body.namespace.as_deref(),
        &record.connector.spec.delegate_selectors,
        &carried,
    );
    for (env, meta) in payload::build_secrets(&state.store, &path.scope, &body.secret_env).await? {
        carried.push(Carried::of_meta(&body.secret_env[&env], &meta));
    }
    let timeout = Duration::from_millis(
        body.timeout_ms
            .unwrap_or(1_800_000)
            .clamp(1_000, 6 * 3_600_000),
    );
    let request = json!({
        "image": body.image,
        "command": body.command,
        "namespace": body.namespace,
        "env": body.env,
        "secretEnv": body.secret_env,
        "workspace": body.workspace,
        "services": body.services.iter().map(|s| json!({"image": s.image, "port": s.port, "command": s.command})).collect::<Vec<_>>(),
        "timeoutMs": timeout.as_millis() as u64,
    });
    let task = state
        .broker
        .submit_task(
            payload::BUILD,
            &path.scope,
            json!({ "scope": path.scope.key(), "connector": identifier, "request": request, "secretAccess": carried }),
            record.connector.spec.delegate_selectors.clone(),
            // Pre-flight, the delegate's own margin and the clean-up on top.
            timeout + Duration::from_secs(240),
            Some(on_lost),
        )
        .await?;
    Ok(Reply::created(Format::accepted(&headers), task.into()))
}

/// How many builds `GET /connectors/{id}/builds` lists.
const LIST_LIMIT: u32 = 50;

/// How many times the clean-up of a lost build is offered to a delegate
/// (each lost in turn) before it fails.
const CLEANUP_ATTEMPTS: u32 = 100;

/// What the store queues in place of a build whose delegate is lost: the
/// build is not run again (its command may have had side effects) and fails
/// at once with `DELEGATE_LOST`; a `buildCleanup` task deletes what it left
/// (by its `tether.dev/build` label), with no deadline: it waits until a
/// delegate eligible for the connector is connected, e.g. the same delegate
/// restarted. It carries only the connector's secrets, not the build's
/// secret env. Meanwhile the pod's `activeDeadlineSeconds` ends the build's
/// containers anyway.
fn cleanup_follow_up(
    scope: &tether_domain::Scope,
    connector: &str,
    namespace: Option<&str>,
    selectors: &[String],
    carried: &[Carried],
) -> tether_store::FollowUp {
    tether_store::FollowUp {
        kind: payload::BUILD_CLEANUP.into(),
        payload: json!({
            "scope": scope.key(),
            "connector": connector,
            "namespace": namespace.unwrap_or("default"),
            "secretAccess": carried,
        }),
        selectors: selectors.to_vec(),
        // The delegate's clean-up is bounded by a minute; room to spare.
        timeout_ms: 180_000,
        max_attempts: CLEANUP_ATTEMPTS,
        error: "DELEGATE_LOST: the delegate running the build was lost ({reason}); the build is not run again: run it again. Its objects are deleted by clean-up task {followUp} as soon as a delegate eligible for the connector is connected (`tether task get {followUp}`)".into(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors/{identifier}/builds",
    tag = "connectors",
    operation_id = "listBuilds",
    summary = "List the newest builds run through a connector",
    params(("identifier" = String, Path, description = "The connector's identifier.")),
    responses(
        (status = 200, description = "Up to 50 builds, newest first: task id, state, image, outcome, exit code, duration.", body = Value),
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
) -> ApiResult<Reply<Value>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let identifier = path.param("identifier").to_string();
    state.store.get_connector(&path.scope, &identifier).await?;
    let tasks = state
        .store
        .connector_tasks(&path.scope, &identifier, payload::BUILD, LIST_LIMIT)
        .await?;
    let items: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let out = t.output.clone().unwrap_or(Value::Null);
            json!({
                "taskId": t.id,
                "state": t.state.as_str(),
                "image": t.payload["request"]["image"],
                "command": t.payload["request"]["command"],
                "namespace": t.payload["request"]["namespace"],
                "outcome": out["outcome"],
                "summary": out["summary"].as_str().map(str::to_string).or(t.error.clone()),
                "exitCode": out["exitCode"],
                "durationMs": out["durationMs"],
                "createdAt": t.created_at,
                "updatedAt": t.updated_at,
            })
        })
        .collect();
    Ok(Reply::ok(
        Format::accepted(&headers),
        json!({ "items": items }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/cancel",
    tag = "tasks",
    operation_id = "cancelTask",
    summary = "Cancel a task",
    description = "Needs the role that creates tasks (editor) in the task's scope. A queued task fails at once; a running one is cancelled on its delegate, which ends it (a build deletes its objects first) and reports its result as usual: follow it with `GET /api/v1/tasks/{id}/events`. A finished task is answered as it is.",
    params(("id" = String, Path, description = "The task's id.")),
    responses(
        (status = 202, description = "Cancelled, or asked to cancel.", content((TaskResponse = "application/json"), (TaskResponse = "application/yaml"))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Reply<TaskResponse>> {
    let task = caller.reach(
        state.store.get_task(&id).await,
        |t| &t.scope,
        &format!("task '{id}'"),
    )?;
    caller.authorize(&state, &task.scope, Role::Editor).await?;
    let task = if task.state.is_final() {
        task
    } else {
        state.broker.cancel(&id).await?
    };
    Ok(Reply {
        status: axum::http::StatusCode::ACCEPTED,
        format: Format::accepted(&headers),
        value: task.into(),
    })
}
