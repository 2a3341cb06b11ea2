//! `GET /connectors/{identifier}/test-history`: the connector's last connection
//! test results, newest first, each with its whole report.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_domain::connector::ConnectivityState;
use tether_store::{Role, TestResultRecord, MAX_HISTORY_LIMIT};

use super::auth::Caller;
use super::body::{Format, Reply};
use super::error::{ApiError, ApiResult};
use super::scope::ScopePath;
use super::AppState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Return at most this many results, 1 to 1000 (default: all that are
    /// kept, the manager's `--test-history` newest).
    limit: Option<u32>,
}

/// One recorded connection test.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestHistoryEntry {
    /// Increases with every result recorded.
    pub id: i64,
    /// What started the test: `api` (`POST …/test`), `change` (the connector was
    /// created or replaced) or `schedule` (the periodic re-test).
    pub trigger: String,
    pub status: ConnectivityState,
    /// When the test ran, in milliseconds since the Unix epoch.
    pub tested_at: i64,
    /// When the manager stored the result, in milliseconds since the Unix epoch.
    pub recorded_at: i64,
    pub duration_ms: u64,
    /// The delegate that ran the test; absent when none could.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_id: Option<String>,
    /// That delegate's name, for people (absent with `delegateId`, or when the
    /// delegate is no longer registered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_name: Option<String>,
    /// The task the test ran as; absent when none was submitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The report as `POST …/test` returned it.
    #[schema(value_type = super::openapi::ConnectionReport)]
    pub report: Value,
}

impl From<TestResultRecord> for TestHistoryEntry {
    fn from(r: TestResultRecord) -> Self {
        TestHistoryEntry {
            id: r.id,
            trigger: r.trigger.as_str().to_string(),
            status: r.status,
            tested_at: r.tested_at,
            recorded_at: r.recorded_at,
            duration_ms: r.duration_ms,
            delegate_id: r.delegate_id,
            delegate_name: None,
            task_id: r.task_id,
            report: r.report,
        }
    }
}

/// The results, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestHistory {
    pub items: Vec<TestHistoryEntry>,
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors/{identifier}/test-history",
    tag = "connectors",
    operation_id = "getConnectorTestHistory",
    summary = "A connector's connection test history",
    description = "The connector's last connection test results, newest first: those of `POST …/test`, the test that follows each create or replace, and the periodic re-test. The manager keeps the newest `--test-history` results per connector (default 20) and deletes them with the connector.",
    params(
        ("identifier" = String, Path, description = "The connector's identifier."),
        HistoryParams,
    ),
    responses(
        (status = 200, description = "The results, newest first; empty before the first test.", content((TestHistory = "application/json"), (TestHistory = "application/yaml"))),
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
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Reply<TestHistory>> {
    caller.authorize(&state, &path.scope, Role::Viewer).await?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match params.limit {
        Some(0) => {
            return Err(ApiError::bad_request("limit must be at least 1").with_field("limit"))
        }
        Some(l) if l > MAX_HISTORY_LIMIT => {
            return Err(ApiError::bad_request(format!(
                "limit {l} is above the maximum of {MAX_HISTORY_LIMIT}"
            ))
            .with_field("limit"))
        }
        _ => {}
    }
    let items = state
        .store
        .connection_test_history(&path.scope, path.param("identifier"), params.limit)
        .await?;
    let names = super::delegates::delegate_names(
        &state.store,
        items.iter().filter_map(|r| r.delegate_id.as_deref()),
    )
    .await;
    let items = items
        .into_iter()
        .map(|r| {
            let mut entry = TestHistoryEntry::from(r);
            entry.delegate_name = entry
                .delegate_id
                .as_ref()
                .and_then(|id| names.get(id).cloned());
            entry
        })
        .collect();
    Ok(Reply::ok(Format::accepted(&headers), TestHistory { items }))
}
