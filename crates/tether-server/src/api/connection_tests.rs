//! `POST /connectors/{identifier}/test`: run the connection test on a delegate
//! chosen by the connector's selectors, store the outcome on the connector and
//! in its history, and return the report.

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tether_domain::connector::{ConnectivityState, ConnectivityStatus};
use tether_domain::Scope;
use tether_kube::connection_test::{failure_report, ConnectionReport, DEFAULT_STAGE_TIMEOUT};
use tether_store::{NewTestResult, Role, StoreError, TaskState, TestTrigger};

use super::auth::Caller;
use super::body::{Format, Reply};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;
use crate::delegates::{payload, SubmitError};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TestParams {
    /// Per-stage limit in milliseconds, 100 to 120000 (default 10000); values
    /// outside are brought to the nearest bound.
    stage_timeout_ms: Option<u64>,
    /// Follow a test that is already running instead of starting one: the task
    /// id of a `503 MANAGER_RESTARTING` answer. Waits for that task, records
    /// its outcome once (however often it is followed) and returns the report.
    task_id: Option<String>,
}

/// The report plus where it ran.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ConnectionTestResponse)]
#[serde(rename_all = "camelCase")]
pub struct TestResponse {
    #[serde(flatten)]
    #[schema(value_type = super::openapi::ConnectionReport)]
    pub report: ConnectionReport,
    /// The delegate that ran the test; absent when none could.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_id: Option<String>,
    /// That delegate's name, for people (absent with `delegateId`, or when the
    /// delegate is no longer registered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_name: Option<String>,
    /// The task the test ran as (`GET /api/v1/tasks/{id}`); absent when none was submitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors/{identifier}/test",
    tag = "connectors",
    operation_id = "testConnector",
    summary = "Test a connector's connection",
    description = "Runs the connection test of the connector on a delegate chosen by its `delegateSelectors` (URL, DNS, TCP, TLS, authentication, then the permissions of its profile), waits for the report, stores the outcome as the connector's `status` and in its test history (`GET …/test-history`) and returns the report. The call returns when the test is done; each attempt is bounded by eight times the per-stage limit.\n\n\
A test that could not run is still a 200 with a `FAILURE` report whose `errors[0].reason` says why: `SECRET_NOT_FOUND` (a secret reference does not resolve; nothing is sent to a delegate), `SECRET_USE_DENIED` (the connector may not use a secret it references: no use grant for its scope, or a URL outside the secret's `allowedHosts`; nothing is sent), `NO_ELIGIBLE_DELEGATE` (no connected delegate serves the scope with the selector tags), `DELEGATE_TASK_FAILED`, `BAD_DELEGATE_REPORT` or `TEST_TIMED_OUT`.",
    params(
        ("identifier" = String, Path, description = "The connector's identifier."),
        TestParams,
    ),
    responses(
        (status = 200, description = "The test ran, or could not: `status` is `SUCCESS`, `PARTIAL` (connected and authenticated, some permissions missing) or `FAILURE`.", content((TestResponse = "application/json"), (TestResponse = "application/yaml"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::Internal),
        (status = 503, description = "The manager is shutting down while the test runs (`MANAGER_RESTARTING`): the test goes on, as the task `taskId`. Ask again with `?taskId=…` (to this manager once it is back, or to another one) to get its report.", content_type = "application/json", body = super::error::ErrorBody),
    ),
)]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    params: Result<Query<TestParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let identifier = path.param("identifier").to_string();
    let stage_timeout = params
        .stage_timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_STAGE_TIMEOUT)
        .clamp(Duration::from_millis(100), Duration::from_secs(120));
    if let Some(task_id) = &params.task_id {
        let response = follow(&state, &path.scope, &identifier, task_id).await?;
        return Ok(Reply::ok(Format::accepted(&headers), response).into_response());
    }
    if crate::task_events::wants_stream(&headers) {
        return Ok(stream(state, path.scope, identifier, stage_timeout).into_response());
    }
    let response = test_connector(
        &state,
        &path.scope,
        &identifier,
        stage_timeout,
        TestTrigger::Api,
    )
    .await?;
    Ok(Reply::ok(Format::accepted(&headers), response).into_response())
}

