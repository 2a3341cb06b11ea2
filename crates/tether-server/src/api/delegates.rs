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
use super::body::{Doc, Format, Reply};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;
use crate::delegates::{now_ms, SubmitError};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegateResponse {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    connected: bool,
    draining: bool,
    tags: Vec<String>,
    version: String,
    hostname: String,
    in_cluster: bool,
    capacity: u32,
    running_tasks: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_heartbeat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connected_at: Option<i64>,
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegateTokenResponse {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    created_at: i64,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    name: String,
}

#[derive(Serialize)]
pub struct CreatedDelegateToken {
    token: DelegateTokenResponse,
    /// Shown once.
    value: String,
}

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

pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found(format!("delegate token '{id}' not found"));
    let token = state
        .store
        .get_delegate_token(&id)
        .await
        .map_err(|_| not_found())?;
    if !caller.can_see(&token.scope) {
        return Err(not_found());
    }
    caller.require(&token.scope, Role::Admin)?;
    state.broker.revoke_token(&id).await?;
    tracing::info!(id = %id, "delegate token revoked; its delegates are disconnected");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCreate {
    kind: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    selectors: Vec<String>,
    /// Per attempt; default 120 s.
    timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResponse {
    id: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<String>,
    state: &'static str,
    selectors: Vec<String>,
    attempt: u32,
    max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    delegate_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    history: Vec<TaskAttempt>,
    created_at: i64,
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
                err.body.considered = considered;
                err
            }
            SubmitError::Store(e) => e.into(),
        }
    }
}

/// Tasks a client may submit directly (the connection test has its own route).
const SUBMITTABLE: &[&str] = &["echo"];

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

pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Reply<TaskResponse>> {
    let not_found = || ApiError::not_found(format!("task '{id}' not found"));
    let task = state.store.get_task(&id).await.map_err(|_| not_found())?;
    if !caller.can_see(&task.scope) {
        return Err(not_found());
    }
    Ok(Reply::ok(Format::accepted(&headers), task.into()))
}
