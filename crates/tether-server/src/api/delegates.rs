//! `/delegates`, `/delegate-tokens` and `/tasks`: what is connected, the tokens
//! delegates register with, and the tasks they run.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_store::{DelegateRecord, DelegateTokenRecord, Role, TaskAttempt, TaskRecord};

use super::auth::Caller;
use super::body::{Doc, Format, Reply, RequestBody};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;
use crate::delegates::{now_ms, SubmitError};

/// The names of the delegates with these ids, for reports that name the
/// delegate that ran them. An id the store no longer knows (or cannot read
/// now) is left out: the caller shows the id alone.
pub(crate) async fn delegate_names<'a>(
    store: &tether_store::Store,
    ids: impl Iterator<Item = &'a str>,
) -> std::collections::HashMap<String, String> {
    let mut names = std::collections::HashMap::new();
    for id in ids {
        if names.contains_key(id) {
            continue;
        }
        match store.get_delegate(id).await {
            Ok(d) => {
                names.insert(d.id, d.name);
            }
            Err(e) => tracing::debug!(delegate = id, error = %e, "no name for a delegate"),
        }
    }
    names
}

/// A registered delegate and what the manager knows of its connection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegateResponse {
    /// Assigned by the manager when the delegate first registers.
    id: String,
    /// The name it registers with; unique in its scope.
    name: String,
    /// Absent for a delegate of the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    /// Present for a delegate of a project.
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    /// True while it holds a connection to a manager and its heartbeats arrive.
    connected: bool,
    /// Shutting down: it gets no new tasks; running ones still finish.
    draining: bool,
    /// Its tags, matched against the selectors of tasks and connectors.
    tags: Vec<String>,
    /// The delegate's tether version.
    version: String,
    hostname: String,
    /// True when it runs in a pod (it has a service-account token).
    in_cluster: bool,
    /// Tasks it runs at once.
    capacity: u32,
    /// Tasks it is running now.
    running_tasks: u32,
    /// Milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_heartbeat: Option<i64>,
    /// When its current (or last) connection opened, in milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    connected_at: Option<i64>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
}

impl DelegateResponse {
    fn new(d: DelegateRecord, heartbeat_timeout_ms: i64) -> Self {
        DelegateResponse {
            connected: d.connected(now_ms(), heartbeat_timeout_ms),
            org_identifier: d.scope.org().map(str::to_string),
            project_identifier: d.scope.project().map(str::to_string),
            id: d.id,
            name: d.name,
            draining: d.draining,
            tags: d.tags,
            version: d.version,
            hostname: d.hostname,
            in_cluster: d.in_cluster,
            capacity: d.capacity,
            running_tasks: d.running_tasks,
            last_heartbeat: d.last_heartbeat,
            connected_at: d.connected_at,
            created_at: d.created_at,
        }
    }
}

fn timeout_ms(state: &AppState) -> i64 {
    state.broker.config.heartbeat_timeout.as_millis() as i64
}

#[utoipa::path(
    get,
    path = "/api/v1/delegates",
    tag = "delegates",
    operation_id = "listDelegates",
    summary = "List the delegates of the scope",
    description = "The delegates registered in exactly this scope (not those of the scopes above, which also serve it), connected or not, by name.",
    responses(
        (status = 200, description = "The delegates.", content((Vec<DelegateResponse> = "application/json"), (Vec<DelegateResponse> = "application/yaml"))),
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
) -> ApiResult<Reply<Vec<DelegateResponse>>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let t = timeout_ms(&state);
    let items = state.store.list_delegates(&path.scope).await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        items
            .into_iter()
            .map(|d| DelegateResponse::new(d, t))
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/delegates/{delegate}",
    tag = "delegates",
    operation_id = "getDelegate",
    summary = "Read a delegate",
    params(("delegate" = String, Path, description = "The delegate's id or name, in this scope.")),
    responses(
        (status = 200, description = "The delegate.", content((DelegateResponse = "application/json"), (DelegateResponse = "application/yaml"))),
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
) -> ApiResult<Reply<DelegateResponse>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let d = state
        .store
        .find_delegate(&path.scope, path.param("delegate"))
        .await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        DelegateResponse::new(d, timeout_ms(&state)),
    ))
}