/// `Accept: text/event-stream`: the test's stages as they complete (`event:
/// task`, as `GET /tasks/{id}/events` sends them), then `event: result` with
/// the same body the plain call answers (or `event: error` with the error
/// body). The test runs to its end and is recorded even if the client leaves.
fn stream(
    state: AppState,
    scope: Scope,
    identifier: String,
    stage_timeout: Duration,
) -> impl IntoResponse {
    use axum::response::sse::Event;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    let (task_tx, task_rx) = tokio::sync::oneshot::channel();
    let test_state = state.clone();
    let test = tokio::spawn(async move {
        test_connector_reporting(
            &test_state,
            &scope,
            &identifier,
            stage_timeout,
            TestTrigger::Api,
            Some(task_tx),
        )
        .await
    });
    tokio::spawn(async move {
        if let Ok(task_id) = task_rx.await {
            let _ = tx
                .send(
                    Event::default()
                        .event("started")
                        .json_data(serde_json::json!({ "taskId": task_id }))
                        .unwrap_or_default(),
                )
                .await;
            if let Err(Some(e)) = crate::task_events::follow(&state, &task_id, None, &tx).await {
                tracing::warn!(error = %e, task = %task_id, "cannot read task events");
            }
        }
        let last = match test.await {
            Ok(Ok(response)) => Event::default().event("result").json_data(&response),
            Ok(Err(e)) => Event::default().event("error").json_data(&e.body),
            Err(_) => Event::default().event("error").json_data(serde_json::json!({"code": "INTERNAL", "message": "the connection test stopped unexpectedly"})),
        };
        let _ = tx.send(last.unwrap_or_default()).await;
    });
    crate::task_events::sse(rx)
}

/// Runs one test end to end and records it (status, history, metrics). Used
/// by the API and by the background tests (`crate::connectivity`).
pub async fn test_connector(
    state: &AppState,
    scope: &Scope,
    identifier: &str,
    stage_timeout: Duration,
    trigger: TestTrigger,
) -> Result<TestResponse, ApiError> {
    test_connector_reporting(state, scope, identifier, stage_timeout, trigger, None).await
}

/// [`test_connector`], telling `on_task` the task's id once it is submitted
/// (to follow its events).
async fn test_connector_reporting(
    state: &AppState,
    scope: &Scope,
    identifier: &str,
    stage_timeout: Duration,
    trigger: TestTrigger,
    on_task: Option<tokio::sync::oneshot::Sender<String>>,
) -> Result<TestResponse, ApiError> {
    let run = Run {
        trigger,
        started: Instant::now(),
    };
    let record = state.store.get_connector(scope, identifier).await?;
    // A reference that does not resolve, or that this connector may not use
    // (no use grant, or a URL outside the secret's hosts), is refused before
    // anything is sent. Grants can change after the connector was saved.
    let carried = match state
        .store
        .connector_secrets(scope, &record.connector)
        .await
    {
        Ok(c) => c,
        Err(StoreError::Validation(errs)) => {
            let (field, message) = first_error(&errs);
            let report = failure_report(
                "SECRET_NOT_FOUND",
                &format!("{field}: {message}"),
                400,
                vec![format!(
                    "create the secret (tether secret create) or point {field} at an existing one; nothing was sent to a delegate"
                )],
            );
            return record_outcome(state, &run, scope, identifier, report, None, None).await;
        }
        Err(StoreError::SecretUseDenied(errs)) => {
            let message = errs
                .0
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            let report = failure_report(
                "SECRET_USE_DENIED",
                &message,
                403,
                vec!["this connector may not use a secret it references; grant it as the message says, or reference a secret of the connector's own scope. Nothing was sent to a delegate".into()],
            );
            return record_outcome(state, &run, scope, identifier, report, None, None).await;
        }
        Err(e) => return Err(e.into()),
    };
    let task = state
        .broker
        .submit(
            payload::CONNECTION_TEST,
            scope,
            payload::connection_test(
                scope,
                identifier,
                stage_timeout.as_millis() as u64,
                &carried,
            ),
            record.connector.spec.delegate_selectors.clone(),
            // Six stages, each bounded, plus the permission checks.
            stage_timeout * 8,
        )
        .await;
    let task = match task {
        Ok(t) => t,
        Err(SubmitError::NoEligibleDelegate { message, .. }) => {
            let report = failure_report(
                "NO_ELIGIBLE_DELEGATE",
                &message,
                503,
                vec!["start a delegate that serves this scope and carries the connector's selector tags (`tether delegate manifest` prints one to install), or change spec.delegateSelectors".into()],
            );
            return record_outcome(state, &run, scope, identifier, report, None, None).await;
        }
        Err(SubmitError::Store(e)) => return Err(e.into()),
    };
    if let Some(tx) = on_task {
        let _ = tx.send(task.id.clone());
    }
    let done = state
        .broker
        .wait(
            &task.id,
            stage_timeout * 8 * task.max_attempts + Duration::from_secs(30),
        )
        .await?;
    finish(state, &run, scope, identifier, done).await
}

