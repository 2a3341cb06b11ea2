//! `POST /connectors/{identifier}/test`: run the connection test on a delegate
//! chosen by the connector's selectors, store the outcome on the connector, and
//! return the report.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tether_domain::connector::{ConnectivityState, ConnectivityStatus};
use tether_domain::Scope;
use tether_kube::connection_test::{failure_report, ConnectionReport, DEFAULT_STAGE_TIMEOUT};
use tether_store::{Role, TaskState};

use super::auth::Caller;
use super::body::{Format, Reply};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;
use crate::delegates::{payload, SubmitError};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestParams {
    /// Per-stage limit in milliseconds (default 10 s).
    stage_timeout_ms: Option<u64>,
}

/// The report plus where it ran.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResponse {
    #[serde(flatten)]
    pub report: ConnectionReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    path: ScopePath,
    headers: HeaderMap,
    params: Result<Query<TestParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Reply<TestResponse>> {
    caller.authorize(&state, &path.scope, Role::Editor).await?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let identifier = path.param("identifier").to_string();
    let stage_timeout = params
        .stage_timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_STAGE_TIMEOUT)
        .clamp(Duration::from_millis(100), Duration::from_secs(120));
    let response = test_connector(&state, &path.scope, &identifier, stage_timeout).await?;
    Ok(Reply::ok(Format::accepted(&headers), response))
}

/// Runs one test end to end and records it. Used by the API and by the
/// background re-tests.
pub async fn test_connector(
    state: &AppState,
    scope: &Scope,
    identifier: &str,
    stage_timeout: Duration,
) -> Result<TestResponse, ApiError> {
    let record = state.store.get_connector(scope, identifier).await?;
    // A reference that does not resolve is refused before anything is sent.
    for r in record.connector.secret_refs() {
        if let Err(e) = state.store.resolve_secret_ref(scope, r.reference).await {
            let report = failure_report(
                "SECRET_NOT_FOUND",
                &format!("{}: {e}", r.field),
                400,
                vec![format!(
                    "create the secret '{}' (tether secret create) or point {} at an existing one; nothing was sent to a delegate",
                    r.reference, r.field
                )],
            );
            return record_outcome(state, scope, identifier, report, None, None).await;
        }
    }
    let task = state
        .broker
        .submit(
            payload::CONNECTION_TEST,
            scope,
            payload::connection_test(scope, identifier, stage_timeout.as_millis() as u64),
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
            return record_outcome(state, scope, identifier, report, None, None).await;
        }
        Err(SubmitError::Store(e)) => return Err(e.into()),
    };
    let done = state
        .broker
        .wait(
            &task.id,
            stage_timeout * 8 * task.max_attempts + Duration::from_secs(30),
        )
        .await?;
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
        scope,
        identifier,
        report,
        done.delegate_id,
        Some(done.id),
    )
    .await
}

async fn record_outcome(
    state: &AppState,
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
    state
        .store
        .set_connectivity(scope, identifier, status)
        .await?;
    tracing::info!(%scope, connector = identifier, status = report.status.as_str(), "connection test finished");
    Ok(TestResponse {
        report,
        delegate_id,
        task_id,
    })
}