/// A delegate token (never its value).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegateTokenResponse {
    id: String,
    name: String,
    /// Absent for a token of the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    /// Present for a token of a project.
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
    /// Milliseconds since the Unix epoch; absent while the token is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<i64>,
}

impl From<DelegateTokenRecord> for DelegateTokenResponse {
    fn from(t: DelegateTokenRecord) -> Self {
        DelegateTokenResponse {
            org_identifier: t.scope.org().map(str::to_string),
            project_identifier: t.scope.project().map(str::to_string),
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = DelegateTokenCreate)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    name: String,
}

impl RequestBody for TokenCreate {
    const ROLE: Role = Role::Admin;
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedDelegateToken {
    token: DelegateTokenResponse,
    /// Shown once (`tdt_…`); store it now.
    value: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/delegate-tokens",
    tag = "delegates",
    operation_id = "createDelegateToken",
    summary = "Create a delegate token",
    description = "Creates a token delegates register with, bound to the scope of the URL: a delegate registered with it serves this scope and the scopes below it. It is not an API token and opens no other route. The response carries the token's value, once: the manager keeps only its hash.",
    request_body(
        description = "The name of the new token, in JSON or YAML.",
        content((TokenCreate = "application/json"), (TokenCreate = "application/yaml")),
    ),
    responses(
        (status = 201, description = "Created; `value` is shown only here.", content((CreatedDelegateToken = "application/json"), (CreatedDelegateToken = "application/yaml"))),
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
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(body): Doc<TokenCreate>,
) -> ApiResult<Reply<CreatedDelegateToken>> {
    caller.authorize(&state, &path.scope, Role::Admin).await?;
    let (rec, value) = state
        .store
        .create_delegate_token(&body.name, &path.scope)
        .await?;
    tracing::info!(scope = %path.scope, id = %rec.id, "delegate token created");
    Ok(Reply::created(
        Format::accepted(&headers),
        CreatedDelegateToken {
            token: rec.into(),
            value: value.expose().to_string(),
        },
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/delegate-tokens",
    tag = "delegates",
    operation_id = "listDelegateTokens",
    summary = "List the delegate tokens of the scope",
    responses(
        (status = 200, description = "The delegate tokens of exactly this scope (never their values), revoked ones included.", content((Vec<DelegateTokenResponse> = "application/json"), (Vec<DelegateTokenResponse> = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
) -> ApiResult<Reply<Vec<DelegateTokenResponse>>> {
    caller.authorize(&state, &path.scope, Role::Admin).await?;
    let items = state.store.list_delegate_tokens(&path.scope).await?;
    Ok(Reply::ok(
        Format::accepted(&headers),
        items.into_iter().map(Into::into).collect(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/delegate-tokens/{id}",
    tag = "delegates",
    operation_id = "revokeDelegateToken",
    summary = "Revoke a delegate token",
    description = "Revokes the token at once and disconnects the delegates registered with it (on every manager). Needs an admin API token whose scope covers the token's; a token out of reach is reported as not found.",
    params(("id" = String, Path, description = "The delegate token's id (not its value).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let token = caller.reach(
        state.store.get_delegate_token(&id).await,
        |t| &t.scope,
        &format!("delegate token '{id}'"),
    )?;
    caller.require(&token.scope, Role::Admin)?;
    state.broker.revoke_token(&id).await?;
    tracing::info!(id = %id, "delegate token revoked; its delegates are disconnected");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A task to run on a delegate of the scope.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCreate {
    #[schema(value_type = super::openapi::SubmittableTaskKind)]
    kind: String,
    /// The task's input. For `echo`: `message` (answered back) and `holdMs`
    /// (how long the delegate holds the task before answering).
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: Value,
    /// Tags a delegate must all carry to run the task; empty for any delegate
    /// serving the scope.
    #[serde(default)]
    selectors: Vec<String>,
    /// Per attempt, in milliseconds, 1 to 3600000; default 120000 (120 s).
    timeout_ms: Option<u64>,
}

impl RequestBody for TaskCreate {
    const ROLE: Role = Role::Editor;
}

/// A task and where it stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResponse {
    id: String,
    /// `echo`, or `connectionTest` for the tasks of `POST …/connectors/{identifier}/test`.
    kind: String,
    /// Absent for a task of the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    /// Present for a task of a project.
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    #[schema(value_type = super::openapi::TaskStateName)]
    state: &'static str,
    /// Tags the delegate running it must all carry.
    selectors: Vec<String>,
    /// The current attempt, from 1; 0 while it waits for its first delegate.
    attempt: u32,
    /// How many delegates may try it (a delegate that goes away mid-task hands it on).
    max_attempts: u32,
    /// The delegate of the current (or last) attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    delegate_id: Option<String>,
    /// What the delegate answered, once the task succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    output: Option<Value>,
    /// Why the task failed, once it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Every attempt so far, oldest first.
    #[schema(value_type = Vec<super::openapi::TaskAttempt>)]
    history: Vec<TaskAttempt>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
    /// Milliseconds since the Unix epoch.
    updated_at: i64,
}

impl From<TaskRecord> for TaskResponse {
    fn from(t: TaskRecord) -> Self {
        TaskResponse {
            org_identifier: t.scope.org().map(str::to_string),
            project_identifier: t.scope.project().map(str::to_string),
            id: t.id,
            kind: t.kind,
            state: t.state.as_str(),
            selectors: t.selectors,
            attempt: t.attempt,
            max_attempts: t.max_attempts,
            delegate_id: t.delegate_id,
            output: t.output,
            error: t.error,
            history: t.history,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::NoEligibleDelegate {
                message,
                considered,
            } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, "NO_ELIGIBLE_DELEGATE", message);
                err.body.considered = considered.into();
                err
            }
            SubmitError::Store(e) => e.into(),
        }
    }
}

/// Tasks a client may submit directly (the connection test has its own route).
const SUBMITTABLE: &[&str] = &["echo"];

#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    operation_id = "createTask",
    summary = "Submit a task",
    description = "Queues a task for a delegate that serves the scope of the URL (registered in it or in a scope above) and carries every selector tag. The answer comes at once, with the task `queued`; poll `GET /api/v1/tasks/{id}` for its outcome. When no delegate can take it now (none serves the scope, none carries the tags, none is connected, or all are draining), nothing is queued and the 409 says why for each delegate considered; a delegate that is merely busy is not a reason: the task waits for a free slot.",
    request_body(
        description = "The kind, input and selectors of the task, in JSON or YAML.",
        content((TaskCreate = "application/json"), (TaskCreate = "application/yaml")),
    ),
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
pub async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    Doc(body): Doc<TaskCreate>,
) -> ApiResult<Reply<TaskResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    if !SUBMITTABLE.contains(&body.kind.as_str()) {
        return Err(ApiError::bad_request(format!(
            "task kind '{}' cannot be submitted directly; use one of {}",
            body.kind,
            SUBMITTABLE.join(", ")
        ))
        .with_field("kind"));
    }
    let timeout = Duration::from_millis(body.timeout_ms.unwrap_or(120_000).clamp(1, 3_600_000));
    let task = state
        .broker
        .submit(
            &body.kind,
            &path.scope,
            body.payload,
            body.selectors,
            timeout,
        )
        .await?;
    Ok(Reply::created(Format::accepted(&headers), task.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    operation_id = "getTask",
    summary = "Read a task",
    description = "Any API token whose scope covers the task's may read it; a task out of reach is reported as not found.",
    params(("id" = String, Path, description = "The task's id.")),
    responses(
        (status = 200, description = "The task.", content((TaskResponse = "application/json"), (TaskResponse = "application/yaml"))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
    ),
)]
pub async fn get_task(
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
    Ok(Reply::ok(Format::accepted(&headers), task.into()))
}
