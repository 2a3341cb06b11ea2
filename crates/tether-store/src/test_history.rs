//! The history of connection test results: the last N reports of each
//! connector, written in the same transaction as the connector's status so the
//! two never disagree, trimmed in that transaction too, and deleted with the
//! connector.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;
use tether_domain::connector::ConnectivityState;
use tether_domain::{ConnectivityStatus, Scope};

use crate::connectors::write_connectivity;
use crate::db::now_ms;
use crate::error::{Result, StoreError};
use crate::scopes::scope_phrase;
use crate::Store;

/// How many results a connector keeps when the caller does not say.
pub const DEFAULT_HISTORY_LIMIT: u32 = 20;
/// The most results a connector may keep.
pub const MAX_HISTORY_LIMIT: u32 = 1000;

/// What started a test; shown in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestTrigger {
    /// `POST .../connectors/{id}/test` (or `tether connector test`).
    Api,
    /// The connector was created or its document replaced.
    Change,
    /// The periodic re-test.
    Schedule,
}

impl TestTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            TestTrigger::Api => "api",
            TestTrigger::Change => "change",
            TestTrigger::Schedule => "schedule",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Api, Self::Change, Self::Schedule]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// One test result to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTestResult {
    pub trigger: TestTrigger,
    pub status: ConnectivityState,
    /// When the test ran (the report's `testedAt`), ms since the epoch.
    pub tested_at: i64,
    pub duration_ms: u64,
    pub delegate_id: Option<String>,
    pub task_id: Option<String>,
    /// The whole report as JSON. Must never carry a secret value.
    pub report: Value,
}

/// A recorded test result.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResultRecord {
    /// Increases with every result recorded in the database.
    pub id: i64,
    pub trigger: TestTrigger,
    pub status: ConnectivityState,
    pub tested_at: i64,
    /// When the manager stored it, ms since the epoch.
    pub recorded_at: i64,
    pub duration_ms: u64,
    pub delegate_id: Option<String>,
    pub task_id: Option<String>,
    pub report: Value,
}

fn result_from_row(r: &AnyRow) -> Result<TestResultRecord> {
    let id: i64 = r.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt {
        message: format!("connection test result {id} has an unreadable {what} in the database"),
    };
    let status: String = r.try_get("status")?;
    let trigger: String = r.try_get("trigger_kind")?;
    let report: String = r.try_get("report")?;
    let duration: i64 = r.try_get("duration_ms")?;
    Ok(TestResultRecord {
        id,
        trigger: TestTrigger::parse(&trigger).ok_or_else(|| corrupt("trigger"))?,
        status: ConnectivityState::parse(&status).ok_or_else(|| corrupt("status"))?,
        tested_at: r.try_get("tested_at")?,
        recorded_at: r.try_get("recorded_at")?,
        duration_ms: u64::try_from(duration).unwrap_or(0),
        delegate_id: r.try_get("delegate_id")?,
        task_id: r.try_get("task_id")?,
        report: serde_json::from_str(&report).map_err(|_| corrupt("report"))?,
    })
}

impl Store {
    /// Stores a test's outcome: the connector's status (as
    /// [`Store::set_connectivity`] does: on failure the old `lastConnectedAt`
    /// stays) and one history row, then drops all but the newest `keep` rows of
    /// that connector (at least one is kept), all in one transaction. Returns
    /// the status as stored. A result whose task is already recorded for the
    /// connector is not recorded again.
    pub async fn record_connection_test(
        &self,
        scope: &Scope,
        identifier: &str,
        status: ConnectivityStatus,
        result: NewTestResult,
        keep: u32,
    ) -> Result<ConnectivityStatus> {
        let keep = keep.clamp(1, MAX_HISTORY_LIMIT);
        let mut tx = self.db().begin_write().await?;
        // A test followed again after a manager restart is recorded once.
        if let Some(task_id) = &result.task_id {
            let seen = sqlx::query(
                "SELECT 1 AS one FROM connection_test_results WHERE task_id = $1 AND connector_id = (SELECT id FROM connectors WHERE scope_key = $2 AND identifier = $3)",
            )
            .bind(task_id)
            .bind(scope.key())
            .bind(identifier)
            .fetch_optional(tx.conn())
            .await?;
            if seen.is_some() {
                tx.commit().await?;
                return Ok(status);
            }
        }
        // The UPDATE comes first: on PostgreSQL it locks the connector's row, so
        // two results of one connector are trimmed one after the other.
        let (connector_id, status) =
            write_connectivity(tx.conn(), scope, identifier, status).await?;
        sqlx::query(
            "INSERT INTO connection_test_results (connector_id, status, tested_at, recorded_at, duration_ms, trigger_kind, delegate_id, task_id, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(connector_id)
        .bind(result.status.as_str())
        .bind(result.tested_at)
        .bind(now_ms())
        .bind(i64::try_from(result.duration_ms).unwrap_or(i64::MAX))
        .bind(result.trigger.as_str())
        .bind(result.delegate_id)
        .bind(result.task_id)
        .bind(serde_json::to_string(&result.report).expect("JSON values serialise"))
        .execute(tx.conn())
        .await?;
        sqlx::query(
            "DELETE FROM connection_test_results WHERE connector_id = $1 AND id NOT IN (
                SELECT id FROM connection_test_results WHERE connector_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(connector_id)
        .bind(i64::from(keep))
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(status)
    }

    /// The recorded results of a connector, newest first, at most `limit`
    /// (all that are kept when `None`). NotFound when the connector does not
    /// exist.
    pub async fn connection_test_history(
        &self,
        scope: &Scope,
        identifier: &str,
        limit: Option<u32>,
    ) -> Result<Vec<TestResultRecord>> {
        let mut tx = self.db().begin_read().await?;
        let row = sqlx::query("SELECT id FROM connectors WHERE scope_key = $1 AND identifier = $2")
            .bind(scope.key())
            .bind(identifier)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!(
                    "connector '{identifier}' in {}",
                    scope_phrase(scope)
                ))
            })?;
        let connector_id: i64 = row.try_get("id")?;
        let rows = sqlx::query(
            "SELECT id, status, tested_at, recorded_at, duration_ms, trigger_kind, delegate_id, task_id, report
             FROM connection_test_results WHERE connector_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(connector_id)
        .bind(i64::from(limit.unwrap_or(MAX_HISTORY_LIMIT).min(MAX_HISTORY_LIMIT)))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(result_from_row).collect()
    }
}