/// Waits for a connection test already submitted (by a request this manager,
/// or another, stopped waiting for) and records its outcome once.
async fn follow(
    state: &AppState,
    scope: &Scope,
    identifier: &str,
    task_id: &str,
) -> Result<TestResponse, ApiError> {
    let not_this = || {
        ApiError::not_found(format!(
            "there is no connection test task '{task_id}' of connector '{identifier}' here; run the test again without taskId"
        ))
        .with_field("taskId")
    };
    let task = match state.store.get_task(task_id).await {
        Ok(t) => t,
        Err(tether_store::StoreError::NotFound { .. }) => return Err(not_this()),
        Err(e) => return Err(e.into()),
    };
    if task.kind != payload::CONNECTION_TEST
        || task.scope != *scope
        || task.payload["connector"].as_str() != Some(identifier)
    {
        return Err(not_this());
    }
    let age = Duration::from_millis((crate::delegates::now_ms() - task.created_at).max(0) as u64);
    let run = Run {
        trigger: TestTrigger::Api,
        started: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
    };
    let left = Duration::from_millis((task.deadline_at - crate::delegates::now_ms()).max(0) as u64);
    let done = state.broker.wait(task_id, left).await?;
    finish(state, &run, scope, identifier, done).await
}

/// Turns a waited-for task into the report and records it; a manager asked to
/// stop answers with the task id instead, so the caller can follow it.
async fn finish(
    state: &AppState,
    run: &Run,
    scope: &Scope,
    identifier: &str,
    done: tether_store::TaskRecord,
) -> Result<TestResponse, ApiError> {
    if !done.state.is_final() && state.broker.stopping() {
        return Err(ApiError::restarting(&done.id));
    }
    let report = match (done.state, done.output) {
        (TaskState::Succeeded, Some(output)) => serde_json::from_value::<ConnectionReport>(output)
            .unwrap_or_else(|e| failure_report("BAD_DELEGATE_REPORT", &format!("the delegate's report could not be read: {e}"), 502, vec!["run a delegate of the manager's version".into()])),
        (TaskState::Failed, _) | (TaskState::Succeeded, None) => failure_report(
            "DELEGATE_TASK_FAILED",
            done.error.as_deref().unwrap_or("the delegate reported a failure"),
            502,
            vec!["see the delegate's log; if it is out of date, upgrade it".into()],
        ),
        _ => failure_report(
            "TEST_TIMED_OUT",
            "no delegate finished the test in time",
            504,
            vec!["check that the delegate is running and can reach the cluster; see `tether delegate list`".into()],
        ),
    };
    record_outcome(
        state,
        run,
        scope,
        identifier,
        report,
        done.delegate_id,
        Some(done.id),
    )
    .await
}

fn first_error(errs: &tether_domain::ValidationErrors) -> (String, String) {
    errs.first()
        .map(|e| (e.field.clone(), e.message.clone()))
        .unwrap_or_else(|| ("spec".into(), "a secret reference does not resolve".into()))
}

/// What started a test, and when.
struct Run {
    trigger: TestTrigger,
    started: Instant,
}

async fn record_outcome(
    state: &AppState,
    run: &Run,
    scope: &Scope,
    identifier: &str,
    report: ConnectionReport,
    delegate_id: Option<String>,
    task_id: Option<String>,
) -> Result<TestResponse, ApiError> {
    let status = ConnectivityStatus {
        status: report.status,
        error_summary: report.error_summary.clone(),
        errors: report.errors.clone(),
        tested_at: Some(report.tested_at),
        last_connected_at: (report.status == ConnectivityState::Success)
            .then_some(report.tested_at),
        delegate_id: delegate_id.clone(),
    };
    let result = NewTestResult {
        trigger: run.trigger,
        status: report.status,
        tested_at: report.tested_at,
        duration_ms: report.duration_ms,
        delegate_id: delegate_id.clone(),
        task_id: task_id.clone(),
        report: serde_json::to_value(&report).unwrap_or_default(),
    };
    state
        .store
        .record_connection_test(
            scope,
            identifier,
            status,
            result,
            state.tests.settings.history_limit,
        )
        .await?;
    state
        .tests
        .metrics
        .observe(report.status, run.trigger, run.started.elapsed());
    tracing::info!(%scope, connector = identifier, status = report.status.as_str(), trigger = run.trigger.as_str(), "connection test finished");
    let delegate_name =
        super::delegates::delegate_names(&state.store, delegate_id.iter().map(String::as_str))
            .await
            .into_values()
            .next();
    Ok(TestResponse {
        report,
        delegate_id,
        delegate_name,
        task_id,
    })
}
