//! Whole-database summaries for the background re-tests and for `/metrics`:
//! every connector's connectivity, and how many tasks are in each state.

use sqlx::Row;
use tether_domain::{ConnectivityStatus, Scope};

use crate::error::{Result, StoreError};
use crate::tasks::TaskState;
use crate::Store;

/// One connector's place and connectivity, without its document.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConnectivity {
    pub scope: Scope,
    pub identifier: String,
    pub status: ConnectivityStatus,
    pub created_at: i64,
    pub last_modified_at: i64,
}

impl Store {
    /// The connectivity of every connector in every scope, ordered by scope and
    /// identifier. One row per connector and no documents, so it stays cheap
    /// for many thousands of connectors.
    pub async fn all_connector_connectivity(&self) -> Result<Vec<ConnectorConnectivity>> {
        let rows = sqlx::query(
            "SELECT scope_key, identifier, connectivity, last_connected_at, created_at, updated_at
             FROM connectors ORDER BY scope_key, identifier",
        )
        .fetch_all(&self.db().pool)
        .await?;
        rows.iter()
            .map(|r| {
                let scope_key: String = r.try_get("scope_key")?;
                let identifier: String = r.try_get("identifier")?;
                let corrupt = |what: &str| StoreError::Corrupt {
                    message: format!(
                        "connector '{identifier}' ({scope_key}) has an unreadable {what} in the database"
                    ),
                };
                let scope = Scope::from_key(&scope_key).ok_or_else(|| corrupt("scope"))?;
                let connectivity: String = r.try_get("connectivity")?;
                let mut status: ConnectivityStatus = serde_json::from_str(&connectivity)
                    .map_err(|_| corrupt("connectivity status"))?;
                status.last_connected_at = r.try_get("last_connected_at")?;
                Ok(ConnectorConnectivity {
                    scope,
                    identifier: identifier.clone(),
                    status,
                    created_at: r.try_get("created_at")?,
                    last_modified_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// How many tasks are in each state (every state listed, zeros included).
    pub async fn task_counts(&self) -> Result<Vec<(TaskState, u64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
            .fetch_all(&self.db().pool)
            .await?;
        let mut counts: Vec<(TaskState, u64)> = [
            TaskState::Queued,
            TaskState::Assigned,
            TaskState::Succeeded,
            TaskState::Failed,
        ]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
        for r in rows {
            let state: String = r.try_get("state")?;
            let n: i64 = r.try_get("n")?;
            if let Some(c) = counts.iter_mut().find(|(s, _)| s.as_str() == state) {
                c.1 = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(counts)
    }
}
